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
//! Servers older than 3.6 (ZooKeeper 3.5) have no `addWatch`. There the cache falls back to
//! Curator's `TreeCache` way: one-shot watches on every node it follows — a data watch on each
//! (an exists watch on a missing root) and a children watch on each above
//! [`CacheBuilder::max_depth`] — each set again by the read that follows its event, never twice
//! for one node. The events, the resync after every (re)connection and the czxid/mzxid rule
//! are the same; it costs two watches per node instead of one in all. The choice is automatic:
//! the first cache tries `addWatch`; after an Unimplemented the framework remembers it for its
//! lifetime ([`Framework::persistent_watches`](corral_core::Framework::persistent_watches)) and
//! every cache uses one-shot watches. [`Cache::watch_mode`] tells which a cache runs in.
//!
//! # Connection states
//!
//! | state | what happens |
//! |---|---|
//! | SUSPENDED | the cache keeps its view (possibly stale) and posts [`CacheEvent::ConnectionState`] |
//! | RECONNECTED, same session | posts it, then a full resync: changes made meanwhile come out as events |
//! | LOST, new session | posts LOST and then RECONNECTED; the watches are set again on the new session, then a full resync |
//!
//! [`CacheEvent::ConnectionState`] reports each connection state the cache notices, as Curator's
//! `PathChildrenCache` does (`CONNECTION_SUSPENDED`, `CONNECTION_RECONNECTED`,
//! `CONNECTION_LOST`). States that follow each other very quickly may reach the cache as one
//! (the latest); follow [`Framework::state_changes`](corral_core::Framework::state_changes) to
//! see every transition.

//! # Where things are
//!
//! - this file: the public face — [`Cache`], its builder, its nodes and events;
//! - `engine`: the task that follows the connection, holds the watch, resyncs and applies events;
//! - `oneshot`: the same with one-shot watches, for servers without `addWatch`, and [`WatchMode`];
//! - `diff`: the one rule that says whether a fresh read is a new node, changed data, or nothing new;
//! - `views`: [`NodeCache`] and [`ChildrenCache`], the narrower views on the same engine.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::{Error, Result};
use corral_core::Framework;
use futures::Stream;
use tokio::sync::watch;

use crate::task::RecipeTask;

mod diff;
mod engine;
mod event;
mod oneshot;
mod views;

use engine::{Engine, Shared};
use event::event_stream;
pub use event::{CacheEvent, CachedNode};
pub use oneshot::WatchMode;
pub use views::{ChildrenCache, NodeCache};

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
    one_shot: bool,
}

impl std::fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("root", &self.root)
            .field("data", &self.data)
            .field("max_depth", &self.max_depth)
            .field("one_shot", &self.one_shot)
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
    /// Deeper nodes are neither read nor kept. A persistent watch still covers them (their
    /// changes cost an ignored notification each); with one-shot watches
    /// ([`WatchMode::OneShot`]) nothing below the limit is watched.
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

    /// Uses one-shot watches ([`WatchMode::OneShot`]) even if the server has `addWatch`, as
    /// Curator's `curator-cache-bridge-force-tree-cache` property does: to try the fallback
    /// against the servers in use before a ZooKeeper 3.5 member joins them.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_recipes::{Framework, cache::{Cache, WatchMode}};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// let cache = Cache::builder(&fw, "/config").one_shot_watches().start();
    /// cache.wait_initialized(Duration::from_secs(10)).await?;
    /// assert_eq!(cache.watch_mode(), WatchMode::OneShot);
    /// # cache.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn one_shot_watches(mut self) -> Self {
        self.one_shot = true;
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
        self.start_on(Arc::new(Shared::new()))
    }

    fn start_on(self, shared: Arc<Shared>) -> Cache {
        let (initialized_tx, initialized) = watch::channel(false);
        let engine = Engine {
            fw: self.fw.clone(),
            root: self.root.clone(),
            data: self.data,
            max_depth: self.max_depth,
            filter: self.filter.clone(),
            one_shot: self.one_shot,
            shared: shared.clone(),
            initialized: initialized_tx,
        };
        let task = RecipeTask::spawn(|stop| engine.run(stop));
        Cache { root: self.root, shared, initialized, task }
    }

    /// Starts the cache with an event stream that sees everything from its start, as a Curator
    /// listener added before `start()` does: a [`CacheEvent::Created`] for every node the first
    /// read finds, then [`CacheEvent::Initialized`], then the changes.
    ///
    /// [`Cache::events`] taken right after [`CacheBuilder::start`] may miss the first read on a
    /// multi-thread runtime (the cache's task can finish it first); this cannot.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (the cache's task is spawned on the current one).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_recipes::{CreateMode, Framework, cache::{Cache, CacheEvent}};
    /// use futures::StreamExt;
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// fw.create("/config", "v1", CreateMode::Persistent).await?;
    /// let (cache, mut events) = Cache::builder(&fw, "/config").start_with_events();
    /// assert!(matches!(events.next().await, Some(CacheEvent::Created { path, .. }) if path == "/config"));
    /// assert_eq!(events.next().await, Some(CacheEvent::Initialized));
    /// # cache.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn start_with_events(self) -> (Cache, impl Stream<Item = CacheEvent> + Send + Unpin + 'static) {
        let shared = Arc::new(Shared::new());
        let rx = shared.events.subscribe();
        let cache = self.start_on(shared);
        let events = event_stream(rx, Arc::downgrade(&cache.shared), false);
        (cache, events)
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
        CacheBuilder { fw: fw.clone(), root: root.into(), data: true, max_depth: None, filter: None, one_shot: false }
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

    /// The events from now on. A stream that falls more than 1024 events behind loses none
    /// silently: it yields [`CacheEvent::Resynced`] with the whole view instead of the node
    /// events it missed, then the changes made after that view.
    ///
    /// Events are not replayed: a stream taken as the cache starts (before its task first runs)
    /// sees a [`CacheEvent::Created`] for every node the first read finds, then
    /// [`CacheEvent::Initialized`]; one taken later sees only later changes. On a multi-thread
    /// runtime the task may run first: [`CacheBuilder::start_with_events`] gives a stream that
    /// sees the first read whatever runs first. The stream ends when the cache is dropped.
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
        // The flag turns true just before `Initialized` is sent: read after subscribing, true
        // means this stream may get that event although it was taken after initialization.
        let late = *self.initialized.borrow();
        event_stream(rx, Arc::downgrade(&self.shared), late)
    }

    /// Waits until the first full read is done.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] after `timeout`; [`corral_core::Error::Closed`] (as [`Error::Core`]) if the cache stopped first
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
    /// assert_eq!(closed.wait_initialized(Duration::from_secs(10)).await, Err(Error::Core(corral_recipes::CoreError::Closed)));
    /// # cache.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn wait_initialized(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.initialized.clone();
        match tokio::time::timeout(timeout, rx.wait_for(|i| *i)).await {
            Err(_) => Err(Error::TimedOut { after: timeout }),
            Ok(Err(_)) => Err(Error::CLOSED),
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
