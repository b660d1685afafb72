//! [`Client`], the handle to one ZooKeeper session.

pub use builder::ClientBuilder;

mod admin;
mod builder;
mod multi;
mod ops;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use corral_proto::records::ClientInfo;
use corral_proto::{OpCode, Request, Response};
use futures::Stream;
use tokio::sync::{mpsc, oneshot, watch};

use crate::connect_string::Chroot;
use crate::error::{Error, Result};
use crate::session::watch::{WatchKind, WatchRegistration, WatchSender};
use crate::session::{AfterReply, Command, Pending, Shared};
use crate::state::{SessionEvent, SessionInfo, SessionState};
use crate::watcher::DropGuard;

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) requested_timeout: Duration,
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
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use corral_core::{Client, CreateMode};
///
/// let client = Client::connect(&server.connect_string()).await?;
/// client.create("/counter", "0", CreateMode::Persistent).await?;
/// let set = client.set_data("/counter", "1", None);
/// let get = client.get_data("/counter");
/// // Awaited first, but sent second: the read sees the write.
/// let (data, _) = get.await?;
/// assert_eq!(&data[..], b"1");
/// set.await?;
/// # client.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl Client {
    /// Connects to `connect_string` with default settings and waits for the session.
    ///
    /// `connect_string` is `host:port,host:port/optional/chroot` (see [`ConnectString`](crate::ConnectString)). With a
    /// chroot every path is relative to it; the chroot node itself must exist (the
    /// [`Framework`](crate::Framework) can create it).
    ///
    /// # Errors
    ///
    /// As [`ClientBuilder::connect`].
    ///
    /// # Cancel safety
    ///
    /// As [`ClientBuilder::connect`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_core::{Client, CreateMode};
    ///
    /// let root = Client::connect(&server.connect_string()).await?;
    /// root.create("/my-app", "", CreateMode::Persistent).await?;
    ///
    /// let app = Client::connect(&format!("{}/my-app", server.connect_string())).await?;
    /// app.create("/config", "v1", CreateMode::Persistent).await?;
    /// assert!(root.exists("/my-app/config").await?.is_some());
    /// # app.close().await;
    /// # root.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn connect(connect_string: &str) -> Result<Client> {
        ClientBuilder::new(connect_string).connect().await
    }

    /// A builder for `connect_string`, to set the session timeout, credentials and the rest.
    ///
    /// Nothing is checked or started until [`ClientBuilder::build`] or
    /// [`ClientBuilder::connect`]; see [`ClientBuilder`] for every setting.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::Client;
    ///
    /// let client = Client::builder(server.connect_string())
    ///     .session_timeout(Duration::from_secs(8))
    ///     .digest_auth("app", "secret")
    ///     .connect()
    ///     .await?;
    /// assert_eq!(client.session().timeout, Duration::from_secs(8));
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn builder(connect_string: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(connect_string)
    }

    /// The session state as a watch channel: read the current value, or await changes.
    ///
    /// A watch channel shows the latest state only; to see every transition (a short
    /// disconnection included), use [`Client::session_events`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::SessionState;
    ///
    /// let mut state = client.state();
    /// assert_eq!(*state.borrow(), SessionState::Connected);
    /// server.expire_session(client.session_id());
    /// let ended = *state.wait_for(|s| s.is_terminal()).await?;
    /// assert_eq!(ended, SessionState::Expired);
    /// # Ok(()) }
    /// ```
    pub fn state(&self) -> watch::Receiver<SessionState> {
        self.inner.shared.state.subscribe()
    }

    /// A stream of session events from now on: connected (new or resumed), disconnected,
    /// expired, auth failed, closed. Every event is delivered, in order.
    ///
    /// The stream is unbounded: read it, or drop it. It ends after the session's last event
    /// (expired, auth failed or closed); a stream taken after the session ended is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::SessionEvent;
    /// use futures::StreamExt;
    ///
    /// let mut events = client.session_events();
    /// server.drop_connection(client.session_id()); // a network fault
    /// assert!(matches!(events.next().await, Some(SessionEvent::Disconnected { .. })));
    /// let Some(SessionEvent::Connected { session_id, resumed, .. }) = events.next().await else { panic!() };
    /// assert!(resumed);
    /// assert_eq!(session_id, client.session_id());
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn session_events(&self) -> impl Stream<Item = SessionEvent> + Send + Unpin + 'static {
        let (tx, rx) = mpsc::unbounded_channel();
        // After the session has ended the stream is empty (its last event went out already).
        if !self.inner.shared.state.borrow().is_terminal() {
            self.inner.shared.subscribers.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
        }
        tokio_stream_from(rx)
    }

    /// The session's id, password, negotiated timeout and last seen zxid.
    ///
    /// The id and password let another client resume the session
    /// ([`ClientBuilder::session`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::{Client, CreateMode};
    ///
    /// let client = Client::builder(server.connect_string())
    ///     .session_timeout(Duration::from_secs(10))
    ///     .connect()
    ///     .await?;
    /// let info = client.session();
    /// assert_eq!(info.timeout, Duration::from_secs(10));
    /// client.create("/x", "", CreateMode::Persistent).await?;
    /// assert!(client.session().last_zxid > info.last_zxid);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn session(&self) -> SessionInfo {
        self.inner.shared.info()
    }

    /// The session id (0 before the first connection).
    ///
    /// Ephemeral nodes record it as their owner ([`Stat::ephemeral_owner`](crate::Stat)).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::CreateMode;
    ///
    /// let (_, stat) = client.create("/me", "", CreateMode::Ephemeral).await?;
    /// assert_eq!(stat.ephemeral_owner, client.session_id());
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
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
    /// Cancel safe: it only watches the session state, so dropping it loses nothing and
    /// changes nothing (the client goes on connecting).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::{Client, Error};
    ///
    /// let client = Client::builder(server.connect_string()).build()?;
    /// client.wait_until_connected(Duration::from_secs(5)).await?;
    /// assert!(client.state().borrow().is_connected());
    ///
    /// client.close().await;
    /// let result = client.wait_until_connected(Duration::from_secs(5)).await;
    /// assert_eq!(result, Err(Error::Closed));
    /// # Ok(()) }
    /// ```
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
    /// Every clone of this client is closed too: their requests fail with [`Error::Closed`].
    ///
    /// # Cancel safety
    ///
    /// The close is requested when the future is created; dropping it does not cancel it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_core::{Client, CreateMode, Error};
    ///
    /// let worker = Client::connect(&server.connect_string()).await?;
    /// let observer = Client::connect(&server.connect_string()).await?;
    /// worker.create("/worker-1", "", CreateMode::Ephemeral).await?;
    /// worker.close().await;
    /// assert_eq!(observer.exists("/worker-1").await?, None);
    /// assert_eq!(worker.exists("/").await, Err(Error::Closed));
    /// # observer.close().await;
    /// # Ok(()) }
    /// ```
    pub fn close(&self) -> impl Future<Output = ()> + Send + use<> {
        let (tx, rx) = oneshot::channel();
        let _ = self.inner.commands.send(Command::Close(tx));
        async move {
            let _ = rx.await;
        }
    }

    /// Drops the current TCP connection without ending the session, as a network fault would;
    /// the client reconnects and restores its watches. Meant for tests and operators.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::{CreateMode, EventType};
    ///
    /// client.create("/flag", "", CreateMode::Persistent).await?;
    /// let (_, _, watcher) = client.get_data_and_watch("/flag").await?;
    /// let session = client.session_id();
    /// client.drop_connection();
    /// client.set_data("/flag", "up", None).await?; // waits for the reconnection
    /// assert_eq!(watcher.await.event_type, EventType::NodeDataChanged);
    /// assert_eq!(client.session_id(), session);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn drop_connection(&self) {
        let _ = self.inner.commands.send(Command::Disconnect);
    }

    /// Gives the client a new list of servers, as ZooKeeper's `updateServerList` (what
    /// Curator's ensemble tracker calls after a reconfiguration): every later connection
    /// attempt uses it, in a random order, and the session stays. The current connection moves
    /// only if its server is not in the list; then the session resumes on one that is, with
    /// its watches. A chroot in `connect_string` must be the client's own; none keeps it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConnectString`] for a string that does not parse,
    /// [`Error::BadArguments`] for another chroot, and the session's end
    /// ([`Error::SessionExpired`], [`Error::Closed`], ...) once it has ended.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_server::testing::TestingCluster;
    ///
    /// let cluster = TestingCluster::start(2).await?;
    /// let client = corral_core::Client::connect(&cluster.addr(0).to_string()).await?;
    /// let session = client.session_id();
    /// // Member 0 leaves the ensemble: the client moves to member 1, keeping its session.
    /// client.update_server_list(&cluster.addr(1).to_string())?;
    /// client.sync("/").await?;
    /// assert_eq!(cluster.member_of_session(session), Some(1));
    /// # client.close().await;
    /// # cluster.close().await;
    /// # Ok(()) }
    /// ```
    pub fn update_server_list(&self, connect_string: &str) -> Result<()> {
        let parsed: crate::ConnectString = connect_string.parse()?;
        if let Some(chroot) = parsed.chroot.as_deref()
            && Some(chroot) != self.chroot().root()
        {
            return Err(Error::BadArguments(format!(
                "the chroot cannot change ({chroot} given, the client's is {})",
                self.chroot().root().unwrap_or("none")
            )));
        }
        self.update_hosts(parsed.hosts)
    }

    /// [`update_server_list`](Self::update_server_list) with the hosts parsed.
    pub(crate) fn update_hosts(&self, hosts: Vec<crate::HostPort>) -> Result<()> {
        self.inner.commands.send(Command::UpdateHosts(hosts)).map_err(|_| self.ended_error())
    }

    /// The number of watchers this client holds (one-shot and persistent). Recipes' tests use
    /// it to check that closing releases every watch.
    ///
    /// 0 once the session has ended.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads. The count is asked for when the future is first polled.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// let (_, watcher) = client.exists_and_watch("/not-yet").await?;
    /// assert_eq!(client.watcher_count().await, 1);
    /// drop(watcher); // removes the watch
    /// assert_eq!(client.watcher_count().await, 0);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
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
            Err(Error::RequestTooLarge { size, max: self.inner.shared.max_frame })
        } else {
            let (reply, rx) = oneshot::channel();
            let pending = Pending { op, body: body.freeze(), path: path.to_owned(), reply, watch, after };
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

    /// Builds a watch registration and the watcher handed to the caller (a one-shot
    /// [`crate::OneshotWatcher`] or a [`crate::PersistentWatcher`] stream, by `make`).
    pub(crate) fn watch<W>(
        &self,
        path: &str,
        kind: WatchKind,
        make: impl FnOnce(DropGuard) -> (W, WatchSender),
    ) -> (W, WatchRegistration) {
        let id = self.next_watch_id();
        let (watcher, sender) = make(DropGuard::new(path.to_owned(), kind, id, self.weak_commands()));
        (watcher, WatchRegistration { path: path.to_owned(), kind, id, sender })
    }

    /// The session timeout this client asked for.
    pub(crate) fn requested_timeout(&self) -> Duration {
        self.inner.requested_timeout
    }

    pub(crate) fn send_auth(&self, scheme: String, auth: Bytes, reply: oneshot::Sender<Result<()>>) -> Result<()> {
        self.inner.commands.send(Command::AddAuth { scheme, auth, reply }).map_err(|_| self.ended_error())
    }
}

/// Adapts an unbounded receiver into a `Stream` without pulling in tokio-stream.
pub(crate) fn tokio_stream_from<T: Send + 'static>(
    rx: mpsc::UnboundedReceiver<T>,
) -> impl Stream<Item = T> + Send + Unpin {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}

use futures::StreamExt as _;

/// One identity a connection is authenticated as (scheme and user), as returned by
/// [`Client::who_am_i`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use corral_core::{Client, Identity};
///
/// let client = Client::builder(server.connect_string()).digest_auth("app", "secret").connect().await?;
/// let me: Vec<Identity> = client.who_am_i().await?;
/// assert!(me.iter().any(|id| id.auth_scheme == "digest" && id.user == "app"));
/// # client.close().await;
/// # Ok(()) }
/// ```
pub type Identity = ClientInfo;
