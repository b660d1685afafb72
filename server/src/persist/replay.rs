//! Applying logged transactions to a tree on start.
//!
//! Replay must be idempotent where a fuzzy snapshot makes it so: a snapshot is written while
//! writes go on, so a node may already hold the effect of a transaction replayed after the
//! snapshot's zxid. As ZooKeeper does, a create of a node that exists only lifts its parent's
//! cversion and pzxid, a delete or change of a missing node is skipped, and every other value
//! a transaction sets is absolute (a version, not "version + 1"), so replaying it twice lands
//! where replaying it once did.

use std::collections::HashMap;

use crate::persist::record::{TxnBody, TxnHeader, TxnOp};
use crate::tree::{DataTree, Node, NodeKind, name_of, parent_of};

/// Applies one transaction to `tree` and the session table (`id → timeout`).
pub(crate) fn apply(tree: &mut DataTree, sessions: &mut HashMap<i64, i32>, header: &TxnHeader, body: &TxnBody) {
    match body {
        TxnBody::Op(op) => apply_op(tree, header, op),
        TxnBody::Multi(ops) => ops.iter().for_each(|op| apply_op(tree, header, op)),
        TxnBody::CreateSession { timeout } => {
            sessions.insert(header.client_id, *timeout);
        }
        TxnBody::CloseSession { paths } => {
            let mut doomed = tree.ephemerals_of(header.client_id);
            doomed
                .extend(paths.iter().filter(|p| tree.get(p).and_then(Node::owner) == Some(header.client_id)).cloned());
            doomed.sort_unstable();
            doomed.dedup();
            for path in doomed {
                delete(tree, &path, header.zxid);
            }
            sessions.remove(&header.client_id);
        }
    }
}

/// Deletes the ephemerals whose owner is not a known session (ZooKeeper's clean-up of dead
/// sessions after loading), as of transaction `zxid`. Returns how many went.
pub(crate) fn drop_orphan_ephemerals(tree: &mut DataTree, sessions: &HashMap<i64, i32>, zxid: i64) -> usize {
    let orphans: Vec<String> = tree
        .all_ephemerals()
        .iter()
        .filter(|(owner, _)| !sessions.contains_key(owner))
        .flat_map(|(_, paths)| paths.iter().cloned())
        .collect();
    for path in &orphans {
        delete(tree, path, zxid);
    }
    orphans.len()
}

fn apply_op(tree: &mut DataTree, header: &TxnHeader, op: &TxnOp) {
    let zxid = header.zxid;
    match op {
        TxnOp::Create { path, data, acl, kind, parent_cversion } => {
            let Some(parent_path) = parent_of(path) else {
                return;
            };
            let exists = tree.get(path).is_some();
            let Some(parent) = tree.get_mut(parent_path) else {
                tracing::debug!(path = %path, zxid, "replay: create under a missing parent skipped");
                return;
            };
            if *parent_cversion > parent.child_creates {
                parent.child_creates = *parent_cversion;
                parent.pzxid = zxid;
            }
            if exists {
                return;
            }
            parent.children.insert(name_of(path).to_owned());
            let kind = match kind {
                NodeKind::Ephemeral(_) => NodeKind::Ephemeral(header.client_id),
                other => *other,
            };
            tree.put(path, Some(Node::new(data.clone(), acl.clone(), kind, zxid, header.time)));
        }
        TxnOp::Delete { path, .. } => delete(tree, path, zxid),
        TxnOp::SetData { path, data, version } => {
            if let Some(node) = tree.get_mut(path) {
                node.data = data.clone();
                node.version = *version;
                node.mzxid = zxid;
                node.mtime = header.time;
            }
        }
        TxnOp::SetAcl { path, acl, version } => {
            if let Some(node) = tree.set_acl(path, acl) {
                node.aversion = *version;
            }
        }
        TxnOp::Check { .. } | TxnOp::Error(_) => {}
    }
}

fn delete(tree: &mut DataTree, path: &str, zxid: i64) {
    if tree.put(path, None).is_none() {
        return;
    }
    if let Some(parent) = parent_of(path).and_then(|p| tree.get_mut(p)) {
        parent.children.remove(name_of(path));
        if zxid > parent.pzxid {
            parent.pzxid = zxid;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use corral_proto::Acl;

    use super::*;
    use crate::persist::record::op;

    fn header(zxid: i64, client_id: i64, kind: i32) -> TxnHeader {
        TxnHeader { client_id, cxid: 0, zxid, time: 1000 + zxid, kind }
    }

    fn create(path: &str, kind: NodeKind, parent_cversion: i32) -> TxnBody {
        TxnBody::Op(TxnOp::Create {
            path: path.into(),
            data: None,
            acl: Arc::new(Acl::open_unsafe()),
            kind,
            parent_cversion,
        })
    }

    #[test]
    fn replaying_twice_lands_where_replaying_once_did() {
        let txns = [
            (header(1, 7, op::CREATE_SESSION), TxnBody::CreateSession { timeout: 4000 }),
            (header(2, 7, op::CREATE), create("/a", NodeKind::Persistent, 1)),
            (header(3, 7, op::CREATE), create("/a/e", NodeKind::Ephemeral(0), 1)),
            (header(4, 7, op::SET_DATA), TxnBody::Op(TxnOp::SetData { path: "/a".into(), data: None, version: 1 })),
            (header(5, 7, op::CREATE), create("/a/p", NodeKind::Persistent, 2)),
            (header(6, 7, op::DELETE), TxnBody::Op(TxnOp::Delete { path: "/a/p".into(), container: false })),
            (header(7, 7, op::CLOSE_SESSION), TxnBody::CloseSession { paths: vec!["/a/e".into()] }),
        ];
        let dump = |tree: &DataTree| tree.iter().map(|(p, n)| format!("{p} {:?}", n.stat())).collect::<Vec<_>>();
        let mut once = DataTree::new();
        let mut sessions = HashMap::new();
        txns.iter().for_each(|(h, b)| apply(&mut once, &mut sessions, h, b));
        assert!(sessions.is_empty());
        let a = once.get("/a").map(Node::stat).unwrap_or_default();
        assert_eq!((a.version, a.cversion, a.num_children, a.pzxid, a.mzxid), (1, 4, 0, 7, 4));
        // A fuzzy snapshot may already hold any prefix of the effects: replay over it again.
        for start in 0..txns.len() {
            let mut twice = DataTree::new();
            let mut sessions = HashMap::new();
            txns.iter().for_each(|(h, b)| apply(&mut twice, &mut sessions, h, b));
            txns[start..].iter().for_each(|(h, b)| apply(&mut twice, &mut sessions, h, b));
            assert_eq!(dump(&twice), dump(&once), "replayed again from {start}");
        }
    }

    #[test]
    fn ephemerals_of_unknown_sessions_are_dropped() {
        let mut tree = DataTree::new();
        let mut sessions = HashMap::new();
        apply(&mut tree, &mut sessions, &header(1, 7, op::CREATE_SESSION), &TxnBody::CreateSession { timeout: 4000 });
        apply(&mut tree, &mut sessions, &header(2, 7, op::CREATE), &create("/mine", NodeKind::Ephemeral(0), 1));
        apply(&mut tree, &mut sessions, &header(3, 8, op::CREATE), &create("/orphan", NodeKind::Ephemeral(0), 2));
        assert_eq!(drop_orphan_ephemerals(&mut tree, &sessions, 3), 1);
        assert!(tree.get("/mine").is_some() && tree.get("/orphan").is_none());
    }
}
