//! [`Client`], the handle to one ZooKeeper session, and [`ClientBuilder`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use corral_proto::records::ClientInfo;
use corral_proto::{DEFAULT_MAX_FRAME, OpCode, Request, Response};
use futures::Stream;
use tokio::sync::{mpsc, oneshot, watch};

use crate::connect_string::{Chroot, ConnectString};
use crate::error::{Error, Result};
use crate::session::{AfterReply, Command, Config, Pending, SessionTask, Shared};
use crate::state::{SessionEvent, SessionInfo, SessionState};
use crate::transport::Connector;
use crate::watcher::{WatchKind, WatchRegistration, WatchSender};

/// Builds a [`Client`]: connect string, session timeout, credentials, session to resume.
///
/// Every setting has a default, so `Client::builder(connect_string).connect()` is enough to
/// start; [`Client::connect`] is that shortcut.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::time::Duration;
/// use corral_core::Client;
///
/// // In production: "zk1:2181,zk2:2181,zk3:2181/my-app".
/// let client = Client::builder(server.connect_string())
///     .session_timeout(Duration::from_secs(15))
///     .connection_timeout(Duration::from_secs(5))
///     .digest_auth("app", "secret")
///     .connect()
///     .await?;
/// assert_eq!(client.session().timeout, Duration::from_secs(15));
/// # client.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    connect_string: String,
    session_timeout: Duration,
    connect_timeout: Option<Duration>,
    connection_timeout: Duration,
    read_only: bool,
    session: Option<(i64, Bytes)>,
    auths: Vec<(String, Bytes)>,
    max_frame: usize,
    connector: Option<Arc<dyn Connector>>,
}

impl ClientBuilder {
    /// A builder for `connect_string` (`host:port,host:port/optional/chroot`), with every
    /// other setting at its default. [`Client::builder`] is the same.
    ///
    /// The connect string is parsed by [`ClientBuilder::build`] and [`ClientBuilder::connect`],
    /// not here.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_core::ClientBuilder;
    ///
    /// let client = ClientBuilder::new(server.connect_string()).connect().await?;
    /// assert!(client.state().borrow().is_connected());
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(connect_string: impl Into<String>) -> Self {
        Self {
            connect_string: connect_string.into(),
            session_timeout: Duration::from_secs(30),
            connect_timeout: None,
            connection_timeout: Duration::from_secs(15),
            read_only: false,
            session: None,
            auths: Vec::new(),
            max_frame: DEFAULT_MAX_FRAME,
            connector: None,
        }
    }

    /// The same settings with another connect string.
    pub(crate) fn with_connect_string(mut self, connect_string: String) -> Self {
        self.connect_string = connect_string;
        self
    }

    /// The session timeout to ask for (default 30 s).
    ///
    /// The server clamps it to its own `[minSessionTimeout, maxSessionTimeout]`;
    /// [`Client::session`] tells what was granted. A zero timeout is refused by
    /// [`ClientBuilder::build`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::Client;
    ///
    /// // Like ZooKeeper with tickTime=2000, the embedded server grants 4 s to 40 s.
    /// let client = Client::builder(server.connect_string())
    ///     .session_timeout(Duration::from_secs(1))
    ///     .connect()
    ///     .await?;
    /// assert_eq!(client.session().timeout, Duration::from_secs(4));
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// The limit for one connection attempt to one host, handshake included (default: the
    /// session timeout divided by the number of hosts, as the Java client does).
    ///
    /// When it runs out the client moves on to the next host, so a host that accepts
    /// connections but never answers holds it up for this long only. Not to be confused with
    /// [`ClientBuilder::connection_timeout`], the limit for getting connected at all.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use corral_core::Client;
    /// use corral_server::testing::TestingServer;
    ///
    /// let (hung, live) = (TestingServer::start().await?, TestingServer::start().await?);
    /// hung.pause(); // accepts connections, answers nothing
    /// let hosts = format!("{},{}", hung.connect_string(), live.connect_string());
    /// let client = Client::builder(hosts).connect_timeout(Duration::from_millis(200)).connect().await?;
    /// assert_eq!(live.sessions(), [client.session_id()]);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// How long [`ClientBuilder::connect`], and a request made while disconnected, wait for a
    /// connection before failing (default 15 s, Curator's default).
    ///
    /// `connect` then fails with [`Error::Timeout`] (see the example on
    /// [`ClientBuilder::connect`]); a queued request fails with [`Error::ConnectionLoss`], and
    /// the client keeps trying to reconnect in the background.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::{Client, Error};
    ///
    /// let client = Client::builder(server.connect_string())
    ///     .connection_timeout(Duration::from_millis(300))
    ///     .connect()
    ///     .await?;
    /// server.stop().await;
    /// assert_eq!(client.exists("/").await, Err(Error::ConnectionLoss));
    /// # Ok(()) }
    /// ```
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Accept read-only servers (ZooKeeper's `readonlymode.enabled`): reads work, writes fail
    /// with NotReadOnly, and the state is [`SessionState::ConnectedReadOnly`].
    ///
    /// Off by default: a server that has lost its quorum then refuses the session, and the
    /// client tries the next host.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_core::{Client, SessionState};
    ///
    /// let client = Client::builder(server.connect_string()).allow_read_only(true).connect().await?;
    /// // A server with a quorum is read/write as usual.
    /// assert_eq!(*client.state().borrow(), SessionState::Connected);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn allow_read_only(mut self, allow: bool) -> Self {
        self.read_only = allow;
        self
    }

    /// Resume an existing session from its id and password instead of creating one.
    ///
    /// The id and password come from [`Client::session`] of the client that created the
    /// session (typically saved by a process that is restarting). If the session is gone the
    /// client ends in [`SessionState::Expired`] and [`ClientBuilder::connect`] fails with
    /// [`Error::SessionExpired`]; it never quietly starts a new session.
    ///
    /// Resume only a session no live client holds: the server closes the older connection of a
    /// session when a newer one arrives, so two live clients of one session keep taking the
    /// connection from each other.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_core::{Client, Error};
    ///
    /// let result = Client::builder(server.connect_string())
    ///     .session(0x1234, vec![0u8; 16]) // a session the server does not know
    ///     .connect()
    ///     .await;
    /// assert_eq!(result.err(), Some(Error::SessionExpired));
    /// # Ok(()) }
    /// ```
    pub fn session(mut self, id: i64, password: impl Into<Bytes>) -> Self {
        self.session = Some((id, password.into()));
        self
    }

    /// Adds credentials of any scheme, sent on every connection before any request.
    ///
    /// If the server refuses them, [`ClientBuilder::connect`] fails with
    /// [`Error::AuthFailed`]. [`ClientBuilder::digest_auth`] is the shortcut for `digest`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_core::Client;
    ///
    /// let client = Client::builder(server.connect_string()).auth("digest", "app:secret").connect().await?;
    /// let me = client.who_am_i().await?;
    /// assert!(me.iter().any(|id| id.auth_scheme == "digest" && id.user == "app"));
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn auth(mut self, scheme: impl Into<String>, auth: impl Into<Bytes>) -> Self {
        self.auths.push((scheme.into(), auth.into()));
        self
    }

    /// Adds `digest` credentials (`user:password`), sent on every connection before any
    /// request.
    ///
    /// # Examples
    ///
    /// Nodes created with [`Acl::creator_all`](crate::Acl::creator_all) belong to these
    /// credentials:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_core::{Acl, Client, CreateMode, CreateOptions, ErrorCode};
    ///
    /// let owner = Client::builder(server.connect_string()).digest_auth("app", "secret").connect().await?;
    /// let private = CreateOptions::new(CreateMode::Persistent).with_acl(Acl::creator_all());
    /// owner.create("/private", "s3cr3t", private).await?;
    ///
    /// let stranger = Client::connect(&server.connect_string()).await?;
    /// let err = stranger.get_data("/private").await.unwrap_err();
    /// assert_eq!(err.code(), ErrorCode::NoAuth);
    /// # owner.close().await;
    /// # stranger.close().await;
    /// # Ok(()) }
    /// ```
    pub fn digest_auth(self, user: &str, password: &str) -> Self {
        self.auth("digest", Bytes::from(format!("{user}:{password}")))
    }

    /// The frame limit, ZooKeeper's `jute.maxbuffer` (default 1 MiB − 1). Requests above it are
    /// refused before sending; replies above it drop the connection.
    ///
    /// Keep it equal to the servers' `jute.maxbuffer`: larger, and the server drops the
    /// connection on a large request; smaller, and a large node cannot be read.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_core::{Client, CreateMode, Error};
    ///
    /// let client = Client::builder(server.connect_string()).max_frame_size(1024).connect().await?;
    /// let err = client.create("/big", vec![0u8; 2048], CreateMode::Persistent).await.unwrap_err();
    /// assert!(matches!(err, Error::RequestTooLarge { max: 1024, .. }));
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Connects through `connector` instead of TCP: an in-memory pipe to an embedded server,
    /// TLS, a tunnel. The connect string's hosts are handed to it as they are.
    ///
    /// # Examples
    ///
    /// An in-memory connection to the embedded server, which lets a test run on paused time:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use corral_core::{BoxStream, Client, ConnectFuture, Connector, HostPort};
    /// use corral_server::testing::TestingServer;
    ///
    /// #[derive(Debug)]
    /// struct InMemory(Arc<TestingServer>);
    ///
    /// impl Connector for InMemory {
    ///     fn connect(&self, _host: &HostPort) -> ConnectFuture {
    ///         let (stream, addr) = (self.0.connect_in_memory(), self.0.addr());
    ///         Box::pin(async move {
    ///             let stream = stream.ok_or(std::io::ErrorKind::ConnectionRefused)?;
    ///             Ok((Box::new(stream) as BoxStream, addr))
    ///         })
    ///     }
    /// }
    ///
    /// let server = Arc::new(TestingServer::start().await?);
    /// let client = Client::builder("in-memory").connector(InMemory(server.clone())).connect().await?;
    /// assert_eq!(server.sessions(), [client.session_id()]);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn connector(mut self, connector: impl Connector) -> Self {
        self.connector = Some(Arc::new(connector));
        self
    }

    /// Starts the client and returns at once; it connects in the background. Requests made
    /// before the connection is up wait for it (up to the connection timeout).
    ///
    /// Use it when the application should start even though ZooKeeper is down; otherwise
    /// [`ClientBuilder::connect`] reports a missing ensemble at once.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (the session task is spawned on the current one).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConnectString`] if the connect string cannot be parsed;
    /// [`Error::BadArguments`] for a zero session timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_core::{Client, Error};
    ///
    /// let client = Client::builder(server.connect_string()).build()?;
    /// // The first request waits for the connection.
    /// assert!(client.exists("/zookeeper").await?.is_some());
    ///
    /// let bad = Client::builder("zk1:notaport").build();
    /// assert!(matches!(bad, Err(Error::InvalidConnectString { .. })));
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn build(self) -> Result<Client> {
        self.build_inner(None)
    }

    /// Like [`ClientBuilder::build`], with a session-event subscriber registered before the
    /// session task starts, so that not even the first event can be missed.
    pub(crate) fn build_with_events(
        self,
    ) -> Result<(Client, impl Stream<Item = SessionEvent> + Send + Unpin + 'static)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let client = self.build_inner(Some(tx))?;
        Ok((client, tokio_stream_from(rx)))
    }

    fn build_inner(self, subscriber: Option<mpsc::UnboundedSender<SessionEvent>>) -> Result<Client> {
        let cs: ConnectString = self.connect_string.parse()?;
        if self.session_timeout.is_zero() {
            return Err(Error::BadArguments("session timeout must be positive".into()));
        }
        let (state_tx, _) = watch::channel(SessionState::NotConnected);
        let shared = Arc::new(Shared {
            state: state_tx,
            info: std::sync::Mutex::new(SessionInfo::default()),
            subscribers: std::sync::Mutex::new(subscriber.into_iter().collect()),
            chroot: Chroot::new(cs.chroot),
            max_frame: self.max_frame,
            next_watch_id: std::sync::atomic::AtomicU64::new(1),
        });
        let (commands, rx) = mpsc::unbounded_channel();
        let config = Config {
            hosts: cs.hosts,
            session_timeout: self.session_timeout,
            connect_timeout: self.connect_timeout,
            connection_timeout: self.connection_timeout,
            read_only: self.read_only,
            max_frame: self.max_frame,
            connector: self.connector,
        };
        let task = SessionTask::new(config, shared.clone(), rx, self.session, self.auths);
        tokio::spawn(task.run());
        Ok(Client { inner: Arc::new(Inner { commands, shared, requested_timeout: self.session_timeout }) })
    }

    /// Starts the client and waits until its session is established.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if no server accepted the session within the connection timeout
    /// (the client is closed); [`Error::SessionExpired`] when resuming a session that is gone;
    /// [`Error::AuthFailed`] when the credentials are refused; and the errors of
    /// [`ClientBuilder::build`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the client, which closes the session if it was established.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::{Client, Error};
    ///
    /// server.stop().await; // nobody listens any more
    /// let result = Client::builder(server.connect_string())
    ///     .connection_timeout(Duration::from_millis(200))
    ///     .connect()
    ///     .await;
    /// assert_eq!(result.err(), Some(Error::Timeout));
    /// # Ok(()) }
    /// ```
    pub async fn connect(self) -> Result<Client> {
        let timeout = self.connection_timeout;
        let client = self.build()?;
        match client.wait_until_connected(timeout).await {
            Ok(()) => Ok(client),
            Err(e) => {
                client.close().await;
                Err(e)
            }
        }
    }
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    requested_timeout: Duration,
}

/// A handle to one ZooKeeper session. Cheap to clone; every clone shares the session.
///
/// The session lives in a background task that connects, reconnects within the session
/// (restoring watches), pings, and ends for good on expiry, authentication failure or
/// [`Client::close`]. Dropping the last handle closes the session too.
///
/// Every operation is ordered when its future is created, not when it is first polled:
/// `let a = client.set_data(..); let b = client.get_data(..);` sends the set first, and
/// ZooKeeper answers a session's requests in order.
///
/// # Cancel safety
///
/// Dropping an operation's future does not withdraw the request: it has been queued already
/// and the server applies it; only the answer is lost.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use corral_core::{Client, CreateMode};
///
/// let client = Client::connect(&server.connect_string()).await?;
/// client.create("/counter", "0", CreateMode::Persistent).await?;
/// let set = client.set_data("/counter", "1", None);
/// let get = client.get_data("/counter");
/// // Awaited first, but sent second: the read sees the write.
/// let (data, _) = get.await?;
/// assert_eq!(&data[..], b"1");
/// set.await?;
/// # client.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Connects to `connect_string` with default settings and waits for the session.
    ///
    /// `connect_string` is `host:port,host:port/optional/chroot` (see [`ConnectString`]). With a
    /// chroot every path is relative to it; the chroot node itself must exist (the
    /// [`Framework`](crate::Framework) can create it).
    ///
    /// # Errors
    ///
    /// As [`ClientBuilder::connect`].
    ///
    /// # Cancel safety
    ///
    /// As [`ClientBuilder::connect`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_core::{Client, CreateMode};
    ///
    /// let root = Client::connect(&server.connect_string()).await?;
    /// root.create("/my-app", "", CreateMode::Persistent).await?;
    ///
    /// let app = Client::connect(&format!("{}/my-app", server.connect_string())).await?;
    /// app.create("/config", "v1", CreateMode::Persistent).await?;
    /// assert!(root.exists("/my-app/config").await?.is_some());
    /// # app.close().await;
    /// # root.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn connect(connect_string: &str) -> Result<Client> {
        ClientBuilder::new(connect_string).connect().await
    }

    /// A builder for `connect_string`, to set the session timeout, credentials and the rest.
    ///
    /// See [`ClientBuilder`] for an example.
    pub fn builder(connect_string: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(connect_string)
    }

    /// The session state as a watch channel: read the current value, or await changes.
    ///
    /// A watch channel shows the latest state only; to see every transition (a short
    /// disconnection included), use [`Client::session_events`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::SessionState;
    ///
    /// let mut state = client.state();
    /// assert_eq!(*state.borrow(), SessionState::Connected);
    /// server.expire_session(client.session_id());
    /// let ended = *state.wait_for(|s| s.is_terminal()).await?;
    /// assert_eq!(ended, SessionState::Expired);
    /// # Ok(()) }
    /// ```
    pub fn state(&self) -> watch::Receiver<SessionState> {
        self.inner.shared.state.subscribe()
    }

    /// A stream of session events from now on: connected (new or resumed), disconnected,
    /// expired, auth failed, closed. Every event is delivered, in order.
    ///
    /// The stream is unbounded: read it, or drop it. It ends after the session's last event
    /// (expired, auth failed or closed); a stream taken after the session ended is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::SessionEvent;
    /// use futures::StreamExt;
    ///
    /// let mut events = client.session_events();
    /// server.drop_connection(client.session_id()); // a network fault
    /// assert!(matches!(events.next().await, Some(SessionEvent::Disconnected { .. })));
    /// let Some(SessionEvent::Connected { session_id, resumed, .. }) = events.next().await else { panic!() };
    /// assert!(resumed);
    /// assert_eq!(session_id, client.session_id());
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn session_events(&self) -> impl Stream<Item = SessionEvent> + Send + Unpin + 'static {
        let (tx, rx) = mpsc::unbounded_channel();
        // After the session has ended the stream is empty (its last event went out already).
        if !self.inner.shared.state.borrow().is_terminal() {
            self.inner.shared.subscribers.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
        }
        tokio_stream_from(rx)
    }

    /// The session's id, password, negotiated timeout and last seen zxid.
    ///
    /// The id and password let another client resume the session
    /// ([`ClientBuilder::session`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::{Client, CreateMode};
    ///
    /// let client = Client::builder(server.connect_string())
    ///     .session_timeout(Duration::from_secs(10))
    ///     .connect()
    ///     .await?;
    /// let info = client.session();
    /// assert_eq!(info.timeout, Duration::from_secs(10));
    /// client.create("/x", "", CreateMode::Persistent).await?;
    /// assert!(client.session().last_zxid > info.last_zxid);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn session(&self) -> SessionInfo {
        self.inner.shared.info()
    }

    /// The session id (0 before the first connection).
    ///
    /// Ephemeral nodes record it as their owner ([`Stat::ephemeral_owner`](crate::Stat)).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::CreateMode;
    ///
    /// let (_, stat) = client.create("/me", "", CreateMode::Ephemeral).await?;
    /// assert_eq!(stat.ephemeral_owner, client.session_id());
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn session_id(&self) -> i64 {
        self.inner.shared.info().id
    }

    /// Waits until the client is connected.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] after `timeout`; [`Error::SessionExpired`], [`Error::AuthFailed`] or
    /// [`Error::Closed`] if the session ends first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::{Client, Error};
    ///
    /// let client = Client::builder(server.connect_string()).build()?;
    /// client.wait_until_connected(Duration::from_secs(5)).await?;
    /// assert!(client.state().borrow().is_connected());
    ///
    /// client.close().await;
    /// let result = client.wait_until_connected(Duration::from_secs(5)).await;
    /// assert_eq!(result, Err(Error::Closed));
    /// # Ok(()) }
    /// ```
    pub async fn wait_until_connected(&self, timeout: Duration) -> Result<()> {
        let mut state = self.state();
        let wait = state.wait_for(|s| s.is_connected() || s.is_terminal());
        match tokio::time::timeout(timeout, wait).await {
            Err(_) => Err(Error::Timeout),
            Ok(Err(_)) => Err(Error::Closed),
            Ok(Ok(s)) => match *s {
                SessionState::Expired => Err(Error::SessionExpired),
                SessionState::AuthFailed => Err(Error::AuthFailed),
                SessionState::Closed => Err(Error::Closed),
                _ => Ok(()),
            },
        }
    }

    /// Closes the session: the server deletes its ephemeral nodes and fires their watches.
    /// Waits for the server's answer (bounded by the connection's read timeout); returns at once
    /// if the session has ended already.
    ///
    /// Every clone of this client is closed too: their requests fail with [`Error::Closed`].
    ///
    /// # Cancel safety
    ///
    /// The close is requested when the future is created; dropping it does not cancel it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_core::{Client, CreateMode, Error};
    ///
    /// let worker = Client::connect(&server.connect_string()).await?;
    /// let observer = Client::connect(&server.connect_string()).await?;
    /// worker.create("/worker-1", "", CreateMode::Ephemeral).await?;
    /// worker.close().await;
    /// assert_eq!(observer.exists("/worker-1").await?, None);
    /// assert_eq!(worker.exists("/").await, Err(Error::Closed));
    /// # observer.close().await;
    /// # Ok(()) }
    /// ```
    pub fn close(&self) -> impl Future<Output = ()> + Send + use<> {
        let (tx, rx) = oneshot::channel();
        let _ = self.inner.commands.send(Command::Close(tx));
        async move {
            let _ = rx.await;
        }
    }

    /// Drops the current TCP connection without ending the session, as a network fault would;
    /// the client reconnects and restores its watches. Meant for tests and operators.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::{CreateMode, EventType};
    ///
    /// client.create("/flag", "", CreateMode::Persistent).await?;
    /// let (_, _, watcher) = client.get_data_and_watch("/flag").await?;
    /// let session = client.session_id();
    /// client.drop_connection();
    /// client.set_data("/flag", "up", None).await?; // waits for the reconnection
    /// assert_eq!(watcher.await.event_type, EventType::NodeDataChanged);
    /// assert_eq!(client.session_id(), session);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn drop_connection(&self) {
        let _ = self.inner.commands.send(Command::Disconnect);
    }

    /// The number of watchers this client holds (one-shot and persistent). Recipes' tests use
    /// it to check that closing releases every watch.
    ///
    /// 0 once the session has ended.
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
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// let (_, watcher) = client.exists_and_watch("/not-yet").await?;
    /// assert_eq!(client.watcher_count().await, 1);
    /// drop(watcher); // removes the watch
    /// assert_eq!(client.watcher_count().await, 0);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn watcher_count(&self) -> usize {
        let (tx, rx) = oneshot::channel();
        if self.inner.commands.send(Command::WatchCount(tx)).is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }

    pub(crate) fn chroot(&self) -> &Chroot {
        &self.inner.shared.chroot
    }

    pub(crate) fn next_watch_id(&self) -> u64 {
        self.inner.shared.next_watch_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn weak_commands(&self) -> mpsc::WeakUnboundedSender<Command> {
        self.inner.commands.downgrade()
    }

    /// The error a request gets when the session task is gone.
    fn ended_error(&self) -> Error {
        match *self.inner.shared.state.borrow() {
            SessionState::Expired => Error::SessionExpired,
            SessionState::AuthFailed => Error::AuthFailed,
            _ => Error::Closed,
        }
    }

    /// Encodes and queues a request; the returned future waits for its reply.
    pub(crate) fn submit(
        &self,
        request: Request,
        path: &str,
        watch: Option<WatchRegistration>,
        after: AfterReply,
    ) -> impl Future<Output = Result<Response>> + Send + use<> {
        let op: OpCode = request.op_code();
        let mut body = BytesMut::new();
        request.write_body(&mut body);
        let size = body.len() + 8;
        let queued = if size > self.inner.shared.max_frame {
            Err(Error::RequestTooLarge { size, max: self.inner.shared.max_frame })
        } else {
            let (reply, rx) = oneshot::channel();
            let pending = Pending { op, body: body.freeze(), path: path.to_owned(), reply, watch, after };
            match self.inner.commands.send(Command::Request(pending)) {
                Ok(()) => Ok(rx),
                Err(_) => Err(self.ended_error()),
            }
        };
        let this = self.clone();
        async move {
            match queued {
                Err(e) => Err(e),
                Ok(rx) => match rx.await {
                    Ok(result) => result,
                    Err(_) => Err(this.ended_error()),
                },
            }
        }
    }

    /// Builds a one-shot watch registration and the watcher handed to the caller.
    pub(crate) fn oneshot_watch(&self, path: &str, kind: WatchKind) -> (crate::OneshotWatcher, WatchRegistration) {
        let id = self.next_watch_id();
        let (watcher, sender) = crate::OneshotWatcher::new(path.to_owned(), kind, id, self.weak_commands());
        (watcher, WatchRegistration { path: path.to_owned(), kind, id, sender })
    }

    /// Builds a persistent watch registration and the stream handed to the caller.
    pub(crate) fn persistent_watch(
        &self,
        path: &str,
        kind: WatchKind,
    ) -> (crate::PersistentWatcher, WatchRegistration) {
        let id = self.next_watch_id();
        let (watcher, sender) = crate::PersistentWatcher::new(path.to_owned(), kind, id, self.weak_commands());
        debug_assert!(matches!(sender, WatchSender::Stream(_)));
        (watcher, WatchRegistration { path: path.to_owned(), kind, id, sender })
    }

    /// The session timeout this client asked for.
    pub(crate) fn requested_timeout(&self) -> Duration {
        self.inner.requested_timeout
    }

    pub(crate) fn send_auth(&self, scheme: String, auth: Bytes, reply: oneshot::Sender<Result<()>>) -> Result<()> {
        self.inner.commands.send(Command::AddAuth { scheme, auth, reply }).map_err(|_| self.ended_error())
    }
}

/// Adapts an unbounded receiver into a `Stream` without pulling in tokio-stream.
fn tokio_stream_from<T: Send + 'static>(rx: mpsc::UnboundedReceiver<T>) -> impl Stream<Item = T> + Send + Unpin {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}

use futures::StreamExt as _;

/// One identity a connection is authenticated as (scheme and user), as returned by
/// [`Client::who_am_i`].
pub type Identity = ClientInfo;
