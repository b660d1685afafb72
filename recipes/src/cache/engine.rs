//! The task behind a [`Cache`](super::Cache): it follows the connection, keeps one persistent
//! recursive watch per session, reads the whole subtree after every (re)connection and applies
//! watch events in between. On a server without persistent watches it hands over to the
//! one-shot engine ([`oneshot`](super::oneshot)) for good. What a fresh read means next to the
//! held view is decided in [`diff`](super::diff), nowhere else; how a view changes (and which
//! events that sends) is decided here, for both engines.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use crate::Error;
use crate::Result;
use crate::task::Backoff;
use bytes::Bytes;
use corral_core::framework::PersistentWatches;
use corral_core::{AddWatchMode, Client, ConnectionStateChange, EventType, Framework, PersistentWatcher, WatchedEvent};
use futures::StreamExt;
use tokio::sync::{broadcast, watch};

use super::{CacheEvent, CachedNode, Filter, WatchMode, diff, oneshot};

/// What a cache and its task share.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) nodes: RwLock<BTreeMap<String, CachedNode>>,
    /// Events with their sequence numbers (see [`Shared::send`]).
    pub(super) events: broadcast::Sender<(u64, CacheEvent)>,
    /// The sequence number of the last event sent. Node events are numbered and sent with
    /// the write lock of `nodes` held, so the number read under the read lock says which node
    /// events the view already holds.
    pub(super) seq: AtomicU64,
    /// Counts changes of `nodes`; bumped while the write lock is held, so a value read under
    /// the read lock names exactly the view it was read with.
    pub(super) generation: watch::Sender<u64>,
    /// How many of `nodes` the process-wide `corral_cache_nodes` gauge counts for this cache.
    pub(super) counted: AtomicUsize,
    /// The [`WatchMode`] the task runs in, as a number (see [`Shared::mode`]).
    pub(super) mode: AtomicU8,
}

impl Shared {
    /// Numbers `event` and sends it to every stream (node events: with the write lock held).
    pub(super) fn send(&self, event: CacheEvent) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = self.events.send((seq, event));
    }

    /// A change of `nodes`, which now holds `len` nodes (called with the write lock held).
    pub(super) fn bump(&self, len: usize) {
        self.generation.send_modify(|g| *g += 1);
        let before = self.counted.swap(len, Ordering::SeqCst);
        metrics::gauge!(corral_core::metrics::CACHE_NODES).increment(len as f64 - before as f64);
    }
}

impl Shared {
    /// The view and what the task needs around it, before the task runs.
    pub(super) fn new() -> Self {
        let (events, _) = broadcast::channel(1024);
        Self {
            nodes: RwLock::new(BTreeMap::new()),
            events,
            seq: AtomicU64::new(0),
            generation: watch::Sender::new(0),
            counted: AtomicUsize::new(0),
            mode: AtomicU8::new(WatchMode::Undecided as u8),
        }
    }

    /// The mode the task runs in.
    pub(super) fn mode(&self) -> WatchMode {
        match self.mode.load(Ordering::SeqCst) {
            m if m == WatchMode::Persistent as u8 => WatchMode::Persistent,
            m if m == WatchMode::OneShot as u8 => WatchMode::OneShot,
            _ => WatchMode::Undecided,
        }
    }

    pub(super) fn set_mode(&self, mode: WatchMode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The cache is gone: its nodes no longer count.
        let counted = self.counted.load(Ordering::SeqCst);
        metrics::gauge!(corral_core::metrics::CACHE_NODES).decrement(counted as f64);
    }
}

/// The task behind a cache.
pub(super) struct Engine {
    pub(super) fw: Framework,
    pub(super) root: String,
    pub(super) data: bool,
    pub(super) max_depth: Option<usize>,
    pub(super) filter: Option<Filter>,
    /// One-shot watches whatever the server has ([`super::CacheBuilder::one_shot_watches`]).
    pub(super) one_shot: bool,
    pub(super) shared: Arc<Shared>,
    pub(super) initialized: watch::Sender<bool>,
}

/// How an engine follows the connection: the states it watches, the last one it posted as an
/// event, its backoff. Handed from the persistent engine to the one-shot one as it is.
pub(super) struct Follow {
    pub(super) states: watch::Receiver<ConnectionStateChange>,
    pub(super) posted: ConnectionStateChange,
    pub(super) backoff: Backoff,
}

impl Follow {
    /// The current state if connected, posted as an event first if the cache has not posted
    /// it yet; `None` after waiting for the next change (of the state or of `stop`) if not.
    ///
    /// Cancel safe: it only watches.
    pub(super) async fn connected(
        &mut self,
        shared: &Shared,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<ConnectionStateChange> {
        let state = *self.states.borrow_and_update();
        if state != self.posted {
            self.posted = state;
            shared.send(CacheEvent::ConnectionState(state));
        }
        if state.state.is_connected() {
            return Some(state);
        }
        tokio::select! {
            _ = self.states.changed() => {}
            _ = stop.changed() => {}
        }
        None
    }
}

impl Engine {
    /// Runs until `stop` turns true.
    pub(super) async fn run(self, mut stop: watch::Receiver<bool>) {
        let states = self.fw.connection_state();
        let posted = *states.borrow();
        let follow = Follow { states, posted, backoff: Backoff::new(&self.fw) };
        if self.one_shot {
            return self.fall_back(follow, stop).await;
        }
        let mut follow = follow;
        let mut synced_on: Option<(u64, u64)> = None;
        let mut watcher: Option<(u64, PersistentWatcher)> = None;
        while !*stop.borrow() {
            let Some(state) = follow.connected(&self.shared, &mut stop).await else { continue };
            // One persistent recursive watch per session; the client restores it on reconnects.
            // The watch is added through the session's own client and recorded with that
            // session's epoch, never with one read before the request.
            if watcher.as_ref().is_none_or(|(epoch, _)| *epoch != state.epoch) {
                // Once the framework knows its servers have no addWatch, no cache asks again.
                if self.fw.persistent_watches() == PersistentWatches::Unavailable {
                    return self.fall_back(follow, stop).await;
                }
                let added = match self.fw.session().await {
                    Ok(session) => {
                        let added = session.client().add_watch(&self.root, AddWatchMode::PersistentRecursive).await;
                        self.fw.note_add_watch(&added);
                        added.map(|w| (session.epoch(), w))
                    }
                    Err(e) => Err(e),
                };
                match added {
                    Ok(w) => {
                        self.shared.set_mode(WatchMode::Persistent);
                        watcher = Some(w);
                    }
                    // ZooKeeper 3.5 (the framework has logged it): the server closes the
                    // connection after this answer, and the fallback resyncs on the next one.
                    Err(e) if e.code() == corral_core::ErrorCode::Unimplemented => {
                        return self.fall_back(follow, stop).await;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot add the cache's watch yet");
                        follow.backoff.wait(&mut follow.states, &mut stop).await;
                        continue;
                    }
                }
            }
            // A persistent watch does not replay what happened while disconnected: read it all.
            if synced_on != Some((state.epoch, state.connection)) {
                match self.resync(&self.fw.client()).await {
                    Ok(()) => {
                        follow.backoff.reset();
                        synced_on = Some((state.epoch, state.connection));
                        self.synced();
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "cache resync failed; retrying");
                        follow.backoff.wait(&mut follow.states, &mut stop).await;
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
                _ = follow.states.changed() => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Hands over to the one-shot engine for the rest of the cache's life.
    async fn fall_back(self, follow: Follow, stop: watch::Receiver<bool>) {
        self.shared.set_mode(WatchMode::OneShot);
        tracing::debug!(root = %self.root, "the cache uses one-shot watches");
        oneshot::run(self, follow, stop).await;
    }

    /// A full read is done: counts it, and the first one initializes the cache.
    pub(super) fn synced(&self) {
        metrics::counter!(corral_core::metrics::CACHE_RESYNCS_TOTAL).increment(1);
        if !*self.initialized.borrow() {
            // The flag first: whoever reacts to the event finds the cache initialized. A stream
            // taken in between (by a waiter the flag woke) leaves the event out (`Cache::events`).
            self.initialized.send_replace(true);
            self.shared.send(CacheEvent::Initialized);
        }
    }

    pub(super) fn depth(&self, path: &str) -> usize {
        if path == self.root {
            return 0;
        }
        let rel = if self.root == "/" { &path[1..] } else { &path[self.root.len() + 1..] };
        rel.split('/').count()
    }

    pub(super) fn keeps(&self, path: &str) -> bool {
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
                    Err(e) => return Err(Error::from(e)),
                }
                if let Some(list) = list {
                    match list.await {
                        Ok(children) => next.extend(children.into_iter().map(|c| join(path, &c))),
                        Err(e) if e.is_no_node() => {}
                        Err(e) => return Err(Error::from(e)),
                    }
                }
            }
            level = next;
            depth += 1;
        }
        self.reconcile(std::slice::from_ref(&self.root), fresh);
        Ok(())
    }

    /// Brings the view within the subtrees at `scopes` to `fresh` (a full read of them),
    /// sending the events that tell the difference: a node there that `fresh` lacks is deleted,
    /// every other one goes through [`diff::events`].
    pub(super) fn reconcile(&self, scopes: &[String], fresh: BTreeMap<String, CachedNode>) {
        let mut nodes = self.shared.nodes.write().unwrap_or_else(|e| e.into_inner());
        let mut gone: Vec<String> = Vec::new();
        for scope in scopes {
            let below = if scope == "/" { "/".to_owned() } else { format!("{scope}/") };
            gone.extend(nodes.get_key_value(scope).map(|(p, _)| p.clone()).filter(|p| !fresh.contains_key(p)));
            gone.extend(
                nodes
                    .range(below.clone()..)
                    .take_while(|(p, _)| p.starts_with(&below))
                    .filter(|(p, _)| !fresh.contains_key(*p))
                    .map(|(p, _)| p.clone()),
            );
        }
        gone.sort();
        gone.dedup();
        let mut events = Vec::new();
        // Deepest first, as ZooKeeper deletes.
        for path in gone.iter().rev() {
            if let Some(old) = nodes.remove(path) {
                events.push(CacheEvent::Deleted { path: path.clone(), old });
            }
        }
        for (path, node) in fresh {
            let changes = diff::events(&path, nodes.get(&path), &node);
            if changes.is_empty() {
                continue;
            }
            events.extend(changes);
            nodes.insert(path, node);
        }
        // The generation first: whoever reacts to an event reads a view that already has it.
        self.shared.bump(nodes.len());
        for event in events {
            self.shared.send(event);
        }
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
                    Err(e) => Err(Error::from(e)),
                }
            }
            _ => Ok(()),
        }
    }

    /// Puts what a watch event's re-read found into the view, if it is newer than what is held.
    pub(super) fn upsert(&self, path: String, node: CachedNode) {
        let mut nodes = self.shared.nodes.write().unwrap_or_else(|e| e.into_inner());
        // Events and resyncs may overlap: only what `diff` calls new replaces what we have.
        let events = diff::events(&path, nodes.get(&path), &node);
        if events.is_empty() {
            return;
        }
        nodes.insert(path, node);
        self.shared.bump(nodes.len());
        for event in events {
            self.shared.send(event);
        }
    }

    /// Removes `path` and everything the view holds below it (deepest first).
    pub(super) fn remove(&self, path: &str) {
        let mut nodes = self.shared.nodes.write().unwrap_or_else(|e| e.into_inner());
        let prefix = if path == "/" { "/".to_owned() } else { format!("{path}/") };
        let below: BTreeSet<String> =
            nodes.range(prefix.clone()..).take_while(|(p, _)| p.starts_with(&prefix)).map(|(p, _)| p.clone()).collect();
        let mut events = Vec::new();
        for p in below.iter().rev().chain(std::iter::once(&path.to_owned())) {
            if let Some(old) = nodes.remove(p) {
                events.push(CacheEvent::Deleted { path: p.clone(), old });
            }
        }
        if !events.is_empty() {
            // The generation first: whoever reacts to an event reads a view that already has it.
            self.shared.bump(nodes.len());
            for event in events {
                self.shared.send(event);
            }
        }
    }
}

pub(super) fn join(parent: &str, child: &str) -> String {
    if parent == "/" { format!("/{child}") } else { format!("{parent}/{child}") }
}
