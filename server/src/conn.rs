//! One task per client connection: four-letter words, the handshake, then requests answered
//! in order, with notifications queued among the replies.
//!
//! The task owns the whole stream and selects between reading requests and writing what is
//! queued on its channel (notifications, replies that had to wait behind them, or the order to
//! close). A reply normally skips the channel: it is encoded into the task's own buffer and
//! written once the input that asked for it is handled ([`send_reply`] explains why that keeps
//! the order). Anything the peer sends that cannot be accepted — a length over the limit, a
//! negative length, a header that does not decode, an unknown first word — closes this
//! connection and nothing else. Nothing read from the wire is trusted: no indexing, no unwrap.

use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use corral_proto::{
    ConnectRequest, ConnectResponse, ErrorCode, FrameDecoder, Jute, OpCode, Request, RequestHeader, encode_frame,
    four_letter_word,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Sleep};
use tracing::Instrument;

use crate::fourlw;
use crate::ops::{self, Ctx, Reply};
use crate::session::PASSWORD_LEN;
use crate::state::{ConnId, ConnInfo, Outgoing, Shared, encode_reply, encode_reply_into};

/// The largest reply buffer a connection keeps between inputs.
const OUT_KEEP: usize = 16 * 1024;

/// The smallest read a connection makes, and the buffer an idle one keeps. An idle session
/// reads a 12-byte ping every few seconds; with 4 KiB each, the read buffers were 37 MiB of
/// the 87 MiB that 10,000 idle sessions took.
const READ_MIN: usize = 256;
/// The largest read. Reads that fill the buffer (a client pipelining requests) double the
/// next one up to this; small reads halve it again.
const READ_MAX: usize = 64 * 1024;

/// How long a closing connection waits for the peer to close after our FIN, so that a final
/// reply is not lost to a reset.
const LINGER: Duration = Duration::from_millis(250);

/// The fault controls of one listener (one member of a cluster).
#[derive(Debug)]
pub(crate) struct MemberCtl {
    pub(crate) index: usize,
    /// While true, connections neither read nor write (a black hole).
    pub(crate) paused: watch::Sender<bool>,
    /// Added before each request is handled.
    pub(crate) latency: Mutex<Duration>,
    /// The port the listener is bound to (for `conf`).
    pub(crate) port: AtomicU16,
    /// Whether the member is read-only, as a ZooKeeper server that lost its quorum (with
    /// `readonlymode.enabled`). Changed only under the state lock (see
    /// `Core::set_read_only`), and read under it by the handshake and every request.
    pub(crate) read_only: AtomicBool,
}

impl MemberCtl {
    pub(crate) fn new(index: usize, read_only: bool) -> Self {
        Self {
            index,
            paused: watch::Sender::new(false),
            latency: Mutex::new(Duration::ZERO),
            port: AtomicU16::new(0),
            read_only: AtomicBool::new(read_only),
        }
    }

    pub(crate) fn is_read_only(&self) -> bool {
        self.read_only.load(Ordering::Relaxed)
    }

    fn latency(&self) -> Duration {
        *self.latency.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Waits for the next change of a pause flag. Returns the new value and the receiver (to wait
/// for the change after), or `None` once the flag is gone.
async fn next_pause(mut rx: watch::Receiver<bool>) -> Option<(bool, watch::Receiver<bool>)> {
    rx.changed().await.ok()?;
    let paused = *rx.borrow_and_update();
    Some((paused, rx))
}

/// Completes at `deadline`; never without one.
async fn until(deadline: Option<&mut Pin<Box<Sleep>>>) {
    match deadline {
        Some(deadline) => deadline.await,
        None => std::future::pending().await,
    }
}

/// What to do after handling input.
enum Flow {
    Continue,
    /// Close now, without flushing (a protocol error).
    Abort,
}

/// Serves one connection until it closes.
pub(crate) async fn serve<S>(shared: Arc<Shared>, ctl: Arc<MemberCtl>, stream: S, peer: Option<SocketAddr>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    serve_with_ids(shared, ctl, stream, peer, Vec::new()).await;
}

/// [`serve`], with ids the connection holds from the start (a TLS client certificate's `x509`).
pub(crate) async fn serve_with_ids<S>(
    shared: Arc<Shared>,
    ctl: Arc<MemberCtl>,
    stream: S,
    peer: Option<SocketAddr>,
    ids: Vec<corral_proto::Id>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer_text = peer.map_or_else(|| "in-memory".to_owned(), |p| p.to_string());
    let peer_ip = peer.map_or_else(|| "127.0.0.1".to_owned(), |p| p.ip().to_string());
    let span = tracing::info_span!("conn", peer = %peer_text, session = tracing::field::Empty);
    let (tx, rx) = mpsc::unbounded_channel();
    let id = {
        let mut state = shared.lock();
        let id = state.register_conn(tx, ctl.index, peer_text, peer_ip, shared.wall_ms());
        if !ids.is_empty()
            && let Some(info) = state.conns.get_mut(&id)
        {
            tracing::debug!(?ids, "identified by the client certificate");
            Arc::make_mut(&mut info.auth).extend(ids);
        }
        id
    };
    let mut conn = Connection {
        shared,
        ctl,
        stream,
        buf: BytesMut::new(),
        read_size: READ_MIN,
        decoder: FrameDecoder::default(),
        id,
        rx,
        out: BytesMut::new(),
        session: None,
        closing: false,
        sasl: None,
        out_zxid: 0,
    };
    conn.decoder = FrameDecoder::new(conn.shared.config.max_frame);
    async move {
        tracing::debug!(conn = id, "connection accepted");
        let linger = conn.run().await;
        conn.shared.lock().detach_conn(id);
        let _ = conn.stream.shutdown().await;
        if linger {
            let mut sink = [0u8; 1024];
            let _ = tokio::time::timeout(LINGER, async {
                while matches!(conn.stream.read(&mut sink).await, Ok(n) if n > 0) {}
            })
            .await;
        }
        tracing::debug!(conn = id, "connection closed");
    }
    .instrument(span)
    .await;
}

struct Connection<S> {
    shared: Arc<Shared>,
    ctl: Arc<MemberCtl>,
    stream: S,
    /// Input not yet handled.
    buf: BytesMut,
    /// How much the next read may take (between [`READ_MIN`] and [`READ_MAX`]).
    read_size: usize,
    decoder: FrameDecoder,
    id: ConnId,
    rx: mpsc::UnboundedReceiver<Outgoing>,
    /// Replies encoded while handling input, written when that input is done. They skip the
    /// channel, which is only used when something is already queued on it (see [`send_reply`]).
    out: BytesMut,
    session: Option<i64>,
    /// Set once a close is queued: input after it is ignored.
    closing: bool,
    /// The SASL exchange in progress on this connection, if one started.
    sasl: Option<crate::sasl::DigestServer>,
    /// The server's last zxid when the newest reply in `out` was made: with a data directory,
    /// `out` is written only once the log is durable up to it.
    out_zxid: i64,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// The main loop. Returns whether the close was orderly (worth lingering for the peer).
    ///
    /// The futures that outlive one turn of the loop are made once, outside it: the wait for a
    /// change of the pause flag (remade only when the flag changes) and the handshake deadline
    /// (dropped once the handshake is done). `select!` builds every branch's future on every
    /// turn, disabled ones included, and an idle session turns the loop once per ping. Made
    /// afresh, each of the two touches a lock shared by every connection on every turn (the
    /// pause flag's waiter list; the timer driver's lock, taken when a timer is dropped).
    async fn run(&mut self) -> bool {
        let mut held: Vec<Bytes> = Vec::new();
        let mut pause_rx = self.ctl.paused.subscribe();
        let mut paused = *pause_rx.borrow_and_update();
        let mut pause_change = pin!(next_pause(pause_rx));
        let mut pause_alive = true;
        // Dropped after the handshake, so that the timer does not stay in the timer wheel.
        let mut handshake_deadline = Some(Box::pin(tokio::time::sleep(self.shared.config.handshake_timeout)));
        loop {
            if self.session.is_some() {
                handshake_deadline = None;
            }
            if !paused && !held.is_empty() {
                let batch: Vec<Bytes> = std::mem::take(&mut held);
                if self.write(&batch).await.is_err() {
                    return false;
                }
            }
            let room = self.make_room();
            tokio::select! {
                biased;
                // First, so that nothing is read or written once a pause has begun.
                change = &mut pause_change, if pause_alive => match change {
                    Some((now, rx)) => {
                        paused = now;
                        pause_change.set(next_pause(rx));
                    }
                    None => pause_alive = false,
                },
                msg = self.rx.recv() => {
                    let mut batch = Vec::new();
                    let mut close = false;
                    match msg {
                        Some(Outgoing::Frame(frame)) => batch.push(frame),
                        Some(Outgoing::Close) | None => close = true,
                    }
                    while !close {
                        match self.rx.try_recv() {
                            Ok(Outgoing::Frame(frame)) => batch.push(frame),
                            Ok(Outgoing::Close) => close = true,
                            Err(_) => break,
                        }
                    }
                    if paused {
                        held.extend(batch);
                    } else if self.write(&batch).await.is_err() {
                        return false;
                    }
                    if close {
                        return !paused;
                    }
                }
                read = self.stream.read_buf(&mut self.buf), if !paused => {
                    match read {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => {
                            self.size_next_read(n, room);
                            if let Flow::Abort = self.process_input().await {
                                return false;
                            }
                            // The replies in `out` are older than anything on the channel, so
                            // they go first: now, or first in `held` if a pause began meanwhile.
                            if !self.out.is_empty() {
                                if *self.ctl.paused.borrow() {
                                    held.push(self.out.split().freeze());
                                } else if self.write_out().await.is_err() {
                                    return false;
                                }
                            }
                        }
                    }
                }
                () = until(handshake_deadline.as_mut()), if self.session.is_none() && !paused => {
                    tracing::debug!("no handshake in time");
                    return false;
                }
            }
        }
    }

    /// Makes room for a read of `read_size` bytes and returns the room there is. An empty
    /// buffer much larger than that (left by a burst of requests or a large frame) is given
    /// back.
    fn make_room(&mut self) -> usize {
        if self.buf.capacity() - self.buf.len() < self.read_size {
            self.buf.reserve(self.read_size);
        }
        if self.buf.is_empty() && self.buf.capacity() > 4 * self.read_size {
            self.buf = BytesMut::with_capacity(self.read_size);
        }
        self.buf.capacity() - self.buf.len()
    }

    /// Adapts the next read to this one, which took `n` bytes of the `room` there was: double
    /// after a read that filled the buffer, halve after a small one.
    fn size_next_read(&mut self, n: usize, room: usize) {
        if n >= room {
            self.read_size = (self.read_size * 2).min(READ_MAX);
        } else if n <= self.read_size / 4 {
            self.read_size = (self.read_size / 2).max(READ_MIN);
        }
    }

    /// Writes the replies in `out`. The buffer is kept for the next ones unless a large reply
    /// made it grow.
    async fn write_out(&mut self) -> std::io::Result<()> {
        self.durable(self.out_zxid).await?;
        self.stream.write_all(&self.out).await?;
        self.stream.flush().await?;
        if self.out.capacity() > OUT_KEEP {
            self.out = BytesMut::new();
        } else {
            self.out.clear();
        }
        Ok(())
    }

    async fn write(&mut self, frames: &[Bytes]) -> std::io::Result<()> {
        if frames.is_empty() {
            return Ok(());
        }
        if self.shared.durable.is_some() {
            // Frames from the channel carry no zxid: the server's last one bounds them all.
            let last = self.shared.lock().zxid;
            self.durable(last).await?;
        }
        if let [one] = frames {
            self.stream.write_all(one).await?;
        } else {
            let mut out = BytesMut::with_capacity(frames.iter().map(Bytes::len).sum());
            frames.iter().for_each(|f| out.put_slice(f));
            self.stream.write_all(&out).await?;
        }
        self.stream.flush().await
    }

    /// Waits until the transaction log is durable up to `zxid` (at once without a data
    /// directory): nothing that reflects a transaction leaves before the transaction is on
    /// disk. Fails if the log writer stopped (a write or fsync failed): then nothing more is
    /// acknowledged, and the connection closes.
    async fn durable(&self, zxid: i64) -> std::io::Result<()> {
        let Some(durable) = &self.shared.durable else {
            return Ok(());
        };
        if *durable.borrow() >= zxid {
            return Ok(());
        }
        let mut durable = durable.clone();
        match durable.wait_for(|d| *d >= zxid).await {
            Ok(_) => Ok(()),
            Err(_) => Err(std::io::Error::other("the transaction log stopped")),
        }
    }

    /// Handles every whole frame in the buffer.
    async fn process_input(&mut self) -> Flow {
        if self.closing {
            // Everything after the order to close is ignored.
            self.buf.clear();
            return Flow::Continue;
        }
        if self.session.is_none()
            && let Some(first) = self.buf.get(..4)
            && let Ok(first) = <[u8; 4]>::try_from(first)
            && let Some(cmd) = four_letter_word(first)
        {
            self.four_letter_word(cmd);
            return Flow::Continue;
        }
        loop {
            let frame = match self.decoder.decode(&mut self.buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Flow::Continue,
                Err(e) => {
                    tracing::info!(error = %e, "refused frame; closing");
                    return Flow::Abort;
                }
            };
            let flow = if self.session.is_none() {
                self.handshake(&frame)
            } else {
                let latency = self.ctl.latency();
                if !latency.is_zero() {
                    tokio::time::sleep(latency).await;
                }
                self.request(&frame)
            };
            if let Flow::Abort = flow {
                return flow;
            }
            if self.closing {
                self.buf.clear();
                return Flow::Continue;
            }
        }
    }

    fn four_letter_word(&mut self, cmd: &str) {
        self.buf.clear();
        let mut state = self.shared.lock();
        state.received += 1;
        if let Some(info) = state.conns.get_mut(&self.id) {
            info.received += 1;
        }
        let port = self.ctl.port.load(Ordering::Relaxed);
        let text = fourlw::run(cmd, &self.shared, &state, self.id, port, self.ctl.is_read_only());
        tracing::debug!(cmd, "four-letter word");
        state.send(self.id, Bytes::from(text));
        state.close_conn(self.id);
        self.closing = true;
    }

    /// The ConnectRequest (zookeeper-protocol.md §3.3).
    ///
    /// On a read-only member, as on ZooKeeper's `ReadOnlyZooKeeperServer` with local sessions:
    /// a client that does not accept read-only servers is refused (the connection closes
    /// without an answer); a new session is a read-only session of this member (no zxid, no
    /// ephemerals); resuming a read/write (global) session is refused the same way, before the
    /// session's other connection is touched; and a session this member does not know
    /// (another member's read-only session included) is answered as expired.
    fn handshake(&mut self, frame: &[u8]) -> Flow {
        let Ok(req) = ConnectRequest::read(&mut &frame[..]) else {
            tracing::info!("undecodable ConnectRequest; closing");
            return Flow::Abort;
        };
        let shared = Arc::clone(&self.shared);
        let mut state = shared.lock();
        state.received += 1;
        if state.handshakes.len() >= crate::state::HANDSHAKE_LOG {
            state.handshakes.pop_front();
        }
        state.handshakes.push_back(tokio::time::Instant::now());
        let read_only = self.ctl.is_read_only();
        if read_only && req.read_only != Some(true) {
            tracing::info!("refusing a client that does not accept a read-only server; closing");
            return Flow::Abort;
        }
        if req.last_zxid_seen > state.zxid {
            tracing::info!(client = req.last_zxid_seen, server = state.zxid, "client has seen a later zxid; closing");
            return Flow::Abort;
        }
        let timeout = shared.config.negotiate_timeout(req.timeout);
        let now = shared.now_ms();
        let local_to = read_only.then_some(self.ctl.index);
        let granted = if req.session_id == 0 {
            let (id, password) = {
                let session = state.sessions.create(timeout, now, local_to);
                (session.id, session.password)
            };
            if !read_only {
                // createSession is a transaction; a read-only server's local session is not.
                let zxid = state.next_zxid();
                let origin = crate::state::Origin { session: id, xid: 0 };
                state.log(origin, zxid, shared.wall_ms(), crate::persist::TxnBody::CreateSession { timeout });
            }
            shared.expirer_wake.notify_one();
            tracing::info!(session = format_args!("{id:#x}"), timeout, read_only, "session created");
            Some((id, password))
        } else {
            let id = req.session_id;
            let session = state.sessions.get(id);
            if read_only && session.is_some_and(|s| s.local_to.is_none()) {
                tracing::info!(
                    session = format_args!("{id:#x}"),
                    "refusing a read/write session on a read-only server; closing"
                );
                return Flow::Abort;
            }
            // Only this member's kind of session is known here: a read/write member knows no
            // read-only session, and a read-only member knows only its own.
            let known = session.filter(|s| s.local_to == local_to).is_some();
            if known
                && let Some(old) = state.sessions.get(id).and_then(|s| s.conn)
                && old != self.id
            {
                tracing::debug!(old, "closing the session's previous connection");
                state.close_conn(old);
            }
            let valid = state
                .sessions
                .get(id)
                .filter(|s| known && !s.closing && s.password.as_slice() == req.passwd.as_ref())
                .map(|s| s.password);
            if valid.is_some() {
                state.sessions.set_timeout(id, timeout, now);
                tracing::info!(session = format_args!("{id:#x}"), timeout, "session resumed");
            } else {
                tracing::info!(session = format_args!("{id:#x}"), "session expired or invalid");
            }
            valid.map(|password| (id, password))
        };
        // The byte is answered only if the request carried it.
        let read_only = req.read_only.map(|_| read_only);
        let response = match granted {
            Some((id, password)) => {
                if let Some(session) = state.sessions.get_mut(id) {
                    session.conn = Some(self.id);
                }
                if let Some(info) = state.conns.get_mut(&self.id) {
                    info.session = Some(id);
                    info.timeout_ms = timeout;
                }
                self.session = Some(id);
                tracing::Span::current().record("session", format_args!("{id:#x}"));
                ConnectResponse {
                    protocol_version: 0,
                    timeout,
                    session_id: id,
                    passwd: Bytes::copy_from_slice(&password),
                    read_only,
                }
            }
            None => ConnectResponse {
                protocol_version: 0,
                timeout: 0,
                session_id: 0,
                passwd: Bytes::from_static(&[0; PASSWORD_LEN]),
                read_only,
            },
        };
        let mut out = BytesMut::new();
        encode_frame(&mut out, |b| response.write(b));
        state.send(self.id, out.freeze());
        if granted.is_none() {
            state.close_conn(self.id);
            self.closing = true;
        }
        Flow::Continue
    }

    /// One request after the handshake.
    fn request(&mut self, frame: &[u8]) -> Flow {
        let mut body = frame;
        let Ok(header) = RequestHeader::read(&mut body) else {
            tracing::info!("undecodable request header; closing");
            return Flow::Abort;
        };
        let Some(session) = self.session else {
            return Flow::Abort;
        };
        let started = Instant::now();
        let shared = &*self.shared;
        let wall = shared.wall_ms();
        let mut guard = shared.lock();
        let state = &mut *guard;
        let Some(info) = state.conns.get_mut(&self.id) else {
            // Closed under us (expiry, reattach elsewhere, fault): the order to close is queued;
            // drop the request.
            self.closing = true;
            return Flow::Continue;
        };
        info.received += 1;
        state.received += 1;
        if !state.sessions.touch(session, shared.ms_at(started)) {
            tracing::debug!(xid = header.xid, "request for a closing session dropped");
            state.close_conn(self.id);
            self.closing = true;
            return Flow::Continue;
        }
        if header.op == OpCode::Ping {
            // The touch above is all a ping does, so it is answered here, with the connection
            // still at hand. Its body, if any, is ignored (as Request::read_body ignores it) and
            // its reply carries the last zxid, as ZooKeeper's does.
            let reply = Reply::err(state.zxid, ErrorCode::Ok);
            self.out_zxid = state.zxid;
            if send_reply(info, &self.rx, &mut self.out, header.xid, &reply) {
                state.sent += 1;
            }
            let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            state.latency.record(elapsed);
            info.record(ops::short_name(header.op), header.xid, reply.zxid, wall, elapsed);
            return Flow::Continue;
        }
        let auth = Arc::clone(&info.auth);
        let reply = if header.op == OpCode::Sasl
            && let Some(users) = &shared.config.sasl
        {
            crate::sasl::answer(&mut self.sasl, users, body, &mut info.auth)
        } else if self.ctl.is_read_only() && ops::is_write(header.op) {
            // As ZooKeeper's ReadOnlyRequestProcessor: by opcode, before the body is read, with
            // the last zxid and no zxid consumed.
            Reply::err(state.zxid, ErrorCode::NotReadOnly)
        } else if !ops::is_client_op(header.op) || ops::is_refused(header.op, &shared.config) {
            tracing::info!(xid = header.xid, op = header.op.code(), "unknown opcode; closing");
            // As ZooKeeper's UnimplementedRequestProcessor: before the body is read, with the
            // request's zxid, which is still −1.
            Reply::err(-1, ErrorCode::Unimplemented).then_close()
        } else {
            match Request::read_body(header.op, &mut body) {
                Ok(request) => {
                    let mut ctx =
                        Ctx { state, config: &shared.config, conn: self.id, session, auth, wall, xid: header.xid };
                    ops::dispatch(&mut ctx, request)
                }
                Err(e) => {
                    tracing::info!(xid = header.xid, op = ?header.op, error = %e, "undecodable request");
                    Reply::err(state.zxid, ErrorCode::MarshallingError)
                }
            }
        };
        tracing::debug!(xid = header.xid, op = ?header.op, err = %reply.err, zxid = reply.zxid, "request");
        self.out_zxid = state.zxid;
        let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        state.latency.record(elapsed);
        if let Some(info) = state.conns.get_mut(&self.id) {
            if send_reply(info, &self.rx, &mut self.out, header.xid, &reply) {
                state.sent += 1;
            }
            info.record(ops::short_name(header.op), header.xid, reply.zxid, wall, elapsed);
        }
        if reply.close {
            state.close_conn(self.id);
            self.closing = true;
        }
        Flow::Continue
    }
}

/// Sends the reply to request `xid` on connection `info`, in order with everything queued for
/// that connection before it. Returns whether it was sent (the connection task is there).
///
/// Every frame for a connection is queued on its channel under the state lock, which the
/// caller holds, and the connection task writes whatever it takes off the channel before it
/// reads more input (while a member is paused it reads nothing, and what it held back is
/// written before it reads again). So if the channel is empty here, everything queued before
/// this reply is on the wire already, and the reply is encoded straight into `out`: no
/// allocation, no trip through the channel, and the task writes it as soon as the input is
/// handled. If something is queued — a notification this very request fired for a watch of
/// its own connection, or the reply to an earlier request of the same input that had to wait —
/// the reply is queued behind it. Everything in `out` is then older than everything on the
/// channel, and the task writes `out` first, so replies and notifications reach the client in
/// the order the lock handed them out (a notification before the reply to any later request).
fn send_reply(
    info: &mut ConnInfo,
    rx: &mpsc::UnboundedReceiver<Outgoing>,
    out: &mut BytesMut,
    xid: i32,
    reply: &Reply,
) -> bool {
    if !rx.is_empty() {
        return info.queue(encode_reply(xid, reply.zxid, reply.err, reply.body.as_ref()));
    }
    encode_reply_into(out, xid, reply.zxid, reply.err, reply.body.as_ref());
    info.sent += 1;
    true
}
