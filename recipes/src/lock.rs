//! [`Mutex`]: a distributed lock with Curator's `InterProcessMutex` layout and semantics
//! (without re-entrancy), whose guards know when they stop being valid.
//!
//! # How it works
//!
//! Each contender creates an ephemeral sequential node `<dir>/_c_<uuid>-lock-<seq>` (Curator's
//! protected name) and sorts the children of `<dir>` with Curator's rule (by the sequence after
//! the last `lock-`). The first one holds the lock. Every other contender watches only its
//! predecessor (with a getData watch, as Curator does), so a release wakes exactly one waiter.
//! A Java process using Curator's `InterProcessMutex` on the same path takes part in the same
//! queue.
//!
//! The uncontended path costs one round trip: the create and the getChildren are sent back to
//! back, and ZooKeeper answers a session's requests in order, so the listing already contains
//! the new node.
//!
//! # Connection states
//!
//! | state | what happens |
//! |---|---|
//! | SUSPENDED | a held lock becomes invalid under [`ErrorPolicy::Standard`] ([`MutexGuard::is_valid`] turns false, [`MutexGuard::invalidated`] resolves); waiters keep waiting (their watch is restored on reconnect) |
//! | RECONNECTED (same epoch) | nothing: under [`ErrorPolicy::SessionOnly`] the guard stayed valid |
//! | LOST | the lock node is gone with the session: every guard of that session is invalid for good; waiting `acquire` calls fail with [`Error::SessionExpired`] |
//!
//! A guard never becomes valid again: after losing the lock, drop it (its node is deleted in the
//! background if it still exists) and acquire again.
//!
//! # Fencing
//!
//! A lock in a distributed system can be lost while its holder is paused. Put
//! [`MutexGuard::fencing_check`] into your own transaction to make a write conditional on still
//! holding the lock, or pass [`MutexGuard::fencing_token`] (the lock node's creation zxid,
//! increasing with every acquisition) to the resource you protect.

use std::time::Duration;

use bytes::Bytes;
use corral_core::framework::{Delete, PROTECTED_PREFIX};
use corral_core::{ConnectionStateChange, CreateMode, Error, ErrorPolicy, Framework, Op, Result, WatchedEvent};
use tokio::sync::watch;
use tokio::time::Instant;

/// Curator's lock node name: a [`Mutex`] contender's node is `<dir>/_c_<uuid>-lock-<sequence>`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use corral_recipes::lock::{LOCK_NAME, Mutex};
///
/// let guard = Mutex::new(&fw, "/locks/jobs").acquire().await?;
/// assert!(guard.path().starts_with("/locks/jobs/_c_"));
/// assert!(guard.path().contains(LOCK_NAME));
/// # drop(guard);
/// # fw.close().await;
/// # Ok(()) }
/// ```
pub const LOCK_NAME: &str = "lock-";

/// A distributed mutex on a ZooKeeper path (Curator's `InterProcessMutex` without
/// re-entrancy). Cheap to clone; every clone contends separately.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::time::Duration;
/// use corral_recipes::{Framework, lock::Mutex};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let mutex = Mutex::new(&fw, "/locks/jobs");
/// let guard = mutex.acquire().await?;
/// assert!(guard.is_valid());
/// // Nobody else gets it meanwhile.
/// assert!(Mutex::new(&fw, "/locks/jobs").try_acquire().await?.is_none());
/// guard.release().await?;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Mutex {
    fw: Framework,
    dir: String,
    data: Bytes,
    kind: Kind,
}

/// Which lock of Curator's family a contender takes part in: the node name, the sort rule and
/// the rule for who holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `InterProcessMutex`: `lock-` nodes, the first holds it.
    Exclusive,
    /// The read side of `InterProcessReadWriteLock`: `__READ__` nodes, held while no writer is
    /// ahead.
    Read,
    /// The write side: `__WRIT__` nodes, held when first among readers and writers.
    Write,
}

/// Curator's read-lock node name: a reader of a
/// [`ReadWriteLock`](crate::read_write_lock::ReadWriteLock) has the node
/// `<dir>/_c_<uuid>-__READ__<sequence>`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use corral_recipes::{lock::READ_LOCK_NAME, read_write_lock::ReadWriteLock};
///
/// let read = ReadWriteLock::new(&fw, "/locks/catalog").read_lock().acquire().await?;
/// assert!(read.path().contains(READ_LOCK_NAME));
/// # drop(read);
/// # fw.close().await;
/// # Ok(()) }
/// ```
pub const READ_LOCK_NAME: &str = "__READ__";
/// Curator's write-lock node name: a writer of a
/// [`ReadWriteLock`](crate::read_write_lock::ReadWriteLock) has the node
/// `<dir>/_c_<uuid>-__WRIT__<sequence>`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use corral_recipes::{lock::WRITE_LOCK_NAME, read_write_lock::ReadWriteLock};
///
/// let write = ReadWriteLock::new(&fw, "/locks/catalog").write_lock().acquire().await?;
/// assert!(write.path().contains(WRITE_LOCK_NAME));
/// # drop(write);
/// # fw.close().await;
/// # Ok(()) }
/// ```
pub const WRITE_LOCK_NAME: &str = "__WRIT__";

impl Kind {
    fn node_name(self) -> &'static str {
        match self {
            Self::Exclusive => LOCK_NAME,
            Self::Read => READ_LOCK_NAME,
            Self::Write => WRITE_LOCK_NAME,
        }
    }

    /// Sorts with Curator's rule; readers and writers of one lock sort together.
    fn sort(self, children: &mut [String]) {
        match self {
            Self::Exclusive => crate::sort::sort_children(children, LOCK_NAME),
            Self::Read | Self::Write => children.sort_by_key(|c| rw_key(c)),
        }
    }

    /// `None` if the contender at `index` holds the lock, otherwise the index to watch.
    fn watch_target(self, children: &[String], index: usize) -> Option<usize> {
        match self {
            Self::Exclusive | Self::Write => index.checked_sub(1),
            Self::Read => {
                let first_writer = children.iter().position(|c| c.contains(WRITE_LOCK_NAME));
                match first_writer {
                    Some(w) if w < index => Some(w),
                    _ => None,
                }
            }
        }
    }
}

/// Curator's read-write sort key: `__READ__` counts as `__WRIT__`, then what follows the last one.
fn rw_key(child: &str) -> String {
    let unified = child.replace(READ_LOCK_NAME, WRITE_LOCK_NAME);
    crate::sort::sort_key(&unified, WRITE_LOCK_NAME).to_owned()
}

impl Mutex {
    /// A mutex whose contenders are the children of `dir`.
    ///
    /// Nothing is sent to the server until the first acquisition, which creates `dir` (and its
    /// missing parents) as containers if needed. The mutex is not re-entrant: a second acquisition
    /// through the same value, or a clone, is one more contender and waits like any other.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::lock::Mutex;
    ///
    /// let mutex = Mutex::new(&fw, "/locks/jobs");
    /// let guard = mutex.acquire().await?;
    /// // Not re-entrant: the same mutex cannot take it twice.
    /// assert!(mutex.try_acquire().await?.is_none());
    /// guard.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(fw: &Framework, dir: impl Into<String>) -> Self {
        Self::with_kind(fw, dir, Kind::Exclusive)
    }

    pub(crate) fn with_kind(fw: &Framework, dir: impl Into<String>, kind: Kind) -> Self {
        Self { fw: fw.clone(), dir: dir.into(), data: Bytes::new(), kind }
    }

    pub(crate) fn framework(&self) -> &Framework {
        &self.fw
    }

    pub(crate) fn dir(&self) -> &str {
        &self.dir
    }

    /// Stores `data` in this contender's lock node (Curator stores the host address there).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::lock::Mutex;
    ///
    /// let guard = Mutex::new(&fw, "/locks/jobs").with_data("host-1:8080").acquire().await?;
    /// let (data, _) = fw.client().get_data(guard.path()).await?;
    /// assert_eq!(&data[..], b"host-1:8080");
    /// # guard.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn with_data(mut self, data: impl Into<Bytes>) -> Self {
        self.data = data.into();
        self
    }

    /// The lock directory.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::lock::Mutex;
    /// assert_eq!(Mutex::new(&fw, "/locks/jobs").path(), "/locks/jobs");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &str {
        &self.dir
    }

    /// Waits until the lock is held.
    ///
    /// # Errors
    ///
    /// - [`Error::SessionExpired`] if the session is lost while waiting (the queue position went
    ///   with it).
    /// - [`Error::Timeout`] if the framework is not connected within its connection timeout when
    ///   the lock node is to be created; [`Error::Closed`] if the framework is closed.
    /// - Connection errors once the retry policy gives up; server errors such as NoAuth as
    ///   [`Error::Server`].
    ///
    /// Once this contender's node exists, it is deleted (in the background) on every error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe once this contender's node exists: dropping the future then deletes the node (in
    /// the background), so an abandoned acquisition does not block the others. Not while the
    /// node's create request is waiting for its reply (the first round trip, or a retry of it): a
    /// node created then is not known to the future and is not deleted, so it stays in the queue,
    /// blocking every later contender, until the session ends.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::lock::Mutex;
    ///
    /// let mutex = Mutex::new(&fw, "/locks/jobs");
    /// let first = mutex.acquire().await?;
    /// let waiter = tokio::spawn({
    ///     let mutex = mutex.clone();
    ///     async move { mutex.acquire().await }
    /// });
    /// first.release().await?;
    /// // The waiter gets the lock once it is released.
    /// let second = waiter.await??;
    /// assert!(second.is_valid());
    /// # second.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn acquire(&self) -> Result<MutexGuard> {
        match self.acquire_until(None, None).await? {
            Some(guard) => Ok(guard),
            None => Err(Error::Timeout),
        }
    }

    /// Waits at most `timeout` for the lock; `Ok(None)` if it was not acquired in time (this
    /// contender's node is then deleted before returning).
    ///
    /// The timeout bounds the wait in the queue; creating the node takes a round trip first
    /// however long `timeout` is.
    ///
    /// # Errors
    ///
    /// As [`Mutex::acquire`].
    ///
    /// # Cancel safety
    ///
    /// As [`Mutex::acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::lock::Mutex;
    ///
    /// let mutex = Mutex::new(&fw, "/locks/jobs");
    /// let held = mutex.acquire().await?;
    /// assert!(mutex.acquire_timeout(Duration::from_millis(100)).await?.is_none());
    /// held.release().await?;
    /// let guard = mutex.acquire_timeout(Duration::from_secs(10)).await?;
    /// assert!(guard.is_some());
    /// # drop(guard);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<MutexGuard>> {
        self.acquire_until(Some(Instant::now() + timeout), None).await
    }

    /// Takes the lock only if it can be had without waiting; `Ok(None)` otherwise.
    ///
    /// It still costs a round trip: the contender's node is created, and deleted again if it is not
    /// first.
    ///
    /// # Errors
    ///
    /// As [`Mutex::acquire`].
    ///
    /// # Cancel safety
    ///
    /// As [`Mutex::acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::lock::Mutex;
    ///
    /// let guard = Mutex::new(&fw, "/locks/jobs").try_acquire().await?.expect("nobody holds it");
    /// assert!(Mutex::new(&fw, "/locks/jobs").try_acquire().await?.is_none());
    /// guard.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn try_acquire(&self) -> Result<Option<MutexGuard>> {
        self.acquire_until(Some(Instant::now()), None).await
    }

    /// The contenders' node names (not paths), in lock order (the holder first); an empty list if
    /// the directory does not exist.
    ///
    /// # Errors
    ///
    /// Connection errors after retries; server errors such as NoAuth as [`Error::Server`].
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
    /// use corral_recipes::lock::Mutex;
    ///
    /// let mutex = Mutex::new(&fw, "/locks/jobs");
    /// assert!(mutex.participant_nodes().await?.is_empty());
    /// let guard = mutex.acquire().await?;
    /// let nodes = mutex.participant_nodes().await?;
    /// assert_eq!(guard.path(), format!("/locks/jobs/{}", nodes[0]));
    /// # guard.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn participant_nodes(&self) -> Result<Vec<String>> {
        let dir = self.dir.clone();
        let mut children = self
            .fw
            .with_retry(move |client| {
                let dir = dir.clone();
                async move {
                    match client.get_children(&dir).await {
                        Err(e) if e.is_no_node() => Ok(Vec::new()),
                        other => other,
                    }
                }
            })
            .await?;
        self.kind.sort(&mut children);
        Ok(children)
    }

    /// Waits for the lock until it is held, `cancel` turns true (then this contender's node is
    /// deleted before returning `Ok(None)`), or `deadline` passes.
    pub(crate) async fn acquire_cancellable(&self, cancel: watch::Receiver<bool>) -> Result<Option<MutexGuard>> {
        self.acquire_until(None, Some(cancel)).await
    }

    async fn acquire_until(
        &self,
        deadline: Option<Instant>,
        mut cancel: Option<watch::Receiver<bool>>,
    ) -> Result<Option<MutexGuard>> {
        let mut cleanup = NodeCleanup { fw: self.fw.clone(), path: None };
        let (path, created, mut children) = self.create_node().await?;
        cleanup.path = Some(path.clone());
        let name = corral_core::proto::path::name(&path).to_owned();
        let states = self.fw.connection_state();
        loop {
            if let Some(list) = children.take() {
                let mut list = list;
                self.kind.sort(&mut list);
                let Some(index) = list.iter().position(|c| *c == name) else {
                    // Our node is gone: the session that made it ended.
                    return Err(Error::SessionExpired);
                };
                let Some(watch_index) = self.kind.watch_target(&list, index) else {
                    cleanup.path = None;
                    return Ok(Some(MutexGuard {
                        fw: self.fw.clone(),
                        path,
                        epoch: created.epoch,
                        connection: created.connection,
                        session_id: created.session_id,
                        czxid: created.czxid,
                        states,
                        released: std::sync::atomic::AtomicBool::new(false),
                    }));
                };
                let predecessor = format!("{}/{}", self.dir, list[watch_index]);
                match self.wait_for(&predecessor, deadline, created.epoch, cancel.as_mut()).await? {
                    Wait::Changed => {}
                    Wait::TimedOut => {
                        let _ = cleanup.delete_now().await;
                        return Ok(None);
                    }
                }
            }
            if self.fw.current_state().epoch != created.epoch {
                return Err(Error::SessionExpired);
            }
            let dir = self.dir.clone();
            children = Some(
                self.fw
                    .with_retry(move |client| {
                        let dir = dir.clone();
                        async move { client.get_children(&dir).await }
                    })
                    .await?,
            );
        }
    }

    /// Waits until `predecessor` changes (deleted), the deadline passes, or the session is lost.
    async fn wait_for(
        &self,
        predecessor: &str,
        deadline: Option<Instant>,
        epoch: u64,
        cancel: Option<&mut watch::Receiver<bool>>,
    ) -> Result<Wait> {
        let cancelled = async {
            match cancel {
                Some(rx) => {
                    let _ = rx.wait_for(|c| *c).await;
                }
                None => std::future::pending().await,
            }
        };
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return Ok(Wait::TimedOut);
        }
        let pred = predecessor.to_owned();
        let watched = self
            .fw
            .with_retry(move |client| {
                let pred = pred.clone();
                async move {
                    match client.get_data_and_watch(&pred).await {
                        Ok((_, _, watcher)) => Ok(Some(watcher)),
                        Err(e) if e.is_no_node() => Ok(None),
                        Err(e) => Err(e),
                    }
                }
            })
            .await?;
        let Some(watcher) = watched else {
            return Ok(Wait::Changed);
        };
        let mut states = self.fw.connection_state();
        let lost = async {
            let _ = states.wait_for(|s| s.epoch != epoch || s.state == corral_core::ConnectionState::Lost).await;
        };
        tokio::select! {
            event = watcher => {
                if is_session_end(&event) && self.fw.current_state().epoch != epoch {
                    return Err(Error::SessionExpired);
                }
                Ok(Wait::Changed)
            }
            _ = sleep_until_opt(deadline) => Ok(Wait::TimedOut),
            _ = cancelled => Ok(Wait::TimedOut),
            _ = lost => Err(Error::SessionExpired),
        }
    }

    /// Creates this contender's node and, in the same round trip, lists the directory.
    async fn create_node(&self) -> Result<(String, Created, Option<Vec<String>>)> {
        let prefix = format!("{PROTECTED_PREFIX}{}-", uuid::Uuid::new_v4());
        let target = format!("{}/{prefix}{}", self.dir, self.kind.node_name());
        let mut attempt = 0u32;
        let start = Instant::now();
        loop {
            attempt += 1;
            // Take the client and the state of one and the same connected session.
            self.fw.wait_until_connected(self.fw.connection_timeout()).await?;
            let state = self.fw.current_state();
            let client = self.fw.client();
            if client.session_id() != state.session_id || !state.state.is_connected() {
                continue;
            }
            // Pipelined: ZooKeeper answers in order, so the listing includes our node.
            let create = client.create(&target, self.data.clone(), CreateMode::EphemeralSequential);
            let list = client.get_children(&self.dir);
            let error = match create.await {
                Ok((path, stat)) => {
                    let children = list.await.ok();
                    let created = Created::new(state, stat.czxid);
                    return Ok((path, created, children));
                }
                Err(e) => e,
            };
            drop(list);
            if error.is_no_node() {
                self.fw.ensure_container_path(&self.dir).await?;
                continue;
            }
            let policy = self.fw.retry_policy();
            let retryable = policy.allows(&error) || matches!(error, Error::SessionExpired | Error::Closed);
            let Some(delay) = policy.next_delay(attempt, start.elapsed()).filter(|_| retryable) else {
                return Err(error);
            };
            self.fw.wait_until_connected(self.fw.connection_timeout()).await.map_err(|_| error.clone())?;
            tokio::time::sleep(delay).await;
            // The create may have succeeded before the connection dropped: find it by prefix.
            if let Some(found) = self.find_by_prefix(&prefix).await? {
                return Ok(found);
            }
        }
    }

    async fn find_by_prefix(&self, prefix: &str) -> Result<Option<(String, Created, Option<Vec<String>>)>> {
        let state = self.fw.current_state();
        let client = self.fw.client();
        let children = match client.get_children(&self.dir).await {
            Ok(c) => c,
            Err(e) if e.is_no_node() => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(name) = children.iter().find(|c| c.starts_with(prefix)) else {
            return Ok(None);
        };
        let path = format!("{}/{name}", self.dir);
        match client.exists(&path).await? {
            Some(stat) if stat.ephemeral_owner == client.session_id() && state.session_id == client.session_id() => {
                let created = Created::new(state, stat.czxid);
                Ok(Some((path, created, Some(children))))
            }
            Some(_) => {
                // Left by an older session: not ours.
                let _ = self.fw.delete(&path, Delete::new().guaranteed().idempotent()).await;
                Ok(None)
            }
            None => Ok(None),
        }
    }
}

fn is_session_end(event: &WatchedEvent) -> bool {
    event.is_session_end()
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

enum Wait {
    Changed,
    TimedOut,
}

/// What creating the lock node established.
#[derive(Debug, Clone, Copy)]
struct Created {
    epoch: u64,
    connection: u64,
    session_id: i64,
    czxid: i64,
}

impl Created {
    fn new(state: ConnectionStateChange, czxid: i64) -> Self {
        Self { epoch: state.epoch, connection: state.connection, session_id: state.session_id, czxid }
    }
}

/// Deletes an abandoned contender's node, in the background if dropped.
struct NodeCleanup {
    fw: Framework,
    path: Option<String>,
}

impl NodeCleanup {
    async fn delete_now(&mut self) -> Result<()> {
        match self.path.take() {
            Some(path) => self.fw.delete(&path, Delete::new().guaranteed().idempotent()).await,
            None => Ok(()),
        }
    }
}

impl Drop for NodeCleanup {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            delete_in_background(&self.fw, path);
        }
    }
}

fn delete_in_background(fw: &Framework, path: String) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(%path, "no runtime to delete the lock node; it goes with the session");
        return;
    };
    let fw = fw.clone();
    handle.spawn(async move {
        if let Err(e) = fw.delete(&path, Delete::new().guaranteed().idempotent()).await {
            tracing::debug!(%path, error = %e, "lock node delete continues in the background");
        }
    });
}

/// Proof of holding a [`Mutex`]. Release it with [`MutexGuard::release`]; dropping it releases
/// in the background (on the current Tokio runtime; dropped outside any runtime, the node stays
/// until the session ends).
///
/// A guard knows when it stops being valid: under [`ErrorPolicy::Standard`] as soon as the
/// connection is SUSPENDED, under [`ErrorPolicy::SessionOnly`] when the session is LOST.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use std::time::Duration;
/// use corral_recipes::lock::Mutex;
///
/// let mutex = Mutex::new(&fw, "/locks/jobs");
/// {
///     let guard = mutex.acquire().await?;
///     assert!(guard.is_valid());
/// } // dropped: released in the background
/// assert!(mutex.acquire_timeout(Duration::from_secs(10)).await?.is_some());
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MutexGuard {
    fw: Framework,
    path: String,
    epoch: u64,
    connection: u64,
    session_id: i64,
    czxid: i64,
    states: watch::Receiver<ConnectionStateChange>,
    released: std::sync::atomic::AtomicBool,
}

impl MutexGuard {
    /// A guard for a lock node created outside the contention loop (a downgrade's read node).
    pub(crate) fn adopt(fw: &Framework, path: String, state: ConnectionStateChange, czxid: i64) -> Self {
        let created = Created::new(state, czxid);
        MutexGuard {
            fw: fw.clone(),
            path,
            epoch: created.epoch,
            connection: created.connection,
            session_id: created.session_id,
            czxid: created.czxid,
            states: fw.connection_state(),
            released: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The lock node's path.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::lock::Mutex;
    /// let guard = Mutex::new(&fw, "/locks/jobs").acquire().await?;
    /// assert!(guard.path().starts_with("/locks/jobs/_c_"));
    /// # guard.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The lock node's creation zxid: larger for every later acquisition of this lock, so the
    /// protected resource can refuse writes carrying an older token.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::lock::Mutex;
    ///
    /// let mutex = Mutex::new(&fw, "/locks/jobs");
    /// let first = mutex.acquire().await?;
    /// let token = first.fencing_token();
    /// first.release().await?;
    /// let second = mutex.acquire().await?;
    /// assert!(second.fencing_token() > token);
    /// # second.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn fencing_token(&self) -> i64 {
        self.czxid
    }

    /// The session the lock is held by.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::lock::Mutex;
    /// let guard = Mutex::new(&fw, "/locks/jobs").acquire().await?;
    /// assert_eq!(guard.session_id(), fw.client().session_id());
    /// # guard.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn session_id(&self) -> i64 {
        self.session_id
    }

    /// An operation to put first in your own [`Framework::transaction`]: the transaction
    /// fails (NoNode) unless this lock node still exists, that is, unless the lock is still
    /// held by this session.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_recipes::{CreateMode, Error, Framework, Op, lock::Mutex};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// let guard = Mutex::new(&fw, "/locks/ledger").acquire().await?;
    /// let check = guard.fencing_check();
    /// let write = |path: &str| vec![check.clone(), Op::create(path, "", CreateMode::Persistent)];
    /// fw.transaction(write("/entry-1")).await?;
    /// guard.release().await?;
    /// // Once the lock is gone, the same write is refused.
    /// let late = fw.transaction(write("/entry-2")).await;
    /// assert!(matches!(late, Err(Error::MultiFailed { index: 0, .. })));
    /// assert_eq!(fw.client().exists("/entry-2").await?, None);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn fencing_check(&self) -> Op {
        Op::check(self.path.clone(), None)
    }

    /// Whether the lock is still held as far as this process can tell: not released, same session,
    /// and, under [`ErrorPolicy::Standard`], the very connection it was acquired on (a SUSPENDED in
    /// between invalidates the guard for good, even after RECONNECTED); under
    /// [`ErrorPolicy::SessionOnly`], the connection state is not an error.
    ///
    /// It asks nothing of the server; see [`MutexGuard::check_ownership`] for that.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// # use corral_recipes::lock::Mutex;
    ///
    /// let guard = Mutex::new(&fw, "/locks/jobs").acquire().await?;
    /// assert!(guard.is_valid());
    /// server.drop_connection(guard.session_id()); // SUSPENDED, then RECONNECTED
    /// guard.invalidated().await;
    /// fw.wait_until_connected(Duration::from_secs(10)).await?;
    /// // Same session, but the lock may have been lost meanwhile: the guard stays invalid.
    /// assert!(!guard.is_valid());
    /// # drop(guard);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn is_valid(&self) -> bool {
        !self.released.load(std::sync::atomic::Ordering::SeqCst)
            && still_valid(*self.states.borrow(), self.epoch, self.connection, self.fw.error_policy())
    }

    /// Resolves when the guard stops being valid because of the connection state (see
    /// [`MutexGuard::is_valid`]); it does not resolve on [`MutexGuard::release`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches the connection state.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::lock::Mutex;
    /// let guard = Mutex::new(&fw, "/locks/jobs").acquire().await?;
    /// let work = std::future::pending::<()>(); // the work the lock protects
    /// server.drop_connection(guard.session_id()); // the test server cuts the connection
    /// tokio::select! {
    ///     _ = work => {}
    ///     _ = guard.invalidated() => {} // stop: the lock may belong to someone else by now
    /// }
    /// assert!(!guard.is_valid());
    /// # drop(guard);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn invalidated(&self) {
        let mut states = self.states.clone();
        let (epoch, connection, policy) = (self.epoch, self.connection, self.fw.error_policy());
        let _ = states.wait_for(|s| !still_valid(*s, epoch, connection, policy)).await;
    }

    /// Asks the server whether the lock node still exists and belongs to the current session.
    ///
    /// # Errors
    ///
    /// Connection errors of its one `exists` request (not retried).
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
    /// # use corral_recipes::lock::Mutex;
    /// let guard = Mutex::new(&fw, "/locks/jobs").acquire().await?;
    /// assert!(guard.check_ownership().await?);
    /// fw.client().delete(guard.path(), None).await?; // say, an operator removed the node
    /// assert!(!guard.check_ownership().await?);
    /// # drop(guard);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn check_ownership(&self) -> Result<bool> {
        let client = self.fw.client();
        Ok(client.exists(&self.path).await?.is_some_and(|s| s.ephemeral_owner == client.session_id()))
    }

    /// Releases the lock: deletes the lock node, and keeps trying in the background across
    /// reconnects if it cannot now (Curator's guaranteed delete). A node already gone counts as
    /// released.
    ///
    /// # Errors
    ///
    /// A connection error, or [`Error::Timeout`] if the connection did not come back within the
    /// connection timeout, once the framework's retries give up; the delete then goes on in the
    /// background (see [`Framework::pending_guaranteed_deletes`]). A server error such as NoAuth
    /// is returned as it is, and the node is left.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe. Dropped before it is first polled, the guard is released in the background
    /// as if it had been dropped. Once polled, the guard counts as released: if the future is
    /// dropped while the delete waits to be retried (after a connection loss), the delete is
    /// abandoned and the node stays, holding the lock, until the session ends.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::lock::Mutex;
    /// let guard = Mutex::new(&fw, "/locks/jobs").acquire().await?;
    /// let node = guard.path().to_owned();
    /// guard.release().await?;
    /// assert_eq!(fw.client().exists(&node).await?, None);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn release(self) -> Result<()> {
        self.release_shared().await
    }

    /// Releases through a shared reference (for recipes that hand the guard out).
    pub(crate) async fn release_shared(&self) -> Result<()> {
        if self.released.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        self.fw.delete(&self.path, Delete::new().guaranteed().idempotent()).await
    }
}

/// Under the Standard policy a guard is valid only on the very connection it was acquired on
/// (a SUSPENDED in between invalidates it for good, even after RECONNECTED); under SessionOnly,
/// for the whole session.
fn still_valid(state: ConnectionStateChange, epoch: u64, connection: u64, policy: ErrorPolicy) -> bool {
    match policy {
        ErrorPolicy::Standard => state.epoch == epoch && state.connection == connection && state.state.is_connected(),
        ErrorPolicy::SessionOnly => state.epoch == epoch && !policy.is_error(state.state),
    }
}

impl Drop for MutexGuard {
    fn drop(&mut self) {
        if !self.released.load(std::sync::atomic::Ordering::SeqCst) {
            delete_in_background(&self.fw, std::mem::take(&mut self.path));
        }
    }
}
