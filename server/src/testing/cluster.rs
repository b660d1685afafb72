//! [`TestingCluster`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::DuplexStream;

use crate::conn::MemberCtl;
use crate::server::{Core, Error, Member, ServerBuilder};

#[derive(Debug)]
struct Slot {
    ctl: Arc<MemberCtl>,
    member: Option<Member>,
    addr: SocketAddr,
}

/// Several listeners sharing one tree and one session tracker: a simulated ensemble.
///
/// A client given [`TestingCluster::connect_string`] (every member's address) can lose its
/// member — stopped, paused, or its connection dropped — reconnect to another one with its
/// session id and password, and keep its session and ephemerals, as with a real ensemble.
/// Nothing is replicated: there is one state, and members are only doors into it.
///
/// # Panics
///
/// The methods taking a member index panic if it is out of range (a bug in the test).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use corral_server::testing::TestingCluster;
/// use zookeeper_client::{Client, SessionState};
///
/// let mut cluster = TestingCluster::start(3).await?;
/// let client = Client::connect(&cluster.connect_string()).await?;
/// let session = client.session_id().0;
/// let member = cluster.member_of_session(session).expect("connected");
/// let mut state = client.state_watcher();
/// cluster.stop_member(member).await;
/// while state.changed().await != SessionState::SyncConnected {}
/// assert_eq!(client.session_id().0, session, "the same session, through another member");
/// assert_ne!(cluster.member_of_session(session), Some(member));
/// cluster.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TestingCluster {
    core: Core,
    slots: Vec<Slot>,
}

impl TestingCluster {
    /// Starts `members` listeners on free ports with the default settings.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] if a port cannot be bound.
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
    /// use corral_server::testing::TestingCluster;
    ///
    /// let cluster = TestingCluster::start(3).await?;
    /// assert_eq!(cluster.len(), 3);
    /// assert!((0..3).all(|i| cluster.is_running(i)));
    /// cluster.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn start(members: usize) -> Result<Self, Error> {
        Self::with_builder(members, ServerBuilder::default()).await
    }

    /// Starts `members` listeners with the settings of `builder` (its port is ignored: each
    /// member gets a free one).
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] if a port cannot be bound; [`Error::Config`] if `builder` has a
    /// [data directory](ServerBuilder::data_dir) (a simulated cluster is not durable).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`TestingCluster::start`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingCluster;
    ///
    /// use std::time::Duration;
    /// use corral_server::Server;
    ///
    /// let cluster = TestingCluster::with_builder(2, Server::builder().tick_time(Duration::from_millis(500))).await?;
    /// let client = zookeeper_client::Client::connect(&cluster.connect_string()).await?;
    /// // Session timeouts are clamped to [2, 20] ticks: at most 10 s here.
    /// assert!(client.session_timeout() <= Duration::from_secs(10));
    /// cluster.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn with_builder(members: usize, builder: ServerBuilder) -> Result<Self, Error> {
        let config = builder.into_config();
        if config.data_dir.is_some() {
            return Err(Error::Config(
                "a TestingCluster keeps its shared state in memory: ServerBuilder::data_dir is for a Server or a \
                 TestingServer"
                    .into(),
            ));
        }
        let host = config.host;
        let read_only = config.read_only;
        let core = Core::start(config);
        let mut slots = Vec::with_capacity(members);
        for index in 0..members {
            let ctl = Arc::new(MemberCtl::new(index, read_only));
            let member = Member::bind(&core.shared, Arc::clone(&ctl), SocketAddr::new(host, 0)).await?;
            slots.push(Slot { ctl, addr: member.addr, member: Some(member) });
        }
        Ok(Self { core, slots })
    }

    fn slot(&self, index: usize) -> &Slot {
        match self.slots.get(index) {
            Some(slot) => slot,
            None => panic!("no member {index} in a cluster of {}", self.slots.len()),
        }
    }

    /// The number of members.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingCluster;
    ///
    /// let cluster = TestingCluster::start(3).await?;
    /// assert_eq!(cluster.len(), 3);
    /// cluster.close().await;
    /// # Ok(()) }
    /// ```
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the cluster has no member.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingCluster;
    ///
    /// let cluster = TestingCluster::start(3).await?;
    /// assert!(!cluster.is_empty());
    /// assert!(TestingCluster::start(0).await?.is_empty());
    /// cluster.close().await;
    /// # Ok(()) }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Every member's address, in member order.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingCluster;
    ///
    /// let cluster = TestingCluster::start(3).await?;
    /// let addrs = cluster.addrs();
    /// assert_eq!(addrs, [cluster.addr(0), cluster.addr(1), cluster.addr(2)]);
    /// assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    /// cluster.close().await;
    /// # Ok(()) }
    /// ```
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.slots.iter().map(|s| s.addr).collect()
    }

    /// The address of member `index`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingCluster;
    ///
    /// let cluster = TestingCluster::start(3).await?;
    /// let client = zookeeper_client::Client::connect(&cluster.addr(1).to_string()).await?;
    /// assert_eq!(cluster.member_of_session(client.session_id().0), Some(1));
    /// cluster.close().await;
    /// # Ok(()) }
    /// ```
    pub fn addr(&self, index: usize) -> SocketAddr {
        self.slot(index).addr
    }

    /// The secure (TLS) port of member `index`, with [`ServerBuilder::tls`]; `None` while it is
    /// stopped.
    ///
    /// # Panics
    ///
    /// If there is no member `index`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingCluster;
    ///
    /// let cluster = TestingCluster::start(3).await?;
    /// assert_eq!(cluster.secure_addr(0), None, "no TLS configured, no secure port");
    /// cluster.close().await;
    /// # Ok(()) }
    /// ```
    pub fn secure_addr(&self, index: usize) -> Option<SocketAddr> {
        self.slot(index).member.as_ref().and_then(|m| m.secure_addr)
    }

    /// Every member's address, comma-separated: `h:p1,h:p2,h:p3`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingCluster;
    ///
    /// let cluster = TestingCluster::start(3).await?;
    /// let expected: Vec<String> = cluster.addrs().iter().map(ToString::to_string).collect();
    /// assert_eq!(cluster.connect_string(), expected.join(","));
    /// cluster.close().await;
    /// # Ok(()) }
    /// ```
    pub fn connect_string(&self) -> String {
        self.addrs().iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
    }

    /// Whether member `index` is running.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingCluster;
    ///
    /// let mut cluster = TestingCluster::start(2).await?;
    /// cluster.stop_member(1).await;
    /// assert!(cluster.is_running(0) && !cluster.is_running(1));
    /// cluster.close().await;
    /// # Ok(()) }
    /// ```
    pub fn is_running(&self, index: usize) -> bool {
        self.slot(index).member.is_some()
    }

    /// An in-memory connection to member `index`, or `None` while it is stopped.
    ///
    /// As [`TestingServer::connect_in_memory`](super::TestingServer::connect_in_memory): for
    /// tests on Tokio's paused time.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingCluster;
    ///
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// let mut cluster = TestingCluster::start(2).await?;
    /// let mut stream = cluster.connect_in_memory(0).expect("running");
    /// stream.write_all(b"ruok").await?;
    /// let mut answer = String::new();
    /// stream.read_to_string(&mut answer).await?;
    /// assert_eq!(answer, "imok");
    /// cluster.stop_member(1).await;
    /// assert!(cluster.connect_in_memory(1).is_none());
    /// cluster.close().await;
    /// # Ok(()) }
    /// ```
    pub fn connect_in_memory(&self, index: usize) -> Option<DuplexStream> {
        let slot = self.slot(index);
        slot.member.as_ref().map(|m| m.connect_in_memory(&self.core.shared))
    }

    /// Stops member `index`: its port is released and its connections are closed. Sessions
    /// live on (and keep ageing) for the other members to resume, except the read-only
    /// sessions the member granted, which only it knew. A restarted member keeps its mode.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future part-way leaves the member stopped (its port released, its
    /// connections closed), never half-stopped in a way that serves requests; prefer awaiting
    /// it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingCluster;
    ///
    /// let mut cluster = TestingCluster::start(3).await?;
    /// let client = zookeeper_client::Client::connect(&cluster.addr(0).to_string()).await?;
    /// let session = client.session_id().0;
    /// cluster.stop_member(0).await;
    /// assert!(!cluster.is_running(0));
    /// assert_eq!(cluster.member_of_session(session), None);
    /// assert_eq!(cluster.sessions(), [session], "alive, for another member to resume");
    /// cluster.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn stop_member(&mut self, index: usize) {
        self.slot(index);
        let member = self.slots.get_mut(index).and_then(|s| s.member.take());
        if let Some(mut member) = member {
            member.stop(&self.core.shared).await;
        }
    }

    /// Restarts member `index` on its port (stopping it first if it runs).
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] if the port was taken meanwhile.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future part-way leaves the member stopped or restarted, never half-started;
    /// a stopped member can be restarted again.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingCluster;
    ///
    /// use zookeeper_client::{Client, SessionState};
    ///
    /// let mut cluster = TestingCluster::start(2).await?;
    /// let client = Client::connect(&cluster.addr(1).to_string()).await?;
    /// let mut state = client.state_watcher();
    /// cluster.restart_member(1).await?;
    /// while state.changed().await != SessionState::SyncConnected {}
    /// assert_eq!(cluster.member_of_session(client.session_id().0), Some(1), "back through the same port");
    /// cluster.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn restart_member(&mut self, index: usize) -> Result<(), Error> {
        self.stop_member(index).await;
        let (ctl, addr) = {
            let slot = self.slot(index);
            (Arc::clone(&slot.ctl), slot.addr)
        };
        let member = Member::bind(&self.core.shared, ctl, addr).await?;
        if let Some(slot) = self.slots.get_mut(index) {
            slot.member = Some(member);
        }
        Ok(())
    }

    /// Black-holes member `index`: it accepts connections but reads and answers nothing.
    ///
    /// Sessions keep ageing meanwhile, as with [`TestingServer::pause`](super::TestingServer::pause).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingCluster;
    ///
    /// let cluster = TestingCluster::start(3).await?;
    /// let client = zookeeper_client::Client::connect(&cluster.addr(2).to_string()).await?;
    /// cluster.pause_member(2);
    /// let request = client.check_stat("/zookeeper"); // sent now, buffered by the member
    /// cluster.resume_member(2);
    /// assert!(request.await?.is_some());
    /// cluster.close().await;
    /// # Ok(()) }
    /// ```
    pub fn pause_member(&self, index: usize) {
        self.slot(index).ctl.paused.send_replace(true);
    }

    /// Ends a pause of member `index`: buffered requests are answered in order.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingCluster;
    ///
    /// let cluster = TestingCluster::start(3).await?;
    /// let client = zookeeper_client::Client::connect(&cluster.addr(0).to_string()).await?;
    /// cluster.pause_member(0);
    /// let (first, second) = (client.check_stat("/zookeeper"), client.check_stat("/none"));
    /// cluster.resume_member(0);
    /// assert!(first.await?.is_some());
    /// assert!(second.await?.is_none());
    /// cluster.close().await;
    /// # Ok(()) }
    /// ```
    pub fn resume_member(&self, index: usize) {
        self.slot(index).ctl.paused.send_replace(false);
    }

    /// Delays every request handled by member `index` by `latency` (zero to stop).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingCluster;
    ///
    /// let cluster = TestingCluster::start(3).await?;
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    ///
    /// let client = zookeeper_client::Client::connect(&cluster.addr(1).to_string()).await?;
    /// cluster.set_latency(1, Duration::from_millis(20));
    /// let sent = Instant::now();
    /// client.check_stat("/zookeeper").await?;
    /// assert!(sent.elapsed() >= Duration::from_millis(20));
    /// cluster.set_latency(1, Duration::ZERO);
    /// cluster.close().await;
    /// # Ok(()) }
    /// ```
    pub fn set_latency(&self, index: usize, latency: Duration) {
        *self.slot(index).ctl.latency.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = latency;
    }

    /// Switches member `index` into or out of read-only mode, as a ZooKeeper server
    /// (`readonlymode.enabled=true`) that loses or regains its quorum. Returns whether the mode
    /// changed.
    ///
    /// ZooKeeper restarts a server to change its mode, so the member's connections are closed
    /// either way; their sessions live on, for the other members or the member itself to
    /// resume. While read-only the member refuses clients that do not accept read-only servers
    /// and read/write sessions (it closes the connection without an answer), grants new
    /// sessions as read-only ones that only it knows, answers every write with NotReadOnly
    /// and `isro` with `ro` (see [`ServerBuilder::read_only`] for the details). Leaving
    /// read-only mode forgets those read-only sessions. The tree stays the one shared tree:
    /// a read-only member sees what the others write.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), corral_server::Error> {
    /// use corral_server::testing::TestingCluster;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// async fn isro(addr: std::net::SocketAddr) -> String {
    ///     let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    ///     socket.write_all(b"isro").await.expect("write");
    ///     let mut answer = String::new();
    ///     socket.read_to_string(&mut answer).await.expect("read");
    ///     answer
    /// }
    ///
    /// let cluster = TestingCluster::start(3).await?;
    /// assert!(cluster.set_read_only(0, true));
    /// assert!(cluster.is_read_only(0));
    /// assert_eq!(isro(cluster.addr(0)).await, "ro");
    /// assert_eq!(isro(cluster.addr(1)).await, "rw");
    /// cluster.set_read_only(0, false); // the quorum is back
    /// assert_eq!(isro(cluster.addr(0)).await, "rw");
    /// cluster.close().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_read_only(&self, index: usize, read_only: bool) -> bool {
        self.core.set_read_only(&self.slot(index).ctl, read_only)
    }

    /// Whether member `index` is read-only.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingCluster;
    ///
    /// let cluster = TestingCluster::start(3).await?;
    /// cluster.set_read_only(2, true);
    /// assert_eq!((0..3).map(|i| cluster.is_read_only(i)).collect::<Vec<_>>(), [false, false, true]);
    /// cluster.close().await;
    /// # Ok(()) }
    /// ```
    pub fn is_read_only(&self, index: usize) -> bool {
        self.slot(index).ctl.is_read_only()
    }

    /// The member a session is connected through, if it is connected.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingCluster;
    ///
    /// let cluster = TestingCluster::start(3).await?;
    /// let client = zookeeper_client::Client::connect(&cluster.addr(2).to_string()).await?;
    /// let session = client.session_id().0;
    /// assert_eq!(cluster.member_of_session(session), Some(2));
    /// assert!(cluster.drop_connection(session));
    /// assert_eq!(cluster.member_of_session(session), None);
    /// cluster.close().await;
    /// # Ok(()) }
    /// ```
    pub fn member_of_session(&self, session: i64) -> Option<usize> {
        self.core.member_of_session(session)
    }

    /// The ids of every live session, sorted.
    ///
    /// One session tracker serves every member: a session is listed whichever member it came
    /// through.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingCluster;
    ///
    /// let cluster = TestingCluster::start(3).await?;
    /// use zookeeper_client::Client;
    ///
    /// let a = Client::connect(&cluster.addr(0).to_string()).await?;
    /// let b = Client::connect(&cluster.addr(1).to_string()).await?;
    /// let mut both = vec![a.session_id().0, b.session_id().0];
    /// both.sort();
    /// assert_eq!(cluster.sessions(), both);
    /// cluster.close().await;
    /// # Ok(()) }
    /// ```
    pub fn sessions(&self) -> Vec<i64> {
        self.core.session_ids()
    }

    /// Expires a session now, as its timeout would: its ephemerals go (watches fire) and its
    /// connection is closed. Returns `false` if it is unknown.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingCluster;
    ///
    /// let cluster = TestingCluster::start(3).await?;
    /// use zookeeper_client::{Acls, Client, CreateMode};
    ///
    /// let owner = Client::connect(&cluster.addr(0).to_string()).await?;
    /// let observer = Client::connect(&cluster.addr(1).to_string()).await?;
    /// owner.create("/leader", b"me", &CreateMode::Ephemeral.with_acls(Acls::anyone_all())).await?;
    /// assert!(cluster.expire_session(owner.session_id().0));
    /// assert!(observer.check_stat("/leader").await?.is_none(), "gone through every member");
    /// assert!(!cluster.expire_session(owner.session_id().0), "unknown now");
    /// cluster.close().await;
    /// # Ok(()) }
    /// ```
    pub fn expire_session(&self, session: i64) -> bool {
        self.core.expire_session(session)
    }

    /// Closes a session's connection; the session lives on. Returns `false` if the session is
    /// unknown or not connected.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingCluster;
    ///
    /// let cluster = TestingCluster::start(3).await?;
    /// use zookeeper_client::{Client, SessionState};
    ///
    /// let client = Client::connect(&cluster.connect_string()).await?;
    /// let session = client.session_id().0;
    /// let mut state = client.state_watcher();
    /// assert!(cluster.drop_connection(session));
    /// assert_eq!(state.changed().await, SessionState::Disconnected);
    /// assert_eq!(state.changed().await, SessionState::SyncConnected);
    /// assert_eq!(client.session_id().0, session, "resumed, through whichever member");
    /// cluster.close().await;
    /// # Ok(()) }
    /// ```
    pub fn drop_connection(&self, session: i64) -> bool {
        self.core.drop_connection(session)
    }

    /// Deletes, now, the containers and TTL nodes that are due. Returns how many.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingCluster;
    ///
    /// let cluster = TestingCluster::start(3).await?;
    /// use zookeeper_client::{Acls, Client, CreateMode};
    ///
    /// let client = Client::connect(&cluster.addr(0).to_string()).await?;
    /// client.create("/jobs", b"", &CreateMode::Container.with_acls(Acls::anyone_all())).await?;
    /// client.create("/jobs/j1", b"", &CreateMode::Persistent.with_acls(Acls::anyone_all())).await?;
    /// client.delete("/jobs/j1", None).await?;
    /// assert_eq!(cluster.sweep_now(), 1); // the emptied container
    /// assert!(client.check_stat("/jobs").await?.is_none());
    /// cluster.close().await;
    /// # Ok(()) }
    /// ```
    pub fn sweep_now(&self) -> usize {
        self.core.sweep_now()
    }

    /// Stops every member, waiting for the connections to close.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops every member at once instead of waiting for their
    /// connections.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingCluster;
    ///
    /// let cluster = TestingCluster::start(3).await?;
    /// let addrs = cluster.addrs();
    /// cluster.close().await;
    /// for addr in addrs {
    ///     assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the port is released");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn close(mut self) {
        for index in 0..self.slots.len() {
            self.stop_member(index).await;
        }
    }
}
