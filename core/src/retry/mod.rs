//! Retry policies in Curator's shapes, and a retry loop that waits for reconnection.
//!
//! A [`RetryPolicy`] answers two questions: may this error be retried at all
//! ([`RetryPolicy::allows`]), and after `attempt` failures, how long to sleep before the next try
//! ([`RetryPolicy::next_delay`]). The trait is synchronous and dyn-compatible, so an
//! `Arc<dyn RetryPolicy>` can live in a configuration and be shared by every task.
//!
//! The policies copy Curator's formulas: [`ExponentialBackoffRetry`],
//! [`BoundedExponentialBackoffRetry`], [`RetryNTimes`], [`RetryOneTime`], [`RetryUntilElapsed`],
//! [`RetryForever`] and [`SessionFailedRetryPolicy`]. [`BackoffPolicy`] lets any [`backon`]
//! backoff act as a policy.
//!
//! [`retry`] runs an operation under a policy. Connection-type errors (ConnectionLoss,
//! OperationTimeout, SessionMoved) first wait until the client is connected again, then sleep
//! the policy's delay; a blind sleep alone would burn retries while the client is offline.
//!
//! # Attempt numbering
//!
//! `attempt` is 1-based: `next_delay(1, _)` is asked after the first try failed. Curator's
//! `retryCount` is 0-based (its first retry sees `retryCount = 0`), so Curator's `retryCount` is
//! our `attempt - 1`. An `attempt` of 0 is treated as 1.
//!
//! # Layout
//!
//! `mod.rs` holds the [`RetryPolicy`] trait and the [`retry`] loop; `exponential.rs` the
//! jittered policies ([`ExponentialBackoffRetry`], [`BoundedExponentialBackoffRetry`]) and their
//! shared random generator; `policies.rs` the fixed-delay, time-bounded and wrapping policies.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use corral_proto::ErrorCode;

use crate::error::{Error, Result};

mod exponential;
mod policies;

pub use exponential::{BoundedExponentialBackoffRetry, ExponentialBackoffRetry, MAX_EXPONENTIAL_RETRIES};
pub use policies::{
    BackoffPolicy, RetryForever, RetryNTimes, RetryOneTime, RetryUntilElapsed, SessionFailedRetryPolicy,
};

/// Decides whether and when a failed operation is tried again.
///
/// Implementations are synchronous and shared (`Send + Sync`); the trait is dyn-compatible, so
/// `Arc<dyn RetryPolicy>` and `Box<dyn RetryPolicy>` are policies too. Policies that draw random
/// jitter keep their generator behind a [`Mutex`](std::sync::Mutex) and take a `with_seed` for reproducible tests.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use corral_core::{RetryNTimes, RetryPolicy};
///
/// let policy: Arc<dyn RetryPolicy> = Arc::new(RetryNTimes::new(2, Duration::from_millis(100)));
/// assert_eq!(policy.next_delay(1, Duration::ZERO), Some(Duration::from_millis(100)));
/// assert_eq!(policy.next_delay(2, Duration::ZERO), Some(Duration::from_millis(100)));
/// assert_eq!(policy.next_delay(3, Duration::ZERO), None);
/// ```
pub trait RetryPolicy: fmt::Debug + Send + Sync {
    /// The sleep before the next try, after `attempt` failed tries (1 = the first try failed)
    /// and `elapsed` since the first try started; `None` gives up.
    ///
    /// # Examples
    ///
    /// A policy of one's own: linear backoff, at most a minute in all.
    ///
    /// ```
    /// use std::time::Duration;
    /// use corral_core::RetryPolicy;
    ///
    /// #[derive(Debug)]
    /// struct Linear(Duration);
    ///
    /// impl RetryPolicy for Linear {
    ///     fn next_delay(&self, attempt: u32, elapsed: Duration) -> Option<Duration> {
    ///         (elapsed < Duration::from_secs(60)).then(|| self.0 * attempt.max(1))
    ///     }
    /// }
    ///
    /// let policy = Linear(Duration::from_millis(100));
    /// assert_eq!(policy.next_delay(3, Duration::from_secs(1)), Some(Duration::from_millis(300)));
    /// assert_eq!(policy.next_delay(4, Duration::from_secs(60)), None);
    /// ```
    fn next_delay(&self, attempt: u32, elapsed: Duration) -> Option<Duration>;

    /// Whether `error` may be retried at all.
    ///
    /// The default is [`Error::is_retryable`]: ConnectionLoss, OperationTimeout, SessionMoved
    /// and ThrottledOp. Unlike Curator's default, SessionExpired is never retried: the session
    /// (and its ephemerals and watches) is gone, and only the framework may open a new one.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use corral_core::{Error, ErrorCode, RetryForever, RetryPolicy};
    ///
    /// let policy = RetryForever::new(Duration::from_secs(1));
    /// assert!(policy.allows(&Error::ConnectionLoss));
    /// assert!(!policy.allows(&Error::SessionExpired));
    /// // A server verdict is final, whatever the delays say.
    /// assert!(!policy.allows(&Error::Server { code: ErrorCode::NodeExists, path: "/a".into() }));
    /// ```
    fn allows(&self, error: &Error) -> bool {
        error.is_retryable()
    }
}

impl<P: RetryPolicy + ?Sized> RetryPolicy for Arc<P> {
    fn next_delay(&self, attempt: u32, elapsed: Duration) -> Option<Duration> {
        (**self).next_delay(attempt, elapsed)
    }

    fn allows(&self, error: &Error) -> bool {
        (**self).allows(error)
    }
}

impl<P: RetryPolicy + ?Sized> RetryPolicy for Box<P> {
    fn next_delay(&self, attempt: u32, elapsed: Duration) -> Option<Duration> {
        (**self).next_delay(attempt, elapsed)
    }

    fn allows(&self, error: &Error) -> bool {
        (**self).allows(error)
    }
}

/// Whether a retry of `error` should first wait for the connection to come back.
fn is_connection_error(error: &Error) -> bool {
    matches!(error.code(), ErrorCode::ConnectionLoss | ErrorCode::OperationTimeout | ErrorCode::SessionMoved)
}

/// Runs `op` until it succeeds or `policy` gives up, waiting for reconnection between tries.
///
/// After the `attempt`-th failure with error `e`:
///
/// 1. if `!policy.allows(&e)`, or `policy.next_delay(attempt, elapsed)` is `None` (`elapsed`
///    measured from the start of the first try), returns `Err(e)`;
/// 2. if `e` is connection-type (code ConnectionLoss, OperationTimeout or SessionMoved — this
///    includes [`Error::Timeout`]), awaits `wait_for_connection()`, which should resolve once
///    the client is connected, bounded by the connection timeout, to `Ok(true)` if a new
///    connection was made since the failed try began and `Ok(false)` if the try's connection
///    is still the current one;
///    — after `Ok(true)`, `op` is called again at once: the reconnection was the wait, and
///    sleeping on top of it only delays recovery; after `Ok(false)` the policy's delay applies;
/// 3. otherwise sleeps the delay with [`tokio::time::sleep`] (so paused test time works), then
///    calls `op` again.
///
/// Other retryable errors (ThrottledOp, or whatever a custom `allows` accepts) only sleep.
/// Each retry is traced at debug level with the attempt, the delay and the error. To retry
/// without waiting for a connection, pass `|| std::future::ready(Ok(false))`.
///
/// # Errors
///
/// The last error of `op` when the policy gives up. If `wait_for_connection()` fails (for
/// example [`Error::SessionExpired`] or [`Error::Timeout`]), that error is returned at once. To
/// keep retrying after a timed-out wait instead (Curator's behaviour), let the wait return
/// `Ok(false)`: the next try then fails fast with ConnectionLoss and uses up a retry.
///
/// # Cancel safety
///
/// Dropping the returned future drops the try, wait or sleep in progress, and nothing is tried
/// again afterwards. The loop itself keeps no state worth losing, but a request that `op` had
/// already sent may still be applied by the server, exactly as after a ConnectionLoss; whether
/// that matters depends on `op` (use protected or idempotent operations where it does).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use corral_core::{Error, RetryNTimes, retry};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let policy = RetryNTimes::new(3, Duration::from_millis(100));
/// let mut tries = 0;
/// let value = retry(
///     &policy,
///     || {
///         tries += 1;
///         let result = if tries < 3 { Err(Error::ConnectionLoss) } else { Ok(tries) };
///         std::future::ready(result)
///     },
///     // The framework passes "wait until connected, bounded by the connection timeout; say
///     // whether that is a new connection".
///     || std::future::ready(Ok(false)),
/// )
/// .await?;
/// assert_eq!(value, 3);
/// # Ok::<(), Error>(()) }).unwrap();
/// ```
pub async fn retry<T, F, Fut, W, WFut>(policy: &dyn RetryPolicy, mut op: F, mut wait_for_connection: W) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
    W: FnMut() -> WFut,
    WFut: Future<Output = Result<bool>>,
{
    let start = tokio::time::Instant::now();
    let mut attempt: u32 = 0;
    loop {
        let error = match op().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        attempt = attempt.saturating_add(1);
        if !policy.allows(&error) {
            tracing::debug!(attempt, %error, "not retrying: error not retryable");
            return Err(error);
        }
        let Some(delay) = policy.next_delay(attempt, start.elapsed()) else {
            tracing::debug!(attempt, %error, "not retrying: retry policy gave up");
            return Err(error);
        };
        tracing::debug!(attempt, ?delay, %error, "retrying");
        metrics::counter!(crate::metrics::RETRIES_TOTAL).increment(1);
        if is_connection_error(&error) {
            match wait_for_connection().await {
                Err(wait_error) => {
                    tracing::debug!(attempt, %error, %wait_error, "not retrying: no connection");
                    return Err(wait_error);
                }
                // A new connection since the try began: that was the wait; retry at once rather
                // than sleeping on top of it. (The same connection: back off as the policy says.)
                Ok(true) => continue,
                Ok(false) => {}
            }
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors() {
        assert!(is_connection_error(&Error::ConnectionLoss));
        assert!(is_connection_error(&Error::Timeout));
        assert!(is_connection_error(&Error::server(ErrorCode::SessionMoved, "/a")));
        assert!(is_connection_error(&Error::server(ErrorCode::OperationTimeout, "/a")));
        assert!(!is_connection_error(&Error::server(ErrorCode::ThrottledOp, "/a")));
        assert!(!is_connection_error(&Error::SessionExpired));
    }
}
