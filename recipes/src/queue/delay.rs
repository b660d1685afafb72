//! [`DistributedDelayQueue`]: Curator's `DistributedDelayQueue`, each item due at a wall-clock time
//! written in its node name.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Error, Result};
use corral_core::Framework;

use super::consumer::{Clock, Order};
use super::{BytesSerializer, Consumer, DistributedQueue, QueueSerializer};

/// The part of a delay queue node's name that encodes its due time (Curator's `epochToString`):
/// `|%08X|` of the milliseconds since the Unix epoch. The node is
/// `<path>/queue-|<hex>|<sequence>`.
///
/// # Examples
///
/// ```
/// use corral_recipes::queue::due_name;
///
/// assert_eq!(due_name(0x1A2002211BC), "|1A2002211BC|");
/// assert_eq!(due_name(5), "|00000005|");
/// ```
pub fn due_name(epoch_ms: u64) -> String {
    format!("|{epoch_ms:08X}|")
}

fn system_clock() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A distributed queue whose items are held back until a wall-clock time (Curator's
/// `DistributedDelayQueue`: node `queue-|<due ms, %08X>|<sequence>`, data as a
/// [`DistributedQueue`]'s). Consumers take due items, earliest due first, and wait (on a timer and
/// the queue's watch, never polling) for the next one.
///
/// Due times are compared with the wall clock of the consuming process (injectable with
/// [`DistributedDelayQueue::with_clock`]), so clock skew between producers and consumers shifts
/// them, as in Curator. Delivery, lock-safe mode and connection states are a
/// [`DistributedQueue`]'s.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use std::time::Duration;
/// use bytes::Bytes;
/// use corral_recipes::queue::DistributedDelayQueue;
///
/// let queue = DistributedDelayQueue::new(&fw, "/queues/reminders");
/// queue.put_after(&Bytes::from("later"), Duration::from_millis(300)).await?;
/// queue.put_after(&Bytes::from("now"), Duration::ZERO).await?;
/// let mut consumer = queue.consumer();
/// assert_eq!(consumer.next_message().await?.items(), [Bytes::from("now")]);
/// assert!(matches!(consumer.next_message_timeout(Duration::from_millis(50)).await, Err(corral_recipes::Error::TimedOut { .. }))); // not due yet
/// assert_eq!(consumer.next_message().await?.items(), [Bytes::from("later")]);
/// # fw.close().await;
/// # Ok(()) }
/// ```
pub struct DistributedDelayQueue<S: QueueSerializer = BytesSerializer> {
    queue: DistributedQueue<S>,
    clock: Clock,
}

impl<S: QueueSerializer> std::fmt::Debug for DistributedDelayQueue<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistributedDelayQueue").field("queue", &self.queue).finish_non_exhaustive()
    }
}

impl<S: QueueSerializer> Clone for DistributedDelayQueue<S> {
    fn clone(&self) -> Self {
        Self { queue: self.queue.clone(), clock: self.clock.clone() }
    }
}

impl DistributedDelayQueue<BytesSerializer> {
    /// A delay queue of raw byte items at `path`, on the system clock. Nothing is sent yet.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::queue::DistributedDelayQueue;
    ///
    /// assert_eq!(DistributedDelayQueue::new(&fw, "/queues/reminders").path(), "/queues/reminders");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(fw: &Framework, path: impl Into<String>) -> Self {
        Self::with_serializer(fw, path, BytesSerializer)
    }
}

impl<S: QueueSerializer> DistributedDelayQueue<S> {
    /// A delay queue at `path` whose items `serializer` turns into bytes and back.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::queue::{BytesSerializer, DistributedDelayQueue};
    ///
    /// let queue = DistributedDelayQueue::with_serializer(&fw, "/queues/reminders", BytesSerializer);
    /// assert_eq!(queue.path(), "/queues/reminders");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn with_serializer(fw: &Framework, path: impl Into<String>, serializer: S) -> Self {
        Self { queue: DistributedQueue::with_serializer(fw, path, serializer), clock: Arc::new(system_clock) }
    }

    /// Uses `clock` (milliseconds since the Unix epoch) instead of the system clock, for
    /// [`DistributedDelayQueue::put_after`] and to decide what is due — for tests on paused time,
    /// say. Timers still run on `tokio::time`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use bytes::Bytes;
    /// use corral_recipes::queue::DistributedDelayQueue;
    ///
    /// let queue = DistributedDelayQueue::new(&fw, "/queues/reminders").with_clock(|| 1_000);
    /// let node = queue.put_after(&Bytes::from("x"), Duration::from_millis(500)).await?;
    /// assert_eq!(node, "/queues/reminders/queue-|000005DC|0000000000");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn with_clock(mut self, clock: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Consumes in Curator's lock-safe mode, as [`DistributedQueue::lock_path`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use bytes::Bytes;
    /// use corral_recipes::queue::DistributedDelayQueue;
    ///
    /// let queue = DistributedDelayQueue::new(&fw, "/queues/reminders").lock_path("/queues/reminder-locks");
    /// queue.put_after(&Bytes::from("x"), Duration::ZERO).await?;
    /// queue.consumer().next_message().await?.ack().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn lock_path(self, lock_path: impl Into<String>) -> Self {
        Self { queue: self.queue.lock_path(lock_path), clock: self.clock }
    }

    /// The queue's path.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::queue::DistributedDelayQueue;
    ///
    /// assert_eq!(DistributedDelayQueue::new(&fw, "/q").path(), "/q");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &str {
        self.queue.path()
    }

    /// Adds an item due at `due` (Curator's `put(item, delayUntilEpoch)`); returns its node's
    /// path.
    ///
    /// # Errors
    ///
    /// [`corral_core::Error::BadArguments`] for a time not after the Unix epoch (Curator refuses it too);
    /// otherwise as [`DistributedQueue::put`].
    ///
    /// # Cancel safety
    ///
    /// As [`DistributedQueue::put`]: not cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use bytes::Bytes;
    /// use corral_recipes::queue::DistributedDelayQueue;
    ///
    /// let queue = DistributedDelayQueue::new(&fw, "/queues/reminders");
    /// let due = UNIX_EPOCH + Duration::from_millis(0x1A2002211BC);
    /// assert_eq!(queue.put(&Bytes::from("x"), due).await?, "/queues/reminders/queue-|1A2002211BC|0000000000");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn put(&self, item: &S::Item, due: SystemTime) -> Result<String> {
        self.put_multi(std::slice::from_ref(item), due).await
    }

    /// Adds an item due `delay` from now (by the queue's clock).
    ///
    /// # Errors
    ///
    /// As [`DistributedDelayQueue::put`].
    ///
    /// # Cancel safety
    ///
    /// As [`DistributedQueue::put`]: not cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use bytes::Bytes;
    /// use corral_recipes::queue::DistributedDelayQueue;
    ///
    /// let queue = DistributedDelayQueue::new(&fw, "/queues/reminders");
    /// queue.put_after(&Bytes::from("x"), Duration::from_secs(3600)).await?;
    /// assert!(matches!(queue.consumer().next_message_timeout(Duration::from_millis(100)).await, Err(corral_recipes::Error::TimedOut { .. })));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn put_after(&self, item: &S::Item, delay: Duration) -> Result<String> {
        let due = (self.clock)().saturating_add(delay.as_millis() as u64);
        self.put_due(std::slice::from_ref(item), due).await
    }

    /// Adds several items due at `due` as one message (one node).
    ///
    /// # Errors
    ///
    /// As [`DistributedDelayQueue::put`].
    ///
    /// # Cancel safety
    ///
    /// As [`DistributedQueue::put`]: not cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::SystemTime;
    /// use bytes::Bytes;
    /// use corral_recipes::queue::DistributedDelayQueue;
    ///
    /// let queue = DistributedDelayQueue::new(&fw, "/queues/reminders");
    /// queue.put_multi(&[Bytes::from("a"), Bytes::from("b")], SystemTime::now()).await?;
    /// assert_eq!(queue.consumer().next_message().await?.items().len(), 2);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn put_multi(&self, items: &[S::Item], due: SystemTime) -> Result<String> {
        let due = due
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| d.as_millis() as u64)
            .filter(|&ms| ms > 0)
            .ok_or_else(|| Error::bad_arguments("a delay queue item must be due after the Unix epoch"))?;
        self.put_due(items, due).await
    }

    async fn put_due(&self, items: &[S::Item], due_ms: u64) -> Result<String> {
        self.queue.put_named(&due_name(due_ms), items).await
    }

    /// A consumer taking the due messages, earliest due first (see
    /// [`DistributedQueue::consumer`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use bytes::Bytes;
    /// use corral_recipes::queue::DistributedDelayQueue;
    ///
    /// let queue = DistributedDelayQueue::new(&fw, "/queues/reminders");
    /// queue.put_after(&Bytes::from("b"), Duration::from_millis(20)).await?;
    /// queue.put_after(&Bytes::from("a"), Duration::ZERO).await?;
    /// tokio::time::sleep(Duration::from_millis(30)).await;
    /// assert_eq!(queue.consumer().next_message().await?.items(), [Bytes::from("a")]);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn consumer(&self) -> Consumer<S::Item> {
        self.queue.consumer_in(Order::Delay(self.clock.clone()))
    }
}
