//! [`DistributedAtomicLong`]: a 64-bit counter changed by compare-and-set on its node's version
//! (Curator's `DistributedAtomicLong`, with `AtomicValue`, `AtomicStats` and `PromotedToLock`).
//!
//! # How it works
//!
//! The value is an 8-byte big-endian signed integer in one persistent node (a missing or empty
//! node reads as 0), Curator's encoding, so a Java process using Curator's
//! `DistributedAtomicLong` on the same path changes the same counter. An update reads the node,
//! computes the new value and writes it at the version it read (or creates the node, missing
//! parents as containers). If someone else wrote first, the update tries again as the retry
//! policy allows (Curator's optimistic mode). Optionally ([`PromotedToLock`]), once the
//! optimistic tries run out, it takes a [`Mutex`] and tries again while holding it, so that
//! updaters that all use the lock stop racing.
//!
//! Every update returns an [`AtomicValue`]: whether it succeeded, the value before and after,
//! and how many tries it took. **Check [`AtomicValue::succeeded`]**: an update that lost every
//! race is not an error.
//!
//! # Connection states
//!
//! There is no background task, so nothing happens on SUSPENDED, RECONNECTED or LOST; reads are
//! retried under the framework's retry policy (waiting for the connection). A write is sent
//! once: if the connection drops before its answer, the update fails with the connection error
//! — unlike Curator, which retries the write and so may apply an increment twice, or count
//! another writer's equal value as its own. After such an error the value may or may not have
//! changed; [`DistributedAtomicLong::get`] tells.

use std::sync::Arc;
use std::time::Duration;

use crate::{Error, Result};
use bytes::Bytes;
use corral_core::Error as CoreError;
use corral_core::{CreateMode, ErrorCode, Framework, RetryNTimes, RetryPolicy, Stat};
use tokio::time::Instant;

use crate::lock::Mutex;

/// How an update went (Curator's `AtomicStats`).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use std::time::Duration;
/// use corral_recipes::{RetryNTimes, atomic::DistributedAtomicLong};
///
/// let counter = DistributedAtomicLong::new(&fw, "/counters/hits", RetryNTimes::new(3, Duration::from_millis(10)));
/// let result = counter.increment().await?;
/// assert_eq!((result.stats.optimistic_tries, result.stats.promoted_lock_tries), (1, 0));
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AtomicStats {
    /// Optimistic tries made (reads followed by a versioned write).
    pub optimistic_tries: u32,
    /// Tries made while holding the promoted lock.
    pub promoted_lock_tries: u32,
    /// Time spent in optimistic tries, retry pauses included.
    pub optimistic_time: Duration,
    /// Time spent taking the promoted lock and trying under it.
    pub promoted_time: Duration,
}

/// The result of an operation on a [`DistributedAtomicLong`] (Curator's `AtomicValue`).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use std::time::Duration;
/// use corral_recipes::{RetryNTimes, atomic::DistributedAtomicLong};
///
/// let counter = DistributedAtomicLong::new(&fw, "/counters/hits", RetryNTimes::new(3, Duration::from_millis(10)));
/// let result = counter.add(10).await?;
/// assert!(result.succeeded);
/// assert_eq!((result.pre_value, result.post_value), (0, 10));
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtomicValue<T> {
    /// Whether the operation was applied. `false` when every try lost a race (or, for
    /// [`DistributedAtomicLong::compare_and_set`], the value was not the expected one).
    pub succeeded: bool,
    /// The value before the operation (the last one read).
    pub pre_value: T,
    /// The value after the operation; equal to `pre_value` when it did not succeed.
    pub post_value: T,
    /// How the operation went.
    pub stats: AtomicStats,
}

/// Promotion to a lock when optimistic tries run out (Curator's `PromotedToLock`).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use std::time::Duration;
/// use corral_recipes::RetryNTimes;
/// use corral_recipes::atomic::{DistributedAtomicLong, PromotedToLock};
///
/// let promotion = PromotedToLock::new("/counters/hits-lock")
///     .max_lock_time(Duration::from_secs(5))
///     .retry_policy(RetryNTimes::new(3, Duration::from_millis(10)));
/// let counter = DistributedAtomicLong::new(&fw, "/counters/hits", RetryNTimes::new(0, Duration::ZERO))
///     .promoted_to_lock(promotion);
/// assert!(counter.increment().await?.succeeded);
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PromotedToLock {
    lock_path: String,
    max_lock_time: Option<Duration>,
    retry: Arc<dyn RetryPolicy>,
}

impl PromotedToLock {
    /// Promotion to a [`Mutex`] on `lock_path`, waited for without limit, with one try under
    /// the lock (Curator's defaults: no timeout, `RetryNTimes(0, 0)`).
    ///
    /// # Examples
    ///
    /// See [`PromotedToLock`].
    pub fn new(lock_path: impl Into<String>) -> Self {
        Self { lock_path: lock_path.into(), max_lock_time: None, retry: Arc::new(RetryNTimes::new(0, Duration::ZERO)) }
    }

    /// Waits at most `timeout` for the lock; the update fails (not succeeded) if it is not had.
    ///
    /// # Examples
    ///
    /// See [`PromotedToLock`].
    pub fn max_lock_time(mut self, timeout: Duration) -> Self {
        self.max_lock_time = Some(timeout);
        self
    }

    /// The retry policy for tries under the lock.
    ///
    /// # Examples
    ///
    /// See [`PromotedToLock`].
    pub fn retry_policy(mut self, policy: impl RetryPolicy + 'static) -> Self {
        self.retry = Arc::new(policy);
        self
    }
}

/// A distributed 64-bit counter (Curator's `DistributedAtomicLong`). Cheap to clone.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::time::Duration;
/// use corral_recipes::{Framework, RetryNTimes, atomic::DistributedAtomicLong};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let counter = DistributedAtomicLong::new(&fw, "/counters/hits", RetryNTimes::new(10, Duration::from_millis(10)));
/// let result = counter.increment().await?;
/// assert!(result.succeeded, "every try lost a race");
/// assert_eq!(result.post_value, 1);
/// assert_eq!(&fw.client().get_data("/counters/hits").await?.0[..], 1i64.to_be_bytes());
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DistributedAtomicLong {
    fw: Framework,
    path: String,
    retry: Arc<dyn RetryPolicy>,
    promoted: Option<PromotedToLock>,
}

/// What a read found: the value and the node's stat (`None`: no node, which reads as 0).
struct Current {
    value: i64,
    stat: Option<Stat>,
}

/// Curator's encoding: 8 bytes, big-endian.
fn encode(value: i64) -> Bytes {
    Bytes::copy_from_slice(&value.to_be_bytes())
}

/// Curator's decoding: no data is 0; otherwise the first 8 bytes (fewer is an error, as
/// Java's `ByteBuffer.getLong` throws).
fn decode(path: &str, data: &[u8]) -> Result<i64> {
    if data.is_empty() {
        return Ok(0);
    }
    match data.get(..8) {
        Some(b) => Ok(i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])),
        None => Err(Error::corrupt(path, format!("{} bytes, not an 8-byte long", data.len()))),
    }
}

/// Whether a write lost a race (someone else created, wrote or deleted the node first).
fn lost_race(e: &CoreError) -> bool {
    matches!(e.code(), ErrorCode::BadVersion | ErrorCode::NodeExists | ErrorCode::NoNode)
}

impl DistributedAtomicLong {
    /// A counter at `path`, whose optimistic tries are retried under `retry` (Curator's
    /// `RetryNTimes(n, sleep)` makes `n + 1` tries). Nothing is sent yet.
    ///
    /// # Examples
    ///
    /// See [`DistributedAtomicLong`].
    pub fn new(fw: &Framework, path: impl Into<String>, retry: impl RetryPolicy + 'static) -> Self {
        Self { fw: fw.clone(), path: path.into(), retry: Arc::new(retry), promoted: None }
    }

    /// Promotes updates to a lock once the optimistic tries run out.
    ///
    /// # Examples
    ///
    /// See [`PromotedToLock`].
    pub fn promoted_to_lock(mut self, promotion: PromotedToLock) -> Self {
        self.promoted = Some(promotion);
        self
    }

    /// The counter's path.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::{RetryOneTime, atomic::DistributedAtomicLong};
    ///
    /// let counter = DistributedAtomicLong::new(&fw, "/counters/hits", RetryOneTime::new(Default::default()));
    /// assert_eq!(counter.path(), "/counters/hits");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &str {
        &self.path
    }

    async fn read(&self) -> Result<Current> {
        let path = self.path.clone();
        let found = self
            .fw
            .with_retry(move |client| {
                let path = path.clone();
                async move {
                    match client.get_data(&path).await {
                        Ok(found) => Ok(Some(found)),
                        Err(e) if e.is_no_node() => Ok(None),
                        Err(e) => Err(e),
                    }
                }
            })
            .await?;
        match found {
            Some((data, stat)) => Ok(Current { value: decode(&self.path, &data)?, stat: Some(stat) }),
            None => Ok(Current { value: 0, stat: None }),
        }
    }

    /// Creates the node with `data`, in one try (missing parents first, as containers).
    async fn create_once(&self, data: Bytes) -> Result<()> {
        // The framework's ACL provider chooses the node's ACL, as for every recipe node.
        let options = corral_core::CreateOptions::new(CreateMode::Persistent)
            .with_acl(self.fw.acl_provider().acl_for_path(&self.path));
        match self.fw.client().create(&self.path, data.clone(), options.clone()).await {
            Err(e) if e.is_no_node() => {
                if let Some(parent) = corral_core::proto::path::parent(&self.path) {
                    self.fw.ensure_container_path(parent).await?;
                }
                self.fw.client().create(&self.path, data, options).await.map(|_| ()).map_err(Error::from)
            }
            other => other.map(|_| ()).map_err(Error::from),
        }
    }

    /// One optimistic try: `(pre, Some(post))` if written, `(pre, None)` if it lost a race.
    async fn try_once(&self, make: &(dyn Fn(i64) -> i64 + Sync)) -> Result<(i64, Option<i64>)> {
        let current = self.read().await?;
        let post = make(current.value);
        let written = match current.stat {
            None => self.create_once(encode(post)).await,
            Some(stat) => self
                .fw
                .client()
                .set_data(&self.path, encode(post), Some(stat.version))
                .await
                .map(|_| ())
                .map_err(Error::from),
        };
        match written {
            Ok(()) => Ok((current.value, Some(post))),
            Err(e) if e.core().is_some_and(lost_race) => Ok((current.value, None)),
            Err(e) => Err(e),
        }
    }

    /// Tries under `policy` until written or the policy gives up; counts the tries.
    async fn tries(
        &self,
        policy: &dyn RetryPolicy,
        make: &(dyn Fn(i64) -> i64 + Sync),
        count: &mut u32,
    ) -> Result<(i64, Option<i64>)> {
        let start = Instant::now();
        let mut failures = 0u32;
        loop {
            *count += 1;
            let (pre, post) = self.try_once(make).await?;
            if post.is_some() {
                return Ok((pre, post));
            }
            failures += 1;
            match policy.next_delay(failures, start.elapsed()) {
                Some(delay) => tokio::time::sleep(delay).await,
                None => return Ok((pre, None)),
            }
        }
    }

    /// Curator's `trySet`: optimistic tries, then (if configured) tries under the lock.
    async fn update(&self, make: &(dyn Fn(i64) -> i64 + Sync)) -> Result<AtomicValue<i64>> {
        let mut stats = AtomicStats::default();
        let start = Instant::now();
        let (mut pre, mut post) = self.tries(&*self.retry, make, &mut stats.optimistic_tries).await?;
        stats.optimistic_time = start.elapsed();
        if let (None, Some(promotion)) = (post, &self.promoted) {
            let start = Instant::now();
            let data = crate::default_data::local_address().await;
            let mutex = Mutex::new(&self.fw, promotion.lock_path.clone()).with_data(data);
            let guard = match promotion.max_lock_time {
                Some(timeout) => crate::within(mutex.acquire_timeout(timeout).await)?,
                None => Some(mutex.acquire().await?),
            };
            if let Some(guard) = guard {
                let under_lock = self.tries(&*promotion.retry, make, &mut stats.promoted_lock_tries).await;
                if let Err(e) = guard.release().await {
                    tracing::debug!(path = %promotion.lock_path, error = %e, "promoted lock release continues in the background");
                }
                (pre, post) = under_lock?;
            } else {
                tracing::debug!(path = %promotion.lock_path, "promoted lock not had in time");
            }
            stats.promoted_time = start.elapsed();
        }
        Ok(AtomicValue { succeeded: post.is_some(), pre_value: pre, post_value: post.unwrap_or(pre), stats })
    }

    /// Reads the counter: `pre_value == post_value`, always succeeded; 0 if the node does not
    /// exist.
    ///
    /// # Errors
    ///
    /// Connection errors once the retry policy gives up; [`corral_core::Error::BadArguments`] if the node
    /// holds 1 to 7 bytes; server errors such as NoAuth as [`corral_core::Error::Server`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::{RetryNTimes, atomic::DistributedAtomicLong};
    ///
    /// let counter = DistributedAtomicLong::new(&fw, "/counters/hits", RetryNTimes::new(3, Duration::from_millis(10)));
    /// assert_eq!(counter.get().await?.post_value, 0); // no node yet
    /// counter.add(5).await?;
    /// assert_eq!(counter.get().await?.post_value, 5);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn get(&self) -> Result<AtomicValue<i64>> {
        let current = self.read().await?;
        Ok(AtomicValue {
            succeeded: true,
            pre_value: current.value,
            post_value: current.value,
            stats: AtomicStats::default(),
        })
    }

    /// Adds 1 (wrapping on overflow, as Java's `long`).
    ///
    /// # Errors
    ///
    /// As [`DistributedAtomicLong::add`].
    ///
    /// # Cancel safety
    ///
    /// As [`DistributedAtomicLong::add`].
    ///
    /// # Examples
    ///
    /// See [`DistributedAtomicLong`].
    pub async fn increment(&self) -> Result<AtomicValue<i64>> {
        self.add(1).await
    }

    /// Subtracts 1 (wrapping on overflow).
    ///
    /// # Errors
    ///
    /// As [`DistributedAtomicLong::add`].
    ///
    /// # Cancel safety
    ///
    /// As [`DistributedAtomicLong::add`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::{RetryNTimes, atomic::DistributedAtomicLong};
    ///
    /// let counter = DistributedAtomicLong::new(&fw, "/counters/hits", RetryNTimes::new(3, Duration::from_millis(10)));
    /// assert_eq!(counter.decrement().await?.post_value, -1);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn decrement(&self) -> Result<AtomicValue<i64>> {
        self.add(-1).await
    }

    /// Adds `delta` (wrapping on overflow): optimistic tries under the retry policy, then tries
    /// under the promoted lock if configured and needed.
    ///
    /// # Errors
    ///
    /// Connection errors (reads once the retry policy gives up; a write at once, see the module
    /// docs: the value may or may not have changed); [`corral_core::Error::BadArguments`] if the node holds
    /// 1 to 7 bytes; [`corral_core::Error::SessionExpired`] if the session is lost while waiting for the
    /// promoted lock; server errors such as NoAuth as [`corral_core::Error::Server`]. Losing every race is
    /// not an error: see [`AtomicValue::succeeded`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a write may have been applied when the future is dropped. A promoted
    /// lock being waited for or held is released in the background.
    ///
    /// # Examples
    ///
    /// See [`AtomicValue`].
    pub async fn add(&self, delta: i64) -> Result<AtomicValue<i64>> {
        self.update(&move |v: i64| v.wrapping_add(delta)).await
    }

    /// Subtracts `delta` (wrapping on overflow).
    ///
    /// # Errors
    ///
    /// As [`DistributedAtomicLong::add`].
    ///
    /// # Cancel safety
    ///
    /// As [`DistributedAtomicLong::add`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::{RetryNTimes, atomic::DistributedAtomicLong};
    ///
    /// let counter = DistributedAtomicLong::new(&fw, "/counters/hits", RetryNTimes::new(3, Duration::from_millis(10)));
    /// counter.force_set(10).await?;
    /// assert_eq!(counter.subtract(4).await?.post_value, 6);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn subtract(&self, delta: i64) -> Result<AtomicValue<i64>> {
        self.update(&move |v: i64| v.wrapping_sub(delta)).await
    }

    /// Sets the value to `value`, whatever it is, with the same tries as an update (Curator's
    /// `trySet`).
    ///
    /// # Errors
    ///
    /// As [`DistributedAtomicLong::add`].
    ///
    /// # Cancel safety
    ///
    /// As [`DistributedAtomicLong::add`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::{RetryNTimes, atomic::DistributedAtomicLong};
    ///
    /// let counter = DistributedAtomicLong::new(&fw, "/counters/hits", RetryNTimes::new(3, Duration::from_millis(10)));
    /// let result = counter.try_set(7).await?;
    /// assert_eq!((result.succeeded, result.pre_value, result.post_value), (true, 0, 7));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn try_set(&self, value: i64) -> Result<AtomicValue<i64>> {
        self.update(&move |_| value).await
    }

    /// Sets the value to `new` only if it is `expected` now, in one try (no retry, no lock, and
    /// a missing node is not created — as Curator's `compareAndSet`).
    ///
    /// # Errors
    ///
    /// As [`DistributedAtomicLong::add`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the write may have been applied when the future is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::{RetryNTimes, atomic::DistributedAtomicLong};
    ///
    /// let counter = DistributedAtomicLong::new(&fw, "/counters/hits", RetryNTimes::new(3, Duration::from_millis(10)));
    /// counter.force_set(3).await?;
    /// assert!(!counter.compare_and_set(2, 10).await?.succeeded);
    /// let result = counter.compare_and_set(3, 10).await?;
    /// assert_eq!((result.succeeded, result.pre_value, result.post_value), (true, 3, 10));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn compare_and_set(&self, expected: i64, new: i64) -> Result<AtomicValue<i64>> {
        let current = self.read().await?;
        let stats = AtomicStats { optimistic_tries: 1, ..AtomicStats::default() };
        let failed = AtomicValue { succeeded: false, pre_value: current.value, post_value: current.value, stats };
        let Some(stat) = current.stat else { return Ok(failed) };
        if current.value != expected {
            return Ok(failed);
        }
        match self.fw.client().set_data(&self.path, encode(new), Some(stat.version)).await {
            Ok(_) => Ok(AtomicValue { succeeded: true, post_value: new, ..failed }),
            Err(e) if lost_race(&e) => Ok(failed),
            Err(e) => Err(Error::from(e)),
        }
    }

    /// Creates the counter with `value` if it does not exist yet (Curator's `initialize`):
    /// `Ok(true)` if this call created it, `Ok(false)` if it existed.
    ///
    /// # Errors
    ///
    /// Connection errors: the create is sent once, and after a connection error the node may or
    /// may not have been created; server errors such as NoAuth as [`corral_core::Error::Server`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the node may have been created when the future is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::{RetryNTimes, atomic::DistributedAtomicLong};
    ///
    /// let counter = DistributedAtomicLong::new(&fw, "/counters/hits", RetryNTimes::new(3, Duration::from_millis(10)));
    /// assert!(counter.try_initialize(100).await?);
    /// assert!(!counter.try_initialize(5).await?);
    /// assert_eq!(counter.get().await?.post_value, 100);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn try_initialize(&self, value: i64) -> Result<bool> {
        self.fw.connected().await?;
        match self.create_once(encode(value)).await {
            Ok(()) => Ok(true),
            Err(e) if e.code() == ErrorCode::NodeExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sets the value to `value` unconditionally, creating the node if needed (Curator's
    /// `forceSet`).
    ///
    /// # Errors
    ///
    /// Connection errors once the retry policy gives up; server errors such as NoAuth as
    /// [`corral_core::Error::Server`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the value may have been written when the future is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::{RetryNTimes, atomic::DistributedAtomicLong};
    ///
    /// let counter = DistributedAtomicLong::new(&fw, "/counters/hits", RetryNTimes::new(3, Duration::from_millis(10)));
    /// counter.force_set(i64::MAX).await?;
    /// assert_eq!(counter.increment().await?.post_value, i64::MIN); // wraps, as Java's long
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn force_set(&self, value: i64) -> Result<()> {
        // Unconditional writes are safe to retry: the last write wins either way.
        loop {
            match self.fw.set_data(&self.path, encode(value), None).await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_no_node() => {}
                Err(e) => return Err(Error::from(e)),
            }
            let spec = corral_core::framework::Create::new(CreateMode::Persistent).container_parents();
            match self.fw.create(&self.path, encode(value), spec).await {
                Ok(_) => return Ok(()),
                // Created meanwhile by someone else: set it again.
                Err(e) if e.is_node_exists() => {}
                Err(e) => return Err(Error::from(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longs_are_curators_bytes() {
        assert_eq!(&encode(1)[..], [0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(&encode(-2)[..], [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]);
        assert_eq!(decode("/a", &[]), Ok(0));
        assert_eq!(decode("/a", &[0, 0, 0, 0, 0, 0, 1, 0, 9]), Ok(256), "extra bytes ignored");
        assert!(matches!(decode("/a", &[0, 0, 1]), Err(Error::CorruptData { .. })));
    }
}
