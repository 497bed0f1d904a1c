//! How much of its finished runs a QuarksJob keeps (pure): at most `--job-history` failed Jobs
//! and as many pods kept of succeeded Jobs; the oldest go first. Runs are numbered in order, so
//! "oldest" is by run number (found from the Job name, see [`crate::core::job_names::run_of`]), then by
//! creation time (to the second only), then by name.

use k8s_openapi::jiff::Timestamp;

/// Something a finished run left: a failed Job, or a kept pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leftover {
    /// Its name.
    pub name: String,
    /// The run it belongs to, if known (older than every known run otherwise).
    pub run: Option<i64>,
    /// Its creation time.
    pub created: Option<Timestamp>,
}

/// The names of the leftovers beyond the `keep` newest, oldest first; `keep` 0 keeps all.
pub fn beyond(mut items: Vec<Leftover>, keep: usize) -> Vec<String> {
    if keep == 0 || items.len() <= keep {
        return Vec::new();
    }
    items.sort_by(|a, b| {
        (a.run.is_some(), a.run, a.created, &a.name).cmp(&(
            b.run.is_some(),
            b.run,
            b.created,
            &b.name,
        ))
    });
    let excess = items.len() - keep;
    items.into_iter().take(excess).map(|i| i.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, run: Option<i64>, second: i64) -> Leftover {
        Leftover {
            name: name.into(),
            run,
            created: Some(Timestamp::from_second(1_700_000_000 + second).unwrap()),
        }
    }

    #[test]
    fn the_oldest_runs_go_first() {
        // created in the same second: the run number decides
        let items = vec![
            item("c", Some(3), 0),
            item("a", Some(1), 0),
            item("b", Some(2), 0),
        ];
        assert_eq!(beyond(items.clone(), 2), ["a"]);
        assert_eq!(beyond(items.clone(), 1), ["a", "b"]);
        assert!(beyond(items.clone(), 3).is_empty());
        assert!(beyond(items, 0).is_empty(), "0 keeps all");
    }

    #[test]
    fn unknown_runs_are_the_oldest_then_by_creation_and_name() {
        let items = vec![
            item("known", Some(1), 0),
            item("late", None, 9),
            item("early", None, 1),
            item("pod-b", Some(2), 5),
            item("pod-a", Some(2), 5),
        ];
        assert_eq!(beyond(items, 1), ["early", "late", "known", "pod-a"]);
    }
}
