//! [`DistributedQueue`]: Curator's `DistributedQueue` — `queue-` nodes holding `ItemSerializer`
//! messages — with a [`Consumer`] stream instead of a `QueueConsumer` callback, and Curator's
//! lock-safe mode as a [`Message`] guard to acknowledge.

use std::sync::Arc;

use crate::Result;
use bytes::Bytes;
use corral_core::framework::Create;
use corral_core::{CreateMode, Framework};

use super::consumer::{self, Order};
use super::{BytesSerializer, Consumer, QueueSerializer, encode_message};

/// The node name prefix of a [`DistributedQueue`] message: `<path>/queue-<sequence>`, as
/// Curator's `DistributedQueue` names them.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use bytes::Bytes;
/// use corral_recipes::queue::{DistributedQueue, QUEUE_ITEM_NAME};
///
/// let queue = DistributedQueue::new(&fw, "/queues/jobs");
/// let node = queue.put(&Bytes::from("job-1")).await?;
/// assert_eq!(node, format!("/queues/jobs/{QUEUE_ITEM_NAME}0000000000"));
/// # fw.close().await;
/// # Ok(()) }
/// ```
pub const QUEUE_ITEM_NAME: &str = "queue-";

/// A distributed queue with Curator's layout and bytes (`DistributedQueue`): each put is one
/// `queue-` persistent sequential node whose data is a Curator `ItemSerializer` message of one
/// or more items, so Java processes using Curator and Rust processes using this crate can
/// produce into and consume from one queue.
///
/// Items are serialized with `S` (raw [`Bytes`] by default). Consumers are
/// [streams](DistributedQueue::consumer); with a [lock path](DistributedQueue::lock_path) they
/// use Curator's lock-safe protocol. See the [module docs](super) for delivery guarantees and
/// connection states.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use bytes::Bytes;
/// use corral_recipes::{Framework, queue::DistributedQueue};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let queue = DistributedQueue::new(&fw, "/queues/jobs");
/// queue.put(&Bytes::from("job-1")).await?;
/// queue.put_multi(&[Bytes::from("job-2"), Bytes::from("job-3")]).await?;
///
/// let mut consumer = queue.consumer();
/// assert_eq!(consumer.next_message().await?.items(), [Bytes::from("job-1")]);
/// assert_eq!(consumer.next_message().await?.items(), [Bytes::from("job-2"), Bytes::from("job-3")]);
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DistributedQueue<S: QueueSerializer = BytesSerializer> {
    fw: Framework,
    path: String,
    lock_path: Option<String>,
    serializer: Arc<S>,
}

impl<S: QueueSerializer> Clone for DistributedQueue<S> {
    fn clone(&self) -> Self {
        Self {
            fw: self.fw.clone(),
            path: self.path.clone(),
            lock_path: self.lock_path.clone(),
            serializer: self.serializer.clone(),
        }
    }
}

impl DistributedQueue<BytesSerializer> {
    /// A queue of raw byte items at `path` (created with its parents by the first put). Nothing is
    /// sent yet.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::queue::DistributedQueue;
    ///
    /// let queue = DistributedQueue::new(&fw, "/queues/jobs");
    /// assert_eq!(queue.path(), "/queues/jobs");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(fw: &Framework, path: impl Into<String>) -> Self {
        Self::with_serializer(fw, path, BytesSerializer)
    }
}

impl<S: QueueSerializer> DistributedQueue<S> {
    /// A queue at `path` whose items `serializer` turns into bytes and back.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use bytes::Bytes;
    /// use corral_recipes::queue::{DistributedQueue, QueueSerializer, SerializeError};
    ///
    /// #[derive(Debug)]
    /// struct BigEndianU64;
    ///
    /// impl QueueSerializer for BigEndianU64 {
    ///     type Item = u64;
    ///     fn serialize(&self, item: &u64) -> Bytes {
    ///         Bytes::copy_from_slice(&item.to_be_bytes())
    ///     }
    ///     fn deserialize(&self, bytes: Bytes) -> Result<u64, SerializeError> {
    ///         Ok(u64::from_be_bytes(bytes[..].try_into().map_err(SerializeError::new)?))
    ///     }
    /// }
    ///
    /// let queue = DistributedQueue::with_serializer(&fw, "/queues/numbers", BigEndianU64);
    /// queue.put(&42).await?;
    /// assert_eq!(queue.consumer().next_message().await?.items(), [42]);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn with_serializer(fw: &Framework, path: impl Into<String>, serializer: S) -> Self {
        Self { fw: fw.clone(), path: path.into(), lock_path: None, serializer: Arc::new(serializer) }
    }

    /// Consumes in Curator's lock-safe mode (`QueueBuilder.lockPath`), with lock nodes under
    /// `lock_path`: before it reads a message, a consumer creates the ephemeral node
    /// `<lock_path>/<message node name>`; other lock-safe consumers (Corral's or Curator's) skip a
    /// message whose lock exists. The message and its lock are deleted together when the caller
    /// [acknowledges](super::Message::ack) it; if the [`Message`](super::Message) is dropped instead, or the consumer's
    /// session ends, the lock goes and the message is delivered again.
    ///
    /// Every consumer of one queue must use the same lock path (producers ignore it).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use bytes::Bytes;
    /// use corral_recipes::queue::DistributedQueue;
    ///
    /// let queue = DistributedQueue::new(&fw, "/queues/jobs").lock_path("/queues/jobs-locks");
    /// queue.put(&Bytes::from("job-1")).await?;
    /// let mut consumer = queue.consumer();
    /// let message = consumer.next_message().await?;
    /// assert!(fw.client().exists("/queues/jobs-locks/queue-0000000000").await?.is_some());
    /// drop(message); // not acknowledged: delivered again
    /// let message = consumer.next_message().await?;
    /// assert_eq!(message.items(), [Bytes::from("job-1")]);
    /// message.ack().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn lock_path(mut self, lock_path: impl Into<String>) -> Self {
        self.lock_path = Some(lock_path.into());
        self
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
    /// use corral_recipes::queue::DistributedQueue;
    ///
    /// assert_eq!(DistributedQueue::new(&fw, "/q").path(), "/q");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Adds one item at the tail (a message of one item); returns its node's path.
    ///
    /// # Errors
    ///
    /// Connection errors once the framework's retries give up; server errors such as NoAuth as
    /// [`corral_core::Error::Server`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the item may have been added when the future is dropped. As with Curator,
    /// a create retried after its reply was lost may add the item twice.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use bytes::Bytes;
    /// use corral_recipes::queue::{DistributedQueue, decode_message};
    ///
    /// let queue = DistributedQueue::new(&fw, "/queues/jobs");
    /// let node = queue.put(&Bytes::from("job-1")).await?;
    /// let (data, _) = fw.client().get_data(&node).await?;
    /// assert_eq!(decode_message(&data)?, [Bytes::from("job-1")]);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn put(&self, item: &S::Item) -> Result<String> {
        self.put_multi(std::slice::from_ref(item)).await
    }

    /// Adds several items as one message (one node, Curator's `putMulti`); a consumer receives
    /// them together in one [`Message`](super::Message). Returns the node's path.
    ///
    /// # Errors
    ///
    /// As [`DistributedQueue::put`].
    ///
    /// # Cancel safety
    ///
    /// As [`DistributedQueue::put`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use bytes::Bytes;
    /// use corral_recipes::queue::DistributedQueue;
    ///
    /// let queue = DistributedQueue::new(&fw, "/queues/jobs");
    /// queue.put_multi(&[Bytes::from("a"), Bytes::from("b")]).await?;
    /// assert_eq!(fw.client().get_children("/queues/jobs").await?.len(), 1);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn put_multi(&self, items: &[S::Item]) -> Result<String> {
        self.put_named("", items).await
    }

    /// Puts `items` as one message in the node `queue-<suffix><sequence>`.
    pub(crate) async fn put_named(&self, suffix: &str, items: &[S::Item]) -> Result<String> {
        let serialized: Vec<Bytes> = items.iter().map(|item| self.serializer.serialize(item)).collect();
        let message = encode_message(serialized.iter().map(|b| &b[..]));
        let spec = Create::new(CreateMode::PersistentSequential).parents();
        let put = self.fw.create(&format!("{}/{QUEUE_ITEM_NAME}{suffix}", self.path), message, spec).await?;
        metrics::counter!(corral_core::metrics::QUEUE_PUTS_TOTAL).increment(items.len() as u64);
        Ok(put)
    }

    /// A consumer taking the nodes in `order`.
    pub(crate) fn consumer_in(&self, order: Order) -> Consumer<S::Item> {
        consumer::start(&self.fw, &self.path, self.lock_path.clone(), self.serializer.clone(), order)
    }

    pub(crate) fn framework(&self) -> &Framework {
        &self.fw
    }

    pub(crate) fn lock_dir(&self) -> Option<&str> {
        self.lock_path.as_deref()
    }

    /// A consumer: a stream of this queue's messages, in node order, and of connection states.
    ///
    /// Nothing is sent until it is first polled. Without a lock path, a message is deleted from
    /// the queue before it is yielded (Curator's normal mode: at most once); with one, it stays
    /// until it is [acknowledged](super::Message::ack) (at least once). Several consumers, in this
    /// process or others, share the queue's messages.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use bytes::Bytes;
    /// use corral_recipes::queue::{DistributedQueue, QueueEvent};
    /// use futures::StreamExt;
    ///
    /// let queue = DistributedQueue::new(&fw, "/queues/jobs");
    /// queue.put(&Bytes::from("job-1")).await?;
    /// let mut consumer = queue.consumer();
    /// while let Some(event) = consumer.next().await {
    ///     match event? {
    ///         QueueEvent::Message(message) => {
    ///             assert_eq!(message.items(), [Bytes::from("job-1")]);
    ///             break;
    ///         }
    ///         QueueEvent::State(state) => println!("connection: {}", state.state),
    ///     }
    /// }
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn consumer(&self) -> Consumer<S::Item> {
        self.consumer_in(Order::Fifo)
    }
}
