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
//! Discarding bytes breaks the framing of the stream they belong to, so a connection that lost
//! bytes is closed when the proxy goes back to [`Fault::Pass`] — as TCP would give up on a
//! connection across a long partition. A close on a side whose bytes are being discarded is not
//! passed on to the other side (a partitioned peer hears nothing, not even a FIN).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// How long the proxy waits to connect to its target.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const BUFFER: usize = 64 * 1024;
/// How often a held chunk looks whether the hold is over.
const HOLD_POLL: Duration = Duration::from_millis(2);
/// The most a client's first message may take before it is passed on unrewritten.
const FIRST_MESSAGE_LIMIT: usize = 64 * 1024;

/// The fault a [`FaultProxy`] applies (see the module docs for what each does).
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
/// ```no_run
/// use corral_test_support::{Fault, FaultProxy};
///
/// let proxy = FaultProxy::start("127.0.0.1:2181".parse().unwrap()).unwrap();
/// // Give clients `proxy.addr()` instead of the server's address, then:
/// proxy.set(Fault::BlackHole); // the server vanishes without a word
/// proxy.set(Fault::Pass); // back; connections that lost bytes are closed
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
            state: Mutex::new(State {
                fault: Fault::Pass,
                delay: Duration::ZERO,
                next_id: 0,
                connections: HashMap::new(),
                first_message: None,
            }),
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
    let (chunks, due) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = {
        let mut dst = dst.try_clone();
        let shared = shared.clone();
        thread::spawn(move || {
            let Ok(dst) = dst.as_mut() else { return };
            for (at, chunk) in due {
                let wait = at.saturating_duration_since(Instant::now());
                if !wait.is_zero() {
                    thread::sleep(wait);
                }
                // Under Hold the chunk waits here, in order, until the fault changes.
                loop {
                    let (fault, open) = {
                        let state = shared.lock();
                        (state.fault, state.connections.contains_key(&id))
                    };
                    if !open {
                        return;
                    }
                    if fault != Fault::Hold {
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
                if chunks.send((Instant::now() + delay, chunk)).is_err() {
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
