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
    /// A read-write lock whose contenders are the children of `dir`.
    pub fn new(fw: &Framework, dir: impl Into<String>) -> Self {
        let dir = dir.into();
        Self { read: Mutex::with_kind(fw, dir.clone(), Kind::Read), write: Mutex::with_kind(fw, dir, Kind::Write) }
    }

    /// The read side: acquire it with [`Mutex::acquire`] and friends.
    pub fn read_lock(&self) -> &Mutex {
        &self.read
    }

    /// The write side: acquire it with [`Mutex::acquire`] and friends.
    pub fn write_lock(&self) -> &Mutex {
        &self.write
    }

    /// Turns a held write lock into a read lock, with no moment in which another writer could
    /// take the lock: the read node takes the writer's place in the order before the write node
    /// is deleted.
    ///
    /// # Errors
    ///
    /// [`Error::BadArguments`] if `write` is not a write guard of this lock; connection errors
    /// (the write lock is then still held).
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
