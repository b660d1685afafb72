//! [`Session`]: one ZooKeeper session of a framework, as a value — what recipes bind what they
//! own to.
//!
//! A [`Framework`] lives through many sessions: after LOST it opens the next one by itself, and
//! [`Framework::with_retry`] follows it there. That is right for reads and persistent writes, and
//! wrong for anything a session *owns*: an ephemeral node created by a retry in session N+1 is
//! not the node the caller asked for in session N. A `Session` is the other half, as etcd's
//! `concurrency.Session`: its client is exactly one session's, its operations retry only within
//! that session, and once the session is gone they fail with [`Error::SessionLost`] instead of
//! landing silently in the next one.

use bytes::Bytes;
use corral_proto::Stat;

use super::{ConnectionState, ConnectionStateChange, Create, Framework};
use crate::client::Client;
use crate::error::{Error, Result};

/// One session of a [`Framework`]: its id, its epoch, its client, and a way to know when it is
/// gone. Cheap to clone.
///
/// Get the current one with [`Framework::session`]. Operations through a `Session`
/// ([`Session::with_retry`], [`Session::create`], a
/// [`ProtectedCreate`](super::ProtectedCreate)) run on this session's client only; a
/// connection loss is retried once the same session is connected again, and once the session
/// is gone they fail with [`Error::SessionLost`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use corral_core::{CreateMode, Error, Framework};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let session = fw.session().await?;
/// let created = session.create("/worker", "up", CreateMode::Ephemeral).await?;
/// assert_eq!(created.owner(), Some(session.id())); // from the create's reply
///
/// server.expire_session(session.id());
/// session.gone().await;
/// let err = session.create("/worker", "up", CreateMode::Ephemeral).await.unwrap_err();
/// assert_eq!(err, Error::SessionLost { session_id: session.id() });
/// // The framework moves on to a new session; the old handle never does.
/// assert_ne!(fw.session().await?.id(), session.id());
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Session {
    fw: Framework,
    client: Client,
    started: ConnectionStateChange,
}

/// What a create through a [`Session`] made: the node's path and the stat the create's reply
/// carried (create2), whose `ephemeral_owner` names the session that owns an ephemeral node.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
/// use corral_core::CreateMode;
///
/// let session = fw.session().await?;
/// let created = session.create("/jobs-", "", CreateMode::PersistentSequential).await?;
/// assert_eq!(created.path, "/jobs-0000000000");
/// assert_eq!(created.owner(), None); // persistent: nobody's
/// assert_eq!(created.fencing_token(), created.stat.czxid);
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Created {
    /// The node's actual path (with the protected prefix and the sequence suffix, if any).
    pub path: String,
    /// The node's stat, from the create's reply (or from the lookup that found a protected
    /// node again after a connection loss).
    pub stat: Stat,
    /// The connection state of the session when the create that made (or found) the node was
    /// sent: the session id and epoch are the session's, the connection number that of the
    /// connection the request went out on.
    pub state: ConnectionStateChange,
}

impl Created {
    /// The session that owns the node, from the server's reply; `None` for a node that is not
    /// ephemeral.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// use corral_core::CreateMode;
    ///
    /// let session = fw.session().await?;
    /// let node = session.create("/member", "", CreateMode::Ephemeral).await?;
    /// assert_eq!(node.owner(), Some(session.id()));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn owner(&self) -> Option<i64> {
        (self.stat.ephemeral_owner != 0).then_some(self.stat.ephemeral_owner)
    }

    /// The node's creation zxid: larger for every node created later, so a resource guarded by
    /// this node can refuse writes that carry an older token.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// use corral_core::CreateMode;
    ///
    /// let session = fw.session().await?;
    /// let first = session.create("/a", "", CreateMode::Ephemeral).await?;
    /// let second = session.create("/b", "", CreateMode::Ephemeral).await?;
    /// assert!(second.fencing_token() > first.fencing_token());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn fencing_token(&self) -> i64 {
        self.stat.czxid
    }
}

impl Framework {
    /// The current session, once the framework is connected (waiting up to the connection
    /// timeout).
    ///
    /// The handle stays bound to this session: it never follows the framework to the next one.
    /// Ask again after [`Session::gone`] for the next.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if no session is connected within the connection timeout;
    /// [`Error::Closed`] if the framework is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches the connection state.
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
    /// let session = fw.session().await?;
    /// assert_eq!((session.id(), session.epoch()), (fw.current_state().session_id, 1));
    /// assert!(session.is_live());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn session(&self) -> Result<Session> {
        let timeout = self.connection_timeout();
        let wait = async {
            let mut states = self.connection_state();
            loop {
                if self.is_closed() {
                    return Err(Error::Closed);
                }
                let state = *states.borrow_and_update();
                if state.state.is_connected() && state.session_id != 0 {
                    // The manager publishes the client before the states of its session, so a
                    // client of this session id is exactly this session's.
                    let client = self.client();
                    if client.session_id() == state.session_id && self.current_state().epoch == state.epoch {
                        return Ok(Session { fw: self.clone(), client, started: state });
                    }
                }
                if states.changed().await.is_err() {
                    return Err(Error::Closed);
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(Err(Error::Timeout))
    }
}

impl Session {
    /// The session id the server gave.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// let session = fw.session().await?;
    /// assert_eq!(session.id(), session.client().session_id());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> i64 {
        self.started.session_id
    }

    /// The session's epoch: 1 for the framework's first session, one more for each later one
    /// (as in [`ConnectionStateChange::epoch`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// let first = fw.session().await?;
    /// server.expire_session(first.id());
    /// first.gone().await;
    /// assert_eq!(fw.session().await?.epoch(), first.epoch() + 1);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn epoch(&self) -> u64 {
        self.started.epoch
    }

    /// The client of exactly this session. Requests sent on it after the session is gone fail
    /// (SessionExpired or Closed); they never run on another session.
    ///
    /// Its operations are not retried; [`Session::with_retry`] retries them within the session.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// let session = fw.session().await?;
    /// let children = session.client().get_children("/").await?;
    /// assert!(children.contains(&"zookeeper".to_string()));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The framework this session belongs to.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// let session = fw.session().await?;
    /// assert_eq!(session.framework().current_state().epoch, session.epoch());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn framework(&self) -> &Framework {
        &self.fw
    }

    /// The connection state when this handle was taken (CONNECTED, RECONNECTED or READ_ONLY,
    /// of this session).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// use corral_core::ConnectionState;
    ///
    /// let session = fw.session().await?;
    /// assert_eq!(session.started().state, ConnectionState::Connected);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn started(&self) -> ConnectionStateChange {
        self.started
    }

    /// Whether the session may still be alive: the framework has not posted LOST for it nor
    /// moved on to a later session, and it is not closed. A live session may be disconnected
    /// (SUSPENDED) for now.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// let session = fw.session().await?;
    /// assert!(session.is_live());
    /// server.expire_session(session.id());
    /// session.gone().await;
    /// assert!(!session.is_live());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn is_live(&self) -> bool {
        is_live_in(self.fw.current_state(), self.started.epoch) && !self.fw.is_closed()
    }

    /// Resolves once the session is gone: LOST posted for it, a later session started, or the
    /// framework closed or dropped. Resolves at once if it is gone already.
    ///
    /// The future owns what it needs (`'static`), so it can be moved into a task or a
    /// `select!`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches the connection state.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// let session = fw.session().await?;
    /// let gone = tokio::spawn(session.gone());
    /// server.expire_session(session.id());
    /// gone.await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn gone(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut states = self.fw.connection_state();
        let mut closed = self.fw.inner.close.subscribe();
        let epoch = self.started.epoch;
        async move {
            tokio::select! {
                _ = states.wait_for(|s| !is_live_in(*s, epoch)) => {}
                _ = closed.wait_for(|c| *c) => {}
            }
        }
    }

    /// The error for an operation that finds the session gone: [`Error::SessionLost`], or
    /// [`Error::Closed`] once the framework is closed.
    fn lost(&self) -> Error {
        if self.fw.is_closed() { Error::Closed } else { Error::SessionLost { session_id: self.id() } }
    }

    /// Maps the failures that mean "this session is over" to [`Error::SessionLost`].
    pub(crate) fn classify(&self, error: Error) -> Error {
        match error {
            Error::SessionExpired | Error::Closed => self.lost(),
            other if !self.is_live() && other.is_retryable() => self.lost(),
            other => other,
        }
    }

    /// Waits until this session is connected again; `Ok(true)` if that is a connection other
    /// than `seen`.
    ///
    /// # Errors
    ///
    /// [`Error::SessionLost`] once the session is gone; [`Error::Timeout`] after the
    /// framework's connection timeout.
    pub(crate) async fn reconnected(&self, seen: u64) -> Result<bool> {
        let mut states = self.fw.connection_state();
        let epoch = self.started.epoch;
        let wait = states.wait_for(|s| !is_live_in(*s, epoch) || (s.epoch == epoch && s.state.is_connected()));
        match tokio::time::timeout(self.fw.connection_timeout(), wait).await {
            Err(_) => Err(Error::Timeout),
            Ok(Err(_)) => Err(self.lost()),
            Ok(Ok(state)) if !is_live_in(*state, epoch) || self.fw.is_closed() => Err(self.lost()),
            Ok(Ok(state)) => Ok(state.connection != seen),
        }
    }

    /// The current connection state, if it is this session's and connected.
    pub(crate) fn connected_state(&self) -> Option<ConnectionStateChange> {
        let now = self.fw.current_state();
        (now.epoch == self.started.epoch && now.state.is_connected() && self.client.session_id() == self.id())
            .then_some(now)
    }

    /// Runs `op` on this session's client under the framework's retry policy. A connection
    /// loss is retried once this same session is connected again; nothing is ever run on a
    /// later session.
    ///
    /// Use it for whatever must happen in this session or not at all: creating an ephemeral
    /// node the caller will treat as its own, deleting one, a transaction whose check names a
    /// node of this session. ([`Framework::with_retry`] is for work that may move to the next
    /// session: reads and persistent writes.)
    ///
    /// # Errors
    ///
    /// [`Error::SessionLost`] once the session is gone (before a try, or because a try failed
    /// with SessionExpired); [`Error::Closed`] once the framework is closed;
    /// [`Error::Timeout`] if the session stays disconnected for the connection timeout;
    /// otherwise `op`'s last error once the retry policy gives up or the error is not
    /// retryable.
    ///
    /// # Cancel safety
    ///
    /// As [`crate::retry`]: dropping the future stops retrying, but a request already sent may
    /// still be applied (in this session).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// use corral_core::{CreateMode, Error};
    ///
    /// let session = fw.session().await?;
    /// let (path, _) = session.with_retry(|c| async move { c.create("/me", "", CreateMode::Ephemeral).await }).await?;
    /// server.expire_session(session.id());
    /// session.gone().await;
    /// // Never retried on the framework's next session:
    /// let err = session.with_retry(|c| async move { c.delete("/me", None).await }).await.unwrap_err();
    /// assert!(matches!(err, Error::SessionLost { .. }));
    /// # let _ = path;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn with_retry<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let tried_on = std::sync::atomic::AtomicU64::new(0);
        let attempt = || {
            let ready = self.connected_state();
            let future = ready.map(|state| {
                tried_on.store(state.connection, std::sync::atomic::Ordering::Relaxed);
                op(self.client.clone())
            });
            async move {
                match future {
                    // Disconnected for now: a connection error, so that the retry waits.
                    None if self.is_live() => Err(Error::ConnectionLoss),
                    None => Err(self.lost()),
                    Some(future) => future.await.map_err(|e| self.classify(e)),
                }
            }
        };
        let wait = || self.reconnected(tried_on.load(std::sync::atomic::Ordering::Relaxed));
        let policy = self.fw.retry_policy();
        crate::retry::retry(&*policy, attempt, wait).await
    }

    /// Creates a node in this session, with the options of [`Create`] (parents, protected
    /// mode, idempotence, ACL), and returns what the reply said about it.
    ///
    /// A protected create ([`Create::protected`]) is a [`ProtectedCreate`](super::ProtectedCreate):
    /// after a connection loss it finds its node again by its prefix, in this session only, and
    /// if the future is dropped mid-way its node is deleted in the background. A plain
    /// sequential create retried after a connection loss may leave a second node; use protected
    /// mode for those.
    ///
    /// # Errors
    ///
    /// As [`Framework::create`], and [`Error::SessionLost`] once the session is gone (never a
    /// node in another session).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in protected mode (see above). Otherwise a node may have been created when
    /// the future is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// use corral_core::{CreateMode, framework::Create};
    ///
    /// let session = fw.session().await?;
    /// let spec = Create::new(CreateMode::EphemeralSequential).container_parents().protected();
    /// let node = session.create("/election/latch-", "me", spec).await?;
    /// assert!(node.path.starts_with("/election/_c_") && node.path.ends_with("-latch-0000000000"));
    /// assert_eq!(node.owner(), Some(session.id()));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn create(&self, path: &str, data: impl Into<Bytes>, spec: impl Into<Create>) -> Result<Created> {
        let spec = spec.into().with_provided_acl(&self.fw, path);
        let data = data.into();
        if spec.is_protected() {
            let mut node = super::ProtectedCreate::new(&self.fw, path, spec)?;
            let created = node.create(self, data).await?;
            node.keep();
            return Ok(created);
        }
        let data = self.fw.encode(path, data, spec.is_compressed())?;
        let created = self
            .with_retry(|client| {
                let (spec, data) = (spec.clone(), data.clone());
                async move {
                    let state = self.connected_state().ok_or(Error::ConnectionLoss)?;
                    let (path, stat) = self.fw.create_once(&client, path, data, &spec).await?;
                    Ok(Created { path, stat, state })
                }
            })
            .await?;
        self.check_owner(&created, spec.mode()).await?;
        Ok(created)
    }

    /// An ephemeral node must belong to this session; one that does not (the client moved to
    /// another session underneath, as when it leaves a read-only server) is deleted.
    pub(crate) async fn check_owner(&self, created: &Created, mode: corral_proto::CreateMode) -> Result<()> {
        if !mode.is_ephemeral() || created.stat.ephemeral_owner == self.id() {
            return Ok(());
        }
        tracing::warn!(path = %created.path, owner = format_args!("{:#x}", created.stat.ephemeral_owner),
            session = format_args!("{:#x}", self.id()), "a create landed in another session; deleting its node");
        let _ = self.client.delete(&created.path, None).await;
        Err(self.lost())
    }
}

/// Whether the session of `epoch` may still be alive when the framework's state is `now`.
fn is_live_in(now: ConnectionStateChange, epoch: u64) -> bool {
    now.epoch == epoch && now.state != ConnectionState::Lost
}
