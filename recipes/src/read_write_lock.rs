//! [`ReadWriteLock`]: many readers or one writer, with Curator's `InterProcessReadWriteLock`
//! layout (`__READ__` and `__WRIT__` nodes in one directory, sorted together by sequence).
//!
//! A writer holds the lock when it is first among readers and writers; a reader holds it when no
//! writer is ahead of it. A writer may [`ReadWriteLock::downgrade`] to a reader without letting
//! another writer in between (as Curator ≥ 5.5 does: a plain ephemeral `__READ__` node carrying
//! the writer's sequence), created only while the write node still exists. The same
//! connection-state rules as [`Mutex`] apply to both guards.

use crate::{Error, Result};
use bytes::Bytes;
use corral_core::Error as CoreError;
use corral_core::framework::Delete;
use corral_core::proto::path;
use corral_core::{CreateMode, CreateOptions, ErrorCode, Framework, Op};

use crate::lock::{Kind, Mutex, MutexGuard, READ_LOCK_NAME, WRITE_LOCK_NAME};

/// A distributed read-write lock (Curator's `InterProcessReadWriteLock`). Its guards are
/// [`MutexGuard`]s: re-entrant with `reenter`, and revocable when
/// taken through `write_lock().clone().revocable()` (or the read side's).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use corral_recipes::{Framework, read_write_lock::ReadWriteLock};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let lock = ReadWriteLock::new(&fw, "/locks/catalog");
/// let r1 = lock.read_lock().acquire().await?;
/// let r2 = lock.read_lock().acquire().await?; // readers share
/// assert!(lock.write_lock().try_acquire().await?.is_none());
/// r1.release().await?;
/// r2.release().await?;
/// let w = lock.write_lock().acquire().await?;
/// let r = lock.downgrade(w).await?; // still no writer can get in
/// assert!(lock.write_lock().try_acquire().await?.is_none());
/// r.release().await?;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ReadWriteLock {
    read: Mutex,
    write: Mutex,
}

impl ReadWriteLock {
    /// A read-write lock whose contenders (readers and writers) are the children of `dir`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::read_write_lock::ReadWriteLock;
    ///
    /// let lock = ReadWriteLock::new(&fw, "/locks/catalog");
    /// assert_eq!(lock.read_lock().path(), "/locks/catalog");
    /// assert_eq!(lock.write_lock().path(), "/locks/catalog");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(fw: &Framework, dir: impl Into<String>) -> Self {
        let dir = dir.into();
        Self { read: Mutex::with_kind(fw, dir.clone(), Kind::Read), write: Mutex::with_kind(fw, dir, Kind::Write) }
    }

    /// The read side: acquire it with [`Mutex::acquire`] and friends. A reader holds the lock
    /// while no writer is ahead of it in the queue.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::read_write_lock::ReadWriteLock;
    ///
    /// let lock = ReadWriteLock::new(&fw, "/locks/catalog");
    /// let r1 = lock.read_lock().acquire().await?;
    /// let r2 = lock.read_lock().try_acquire().await?.expect("readers share the lock");
    /// # r1.release().await?; r2.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn read_lock(&self) -> &Mutex {
        &self.read
    }

    /// The write side: acquire it with [`Mutex::acquire`] and friends. A writer holds the lock
    /// when it is first among readers and writers.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::read_write_lock::ReadWriteLock;
    ///
    /// let lock = ReadWriteLock::new(&fw, "/locks/catalog");
    /// let w = lock.write_lock().acquire().await?;
    /// assert!(lock.read_lock().try_acquire().await?.is_none());
    /// assert!(lock.write_lock().try_acquire().await?.is_none());
    /// # w.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn write_lock(&self) -> &Mutex {
        &self.write
    }

    /// Turns a held write lock into a read lock, with no moment in which another writer could
    /// take the lock: the read node takes the writer's place in the order before the write node
    /// is deleted.
    ///
    /// The read node is given the write node's sequence number, so it is created only if the
    /// write lock is still held: `write` must belong to the current session, and the read node's
    /// create is one multi with a check that the write node still exists. A guard whose lock went
    /// with an expired session (and may be another writer's by now) is refused, never turned into
    /// a read lock.
    ///
    /// # Errors
    ///
    /// - [`corral_core::Error::BadArguments`] if `write`'s node is not a `__WRIT__` node directly under this
    ///   lock's directory (a guard of `/rw-other` is refused for `/rw`).
    /// - [`Error::SessionLost`] with `write`'s session id if `write` was acquired in an earlier
    ///   session (the write lock went with that session), or if that session ends during the
    ///   downgrade; nothing is created in a later session.
    /// - [`corral_core::Error::Timeout`] if the framework is not connected within its connection
    ///   timeout (nothing was sent).
    /// - [`corral_core::Error::Server`] with [`ErrorCode::NoNode`] and the
    ///   write node's path if the write node is gone (deleted by someone else): the lock is no
    ///   longer held.
    /// - The error of the multi (one request, not retried), e.g. a connection error; the read
    ///   node, which may or may not have been created, is then deleted in the background.
    /// - The error of releasing the write lock (see [`MutexGuard::release`]); the read node is then
    ///   released again in the background.
    ///
    /// `write` is consumed either way: on every error it is released (in the background), and no
    /// lock is held any more.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe, but nothing is left holding the lock. Dropping the future releases `write`
    /// in the background, and deletes in the background a read node whose multi was sent. Once the
    /// write node's delete has begun, that delete is as in [`MutexGuard::release`]: dropped while
    /// it waits to be retried after a connection loss, it is abandoned, and the write node stays
    /// until the session ends.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::{Error, read_write_lock::ReadWriteLock};
    ///
    /// let lock = ReadWriteLock::new(&fw, "/locks/catalog");
    /// let write = lock.write_lock().acquire().await?;
    /// // ... update the catalog, then keep reading it with no writer in between:
    /// let read = lock.downgrade(write).await?;
    /// assert!(lock.write_lock().try_acquire().await?.is_none());
    /// assert!(lock.read_lock().try_acquire().await?.is_some()); // other readers may join
    /// read.release().await?;
    ///
    /// // A write lock lost with its session cannot be downgraded.
    /// let write = lock.write_lock().acquire().await?;
    /// server.expire_session(write.session_id());
    /// let mut states = fw.connection_state();
    /// states.wait_for(|s| s.state.is_connected() && s.session_id != write.session_id()).await?;
    /// let old = write.session_id();
    /// assert_eq!(lock.downgrade(write).await.unwrap_err(), Error::SessionLost { session_id: old });
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn downgrade(&self, write: MutexGuard) -> Result<MutexGuard> {
        let fw = self.write.framework();
        let dir = self.write.dir();
        let name = path::name(write.path()).to_owned();
        let seq = match name.rfind(WRITE_LOCK_NAME) {
            Some(i) if path::parent(write.path()) == Some(dir) => name[i + WRITE_LOCK_NAME.len()..].to_owned(),
            _ => return Err(Error::bad_arguments(format!("{} is not a write lock of {dir}", write.path()))),
        };
        // The read node is the write lock's session's, or nobody's: made through that session's
        // handle, its owner checked from the reply.
        let session = match fw.session().await {
            Ok(session) if session.id() == write.session_id() => session,
            Ok(_) => {
                tracing::info!(path = %write.path(), "not downgrading a write lock of an ended session");
                return Err(Error::SessionLost { session_id: write.session_id() });
            }
            Err(e) => return Err(Error::from(e)),
        };
        let client = session.client();
        let prefix = format!("{}{}-", corral_core::framework::PROTECTED_PREFIX, uuid::Uuid::new_v4());
        let target = format!("{dir}/{prefix}{READ_LOCK_NAME}{seq}");
        // From here on, a read node may exist: deleted in the background unless handed to a guard.
        let mut cleanup = Cleanup { fw: fw.clone(), path: Some(target.clone()) };
        // Only while the write node exists, that is, while this session holds the write lock.
        // With the framework's ACL for it, as every node a recipe makes.
        let options = CreateOptions::new(CreateMode::Ephemeral).with_acl(fw.acl_provider().acl_for_path(&target));
        let ops = vec![write.fencing_check(), Op::create(target.clone(), Bytes::new(), options)];
        let applied = client.multi(ops);
        // Queued behind the multi (requests are answered in order): the read node's czxid.
        let created = client.exists(&target);
        match applied.await {
            Ok(_) => {}
            Err(e @ CoreError::MultiFailed { index, code, .. }) => {
                cleanup.path = None; // nothing was applied
                if index == 0 && code == ErrorCode::NoNode {
                    tracing::warn!(path = %write.path(), "not downgrading: the write node is gone");
                    return Err(Error::from(CoreError::Server { code, path: write.path().to_owned() }));
                }
                return Err(Error::from(e));
            }
            // The session's client answers so once the session is gone, and a read node the
            // multi may have made went with it.
            Err(CoreError::SessionExpired) => {
                cleanup.path = None;
                return Err(Error::SessionLost { session_id: session.id() });
            }
            Err(e) => return Err(Error::from(e)),
        }
        let stat = match created.await {
            Ok(stat) => stat,
            Err(_) => session.with_retry(|client| client.exists(&target)).await?,
        };
        let Some(stat) = stat else {
            tracing::warn!(path = %target, "the read node was deleted right after the downgrade");
            return Err(Error::from(CoreError::Server { code: ErrorCode::NoNode, path: target }));
        };
        if stat.ephemeral_owner != session.id() {
            // Another session's node at our unique name cannot be; a changed session can.
            return Err(Error::SessionLost { session_id: session.id() });
        }
        cleanup.path = None;
        let read = MutexGuard::adopt(fw, target, session.started(), stat.czxid);
        write.release().await?;
        Ok(read)
    }
}

/// Deletes a downgrade's read node in the background when dropped, unless `path` was taken.
struct Cleanup {
    fw: Framework,
    path: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Some(path) = self.path.take() else { return };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(%path, "no runtime to delete the read node; it goes with the session");
            return;
        };
        let fw = self.fw.clone();
        handle.spawn(async move {
            if let Err(e) = fw.delete(&path, Delete::new().guaranteed().idempotent()).await {
                tracing::debug!(%path, error = %e, "read node delete continues in the background");
            }
        });
    }
}
