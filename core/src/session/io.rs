//! One live connection: pipelined writes, in-order replies, notifications, pings, liveness.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use corral_proto::records::{AuthPacket, SetWatches, SetWatches2, WatchesRequest};
use corral_proto::{
    ErrorCode, FrameDecoder, Jute, OpCode, ReplyHeader, Request, RequestHeader, Response, WatcherEvent, WatcherType,
    encode_frame, xid,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::time::Instant;

use tracing::Instrument;

use super::connect::Connection;
use super::{AfterReply, Command, Pending, SessionTask, Terminal};
use crate::error::{Error, Result};
use crate::session::watch::WatchKind;
use crate::state::{SessionEvent, SessionState};
use crate::transport::Transport;
use crate::watcher::WatchedEvent;

/// How a connection ended.
#[derive(Debug)]
pub(crate) enum ConnEnd {
    /// The connection is gone; the session may live on.
    Disconnected(String),
    /// The connection to a read-only server was closed on purpose: a read/write server was
    /// found, and the next connection attempt goes to it first.
    ReadWriteFound(String),
    /// The session is over.
    Terminal(Terminal),
}

/// What the handshake established.
struct ConnInfo {
    addr: std::net::SocketAddr,
    resumed: bool,
    read_only: bool,
}

/// A request written to the server and not yet answered.
struct InFlight {
    xid: i32,
    pending: Pending,
    /// When the request was written, for its round-trip time.
    sent: Instant,
}

/// Paths per setWatches frame, counted in bytes (ZooKeeper's client uses about 128 K).
const SET_WATCHES_BATCH: usize = 128 * 1024;

/// Free space below which the read buffer grows by [`READ_CHUNK`] before the next read.
const READ_LOW_WATER: usize = 16 * 1024;
/// How much the read buffer grows at a time.
const READ_CHUNK: usize = 64 * 1024;

/// How much encoded output is gathered before it is written (it may grow past this).
const WRITE_CHUNK: usize = 64 * 1024;
/// How many queued commands are taken in one go before writing.
const COMMAND_BATCH: usize = 1024;

/// The longest idle gap between pings, as the Java client does.
const MAX_PING_INTERVAL: Duration = Duration::from_secs(10);

/// Per-connection state.
struct Link {
    /// Encoded frames not yet written: everything queued since the last write goes out in one
    /// write call.
    out: BytesMut,
    in_flight: VecDeque<InFlight>,
    /// Auth packets sent on this connection, oldest first: the index into `auths`.
    auth_in_flight: VecDeque<usize>,
    next_xid: i32,
    last_send: Instant,
    close_xid: Option<i32>,
}

impl Link {
    fn xid(&mut self) -> i32 {
        let xid = self.next_xid;
        self.next_xid = if self.next_xid == i32::MAX { 1 } else { self.next_xid + 1 };
        xid
    }

    fn send_frame(&mut self, header: RequestHeader, body: &[u8]) {
        let before = self.out.len();
        encode_frame(&mut self.out, |b| {
            header.write(b);
            b.extend_from_slice(body);
        });
        metrics::counter!(crate::metrics::BYTES_SENT_TOTAL).increment((self.out.len() - before) as u64);
        self.last_send = Instant::now();
    }

    fn send_request(&mut self, pending: Pending) {
        let xid = self.xid();
        tracing::trace!(xid, op = ?pending.op, path = %pending.path, "request");
        self.send_frame(RequestHeader { xid, op: pending.op }, &pending.body);
        if pending.op == OpCode::CloseSession {
            self.close_xid = Some(xid);
        }
        metrics::counter!(crate::metrics::REQUESTS_TOTAL, "op" => crate::metrics::op_label(pending.op)).increment(1);
        metrics::gauge!(crate::metrics::REQUESTS_IN_FLIGHT).increment(1.0);
        self.in_flight.push_back(InFlight { xid, pending, sent: Instant::now() });
    }
}

impl SessionTask {
    /// Runs one connection until it drops or the session ends.
    pub(super) async fn connection_phase(&mut self, conn: Connection) -> ConnEnd {
        let Connection { stream, addr, response, leftover } = conn;
        let resumed = self.session_id != 0 && self.session_id == response.session_id;
        self.session_id = response.session_id;
        self.password = response.passwd.clone();
        self.negotiated = Duration::from_millis(u64::try_from(response.timeout).unwrap_or(0));
        let read_only = response.read_only == Some(true);
        self.seen_rw |= !read_only;
        let span =
            tracing::info_span!("connection", session_id = format_args!("{:#x}", self.session_id), server = %addr);
        span.in_scope(|| tracing::info!(resumed, read_only, negotiated = ?self.negotiated, "connected"));
        let info = ConnInfo { addr, resumed, read_only };
        self.shared.update_info(|info| {
            info.id = self.session_id;
            info.password = self.password.clone();
            info.timeout = self.negotiated;
        });

        match stream {
            Transport::Tcp(tcp) => {
                let (reader, writer) = tcp.into_split();
                self.drive(info, reader, writer, leftover).instrument(span).await
            }
            Transport::Custom(stream) => {
                let (reader, writer) = tokio::io::split(stream);
                self.drive(info, reader, writer, leftover).instrument(span).await
            }
        }
    }

    /// The connection's loop. One task reads, writes and serves commands: no hand-off between
    /// tasks per request, and every frame encoded since the last write goes out in one write.
    async fn drive<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
        &mut self,
        info: ConnInfo,
        mut reader: R,
        mut writer: W,
        leftover: BytesMut,
    ) -> ConnEnd {
        let ConnInfo { addr, resumed, read_only } = info;
        let mut link = Link {
            out: BytesMut::with_capacity(WRITE_CHUNK),
            in_flight: VecDeque::new(),
            auth_in_flight: VecDeque::new(),
            next_xid: 1,
            last_send: Instant::now(),
            close_xid: None,
        };

        let read_timeout = self.negotiated * 2 / 3;
        let mut decoder = FrameDecoder::new(self.config.max_frame);
        let mut rbuf = leftover;

        // Before anything else: SASL (alone on the wire until it completes), then credentials,
        // then watches, then what queued up meanwhile.
        if let Some(sasl) = &self.config.sasl {
            let host = self.config.hosts.get(self.connected_host).map_or("", |h| h.host.as_str());
            let done = match sasl.start(host) {
                Ok(mechanism) => {
                    super::sasl::exchange(
                        mechanism,
                        &mut link.next_xid,
                        &mut reader,
                        &mut writer,
                        &mut rbuf,
                        &mut decoder,
                        read_timeout,
                    )
                    .await
                }
                Err(reason) => Err(super::sasl::SaslEnd::Mechanism(reason)),
            };
            match done {
                Ok(()) => tracing::debug!("SASL login complete"),
                Err(super::sasl::SaslEnd::AuthFailed) => {
                    tracing::warn!("SASL authentication failed: the server refused the credentials");
                    return ConnEnd::Terminal(Terminal::AuthFailed);
                }
                Err(super::sasl::SaslEnd::Mechanism(reason)) => {
                    tracing::warn!(%reason, "SASL authentication failed");
                    *self.shared.sasl_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
                    return ConnEnd::Terminal(Terminal::AuthFailed);
                }
                Err(super::sasl::SaslEnd::Disconnected(reason)) => return ConnEnd::Disconnected(reason),
            }
        }
        for (i, entry) in self.auths.iter().enumerate() {
            let packet = AuthPacket { auth_type: 0, scheme: entry.scheme.clone(), auth: entry.auth.clone() };
            link.send_frame(RequestHeader { xid: xid::AUTH, op: OpCode::Auth }, &packet.to_bytes());
            link.auth_in_flight.push_back(i);
        }
        self.restore_watches(&mut link);
        while let Some(q) = self.queued.pop_front() {
            link.send_request(q.pending);
        }

        metrics::counter!(crate::metrics::CONNECTIONS_TOTAL, "resumed" => if resumed { "true" } else { "false" })
            .increment(1);
        let state = if read_only { SessionState::ConnectedReadOnly } else { SessionState::Connected };
        self.shared.transition(
            state,
            Some(SessionEvent::Connected {
                session_id: self.session_id,
                resumed,
                read_only,
                negotiated_timeout: self.negotiated,
                server: addr,
            }),
        );

        let ping_interval = (self.negotiated / 3).min(MAX_PING_INTERVAL);
        let mut last_recv = Instant::now();
        let mut handles_gone = false;
        // While read-only, look for a read/write server in the background (the Java client's
        // pingRwServer); dropped with the connection.
        let mut seek = read_only.then(|| {
            super::probe::seek_read_write(self.config.hosts.clone(), self.connected_host, self.config.dialer.clone())
        });

        let end = 'conn: loop {
            // Frames already buffered (the handshake may have read past its reply).
            loop {
                match decoder.decode(&mut rbuf) {
                    Ok(Some(frame)) => {
                        if let Err(end) = self.on_frame(&mut link, frame.freeze()) {
                            break 'conn end;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => break 'conn ConnEnd::Disconnected(format!("bad frame from server: {e}")),
                }
            }
            let ping_at = link.last_send + ping_interval;
            let dead_at = last_recv + read_timeout;
            // Read in large chunks: many pipelined replies per syscall.
            if rbuf.capacity() - rbuf.len() < READ_LOW_WATER {
                rbuf.reserve(READ_CHUNK);
            }
            tokio::select! {
                biased;
                read = reader.read_buf(&mut rbuf) => match read {
                    Ok(0) => break ConnEnd::Disconnected("server closed the connection".into()),
                    Ok(n) => {
                        metrics::counter!(crate::metrics::BYTES_RECEIVED_TOTAL).increment(n as u64);
                        last_recv = Instant::now();
                    }
                    Err(e) => break ConnEnd::Disconnected(format!("read failed: {e}")),
                },
                // write_buf is cancel safe: a write either happened (and `out` advanced) or not.
                written = async {
                    let n = writer.write_buf(&mut link.out).await?;
                    if link.out.is_empty() {
                        writer.flush().await?;
                    }
                    Ok::<usize, std::io::Error>(n)
                }, if !link.out.is_empty() => match written {
                    Ok(0) => break ConnEnd::Disconnected("the connection refused more data".into()),
                    Ok(_) => {}
                    Err(e) => break ConnEnd::Disconnected(format!("write failed: {e}")),
                },
                cmd = self.commands.recv(), if !handles_gone => match cmd {
                    // Every handle is gone: close the session politely.
                    None => {
                        handles_gone = true;
                        if link.close_xid.is_none() {
                            send_close(&mut link);
                        }
                    }
                    Some(cmd) => {
                        if let Err(end) = self.on_command(&mut link, cmd) {
                            break end;
                        }
                        // Take whatever else is queued now, so that it goes out in one write.
                        let mut batch = 1;
                        while batch < COMMAND_BATCH && link.out.len() < WRITE_CHUNK {
                            let Ok(cmd) = self.commands.try_recv() else { break };
                            batch += 1;
                            if let Err(end) = self.on_command(&mut link, cmd) {
                                break 'conn end;
                            }
                        }
                    }
                },
                _ = tokio::time::sleep_until(ping_at) => {
                    link.send_frame(RequestHeader { xid: xid::PING, op: OpCode::Ping }, &[]);
                }
                _ = tokio::time::sleep_until(dead_at) => {
                    break ConnEnd::Disconnected(format!("no response from the server for {read_timeout:?}"));
                }
                found = super::probe::found(seek.as_mut()), if seek.is_some() => {
                    self.host_cursor = found;
                    let host = self.config.hosts.get(found).map(ToString::to_string).unwrap_or_default();
                    break ConnEnd::ReadWriteFound(format!("read/write server found at {host}"));
                }
            }
        };

        // Whatever was in flight is lost with the connection.
        let closing = link.close_xid.is_some();
        metrics::gauge!(crate::metrics::REQUESTS_IN_FLIGHT).decrement(link.in_flight.len() as f64);
        for f in link.in_flight.drain(..) {
            let err = if closing { Error::Closed } else { Error::ConnectionLoss };
            let _ = f.pending.reply.send(Err(err));
        }
        match end {
            ConnEnd::Disconnected(_) | ConnEnd::ReadWriteFound(_) if closing => ConnEnd::Terminal(Terminal::Closed),
            end => end,
        }
    }

    fn on_command(&mut self, link: &mut Link, cmd: Command) -> Result<(), ConnEnd> {
        match cmd {
            Command::Request(pending) => {
                if link.close_xid.is_some() {
                    let _ = pending.reply.send(Err(Error::Closed));
                } else {
                    link.send_request(pending);
                }
            }
            Command::AddAuth { scheme, auth, reply } => {
                let packet = AuthPacket { auth_type: 0, scheme: scheme.clone(), auth: auth.clone() };
                link.send_frame(RequestHeader { xid: xid::AUTH, op: OpCode::Auth }, &packet.to_bytes());
                self.auths.push(super::AuthEntry { scheme, auth, waiter: Some(reply) });
                link.auth_in_flight.push_back(self.auths.len() - 1);
            }
            Command::RemoveWatcher { path, kind, id } => self.remove_watcher(link, path, kind, id),
            Command::WatchCount(reply) => {
                let _ = reply.send(self.watches.len());
            }
            Command::Disconnect => return Err(ConnEnd::Disconnected("disconnect requested".into())),
            Command::UpdateHosts(hosts) => {
                if !self.set_hosts(hosts) {
                    return Err(ConnEnd::Disconnected("the server left the host list".into()));
                }
            }
            Command::Close(reply) => {
                self.closers.push(reply);
                if link.close_xid.is_none() {
                    send_close(link);
                }
            }
        }
        Ok(())
    }

    fn on_frame(&mut self, link: &mut Link, mut frame: Bytes) -> Result<(), ConnEnd> {
        let protocol = |what: String| ConnEnd::Disconnected(format!("protocol error: {what}"));
        let header = ReplyHeader::read(&mut frame).map_err(|e| protocol(format!("bad reply header: {e}")))?;
        if header.zxid > self.last_zxid {
            self.last_zxid = header.zxid;
            self.shared.update_info(|info| info.last_zxid = header.zxid);
        }
        match header.xid {
            xid::NOTIFICATION => {
                let event = WatcherEvent::read(&mut frame).map_err(|e| protocol(format!("bad notification: {e}")))?;
                let config = event.path == super::watch::CONFIG_NODE;
                if config {
                    let config = WatchedEvent {
                        event_type: event.event_type,
                        state: event.state,
                        path: event.path.clone(),
                        zxid: header.zxid,
                    };
                    self.watches.dispatch_config(&config);
                }
                // With a chroot the configuration is outside it: only its own watches wanted it.
                if !config || self.shared.chroot.root().is_none() {
                    let event = WatchedEvent {
                        event_type: event.event_type,
                        state: event.state,
                        path: self.shared.chroot.strip(&event.path),
                        zxid: header.zxid,
                    };
                    tracing::debug!(event = ?event.event_type, path = %event.path, "notification");
                    self.watches.dispatch(&event);
                }
            }
            xid::PING => {}
            xid::AUTH => {
                let index = link.auth_in_flight.pop_front();
                let waiter = index.and_then(|i| self.auths.get_mut(i)).and_then(|e| e.waiter.take());
                if header.err == ErrorCode::AuthFailed {
                    tracing::warn!("authentication failed");
                    if let Some(w) = waiter {
                        let _ = w.send(Err(Error::AuthFailed));
                    }
                    return Err(ConnEnd::Terminal(Terminal::AuthFailed));
                }
                if let Some(w) = waiter {
                    let _ =
                        w.send(if header.err == ErrorCode::Ok { Ok(()) } else { Err(Error::server(header.err, "")) });
                }
            }
            xid::SET_WATCHES => {
                if header.err != ErrorCode::Ok {
                    tracing::warn!(err = %header.err, "restoring watches failed");
                }
            }
            xid => {
                let Some(front) = link.in_flight.pop_front() else {
                    return Err(protocol(format!("reply for xid {xid} with nothing in flight")));
                };
                if front.xid != xid {
                    metrics::gauge!(crate::metrics::REQUESTS_IN_FLIGHT).decrement(1.0);
                    let _ = front.pending.reply.send(Err(Error::ConnectionLoss));
                    return Err(protocol(format!("reply xid {xid}, expected {}", front.xid)));
                }
                let InFlight { pending, sent, .. } = front;
                let Pending { op, path, reply, watch, after, .. } = pending;
                let label = crate::metrics::op_label(op);
                metrics::gauge!(crate::metrics::REQUESTS_IN_FLIGHT).decrement(1.0);
                metrics::histogram!(crate::metrics::REQUEST_DURATION_SECONDS, "op" => label).record(sent.elapsed());
                tracing::trace!(xid, ?op, err = %header.err, "reply");
                if header.err == ErrorCode::Ok {
                    let response = match Response::read_body(op, &mut frame) {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = reply.send(Err(Error::ConnectionLoss));
                            return Err(protocol(format!("bad {op:?} reply: {e}")));
                        }
                    };
                    if let Some(w) = watch {
                        self.register_watch(link, w);
                    }
                    if let AfterReply::RemoveLocal { path, watcher_type } = after {
                        self.watches.remove_matching(&path, watcher_type);
                    }
                    let _ = reply.send(Ok(response));
                } else {
                    // exists on a missing node still leaves a watch: that is how NodeCreated arrives.
                    if header.err == ErrorCode::NoNode
                        && let Some(w) = watch.filter(|w| w.kind == crate::session::watch::WatchKind::Exist)
                    {
                        self.register_watch(link, w);
                    }
                    let _ = reply.send(Err(Error::server(header.err, path)));
                }
                if link.close_xid == Some(xid) {
                    return Err(ConnEnd::Terminal(Terminal::Closed));
                }
            }
        }
        Ok(())
    }

    /// Registers the watch a successful request has set. If its watcher was dropped while the
    /// request was in flight (the caller gave up on the request), nobody would receive the
    /// event: the watch is removed again at once, the server's side included unless another
    /// watcher still needs it, as if the watcher had been dropped after the reply.
    fn register_watch(&mut self, link: &mut Link, w: crate::session::watch::WatchRegistration) {
        if w.sender.is_closed() {
            let (path, kind, id) = (w.path.clone(), w.kind, w.id);
            self.watches.register(w);
            self.remove_watcher(link, path, kind, id);
        } else {
            self.watches.register(w);
        }
    }

    /// Removes a dropped watcher, and the server's watch when no other watcher needs it.
    fn remove_watcher(&mut self, link: &mut Link, path: String, kind: WatchKind, id: u64) {
        // A watching request in flight on the same path sets the same server-side watch
        // before this removal would be applied, and registers its watcher only when its
        // reply arrives: removing the server's watch now would leave that watcher
        // waiting for an event that never comes. Keep the server's watch then.
        let wanted = link.in_flight.iter().filter_map(|f| f.pending.watch.as_ref());
        let wanted: Vec<WatchKind> = wanted.filter(|w| w.path == path).map(|w| w.kind).collect();
        if let Some(watcher_type) = self.watches.remove(&path, kind, id)
            && !wanted.iter().any(|w| w.server_type() == watcher_type || watcher_type == WatcherType::Any)
        {
            // Fire and forget: NoWatcher (it fired meanwhile) is fine.
            let server_path = super::watch::server_path(&self.shared.chroot, &path);
            let body = Request::RemoveWatches(WatchesRequest { path: server_path, watcher_type });
            let mut buf = BytesMut::new();
            body.write_body(&mut buf);
            let (reply, _) = oneshot::channel();
            link.send_request(Pending {
                op: OpCode::RemoveWatches,
                body: buf.freeze(),
                path,
                reply,
                watch: None,
                after: AfterReply::Nothing,
            });
        }
    }

    /// Sends setWatches (or setWatches2 when persistent watches exist), cut under the frame
    /// limit, so that changes made while disconnected fire at once.
    fn restore_watches(&mut self, link: &mut Link) {
        let chroot = self.shared.chroot.clone();
        let set = self.watches.watch_set(|p| super::watch::server_path(&chroot, p));
        let total = set.data.len() + set.exist.len() + set.child.len() + set.persistent.len() + set.recursive.len();
        if total == 0 {
            return;
        }
        tracing::debug!(total, relative_zxid = self.last_zxid, "restoring watches");
        let v2 = !set.persistent.is_empty() || !set.recursive.is_empty();
        let lists = [set.data, set.exist, set.child, set.persistent, set.recursive];
        let mut batch: [Vec<String>; 5] = Default::default();
        let mut size = 0;
        for (i, list) in lists.into_iter().enumerate() {
            for path in list {
                if size + path.len() > SET_WATCHES_BATCH && size > 0 {
                    self.send_set_watches(link, v2, std::mem::take(&mut batch));
                    size = 0;
                }
                size += path.len();
                batch[i].push(path);
            }
        }
        if size > 0 {
            self.send_set_watches(link, v2, batch);
        }
    }

    fn send_set_watches(&self, link: &mut Link, v2: bool, batch: [Vec<String>; 5]) {
        let [data, exist, child, persistent, recursive] = batch;
        let relative_zxid = self.last_zxid;
        if v2 {
            let record = SetWatches2 {
                relative_zxid,
                data_watches: data,
                exist_watches: exist,
                child_watches: child,
                persistent_watches: persistent,
                persistent_recursive_watches: recursive,
            };
            link.send_frame(RequestHeader { xid: xid::SET_WATCHES, op: OpCode::SetWatches2 }, &record.to_bytes());
        } else {
            let record = SetWatches { relative_zxid, data_watches: data, exist_watches: exist, child_watches: child };
            link.send_frame(RequestHeader { xid: xid::SET_WATCHES, op: OpCode::SetWatches }, &record.to_bytes());
        }
    }
}

fn send_close(link: &mut Link) {
    let (reply, _) = oneshot::channel();
    link.send_request(Pending {
        op: OpCode::CloseSession,
        body: Bytes::new(),
        path: String::new(),
        reply,
        watch: None,
        after: AfterReply::Nothing,
    });
}
