//! [`TestingServer`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::DuplexStream;

use crate::conn::MemberCtl;
use crate::server::{Core, Error, Member, ServerBuilder};

/// A single embedded server for tests, like Curator's `TestingServer`: a random port by
/// default, stop and restart on the same port keeping the tree and the sessions, and faults.
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
    pub async fn start() -> Result<Self, Error> {
        Self::with_builder(ServerBuilder::default()).await
    }

    /// Starts a server with the settings of `builder`.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] if the address cannot be bound.
    pub async fn with_builder(builder: ServerBuilder) -> Result<Self, Error> {
        let config = builder.into_config();
        let addr = SocketAddr::new(config.host, config.port);
        let read_only = config.read_only;
        let core = Core::start(config);
        let ctl = Arc::new(MemberCtl::new(0, read_only));
        let member = Member::bind(&core.shared, Arc::clone(&ctl), addr).await?;
        let addr = member.addr;
        let secure_port = member.secure_addr.map(|a| a.port());
        Ok(Self { core, ctl, member: Some(member), addr, secure_port })
    }

    /// The address the server listens on (the same after a restart).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the secure (TLS) client port, with [`ServerBuilder::tls`]; while the
    /// server is stopped, `None`. A restart takes the same secure port again.
    pub fn secure_addr(&self) -> Option<SocketAddr> {
        self.member.as_ref().and_then(|m| m.secure_addr)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The connect string for a client: `127.0.0.1:port`.
    pub fn connect_string(&self) -> String {
        self.addr.to_string()
    }

    /// Whether the server is running (not stopped).
    pub fn is_running(&self) -> bool {
        self.member.is_some()
    }

    /// A connection over an in-memory transport (for paused-time tests), or `None` while the
    /// server is stopped.
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
    pub async fn stop(&mut self) {
        if let Some(mut member) = self.member.take() {
            self.core.set_expiry(false);
            member.stop(&self.core.shared).await;
        }
    }

    /// Restarts the server on the same port (stopping it first if it runs). Every session's
    /// timeout starts afresh, as when ZooKeeper reloads its sessions.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] if the port was taken meanwhile.
    pub async fn restart(&mut self) -> Result<(), Error> {
        self.stop().await;
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
    pub fn handshake_times(&self, clear: bool) -> Vec<tokio::time::Instant> {
        self.core.handshake_times(clear)
    }

    /// The ids of every live session, sorted.
    pub fn sessions(&self) -> Vec<i64> {
        self.core.session_ids()
    }

    /// Expires a session now, as its timeout would: its ephemerals go (watches fire) and its
    /// connection is closed. Returns `false` if the session is unknown.
    pub fn expire_session(&self, session: i64) -> bool {
        self.core.expire_session(session)
    }

    /// Closes a session's TCP connection; the session lives on and can be resumed. Returns
    /// `false` if the session is unknown or has no connection.
    pub fn drop_connection(&self, session: i64) -> bool {
        self.core.drop_connection(session)
    }

    /// Turns the server into a black hole: it still accepts connections, but reads and
    /// answers nothing until [`TestingServer::resume`]. Sessions keep ageing meanwhile.
    pub fn pause(&self) {
        self.ctl.paused.send_replace(true);
    }

    /// Ends a [`TestingServer::pause`]: buffered requests are answered in order.
    pub fn resume(&self) {
        self.ctl.paused.send_replace(false);
    }

    /// Delays the handling of every request by `latency` (zero to stop).
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
    pub fn is_read_only(&self) -> bool {
        self.ctl.is_read_only()
    }

    /// Deletes, now, the containers and TTL nodes that are due. Returns how many were deleted.
    pub fn sweep_now(&self) -> usize {
        self.core.sweep_now()
    }

    /// Stops the server for good, waiting for the connections to close.
    pub async fn close(mut self) {
        self.stop().await;
    }
}
