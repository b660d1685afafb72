//! The session's watch registry: every watch the client holds, by path and kind, so that an
//! event reaches exactly the watchers ZooKeeper's rules say it does, and so that the session can
//! restore every watch (one-shot, persistent, recursive) with setWatches after a reconnect.
//! The public watcher types are in [`crate::watcher`].

use std::collections::HashMap;

use corral_proto::{EventType, KeeperState, WatcherType};
use tokio::sync::{mpsc, oneshot};

use crate::watcher::WatchedEvent;

/// The kinds of watch a client can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum WatchKind {
    /// Left by getData (fires on data change and delete).
    Data,
    /// Left by exists (fires on create, data change and delete).
    Exist,
    /// Left by getChildren (fires on child change and delete).
    Child,
    /// addWatch(PERSISTENT).
    Persistent,
    /// addWatch(PERSISTENT_RECURSIVE).
    PersistentRecursive,
}

impl WatchKind {
    /// The server watch type to remove when the last one-shot watcher of this kind goes away.
    pub(crate) fn server_type(self) -> WatcherType {
        match self {
            Self::Data | Self::Exist => WatcherType::Data,
            Self::Child => WatcherType::Children,
            Self::Persistent | Self::PersistentRecursive => WatcherType::Any,
        }
    }
}

pub(crate) enum WatchSender {
    Oneshot(oneshot::Sender<WatchedEvent>),
    Stream(mpsc::UnboundedSender<WatchedEvent>),
}

impl WatchSender {
    /// Whether the watcher is gone (nobody would receive an event).
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Self::Oneshot(tx) => tx.is_closed(),
            Self::Stream(tx) => tx.is_closed(),
        }
    }
}

/// A watch to register once its request succeeds.
pub(crate) struct WatchRegistration {
    pub(crate) path: String,
    pub(crate) kind: WatchKind,
    pub(crate) id: u64,
    pub(crate) sender: WatchSender,
}

/// The ensemble configuration's node, always outside any chroot.
pub(crate) const CONFIG_NODE: &str = "/zookeeper/config";
/// The registry key of a watch on [`CONFIG_NODE`] set by `Client::get_config_and_watch`: not
/// a valid client path, so no watch on a chrooted `/zookeeper/config` can share it.
pub(crate) const CONFIG_KEY: &str = "zookeeper/config";

/// The server path of a registry key: the chroot prepended, except for [`CONFIG_KEY`].
pub(crate) fn server_path(chroot: &crate::connect_string::Chroot, key: &str) -> String {
    if key == CONFIG_KEY { CONFIG_NODE.to_owned() } else { chroot.prepend(key) }
}

/// The watches a session holds, keyed by client path (the chroot already stripped).
#[derive(Default)]
pub(crate) struct WatchRegistry {
    watches: HashMap<(String, WatchKind), Vec<(u64, WatchSender)>>,
}

/// Moves the process-wide watch gauge by `delta` watchers.
fn gauge(delta: isize) {
    if delta != 0 {
        metrics::gauge!(crate::metrics::WATCHES_REGISTERED).increment(delta as f64);
    }
}

/// Which server paths to restore after a reconnect.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct WatchSet {
    pub(crate) data: Vec<String>,
    pub(crate) exist: Vec<String>,
    pub(crate) child: Vec<String>,
    pub(crate) persistent: Vec<String>,
    pub(crate) recursive: Vec<String>,
}

impl WatchRegistry {
    pub(crate) fn register(&mut self, reg: WatchRegistration) {
        self.watches.entry((reg.path, reg.kind)).or_default().push((reg.id, reg.sender));
        gauge(1);
    }

    /// Removes one watcher. Returns the server watch type to remove on the server if no
    /// watcher that needs the same server-side watch is left on that path.
    pub(crate) fn remove(&mut self, path: &str, kind: WatchKind, id: u64) -> Option<WatcherType> {
        let key = (path.to_owned(), kind);
        let list = self.watches.get_mut(&key)?;
        let before = list.len();
        list.retain(|(i, _)| *i != id);
        if list.len() == before {
            return None;
        }
        gauge(list.len() as isize - before as isize);
        if list.is_empty() {
            self.watches.remove(&key);
        }
        let still_needed = |k: WatchKind| self.watches.contains_key(&(path.to_owned(), k));
        let any_left = [
            WatchKind::Data,
            WatchKind::Exist,
            WatchKind::Child,
            WatchKind::Persistent,
            WatchKind::PersistentRecursive,
        ]
        .into_iter()
        .any(still_needed);
        match kind {
            // ZooKeeper 3.6–3.8 refuse the Persistent/PersistentRecursive types in removeWatches
            // (MarshallingError) and keep one watch mode per path and connection, so a persistent
            // watch is removed with Any, and only when nothing else of ours is on that path.
            WatchKind::Persistent | WatchKind::PersistentRecursive => (!any_left).then_some(WatcherType::Any),
            WatchKind::Data | WatchKind::Exist | WatchKind::Child => {
                let needed = match kind {
                    // exists and getData watches share the server's data table.
                    WatchKind::Data | WatchKind::Exist => {
                        still_needed(WatchKind::Data) || still_needed(WatchKind::Exist)
                    }
                    _ => still_needed(WatchKind::Child),
                };
                let persistent_here =
                    still_needed(WatchKind::Persistent) || still_needed(WatchKind::PersistentRecursive);
                (!needed && !persistent_here).then_some(kind.server_type())
            }
        }
    }

    /// Delivers a node event to every matching watcher; one-shot watchers are consumed.
    pub(crate) fn dispatch(&mut self, event: &WatchedEvent) {
        use WatchKind::*;
        let kinds: &[WatchKind] = match event.event_type {
            EventType::NodeCreated | EventType::NodeDataChanged => &[Data, Exist, Persistent],
            EventType::NodeDeleted => &[Data, Exist, Child, Persistent],
            EventType::NodeChildrenChanged => &[Child, Persistent],
            _ => &[],
        };
        for kind in kinds {
            self.fire(&event.path, *kind, event);
        }
        if matches!(event.event_type, EventType::NodeCreated | EventType::NodeDataChanged | EventType::NodeDeleted) {
            let mut ancestor = Some(event.path.as_str());
            while let Some(p) = ancestor {
                self.fire(p, PersistentRecursive, event);
                ancestor = corral_proto::path::parent(p);
            }
        }
    }

    /// Fires the watches of `Client::get_config_and_watch` for an event on [`CONFIG_NODE`].
    pub(crate) fn dispatch_config(&mut self, event: &WatchedEvent) {
        if matches!(event.event_type, EventType::NodeCreated | EventType::NodeDataChanged | EventType::NodeDeleted) {
            self.fire(CONFIG_KEY, WatchKind::Data, event);
        }
    }

    fn fire(&mut self, path: &str, kind: WatchKind, event: &WatchedEvent) {
        let key = (path.to_owned(), kind);
        let Some(list) = self.watches.get_mut(&key) else { return };
        let before = list.len();
        match kind {
            WatchKind::Data | WatchKind::Exist | WatchKind::Child => {
                for (_, sender) in list.drain(..) {
                    if let WatchSender::Oneshot(tx) = sender {
                        let _ = tx.send(event.clone());
                    }
                }
            }
            WatchKind::Persistent | WatchKind::PersistentRecursive => {
                list.retain(|(_, sender)| match sender {
                    WatchSender::Stream(tx) => tx.send(event.clone()).is_ok(),
                    WatchSender::Oneshot(_) => false,
                });
            }
        }
        gauge(list.len() as isize - before as isize);
        if list.is_empty() {
            self.watches.remove(&key);
        }
    }

    /// Removes every local watcher at `path` that `watcher_type` covers, telling each one with a
    /// `*WatchRemoved` event (after a successful removeWatches).
    pub(crate) fn remove_matching(&mut self, path: &str, watcher_type: WatcherType) {
        use WatchKind::*;
        let kinds: &[WatchKind] = match watcher_type {
            WatcherType::Data => &[Data, Exist],
            WatcherType::Children => &[Child],
            WatcherType::Persistent => &[Persistent],
            WatcherType::PersistentRecursive => &[PersistentRecursive],
            _ => &[Data, Exist, Child, Persistent, PersistentRecursive],
        };
        for kind in kinds {
            let Some(list) = self.watches.remove(&(path.to_owned(), *kind)) else {
                continue;
            };
            gauge(-(list.len() as isize));
            let event_type = match kind {
                Data | Exist => EventType::DataWatchRemoved,
                Child => EventType::ChildWatchRemoved,
                Persistent | PersistentRecursive => EventType::PersistentWatchRemoved,
            };
            let event = WatchedEvent { event_type, state: KeeperState::SyncConnected, path: path.to_owned(), zxid: -1 };
            for (_, sender) in list {
                match sender {
                    WatchSender::Oneshot(tx) => {
                        let _ = tx.send(event.clone());
                    }
                    WatchSender::Stream(tx) => {
                        let _ = tx.send(event.clone());
                    }
                }
            }
        }
    }

    /// Ends every watcher with a session event (expiry, close, auth failure).
    pub(crate) fn end_all(&mut self, state: KeeperState) {
        let event = WatchedEvent::session_end(state);
        gauge(-(self.len() as isize));
        // In path order, not the hash map's (which differs from run to run): the watchers wake
        // in the same order on every run, as a deterministic simulation needs.
        let mut all: Vec<_> = self.watches.drain().collect();
        all.sort_by(|(a, _), (b, _)| a.cmp(b));
        for (_, list) in all {
            for (_, sender) in list {
                match sender {
                    WatchSender::Oneshot(tx) => {
                        let _ = tx.send(event.clone());
                    }
                    WatchSender::Stream(tx) => {
                        let _ = tx.send(event.clone());
                    }
                }
            }
        }
    }

    /// Drops watchers whose receiving side is gone, and returns what to restore.
    pub(crate) fn watch_set(&mut self, to_server: impl Fn(&str) -> String) -> WatchSet {
        let before = self.len();
        self.watches.retain(|_, list| {
            list.retain(|(_, s)| match s {
                WatchSender::Oneshot(tx) => !tx.is_closed(),
                WatchSender::Stream(tx) => !tx.is_closed(),
            });
            !list.is_empty()
        });
        gauge(self.len() as isize - before as isize);
        let mut set = WatchSet::default();
        for (path, kind) in self.watches.keys() {
            let target = match kind {
                WatchKind::Data => &mut set.data,
                WatchKind::Exist => &mut set.exist,
                WatchKind::Child => &mut set.child,
                WatchKind::Persistent => &mut set.persistent,
                WatchKind::PersistentRecursive => &mut set.recursive,
            };
            target.push(to_server(path));
        }
        for list in [&mut set.data, &mut set.exist, &mut set.child, &mut set.persistent, &mut set.recursive] {
            list.sort();
        }
        set
    }

    /// The number of live watchers (for tests and metrics).
    pub(crate) fn len(&self) -> usize {
        self.watches.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(t: EventType, path: &str) -> WatchedEvent {
        WatchedEvent { event_type: t, state: KeeperState::SyncConnected, path: path.into(), zxid: -1 }
    }

    #[test]
    fn dispatch_follows_zookeeper_semantics() {
        let mut reg = WatchRegistry::default();
        let (tx_data, mut rx_data) = oneshot::channel();
        let (tx_child, mut rx_child) = oneshot::channel();
        let (tx_rec, mut rx_rec) = mpsc::unbounded_channel();
        reg.register(WatchRegistration {
            path: "/a/b".into(),
            kind: WatchKind::Data,
            id: 1,
            sender: WatchSender::Oneshot(tx_data),
        });
        reg.register(WatchRegistration {
            path: "/a".into(),
            kind: WatchKind::Child,
            id: 2,
            sender: WatchSender::Oneshot(tx_child),
        });
        reg.register(WatchRegistration {
            path: "/".into(),
            kind: WatchKind::PersistentRecursive,
            id: 3,
            sender: WatchSender::Stream(tx_rec),
        });

        reg.dispatch(&event(EventType::NodeChildrenChanged, "/a"));
        assert!(rx_child.try_recv().is_ok());
        assert!(rx_rec.try_recv().is_err(), "recursive watches never see child events");

        reg.dispatch(&event(EventType::NodeDataChanged, "/a/b"));
        assert_eq!(rx_data.try_recv().unwrap().path, "/a/b");
        assert_eq!(rx_rec.try_recv().unwrap().path, "/a/b");

        reg.dispatch(&event(EventType::NodeDataChanged, "/a/b"));
        assert!(rx_rec.try_recv().is_ok(), "persistent watches stay");
        assert_eq!(reg.len(), 1);
    }

    #[test]
    fn removal_keeps_server_watch_while_needed() {
        let mut reg = WatchRegistry::default();
        for (id, kind) in [(1, WatchKind::Data), (2, WatchKind::Exist)] {
            let (tx, _rx) = oneshot::channel();
            reg.register(WatchRegistration { path: "/x".into(), kind, id, sender: WatchSender::Oneshot(tx) });
        }
        assert_eq!(reg.remove("/x", WatchKind::Data, 1), None);
        assert_eq!(reg.remove("/x", WatchKind::Exist, 2), Some(WatcherType::Data));
        assert_eq!(reg.remove("/x", WatchKind::Exist, 2), None);
    }

    #[test]
    fn watch_set_skips_dropped_receivers() {
        let mut reg = WatchRegistry::default();
        let (tx, rx) = oneshot::channel();
        reg.register(WatchRegistration {
            path: "/x".into(),
            kind: WatchKind::Data,
            id: 1,
            sender: WatchSender::Oneshot(tx),
        });
        let (tx2, _rx2) = mpsc::unbounded_channel();
        reg.register(WatchRegistration {
            path: "/y".into(),
            kind: WatchKind::Persistent,
            id: 2,
            sender: WatchSender::Stream(tx2),
        });
        drop(rx);
        let set = reg.watch_set(|p| format!("/root{p}"));
        assert_eq!(set, WatchSet { persistent: vec!["/root/y".into()], ..Default::default() });
    }

    #[test]
    fn the_configuration_watch_is_outside_the_chroot_and_apart_from_user_watches() {
        use crate::connect_string::Chroot;
        let chroot = Chroot::new(Some("/app".into()));
        assert_eq!(server_path(&chroot, CONFIG_KEY), "/zookeeper/config");
        assert_eq!(server_path(&chroot, "/zookeeper/config"), "/app/zookeeper/config");
        assert_eq!(server_path(&Chroot::default(), "/x"), "/x");

        let mut reg = WatchRegistry::default();
        let (config_tx, mut config_rx) = oneshot::channel();
        reg.register(WatchRegistration {
            path: CONFIG_KEY.into(),
            kind: WatchKind::Data,
            id: 1,
            sender: WatchSender::Oneshot(config_tx),
        });
        let (user_tx, mut user_rx) = oneshot::channel();
        reg.register(WatchRegistration {
            path: "/zookeeper/config".into(),
            kind: WatchKind::Data,
            id: 2,
            sender: WatchSender::Oneshot(user_tx),
        });
        let event = |path: &str| WatchedEvent {
            event_type: EventType::NodeDataChanged,
            state: corral_proto::KeeperState::SyncConnected,
            path: path.into(),
            zxid: 7,
        };
        // A user's watch on a (chrooted) "/zookeeper/config" does not wake the configuration's.
        reg.dispatch(&event("/zookeeper/config"));
        assert!(user_rx.try_recv().is_ok());
        assert!(config_rx.try_recv().is_err());
        reg.dispatch_config(&event("/zookeeper/config"));
        assert_eq!(config_rx.try_recv().expect("fired").path, "/zookeeper/config");
        assert_eq!(reg.len(), 0);
        // Restored with the configuration's real path.
        let (tx, _rx) = oneshot::channel();
        reg.register(WatchRegistration {
            path: CONFIG_KEY.into(),
            kind: WatchKind::Data,
            id: 3,
            sender: WatchSender::Oneshot(tx),
        });
        let set = reg.watch_set(|p| server_path(&chroot, p));
        assert_eq!(set.data, vec!["/zookeeper/config".to_owned()]);
    }
}
