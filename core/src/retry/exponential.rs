//! Curator's jittered exponential policies, and the random generator they share.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::RetryPolicy;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_below_bound() {
        let jitter = Jitter::seeded(3);
        assert!((0..1000).all(|_| jitter.below(4) < 4));
        assert_eq!(Jitter::seeded(0).below(1), 0);
    }
}
