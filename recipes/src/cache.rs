//! [`Cache`]: an in-memory mirror of a subtree that never misses a change (Curator's
//! `CuratorCache`), and the [`NodeCache`] and [`ChildrenCache`] views on the same engine.
//!
//! # How it works
//!
//! One persistent recursive watch (ZooKeeper ≥ 3.6 `addWatch`) on the root reports every
//! create, data change and delete below it. A persistent watch does not replay what happened
//! while the connection was down, so after every (re)connection and every new session the cache
//! reads the whole subtree again and compares it with what it holds by **czxid and mzxid, not
//! versions**: a node deleted and re-created while disconnected has a new czxid and surfaces as
//! deleted + created, and several quick changes surface as one change to the latest data —
//! never silence (Curator's `PathChildrenCache` loses both: CURATOR-391, CURATOR-476).
//!
//! Every change is an event on [`Cache::events`]; [`Cache::get`], [`Cache::children`] and
//! [`Cache::snapshot`] read a consistent view. The cache survives its root being deleted and
//! created again.
//!
//! Servers older than 3.6 have no `addWatch`: the cache refuses to start there, with
//! [`CacheEvent::Failed`] carrying Unimplemented, rather than silently degrading.
//!
//! # Connection states
//!
//! | state | what happens |
//! |---|---|
//! | SUSPENDED | the cache keeps its view (possibly stale) and posts [`CacheEvent::ConnectionState`] |
//! | RECONNECTED, same session | posts it, then a full resync: changes made meanwhile come out as events |
//! | LOST, new session | posts LOST and then RECONNECTED; the watch is added again on the new session, then a full resync |
//!
//! [`CacheEvent::ConnectionState`] reports each connection state the cache notices, as Curator's
//! `PathChildrenCache` does (`CONNECTION_SUSPENDED`, `CONNECTION_RECONNECTED`,
//! `CONNECTION_LOST`). States that follow each other very quickly may reach the cache as one
//! (the latest); follow [`Framework::state_changes`](corral_core::Framework::state_changes) to
//! see every transition.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use corral_core::{
    AddWatchMode, Client, ConnectionStateChange, Error, EventType, Framework, PersistentWatcher, Result, Stat,
    WatchedEvent,
};
use futures::{Stream, StreamExt};
use tokio::sync::{broadcast, watch};

use crate::task::RecipeTask;

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
    /// The cache cannot work (for example, the server has no `addWatch`); it has stopped.
    Failed(Error),
}

/// Which nodes a cache keeps.
type Filter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Builds a [`Cache`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::time::Duration;
/// use corral_recipes::{Framework, cache::Cache};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// fw.ensure_path("/app/a/b/c").await?;
/// fw.ensure_path("/app/tmp").await?;
/// let cache = Cache::builder(&fw, "/app").max_depth(2).filter(|path| !path.ends_with("/tmp")).without_data().start();
/// cache.wait_initialized(Duration::from_secs(10)).await?;
/// assert_eq!(cache.snapshot().into_keys().collect::<Vec<_>>(), ["/app", "/app/a", "/app/a/b"]);
/// # cache.close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CacheBuilder {
    fw: Framework,
    root: String,
    data: bool,
    max_depth: Option<usize>,
    filter: Option<Filter>,
}

impl std::fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("root", &self.root)
            .field("data", &self.data)
            .field("max_depth", &self.max_depth)
            .finish_non_exhaustive()
    }
}

impl CacheBuilder {
    /// Keeps only stats, not data (for large subtrees whose data nobody reads).
    ///
    /// [`CachedNode::data`] is then empty; the stat still tells the data's length and version,
    /// and a data change is still a [`CacheEvent::Changed`].
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
    /// fw.ensure_path("/blobs").await?;
    /// fw.create("/blobs/b1", vec![7u8; 1000], CreateMode::Persistent).await?;
    /// let cache = Cache::builder(&fw, "/blobs").without_data().start();
    /// cache.wait_initialized(Duration::from_secs(10)).await?;
    /// let node = cache.get("/blobs/b1").unwrap();
    /// assert!(node.data.is_empty());
    /// assert_eq!(node.stat.data_length, 1000);
    /// # cache.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn without_data(mut self) -> Self {
        self.data = false;
        self
    }

    /// Keeps nodes at most `depth` levels below the root (0 = the root only).
    ///
    /// Deeper nodes are neither read nor kept, but the watch still covers them: their changes
    /// cost an ignored notification each.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_recipes::{Framework, cache::Cache};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// fw.ensure_path("/jobs/j1/attempts/a1").await?;
    /// let cache = Cache::builder(&fw, "/jobs").max_depth(1).start();
    /// cache.wait_initialized(Duration::from_secs(10)).await?;
    /// assert!(cache.get("/jobs/j1").is_some());
    /// assert!(cache.get("/jobs/j1/attempts").is_none());
    /// # cache.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = Some(depth);
        self
    }

    /// Keeps only nodes whose path satisfies `filter` (the root is always read; a filtered-out
    /// node's descendants are still visited).
    ///
    /// The filter sees full paths (with the namespace's chroot stripped) and applies to the
    /// root too.
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
    /// fw.ensure_path("/settings").await?;
    /// fw.create("/settings/theme", "dark", CreateMode::Persistent).await?;
    /// fw.create("/settings/theme.lock", "", CreateMode::Ephemeral).await?;
    /// let cache = Cache::builder(&fw, "/settings").filter(|path| !path.ends_with(".lock")).start();
    /// cache.wait_initialized(Duration::from_secs(10)).await?;
    /// assert_eq!(cache.children("/settings"), ["theme"]);
    /// # cache.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn filter(mut self, filter: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Arc::new(filter));
        self
    }

    /// Starts the cache in the background. Must be called within a Tokio runtime.
    ///
    /// The cache waits for the framework to be connected, adds its watch and reads the subtree;
    /// [`Cache::wait_initialized`] waits for that first read. A root that does not exist yet is
    /// fine: the cache is initialized empty and fills up when the root is created.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (the cache's task is spawned on the current one).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_recipes::{Framework, cache::Cache};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// let cache = Cache::builder(&fw, "/not-yet").start();
    /// cache.wait_initialized(Duration::from_secs(10)).await?;
    /// assert!(cache.snapshot().is_empty());
    /// # cache.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn start(self) -> Cache {
        let (events, _) = broadcast::channel(1024);
        let shared =
            Arc::new(Shared { nodes: RwLock::new(BTreeMap::new()), events, generation: watch::Sender::new(0) });
        let (initialized_tx, initialized) = watch::channel(false);
        let engine = Engine {
            fw: self.fw.clone(),
            root: self.root.clone(),
            data: self.data,
            max_depth: self.max_depth,
            filter: self.filter.clone(),
            shared: shared.clone(),
            initialized: initialized_tx,
        };
        let task = RecipeTask::spawn(|stop| engine.run(stop));
        Cache { root: self.root, shared, initialized, task }
    }
}

#[derive(Debug)]
struct Shared {
    nodes: RwLock<BTreeMap<String, CachedNode>>,
    events: broadcast::Sender<CacheEvent>,
    /// Counts changes of `nodes`; bumped while the write lock is held, so a value read under
    /// the read lock names exactly the view it was read with.
    generation: watch::Sender<u64>,
}

impl Shared {
    fn bump(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

/// A mirror of the subtree at a root (Curator's `CuratorCache`).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::time::Duration;
/// use corral_recipes::{CreateMode, Framework, cache::{Cache, CacheEvent}};
/// use futures::StreamExt;
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let cache = Cache::builder(&fw, "/config").start();
/// let mut events = cache.events();
/// cache.wait_initialized(Duration::from_secs(10)).await?;
/// fw.client().create("/config", "", CreateMode::Persistent).await?;
/// fw.client().create("/config/db", "postgres://", CreateMode::Persistent).await?;
/// while let Some(event) = events.next().await {
///     if let CacheEvent::Created { path, .. } = event && path == "/config/db" { break }
/// }
/// assert_eq!(&cache.get("/config/db").unwrap().data[..], b"postgres://");
/// cache.close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Cache {
    root: String,
    shared: Arc<Shared>,
    initialized: watch::Receiver<bool>,
    task: RecipeTask,
}

impl Cache {
    /// A builder for a cache of the subtree at `root`.
    ///
    /// By default the cache keeps every node of the subtree, with its data.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_recipes::{Framework, cache::Cache};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// fw.ensure_path("/services/web/i1").await?;
    /// let cache = Cache::builder(&fw, "/services").start();
    /// cache.wait_initialized(Duration::from_secs(10)).await?;
    /// assert_eq!(cache.snapshot().len(), 3); // /services, /services/web, /services/web/i1
    /// # cache.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn builder(fw: &Framework, root: impl Into<String>) -> CacheBuilder {
        CacheBuilder { fw: fw.clone(), root: root.into(), data: true, max_depth: None, filter: None }
    }

    /// The cache's root.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_recipes::{Framework, cache::Cache};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// let cache = Cache::builder(&fw, "/config").start();
    /// assert_eq!(cache.root(), "/config");
    /// # cache.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The events from now on. A receiver that falls more than 1024 events behind skips the
    /// oldest (the stream yields what is left); the view itself is always complete.
    ///
    /// Events are not replayed: a stream taken as the cache starts (before its task first runs)
    /// sees a [`CacheEvent::Created`] for every node the first read finds, then
    /// [`CacheEvent::Initialized`]; one taken later sees only later changes. The stream ends
    /// when the cache is dropped.
    ///
    /// # Cancel safety
    ///
    /// Dropping a `next()` future loses no event.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_recipes::{CreateMode, Framework, cache::{Cache, CacheEvent}};
    /// use futures::StreamExt;
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// fw.create("/config", "v1", CreateMode::Persistent).await?;
    /// let cache = Cache::builder(&fw, "/config").start();
    /// let mut events = cache.events();
    /// assert!(matches!(events.next().await, Some(CacheEvent::Created { path, .. }) if path == "/config"));
    /// assert_eq!(events.next().await, Some(CacheEvent::Initialized));
    /// # cache.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn events(&self) -> impl Stream<Item = CacheEvent> + Send + Unpin + 'static {
        let rx = self.shared.events.subscribe();
        futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(event) => return Some((event, rx)),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "cache event receiver fell behind");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed()
    }

    /// Waits until the first full read is done.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] after `timeout`; [`Error::Closed`] if the cache stopped first
    /// (closed, or failed: see [`CacheEvent::Failed`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches the cache's progress; dropping it changes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_recipes::{Error, Framework, cache::Cache};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// let cache = Cache::builder(&fw, "/config").start();
    /// cache.wait_initialized(Duration::from_secs(10)).await?;
    ///
    /// let closed = Cache::builder(&fw, "/other").start();
    /// closed.close().await;
    /// assert_eq!(closed.wait_initialized(Duration::from_secs(10)).await, Err(Error::Closed));
    /// # cache.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn wait_initialized(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.initialized.clone();
        match tokio::time::timeout(timeout, rx.wait_for(|i| *i)).await {
            Err(_) => Err(Error::Timeout),
            Ok(Err(_)) => Err(Error::Closed),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// Whether the first full read is done.
    ///
    /// Once true, it stays true (even while the cache resyncs after a reconnection).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_recipes::{Framework, cache::Cache};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// let cache = Cache::builder(&fw, "/config").start();
    /// cache.wait_initialized(Duration::from_secs(10)).await?;
    /// assert!(cache.is_initialized());
    /// # cache.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn is_initialized(&self) -> bool {
        *self.initialized.borrow()
    }

    /// The cached state of `path`.
    ///
    /// `None` for a node the cache does not hold: missing, outside the root, or left out by
    /// [`CacheBuilder::max_depth`] or [`CacheBuilder::filter`].
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
    /// let cache = Cache::builder(&fw, "/config").start();
    /// cache.wait_initialized(Duration::from_secs(10)).await?;
    /// assert_eq!(&cache.get("/config").unwrap().data[..], b"v1");
    /// assert_eq!(cache.get("/elsewhere"), None);
    /// # cache.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn get(&self, path: &str) -> Option<CachedNode> {
        self.shared.nodes.read().unwrap_or_else(|e| e.into_inner()).get(path).cloned()
    }

    /// The cached children of `path`, as names, sorted.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_recipes::{Framework, cache::Cache};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// for path in ["/workers/w2", "/workers/w1/tasks"] {
    ///     fw.ensure_path(path).await?;
    /// }
    /// let cache = Cache::builder(&fw, "/workers").start();
    /// cache.wait_initialized(Duration::from_secs(10)).await?;
    /// assert_eq!(cache.children("/workers"), ["w1", "w2"]); // names, one level only
    /// # cache.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn children(&self, path: &str) -> Vec<String> {
        let nodes = self.shared.nodes.read().unwrap_or_else(|e| e.into_inner());
        let prefix = if path == "/" { "/".to_owned() } else { format!("{path}/") };
        nodes
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| !p[prefix.len()..].contains('/') && p.len() > prefix.len())
            .map(|(p, _)| p[prefix.len()..].to_owned())
            .collect()
    }

    /// A copy of the whole view: path → node.
    ///
    /// The copy is consistent (taken under one lock) and does not change afterwards.
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
    /// fw.ensure_path("/config").await?;
    /// fw.create("/config/db", "postgres://", CreateMode::Persistent).await?;
    /// let cache = Cache::builder(&fw, "/config").start();
    /// cache.wait_initialized(Duration::from_secs(10)).await?;
    /// let view = cache.snapshot();
    /// assert_eq!(view.keys().collect::<Vec<_>>(), ["/config", "/config/db"]);
    /// assert_eq!(&view["/config/db"].data[..], b"postgres://");
    /// # cache.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn snapshot(&self) -> BTreeMap<String, CachedNode> {
        self.shared.nodes.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops the cache: the watch is removed and the task ends.
    ///
    /// The view keeps its last state and can still be read; no more events come. Dropping the
    /// cache stops it too, without waiting.
    ///
    /// # Cancel safety
    ///
    /// The stop is signalled when the future is first polled; dropping it afterwards does not
    /// undo that (the task still ends), it only stops waiting for the task.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_recipes::{Framework, cache::Cache};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// let cache = Cache::builder(&fw, "/config").start();
    /// cache.wait_initialized(Duration::from_secs(10)).await?;
    /// assert_eq!(fw.client().watcher_count().await, 1);
    /// cache.close().await;
    /// assert_eq!(fw.client().watcher_count().await, 0);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn close(&self) {
        self.task.stop().await;
    }

    /// The number of changes applied to the view so far.
    pub(crate) fn generation(&self) -> u64 {
        *self.shared.generation.borrow()
    }

    /// A receiver that sees the generation change whenever the view changes.
    pub(crate) fn generations(&self) -> watch::Receiver<u64> {
        self.shared.generation.subscribe()
    }

    /// Calls `f` with the generation and the direct children of the root (name, node), under
    /// the view's read lock, so that the two agree.
    pub(crate) fn with_children<R>(
        &self,
        f: impl FnOnce(u64, &mut dyn Iterator<Item = (&str, &CachedNode)>) -> R,
    ) -> R {
        let nodes = self.shared.nodes.read().unwrap_or_else(|e| e.into_inner());
        let generation = *self.shared.generation.borrow();
        let prefix = if self.root == "/" { "/".to_owned() } else { format!("{}/", self.root) };
        let mut children = nodes
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(p, n)| (&p[prefix.len()..], n))
            .filter(|(name, _)| !name.is_empty() && !name.contains('/'));
        f(generation, &mut children)
    }
}

/// The task behind a cache.
struct Engine {
    fw: Framework,
    root: String,
    data: bool,
    max_depth: Option<usize>,
    filter: Option<Filter>,
    shared: Arc<Shared>,
    initialized: watch::Sender<bool>,
}

impl Engine {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut states = self.fw.connection_state();
        let mut synced_on: Option<(u64, u64)> = None;
        let mut watcher: Option<(u64, PersistentWatcher)> = None;
        let mut posted = *states.borrow();
        let mut backoff = crate::task::Backoff::new(&self.fw);
        while !*stop.borrow() {
            let state = *states.borrow_and_update();
            if state != posted {
                posted = state;
                let _ = self.shared.events.send(CacheEvent::ConnectionState(state));
            }
            if !state.state.is_connected() {
                tokio::select! {
                    _ = states.changed() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            // One persistent recursive watch per session; the client restores it on reconnects.
            // The watch is added through the session's own client and recorded with that
            // session's epoch, never with one read before the request.
            if watcher.as_ref().is_none_or(|(epoch, _)| *epoch != state.epoch) {
                let added = match self.fw.session().await {
                    Ok(session) => session
                        .client()
                        .add_watch(&self.root, AddWatchMode::PersistentRecursive)
                        .await
                        .map(|w| (session.epoch(), w)),
                    Err(e) => Err(e),
                };
                match added {
                    Ok(w) => watcher = Some(w),
                    Err(e) if e.code() == corral_core::ErrorCode::Unimplemented => {
                        tracing::error!(root = %self.root, "the server has no addWatch (ZooKeeper < 3.6); the cache stops");
                        let _ = self.shared.events.send(CacheEvent::Failed(e));
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot add the cache's watch yet");
                        backoff.wait(&mut states, &mut stop).await;
                        continue;
                    }
                }
            }
            // A persistent watch does not replay what happened while disconnected: read it all.
            if synced_on != Some((state.epoch, state.connection)) {
                match self.resync(&self.fw.client()).await {
                    Ok(()) => {
                        backoff.reset();
                        synced_on = Some((state.epoch, state.connection));
                        if !*self.initialized.borrow() {
                            self.initialized.send_replace(true);
                            let _ = self.shared.events.send(CacheEvent::Initialized);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "cache resync failed; retrying");
                        backoff.wait(&mut states, &mut stop).await;
                        continue;
                    }
                }
            }
            let Some((_, w)) = watcher.as_mut() else { continue };
            tokio::select! {
                event = w.next() => match event {
                    Some(event) if !event.is_session_end() => {
                        if let Err(e) = self.apply(&event).await {
                            tracing::debug!(error = %e, "cache update failed; resyncing");
                            synced_on = None;
                        }
                    }
                    _ => watcher = None,
                },
                // Posted at the top of the loop.
                _ = states.changed() => {}
                _ = stop.changed() => {}
            }
        }
    }

    fn depth(&self, path: &str) -> usize {
        if path == self.root {
            return 0;
        }
        let rel = if self.root == "/" { &path[1..] } else { &path[self.root.len() + 1..] };
        rel.split('/').count()
    }

    fn keeps(&self, path: &str) -> bool {
        let in_tree = path == self.root
            || (path.starts_with(&self.root) && (self.root == "/" || path[self.root.len()..].starts_with('/')));
        in_tree && self.max_depth.is_none_or(|d| self.depth(path) <= d) && self.filter.as_ref().is_none_or(|f| f(path))
    }

    /// Reads the whole subtree, level by level with pipelined requests, and reconciles.
    async fn resync(&self, client: &Client) -> Result<()> {
        let mut fresh = BTreeMap::new();
        let mut level = vec![self.root.clone()];
        let mut depth = 0;
        while !level.is_empty() {
            let reads: Vec<_> = level.iter().map(|p| client.get_data(p)).collect();
            let descend = self.max_depth.is_none_or(|d| depth < d);
            let lists: Vec<_> = if descend {
                level.iter().map(|p| Some(client.get_children(p))).collect()
            } else {
                level.iter().map(|_| None).collect()
            };
            let mut next = Vec::new();
            for ((path, read), list) in level.iter().zip(reads).zip(lists) {
                match read.await {
                    Ok((data, stat)) => {
                        if self.keeps(path) {
                            let data = if self.data { data } else { Bytes::new() };
                            fresh.insert(path.clone(), CachedNode { stat, data });
                        }
                    }
                    Err(e) if e.is_no_node() => {}
                    Err(e) => return Err(e),
                }
                if let Some(list) = list {
                    match list.await {
                        Ok(children) => next.extend(children.into_iter().map(|c| join(path, &c))),
                        Err(e) if e.is_no_node() => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            level = next;
            depth += 1;
        }
        self.reconcile(fresh);
        Ok(())
    }

    /// Replaces the view with `fresh`, sending the events that tell the difference.
    fn reconcile(&self, fresh: BTreeMap<String, CachedNode>) {
        let mut nodes = self.shared.nodes.write().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<String> = nodes.keys().filter(|p| !fresh.contains_key(*p)).cloned().collect();
        // Deepest first, as ZooKeeper deletes.
        for path in gone.iter().rev() {
            if let Some(old) = nodes.remove(path) {
                let _ = self.shared.events.send(CacheEvent::Deleted { path: path.clone(), old });
            }
        }
        for (path, node) in fresh {
            match nodes.get(&path) {
                None => {
                    let _ = self.shared.events.send(CacheEvent::Created { path: path.clone(), node: node.clone() });
                }
                Some(old) if old.stat.czxid != node.stat.czxid => {
                    let _ = self.shared.events.send(CacheEvent::Deleted { path: path.clone(), old: old.clone() });
                    let _ = self.shared.events.send(CacheEvent::Created { path: path.clone(), node: node.clone() });
                }
                Some(old) if old.stat.mzxid != node.stat.mzxid => {
                    let _ = self.shared.events.send(CacheEvent::Changed {
                        path: path.clone(),
                        old: old.clone(),
                        new: node.clone(),
                    });
                }
                Some(_) => continue,
            }
            nodes.insert(path, node);
        }
        self.shared.bump();
    }

    /// Applies one watch event: re-reads the node (the event says only that it changed).
    async fn apply(&self, event: &WatchedEvent) -> Result<()> {
        let path = event.path.clone();
        match event.event_type {
            EventType::NodeDeleted => {
                self.remove(&path);
                Ok(())
            }
            EventType::NodeCreated | EventType::NodeDataChanged => {
                if !self.keeps(&path) {
                    return Ok(());
                }
                match self.fw.client().get_data(&path).await {
                    Ok((data, stat)) => {
                        let data = if self.data { data } else { Bytes::new() };
                        self.upsert(path, CachedNode { stat, data });
                        Ok(())
                    }
                    // Deleted again before we read it: its NodeDeleted event follows.
                    Err(e) if e.is_no_node() => Ok(()),
                    Err(e) => Err(e),
                }
            }
            _ => Ok(()),
        }
    }

    fn upsert(&self, path: String, node: CachedNode) {
        let mut nodes = self.shared.nodes.write().unwrap_or_else(|e| e.into_inner());
        let event = match nodes.get(&path) {
            None => CacheEvent::Created { path: path.clone(), node: node.clone() },
            Some(old) if old.stat.czxid != node.stat.czxid => {
                let _ = self.shared.events.send(CacheEvent::Deleted { path: path.clone(), old: old.clone() });
                CacheEvent::Created { path: path.clone(), node: node.clone() }
            }
            // Only newer data replaces what we have (events and resyncs may overlap).
            Some(old) if node.stat.mzxid > old.stat.mzxid => {
                CacheEvent::Changed { path: path.clone(), old: old.clone(), new: node.clone() }
            }
            Some(_) => return,
        };
        nodes.insert(path, node);
        self.shared.bump();
        let _ = self.shared.events.send(event);
    }

    fn remove(&self, path: &str) {
        let mut nodes = self.shared.nodes.write().unwrap_or_else(|e| e.into_inner());
        let prefix = format!("{path}/");
        let below: BTreeSet<String> =
            nodes.range(prefix.clone()..).take_while(|(p, _)| p.starts_with(&prefix)).map(|(p, _)| p.clone()).collect();
        let mut removed = false;
        for p in below.iter().rev().chain(std::iter::once(&path.to_owned())) {
            if let Some(old) = nodes.remove(p) {
                removed = true;
                let _ = self.shared.events.send(CacheEvent::Deleted { path: p.clone(), old });
            }
        }
        if removed {
            self.shared.bump();
        }
    }
}

fn join(parent: &str, child: &str) -> String {
    if parent == "/" { format!("/{child}") } else { format!("{parent}/{child}") }
}

/// A cache of one node (Curator's `NodeCache`): the [`Cache`] engine limited to its root.
///
/// Its watch is recursive like every cache's, so changes below the node cost a notification
/// each (ignored).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::time::Duration;
/// use corral_recipes::{CreateMode, Framework, cache::{CacheEvent, NodeCache}};
/// use futures::StreamExt;
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// fw.create("/leader", "node-1", CreateMode::Persistent).await?;
/// let leader = NodeCache::start(&fw, "/leader");
/// let mut events = leader.cache().events();
/// leader.cache().wait_initialized(Duration::from_secs(10)).await?;
/// fw.set_data("/leader", "node-2", None).await?;
/// while let Some(event) = events.next().await {
///     if let CacheEvent::Changed { new, .. } = event {
///         assert_eq!(&new.data[..], b"node-2");
///         break;
///     }
/// }
/// assert_eq!(&leader.current().unwrap().data[..], b"node-2");
/// # leader.cache().close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NodeCache {
    cache: Cache,
}

impl NodeCache {
    /// Starts caching the node at `path`.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, as [`CacheBuilder::start`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_recipes::{Framework, cache::NodeCache};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// let node = NodeCache::start(&fw, "/config");
    /// assert_eq!(node.cache().root(), "/config");
    /// node.cache().wait_initialized(Duration::from_secs(10)).await?;
    /// # node.cache().close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn start(fw: &Framework, path: impl Into<String>) -> Self {
        Self { cache: Cache::builder(fw, path).max_depth(0).start() }
    }

    /// The node's cached state, or `None` if it does not exist.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_recipes::{Framework, cache::NodeCache};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// let node = NodeCache::start(&fw, "/maintenance");
    /// node.cache().wait_initialized(Duration::from_secs(10)).await?;
    /// assert_eq!(node.current(), None);
    /// # node.cache().close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn current(&self) -> Option<CachedNode> {
        self.cache.get(self.cache.root())
    }

    /// The underlying cache (events, initialization, close).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_recipes::{CreateMode, Framework, cache::NodeCache};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// fw.create("/config", "v1", CreateMode::Persistent).await?;
    /// let node = NodeCache::start(&fw, "/config");
    /// node.cache().wait_initialized(Duration::from_secs(10)).await?;
    /// assert!(node.cache().is_initialized());
    /// node.cache().close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn cache(&self) -> &Cache {
        &self.cache
    }
}

/// A cache of a node's children (what Curator's `PathChildrenCache` is used for): the [`Cache`]
/// engine limited to one level.
///
/// The parent itself is cached too (it is the root); [`ChildrenCache::current`] leaves it out.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::time::Duration;
/// use corral_recipes::{CreateMode, Framework, cache::{CacheEvent, ChildrenCache}};
/// use futures::StreamExt;
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// fw.ensure_path("/members").await?;
/// let members = ChildrenCache::start(&fw, "/members");
/// let mut events = members.cache().events();
/// members.cache().wait_initialized(Duration::from_secs(10)).await?;
/// fw.create("/members/m1", "10.0.0.1", CreateMode::Ephemeral).await?;
/// while let Some(event) = events.next().await {
///     if matches!(event, CacheEvent::Created { path, .. } if path == "/members/m1") {
///         break;
///     }
/// }
/// assert_eq!(members.current().into_keys().collect::<Vec<_>>(), ["m1"]);
/// # members.cache().close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ChildrenCache {
    cache: Cache,
}

impl ChildrenCache {
    /// Starts caching the children of `path` (with their data).
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, as [`CacheBuilder::start`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_recipes::{Framework, cache::ChildrenCache};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// fw.ensure_path("/queue/item-1/details").await?;
    /// let queue = ChildrenCache::start(&fw, "/queue");
    /// queue.cache().wait_initialized(Duration::from_secs(10)).await?;
    /// assert!(queue.cache().get("/queue/item-1/details").is_none()); // one level only
    /// # queue.cache().close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn start(fw: &Framework, path: impl Into<String>) -> Self {
        Self { cache: Cache::builder(fw, path).max_depth(1).start() }
    }

    /// The cached children: name → node.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_recipes::{CreateMode, Framework, cache::ChildrenCache};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// fw.ensure_path("/members").await?;
    /// fw.create("/members/m1", "10.0.0.1", CreateMode::Persistent).await?;
    /// fw.create("/members/m2", "10.0.0.2", CreateMode::Persistent).await?;
    /// let members = ChildrenCache::start(&fw, "/members");
    /// members.cache().wait_initialized(Duration::from_secs(10)).await?;
    /// let current = members.current();
    /// assert_eq!(current.keys().collect::<Vec<_>>(), ["m1", "m2"]);
    /// assert_eq!(&current["m2"].data[..], b"10.0.0.2");
    /// # members.cache().close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn current(&self) -> BTreeMap<String, CachedNode> {
        let root = self.cache.root().to_owned();
        let prefix = if root == "/" { "/".to_owned() } else { format!("{root}/") };
        self.cache
            .snapshot()
            .into_iter()
            .filter(|(p, _)| p.len() > prefix.len() && p.starts_with(&prefix))
            .map(|(p, n)| (p[prefix.len()..].to_owned(), n))
            .collect()
    }

    /// The underlying cache (events, initialization, close).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_recipes::{Framework, cache::ChildrenCache};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// fw.ensure_path("/members").await?;
    /// let members = ChildrenCache::start(&fw, "/members");
    /// members.cache().wait_initialized(Duration::from_secs(10)).await?;
    /// assert_eq!(members.cache().children("/members"), Vec::<String>::new());
    /// members.cache().close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn cache(&self) -> &Cache {
        &self.cache
    }
}
