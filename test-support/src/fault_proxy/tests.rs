use std::io::{Read, Write};
use std::time::Instant;

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
