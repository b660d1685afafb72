//! What a cache holds and tells: its nodes, its events, and the event streams.

use std::collections::BTreeMap;
use std::sync::Weak;

use bytes::Bytes;
use corral_core::{ConnectionState, ConnectionStateChange, Stat};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;

#[cfg(doc)]
use super::Cache;
use super::Shared;
use crate::Error;

/// A cached node: its stat and (unless the cache is data-less) its data.
///
/// The stat is the one read with the node's data, so it is current for the data fields
/// (`version`, `mzxid`, `data_length`); the child fields (`num_children`, `cversion`, `pzxid`)
/// are refreshed only when the node itself is read again (a data change or a resync), not when
/// a child comes or goes.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::time::Duration;
/// use corral_recipes::{CreateMode, Framework, cache::Cache};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// fw.create("/config", "v1", CreateMode::Persistent).await?;
/// fw.set_data("/config", "v2", None).await?;
/// let cache = Cache::builder(&fw, "/config").start();
/// cache.wait_initialized(Duration::from_secs(10)).await?;
/// let node = cache.get("/config").unwrap();
/// assert_eq!((&node.data[..], node.stat.version), (&b"v2"[..], 1));
/// # cache.close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedNode {
    /// The node's stat when last read.
    pub stat: Stat,
    /// The node's data (empty in data-less mode).
    pub data: Bytes,
}

/// A change seen by a [`Cache`].
///
/// Node events come in the order the cache applies them; a node deleted with its descendants
/// reports the deepest first. Changes closer together than the cache can read them may come
/// out as one: a node created and changed at once is one `Created` with the latest data, a
/// node created and deleted at once may produce no event at all.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::time::Duration;
/// use std::future::ready;
/// use corral_recipes::{CreateMode, Framework, cache::{Cache, CacheEvent}};
/// use futures::StreamExt;
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let cache = Cache::builder(&fw, "/flags").start();
/// let mut changes =
///     cache.events().filter(|e| ready(!matches!(e, CacheEvent::Initialized | CacheEvent::ConnectionState(_))));
/// cache.wait_initialized(Duration::from_secs(10)).await?;
///
/// fw.create("/flags", "", CreateMode::Persistent).await?;
/// assert!(matches!(changes.next().await, Some(CacheEvent::Created { path, .. }) if path == "/flags"));
/// fw.create("/flags/dark-mode", "off", CreateMode::Persistent).await?;
/// assert!(matches!(changes.next().await, Some(CacheEvent::Created { path, .. }) if path == "/flags/dark-mode"));
/// fw.set_data("/flags/dark-mode", "on", None).await?;
/// let Some(CacheEvent::Changed { old, new, .. }) = changes.next().await else { panic!("expected a change") };
/// assert_eq!((&old.data[..], &new.data[..]), (&b"off"[..], &b"on"[..]));
/// fw.client().delete("/flags/dark-mode", None).await?;
/// assert!(matches!(changes.next().await, Some(CacheEvent::Deleted { path, .. }) if path == "/flags/dark-mode"));
/// # cache.close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheEvent {
    /// A node appeared.
    Created {
        /// Its path.
        path: String,
        /// Its state.
        node: CachedNode,
    },
    /// A node's data changed.
    Changed {
        /// Its path.
        path: String,
        /// The state before.
        old: CachedNode,
        /// The state now.
        new: CachedNode,
    },
    /// A node went away.
    Deleted {
        /// Its path.
        path: String,
        /// Its last known state.
        old: CachedNode,
    },
    /// The first full read is done: the cache mirrors the tree. Sent once.
    Initialized,
    /// The framework's connection state changed (SUSPENDED, RECONNECTED, LOST, ...): posted
    /// before the resync that follows a reconnection. Quick successions may be coalesced into
    /// the latest state; see [`Framework::state_changes`](corral_core::Framework::state_changes)
    /// for every transition.
    ConnectionState(ConnectionStateChange),
    /// The cache cannot work; it has stopped. (No cause is left today: a server without
    /// `addWatch` gets the one-shot fallback, see [`Cache::watch_mode`].)
    Failed(Error),
    /// This stream fell more than 1024 events behind: instead of the node events it missed,
    /// the whole view as it is now. A reader that mirrors the cache replaces its mirror with
    /// `nodes`; the node events that follow are the changes made after it.
    Resynced {
        /// The view.
        nodes: BTreeMap<String, CachedNode>,
        /// How many events this stream did not see.
        skipped: u64,
    },
}

impl CacheEvent {
    /// The event of kazoo's `TreeCache` that means the same, by its `TreeEvent` name, for
    /// fleets that mix Python and Rust code over one tree: `NODE_ADDED`, `NODE_UPDATED`,
    /// `NODE_REMOVED`, `INITIALIZED`, and `CONNECTION_SUSPENDED`, `CONNECTION_RECONNECTED`,
    /// `CONNECTION_LOST` for those connection states. `None` for what kazoo has no event for
    /// (the first CONNECTED, READ_ONLY, [`CacheEvent::Resynced`], [`CacheEvent::Failed`]).
    ///
    /// For the same changes, kazoo's cache and this one report the same events for the same
    /// paths in the same order (`recipes/tests/kazoo_tree_cache.rs` checks it against kazoo
    /// 2.11).
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_recipes::cache::CacheEvent;
    ///
    /// assert_eq!(CacheEvent::Initialized.kazoo_name(), Some("INITIALIZED"));
    /// ```
    pub fn kazoo_name(&self) -> Option<&'static str> {
        Some(match self {
            Self::Created { .. } => "NODE_ADDED",
            Self::Changed { .. } => "NODE_UPDATED",
            Self::Deleted { .. } => "NODE_REMOVED",
            Self::Initialized => "INITIALIZED",
            Self::ConnectionState(change) => match change.state {
                ConnectionState::Suspended => "CONNECTION_SUSPENDED",
                ConnectionState::Reconnected => "CONNECTION_RECONNECTED",
                ConnectionState::Lost => "CONNECTION_LOST",
                ConnectionState::Connected | ConnectionState::ReadOnly => return None,
            },
            Self::Failed(_) | Self::Resynced { .. } => return None,
        })
    }

    /// Whether the event is about a node (created, changed, deleted).
    pub(super) fn is_node_event(&self) -> bool {
        matches!(self, Self::Created { .. } | Self::Changed { .. } | Self::Deleted { .. })
    }
}

/// The events `rx` receives from now on, as a stream; `late`: drop an `Initialized` (the stream
/// was taken after the flag turned true).
pub(super) fn event_stream(
    rx: broadcast::Receiver<(u64, CacheEvent)>,
    // Weak: the stream must end when the cache (and with it the sender) is gone.
    shared: Weak<Shared>,
    late: bool,
) -> impl Stream<Item = CacheEvent> + Send + Unpin + 'static {
    // Node events up to this number are in a `Resynced` view already sent.
    let resynced_up_to = 0u64;
    futures::stream::unfold((rx, shared, resynced_up_to), move |(mut rx, shared, mut up_to)| async move {
        loop {
            match rx.recv().await {
                Ok((seq, event)) if seq <= up_to && event.is_node_event() => {}
                Ok((_, CacheEvent::Initialized)) if late => {}
                Ok((_, event)) => return Some((event, (rx, shared, up_to))),
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    let cache = shared.upgrade()?;
                    let (nodes, seq) = {
                        let nodes = cache.nodes.read().unwrap_or_else(|e| e.into_inner());
                        (nodes.clone(), cache.seq.load(std::sync::atomic::Ordering::SeqCst))
                    };
                    drop(cache);
                    tracing::debug!(skipped, "cache event stream fell behind; sending the whole view");
                    up_to = seq;
                    return Some((CacheEvent::Resynced { nodes, skipped }, (rx, shared, up_to)));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .boxed()
}
