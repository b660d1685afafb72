//! [`Client`], the handle to one ZooKeeper session, and [`ClientBuilder`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use corral_proto::records::ClientInfo;
use corral_proto::{DEFAULT_MAX_FRAME, OpCode, Request, Response};
use futures::Stream;
use tokio::sync::{mpsc, oneshot, watch};

use crate::connect_string::{Chroot, ConnectString};
use crate::error::{Error, Result};
use crate::session::{AfterReply, Command, Config, Pending, SessionTask, Shared};
use crate::state::{SessionEvent, SessionInfo, SessionState};
use crate::transport::Connector;
use crate::watcher::{WatchKind, WatchRegistration, WatchSender};

/// Builds a [`Client`]: connect string, session timeout, credentials, session to resume.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use corral_core::Client;
///
/// # async fn demo() -> corral_core::Result<()> {
/// let client = Client::builder("zk1:2181,zk2:2181,zk3:2181/my-app")
///     .session_timeout(Duration::from_secs(15))
///     .digest_auth("app", "secret")
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    connect_string: String,
    session_timeout: Duration,
    connect_timeout: Option<Duration>,
    connection_timeout: Duration,
    read_only: bool,
    session: Option<(i64, Bytes)>,
    auths: Vec<(String, Bytes)>,
    max_frame: usize,
    connector: Option<Arc<dyn Connector>>,
}

impl ClientBuilder {
    /// A builder for `connect_string` (`host:port,host:port/optional/chroot`).
    pub fn new(connect_string: impl Into<String>) -> Self {
        Self {
            connect_string: connect_string.into(),
            session_timeout: Duration::from_secs(30),
            connect_timeout: None,
            connection_timeout: Duration::from_secs(15),
            read_only: false,
            session: None,
            auths: Vec::new(),
            max_frame: DEFAULT_MAX_FRAME,
            connector: None,
        }
    }

    /// The same settings with another connect string.
    pub(crate) fn with_connect_string(mut self, connect_string: String) -> Self {
        self.connect_string = connect_string;
        self
    }

    /// The session timeout to ask for (default 30 s). The server clamps it to its own
    /// `[minSessionTimeout, maxSessionTimeout]`; [`Client::session`] tells what was granted.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// The limit for one connection attempt to one host, handshake included (default: the
    /// session timeout divided by the number of hosts, as the Java client does).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// How long [`ClientBuilder::connect`], and a request made while disconnected, wait for a
    /// connection before failing (default 15 s, Curator's default).
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Accept read-only servers (ZooKeeper's `readonlymode.enabled`): reads work, writes fail
    /// with NotReadOnly, and the state is [`SessionState::ConnectedReadOnly`].
    pub fn allow_read_only(mut self, allow: bool) -> Self {
        self.read_only = allow;
        self
    }

    /// Resume an existing session from its id and password instead of creating one. If the
    /// session is gone the client ends in [`SessionState::Expired`]; it never quietly starts a
    /// new session.
    pub fn session(mut self, id: i64, password: impl Into<Bytes>) -> Self {
        self.session = Some((id, password.into()));
        self
    }

    /// Adds credentials, sent on every connection before any request.
    pub fn auth(mut self, scheme: impl Into<String>, auth: impl Into<Bytes>) -> Self {
        self.auths.push((scheme.into(), auth.into()));
        self
    }

    /// Adds `digest` credentials (`user:password`).
    pub fn digest_auth(self, user: &str, password: &str) -> Self {
        self.auth("digest", Bytes::from(format!("{user}:{password}")))
    }

    /// The frame limit, ZooKeeper's `jute.maxbuffer` (default 1 MiB − 1). Requests above it are
    /// refused before sending; replies above it drop the connection.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Connects through `connector` instead of TCP: an in-memory pipe to an embedded server,
    /// TLS, a tunnel. The connect string's hosts are handed to it as they are.
    pub fn connector(mut self, connector: impl Connector) -> Self {
        self.connector = Some(Arc::new(connector));
        self
    }

    /// Starts the client and returns at once; it connects in the background. Requests made
    /// before the connection is up wait for it (up to the connection timeout).
    ///
    /// Must be called within a Tokio runtime.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConnectString`] if the connect string cannot be parsed;
    /// [`Error::BadArguments`] for a zero session timeout.
    pub fn build(self) -> Result<Client> {
        self.build_inner(None)
    }

    /// Like [`ClientBuilder::build`], with a session-event subscriber registered before the
    /// session task starts, so that not even the first event can be missed.
    pub(crate) fn build_with_events(
        self,
    ) -> Result<(Client, impl Stream<Item = SessionEvent> + Send + Unpin + 'static)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let client = self.build_inner(Some(tx))?;
        Ok((client, tokio_stream_from(rx)))
    }

    fn build_inner(self, subscriber: Option<mpsc::UnboundedSender<SessionEvent>>) -> Result<Client> {
        let cs: ConnectString = self.connect_string.parse()?;
        if self.session_timeout.is_zero() {
            return Err(Error::BadArguments("session timeout must be positive".into()));
        }
        let (state_tx, _) = watch::channel(SessionState::NotConnected);
        let shared = Arc::new(Shared {
            state: state_tx,
            info: std::sync::Mutex::new(SessionInfo::default()),
            subscribers: std::sync::Mutex::new(subscriber.into_iter().collect()),
            chroot: Chroot::new(cs.chroot),
            max_frame: self.max_frame,
            next_watch_id: std::sync::atomic::AtomicU64::new(1),
        });
        let (commands, rx) = mpsc::unbounded_channel();
        let config = Config {
            hosts: cs.hosts,
            session_timeout: self.session_timeout,
            connect_timeout: self.connect_timeout,
            connection_timeout: self.connection_timeout,
            read_only: self.read_only,
            max_frame: self.max_frame,
            connector: self.connector,
        };
        let task = SessionTask::new(config, shared.clone(), rx, self.session, self.auths);
        tokio::spawn(task.run());
        Ok(Client {
            inner: Arc::new(Inner {
                commands,
                shared,
                requested_timeout: self.session_timeout,
            }),
        })
    }

    /// Starts the client and waits until its session is established.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if no server accepted the session within the connection timeout
    /// (the client is closed); [`Error::SessionExpired`] when resuming a session that is gone;
    /// [`Error::AuthFailed`] when the credentials are refused; and the errors of
    /// [`ClientBuilder::build`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the client, which closes the session if it was established.
    pub async fn connect(self) -> Result<Client> {
        let timeout = self.connection_timeout;
        let client = self.build()?;
        match client.wait_until_connected(timeout).await {
            Ok(()) => Ok(client),
            Err(e) => {
                client.close().await;
                Err(e)
            }
        }
    }
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    requested_timeout: Duration,
}

/// A handle to one ZooKeeper session. Cheap to clone; every clone shares the session.
///
/// The session lives in a background task that connects, reconnects within the session
/// (restoring watches), pings, and ends for good on expiry, authentication failure or
/// [`Client::close`]. Dropping the last handle closes the session too.
///
/// Every operation is ordered when its future is created, not when it is first polled:
/// `let a = client.set_data(..); let b = client.get_data(..);` sends the set first, and
/// ZooKeeper answers a session's requests in order.
///
/// # Cancel safety
///
/// Dropping an operation's future does not withdraw the request: it has been queued already
/// and the server applies it; only the answer is lost.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Connects to `connect_string` with default settings and waits for the session.
    ///
    /// # Errors
    ///
    /// As [`ClientBuilder::connect`].
    pub async fn connect(connect_string: &str) -> Result<Client> {
        ClientBuilder::new(connect_string).connect().await
    }

    /// A builder for `connect_string`.
    pub fn builder(connect_string: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(connect_string)
    }

    /// The session state as a watch channel: read the current value, or await changes.
    pub fn state(&self) -> watch::Receiver<SessionState> {
        self.inner.shared.state.subscribe()
    }

    /// A stream of session events from now on: connected (new or resumed), disconnected,
    /// expired, auth failed, closed. Every event is delivered, in order.
    pub fn session_events(&self) -> impl Stream<Item = SessionEvent> + Send + Unpin + 'static {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner
            .shared
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        tokio_stream_from(rx)
    }

    /// The session's id, password, negotiated timeout and last seen zxid.
    pub fn session(&self) -> SessionInfo {
        self.inner.shared.info()
    }

    /// The session id (0 before the first connection).
    pub fn session_id(&self) -> i64 {
        self.inner.shared.info().id
    }

    /// Waits until the client is connected.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] after `timeout`; [`Error::SessionExpired`], [`Error::AuthFailed`] or
    /// [`Error::Closed`] if the session ends first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_until_connected(&self, timeout: Duration) -> Result<()> {
        let mut state = self.state();
        let wait = state.wait_for(|s| s.is_connected() || s.is_terminal());
        match tokio::time::timeout(timeout, wait).await {
            Err(_) => Err(Error::Timeout),
            Ok(Err(_)) => Err(Error::Closed),
            Ok(Ok(s)) => match *s {
                SessionState::Expired => Err(Error::SessionExpired),
                SessionState::AuthFailed => Err(Error::AuthFailed),
                SessionState::Closed => Err(Error::Closed),
                _ => Ok(()),
            },
        }
    }

    /// Closes the session: the server deletes its ephemeral nodes and fires their watches.
    /// Waits for the server's answer (bounded by the connection's read timeout); returns at once
    /// if the session has ended already.
    ///
    /// # Cancel safety
    ///
    /// The close is requested when the future is created; dropping it does not cancel it.
    pub fn close(&self) -> impl Future<Output = ()> + Send + use<> {
        let (tx, rx) = oneshot::channel();
        let _ = self.inner.commands.send(Command::Close(tx));
        async move {
            let _ = rx.await;
        }
    }

    /// Drops the current TCP connection without ending the session, as a network fault would;
    /// the client reconnects and restores its watches. Meant for tests and operators.
    pub fn drop_connection(&self) {
        let _ = self.inner.commands.send(Command::Disconnect);
    }

    /// The number of watchers this client holds (one-shot and persistent). Recipes' tests use
    /// it to check that closing releases every watch.
    pub async fn watcher_count(&self) -> usize {
        let (tx, rx) = oneshot::channel();
        if self.inner.commands.send(Command::WatchCount(tx)).is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }

    pub(crate) fn chroot(&self) -> &Chroot {
        &self.inner.shared.chroot
    }

    pub(crate) fn next_watch_id(&self) -> u64 {
        self.inner.shared.next_watch_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn weak_commands(&self) -> mpsc::WeakUnboundedSender<Command> {
        self.inner.commands.downgrade()
    }

    /// The error a request gets when the session task is gone.
    fn ended_error(&self) -> Error {
        match *self.inner.shared.state.borrow() {
            SessionState::Expired => Error::SessionExpired,
            SessionState::AuthFailed => Error::AuthFailed,
            _ => Error::Closed,
        }
    }

    /// Encodes and queues a request; the returned future waits for its reply.
    pub(crate) fn submit(
        &self,
        request: Request,
        path: &str,
        watch: Option<WatchRegistration>,
        after: AfterReply,
    ) -> impl Future<Output = Result<Response>> + Send + use<> {
        let op: OpCode = request.op_code();
        let mut body = BytesMut::new();
        request.write_body(&mut body);
        let size = body.len() + 8;
        let queued = if size > self.inner.shared.max_frame {
            Err(Error::RequestTooLarge {
                size,
                max: self.inner.shared.max_frame,
            })
        } else {
            let (reply, rx) = oneshot::channel();
            let pending = Pending {
                op,
                body: body.freeze(),
                path: path.to_owned(),
                reply,
                watch,
                after,
            };
            match self.inner.commands.send(Command::Request(pending)) {
                Ok(()) => Ok(rx),
                Err(_) => Err(self.ended_error()),
            }
        };
        let this = self.clone();
        async move {
            match queued {
                Err(e) => Err(e),
                Ok(rx) => match rx.await {
                    Ok(result) => result,
                    Err(_) => Err(this.ended_error()),
                },
            }
        }
    }

    /// Builds a one-shot watch registration and the watcher handed to the caller.
    pub(crate) fn oneshot_watch(&self, path: &str, kind: WatchKind) -> (crate::OneshotWatcher, WatchRegistration) {
        let id = self.next_watch_id();
        let (watcher, sender) = crate::OneshotWatcher::new(path.to_owned(), kind, id, self.weak_commands());
        (
            watcher,
            WatchRegistration {
                path: path.to_owned(),
                kind,
                id,
                sender,
            },
        )
    }

    /// Builds a persistent watch registration and the stream handed to the caller.
    pub(crate) fn persistent_watch(
        &self,
        path: &str,
        kind: WatchKind,
    ) -> (crate::PersistentWatcher, WatchRegistration) {
        let id = self.next_watch_id();
        let (watcher, sender) = crate::PersistentWatcher::new(path.to_owned(), kind, id, self.weak_commands());
        debug_assert!(matches!(sender, WatchSender::Stream(_)));
        (
            watcher,
            WatchRegistration {
                path: path.to_owned(),
                kind,
                id,
                sender,
            },
        )
    }

    /// The session timeout this client asked for.
    pub(crate) fn requested_timeout(&self) -> Duration {
        self.inner.requested_timeout
    }

    pub(crate) fn send_auth(&self, scheme: String, auth: Bytes, reply: oneshot::Sender<Result<()>>) -> Result<()> {
        self.inner
            .commands
            .send(Command::AddAuth { scheme, auth, reply })
            .map_err(|_| self.ended_error())
    }
}

/// Adapts an unbounded receiver into a `Stream` without pulling in tokio-stream.
fn tokio_stream_from<T: Send + 'static>(rx: mpsc::UnboundedReceiver<T>) -> impl Stream<Item = T> + Send + Unpin {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}

use futures::StreamExt as _;

/// Client info returned by [`Client::who_am_i`].
pub type Identity = ClientInfo;
