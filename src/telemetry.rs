//! Logging (layer: runtime): tracing to stderr, as text or JSON, at the level of `--log-level`.

use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// What to log and how.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// `trace`, `debug`, `info`, `warn` or `error`: the level of quarks-job's own lines.
    pub level: String,
    /// The line format.
    pub format: Format,
}

/// kube-client logs the whole body of a response it cannot decode at WARN, which would write
/// object contents (specs, env values, Secret data) into the log: its client module logs errors
/// only. (The operator reads what it cannot trust leniently, see [`crate::core::lenient`]; this is the
/// second line of defence.)
const NO_BODIES: &str = "kube_client::client=error";

/// The filter for a `--log-level`: the level applies to quarks-job itself; libraries log at
/// `info` at most, so `debug` does not drown the operator's lines in HTTP chatter, and never log
/// response bodies (`NO_BODIES`). `RUST_LOG`, when set, replaces it.
pub fn filter_directives(level: &str) -> String {
    match level {
        "trace" | "debug" => format!("info,quarks_job={level},{NO_BODIES}"),
        other => format!("{other},{NO_BODIES}"),
    }
}

/// Install the global subscriber. Safe to call once per process.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| EnvFilter::new(filter_directives(&settings.level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        Format::Text => builder.with_ansi(false).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_noise_is_capped_at_info() {
        assert_eq!(
            filter_directives("debug"),
            "info,quarks_job=debug,kube_client::client=error"
        );
        assert_eq!(
            filter_directives("trace"),
            "info,quarks_job=trace,kube_client::client=error"
        );
        assert_eq!(filter_directives("warn"), "warn,kube_client::client=error");
        for level in ["trace", "debug", "info", "warn", "error"] {
            assert!(EnvFilter::try_new(filter_directives(level)).is_ok());
        }
    }
}
