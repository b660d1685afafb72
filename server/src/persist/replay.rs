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
