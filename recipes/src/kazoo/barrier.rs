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

use std::sync::Mutex as StdMutex;
use std::time::Duration;

use crate::{Error, Result};
use corral_core::Error as CoreError;
use corral_core::framework::{Create, Session};
use corral_core::{CreateMode, EventType, Framework};
use tokio::time::Instant;

use super::child_path;
use crate::barrier::DistributedBarrier;

/// The name of a [`DoubleBarrier`]'s ready node.
pub const READY_NODE_NAME: &str = "ready";

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
/// [module docs](self) for the layout and what happens on connection changes. Dropping a member
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
    fw: Framework,
    path: String,
    num_clients: usize,
    identifier: String,
    node_name: String,
    node_path: String,
    ready_path: String,
    /// The session our member node was made in, while it may exist.
    joined: StdMutex<Option<Session>>,
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
        let path = path.into();
        let node_name = uuid::Uuid::new_v4().simple().to_string();
        let (node_path, ready_path) = (child_path(&path, &node_name), child_path(&path, READY_NODE_NAME));
        Self {
            fw: fw.clone(),
            path,
            num_clients: num_clients.max(1),
            identifier: identifier.into(),
            node_name,
            node_path,
            ready_path,
            joined: StdMutex::new(None),
        }
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
        &self.node_path
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
        // Until entered, a drop or an error takes the member node away again.
        let mut cleanup = Cleanup { barrier: self, armed: true };
        let mut states = self.fw.connection_state();
        self.fw.ensure_path(&self.path).await?;
        loop {
            let seen = *states.borrow_and_update();
            self.join_in_current_session().await?;
            let ready_path = self.ready_path.clone();
            let (ready, watcher) = self
                .fw
                .with_retry(move |c| {
                    let path = ready_path.clone();
                    async move { c.exists_and_watch(&path).await }
                })
                .await?;
            if ready.is_some() {
                cleanup.armed = false;
                return Ok(true);
            }
            let count = crate::sort::children_or_empty(&self.fw, &self.path).await?.len();
            if count >= self.num_clients {
                self.fw.ensure_path(&self.ready_path).await?;
                tracing::debug!(path = %self.path, count, "double barrier full; ready");
                cleanup.armed = false;
                return Ok(true);
            }
            tokio::select! {
                event = watcher => {
                    // Created counts even if it is gone again by now (everyone entered and left).
                    if event.event_type == EventType::NodeCreated {
                        cleanup.armed = false;
                        return Ok(true);
                    }
                }
                connected = crate::task::new_connection(&mut states, seen.connection) => {
                    if !connected {
                        return Err(Error::from(CoreError::Closed));
                    }
                }
                _ = crate::queue::sleep_until_opt(deadline) => {
                    // One last look: the barrier may have opened as the time ran out.
                    if matches!(self.fw.client().exists(&self.ready_path).await, Ok(Some(_))) {
                        cleanup.armed = false;
                        return Ok(true);
                    }
                    cleanup.armed = false;
                    self.delete_ours().await?;
                    return Ok(false);
                }
            }
        }
    }

    /// Makes sure our member node exists in the current session, created through its handle.
    async fn join_in_current_session(&self) -> Result<()> {
        let spec = Create::new(CreateMode::Ephemeral).idempotent();
        loop {
            let session = self.fw.session().await?;
            if self.joined_session().is_some_and(|s| s.epoch() == session.epoch()) {
                return Ok(());
            }
            match session.create(&self.node_path, self.identifier.clone(), spec.clone()).await {
                Ok(_) => {
                    *self.joined.lock().unwrap_or_else(|e| e.into_inner()) = Some(session);
                    return Ok(());
                }
                Err(CoreError::SessionLost { .. }) => continue,
                Err(e) => return Err(Error::from(e)),
            }
        }
    }

    fn joined_session(&self) -> Option<Session> {
        self.joined.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Deletes our member node on the session that made it (a lost session took it already).
    async fn delete_ours(&self) -> Result<()> {
        let Some(session) = self.joined.lock().unwrap_or_else(|e| e.into_inner()).take() else { return Ok(()) };
        let path = self.node_path.clone();
        let deleted = session
            .with_retry(|c| {
                let path = path.clone();
                async move {
                    match c.delete(&path, None).await {
                        Err(e) if e.is_no_node() => Ok(()),
                        other => other,
                    }
                }
            })
            .await;
        match deleted {
            Ok(()) | Err(CoreError::SessionLost { .. }) => Ok(()),
            Err(e) => {
                // Not gone: keep it ours, so that a drop or a later call tries again.
                *self.joined.lock().unwrap_or_else(|e| e.into_inner()) = Some(session);
                Err(Error::from(e))
            }
        }
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
        // kazoo deletes `ready` first: nobody enters the finished round any more.
        self.delete_if_there(&self.ready_path).await?;
        let mut states = self.fw.connection_state();
        loop {
            let seen = *states.borrow_and_update();
            let mut children: Vec<String> = crate::sort::children_or_empty(&self.fw, &self.path)
                .await?
                .into_iter()
                .filter(|c| c != READY_NODE_NAME)
                .collect();
            children.sort();
            if children.is_empty() {
                return Ok(true);
            }
            let ours_there = children.contains(&self.node_name);
            if children.len() == 1 && ours_there {
                self.delete_ours().await?;
                return Ok(true);
            }
            let lowest = children[0] == self.node_name;
            let target = child_path(&self.path, if lowest { &children[children.len() - 1] } else { &children[0] });
            if !lowest {
                self.delete_ours().await?;
            }
            let (stat, watcher) = self
                .fw
                .with_retry(move |c| {
                    let path = target.clone();
                    async move { c.exists_and_watch(&path).await }
                })
                .await?;
            if stat.is_none() {
                continue;
            }
            tokio::select! {
                _ = watcher => {}
                connected = crate::task::new_connection(&mut states, seen.connection) => {
                    if !connected {
                        return Err(Error::from(CoreError::Closed));
                    }
                }
                _ = crate::queue::sleep_until_opt(deadline) => {
                    self.delete_ours().await?;
                    return Ok(false);
                }
            }
        }
    }

    async fn delete_if_there(&self, path: &str) -> Result<()> {
        self.fw
            .with_retry(|c| async move {
                match c.delete(path, None).await {
                    Err(e) if e.is_no_node() => Ok(()),
                    other => other,
                }
            })
            .await
            .map_err(Error::from)
    }
}

impl Drop for DoubleBarrier {
    fn drop(&mut self) {
        // A member dropped while in leaves its node to its session; delete it now.
        if let Some(session) = self.joined.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            spawn_delete(session, self.node_path.clone());
        }
    }
}

/// Deletes `path` on `session` in the background (nothing outside a Tokio runtime: the node
/// then stays until its session ends).
fn spawn_delete(session: Session, path: String) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move { crate::task::delete_on_session(&session, &path).await });
    }
}

/// Takes an entering member's node away on an early return or a drop.
struct Cleanup<'a> {
    barrier: &'a DoubleBarrier,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(session) = self.barrier.joined.lock().unwrap_or_else(|e| e.into_inner()).take() {
            spawn_delete(session, self.barrier.node_path.clone());
        }
    }
}
