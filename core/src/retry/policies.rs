//! Curator's fixed-delay and time-bounded policies, the session-failed wrapper, and any
//! [`backon`] backoff as a policy.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use corral_proto::ErrorCode;

use super::RetryPolicy;
use crate::error::Error;

/// Retries `n` times with a fixed sleep, Curator's `RetryNTimes`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use corral_core::{RetryNTimes, RetryPolicy};
///
/// let policy = RetryNTimes::new(3, Duration::from_secs(1));
/// let delays: Vec<_> = (1..=4).map(|a| policy.next_delay(a, Duration::ZERO)).collect();
/// let second = Some(Duration::from_secs(1));
/// assert_eq!(delays, [second, second, second, None]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryNTimes {
    n: u32,
    sleep: Duration,
}

impl RetryNTimes {
    /// A policy that retries `n` times, sleeping `sleep` before each retry.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use corral_core::{RetryNTimes, RetryPolicy};
    ///
    /// let never = RetryNTimes::new(0, Duration::from_secs(1));
    /// assert_eq!(never.next_delay(1, Duration::ZERO), None); // n = 0: no retry at all
    /// ```
    pub fn new(n: u32, sleep: Duration) -> Self {
        Self { n, sleep }
    }
}

impl RetryPolicy for RetryNTimes {
    fn next_delay(&self, attempt: u32, _elapsed: Duration) -> Option<Duration> {
        (attempt.max(1) <= self.n).then_some(self.sleep)
    }
}

/// Retries once, Curator's `RetryOneTime` (`RetryNTimes::new(1, sleep)`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use corral_core::{RetryOneTime, RetryPolicy};
///
/// let policy = RetryOneTime::new(Duration::from_millis(500));
/// assert_eq!(policy.next_delay(1, Duration::ZERO), Some(Duration::from_millis(500)));
/// assert_eq!(policy.next_delay(2, Duration::ZERO), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOneTime(RetryNTimes);

impl RetryOneTime {
    /// A policy that retries once after sleeping `sleep`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use corral_core::{RetryNTimes, RetryOneTime, RetryPolicy};
    ///
    /// let once = RetryOneTime::new(Duration::from_millis(50));
    /// let same = RetryNTimes::new(1, Duration::from_millis(50));
    /// assert!((1..=3).all(|a| once.next_delay(a, Duration::ZERO) == same.next_delay(a, Duration::ZERO)));
    /// ```
    pub fn new(sleep: Duration) -> Self {
        Self(RetryNTimes::new(1, sleep))
    }
}

impl RetryPolicy for RetryOneTime {
    fn next_delay(&self, attempt: u32, elapsed: Duration) -> Option<Duration> {
        self.0.next_delay(attempt, elapsed)
    }
}

/// Retries with a fixed sleep while less than `max_elapsed` has passed since the first try,
/// Curator's `RetryUntilElapsed`.
///
/// A retry is allowed when the failure is seen at `elapsed < max_elapsed`; the retry itself then
/// starts `sleep` later, possibly after `max_elapsed`.
///
/// Difference from Curator: Curator's version sleeps *before* checking the elapsed time, so the
/// failure that ends the loop still costs one useless sleep. This one gives up at once.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use corral_core::{RetryPolicy, RetryUntilElapsed};
///
/// let policy = RetryUntilElapsed::new(Duration::from_secs(10), Duration::from_secs(1));
/// assert_eq!(policy.next_delay(3, Duration::from_secs(9)), Some(Duration::from_secs(1)));
/// assert_eq!(policy.next_delay(4, Duration::from_secs(10)), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryUntilElapsed {
    max_elapsed: Duration,
    sleep: Duration,
}

impl RetryUntilElapsed {
    /// A policy that retries every `sleep` while less than `max_elapsed` has passed.
    ///
    /// Note the argument order, Curator's: the budget first, then the sleep.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use corral_core::{RetryPolicy, RetryUntilElapsed};
    ///
    /// let policy = RetryUntilElapsed::new(Duration::from_secs(30), Duration::from_millis(500));
    /// assert_eq!(policy.next_delay(100, Duration::from_secs(29)), Some(Duration::from_millis(500)));
    /// ```
    pub fn new(max_elapsed: Duration, sleep: Duration) -> Self {
        Self { max_elapsed, sleep }
    }
}

impl RetryPolicy for RetryUntilElapsed {
    fn next_delay(&self, _attempt: u32, elapsed: Duration) -> Option<Duration> {
        (elapsed < self.max_elapsed).then_some(self.sleep)
    }
}

/// Retries forever with a fixed interval and no jitter, Curator's `RetryForever`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use corral_core::{RetryForever, RetryPolicy};
///
/// let policy = RetryForever::new(Duration::from_millis(250));
/// assert_eq!(policy.next_delay(u32::MAX, Duration::MAX), Some(Duration::from_millis(250)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryForever {
    interval: Duration,
}

impl RetryForever {
    /// A policy that always retries after `interval`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use corral_core::{RetryForever, RetryPolicy};
    ///
    /// let policy = RetryForever::new(Duration::from_secs(1));
    /// assert_eq!(policy.next_delay(1, Duration::ZERO), policy.next_delay(1_000, Duration::from_secs(3600)));
    /// ```
    pub fn new(interval: Duration) -> Self {
        Self { interval }
    }
}

impl RetryPolicy for RetryForever {
    fn next_delay(&self, _attempt: u32, _elapsed: Duration) -> Option<Duration> {
        Some(self.interval)
    }
}

/// Refuses to retry a lost session, whatever the inner policy says; delegates everything else.
/// Curator's `SessionFailedRetryPolicy`.
///
/// The default [`RetryPolicy::allows`] already refuses SessionExpired, so this wrapper matters
/// when the inner policy's `allows` is more permissive (e.g. a custom policy that retries every
/// error): it guarantees that [`Error::SessionExpired`] and [`Error::Closed`] (whose code is
/// SessionExpired) end the retry loop.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use corral_core::{Error, RetryForever, RetryPolicy, SessionFailedRetryPolicy};
///
/// let policy = SessionFailedRetryPolicy::new(Arc::new(RetryForever::new(Duration::from_secs(1))));
/// assert!(policy.allows(&Error::ConnectionLoss));
/// assert!(!policy.allows(&Error::SessionExpired));
/// ```
#[derive(Debug, Clone)]
pub struct SessionFailedRetryPolicy {
    inner: Arc<dyn RetryPolicy>,
}

impl SessionFailedRetryPolicy {
    /// Wraps `inner`, refusing session expiry on top of what `inner` refuses.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use corral_core::{Error, RetryPolicy, SessionFailedRetryPolicy};
    ///
    /// /// Retries every error, even a lost session.
    /// #[derive(Debug)]
    /// struct Stubborn;
    ///
    /// impl RetryPolicy for Stubborn {
    ///     fn next_delay(&self, _: u32, _: Duration) -> Option<Duration> {
    ///         Some(Duration::from_millis(10))
    ///     }
    ///     fn allows(&self, _: &Error) -> bool {
    ///         true
    ///     }
    /// }
    ///
    /// let policy = SessionFailedRetryPolicy::new(Arc::new(Stubborn));
    /// assert!(!policy.allows(&Error::Closed));
    /// assert!(policy.allows(&Error::Timeout));
    /// ```
    pub fn new(inner: Arc<dyn RetryPolicy>) -> Self {
        Self { inner }
    }

    /// The wrapped policy.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use corral_core::{RetryOneTime, RetryPolicy, SessionFailedRetryPolicy};
    ///
    /// let policy = SessionFailedRetryPolicy::new(Arc::new(RetryOneTime::new(Duration::from_secs(1))));
    /// assert_eq!(policy.inner().next_delay(2, Duration::ZERO), None);
    /// ```
    pub fn inner(&self) -> &Arc<dyn RetryPolicy> {
        &self.inner
    }
}

impl RetryPolicy for SessionFailedRetryPolicy {
    fn next_delay(&self, attempt: u32, elapsed: Duration) -> Option<Duration> {
        self.inner.next_delay(attempt, elapsed)
    }

    fn allows(&self, error: &Error) -> bool {
        error.code() != ErrorCode::SessionExpired && self.inner.allows(error)
    }
}

/// Any [`backon`] backoff as a [`RetryPolicy`].
///
/// A backon backoff is a stateful iterator of delays, while a policy is shared and stateless. So
/// `next_delay(attempt, _)` builds a fresh backoff from a clone of the builder and takes its
/// `attempt`-th delay: the answers are exactly the backoff's sequence, concurrent retry loops
/// sharing the policy do not disturb one another, and `None` (the backoff's `max_times` or
/// `total_delay` reached) gives up. The cost is `O(attempt)` per call, negligible for retry
/// counts. `elapsed` is ignored; the default [`RetryPolicy::allows`] is used.
///
/// With an unseeded jitter each call draws fresh randomness; with
/// `with_jitter_seed` every call (and every loop) replays the same jittered sequence — good for
/// tests, bad for avoiding a herd.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use backon::ExponentialBuilder;
/// use corral_core::{BackoffPolicy, RetryPolicy};
///
/// let policy = BackoffPolicy::new(ExponentialBuilder::default().with_jitter().with_jitter_seed(1));
/// for attempt in 1..=3 {
///     // backon's default: 1 s, 2 s, 4 s, each plus up to 100 % jitter; 3 retries.
///     let delay = policy.next_delay(attempt, Duration::ZERO).unwrap();
///     let base = Duration::from_secs(1 << (attempt - 1));
///     assert!(delay >= base && delay <= 2 * base);
/// }
/// assert_eq!(policy.next_delay(4, Duration::ZERO), None);
/// ```
#[derive(Debug, Clone)]
pub struct BackoffPolicy<B> {
    builder: B,
}

impl<B> BackoffPolicy<B>
where
    B: backon::BackoffBuilder + Clone + fmt::Debug,
{
    /// Wraps a backon builder (or any `Clone` backoff iterator).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use backon::ConstantBuilder;
    /// use corral_core::{BackoffPolicy, RetryPolicy};
    ///
    /// let constant = ConstantBuilder::default().with_delay(Duration::from_millis(20)).with_max_times(2);
    /// let policy = BackoffPolicy::new(constant);
    /// assert_eq!(policy.next_delay(2, Duration::ZERO), Some(Duration::from_millis(20)));
    /// assert_eq!(policy.next_delay(3, Duration::ZERO), None);
    /// ```
    pub fn new(builder: B) -> Self {
        Self { builder }
    }

    /// The wrapped builder.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use backon::ExponentialBuilder;
    /// use corral_core::{BackoffPolicy, RetryPolicy};
    ///
    /// let policy = BackoffPolicy::new(ExponentialBuilder::default()); // 3 retries
    /// let longer = BackoffPolicy::new(policy.builder().clone().with_max_times(5));
    /// assert_eq!(policy.next_delay(5, Duration::ZERO), None);
    /// assert_eq!(longer.next_delay(5, Duration::ZERO), Some(Duration::from_secs(16)));
    /// ```
    pub fn builder(&self) -> &B {
        &self.builder
    }
}

impl<B> RetryPolicy for BackoffPolicy<B>
where
    B: backon::BackoffBuilder + Clone + fmt::Debug,
{
    fn next_delay(&self, attempt: u32, _elapsed: Duration) -> Option<Duration> {
        let index = usize::try_from(attempt.max(1) - 1).unwrap_or(usize::MAX);
        self.builder.clone().build().nth(index)
    }
}
