//! Watches as values: one-shot watchers to await, persistent watches as streams. The registry
//! the session keeps so that watches survive reconnects is `session::watch`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use corral_proto::{EventType, KeeperState};
use futures::Stream;
use tokio::sync::{mpsc, oneshot};

use crate::session::Command;
use crate::session::watch::{WatchKind, WatchSender};

/// A change notification (or the end of the session) delivered to a watcher.
///
/// A ZooKeeper event says *that* a node changed, not *what* it changed to: read the node again
/// (and set a new watch) to see its new state.
///
/// See [`OneshotWatcher`] and [`PersistentWatcher`] for examples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedEvent {
    /// What happened. [`EventType::None`] means the session ended (see `state`).
    pub event_type: EventType,
    /// [`KeeperState::SyncConnected`] for node events; [`KeeperState::Expired`],
    /// [`KeeperState::Closed`] or [`KeeperState::AuthFailed`] when the session ended.
    pub state: KeeperState,
    /// The node's path, relative to the chroot (empty for session events).
    pub path: String,
    /// The zxid of the change on ZooKeeper ≥ 3.9; −1 on older servers and for session events.
    pub zxid: i64,
}

impl WatchedEvent {
    pub(crate) fn session_end(state: KeeperState) -> Self {
        Self { event_type: EventType::None, state, path: String::new(), zxid: -1 }
    }

    /// Whether this event reports the end of the session rather than a node change.
    ///
    /// Every watcher gets one when the session expires, the client is closed or its
    /// credentials are refused; `state` says which. A reconnection within the session is not
    /// an end: watches are restored.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::KeeperState;
    ///
    /// let (_, watcher) = client.exists_and_watch("/never").await?;
    /// server.expire_session(client.session_id());
    /// let event = watcher.await;
    /// assert!(event.is_session_end());
    /// assert_eq!(event.state, KeeperState::Expired);
    /// # Ok(()) }
    /// ```
    pub fn is_session_end(&self) -> bool {
        self.event_type == EventType::None
    }
}

/// Tells the session task that a watcher was dropped, without keeping the client alive.
#[derive(Debug)]
pub(crate) struct DropGuard {
    path: String,
    kind: WatchKind,
    id: u64,
    commands: mpsc::WeakUnboundedSender<Command>,
    armed: bool,
}

impl DropGuard {
    pub(crate) fn new(path: String, kind: WatchKind, id: u64, commands: mpsc::WeakUnboundedSender<Command>) -> Self {
        Self { path, kind, id, commands, armed: true }
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(tx) = self.commands.upgrade() {
            let _ =
                tx.send(Command::RemoveWatcher { path: std::mem::take(&mut self.path), kind: self.kind, id: self.id });
        }
    }
}

/// A one-shot watch: resolves to the first change of the watched node, or to a session event
/// if the session ends first.
///
/// One-shot watches survive reconnects within the session: the client restores them, and a
/// change made while it was disconnected fires at once.
///
/// Obtained from [`Client::exists_and_watch`](crate::Client::exists_and_watch),
/// [`Client::get_data_and_watch`](crate::Client::get_data_and_watch) and
/// [`Client::get_children_and_watch`](crate::Client::get_children_and_watch). It is `Unpin`, so
/// `&mut watcher` can be polled in a `select!` or under a timeout without consuming it.
///
/// # Cancel safety
///
/// Dropping an `OneshotWatcher` before it fires removes the watch (on the server too, when no
/// other watcher of this client needs it). Polling it through `&mut` and dropping that
/// future loses nothing.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let client = corral_core::Client::connect(&server.connect_string()).await?;
/// use std::time::Duration;
/// use corral_core::{CreateMode, EventType};
///
/// let (_, mut watcher) = client.exists_and_watch("/leader").await?;
/// let waited = tokio::time::timeout(Duration::from_millis(20), &mut watcher).await;
/// assert!(waited.is_err(), "no leader yet");
/// client.create("/leader", "me", CreateMode::Ephemeral).await?;
/// assert_eq!(watcher.await.event_type, EventType::NodeCreated);
/// # client.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct OneshotWatcher {
    rx: oneshot::Receiver<WatchedEvent>,
    guard: Option<DropGuard>,
}

impl OneshotWatcher {
    pub(crate) fn new(guard: DropGuard) -> (Self, WatchSender) {
        let (tx, rx) = oneshot::channel();
        (Self { rx, guard: Some(guard) }, WatchSender::Oneshot(tx))
    }
}

impl Future for OneshotWatcher {
    type Output = WatchedEvent;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<WatchedEvent> {
        let event = match Pin::new(&mut self.rx).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(event)) => event,
            // The session task is gone without a word: the client was dropped.
            Poll::Ready(Err(_)) => WatchedEvent::session_end(KeeperState::Closed),
        };
        if let Some(guard) = self.guard.as_mut() {
            // Fired: the watch is gone already, there is nothing to remove.
            guard.armed = false;
        }
        Poll::Ready(event)
    }
}

/// A persistent or persistent-recursive watch: a stream of every change until dropped.
///
/// After the session ends the stream yields one session event ([`WatchedEvent::is_session_end`])
/// and then ends; after [`crate::Client::remove_watches`] removes it, the stream yields one
/// [`EventType::PersistentWatchRemoved`] event and ends.
///
/// Obtained from [`Client::add_watch`](crate::Client::add_watch). Unlike a one-shot watch it
/// stays after firing, so no change between two events is missed. Events queue up without
/// bound until read.
///
/// # Cancel safety
///
/// Dropping the stream removes the watch (on the server too, when no other watcher of this
/// client needs it). Dropping a `next()` future loses no event.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let client = corral_core::Client::connect(&server.connect_string()).await?;
/// use corral_core::{AddWatchMode, CreateMode, EventType};
/// use futures::StreamExt;
///
/// client.create("/config", "v1", CreateMode::Persistent).await?;
/// let mut changes = client.add_watch("/config", AddWatchMode::Persistent).await?;
/// client.set_data("/config", "v2", None).await?;
/// client.set_data("/config", "v3", None).await?;
/// for _ in 0..2 {
///     assert_eq!(changes.next().await.unwrap().event_type, EventType::NodeDataChanged);
/// }
/// drop(changes);
/// assert_eq!(client.watcher_count().await, 0);
/// # client.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PersistentWatcher {
    rx: mpsc::UnboundedReceiver<WatchedEvent>,
    _guard: DropGuard,
    ended: bool,
}

impl PersistentWatcher {
    pub(crate) fn new(guard: DropGuard) -> (Self, WatchSender) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { rx, _guard: guard, ended: false }, WatchSender::Stream(tx))
    }
}

impl Stream for PersistentWatcher {
    type Item = WatchedEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchedEvent>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(event)) => {
                if event.is_session_end() || event.event_type == EventType::PersistentWatchRemoved {
                    self.ended = true;
                }
                Poll::Ready(Some(event))
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
