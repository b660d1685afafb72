//! [`DistributedQueue`]: Curator's `DistributedQueue` — `queue-` nodes holding `ItemSerializer`
//! messages — with a [`Consumer`] stream instead of a `QueueConsumer` callback, and Curator's
//! lock-safe mode as a [`Message`] guard to acknowledge.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use corral_core::framework::{Create, StateChanges};
use corral_core::{ConnectionStateChange, CreateMode, Error, ErrorCode, Framework, Op, OneshotWatcher, Result};
use futures::{FutureExt, Stream, StreamExt};
use tokio::task::JoinHandle;

use super::serializer::decode_bytes;
use super::{
    BytesSerializer, QueueSerializer, SerializeError, Taken, Woken, encode_message, is_transient, list_and_watch,
    pause, requeue_in_background, take_node, wait_for_change,
};

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
    /// [acknowledges](Message::ack) it; if the [`Message`] is dropped instead, or the consumer's
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
    /// [`Error::Server`].
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
    /// them together in one [`Message`]. Returns the node's path.
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
        let serialized: Vec<Bytes> = items.iter().map(|item| self.serializer.serialize(item)).collect();
        let message = encode_message(serialized.iter().map(|b| &b[..]));
        let spec = Create::new(CreateMode::PersistentSequential).parents();
        self.fw.create(&format!("{}/{QUEUE_ITEM_NAME}", self.path), message, spec).await
    }

    /// A consumer: a stream of this queue's messages, in node order, and of connection states.
    ///
    /// Nothing is sent until it is first polled. Without a lock path, a message is deleted from
    /// the queue before it is yielded (Curator's normal mode: at most once); with one, it stays
    /// until it is [acknowledged](Message::ack) (at least once). Several consumers, in this
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
        let run = Run {
            fw: self.fw.clone(),
            dir: self.path.clone(),
            lock_dir: self.lock_path.clone(),
            serializer: self.serializer.clone(),
            id: Bytes::from(uuid::Uuid::new_v4().to_string()),
            states: self.fw.state_changes(),
            pending: VecDeque::new(),
            inflight: None,
            watchers: Vec::new(),
            attempt: 0,
            done: false,
        };
        let stream = futures::stream::unfold(run, |mut run| async move {
            if run.done {
                return None;
            }
            let event = run.step().await;
            if matches!(event, Err(Error::Closed)) {
                run.done = true;
            }
            Some((event, run))
        });
        Consumer { stream: Box::pin(stream) }
    }
}

/// What a [`Consumer`] yields.
#[derive(Debug)]
pub enum QueueEvent<T> {
    /// A message taken from the queue.
    Message(Message<T>),
    /// The framework's connection state changed (see [`Framework::state_changes`]). The
    /// consumer lists the queue again after each one.
    State(ConnectionStateChange),
}

/// A [`DistributedQueue`] consumer: a stream of [`QueueEvent`]s, messages in node order with
/// the connection states in between.
///
/// The stream waits on a watch of the queue's children (and of the lock directory in lock-safe
/// mode), never polls, waits out connection errors and session expiry with a jittered backoff,
/// and ends after yielding [`Error::Closed`] once the framework is closed.
///
/// # Cancel safety
///
/// Dropping a `next()` (or [`Consumer::next_message`]) future loses nothing: the step under way stays in
/// the stream and goes on at the next poll. Dropping the consumer while it takes a message puts
/// the message back at the tail of the queue (normal mode) or releases its lock (lock-safe
/// mode), in the background.
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
/// let mut consumer = queue.consumer();
/// let producer = tokio::spawn({
///     let queue = queue.clone();
///     async move { queue.put(&Bytes::from("job-1")).await }
/// });
/// assert_eq!(consumer.next_message().await?.items(), [Bytes::from("job-1")]);
/// producer.await??;
/// # fw.close().await;
/// # Ok(()) }
/// ```
pub struct Consumer<T> {
    stream: Pin<Box<dyn Stream<Item = Result<QueueEvent<T>>> + Send>>,
}

impl<T> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").finish_non_exhaustive()
    }
}

impl<T> Stream for Consumer<T> {
    type Item = Result<QueueEvent<T>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.stream.as_mut().poll_next(cx)
    }
}

impl<T> Consumer<T> {
    /// The next message, skipping connection states; waits for one.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the framework is closed; server errors such as NoAuth as
    /// [`Error::Server`]. The consumer can be used again after an error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as the stream's `next()`: nothing is lost.
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
    /// queue.put(&Bytes::from("job-1")).await?;
    /// let message = queue.consumer().next_message().await?;
    /// assert_eq!(message.items(), [Bytes::from("job-1")]);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn next_message(&mut self) -> Result<Message<T>> {
        loop {
            match self.stream.next().await {
                Some(Ok(QueueEvent::Message(message))) => return Ok(message),
                Some(Ok(QueueEvent::State(_))) => continue,
                Some(Err(e)) => return Err(e),
                None => return Err(Error::Closed),
            }
        }
    }

    /// As [`Consumer::next_message`], waiting at most `timeout`; `Ok(None)` if no message came in time.
    ///
    /// # Errors
    ///
    /// As [`Consumer::next_message`].
    ///
    /// # Cancel safety
    ///
    /// As [`Consumer::next_message`]: a message being taken when the time runs out is not lost, the next
    /// take gets it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::queue::DistributedQueue;
    ///
    /// let mut consumer = DistributedQueue::new(&fw, "/queues/jobs").consumer();
    /// assert!(consumer.next_message_timeout(Duration::from_millis(100)).await?.is_none());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn next_message_timeout(&mut self, timeout: Duration) -> Result<Option<Message<T>>> {
        match tokio::time::timeout(timeout, self.next_message()).await {
            Ok(taken) => taken.map(Some),
            Err(_) => Ok(None),
        }
    }
}

/// The items of one queue node, taken by a [`Consumer`].
///
/// In normal mode the node is already deleted: [`Message::ack`] does nothing, and dropping the
/// message drops its items. In lock-safe mode ([`DistributedQueue::lock_path`]) the message holds
/// the node's lock: [`Message::ack`] deletes the node and the lock together; dropping the message
/// without acknowledging it releases the lock in the background, and the message is delivered
/// again (to this consumer or another one). It is delivered again too if the session ends first.
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
/// let mut message = queue.consumer().next_message().await?;
/// assert!(message.is_locked());
/// let items = message.take_items(); // process them…
/// assert_eq!(items, [Bytes::from("job-1")]);
/// message.ack().await?; // …then acknowledge
/// assert!(fw.client().get_children("/queues/jobs").await?.is_empty());
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Message<T> {
    items: Vec<T>,
    path: String,
    lock: Option<LockHold>,
}

impl<T> Message<T> {
    /// The items, in the order they were put.
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
    /// assert_eq!(queue.consumer().next_message().await?.items(), [Bytes::from("a"), Bytes::from("b")]);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// Moves the items out (leaving none), keeping the message — and in lock-safe mode its
    /// lock — to acknowledge once they are processed.
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
    /// queue.put(&Bytes::from("a")).await?;
    /// let mut message = queue.consumer().next_message().await?;
    /// assert_eq!(message.take_items(), [Bytes::from("a")]);
    /// assert!(message.items().is_empty());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn take_items(&mut self) -> Vec<T> {
        std::mem::take(&mut self.items)
    }

    /// The path of the queue node the message came from.
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
    /// let node = queue.put(&Bytes::from("a")).await?;
    /// assert_eq!(queue.consumer().next_message().await?.path(), node);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the message holds a lock (lock-safe mode) that is still to be acknowledged.
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
    /// queue.put(&Bytes::from("a")).await?;
    /// assert!(!queue.consumer().next_message().await?.is_locked()); // normal mode
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn is_locked(&self) -> bool {
        self.lock.is_some()
    }

    /// Acknowledges the message: in lock-safe mode, deletes the queue node and its lock in one
    /// transaction; in normal mode, nothing (the node is gone already).
    ///
    /// # Errors
    ///
    /// - [`Error::SessionExpired`] if the session that took the lock has ended: its lock is gone
    ///   and the message is (or will be) delivered again.
    /// - Server errors such as NoAuth as [`Error::Server`]; the lock is then released and the
    ///   message delivered again.
    ///
    /// Connection errors are waited out within the session.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before the transaction is known to be applied, the
    /// lock is released in the background and the message — if it is still there — is delivered
    /// again.
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
    /// queue.consumer().next_message().await?.ack().await?;
    /// assert!(fw.client().get_children("/queues/jobs").await?.is_empty());
    /// assert!(fw.client().get_children("/queues/jobs-locks").await?.is_empty());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn ack(mut self) -> Result<()> {
        match self.lock.take() {
            Some(hold) => ack_locked(hold, &self.path).await,
            None => Ok(()),
        }
    }
}

/// Deletes the item and its lock together, as the holder of the lock.
async fn ack_locked(mut hold: LockHold, item: &str) -> Result<()> {
    let mut attempt = 0;
    loop {
        if hold.fw.current_state().epoch != hold.epoch {
            // The session ended and took the lock with it.
            hold.done = true;
            return Err(Error::SessionExpired);
        }
        let ops = vec![
            Op::Delete { path: item.to_owned(), version: None },
            Op::Delete { path: hold.path.clone(), version: None },
        ];
        match hold.fw.client().multi(ops).await {
            Ok(_) => {
                hold.done = true;
                return Ok(());
            }
            // The item is gone while we hold its lock: our own transaction, applied before its
            // reply was lost (or a consumer that ignores locks took it). Only the lock is left.
            Err(Error::MultiFailed { index: 0, code: ErrorCode::NoNode, .. }) => {
                hold.release().await;
                return Ok(());
            }
            Err(Error::MultiFailed { index: 1, code: ErrorCode::NoNode, .. }) => {
                hold.done = true;
                return Err(Error::SessionExpired);
            }
            Err(e) if is_transient(&e) => {
                attempt += 1;
                tracing::debug!(item, error = %e, "queue ack: retrying");
                let _ = hold.fw.wait_until_connected(hold.fw.connection_timeout()).await;
                pause(attempt, None).await;
            }
            // Dropping the hold releases the lock: the item is delivered again.
            Err(e) => return Err(e),
        }
    }
}

/// A lock node this process holds for a message, created in session epoch `epoch`; released
/// (deleted) in the background when dropped unless `done`.
#[derive(Debug)]
struct LockHold {
    fw: Framework,
    path: String,
    epoch: u64,
    done: bool,
}

impl LockHold {
    async fn release(mut self) {
        self.done = true;
        release_lock(&self.fw, &self.path, self.epoch).await;
    }
}

impl Drop for LockHold {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(path = %self.path, "no Tokio runtime to release a queue lock; it stays until the session ends");
            return;
        };
        let (fw, path, epoch) = (self.fw.clone(), std::mem::take(&mut self.path), self.epoch);
        handle.spawn(async move { release_lock(&fw, &path, epoch).await });
    }
}

/// Deletes the lock at `path` while the session of `epoch` lasts (after that it is gone anyway,
/// and a node at `path` would be another consumer's).
async fn release_lock(fw: &Framework, path: &str, epoch: u64) {
    let mut attempt = 0;
    loop {
        if fw.current_state().epoch != epoch {
            return;
        }
        match fw.client().delete(path, None).await {
            Ok(()) => return,
            Err(e) if e.is_no_node() => return,
            Err(Error::Closed) => return,
            Err(e) if is_transient(&e) => {
                attempt += 1;
                pause(attempt, None).await;
            }
            Err(e) => {
                tracing::warn!(path, error = %e, "cannot release a queue lock; it stays until the session ends");
                return;
            }
        }
    }
}

/// A node taken from the queue but not yet handed to the caller. Dropped unhanded, it puts the
/// data back (normal mode) or releases the lock (lock-safe mode).
#[derive(Debug)]
struct Claimed {
    fw: Framework,
    dir: String,
    path: String,
    data: Option<Bytes>,
    lock: Option<LockHold>,
}

impl Drop for Claimed {
    fn drop(&mut self) {
        if self.lock.is_none()
            && let Some(data) = self.data.take()
        {
            requeue_in_background(&self.fw, &self.dir, QUEUE_ITEM_NAME, vec![data]);
        }
    }
}

impl Claimed {
    /// The message, or (corrupted) the claim back, to dispose of.
    fn into_message<S: QueueSerializer>(
        mut self,
        serializer: &S,
    ) -> std::result::Result<Message<S::Item>, Box<Self>> {
        let Some(data) = self.data.take() else { return Err(Box::new(self)) };
        let decoded = decode_bytes(data).and_then(|parts| {
            parts.into_iter().map(|part| serializer.deserialize(part)).collect::<std::result::Result<Vec<_>, _>>()
        });
        match decoded {
            Ok(items) => Ok(Message { items, path: std::mem::take(&mut self.path), lock: self.lock.take() }),
            Err(e) => {
                corrupted(&self.path, &e);
                Err(Box::new(self))
            }
        }
    }
}

fn corrupted(path: &str, e: &SerializeError) {
    tracing::error!(path, error = %e, "corrupted queue message; discarded");
}

/// What one claim task needs.
#[derive(Debug, Clone)]
struct Claimer {
    fw: Framework,
    dir: String,
    lock_dir: Option<String>,
    id: Bytes,
}

impl Claimer {
    /// Takes the first of `names` still there (and, in lock-safe mode, not locked); returns it and
    /// the names after it.
    async fn claim(self, mut names: VecDeque<String>) -> Result<(Option<Claimed>, VecDeque<String>)> {
        while let Some(name) = names.pop_front() {
            let path = format!("{}/{name}", self.dir);
            let Some(lock_dir) = &self.lock_dir else {
                match take_node(&self.fw, &path).await? {
                    Taken::Data(data) => {
                        let claimed =
                            Claimed { fw: self.fw.clone(), dir: self.dir.clone(), path, data: Some(data), lock: None };
                        return Ok((Some(claimed), names));
                    }
                    Taken::Gone => continue,
                }
            };
            let lock_path = format!("{lock_dir}/{name}");
            // Idempotent: a retry after a lost reply finds our own lock (our session, our id).
            let spec = Create::new(CreateMode::Ephemeral).parents().idempotent();
            match self.fw.create(&lock_path, self.id.clone(), spec).await {
                Ok(_) => {}
                Err(e) if e.is_node_exists() => continue,
                Err(e) => return Err(e),
            }
            let hold = LockHold { fw: self.fw.clone(), path: lock_path, epoch: self.fw.current_state().epoch, done: false };
            match self.fw.with_retry(|client| client.get_data(&path)).await {
                Ok((data, _)) => {
                    let claimed =
                        Claimed { fw: self.fw.clone(), dir: self.dir.clone(), path, data: Some(data), lock: Some(hold) };
                    return Ok((Some(claimed), names));
                }
                // Processed by the consumer that held the lock before us.
                Err(e) if e.is_no_node() => hold.release().await,
                Err(e) => return Err(e),
            }
        }
        Ok((None, names))
    }
}

type ClaimTask = JoinHandle<Result<(Option<Claimed>, VecDeque<String>)>>;

/// A consumer's state, kept across `next()` calls (and across dropped ones).
struct Run<S: QueueSerializer> {
    fw: Framework,
    dir: String,
    lock_dir: Option<String>,
    serializer: Arc<S>,
    /// The data of this consumer's lock nodes.
    id: Bytes,
    states: StateChanges,
    /// Names from the last listing not tried yet, in order.
    pending: VecDeque<String>,
    /// The claim under way: its own task, so that dropping the consumer does not cut a delete
    /// short (the task's unclaimed result puts the message back, see [`Claimed`]).
    inflight: Option<ClaimTask>,
    /// The watches of the last listing.
    watchers: Vec<OneshotWatcher>,
    attempt: u32,
    done: bool,
}

impl<S: QueueSerializer> Run<S> {
    async fn step(&mut self) -> Result<QueueEvent<S::Item>> {
        loop {
            if let Some(Some(state)) = self.states.next().now_or_never() {
                return Ok(self.on_state(state));
            }
            if let Some(task) = self.inflight.as_mut() {
                let joined = task.await;
                self.inflight = None;
                match joined {
                    Ok(Ok((Some(claimed), rest))) => {
                        self.attempt = 0;
                        self.pending = rest;
                        match claimed.into_message(&*self.serializer) {
                            Ok(message) => return Ok(QueueEvent::Message(message)),
                            Err(mut corrupt) => {
                                // As Curator: a corrupted message is consumed (deleted with its lock).
                                if let Some(hold) = corrupt.lock.take() {
                                    let path = corrupt.path.clone();
                                    tokio::spawn(async move {
                                        let _ = ack_locked(hold, &path).await;
                                    });
                                }
                                continue;
                            }
                        }
                    }
                    Ok(Ok((None, _))) => {
                        // Nothing left to take from the last listing: wait for a change.
                        self.pending.clear();
                        let watchers = std::mem::take(&mut self.watchers);
                        if let Woken::State(state) = wait_for_change(watchers, &mut self.states, None).await {
                            return Ok(self.on_state(state));
                        }
                        continue;
                    }
                    Ok(Err(e)) if is_transient(&e) => {
                        self.retry_later(&e).await;
                        continue;
                    }
                    Ok(Err(e)) => {
                        self.pending.clear();
                        return Err(e);
                    }
                    Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
                    Err(_) => return Err(Error::Closed),
                }
            }
            if self.pending.is_empty() {
                match self.list().await {
                    Ok(true) => {}
                    Ok(false) => {
                        let watchers = std::mem::take(&mut self.watchers);
                        if let Woken::State(state) = wait_for_change(watchers, &mut self.states, None).await {
                            return Ok(self.on_state(state));
                        }
                        continue;
                    }
                    Err(e) if is_transient(&e) => {
                        self.retry_later(&e).await;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let claimer = Claimer {
                fw: self.fw.clone(),
                dir: self.dir.clone(),
                lock_dir: self.lock_dir.clone(),
                id: self.id.clone(),
            };
            self.inflight = Some(tokio::spawn(claimer.claim(std::mem::take(&mut self.pending))));
        }
    }

    /// After a connection state change everything is listed again.
    fn on_state(&mut self, state: ConnectionStateChange) -> QueueEvent<S::Item> {
        self.pending.clear();
        self.watchers.clear();
        QueueEvent::State(state)
    }

    async fn retry_later(&mut self, e: &Error) {
        self.attempt += 1;
        self.pending.clear();
        tracing::debug!(path = %self.dir, error = %e, attempt = self.attempt, "queue consumer: retrying");
        pause(self.attempt, None).await;
    }

    /// Lists the queue (and the locks) with watches; whether there is anything to try.
    async fn list(&mut self) -> Result<bool> {
        let (children, queue_watch) = list_and_watch(&self.fw, &self.dir).await?;
        let mut names: Vec<String> = children
            .into_iter()
            .filter(|c| {
                let ours = c.starts_with(QUEUE_ITEM_NAME);
                if !ours {
                    tracing::warn!(path = %self.dir, child = %c, "foreign node in queue path");
                }
                ours
            })
            .collect();
        let mut watchers = vec![queue_watch];
        if let Some(lock_dir) = &self.lock_dir {
            let (locks, lock_watch) = list_and_watch(&self.fw, lock_dir).await?;
            names.retain(|n| !locks.contains(n));
            watchers.push(lock_watch);
        }
        // Curator's order: the names as strings (the sequence numbers have the same width).
        names.sort();
        self.watchers = watchers;
        self.pending = names.into();
        Ok(!self.pending.is_empty())
    }
}
