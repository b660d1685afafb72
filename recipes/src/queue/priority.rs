//! [`DistributedPriorityQueue`]: Curator's `DistributedPriorityQueue`, the priority in the node name.

use crate::Result;
use corral_core::Framework;

use super::consumer::Order;
use super::keyed::keyed_queue;
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

keyed_queue! {
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
    pub struct DistributedPriorityQueue;
    kind = "A priority queue";
    key = "1";
}

impl<S: QueueSerializer> DistributedPriorityQueue<S> {
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
