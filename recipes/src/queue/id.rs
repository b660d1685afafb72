//! [`DistributedIdQueue`]: Curator's `DistributedIdQueue`, items with an id they can be removed by.

use crate::{Error, Result};
use corral_core::Framework;

use super::consumer::{Order, parse_id};
use super::keyed::keyed_queue;
use super::message::take_lock;
use super::{BytesSerializer, Consumer, DistributedQueue, QUEUE_ITEM_NAME, QueueSerializer};

/// The part of an id queue node's name that holds `id` (Curator's `makeIdPath`): `|<id>|`, with
/// every `/` and `|` of the id replaced by `_`. The node is `<path>/queue-|<id>|<sequence>`.
///
/// # Examples
///
/// ```
/// use corral_recipes::queue::id_name;
///
/// assert_eq!(id_name("my-id"), "|my-id|");
/// assert_eq!(id_name("a/b|c"), "|a_b_c|");
/// ```
pub fn id_name(id: &str) -> String {
    format!("|{}|", id.replace(['/', '|'], "_"))
}

keyed_queue! {
    /// A distributed queue whose items carry an id, by which they can be removed before a consumer
    /// takes them (Curator's `DistributedIdQueue`: node `queue-|<id>|<sequence>`, data as a
    /// [`DistributedQueue`]'s). Items come out in put order whatever their ids; several items may
    /// share an id.
    ///
    /// Delivery, lock-safe mode and connection states are a [`DistributedQueue`]'s.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use bytes::Bytes;
    /// use corral_recipes::queue::DistributedIdQueue;
    ///
    /// let queue = DistributedIdQueue::new(&fw, "/queues/jobs");
    /// queue.put(&Bytes::from("first"), "job-1").await?;
    /// queue.put(&Bytes::from("second"), "job-2").await?;
    /// assert_eq!(queue.remove("job-1").await?, 1);
    /// assert_eq!(queue.consumer().next_message().await?.items(), [Bytes::from("second")]);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub struct DistributedIdQueue;
    kind = "An id queue";
    key = "\"job-1\"";
}

impl<S: QueueSerializer> DistributedIdQueue<S> {
    /// Adds an item with `id`; returns its node's path.
    ///
    /// # Errors
    ///
    /// [`corral_core::Error::BadArguments`] for an empty id (Curator refuses it too); otherwise as
    /// [`DistributedQueue::put`].
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
    /// use corral_recipes::queue::DistributedIdQueue;
    ///
    /// let queue = DistributedIdQueue::new(&fw, "/queues/jobs");
    /// assert_eq!(queue.put(&Bytes::from("x"), "my-id").await?, "/queues/jobs/queue-|my-id|0000000000");
    /// assert!(queue.put(&Bytes::from("x"), "").await.is_err());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn put(&self, item: &S::Item, id: &str) -> Result<String> {
        if id.is_empty() {
            return Err(Error::bad_arguments("an id queue item needs a non-empty id"));
        }
        self.queue.put_named(&id_name(id), std::slice::from_ref(item)).await
    }

    /// Removes every item with `id` that no consumer has taken (or, in lock-safe mode, locked);
    /// returns how many it removed.
    ///
    /// Ids are compared as stored, after the `/` and `|` replacement of [`id_name`] (Curator
    /// compares the id as given, so there an id with those characters is never removed).
    ///
    /// # Errors
    ///
    /// Connection errors once the framework's retries give up; server errors such as NoAuth as
    /// [`corral_core::Error::Server`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: some items may have been removed when the future is dropped (in
    /// lock-safe mode, a lock taken for a removal is released in the background).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use bytes::Bytes;
    /// use corral_recipes::queue::DistributedIdQueue;
    ///
    /// let queue = DistributedIdQueue::new(&fw, "/queues/jobs");
    /// queue.put(&Bytes::from("a"), "dup").await?;
    /// queue.put(&Bytes::from("b"), "dup").await?;
    /// assert_eq!(queue.remove("dup").await?, 2);
    /// assert_eq!(queue.remove("dup").await?, 0);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    ///
    /// In lock-safe mode, an item a consumer is processing is left alone:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use bytes::Bytes;
    /// use corral_recipes::queue::DistributedIdQueue;
    ///
    /// let queue = DistributedIdQueue::new(&fw, "/queues/jobs").lock_path("/queues/job-locks");
    /// queue.put(&Bytes::from("x"), "job-1").await?;
    /// let message = queue.consumer().next_message().await?;
    /// // Being processed: its lock keeps `remove` away.
    /// assert_eq!(queue.remove("job-1").await?, 0);
    /// message.ack().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn remove(&self, id: &str) -> Result<usize> {
        let fw = self.queue.framework();
        let wanted = id_name(id);
        let wanted = &wanted[1..wanted.len() - 1];
        let mut removed = 0;
        for name in crate::sort::children_or_empty(fw, self.path()).await? {
            if !name.starts_with(QUEUE_ITEM_NAME) || parse_id(&name).0 != wanted {
                continue;
            }
            let path = format!("{}/{name}", self.path());
            let hold = match self.queue.lock_dir() {
                Some(lock_dir) => {
                    let data = bytes::Bytes::from(uuid::Uuid::new_v4().to_string());
                    match take_lock(fw, format!("{lock_dir}/{name}"), data).await? {
                        Some(hold) => Some(hold),
                        // Being processed by a consumer.
                        None => continue,
                    }
                }
                None => None,
            };
            let result = fw.client().delete(&path, None).await;
            if let Some(hold) = hold {
                hold.release().await;
            }
            match result {
                Ok(()) => removed += 1,
                Err(e) if e.is_no_node() => {}
                Err(e) => return Err(Error::from(e)),
            }
        }
        Ok(removed)
    }

    /// A consumer taking the messages in put order (see [`DistributedQueue::consumer`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use bytes::Bytes;
    /// use corral_recipes::queue::DistributedIdQueue;
    ///
    /// let queue = DistributedIdQueue::new(&fw, "/queues/jobs");
    /// queue.put(&Bytes::from("first"), "zzz").await?;
    /// queue.put(&Bytes::from("second"), "aaa").await?;
    /// assert_eq!(queue.consumer().next_message().await?.items(), [Bytes::from("first")]);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn consumer(&self) -> Consumer<S::Item> {
        self.queue.consumer_in(Order::Id)
    }
}
