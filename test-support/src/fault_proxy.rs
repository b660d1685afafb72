//! A TCP proxy on loopback that injects network faults between one client and one server.
//!
//! Put one [`FaultProxy`] in front of each member of an ensemble and give clients the proxies'
//! addresses; then change each link's [`Fault`] while the test runs. The proxy uses plain
//! threads and blocking sockets, so it works the same under any async runtime (paused Tokio
//! time included) and keeps forwarding while the test's own runtime is busy.
//!
//! # Faults
//!
//! | fault | existing connections | new connections |
//! |---|---|---|
//! | [`Fault::Pass`] | forwarded | forwarded |
//! | [`Fault::Refuse`] | closed | accepted and closed at once |
//! | [`Fault::BlackHole`] | bytes read and discarded both ways; nobody hears of a close | accepted, read, never answered |
//! | [`Fault::CutClientToServer`] | what the client sends is discarded | forwarded, with that direction cut |
//! | [`Fault::CutServerToClient`] | what the server sends is discarded | forwarded, with that direction cut |
//! | [`Fault::Hold`] | bytes held both ways, delivered in order once the fault changes | connected, held the same way |
//!
//! A delay ([`FaultProxy::set_delay`]) holds every chunk back that long before it is written, in
//! both directions, on top of any fault. [`FaultProxy::drop_connections`] closes the current
//! connections once, without changing the fault.
//!
//! # Holding from a request
//!
//! [`FaultProxy::hold_from`] reads what clients send as ZooKeeper request frames (a 4-byte
//! big-endian length, then the frame; the first frame of a connection, the handshake, is never
//! matched) and, from the first request its trigger matches, holds that request and everything
//! clients send after it, on every connection, until [`FaultProxy::release_hold`]. Replies still
//! flow. [`FaultProxy::holding`] resolves once the hold has begun, so a test can act while a
//! request of its choice is in flight: drop the future that sent it, cut the connection
//! ([`Fault::Refuse`] discards what is held), then let it through.
//!
//! Discarding bytes breaks the framing of the stream they belong to, so a connection that lost
//! bytes is closed when the proxy goes back to [`Fault::Pass`] — as TCP would give up on a
//! connection across a long partition. A close on a side whose bytes are being discarded is not
//! passed on to the other side (a partitioned peer hears nothing, not even a FIN).

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

/// How long the proxy waits to connect to its target.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const BUFFER: usize = 64 * 1024;
/// How often a held chunk looks whether the hold is over.
const HOLD_POLL: Duration = Duration::from_millis(2);
/// The most a client's first message may take before it is passed on unrewritten.
const FIRST_MESSAGE_LIMIT: usize = 64 * 1024;
/// The most of a request frame kept back while a hold trigger decides on it (its path is cut
/// there).
const REQUEST_HEAD_LIMIT: usize = 64 * 1024;

/// The fault a [`FaultProxy`] applies (see the module docs for what each does).
///
/// # Examples
///
/// ```
/// use corral_test_support::{Fault, FaultProxy};
///
/// # let server = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let proxy = FaultProxy::start(server.local_addr()?)?;
/// assert_eq!(proxy.fault(), Fault::Pass);
/// proxy.set(Fault::BlackHole); // the server vanishes without a word
/// proxy.set(Fault::Pass); // back; connections that lost bytes are closed
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    Pass,
    /// Close every connection and refuse new ones (accept and close at once).
    Refuse,
    /// Accept and read, answer nothing, forward nothing.
    BlackHole,
    /// Discard what the client sends; the server's bytes still reach the client.
    CutClientToServer,
    /// Discard what the server sends; the client's bytes still reach the server.
    CutServerToClient,
    /// Hold every byte, both ways, and deliver what was held, in order, once the fault changes:
    /// a partition that heals before TCP gives up. Nobody hears of a close meanwhile.
    Hold,
}

impl Fault {
    /// Whether bytes going in `direction` are discarded under this fault.
    fn discards(self, direction: Direction) -> bool {
        match self {
            Self::Pass | Self::Refuse | Self::Hold => false,
            Self::BlackHole => true,
            Self::CutClientToServer => direction == Direction::Up,
            Self::CutServerToClient => direction == Direction::Down,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
}

/// A TCP proxy on `127.0.0.1` in front of one server, with a fault that can change at any time.
///
/// Dropping it closes the listener and every connection through it.
///
/// # Examples
///
/// In front of an embedded server, give clients [`FaultProxy::addr`] instead of the server's
/// address. Here the server is a stand-in that greets every connection:
///
/// ```
/// use std::io::{Read, Write};
/// use std::net::{TcpListener, TcpStream};
///
/// use corral_test_support::{Fault, FaultProxy};
///
/// let server = TcpListener::bind("127.0.0.1:0")?;
/// let target = server.local_addr()?;
/// std::thread::spawn(move || {
///     for mut connection in server.incoming().flatten() {
///         let _ = connection.write_all(b"hi");
///     }
/// });
///
/// let proxy = FaultProxy::start(target)?;
/// let mut greeting = [0; 2];
/// TcpStream::connect(proxy.addr())?.read_exact(&mut greeting)?;
/// assert_eq!(&greeting, b"hi");
///
/// proxy.set(Fault::Refuse); // the server is gone: connections are closed at once
/// assert_eq!(TcpStream::connect(proxy.addr())?.read(&mut greeting)?, 0);
/// proxy.set(Fault::Pass);
/// TcpStream::connect(proxy.addr())?.read_exact(&mut greeting)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    stopped: AtomicBool,
    accepted: AtomicU64,
}

#[derive(Debug)]
struct State {
    fault: Fault,
    delay: Duration,
    next_id: u64,
    connections: HashMap<u64, Connection>,
    first_message: Option<FirstMessage>,
    /// What starts a hold (see [`FaultProxy::hold_from`]); taken when it matches.
    trigger: Option<HoldTrigger>,
    /// Whether what clients send is held, from the request the trigger matched on.
    holding: bool,
    /// The [`FaultProxy::holding`] futures waiting for the hold to begin.
    hold_waiters: Vec<Waker>,
}

impl State {
    /// A proxy's state when it starts: [`Fault::Pass`], no delay, no connection, nothing held.
    fn new() -> Self {
        Self {
            fault: Fault::Pass,
            delay: Duration::ZERO,
            next_id: 0,
            connections: HashMap::new(),
            first_message: None,
            trigger: None,
            holding: false,
            hold_waiters: Vec::new(),
        }
    }
}

/// The trigger of [`FaultProxy::hold_from`].
struct HoldTrigger(Box<TriggerFn>);

type TriggerFn = dyn Fn(i32, &str) -> bool + Send + Sync;

impl std::fmt::Debug for HoldTrigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HoldTrigger(..)")
    }
}

/// Rewrites what a client sends first on each new connection: given the bytes so far, `None`
/// for "not a whole message yet", or the bytes to forward instead (the rest included).
#[derive(Clone)]
pub struct FirstMessage(Arc<RewriteFn>);

type RewriteFn = dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync;

impl FirstMessage {
    /// A rewrite of each connection's first message by `rewrite`.
    pub fn new(rewrite: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync + 'static) -> Self {
        Self(Arc::new(rewrite))
    }
}

impl std::fmt::Debug for FirstMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FirstMessage(..)")
    }
}

/// One proxied connection, as the control side sees it: handles to close its sockets.
#[derive(Debug)]
struct Connection {
    client: TcpStream,
    server: Option<TcpStream>,
    /// Bytes were discarded: the stream is broken and is closed on the next [`Fault::Pass`].
    tainted: Arc<AtomicBool>,
}

impl Connection {
    fn close(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        if let Some(server) = &self.server {
            let _ = server.shutdown(Shutdown::Both);
        }
    }
}

impl FaultProxy {
    /// Starts a proxy on a free port of `127.0.0.1`, forwarding to `target`, with [`Fault::Pass`].
    ///
    /// # Errors
    ///
    /// If no port could be bound.
    pub fn start(target: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new()),
            stopped: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
        });
        let accepting = shared.clone();
        let accept = thread::Builder::new()
            .name(format!("fault-proxy-{}", addr.port()))
            .spawn(move || accept_loop(&listener, target, &accepting))?;
        Ok(Self { addr, target, shared, accept: Some(accept) })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server this proxy forwards to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// The fault applied now.
    pub fn fault(&self) -> Fault {
        self.shared.lock().fault
    }

    /// Applies `fault` from now on, to existing and new connections.
    ///
    /// [`Fault::Refuse`] closes every connection at once; [`Fault::Pass`] closes the connections
    /// that lost bytes while a fault discarded them.
    pub fn set(&self, fault: Fault) {
        let mut state = self.shared.lock();
        tracing::info!(proxy = %self.addr, target = %self.target, ?fault, "fault proxy");
        state.fault = fault;
        match fault {
            Fault::Refuse => {
                for (_, connection) in state.connections.drain() {
                    connection.close();
                }
            }
            Fault::Pass => state.connections.retain(|_, connection| {
                let broken = connection.tainted.load(Ordering::SeqCst) || connection.server.is_none();
                if broken {
                    connection.close();
                }
                !broken
            }),
            Fault::BlackHole | Fault::CutClientToServer | Fault::CutServerToClient | Fault::Hold => {}
        }
    }

    /// Rewrites the first message the client sends on every connection accepted from now on
    /// (a handshake that names an address the proxy must stand in for, say); `None` for none.
    pub fn set_first_message(&self, rewrite: Option<FirstMessage>) {
        self.shared.lock().first_message = rewrite;
    }

    /// Holds every chunk back by `delay` before writing it on (both directions); zero for none.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().delay = delay;
    }

    /// Holds what clients send from the first request for which `trigger(opcode, path)` is true
    /// (`path` is empty for a request that does not start with one), on every connection, until
    /// [`FaultProxy::release_hold`]: that request and everything sent after it wait, in order.
    ///
    /// Requests already on their way are not looked at again; a trigger set while a hold is on
    /// waits for the next request after the release. Closing a connection (under
    /// [`Fault::Refuse`], or [`FaultProxy::drop_connections`]) discards what it held.
    ///
    /// # Examples
    ///
    /// A test holds a client's delete at the proxy, with `proxy.holding().await` where this
    /// example polls [`FaultProxy::is_holding`]. The server here echoes what it gets:
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::{TcpListener, TcpStream};
    /// use std::time::{Duration, Instant};
    ///
    /// use corral_test_support::FaultProxy;
    ///
    /// let server = TcpListener::bind("127.0.0.1:0")?;
    /// let target = server.local_addr()?;
    /// std::thread::spawn(move || {
    ///     for mut connection in server.incoming().flatten() {
    ///         let mut buf = [0; 256];
    ///         while let Ok(n @ 1..) = connection.read(&mut buf) {
    ///             let _ = connection.write_all(&buf[..n]);
    ///         }
    ///     }
    /// });
    /// // A request frame: its length, then xid, opcode and path.
    /// let request = |opcode: i32, path: &str| {
    ///     let (xid, path_len) = (7i32.to_be_bytes(), (path.len() as i32).to_be_bytes());
    ///     let body = [&xid[..], &opcode.to_be_bytes(), &path_len, path.as_bytes()].concat();
    ///     [&(body.len() as i32).to_be_bytes()[..], &body].concat()
    /// };
    /// const DELETE: i32 = 2;
    ///
    /// let proxy = FaultProxy::start(target)?;
    /// let mut client = TcpStream::connect(proxy.addr())?;
    /// client.write_all(&request(0, "handshake"))?; // a connection's first frame is never held
    /// proxy.hold_from(|opcode, path| opcode == DELETE && path.starts_with("/lock/"));
    /// client.write_all(&request(DELETE, "/lock/n1"))?;
    /// let deadline = Instant::now() + Duration::from_secs(10);
    /// while !proxy.is_holding() {
    ///     assert!(Instant::now() < deadline, "the delete never reached the proxy");
    ///     std::thread::sleep(Duration::from_millis(5));
    /// }
    /// proxy.release_hold(); // now it goes, followed by whatever was sent meanwhile
    /// let mut echo = vec![0; request(0, "handshake").len() + request(DELETE, "/lock/n1").len()];
    /// client.read_exact(&mut echo)?;
    /// assert!(echo.ends_with(&request(DELETE, "/lock/n1")));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn hold_from(&self, trigger: impl Fn(i32, &str) -> bool + Send + Sync + 'static) {
        self.shared.lock().trigger = Some(HoldTrigger(Box::new(trigger)));
    }

    /// Resolves once a request matched the trigger of [`FaultProxy::hold_from`] and what clients
    /// send is being held (at once if it is held now).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the future only observes the proxy.
    pub fn holding(&self) -> impl Future<Output = ()> + Send + 'static {
        Holding(self.shared.clone())
    }

    /// Whether what clients send is held now (see [`FaultProxy::hold_from`]).
    pub fn is_holding(&self) -> bool {
        self.shared.lock().holding
    }

    /// Ends the hold of [`FaultProxy::hold_from`]: what was held goes on, in order.
    pub fn release_hold(&self) {
        let mut state = self.shared.lock();
        tracing::info!(proxy = %self.addr, held = state.holding, "fault proxy: hold released");
        state.holding = false;
    }

    /// Closes every connection open now (both sides see it closed); the fault stays as it is.
    pub fn drop_connections(&self) {
        for (_, connection) in self.shared.lock().connections.drain() {
            connection.close();
        }
    }

    /// How many connections are open through the proxy now.
    pub fn open_connections(&self) -> usize {
        self.shared.lock().connections.len()
    }

    /// How many connections the proxy has accepted so far (refused ones included).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wake the accept loop up so that it sees the flag and closes the listener.
        let _ = TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        self.drop_connections();
    }
}

/// The future of [`FaultProxy::holding`].
struct Holding(Arc<Shared>);

impl Future for Holding {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.0.lock();
        if state.holding {
            return Poll::Ready(());
        }
        if !state.hold_waiters.iter().any(|w| w.will_wake(cx.waker())) {
            state.hold_waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Finds ZooKeeper request frames (a 4-byte big-endian length, then that many bytes) in what a
/// client sends, so that a hold can begin exactly at the request its trigger matches.
///
/// While no trigger waits, bytes pass at once (only frame lengths are followed); while one waits,
/// the start of each frame is kept back until its opcode and path are known.
#[derive(Debug, Default)]
struct RequestFrames {
    /// The current frame's first bytes, up to what the decision needs.
    head: Vec<u8>,
    /// Whether a trigger decides on the current frame (its head is kept back meanwhile).
    deciding: bool,
    /// Bytes of the current frame after its head still to come.
    rest: usize,
    /// Whether the handshake (the first frame, never matched) is behind.
    past_handshake: bool,
}

impl RequestFrames {
    /// Splits `input` into pieces to forward, each marked with whether it is held.
    fn feed(&mut self, mut input: &[u8], state: &mut State, out: &mut Vec<(bool, Vec<u8>)>) {
        while !input.is_empty() {
            if self.rest > 0 {
                let n = self.rest.min(input.len());
                push(out, state.holding, &input[..n]);
                self.rest -= n;
                input = &input[n..];
                continue;
            }
            if self.head.is_empty() {
                self.deciding = self.past_handshake && state.trigger.is_some() && !state.holding;
            }
            let wanted = head_wanted(&self.head, self.deciding);
            if self.head.len() < wanted {
                let n = (wanted - self.head.len()).min(input.len());
                self.head.extend_from_slice(&input[..n]);
                if !self.deciding {
                    push(out, state.holding, &input[..n]);
                }
                input = &input[n..];
                continue;
            }
            self.end_head(state, out);
        }
        // A frame whose head is complete but which has no bytes after it is decided now, not when
        // the next frame starts.
        if !self.head.is_empty() && self.head.len() >= head_wanted(&self.head, self.deciding) {
            self.end_head(state, out);
        }
    }

    /// The current frame's head is complete: decide on it and go on to its rest.
    fn end_head(&mut self, state: &mut State, out: &mut Vec<(bool, Vec<u8>)>) {
        self.rest = frame_total(&self.head).saturating_sub(self.head.len());
        self.past_handshake = true;
        if self.deciding {
            let (opcode, path) = describe_request(&self.head);
            if state.trigger.as_ref().is_some_and(|trigger| (trigger.0)(opcode, &path)) {
                tracing::info!(opcode, path, "fault proxy: holding from this request");
                state.trigger = None;
                state.holding = true;
                for waker in state.hold_waiters.drain(..) {
                    waker.wake();
                }
            }
            push(out, state.holding, &self.head);
        }
        self.head.clear();
    }
}

/// Appends `bytes` to the pieces to forward, marked `held`.
fn push(out: &mut Vec<(bool, Vec<u8>)>, held: bool, bytes: &[u8]) {
    match out.last_mut() {
        Some((last, piece)) if *last == held => piece.extend_from_slice(bytes),
        _ if bytes.is_empty() => {}
        _ => out.push((held, bytes.to_vec())),
    }
}

/// The whole frame's size, its length prefix included (0 before the prefix is known).
fn frame_total(head: &[u8]) -> usize {
    be_i32(head, 0).map_or(0, |len| 4 + len as u32 as usize)
}

/// How many bytes of a frame's start are needed: its length, and, to decide on it, its opcode
/// and path (bounded by the frame and by [`REQUEST_HEAD_LIMIT`]).
fn head_wanted(head: &[u8], deciding: bool) -> usize {
    if head.len() < 4 || !deciding {
        return 4;
    }
    // length, xid, opcode, path length, path
    let path_end = be_i32(head, 12).map_or(16, |len| 16 + usize::try_from(len).unwrap_or(0));
    path_end.min(frame_total(head)).clamp(4, REQUEST_HEAD_LIMIT)
}

/// `(opcode, path)` of a request frame's head (length prefix included); the path is empty when
/// the request does not start with a whole one.
fn describe_request(head: &[u8]) -> (i32, String) {
    let opcode = be_i32(head, 8).unwrap_or(0);
    let path = be_i32(head, 12)
        .and_then(|len| usize::try_from(len).ok())
        .and_then(|len| head.get(16..16 + len))
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    (opcode, path)
}

fn be_i32(bytes: &[u8], at: usize) -> Option<i32> {
    bytes.get(at..at + 4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves the state usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn accept_loop(listener: &TcpListener, target: SocketAddr, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let _ = client.set_nodelay(true);
        let fault = shared.lock().fault;
        match fault {
            Fault::Refuse => drop(client),
            Fault::BlackHole => {
                // Nothing goes to the server; the client is read and never answered.
                let _ = register(shared, &client, None).map(|(id, tainted)| {
                    tainted.store(true, Ordering::SeqCst);
                    let shared = shared.clone();
                    thread::spawn(move || {
                        let mut client = client;
                        let mut buf = vec![0; BUFFER];
                        while client.read(&mut buf).is_ok_and(|n| n > 0) {}
                        shared.lock().connections.remove(&id);
                    });
                });
            }
            Fault::Pass | Fault::CutClientToServer | Fault::CutServerToClient | Fault::Hold => {
                let shared = shared.clone();
                thread::spawn(move || connect_and_pump(client, target, &shared));
            }
        }
    }
}

/// Records a connection for the control side; `None` if the sockets could not be cloned, or if
/// the proxy refuses connections now (then both sides are shut down).
fn register(shared: &Shared, client: &TcpStream, server: Option<&TcpStream>) -> Option<(u64, Arc<AtomicBool>)> {
    let client = client.try_clone().ok()?;
    let server = match server {
        Some(server) => Some(server.try_clone().ok()?),
        None => None,
    };
    let tainted = Arc::new(AtomicBool::new(false));
    let connection = Connection { client, server, tainted: tainted.clone() };
    let mut state = shared.lock();
    // Accepted under another fault, but `set(Refuse)` came while the server side was being
    // connected: its sweep missed this connection, so it must not live on.
    if state.fault == Fault::Refuse {
        connection.close();
        return None;
    }
    let id = state.next_id;
    state.next_id += 1;
    state.connections.insert(id, connection);
    Some((id, tainted))
}

fn connect_and_pump(client: TcpStream, target: SocketAddr, shared: &Arc<Shared>) {
    let Ok(server) = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) else { return };
    let _ = server.set_nodelay(true);
    let Some((id, tainted)) = register(shared, &client, Some(&server)) else { return };
    let pumps = [(Direction::Up, &client, &server), (Direction::Down, &server, &client)].map(|(dir, src, dst)| {
        let (src, dst) = (src.try_clone(), dst.try_clone());
        let (shared, tainted) = (shared.clone(), tainted.clone());
        thread::spawn(move || {
            if let (Ok(src), Ok(dst)) = (src, dst) {
                pump(dir, src, dst, id, &shared, &tainted);
            }
        })
    });
    for pump in pumps {
        let _ = pump.join();
    }
    shared.lock().connections.remove(&id);
}

/// Copies `src` to `dst` under the current fault and delay; a writer thread delivers each chunk
/// when its delay is up, so a delay adds latency without cutting throughput.
fn pump(direction: Direction, mut src: TcpStream, dst: TcpStream, id: u64, shared: &Arc<Shared>, tainted: &AtomicBool) {
    let (chunks, due) = mpsc::channel::<(Instant, bool, Vec<u8>)>();
    let writer = {
        let mut dst = dst.try_clone();
        let shared = shared.clone();
        thread::spawn(move || {
            let Ok(dst) = dst.as_mut() else { return };
            for (at, held, chunk) in due {
                let wait = at.saturating_duration_since(Instant::now());
                if !wait.is_zero() {
                    thread::sleep(wait);
                }
                // Under Hold, and while a held chunk's hold lasts, the chunk waits here, in order.
                loop {
                    let (waits, open) = {
                        let state = shared.lock();
                        (state.fault == Fault::Hold || (held && state.holding), state.connections.contains_key(&id))
                    };
                    if !open {
                        return;
                    }
                    if !waits {
                        break;
                    }
                    thread::sleep(HOLD_POLL);
                }
                if dst.write_all(&chunk).is_err() {
                    return;
                }
            }
        })
    };
    let mut buf = vec![0; BUFFER];
    // The client's first message, gathered until the rewrite has a whole one.
    let mut first = match direction {
        Direction::Up => shared.lock().first_message.clone().map(|rewrite| (rewrite, Vec::new())),
        Direction::Down => None,
    };
    let mut requests = (direction == Direction::Up).then(RequestFrames::default);
    let mut pieces = Vec::new();
    loop {
        let read = src.read(&mut buf);
        let (fault, delay, open) = {
            let state = shared.lock();
            (state.fault, state.delay, state.connections.contains_key(&id))
        };
        match read {
            Ok(n) if n > 0 && open => {
                if fault.discards(direction) {
                    tainted.store(true, Ordering::SeqCst);
                    continue;
                }
                let chunk = match first.as_mut() {
                    None => buf[..n].to_vec(),
                    Some((rewrite, pending)) => {
                        pending.extend_from_slice(&buf[..n]);
                        let Some(chunk) = (rewrite.0)(pending)
                            .or_else(|| (pending.len() >= FIRST_MESSAGE_LIMIT).then(|| pending.clone()))
                        else {
                            continue;
                        };
                        first = None;
                        chunk
                    }
                };
                match requests.as_mut() {
                    Some(requests) => requests.feed(&chunk, &mut shared.lock(), &mut pieces),
                    None => pieces.push((false, chunk)),
                }
                let due = Instant::now() + delay;
                if pieces.drain(..).any(|(held, piece)| chunks.send((due, held, piece)).is_err()) {
                    break;
                }
            }
            _ => {
                // End of stream or error. Under a fault that hides this direction, the other
                // side must not hear of it: just stop reading (the link is broken for good).
                if (fault.discards(direction) || fault == Fault::Hold) && open {
                    tainted.store(true, Ordering::SeqCst);
                    drop(chunks);
                    let _ = writer.join();
                    return;
                }
                break;
            }
        }
    }
    // Deliver what is queued, then close both sides.
    drop(chunks);
    let _ = writer.join();
    let _ = src.shutdown(Shutdown::Both);
    let _ = dst.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on loopback; returns its address.
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                thread::spawn(move || {
                    let mut stream = stream;
                    let mut buf = [0; 1024];
                    while let Ok(n @ 1..) = stream.read(&mut buf) {
                        if stream.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    fn connect(proxy: &FaultProxy) -> TcpStream {
        let stream = TcpStream::connect(proxy.addr()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream
    }

    fn echo(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<Vec<u8>> {
        stream.write_all(bytes)?;
        let mut reply = vec![0; bytes.len()];
        stream.read_exact(&mut reply)?;
        Ok(reply)
    }

    /// Waits (bounded) for `f` to hold.
    fn eventually(what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out: {what}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn passes_refuses_and_drops() {
        let proxy = FaultProxy::start(echo_server()).unwrap();
        let mut stream = connect(&proxy);
        assert_eq!(echo(&mut stream, b"hello").unwrap(), b"hello");
        eventually("one open connection", || proxy.open_connections() == 1);

        proxy.drop_connections();
        assert!(echo(&mut stream, b"x").is_err(), "a dropped connection is closed");

        proxy.set(Fault::Refuse);
        let mut refused = connect(&proxy);
        assert_eq!(refused.read(&mut [0; 1]).unwrap_or(0), 0, "a refused connection is closed at once");
        proxy.set(Fault::Pass);
        assert_eq!(echo(&mut connect(&proxy), b"again").unwrap(), b"again");
        assert!(proxy.accepted() >= 3);
    }

    #[test]
    fn black_hole_answers_nothing_and_heals_by_closing() {
        let proxy = FaultProxy::start(echo_server()).unwrap();
        let mut old = connect(&proxy);
        assert_eq!(echo(&mut old, b"1").unwrap(), b"1");
        proxy.set(Fault::BlackHole);
        let mut new = connect(&proxy);
        new.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        old.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        // Both stay open and silent: a read times out rather than seeing a close.
        for stream in [&mut old, &mut new] {
            stream.write_all(b"ping").unwrap();
            let err = stream.read(&mut [0; 4]).unwrap_err();
            assert!(matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut), "{err}");
        }
        proxy.set(Fault::Pass);
        for stream in [&mut old, &mut new] {
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            assert_eq!(stream.read(&mut [0; 4]).unwrap_or(0), 0, "a connection that lost bytes is closed on heal");
        }
        assert_eq!(echo(&mut connect(&proxy), b"fresh").unwrap(), b"fresh");
    }

    #[test]
    fn one_way_cuts() {
        let proxy = FaultProxy::start(echo_server()).unwrap();
        let mut stream = connect(&proxy);
        stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        proxy.set(Fault::CutServerToClient);
        stream.write_all(b"lost").unwrap();
        assert!(stream.read(&mut [0; 4]).is_err(), "the echo must not come back");
        proxy.set(Fault::CutClientToServer);
        let mut other = connect(&proxy);
        other.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        other.write_all(b"gone").unwrap();
        assert!(other.read(&mut [0; 4]).is_err(), "nothing reached the server");
        assert_eq!(proxy.fault(), Fault::CutClientToServer);
    }

    #[test]
    fn hold_delivers_what_it_held_once_released() {
        let proxy = FaultProxy::start(echo_server()).unwrap();
        let mut stream = connect(&proxy);
        assert_eq!(echo(&mut stream, b"a").unwrap(), b"a");
        proxy.set(Fault::Hold);
        stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        stream.write_all(b"held").unwrap();
        assert!(stream.read(&mut [0; 4]).is_err(), "nothing passes while held");
        proxy.set(Fault::Pass);
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut reply = [0; 4];
        stream.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"held", "the same connection, nothing lost");
        assert_eq!(echo(&mut stream, b"after").unwrap(), b"after");
    }

    /// A request frame: length, xid, opcode, then the path (as the requests that start with one).
    fn request(xid: i32, opcode: i32, path: &str) -> Vec<u8> {
        let mut body = [xid.to_be_bytes(), opcode.to_be_bytes(), (path.len() as i32).to_be_bytes()].concat();
        body.extend_from_slice(path.as_bytes());
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend(body);
        frame
    }

    #[test]
    fn a_hold_begins_exactly_at_the_request_the_trigger_matches() {
        let handshake = [&20i32.to_be_bytes()[..], &[7; 20]].concat();
        let (a, b, c) = (request(1, 4, "/a"), request(2, 2, "/lock/x"), request(3, 4, "/c"));
        let stream = [handshake.clone(), a.clone(), b.clone(), c.clone()].concat();
        // Every way of cutting the stream in two reads gives the same pieces.
        for cut in 0..=stream.len() {
            let mut state = State::new();
            // The handshake is never matched, even by a trigger that matches everything else.
            state.trigger = Some(HoldTrigger(Box::new(|opcode, path| opcode == 2 && path.starts_with("/lock/"))));
            let (mut frames, mut out) = (RequestFrames::default(), Vec::new());
            frames.feed(&stream[..cut], &mut state, &mut out);
            frames.feed(&stream[cut..], &mut state, &mut out);
            let passed: Vec<u8> = out.iter().filter(|(held, _)| !held).flat_map(|(_, p)| p.clone()).collect();
            let held: Vec<u8> = out.iter().filter(|(held, _)| *held).flat_map(|(_, p)| p.clone()).collect();
            assert_eq!(passed, [handshake.clone(), a.clone()].concat(), "cut at {cut}");
            assert_eq!(held, [b.clone(), c.clone()].concat(), "cut at {cut}");
            assert!(state.holding && state.trigger.is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn without_a_trigger_bytes_pass_at_once() {
        let mut state = State::new();
        let (mut frames, mut out) = (RequestFrames::default(), Vec::new());
        let frame = request(1, 4, "/a");
        // Even the first bytes of a frame pass before the rest has come.
        frames.feed(&frame[..3], &mut state, &mut out);
        assert_eq!(out, [(false, frame[..3].to_vec())]);
        frames.feed(&frame[3..], &mut state, &mut out);
        assert_eq!(out.concat_pieces(), frame);
    }

    trait Pieces {
        fn concat_pieces(&self) -> Vec<u8>;
    }

    impl Pieces for Vec<(bool, Vec<u8>)> {
        fn concat_pieces(&self) -> Vec<u8> {
            self.iter().flat_map(|(_, p)| p.clone()).collect()
        }
    }

    #[test]
    fn a_held_request_goes_on_once_released() {
        let proxy = FaultProxy::start(echo_server()).unwrap();
        let mut stream = connect(&proxy);
        let handshake = [&4i32.to_be_bytes()[..], b"hand"].concat();
        assert_eq!(echo(&mut stream, &handshake).unwrap(), handshake);
        proxy.hold_from(|opcode, _| opcode == 2);
        let (a, b) = (request(1, 4, "/a"), request(2, 2, "/b"));
        assert_eq!(echo(&mut stream, &a).unwrap(), a, "a request the trigger does not match passes");
        stream.write_all(&b).unwrap();
        let mut holding = std::pin::pin!(proxy.holding());
        block_on(holding.as_mut());
        assert!(proxy.is_holding());
        proxy.release_hold();
        let mut reply = vec![0; b.len()];
        stream.read_exact(&mut reply).unwrap();
        assert_eq!(reply, b, "the held request, once released");
        assert_eq!(echo(&mut stream, &a).unwrap(), a, "and nothing is held after the release");
    }

    /// Polls `future` on this thread until it is ready (at most 10 s).
    fn block_on<F: Future + Unpin>(mut future: F) -> F::Output {
        struct Unpark(thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(thread::current())));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Poll::Ready(out) = std::pin::Pin::new(&mut future).poll(&mut Context::from_waker(&waker)) {
                return out;
            }
            assert!(Instant::now() < deadline, "not ready within 10 s");
            thread::park_timeout(Duration::from_millis(100));
        }
    }

    #[test]
    fn delay_holds_bytes_back() {
        let proxy = FaultProxy::start(echo_server()).unwrap();
        proxy.set_delay(Duration::from_millis(200));
        let mut stream = connect(&proxy);
        let started = Instant::now();
        assert_eq!(echo(&mut stream, b"slow").unwrap(), b"slow");
        // Once each way.
        assert!(started.elapsed() >= Duration::from_millis(400), "{:?}", started.elapsed());
        proxy.set_delay(Duration::ZERO);
        assert_eq!(echo(&mut stream, b"fast").unwrap(), b"fast");
    }
}
