//! kazoo's `Semaphore`: a lease pool whose size is stored in its node, acquired under a kazoo
//! `Lock`.
//!
//! # Layout (kazoo 2.11's `kazoo/recipe/lock.py`, byte for byte)
//!
//! | node | kind | data |
//! |---|---|---|
//! | `<path>` | persistent | `max_leases` as decimal text, written by whoever creates it |
//! | `<path>/<uuid hex>` | ephemeral, one per lease | the identifier, UTF-8 |
//! | `<path>-__lock__/<uuid hex>__lock__<seq>` | a kazoo [`lock`](super::lock) contender | the identifier as Python's `repr` of bytes (`b'id'`): kazoo hands its already encoded identifier to `Lock`, which takes `str()` of it |
//!
//! An acquirer takes the lock, then counts the children of `<path>`: with fewer than
//! `max_leases` it creates its lease node, otherwise it waits (still holding the lock, so only
//! one process watches the pool) until a lease goes. Then it releases the lock. A stored
//! `max_leases` that is a number other than this semaphore's is refused, as kazoo does; data
//! that is no number is ignored, as kazoo does.
//!
//! # Sessions
//!
//! The lease node is created through the lock holder's session (a [`Session`] handle), so it is
//! made only while that session — and so the lock — is alive: two acquirers never count the
//! pool at once. A lease is an ephemeral node: it goes with its session (see
//! [`SemaphoreLease::is_valid`], the rule of every [`Hold`]). If the session is lost while an
//! acquirer waits for a free lease, the acquisition fails with
//! [`Error::SessionLost`](corral_core::Error::SessionLost); kazoo starts over instead.

use std::time::Duration;

use crate::{Error, Result};
use corral_core::Error as CoreError;
use corral_core::framework::{Create, ProtectedCreate, Session};
use corral_core::{CreateMode, Framework};
use tokio::time::Instant;

use super::{child_path, data_or_none, errors};
use crate::hold::Hold;
use crate::lock::{Mutex, MutexGuard};

/// kazoo's `Semaphore(path, identifier, max_leases)`: at most `max_leases` holders at once,
/// shared with Python processes on the same path.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use std::time::Duration;
/// use corral_recipes::kazoo::Semaphore;
///
/// // The same pool as `zk.Semaphore("/pools/db", "rust-1", max_leases=2)` in Python.
/// let pool = Semaphore::new(&fw, "/pools/db", "rust-1", 2);
/// let a = pool.acquire().await?;
/// let b = pool.acquire().await?;
/// assert!(matches!(pool.acquire_timeout(Duration::from_millis(50)).await, Err(corral_recipes::Error::TimedOut { .. })));
/// assert_eq!(pool.lease_holders().await?, ["rust-1", "rust-1"]);
/// a.release().await?;
/// let c = pool.acquire().await?;
/// # b.release().await?; c.release().await?;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Semaphore {
    fw: Framework,
    path: String,
    identifier: String,
    max_leases: usize,
    lock: Mutex,
}

impl Semaphore {
    /// A semaphore of `max_leases` leases at `path` (kazoo's default is 1; 0 counts as 1),
    /// whose leases and lock contenders carry `identifier`. Nothing is sent yet.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::Semaphore;
    ///
    /// let pool = Semaphore::new(&fw, "/pools/db", "rust-1", 3);
    /// let lease = pool.acquire().await?;
    /// assert_eq!(&fw.client().get_data("/pools/db").await?.0[..], b"3"); // max_leases, as kazoo
    /// # lease.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(fw: &Framework, path: impl Into<String>, identifier: impl Into<String>, max_leases: usize) -> Self {
        let (path, identifier) = (path.into(), identifier.into());
        let lock_path = format!("{path}-{}", super::LOCK_NODE_NAME);
        let lock = Mutex::with_kind(fw, lock_path, crate::lock::Kind::Kazoo(super::LockKind::Exclusive))
            .with_data(python_bytes_repr(identifier.as_bytes()));
        Self { fw: fw.clone(), path, identifier, max_leases: max_leases.max(1), lock }
    }

    /// The pool's path.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::Semaphore;
    ///
    /// assert_eq!(Semaphore::new(&fw, "/pools/db", "x", 1).path(), "/pools/db");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Waits for a lease (kazoo's `acquire()`).
    ///
    /// # Errors
    ///
    /// - [`Error::BadArguments`](corral_core::Error::BadArguments) if the pool's node stores another
    ///   `max_leases` (kazoo's "Inconsistent max leases" `ValueError`);
    /// - [`Error::SessionLost`](crate::Error::SessionLost) if the session holding the lock
    ///   ends while waiting for a free lease, or (as [`Mutex::acquire`]) the session of this
    ///   acquirer's lock node ends while it waits for the lock;
    /// - as [`Mutex::acquire`] while taking the lock; connection errors once the framework's
    ///   retries give up.
    ///
    /// The lock is released on every outcome.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped acquisition releases the lock and deletes a lease node it may
    /// have made, in the background.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::Semaphore;
    ///
    /// let pool = Semaphore::new(&fw, "/pools/db", "rust-1", 1);
    /// let first = pool.acquire().await?;
    /// let waiter = tokio::spawn({
    ///     let pool = pool.clone();
    ///     async move { pool.acquire().await }
    /// });
    /// first.release().await?;
    /// let second = waiter.await??; // the lease, once it is free
    /// assert!(second.is_valid());
    /// # second.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn acquire(&self) -> Result<SemaphoreLease> {
        self.acquire_until(None).await?.ok_or(Error::from(CoreError::Timeout))
    }

    /// Waits at most `timeout` for a lease (kazoo's `acquire(timeout=…)`); `Ok(None)` if none
    /// came in time, and nothing is held then.
    ///
    /// # Errors
    ///
    /// As [`Semaphore::acquire`].
    ///
    /// # Cancel safety
    ///
    /// As [`Semaphore::acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::kazoo::Semaphore;
    ///
    /// let pool = Semaphore::new(&fw, "/pools/db", "rust-1", 1);
    /// let lease = pool.acquire().await?;
    /// assert!(matches!(pool.acquire_timeout(Duration::from_millis(50)).await, Err(corral_recipes::Error::TimedOut { .. })));
    /// lease.release().await?;
    /// pool.acquire_timeout(Duration::from_secs(10)).await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<SemaphoreLease> {
        self.acquire_until(Some(Instant::now() + timeout)).await?.ok_or(Error::TimedOut { after: timeout })
    }

    /// Takes a lease only if one is free now and no other process is acquiring (kazoo's
    /// `acquire(blocking=False)`).
    ///
    /// # Errors
    ///
    /// As [`Semaphore::acquire`].
    ///
    /// # Cancel safety
    ///
    /// As [`Semaphore::acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::Semaphore;
    ///
    /// let pool = Semaphore::new(&fw, "/pools/db", "rust-1", 1);
    /// let lease = pool.try_acquire().await?.expect("a free lease");
    /// assert!(pool.try_acquire().await?.is_none());
    /// # lease.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn try_acquire(&self) -> Result<Option<SemaphoreLease>> {
        self.acquire_until(Some(Instant::now())).await
    }

    /// kazoo's `lease_holders()`: the identifiers (node data) of the current leases, unordered;
    /// empty if the pool does not exist.
    ///
    /// # Errors
    ///
    /// Connection errors once the framework's retries give up; server errors such as NoAuth.
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
    /// use corral_recipes::kazoo::Semaphore;
    ///
    /// let pool = Semaphore::new(&fw, "/pools/db", "worker-7", 2);
    /// assert!(pool.lease_holders().await?.is_empty());
    /// let lease = pool.acquire().await?;
    /// assert_eq!(pool.lease_holders().await?, ["worker-7"]);
    /// # lease.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn lease_holders(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for child in crate::sort::children_or_empty(&self.fw, &self.path).await? {
            if let Some((data, _)) = data_or_none(&self.fw, &child_path(&self.path, &child)).await? {
                out.push(String::from_utf8_lossy(&data).into_owned());
            }
        }
        Ok(out)
    }

    async fn acquire_until(&self, deadline: Option<Instant>) -> Result<Option<SemaphoreLease>> {
        self.ensure_pool().await?;
        // Persistent, as kazoo's `Lock` makes it: a container could be swept between a kazoo
        // acquirer's `ensure_path` and its create, which kazoo does not retry.
        self.fw.ensure_path(self.lock.path()).await?;
        let lock = match deadline {
            None => Some(self.lock.acquire().await?),
            Some(d) if d <= Instant::now() => self.lock.try_acquire().await?,
            Some(d) => crate::within(self.lock.acquire_timeout(d.saturating_duration_since(Instant::now())).await)?,
        };
        let Some(lock) = lock else { return Ok(None) };
        let result = self.take_lease(&lock, deadline).await;
        // Released whatever happened; a failed release goes on in the background.
        let _ = lock.release().await;
        result
    }

    /// kazoo's `_ensure_path`: creates the pool with `max_leases` as its data, or checks the
    /// number an existing pool stores.
    async fn ensure_pool(&self) -> Result<()> {
        let data = match data_or_none(&self.fw, &self.path).await? {
            Some((data, _)) => data,
            None => {
                let spec = Create::new(CreateMode::Persistent).parents();
                match self.fw.create(&self.path, self.max_leases.to_string(), spec).await {
                    Ok(_) => return Ok(()),
                    Err(e) if e.is_node_exists() => {
                        data_or_none(&self.fw, &self.path).await?.map(|(d, _)| d).unwrap_or_default()
                    }
                    Err(e) => return Err(Error::from(e)),
                }
            }
        };
        // kazoo reads it with int(); what int() refuses is someone else's data and is ignored.
        let stored = std::str::from_utf8(&data).ok().and_then(<i64 as super::CounterValue>::from_repr);
        match stored {
            Some(n) if n != self.max_leases as i64 => Err(errors::bad_argument(format!(
                "{}: inconsistent max leases: {n}, expected: {}",
                self.path, self.max_leases
            ))),
            _ => Ok(()),
        }
    }

    /// Holding the lock: waits until fewer than `max_leases` leases exist, then takes one.
    async fn take_lease(&self, lock: &MutexGuard, deadline: Option<Instant>) -> Result<Option<SemaphoreLease>> {
        let fw = &self.fw;
        loop {
            let path = self.path.clone();
            let (children, watcher) = fw
                .with_retry(|client| {
                    let path = path.clone();
                    async move { client.get_children_and_watch(&path).await.map(|(c, _, w)| (c, w)) }
                })
                .await?;
            if children.len() < self.max_leases {
                return self.create_lease(lock).await.map(Some);
            }
            if deadline.is_some_and(|d| d <= Instant::now()) {
                return Ok(None);
            }
            tokio::select! {
                _ = watcher => {}
                _ = crate::queue::sleep_until_opt(deadline) => return Ok(None),
                _ = session_gone(fw, lock.session_id()) => return Err(errors::session_lost(lock.session_id())),
            }
        }
    }

    /// Creates the lease node through the lock holder's session.
    async fn create_lease(&self, lock: &MutexGuard) -> Result<SemaphoreLease> {
        let session = self.fw.session().await?;
        if session.id() != lock.session_id() {
            return Err(errors::session_lost(lock.session_id()));
        }
        let name = uuid::Uuid::new_v4().simple().to_string();
        // A drop from here on deletes whatever the create made, until the lease owns it.
        let mut node = ProtectedCreate::with_unique_name(&self.fw, &self.path, &name, CreateMode::Ephemeral)?;
        let created = node.create(&session, self.identifier.clone()).await?;
        node.keep();
        let hold = Hold::new(&self.fw, created.path.clone(), created.state, created.stat.czxid);
        Ok(SemaphoreLease { session, path: created.path, hold, released: false })
    }
}

/// Resolves once the session `session_id` is no longer the framework's (lost or replaced).
async fn session_gone(fw: &Framework, session_id: i64) {
    let mut states = fw.connection_state();
    let _ = states
        .wait_for(|s| {
            s.state == corral_core::ConnectionState::Lost || (s.state.is_connected() && s.session_id != session_id)
        })
        .await;
}

/// Python's `repr()` of a bytes value, as `str(identifier_bytes)` writes it: `b'…'` (double
/// quotes when the bytes hold a `'` and no `"`), with `\\`, `\t`, `\n`, `\r` and `\xhh` for
/// every other byte outside printable ASCII.
pub(crate) fn python_bytes_repr(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') { '"' } else { '\'' };
    let mut out = String::with_capacity(bytes.len() + 3);
    out.push('b');
    out.push(quote);
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b if b as char == quote => {
                out.push('\\');
                out.push(quote);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote);
    out
}

/// A held lease of a kazoo [`Semaphore`]: the ephemeral node `<path>/<uuid hex>`. Release it
/// with [`SemaphoreLease::release`]; dropping it deletes the node in the background, on its
/// own session (a node of a lost session is gone already).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use std::time::Duration;
/// use corral_recipes::kazoo::Semaphore;
///
/// let pool = Semaphore::new(&fw, "/pools/db", "rust-1", 1);
/// {
///     let lease = pool.acquire().await?;
///     assert!(lease.is_valid());
/// } // dropped: released in the background
/// pool.acquire_timeout(Duration::from_secs(10)).await?;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SemaphoreLease {
    session: Session,
    path: String,
    hold: Hold,
    released: bool,
}

impl SemaphoreLease {
    /// The lease node's path, `<pool>/<uuid hex>`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::Semaphore;
    ///
    /// let lease = Semaphore::new(&fw, "/pools/db", "x", 1).acquire().await?;
    /// assert_eq!(lease.path().len(), "/pools/db/".len() + 32);
    /// # lease.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the lease is still held as far as this process can tell (the rule of every
    /// [`Hold`]). It asks nothing of the server.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::Semaphore;
    ///
    /// let lease = Semaphore::new(&fw, "/pools/db", "x", 1).acquire().await?;
    /// assert!(lease.is_valid());
    /// server.expire_session(lease.hold().session_id());
    /// lease.hold().invalidated().await;
    /// assert!(!lease.is_valid());
    /// # drop(lease);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn is_valid(&self) -> bool {
        !self.released && self.hold.is_valid()
    }

    /// The hold this lease rests on: validity, invalidation, fencing check and token (see
    /// [`Hold`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::{CreateMode, Op, kazoo::Semaphore};
    ///
    /// let lease = Semaphore::new(&fw, "/pools/db", "x", 1).acquire().await?;
    /// let write = vec![lease.hold().fencing_check(), Op::create("/job", "", CreateMode::Persistent)];
    /// fw.transaction(write).await?; // only while the lease node exists
    /// # lease.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn hold(&self) -> &Hold {
        &self.hold
    }

    /// Releases the lease (kazoo's `release()`): deletes its node on its own session. A node
    /// already gone, or gone with its session, counts as released.
    ///
    /// # Errors
    ///
    /// Connection errors once the retries within the session give up, or a server error such
    /// as NoAuth; the lease is then dropped, which tries the delete again in the background.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped release deletes the node in the background.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::Semaphore;
    ///
    /// let lease = Semaphore::new(&fw, "/pools/db", "x", 1).acquire().await?;
    /// let node = lease.path().to_owned();
    /// lease.release().await?;
    /// assert_eq!(fw.client().exists(&node).await?, None);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn release(mut self) -> Result<()> {
        match crate::task::try_delete_on_session(&self.session, &self.path).await {
            Ok(()) | Err(corral_core::Error::Closed) => {
                self.released = true;
                Ok(())
            }
            Err(e) => Err(Error::from(e)),
        }
    }
}

impl Drop for SemaphoreLease {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(path = %self.path, "no Tokio runtime to delete the lease; it stays until its session ends");
            return;
        };
        let (session, path) = (self.session.clone(), std::mem::take(&mut self.path));
        handle.spawn(async move { crate::task::delete_on_session(&session, &path).await });
    }
}

#[cfg(test)]
mod tests {
    use super::python_bytes_repr;

    #[test]
    fn bytes_repr_is_pythons() {
        assert_eq!(python_bytes_repr(b"my-identifier"), "b'my-identifier'");
        assert_eq!(python_bytes_repr(b""), "b''");
        assert_eq!(python_bytes_repr(b"it's"), r#"b"it's""#);
        assert_eq!(python_bytes_repr(b"'\""), r#"b'\'"'"#);
        assert_eq!(python_bytes_repr(b"a\\b\tc\nd\re\x00\x7f"), r"b'a\\b\tc\nd\re\x00\x7f'");
        assert_eq!(python_bytes_repr("é".as_bytes()), r"b'\xc3\xa9'");
    }
}
