//! [`DistributedBarrier`]: a barrier that holds waiters back while its node exists (Curator's
//! `DistributedBarrier`).
//!
//! # How it works
//!
//! The barrier is one persistent node: while it exists the barrier is closed, and waiters
//! watch it (an exists watch) until it is deleted. [`DistributedBarrier::set_barrier`]
//! creates it (missing parents as containers) with Curator's default data, the local address
//! as text; [`DistributedBarrier::remove_barrier`] deletes it. A Java process using Curator's
//! `DistributedBarrier` on the same path sets, removes and waits on the same barrier.
//!
//! # Connection states
//!
//! | state | what happens |
//! |---|---|
//! | SUSPENDED | waiters keep waiting; the barrier node is persistent and stays |
//! | RECONNECTED (same session) | waiters check the node again (their watch is restored too, so a delete made while disconnected wakes them) |
//! | LOST, then the new session | the old session's watch is gone: waiters check the node again on the new session and watch it there |

use std::time::Duration;

use crate::{Error, Result};
use corral_core::framework::{Create, Delete};
use corral_core::{CreateMode, Framework};
use tokio::time::Instant;

/// A barrier that is closed while its node exists (Curator's `DistributedBarrier`). Cheap to
/// clone.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::time::Duration;
/// use corral_recipes::{Framework, barrier::DistributedBarrier};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let barrier = DistributedBarrier::new(&fw, "/barriers/deploy");
/// barrier.set_barrier().await?;
/// let waiter = tokio::spawn({
///     let barrier = barrier.clone();
///     async move { barrier.wait_on_barrier().await }
/// });
/// assert!(matches!(barrier.wait_on_barrier_timeout(Duration::from_millis(100)).await, Err(corral_recipes::Error::TimedOut { .. })));
/// barrier.remove_barrier().await?;
/// waiter.await??; // the waiter passes once the barrier is removed
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DistributedBarrier {
    fw: Framework,
    path: String,
}

impl DistributedBarrier {
    /// A barrier whose node is `path`. Nothing is sent until a method is called.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::barrier::DistributedBarrier;
    ///
    /// let barrier = DistributedBarrier::new(&fw, "/barriers/deploy");
    /// assert_eq!(barrier.path(), "/barriers/deploy");
    /// // Not set: nobody waits.
    /// barrier.wait_on_barrier().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(fw: &Framework, path: impl Into<String>) -> Self {
        Self { fw: fw.clone(), path: path.into() }
    }

    /// The barrier node's path.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::barrier::DistributedBarrier;
    /// assert_eq!(DistributedBarrier::new(&fw, "/b").path(), "/b");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Closes the barrier: creates its node (missing parents as containers) with Curator's
    /// default data, the local address as text. A barrier that is already set stays set.
    ///
    /// # Errors
    ///
    /// Connection errors once the retry policy gives up; [`corral_core::Error::InvalidPath`] for a bad path;
    /// server errors such as NoAuth as [`corral_core::Error::Server`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the barrier may have been set when the future is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::barrier::DistributedBarrier;
    ///
    /// let barrier = DistributedBarrier::new(&fw, "/barriers/deploy");
    /// barrier.set_barrier().await?;
    /// barrier.set_barrier().await?; // already set: fine
    /// assert!(fw.client().exists("/barriers/deploy").await?.is_some());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn set_barrier(&self) -> Result<()> {
        let data = crate::default_data::local_address().await;
        let spec = Create::new(CreateMode::Persistent).container_parents();
        match self.fw.create(&self.path, data, spec).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_node_exists() => Ok(()),
            Err(e) => Err(Error::from(e)),
        }
    }

    /// Opens the barrier: deletes its node, which wakes every waiter. A barrier that is not set
    /// stays open.
    ///
    /// # Errors
    ///
    /// Connection errors once the retry policy gives up; server errors such as NotEmpty (some
    /// other process created children under the barrier node) or NoAuth as [`corral_core::Error::Server`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the barrier may have been removed when the future is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::barrier::DistributedBarrier;
    ///
    /// let barrier = DistributedBarrier::new(&fw, "/barriers/deploy");
    /// barrier.set_barrier().await?;
    /// barrier.remove_barrier().await?;
    /// barrier.remove_barrier().await?; // not set: fine
    /// assert!(fw.client().exists("/barriers/deploy").await?.is_none());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn remove_barrier(&self) -> Result<()> {
        self.fw.delete(&self.path, Delete::new().idempotent()).await.map_err(Error::from)
    }

    /// Waits until the barrier is open (its node does not exist); returns at once if it is.
    ///
    /// # Errors
    ///
    /// [`corral_core::Error::Timeout`] if the framework stays disconnected longer than its connection
    /// timeout while the node is (re-)checked; connection errors once the retry policy gives up;
    /// [`corral_core::Error::Closed`] if the framework is closed; server errors such as NoAuth as
    /// [`corral_core::Error::Server`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads and watches; dropping the future drops its watch.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::barrier::DistributedBarrier;
    ///
    /// let barrier = DistributedBarrier::new(&fw, "/barriers/deploy");
    /// barrier.set_barrier().await?;
    /// let opener = DistributedBarrier::new(&fw, "/barriers/deploy");
    /// let (waited, removed) = tokio::join!(barrier.wait_on_barrier(), opener.remove_barrier());
    /// waited?;
    /// removed?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn wait_on_barrier(&self) -> Result<()> {
        self.wait_until(None).await.map(|_| ())
    }

    /// Waits at most `timeout` for the barrier to open: `Ok(())` once it is open,
    /// [`Error::TimedOut`] if it was still set when the time ran out.
    ///
    /// The node is always checked once, however short `timeout` is (the check is bounded by the
    /// retry policy, not by `timeout`); `timeout` bounds the wait after it.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] when `timeout` passes first; otherwise as
    /// [`DistributedBarrier::wait_on_barrier`].
    ///
    /// # Cancel safety
    ///
    /// As [`DistributedBarrier::wait_on_barrier`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::{Error, barrier::DistributedBarrier};
    ///
    /// let barrier = DistributedBarrier::new(&fw, "/barriers/deploy");
    /// barrier.wait_on_barrier_timeout(Duration::ZERO).await?; // open
    /// barrier.set_barrier().await?;
    /// let waited = barrier.wait_on_barrier_timeout(Duration::from_millis(50)).await;
    /// assert!(matches!(waited, Err(Error::TimedOut { .. }))); // still set
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn wait_on_barrier_timeout(&self, timeout: Duration) -> Result<()> {
        if self.wait_until(Some(Instant::now() + timeout)).await? {
            Ok(())
        } else {
            Err(Error::TimedOut { after: timeout })
        }
    }

    async fn wait_until(&self, deadline: Option<Instant>) -> Result<bool> {
        let mut states = self.fw.connection_state();
        loop {
            let checked_on = states.borrow_and_update().connection;
            let path = self.path.clone();
            let (stat, watcher) = self
                .fw
                .with_retry(move |client| {
                    let path = path.clone();
                    async move { client.exists_and_watch(&path).await }
                })
                .await?;
            if stat.is_none() {
                return Ok(true);
            }
            let timed_out = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // Deleted or changed, or the session ended (the watch went with it): check again.
                _ = watcher => {}
                // A new connection (same session or a new one): check again, as Curator does.
                connected = crate::task::new_connection(&mut states, checked_on) => {
                    if !connected {
                        return Err(Error::CLOSED);
                    }
                    tracing::debug!(path = %self.path, "reconnected; checking the barrier again");
                }
                _ = timed_out => return Ok(false),
            }
        }
    }
}
