//! kazoo's `Queue` and `LockingQueue`.
//!
//! # Layout (kazoo 2.11's `kazoo/recipe/queue.py`)
//!
//! | recipe | node | kind | data |
//! |---|---|---|---|
//! | `Queue(path)` | `<path>/entry-<priority, 3 digits>-<seq>` | persistent sequential | the item |
//! | `LockingQueue(path)` | `<path>/entries/entry-<priority, 3 digits>-<seq>` | persistent sequential | the item |
//! | | `<path>/taken/<entry name>` | ephemeral, while a consumer holds the entry | the consumer's id (a uuid hex) |
//!
//! The priority is part of the name (0 to 999, lower first, 100 by default), so items are taken
//! in the order of their names: by priority, then in the order they were put.
//!
//! # Delivery
//!
//! [`Queue::get`] deletes the item as it takes it (kazoo's "no reliable consumption"): a
//! consumer that fails afterwards loses it. [`LockingQueue`] locks an entry instead (a `taken`
//! node of the consumer's session) and deletes it only on [`QueueEntry::consume`]; an entry whose
//! consumer's session ends goes back to the others. A put whose reply is lost is tried again
//! and may add the item twice, as every sequential create.

use std::time::Duration;

use crate::{Error, Result};
use bytes::Bytes;
use corral_core::Error as CoreError;
use corral_core::framework::{Create, Session};
use corral_core::{CreateMode, CreateOptions, Framework, Op};
use tokio::time::Instant;

use super::{child_path, data_or_none, errors};
use crate::queue::{Taken, Woken, list_and_watch, take_node, wait_for_change};

/// The default priority of kazoo's `put`.
pub const DEFAULT_PRIORITY: u16 = 100;

/// The name prefix of both queues' items: `entry-<priority, 3 digits>-<seq>`.
pub const ENTRY_PREFIX: &str = "entry-";

fn entry_prefix(dir: &str, priority: u16) -> Result<String> {
    if priority > 999 {
        return Err(errors::bad_argument(format!("priority must be between 0 and 999, not {priority}")));
    }
    Ok(format!("{}/{ENTRY_PREFIX}{priority:03}-", dir.trim_end_matches('/')))
}

/// The number of children of `path` (created first if missing), as kazoo's `len(queue)`.
async fn children_count(fw: &Framework, path: &str) -> Result<usize> {
    fw.ensure_path(path).await?;
    Ok(data_or_none(fw, path).await?.map_or(0, |(_, stat)| stat.num_children.max(0) as usize))
}

/// kazoo's `Queue(path)`: items with a priority, taken and deleted in one step.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use corral_recipes::kazoo::Queue;
///
/// let queue = Queue::new(&fw, "/queues/mail");
/// queue.put("later", 200).await?;
/// queue.put("first", 5).await?;
/// assert_eq!(queue.len().await?, 2);
/// assert_eq!(queue.get().await?.as_deref(), Some(&b"first"[..]));
/// assert_eq!(queue.get().await?.as_deref(), Some(&b"later"[..]));
/// assert_eq!(queue.get().await?, None); // kazoo's get does not wait
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Queue {
    fw: Framework,
    path: String,
}

impl Queue {
    /// A queue at `path`. Nothing is sent yet.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::Queue;
    ///
    /// assert_eq!(Queue::new(&fw, "/queues/mail").path(), "/queues/mail");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(fw: &Framework, path: impl Into<String>) -> Self {
        Self { fw: fw.clone(), path: path.into() }
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
    /// use corral_recipes::kazoo::Queue;
    ///
    /// assert_eq!(Queue::new(&fw, "/q").path(), "/q");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Puts an item (kazoo's `put(value, priority)`): the node
    /// `<path>/entry-<priority, 3 digits>-<seq>`; lower priorities are taken first
    /// ([`DEFAULT_PRIORITY`] is kazoo's default). Returns the node's path.
    ///
    /// # Errors
    ///
    /// [`corral_core::Error::BadArguments`] for a priority above 999 (nothing is sent); server errors such as
    /// NoAuth; connection errors once the framework's retries give up.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the item may have been put when the future is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::Queue;
    ///
    /// let node = Queue::new(&fw, "/queues/mail").put("hello", 7).await?;
    /// assert_eq!(node, "/queues/mail/entry-007-0000000000");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn put(&self, value: impl Into<Bytes>, priority: u16) -> Result<String> {
        let prefix = entry_prefix(&self.path, priority)?;
        let spec = Create::new(CreateMode::PersistentSequential).parents();
        self.fw.create(&prefix, value.into(), spec).await.map_err(Error::from)
    }

    /// Takes the first item and deletes it (kazoo's `get()`); `None` at once if the queue is
    /// empty. Items are taken in the order of their node names, as kazoo sorts them.
    ///
    /// # Errors
    ///
    /// Server errors such as NoAuth; connection errors once the framework's retries give up.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: an item whose delete was sent is lost if the future is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::Queue;
    ///
    /// let queue = Queue::new(&fw, "/queues/mail");
    /// assert_eq!(queue.get().await?, None);
    /// queue.put("a", 100).await?;
    /// assert_eq!(queue.get().await?.as_deref(), Some(&b"a"[..]));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn get(&self) -> Result<Option<Bytes>> {
        loop {
            let mut children = crate::sort::children_or_empty(&self.fw, &self.path).await?;
            if children.is_empty() {
                return Ok(None);
            }
            children.sort();
            for name in children {
                if let Taken::Data(data) = take_node(&self.fw, &child_path(&self.path, &name)).await? {
                    return Ok(Some(data));
                }
            }
            // Every listed item went to other consumers: look again.
        }
    }

    /// The number of items (kazoo's `len(queue)`); the queue's node is created if missing.
    ///
    /// # Errors
    ///
    /// Server errors such as NoAuth; connection errors once the framework's retries give up.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in effect: it reads, after creating the queue's node if needed.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::Queue;
    ///
    /// let queue = Queue::new(&fw, "/queues/mail");
    /// assert_eq!(queue.len().await?, 0);
    /// queue.put("a", 100).await?;
    /// assert_eq!(queue.len().await?, 1);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn len(&self) -> Result<usize> {
        children_count(&self.fw, &self.path).await
    }
}

/// kazoo's `LockingQueue(path)`: a consumer locks an entry (a `taken` node of its session) and
/// deletes it only once done with it, so an entry whose consumer fails goes to another.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use corral_recipes::kazoo::LockingQueue;
///
/// let queue = LockingQueue::new(&fw, "/queues/jobs");
/// queue.put("job-1", 100).await?;
/// let entry = queue.get().await?;
/// assert_eq!(entry.value(), "job-1");
/// assert!(entry.holds_lock().await?);
/// assert!(entry.consume().await?); // done: deleted with its lock
/// assert_eq!(queue.len().await?, 0);
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct LockingQueue {
    fw: Framework,
    entries: String,
    taken: String,
}

impl LockingQueue {
    /// A locking queue at `path` (entries under `<path>/entries`, locks under `<path>/taken`).
    /// Nothing is sent yet.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::LockingQueue;
    ///
    /// let queue = LockingQueue::new(&fw, "/queues/jobs");
    /// assert_eq!(queue.put("x", 100).await?, "/queues/jobs/entries/entry-100-0000000000");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(fw: &Framework, path: impl Into<String>) -> Self {
        let path = path.into();
        Self { fw: fw.clone(), entries: child_path(&path, "entries"), taken: child_path(&path, "taken") }
    }

    async fn ensure_paths(&self) -> Result<()> {
        self.fw.ensure_path(&self.taken).await?;
        self.fw.ensure_path(&self.entries).await.map_err(Error::from)
    }

    /// Puts an entry (kazoo's `put(value, priority)`); returns its node's path.
    ///
    /// # Errors
    ///
    /// As [`Queue::put`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the entry may have been put when the future is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::LockingQueue;
    ///
    /// let queue = LockingQueue::new(&fw, "/queues/jobs");
    /// queue.put("low", 900).await?;
    /// queue.put("high", 1).await?;
    /// assert_eq!(queue.get().await?.value(), "high");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn put(&self, value: impl Into<Bytes>, priority: u16) -> Result<String> {
        let prefix = entry_prefix(&self.entries, priority)?;
        self.ensure_paths().await?;
        self.fw.create(&prefix, value.into(), CreateMode::PersistentSequential).await.map_err(Error::from)
    }

    /// Puts several entries in one transaction (kazoo's `put_all`): all or none.
    ///
    /// # Errors
    ///
    /// As [`Queue::put`]; [`corral_core::Error::MultiFailed`] if the transaction was refused.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the entries may have been put when the future is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::LockingQueue;
    ///
    /// let queue = LockingQueue::new(&fw, "/queues/jobs");
    /// queue.put_all(["a", "b", "c"], 100).await?;
    /// assert_eq!(queue.len().await?, 3);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn put_all<V: Into<Bytes>>(&self, values: impl IntoIterator<Item = V>, priority: u16) -> Result<()> {
        let prefix = entry_prefix(&self.entries, priority)?;
        self.ensure_paths().await?;
        // The framework's ACL provider chooses the entries' ACL, as for every recipe node.
        let options =
            CreateOptions::new(CreateMode::PersistentSequential).with_acl(self.fw.acl_provider().acl_for_path(&prefix));
        let ops: Vec<Op> = values.into_iter().map(|v| Op::create(prefix.clone(), v.into(), options.clone())).collect();
        if ops.is_empty() {
            return Ok(());
        }
        self.fw.transaction(ops).await.map(|_| ()).map_err(Error::from)
    }

    /// Locks and returns the first entry no one holds, waiting for one (kazoo's `get()`).
    ///
    /// # Errors
    ///
    /// Server errors such as NoAuth; connection errors once the framework's retries give up;
    /// [`corral_core::Error::Closed`] if the framework closes.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: an entry locked by a dropped `get` is unlocked in the background.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::LockingQueue;
    ///
    /// let queue = LockingQueue::new(&fw, "/queues/jobs");
    /// let consumer = tokio::spawn({
    ///     let queue = queue.clone();
    ///     async move { queue.get().await }
    /// });
    /// queue.put("job-1", 100).await?;
    /// let entry = consumer.await??;
    /// assert_eq!(entry.value(), "job-1");
    /// # entry.consume().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn get(&self) -> Result<QueueEntry> {
        self.get_until(None).await?.ok_or(Error::from(CoreError::Timeout))
    }

    /// As [`LockingQueue::get`], waiting at most `timeout` (kazoo's `get(timeout)`); `None` if
    /// no entry came free in time.
    ///
    /// # Errors
    ///
    /// As [`LockingQueue::get`].
    ///
    /// # Cancel safety
    ///
    /// As [`LockingQueue::get`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::kazoo::LockingQueue;
    ///
    /// let queue = LockingQueue::new(&fw, "/queues/jobs");
    /// queue.put("job-1", 100).await?;
    /// let entry = queue.get_timeout(Duration::from_secs(5)).await?;
    /// // Locked by us: nobody else gets it.
    /// assert!(matches!(queue.get_timeout(Duration::from_millis(50)).await, Err(corral_recipes::Error::TimedOut { .. })));
    /// entry.release().await?; // back to the others
    /// queue.get_timeout(Duration::from_secs(5)).await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn get_timeout(&self, timeout: Duration) -> Result<QueueEntry> {
        self.get_until(Some(Instant::now() + timeout)).await?.ok_or(Error::TimedOut { after: timeout })
    }

    /// The number of entries, locked ones included (kazoo's `len(queue)`).
    ///
    /// # Errors
    ///
    /// As [`Queue::len`].
    ///
    /// # Cancel safety
    ///
    /// As [`Queue::len`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::LockingQueue;
    ///
    /// let queue = LockingQueue::new(&fw, "/queues/jobs");
    /// queue.put("job-1", 100).await?;
    /// let entry = queue.get().await?;
    /// assert_eq!(queue.len().await?, 1); // locked, still there
    /// # entry.consume().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn len(&self) -> Result<usize> {
        self.ensure_paths().await?;
        children_count(&self.fw, &self.entries).await
    }

    async fn get_until(&self, deadline: Option<Instant>) -> Result<Option<QueueEntry>> {
        self.ensure_paths().await?;
        let mut states = self.fw.state_changes();
        loop {
            let (mut entries, entries_watch) = list_and_watch(&self.fw, &self.entries).await?;
            let (taken, taken_watch) = list_and_watch(&self.fw, &self.taken).await?;
            entries.sort();
            for name in entries.iter().filter(|e| !taken.contains(e)) {
                if let Some(entry) = self.take(name).await? {
                    return Ok(Some(entry));
                }
            }
            if deadline.is_some_and(|d| d <= Instant::now()) {
                return Ok(None);
            }
            if let Woken::TimedOut = wait_for_change(vec![entries_watch, taken_watch], &mut states, deadline).await {
                return Ok(None);
            }
        }
    }

    /// kazoo's `_take`: locks `name` with a `taken` node of the current session; `None` if
    /// someone else holds it or it is gone.
    async fn take(&self, name: &str) -> Result<Option<QueueEntry>> {
        let session = match self.fw.session().await {
            Ok(session) => session,
            Err(CoreError::Timeout) => return Ok(None),
            Err(e) => return Err(Error::from(e)),
        };
        // A fresh id per lock: an idempotent create that finds a node with it after a lost
        // reply knows the node is its own.
        let id = uuid::Uuid::new_v4().simple().to_string();
        let lock_path = child_path(&self.taken, name);
        let spec = Create::new(CreateMode::Ephemeral).idempotent();
        match session.create(&lock_path, id.clone(), spec).await {
            Ok(_) => {}
            // Someone else's lock; or, NoNode, a lock found and gone again before the create
            // could tell whose it was (its entry consumed or released meanwhile): look again.
            Err(e) if e.is_node_exists() || e.is_no_node() => return Ok(None),
            Err(CoreError::SessionLost { .. }) => return Ok(None),
            Err(e) => return Err(Error::from(e)),
        }
        // From here the entry owns the lock: dropped, it unlocks.
        let mut entry = QueueEntry {
            session,
            id,
            entry_path: child_path(&self.entries, name),
            lock_path,
            value: Bytes::new(),
            done: false,
        };
        match data_or_none(&self.fw, &entry.entry_path).await? {
            Some((value, _)) => {
                entry.value = value;
                Ok(Some(entry))
            }
            // Consumed already: unlock (on drop) and look further.
            None => Ok(None),
        }
    }
}

/// An entry of a [`LockingQueue`], locked by this consumer's session: [`QueueEntry::consume`]
/// it when done, or [`QueueEntry::release`] it to the others. Dropping it releases it in the
/// background.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use corral_recipes::kazoo::LockingQueue;
///
/// let queue = LockingQueue::new(&fw, "/queues/jobs");
/// queue.put("job-1", 100).await?;
/// let entry = queue.get().await?;
/// assert!(entry.lock_path().starts_with("/queues/jobs/taken/entry-100-"));
/// entry.consume().await?;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct QueueEntry {
    session: Session,
    id: String,
    entry_path: String,
    lock_path: String,
    value: Bytes,
    done: bool,
}

impl QueueEntry {
    /// The entry's data.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::LockingQueue;
    ///
    /// let queue = LockingQueue::new(&fw, "/queues/jobs");
    /// queue.put(vec![1u8, 2, 3], 100).await?;
    /// assert_eq!(queue.get().await?.value(), &[1u8, 2, 3][..]);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn value(&self) -> &Bytes {
        &self.value
    }

    /// The entry's node, `<path>/entries/<name>`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::LockingQueue;
    ///
    /// let queue = LockingQueue::new(&fw, "/queues/jobs");
    /// let node = queue.put("x", 100).await?;
    /// assert_eq!(queue.get().await?.entry_path(), node);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn entry_path(&self) -> &str {
        &self.entry_path
    }

    /// The lock's node, `<path>/taken/<name>`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::LockingQueue;
    ///
    /// let queue = LockingQueue::new(&fw, "/queues/jobs");
    /// queue.put("x", 100).await?;
    /// let entry = queue.get().await?;
    /// assert!(fw.client().exists(entry.lock_path()).await?.is_some());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn lock_path(&self) -> &str {
        &self.lock_path
    }

    /// Whether this consumer still holds the entry's lock (kazoo's `holds_lock()`): the lock
    /// node, read after a sync, holds this consumer's id and belongs to its session.
    ///
    /// # Errors
    ///
    /// Connection errors once the framework's retries give up.
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
    /// use corral_recipes::kazoo::LockingQueue;
    ///
    /// let queue = LockingQueue::new(&fw, "/queues/jobs");
    /// queue.put("x", 100).await?;
    /// let entry = queue.get().await?;
    /// assert!(entry.holds_lock().await?);
    /// server.expire_session(fw.client().session_id());
    /// # fw.session().await?; // the next session
    /// assert!(!entry.holds_lock().await?); // the lock went with the session
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn holds_lock(&self) -> Result<bool> {
        if !self.session.is_live() {
            return Ok(false);
        }
        let fw = self.session.framework();
        let path = self.lock_path.clone();
        fw.with_retry(|c| {
            let path = path.clone();
            async move { c.sync(&path).await }
        })
        .await?;
        Ok(data_or_none(fw, &self.lock_path)
            .await?
            .is_some_and(|(data, stat)| data == self.id.as_bytes() && stat.ephemeral_owner == self.session.id()))
    }

    /// Deletes the entry with its lock, in one transaction on the lock's session (kazoo's
    /// `consume()`); `false` (nothing deleted) if the lock is no longer held.
    ///
    /// # Errors
    ///
    /// Server errors such as NoAuth; connection errors once the retries within the session
    /// give up.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the entry may have been consumed when the future is dropped (if not,
    /// the dropped entry is released in the background).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::LockingQueue;
    ///
    /// let queue = LockingQueue::new(&fw, "/queues/jobs");
    /// queue.put("x", 100).await?;
    /// let entry = queue.get().await?;
    /// let node = entry.entry_path().to_owned();
    /// assert!(entry.consume().await?);
    /// assert_eq!(fw.client().exists(&node).await?, None);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn consume(mut self) -> Result<bool> {
        self.finish(true).await
    }

    /// Unlocks the entry without consuming it, so that another consumer gets it (kazoo's
    /// `release()`); `false` if the lock is no longer held.
    ///
    /// # Errors
    ///
    /// As [`QueueEntry::consume`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped release is finished in the background.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::LockingQueue;
    ///
    /// let queue = LockingQueue::new(&fw, "/queues/jobs");
    /// queue.put("x", 100).await?;
    /// assert!(queue.get().await?.release().await?);
    /// assert_eq!(queue.get().await?.value(), "x"); // again
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn release(mut self) -> Result<bool> {
        self.finish(false).await
    }

    async fn finish(&mut self, consume: bool) -> Result<bool> {
        // Ours only if it holds our id on our session (which with_retry below never leaves).
        let lock = self.lock_path.clone();
        let found = self
            .session
            .with_retry(|c| {
                let lock = lock.clone();
                async move {
                    match c.get_data(&lock).await {
                        Ok(found) => Ok(Some(found)),
                        Err(e) if e.is_no_node() => Ok(None),
                        Err(e) => Err(e),
                    }
                }
            })
            .await;
        let stat = match found {
            Ok(Some((data, stat))) if data == self.id.as_bytes() && stat.ephemeral_owner == self.session.id() => stat,
            Ok(_) | Err(CoreError::SessionLost { .. }) => {
                self.done = true;
                return Ok(false);
            }
            Err(e) => return Err(Error::from(e)),
        };
        let mut ops = vec![Op::delete(self.lock_path.clone(), Some(stat.version))];
        if consume {
            ops.push(Op::delete(self.entry_path.clone(), None));
        }
        let applied = self.session.with_retry(|c| c.multi(ops.clone())).await;
        match applied {
            Ok(_) => {
                self.done = true;
                Ok(true)
            }
            Err(CoreError::MultiFailed { .. }) if !self.lock_still_ours().await? => {
                // A try whose reply was lost was applied (nothing else deletes our lock).
                self.done = true;
                Ok(true)
            }
            Err(CoreError::SessionLost { .. }) => {
                self.done = true;
                Ok(false)
            }
            Err(e) => Err(Error::from(e)),
        }
    }

    async fn lock_still_ours(&self) -> Result<bool> {
        let lock = self.lock_path.clone();
        let found = self
            .session
            .with_retry(|c| {
                let lock = lock.clone();
                async move { c.exists(&lock).await }
            })
            .await?;
        Ok(found.is_some_and(|s| s.ephemeral_owner == self.session.id()))
    }
}

impl Drop for QueueEntry {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(path = %self.lock_path, "no Tokio runtime to unlock the entry; it stays locked until the session ends");
            return;
        };
        let (session, path) = (self.session.clone(), std::mem::take(&mut self.lock_path));
        handle.spawn(async move { crate::task::delete_on_session(&session, &path).await });
    }
}
