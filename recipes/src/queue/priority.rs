//! [`DistributedPriorityQueue`]: Curator's `DistributedPriorityQueue`, the priority in the node name.

use corral_core::{Framework, Result};

use super::consumer::Order;
use super::{BytesSerializer, Consumer, DistributedQueue, QueueSerializer};

/// The part of a priority queue node's name that encodes `priority` (Curator's
/// `priorityToString`): `"1"` for a priority ≥ 0 or `"0"` for a negative one, then the priority's
/// 32 bits as `%08X`, so that the names sort by priority. The node is
/// `<path>/queue-<this><sequence>`.
///
/// # Examples
///
/// ```
/// use corral_recipes::queue::priority_name;
///
/// assert_eq!(priority_name(5), "100000005");
/// assert_eq!(priority_name(-3), "0FFFFFFFD");
/// assert!(priority_name(-3) < priority_name(0) && priority_name(0) < priority_name(5));
/// ```
pub fn priority_name(priority: i32) -> String {
    format!("{}{:08X}", if priority >= 0 { "1" } else { "0" }, priority as u32)
}

/// A distributed queue whose items come out by priority, lowest first, and in put order within
/// one priority (Curator's `DistributedPriorityQueue`: node `queue-<priority_name><sequence>`,
/// data as a [`DistributedQueue`]'s).
///
/// A consumer lists the queue again whenever it changed before it takes the next message, so an
/// urgent item put while others wait goes first (Curator's `refreshOnWatch`). Delivery, lock-safe
/// mode and connection states are a [`DistributedQueue`]'s.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use bytes::Bytes;
/// use corral_recipes::queue::DistributedPriorityQueue;
///
/// let queue = DistributedPriorityQueue::new(&fw, "/queues/jobs");
/// queue.put(&Bytes::from("later"), 10).await?;
/// queue.put(&Bytes::from("urgent"), -1).await?;
/// let mut consumer = queue.consumer();
/// assert_eq!(consumer.next_message().await?.items(), [Bytes::from("urgent")]);
/// assert_eq!(consumer.next_message().await?.items(), [Bytes::from("later")]);
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DistributedPriorityQueue<S: QueueSerializer = BytesSerializer> {
    queue: DistributedQueue<S>,
}

impl<S: QueueSerializer> Clone for DistributedPriorityQueue<S> {
    fn clone(&self) -> Self {
        Self { queue: self.queue.clone() }
    }
}

impl DistributedPriorityQueue<BytesSerializer> {
    /// A priority queue of raw byte items at `path`. Nothing is sent yet.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::queue::DistributedPriorityQueue;
    ///
    /// assert_eq!(DistributedPriorityQueue::new(&fw, "/queues/jobs").path(), "/queues/jobs");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(fw: &Framework, path: impl Into<String>) -> Self {
        Self { queue: DistributedQueue::new(fw, path) }
    }
}

impl<S: QueueSerializer> DistributedPriorityQueue<S> {
    /// A priority queue at `path` whose items `serializer` turns into bytes and back (see
    /// [`DistributedQueue::with_serializer`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::queue::{BytesSerializer, DistributedPriorityQueue};
    ///
    /// let queue = DistributedPriorityQueue::with_serializer(&fw, "/queues/jobs", BytesSerializer);
    /// assert_eq!(queue.path(), "/queues/jobs");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn with_serializer(fw: &Framework, path: impl Into<String>, serializer: S) -> Self {
        Self { queue: DistributedQueue::with_serializer(fw, path, serializer) }
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
    /// use bytes::Bytes;
    /// use corral_recipes::queue::DistributedPriorityQueue;
    ///
    /// let queue = DistributedPriorityQueue::new(&fw, "/queues/jobs").lock_path("/queues/jobs-locks");
    /// queue.put(&Bytes::from("job"), 1).await?;
    /// let message = queue.consumer().next_message().await?;
    /// assert!(message.is_locked());
    /// message.ack().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn lock_path(self, lock_path: impl Into<String>) -> Self {
        Self { queue: self.queue.lock_path(lock_path) }
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
    /// use corral_recipes::queue::DistributedPriorityQueue;
    ///
    /// assert_eq!(DistributedPriorityQueue::new(&fw, "/q").path(), "/q");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &str {
        self.queue.path()
    }

    /// Adds an item with `priority` (lower comes out first); returns its node's path.
    ///
    /// # Errors
    ///
    /// As [`DistributedQueue::put`].
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
    /// use bytes::Bytes;
    /// use corral_recipes::queue::DistributedPriorityQueue;
    ///
    /// let queue = DistributedPriorityQueue::new(&fw, "/queues/jobs");
    /// assert_eq!(queue.put(&Bytes::from("job"), 5).await?, "/queues/jobs/queue-1000000050000000000");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn put(&self, item: &S::Item, priority: i32) -> Result<String> {
        self.put_multi(std::slice::from_ref(item), priority).await
    }

    /// Adds several items with one priority as one message (one node).
    ///
    /// # Errors
    ///
    /// As [`DistributedQueue::put`].
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
    /// use bytes::Bytes;
    /// use corral_recipes::queue::DistributedPriorityQueue;
    ///
    /// let queue = DistributedPriorityQueue::new(&fw, "/queues/jobs");
    /// queue.put_multi(&[Bytes::from("a"), Bytes::from("b")], -3).await?;
    /// assert_eq!(queue.consumer().next_message().await?.items().len(), 2);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn put_multi(&self, items: &[S::Item], priority: i32) -> Result<String> {
        self.queue.put_named(&priority_name(priority), items).await
    }

    /// A consumer taking the messages by priority (see [`DistributedQueue::consumer`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use bytes::Bytes;
    /// use corral_recipes::queue::DistributedPriorityQueue;
    ///
    /// let queue = DistributedPriorityQueue::new(&fw, "/queues/jobs");
    /// queue.put(&Bytes::from("b"), 2).await?;
    /// queue.put(&Bytes::from("a"), 1).await?;
    /// assert_eq!(queue.consumer().next_message().await?.items(), [Bytes::from("a")]);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn consumer(&self) -> Consumer<S::Item> {
        self.queue.consumer_in(Order::Priority)
    }
}
