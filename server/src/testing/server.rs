//! [`TestingServer`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::DuplexStream;

use crate::conn::MemberCtl;
use crate::server::{Core, Error, Member, ServerBuilder};

/// A single embedded server for tests, like Curator's `TestingServer`: a random port by
/// default, stop and restart on the same port keeping the tree and the sessions, and faults.
///
/// Dropping it stops it at once (its tasks end, its port is released); [`TestingServer::close`]
/// waits for the connections to close.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use corral_server::testing::TestingServer;
///
/// let server = TestingServer::start().await?;
/// let client = zookeeper_client::Client::connect(&server.connect_string()).await?;
/// let session = client.session_id().0;
/// assert_eq!(server.sessions(), [session]);
/// assert!(server.expire_session(session)); // as its timeout would
/// assert!(server.sessions().is_empty());
/// server.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TestingServer {
    core: Core,
    ctl: Arc<MemberCtl>,
    member: Option<Member>,
    addr: SocketAddr,
    /// The secure port of the first start, taken again by a restart.
    secure_port: Option<u16>,
}

impl TestingServer {
    /// Starts a server with the default settings on a free port.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] if no port can be bound.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is started before the future is first polled, and it never waits
    /// once polled.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingServer;
    ///
    /// let server = TestingServer::start().await?;
    /// assert!(server.is_running());
    /// assert_eq!(server.addr().ip().to_string(), "127.0.0.1");
    /// server.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn start() -> Result<Self, Error> {
        Self::with_builder(ServerBuilder::default()).await
    }

    /// Starts a server with the settings of `builder`. With a
    /// [data directory](ServerBuilder::data_dir), the server is durable and a
    /// [restart](TestingServer::restart) reloads it from disk.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] if the address cannot be bound; [`Error::DataDir`] if the data
    /// directory cannot be restored.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`TestingServer::start`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingServer;
    ///
    /// use std::time::Duration;
    /// use corral_server::Server;
    ///
    /// let server = TestingServer::with_builder(Server::builder().tick_time(Duration::from_millis(500))).await?;
    /// let client = zookeeper_client::Client::connect(&server.connect_string()).await?;
    /// // Session timeouts are clamped to [2, 20] ticks: at most 10 s here.
    /// assert!(client.session_timeout() <= Duration::from_secs(10));
    /// server.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn with_builder(builder: ServerBuilder) -> Result<Self, Error> {
        let config = builder.into_config();
        let addr = SocketAddr::new(config.host, config.port);
        let read_only = config.read_only;
        let core = Core::open(config).await?;
        let ctl = Arc::new(MemberCtl::new(0, read_only));
        let member = Member::bind(&core.shared, Arc::clone(&ctl), addr).await?;
        let addr = member.addr;
        let secure_port = member.secure_addr.map(|a| a.port());
        Ok(Self { core, ctl, member: Some(member), addr, secure_port })
    }

    /// The address the server listens on (the same after a restart).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingServer;
    ///
    /// let server = TestingServer::start().await?;
    /// let addr = server.addr();
    /// assert!(addr.ip().is_loopback() && addr.port() != 0);
    /// server.close().await;
    /// # Ok(()) }
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the secure (TLS) client port, with [`ServerBuilder::tls`]; while the
    /// server is stopped, `None`. A restart takes the same secure port again.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingServer;
    ///
    /// let server = TestingServer::start().await?;
    /// assert_eq!(server.secure_addr(), None, "no TLS configured, no secure port");
    /// server.close().await;
    /// # Ok(()) }
    /// ```
    pub fn secure_addr(&self) -> Option<SocketAddr> {
        self.member.as_ref().and_then(|m| m.secure_addr)
    }

    /// The port the server listens on.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingServer;
    ///
    /// let server = TestingServer::start().await?;
    /// assert_eq!(server.port(), server.addr().port());
    /// server.close().await;
    /// # Ok(()) }
    /// ```
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The connect string for a client: `127.0.0.1:port`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingServer;
    ///
    /// let server = TestingServer::start().await?;
    /// assert_eq!(server.connect_string(), format!("127.0.0.1:{}", server.port()));
    /// let client = zookeeper_client::Client::connect(&server.connect_string()).await?;
    /// assert!(client.check_stat("/zookeeper").await?.is_some());
    /// server.close().await;
    /// # Ok(()) }
    /// ```
    pub fn connect_string(&self) -> String {
        self.addr.to_string()
    }

    /// Whether the server is running (not stopped).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingServer;
    ///
    /// let mut server = TestingServer::start().await?;
    /// server.stop().await;
    /// assert!(!server.is_running());
    /// server.restart().await?;
    /// assert!(server.is_running());
    /// server.close().await;
    /// # Ok(()) }
    /// ```
    pub fn is_running(&self) -> bool {
        self.member.is_some()
    }

    /// A connection over an in-memory transport (for paused-time tests), or `None` while the
    /// server is stopped.
    ///
    /// It is served exactly like a TCP connection. With nothing but in-memory I/O, Tokio's
    /// paused time advances only when every task waits on a timer, so session timeouts and
    /// expiry run on virtual time.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingServer;
    ///
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// let mut server = TestingServer::start().await?;
    /// let mut stream = server.connect_in_memory().expect("running");
    /// stream.write_all(b"ruok").await?;
    /// let mut answer = String::new();
    /// stream.read_to_string(&mut answer).await?;
    /// assert_eq!(answer, "imok");
    /// server.stop().await;
    /// assert!(server.connect_in_memory().is_none());
    /// # Ok(()) }
    /// ```
    pub fn connect_in_memory(&self) -> Option<DuplexStream> {
        self.member.as_ref().map(|m| m.connect_in_memory(&self.core.shared))
    }

    /// Stops the server: the port is released and every connection closed. The tree and the
    /// sessions are kept, and sessions do not expire while it is stopped; the read-only
    /// sessions of a read-only server are forgotten (ZooKeeper's local sessions do not survive
    /// a restart).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future part-way leaves the server stopped or running, never half-stopped
    /// in a way that serves requests; prefer awaiting it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingServer;
    ///
    /// let mut server = TestingServer::start().await?;
    /// let client = zookeeper_client::Client::connect(&server.connect_string()).await?;
    /// let session = client.session_id().0;
    /// server.stop().await;
    /// assert!(!server.is_running());
    /// assert_eq!(server.sessions(), [session]); // kept, and not ageing
    /// server.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn stop(&mut self) {
        if let Some(mut member) = self.member.take() {
            self.core.set_expiry(false);
            member.stop(&self.core.shared).await;
        }
    }

    /// Restarts the server on the same port (stopping it first if it runs). Every session's
    /// timeout starts afresh, as when ZooKeeper reloads its sessions.
    ///
    /// With a [data directory](ServerBuilder::data_dir) this is a real restart: the log is
    /// flushed, everything in memory is dropped, and the tree and sessions are restored from
    /// the directory as a new process would restore them.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] if the port was taken meanwhile; [`Error::DataDir`] if the data
    /// directory cannot be restored.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future part-way leaves the server stopped or restarted, never half-started;
    /// a stopped one can be restarted again.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingServer;
    ///
    /// let mut server = TestingServer::start().await?;
    /// use zookeeper_client::{Client, SessionState};
    ///
    /// let client = Client::connect(&server.connect_string()).await?;
    /// let (session, connect) = (client.session_id().0, server.connect_string());
    /// let mut state = client.state_watcher();
    /// server.restart().await?;
    /// assert_eq!(server.connect_string(), connect);
    /// assert_eq!(server.sessions(), [session]);
    /// // The client reconnects to the same port and resumes its session.
    /// while state.changed().await != SessionState::SyncConnected {}
    /// assert_eq!(client.session_id().0, session);
    /// server.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn restart(&mut self) -> Result<(), Error> {
        self.stop().await;
        if self.core.shared.config.data_dir.is_some() {
            self.core.close().await;
            self.core = Core::open(self.core.shared.config.clone()).await?;
        }
        let secure_port = self.secure_port.unwrap_or(self.core.shared.config.secure_port);
        let member = Member::bind_ports(&self.core.shared, Arc::clone(&self.ctl), self.addr, secure_port).await?;
        self.member = Some(member);
        self.core.set_expiry(true);
        Ok(())
    }

    /// When the most recent handshakes (ConnectRequests, new sessions and resumptions alike)
    /// arrived, oldest first — the newest 65,536 are kept. With `clear`, the log starts afresh.
    /// This is how tests and benchmarks measure how a crowd of clients comes back after a
    /// failure (connections per time window).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingServer;
    ///
    /// let server = TestingServer::start().await?;
    /// let _client = zookeeper_client::Client::connect(&server.connect_string()).await?;
    /// assert_eq!(server.handshake_times(true).len(), 1);
    /// assert!(server.handshake_times(false).is_empty(), "cleared");
    /// server.close().await;
    /// # Ok(()) }
    /// ```
    pub fn handshake_times(&self, clear: bool) -> Vec<tokio::time::Instant> {
        self.core.handshake_times(clear)
    }

    /// The ids of every live session, sorted.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingServer;
    ///
    /// let server = TestingServer::start().await?;
    /// assert!(server.sessions().is_empty());
    /// let client = zookeeper_client::Client::connect(&server.connect_string()).await?;
    /// assert_eq!(server.sessions(), [client.session_id().0]);
    /// server.close().await;
    /// # Ok(()) }
    /// ```
    pub fn sessions(&self) -> Vec<i64> {
        self.core.session_ids()
    }

    /// Expires a session now, as its timeout would: its ephemerals go (watches fire) and its
    /// connection is closed. Returns `false` if the session is unknown.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingServer;
    ///
    /// let server = TestingServer::start().await?;
    /// use zookeeper_client::{Acls, Client, CreateMode, SessionState};
    ///
    /// let owner = Client::connect(&server.connect_string()).await?;
    /// let observer = Client::connect(&server.connect_string()).await?;
    /// owner.create("/leader", b"me", &CreateMode::Ephemeral.with_acls(Acls::anyone_all())).await?;
    /// let mut state = owner.state_watcher();
    /// assert!(server.expire_session(owner.session_id().0));
    /// assert!(observer.check_stat("/leader").await?.is_none(), "its ephemerals went with it");
    /// while state.changed().await != SessionState::Expired {}
    /// assert!(!server.expire_session(owner.session_id().0), "unknown now");
    /// server.close().await;
    /// # Ok(()) }
    /// ```
    pub fn expire_session(&self, session: i64) -> bool {
        self.core.expire_session(session)
    }

    /// Closes a session's TCP connection; the session lives on and can be resumed. Returns
    /// `false` if the session is unknown or has no connection.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingServer;
    ///
    /// let server = TestingServer::start().await?;
    /// use zookeeper_client::{Client, SessionState};
    ///
    /// let client = Client::connect(&server.connect_string()).await?;
    /// let session = client.session_id().0;
    /// let mut state = client.state_watcher();
    /// assert!(server.drop_connection(session));
    /// assert_eq!(server.sessions(), [session], "the session lives on");
    /// // The client reconnects and resumes it.
    /// assert_eq!(state.changed().await, SessionState::Disconnected);
    /// assert_eq!(state.changed().await, SessionState::SyncConnected);
    /// assert_eq!(client.session_id().0, session);
    /// server.close().await;
    /// # Ok(()) }
    /// ```
    pub fn drop_connection(&self, session: i64) -> bool {
        self.core.drop_connection(session)
    }

    /// Turns the server into a black hole: it still accepts connections, but reads and
    /// answers nothing until [`TestingServer::resume`]. Sessions keep ageing meanwhile.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingServer;
    ///
    /// let server = TestingServer::start().await?;
    /// let client = zookeeper_client::Client::connect(&server.connect_string()).await?;
    /// server.pause();
    /// let request = client.check_stat("/zookeeper"); // sent now, buffered by the server
    /// server.resume();
    /// assert!(request.await?.is_some());
    /// server.close().await;
    /// # Ok(()) }
    /// ```
    pub fn pause(&self) {
        self.ctl.paused.send_replace(true);
    }

    /// Ends a [`TestingServer::pause`]: buffered requests are answered in order.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingServer;
    ///
    /// let server = TestingServer::start().await?;
    /// let client = zookeeper_client::Client::connect(&server.connect_string()).await?;
    /// server.pause();
    /// let (first, second) = (client.check_stat("/zookeeper"), client.check_stat("/none"));
    /// server.resume();
    /// assert!(first.await?.is_some());
    /// assert!(second.await?.is_none());
    /// server.close().await;
    /// # Ok(()) }
    /// ```
    pub fn resume(&self) {
        self.ctl.paused.send_replace(false);
    }

    /// Delays the handling of every request by `latency` (zero to stop).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingServer;
    ///
    /// let server = TestingServer::start().await?;
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    ///
    /// let client = zookeeper_client::Client::connect(&server.connect_string()).await?;
    /// server.set_latency(Duration::from_millis(20));
    /// let sent = Instant::now();
    /// client.check_stat("/zookeeper").await?;
    /// assert!(sent.elapsed() >= Duration::from_millis(20));
    /// server.set_latency(Duration::ZERO);
    /// server.close().await;
    /// # Ok(()) }
    /// ```
    pub fn set_latency(&self, latency: Duration) {
        *self.ctl.latency.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = latency;
    }

    /// Switches the server into or out of read-only mode, as a ZooKeeper server that loses or
    /// regains its quorum; returns whether the mode changed. Its connections are closed either
    /// way (ZooKeeper restarts the server); see [`TestingCluster::set_read_only`] for what a
    /// read-only server does.
    ///
    /// [`TestingCluster::set_read_only`]: super::TestingCluster::set_read_only
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), corral_server::Error> {
    /// use corral_server::testing::TestingServer;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// let server = TestingServer::start().await?;
    /// server.set_read_only(true);
    /// let mut socket = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
    /// socket.write_all(b"srvr").await.expect("write");
    /// let mut answer = String::new();
    /// socket.read_to_string(&mut answer).await.expect("read");
    /// assert!(answer.contains("Mode: read-only\n"));
    /// server.close().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_read_only(&self, read_only: bool) -> bool {
        self.core.set_read_only(&self.ctl, read_only)
    }

    /// Whether the server is read-only.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingServer;
    ///
    /// let server = TestingServer::start().await?;
    /// assert!(!server.is_read_only());
    /// server.set_read_only(true);
    /// assert!(server.is_read_only());
    /// server.close().await;
    /// # Ok(()) }
    /// ```
    pub fn is_read_only(&self) -> bool {
        self.ctl.is_read_only()
    }

    /// Deletes, now, the containers and TTL nodes that are due. Returns how many were deleted.
    ///
    /// The periodic sweep does the same every
    /// [`container_check_interval`](crate::ServerBuilder::container_check_interval).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingServer;
    ///
    /// let server = TestingServer::start().await?;
    /// use zookeeper_client::{Acls, Client, CreateMode};
    ///
    /// let client = Client::connect(&server.connect_string()).await?;
    /// client.create("/jobs", b"", &CreateMode::Container.with_acls(Acls::anyone_all())).await?;
    /// client.create("/jobs/j1", b"", &CreateMode::Persistent.with_acls(Acls::anyone_all())).await?;
    /// client.delete("/jobs/j1", None).await?;
    /// assert_eq!(server.sweep_now(), 1); // the emptied container
    /// assert!(client.check_stat("/jobs").await?.is_none());
    /// server.close().await;
    /// # Ok(()) }
    /// ```
    pub fn sweep_now(&self) -> usize {
        self.core.sweep_now()
    }

    /// Stops the server for good, waiting for the connections to close.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the server at once instead of waiting for its connections.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingServer;
    ///
    /// let server = TestingServer::start().await?;
    /// let addr = server.addr();
    /// server.close().await;
    /// assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the port is released");
    /// # Ok(()) }
    /// ```
    pub async fn close(mut self) {
        self.stop().await;
        self.core.close().await;
    }
}
