//! The cache on servers without persistent watches (ZooKeeper 3.5): one-shot watches on every
//! node it follows, as Curator's `TreeCache` and kazoo's `TreeCache` do, with the same events
//! and the same resync as the persistent engine ([`engine`](super::engine)).
//!
//! # The watches
//!
//! Every node the cache follows has up to two slots: **data** (a getData watch; for the root an
//! exists watch while it is missing, so that its creation is seen) and **children** (a
//! getChildren watch, only above the depth limit). A node left out by the filter has no data
//! slot, but its children are still followed. A slot holds at most one watcher: a read sets a
//! watch only into an empty slot, and a slot empties only when its watcher fires — so no event
//! ever adds a second watch on a path, and the client's watch count is exactly the number of
//! filled slots.
//!
//! # Why nothing is missed
//!
//! A fired watcher is followed by a read of the same node that sets its watch again: whatever
//! changed between the event and that read is in the read, whatever changes after it fires the
//! new watch. A new child shows up in its parent's children event, and is then read with its
//! whole subtree; a deleted node's own watches fire (and a read finds it gone); a node deleted
//! and created again has a new czxid, which [`diff`](super::diff) turns into deleted + created.
//! Replies come in request order and are applied in that order, so the view never goes back.
//! Within a session the client restores the one-shot watches on a reconnection (firing what
//! changed meanwhile); after any reconnection the cache also reads everything again, as the
//! persistent engine does, and after a new session it sets every watch again.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use corral_core::framework::Session;
use corral_core::{Client, OneshotWatcher, Stat, WatchedEvent};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::watch;

use super::engine::{Engine, Follow, join};
use super::{Cache, CachedNode};
use crate::{Error, Result};

/// How a [`Cache`] watches its subtree: see [`Cache::watch_mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WatchMode {
    /// Not chosen yet: the cache has not been connected since it started.
    Undecided = 0,
    /// One persistent recursive watch on the root (ZooKeeper ≥ 3.6).
    Persistent = 1,
    /// One-shot watches on every node it follows, set again after each event (the fallback for
    /// servers without `addWatch`, such as ZooKeeper 3.5).
    OneShot = 2,
}

impl Cache {
    /// How this cache watches its subtree.
    ///
    /// Chosen when the cache first connects: [`WatchMode::Persistent`] when the server takes
    /// `addWatch`, [`WatchMode::OneShot`] when it answers Unimplemented (ZooKeeper 3.5) or
    /// the framework has learned so before
    /// ([`Framework::persistent_watches`](corral_core::Framework::persistent_watches)). A cache
    /// that falls back stays in one-shot mode for its life. Both modes give the same events.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use corral_recipes::{Framework, cache::{Cache, CacheEvent, WatchMode}};
    /// use corral_server::{Server, testing::TestingServer};
    /// use futures::StreamExt;
    ///
    /// // A server that answers as ZooKeeper 3.5 does: no persistent watches.
    /// let server = TestingServer::with_builder(Server::builder().persistent_watches(false)).await?;
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// fw.ensure_path("/config/db").await?;
    /// let cache = Cache::builder(&fw, "/config").start();
    /// cache.wait_initialized(Duration::from_secs(10)).await?;
    /// assert_eq!(cache.watch_mode(), WatchMode::OneShot);
    /// // A data watch on each node, a children watch on each above the depth limit.
    /// assert_eq!(fw.client().watcher_count().await, 4);
    ///
    /// let mut events = cache.events();
    /// fw.set_data("/config/db", "postgres://", None).await?;
    /// while let Some(event) = events.next().await {
    ///     if let CacheEvent::Changed { path, new, .. } = event {
    ///         assert_eq!((path.as_str(), &new.data[..]), ("/config/db", &b"postgres://"[..]));
    ///         break;
    ///     }
    /// }
    /// # cache.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn watch_mode(&self) -> WatchMode {
        self.shared.mode()
    }
}

/// A node's watch slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Slot {
    /// getData (or, on a missing root, exists): fires on data change, delete (and create).
    Data,
    /// getChildren: fires on a child created or deleted, and on delete.
    Children,
}

type Fired = Pin<Box<dyn Future<Output = ((String, Slot), WatchedEvent)> + Send>>;

/// The filled slots of one session, and their watchers waiting to fire.
struct Watches {
    /// The session the watchers were set on.
    epoch: u64,
    filled: HashSet<(String, Slot)>,
    waiting: FuturesUnordered<Fired>,
}

impl Watches {
    fn new() -> Self {
        Self { epoch: 0, filled: HashSet::new(), waiting: FuturesUnordered::new() }
    }

    /// Drops every watcher (they belong to a session that is gone).
    fn reset(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.filled.clear();
        self.waiting = FuturesUnordered::new();
    }

    fn is_filled(&self, path: &str, slot: Slot) -> bool {
        self.filled.contains(&(path.to_owned(), slot))
    }

    /// Fills a slot with the watcher a read returned. A read asks for a watch only into an
    /// empty slot, so the slot is empty; were it not, the extra watcher is dropped (which
    /// leaves the server's watch in place, for the one held).
    fn fill(&mut self, path: &str, slot: Slot, watcher: OneshotWatcher) {
        let key = (path.to_owned(), slot);
        if self.filled.insert(key.clone()) {
            self.waiting.push(Box::pin(async move { (key, watcher.await) }));
        }
    }
}

type Reply<T> = Pin<Box<dyn Future<Output = corral_core::Result<T>> + Send>>;

/// Runs the cache on one-shot watches until `stop` turns true.
pub(super) async fn run(engine: Engine, mut follow: Follow, mut stop: watch::Receiver<bool>) {
    let mut watches = Watches::new();
    let mut session: Option<Session> = None;
    let mut synced_on: Option<(u64, u64)> = None;
    while !*stop.borrow() {
        let Some(state) = follow.connected(&engine.shared, &mut stop).await else { continue };
        // After every (re)connection, read everything again; after a new session, also set
        // every watch again (the old session's are gone with it).
        if synced_on != Some((state.epoch, state.connection)) {
            let current = match engine.fw.session().await {
                Ok(current) => current,
                Err(e) => {
                    tracing::debug!(error = %e, "no session for the cache yet");
                    follow.backoff.wait(&mut follow.states, &mut stop).await;
                    continue;
                }
            };
            if current.epoch() != watches.epoch {
                watches.reset(current.epoch());
            }
            match engine.sync(&mut watches, current.client(), vec![engine.root.clone()]).await {
                Ok(()) => {
                    follow.backoff.reset();
                    synced_on = Some((current.started().epoch, current.started().connection));
                    engine.synced();
                    session = Some(current);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cache resync failed; retrying");
                    follow.backoff.wait(&mut follow.states, &mut stop).await;
                    continue;
                }
            }
        }
        let Some(current) = session.as_ref() else { continue };
        tokio::select! {
            Some(((path, slot), event)) = watches.waiting.next(), if !watches.waiting.is_empty() => {
                watches.filled.remove(&(path.clone(), slot));
                // The session ended: the next one is read (and watched) from scratch.
                if event.is_session_end() {
                    continue;
                }
                let refreshed = match slot {
                    Slot::Data => engine.refresh_node(&mut watches, current.client(), &path).await,
                    Slot::Children => engine.refresh_children(&mut watches, current.client(), &path).await,
                };
                if let Err(e) = refreshed {
                    tracing::debug!(error = %e, path, "cache update failed; resyncing");
                    synced_on = None;
                }
            }
            // Posted at the top of the loop.
            _ = follow.states.changed() => {}
            _ = stop.changed() => {}
        }
    }
}

impl Engine {
    /// Whether `path` (followed) has a data slot: the root always, others when kept.
    fn data_slot(&self, path: &str) -> bool {
        path == self.root || self.filter.as_ref().is_none_or(|f| f(path))
    }

    /// Whether `path` (followed) has a children slot: above the depth limit.
    fn children_slot(&self, path: &str) -> bool {
        self.max_depth.is_none_or(|d| self.depth(path) < d)
    }

    /// Whether every slot `path` has is filled.
    fn fully_watched(&self, w: &Watches, path: &str) -> bool {
        (!self.data_slot(path) || w.is_filled(path, Slot::Data))
            && (!self.children_slot(path) || w.is_filled(path, Slot::Children))
    }

    /// Reads `path`'s data, with a watch if its data slot is empty.
    fn read_data(&self, w: &Watches, client: &Client, path: &str) -> Reply<(Bytes, Stat, Option<OneshotWatcher>)> {
        if w.is_filled(path, Slot::Data) {
            let read = client.get_data(path);
            Box::pin(async move { read.await.map(|(data, stat)| (data, stat, None)) })
        } else {
            let read = client.get_data_and_watch(path);
            Box::pin(async move { read.await.map(|(data, stat, watcher)| (data, stat, Some(watcher))) })
        }
    }

    /// Lists `path`'s children, with a watch if its children slot is empty.
    fn read_children(&self, w: &Watches, client: &Client, path: &str) -> Reply<(Vec<String>, Option<OneshotWatcher>)> {
        if w.is_filled(path, Slot::Children) {
            let read = client.get_children(path);
            Box::pin(async move { read.await.map(|children| (children, None)) })
        } else {
            let read = client.get_children_and_watch(path);
            Box::pin(async move { read.await.map(|(children, _, watcher)| (children, Some(watcher))) })
        }
    }

    /// Takes a data read of `path`: its watcher, if any, into the data slot; the node, if the
    /// cache keeps it.
    fn take_data(
        &self,
        w: &mut Watches,
        path: &str,
        (data, stat, watcher): (Bytes, Stat, Option<OneshotWatcher>),
    ) -> Option<CachedNode> {
        if let Some(watcher) = watcher {
            w.fill(path, Slot::Data, watcher);
        }
        let data = if self.data { data } else { Bytes::new() };
        self.keeps(path).then_some(CachedNode { stat, data })
    }

    /// Reads the subtrees at `scopes` and brings the view there to what it found, filling every
    /// empty slot on the way; a missing root gets an exists watch (and is read again if it
    /// turns out to exist by then).
    async fn sync(&self, w: &mut Watches, client: &Client, mut scopes: Vec<String>) -> Result<()> {
        loop {
            let (fresh, root_missing) = self.walk(w, client, scopes.clone()).await?;
            self.reconcile(&scopes, fresh);
            if !root_missing || w.is_filled(&self.root, Slot::Data) {
                return Ok(());
            }
            let (stat, watcher) = client.exists_and_watch(&self.root).await?;
            w.fill(&self.root, Slot::Data, watcher);
            if stat.is_none() {
                return Ok(());
            }
            scopes = vec![self.root.clone()];
        }
    }

    /// Reads the subtrees at `scopes`, level by level with pipelined requests, filling empty
    /// slots. Returns the nodes the cache keeps, and whether the root was among the scopes and
    /// missing.
    async fn walk(
        &self,
        w: &mut Watches,
        client: &Client,
        scopes: Vec<String>,
    ) -> Result<(BTreeMap<String, CachedNode>, bool)> {
        let mut fresh = BTreeMap::new();
        let mut root_missing = false;
        let mut level = scopes;
        while !level.is_empty() {
            // All of a level's requests go out before the first reply is awaited.
            let reads: Vec<_> = level
                .iter()
                .map(|p| {
                    let data = self.data_slot(p).then(|| self.read_data(w, client, p));
                    let children = self.children_slot(p).then(|| self.read_children(w, client, p));
                    (data, children)
                })
                .collect();
            let mut next = Vec::new();
            for (path, (data, children)) in level.iter().zip(reads) {
                if let Some(data) = data {
                    match data.await {
                        Ok(read) => {
                            if let Some(node) = self.take_data(w, path, read) {
                                fresh.insert(path.clone(), node);
                            }
                        }
                        Err(e) if e.is_no_node() => root_missing |= *path == self.root,
                        Err(e) => return Err(Error::from(e)),
                    }
                }
                if let Some(children) = children {
                    match children.await {
                        Ok((children, watcher)) => {
                            if let Some(watcher) = watcher {
                                w.fill(path, Slot::Children, watcher);
                            }
                            next.extend(children.iter().map(|c| join(path, c)));
                        }
                        Err(e) if e.is_no_node() => root_missing |= *path == self.root,
                        Err(e) => return Err(Error::from(e)),
                    }
                }
            }
            level = next;
        }
        Ok((fresh, root_missing))
    }

    /// After `path`'s data watch fired: reads it again (setting the watch again), and follows
    /// its children if nothing does yet (a node just created).
    async fn refresh_node(&self, w: &mut Watches, client: &Client, path: &str) -> Result<()> {
        match self.read_data(w, client, path).await {
            Ok(read) => {
                if let Some(node) = self.take_data(w, path, read) {
                    self.upsert(path.to_owned(), node);
                }
                if self.children_slot(path) && !w.is_filled(path, Slot::Children) {
                    return self.refresh_children(w, client, path).await;
                }
                Ok(())
            }
            Err(e) if e.is_no_node() => self.gone(w, client, path).await,
            Err(e) => Err(Error::from(e)),
        }
    }

    /// After `path`'s children watch fired: lists them again (setting the watch again); a
    /// child no longer listed is gone, with what the view holds below it; a child not followed
    /// yet is read with its subtree.
    async fn refresh_children(&self, w: &mut Watches, client: &Client, path: &str) -> Result<()> {
        match self.read_children(w, client, path).await {
            Ok((children, watcher)) => {
                if let Some(watcher) = watcher {
                    w.fill(path, Slot::Children, watcher);
                }
                let listed: BTreeSet<String> = children.iter().map(|c| join(path, c)).collect();
                for unlisted in self.unlisted(path, &listed) {
                    self.remove(&unlisted);
                }
                let new: Vec<String> = listed.into_iter().filter(|c| !self.fully_watched(w, c)).collect();
                if new.is_empty() { Ok(()) } else { self.sync(w, client, new).await }
            }
            Err(e) if e.is_no_node() => self.gone(w, client, path).await,
            Err(e) => Err(Error::from(e)),
        }
    }

    /// `path` was not found: it leaves the view with its subtree. A missing root is read
    /// again, which sets its exists watch; any other node is found again by its parent's
    /// children watch if it comes back.
    async fn gone(&self, w: &mut Watches, client: &Client, path: &str) -> Result<()> {
        if path == self.root {
            self.sync(w, client, vec![self.root.clone()]).await
        } else {
            self.remove(path);
            Ok(())
        }
    }

    /// The children of `parent` the view holds something at or below, that `listed` (its
    /// children now, as paths) lacks.
    fn unlisted(&self, parent: &str, listed: &BTreeSet<String>) -> Vec<String> {
        let nodes = self.shared.nodes.read().unwrap_or_else(|e| e.into_inner());
        let prefix = if parent == "/" { "/".to_owned() } else { format!("{parent}/") };
        let held: BTreeSet<String> = nodes
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter_map(|(p, _)| p[prefix.len()..].split('/').next().map(|name| format!("{prefix}{name}")))
            .collect();
        held.into_iter().filter(|child| !listed.contains(child)).collect()
    }
}
