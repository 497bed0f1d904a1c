//! Deterministic Job names (layer: core).
//!
//! Upstream named Jobs `<QuarksJob name cut to 39 chars>-<16 hex of FNV-64 over the name and 16
//! random bytes>`: random, so a retried trigger could create a second Job. Here the 16 hex digits
//! hash the QuarksJob's uid and the run number instead, so the name of the Job of a given trigger
//! is known before it is created and a repeated create answers AlreadyExists.

use crate::core::api::labels::LABEL_QJOB_NAME;
use crate::core::kube_rules::{dns_subdomain, label_value};

/// Upstream cut the QuarksJob name to this many characters before the `-<hash>` suffix.
pub const NAME_PREFIX_LEN: usize = 39;

/// Whether a QuarksJob named `name` can work: the name is the value of the `qjob-name` label on
/// its Jobs and pods (which the Job lookup selects by), so it must be a valid label value (at
/// most 63 characters), and the Job name derived from it must be a valid name and label value
/// (the job controller labels pods `job-name=<Job name>`). The error names the limit.
pub fn check_qjob_name(name: &str) -> Result<(), String> {
    if let Err(e) = label_value(name) {
        return Err(format!(
            "the name {name:?} ({} characters) cannot be the value of the label {LABEL_QJOB_NAME} \
             that quarks-job puts on its Jobs and pods and finds them by: it {e}",
            name.chars().count()
        ));
    }
    // (the hash part has a fixed length whatever the uid and run)
    let job = job_name(name, "uid", 1);
    if let Err(e) = dns_subdomain(&job).and_then(|()| label_value(&job)) {
        return Err(format!(
            "the name {name:?} gives Jobs names like {job:?}, which {e}"
        ));
    }
    Ok(())
}

/// The name of the Job of run `run` of the QuarksJob `name` with uid `uid`: the name cut to 39
/// characters (trailing `.` removed so the result stays a DNS subdomain), `-`, then 16 lower-case
/// hex digits of FNV-1a 64 over `<uid>/<run>`. At most 56 characters, so pod names derived from it
/// and the `job-name` label value stay within 63.
pub fn job_name(name: &str, uid: &str, run: i64) -> String {
    let cut: String = name.chars().take(NAME_PREFIX_LEN).collect();
    let cut = cut.trim_end_matches('.');
    format!("{cut}-{:016x}", fnv1a64(format!("{uid}/{run}").as_bytes()))
}

/// The run (1 to `last_run`) whose Job of the QuarksJob `name` with uid `uid` is called `job`.
pub fn run_of(job: &str, name: &str, uid: &str, last_run: i64) -> Option<i64> {
    (1..=last_run)
        .rev()
        .find(|&run| job_name(name, uid, run) == job)
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_deterministic_per_uid_and_run() {
        let a = job_name("myjob", "uid-1", 1);
        assert_eq!(a, job_name("myjob", "uid-1", 1));
        assert_ne!(a, job_name("myjob", "uid-1", 2));
        assert_ne!(a, job_name("myjob", "uid-2", 1));
        assert!(a.starts_with("myjob-"));
        let hex = &a["myjob-".len()..];
        assert_eq!(hex.len(), 16);
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }

    #[test]
    fn the_run_of_a_job_is_found_from_its_name() {
        let job = job_name("myjob", "uid-1", 7);
        assert_eq!(run_of(&job, "myjob", "uid-1", 9), Some(7));
        assert_eq!(run_of(&job, "myjob", "uid-1", 6), None, "not yet run");
        assert_eq!(run_of(&job, "myjob", "uid-2", 9), None, "another QuarksJob");
        assert_eq!(run_of("myjob-abc", "myjob", "uid-1", 9), None);
    }

    #[test]
    fn lengths_match_upstream() {
        // upstream names_test: `ab1` → 20 chars, 31 chars → 48, 63 chars → 56 with prefix name[:39]-
        assert_eq!(job_name("ab1", "u", 1).len(), 20);
        assert_eq!(job_name("a-b1", "u", 1).len(), 21);
        assert_eq!(job_name(&"a".repeat(31), "u", 1).len(), 48);
        let long = "x".repeat(63);
        let n = job_name(&long, "u", 7);
        assert_eq!(n.len(), 56);
        assert!(n.starts_with(&format!("{}-", &long[..39])));
    }

    #[test]
    fn a_cut_ending_in_a_dot_stays_a_subdomain() {
        let name = format!("{}.rest", "a".repeat(38));
        let n = job_name(&name, "u", 1);
        assert!(n.starts_with(&format!("{}-", "a".repeat(38))), "{n}");
        assert!(!n.contains(".-"));
    }

    #[test]
    fn names_that_cannot_be_a_label_value_are_refused_naming_the_limit() {
        assert_eq!(check_qjob_name(&"a".repeat(63)), Ok(()));
        let e = check_qjob_name(&"a".repeat(64)).unwrap_err();
        assert!(
            e.contains("(64 characters)")
                && e.contains("quarks.cloudfoundry.org/qjob-name")
                && e.contains("at most 63 characters"),
            "{e}"
        );
        // what a QuarksJob name (a DNS subdomain of at most 63 characters) may look like at the
        // cut: the derived Job name stays valid
        for name in [
            "a",
            &format!("{}.b", "a".repeat(38)),
            &format!("{}-b", "a".repeat(38)),
            &format!("{}.a", "1".repeat(61)),
            "a.b.c",
        ] {
            assert_eq!(check_qjob_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn fnv1a_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    }
}
