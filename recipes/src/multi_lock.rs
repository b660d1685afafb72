//! [`MultiLock`]: several locks taken as one (Curator's `InterProcessMultiLock`).
//!
//! The locks are acquired in the order given and released in reverse; if one cannot be taken,
//! the ones already held are released. Give every process the locks in the same order to avoid
//! deadlocks.

use std::time::Duration;

use corral_core::{Framework, Op, Result};
use tokio::time::Instant;

use crate::lock::{Mutex, MutexGuard};

/// Several [`Mutex`]es acquired together.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use corral_recipes::{Framework, multi_lock::MultiLock};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let both = MultiLock::new(&fw, ["/locks/a", "/locks/b"]);
/// let guard = both.acquire().await?;
/// assert_eq!(guard.guards().len(), 2);
/// guard.release().await?;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MultiLock {
    locks: Vec<Mutex>,
}

impl MultiLock {
    /// A multi-lock over the mutexes at `paths`, taken in that order.
    pub fn new<I, P>(fw: &Framework, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        Self { locks: paths.into_iter().map(|p| Mutex::new(fw, p)).collect() }
    }

    /// Waits until every lock is held.
    ///
    /// # Errors
    ///
    /// As [`Mutex::acquire`]; the locks taken so far are released.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: every lock taken or being taken is released in the background.
    pub async fn acquire(&self) -> Result<MultiGuard> {
        let mut guards = Vec::with_capacity(self.locks.len());
        for lock in &self.locks {
            guards.push(lock.acquire().await?);
        }
        Ok(MultiGuard { guards })
    }

    /// Waits at most `timeout` (in total) for every lock; `Ok(None)` and nothing held if they
    /// could not all be taken in time.
    ///
    /// # Errors
    ///
    /// As [`Mutex::acquire`].
    ///
    /// # Cancel safety
    ///
    /// As [`MultiLock::acquire`].
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<MultiGuard>> {
        let deadline = Instant::now() + timeout;
        let mut guards = Vec::with_capacity(self.locks.len());
        for lock in &self.locks {
            match lock.acquire_timeout(deadline.saturating_duration_since(Instant::now())).await? {
                Some(g) => guards.push(g),
                None => {
                    MultiGuard { guards }.release().await?;
                    return Ok(None);
                }
            }
        }
        Ok(Some(MultiGuard { guards }))
    }
}

/// Every lock of a [`MultiLock`], held.
#[derive(Debug)]
pub struct MultiGuard {
    guards: Vec<MutexGuard>,
}

impl MultiGuard {
    /// The individual guards, in acquisition order.
    pub fn guards(&self) -> &[MutexGuard] {
        &self.guards
    }

    /// Whether every lock is still valid.
    pub fn is_valid(&self) -> bool {
        self.guards.iter().all(MutexGuard::is_valid)
    }

    /// One check per lock, for your own transaction.
    pub fn fencing_checks(&self) -> Vec<Op> {
        self.guards.iter().map(MutexGuard::fencing_check).collect()
    }

    /// Releases every lock, in reverse order.
    ///
    /// # Errors
    ///
    /// The first release error (the other locks are still released; failed ones go on in the
    /// background).
    pub async fn release(mut self) -> Result<()> {
        let mut first = Ok(());
        while let Some(g) = self.guards.pop() {
            if let Err(e) = g.release().await
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }
}
