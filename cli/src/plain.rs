//! The plain commands: `ls`, `tree`, `get`, `stat`, `set`, `create`, `delete`, `watch`, `acl`.

use std::io::{IsTerminal, Read, Write};
use std::time::Duration;

use corral_recipes::{AddWatchMode, Client, CreateMode, CreateOptions, EventType, Perms, Stat};
use futures::StreamExt;
use serde::Serialize;

use crate::error::{AtPath, CliError, CliResult, Kind};
use crate::nodes::{NodeKind, StatJson, walk};
use crate::output::{Out, Style, Table, data_text, hex, iso_time, now_ms, session_hex, time_and_age};

/// `ls PATH` and `ls -R PATH`.
pub(crate) async fn ls(client: &Client, out: &Out, path: &str, recursive: bool) -> CliResult {
    #[derive(Serialize)]
    struct Children<'a> {
        path: &'a str,
        children: Vec<String>,
    }
    #[derive(Serialize)]
    struct Nodes<'a> {
        path: &'a str,
        nodes: Vec<String>,
    }
    if recursive {
        let nodes: Vec<String> = walk(client, path, None).await?.into_iter().map(|n| n.path).collect();
        if out.json {
            return out.json(&Nodes { path, nodes });
        }
        // One write for the whole listing (stdout is line-buffered).
        return out.line(nodes.join("\n"));
    }
    let mut children = client.get_children(path).await.at(path)?;
    children.sort();
    if out.json {
        return out.json(&Children { path, children });
    }
    if children.is_empty() {
        return Ok(());
    }
    out.line(children.join("\n"))
}

/// `tree PATH`: the subtree with ephemeral markers and owners.
pub(crate) async fn tree(client: &Client, out: &Out, path: &str, max_depth: Option<usize>) -> CliResult {
    #[derive(Serialize)]
    struct TreeNode {
        path: String,
        depth: usize,
        #[serde(flatten)]
        stat: StatJson,
    }
    #[derive(Serialize)]
    struct Tree<'a> {
        path: &'a str,
        node_count: usize,
        ephemeral_count: usize,
        nodes: Vec<TreeNode>,
    }
    let nodes = walk(client, path, max_depth).await?;
    let ephemeral_count = nodes.iter().filter(|n| NodeKind::of(&n.stat).owner().is_some()).count();
    if out.json {
        let node_count = nodes.len();
        let nodes = nodes
            .into_iter()
            .map(|n| TreeNode { stat: StatJson::from(&n.stat), path: n.path, depth: n.depth })
            .collect();
        return out.json(&Tree { path, node_count, ephemeral_count, nodes });
    }
    // `last[d]`: whether the ancestor at depth d is the last child of its parent.
    let mut last: Vec<bool> = Vec::new();
    // The whole tree in one write (stdout is line-buffered).
    let mut text = String::new();
    for (i, node) in nodes.iter().enumerate() {
        let is_last = !nodes[i + 1..].iter().take_while(|n| n.depth >= node.depth).any(|n| n.depth == node.depth);
        last.truncate(node.depth);
        last.push(is_last);
        let mut line = String::new();
        if node.depth == 0 {
            line.push_str(&node.path);
        } else {
            for &ancestor_last in last.get(1..node.depth).unwrap_or_default() {
                line.push_str(if ancestor_last { "    " } else { "│   " });
            }
            line.push_str(if is_last { "└── " } else { "├── " });
            line.push_str(node.path.rsplit('/').next().unwrap_or(&node.path));
        }
        let marker = match NodeKind::of(&node.stat) {
            NodeKind::Persistent => String::new(),
            NodeKind::Ephemeral(owner) => out.paint(&format!("[ephemeral {}]", session_hex(owner)), Style::Accent),
        };
        let size = if node.stat.data_length > 0 {
            out.paint(&format!("{} B", node.stat.data_length), Style::Dim)
        } else {
            String::new()
        };
        let extras: Vec<String> = [marker, size].into_iter().filter(|s| !s.is_empty()).collect();
        if !extras.is_empty() {
            line.push_str("  ");
            line.push_str(&extras.join("  "));
        }
        text.push_str(&line);
        text.push('\n');
    }
    text.push_str(&out.paint(&format!("{} nodes, {} ephemeral", nodes.len(), ephemeral_count), Style::Dim));
    out.line(text)
}

/// `get PATH`: the data, raw (a newline is added on a terminal), or as JSON.
pub(crate) async fn get(client: &Client, out: &Out, path: &str) -> CliResult {
    #[derive(Serialize)]
    struct Data<'a> {
        path: &'a str,
        data: Option<String>,
        data_hex: String,
        stat: StatJson,
    }
    let (data, stat) = client.get_data(path).await.at(path)?;
    if out.json {
        return out.json(&Data { path, data: data_text(&data), data_hex: hex(&data), stat: StatJson::from(&stat) });
    }
    let mut stdout = std::io::stdout().lock();
    let tty = stdout.is_terminal();
    let written = stdout.write_all(&data).and_then(|()| {
        if tty && !data.is_empty() && !data.ends_with(b"\n") { stdout.write_all(b"\n") } else { Ok(()) }
    });
    written.and_then(|()| stdout.flush()).map_err(|e| CliError::failed(format!("cannot write output: {e}")))
}

/// `stat PATH`.
pub(crate) async fn stat(client: &Client, out: &Out, path: &str) -> CliResult {
    #[derive(Serialize)]
    struct StatDoc<'a> {
        path: &'a str,
        #[serde(flatten)]
        stat: StatJson,
    }
    let stat = client.exists(path).await.at(path)?.ok_or_else(|| no_node(path))?;
    if out.json {
        return out.json(&StatDoc { path, stat: StatJson::from(&stat) });
    }
    out.fields(&stat_rows(path, &stat))
}

fn stat_rows(path: &str, stat: &Stat) -> Vec<(&'static str, String)> {
    let kind = NodeKind::of(stat);
    let kind_text = match kind {
        NodeKind::Ephemeral(owner) => format!("ephemeral (owner {})", session_hex(owner)),
        NodeKind::Persistent => "persistent".to_owned(),
    };
    vec![
        ("path", path.to_owned()),
        ("kind", kind_text),
        ("czxid", format!("{:#x}", stat.czxid)),
        ("mzxid", format!("{:#x}", stat.mzxid)),
        ("pzxid", format!("{:#x}", stat.pzxid)),
        ("ctime", time_and_age(stat.ctime)),
        ("mtime", time_and_age(stat.mtime)),
        ("version", stat.version.to_string()),
        ("cversion", stat.cversion.to_string()),
        ("aversion", stat.aversion.to_string()),
        ("ephemeral_owner", session_hex(stat.ephemeral_owner)),
        ("data_length", stat.data_length.to_string()),
        ("num_children", stat.num_children.to_string()),
    ]
}

/// `set PATH DATA [--version V]`.
pub(crate) async fn set(client: &Client, out: &Out, path: &str, data: &str, version: Option<i32>) -> CliResult {
    #[derive(Serialize)]
    struct Set<'a> {
        path: &'a str,
        stat: StatJson,
    }
    let data = read_data(data)?;
    let stat = client.set_data(path, data, version).await.at(path)?;
    if out.json {
        return out.json(&Set { path, stat: StatJson::from(&stat) });
    }
    out.line(format!("{path}: version {}", stat.version))
}

/// How `create` makes the node.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CreateFlags {
    /// `--ephemeral`.
    pub(crate) ephemeral: bool,
    /// `--sequential`.
    pub(crate) sequential: bool,
    /// `--container`.
    pub(crate) container: bool,
    /// `--ttl MS`.
    pub(crate) ttl_ms: Option<u64>,
    /// `--parents`.
    pub(crate) parents: bool,
}

impl CreateFlags {
    fn options(self) -> CliResult<CreateOptions> {
        let mode = match (self.ephemeral, self.sequential, self.container, self.ttl_ms) {
            (false, false, false, None) => CreateMode::Persistent,
            (false, true, false, None) => CreateMode::PersistentSequential,
            (true, false, false, None) => CreateMode::Ephemeral,
            (true, true, false, None) => CreateMode::EphemeralSequential,
            (false, false, true, None) => CreateMode::Container,
            (false, false, false, Some(_)) => CreateMode::PersistentWithTtl,
            (false, true, false, Some(_)) => CreateMode::PersistentSequentialWithTtl,
            _ => {
                return Err(CliError::usage(
                    "--container goes alone; --ttl and --ephemeral do not go together (--sequential goes with either)",
                ));
            }
        };
        let options = CreateOptions::new(mode);
        Ok(match self.ttl_ms {
            Some(0) => return Err(CliError::usage("--ttl must be at least 1 ms")),
            Some(ms) => options.with_ttl(Duration::from_millis(ms)),
            None => options,
        })
    }
}

/// `create PATH [DATA] [--ephemeral|--sequential|--container|--ttl MS]`. An ephemeral node
/// lives as long as the session: the command holds it until Ctrl-C.
pub(crate) async fn create(
    client: &Client,
    out: &Out,
    path: &str,
    data: Option<&str>,
    flags: CreateFlags,
) -> CliResult {
    #[derive(Serialize)]
    struct Created<'a> {
        path: &'a str,
        session_id: String,
        stat: StatJson,
    }
    let options = flags.options()?;
    let data = match data {
        Some(d) => read_data(d)?,
        None => Vec::new(),
    };
    if flags.parents {
        // Check the whole path first: no parent is created for a path that cannot exist.
        let checked = if flags.sequential {
            corral_recipes::proto::validate_sequential_path(path)
        } else {
            corral_recipes::proto::validate_path(path)
        };
        checked.map_err(|e| CliError::zk(e.into(), path))?;
        create_parents(client, path).await?;
    }
    // Ready for Ctrl-C before anyone can see the node.
    let interrupt = if flags.ephemeral { Some(interrupted()?) } else { None };
    let (created, stat) = client.create(path, data, options).await.at(path)?;
    let session = client.session_id();
    if out.json {
        out.json(&Created { path: &created, session_id: session_hex(session), stat: StatJson::from(&stat) })?;
    } else {
        out.line(&created)?;
    }
    if let Some(interrupt) = interrupt {
        eprintln!(
            "ephemeral node held by session {}; press Ctrl-C to end the session and delete it",
            session_hex(session)
        );
        wait_for_interrupt(client, interrupt).await?;
    }
    Ok(())
}

/// Creates the missing ancestors of `path` as empty persistent nodes.
async fn create_parents(client: &Client, path: &str) -> CliResult {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let mut parent = String::new();
    for segment in segments.iter().take(segments.len().saturating_sub(1)) {
        parent.push('/');
        parent.push_str(segment);
        match client.create(&parent, Vec::new(), CreateMode::Persistent).await {
            Ok(_) => {}
            Err(e) if e.is_node_exists() => {}
            Err(e) => return Err(e).at(&parent),
        }
    }
    Ok(())
}

/// `delete PATH [-R] [--version V]`.
pub(crate) async fn delete(client: &Client, out: &Out, path: &str, recursive: bool, version: Option<i32>) -> CliResult {
    #[derive(Serialize)]
    struct Deleted<'a> {
        path: &'a str,
        deleted: usize,
    }
    if !recursive {
        client.delete(path, version).await.at(path)?;
        return if out.json { out.json(&Deleted { path, deleted: 1 }) } else { out.line(format!("deleted {path}")) };
    }
    if path == "/" || path == "/zookeeper" || path.starts_with("/zookeeper/") {
        return Err(CliError::usage(format!("refusing to delete {path} recursively")));
    }
    if version.is_some() {
        return Err(CliError::usage("--version cannot be combined with -R"));
    }
    let mut nodes = walk(client, path, None).await?;
    // Deepest first; every node of one depth at once (pipelined).
    nodes.sort_by_key(|n| std::cmp::Reverse(n.depth));
    let mut deleted = 0;
    for level in nodes.chunk_by(|a, b| a.depth == b.depth) {
        let replies: Vec<_> = level.iter().map(|n| (n.path.as_str(), client.delete(&n.path, None))).collect();
        for (node, reply) in replies {
            match reply.await {
                Ok(()) => deleted += 1,
                Err(e) if e.is_no_node() => {}
                Err(e) => {
                    return Err(CliError::zk(e, node)
                        .with_hint(format!("{deleted} nodes were deleted before this error; run the command again")));
                }
            }
        }
    }
    if out.json { out.json(&Deleted { path, deleted }) } else { out.line(format!("deleted {path} ({deleted} nodes)")) }
}

/// `watch PATH [--recursive]`: prints events until Ctrl-C (one JSON line per event with
/// `--json`).
pub(crate) async fn watch(client: &Client, out: &Out, path: &str, recursive: bool) -> CliResult {
    #[derive(Serialize)]
    struct Event<'a> {
        time_ms: i64,
        event: &'static str,
        path: &'a str,
        zxid: Option<i64>,
    }
    let mode = if recursive { AddWatchMode::PersistentRecursive } else { AddWatchMode::Persistent };
    let mut events = client.add_watch(path, mode).await.at(path)?;
    let interrupt = interrupted()?;
    eprintln!(
        "watching {path}{} (Ctrl-C to stop)",
        if recursive { " and everything below it" } else { ", its data and its children" }
    );
    tokio::pin!(interrupt);
    loop {
        tokio::select! {
            () = &mut interrupt => break,
            event = events.next() => {
                let Some(event) = event else { break };
                if event.is_session_end() {
                    return Err(CliError::new(Kind::Connection, format!("the session ended ({:?})", event.state)));
                }
                let name = event_name(event.event_type);
                let time = now_ms();
                if out.json {
                    let zxid = (event.zxid >= 0).then_some(event.zxid);
                    out.json_line(&Event { time_ms: time, event: name, path: &event.path, zxid })?;
                } else {
                    let style = match event.event_type {
                        EventType::NodeCreated => Style::Good,
                        EventType::NodeDeleted => Style::Bad,
                        _ => Style::Warn,
                    };
                    out.line(format!("{}  {}  {}", out.paint(&iso_time(time), Style::Dim), out.paint(&format!("{name:<21}"), style), event.path))?;
                }
            }
        }
    }
    client.close().await;
    Ok(())
}

/// The JSON name of an event type.
fn event_name(event: EventType) -> &'static str {
    match event {
        EventType::NodeCreated => "node_created",
        EventType::NodeDeleted => "node_deleted",
        EventType::NodeDataChanged => "node_data_changed",
        EventType::NodeChildrenChanged => "node_children_changed",
        EventType::PersistentWatchRemoved => "persistent_watch_removed",
        EventType::DataWatchRemoved => "data_watch_removed",
        EventType::ChildWatchRemoved => "child_watch_removed",
        _ => "other",
    }
}

/// `acl PATH`.
pub(crate) async fn acl(client: &Client, out: &Out, path: &str) -> CliResult {
    #[derive(Serialize)]
    struct Entry {
        scheme: String,
        id: String,
        perms: String,
    }
    #[derive(Serialize)]
    struct AclDoc<'a> {
        path: &'a str,
        aversion: i32,
        acl: Vec<Entry>,
    }
    let (acl, stat) = client.get_acl(path).await.at(path)?;
    let entries: Vec<Entry> =
        acl.into_iter().map(|a| Entry { scheme: a.id.scheme, id: a.id.id, perms: perms_text(a.perms) }).collect();
    if out.json {
        return out.json(&AclDoc { path, aversion: stat.aversion, acl: entries });
    }
    let mut table = Table::new(&["SCHEME", "ID", "PERMS"]);
    for e in entries {
        table.row([e.scheme, e.id, e.perms]);
    }
    out.table(&table)
}

/// Permissions as ZooKeeper's CLI prints them: `cdrwa`, a letter per permission held.
pub(crate) fn perms_text(perms: Perms) -> String {
    [(Perms::CREATE, 'c'), (Perms::DELETE, 'd'), (Perms::READ, 'r'), (Perms::WRITE, 'w'), (Perms::ADMIN, 'a')]
        .into_iter()
        .filter(|(p, _)| perms.contains(*p))
        .map(|(_, c)| c)
        .collect()
}

/// A future that resolves on Ctrl-C (SIGINT) or SIGTERM, listening from the moment this returns.
fn interrupted() -> CliResult<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind| signal(kind).map_err(|e| CliError::failed(format!("cannot listen for signals: {e}")));
        let (mut int, mut term) = (listen(SignalKind::interrupt())?, listen(SignalKind::terminate())?);
        Ok(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// Waits for `interrupt`, then closes the session.
async fn wait_for_interrupt(client: &Client, interrupt: impl std::future::Future<Output = ()>) -> CliResult {
    let mut state = client.state();
    tokio::select! {
        () = interrupt => {}
        _ = state.wait_for(|s| s.is_terminal()) => {
            return Err(CliError::new(Kind::Connection, "the session ended; the ephemeral node is gone"));
        }
    }
    client.close().await;
    Ok(())
}

/// Data from the command line; `-` reads standard input.
fn read_data(arg: &str) -> CliResult<Vec<u8>> {
    if arg != "-" {
        return Ok(arg.as_bytes().to_vec());
    }
    let mut data = Vec::new();
    std::io::stdin().read_to_end(&mut data).map_err(|e| CliError::usage(format!("cannot read standard input: {e}")))?;
    Ok(data)
}

/// The error for a missing node.
pub(crate) fn no_node(path: &str) -> CliError {
    CliError::new(Kind::NoNode, format!("{path}: no such node"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perms_like_zookeeper() {
        assert_eq!(perms_text(Perms::ALL), "cdrwa");
        assert_eq!(perms_text(Perms::READ), "r");
        assert_eq!(perms_text(Perms(Perms::READ.0 | Perms::ADMIN.0)), "ra");
    }

    #[test]
    fn create_flags() {
        let f = |ephemeral, sequential, container, ttl_ms| {
            CreateFlags { ephemeral, sequential, container, ttl_ms, parents: false }.options().map(|o| o.mode)
        };
        assert_eq!(f(false, false, false, None).unwrap(), CreateMode::Persistent);
        assert_eq!(f(true, true, false, None).unwrap(), CreateMode::EphemeralSequential);
        assert_eq!(f(false, true, false, Some(5)).unwrap(), CreateMode::PersistentSequentialWithTtl);
        assert!(f(true, false, true, None).is_err());
        assert!(f(true, false, false, Some(5)).is_err());
        assert!(f(false, false, false, Some(0)).is_err());
    }
}
