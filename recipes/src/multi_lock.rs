//! [`MultiLock`]: several locks taken as one (Curator's `InterProcessMultiLock`).
//!
//! The locks are acquired in the order given and released in reverse; if one cannot be taken,
//! the ones already held are released. Give every process the locks in the same order to avoid
//! deadlocks.

use std::time::Duration;

use crate::{Error, Result};
use corral_core::Error as CoreError;
use corral_core::{Framework, Op};
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
    /// A multi-lock over the mutexes at `paths`, taken in that order (each path is a
    /// [`Mutex`] directory).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::multi_lock::MultiLock;
    ///
    /// let both = MultiLock::new(&fw, ["/locks/a", "/locks/b"]);
    /// let guard = both.acquire().await?;
    /// assert!(guard.guards()[0].path().starts_with("/locks/a/"));
    /// assert!(guard.guards()[1].path().starts_with("/locks/b/"));
    /// # guard.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new<I, P>(fw: &Framework, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        Self { locks: paths.into_iter().map(|p| Mutex::new(fw, p)).collect() }
    }

    /// Waits until every lock is held, taking them one after the other, all in one session: the
    /// session the first lock was taken in.
    ///
    /// # Errors
    ///
    /// - [`Error::SessionLost`] with the id of the first lock's session if that session is lost
    ///   before every lock is held (while waiting, or between two locks): no lock is then taken
    ///   in a later session, and those held went with the session.
    /// - Otherwise as [`Mutex::acquire`].
    ///
    /// The locks taken so far are released in the background.
    ///
    /// # Cancel safety
    ///
    /// As [`Mutex::acquire`] for the lock being taken when the future is dropped; the locks already
    /// taken are released in the background.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::{lock::Mutex, multi_lock::MultiLock};
    ///
    /// let both = MultiLock::new(&fw, ["/locks/a", "/locks/b"]);
    /// let guard = both.acquire().await?;
    /// // Each lock is held on its own, too.
    /// assert!(Mutex::new(&fw, "/locks/b").try_acquire().await?.is_none());
    /// guard.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn acquire(&self) -> Result<MultiGuard> {
        let mut guards: Vec<MutexGuard> = Vec::with_capacity(self.locks.len());
        for lock in &self.locks {
            let guard = match guards.first().map(MutexGuard::session_id) {
                None => lock.acquire().await?,
                Some(session_id) => {
                    lock.acquire_in_session(session_id, None).await?.ok_or(Error::from(CoreError::Timeout))?
                }
            };
            guards.push(guard);
        }
        Ok(MultiGuard { guards })
    }

    /// Waits at most `timeout` (in total) for every lock; [`Error::TimedOut`] and nothing held if
    /// they could not all be taken in time.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] when `timeout` passes first; otherwise as [`MultiLock::acquire`]
    /// ([`Error::SessionLost`] if the first lock's session is lost before all are held). When a
    /// lock is not taken in time, the ones already taken are released before returning; if such
    /// a release fails, its error is returned instead (the delete goes on in the background, see
    /// [`MutexGuard::release`]).
    ///
    /// # Cancel safety
    ///
    /// As [`MultiLock::acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::{Error, lock::Mutex, multi_lock::MultiLock};
    ///
    /// let b = Mutex::new(&fw, "/locks/b").acquire().await?; // someone holds b
    /// let both = MultiLock::new(&fw, ["/locks/a", "/locks/b"]);
    /// let waited = both.acquire_timeout(Duration::from_millis(100)).await;
    /// assert!(matches!(waited, Err(Error::TimedOut { .. })));
    /// // a was given back.
    /// assert!(Mutex::new(&fw, "/locks/a").try_acquire().await?.is_some());
    /// # b.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<MultiGuard> {
        let deadline = Instant::now() + timeout;
        let mut guards = Vec::with_capacity(self.locks.len());
        for lock in &self.locks {
            let acquired = match guards.first().map(MutexGuard::session_id) {
                None => lock.acquire_timeout(deadline.saturating_duration_since(Instant::now())).await,
                Some(session_id) => {
                    lock.acquire_in_session(session_id, Some(deadline)).await?.ok_or(Error::TimedOut { after: timeout })
                }
            };
            match acquired {
                Ok(g) => guards.push(g),
                Err(Error::TimedOut { .. }) => {
                    MultiGuard { guards }.release().await?;
                    return Err(Error::TimedOut { after: timeout });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(MultiGuard { guards })
    }
}

/// Every lock of a [`MultiLock`], held. Release it with [`MultiGuard::release`]; dropping it
/// drops every [`MutexGuard`], which releases each lock in the background.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use std::time::Duration;
/// use corral_recipes::multi_lock::MultiLock;
///
/// let both = MultiLock::new(&fw, ["/locks/a", "/locks/b"]);
/// {
///     let guard = both.acquire().await?;
///     assert!(guard.is_valid());
/// } // dropped: both locks released in the background
/// both.acquire_timeout(Duration::from_secs(10)).await?;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MultiGuard {
    guards: Vec<MutexGuard>,
}

impl MultiGuard {
    /// The individual guards, in acquisition order.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::multi_lock::MultiLock;
    /// let guard = MultiLock::new(&fw, ["/locks/a", "/locks/b"]).acquire().await?;
    /// let tokens: Vec<i64> = guard.guards().iter().map(|g| g.fencing_token()).collect();
    /// assert_eq!(tokens.len(), 2);
    /// # guard.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn guards(&self) -> &[MutexGuard] {
        &self.guards
    }

    /// Whether every lock is still valid (see [`MutexGuard::is_valid`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::multi_lock::MultiLock;
    /// let guard = MultiLock::new(&fw, ["/locks/a", "/locks/b"]).acquire().await?;
    /// assert!(guard.is_valid());
    /// server.drop_connection(fw.client().session_id()); // SUSPENDED: every lock is in doubt
    /// guard.guards()[0].invalidated().await;
    /// assert!(!guard.is_valid());
    /// # drop(guard);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn is_valid(&self) -> bool {
        self.guards.iter().all(MutexGuard::is_valid)
    }

    /// One check per lock, for your own transaction: it fails unless every lock node still exists
    /// (see [`MutexGuard::fencing_check`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::{CreateMode, Op, multi_lock::MultiLock};
    ///
    /// let guard = MultiLock::new(&fw, ["/locks/a", "/locks/b"]).acquire().await?;
    /// let mut ops = guard.fencing_checks();
    /// ops.push(Op::create("/transfer-1", "a->b", CreateMode::Persistent));
    /// fw.transaction(ops).await?;
    /// assert!(fw.client().exists("/transfer-1").await?.is_some());
    /// # guard.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn fencing_checks(&self) -> Vec<Op> {
        self.guards.iter().map(MutexGuard::fencing_check).collect()
    }

    /// Releases every lock, in reverse order.
    ///
    /// # Errors
    ///
    /// The first release error (see [`MutexGuard::release`]); the other locks are still released,
    /// and failed deletes go on in the background.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the lock being released when the future is dropped is as in
    /// [`MutexGuard::release`]; the locks not reached yet are released in the background.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::multi_lock::MultiLock;
    /// let guard = MultiLock::new(&fw, ["/locks/a", "/locks/b"]).acquire().await?;
    /// guard.release().await?;
    /// assert!(fw.client().get_children("/locks/a").await?.is_empty());
    /// assert!(fw.client().get_children("/locks/b").await?.is_empty());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
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
