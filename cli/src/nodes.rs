//! What every command knows about a node: whether it is ephemeral (and whose), its stat as
//! JSON, and a pipelined walk of a subtree.
//!
//! ZooKeeper keeps container and TTL markers in `ephemeralOwner` on the server but reports 0 to
//! clients (`DataNode.copyStat`), so they cannot be told from persistent nodes here.

use corral_recipes::{Client, Stat};
use futures::StreamExt;
use serde::Serialize;

use crate::error::{AtPath, CliResult};
use crate::output::session_hex;

/// How many requests a walk keeps in flight: below ZooKeeper's `globalOutstandingLimit` (1000 by
/// default), past which the server stops reading from the connection.
const IN_FLIGHT: usize = 512;

/// The kind of node a stat describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeKind {
    /// Lives until deleted.
    Persistent,
    /// Owned by a session.
    Ephemeral(i64),
}

impl NodeKind {
    /// The kind `ephemeral_owner` says.
    pub(crate) fn of(stat: &Stat) -> Self {
        match stat.ephemeral_owner {
            0 => NodeKind::Persistent,
            owner => NodeKind::Ephemeral(owner),
        }
    }

    /// The session owning the node, if it is ephemeral.
    pub(crate) fn owner(self) -> Option<i64> {
        match self {
            NodeKind::Ephemeral(owner) => Some(owner),
            NodeKind::Persistent => None,
        }
    }

    /// The JSON name: `persistent` (containers and TTL nodes included) or `ephemeral`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            NodeKind::Persistent => "persistent",
            NodeKind::Ephemeral(_) => "ephemeral",
        }
    }
}

/// A node's stat in `--json` output.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StatJson {
    /// `persistent` or `ephemeral`.
    pub(crate) kind: &'static str,
    /// The owning session (`0x…`), for an ephemeral node.
    pub(crate) ephemeral_owner: Option<String>,
    /// zxid of the create.
    pub(crate) czxid: i64,
    /// zxid of the last data change.
    pub(crate) mzxid: i64,
    /// zxid of the last child change.
    pub(crate) pzxid: i64,
    /// Creation time, ms since the epoch.
    pub(crate) ctime_ms: i64,
    /// Last data change, ms since the epoch.
    pub(crate) mtime_ms: i64,
    /// Data version.
    pub(crate) version: i32,
    /// Child version.
    pub(crate) cversion: i32,
    /// ACL version.
    pub(crate) aversion: i32,
    /// Data length in bytes.
    pub(crate) data_length: i32,
    /// Number of children.
    pub(crate) num_children: i32,
}

impl From<&Stat> for StatJson {
    fn from(stat: &Stat) -> Self {
        let kind = NodeKind::of(stat);
        Self {
            kind: kind.name(),
            ephemeral_owner: kind.owner().map(session_hex),
            czxid: stat.czxid,
            mzxid: stat.mzxid,
            pzxid: stat.pzxid,
            ctime_ms: stat.ctime,
            mtime_ms: stat.mtime,
            version: stat.version,
            cversion: stat.cversion,
            aversion: stat.aversion,
            data_length: stat.data_length,
            num_children: stat.num_children,
        }
    }
}

/// One node found by [`walk`].
#[derive(Debug, Clone)]
pub(crate) struct Walked {
    /// The full path.
    pub(crate) path: String,
    /// The depth below the walk's root (the root is 0).
    pub(crate) depth: usize,
    /// The node's stat.
    pub(crate) stat: Stat,
}

/// Joins a parent path and a child name.
pub(crate) fn child_path(parent: &str, child: &str) -> String {
    if parent == "/" { format!("/{child}") } else { format!("{parent}/{child}") }
}

/// Every node of the subtree at `root` (down to `max_depth` below it), depth-first with the
/// children of each node sorted by name. One getChildren2 per node, level by level, with up to
/// [`IN_FLIGHT`] requests pipelined; nodes deleted during the walk are left out.
///
/// # Errors
///
/// The error of the root's read (NoNode for a missing root); a later node's error other than
/// NoNode.
pub(crate) async fn walk(client: &Client, root: &str, max_depth: Option<usize>) -> CliResult<Vec<Walked>> {
    let (children, stat) = client.get_children_with_stat(root).await.at(root)?;
    // (path, depth, stat, sorted children) per node, in the order found.
    let mut found: Vec<(String, usize, Stat, Vec<String>)> = vec![(root.to_owned(), 0, stat, sorted(children))];
    let mut level: Vec<usize> = vec![0];
    let mut depth = 0;
    while !level.is_empty() && max_depth.is_none_or(|max| depth < max) {
        depth += 1;
        let paths: Vec<String> = level
            .iter()
            .flat_map(|&i| found[i].3.iter().map(move |c| (i, c)))
            .map(|(i, c)| child_path(&found[i].0, c))
            .collect();
        let replies: Vec<(String, ChildrenReply)> = futures::stream::iter(paths)
            .map(|path| {
                let reply = client.get_children_with_stat(&path);
                async move { (path, reply.await) }
            })
            .buffered(IN_FLIGHT)
            .collect()
            .await;
        level.clear();
        for (path, reply) in replies {
            match reply {
                Ok((children, stat)) => {
                    found.push((path, depth, stat, sorted(children)));
                    level.push(found.len() - 1);
                }
                Err(e) if e.is_no_node() => {}
                Err(e) => return Err(e).at(&path),
            }
        }
    }
    // Depth-first order: by path components.
    let mut nodes: Vec<Walked> = found.into_iter().map(|(path, depth, stat, _)| Walked { path, depth, stat }).collect();
    nodes.sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
    Ok(nodes)
}

/// A getChildren2 answer.
type ChildrenReply = Result<(Vec<String>, Stat), corral_recipes::CoreError>;

fn sorted(mut children: Vec<String>) -> Vec<String> {
    children.sort();
    children
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(owner: i64) -> Stat {
        Stat { ephemeral_owner: owner, ..Stat::default() }
    }

    #[test]
    fn kinds_from_ephemeral_owner() {
        assert_eq!(NodeKind::of(&stat(0)), NodeKind::Persistent);
        assert_eq!(NodeKind::of(&stat(0x1000_0000_0000_0001)), NodeKind::Ephemeral(0x1000_0000_0000_0001));
    }

    #[test]
    fn paths() {
        assert_eq!(child_path("/", "a"), "/a");
        assert_eq!(child_path("/a", "b"), "/a/b");
        let mut paths = vec!["/a/b", "/a-b", "/a", "/a/b/c", "/"];
        paths.sort_by(|a, b| a.split('/').cmp(b.split('/')));
        assert_eq!(paths, ["/", "/a", "/a/b", "/a/b/c", "/a-b"]);
    }
}
