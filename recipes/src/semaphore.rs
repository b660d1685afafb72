//! [`SemaphoreV2`]: a counting semaphore with Curator's `InterProcessSemaphoreV2` layout, and
//! [`SemaphoreMutex`], its one-lease case (Curator's `InterProcessSemaphoreMutex`, a lock that
//! is not tied to a holder).
//!
//! Layout: `<path>/locks` holds a [`Mutex`] that serialises acquirers; `<path>/leases` holds one
//! `_c_<uuid>-lease-<seq>` ephemeral sequential node per lease. An acquirer takes the mutex,
//! creates its lease node, and waits (still holding the mutex) until at most `max_leases`
//! lease nodes exist; then it releases the mutex. Because only the mutex holder ever waits on
//! the leases directory, a lease release wakes one waiter, not all of them — the herd Curator's
//! users report comes from waiting outside that mutex, which this recipe never does.
//!
//! Connection states: a lease is an ephemeral node; it is gone with a LOST session (check
//! [`Lease::is_valid`]); SUSPENDED is an error for it under the Standard policy, as for locks.

use std::time::Duration;

use crate::{Error, Result};
use bytes::Bytes;
use corral_core::Error as CoreError;
use corral_core::Framework;
use corral_core::framework::Delete;
use tokio::time::Instant;

use crate::hold::Hold;
use crate::lock::{Mutex, ProtectedNode, delete_in_background};

/// Curator's lease node name: a [`SemaphoreV2`] lease is the node
/// `<path>/leases/_c_<uuid>-lease-<sequence>`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use corral_recipes::semaphore::{LEASE_NAME, SemaphoreV2};
///
/// let lease = SemaphoreV2::new(&fw, "/semaphores/db", 2).acquire().await?;
/// assert!(lease.path().starts_with("/semaphores/db/leases/_c_"));
/// assert!(lease.path().contains(LEASE_NAME));
/// # lease.release().await?;
/// # fw.close().await;
/// # Ok(()) }
/// ```
pub const LEASE_NAME: &str = "lease-";

/// A distributed counting semaphore (Curator's `InterProcessSemaphoreV2`).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::time::Duration;
/// use corral_recipes::{Framework, semaphore::SemaphoreV2};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let pool = SemaphoreV2::new(&fw, "/semaphores/db", 2);
/// let a = pool.acquire().await?;
/// let b = pool.acquire().await?;
/// assert!(matches!(pool.acquire_timeout(Duration::from_millis(100)).await, Err(corral_recipes::Error::TimedOut { .. })));
/// a.release().await?;
/// let c = pool.acquire().await?;
/// # b.release().await?; c.release().await?;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SemaphoreV2 {
    fw: Framework,
    path: String,
    max_leases: usize,
    lock: Mutex,
}

impl SemaphoreV2 {
    /// A semaphore of `max_leases` leases at `path` (a `max_leases` of 0 counts as 1).
    ///
    /// Every process must use the same `max_leases` for one path: the count is not stored in
    /// ZooKeeper. Nothing is sent to the server until the first acquisition.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::semaphore::SemaphoreV2;
    ///
    /// let pool = SemaphoreV2::new(&fw, "/semaphores/db", 2);
    /// let a = pool.acquire().await?;
    /// let b = pool.acquire().await?;
    /// assert_eq!(pool.participant_nodes().await?.len(), 2);
    /// # a.release().await?; b.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(fw: &Framework, path: impl Into<String>, max_leases: usize) -> Self {
        let path = path.into();
        let lock = Mutex::new(fw, format!("{path}/locks"));
        Self { fw: fw.clone(), path, max_leases: max_leases.max(1), lock }
    }

    /// Waits for a lease.
    ///
    /// The acquirer first takes the semaphore's inner [`Mutex`] (at `<path>/locks`), then creates
    /// its lease node and waits until at most `max_leases` lease nodes exist, then releases the
    /// inner lock.
    ///
    /// # Errors
    ///
    /// - As [`Mutex::acquire`] while taking the inner lock: [`Error::SessionLost`] if the session
    ///   is lost while waiting for it.
    /// - [`Error::SessionLost`] with the id of the session the lease node was created in, if that
    ///   session is lost while waiting for a free lease (the lease node went with it; nothing is
    ///   created in the next session); [`corral_core::Error::Server`] with
    ///   [`ErrorCode::NoNode`](corral_core::ErrorCode::NoNode) if someone else deleted the lease
    ///   node meanwhile.
    /// - Connection errors once the framework's retries give up (creating the lease node and
    ///   listing the leases while waiting are both retried).
    ///
    /// On every error the inner lock is released and the lease node, if it was created, is deleted
    /// (in the background if need be).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped acquisition deletes its lease node and releases the inner lock in the
    /// background. That holds also while a create request waits for its reply (that of the inner
    /// lock's node, see [`Mutex::acquire`], or that of the lease node): both nodes have protected
    /// names chosen before the request is sent, and a node created after the drop is found by its
    /// name and deleted.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::semaphore::SemaphoreV2;
    ///
    /// let pool = SemaphoreV2::new(&fw, "/semaphores/db", 1);
    /// let first = pool.acquire().await?;
    /// let waiter = tokio::spawn({
    ///     let pool = pool.clone();
    ///     async move { pool.acquire().await }
    /// });
    /// first.release().await?;
    /// let second = waiter.await??; // gets the lease once it is free
    /// assert!(second.is_valid());
    /// # second.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn acquire(&self) -> Result<Lease> {
        self.acquire_until(None).await?.ok_or(Error::from(CoreError::Timeout))
    }

    /// Waits at most `timeout` for a lease; [`Error::TimedOut`] if none came in time (nothing is
    /// held then).
    ///
    /// `timeout` bounds the waits for the inner lock and for a free lease; the round trips that
    /// create the nodes are not cut short.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] when `timeout` passes first; otherwise as [`SemaphoreV2::acquire`],
    /// among others [`Error::SessionLost`] if the session is lost while waiting.
    ///
    /// # Cancel safety
    ///
    /// As [`SemaphoreV2::acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::{Error, semaphore::SemaphoreV2};
    ///
    /// let pool = SemaphoreV2::new(&fw, "/semaphores/db", 1);
    /// let lease = pool.acquire().await?;
    /// let waited = pool.acquire_timeout(Duration::from_millis(100)).await;
    /// assert!(matches!(waited, Err(Error::TimedOut { .. })));
    /// lease.release().await?;
    /// assert!(pool.acquire_timeout(Duration::from_secs(10)).await?.is_valid());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Lease> {
        self.acquire_until(Some(Instant::now() + timeout)).await?.ok_or(Error::TimedOut { after: timeout })
    }

    /// The lease nodes' names (not paths), unsorted: the current holders, and at most one waiter;
    /// an empty list if no lease was ever taken.
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
    /// use corral_recipes::semaphore::SemaphoreV2;
    ///
    /// let pool = SemaphoreV2::new(&fw, "/semaphores/db", 3);
    /// assert!(pool.participant_nodes().await?.is_empty());
    /// let lease = pool.acquire().await?;
    /// assert_eq!(pool.participant_nodes().await?.len(), 1);
    /// # lease.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn participant_nodes(&self) -> Result<Vec<String>> {
        crate::sort::children_or_empty(&self.fw, &format!("{}/leases", self.path)).await.map_err(Error::from)
    }

    async fn acquire_until(&self, deadline: Option<Instant>) -> Result<Option<Lease>> {
        let lock = match deadline {
            None => Some(self.lock.acquire().await?),
            Some(d) => crate::within(self.lock.acquire_timeout(d.saturating_duration_since(Instant::now())).await)?,
        };
        let Some(lock) = lock else { return Ok(None) };
        let result = self.take_lease(lock.session_id(), deadline).await;
        let _ = lock.release().await;
        result
    }

    /// Holding the inner lock, taken in the session `session_id`: creates the lease node in that
    /// session (or fails with [`Error::SessionLost`]: another acquirer may hold the lock by now)
    /// and waits until it is one of at most `max_leases`.
    async fn take_lease(&self, session_id: i64, deadline: Option<Instant>) -> Result<Option<Lease>> {
        let leases = format!("{}/leases", self.path);
        // Deletes the lease node if this future is dropped before the lease owns it, also while
        // the create waits for its reply.
        let mut node = ProtectedNode::bound_to(&self.fw, &leases, session_id);
        let (path, created, _) = node.create(LEASE_NAME, Bytes::new(), false).await?;
        let name = corral_core::proto::path::name(&path).to_owned();
        // No await in between: from here the lease deletes its node when dropped.
        node.hand_over();
        let hold = Hold::new(&self.fw, path.clone(), created.state, created.czxid);
        let mut lease = Some(Lease { fw: self.fw.clone(), path: path.clone(), hold, released: false });
        loop {
            let (children, watcher) = self
                .fw
                .with_retry(|client| {
                    let leases = leases.clone();
                    async move {
                        let (children, _, watcher) = client.get_children_and_watch(&leases).await?;
                        Ok((children, watcher))
                    }
                })
                .await?;
            if !children.contains(&name) {
                // The lease node went with its session (or someone deleted it).
                return Err(created.node_gone(&self.fw, &path));
            }
            if children.len() <= self.max_leases {
                return Ok(lease.take());
            }
            let timed_out = tokio::select! {
                _ = watcher => false,
                _ = sleep_until_opt(deadline) => true,
            };
            if timed_out {
                if let Some(l) = lease.take() {
                    let _ = l.release().await;
                }
                return Ok(None);
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A held lease of a [`SemaphoreV2`] or [`SemaphoreMutex`]. Release it with [`Lease::release`];
/// dropping it releases in the background (on the current Tokio runtime; dropped outside any
/// runtime, it logs a warning, as a [`MutexGuard`](crate::lock::MutexGuard) does, and the lease
/// node stays until the session ends).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use std::time::Duration;
/// use corral_recipes::semaphore::SemaphoreV2;
///
/// let pool = SemaphoreV2::new(&fw, "/semaphores/db", 1);
/// {
///     let lease = pool.acquire().await?;
///     assert!(lease.is_valid());
/// } // dropped: released in the background
/// pool.acquire_timeout(Duration::from_secs(10)).await?;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Lease {
    fw: Framework,
    path: String,
    hold: Hold,
    released: bool,
}

impl Lease {
    /// The lease node's path.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::semaphore::SemaphoreV2;
    /// let lease = SemaphoreV2::new(&fw, "/semaphores/db", 2).acquire().await?;
    /// assert!(lease.path().starts_with("/semaphores/db/leases/"));
    /// # lease.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the lease is still held as far as this process can tell (the rule of every
    /// [`Hold`]: same session and connection under the Standard policy, same session under
    /// SessionOnly). It asks nothing of the server.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::semaphore::SemaphoreV2;
    /// let lease = SemaphoreV2::new(&fw, "/semaphores/db", 2).acquire().await?;
    /// assert!(lease.is_valid());
    /// let first = fw.current_state().connection;
    /// server.drop_connection(fw.client().session_id()); // SUSPENDED, then RECONNECTED
    /// fw.connection_state().wait_for(|s| s.connection != first && s.state.is_connected()).await?;
    /// // Same session, but under the Standard policy a SUSPENDED invalidates the lease for good.
    /// assert!(!lease.is_valid());
    /// # drop(lease);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn is_valid(&self) -> bool {
        !self.released && self.hold.is_valid()
    }

    /// Resolves once the lease is no longer valid (see [`Lease::is_valid`]); not on release.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::semaphore::SemaphoreV2;
    /// let lease = SemaphoreV2::new(&fw, "/semaphores/db", 2).acquire().await?;
    /// server.expire_session(lease.hold().session_id());
    /// lease.invalidated().await;
    /// assert!(!lease.is_valid());
    /// # drop(lease);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn invalidated(&self) {
        self.hold.invalidated().await;
    }

    /// An operation for your own transaction that fails unless the lease node still exists
    /// (see [`Hold::fencing_check`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::{CreateMode, Op, semaphore::SemaphoreV2};
    ///
    /// let lease = SemaphoreV2::new(&fw, "/semaphores/db", 2).acquire().await?;
    /// fw.transaction(vec![lease.fencing_check(), Op::create("/job", "", CreateMode::Persistent)]).await?;
    /// # lease.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn fencing_check(&self) -> corral_core::Op {
        self.hold.fencing_check()
    }

    /// The lease node's creation zxid, larger for every later lease of the pool (see
    /// [`Hold::fencing_token`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::semaphore::SemaphoreV2;
    /// let pool = SemaphoreV2::new(&fw, "/semaphores/db", 2);
    /// let (a, b) = (pool.acquire().await?, pool.acquire().await?);
    /// assert!(b.fencing_token() > a.fencing_token());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn fencing_token(&self) -> i64 {
        self.hold.fencing_token()
    }

    /// The hold this lease rests on (see [`Hold`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::semaphore::SemaphoreV2;
    /// let lease = SemaphoreV2::new(&fw, "/semaphores/db", 2).acquire().await?;
    /// assert_eq!(lease.hold().path(), lease.path());
    /// assert_eq!(lease.hold().session_id(), fw.client().session_id());
    /// # lease.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn hold(&self) -> &Hold {
        &self.hold
    }

    /// Releases the lease: a guaranteed delete of its node, going on in the background across
    /// reconnects if it cannot be done now. A node already gone counts as released.
    ///
    /// # Errors
    ///
    /// As [`MutexGuard::release`](crate::lock::MutexGuard::release): a connection error or
    /// [`corral_core::Error::Timeout`] once the framework's retries give up, and the delete then goes on in the
    /// background; a server error such as NoAuth as it is, and the node is left.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`MutexGuard::release`](crate::lock::MutexGuard::release): the lease counts
    /// as released only once the delete has run to its end; if the future is dropped before that
    /// (say, while the delete waits for the connection to come back), the lease is dropped with it
    /// and deletes its node in the background, as a dropped lease does.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::semaphore::SemaphoreV2;
    /// let lease = SemaphoreV2::new(&fw, "/semaphores/db", 2).acquire().await?;
    /// let node = lease.path().to_owned();
    /// lease.release().await?;
    /// assert_eq!(fw.client().exists(&node).await?, None);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn release(mut self) -> Result<()> {
        let result = self.fw.delete(&self.path, Delete::new().guaranteed().idempotent()).await;
        // Ran to its end (deleted, refused, or retried by the framework in the background): only
        // now would a drop have nothing left to do.
        self.released = true;
        result.map_err(Error::from)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.released {
            delete_in_background(&self.fw, std::mem::take(&mut self.path));
        }
    }
}

/// A lock that is not tied to its holder (Curator's `InterProcessSemaphoreMutex`): a
/// [`SemaphoreV2`] with one lease.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use corral_recipes::{Framework, semaphore::SemaphoreMutex};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let lock = SemaphoreMutex::new(&fw, "/locks/report");
/// let lease = lock.acquire().await?;
/// assert!(lock.try_acquire().await?.is_none());
/// lease.release().await?;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SemaphoreMutex {
    inner: SemaphoreV2,
}

impl SemaphoreMutex {
    /// A semaphore mutex at `path` (the layout of a [`SemaphoreV2`] with one lease).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::semaphore::SemaphoreMutex;
    ///
    /// let lock = SemaphoreMutex::new(&fw, "/locks/report");
    /// let lease = lock.acquire().await?;
    /// assert!(lease.path().starts_with("/locks/report/leases/"));
    /// # lease.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(fw: &Framework, path: impl Into<String>) -> Self {
        Self { inner: SemaphoreV2::new(fw, path, 1) }
    }

    /// Waits for the lock.
    ///
    /// # Errors
    ///
    /// As [`SemaphoreV2::acquire`]: among others, [`Error::SessionLost`] if the session is lost
    /// while waiting.
    ///
    /// # Cancel safety
    ///
    /// As [`SemaphoreV2::acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::semaphore::SemaphoreMutex;
    ///
    /// let lock = SemaphoreMutex::new(&fw, "/locks/report");
    /// let lease = lock.acquire().await?;
    /// assert!(lease.is_valid());
    /// lease.release().await?;
    /// assert!(lock.try_acquire().await?.is_some());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn acquire(&self) -> Result<Lease> {
        self.inner.acquire().await
    }

    /// Waits at most `timeout` for the lock; [`Error::TimedOut`] if it was not acquired in time.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] when `timeout` passes first; otherwise as [`SemaphoreV2::acquire`],
    /// among others [`Error::SessionLost`] if the session is lost while waiting.
    ///
    /// # Cancel safety
    ///
    /// As [`SemaphoreV2::acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::{Error, semaphore::SemaphoreMutex};
    ///
    /// let lock = SemaphoreMutex::new(&fw, "/locks/report");
    /// let lease = lock.acquire().await?;
    /// let waited = lock.acquire_timeout(Duration::from_millis(100)).await;
    /// assert!(matches!(waited, Err(Error::TimedOut { .. })));
    /// # lease.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Lease> {
        self.inner.acquire_timeout(timeout).await
    }

    /// Takes the lock only if it is free now; `Ok(None)` otherwise, also while another acquirer
    /// holds the inner lock.
    ///
    /// # Errors
    ///
    /// As [`SemaphoreV2::acquire`].
    ///
    /// # Cancel safety
    ///
    /// As [`SemaphoreV2::acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::semaphore::SemaphoreMutex;
    ///
    /// let lock = SemaphoreMutex::new(&fw, "/locks/report");
    /// let lease = lock.try_acquire().await?.expect("the lock is free");
    /// assert!(lock.try_acquire().await?.is_none());
    /// # lease.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn try_acquire(&self) -> Result<Option<Lease>> {
        crate::within(self.inner.acquire_timeout(Duration::ZERO).await)
    }
}
