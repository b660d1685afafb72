//! The state every member of a server (or of a simulated cluster) shares: the tree, the
//! sessions, the watches and the connections, behind one mutex.
//!
//! The mutex is held for the few microseconds a request takes and never across an `.await`.
//! zxids are assigned under it, so writes are totally ordered; replies and notifications are
//! handed to each connection under it too, so a notification always goes out ahead of the
//! reply to any later request of that connection (notifications are queued on the
//! connection's channel; a reply skips the channel only when nothing is queued on it, see
//! `conn::send_reply`).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use corral_proto::{
    ErrorCode, EventType, Id, Jute, KeeperState, Perms, ReplyHeader, Response, WatcherEvent, encode_frame, xid,
};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::acl::Authz;
use crate::config::Config;
use crate::persist::{Journal, TxnBody, TxnHeader, TxnOp, op};
use crate::session::SessionTracker;
use crate::tree::DataTree;
use crate::txn::{Change, Txn};
use crate::watch::Watches;

/// Identifies one client connection for the lifetime of the server.
pub(crate) type ConnId = u64;

/// A hash map keyed by ids the server hands out itself (connection and session ids).
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;
/// A hash set of ids the server hands out itself.
pub(crate) type IdSet<K> = HashSet<K, BuildHasherDefault<IdHasher>>;

/// A multiplicative hash (rustc's Fx) for integer ids. The server assigns every id these maps
/// are keyed by, so no peer can choose keys that collide, and SipHash's protection is not
/// needed. Every request looks its connection and session up, so the hash is on the hot path.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|&b| self.write_u64(u64::from(b)));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
}

/// What a connection task is asked to do.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// Write this whole frame (length prefix included).
    Frame(Bytes),
    /// Flush what was queued before, then close the connection.
    Close,
}

/// Latency figures in ms, as `srvr` and `mntr` report them.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Latency {
    count: u64,
    total: u64,
    min: Option<u64>,
    max: u64,
}

impl Latency {
    pub(crate) fn record(&mut self, ms: u64) {
        self.count += 1;
        self.total += ms;
        self.min = Some(self.min.map_or(ms, |m| m.min(ms)));
        self.max = self.max.max(ms);
    }
    pub(crate) fn min(&self) -> u64 {
        self.min.unwrap_or(0)
    }
    pub(crate) fn max(&self) -> u64 {
        self.max
    }
    pub(crate) fn avg(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.total as f64 / self.count as f64 }
    }
}

/// One live connection, as the shared state sees it.
#[derive(Debug)]
pub(crate) struct ConnInfo {
    pub(crate) tx: mpsc::UnboundedSender<Outgoing>,
    pub(crate) member: usize,
    pub(crate) peer: String,
    pub(crate) peer_ip: String,
    pub(crate) session: Option<i64>,
    pub(crate) timeout_ms: i32,
    /// The connection's identities. Behind an `Arc` so that a request takes them along
    /// without copying (auth packets, which add to them, are rare).
    pub(crate) auth: Arc<Vec<Id>>,
    pub(crate) received: u64,
    pub(crate) sent: u64,
    pub(crate) established: i64,
    pub(crate) last_op: &'static str,
    pub(crate) last_cxid: i32,
    pub(crate) last_zxid: i64,
    pub(crate) last_response: i64,
    pub(crate) last_latency: u64,
    pub(crate) latency: Latency,
}

impl ConnInfo {
    /// Queues a frame on the connection's channel. Returns whether the connection task is still
    /// there to take it (then the frame counts as sent).
    pub(crate) fn queue(&mut self, frame: Bytes) -> bool {
        let queued = self.tx.send(Outgoing::Frame(frame)).is_ok();
        if queued {
            self.sent += 1;
        }
        queued
    }

    /// Records a request answered in `elapsed_ms`, for `cons`.
    pub(crate) fn record(&mut self, op: &'static str, xid: i32, zxid: i64, wall: i64, elapsed_ms: u64) {
        self.last_op = op;
        self.last_cxid = xid;
        self.last_zxid = zxid;
        self.last_response = wall;
        self.last_latency = elapsed_ms;
        self.latency.record(elapsed_ms);
    }
}

/// Tree, sessions, watches and connections.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) tree: DataTree,
    pub(crate) sessions: SessionTracker,
    pub(crate) watches: Watches,
    pub(crate) conns: IdMap<ConnId, ConnInfo>,
    next_conn: ConnId,
    /// The last zxid assigned.
    pub(crate) zxid: i64,
    pub(crate) received: u64,
    pub(crate) sent: u64,
    pub(crate) latency: Latency,
    /// False while a whole (single-member) server is stopped: sessions do not expire then.
    pub(crate) expiry_enabled: bool,
    /// When recent ConnectRequests arrived (the newest [`HANDSHAKE_LOG`] of them), for the test
    /// kit's connection-rate measurements.
    pub(crate) handshakes: std::collections::VecDeque<Instant>,
    /// The transaction log, when the server has a data directory.
    pub(crate) journal: Option<Journal>,
}

/// Who a transaction is for, as its log header names it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Origin {
    /// The session (0 for the server's own transactions).
    pub(crate) session: i64,
    /// The request's xid.
    pub(crate) xid: i32,
}

/// How many handshake times the server remembers.
pub(crate) const HANDSHAKE_LOG: usize = 65_536;

/// The shared state plus what every task of the server needs next to it.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    pub(crate) config: Config,
    /// The origin of the monotonic millisecond clock used for expiry buckets.
    pub(crate) start: Instant,
    /// Wakes the session expirer when an earlier bucket may exist.
    pub(crate) expirer_wake: Notify,
    /// The last zxid on disk, with a data directory: nothing that reflects a later one may
    /// leave the server (see `conn`).
    pub(crate) durable: Option<tokio::sync::watch::Receiver<i64>>,
}

impl Shared {
    pub(crate) fn new(config: Config) -> Self {
        Self::with(config, None, None)
    }

    /// A server restored from its data directory, with the log to append to.
    pub(crate) fn restored(
        config: Config,
        restored: crate::persist::Restored,
        journal: Journal,
        durable: tokio::sync::watch::Receiver<i64>,
    ) -> Self {
        Self::with(config, Some((restored, journal)), Some(durable))
    }

    fn with(
        config: Config,
        restored: Option<(crate::persist::Restored, Journal)>,
        durable: Option<tokio::sync::watch::Receiver<i64>>,
    ) -> Self {
        let start_wall = config.clock.now_ms();
        let start = Instant::now();
        let mut sessions = SessionTracker::new(config.server_id, start_wall, config.tick_ms());
        let (tree, zxid, journal) = match restored {
            None => (DataTree::new(), 0, None),
            Some((restored, journal)) => {
                sessions.set_secret(restored.secret);
                for (id, timeout) in &restored.sessions {
                    sessions.restore(*id, *timeout, 0);
                }
                (restored.tree, restored.zxid, Some(journal))
            }
        };
        let state = State {
            tree,
            sessions,
            watches: Watches::default(),
            conns: IdMap::default(),
            next_conn: 1,
            zxid,
            received: 0,
            sent: 0,
            latency: Latency::default(),
            expiry_enabled: true,
            handshakes: std::collections::VecDeque::new(),
            journal,
        };
        Self { state: Mutex::new(state), config, start, expirer_wake: Notify::new(), durable }
    }

    /// Locks the state. A panic while locked cannot leave it half-written in a way later
    /// requests would trip over more than the panic itself, so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Milliseconds since the server started, on the monotonic (tokio) clock.
    pub(crate) fn now_ms(&self) -> u64 {
        self.ms_at(Instant::now())
    }

    /// [`Shared::now_ms`] at `instant`.
    pub(crate) fn ms_at(&self, instant: Instant) -> u64 {
        u64::try_from(instant.saturating_duration_since(self.start).as_millis()).unwrap_or(u64::MAX)
    }

    /// Wall-clock milliseconds since the epoch.
    pub(crate) fn wall_ms(&self) -> i64 {
        self.config.clock.now_ms()
    }

    /// Expires every session whose bucket has passed. Returns how many expired.
    pub(crate) fn expire_due(&self) -> usize {
        let now = self.now_ms();
        let wall = self.wall_ms();
        let mut state = self.lock();
        if !state.expiry_enabled {
            return 0;
        }
        let expired = state.sessions.take_expired(now);
        for id in &expired {
            tracing::info!(session = format_args!("{id:#x}"), "session expired");
            state.end_session(*id, wall, &self.config, true);
        }
        expired.len()
    }
}

/// Encodes a reply frame: the header, then the body only when `err` is OK.
pub(crate) fn encode_reply(xid: i32, zxid: i64, err: ErrorCode, body: Option<&Response>) -> Bytes {
    let mut buf = BytesMut::new();
    encode_reply_into(&mut buf, xid, zxid, err, body);
    buf.freeze()
}

/// Appends a reply frame to `buf`, as [`encode_reply`] encodes it.
pub(crate) fn encode_reply_into(buf: &mut BytesMut, xid: i32, zxid: i64, err: ErrorCode, body: Option<&Response>) {
    encode_frame(buf, |b| {
        ReplyHeader { xid, zxid, err }.write(b);
        if err == ErrorCode::Ok
            && let Some(body) = body
        {
            body.write_body(b);
        }
    });
}

/// Encodes a watch notification. The header zxid is −1, as ZooKeeper ≤ 3.8 sends it.
pub(crate) fn encode_notification(event_type: EventType, path: &str) -> Bytes {
    let mut buf = BytesMut::new();
    encode_frame(&mut buf, |b| {
        ReplyHeader { xid: xid::NOTIFICATION, zxid: -1, err: ErrorCode::Ok }.write(b);
        WatcherEvent { event_type, state: KeeperState::SyncConnected, path: path.to_owned() }.write(b);
    });
    buf.freeze()
}

impl State {
    /// Assigns the next zxid.
    pub(crate) fn next_zxid(&mut self) -> i64 {
        self.zxid += 1;
        self.zxid
    }

    /// Appends transaction `zxid` to the log, if the server has one. Every zxid assigned must
    /// be logged, in order, under the same hold of the lock.
    pub(crate) fn log(&mut self, origin: Origin, zxid: i64, time: i64, body: TxnBody) {
        let Some(journal) = &mut self.journal else {
            return;
        };
        let kind = match &body {
            TxnBody::Op(op) => op.opcode(),
            TxnBody::CreateSession { .. } => op::CREATE_SESSION,
            TxnBody::CloseSession { .. } => op::CLOSE_SESSION,
            TxnBody::Multi(_) => op::MULTI,
        };
        journal.append(&TxnHeader { client_id: origin.session, cxid: origin.xid, zxid, time, kind }, &body);
    }

    /// Consumes a zxid for a write that failed before it touched anything, and logs it as
    /// failed (ZooKeeper's ErrorTxn). Returns the zxid.
    pub(crate) fn fail(&mut self, origin: Origin, wall: i64, code: ErrorCode) -> i64 {
        let zxid = self.next_zxid();
        self.log(origin, zxid, wall, TxnBody::Op(TxnOp::Error(code.code())));
        zxid
    }

    /// Whether transactions are logged (so they should record what they do).
    pub(crate) fn journaling(&self) -> bool {
        self.journal.is_some()
    }

    /// Registers a new connection and returns its id.
    pub(crate) fn register_conn(
        &mut self,
        tx: mpsc::UnboundedSender<Outgoing>,
        member: usize,
        peer: String,
        peer_ip: String,
        now: i64,
    ) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        self.conns.insert(
            id,
            ConnInfo {
                tx,
                member,
                auth: Arc::new(vec![Id::new("ip", peer_ip.clone())]),
                peer,
                peer_ip,
                session: None,
                timeout_ms: 0,
                received: 0,
                sent: 0,
                established: now,
                last_op: "NA",
                last_cxid: -1,
                last_zxid: -1,
                last_response: 0,
                last_latency: 0,
                latency: Latency::default(),
            },
        );
        id
    }

    /// Every connection, in the order they were made (for the four-letter words).
    pub(crate) fn conns_in_order(&self) -> Vec<(ConnId, &ConnInfo)> {
        let mut conns: Vec<(ConnId, &ConnInfo)> = self.conns.iter().map(|(id, info)| (*id, info)).collect();
        conns.sort_unstable_by_key(|(id, _)| *id);
        conns
    }

    /// Queues a frame on a connection.
    pub(crate) fn send(&mut self, conn: ConnId, frame: Bytes) {
        if let Some(info) = self.conns.get_mut(&conn)
            && info.queue(frame)
        {
            self.sent += 1;
        }
    }

    /// Forgets a connection: its watches go, and its session (if any) is left without one.
    /// Idempotent.
    pub(crate) fn detach_conn(&mut self, conn: ConnId) {
        let Some(info) = self.conns.remove(&conn) else {
            return;
        };
        self.watches.remove_conn(conn);
        if let Some(session) = info.session.and_then(|id| self.sessions.get_mut(id))
            && session.conn == Some(conn)
        {
            session.conn = None;
        }
    }

    /// Asks a connection to close (after what is already queued) and forgets it.
    pub(crate) fn close_conn(&mut self, conn: ConnId) {
        if let Some(info) = self.conns.get(&conn) {
            let _ = info.tx.send(Outgoing::Close);
        }
        self.detach_conn(conn);
    }

    /// Closes every connection of member `member` (after what is already queued on each).
    pub(crate) fn close_member_conns(&mut self, member: usize) {
        let mine: Vec<ConnId> =
            self.conns_in_order().into_iter().filter(|(_, c)| c.member == member).map(|(id, _)| id).collect();
        mine.into_iter().for_each(|id| self.close_conn(id));
    }

    /// Forgets the read-only sessions member `member` granted (it left read-only mode or
    /// stopped: a ZooKeeper server loses its local sessions when it restarts). They own no
    /// ephemerals, so nothing else changes. Returns how many there were.
    pub(crate) fn drop_local_sessions(&mut self, member: usize) -> usize {
        let ids = self.sessions.local_to(member);
        for id in &ids {
            if let Some(conn) = self.sessions.remove(*id).and_then(|s| s.conn) {
                self.close_conn(conn);
            }
        }
        ids.len()
    }

    /// Ends a session (expiry or closeSession): one transaction deletes its ephemerals (their
    /// watches fire), the session is forgotten, and with `close` its connection is closed.
    /// Returns the zxid of that transaction. A read-only session has no ephemerals and, as a
    /// local session in ZooKeeper, ends without a transaction: the last zxid is returned.
    pub(crate) fn end_session(&mut self, id: i64, wall: i64, config: &Config, close: bool) -> i64 {
        self.sessions.set_closing(id);
        if self.sessions.get(id).is_some_and(|s| s.local_to.is_some()) {
            if let Some(conn) = self.sessions.remove(id).and_then(|s| s.conn)
                && close
            {
                self.close_conn(conn);
            }
            return self.zxid;
        }
        let zxid = self.next_zxid();
        let journaling = self.journaling();
        let mut txn = Txn::single(&mut self.tree, zxid, wall, config.extended_types).recording(journaling);
        txn.delete_ephemerals(id);
        let paths = txn
            .take_ops()
            .into_iter()
            .filter_map(|op| match op {
                TxnOp::Delete { path, .. } => Some(path),
                _ => None,
            })
            .collect();
        let changes = txn.commit();
        self.log(Origin { session: id, xid: 0 }, zxid, wall, TxnBody::CloseSession { paths });
        self.deliver(&changes);
        if let Some(session) = self.sessions.remove(id)
            && let Some(conn) = session.conn
            && close
        {
            self.close_conn(conn);
        }
        zxid
    }

    /// Fires the watches of committed changes and queues the notifications, filtered by READ
    /// permission on the node (on the parent for NodeChildrenChanged).
    pub(crate) fn deliver(&mut self, changes: &[Change]) {
        for change in changes {
            let (event, path, acl) = match change {
                Change::Created(p, acl) => (EventType::NodeCreated, p, acl),
                Change::Deleted(p, acl) => (EventType::NodeDeleted, p, acl),
                Change::DataChanged(p, acl) => (EventType::NodeDataChanged, p, acl),
                Change::ChildrenChanged(p, acl) => (EventType::NodeChildrenChanged, p, acl),
            };
            for conn in self.watches.trigger(event, path) {
                let allowed = self.conns.get(&conn).is_some_and(|info| Authz::new(&info.auth).allows(acl, Perms::READ));
                if allowed {
                    tracing::trace!(conn, ?event, path = %path, "notification");
                    self.send(conn, encode_notification(event, path));
                }
            }
        }
    }

    /// Runs one write transaction: assigns a zxid, applies `f`, and commits (delivering the
    /// watch events) or rolls back. Failed writes consume a zxid, as in ZooKeeper. `f` is a
    /// single operation that checks everything before it changes anything (there is no undo log).
    pub(crate) fn write<T>(
        &mut self,
        wall: i64,
        extended_types: bool,
        origin: Origin,
        f: impl FnOnce(&mut Txn<'_>) -> Result<T, ErrorCode>,
    ) -> (i64, Result<T, ErrorCode>) {
        let zxid = self.next_zxid();
        let journaling = self.journaling();
        // Single operations validate before changing anything: no undo log needed.
        let mut txn = Txn::single(&mut self.tree, zxid, wall, extended_types).recording(journaling);
        let result = f(&mut txn);
        match result {
            Ok(value) => {
                let ops = txn.take_ops();
                let changes = txn.commit();
                // A successful write records exactly one operation.
                let op = ops.into_iter().next().unwrap_or(TxnOp::Error(0));
                self.log(origin, zxid, wall, TxnBody::Op(op));
                self.deliver(&changes);
                (zxid, Ok(value))
            }
            Err(code) => {
                txn.rollback();
                self.log(origin, zxid, wall, TxnBody::Op(TxnOp::Error(code.code())));
                (zxid, Err(code))
            }
        }
    }

    /// Deletes the containers and TTL nodes that are due, each in its own deleteContainer
    /// transaction. Returns how many were deleted.
    pub(crate) fn sweep(&mut self, wall: i64, config: &Config) -> usize {
        let never_used = i64::try_from(config.container_max_never_used.as_millis()).unwrap_or(i64::MAX);
        let due: Vec<String> = self
            .tree
            .iter()
            .filter(|(_, n)| n.children.is_empty())
            .filter(|(_, n)| match n.kind {
                crate::tree::NodeKind::Container => {
                    n.child_creates > 0 || (never_used != 0 && wall.saturating_sub(n.mtime) > never_used)
                }
                crate::tree::NodeKind::Ttl(ttl) => ttl != 0 && wall.saturating_sub(n.mtime) > ttl,
                _ => false,
            })
            .map(|(p, _)| p.clone())
            .collect();
        let mut deleted = 0;
        for path in due {
            let (_, result) =
                self.write(wall, config.extended_types, Origin::default(), |txn| txn.delete_container(&path));
            if result.is_ok() {
                tracing::debug!(path = %path, "swept container or TTL node");
                deleted += 1;
            }
        }
        deleted
    }
}
