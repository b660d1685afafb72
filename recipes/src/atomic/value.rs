//! [`DistributedAtomicValue`]: raw bytes changed by compare-and-set (Curator's
//! `DistributedAtomicValue`), on the engine the integer types share.

use std::sync::Arc;

use bytes::Bytes;
use corral_core::{Framework, RetryPolicy};

use super::{AtomicValue, Codec, Engine, PromotedToLock};
use crate::Result;

/// The node's data is the value itself.
#[derive(Debug, Clone, Copy)]
struct RawBytes;

impl Codec for RawBytes {
    type Value = Bytes;

    fn encode(value: &Bytes) -> Bytes {
        value.clone()
    }

    fn decode(_path: &str, data: &[u8]) -> Result<Bytes> {
        Ok(Bytes::copy_from_slice(data))
    }
}

/// A distributed value of raw bytes (Curator's `DistributedAtomicValue`): the node's data is
/// the value. Cheap to clone.
///
/// A missing node reads as empty bytes (where Curator reports `null`); an update of a missing
/// node creates it. The engine, its optimistic tries and its promotion to a lock are
/// [`DistributedAtomicLong`](super::DistributedAtomicLong)'s.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::time::Duration;
/// use corral_recipes::{Framework, RetryNTimes, atomic::DistributedAtomicValue};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let leader = DistributedAtomicValue::new(&fw, "/config/leader", RetryNTimes::new(10, Duration::from_millis(10)));
/// let result = leader.try_set("node-1").await?;
/// assert!(result.succeeded, "every try lost a race");
/// assert_eq!((&result.pre_value[..], &result.post_value[..]), (&b""[..], &b"node-1"[..]));
/// assert_eq!(&fw.client().get_data("/config/leader").await?.0[..], b"node-1");
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DistributedAtomicValue {
    engine: Engine<RawBytes>,
}

impl DistributedAtomicValue {
    /// A value at `path`, whose optimistic tries are retried under `retry` (Curator's
    /// `RetryNTimes(n, sleep)` makes `n + 1` tries). Nothing is sent yet.
    ///
    /// # Examples
    ///
    /// See [`DistributedAtomicValue`].
    pub fn new(fw: &Framework, path: impl Into<String>, retry: impl RetryPolicy + 'static) -> Self {
        Self { engine: Engine::new(fw, path.into(), Arc::new(retry)) }
    }

    /// Promotes updates to a lock once the optimistic tries run out.
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
    /// use corral_recipes::atomic::{DistributedAtomicValue, PromotedToLock};
    ///
    /// let value = DistributedAtomicValue::new(&fw, "/config/leader", RetryNTimes::new(0, Duration::ZERO))
    ///     .promoted_to_lock(PromotedToLock::new("/config/leader-lock"));
    /// assert!(value.try_set("node-2").await?.succeeded);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn promoted_to_lock(mut self, promotion: PromotedToLock) -> Self {
        self.engine.promoted = Some(promotion);
        self
    }

    /// The value's path.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::{RetryOneTime, atomic::DistributedAtomicValue};
    ///
    /// let value = DistributedAtomicValue::new(&fw, "/config/leader", RetryOneTime::new(Default::default()));
    /// assert_eq!(value.path(), "/config/leader");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &str {
        &self.engine.path
    }

    /// Reads the value: `pre_value == post_value`, always succeeded; empty if the node does
    /// not exist.
    ///
    /// # Errors
    ///
    /// Connection errors once the retry policy gives up; server errors such as NoAuth.
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
    /// use corral_recipes::{RetryNTimes, atomic::DistributedAtomicValue};
    ///
    /// let value = DistributedAtomicValue::new(&fw, "/config/leader", RetryNTimes::new(3, Duration::from_millis(10)));
    /// assert!(value.get().await?.post_value.is_empty()); // no node yet
    /// value.force_set("node-3").await?;
    /// assert_eq!(&value.get().await?.post_value[..], b"node-3");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn get(&self) -> Result<AtomicValue<Bytes>> {
        self.engine.get().await
    }

    /// Sets the value to `value`, whatever it is: optimistic tries under the retry policy,
    /// then tries under the promoted lock if configured and needed (Curator's `trySet`).
    ///
    /// # Errors
    ///
    /// Connection errors (reads once the retry policy gives up; a write at once: the value may
    /// or may not have changed, [`DistributedAtomicValue::get`] tells);
    /// [`Error::SessionLost`](crate::Error::SessionLost) if the session is lost while waiting
    /// for the promoted lock; server errors such as NoAuth. Losing every race is not an
    /// error: see [`AtomicValue::succeeded`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a write may have been applied when the future is dropped. A promoted
    /// lock being waited for or held is released in the background.
    ///
    /// # Examples
    ///
    /// See [`DistributedAtomicValue`].
    pub async fn try_set(&self, value: impl Into<Bytes>) -> Result<AtomicValue<Bytes>> {
        let value = value.into();
        self.engine.update(&move |_: &Bytes| value.clone()).await
    }

    /// Sets the value to `new` only if it is `expected` now, in one try (no retry, no lock, and
    /// a missing node is not created — as Curator's `compareAndSet`).
    ///
    /// # Errors
    ///
    /// As [`DistributedAtomicValue::try_set`].
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
    /// use corral_recipes::{RetryNTimes, atomic::DistributedAtomicValue};
    ///
    /// let value = DistributedAtomicValue::new(&fw, "/config/leader", RetryNTimes::new(3, Duration::from_millis(10)));
    /// value.force_set("node-1").await?;
    /// assert!(!value.compare_and_set(b"node-9", "node-2").await?.succeeded);
    /// let result = value.compare_and_set(b"node-1", "node-2").await?;
    /// assert_eq!((result.succeeded, &result.post_value[..]), (true, &b"node-2"[..]));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn compare_and_set(&self, expected: &[u8], new: impl Into<Bytes>) -> Result<AtomicValue<Bytes>> {
        self.engine.compare_and_set(&Bytes::copy_from_slice(expected), new.into()).await
    }

    /// Creates the node with `value` if it does not exist yet (Curator's `initialize`):
    /// `Ok(true)` if this call created it, `Ok(false)` if it existed.
    ///
    /// # Errors
    ///
    /// Connection errors: the create is sent once, and after a connection error the node may
    /// or may not have been created; server errors such as NoAuth.
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
    /// use corral_recipes::{RetryNTimes, atomic::DistributedAtomicValue};
    ///
    /// let value = DistributedAtomicValue::new(&fw, "/config/leader", RetryNTimes::new(3, Duration::from_millis(10)));
    /// assert!(value.try_initialize("first").await?);
    /// assert!(!value.try_initialize("second").await?);
    /// assert_eq!(&value.get().await?.post_value[..], b"first");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn try_initialize(&self, value: impl Into<Bytes>) -> Result<bool> {
        self.engine.try_initialize(&value.into()).await
    }

    /// Sets the value to `value` unconditionally, creating the node if needed (Curator's
    /// `forceSet`).
    ///
    /// # Errors
    ///
    /// Connection errors once the retry policy gives up; server errors such as NoAuth.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the value may have been written when the future is dropped.
    ///
    /// # Examples
    ///
    /// See [`DistributedAtomicValue::get`].
    pub async fn force_set(&self, value: impl Into<Bytes>) -> Result<()> {
        self.engine.force_set(&value.into()).await
    }
}
