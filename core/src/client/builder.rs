//! [`ClientBuilder`]: the settings of a [`Client`] and starting it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use corral_proto::DEFAULT_MAX_FRAME;
use futures::Stream;
use tokio::sync::{mpsc, watch};

use crate::client::{Client, Inner, tokio_stream_from};
use crate::connect_string::{Chroot, ConnectString};
use crate::error::{Error, Result};
use crate::sasl::Sasl;
use crate::session::{Config, SessionTask, Shared};
use crate::state::{SessionEvent, SessionInfo, SessionState};
use crate::tls::ClientTls;
use crate::transport::{Connector, Dialer};

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
    tls: Option<ClientTls>,
    sasl: Option<Sasl>,
    /// What this builder's clients learnt about TCP handshakes to each server, shared by clones.
    pacing: Arc<crate::transport::ConnectPacing>,
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
            tls: None,
            sasl: None,
            pacing: Arc::default(),
        }
    }

    /// The same settings with another connect string.
    pub(crate) fn with_connect_string(mut self, connect_string: String) -> Self {
        self.connect_string = connect_string;
        self
    }

    /// The connect string, as given.
    pub(crate) fn connect_string(&self) -> &str {
        &self.connect_string
    }

    /// The same settings without a session to resume.
    pub(crate) fn without_session(mut self) -> Self {
        self.session = None;
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

    /// Accept read-only servers (ZooKeeper's `readonlymode.enabled`): reads and watches work,
    /// writes fail with [`ErrorCode::NotReadOnly`](crate::ErrorCode::NotReadOnly), and the
    /// state is [`SessionState::ConnectedReadOnly`].
    ///
    /// While connected to a read-only server the client looks for a read/write one in the
    /// background, as the Java client does: it asks the other hosts of the connect string
    /// `isro`, in rounds at intervals doubling from 100 ms to 60 s, and moves the session to
    /// the first that answers `rw`. The state then goes `ConnectedReadOnly` → `Connecting` →
    /// `Connected`, and requests in flight at that moment fail with [`Error::ConnectionLoss`].
    ///
    /// A session first granted by a read-only server is known to that server alone, so until a
    /// read/write server has been seen every handshake asks for a new session (the Java
    /// client's `seenRwServerBefore`): the session id changes when the client reaches a
    /// read/write server, or reconnects at all. Watches are restored on the new session. A
    /// session granted by a read/write server is resumed as usual; read-only servers refuse it.
    ///
    /// Off by default: a read-only server then refuses the client, which tries the next host.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_core::{Client, CreateMode, ErrorCode, SessionState};
    /// use corral_server::{Server, testing::TestingServer};
    ///
    /// // A server that has lost its quorum.
    /// let server = TestingServer::with_builder(Server::builder().read_only(true)).await?;
    /// let client = Client::builder(server.connect_string()).allow_read_only(true).connect().await?;
    /// assert_eq!(*client.state().borrow(), SessionState::ConnectedReadOnly);
    /// assert!(client.exists("/zookeeper").await?.is_some()); // reads work
    /// let write = client.create("/x", "", CreateMode::Persistent).await;
    /// assert_eq!(write.map_err(|e| e.code()), Err(ErrorCode::NotReadOnly));
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

    /// Connects with TLS (ZooKeeper's `secureClientPort`): every connection of the client, its
    /// reconnects, read-only probes and [`Client::four_letter_word`] included.
    ///
    /// The hosts of the connect string are the names checked against the servers'
    /// certificates (see [`ClientTls`]). A TLS failure — a certificate not signed by a trusted
    /// CA, one that does not name the host, a server that wants a client certificate — is
    /// logged as a warning on every attempt, and [`ClientBuilder::connect`] reports it as
    /// [`Error::Tls`] instead of [`Error::Timeout`]. The client keeps trying meanwhile, at the
    /// usual pace (a jittered pause of up to 2 s between rounds of hosts): certificates may be
    /// fixed on the server side.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_core::{Client, ClientTls};
    ///
    /// let tls = ClientTls::builder().ca_pem_file("/etc/zookeeper/ca.pem").build()?;
    /// let client = Client::builder("zk1.internal:2281,zk2.internal:2281").tls(tls).connect().await?;
    /// println!("{}", client.four_letter_word("srvr").await?);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Logs in with SASL on every connection (ZooKeeper's SASL packets), before any other
    /// request, so every request runs as the SASL user (`sasl:<user>` in ACLs).
    ///
    /// If the server refuses the credentials the session ends in
    /// [`SessionState::AuthFailed`] and [`ClientBuilder::connect`] fails with
    /// [`Error::AuthFailed`]; a mechanism that cannot go on ends it the same way, and `connect`
    /// says why with [`Error::Sasl`]: a server whose answers make no sense to it or that cannot
    /// prove who it is (it does not know the password, it does not hold the service key), and
    /// for Kerberos no credentials or a service principal the KDC does not know. There is no
    /// retry: the session ends at the first refusal.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_core::{Client, Error, Sasl};
    /// use corral_server::{SaslUsers, Server, testing::TestingServer};
    ///
    /// let users = SaslUsers::new().user("bob", "bobsecret");
    /// let server = TestingServer::with_builder(Server::builder().sasl_users(users)).await?;
    /// let wrong = Client::builder(server.connect_string()).sasl(Sasl::digest_md5("bob", "guess")).connect().await;
    /// assert_eq!(wrong.err(), Some(Error::AuthFailed));
    /// # Ok(()) }
    /// ```
    pub fn sasl(mut self, sasl: Sasl) -> Self {
        self.sasl = Some(sasl);
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
    /// The same builder with `hosts` for servers, keeping the connect string's chroot.
    pub(crate) fn with_hosts(mut self, hosts: &[crate::HostPort]) -> Self {
        let chroot = self.connect_string.parse::<crate::ConnectString>().ok().and_then(|cs| cs.chroot);
        let list = hosts.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        self.connect_string = format!("{list}{}", chroot.unwrap_or_default());
        self
    }

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
        let dialer = Dialer { connector: self.connector, tls: self.tls, pacing: self.pacing };
        let first_host = cs.hosts.first().cloned().ok_or_else(|| Error::BadArguments("no host".into()))?;
        let (state_tx, _) = watch::channel(SessionState::NotConnected);
        let shared = Arc::new(Shared {
            state: state_tx,
            info: std::sync::Mutex::new(SessionInfo::default()),
            subscribers: std::sync::Mutex::new(subscriber.into_iter().collect()),
            chroot: Chroot::new(cs.chroot),
            max_frame: self.max_frame,
            next_watch_id: std::sync::atomic::AtomicU64::new(1),
            dialer: dialer.clone(),
            host: std::sync::Mutex::new(first_host),
            tls_failure: std::sync::Mutex::new(None),
            sasl_failure: std::sync::Mutex::new(None),
        });
        let (commands, rx) = mpsc::unbounded_channel();
        let config = Config {
            hosts: cs.hosts,
            session_timeout: self.session_timeout,
            connect_timeout: self.connect_timeout,
            connection_timeout: self.connection_timeout,
            read_only: self.read_only,
            max_frame: self.max_frame,
            dialer,
            sasl: self.sasl,
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
    /// [`Error::AuthFailed`] when the credentials are refused; [`Error::Tls`] instead of
    /// [`Error::Timeout`] when the last attempt failed in TLS; [`Error::Sasl`] when the SASL
    /// mechanism gave up (see [`ClientBuilder::sasl`]); and the errors of
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
                // A TLS failure says more than "timed out": an untrusted or misnamed
                // certificate, or a server that wants a client certificate.
                let tls = client.inner.shared.tls_failure.lock().unwrap_or_else(|e| e.into_inner()).take();
                let sasl = client.inner.shared.sasl_failure.lock().unwrap_or_else(|e| e.into_inner()).take();
                client.close().await;
                match (e, tls, sasl) {
                    (Error::Timeout, Some(reason), _) => Err(Error::Tls(reason)),
                    (Error::AuthFailed, _, Some(reason)) => Err(Error::Sasl(reason)),
                    (e, _, _) => Err(e),
                }
            }
        }
    }
}
