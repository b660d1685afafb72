//! [`SimpleDistributedQueue`]: ZooKeeper's queue recipe, `qn-` nodes of raw bytes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use crate::{Error, Result};
use bytes::Bytes;
use corral_core::Error as CoreError;
use corral_core::framework::Create;
use corral_core::{CreateMode, Framework};
use tokio::time::Instant;

use super::{Taken, Woken, is_transient, list_and_watch, pause, requeue_in_background, take_node, wait_for_change};

/// The node name prefix of a [`SimpleDistributedQueue`] item: `<path>/qn-<sequence>`, as in
/// ZooKeeper's recipe, kazoo and Curator's `SimpleDistributedQueue`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use corral_recipes::queue::{SIMPLE_QUEUE_PREFIX, SimpleDistributedQueue};
///
/// let queue = SimpleDistributedQueue::new(&fw, "/queues/jobs");
/// let node = queue.offer("job-1").await?;
/// assert_eq!(node, format!("/queues/jobs/{SIMPLE_QUEUE_PREFIX}0000000000"));
/// # fw.close().await;
/// # Ok(()) }
/// ```
pub const SIMPLE_QUEUE_PREFIX: &str = "qn-";

/// A FIFO queue of raw byte items, one `qn-` persistent sequential node each (ZooKeeper's queue
/// recipe; Curator's `SimpleDistributedQueue`, kazoo and the Java recipe share the layout).
///
/// Items come out in the order of their sequence numbers. Any number of producers and consumers
/// may share a queue: the consumer whose delete of a node succeeds gets its item. See the
/// [module docs](super) for the delivery guarantees and connection states.
///
/// Cheap to clone; the clones share the items taken but not yet handed to a caller (see
/// [`SimpleDistributedQueue::take`]).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use corral_recipes::{Framework, queue::SimpleDistributedQueue};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let queue = SimpleDistributedQueue::new(&fw, "/queues/jobs");
/// queue.offer("job-1").await?;
/// queue.offer("job-2").await?;
/// assert_eq!(queue.take().await?, "job-1");
/// assert_eq!(queue.poll().await?.as_deref(), Some(&b"job-2"[..]));
/// assert_eq!(queue.poll().await?, None);
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SimpleDistributedQueue {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    fw: Framework,
    path: String,
    /// Items this process took from ZooKeeper that no caller has received yet (their take was
    /// dropped while the delete was in flight), oldest first.
    undelivered: StdMutex<VecDeque<Bytes>>,
}

impl Shared {
    fn pop(&self) -> Option<Bytes> {
        self.undelivered.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let left: Vec<Bytes> = self.undelivered.get_mut().unwrap_or_else(|e| e.into_inner()).drain(..).collect();
        requeue_in_background(&self.fw, &self.path, SIMPLE_QUEUE_PREFIX, left);
    }
}

impl SimpleDistributedQueue {
    /// A queue at `path` (created with its parents by the first offer). Nothing is sent yet.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::queue::SimpleDistributedQueue;
    ///
    /// let queue = SimpleDistributedQueue::new(&fw, "/queues/jobs");
    /// assert_eq!(queue.path(), "/queues/jobs");
    /// assert_eq!(queue.poll().await?, None); // a missing queue is an empty one
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(fw: &Framework, path: impl Into<String>) -> Self {
        let shared = Shared { fw: fw.clone(), path: path.into(), undelivered: StdMutex::new(VecDeque::new()) };
        Self { shared: Arc::new(shared) }
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
    /// use corral_recipes::queue::SimpleDistributedQueue;
    ///
    /// assert_eq!(SimpleDistributedQueue::new(&fw, "/q").path(), "/q");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &str {
        &self.shared.path
    }

    /// Adds an item at the tail; returns its node's path.
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
    /// use corral_recipes::queue::SimpleDistributedQueue;
    ///
    /// let queue = SimpleDistributedQueue::new(&fw, "/queues/jobs");
    /// let node = queue.offer(&b"\x00raw bytes"[..]).await?;
    /// assert_eq!(fw.client().get_data(&node).await?.0, &b"\x00raw bytes"[..]);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn offer(&self, item: impl Into<Bytes>) -> Result<String> {
        let spec = Create::new(CreateMode::PersistentSequential).parents();
        let put =
            self.shared.fw.create(&format!("{}/{SIMPLE_QUEUE_PREFIX}", self.shared.path), item.into(), spec).await?;
        metrics::counter!(corral_core::metrics::QUEUE_PUTS_TOTAL).increment(1);
        Ok(put)
    }

    /// Removes and returns the head item, or `None` if the queue is empty now (Curator's `poll`).
    ///
    /// # Errors
    ///
    /// As [`SimpleDistributedQueue::take`], except that it does not wait out connection errors:
    /// they are returned once the framework's retries give up.
    ///
    /// # Cancel safety
    ///
    /// As [`SimpleDistributedQueue::take`]: no item is lost.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::queue::SimpleDistributedQueue;
    ///
    /// let queue = SimpleDistributedQueue::new(&fw, "/queues/jobs");
    /// assert_eq!(queue.poll().await?, None);
    /// queue.offer("job-1").await?;
    /// assert_eq!(queue.poll().await?.as_deref(), Some(&b"job-1"[..]));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn poll(&self) -> Result<Option<Bytes>> {
        self.take_until(Some(Instant::now()), false).await
    }

    /// Removes and returns the head item, waiting for one if the queue is empty.
    ///
    /// The wait is on a watch of the queue's children, and the queue is listed again after every
    /// connection state change, so an item added while the connection was down or during a new
    /// session is found. Connection errors and session expiry are waited out (with a jittered
    /// backoff); the take goes on over the next session.
    ///
    /// # Errors
    ///
    /// [`corral_core::Error::Closed`] once the framework is closed; server errors such as NoAuth as
    /// [`corral_core::Error::Server`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: no item is lost. A take dropped while it deletes a node finishes that in the
    /// background; the item then goes to the next take or poll on this queue handle (or any of
    /// its clones), and if every handle is gone by then, back to the tail of the queue.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::queue::SimpleDistributedQueue;
    ///
    /// let queue = SimpleDistributedQueue::new(&fw, "/queues/jobs");
    /// let consumer = tokio::spawn({
    ///     let queue = queue.clone();
    ///     async move { queue.take().await }
    /// });
    /// queue.offer("job-1").await?;
    /// assert_eq!(consumer.await??, "job-1");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn take(&self) -> Result<Bytes> {
        self.take_until(None, true).await?.ok_or(Error::from(CoreError::Timeout))
    }

    /// As [`SimpleDistributedQueue::take`], waiting at most `timeout`; [`Error::TimedOut`] if no
    /// item came in time.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] when `timeout` passes first; otherwise as
    /// [`SimpleDistributedQueue::take`].
    ///
    /// # Cancel safety
    ///
    /// As [`SimpleDistributedQueue::take`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::{Error, queue::SimpleDistributedQueue};
    ///
    /// let queue = SimpleDistributedQueue::new(&fw, "/queues/jobs");
    /// let waited = queue.take_timeout(Duration::from_millis(100)).await;
    /// assert!(matches!(waited, Err(Error::TimedOut { .. })));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn take_timeout(&self, timeout: Duration) -> Result<Bytes> {
        self.take_until(Some(Instant::now() + timeout), true).await?.ok_or(Error::TimedOut { after: timeout })
    }

    /// The head item without removing it, or `None` if the queue is empty (Curator's `peek`).
    ///
    /// # Errors
    ///
    /// Connection errors once the framework's retries give up; server errors such as NoAuth as
    /// [`corral_core::Error::Server`].
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
    /// use corral_recipes::queue::SimpleDistributedQueue;
    ///
    /// let queue = SimpleDistributedQueue::new(&fw, "/queues/jobs");
    /// queue.offer("job-1").await?;
    /// assert_eq!(queue.peek().await?.as_deref(), Some(&b"job-1"[..]));
    /// assert_eq!(queue.take().await?, "job-1"); // still there
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn peek(&self) -> Result<Option<Bytes>> {
        if let Some(first) = self.shared.undelivered.lock().unwrap_or_else(|e| e.into_inner()).front() {
            return Ok(Some(first.clone()));
        }
        let fw = &self.shared.fw;
        for name in self.sorted(crate::sort::children_or_empty(fw, &self.shared.path).await?) {
            let path = format!("{}/{name}", self.shared.path);
            match fw.with_retry(|client| client.get_data(&path)).await {
                Ok((data, _)) => return Ok(Some(data)),
                Err(e) if e.is_no_node() => continue,
                Err(e) => return Err(Error::from(e)),
            }
        }
        Ok(None)
    }

    /// The `qn-` children in queue order; foreign nodes are skipped, as Curator does.
    fn sorted(&self, children: Vec<String>) -> Vec<String> {
        let mut names: Vec<String> = children
            .into_iter()
            .filter(|c| {
                let ours = c.starts_with(SIMPLE_QUEUE_PREFIX);
                if !ours {
                    tracing::debug!(path = %self.shared.path, child = %c, "foreign node in queue path");
                }
                ours
            })
            .collect();
        names.sort();
        names
    }

    /// Takes the head item; waits (with `wait`) until `deadline` for one to come.
    async fn take_until(&self, deadline: Option<Instant>, wait: bool) -> Result<Option<Bytes>> {
        let fw = self.shared.fw.clone();
        // Subscribed before the first listing, so a change during it is not missed.
        let mut states = fw.state_changes();
        let mut attempt = 0;
        loop {
            if let Some(item) = self.shared.pop() {
                return Ok(Some(item));
            }
            let (children, watcher) = match list_and_watch(&fw, &self.shared.path).await {
                Ok(listed) => listed,
                Err(e) if wait && e.core().is_some_and(is_transient) => {
                    attempt += 1;
                    tracing::debug!(path = %self.shared.path, error = %e, "queue listing failed; retrying");
                    if !pause(&fw, attempt, deadline).await {
                        return Ok(None);
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let names = self.sorted(children);
            if !names.is_empty() {
                // In a task of its own, so that a dropped take does not abandon a delete in
                // flight: the item then waits in `undelivered`.
                let shared = self.shared.clone();
                let claim = tokio::spawn(async move {
                    for name in names {
                        let path = format!("{}/{name}", shared.path);
                        if let Taken::Data(data) = take_node(&shared.fw, &path).await? {
                            shared.undelivered.lock().unwrap_or_else(|e| e.into_inner()).push_back(data);
                            return Ok(true);
                        }
                    }
                    Ok::<_, Error>(false)
                });
                match claim.await {
                    Ok(Ok(true)) => {
                        attempt = 0;
                        continue;
                    }
                    // Every listed item was taken by others: the watch has fired, list again.
                    Ok(Ok(false)) => continue,
                    Ok(Err(e)) if wait && e.core().is_some_and(is_transient) => {
                        attempt += 1;
                        if !pause(&fw, attempt, deadline).await {
                            return Ok(None);
                        }
                        continue;
                    }
                    Ok(Err(e)) => return Err(e),
                    Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
                    // The runtime is shutting down.
                    Err(_) => return Err(Error::CLOSED),
                }
            }
            if !wait || deadline.is_some_and(|d| d <= Instant::now()) {
                return Ok(None);
            }
            match wait_for_change(vec![watcher], &mut states, deadline).await {
                Woken::TimedOut => return Ok(self.shared.pop()),
                Woken::Changed | Woken::State(_) => {}
            }
        }
    }
}
