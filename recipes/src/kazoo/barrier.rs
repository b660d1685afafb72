//! kazoo's `Barrier` and `DoubleBarrier`.
//!
//! # Layout (kazoo 2.11's `kazoo/recipe/barrier.py`)
//!
//! | recipe | node | kind | data |
//! |---|---|---|---|
//! | `Barrier(path)` | `<path>` | persistent, parents persistent | empty |
//! | `DoubleBarrier(path, num_clients, identifier)` | `<path>/<uuid hex>` | ephemeral, one per member | the identifier, UTF-8 |
//! | | `<path>/ready` | persistent, made by the member that sees `num_clients` children | empty |
//!
//! **Enter**: a member creates its node, watches `ready` and counts the children of `<path>`;
//! with at least `num_clients` it creates `ready`, otherwise it waits until `ready` is created.
//! **Leave**: a member deletes `ready`, then, among the member nodes sorted by name, the lowest
//! waits for the highest to go and every other member deletes its node and waits for the
//! lowest to go, until none is left.
//!
//! # Connection states
//!
//! | state | what happens |
//! |---|---|
//! | SUSPENDED | waiters keep waiting; their watches are restored with the connection |
//! | RECONNECTED (same session) | waiters look again |
//! | LOST, then the new session | the member node went with the old session: a member still entering creates it again in the new one (through that session's handle) and waits on; a member leaving counts as left |
//!
//! Unlike kazoo, a member whose enter or leave times out (or whose enter is dropped) deletes its
//! node, so that it is not counted by the others; and a member that finds `ready` already there
//! is let in, where kazoo's would wait for the next creation of `ready`.

use std::time::Duration;

use crate::{Error, Result};
use bytes::Bytes;
use corral_core::Framework;
use tokio::time::Instant;

use crate::barrier::DistributedBarrier;
use crate::double_barrier::member::{Flavor, Member};

/// The name of a [`DoubleBarrier`]'s ready node (the same as Curator's).
pub const READY_NODE_NAME: &str = crate::double_barrier::READY_NODE;

/// kazoo's `Barrier(path)`: holds waiters back while its node exists. The same barrier as
/// Curator's `DistributedBarrier` (this crate's [`DistributedBarrier`], whose wait it uses),
/// created as kazoo does: persistent parents, empty data.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use std::time::Duration;
/// use corral_recipes::kazoo::Barrier;
///
/// let barrier = Barrier::new(&fw, "/barriers/deploy");
/// barrier.create().await?;
/// assert!(matches!(barrier.wait_timeout(Duration::from_millis(50)).await, Err(corral_recipes::Error::TimedOut { .. })));
/// assert!(barrier.remove().await?);
/// barrier.wait().await?; // cleared
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Barrier {
    fw: Framework,
    inner: DistributedBarrier,
}

impl Barrier {
    /// A barrier at `path`. Nothing is sent yet.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::Barrier;
    ///
    /// assert_eq!(Barrier::new(&fw, "/barriers/deploy").path(), "/barriers/deploy");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(fw: &Framework, path: impl Into<String>) -> Self {
        Self { fw: fw.clone(), inner: DistributedBarrier::new(fw, path) }
    }

    /// The barrier's path.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::Barrier;
    ///
    /// assert_eq!(Barrier::new(&fw, "/b").path(), "/b");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &str {
        self.inner.path()
    }

    /// Puts the barrier up if it is not (kazoo's `create()`): the node and its missing parents,
    /// persistent and empty.
    ///
    /// # Errors
    ///
    /// Server errors such as NoAuth; connection errors once the framework's retries give up.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in effect: calling it again completes what a dropped call began.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::Barrier;
    ///
    /// Barrier::new(&fw, "/barriers/deploy").create().await?;
    /// assert!(fw.client().get_data("/barriers/deploy").await?.0.is_empty());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn create(&self) -> Result<()> {
        self.fw.ensure_path(self.path()).await.map_err(Error::from)
    }

    /// Takes the barrier down (kazoo's `remove()`); `false` if it was not up.
    ///
    /// # Errors
    ///
    /// NotEmpty if someone put nodes under it; server errors such as NoAuth; connection errors
    /// once the framework's retries give up.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the node may have been deleted when the future is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::Barrier;
    ///
    /// let barrier = Barrier::new(&fw, "/barriers/deploy");
    /// assert!(!barrier.remove().await?);
    /// barrier.create().await?;
    /// assert!(barrier.remove().await?);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn remove(&self) -> Result<bool> {
        let path = self.path().to_owned();
        let deleted = self
            .fw
            .with_retry(|c| {
                let path = path.clone();
                async move { c.delete(&path, None).await }
            })
            .await;
        match deleted {
            Ok(()) => Ok(true),
            Err(e) if e.is_no_node() => Ok(false),
            Err(e) => Err(Error::from(e)),
        }
    }

    /// Waits until the barrier is down (kazoo's `wait()`), across reconnects and new sessions.
    ///
    /// # Errors
    ///
    /// As [`DistributedBarrier::wait_on_barrier`].
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
    /// use corral_recipes::kazoo::Barrier;
    ///
    /// let barrier = Barrier::new(&fw, "/barriers/deploy");
    /// barrier.create().await?;
    /// let waiter = tokio::spawn({
    ///     let barrier = barrier.clone();
    ///     async move { barrier.wait().await }
    /// });
    /// barrier.remove().await?;
    /// waiter.await??;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn wait(&self) -> Result<()> {
        self.inner.wait_on_barrier().await
    }

    /// Waits at most `timeout` for the barrier to go down (kazoo's `wait(timeout)`); `false` if
    /// it is still up.
    ///
    /// # Errors
    ///
    /// As [`Barrier::wait`].
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
    /// use std::time::Duration;
    /// use corral_recipes::kazoo::Barrier;
    ///
    /// let barrier = Barrier::new(&fw, "/barriers/deploy");
    /// barrier.wait_timeout(Duration::from_secs(1)).await?; // not up: cleared
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        self.inner.wait_on_barrier_timeout(timeout).await
    }
}

/// kazoo's `DoubleBarrier(path, num_clients, identifier)`: members enter together once
/// `num_clients` have arrived and leave together once all are done. See the
/// [module docs](crate::kazoo) for the layout and what happens on connection changes. Dropping a member
/// that is in deletes its node in the background (kazoo leaves it to the session).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use corral_recipes::kazoo::DoubleBarrier;
///
/// let a = DoubleBarrier::new(&fw, "/barriers/job", 2, "rust-a");
/// let b = DoubleBarrier::new(&fw, "/barriers/job", 2, "rust-b");
/// let (x, y) = tokio::join!(a.enter(), b.enter()); // both in, together
/// x?; y?;
/// let (x, y) = tokio::join!(a.leave(), b.leave()); // both out, together
/// x?; y?;
/// assert!(fw.client().get_children("/barriers/job").await?.is_empty());
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DoubleBarrier {
    member: Member,
    identifier: String,
}

impl DoubleBarrier {
    /// A member of the double barrier at `path` that opens at `num_clients` members (0 counts
    /// as 1), whose node holds `identifier` (kazoo's default is `"<fqdn>-<pid>"`). The node's
    /// name, a uuid hex, is chosen now; nothing is sent yet.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::DoubleBarrier;
    ///
    /// let member = DoubleBarrier::new(&fw, "/barriers/job", 1, "rust-a");
    /// member.enter().await?; // alone is enough
    /// assert_eq!(&fw.client().get_data(member.node_path()).await?.0[..], b"rust-a");
    /// # member.leave().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(fw: &Framework, path: impl Into<String>, num_clients: usize, identifier: impl Into<String>) -> Self {
        let name = uuid::Uuid::new_v4().simple().to_string();
        let member = Member::new(fw, Flavor::Kazoo, path.into(), name, num_clients.max(1));
        Self { member, identifier: identifier.into() }
    }

    /// This member's node, `<path>/<uuid hex>`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::DoubleBarrier;
    ///
    /// let member = DoubleBarrier::new(&fw, "/barriers/job", 2, "a");
    /// assert_eq!(member.node_path().len(), "/barriers/job/".len() + 32);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn node_path(&self) -> &str {
        self.member.node_path()
    }

    /// Enters: waits until `num_clients` members are in (kazoo's `enter()`).
    ///
    /// # Errors
    ///
    /// Server errors such as NoAuth; connection errors once the framework's retries give up;
    /// [`corral_core::Error::Closed`] if the framework closes.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped enter deletes the member node in the background.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::DoubleBarrier;
    ///
    /// let member = DoubleBarrier::new(&fw, "/barriers/job", 1, "a");
    /// member.enter().await?;
    /// assert!(fw.client().exists("/barriers/job/ready").await?.is_some());
    /// # member.leave().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn enter(&self) -> Result<()> {
        self.enter_until(None).await.map(|_| ())
    }

    /// Enters, waiting at most `timeout`; `false` (and this member's node deleted) if the
    /// barrier did not open in time.
    ///
    /// # Errors
    ///
    /// As [`DoubleBarrier::enter`].
    ///
    /// # Cancel safety
    ///
    /// As [`DoubleBarrier::enter`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::kazoo::DoubleBarrier;
    ///
    /// let member = DoubleBarrier::new(&fw, "/barriers/job", 2, "a");
    /// assert!(matches!(member.enter_timeout(Duration::from_millis(50)).await, Err(corral_recipes::Error::TimedOut { .. }))); // alone
    /// assert!(fw.client().get_children("/barriers/job").await?.is_empty());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn enter_timeout(&self, timeout: Duration) -> Result<()> {
        if self.enter_until(Some(Instant::now() + timeout)).await? {
            Ok(())
        } else {
            Err(Error::TimedOut { after: timeout })
        }
    }

    async fn enter_until(&self, deadline: Option<Instant>) -> Result<bool> {
        self.member.enter_until(Bytes::from(self.identifier.clone()), Bytes::new(), deadline).await
    }

    /// Leaves: waits until every member has left (kazoo's `leave()`).
    ///
    /// # Errors
    ///
    /// Server errors such as NoAuth; connection errors once the framework's retries give up;
    /// [`corral_core::Error::Closed`] if the framework closes.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a dropped leave may have deleted this member's node (and `ready`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::DoubleBarrier;
    ///
    /// let member = DoubleBarrier::new(&fw, "/barriers/job", 1, "a");
    /// member.enter().await?;
    /// member.leave().await?;
    /// assert!(fw.client().get_children("/barriers/job").await?.is_empty());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn leave(&self) -> Result<()> {
        self.leave_until(None).await.map(|_| ())
    }

    /// Leaves, waiting at most `timeout` for the others; `false` if some were still in (this
    /// member's node is deleted either way).
    ///
    /// # Errors
    ///
    /// As [`DoubleBarrier::leave`].
    ///
    /// # Cancel safety
    ///
    /// As [`DoubleBarrier::leave`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::kazoo::DoubleBarrier;
    ///
    /// let member = DoubleBarrier::new(&fw, "/barriers/job", 1, "a");
    /// member.enter().await?;
    /// member.leave_timeout(Duration::from_secs(10)).await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn leave_timeout(&self, timeout: Duration) -> Result<()> {
        if self.leave_until(Some(Instant::now() + timeout)).await? {
            Ok(())
        } else {
            Err(Error::TimedOut { after: timeout })
        }
    }

    async fn leave_until(&self, deadline: Option<Instant>) -> Result<bool> {
        self.member.leave_until(deadline).await
    }
}

impl Drop for DoubleBarrier {
    fn drop(&mut self) {
        // A member dropped while in leaves its node to its session; delete it now.
        self.member.delete_in_background();
    }
}
