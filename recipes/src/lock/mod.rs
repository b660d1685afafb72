//! [`Mutex`]: a distributed lock with Curator's `InterProcessMutex` layout and semantics,
//! whose guards know when they stop being valid.
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
//! | SUSPENDED | a held lock becomes invalid under [`ErrorPolicy::Standard`](corral_core::ErrorPolicy::Standard) ([`MutexGuard::is_valid`] turns false, [`MutexGuard::invalidated`] resolves); waiters keep waiting (their watch is restored on reconnect) |
//! | RECONNECTED (same epoch) | nothing: under [`ErrorPolicy::SessionOnly`](corral_core::ErrorPolicy::SessionOnly) the guard stayed valid |
//! | LOST | the lock node is gone with the session: every guard of that session is invalid for good; waiting `acquire` calls fail with [`Error::SessionLost`] naming that session |
//!
//! A guard never becomes valid again: after losing the lock, drop it (its node is deleted in the
//! background if it still exists) and acquire again.
//!
//! # Re-entrancy
//!
//! Curator's mutex is re-entrant for the thread that holds it. Here the guard is the identity:
//! [`MutexGuard::reenter`] takes the lock again through a guard that holds it, without a round
//! trip or a new node, and the node is deleted when the last of the guards is released (see
//! [`MutexGuard::reenter`] for why not per task). A new [`Mutex::acquire`] always contends.
//!
//! # Revocation
//!
//! A holder of a [`Mutex::revocable`] mutex is told when someone asks it to release the lock —
//! [`Revoker::attempt_revoke`] here, Curator's `Revoker.attemptRevoke` in Java, both writing
//! [`REVOKE_MESSAGE`] into the lock node — by [`MutexGuard::revoke_requested`], a future to
//! select on next to the work. Releasing is up to the holder.
//!
//! # Fencing
//!
//! A lock in a distributed system can be lost while its holder is paused. Put
//! [`MutexGuard::fencing_check`] into your own transaction to make a write conditional on still
//! holding the lock, or pass [`MutexGuard::fencing_token`] (the lock node's creation zxid,
//! increasing with every acquisition) to the resource you protect.

use std::time::Duration;

use crate::{Error, Result};
use bytes::Bytes;
use corral_core::Error as CoreError;
use corral_core::{ConnectionState, EventType, Framework, WatchedEvent};
use tokio::sync::watch;
use tokio::time::Instant;

mod guard;
mod protected;
mod revoke;

pub use guard::MutexGuard;
pub(crate) use protected::{Created, ProtectedNode, delete_in_background};
use revoke::Revocation;
pub use revoke::{REVOKE_MESSAGE, Revoker};

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

/// A distributed mutex on a ZooKeeper path (Curator's `InterProcessMutex`; re-entrant through
/// [`MutexGuard::reenter`]). Cheap to clone; every clone contends separately.
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
    revocable: bool,
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
    /// kazoo's layouts (`<uuid hex>__lock__<seq>`, `__rlock__`): see [`crate::kazoo`].
    Kazoo(crate::kazoo::LockKind),
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
            Self::Kazoo(kind) => kind.node_name(),
        }
    }

    /// The unique name a contender's node starts with, for layouts that do not use Curator's
    /// protected prefix (kazoo's `<uuid hex>__lock__`).
    fn unique_name(self) -> Option<String> {
        match self {
            Self::Kazoo(kind) => Some(kind.unique_name()),
            Self::Exclusive | Self::Read | Self::Write => None,
        }
    }

    /// Sorts with Curator's rule; readers and writers of one lock sort together. kazoo's
    /// layouts sort by kazoo's rule.
    fn sort(self, children: &mut [String]) {
        match self {
            Self::Exclusive => crate::sort::sort_children(children, LOCK_NAME),
            Self::Read | Self::Write => children.sort_by_key(|c| rw_key(c)),
            Self::Kazoo(_) => crate::kazoo::sort_contenders(children),
        }
    }

    /// The `kind` label of the lock metrics.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Exclusive => "mutex",
            Self::Read => "read",
            Self::Write => "write",
            Self::Kazoo(_) => "kazoo",
        }
    }

    /// Whether every contender arrives with a fresh sequential node, so that one made after a
    /// listing always sorts after the contenders in it. Not so for Curator's read-write lock: a
    /// downgrade makes a read node carrying its write node's (older) sequence number.
    fn arrivals_sort_last(self) -> bool {
        matches!(self, Self::Exclusive | Self::Kazoo(_))
    }

    /// `None` if the contender at `index` holds the lock, otherwise the index to watch.
    fn watch_target(self, children: &[String], index: usize) -> Option<usize> {
        match self {
            Self::Kazoo(kind) => kind.watch_target(children, index),
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
    /// missing parents) as containers if needed. A second acquisition through the same value, or a
    /// clone, is one more contender and waits like any other; to take a held lock again, re-enter
    /// through its guard ([`MutexGuard::reenter`]).
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
    /// // A new acquisition contends, even through the same mutex ...
    /// assert!(mutex.try_acquire().await?.is_none());
    /// // ... while the holder re-enters through its guard.
    /// let again = guard.reenter();
    /// again.release().await?;
    /// guard.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(fw: &Framework, dir: impl Into<String>) -> Self {
        Self::with_kind(fw, dir, Kind::Exclusive)
    }

    pub(crate) fn with_kind(fw: &Framework, dir: impl Into<String>, kind: Kind) -> Self {
        Self { fw: fw.clone(), dir: dir.into(), data: Bytes::new(), kind, revocable: false }
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

    /// Makes the lock revocable (Curator's `makeRevocable`): a holder's guards learn, through
    /// [`MutexGuard::revoke_requested`], when someone asks for the lock with
    /// [`Revoker::attempt_revoke`] (or Curator's `Revoker`). It costs one more round trip per
    /// acquisition (a read of the lock node with a data watch, kept until the guard is gone). A
    /// request written while this contender still waited counts as well.
    ///
    /// The sides of a [`ReadWriteLock`](crate::read_write_lock::ReadWriteLock) are mutexes too:
    /// `lock.write_lock().clone().revocable()`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::lock::{Mutex, Revoker};
    ///
    /// let guard = Mutex::new(&fw, "/locks/jobs").revocable().acquire().await?;
    /// Revoker::attempt_revoke(&fw, guard.path()).await?;
    /// guard.revoke_requested().await;
    /// guard.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn revocable(mut self) -> Self {
        self.revocable = true;
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
    /// - [`Error::SessionLost`] with the id of the session this contender's node was created in, if
    ///   that session is lost while waiting (the queue position went with it; nothing is created
    ///   in the next session), or if the session was lost under every try of the node's create
    ///   the retry policy allowed (then the id of the last one).
    /// - [`corral_core::Error::Server`] with [`ErrorCode::NoNode`](corral_core::ErrorCode::NoNode)
    ///   and the node's path if someone else deleted this contender's node while it waited.
    /// - [`corral_core::Error::Timeout`] if the framework is not connected within its connection timeout when
    ///   the lock node is to be created; [`corral_core::Error::Closed`] if the framework is closed.
    /// - Connection errors once the retry policy gives up; server errors such as NoAuth as
    ///   [`corral_core::Error::Server`].
    ///
    /// On every error this contender's node, if it was created, is deleted in the background.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future deletes this contender's node in the background, so an
    /// abandoned acquisition does not block the others. That holds also while the node's create
    /// request waits for its reply: the node's protected name (`_c_<uuid>-`) is chosen before the
    /// request is sent, and a background task then lists the directory (with the framework's
    /// retries, after reconnecting if need be) and deletes the node carrying that name.
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
        match self.acquire_until(None, None, None).await? {
            Some(guard) => Ok(guard),
            None => Err(Error::from(CoreError::Timeout)),
        }
    }

    /// Waits at most `timeout` for the lock; [`Error::TimedOut`] if it was not acquired in time
    /// (this contender's node is then deleted before returning).
    ///
    /// The timeout bounds the wait in the queue; creating the node takes a round trip first
    /// however long `timeout` is.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] when `timeout` passes first; otherwise as [`Mutex::acquire`], among
    /// others [`Error::SessionLost`] if the session is lost while waiting.
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
    /// use corral_recipes::{Error, lock::Mutex};
    ///
    /// let mutex = Mutex::new(&fw, "/locks/jobs");
    /// let held = mutex.acquire().await?;
    /// let waited = mutex.acquire_timeout(Duration::from_millis(100)).await;
    /// assert!(matches!(waited, Err(Error::TimedOut { .. })));
    /// held.release().await?;
    /// let guard = mutex.acquire_timeout(Duration::from_secs(10)).await?;
    /// assert!(guard.is_valid());
    /// # drop(guard);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<MutexGuard> {
        self.acquire_until(Some(Instant::now() + timeout), None, None).await?.ok_or(Error::TimedOut { after: timeout })
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
        self.acquire_until(Some(Instant::now()), None, None).await
    }

    /// The contenders' node names (not paths), in lock order (the holder first); an empty list if
    /// the directory does not exist.
    ///
    /// # Errors
    ///
    /// Connection errors after retries; server errors such as NoAuth as [`corral_core::Error::Server`].
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
        let mut children = crate::sort::children_or_empty(&self.fw, &self.dir).await?;
        self.kind.sort(&mut children);
        Ok(children)
    }

    /// Waits for the lock until it is held, `cancel` turns true (then this contender's node is
    /// deleted before returning `Ok(None)`), or `deadline` passes.
    pub(crate) async fn acquire_cancellable(&self, cancel: watch::Receiver<bool>) -> Result<Option<MutexGuard>> {
        self.acquire_until(None, Some(cancel), None).await
    }

    /// Waits for the lock as a part of work bound to the session `session_id` (another lock
    /// held in it): this contender's node is created in that session or not at all, and
    /// [`Error::SessionLost`] for `session_id` once it is gone. `Ok(None)` if `deadline` passes.
    pub(crate) async fn acquire_in_session(
        &self,
        session_id: i64,
        deadline: Option<Instant>,
    ) -> Result<Option<MutexGuard>> {
        self.acquire_until(deadline, None, Some(session_id)).await
    }

    async fn acquire_until(
        &self,
        deadline: Option<Instant>,
        mut cancel: Option<watch::Receiver<bool>>,
        bound: Option<i64>,
    ) -> Result<Option<MutexGuard>> {
        let started = Instant::now();
        if self.revocable && self.data[..] == *REVOKE_MESSAGE {
            return Err(Error::bad_arguments("a revocable lock node cannot hold the revocation request as its data"));
        }
        // Deletes the node on every early return and on drop, until handed to the guard.
        let mut node = match bound {
            Some(session_id) => ProtectedNode::bound_to(&self.fw, &self.dir, session_id),
            None => ProtectedNode::new(&self.fw, &self.dir),
        };
        let (path, created, mut children) = match self.kind.unique_name() {
            Some(unique) => node.create_unique(&unique, self.data.clone(), true).await?,
            None => node.create(self.kind.node_name(), self.data.clone(), true).await?,
        };
        let name = corral_core::proto::path::name(&path).to_owned();
        loop {
            if let Some(list) = children.take() {
                let mut list = list;
                self.kind.sort(&mut list);
                let Some(index) = list.iter().position(|c| *c == name) else {
                    // Our node is gone: the session that made it ended (or someone deleted it).
                    return Err(created.node_gone(&self.fw, &path));
                };
                let Some(watch_index) = self.kind.watch_target(&list, index) else {
                    // Held. A revocable lock watches its own node first (a request written
                    // meanwhile counts); the node is still cleaned up if that fails.
                    let revocation = if self.revocable {
                        match Revocation::arm(&self.fw, &path).await? {
                            Some(revocation) => Some(revocation),
                            None => return Err(created.node_gone(&self.fw, &path)),
                        }
                    } else {
                        None
                    };
                    // No await from here on: the guard owns the node as soon as the cleanup lets go.
                    node.hand_over();
                    let kind = self.kind.label();
                    metrics::counter!(corral_core::metrics::LOCK_ACQUISITIONS_TOTAL, "kind" => kind).increment(1);
                    metrics::histogram!(corral_core::metrics::LOCK_WAIT_SECONDS, "kind" => kind)
                        .record(started.elapsed());
                    return Ok(Some(MutexGuard::new(&self.fw, path, created, kind, revocation)));
                };
                let predecessor = format!("{}/{}", self.dir, list[watch_index]);
                match self.wait_for(&predecessor, deadline, &created, cancel.as_mut()).await? {
                    Wait::Deleted
                        if self.kind.arrivals_sort_last() && self.fw.current_state().epoch == created.state.epoch =>
                    {
                        // No contender can appear ahead of ours later: the last listing without
                        // the deleted node still holds every contender that may be ahead. If
                        // none is left in it, the lock is ours without another listing (a
                        // hand-off then costs the deletion's event, not one more round trip);
                        // otherwise those may be gone too: list again rather than watch each.
                        list.remove(watch_index);
                        if self.kind.watch_target(&list, index - 1).is_none() {
                            children = Some(list);
                            continue;
                        }
                    }
                    Wait::Deleted | Wait::Changed => {}
                    Wait::TimedOut => {
                        node.delete_now().await;
                        return Ok(None);
                    }
                }
            }
            if self.fw.current_state().epoch != created.state.epoch {
                return Err(created.ended(&self.fw));
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

    /// Waits until `predecessor` changes (deleted), the deadline passes, or the session of our
    /// node (`created`) is lost.
    async fn wait_for(
        &self,
        predecessor: &str,
        deadline: Option<Instant>,
        created: &Created,
        cancel: Option<&mut watch::Receiver<bool>>,
    ) -> Result<Wait> {
        let epoch = created.state.epoch;
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
            return Ok(Wait::Deleted);
        };
        let mut states = self.fw.connection_state();
        let lost = async {
            let _ = states.wait_for(|s| s.epoch != epoch || s.state == ConnectionState::Lost).await;
        };
        tokio::select! {
            event = watcher => {
                if is_session_end(&event) && self.fw.current_state().epoch != epoch {
                    return Err(created.ended(&self.fw));
                }
                // A data change (a revocation request on the holder's node) or a session event
                // says nothing about who is ahead: only a deletion lets the caller skip a listing.
                Ok(if event.event_type == EventType::NodeDeleted { Wait::Deleted } else { Wait::Changed })
            }
            _ = sleep_until_opt(deadline) => Ok(Wait::TimedOut),
            _ = cancelled => Ok(Wait::TimedOut),
            _ = lost => Err(created.ended(&self.fw)),
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
    /// The watched contender is gone (deleted, or already gone when the watch was set).
    Deleted,
    /// Something else happened to it; list again.
    Changed,
    TimedOut,
}
