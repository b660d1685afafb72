//! Values changed by compare-and-set on their node's version: [`DistributedAtomicLong`],
//! [`DistributedAtomicInteger`] and [`DistributedAtomicValue`] (Curator's, with `AtomicValue`,
//! `AtomicStats` and `PromotedToLock`).
//!
//! # How it works
//!
//! The value is in one persistent node, in Curator's encoding, so a Java process using
//! Curator's recipe of the same name on the same path changes the same value:
//!
//! | type | node data | a missing or empty node reads as |
//! |---|---|---|
//! | [`DistributedAtomicLong`] | 8-byte big-endian signed integer | 0 |
//! | [`DistributedAtomicInteger`] | 4-byte big-endian signed integer | 0 |
//! | [`DistributedAtomicValue`] | the bytes themselves | empty |
//!
//! The three share one engine; only the encoding differs. An update reads the node,
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

mod numeric;
mod value;

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::{Error, Result};
use bytes::Bytes;
use corral_core::Error as CoreError;
use corral_core::{CreateMode, ErrorCode, Framework, RetryNTimes, RetryPolicy, Stat};
use tokio::time::Instant;

use crate::lock::Mutex;

pub use numeric::{DistributedAtomicInteger, DistributedAtomicLong};
pub use value::DistributedAtomicValue;

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

/// The result of an operation on a [`DistributedAtomicLong`], [`DistributedAtomicInteger`] or
/// [`DistributedAtomicValue`] (Curator's `AtomicValue`).
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
    /// `compare_and_set`, the value was not the expected one).
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

/// How a value is kept in its node: Curator's encoding of one of the atomic types.
trait Codec: std::fmt::Debug + Send + Sync + 'static {
    type Value: Clone + PartialEq + Send + Sync + 'static;

    fn encode(value: &Self::Value) -> Bytes;

    /// The value `data` holds; empty data (and a missing node) is the type's zero.
    fn decode(path: &str, data: &[u8]) -> Result<Self::Value>;
}

/// The one engine of the atomic types: reads, optimistic versioned writes, promotion to a lock.
#[derive(Debug)]
struct Engine<C: Codec> {
    fw: Framework,
    path: String,
    retry: Arc<dyn RetryPolicy>,
    promoted: Option<PromotedToLock>,
    codec: PhantomData<fn() -> C>,
}

impl<C: Codec> Clone for Engine<C> {
    fn clone(&self) -> Self {
        Self {
            fw: self.fw.clone(),
            path: self.path.clone(),
            retry: self.retry.clone(),
            promoted: self.promoted.clone(),
            codec: PhantomData,
        }
    }
}

/// What a read found: the value and the node's stat (`None`: no node, which reads as zero).
struct Current<V> {
    value: V,
    stat: Option<Stat>,
}

/// Whether a write lost a race (someone else created, wrote or deleted the node first).
fn lost_race(e: &CoreError) -> bool {
    matches!(e.code(), ErrorCode::BadVersion | ErrorCode::NodeExists | ErrorCode::NoNode)
}

/// A new value from the current one.
type Make<'a, V> = &'a (dyn Fn(&V) -> V + Sync);

impl<C: Codec> Engine<C> {
    fn new(fw: &Framework, path: String, retry: Arc<dyn RetryPolicy>) -> Self {
        Self { fw: fw.clone(), path, retry, promoted: None, codec: PhantomData }
    }

    async fn read(&self) -> Result<Current<C::Value>> {
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
            Some((data, stat)) => Ok(Current { value: C::decode(&self.path, &data)?, stat: Some(stat) }),
            None => Ok(Current { value: C::decode(&self.path, &[])?, stat: None }),
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
    async fn try_once(&self, make: Make<'_, C::Value>) -> Result<(C::Value, Option<C::Value>)> {
        let current = self.read().await?;
        let post = make(&current.value);
        let written = match current.stat {
            None => self.create_once(C::encode(&post)).await,
            Some(stat) => self
                .fw
                .client()
                .set_data(&self.path, C::encode(&post), Some(stat.version))
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
        make: Make<'_, C::Value>,
        count: &mut u32,
    ) -> Result<(C::Value, Option<C::Value>)> {
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
    async fn update(&self, make: Make<'_, C::Value>) -> Result<AtomicValue<C::Value>> {
        let mut stats = AtomicStats::default();
        let start = Instant::now();
        let (mut pre, mut post) = self.tries(&*self.retry, make, &mut stats.optimistic_tries).await?;
        stats.optimistic_time = start.elapsed();
        if let (None, Some(promotion)) = (&post, &self.promoted) {
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
        let succeeded = post.is_some();
        let post_value = post.unwrap_or_else(|| pre.clone());
        Ok(AtomicValue { succeeded, pre_value: pre, post_value, stats })
    }

    async fn get(&self) -> Result<AtomicValue<C::Value>> {
        let current = self.read().await?;
        Ok(AtomicValue {
            succeeded: true,
            pre_value: current.value.clone(),
            post_value: current.value,
            stats: AtomicStats::default(),
        })
    }

    /// Curator's `compareAndSet`: one try, no lock, a missing node is not created.
    async fn compare_and_set(&self, expected: &C::Value, new: C::Value) -> Result<AtomicValue<C::Value>> {
        let current = self.read().await?;
        let stats = AtomicStats { optimistic_tries: 1, ..AtomicStats::default() };
        let failed =
            AtomicValue { succeeded: false, pre_value: current.value.clone(), post_value: current.value, stats };
        let Some(stat) = current.stat else { return Ok(failed) };
        if failed.pre_value != *expected {
            return Ok(failed);
        }
        match self.fw.client().set_data(&self.path, C::encode(&new), Some(stat.version)).await {
            Ok(_) => Ok(AtomicValue { succeeded: true, post_value: new, ..failed }),
            Err(e) if lost_race(&e) => Ok(failed),
            Err(e) => Err(Error::from(e)),
        }
    }

    /// Curator's `initialize`.
    async fn try_initialize(&self, value: &C::Value) -> Result<bool> {
        self.fw.connected().await?;
        match self.create_once(C::encode(value)).await {
            Ok(()) => Ok(true),
            Err(e) if e.code() == ErrorCode::NodeExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Curator's `forceSet`.
    async fn force_set(&self, value: &C::Value) -> Result<()> {
        let data = C::encode(value);
        // Unconditional writes are safe to retry: the last write wins either way.
        loop {
            match self.fw.set_data(&self.path, data.clone(), None).await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_no_node() => {}
                Err(e) => return Err(Error::from(e)),
            }
            let spec = corral_core::framework::Create::new(CreateMode::Persistent).container_parents();
            match self.fw.create(&self.path, data.clone(), spec).await {
                Ok(_) => return Ok(()),
                // Created meanwhile by someone else: set it again.
                Err(e) if e.is_node_exists() => {}
                Err(e) => return Err(Error::from(e)),
            }
        }
    }
}
