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
    pub async fn start(members: usize) -> Result<Self, Error> {
        Self::with_builder(members, ServerBuilder::default()).await
    }

    /// Starts `members` listeners with the settings of `builder` (its port is ignored: each
    /// member gets a free one).
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] if a port cannot be bound.
    pub async fn with_builder(members: usize, builder: ServerBuilder) -> Result<Self, Error> {
        let config = builder.into_config();
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
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the cluster has no member.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Every member's address, in member order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.slots.iter().map(|s| s.addr).collect()
    }

    /// The address of member `index`.
    pub fn addr(&self, index: usize) -> SocketAddr {
        self.slot(index).addr
    }

    /// The secure (TLS) port of member `index`, with [`ServerBuilder::tls`]; `None` while it is
    /// stopped.
    ///
    /// # Panics
    ///
    /// If there is no member `index`.
    pub fn secure_addr(&self, index: usize) -> Option<SocketAddr> {
        self.slot(index).member.as_ref().and_then(|m| m.secure_addr)
    }

    /// Every member's address, comma-separated: `h:p1,h:p2,h:p3`.
    pub fn connect_string(&self) -> String {
        self.addrs().iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
    }

    /// Whether member `index` is running.
    pub fn is_running(&self, index: usize) -> bool {
        self.slot(index).member.is_some()
    }

    /// An in-memory connection to member `index`, or `None` while it is stopped.
    pub fn connect_in_memory(&self, index: usize) -> Option<DuplexStream> {
        let slot = self.slot(index);
        slot.member.as_ref().map(|m| m.connect_in_memory(&self.core.shared))
    }

    /// Stops member `index`: its port is released and its connections are closed. Sessions
    /// live on (and keep ageing) for the other members to resume, except the read-only
    /// sessions the member granted, which only it knew. A restarted member keeps its mode.
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
    pub fn pause_member(&self, index: usize) {
        self.slot(index).ctl.paused.send_replace(true);
    }

    /// Ends a pause of member `index`.
    pub fn resume_member(&self, index: usize) {
        self.slot(index).ctl.paused.send_replace(false);
    }

    /// Delays every request handled by member `index` by `latency`.
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
    pub fn is_read_only(&self, index: usize) -> bool {
        self.slot(index).ctl.is_read_only()
    }

    /// The member a session is connected through, if it is connected.
    pub fn member_of_session(&self, session: i64) -> Option<usize> {
        self.core.member_of_session(session)
    }

    /// The ids of every live session, sorted.
    pub fn sessions(&self) -> Vec<i64> {
        self.core.session_ids()
    }

    /// Expires a session now. Returns `false` if it is unknown.
    pub fn expire_session(&self, session: i64) -> bool {
        self.core.expire_session(session)
    }

    /// Closes a session's connection; the session lives on. Returns `false` if the session is
    /// unknown or not connected.
    pub fn drop_connection(&self, session: i64) -> bool {
        self.core.drop_connection(session)
    }

    /// Deletes, now, the containers and TTL nodes that are due. Returns how many.
    pub fn sweep_now(&self) -> usize {
        self.core.sweep_now()
    }

    /// Stops every member, waiting for the connections to close.
    pub async fn close(mut self) {
        for index in 0..self.slots.len() {
            self.stop_member(index).await;
        }
    }
}
