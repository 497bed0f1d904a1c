//! Retrying the apiserver calls of persist-output: transient errors (429, 500, 502, 503, 504, a
//! connection refused, reset or closed before the answer, a call that does not answer within
//! [`CALL_TIMEOUT`]) are tried again with exponential backoff, at most [`API_BACKOFF`]`.attempts`
//! times; anything else (403, 404, 409, 422, ...) is answered at once, to the caller that knows
//! what it means. Pure parts: [`is_transient`] and [`delay`]; [`call`] is the thin I/O shell.
//!
//! The client is built without kube's own retry layer (`default_retry`), so this is the one
//! place that decides, and a budget exhausted here ends the run with an error naming the call.

use std::future::Future;
use std::time::Duration;

use tracing::warn;

/// The retry budget of one API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait after the first failure.
    pub first: Duration,
    /// The longest wait between two attempts (also caps a server's `retryAfterSeconds`).
    pub max: Duration,
    /// Attempts in all, the first included.
    pub attempts: u32,
}

/// persist-output's budget: 8 attempts, waiting 0.2, 0.4, 0.8, 1.6, 3.2, 5 and 5 s in between
/// (about 16 s of waiting, plus at most [`CALL_TIMEOUT`] per attempt).
pub const API_BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(200),
    max: Duration::from_secs(5),
    attempts: 8,
};

/// Longest wait for the answer to one call (a hung connection counts as a transient error).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether an error is worth another attempt: the apiserver is overloaded or restarting, or the
/// connection to it failed. Answers that are about the request itself are not.
pub fn is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => matches!(s.code, 429 | 500 | 502 | 503 | 504),
        // connect refused, connection reset or closed before the answer, TLS handshake cut,
        // a call timing out (see `call`)
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

/// The wait after failed attempt number `failed` (1 for the first): `first` doubled each time,
/// at most `max`; a server's `retryAfterSeconds` (429) is honoured up to `max`.
pub fn delay(b: &Backoff, failed: u32, retry_after: Option<Duration>) -> Duration {
    let doubled = b
        .first
        .checked_mul(
            1u32.checked_shl(failed.saturating_sub(1))
                .unwrap_or(u32::MAX),
        )
        .unwrap_or(b.max);
    let wait = doubled.min(b.max);
    match retry_after {
        Some(server) => server.min(b.max).max(wait),
        None => wait,
    }
}

fn retry_after(e: &kube::Error) -> Option<Duration> {
    match e {
        kube::Error::Api(s) => s
            .details
            .as_ref()
            .map(|d| d.retry_after_seconds)
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(u64::from(s))),
        _ => None,
    }
}

/// A call that did not answer within [`CALL_TIMEOUT`], as the transient error it is.
fn timed_out(what: &str) -> kube::Error {
    kube::Error::Service(format!("no answer within {CALL_TIMEOUT:?} to: {what}").into())
}

/// Run `f` until it succeeds, fails with a non-transient error, or the budget is spent. Returns
/// the outcome and how many attempts were made (a create answered AlreadyExists after a lost
/// answer is probably this run's own object).
pub async fn call_counted<T, F, Fut>(what: &str, mut f: F) -> (Result<T, kube::Error>, u32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let b = API_BACKOFF;
    let mut attempt = 1;
    loop {
        let result = match tokio::time::timeout(CALL_TIMEOUT, f()).await {
            Ok(result) => result,
            Err(_) => Err(timed_out(what)),
        };
        match result {
            Err(e) if is_transient(&e) && attempt < b.attempts => {
                let wait = delay(&b, attempt, retry_after(&e));
                warn!(
                    "{what} failed ({e}); attempt {} of {} in {wait:?}",
                    attempt + 1,
                    b.attempts
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            other => return (other, attempt),
        }
    }
}

/// [`call_counted`] without the count.
pub async fn call<T, F, Fut>(what: &str, f: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    call_counted(what, f).await.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("x", "y")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn transient_errors_are_overload_and_connection_failures() {
        for code in [429, 500, 502, 503, 504] {
            assert!(is_transient(&api(code)), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 410, 413, 422] {
            assert!(!is_transient(&api(code)), "{code}");
        }
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(is_transient(&kube::Error::Service(Box::new(reset))));
        assert!(is_transient(&timed_out("get pod")));
        let bad_json = serde_json::from_str::<u8>("x").unwrap_err();
        assert!(!is_transient(&kube::Error::SerdeError(bad_json)));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_stays_bounded() {
        let waits: Vec<Duration> = (1..API_BACKOFF.attempts)
            .map(|n| delay(&API_BACKOFF, n, None))
            .collect();
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [200, 400, 800, 1600, 3200, 5000, 5000]);
        let total: Duration = waits.iter().sum();
        assert!(total < Duration::from_secs(20), "{total:?}");
        // far past the attempts, no overflow
        assert_eq!(delay(&API_BACKOFF, 200, None), API_BACKOFF.max);
        assert_eq!(delay(&API_BACKOFF, u32::MAX, None), API_BACKOFF.max);
    }

    #[test]
    fn a_servers_retry_after_is_honoured_up_to_the_cap() {
        let s = |n| Some(Duration::from_secs(n));
        assert_eq!(delay(&API_BACKOFF, 1, s(2)), Duration::from_secs(2));
        assert_eq!(delay(&API_BACKOFF, 1, s(3600)), API_BACKOFF.max);
        // never shorter than our own backoff
        assert_eq!(delay(&API_BACKOFF, 6, s(1)), Duration::from_secs(5));
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "message": "slow down", "reason": "TooManyRequests",
            "code": 429, "details": {"retryAfterSeconds": 2}
        }))
        .unwrap();
        assert_eq!(
            retry_after(&kube::Error::Api(status.boxed())),
            s(2),
            "read from the Status details"
        );
        assert_eq!(retry_after(&api(503)), None);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_and_not_others() {
        let mut calls = 0;
        let (result, attempts) = call_counted("get x", || {
            calls += 1;
            let n = calls;
            async move { if n < 3 { Err(api(503)) } else { Ok(n) } }
        })
        .await;
        assert_eq!((result.unwrap(), attempts), (3, 3));

        let mut calls = 0;
        let (result, attempts) = call_counted("create x", || {
            calls += 1;
            async { Err::<(), _>(api(422)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!((attempts, calls), (1, 1), "a 422 is not retried");

        let mut calls = 0;
        let (result, attempts) = call_counted("create x", || {
            calls += 1;
            async { Err::<(), _>(api(503)) }
        })
        .await;
        assert!(matches!(result, Err(kube::Error::Api(s)) if s.code == 503));
        assert_eq!(
            (attempts, calls),
            (API_BACKOFF.attempts, API_BACKOFF.attempts),
            "bounded"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_hangs_times_out_and_is_retried() {
        let mut calls = 0;
        let (result, attempts) = call_counted("get x", || {
            calls += 1;
            let n = calls;
            async move {
                if n == 1 {
                    std::future::pending::<()>().await;
                }
                Ok(n)
            }
        })
        .await;
        assert_eq!((result.unwrap(), attempts), (2, 2));
    }
}
