//! The data tree: every znode by path, with its data, ACL and the statistics ZooKeeper keeps.
//!
//! Nodes live in a [`BTreeMap`] keyed by full path, so the descendants of a node are one
//! contiguous range (used by getAllChildrenNumber and the ephemeral prefix filter). Each node
//! also keeps the names of its children. The tree knows nothing of sessions, permissions or
//! watches; [`crate::txn`] applies the rules of each write on top of it.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use corral_proto::{Acl, Stat};

/// The special paths that always exist and may not be deleted.
pub(crate) const SPECIAL_PATHS: [&str; 4] = ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"];

/// What kind of node this is, as ZooKeeper encodes it in the ephemeral-owner field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeKind {
    /// An ordinary persistent node.
    Persistent,
    /// Owned by a session; deleted with it.
    Ephemeral(i64),
    /// A container: reaped once it has had children and has none left.
    Container,
    /// A persistent node with a time to live in ms.
    Ttl(i64),
}

/// One znode.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) data: Option<Bytes>,
    pub(crate) acl: Arc<Vec<Acl>>,
    pub(crate) czxid: i64,
    pub(crate) mzxid: i64,
    pub(crate) pzxid: i64,
    pub(crate) ctime: i64,
    pub(crate) mtime: i64,
    pub(crate) version: i32,
    pub(crate) aversion: i32,
    /// ZooKeeper's internal cversion: the number of child creates. It numbers sequential
    /// children, and clients see `2 × creates − numChildren` (creates plus deletes).
    pub(crate) child_creates: i32,
    pub(crate) kind: NodeKind,
    pub(crate) children: BTreeSet<String>,
}

impl Node {
    /// A node created by transaction `zxid` at wall time `now`.
    pub(crate) fn new(data: Option<Bytes>, acl: Arc<Vec<Acl>>, kind: NodeKind, zxid: i64, now: i64) -> Self {
        Self {
            data,
            acl,
            czxid: zxid,
            mzxid: zxid,
            pzxid: zxid,
            ctime: now,
            mtime: now,
            version: 0,
            aversion: 0,
            child_creates: 0,
            kind,
            children: BTreeSet::new(),
        }
    }

    /// The Stat clients see.
    pub(crate) fn stat(&self) -> Stat {
        let num_children = i32::try_from(self.children.len()).unwrap_or(i32::MAX);
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            cversion: self.child_creates.wrapping_mul(2).wrapping_sub(num_children),
            aversion: self.aversion,
            ephemeral_owner: match self.kind {
                NodeKind::Ephemeral(owner) => owner,
                _ => 0,
            },
            data_length: self.data.as_ref().map_or(0, |d| i32::try_from(d.len()).unwrap_or(i32::MAX)),
            num_children,
            pzxid: self.pzxid,
        }
    }

    /// The session owning this node, if it is ephemeral.
    pub(crate) fn owner(&self) -> Option<i64> {
        match self.kind {
            NodeKind::Ephemeral(owner) => Some(owner),
            _ => None,
        }
    }
}

/// The next value of a version counter: +1, skipping −1 after a wrap (ZOOKEEPER-4743).
pub(crate) fn next_version(v: i32) -> i32 {
    match v.wrapping_add(1) {
        -1 => 0,
        n => n,
    }
}

/// The parent path of `path` as ZooKeeper computes it (everything before the last `/`, the
/// root for a child of the root), or `None` if there is no `/`.
pub(crate) fn parent_of(path: &str) -> Option<&str> {
    match path.rfind('/') {
        None => None,
        Some(0) => Some("/"),
        Some(i) => path.get(..i),
    }
}

/// The last segment of `path`.
pub(crate) fn name_of(path: &str) -> &str {
    path.rfind('/').and_then(|i| path.get(i + 1..)).unwrap_or(path)
}

/// The ACL lists of the tree, each stored once: nodes with equal lists share one `Arc`, as
/// ZooKeeper's `ReferenceCountedACLCache` shares them. Each list counts the nodes holding it
/// and leaves the table with the last of them. Copies held elsewhere for a while (watch
/// triggers, a multi's undo log) are not counted; they keep their list alive, not the entry.
#[derive(Debug, Default)]
struct AclTable {
    lists: HashMap<Arc<Vec<Acl>>, usize>,
}

impl AclTable {
    /// The shared copy of `acl`, now counted as held by one more node.
    fn acquire(&mut self, acl: &Arc<Vec<Acl>>) -> Arc<Vec<Acl>> {
        match self.lists.entry(Arc::clone(acl)) {
            Entry::Occupied(mut entry) => {
                *entry.get_mut() += 1;
                Arc::clone(entry.key())
            }
            Entry::Vacant(entry) => Arc::clone(entry.insert_entry(1).key()),
        }
    }

    /// One node fewer holds `acl`; the last one takes the list out of the table.
    fn release(&mut self, acl: &Arc<Vec<Acl>>) {
        let list: &Vec<Acl> = acl;
        if let Some(count) = self.lists.get_mut(list) {
            *count -= 1;
            if *count == 0 {
                self.lists.remove(list);
            }
        }
    }
}

/// Every node, by path, plus an index of ephemerals by owning session.
#[derive(Debug)]
pub(crate) struct DataTree {
    nodes: BTreeMap<String, Node>,
    ephemerals: HashMap<i64, BTreeSet<String>>,
    acls: AclTable,
}

impl Default for DataTree {
    fn default() -> Self {
        Self::new()
    }
}

impl DataTree {
    /// A fresh tree holding only `/`, `/zookeeper`, `/zookeeper/quota` and `/zookeeper/config`.
    pub(crate) fn new() -> Self {
        let mut tree = Self::empty();
        let open = Arc::new(Acl::open_unsafe());
        let special = |acl: &Arc<Vec<Acl>>| Node::new(Some(Bytes::new()), Arc::clone(acl), NodeKind::Persistent, 0, 0);
        let mut root = special(&open);
        root.children.insert("zookeeper".into());
        let mut zk = special(&open);
        zk.children.insert("quota".into());
        zk.children.insert("config".into());
        tree.put("/", Some(root));
        tree.put("/zookeeper", Some(zk));
        tree.put("/zookeeper/quota", Some(special(&open)));
        tree.put("/zookeeper/config", Some(special(&Arc::new(Acl::read_unsafe()))));
        tree
    }

    /// A tree without even a root, to load a snapshot into.
    pub(crate) fn empty() -> Self {
        Self { nodes: BTreeMap::new(), ephemerals: HashMap::new(), acls: AclTable::default() }
    }

    /// The node at `path`.
    pub(crate) fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// The node at `path`, mutably. Callers must not change its kind (use [`DataTree::put`]) nor
    /// its ACL (use [`DataTree::set_acl`]).
    pub(crate) fn get_mut(&mut self, path: &str) -> Option<&mut Node> {
        self.nodes.get_mut(path)
    }

    /// Replaces the ACL of the node at `path` (with the shared copy of `acl`) and returns the
    /// node, or `None` if there is no such node.
    pub(crate) fn set_acl(&mut self, path: &str, acl: &Arc<Vec<Acl>>) -> Option<&mut Node> {
        let node = self.nodes.get_mut(path)?;
        let shared = self.acls.acquire(acl);
        let old = std::mem::replace(&mut node.acl, shared);
        self.acls.release(&old);
        Some(node)
    }

    /// Replaces (or removes, with `None`) the node at `path`, keeping the ephemeral index and
    /// the ACL table in step (the node stored holds the shared copy of its ACL). Returns the
    /// previous node. Parents' child sets are the caller's business.
    pub(crate) fn put(&mut self, path: &str, node: Option<Node>) -> Option<Node> {
        if let Some(owner) = node.as_ref().and_then(Node::owner) {
            self.ephemerals.entry(owner).or_default().insert(path.to_owned());
        }
        let old = match node {
            Some(mut n) => {
                n.acl = self.acls.acquire(&n.acl);
                self.nodes.insert(path.to_owned(), n)
            }
            None => self.nodes.remove(path),
        };
        if let Some(old) = &old {
            self.acls.release(&old.acl);
        }
        if let Some(owner) = old.as_ref().and_then(Node::owner) {
            let still_there = self.nodes.get(path).and_then(Node::owner) == Some(owner);
            if !still_there && let Some(set) = self.ephemerals.get_mut(&owner) {
                set.remove(path);
                if set.is_empty() {
                    self.ephemerals.remove(&owner);
                }
            }
        }
        old
    }

    /// The number of nodes.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The paths of the ephemerals owned by `session`, sorted.
    pub(crate) fn ephemerals_of(&self, session: i64) -> Vec<String> {
        self.ephemerals.get(&session).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    /// Every session that owns ephemerals, with their paths.
    pub(crate) fn all_ephemerals(&self) -> &HashMap<i64, BTreeSet<String>> {
        &self.ephemerals
    }

    /// The number of ephemeral nodes.
    pub(crate) fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(BTreeSet::len).sum()
    }

    /// The number of descendants of `path`, the node itself excluded.
    pub(crate) fn descendant_count(&self, path: &str) -> usize {
        if path == "/" {
            return self.nodes.len().saturating_sub(1);
        }
        let prefix = format!("{path}/");
        self.nodes
            .range::<str, _>((std::ops::Bound::Included(prefix.as_str()), std::ops::Bound::Unbounded))
            .take_while(|(p, _)| p.starts_with(&prefix))
            .count()
    }

    /// Every node, in path order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.nodes.iter()
    }

    /// The approximate data size, as `mntr` reports it: path lengths plus data lengths.
    pub(crate) fn approximate_data_size(&self) -> usize {
        self.nodes.iter().map(|(p, n)| p.len() + n.data.as_ref().map_or(0, Bytes::len)).sum()
    }
}

#[cfg(test)]
mod tests {
    use corral_proto::{Id, Perms};

    use super::*;

    #[test]
    fn fresh_tree_has_the_special_nodes() {
        let tree = DataTree::new();
        for path in SPECIAL_PATHS {
            assert!(tree.get(path).is_some(), "{path}");
        }
        assert_eq!(tree.descendant_count("/"), 3);
        assert_eq!(tree.descendant_count("/zookeeper"), 2);
        assert_eq!(tree.get("/zookeeper/config").map(|n| n.acl.as_ref().clone()), Some(Acl::read_unsafe()));
        // cversion as clients see it: 2 × 0 creates − 1 child.
        assert_eq!(tree.get("/").map(|n| n.stat().cversion), Some(-1));
    }

    #[test]
    fn ephemeral_index_follows_puts() {
        let mut tree = DataTree::new();
        let node = Node::new(None, Arc::new(Acl::open_unsafe()), NodeKind::Ephemeral(7), 1, 1);
        tree.put("/e", Some(node.clone()));
        assert_eq!(tree.ephemerals_of(7), vec!["/e".to_owned()]);
        assert_eq!(tree.ephemeral_count(), 1);
        tree.put("/e", Some(node));
        assert_eq!(tree.ephemerals_of(7), vec!["/e".to_owned()]);
        tree.put("/e", None);
        assert!(tree.ephemerals_of(7).is_empty());
        assert!(tree.all_ephemerals().is_empty());
    }

    #[test]
    fn equal_acl_lists_are_stored_once_while_nodes_hold_them() {
        let mut tree = DataTree::new();
        // The special nodes: the open list (3 nodes) and the read-only one.
        assert_eq!(tree.acls.lists.len(), 2);
        let node = |acl: Vec<Acl>| Node::new(None, Arc::new(acl), NodeKind::Persistent, 1, 1);
        let digest = vec![Acl { perms: Perms::ALL, id: Id::new("digest", "u:x") }];
        tree.put("/a", Some(node(Acl::open_unsafe())));
        tree.put("/b", Some(node(digest.clone())));
        tree.put("/c", Some(node(digest.clone())));
        let acl = |tree: &DataTree, path: &str| tree.get(path).map(|n| Arc::clone(&n.acl)).unwrap_or_default();
        assert!(Arc::ptr_eq(&acl(&tree, "/a"), &acl(&tree, "/")));
        assert!(Arc::ptr_eq(&acl(&tree, "/b"), &acl(&tree, "/c")));
        assert_eq!(tree.acls.lists.len(), 3);
        // Replacing a node, or its ACL, counts the new list and lets go of the old one.
        tree.put("/b", Some(node(Acl::open_unsafe())));
        assert!(Arc::ptr_eq(&acl(&tree, "/b"), &acl(&tree, "/")));
        assert_eq!(tree.acls.lists.len(), 3, "/c still holds the digest list");
        assert!(tree.set_acl("/c", &Arc::new(Acl::read_unsafe())).is_some());
        assert!(Arc::ptr_eq(&acl(&tree, "/c"), &acl(&tree, "/zookeeper/config")));
        assert_eq!(tree.acls.lists.len(), 2, "no node holds the digest list any more");
        assert!(tree.set_acl("/missing", &Arc::new(digest)).is_none());
        assert_eq!(tree.acls.lists.len(), 2);
        // The last node holding a list takes it out of the table.
        tree.put("/c", None);
        assert_eq!(tree.acls.lists.get(&Acl::read_unsafe()), Some(&1));
        assert_eq!(tree.acls.lists.get(&Acl::open_unsafe()), Some(&5));
        tree.put("/a", None);
        tree.put("/b", None);
        assert_eq!(tree.acls.lists.get(&Acl::open_unsafe()), Some(&3));
    }

    #[test]
    fn versions_skip_minus_one() {
        assert_eq!(next_version(0), 1);
        assert_eq!(next_version(i32::MAX), i32::MIN);
        assert_eq!(next_version(-2), 0);
    }

    #[test]
    fn parents_and_names() {
        assert_eq!(parent_of("/a/b"), Some("/a"));
        assert_eq!(parent_of("/a"), Some("/"));
        assert_eq!(parent_of("/"), Some("/"));
        assert_eq!(parent_of("a"), None);
        assert_eq!(name_of("/a/b"), "b");
    }

    #[test]
    fn descendants_are_a_prefix_range() {
        let mut tree = DataTree::new();
        let acl = Arc::new(Acl::open_unsafe());
        for p in ["/a", "/a/b", "/a/b/c", "/ab", "/a0"] {
            tree.put(p, Some(Node::new(None, Arc::clone(&acl), NodeKind::Persistent, 1, 1)));
        }
        assert_eq!(tree.descendant_count("/a"), 2);
        assert_eq!(tree.descendant_count("/a/b/c"), 0);
    }

    #[test]
    fn null_data_has_zero_length() {
        let node = Node::new(None, Arc::new(Vec::new()), NodeKind::Container, 5, 9);
        let stat = node.stat();
        assert_eq!((stat.data_length, stat.ephemeral_owner, stat.czxid, stat.pzxid), (0, 0, 5, 5));
    }
}
