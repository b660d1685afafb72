//! The server's watch tables, as ZooKeeper's `WatchManager` keeps them.
//!
//! Two tables map a path to the connections watching it: the **data** table (exists, getData,
//! persistent and persistent-recursive watches) and the **child** table (getChildren and
//! persistent watches). An entry is keyed by (path, connection) and holds the modes set on it,
//! so a connection gets at most one event per trigger however many watchers its client holds.
//! Standard watches go when they fire; persistent ones stay until removed or the connection
//! closes.

use std::collections::{HashMap, HashSet};

use corral_proto::{EventType, WatcherType};

use crate::state::ConnId;

const STANDARD: u8 = 1;
const PERSISTENT: u8 = 2;
const RECURSIVE: u8 = 4;

/// How a watch is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WatchKind {
    /// A one-shot data watch (exists, getData).
    Data,
    /// A one-shot child watch (getChildren).
    Child,
    /// A persistent watch on the node itself (both tables).
    Persistent,
    /// A persistent watch on the node and all its descendants (data table only).
    PersistentRecursive,
}

type Table = HashMap<String, HashMap<ConnId, u8>>;

/// Both tables, plus a per-connection index so a closing connection's watches go at once.
#[derive(Debug, Default)]
pub(crate) struct Watches {
    data: Table,
    child: Table,
    by_conn: HashMap<ConnId, HashSet<String>>,
    recursive: usize,
}

fn add(table: &mut Table, path: &str, conn: ConnId, bits: u8) -> bool {
    let modes = table.entry(path.to_owned()).or_default().entry(conn).or_insert(0);
    let fresh = *modes & bits == 0;
    *modes |= bits;
    fresh
}

/// Clears `bits` (all bits for `None`) of (path, conn); returns the bits that were set.
fn clear(table: &mut Table, path: &str, conn: ConnId, bits: Option<u8>) -> u8 {
    let Some(entry) = table.get_mut(path) else {
        return 0;
    };
    let Some(modes) = entry.get_mut(&conn) else {
        return 0;
    };
    let removed = *modes & bits.unwrap_or(u8::MAX);
    *modes &= !removed;
    if *modes == 0 {
        entry.remove(&conn);
        if entry.is_empty() {
            table.remove(path);
        }
    }
    removed
}

fn bits(table: &Table, path: &str, conn: ConnId) -> u8 {
    table.get(path).and_then(|e| e.get(&conn)).copied().unwrap_or(0)
}

impl Watches {
    /// Registers a watch of `kind` on `path` for `conn`.
    pub(crate) fn add(&mut self, path: &str, conn: ConnId, kind: WatchKind) {
        match kind {
            WatchKind::Data => {
                add(&mut self.data, path, conn, STANDARD);
            }
            WatchKind::Child => {
                add(&mut self.child, path, conn, STANDARD);
            }
            WatchKind::Persistent => {
                add(&mut self.data, path, conn, PERSISTENT);
                add(&mut self.child, path, conn, PERSISTENT);
            }
            WatchKind::PersistentRecursive => {
                if add(&mut self.data, path, conn, RECURSIVE) {
                    self.recursive += 1;
                }
            }
        }
        self.by_conn.entry(conn).or_default().insert(path.to_owned());
    }

    /// Fires the watches that `event` on `path` triggers, returning each connection to notify
    /// once. Standard watches that fire are removed.
    pub(crate) fn trigger(&mut self, event: EventType, path: &str) -> Vec<ConnId> {
        let mut fired = Vec::new();
        let mut seen = HashSet::new();
        let mut fire = |table: &mut Table, p: &str, mask: u8, seen: &mut HashSet<ConnId>| {
            if let Some(entry) = table.get_mut(p) {
                for (conn, modes) in entry.iter_mut() {
                    if *modes & mask != 0 {
                        if seen.insert(*conn) {
                            fired.push(*conn);
                        }
                        *modes &= !(mask & STANDARD);
                    }
                }
                entry.retain(|_, modes| *modes != 0);
                if entry.is_empty() {
                    table.remove(p);
                }
            }
        };
        let local = STANDARD | PERSISTENT;
        match event {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                fire(&mut self.data, path, local, &mut seen);
            }
            EventType::NodeDeleted => {
                fire(&mut self.data, path, local, &mut seen);
                fire(&mut self.child, path, local, &mut seen);
            }
            EventType::NodeChildrenChanged => {
                fire(&mut self.child, path, local, &mut seen);
            }
            _ => {}
        }
        if self.recursive > 0 && event != EventType::NodeChildrenChanged {
            let mut at = Some(path);
            while let Some(p) = at {
                fire(&mut self.data, p, RECURSIVE, &mut seen);
                at = crate::tree::parent_of(p).filter(|parent| *parent != p);
            }
        }
        // In connection order, not the hash map's (which differs from run to run): the order in
        // which connections are notified is then the same on every run, as a deterministic
        // simulation needs.
        fired.sort_unstable();
        fired
    }

    /// removeWatches: removes the watches of `watcher_type` on `path` for `conn`. Returns
    /// whether any was removed.
    pub(crate) fn remove(&mut self, path: &str, conn: ConnId, watcher_type: WatcherType) -> bool {
        let removed = match watcher_type {
            WatcherType::Children => clear(&mut self.child, path, conn, None) != 0,
            WatcherType::Data => {
                let bits = clear(&mut self.data, path, conn, None);
                self.recursive -= usize::from(bits & RECURSIVE != 0);
                bits != 0
            }
            WatcherType::Any => {
                let c = clear(&mut self.child, path, conn, None);
                let d = clear(&mut self.data, path, conn, None);
                self.recursive -= usize::from(d & RECURSIVE != 0);
                c | d != 0
            }
            WatcherType::Persistent => {
                let c = clear(&mut self.child, path, conn, Some(PERSISTENT));
                let d = clear(&mut self.data, path, conn, Some(PERSISTENT));
                c | d != 0
            }
            WatcherType::PersistentRecursive => {
                let d = clear(&mut self.data, path, conn, Some(RECURSIVE));
                self.recursive -= usize::from(d != 0);
                d != 0
            }
            _ => false,
        };
        if bits(&self.data, path, conn) == 0
            && bits(&self.child, path, conn) == 0
            && let Some(paths) = self.by_conn.get_mut(&conn)
        {
            paths.remove(path);
        }
        removed
    }

    /// checkWatches: whether `conn` holds a watch of `watcher_type` on `path`.
    pub(crate) fn contains(&self, path: &str, conn: ConnId, watcher_type: WatcherType) -> bool {
        let (d, c) = (bits(&self.data, path, conn), bits(&self.child, path, conn));
        match watcher_type {
            WatcherType::Children => c != 0,
            WatcherType::Data => d != 0,
            WatcherType::Any => c | d != 0,
            WatcherType::Persistent => (c | d) & PERSISTENT != 0,
            WatcherType::PersistentRecursive => d & RECURSIVE != 0,
            _ => false,
        }
    }

    /// Drops every watch of a closed connection.
    pub(crate) fn remove_conn(&mut self, conn: ConnId) {
        for path in self.by_conn.remove(&conn).unwrap_or_default() {
            clear(&mut self.child, &path, conn, None);
            let d = clear(&mut self.data, &path, conn, None);
            self.recursive -= usize::from(d & RECURSIVE != 0);
        }
    }

    /// `wchs` figures for the data table: (connections, paths, watches).
    pub(crate) fn data_summary(&self) -> (usize, usize, usize) {
        let conns: HashSet<ConnId> = self.data.values().flat_map(|e| e.keys().copied()).collect();
        let total = self.data.values().map(HashMap::len).sum();
        (conns.len(), self.data.len(), total)
    }

    /// Every (path, connection) pair of the data table, sorted by path.
    pub(crate) fn data_entries(&self) -> Vec<(String, ConnId)> {
        let mut out: Vec<(String, ConnId)> =
            self.data.iter().flat_map(|(p, e)| e.keys().map(move |c| (p.clone(), *c))).collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_watches_fire_once() {
        let mut w = Watches::default();
        w.add("/a", 1, WatchKind::Data);
        w.add("/a", 1, WatchKind::Data);
        w.add("/a", 2, WatchKind::Data);
        let mut fired = w.trigger(EventType::NodeDataChanged, "/a");
        fired.sort_unstable();
        assert_eq!(fired, vec![1, 2]);
        assert!(w.trigger(EventType::NodeDataChanged, "/a").is_empty());
    }

    #[test]
    fn connections_are_notified_in_connection_order() {
        let mut w = Watches::default();
        for conn in [9, 3, 27, 1, 14, 6, 30, 2] {
            w.add("/a", conn, WatchKind::Child);
        }
        w.add("/a", 5, WatchKind::PersistentRecursive);
        assert_eq!(w.trigger(EventType::NodeDeleted, "/a"), vec![1, 2, 3, 5, 6, 9, 14, 27, 30]);
    }

    #[test]
    fn delete_fires_data_and_child_once_per_connection() {
        let mut w = Watches::default();
        w.add("/a", 1, WatchKind::Data);
        w.add("/a", 1, WatchKind::Child);
        w.add("/a", 2, WatchKind::Child);
        let mut fired = w.trigger(EventType::NodeDeleted, "/a");
        fired.sort_unstable();
        assert_eq!(fired, vec![1, 2]);
        assert_eq!(w.data_summary(), (0, 0, 0));
    }

    #[test]
    fn persistent_and_recursive() {
        let mut w = Watches::default();
        w.add("/a", 1, WatchKind::Persistent);
        w.add("/a", 2, WatchKind::PersistentRecursive);
        assert_eq!(w.trigger(EventType::NodeChildrenChanged, "/a"), vec![1]);
        assert_eq!(w.trigger(EventType::NodeCreated, "/a/b/c"), vec![2]);
        assert!(w.trigger(EventType::NodeChildrenChanged, "/a/b").is_empty());
        let mut fired = w.trigger(EventType::NodeDataChanged, "/a");
        fired.sort_unstable();
        assert_eq!(fired, vec![1, 2]);
        // Still there.
        assert_eq!(w.trigger(EventType::NodeDataChanged, "/a/x"), vec![2]);
        assert!(w.contains("/a", 1, WatcherType::Persistent));
        assert!(w.remove("/a", 2, WatcherType::PersistentRecursive));
        assert!(!w.remove("/a", 2, WatcherType::PersistentRecursive));
        assert!(w.trigger(EventType::NodeDataChanged, "/a/x").is_empty());
        w.remove_conn(1);
        assert!(w.trigger(EventType::NodeDataChanged, "/a").is_empty());
        assert!(!w.contains("/a", 1, WatcherType::Any));
    }

    #[test]
    fn remove_by_type() {
        let mut w = Watches::default();
        w.add("/a", 1, WatchKind::Data);
        assert!(!w.remove("/a", 1, WatcherType::Children));
        assert!(w.contains("/a", 1, WatcherType::Data));
        assert!(w.remove("/a", 1, WatcherType::Any));
        assert!(!w.contains("/a", 1, WatcherType::Any));
        assert!(w.by_conn.get(&1).is_none_or(HashSet::is_empty));
    }
}
