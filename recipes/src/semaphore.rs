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

use bytes::Bytes;
use corral_core::framework::{Create, Delete};
use corral_core::{ConnectionStateChange, CreateMode, Error, ErrorPolicy, Framework, Result};
use tokio::time::Instant;

use crate::lock::Mutex;

/// Curator's lease node name.
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
/// assert!(pool.acquire_timeout(Duration::from_millis(100)).await?.is_none());
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
    /// A semaphore of `max_leases` at `path`.
    pub fn new(fw: &Framework, path: impl Into<String>, max_leases: usize) -> Self {
        let path = path.into();
        let lock = Mutex::new(fw, format!("{path}/locks"));
        Self { fw: fw.clone(), path, max_leases: max_leases.max(1), lock }
    }

    /// Waits for a lease.
    ///
    /// # Errors
    ///
    /// [`Error::SessionExpired`] if the session is lost while waiting; connection errors.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped acquisition removes its lease node and releases the inner mutex
    /// in the background.
    pub async fn acquire(&self) -> Result<Lease> {
        self.acquire_until(None).await?.ok_or(Error::Timeout)
    }

    /// Waits at most `timeout` for a lease; `Ok(None)` if none came in time.
    ///
    /// # Errors
    ///
    /// As [`SemaphoreV2::acquire`].
    ///
    /// # Cancel safety
    ///
    /// As [`SemaphoreV2::acquire`].
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<Lease>> {
        self.acquire_until(Some(Instant::now() + timeout)).await
    }

    /// The lease nodes' names (current holders, and at most one waiter).
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub async fn participant_nodes(&self) -> Result<Vec<String>> {
        match self.fw.client().get_children(&format!("{}/leases", self.path)).await {
            Err(e) if e.is_no_node() => Ok(Vec::new()),
            other => other,
        }
    }

    async fn acquire_until(&self, deadline: Option<Instant>) -> Result<Option<Lease>> {
        let lock = match deadline {
            None => Some(self.lock.acquire().await?),
            Some(d) => self.lock.acquire_timeout(d.saturating_duration_since(Instant::now())).await?,
        };
        let Some(lock) = lock else { return Ok(None) };
        let result = self.take_lease(deadline).await;
        let _ = lock.release().await;
        result
    }

    async fn take_lease(&self, deadline: Option<Instant>) -> Result<Option<Lease>> {
        let leases = format!("{}/leases", self.path);
        let state = self.fw.current_state();
        let spec = Create::new(CreateMode::EphemeralSequential).container_parents().protected();
        let path = self.fw.create(&format!("{leases}/{LEASE_NAME}"), Bytes::new(), spec).await?;
        let mut lease = Some(Lease { fw: self.fw.clone(), path, state, released: false });
        let name = lease.as_ref().map(|l| corral_core::proto::path::name(&l.path).to_owned()).unwrap_or_default();
        loop {
            let (children, _, watcher) = self.fw.client().get_children_and_watch(&leases).await?;
            if !children.contains(&name) {
                return Err(Error::SessionExpired);
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

/// A held lease of a [`SemaphoreV2`]. Release it with [`Lease::release`]; dropping it releases
/// in the background.
#[derive(Debug)]
pub struct Lease {
    fw: Framework,
    path: String,
    state: ConnectionStateChange,
    released: bool,
}

impl Lease {
    /// The lease node's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the lease is still held as far as this process can tell (same session and
    /// connection under the Standard policy, same session under SessionOnly).
    pub fn is_valid(&self) -> bool {
        let now = self.fw.current_state();
        match self.fw.error_policy() {
            ErrorPolicy::Standard => {
                now.epoch == self.state.epoch && now.connection == self.state.connection && now.state.is_connected()
            }
            ErrorPolicy::SessionOnly => now.epoch == self.state.epoch && !self.fw.error_policy().is_error(now.state),
        }
    }

    /// Releases the lease (a guaranteed delete of its node).
    ///
    /// # Errors
    ///
    /// The first attempt's error when the delete had to go on in the background.
    pub async fn release(mut self) -> Result<()> {
        self.released = true;
        self.fw.delete(&self.path, Delete::new().guaranteed().idempotent()).await
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (fw, path) = (self.fw.clone(), std::mem::take(&mut self.path));
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = fw.delete(&path, Delete::new().guaranteed().idempotent()).await;
            });
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
    /// A semaphore mutex at `path`.
    pub fn new(fw: &Framework, path: impl Into<String>) -> Self {
        Self { inner: SemaphoreV2::new(fw, path, 1) }
    }

    /// Waits for the lock.
    ///
    /// # Errors
    ///
    /// As [`SemaphoreV2::acquire`].
    ///
    /// # Cancel safety
    ///
    /// As [`SemaphoreV2::acquire`].
    pub async fn acquire(&self) -> Result<Lease> {
        self.inner.acquire().await
    }

    /// Waits at most `timeout` for the lock.
    ///
    /// # Errors
    ///
    /// As [`SemaphoreV2::acquire`].
    ///
    /// # Cancel safety
    ///
    /// As [`SemaphoreV2::acquire`].
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<Lease>> {
        self.inner.acquire_timeout(timeout).await
    }

    /// Takes the lock only if it is free now.
    ///
    /// # Errors
    ///
    /// As [`SemaphoreV2::acquire`].
    ///
    /// # Cancel safety
    ///
    /// As [`SemaphoreV2::acquire`].
    pub async fn try_acquire(&self) -> Result<Option<Lease>> {
        self.inner.acquire_timeout(Duration::ZERO).await
    }
}
