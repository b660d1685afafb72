//! The task behind a [`Cache`](super::Cache): it follows the connection, keeps one persistent
//! recursive watch per session, reads the whole subtree after every (re)connection and applies
//! watch events in between. What a fresh read means next to the held view is decided in
//! [`diff`](super::diff), nowhere else.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::Error;
use crate::Result;
use bytes::Bytes;
use corral_core::{AddWatchMode, Client, EventType, Framework, PersistentWatcher, WatchedEvent};
use futures::StreamExt;
use tokio::sync::watch;

use super::{CacheEvent, CachedNode, Filter, Shared, diff};

/// The task behind a cache.
pub(super) struct Engine {
    pub(super) fw: Framework,
    pub(super) root: String,
    pub(super) data: bool,
    pub(super) max_depth: Option<usize>,
    pub(super) filter: Option<Filter>,
    pub(super) shared: Arc<Shared>,
    pub(super) initialized: watch::Sender<bool>,
}

impl Engine {
    /// Runs until `stop` turns true (or the server turns out to have no `addWatch`).
    pub(super) async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut states = self.fw.connection_state();
        let mut synced_on: Option<(u64, u64)> = None;
        let mut watcher: Option<(u64, PersistentWatcher)> = None;
        let mut posted = *states.borrow();
        let mut backoff = crate::task::Backoff::new(&self.fw);
        while !*stop.borrow() {
            let state = *states.borrow_and_update();
            if state != posted {
                posted = state;
                self.shared.send(CacheEvent::ConnectionState(state));
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
                        self.shared.send(CacheEvent::Failed(Error::from(e)));
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
                        metrics::counter!(corral_core::metrics::CACHE_RESYNCS_TOTAL).increment(1);
                        synced_on = Some((state.epoch, state.connection));
                        if !*self.initialized.borrow() {
                            self.initialized.send_replace(true);
                            self.shared.send(CacheEvent::Initialized);
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
        self.reconcile(fresh);
        Ok(())
    }

    /// Brings the view to `fresh`, sending the events that tell the difference: a node `fresh`
    /// lacks is deleted, every other one goes through [`diff::events`].
    fn reconcile(&self, fresh: BTreeMap<String, CachedNode>) {
        let mut nodes = self.shared.nodes.write().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<String> = nodes.keys().filter(|p| !fresh.contains_key(*p)).cloned().collect();
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
    fn upsert(&self, path: String, node: CachedNode) {
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

    fn remove(&self, path: &str) {
        let mut nodes = self.shared.nodes.write().unwrap_or_else(|e| e.into_inner());
        let prefix = format!("{path}/");
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

fn join(parent: &str, child: &str) -> String {
    if parent == "/" { format!("/{child}") } else { format!("{parent}/{child}") }
}
