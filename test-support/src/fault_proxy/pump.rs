//! The plumbing: the accept loop, and one thread per direction of each connection that copies
//! bytes and applies the current fault, delay and hold to them.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Instant;

use super::{
    BUFFER, CONNECT_TIMEOUT, Connection, Direction, FIRST_MESSAGE_LIMIT, Fault, HOLD_POLL, RequestFrames, Shared,
};

pub(super) fn accept_loop(listener: &TcpListener, target: SocketAddr, shared: &Arc<Shared>) {
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
