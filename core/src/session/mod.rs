//! The session task: the one task that owns the connection, the session and the watches.
//!
//! Client handles send [`Command`]s over an unbounded channel (so a request is ordered when its
//! future is created) and get replies over oneshot channels. The task connects (trying every
//! host in turn, with a jittered pause between full rounds), replays credentials and watches
//! after each reconnect, pipelines requests, pings when idle, declares the connection dead after
//! 2T/3 of silence, and stops for good on expiry, authentication failure or close. Every change
//! of the session's state goes through one function, `Shared::transition`, which publishes the
//! state and its event together and never leaves a terminal state.
//!
//! # The reconnect story, in order
//!
//! 1. **The connection drops** (read or write error, the server closed it, or nothing arrived
//!    for 2T/3 — `io.rs`). Requests in flight fail with `ConnectionLoss` (their fate on the
//!    server is unknown); the state becomes Connecting and `Disconnected` is published
//!    (`SessionTask::run`). A connection that died right after its handshake counts as a quick
//!    drop: the next attempt waits a jittered pause that doubles with each quick drop in a row.
//! 2. **Requests made meanwhile are queued** in order (`serve_disconnected`), each for at most
//!    the connection timeout (then it fails with `ConnectionLoss`); credentials added meanwhile
//!    are kept for the next connection, and dropped watchers are forgotten locally.
//! 3. **Hosts are tried in turn** (`connect_phase`), each within the per-host connect timeout,
//!    with a jittered exponential pause (50 ms → 2 s) after every full round that failed. A TCP
//!    handshake to an address the builder's clients have connected to before is given only a
//!    few times its usual time (at least 50 ms, doubling while unanswered): a server with a full
//!    accept queue drops SYNs, and the kernel would send them again only after 1 s and 3 s,
//!    bringing a herd back in waves (`transport::ConnectPacing`). Each attempt sends the
//!    session id and password, the last zxid seen and the timeout (`connect.rs`; over TLS when
//!    configured).
//! 4. **The handshake answers**: timeout 0 means the session is expired — the task ends in
//!    Expired (never quietly a new session: that is the framework's decision); otherwise the
//!    session goes on, possibly on another server, with the negotiated timeout.
//! 5. **Before any request** (`connection_phase`): the SASL exchange alone on the wire, if
//!    configured; then every credential (`addAuth`) again; then every registered watch —
//!    one-shot, persistent and recursive — with setWatches/setWatches2 relative to the last
//!    zxid seen, so a change made between the two connections fires at once
//!    (`restore_watches`, the registry in [`watch`]); then the queued requests, in the order
//!    they were made.
//! 6. **Connected is published** (or ConnectedReadOnly), with whether the session was resumed;
//!    pings resume after T/3 of idleness.

mod connect;
mod io;
pub(crate) mod probe;
mod sasl;
pub(crate) mod watch;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::Bytes;
use corral_proto::{KeeperState, OpCode, Response};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use self::watch::{WatchKind, WatchRegistration, WatchRegistry};
use crate::connect_string::{Chroot, HostPort};
use crate::error::{Error, Result};
use crate::state::{SessionEvent, SessionInfo, SessionState};

pub(crate) use connect::HandshakeParams;

/// Settings the task runs with, fixed at build time.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) hosts: Vec<HostPort>,
    pub(crate) session_timeout: Duration,
    /// Per-host connection attempt limit; `None` = session timeout / number of hosts.
    pub(crate) connect_timeout: Option<Duration>,
    /// How long a request made while disconnected waits for a connection.
    pub(crate) connection_timeout: Duration,
    pub(crate) read_only: bool,
    pub(crate) max_frame: usize,
    /// How connections are opened: TCP or a custom connector, then TLS if configured.
    pub(crate) dialer: crate::transport::Dialer,
    /// The SASL login run at the start of every connection.
    pub(crate) sasl: Option<crate::sasl::Sasl>,
}

/// State shared between the task and the client handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: tokio::sync::watch::Sender<SessionState>,
    pub(crate) info: std::sync::Mutex<SessionInfo>,
    pub(crate) subscribers: std::sync::Mutex<Vec<mpsc::UnboundedSender<SessionEvent>>>,
    pub(crate) chroot: Chroot,
    pub(crate) max_frame: usize,
    pub(crate) next_watch_id: AtomicU64,
    /// How connections are opened (for four-letter words, outside the session task).
    pub(crate) dialer: crate::transport::Dialer,
    /// The host of the current connection, else of the last attempt; the first host before any.
    pub(crate) host: std::sync::Mutex<HostPort>,
    /// The last connection attempt's TLS failure, cleared by a connection: what
    /// [`crate::ClientBuilder::connect`] reports instead of a bare timeout.
    pub(crate) tls_failure: std::sync::Mutex<Option<String>>,
    /// Why the SASL mechanism gave up, when it was not the server refusing the credentials.
    pub(crate) sasl_failure: std::sync::Mutex<Option<String>>,
}

impl Shared {
    /// The one place the session's state changes: the state channel (a watcher sees a change
    /// only when the state really changes) and, with it, the event for the event streams. A
    /// terminal state stays terminal: nothing after Closed, Expired or AuthFailed is published.
    pub(crate) fn transition(&self, state: SessionState, event: Option<SessionEvent>) {
        let mut from_terminal = false;
        self.state.send_if_modified(|current| {
            if current.is_terminal() {
                from_terminal = true;
                return false;
            }
            let changed = *current != state;
            *current = state;
            changed
        });
        if from_terminal {
            tracing::debug!(?state, "ignoring a transition after the session ended");
            return;
        }
        if let Some(event) = event {
            let mut subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
            subs.retain(|tx| tx.send(event.clone()).is_ok());
        }
    }

    pub(crate) fn info(&self) -> SessionInfo {
        self.info.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update_info(&self, f: impl FnOnce(&mut SessionInfo)) {
        f(&mut self.info.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// What happens to local watches once a request succeeds.
#[derive(Debug)]
pub(crate) enum AfterReply {
    Nothing,
    /// removeWatches succeeded: end the matching local watchers.
    RemoveLocal {
        path: String,
        watcher_type: corral_proto::WatcherType,
    },
}

/// A request on its way to the server.
pub(crate) struct Pending {
    pub(crate) op: OpCode,
    /// The encoded request body (chroot applied).
    pub(crate) body: Bytes,
    /// The client-side path, for error reports.
    pub(crate) path: String,
    pub(crate) reply: oneshot::Sender<Result<Response>>,
    pub(crate) watch: Option<WatchRegistration>,
    pub(crate) after: AfterReply,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("op", &self.op).field("path", &self.path).finish_non_exhaustive()
    }
}

/// A message from a client handle to the session task.
pub(crate) enum Command {
    Request(Pending),
    AddAuth {
        scheme: String,
        auth: Bytes,
        reply: oneshot::Sender<Result<()>>,
    },
    RemoveWatcher {
        path: String,
        kind: WatchKind,
        id: u64,
    },
    WatchCount(oneshot::Sender<usize>),
    /// Drop the current connection (the session stays); for tests and operators.
    Disconnect,
    /// A new host list (`Client::update_server_list`): later connections use it; the current
    /// one moves only if its server is not in it.
    UpdateHosts(Vec<HostPort>),
    Close(oneshot::Sender<()>),
}

/// A connection that ends sooner than this after its handshake counts as a quick drop.
const QUICK_DROP: Duration = Duration::from_millis(500);
/// The base of the jittered pause after quick drops in a row (doubles each time, up to 64×).
const QUICK_DROP_PAUSE: Duration = Duration::from_millis(10);

/// The longest pause between two failed rounds of hosts (Java's client sleeps at most 1 s).
const MAX_ROUND_PAUSE: Duration = Duration::from_secs(1);

/// The pause before the next round of hosts: the backoff's, but never more than
/// [`MAX_ROUND_PAUSE`] or a quarter of the session timeout — an outage shorter than the
/// session must not cost it — and still jittered once capped, so that clients that failed
/// together do not come back in step.
fn round_pause(backoff: Duration, session_timeout: Duration) -> Duration {
    let cap = MAX_ROUND_PAUSE.min(session_timeout / 4).max(Duration::from_millis(10));
    if backoff <= cap {
        return backoff;
    }
    let half = cap / 2;
    half + Duration::from_micros(fastrand::u64(0..=half.as_micros() as u64))
}

/// How the task ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Terminal {
    Closed,
    Expired,
    AuthFailed,
}

impl Terminal {
    fn state(self) -> SessionState {
        match self {
            Self::Closed => SessionState::Closed,
            Self::Expired => SessionState::Expired,
            Self::AuthFailed => SessionState::AuthFailed,
        }
    }

    fn keeper_state(self) -> KeeperState {
        match self {
            Self::Closed => KeeperState::Closed,
            Self::Expired => KeeperState::Expired,
            Self::AuthFailed => KeeperState::AuthFailed,
        }
    }

    pub(crate) fn error(self) -> Error {
        match self {
            Self::Closed => Error::Closed,
            Self::Expired => Error::SessionExpired,
            Self::AuthFailed => Error::AuthFailed,
        }
    }

    fn event(self) -> SessionEvent {
        match self {
            Self::Closed => SessionEvent::Closed,
            Self::Expired => SessionEvent::Expired,
            Self::AuthFailed => SessionEvent::AuthFailed,
        }
    }
}

/// Credentials to replay on every connection, with whoever waits for the first answer.
struct AuthEntry {
    scheme: String,
    auth: Bytes,
    waiter: Option<oneshot::Sender<Result<()>>>,
}

/// A request queued while no connection is up.
struct Queued {
    pending: Pending,
    deadline: Instant,
}

/// The session task's state.
pub(crate) struct SessionTask {
    config: Config,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
    watches: WatchRegistry,
    auths: Vec<AuthEntry>,
    queued: VecDeque<Queued>,
    host_cursor: usize,
    /// The index in `config.hosts` of the host of the current (or last) connection.
    connected_host: usize,
    /// Whether a read/write server has granted or resumed this session (Java's
    /// `seenRwServerBefore`). Until then the session is a read-only server's local session,
    /// which no other server knows: every handshake asks for a new session (id 0) instead of
    /// resuming it.
    seen_rw: bool,
    session_id: i64,
    password: Bytes,
    negotiated: Duration,
    last_zxid: i64,
    closers: Vec<oneshot::Sender<()>>,
}

impl SessionTask {
    pub(crate) fn new(
        mut config: Config,
        shared: Arc<Shared>,
        commands: mpsc::UnboundedReceiver<Command>,
        session: Option<(i64, Bytes)>,
        auths: Vec<(String, Bytes)>,
    ) -> Self {
        fastrand::shuffle(&mut config.hosts);
        // A session handed over by the caller is taken for a read/write one, as the Java
        // client does when given an id and password.
        let seen_rw = session.is_some();
        let (session_id, password) = session.unwrap_or((0, Bytes::new()));
        Self {
            config,
            shared,
            commands,
            watches: WatchRegistry::default(),
            auths: auths.into_iter().map(|(scheme, auth)| AuthEntry { scheme, auth, waiter: None }).collect(),
            queued: VecDeque::new(),
            host_cursor: 0,
            connected_host: 0,
            seen_rw,
            session_id,
            password,
            negotiated: Duration::ZERO,
            last_zxid: 0,
            closers: Vec::new(),
        }
    }

    /// Runs the session until it ends for good.
    pub(crate) async fn run(mut self) {
        // Connections that die right after the handshake (a server that accepts and closes, two
        // clients fighting over one session) must not turn into a tight reconnect loop: each
        // quick drop in a row doubles a jittered pause, as a failed round of hosts does.
        let mut quick_drops = 0u32;
        let terminal = loop {
            self.shared.transition(SessionState::Connecting, None);
            let conn = match self.connect_phase().await {
                Ok(conn) => conn,
                Err(terminal) => break terminal,
            };
            let connected_at = Instant::now();
            let moving = match self.connection_phase(conn).await {
                io::ConnEnd::Disconnected(reason) => {
                    tracing::info!(session_id = format_args!("{:#x}", self.session_id), %reason, "disconnected");
                    metrics::counter!(crate::metrics::DISCONNECTS_TOTAL).increment(1);
                    self.shared.transition(SessionState::Connecting, Some(SessionEvent::Disconnected { reason }));
                    false
                }
                io::ConnEnd::ReadWriteFound(reason) => {
                    tracing::info!(session_id = format_args!("{:#x}", self.session_id), %reason, "leaving the read-only server");
                    self.shared.transition(SessionState::Connecting, Some(SessionEvent::Disconnected { reason }));
                    true
                }
                io::ConnEnd::Terminal(terminal) => break terminal,
            };
            // Leaving a read-only server on purpose is no quick drop: go to the read/write one now.
            if !moving && connected_at.elapsed() < QUICK_DROP {
                quick_drops = (quick_drops + 1).min(6);
                let max = QUICK_DROP_PAUSE * (1 << quick_drops);
                let pause = Duration::from_micros(fastrand::u64(0..=max.as_micros() as u64));
                tracing::debug!(quick_drops, ?pause, "connection dropped right away; pausing before reconnecting");
                self.shared.transition(SessionState::Connecting, None);
                if let Err(terminal) = self.serve_disconnected(tokio::time::sleep(pause)).await {
                    break terminal;
                }
            } else {
                quick_drops = 0;
            }
        };
        self.finish(terminal);
    }

    /// Takes a new host list, in a random order as at the start (so that a fleet given the
    /// same list spreads over it). Returns whether the server of the current (or last)
    /// connection is in it; the cursor then goes on after it, else starts over.
    fn set_hosts(&mut self, mut hosts: Vec<HostPort>) -> bool {
        if hosts.is_empty() {
            tracing::warn!("ignoring an empty host list");
            return true;
        }
        let current = self.config.hosts.get(self.connected_host).cloned();
        fastrand::shuffle(&mut hosts);
        let kept = current.as_ref().and_then(|c| hosts.iter().position(|h| h == c));
        tracing::info!(
            hosts = %hosts.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            current_kept = kept.is_some(),
            "host list updated"
        );
        let n = hosts.len();
        self.config.hosts = hosts;
        match kept {
            Some(i) => {
                self.connected_host = i;
                self.host_cursor = (i + 1) % n;
                true
            }
            None => {
                self.connected_host = 0;
                self.host_cursor = 0;
                false
            }
        }
    }

    /// The negotiated session timeout, or the requested one before any handshake.
    fn timeout(&self) -> Duration {
        if self.negotiated.is_zero() { self.config.session_timeout } else { self.negotiated }
    }

    fn handshake_params(&self) -> HandshakeParams {
        // A session only read-only servers have seen is a local session of one of them: ask
        // for a new session instead (Java's ClientCnxn sends id 0 until seenRwServerBefore).
        let (session_id, password) =
            if self.seen_rw { (self.session_id, self.password.clone()) } else { (0, Bytes::new()) };
        HandshakeParams {
            session_id,
            password,
            last_zxid: self.last_zxid,
            timeout: self.config.session_timeout,
            read_only: self.config.read_only,
            max_frame: self.config.max_frame,
        }
    }

    /// Tries hosts in turn until one accepts the session, serving commands meanwhile.
    async fn connect_phase(&mut self) -> Result<connect::Connection, Terminal> {
        use backon::BackoffBuilder;
        let mut pauses = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(2))
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build();
        loop {
            for _ in 0..self.config.hosts.len() {
                // The list may change between attempts (`UpdateHosts`): index it afresh.
                let n = self.config.hosts.len();
                let index = self.host_cursor % n;
                let host = self.config.hosts[index].clone();
                self.host_cursor = (self.host_cursor + 1) % n;
                let params = self.handshake_params();
                let per_host = self.config.connect_timeout.unwrap_or_else(|| {
                    let t = self.timeout();
                    (t / n as u32).max(Duration::from_millis(100))
                });
                tracing::debug!(%host, ?per_host, "connecting");
                let dialer = self.config.dialer.clone();
                *self.shared.host.lock().unwrap_or_else(|e| e.into_inner()) = host.clone();
                let attempt = async move { connect::connect(&host, &dialer, &params, per_host).await };
                match self.serve_disconnected(attempt).await? {
                    Ok(connect::Handshake::Connected(conn)) => {
                        self.connected_host = index;
                        *self.shared.tls_failure.lock().unwrap_or_else(|e| e.into_inner()) = None;
                        return Ok(conn);
                    }
                    Ok(connect::Handshake::Expired { addr }) => {
                        tracing::warn!(%addr, session_id = format_args!("{:#x}", self.session_id), "session expired");
                        metrics::counter!(crate::metrics::SESSION_EXPIRIES_TOTAL).increment(1);
                        return Err(Terminal::Expired);
                    }
                    Err(failure) if failure.tls => {
                        // A configuration problem (an untrusted certificate, a missing client
                        // certificate): worth a warning, and what `connect` reports.
                        tracing::warn!(reason = %failure, "TLS connection attempt failed");
                        *self.shared.tls_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(failure.reason);
                    }
                    Err(failure) => tracing::debug!(reason = %failure, "connection attempt failed"),
                }
            }
            let pause = round_pause(pauses.next().unwrap_or(MAX_ROUND_PAUSE), self.timeout());
            tracing::debug!(?pause, "every host failed; pausing before the next round");
            self.serve_disconnected(tokio::time::sleep(pause)).await?;
        }
    }

    /// Drives `fut` to completion while queueing requests and answering other commands.
    async fn serve_disconnected<F: std::future::Future>(&mut self, fut: F) -> Result<F::Output, Terminal> {
        tokio::pin!(fut);
        loop {
            let next_deadline = self.queued.front().map(|q| q.deadline);
            tokio::select! {
                out = &mut fut => return Ok(out),
                cmd = self.commands.recv() => match cmd {
                    None => return Err(Terminal::Closed),
                    Some(Command::Request(pending)) => {
                        let deadline = Instant::now() + self.config.connection_timeout;
                        self.queued.push_back(Queued { pending, deadline });
                    }
                    Some(Command::AddAuth { scheme, auth, reply }) => {
                        self.auths.push(AuthEntry { scheme, auth, waiter: Some(reply) });
                    }
                    Some(Command::RemoveWatcher { path, kind, id }) => {
                        // The server holds no watch for us while disconnected; the next restore
                        // simply leaves this one out.
                        let _ = self.watches.remove(&path, kind, id);
                    }
                    Some(Command::WatchCount(reply)) => {
                        let _ = reply.send(self.watches.len());
                    }
                    Some(Command::Disconnect) => {}
                    Some(Command::UpdateHosts(hosts)) => {
                        self.set_hosts(hosts);
                    }
                    Some(Command::Close(reply)) => {
                        self.closers.push(reply);
                        return Err(Terminal::Closed);
                    }
                },
                _ = sleep_until_opt(next_deadline) => {
                    let now = Instant::now();
                    while self.queued.front().is_some_and(|q| q.deadline <= now) {
                        if let Some(q) = self.queued.pop_front() {
                            let _ = q.pending.reply.send(Err(Error::ConnectionLoss));
                        }
                    }
                }
            }
        }
    }

    /// Ends the session: terminal state, every waiter answered, every watcher told.
    fn finish(&mut self, terminal: Terminal) {
        tracing::info!(session_id = format_args!("{:#x}", self.session_id), ?terminal, "session ended");
        self.shared.transition(terminal.state(), Some(terminal.event()));
        // The session is over: end every event stream after this last event.
        self.shared.subscribers.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.commands.close();
        for q in self.queued.drain(..) {
            let _ = q.pending.reply.send(Err(terminal.error()));
        }
        for entry in &mut self.auths {
            if let Some(w) = entry.waiter.take() {
                let _ = w.send(Err(terminal.error()));
            }
        }
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Request(p) => {
                    let _ = p.reply.send(Err(terminal.error()));
                }
                Command::AddAuth { reply, .. } => {
                    let _ = reply.send(Err(terminal.error()));
                }
                Command::WatchCount(reply) => {
                    let _ = reply.send(0);
                }
                Command::Close(reply) => self.closers.push(reply),
                Command::RemoveWatcher { .. } | Command::Disconnect | Command::UpdateHosts(_) => {}
            }
        }
        self.watches.end_all(terminal.keeper_state());
        for closer in self.closers.drain(..) {
            let _ = closer.send(());
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_pauses_stay_under_a_quarter_of_the_session_and_a_second_jittered() {
        assert_eq!(round_pause(Duration::from_millis(50), Duration::from_secs(30)), Duration::from_millis(50));
        for _ in 0..200 {
            let long = round_pause(Duration::from_secs(4), Duration::from_secs(30));
            assert!(long >= Duration::from_millis(500) && long <= MAX_ROUND_PAUSE, "{long:?}");
            let short = round_pause(Duration::from_secs(4), Duration::from_secs(2));
            assert!(short >= Duration::from_millis(250) && short <= Duration::from_millis(500), "{short:?}");
        }
    }
}
