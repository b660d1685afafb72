//! Write transactions over the [`DataTree`]: the rules of every write, checked in ZooKeeper's
//! order, with an undo log so that a failed multi leaves no trace.
//!
//! A [`Txn`] is opened with the zxid it will carry. Each write either fails with the code
//! ZooKeeper would answer (and changes nothing) or applies and records the watch triggers it
//! causes. [`Txn::commit`] hands the triggers back; [`Txn::rollback`] restores every node the
//! transaction touched.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use corral_proto::{Acl, CreateMode, ErrorCode, MAX_TTL_MS, Perms, Stat, validate_path};

use crate::acl::{self, Authz};
use crate::persist::TxnOp;
use crate::tree::{DataTree, Node, NodeKind, SPECIAL_PATHS, name_of, next_version, parent_of};

/// A change that may fire watches, with the ACL that filters its delivery.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// A node was created.
    Created(String, Arc<Vec<Acl>>),
    /// A node was deleted.
    Deleted(String, Arc<Vec<Acl>>),
    /// A node's data was set.
    DataChanged(String, Arc<Vec<Acl>>),
    /// A child was created or deleted under this node.
    ChildrenChanged(String, Arc<Vec<Acl>>),
}

/// The arguments of every create flavour.
#[derive(Debug, Clone)]
pub(crate) struct CreateSpec<'a> {
    pub(crate) path: &'a str,
    pub(crate) data: Option<Bytes>,
    pub(crate) acl: &'a [Acl],
    pub(crate) flags: i32,
    /// The TTL of a createTTL request; `None` for the other create opcodes (ZooKeeper's −1).
    pub(crate) ttl: Option<i64>,
}

/// One write transaction.
#[derive(Debug)]
pub(crate) struct Txn<'a> {
    tree: &'a mut DataTree,
    zxid: i64,
    now: i64,
    extended_types: bool,
    undo: Vec<(String, Option<Node>)>,
    saved: HashSet<String>,
    changes: Vec<Change>,
    /// Whether to keep an undo log. Only a multi needs one: every single operation checks
    /// everything before it changes anything, and copying a parent (with its whole child list)
    /// on every create or delete made writes slow down with the size of the directory.
    keep_undo: bool,
    /// What the transaction did, as log records, when the server has a data directory.
    ops: Option<Vec<TxnOp>>,
}

impl<'a> Txn<'a> {
    /// A transaction with id `zxid` at wall time `now` (ms since the epoch).
    pub(crate) fn new(tree: &'a mut DataTree, zxid: i64, now: i64, extended_types: bool) -> Self {
        Self {
            tree,
            zxid,
            now,
            extended_types,
            undo: Vec::new(),
            saved: HashSet::new(),
            changes: Vec::new(),
            keep_undo: true,
            ops: None,
        }
    }

    /// Keeps a log record of each operation (for the transaction log) when `on`.
    pub(crate) fn recording(mut self, on: bool) -> Self {
        self.ops = on.then(Vec::new);
        self
    }

    /// The log records of what the transaction did so far (empty unless recording).
    pub(crate) fn take_ops(&mut self) -> Vec<TxnOp> {
        self.ops.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn record(&mut self, op: impl FnOnce() -> TxnOp) {
        if let Some(ops) = &mut self.ops {
            ops.push(op());
        }
    }

    /// A transaction of one operation (or one that cannot fail midway): no undo log, so
    /// [`Txn::rollback`] must only follow a failure that changed nothing.
    pub(crate) fn single(tree: &'a mut DataTree, zxid: i64, now: i64, extended_types: bool) -> Self {
        Self { keep_undo: false, ..Self::new(tree, zxid, now, extended_types) }
    }

    /// Keeps the current value of `path` for rollback, the first time it is touched.
    fn save(&mut self, path: &str) {
        if self.keep_undo && self.saved.insert(path.to_owned()) {
            self.undo.push((path.to_owned(), self.tree.get(path).cloned()));
        }
    }

    /// Makes the changes permanent and returns the watch triggers, in order.
    pub(crate) fn commit(self) -> Vec<Change> {
        self.changes
    }

    /// Restores every node this transaction touched.
    pub(crate) fn rollback(self) {
        for (path, node) in self.undo.into_iter().rev() {
            self.tree.put(&path, node);
        }
    }

    /// create, create2, createContainer and createTTL, for `session`: returns the created path
    /// and its stat.
    pub(crate) fn create(
        &mut self,
        spec: CreateSpec<'_>,
        authz: &Authz<'_>,
        session: i64,
    ) -> Result<(String, Stat), ErrorCode> {
        // 1. The mode, extended types and the TTL.
        let mode = CreateMode::from_flags(spec.flags).ok_or(ErrorCode::BadArguments)?;
        if mode.is_ttl() && !self.extended_types {
            return Err(ErrorCode::Unimplemented);
        }
        let ttl = spec.ttl.unwrap_or(-1);
        if mode.is_ttl() {
            if ttl <= 0 || ttl > MAX_TTL_MS {
                return Err(ErrorCode::BadArguments);
            }
        } else if ttl >= 0 {
            return Err(ErrorCode::BadArguments);
        }
        // 2. Path shape: a `/` and no NUL.
        let path = spec.path;
        let parent_path = parent_of(path).ok_or(ErrorCode::BadArguments)?;
        if path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        // 3. ACL fix-up.
        let acl = acl::fixup(spec.acl, authz)?;
        // 4. The parent exists; 5. CREATE on it.
        let parent = self.tree.get(parent_path).ok_or(ErrorCode::NoNode)?;
        authz.check(&parent.acl, Perms::CREATE)?;
        // Most nodes have their parent's ACL: then the new node needs no list of its own (`put`
        // swaps any other list for the tree's shared copy).
        let acl = if *parent.acl == acl { Arc::clone(&parent.acl) } else { Arc::new(acl) };
        // 6. Sequence suffix from the parent's internal child counter.
        let final_path =
            if mode.is_sequential() { format!("{path}{:010}", parent.child_creates) } else { path.to_owned() };
        // 7. Full validation of the final path; 8. NodeExists; 9. ephemeral parent.
        validate_path(&final_path).map_err(|_| ErrorCode::BadArguments)?;
        if self.tree.get(&final_path).is_some() {
            return Err(ErrorCode::NodeExists);
        }
        if parent.owner().is_some() {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        let kind = match mode {
            m if m.is_ephemeral() => NodeKind::Ephemeral(session),
            CreateMode::Container => NodeKind::Container,
            m if m.is_ttl() => NodeKind::Ttl(ttl),
            _ => NodeKind::Persistent,
        };
        // 11. Create, and update the parent.
        let data = if self.ops.is_some() { spec.data.clone() } else { None };
        let node = Node::new(spec.data, Arc::clone(&acl), kind, self.zxid, self.now);
        let stat = node.stat();
        self.save(parent_path);
        self.save(&final_path);
        self.tree.put(&final_path, Some(node));
        let zxid = self.zxid;
        let (parent_acl, parent_cversion) = match self.tree.get_mut(parent_path) {
            Some(parent) => {
                parent.children.insert(name_of(&final_path).to_owned());
                parent.child_creates = parent.child_creates.wrapping_add(1);
                parent.pzxid = zxid;
                (Arc::clone(&parent.acl), parent.child_creates)
            }
            None => return Err(ErrorCode::NoNode),
        };
        self.record(|| TxnOp::Create { path: final_path.clone(), data, acl: Arc::clone(&acl), kind, parent_cversion });
        self.changes.push(Change::Created(final_path.clone(), acl));
        self.changes.push(Change::ChildrenChanged(parent_path.to_owned(), parent_acl));
        Ok((final_path, stat))
    }

    /// delete.
    pub(crate) fn delete(&mut self, path: &str, version: i32, authz: &Authz<'_>) -> Result<(), ErrorCode> {
        let parent_path = parent_of(path).ok_or(ErrorCode::BadArguments)?;
        if path.contains('\0') || SPECIAL_PATHS.contains(&path) {
            return Err(ErrorCode::BadArguments);
        }
        let parent = self.tree.get(parent_path).ok_or(ErrorCode::NoNode)?;
        authz.check(&parent.acl, Perms::DELETE)?;
        let node = self.tree.get(path).ok_or(ErrorCode::NoNode)?;
        if version != -1 && version != node.version {
            return Err(ErrorCode::BadVersion);
        }
        if !node.children.is_empty() {
            return Err(ErrorCode::NotEmpty);
        }
        self.remove(path, parent_path, false);
        Ok(())
    }

    /// deleteContainer: deletes an empty container or TTL node (the server's own sweeps).
    pub(crate) fn delete_container(&mut self, path: &str) -> Result<(), ErrorCode> {
        let parent_path = parent_of(path).ok_or(ErrorCode::BadArguments)?;
        if SPECIAL_PATHS.contains(&path) {
            return Err(ErrorCode::BadArguments);
        }
        let node = self.tree.get(path).ok_or(ErrorCode::NoNode)?;
        if !matches!(node.kind, NodeKind::Container | NodeKind::Ttl(_)) {
            return Err(ErrorCode::BadVersion);
        }
        if !node.children.is_empty() {
            return Err(ErrorCode::NotEmpty);
        }
        self.remove(path, parent_path, true);
        Ok(())
    }

    /// Deletes every ephemeral of `session` (closeSession and expiry).
    pub(crate) fn delete_ephemerals(&mut self, session: i64) {
        for path in self.tree.ephemerals_of(session) {
            if let Some(parent_path) = parent_of(&path) {
                self.remove(&path, parent_path, false);
            }
        }
    }

    fn remove(&mut self, path: &str, parent_path: &str, container: bool) {
        self.save(parent_path);
        self.save(path);
        let Some(node) = self.tree.put(path, None) else {
            return;
        };
        self.record(|| TxnOp::Delete { path: path.to_owned(), container });
        let zxid = self.zxid;
        let parent_acl = self.tree.get_mut(parent_path).map(|parent| {
            parent.children.remove(name_of(path));
            parent.pzxid = zxid;
            Arc::clone(&parent.acl)
        });
        self.changes.push(Change::Deleted(path.to_owned(), node.acl));
        if let Some(acl) = parent_acl {
            self.changes.push(Change::ChildrenChanged(parent_path.to_owned(), acl));
        }
    }

    /// setData: returns the new stat.
    pub(crate) fn set_data(
        &mut self,
        path: &str,
        data: Option<Bytes>,
        version: i32,
        authz: &Authz<'_>,
    ) -> Result<Stat, ErrorCode> {
        validate_path(path).map_err(|_| ErrorCode::BadArguments)?;
        let node = self.tree.get(path).ok_or(ErrorCode::NoNode)?;
        authz.check(&node.acl, Perms::WRITE)?;
        if version != -1 && version != node.version {
            return Err(ErrorCode::BadVersion);
        }
        self.save(path);
        let (zxid, now) = (self.zxid, self.now);
        let node = self.tree.get_mut(path).ok_or(ErrorCode::NoNode)?;
        let logged = self.ops.is_some().then(|| data.clone());
        node.data = data;
        node.version = next_version(node.version);
        node.mzxid = zxid;
        node.mtime = now;
        let (stat, acl, version) = (node.stat(), Arc::clone(&node.acl), node.version);
        if let Some(data) = logged {
            self.record(|| TxnOp::SetData { path: path.to_owned(), data, version });
        }
        self.changes.push(Change::DataChanged(path.to_owned(), acl));
        Ok(stat)
    }

    /// setACL: returns the new stat. Fires no watch.
    pub(crate) fn set_acl(
        &mut self,
        path: &str,
        acl: &[Acl],
        version: i32,
        authz: &Authz<'_>,
    ) -> Result<Stat, ErrorCode> {
        validate_path(path).map_err(|_| ErrorCode::BadArguments)?;
        let acl = acl::fixup(acl, authz)?;
        let node = self.tree.get(path).ok_or(ErrorCode::NoNode)?;
        authz.check(&node.acl, Perms::ADMIN)?;
        if version != -1 && version != node.aversion {
            return Err(ErrorCode::BadVersion);
        }
        self.save(path);
        let node = self.tree.set_acl(path, &Arc::new(acl)).ok_or(ErrorCode::NoNode)?;
        node.aversion = next_version(node.aversion);
        let (stat, acl, version) = (node.stat(), Arc::clone(&node.acl), node.aversion);
        self.record(|| TxnOp::SetAcl { path: path.to_owned(), acl, version });
        Ok(stat)
    }

    /// check (inside a multi).
    pub(crate) fn check(&mut self, path: &str, version: i32, authz: &Authz<'_>) -> Result<(), ErrorCode> {
        validate_path(path).map_err(|_| ErrorCode::BadArguments)?;
        let node = self.tree.get(path).ok_or(ErrorCode::NoNode)?;
        authz.check(&node.acl, Perms::READ)?;
        if version != -1 && version != node.version {
            return Err(ErrorCode::BadVersion);
        }
        self.record(|| TxnOp::Check { path: path.to_owned(), version });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use corral_proto::Id;

    use super::*;

    fn spec(path: &str, flags: i32) -> CreateSpec<'_> {
        CreateSpec { path, data: Some(Bytes::from_static(b"x")), acl: OPEN, flags, ttl: None }
    }

    static OPEN: &[Acl] = &[];

    fn open() -> Vec<Acl> {
        Acl::open_unsafe()
    }

    fn create(tree: &mut DataTree, zxid: i64, path: &str, flags: i32) -> Result<String, ErrorCode> {
        let acl = open();
        let mut txn = Txn::new(tree, zxid, 1000, true);
        let result = txn.create(CreateSpec { acl: &acl, ..spec(path, flags) }, &Authz::server(), 0x42);
        match result {
            Ok((p, _)) => {
                txn.commit();
                Ok(p)
            }
            Err(e) => {
                txn.rollback();
                Err(e)
            }
        }
    }

    #[test]
    fn sequential_suffix_counts_creates_not_deletes() {
        let mut tree = DataTree::new();
        create(&mut tree, 1, "/q", 0).ok();
        assert_eq!(create(&mut tree, 2, "/q/n-", 2), Ok("/q/n-0000000000".into()));
        assert_eq!(create(&mut tree, 3, "/q/n-", 2), Ok("/q/n-0000000001".into()));
        assert_eq!(create(&mut tree, 4, "/q/n-", 2), Ok("/q/n-0000000002".into()));
        let mut txn = Txn::new(&mut tree, 5, 1000, true);
        assert_eq!(txn.delete("/q/n-0000000000", -1, &Authz::server()), Ok(()));
        txn.commit();
        assert_eq!(tree.get("/q").map(|n| n.stat().cversion), Some(4));
        assert_eq!(create(&mut tree, 6, "/q/n-", 2), Ok("/q/n-0000000003".into()));
        let stat = tree.get("/q").map(Node::stat).unwrap_or_default();
        assert_eq!((stat.cversion, stat.num_children, stat.pzxid), (5, 3, 6));
    }

    #[test]
    fn create_error_precedence() {
        let mut tree = DataTree::new();
        assert_eq!(create(&mut tree, 1, "/a", 7), Err(ErrorCode::BadArguments));
        assert_eq!(create(&mut tree, 1, "/a", 5), Err(ErrorCode::BadArguments));
        assert_eq!(create(&mut tree, 1, "noslash", 0), Err(ErrorCode::BadArguments));
        // The missing parent comes before full validation.
        assert_eq!(create(&mut tree, 1, "/bad/", 0), Err(ErrorCode::NoNode));
        assert_eq!(create(&mut tree, 1, "/a/", 0), Err(ErrorCode::NoNode));
        assert_eq!(create(&mut tree, 1, "/", 0), Err(ErrorCode::NodeExists));
        assert_eq!(create(&mut tree, 1, "/e", 1), Ok("/e".into()));
        assert_eq!(create(&mut tree, 2, "/e", 0), Err(ErrorCode::NodeExists));
        assert_eq!(create(&mut tree, 2, "/e/c", 0), Err(ErrorCode::NoChildrenForEphemerals));
        assert_eq!(create(&mut tree, 2, "/e//", 0), Err(ErrorCode::NoNode));
        assert_eq!(create(&mut tree, 2, "/x/../y", 0), Err(ErrorCode::NoNode));
        assert_eq!(create(&mut tree, 2, "/..", 0), Err(ErrorCode::BadArguments));
        let acl = open();
        let mut txn = Txn::new(&mut tree, 3, 1, false);
        let ttl = CreateSpec { ttl: Some(100), acl: &acl, ..spec("/t", 5) };
        assert_eq!(txn.create(ttl, &Authz::server(), 1), Err(ErrorCode::Unimplemented));
        let empty_acl = CreateSpec { acl: &[], ..spec("/t", 0) };
        assert_eq!(txn.create(empty_acl, &Authz::server(), 1), Err(ErrorCode::InvalidAcl));
    }

    #[test]
    fn rollback_restores_everything() {
        let mut tree = DataTree::new();
        create(&mut tree, 1, "/a", 0).ok();
        let before: Vec<(String, Stat)> = tree.iter().map(|(p, n)| (p.clone(), n.stat())).collect();
        let acl = open();
        let mut txn = Txn::new(&mut tree, 2, 5, true);
        let ids = [Id::new("ip", "127.0.0.1")];
        let authz = Authz::new(&ids);
        assert!(txn.create(CreateSpec { acl: &acl, ..spec("/a/b", 1) }, &authz, 9).is_ok());
        assert!(txn.set_data("/a", None, -1, &authz).is_ok());
        assert!(txn.delete("/a/b", -1, &authz).is_ok());
        assert_eq!(txn.delete("/a", 5, &authz), Err(ErrorCode::BadVersion));
        txn.rollback();
        let after: Vec<(String, Stat)> = tree.iter().map(|(p, n)| (p.clone(), n.stat())).collect();
        assert_eq!(before, after);
        assert!(tree.ephemerals_of(9).is_empty());
    }

    #[test]
    fn special_nodes_cannot_be_deleted() {
        let mut tree = DataTree::new();
        let mut txn = Txn::new(&mut tree, 1, 1, true);
        for path in SPECIAL_PATHS {
            assert_eq!(txn.delete(path, -1, &Authz::server()), Err(ErrorCode::BadArguments));
        }
        assert_eq!(txn.delete("/nope", -1, &Authz::server()), Err(ErrorCode::NoNode));
        assert_eq!(txn.delete("/nope/x", -1, &Authz::server()), Err(ErrorCode::NoNode));
    }

    #[test]
    fn single_operations_keep_no_undo_log_and_multis_do() {
        let mut tree = DataTree::new();
        create(&mut tree, 1, "/dir", 0).unwrap();
        let acl = open();
        let mut single = Txn::single(&mut tree, 2, 1000, true);
        single.create(CreateSpec { acl: &acl, ..spec("/dir/a", 0) }, &Authz::server(), 0x42).unwrap();
        // No copy of the parent (and its child list) is taken for a single operation.
        assert!(single.undo.is_empty());
        single.commit();
        let mut multi = Txn::new(&mut tree, 3, 1000, true);
        multi.create(CreateSpec { acl: &acl, ..spec("/dir/b", 0) }, &Authz::server(), 0x42).unwrap();
        assert_eq!(multi.undo.len(), 2, "parent and node saved for rollback");
        multi.rollback();
        assert!(tree.get("/dir/b").is_none());
        assert!(tree.get("/dir/a").is_some());
    }
}
