//! The in-process server: [`ServerBuilder`], [`Server`], and the pieces the test kit shares
//! with it (the shared core with its background tasks, and listeners).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::DuplexStream;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use crate::config::{Clock, Config};
use crate::conn::{self, MemberCtl};
use crate::state::Shared;

/// The in-memory transport's buffer, per direction.
const DUPLEX_BUFFER: usize = 256 * 1024;
/// How long a stopping listener waits for its connections to finish closing.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The TLS settings could not be built ([`crate::ServerTlsBuilder::build`]).
    #[error("TLS: {0}")]
    Tls(String),
    /// The SASL settings could not be read ([`crate::SaslUsers`]).
    #[error("SASL: {0}")]
    Sasl(String),
    /// A configuration value could not be used ([`ServerBuilder::zoo_cfg`]).
    #[error("configuration: {0}")]
    Config(String),
    /// The data directory could not be opened or restored ([`ServerBuilder::data_dir`]): an
    /// I/O error, a corrupt snapshot, a log that cannot be replayed. The server does not start
    /// rather than start without what the directory holds.
    #[error("data directory: {}: {message}", path.display())]
    DataDir {
        /// The file (or directory) at fault.
        path: std::path::PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

/// Configures and starts a [`Server`]. Made by [`Server::builder`].
///
/// Every setting has ZooKeeper's default unless noted: tick 2000 ms (the sample `zoo.cfg`),
/// session timeouts clamped to `[2, 20] × tick`, extended types (TTL nodes) **on**, container
/// sweeps every 60 s, four-letter words **all enabled**, frames up to 1 MiB − 1, and the
/// listener on `127.0.0.1` with a port chosen by the system.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), corral_server::Error> {
/// use std::time::Duration;
///
/// let server = corral_server::Server::builder()
///     .tick_time(Duration::from_millis(100))
///     .max_session_timeout(Duration::from_secs(10))
///     .start()
///     .await?;
/// assert!(server.connect_string().starts_with("127.0.0.1:"));
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ServerBuilder {
    config: Config,
}

impl ServerBuilder {
    /// The tick: the width of the session expiry buckets and the unit of the default timeout
    /// bounds. Default 2000 ms.
    pub fn tick_time(mut self, tick: Duration) -> Self {
        self.config.tick = tick;
        self
    }

    /// The smallest session timeout granted. Default 2 × tick.
    pub fn min_session_timeout(mut self, timeout: Duration) -> Self {
        self.config.min_session_timeout = Some(timeout);
        self
    }

    /// The largest session timeout granted. Default 20 × tick.
    pub fn max_session_timeout(mut self, timeout: Duration) -> Self {
        self.config.max_session_timeout = Some(timeout);
        self
    }

    /// The port to listen on; 0 (the default) lets the system choose.
    pub fn port(mut self, port: u16) -> Self {
        self.config.port = port;
        self
    }

    /// The address to listen on. Default `127.0.0.1`.
    pub fn host(mut self, host: IpAddr) -> Self {
        self.config.host = host;
        self
    }

    /// The server id in the top byte of session ids. Default 1, as a standalone ZooKeeper.
    pub fn server_id(mut self, id: u8) -> Self {
        self.config.server_id = id;
        self
    }

    /// Whether TTL nodes are allowed (`zookeeper.extendedTypesEnabled`). Default true; when
    /// false, TTL creates answer Unimplemented.
    pub fn extended_types(mut self, enabled: bool) -> Self {
        self.config.extended_types = enabled;
        self
    }

    /// Whether reconfig is enabled. Default false (reconfig answers ReconfigDisabled); when
    /// true it answers Unimplemented, as a standalone ZooKeeper does.
    pub fn reconfig_enabled(mut self, enabled: bool) -> Self {
        self.config.reconfig_enabled = enabled;
        self
    }

    /// Whether persistent watches are served (ZooKeeper ≥ 3.6). Default true.
    ///
    /// When false the server answers like ZooKeeper 3.5, which has no persistent watches, so
    /// that clients' fallbacks can be tested: `addWatch` (opcode 106) and `setWatches2` (105)
    /// are unknown opcodes, answered Unimplemented (−6) with zxid −1 and then the connection is
    /// closed (3.5's `UnimplementedRequestProcessor`; the session stays); `checkWatches` and
    /// `removeWatches` with the persistent watcher types (4, 5) are answered MarshallingError
    /// (−5), as 3.5's `WatcherType.fromInt` fails on them. Everything else, one-shot watches
    /// and `setWatches` (101) included, is served as usual. `zoo.cfg` has no such key.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::{Server, testing::TestingServer};
    ///
    /// // A server that answers as ZooKeeper 3.5 does.
    /// let server = TestingServer::with_builder(Server::builder().persistent_watches(false)).await?;
    /// let client = zookeeper_client::Client::connect(&server.connect_string()).await?;
    /// let refused = client.watch("/", zookeeper_client::AddWatchMode::Persistent).await;
    /// assert!(matches!(refused, Err(zookeeper_client::Error::Unimplemented)));
    /// server.close().await;
    /// # Ok(()) }
    /// ```
    pub fn persistent_watches(mut self, enabled: bool) -> Self {
        self.config.persistent_watches = enabled;
        self
    }

    /// How often empty containers and expired TTL nodes are deleted. Default 60 s.
    pub fn container_check_interval(mut self, interval: Duration) -> Self {
        self.config.container_check_interval = interval;
        self
    }

    /// After how long a container that never had a child is deleted; zero never. Default
    /// 5 minutes.
    pub fn container_max_never_used(mut self, interval: Duration) -> Self {
        self.config.container_max_never_used = interval;
        self
    }

    /// The super digest (`super:<base64 sha1>`, see [`crate::digest`]): a connection that
    /// authenticates with the matching `digest` credentials passes every ACL check.
    pub fn super_digest(mut self, digest: impl Into<String>) -> Self {
        self.config.super_digest = Some(digest.into());
        self
    }

    /// Restricts the four-letter words answered (`*` allows all). Default: all.
    pub fn four_letter_words<I, W>(mut self, words: I) -> Self
    where
        I: IntoIterator<Item = W>,
        W: Into<String>,
    {
        self.config.four_letter_words = Some(words.into_iter().map(Into::into).collect());
        self
    }

    /// The largest frame accepted (`jute.maxbuffer`). Default 1 MiB − 1.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.config.max_frame = bytes;
        self
    }

    /// How long a new connection may take to send its ConnectRequest. Default 10 s.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// The wall clock for ctime, mtime and TTLs. Default [`Clock::system`].
    pub fn clock(mut self, clock: Clock) -> Self {
        self.config.clock = clock;
        self
    }

    /// Whether the server starts read-only, as a ZooKeeper server that has lost its quorum
    /// (with `readonlymode.enabled=true`). Default false.
    ///
    /// A read-only server closes the connection of a client that does not accept read-only
    /// servers (a ConnectRequest with `readOnly` false or missing) and of one resuming a
    /// read/write session; it grants new sessions as read-only ones (`readOnly` true in the
    /// ConnectResponse), which no other server knows; it answers every write — create in all
    /// its forms, delete, setData, setACL, reconfig, multi, check and sync — with NotReadOnly
    /// (−119); reads, watches and closeSession work. `isro` answers `ro`, and `srvr`, `stat`
    /// and `mntr` report the mode `read-only`. In a [`crate::testing::TestingCluster`] every
    /// member starts so; [`crate::testing::TestingCluster::set_read_only`] switches one.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), corral_server::Error> {
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// let server = corral_server::Server::builder().read_only(true).start().await?;
    /// let mut socket = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
    /// socket.write_all(b"isro").await.expect("write");
    /// let mut answer = String::new();
    /// socket.read_to_string(&mut answer).await.expect("read");
    /// assert_eq!(answer, "ro");
    /// server.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.config.read_only = read_only;
        self
    }

    /// Opens a secure client port with these TLS settings beside the plain port (ZooKeeper's
    /// `secureClientPort`): the same protocol and four-letter words inside TLS. A client
    /// certificate, when the settings ask for one, gives its connection the id
    /// `x509:<subject DN>` (RFC 2253, as ZooKeeper's `X509AuthenticationProvider`), usable in
    /// ACLs.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), corral_server::Error> {
    /// use corral_server::{Server, ServerTls};
    ///
    /// let tls = ServerTls::builder_from_files("/etc/zk/server.pem", "/etc/zk/server.key").build()?;
    /// let server = Server::builder().tls(tls).start().await?;
    /// println!("plain {}, TLS {:?}", server.addr(), server.secure_addr());
    /// # Ok(()) }
    /// ```
    pub fn tls(mut self, tls: crate::ServerTls) -> Self {
        self.config.tls = Some(tls);
        self
    }

    /// The secure client port (with [`ServerBuilder::tls`]); 0, the default, lets the system
    /// choose.
    pub fn secure_port(mut self, port: u16) -> Self {
        self.config.secure_port = port;
        self
    }

    /// Accepts SASL DIGEST-MD5 logins of these users (see [`crate::SaslUsers`]); a successful
    /// login gives the connection the id `sasl:<user>`, usable in ACLs.
    pub fn sasl_users(mut self, users: crate::SaslUsers) -> Self {
        self.config.sasl = Some(Arc::new(users));
        self
    }

    /// Keeps the tree and the sessions in `dir` (ZooKeeper's `dataDir`), made if missing:
    /// every transaction is appended to a log there and fsynced before its reply, snapshots
    /// are taken every [`snap_count`](Self::snap_count) transactions, and a server started on
    /// the directory again restores the tree, the zxid and the sessions (each with its whole
    /// timeout afresh, as ZooKeeper does). The files are ZooKeeper's own (`version-2/log.*`,
    /// `version-2/snapshot.*`), readable by its `zkTxnLogToolkit.sh` and
    /// `zkSnapShotToolkit.sh`, plus `corral.secret`, from which session passwords derive, and
    /// `corral.lock`, which a running server holds locked: a second server started on the same
    /// directory fails with [`Error::DataDir`] instead of corrupting it.
    ///
    /// Without it (the default) everything stays in memory.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::Server;
    /// use zookeeper_client::{Acls, Client, CreateMode};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let server = Server::builder().data_dir(dir.path()).start().await?;
    /// let client = Client::connect(&server.connect_string()).await?;
    /// client.create("/kept", b"on disk", &CreateMode::Persistent.with_acls(Acls::anyone_all())).await?;
    /// drop(client);
    /// server.shutdown().await;
    ///
    /// let server = Server::builder().data_dir(dir.path()).start().await?;
    /// let client = Client::connect(&server.connect_string()).await?;
    /// assert_eq!(client.get_data("/kept").await?.0, b"on disk");
    /// server.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub fn data_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.config.data_dir = Some(dir.into());
        self
    }

    /// Whether the transaction log is fsynced before replies (`forceSync`). Default true.
    ///
    /// **Unsafe for data when false**: replies no longer wait for the disk, so a crash of the
    /// machine (power, kernel) can lose writes clients were told succeeded. A crash of the
    /// server process alone loses nothing the kernel has already taken. Meant for CI runs
    /// that want a data directory's behaviour at memory speed.
    pub fn force_sync(mut self, force: bool) -> Self {
        self.config.force_sync = force;
        self
    }

    /// How many transactions go between two snapshots (`snapCount`). Default 100,000. Each
    /// snapshot starts a new log file; a restart replays the log written since the last one.
    pub fn snap_count(mut self, count: u64) -> Self {
        self.config.snap_count = count.max(1);
        self
    }

    /// How many snapshots (and the logs they need) are kept when older ones are purged after
    /// each snapshot (`autopurge.snapRetainCount`). Default 3, and never fewer.
    pub fn snap_retain_count(mut self, count: usize) -> Self {
        self.config.snap_retain_count = count.max(3);
        self
    }

    /// Binds the listener and starts serving.
    ///
    /// The server accepts connections as soon as this returns. With a
    /// [data directory](Self::data_dir), what it holds is restored first.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] if the address cannot be bound; [`Error::DataDir`] if the data
    /// directory cannot be opened or restored (the error names the file).
    pub async fn start(self) -> Result<Server, Error> {
        let addr = SocketAddr::new(self.config.host, self.config.port);
        let read_only = self.config.read_only;
        let core = Core::open(self.config).await?;
        let member = Member::bind(&core.shared, Arc::new(MemberCtl::new(0, read_only)), addr).await?;
        tracing::info!(addr = %member.addr, "corral server listening");
        Ok(Server { core, member })
    }

    pub(crate) fn into_config(self) -> Config {
        self.config
    }
}

/// A running embedded ZooKeeper-compatible server.
///
/// Dropping it stops every task at once; [`Server::shutdown`] does the same but waits for the
/// connections to close and the port to be released.
#[derive(Debug)]
pub struct Server {
    core: Core,
    member: Member,
}

impl Server {
    /// A builder with the default settings.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// Starts a server with the default settings on `127.0.0.1` and a free port.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] if no port can be bound.
    pub async fn start() -> Result<Server, Error> {
        Self::builder().start().await
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.member.addr
    }

    /// The connect string for a client: `host:port`.
    pub fn connect_string(&self) -> String {
        self.member.addr.to_string()
    }

    /// The address of the secure (TLS) client port, if [`ServerBuilder::tls`] opened one.
    pub fn secure_addr(&self) -> Option<SocketAddr> {
        self.member.secure_addr
    }

    /// A connection over an in-memory transport, served exactly like a TCP one.
    ///
    /// Tests that pause Tokio's clock should use it: with nothing but in-memory I/O, paused
    /// time advances only when every task waits on a timer.
    pub fn connect_in_memory(&self) -> DuplexStream {
        self.member.connect_in_memory(&self.core.shared)
    }

    /// Deletes, now, the containers and TTL nodes that are due (as the periodic sweep would).
    /// Returns how many were deleted.
    pub fn sweep_now(&self) -> usize {
        self.core.sweep_now()
    }

    /// Stops listening, closes every connection and stops the background tasks.
    ///
    /// # Cancel safety
    ///
    /// Dropping this future stops everything at once instead of waiting for it.
    pub async fn shutdown(mut self) {
        self.member.stop(&self.core.shared).await;
        self.core.close().await;
        tracing::info!("corral server stopped");
    }
}

/// The state shared by every listener, and the tasks that expire sessions and sweep
/// containers. The tasks stop when it is dropped.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    /// The transaction log writer, with a data directory.
    writer: Option<JoinHandle<()>>,
}

impl Drop for Core {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
        if let Some(writer) = &self.writer {
            writer.abort();
        }
    }
}

impl Core {
    pub(crate) fn start(config: Config) -> Self {
        let shared = Arc::new(Shared::new(config));
        let tasks = vec![tokio::spawn(expirer(Arc::clone(&shared))), tokio::spawn(sweeper(Arc::clone(&shared)))];
        Self { shared, tasks, writer: None }
    }

    /// [`Core::start`], restoring the data directory first if the configuration has one.
    pub(crate) async fn open(config: Config) -> Result<Self, Error> {
        let Some(settings) = config.persistence() else {
            return Ok(Self::start(config));
        };
        let restored = {
            let (settings, dir) = (settings.clone(), settings.dir.clone());
            tokio::task::spawn_blocking(move || crate::persist::open(&settings))
                .await
                .map_err(|e| Error::DataDir { path: dir, message: e.to_string() })??
        };
        let lock = restored
            .lock
            .try_clone()
            .map_err(|e| Error::DataDir { path: settings.dir.clone(), message: e.to_string() })?;
        let durability = crate::persist::durability(&settings, restored.zxid, restored.replayed, lock);
        let shared = Arc::new(Shared::restored(config, restored, durability.journal, durability.durable));
        let writer = tokio::spawn(durability.writer.run());
        let tasks = vec![
            tokio::spawn(expirer(Arc::clone(&shared))),
            tokio::spawn(sweeper(Arc::clone(&shared))),
            tokio::spawn(durability.snapshotter.run(Arc::clone(&shared))),
        ];
        Ok(Self { shared, tasks, writer: Some(writer) })
    }

    /// Stops the background tasks and, with a data directory, waits until everything logged
    /// is on disk.
    pub(crate) async fn close(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
        // Dropping the journal ends the writer once it has written what was queued.
        drop(self.shared.lock().journal.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.await;
        }
    }

    pub(crate) fn sweep_now(&self) -> usize {
        let wall = self.shared.wall_ms();
        self.shared.lock().sweep(wall, &self.shared.config)
    }

    pub(crate) fn handshake_times(&self, clear: bool) -> Vec<tokio::time::Instant> {
        let mut state = self.shared.lock();
        let times = state.handshakes.iter().copied().collect();
        if clear {
            state.handshakes.clear();
        }
        times
    }

    pub(crate) fn session_ids(&self) -> Vec<i64> {
        self.shared.lock().sessions.ids()
    }

    pub(crate) fn expire_session(&self, id: i64) -> bool {
        let wall = self.shared.wall_ms();
        let mut state = self.shared.lock();
        if !state.sessions.set_closing(id) {
            return false;
        }
        tracing::info!(session = format_args!("{id:#x}"), "session expired by the test kit");
        state.end_session(id, wall, &self.shared.config, true);
        true
    }

    pub(crate) fn drop_connection(&self, session: i64) -> bool {
        let mut state = self.shared.lock();
        match state.sessions.get(session).and_then(|s| s.conn) {
            Some(conn) => {
                tracing::info!(session = format_args!("{session:#x}"), "connection dropped by the test kit");
                state.close_conn(conn);
                true
            }
            None => false,
        }
    }

    /// Stops or restarts session expiry (a whole stopped server does not expire sessions; on
    /// restart every session gets a fresh timeout, as ZooKeeper does when it reloads them).
    pub(crate) fn set_expiry(&self, enabled: bool) {
        let now = self.shared.now_ms();
        let mut state = self.shared.lock();
        if enabled && !state.expiry_enabled {
            state.sessions.touch_all(now);
        }
        state.expiry_enabled = enabled;
        drop(state);
        self.shared.expirer_wake.notify_one();
    }

    /// Switches a member into or out of read-only mode. Returns whether the mode changed.
    ///
    /// ZooKeeper restarts a server to change its mode, so the member's connections are closed
    /// (their sessions live on), and leaving read-only mode forgets the read-only sessions the
    /// member granted. The switch happens under the state lock, so every request is handled
    /// wholly in one mode.
    pub(crate) fn set_read_only(&self, ctl: &MemberCtl, read_only: bool) -> bool {
        let mut state = self.shared.lock();
        if ctl.read_only.swap(read_only, std::sync::atomic::Ordering::Relaxed) == read_only {
            return false;
        }
        tracing::info!(member = ctl.index, read_only, "member switches mode; closing its connections");
        state.close_member_conns(ctl.index);
        if !read_only {
            let dropped = state.drop_local_sessions(ctl.index);
            tracing::debug!(member = ctl.index, dropped, "read-only sessions forgotten");
        }
        true
    }

    /// The listener index a session's connection belongs to.
    pub(crate) fn member_of_session(&self, session: i64) -> Option<usize> {
        let state = self.shared.lock();
        let conn = state.sessions.get(session)?.conn?;
        state.conns.get(&conn).map(|c| c.member)
    }
}

/// One session timer for the whole server: sleeps to the earliest bucket boundary and
/// expires that bucket.
async fn expirer(shared: Arc<Shared>) {
    loop {
        let next = {
            let state = shared.lock();
            if state.expiry_enabled { state.sessions.next_expiration() } else { None }
        };
        match next {
            None => shared.expirer_wake.notified().await,
            Some(at) => {
                let deadline = shared.start + Duration::from_millis(at);
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {
                        shared.expire_due();
                    }
                    () = shared.expirer_wake.notified() => {}
                }
            }
        }
    }
}

/// Deletes due containers and TTL nodes every `container_check_interval`.
async fn sweeper(shared: Arc<Shared>) {
    let interval = shared.config.container_check_interval.max(Duration::from_millis(1));
    loop {
        tokio::time::sleep(interval).await;
        let wall = shared.wall_ms();
        shared.lock().sweep(wall, &shared.config);
    }
}

/// One listener: an accept loop, its connections, and its fault controls.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) ctl: Arc<MemberCtl>,
    pub(crate) addr: SocketAddr,
    /// The secure (TLS) port's address, when the server has TLS settings.
    pub(crate) secure_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    accept: Option<JoinHandle<()>>,
    conns: Arc<Mutex<JoinSet<()>>>,
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(accept) = &self.accept {
            accept.abort();
        }
    }
}

fn spawn_conn(conns: &Mutex<JoinSet<()>>, task: impl Future<Output = ()> + Send + 'static) {
    let mut set = conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    while set.try_join_next().is_some() {}
    set.spawn(task);
}

/// How many connections may wait to be accepted. A whole fleet reconnecting at once (after a
/// mass expiry) overflows a short queue, and the kernel drops the attempts, which come back only
/// on TCP's retransmission schedule (1 s, then 3 s): 5,000 frameworks expired together overflowed
/// 1,024 about 4,800 times per run, in waves a second apart. Linux caps this at
/// `net.core.somaxconn` (4,096 by default since 5.4).
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

impl Member {
    pub(crate) async fn bind(shared: &Arc<Shared>, ctl: Arc<MemberCtl>, addr: SocketAddr) -> Result<Member, Error> {
        Self::bind_ports(shared, ctl, addr, shared.config.secure_port).await
    }

    /// [`Member::bind`], with the secure port (when the server has TLS settings) given: a
    /// restarted member takes the secure port it had.
    pub(crate) async fn bind_ports(
        shared: &Arc<Shared>,
        ctl: Arc<MemberCtl>,
        addr: SocketAddr,
        secure_port: u16,
    ) -> Result<Member, Error> {
        let listener = listen(addr).map_err(|source| Error::Bind { addr, source })?;
        let local = listener.local_addr().map_err(|source| Error::Bind { addr, source })?;
        ctl.port.store(local.port(), std::sync::atomic::Ordering::Relaxed);
        let secure = match &shared.config.tls {
            None => None,
            Some(tls) => {
                let addr = SocketAddr::new(addr.ip(), secure_port);
                let listener = listen(addr).map_err(|source| Error::Bind { addr, source })?;
                let local = listener.local_addr().map_err(|source| Error::Bind { addr, source })?;
                tracing::info!(addr = %local, "secure client port (TLS) listening");
                Some((listener, tls.clone(), local))
            }
        };
        let secure_addr = secure.as_ref().map(|(_, _, addr)| *addr);
        let secure = secure.map(|(listener, tls, _)| (listener, tls));
        let (stop_tx, stop_rx) = oneshot::channel();
        let conns = Arc::new(Mutex::new(JoinSet::new()));
        let accept = tokio::spawn(accept_loop(
            listener,
            secure,
            Arc::clone(shared),
            Arc::clone(&ctl),
            Arc::clone(&conns),
            stop_rx,
        ));
        Ok(Member { ctl, addr: local, secure_addr, stop: Some(stop_tx), accept: Some(accept), conns })
    }

    pub(crate) fn connect_in_memory(&self, shared: &Arc<Shared>) -> DuplexStream {
        let (client, server) = tokio::io::duplex(DUPLEX_BUFFER);
        spawn_conn(&self.conns, conn::serve(Arc::clone(shared), Arc::clone(&self.ctl), server, None));
        client
    }

    /// Stops accepting, closes this listener's connections and waits (briefly) for them.
    pub(crate) async fn stop(&mut self, shared: &Shared) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(accept) = self.accept.take() {
            let _ = accept.await;
        }
        {
            let mut state = shared.lock();
            state.close_member_conns(self.ctl.index);
            // A stopped server's local (read-only) sessions do not survive it.
            state.drop_local_sessions(self.ctl.index);
        }
        let mut set = std::mem::take(&mut *self.conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let _ = tokio::time::timeout(STOP_GRACE, async { while set.join_next().await.is_some() {} }).await;
        set.abort_all();
    }
}

/// Accepts on the secure listener, if there is one; never completes without one.
async fn accept_secure(
    secure: Option<&(TcpListener, crate::ServerTls)>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match secure {
        Some((listener, _)) => listener.accept().await,
        None => std::future::pending().await,
    }
}

async fn accept_loop(
    listener: TcpListener,
    secure: Option<(TcpListener, crate::ServerTls)>,
    shared: Arc<Shared>,
    ctl: Arc<MemberCtl>,
    conns: Arc<Mutex<JoinSet<()>>>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    spawn_conn(&conns, conn::serve(Arc::clone(&shared), Arc::clone(&ctl), stream, Some(peer)));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            accepted = accept_secure(secure.as_ref()) => match (accepted, &secure) {
                (Ok((stream, peer)), Some((_, tls))) => {
                    let _ = stream.set_nodelay(true);
                    let (shared, ctl, tls) = (Arc::clone(&shared), Arc::clone(&ctl), tls.clone());
                    // The TLS handshake runs in the connection's task, bounded by the handshake
                    // timeout, so a slow or silent peer holds up nobody else.
                    spawn_conn(&conns, async move {
                        let limit = shared.config.handshake_timeout;
                        if let Some((stream, ids)) = tls.accept(stream, peer, limit).await {
                            conn::serve_with_ids(shared, ctl, stream, Some(peer), ids).await;
                        }
                    });
                }
                (Ok(_), None) => {}
                (Err(e), _) => {
                    tracing::warn!(error = %e, "secure accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}
