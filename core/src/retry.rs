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

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use corral_proto::ErrorCode;

use crate::error::{Error, Result};

/// The most retries [`ExponentialBackoffRetry`] allows, as in Curator (`1 << 30` would overflow
/// Java's `int`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use corral_core::{ExponentialBackoffRetry, MAX_EXPONENTIAL_RETRIES};
///
/// let policy = ExponentialBackoffRetry::new(Duration::from_millis(10), u32::MAX);
/// assert_eq!(policy.max_retries(), MAX_EXPONENTIAL_RETRIES);
/// ```
pub const MAX_EXPONENTIAL_RETRIES: u32 = 29;

/// Decides whether and when a failed operation is tried again.
///
/// Implementations are synchronous and shared (`Send + Sync`); the trait is dyn-compatible, so
/// `Arc<dyn RetryPolicy>` and `Box<dyn RetryPolicy>` are policies too. Policies that draw random
/// jitter keep their generator behind a [`Mutex`] and take a `with_seed` for reproducible tests.
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

/// A random generator shared by the tasks that use one policy.
struct Jitter(Mutex<fastrand::Rng>);

impl Jitter {
    fn new() -> Self {
        Self(Mutex::new(fastrand::Rng::new()))
    }

    fn seeded(seed: u64) -> Self {
        Self(Mutex::new(fastrand::Rng::with_seed(seed)))
    }

    /// Uniform in `[0, bound)`, like Java's `Random.nextInt(bound)`.
    fn below(&self, bound: u32) -> u32 {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).u32(..bound)
    }
}

impl fmt::Debug for Jitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Jitter")
    }
}

/// Exponential backoff with full jitter, Curator's `ExponentialBackoffRetry`.
///
/// After `attempt` failures (Curator's `retryCount = attempt - 1`) it sleeps
/// `base_sleep × max(1, r)` with `r` uniform in `[0, 2^attempt)` — Curator's
/// `base * max(1, random.nextInt(1 << (retryCount + 1)))` — so the first retry always sleeps
/// `base_sleep` and retry `k` sleeps a multiple of `base_sleep` in `[base_sleep,
/// base_sleep × (2^k − 1)]`. The sleep is capped at [`with_max_sleep`](Self::with_max_sleep)
/// (uncapped by default). It gives up after `max_retries` retries, which is clamped to
/// [`MAX_EXPONENTIAL_RETRIES`] (29) with a warning, as Curator does.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use corral_core::{ExponentialBackoffRetry, RetryPolicy};
///
/// let policy = ExponentialBackoffRetry::new(Duration::from_millis(100), 5).with_seed(7);
/// let delays: Vec<_> = (1..=6).map(|attempt| policy.next_delay(attempt, Duration::ZERO)).collect();
/// println!("{delays:?}");
/// assert_eq!(delays[0], Some(Duration::from_millis(100)));
/// assert!(delays[..5].iter().all(|d| d.is_some()));
/// assert_eq!(delays[5], None);
/// ```
#[derive(Debug)]
pub struct ExponentialBackoffRetry {
    base_sleep: Duration,
    max_retries: u32,
    max_sleep: Option<Duration>,
    jitter: Jitter,
}

impl ExponentialBackoffRetry {
    /// A policy sleeping about `base_sleep × 2^attempt` (full jitter) for at most `max_retries`
    /// retries; `max_retries` above 29 is clamped to 29 and logged as a warning.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use corral_core::ExponentialBackoffRetry;
    ///
    /// let policy = ExponentialBackoffRetry::new(Duration::from_secs(1), 100);
    /// assert_eq!(policy.max_retries(), 29);
    /// assert_eq!(policy.base_sleep(), Duration::from_secs(1));
    /// ```
    pub fn new(base_sleep: Duration, max_retries: u32) -> Self {
        let clamped = max_retries.min(MAX_EXPONENTIAL_RETRIES);
        if clamped != max_retries {
            tracing::warn!(max_retries, clamped, "ExponentialBackoffRetry: max_retries too large, clamped");
        }
        Self { base_sleep, max_retries: clamped, max_sleep: None, jitter: Jitter::new() }
    }

    /// Caps every sleep at `max_sleep` (Curator's `maxSleepMs`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use corral_core::{ExponentialBackoffRetry, RetryPolicy};
    ///
    /// let policy = ExponentialBackoffRetry::new(Duration::from_secs(1), 29).with_max_sleep(Duration::from_secs(30));
    /// assert_eq!(policy.max_sleep(), Some(Duration::from_secs(30)));
    /// assert!((1..=29).all(|a| policy.next_delay(a, Duration::ZERO) <= Some(Duration::from_secs(30))));
    /// ```
    pub fn with_max_sleep(mut self, max_sleep: Duration) -> Self {
        self.max_sleep = Some(max_sleep);
        self
    }

    /// Draws the jitter from a generator seeded with `seed`, for reproducible delays. Do not
    /// seed in production: clients with one seed retry in lockstep.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use corral_core::{ExponentialBackoffRetry, RetryPolicy};
    ///
    /// let delays = |policy: ExponentialBackoffRetry| -> Vec<_> {
    ///     (1..=5).map(|a| policy.next_delay(a, Duration::ZERO)).collect()
    /// };
    /// let base = Duration::from_millis(100);
    /// assert_eq!(
    ///     delays(ExponentialBackoffRetry::new(base, 5).with_seed(42)),
    ///     delays(ExponentialBackoffRetry::new(base, 5).with_seed(42)),
    /// );
    /// ```
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.jitter = Jitter::seeded(seed);
        self
    }

    /// The base sleep: the first retry's sleep, and the unit of every later one.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use corral_core::{ExponentialBackoffRetry, RetryPolicy};
    ///
    /// let policy = ExponentialBackoffRetry::new(Duration::from_millis(250), 3);
    /// assert_eq!(policy.base_sleep(), Duration::from_millis(250));
    /// assert_eq!(policy.next_delay(1, Duration::ZERO), Some(policy.base_sleep()));
    /// ```
    pub fn base_sleep(&self) -> Duration {
        self.base_sleep
    }

    /// The number of retries allowed, after clamping.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use corral_core::{ExponentialBackoffRetry, RetryPolicy};
    ///
    /// let policy = ExponentialBackoffRetry::new(Duration::from_millis(100), 3);
    /// assert_eq!(policy.max_retries(), 3);
    /// assert_eq!(policy.next_delay(policy.max_retries() + 1, Duration::ZERO), None);
    /// ```
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// The cap on each sleep, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use corral_core::ExponentialBackoffRetry;
    ///
    /// let policy = ExponentialBackoffRetry::new(Duration::from_millis(100), 3);
    /// assert_eq!(policy.max_sleep(), None); // uncapped by default
    /// assert_eq!(policy.with_max_sleep(Duration::from_secs(1)).max_sleep(), Some(Duration::from_secs(1)));
    /// ```
    pub fn max_sleep(&self) -> Option<Duration> {
        self.max_sleep
    }
}

impl RetryPolicy for ExponentialBackoffRetry {
    fn next_delay(&self, attempt: u32, _elapsed: Duration) -> Option<Duration> {
        let attempt = attempt.max(1);
        if attempt > self.max_retries {
            return None;
        }
        // attempt ≤ 29, so the bound fits: 1 << (retryCount + 1) with retryCount = attempt - 1.
        let factor = self.jitter.below(1 << attempt).max(1);
        let sleep = self.base_sleep.saturating_mul(factor);
        match self.max_sleep {
            Some(max) if sleep > max => {
                tracing::debug!(?sleep, ?max, "retry sleep capped at max_sleep");
                Some(max)
            }
            _ => Some(sleep),
        }
    }
}

/// [`ExponentialBackoffRetry`] with a mandatory cap on each sleep, Curator's
/// `BoundedExponentialBackoffRetry`: `min(max_sleep, exponential)`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use corral_core::{BoundedExponentialBackoffRetry, RetryPolicy};
///
/// let policy = BoundedExponentialBackoffRetry::new(Duration::from_millis(100), Duration::from_millis(250), 10);
/// for attempt in 1..=10 {
///     let delay = policy.next_delay(attempt, Duration::ZERO).unwrap();
///     assert!(delay >= Duration::from_millis(100) && delay <= Duration::from_millis(250));
/// }
/// assert_eq!(policy.next_delay(11, Duration::ZERO), None);
/// ```
#[derive(Debug)]
pub struct BoundedExponentialBackoffRetry(ExponentialBackoffRetry);

impl BoundedExponentialBackoffRetry {
    /// A policy like [`ExponentialBackoffRetry::new`]`(base_sleep, max_retries)` whose sleeps
    /// never exceed `max_sleep`.
    ///
    /// Note the argument order, Curator's: base sleep, cap, retries.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use corral_core::{BoundedExponentialBackoffRetry, RetryPolicy};
    ///
    /// let policy = BoundedExponentialBackoffRetry::new(Duration::from_secs(1), Duration::from_secs(1), 29);
    /// // Capped at the base: a constant 1 s for 29 retries.
    /// assert!((1..=29).all(|a| policy.next_delay(a, Duration::ZERO) == Some(Duration::from_secs(1))));
    /// ```
    pub fn new(base_sleep: Duration, max_sleep: Duration, max_retries: u32) -> Self {
        Self(ExponentialBackoffRetry::new(base_sleep, max_retries).with_max_sleep(max_sleep))
    }

    /// Draws the jitter from a generator seeded with `seed`, for reproducible delays. Do not
    /// seed in production: clients with one seed retry in lockstep.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use corral_core::{BoundedExponentialBackoffRetry, RetryPolicy};
    ///
    /// let delays = |seed| -> Vec<_> {
    ///     let policy = BoundedExponentialBackoffRetry::new(Duration::from_millis(10), Duration::from_secs(1), 8);
    ///     let policy = policy.with_seed(seed);
    ///     (1..=8).map(|attempt| policy.next_delay(attempt, Duration::ZERO)).collect()
    /// };
    /// assert_eq!(delays(3), delays(3));
    /// ```
    pub fn with_seed(self, seed: u64) -> Self {
        Self(self.0.with_seed(seed))
    }

    /// The cap on each sleep.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use corral_core::BoundedExponentialBackoffRetry;
    ///
    /// let policy = BoundedExponentialBackoffRetry::new(Duration::from_millis(100), Duration::from_secs(5), 10);
    /// assert_eq!(policy.max_sleep(), Duration::from_secs(5));
    /// ```
    pub fn max_sleep(&self) -> Duration {
        self.0.max_sleep.unwrap_or(Duration::MAX)
    }
}

impl RetryPolicy for BoundedExponentialBackoffRetry {
    fn next_delay(&self, attempt: u32, elapsed: Duration) -> Option<Duration> {
        self.0.next_delay(attempt, elapsed)
    }
}

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

    #[test]
    fn jitter_is_below_bound() {
        let jitter = Jitter::seeded(3);
        assert!((0..1000).all(|_| jitter.below(4) < 4));
        assert_eq!(Jitter::seeded(0).below(1), 0);
    }
}
