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
use std::io;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use self::frames::RequestFrames;
use self::pump::accept_loop;

mod frames;
mod pump;
#[cfg(test)]
mod tests;

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

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves the state usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
