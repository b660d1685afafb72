//! [`ReadWriteLock`]: many readers or one writer, with Curator's `InterProcessReadWriteLock`
//! layout (`__READ__` and `__WRIT__` nodes in one directory, sorted together by sequence).
//!
//! A writer holds the lock when it is first among readers and writers; a reader holds it when no
//! writer is ahead of it. A writer may [`ReadWriteLock::downgrade`] to a reader without letting
//! another writer in between (as Curator ≥ 5.5 does: a plain ephemeral `__READ__` node carrying
//! the writer's sequence). The same connection-state rules as [`Mutex`] apply to both guards.

use corral_core::{CreateMode, Error, Framework, Result};

use crate::lock::{Kind, Mutex, MutexGuard, READ_LOCK_NAME, WRITE_LOCK_NAME};

/// A distributed read-write lock (Curator's `InterProcessReadWriteLock`, without re-entrancy).
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
    /// Pass a guard that is still valid ([`MutexGuard::is_valid`]): the read node is given the
    /// write node's sequence number without checking that the write node still exists.
    ///
    /// # Errors
    ///
    /// - [`Error::BadArguments`] if `write`'s node is not a `__WRIT__` node under this lock's
    ///   directory.
    /// - The error of creating the read node (one request, not retried), e.g. a connection error.
    /// - The error of releasing the write lock (see [`MutexGuard::release`]); the read node is then
    ///   released again in the background.
    ///
    /// `write` is consumed either way: on every error it is released (in the background), and no
    /// lock is held any more.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe. Dropping the future releases `write` in the background; a read node whose
    /// create was waiting for its reply is not deleted and holds a read lock, keeping writers out,
    /// until the session ends; once the write node's delete has begun, that delete is as in
    /// [`MutexGuard::release`].
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
    /// let write = lock.write_lock().acquire().await?;
    /// // ... update the catalog, then keep reading it with no writer in between:
    /// let read = lock.downgrade(write).await?;
    /// assert!(lock.write_lock().try_acquire().await?.is_none());
    /// assert!(lock.read_lock().try_acquire().await?.is_some()); // other readers may join
    /// # read.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn downgrade(&self, write: MutexGuard) -> Result<MutexGuard> {
        let fw = self.write.framework();
        let dir = self.write.dir();
        let name = corral_core::proto::path::name(write.path()).to_owned();
        let seq = match name.rfind(WRITE_LOCK_NAME) {
            Some(i) if write.path().starts_with(dir) => name[i + WRITE_LOCK_NAME.len()..].to_owned(),
            _ => return Err(Error::BadArguments(format!("{} is not a write lock of {dir}", write.path()))),
        };
        let prefix = format!("{}{}-", corral_core::framework::PROTECTED_PREFIX, uuid::Uuid::new_v4());
        let target = format!("{dir}/{prefix}{READ_LOCK_NAME}{seq}");
        let state = fw.current_state();
        let client = fw.client();
        let (path, stat) = client.create(&target, bytes::Bytes::new(), CreateMode::Ephemeral).await?;
        let read = MutexGuard::adopt(fw, path, state, stat.czxid);
        write.release().await?;
        Ok(read)
    }
}
