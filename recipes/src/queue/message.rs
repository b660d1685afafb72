//! [`Message`]: the items of one queue node as a consumer hands them out, with, in lock-safe mode,
//! the node's lock until the caller acknowledges it.

use crate::{Error, Result};
use bytes::Bytes;
use corral_core::Error as CoreError;
use corral_core::framework::{Create, Session};
use corral_core::{CreateMode, ErrorCode, Framework, Op};

/// The items of one queue node, taken by a [`Consumer`](super::Consumer).
///
/// In normal mode the node is already deleted: [`Message::ack`] does nothing, and dropping the
/// message drops its items. In lock-safe mode ([`DistributedQueue::lock_path`](super::DistributedQueue::lock_path)) the message holds
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
    pub(crate) fn new(items: Vec<T>, path: String, lock: Option<LockHold>) -> Self {
        Self { items, path, lock }
    }

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
    /// - [`Error::SessionLost`](crate::Error::SessionLost) with the id of the session that took the
    ///   lock, if that session had ended before the ack was sent: the message was not removed,
    ///   and is (or will be) delivered again.
    /// - [`corral_core::Error::SessionExpired`] if the lock node was deleted by someone else
    ///   while its session lived: the message was not removed either, and is delivered again
    ///   (kept as it was, so that code-based matching still says "delivered again").
    /// - [`corral_core::Error::ConnectionLoss`] if the outcome is unknown: the transaction was sent, and the
    ///   connection (or the whole session) was lost before its reply. The message may have been
    ///   removed, or may be delivered again; make its processing idempotent.
    /// - Server errors such as NoAuth as [`corral_core::Error::Server`]; the lock is then released and the
    ///   message delivered again.
    ///
    /// Connection errors are retried within the lock's session, under the framework's retry
    /// policy.
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

/// Deletes the item and its lock together, as the holder of the lock: on the lock's own session
/// only (after it ended, a node at the lock's path would be another consumer's), retrying a
/// connection loss within that session.
pub(crate) async fn ack_locked(mut hold: LockHold, item: &str) -> Result<()> {
    if !hold.session.is_live() {
        // Nothing sent: the lock went with its session, the item stays for another consumer.
        hold.done = true;
        return Err(Error::SessionLost { session_id: hold.session.id() });
    }
    let ops = vec![
        Op::Delete { path: item.to_owned(), version: None },
        Op::Delete { path: hold.path.clone(), version: None },
    ];
    match hold.session.with_retry(|c| c.multi(ops.clone())).await {
        Ok(_) => {
            hold.done = true;
            metrics::counter!(corral_core::metrics::QUEUE_TAKES_TOTAL).increment(1);
            Ok(())
        }
        // The item is gone while we hold its lock: our own transaction, applied before its
        // reply was lost (or a consumer that ignores locks took it). Only the lock is left.
        Err(CoreError::MultiFailed { index: 0, code: ErrorCode::NoNode, .. }) => {
            hold.release().await;
            Ok(())
        }
        Err(CoreError::MultiFailed { index: 1, code: ErrorCode::NoNode, .. }) => {
            hold.done = true;
            Err(Error::from(CoreError::SessionExpired))
        }
        // Sent, and the session ended before the reply: applied or not, nobody can say.
        Err(CoreError::SessionLost { .. }) => {
            hold.done = true;
            Err(Error::from(CoreError::ConnectionLoss))
        }
        // Dropping the hold releases the lock: the item is delivered again.
        Err(e) => Err(Error::from(e)),
    }
}

/// Creates the lock node `path` (ephemeral, parents as needed) with `data` of this consumer's
/// own, through the current session; `None` if another consumer holds it (or the session was
/// lost under the create, taking the node, if it was made, with it). The lock's owner is the
/// session the create's reply names.
pub(crate) async fn take_lock(fw: &Framework, path: String, data: Bytes) -> Result<Option<LockHold>> {
    // Idempotent: a retry after a lost reply finds our own lock (our session, our data).
    let spec = Create::new(CreateMode::Ephemeral).parents().idempotent();
    let session = fw.session().await?;
    match session.create(&path, data, spec).await {
        // From here a drop releases it (on this session only).
        Ok(_) => Ok(Some(LockHold { session, path, done: false })),
        Err(e) if e.is_node_exists() => Ok(None),
        Err(CoreError::SessionLost { .. }) => Ok(None),
        Err(e) => Err(Error::from(e)),
    }
}

/// A lock node this process holds for a message, owned by `session`; released (deleted) in the
/// background when dropped unless `done`.
#[derive(Debug)]
pub(crate) struct LockHold {
    session: Session,
    path: String,
    done: bool,
}

impl LockHold {
    pub(crate) async fn release(mut self) {
        self.done = true;
        release_lock(&self.session, &self.path).await;
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
        let (session, path) = (self.session.clone(), std::mem::take(&mut self.path));
        handle.spawn(async move { release_lock(&session, &path).await });
    }
}

/// Deletes the lock at `path` while its session lasts (after that it is gone anyway, and a node
/// at `path` would be another consumer's).
async fn release_lock(session: &Session, path: &str) {
    crate::task::delete_on_session(session, path).await;
}
