//! The framework handle recipes take: Curator's `CuratorFramework`, in Rust.
//!
//! A [`Framework`] owns a session the way [`Client`] does, and adds what applications and
//! recipes need on top:
//!
//! - **connection states** ([`ConnectionState`]: CONNECTED, SUSPENDED, RECONNECTED, LOST,
//!   READ_ONLY), each stamped with the session id and a session epoch, as a watch channel
//!   ([`Framework::connection_state`]) and as a stream of transitions
//!   ([`Framework::state_changes`]) that never drops LOST and never grows;
//! - **a new session by itself after LOST**, after a jittered pause so that a whole fleet whose
//!   sessions expired together does not reconnect in the same instant;
//! - **retries** of failed operations under a [`RetryPolicy`], waiting for the connection to
//!   come back rather than sleeping blindly;
//! - **operations recipes need**: create with parents, protected mode, idempotent writes,
//!   guaranteed delete, ensure-path, transactions.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = corral_server::testing::TestingServer::start().await?;
//! use std::time::Duration;
//! use corral_core::{CreateMode, Framework, framework::Create};
//!
//! // In production: "zk1:2181,zk2:2181,zk3:2181".
//! let fw = Framework::builder(server.connect_string()).namespace("my-app").start()?;
//! fw.wait_until_connected(Duration::from_secs(5)).await?;
//! let spec = Create::new(CreateMode::EphemeralSequential).parents().protected();
//! let path = fw.create("/workers/w-", "payload", spec).await?;
//! assert!(path.starts_with("/workers/_c_") && path.ends_with("-w-0000000000"));
//! fw.close().await;
//! # Ok(()) }
//! ```

mod acl;
mod builder;
mod circuit_breaker;
mod compression;
mod create;
mod delete;
mod ensemble_tracker;
mod features;
mod manager;
mod protected;
mod session;
mod state;

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::watch;

pub use acl::{AclProvider, DefaultAclProvider, FixedAclProvider};
pub use builder::FrameworkBuilder;
pub use compression::{CompressionProvider, DEFAULT_MAX_DECOMPRESSED_LEN, GzipCompressionProvider};
pub use create::{Create, PROTECTED_PREFIX};
pub use delete::Delete;
pub use features::PersistentWatches;
pub use protected::ProtectedCreate;
pub use session::{Created, Session};
pub use state::{ConnectionState, ConnectionStateChange, ErrorPolicy, StateChanges};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::retry::RetryPolicy;
use state::StatePublisher;

/// What the framework handle and its manager task share.
#[derive(Debug)]
pub(crate) struct Shared {
    client: std::sync::Mutex<Client>,
    states: StatePublisher,
    guaranteed_deletes: std::sync::atomic::AtomicUsize,
    /// The servers given by [`Framework::update_server_list`] or the ensemble tracker, for the
    /// clients of later sessions.
    hosts: std::sync::Mutex<Option<Vec<crate::HostPort>>>,
    /// The connect string the framework was built with.
    initial: crate::ConnectString,
    /// What the servers have shown about their features.
    features: features::Features,
}

impl Shared {
    fn client(&self) -> Client {
        self.client.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Uses `hosts` from now on: the current client moves to them if its server is not among
    /// them, later sessions' clients start with them.
    fn use_hosts(&self, hosts: Vec<crate::HostPort>) {
        *self.hosts.lock().unwrap_or_else(|e| e.into_inner()) = Some(hosts.clone());
        // A client whose session just ended takes no list; the next session's client will.
        let _ = self.client().update_hosts(hosts);
    }

    /// The servers in use, with the chroot: `host:port,…[/chroot]`.
    fn connection_string(&self) -> String {
        let hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let hosts = hosts.unwrap_or_else(|| self.initial.hosts.clone());
        let list = hosts.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        format!("{list}{}", self.initial.chroot.as_deref().unwrap_or(""))
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    shared: Arc<Shared>,
    retry: Arc<dyn RetryPolicy>,
    error_policy: ErrorPolicy,
    connection_timeout: Duration,
    recreate_jitter: Duration,
    acl: Arc<dyn AclProvider>,
    compression: Arc<dyn CompressionProvider>,
    close: watch::Sender<bool>,
    manager: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    namespaced: bool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close.send_replace(true);
    }
}

/// A ZooKeeper session with connection states, retries and a new session after LOST — the
/// handle recipes take. Cheap to clone; dropping the last clone closes it.
///
/// Paths are relative to the namespace (and the connect string's chroot). The framework's own
/// operations retry under the retry policy; for anything else, [`Framework::client`] gives the
/// current session's [`Client`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::time::Duration;
/// use corral_core::Framework;
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// fw.wait_until_connected(Duration::from_secs(5)).await?;
/// let first = fw.current_state();
/// server.expire_session(first.session_id);
/// // The framework posts LOST, then opens a new session by itself.
/// let mut states = fw.connection_state();
/// let now = *states.wait_for(|c| c.epoch == 2 && c.state.is_connected()).await?;
/// assert_ne!(now.session_id, first.session_id);
/// fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Framework {
    inner: Arc<Inner>,
}

impl Framework {
    /// A builder for `connect_string` (`host:port,host:port/optional/chroot`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::{ConnectionState, Framework};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// fw.wait_until_connected(Duration::from_secs(5)).await?;
    /// assert_eq!(fw.current_state().state, ConnectionState::Connected);
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn builder(connect_string: impl Into<String>) -> FrameworkBuilder {
        FrameworkBuilder::new(connect_string.into())
    }

    /// The client of the current session. After LOST it is replaced by the client of the next
    /// session; hold it only for the duration of an operation.
    ///
    /// Its operations are not retried: use it for what the framework has no method for.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use corral_core::{AddWatchMode, CreateMode};
    ///
    /// fw.create("/jobs", "", CreateMode::Persistent).await?;
    /// let client = fw.client();
    /// let _watch = client.add_watch("/jobs", AddWatchMode::PersistentRecursive).await?;
    /// assert_eq!(client.watcher_count().await, 1);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn client(&self) -> Client {
        self.inner.shared.client.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The current connection state as a watch channel.
    ///
    /// A watch channel shows the latest state only, and may skip states; use
    /// [`Framework::state_changes`] to see every transition (LOST included).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use corral_core::ConnectionState;
    ///
    /// let states = fw.connection_state();
    /// let now = *states.borrow();
    /// assert_eq!((now.state, now.epoch), (ConnectionState::Connected, 1));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn connection_state(&self) -> watch::Receiver<ConnectionStateChange> {
        self.inner.shared.states.subscribe()
    }

    /// Gives the framework a new list of servers (after an ensemble was reconfigured): the
    /// current session's client moves to it as [`Client::update_server_list`] says, and every
    /// later session's client starts with it instead of the builder's connect string.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConnectString`] for a string that does not parse,
    /// [`Error::BadArguments`] for another chroot.
    /// A session that has just ended is no error: the next one uses the list.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingCluster;
    ///
    /// let cluster = TestingCluster::start(2).await?;
    /// let fw = corral_core::Framework::builder(cluster.addr(0).to_string()).start()?;
    /// fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// fw.update_server_list(&cluster.addr(1).to_string())?;
    /// fw.client().sync("/").await?;
    /// assert_eq!(cluster.member_of_session(fw.client().session_id()), Some(1));
    /// # fw.close().await;
    /// # cluster.close().await;
    /// # Ok(()) }
    /// ```
    pub fn update_server_list(&self, connect_string: &str) -> crate::Result<()> {
        let parsed: crate::ConnectString = connect_string.parse()?;
        if let Some(chroot) = parsed.chroot.as_deref()
            && Some(chroot) != self.inner.shared.initial.chroot.as_deref()
        {
            return Err(crate::Error::BadArguments(format!(
                "the chroot cannot change ({chroot} given, the framework's is {})",
                self.inner.shared.initial.chroot.as_deref().unwrap_or("none")
            )));
        }
        self.inner.shared.use_hosts(parsed.hosts);
        Ok(())
    }

    /// The servers the framework uses now, with its chroot (`host:port,…[/chroot]`): the
    /// builder's connect string until [`update_server_list`](Self::update_server_list) or the
    /// [ensemble tracker](crate::FrameworkBuilder::ensemble_tracker) changed them (Curator's
    /// `getCurrentConnectionString`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let other = corral_server::testing::TestingServer::start().await?;
    /// let fw = corral_core::Framework::builder(format!("{}/app", server.connect_string())).start()?;
    /// assert_eq!(fw.current_connection_string(), format!("{}/app", server.connect_string()));
    /// fw.update_server_list(&other.connect_string())?;
    /// assert_eq!(fw.current_connection_string(), format!("{}/app", other.connect_string()));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn current_connection_string(&self) -> String {
        self.inner.shared.connection_string()
    }

    /// The current connection state.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// let now = fw.current_state();
    /// assert!(now.state.is_connected());
    /// assert_eq!(now.session_id, fw.client().session_id());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn current_state(&self) -> ConnectionStateChange {
        self.inner.shared.states.current()
    }

    /// The stream of state transitions from now on (see [`StateChanges`] for its delivery
    /// guarantees).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use corral_core::ConnectionState;
    /// use futures::StreamExt;
    ///
    /// let mut changes = fw.state_changes();
    /// server.drop_connection(fw.client().session_id());
    /// let suspended = changes.next().await.unwrap();
    /// let reconnected = changes.next().await.unwrap();
    /// assert_eq!((suspended.state, reconnected.state), (ConnectionState::Suspended, ConnectionState::Reconnected));
    /// assert_eq!(reconnected.epoch, suspended.epoch); // the same session,
    /// assert_eq!(reconnected.connection, suspended.connection + 1); // a new connection
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn state_changes(&self) -> StateChanges {
        self.inner.shared.states.stream()
    }

    /// The error policy recipes should apply (set with [`FrameworkBuilder::error_policy`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_core::{ConnectionState, ErrorPolicy, Framework};
    ///
    /// let fw = Framework::builder(server.connect_string()).error_policy(ErrorPolicy::SessionOnly).start()?;
    /// assert_eq!(fw.error_policy(), ErrorPolicy::SessionOnly);
    /// // Recipes keep their locks and leadership through a short disconnection.
    /// assert!(!fw.error_policy().is_error(ConnectionState::Suspended));
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn error_policy(&self) -> ErrorPolicy {
        self.inner.error_policy
    }

    /// The retry policy operations use (set with [`FrameworkBuilder::retry_policy`]).
    ///
    /// Recipes that run their own retry loops (with [`crate::retry`]) use it too.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::{Framework, RetryNTimes};
    ///
    /// let fw = Framework::builder(server.connect_string())
    ///     .retry_policy(RetryNTimes::new(2, Duration::from_millis(100)))
    ///     .start()?;
    /// let policy = fw.retry_policy();
    /// assert_eq!(policy.next_delay(2, Duration::ZERO), Some(Duration::from_millis(100)));
    /// assert_eq!(policy.next_delay(3, Duration::ZERO), None);
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn retry_policy(&self) -> Arc<dyn RetryPolicy> {
        self.inner.retry.clone()
    }

    /// How long operations wait for a connection (set with
    /// [`FrameworkBuilder::connection_timeout`]; 15 s by default).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::Framework;
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// assert_eq!(fw.connection_timeout(), Duration::from_secs(15));
    /// // Wait for the first session as long as operations would.
    /// fw.wait_until_connected(fw.connection_timeout()).await?;
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn connection_timeout(&self) -> Duration {
        self.inner.connection_timeout
    }

    /// The most a recipe waits before re-creating what a lost session took with it (set with
    /// [`FrameworkBuilder::recreate_jitter`]; 20 ms by default).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::Framework;
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// assert_eq!(fw.recreate_jitter(), Duration::from_millis(20));
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn recreate_jitter(&self) -> Duration {
        self.inner.recreate_jitter
    }

    /// The provider of the ACL of every node the framework and the recipes create (set with
    /// [`FrameworkBuilder::acl_provider`]; the open ACL by default).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_core::{Acl, Framework, framework::FixedAclProvider};
    ///
    /// let fw = Framework::builder(server.connect_string()).acl_provider(FixedAclProvider::new(Acl::read_unsafe())).start()?;
    /// assert_eq!(fw.acl_provider().acl_for_path("/x"), Acl::read_unsafe());
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn acl_provider(&self) -> Arc<dyn AclProvider> {
        self.inner.acl.clone()
    }

    /// The number of guaranteed deletes (and abandoned protected creates) still being cleaned
    /// up in the background.
    ///
    /// A guaranteed delete that succeeds in the foreground never counts; see
    /// [`Delete::guaranteed`] for one that has to go on in the background.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use corral_core::{CreateMode, framework::Delete};
    ///
    /// fw.create("/lock-1", "", CreateMode::Ephemeral).await?;
    /// fw.delete("/lock-1", Delete::new().guaranteed()).await?;
    /// assert_eq!(fw.pending_guaranteed_deletes(), 0);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn pending_guaranteed_deletes(&self) -> usize {
        self.inner.shared.guaranteed_deletes.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until the framework is connected (CONNECTED, RECONNECTED or READ_ONLY).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] after `timeout`; [`Error::Closed`] if the framework is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches the connection state, so dropping it loses nothing and
    /// changes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::{Error, Framework};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// fw.wait_until_connected(Duration::from_secs(5)).await?;
    /// fw.close().await;
    /// assert_eq!(fw.wait_until_connected(Duration::from_secs(5)).await, Err(Error::Closed));
    /// # Ok(()) }
    /// ```
    pub async fn wait_until_connected(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.connection_state();
        let closed = self.inner.close.subscribe();
        let wait = async {
            loop {
                if *closed.borrow() {
                    return Err(Error::Closed);
                }
                if rx.borrow_and_update().state.is_connected() {
                    return Ok(());
                }
                if rx.changed().await.is_err() {
                    return Err(Error::Closed);
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(Err(Error::Timeout))
    }

    /// Closes the session (LOST is posted) and stops the framework.
    ///
    /// The server deletes the session's ephemeral nodes. Every clone of the framework is closed
    /// too; guaranteed deletes still pending in the background are abandoned.
    ///
    /// # Cancel safety
    ///
    /// Nothing happens until the future is first polled. Once polled, the close goes on even if
    /// the future is dropped; awaiting it waits until the session is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::{Client, ConnectionState, CreateMode, Framework};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// fw.wait_until_connected(Duration::from_secs(5)).await?;
    /// fw.create("/member", "", CreateMode::Ephemeral).await?;
    /// fw.close().await;
    /// assert_eq!(fw.current_state().state, ConnectionState::Lost);
    ///
    /// let observer = Client::connect(&server.connect_string()).await?;
    /// assert_eq!(observer.exists("/member").await?, None);
    /// # observer.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn close(&self) {
        self.inner.close.send_replace(true);
        let handle = self.inner.manager.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }

    /// Whether [`Framework::close`] was called (on this handle or a clone): Curator's
    /// `getState() == STOPPED`. A closed framework's state is LOST for good, which a session
    /// that merely ended also shows for a while; this tells the two apart, so that work cut off
    /// by a close can stop instead of starting again.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_core::Framework;
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// assert!(!fw.is_closed());
    /// fw.clone().close().await;
    /// assert!(fw.is_closed());
    /// # Ok(()) }
    /// ```
    pub fn is_closed(&self) -> bool {
        *self.inner.close.borrow()
    }

    /// Runs `op` against the current session's client, retrying under the retry policy; a
    /// connection-type failure first waits for the connection to come back (bounded by the
    /// connection timeout).
    ///
    /// While the framework builds the next session after LOST, the old session's client answers
    /// SessionExpired or Closed; that is worth waiting for, as Curator does, so it is retried as
    /// a connection loss.
    ///
    /// `op` gets the client of the session current at each try, so a retry after LOST runs on
    /// the new session. That is harmless for reads and for persistent writes (a persistent node
    /// outlives the session that wrote it), and wrong for anything a session owns: an ephemeral
    /// node, a lock, a leadership. Bind those to one session with [`Framework::session`] and
    /// [`Session::with_retry`], which fails with [`Error::SessionLost`] instead of crossing.
    ///
    /// # Errors
    ///
    /// The last error of `op` once the retry policy gives up or the error is not retryable;
    /// [`Error::Timeout`] if the connection did not come back within the connection timeout.
    ///
    /// # Cancel safety
    ///
    /// As [`crate::retry`]: dropping the future stops retrying, but a request already sent may
    /// still be applied.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// let children = fw.with_retry(|client| async move { client.get_children("/").await }).await?;
    /// assert!(children.contains(&"zookeeper".to_string()));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn with_retry<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        // The connection each try began on, so that a wait after a failure can tell a new
        // connection (retry at once) from the same one (back off as the policy says).
        let tried_on = std::sync::atomic::AtomicU64::new(0);
        let attempt = || {
            tried_on.store(self.current_state().connection, std::sync::atomic::Ordering::Relaxed);
            let future = op(self.client());
            async move {
                match future.await {
                    Err(Error::SessionExpired | Error::Closed) if !self.is_closed() => Err(Error::ConnectionLoss),
                    other => other,
                }
            }
        };
        let wait = || async {
            self.wait_until_connected(self.inner.connection_timeout).await?;
            Ok(self.current_state().connection != tried_on.load(std::sync::atomic::Ordering::Relaxed))
        };
        crate::retry::retry(&*self.inner.retry, attempt, wait).await
    }

    /// A future that resolves once the framework is connected again, for retry loops.
    ///
    /// It owns a handle to the framework (`'static`), so it can be handed to [`crate::retry`]
    /// or moved into a task. It waits up to the connection timeout.
    ///
    /// # Errors
    ///
    /// As [`Framework::wait_until_connected`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Framework::wait_until_connected`]. The connection timeout starts when
    /// the future is first polled, not when it is created.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// let reconnected = tokio::spawn(fw.connected());
    /// server.drop_connection(fw.client().session_id());
    /// reconnected.await??;
    /// assert!(fw.current_state().state.is_connected());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn connected(&self) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let this = self.clone();
        async move { this.wait_until_connected(this.inner.connection_timeout).await }
    }

    pub(crate) fn shared_deletes(&self) -> &std::sync::atomic::AtomicUsize {
        &self.inner.shared.guaranteed_deletes
    }

    pub(crate) fn weak(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    pub(crate) fn from_weak(weak: &std::sync::Weak<Inner>) -> Option<Framework> {
        weak.upgrade().map(|inner| Framework { inner })
    }

    #[allow(dead_code)]
    pub(crate) fn namespaced(&self) -> bool {
        self.inner.namespaced
    }
}

impl Framework {
    /// A stream of this path's changes that survives reconnects and new sessions: a persistent
    /// (or recursive) watch that is added again whenever a new session starts.
    ///
    /// # Errors
    ///
    /// The stream yields an error item if re-adding the watch fails for good (for example
    /// NoAuth), and [`Error::Closed`] if the framework is closed while the watch is being
    /// (re-)added; otherwise it runs until dropped, and ends once the framework is closed.
    /// Connection errors, timeouts and session expiry while (re-)adding are retried, not
    /// yielded. After such an error item the stream does not end: polling it again tries to add
    /// the watch again.
    ///
    /// A server without persistent watches (ZooKeeper 3.5, which answers `addWatch`
    /// Unimplemented and closes the connection) gives one [`Error::NoPersistentWatches`] item,
    /// whose [`code`](Error::code) is [`ErrorCode::Unimplemented`](crate::ErrorCode::Unimplemented),
    /// and then the stream ends. Once the framework knows its servers lack `addWatch`
    /// ([`Framework::persistent_watches`] is [`PersistentWatches::Unavailable`]) the stream
    /// sends nothing and gives that error at once, so the probe costs the session one
    /// connection per framework, not one per stream or per poll. Watch with one-shot watches
    /// there instead, as the caches of `corral-recipes` do by themselves.
    ///
    /// The stream is lazy: the watch is added when it is first polled, and again when a new
    /// session starts. Changes made before that (or between two sessions) are not reported, so
    /// read the node again after a LOST.
    ///
    /// # Cancel safety
    ///
    /// Dropping a `next()` future loses no event. Dropping the stream removes the watch.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use std::pin::pin;
    /// use corral_core::{AddWatchMode, CreateMode, EventType};
    /// use futures::{StreamExt, poll};
    ///
    /// fw.create("/config", "v1", CreateMode::Persistent).await?;
    /// let mut changes = pin!(fw.watch("/config", AddWatchMode::Persistent));
    /// assert!(poll!(changes.next()).is_pending()); // the first poll adds the watch
    /// fw.set_data("/config", "v2", None).await?;
    /// assert_eq!(changes.next().await.unwrap()?.event_type, EventType::NodeDataChanged);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn watch(
        &self,
        path: &str,
        mode: crate::AddWatchMode,
    ) -> impl Stream<Item = Result<crate::WatchedEvent>> + Send + 'static {
        let this = self.clone();
        let path = path.to_owned();
        let stream = async_stream_watch(this, path, mode);
        Box::pin(stream)
    }
}

fn async_stream_watch(
    fw: Framework,
    path: String,
    mode: crate::AddWatchMode,
) -> impl Stream<Item = Result<crate::WatchedEvent>> + Send + 'static {
    use futures::StreamExt;
    struct S {
        fw: Framework,
        path: String,
        mode: crate::AddWatchMode,
        watcher: Option<crate::PersistentWatcher>,
        /// The server has no `addWatch` and that was said: the stream has ended.
        ended: bool,
    }
    let state = S { fw, path, mode, watcher: None, ended: false };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if s.ended || s.fw.is_closed() {
                return None;
            }
            if s.watcher.is_none() {
                let no_persistent_watches = || Error::NoPersistentWatches { path: s.path.clone() };
                // Asking a server known to lack addWatch would only cost another connection.
                if s.fw.persistent_watches() == PersistentWatches::Unavailable {
                    s.ended = true;
                    return Some((Err(no_persistent_watches()), s));
                }
                let (path, mode) = (s.path.clone(), s.mode);
                let added = s.fw.with_retry(|c| c.add_watch(&path, mode)).await;
                s.fw.note_add_watch(&added);
                match added {
                    Ok(w) => s.watcher = Some(w),
                    Err(e) if e.is_retryable() || matches!(e, Error::SessionExpired | Error::Timeout) => continue,
                    Err(e) if e.code() == crate::ErrorCode::Unimplemented => {
                        let e = no_persistent_watches();
                        s.ended = true;
                        return Some((Err(e), s));
                    }
                    Err(e) => return Some((Err(e), s)),
                }
            }
            let Some(w) = s.watcher.as_mut() else { continue };
            match w.next().await {
                Some(event) if !event.is_session_end() => return Some((Ok(event), s)),
                // The session ended: add the watch again on the next one.
                _ => s.watcher = None,
            }
        }
    })
}
