//! The reference model: ZooKeeper's tree, zxids, sessions and one-shot watches, written from
//! ZooKeeper's rules (see the test's docs), and what each operation should answer.

use std::collections::{BTreeMap, BTreeSet};

use corral_proto::{ErrorCode, EventType, Stat};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::{Data, Mode, PATHS, Ver};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Persistent,
    Ephemeral,
    Container,
    Ttl,
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) data: Data,
    pub(crate) kind: Kind,
    /// The owning session's id for ephemerals, otherwise 0.
    pub(crate) owner: i64,
    pub(crate) version: i32,
    /// Children ever created: the next sequential suffix.
    pub(crate) creates: i32,
    /// Children deleted.
    pub(crate) deletes: i32,
    pub(crate) czxid: i64,
    pub(crate) mzxid: i64,
    pub(crate) pzxid: i64,
    /// Learnt from the first Stat the server shows.
    pub(crate) ctime: Option<i64>,
    /// Learnt from the first Stat the server shows after each data change.
    pub(crate) mtime: Option<i64>,
}

/// An event a session should be told about.
pub(crate) type Event = (EventType, String);

#[derive(Debug, Clone, Default)]
pub(crate) struct Model {
    pub(crate) nodes: BTreeMap<String, Node>,
    pub(crate) zxid: i64,
    pub(crate) sessions: [i64; 2],
    /// One-shot watches: (session, path).
    pub(crate) data_watches: BTreeSet<(usize, String)>,
    pub(crate) child_watches: BTreeSet<(usize, String)>,
    /// Events the sessions should have received and not yet checked.
    pub(crate) pending: [Vec<Event>; 2],
}

pub(crate) fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => "/",
    }
}

pub(crate) fn name_of(path: &str) -> &str {
    &path[path.rfind('/').map_or(0, |i| i + 1)..]
}

impl Model {
    /// Every path an operation can aim at: the fixed ones and every node there is.
    pub(crate) fn candidates(&self) -> Vec<String> {
        let mut all: BTreeSet<String> = PATHS.iter().map(|p| (*p).to_owned()).collect();
        all.extend(self.nodes.keys().cloned());
        all.into_iter().collect()
    }

    pub(crate) fn pick(&self, pick: usize) -> String {
        let all = self.candidates();
        all[pick % all.len()].clone()
    }

    /// The path a create aims at: a fixed path, or (sequential) a prefix under any node.
    pub(crate) fn create_target(&self, pick: usize, mode: Mode) -> String {
        if mode.sequential() { format!("{}/s-", self.pick(pick)) } else { PATHS[pick % PATHS.len()].to_owned() }
    }

    pub(crate) fn version_for(&self, path: &str, ver: Ver) -> i32 {
        let current = self.nodes.get(path).map_or(0, |n| n.version);
        match ver {
            Ver::Any => -1,
            Ver::Current => current,
            Ver::Wrong => current + 1,
        }
    }

    pub(crate) fn children(&self, path: &str) -> Vec<String> {
        self.nodes
            .keys()
            .filter(|p| parent_of(p) == path && p.as_str() != path)
            .map(|p| name_of(p).to_owned())
            .collect()
    }

    pub(crate) fn exists_parent(&self, path: &str) -> Option<&Node> {
        self.nodes.get(parent_of(path))
    }

    /// What the server should report for `path`, without the times.
    pub(crate) fn stat(&self, path: &str) -> Stat {
        let n = &self.nodes[path];
        Stat {
            czxid: n.czxid,
            mzxid: n.mzxid,
            ctime: 0,
            mtime: 0,
            version: n.version,
            cversion: n.creates + n.deletes,
            aversion: 0,
            ephemeral_owner: n.owner,
            data_length: n.data.as_ref().map_or(0, |d| i32::try_from(d.len()).expect("small")),
            num_children: i32::try_from(self.children(path).len()).expect("small"),
            pzxid: n.pzxid,
        }
    }

    /// Compares a Stat from the server with the model's, learning the times it has not seen.
    pub(crate) fn check_stat(&mut self, what: &str, path: &str, got: &Stat) -> Result<(), TestCaseError> {
        let mut want = self.stat(path);
        let node = self.nodes.get_mut(path).expect("checked by the caller");
        let ctime = *node.ctime.get_or_insert(got.ctime);
        let mtime = *node.mtime.get_or_insert(got.mtime);
        want.ctime = ctime;
        want.mtime = mtime;
        prop_assert_eq!(got, &want, "{}: Stat of {}", what, path);
        if node.czxid == node.mzxid {
            prop_assert_eq!(got.ctime, got.mtime, "{}: ctime = mtime until the data changes", what);
        }
        prop_assert!(got.mtime >= got.ctime, "{}: mtime before ctime", what);
        Ok(())
    }

    pub(crate) fn fire(&mut self, event: EventType, path: &str) {
        let data = matches!(event, EventType::NodeCreated | EventType::NodeDataChanged | EventType::NodeDeleted);
        let child = matches!(event, EventType::NodeChildrenChanged | EventType::NodeDeleted);
        for (s, pending) in self.pending.iter_mut().enumerate() {
            let key = (s, path.to_owned());
            // Both tables fire (and forget the watch), but a session hears of it once.
            let by_data = data && self.data_watches.remove(&key);
            let by_child = child && self.child_watches.remove(&key);
            if by_data || by_child {
                pending.push((event, path.to_owned()));
            }
        }
    }

    /// create, for session `s` in transaction `zxid`: the path made, or the error.
    pub(crate) fn create(
        &mut self,
        s: usize,
        path: &str,
        mode: Mode,
        data: &Data,
        zxid: i64,
    ) -> Result<String, ErrorCode> {
        let parent_path = parent_of(path).to_owned();
        let (parent_kind, creates) = match self.exists_parent(path) {
            Some(p) => (p.kind, p.creates),
            None if parent_path == "/" => (Kind::Persistent, 0),
            None => return Err(ErrorCode::NoNode),
        };
        let path = if mode.sequential() { format!("{path}{creates:010}") } else { path.to_owned() };
        if self.nodes.contains_key(&path) {
            return Err(ErrorCode::NodeExists);
        }
        if parent_kind == Kind::Ephemeral {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        let kind = match mode {
            Mode::Persistent | Mode::PersistentSequential => Kind::Persistent,
            Mode::Ephemeral | Mode::EphemeralSequential => Kind::Ephemeral,
            Mode::Container => Kind::Container,
            Mode::Ttl | Mode::TtlSequential => Kind::Ttl,
        };
        self.nodes.insert(
            path.clone(),
            Node {
                data: data.clone(),
                kind,
                owner: if mode.ephemeral() { self.sessions[s] } else { 0 },
                version: 0,
                creates: 0,
                deletes: 0,
                czxid: zxid,
                mzxid: zxid,
                pzxid: zxid,
                ctime: None,
                mtime: None,
            },
        );
        if let Some(parent) = self.nodes.get_mut(&parent_path) {
            parent.creates += 1;
            parent.pzxid = zxid;
        }
        self.fire(EventType::NodeCreated, &path);
        self.fire(EventType::NodeChildrenChanged, &parent_path);
        Ok(path)
    }

    pub(crate) fn delete(&mut self, path: &str, version: i32, zxid: i64) -> Result<(), ErrorCode> {
        let Some(node) = self.nodes.get(path) else {
            return Err(ErrorCode::NoNode);
        };
        if version != -1 && version != node.version {
            return Err(ErrorCode::BadVersion);
        }
        if !self.children(path).is_empty() {
            return Err(ErrorCode::NotEmpty);
        }
        self.remove(path, zxid);
        Ok(())
    }

    pub(crate) fn remove(&mut self, path: &str, zxid: i64) {
        self.nodes.remove(path);
        let parent_path = parent_of(path).to_owned();
        if let Some(parent) = self.nodes.get_mut(&parent_path) {
            parent.deletes += 1;
            parent.pzxid = zxid;
        }
        self.fire(EventType::NodeDeleted, path);
        self.fire(EventType::NodeChildrenChanged, &parent_path);
    }

    pub(crate) fn set_data(&mut self, path: &str, data: &Data, version: i32, zxid: i64) -> Result<(), ErrorCode> {
        let Some(node) = self.nodes.get_mut(path) else {
            return Err(ErrorCode::NoNode);
        };
        if version != -1 && version != node.version {
            return Err(ErrorCode::BadVersion);
        }
        node.data = data.clone();
        node.version += 1;
        node.mzxid = zxid;
        node.mtime = None;
        self.fire(EventType::NodeDataChanged, path);
        Ok(())
    }

    pub(crate) fn check(&self, path: &str, version: i32) -> Result<(), ErrorCode> {
        let Some(node) = self.nodes.get(path) else {
            return Err(ErrorCode::NoNode);
        };
        if version != -1 && version != node.version {
            return Err(ErrorCode::BadVersion);
        }
        Ok(())
    }

    /// Session `s` ends in transaction `zxid`: its watches go, then its ephemerals.
    pub(crate) fn end_session(&mut self, s: usize, zxid: i64) {
        self.data_watches.retain(|(w, _)| *w != s);
        self.child_watches.retain(|(w, _)| *w != s);
        self.pending[s].clear();
        let id = self.sessions[s];
        let doomed: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.kind == Kind::Ephemeral && n.owner == id)
            .map(|(p, _)| p.clone())
            .collect();
        for path in doomed {
            self.remove(&path, zxid);
        }
    }
}
