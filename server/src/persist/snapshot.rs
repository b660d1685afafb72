//! Snapshots in ZooKeeper's `FileSnap` format, written fuzzily and read strictly.
//!
//! Layout (jute, big-endian): the file header (`"ZKSN"`, version 2, dbid −1); the sessions
//! (a count, then `(id: long, timeout: int)` pairs); the ACL cache (a count, then
//! `(id: long, vector<ACL>)` pairs); the nodes, parents before children, each as its path (the
//! root as the empty string), the data buffer, the ACL cache id and the `StatPersisted`
//! (czxid, mzxid, ctime, mtime, version, cversion, aversion, ephemeralOwner, pzxid); the path
//! `"/"` ending the nodes; then the seal: the Adler-32 of every byte before it as a long, and
//! the path `"/"` again.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use corral_proto::jute::write_str;
use corral_proto::{Acl, DecodeError, Jute};

use crate::persist::record::{kind_of, owner_of};
use crate::state::Shared;
use crate::tree::{DataTree, Node, name_of, parent_of};

/// `"ZKSN"`.
const SNAP_MAGIC: i32 = 0x5a4b_534e;
const VERSION: i32 = 2;
/// How many nodes are serialized per hold of the state lock.
const CHUNK: usize = 2_000;

/// A snapshot read back: the tree and the sessions (`id → timeout`).
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) tree: DataTree,
    pub(crate) sessions: HashMap<i64, i32>,
}

/// The snapshot file name for `zxid`, as ZooKeeper names it.
pub(crate) fn file_name(zxid: i64) -> String {
    format!("snapshot.{zxid:x}")
}

/// Serializes nodes as they are visited, and the ACL lists they use.
#[derive(Debug, Default)]
struct Writer {
    nodes: BytesMut,
    acl_ids: HashMap<Arc<Vec<Acl>>, i64>,
    acls: Vec<(i64, Arc<Vec<Acl>>)>,
}

impl Writer {
    fn node(&mut self, path: &str, node: &Node) {
        let next = self.acls.len() as i64 + 1;
        let acl = match self.acl_ids.get(node.acl.as_ref()) {
            Some(id) => *id,
            None => {
                self.acl_ids.insert(Arc::clone(&node.acl), next);
                self.acls.push((next, Arc::clone(&node.acl)));
                next
            }
        };
        let buf = &mut self.nodes;
        write_str(if path == "/" { "" } else { path }, buf);
        node.data.write(buf);
        acl.write(buf);
        for long in [node.czxid, node.mzxid, node.ctime, node.mtime] {
            long.write(buf);
        }
        for int in [node.version, node.child_creates, node.aversion] {
            int.write(buf);
        }
        owner_of(node.kind).write(buf);
        node.pzxid.write(buf);
    }

    fn finish(self, sessions: &[(i64, i32)]) -> Vec<u8> {
        let mut out = BytesMut::with_capacity(self.nodes.len() + 1024);
        SNAP_MAGIC.write(&mut out);
        VERSION.write(&mut out);
        (-1i64).write(&mut out);
        (sessions.len() as i32).write(&mut out);
        for (id, timeout) in sessions {
            id.write(&mut out);
            timeout.write(&mut out);
        }
        (self.acls.len() as i32).write(&mut out);
        for (id, acl) in &self.acls {
            id.write(&mut out);
            acl.as_ref().write(&mut out);
        }
        out.extend_from_slice(&self.nodes);
        write_str("/", &mut out);
        let seal = i64::from(adler2::adler32_slice(&out));
        seal.write(&mut out);
        write_str("/", &mut out);
        out.to_vec()
    }
}

/// Writes the snapshot of a tree nobody else holds (at start).
pub(crate) fn write_whole(dir: &Path, zxid: i64, tree: &DataTree, sessions: &[(i64, i32)]) -> std::io::Result<PathBuf> {
    let mut writer = Writer::default();
    let mut stack = vec!["/".to_owned()];
    while let Some(path) = stack.pop() {
        if let Some(node) = tree.get(&path) {
            writer.node(&path, node);
            push_children(&mut stack, &path, node);
        }
    }
    write_file(dir, zxid, &writer.finish(sessions))
}

/// A fuzzy snapshot serialized in memory, not yet on disk.
#[derive(Debug)]
pub(crate) struct Fuzzy {
    /// The zxid it is named after: every transaction up to it is in it.
    pub(crate) zxid: i64,
    /// The last zxid applied when the walk ended: the snapshot may hold effects of any
    /// transaction up to it, so it may be published only once the log is durable that far.
    pub(crate) last_seen: i64,
    bytes: Vec<u8>,
}

/// Takes a fuzzy snapshot of a running server, as ZooKeeper does: the zxid and the sessions
/// are read at one instant, then the tree is walked a chunk of nodes per hold of the state
/// lock, so writes go on meanwhile. A node may thus hold changes newer than the zxid; replaying
/// the log from the zxid on start makes it exact (see `replay`). Returns `None` if a snapshot
/// of this zxid exists already.
///
/// Unlike ZooKeeper's, this server applies a transaction before its log entry is on disk, so
/// the walk may see transactions that a crash would lose: [`publish`] it only once the log is
/// durable up to [`Fuzzy::last_seen`], or a restart could find half of a transaction.
pub(crate) fn take_fuzzy(dir: &Path, shared: &Shared) -> Option<Fuzzy> {
    let (zxid, sessions) = {
        let state = shared.lock();
        (state.zxid, state.sessions.global_timeouts())
    };
    if dir.join(file_name(zxid)).exists() {
        return None;
    }
    let mut writer = Writer::default();
    let mut stack = vec!["/".to_owned()];
    let mut last_seen = zxid;
    while !stack.is_empty() {
        let state = shared.lock();
        for _ in 0..CHUNK {
            let Some(path) = stack.pop() else { break };
            if let Some(node) = state.tree.get(&path) {
                writer.node(&path, node);
                push_children(&mut stack, &path, node);
            }
        }
        last_seen = state.zxid;
    }
    Some(Fuzzy { zxid, last_seen, bytes: writer.finish(&sessions) })
}

/// Writes a fuzzy snapshot to its file (see [`take_fuzzy`] for when).
pub(crate) fn publish(dir: &Path, snapshot: &Fuzzy) -> std::io::Result<PathBuf> {
    write_file(dir, snapshot.zxid, &snapshot.bytes)
}

fn push_children(stack: &mut Vec<String>, path: &str, node: &Node) {
    for name in node.children.iter().rev() {
        stack.push(if path == "/" { format!("/{name}") } else { format!("{path}/{name}") });
    }
}

/// Writes `bytes` as `snapshot.<zxid>` atomically: a temporary file, fsynced, renamed, and
/// the directory fsynced.
fn write_file(dir: &Path, zxid: i64, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let tmp = dir.join(format!("tmp.{}", file_name(zxid)));
    let path = dir.join(file_name(zxid));
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all()?;
    Ok(path)
}

/// Reads a snapshot. Anything wrong with it is an error naming what (the caller names the
/// file): a snapshot is never half-trusted.
pub(crate) fn read(bytes: &[u8]) -> Result<Snapshot, String> {
    let mut buf = bytes;
    let err = |e: DecodeError| format!("truncated or malformed: {e}");
    let magic = i32::read(&mut buf).map_err(err)?;
    let version = i32::read(&mut buf).map_err(err)?;
    let _dbid = i64::read(&mut buf).map_err(err)?;
    if magic != SNAP_MAGIC || version != VERSION {
        return Err(format!("not a version-2 ZooKeeper snapshot (magic {magic:#x}, version {version})"));
    }
    let n = count(&mut buf, 12, "sessions")?;
    let mut sessions = HashMap::with_capacity(n);
    for _ in 0..n {
        let id = i64::read(&mut buf).map_err(err)?;
        sessions.insert(id, i32::read(&mut buf).map_err(err)?);
    }
    let n = count(&mut buf, 12, "ACL lists")?;
    let mut acls: HashMap<i64, Arc<Vec<Acl>>> = HashMap::with_capacity(n);
    for _ in 0..n {
        let id = i64::read(&mut buf).map_err(err)?;
        acls.insert(id, Arc::new(Vec::<Acl>::read(&mut buf).map_err(err)?));
    }
    let open = Arc::new(Acl::open_unsafe());
    let mut tree = DataTree::empty();
    loop {
        let path = String::read(&mut buf).map_err(err)?;
        if path == "/" {
            break;
        }
        let data = Option::<Bytes>::read(&mut buf).map_err(err)?;
        let acl_id = i64::read(&mut buf).map_err(err)?;
        let mut longs = [0i64; 4];
        for long in &mut longs {
            *long = i64::read(&mut buf).map_err(err)?;
        }
        let mut ints = [0i32; 3];
        for int in &mut ints {
            *int = i32::read(&mut buf).map_err(err)?;
        }
        let owner = i64::read(&mut buf).map_err(err)?;
        let pzxid = i64::read(&mut buf).map_err(err)?;
        let acl = match acl_id {
            // ZooKeeper's id of the open ACL, never in the cache.
            -1 => Arc::clone(&open),
            id => acls.get(&id).cloned().ok_or_else(|| format!("node {path:?} has an unknown ACL id {id}"))?,
        };
        let [czxid, mzxid, ctime, mtime] = longs;
        let [version, child_creates, aversion] = ints;
        let mut node = Node::new(data, acl, kind_of(owner), czxid, ctime);
        (node.mzxid, node.mtime, node.version, node.child_creates, node.aversion, node.pzxid) =
            (mzxid, mtime, version, child_creates, aversion, pzxid);
        let path = if path.is_empty() { "/".to_owned() } else { path };
        if path != "/" {
            let parent = parent_of(&path)
                .and_then(|p| tree.get_mut(p))
                .ok_or_else(|| format!("node {path:?} comes before its parent"))?;
            parent.children.insert(name_of(&path).to_owned());
        }
        tree.put(&path, Some(node));
    }
    let sealed = bytes.len() - buf.len();
    let expected = i64::from(adler2::adler32_slice(&bytes[..sealed]));
    let seal = i64::read(&mut buf).map_err(err)?;
    if seal != expected {
        return Err(format!("checksum mismatch (stored {seal:#x}, computed {expected:#x})"));
    }
    if String::read(&mut buf).map_err(err)? != "/" {
        return Err("no end marker after the checksum".into());
    }
    if tree.get("/").is_none() {
        return Err("no root node".into());
    }
    Ok(Snapshot { tree, sessions })
}

/// Reads a count that must be non-negative and fit in what is left (each entry at least
/// `min` bytes).
fn count(buf: &mut &[u8], min: usize, what: &str) -> Result<usize, String> {
    let n = i32::read(buf).map_err(|e| format!("truncated: {e}"))?;
    match usize::try_from(n) {
        Ok(n) if n.saturating_mul(min) <= buf.len() => Ok(n),
        _ => Err(format!("impossible number of {what}: {n}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::NodeKind;

    fn sample() -> DataTree {
        let mut tree = DataTree::new();
        let digest =
            Arc::new(vec![Acl { perms: corral_proto::Perms::ALL, id: corral_proto::Id::new("digest", "u:x") }]);
        let mut a = Node::new(Some(Bytes::from_static(b"a")), digest, NodeKind::Container, 5, 50);
        a.child_creates = 3;
        a.children.insert("e".into());
        tree.put("/a", Some(a));
        tree.put("/a/e", Some(Node::new(None, Arc::new(Acl::open_unsafe()), NodeKind::Ephemeral(9), 6, 60)));
        tree.put("/t", Some(Node::new(None, Arc::new(Acl::open_unsafe()), NodeKind::Ttl(1000), 7, 70)));
        for name in ["a", "t"] {
            tree.get_mut("/").map(|root| root.children.insert(name.into()));
        }
        tree
    }

    fn dump(tree: &DataTree) -> Vec<String> {
        tree.iter()
            .map(|(p, n)| format!("{p} {:?} {:?} {:?} {:?} {:?}", n.stat(), n.kind, n.data, n.acl, n.children))
            .collect()
    }

    #[test]
    fn round_trip_and_any_flipped_byte_is_refused() {
        let tree = sample();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_whole(dir.path(), 7, &tree, &[(9, 4000)]).expect("write");
        assert!(path.ends_with("snapshot.7"));
        let bytes = std::fs::read(&path).expect("read");
        let snap = read(&bytes).expect("valid");
        assert_eq!(dump(&snap.tree), dump(&tree));
        assert_eq!(snap.sessions, HashMap::from([(9, 4000)]));
        assert_eq!(snap.tree.ephemerals_of(9), ["/a/e"]);
        for i in (0..bytes.len()).step_by(7) {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(read(&bad).is_err(), "flipped byte {i} accepted");
        }
        assert!(read(&bytes[..bytes.len() - 3]).is_err());
    }
}
