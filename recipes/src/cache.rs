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
//! | RECONNECTED, same session | full resync: changes made meanwhile come out as events |
//! | LOST, new session | the watch is added again on the new session, then a full resync |

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedNode {
    /// The node's stat when last read.
    pub stat: Stat,
    /// The node's data (empty in data-less mode).
    pub data: Bytes,
}

/// A change seen by a [`Cache`].
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
    /// The framework's connection state changed (SUSPENDED, RECONNECTED, LOST ...).
    ConnectionState(ConnectionStateChange),
    /// The cache cannot work (for example, the server has no `addWatch`); it has stopped.
    Failed(Error),
}

/// Which nodes a cache keeps.
type Filter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Builds a [`Cache`].
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
    pub fn without_data(mut self) -> Self {
        self.data = false;
        self
    }

    /// Keeps nodes at most `depth` levels below the root (0 = the root only).
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = Some(depth);
        self
    }

    /// Keeps only nodes whose path satisfies `filter` (the root is always read; a filtered-out
    /// node's descendants are still visited).
    pub fn filter(mut self, filter: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Arc::new(filter));
        self
    }

    /// Starts the cache in the background. Must be called within a Tokio runtime.
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
    pub fn builder(fw: &Framework, root: impl Into<String>) -> CacheBuilder {
        CacheBuilder { fw: fw.clone(), root: root.into(), data: true, max_depth: None, filter: None }
    }

    /// The cache's root.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The events from now on. A receiver that falls more than 1024 events behind skips the
    /// oldest (the stream yields what is left); the view itself is always complete.
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
    /// [`Error::Timeout`] after `timeout`; [`Error::Closed`] if the cache stopped first.
    pub async fn wait_initialized(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.initialized.clone();
        match tokio::time::timeout(timeout, rx.wait_for(|i| *i)).await {
            Err(_) => Err(Error::Timeout),
            Ok(Err(_)) => Err(Error::Closed),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// Whether the first full read is done.
    pub fn is_initialized(&self) -> bool {
        *self.initialized.borrow()
    }

    /// The cached state of `path`.
    pub fn get(&self, path: &str) -> Option<CachedNode> {
        self.shared.nodes.read().unwrap_or_else(|e| e.into_inner()).get(path).cloned()
    }

    /// The cached children of `path`, as names, sorted.
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
    pub fn snapshot(&self) -> BTreeMap<String, CachedNode> {
        self.shared.nodes.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops the cache: the watch is removed and the task ends.
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
        while !*stop.borrow() {
            let state = *states.borrow_and_update();
            if !state.state.is_connected() {
                tokio::select! {
                    _ = states.changed() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            // One persistent recursive watch per session; the client restores it on reconnects.
            if watcher.as_ref().is_none_or(|(epoch, _)| *epoch != state.epoch) {
                match self.fw.client().add_watch(&self.root, AddWatchMode::PersistentRecursive).await {
                    Ok(w) => watcher = Some((state.epoch, w)),
                    Err(e) if e.code() == corral_core::ErrorCode::Unimplemented => {
                        tracing::error!(root = %self.root, "the server has no addWatch (ZooKeeper < 3.6); the cache stops");
                        let _ = self.shared.events.send(CacheEvent::Failed(e));
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot add the cache's watch yet");
                        wait_a_bit(&mut states, &mut stop).await;
                        continue;
                    }
                }
            }
            // A persistent watch does not replay what happened while disconnected: read it all.
            if synced_on != Some((state.epoch, state.connection)) {
                match self.resync(&self.fw.client()).await {
                    Ok(()) => {
                        synced_on = Some((state.epoch, state.connection));
                        if !*self.initialized.borrow() {
                            self.initialized.send_replace(true);
                            let _ = self.shared.events.send(CacheEvent::Initialized);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "cache resync failed; retrying");
                        wait_a_bit(&mut states, &mut stop).await;
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
                _ = states.changed() => {
                    let _ = self.shared.events.send(CacheEvent::ConnectionState(*states.borrow()));
                }
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
        for p in below.iter().rev().chain(std::iter::once(&path.to_owned())) {
            if let Some(old) = nodes.remove(p) {
                let _ = self.shared.events.send(CacheEvent::Deleted { path: p.clone(), old });
            }
        }
        self.shared.bump();
    }
}

async fn wait_a_bit(states: &mut watch::Receiver<ConnectionStateChange>, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        _ = states.changed() => {}
        _ = stop.changed() => {}
    }
}

fn join(parent: &str, child: &str) -> String {
    if parent == "/" { format!("/{child}") } else { format!("{parent}/{child}") }
}

/// A cache of one node (Curator's `NodeCache`): the [`Cache`] engine limited to its root.
#[derive(Debug)]
pub struct NodeCache {
    cache: Cache,
}

impl NodeCache {
    /// Starts caching the node at `path`.
    pub fn start(fw: &Framework, path: impl Into<String>) -> Self {
        Self { cache: Cache::builder(fw, path).max_depth(0).start() }
    }

    /// The node's cached state, or `None` if it does not exist.
    pub fn current(&self) -> Option<CachedNode> {
        self.cache.get(self.cache.root())
    }

    /// The underlying cache (events, initialization, close).
    pub fn cache(&self) -> &Cache {
        &self.cache
    }
}

/// A cache of a node's children (what Curator's `PathChildrenCache` is used for): the [`Cache`]
/// engine limited to one level.
#[derive(Debug)]
pub struct ChildrenCache {
    cache: Cache,
}

impl ChildrenCache {
    /// Starts caching the children of `path` (with their data).
    pub fn start(fw: &Framework, path: impl Into<String>) -> Self {
        Self { cache: Cache::builder(fw, path).max_depth(1).start() }
    }

    /// The cached children: name → node.
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
    pub fn cache(&self) -> &Cache {
        &self.cache
    }
}
