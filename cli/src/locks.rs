//! `locks` and `leader`: who holds, who waits and who leads, in Curator's order.
//!
//! - Mutex (and LeaderSelector): `_c_<uuid>-lock-<seq>` children; the first in Curator's order
//!   holds, each waiter watches the one before it.
//! - Read-write lock: `__READ__` / `__WRIT__` children in one order; a writer holds at the head,
//!   readers hold while no writer is ahead of them (and readers of the holding writer's session,
//!   the downgrade).
//! - Semaphore (SemaphoreV2): `leases/…-lease-<seq>` (one per lease) and `locks/` (a mutex the
//!   acquirers queue on).
//! - LeaderLatch: `…-latch-<seq>`, the participant id in the data; the first leads.
//! - kazoo's `Lock`, `ReadLock` and `Election`: `<hex>__lock__<seq>` and `<hex>__rlock__<seq>`,
//!   ordered by sequence (kazoo never looks at Curator's nodes, nor Curator at kazoo's: a path
//!   holding both is reported, since each side may believe it holds the lock).

use std::collections::HashMap;

use bytes::Bytes;
use corral_recipes::{Client, Stat};
use serde::Serialize;

use crate::connect::Target;
use crate::error::{AtPath, CliResult};
use crate::fourlw::session_addresses;
use crate::layout::{
    KAZOO_LOCK_NAME, KAZOO_READ_LOCK_NAME, LATCH_NAME, LEASE_NAME, LEASES_DIR, LOCK_NAME, LOCKS_DIR, LockFlavor,
    READ_LOCK_NAME, WRITE_LOCK_NAME, protected_uuid, sort_children,
};
use crate::nodes::{NodeKind, child_path};
use crate::output::{Out, Style, Table, data_preview, data_text, session_hex, time_and_age};

/// The children of `dir` read with pipelined getData, in the order given; nodes gone meanwhile
/// are left out.
pub(crate) async fn read_children(
    client: &Client,
    dir: &str,
    names: &[String],
) -> CliResult<Vec<(String, Bytes, Stat)>> {
    let replies: Vec<_> = names.iter().map(|n| (n, client.get_data(&child_path(dir, n)))).collect();
    let mut nodes = Vec::with_capacity(names.len());
    for (name, reply) in replies {
        match reply.await {
            Ok((data, stat)) => nodes.push((name.clone(), data, stat)),
            Err(e) if e.is_no_node() => {}
            Err(e) => return Err(e).at(&child_path(dir, name)),
        }
    }
    Ok(nodes)
}

/// One contender for a lock, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
struct Contender {
    /// 0 for the head of the order.
    position: usize,
    /// `holder`, `waiter`, or `lease` (a semaphore lease when the number of leases is unknown).
    role: &'static str,
    /// `lock`, `read`, `write`, `lease`, or `acquiring` (a semaphore's `locks/` queue).
    lock_type: &'static str,
    /// The node's name.
    node: String,
    /// The node's full path.
    path: String,
    /// The UUID of a protected name (`_c_<uuid>-…`), which the client picked.
    protected_id: Option<String>,
    /// The owning session (`0x…`), for an ephemeral node.
    session_id: Option<String>,
    /// The client's address, from the server's `cons` (when allowed).
    client_address: Option<String>,
    /// When the node was created (held or waiting since), ms since the epoch.
    since_ms: i64,
    /// The node's data as text (Curator writes the client's IP address).
    data: Option<String>,
    /// The node this waiter watches.
    waits_on: Option<String>,
}

impl Contender {
    fn new(dir: &str, position: usize, (node, data, stat): &(String, Bytes, Stat)) -> Self {
        Self {
            position,
            role: "waiter",
            lock_type: "lock",
            node: node.clone(),
            path: child_path(dir, node),
            protected_id: protected_uuid(node).map(str::to_owned),
            session_id: NodeKind::of(stat).owner().map(session_hex),
            client_address: None,
            since_ms: stat.ctime,
            data: data_text(data),
            waits_on: None,
        }
    }
}

/// What `locks` prints as JSON.
#[derive(Debug, Serialize)]
struct LocksDoc<'a> {
    path: &'a str,
    /// `mutex`, `read_write_lock`, `semaphore`, `kazoo_lock`, `kazoo_read_write_lock`, `leader_latch`,
    /// `empty` (no children) or `unknown` (children not named like lock nodes).
    kind: &'static str,
    holders: usize,
    waiters: usize,
    /// For a semaphore: the `--max-leases` given.
    max_leases: Option<usize>,
    /// What looks wrong (Curator and kazoo contenders on one path).
    warnings: Vec<String>,
    contenders: Vec<Contender>,
}

/// `locks PATH [--max-leases N]`.
pub(crate) async fn locks(
    client: &Client,
    target: &Target,
    out: &Out,
    path: &str,
    max_leases: Option<usize>,
) -> CliResult {
    let children = client.get_children(path).await.at(path)?;
    let children_count = children.len();
    let has = |name: &str| children.iter().any(|c| c.contains(name));
    let kazoo = has(KAZOO_LOCK_NAME) || has(KAZOO_READ_LOCK_NAME);
    let curator = has(LOCK_NAME) || has(READ_LOCK_NAME) || has(WRITE_LOCK_NAME) || has(LATCH_NAME);
    let mut warnings = Vec::new();
    if kazoo && curator {
        warnings.push(
            "Curator and kazoo contenders share this path: neither orders the other's nodes, so one of each may \
             believe it holds the lock (shown in Curator's order)"
                .to_owned(),
        );
    }
    let (kind, mut contenders) = if children.iter().any(|c| c == LEASES_DIR || c == LOCKS_DIR) {
        ("semaphore", semaphore(client, path, max_leases).await?)
    } else if has(READ_LOCK_NAME) || has(WRITE_LOCK_NAME) {
        ("read_write_lock", read_write(client, path, children, LockFlavor::Curator).await?)
    } else if kazoo && !curator {
        let kind = if has(KAZOO_READ_LOCK_NAME) { "kazoo_read_write_lock" } else { "kazoo_lock" };
        let mut contenders = read_write(client, path, children, LockFlavor::Kazoo).await?;
        if kind == "kazoo_lock" {
            contenders.iter_mut().filter(|c| c.lock_type == "write").for_each(|c| c.lock_type = "lock");
        }
        (kind, contenders)
    } else if children.is_empty() {
        ("empty", Vec::new())
    } else if has(LOCK_NAME) {
        ("mutex", mutex(client, path, children, LOCK_NAME).await?)
    } else if has(LATCH_NAME) {
        ("leader_latch", mutex(client, path, children, LATCH_NAME).await?)
    } else {
        // Nothing here is named like a lock node.
        ("unknown", Vec::new())
    };
    add_addresses(target, contenders.iter_mut().map(|c| (&c.session_id, &mut c.client_address))).await;
    let holders = contenders.iter().filter(|c| c.role == "holder").count();
    let waiters = contenders.iter().filter(|c| c.role == "waiter").count();
    if out.json {
        return out.json(&LocksDoc { path, kind, holders, waiters, max_leases, warnings, contenders });
    }
    let summary = match (kind, holders) {
        ("empty", _) => "not held, nobody waiting".to_owned(),
        ("unknown", _) => format!("not a lock: none of its {} children is named like a lock node", children_count),
        ("semaphore", _) if max_leases.is_none() => {
            format!(
                "{} leases, {} acquiring (pass --max-leases N to tell holders from waiters)",
                count(&contenders, "lease"),
                waiters
            )
        }
        (_, 0) => format!("not held, {waiters} waiting"),
        _ => format!("held by {holders}, {waiters} waiting"),
    };
    out.line(format!("{}  {}  {summary}", out.paint(path, Style::Bold), kind.replace('_', "-")))?;
    for warning in &warnings {
        out.line(format!("{} {warning}", out.paint("warning:", Style::Warn)))?;
    }
    if contenders.is_empty() {
        return Ok(());
    }
    let mut table = Table::new(&["#", "ROLE", "TYPE", "NODE", "SESSION", "CLIENT", "SINCE", "DATA"]);
    for c in &contenders {
        let role_style = match c.role {
            "holder" => Style::Good,
            "waiter" => Style::Warn,
            _ => Style::Plain,
        };
        table.styled_row(vec![
            (c.position.to_string(), Style::Plain),
            (c.role.to_owned(), role_style),
            (c.lock_type.to_owned(), Style::Plain),
            (c.node.clone(), Style::Plain),
            (c.session_id.clone().unwrap_or_else(|| "-".into()), Style::Accent),
            (c.client_address.clone().unwrap_or_else(|| "-".into()), Style::Plain),
            (time_and_age(c.since_ms), Style::Plain),
            (
                c.data
                    .as_deref()
                    .filter(|d| !d.is_empty())
                    .map_or_else(|| "-".into(), |d| data_preview(d.as_bytes(), 24)),
                Style::Dim,
            ),
        ]);
    }
    out.table(&table)
}

fn count(contenders: &[Contender], role: &str) -> usize {
    contenders.iter().filter(|c| c.role == role).count()
}

/// A mutex's (or selector's, or latch's) contenders in Curator's order: the head holds.
async fn mutex(client: &Client, path: &str, mut children: Vec<String>, name: &str) -> CliResult<Vec<Contender>> {
    sort_children(&mut children, name);
    let nodes = read_children(client, path, &children).await?;
    let mut contenders: Vec<Contender> = nodes.iter().enumerate().map(|(i, n)| Contender::new(path, i, n)).collect();
    for i in 0..contenders.len() {
        if i == 0 {
            contenders[0].role = "holder";
        } else {
            contenders[i].waits_on = Some(contenders[i - 1].node.clone());
        }
    }
    Ok(contenders)
}

/// A read-write lock's contenders in its implementation's order: a writer holds at the head;
/// a reader holds while no writer is ahead of it.
async fn read_write(
    client: &Client,
    path: &str,
    mut children: Vec<String>,
    flavor: LockFlavor,
) -> CliResult<Vec<Contender>> {
    children.sort_by(|a, b| flavor.sort_key(a).cmp(flavor.sort_key(b)));
    let nodes = read_children(client, path, &children).await?;
    let mut contenders: Vec<Contender> = nodes.iter().enumerate().map(|(i, n)| Contender::new(path, i, n)).collect();
    for c in &mut contenders {
        c.lock_type = if c.node.contains(flavor.write_name()) {
            "write"
        } else if c.node.contains(flavor.read_name()) {
            "read"
        } else {
            "other"
        };
    }
    let writers: Vec<usize> =
        contenders.iter().enumerate().filter(|(_, c)| c.lock_type == "write").map(|(i, _)| i).collect();
    let writer_session = writers.first().filter(|&&i| i == 0).and_then(|&i| contenders[i].session_id.clone());
    for i in 0..contenders.len() {
        let (holds, waits_on) = match contenders[i].lock_type {
            // The write lock counts every node before it (maxLeases 1).
            "write" => (i == 0, i.checked_sub(1)),
            "read" => match writers.first() {
                Some(&first) if first < i => {
                    // Curator: a downgrade, the holding writer's session also holds its read lock.
                    let downgrade = flavor == LockFlavor::Curator
                        && writer_session.is_some()
                        && contenders[i].session_id == writer_session;
                    // Curator's reader watches the first writer, kazoo's the last one before it.
                    let watched = match flavor {
                        LockFlavor::Curator => first,
                        LockFlavor::Kazoo => writers.iter().copied().filter(|&w| w < i).max().unwrap_or(first),
                    };
                    (downgrade, Some(watched))
                }
                _ => (true, None),
            },
            _ => (false, None),
        };
        contenders[i].role = if holds { "holder" } else { "waiter" };
        contenders[i].waits_on = if holds { None } else { waits_on.map(|w| contenders[w].node.clone()) };
    }
    Ok(contenders)
}

/// A semaphore's leases (in order; the first `max_leases` hold) and its acquirers queue.
async fn semaphore(client: &Client, path: &str, max_leases: Option<usize>) -> CliResult<Vec<Contender>> {
    let leases_dir = child_path(path, LEASES_DIR);
    let mut leases = children_or_empty(client, &leases_dir).await?;
    sort_children(&mut leases, LEASE_NAME);
    let mut contenders: Vec<Contender> = read_children(client, &leases_dir, &leases)
        .await?
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut c = Contender::new(&leases_dir, i, n);
            c.lock_type = "lease";
            c.role = match max_leases {
                None => "lease",
                Some(max) if i < max => "holder",
                Some(_) => "waiter",
            };
            c
        })
        .collect();
    let locks_dir = child_path(path, LOCKS_DIR);
    let mut acquirers = children_or_empty(client, &locks_dir).await?;
    sort_children(&mut acquirers, LOCK_NAME);
    let offset = contenders.len();
    for (i, node) in read_children(client, &locks_dir, &acquirers).await?.iter().enumerate() {
        let mut c = Contender::new(&locks_dir, offset + i, node);
        c.lock_type = "acquiring";
        contenders.push(c);
    }
    Ok(contenders)
}

async fn children_or_empty(client: &Client, path: &str) -> CliResult<Vec<String>> {
    match client.get_children(path).await {
        Err(e) if e.is_no_node() => Ok(Vec::new()),
        other => other.at(path),
    }
}

/// Fills in client addresses from `cons` (best effort: hosts that do not allow it are skipped).
async fn add_addresses<'a>(target: &Target, rows: impl Iterator<Item = (&'a Option<String>, &'a mut Option<String>)>) {
    let rows: Vec<_> = rows.filter(|(session, _)| session.is_some()).collect();
    if rows.is_empty() {
        return;
    }
    let addresses: HashMap<String, String> = session_addresses(target.hosts(), target.timeout, target.tls.as_ref())
        .await
        .into_iter()
        .map(|(id, a)| (session_hex(id), a))
        .collect();
    for (session, address) in rows {
        if let Some(found) = session.as_ref().and_then(|s| addresses.get(s)) {
            *address = Some(found.clone());
        }
    }
}

/// One participant of an election, as `--json` prints it.
#[derive(Debug, Serialize)]
struct Participant {
    position: usize,
    /// The participant id (the node's data).
    id: String,
    is_leader: bool,
    node: String,
    session_id: Option<String>,
    client_address: Option<String>,
    /// When the node was created (participating since), ms since the epoch.
    since_ms: i64,
}

/// `leader PATH`: a LeaderLatch (`latch-`) or LeaderSelector (`lock-`) election.
pub(crate) async fn leader(client: &Client, target: &Target, out: &Out, path: &str) -> CliResult {
    #[derive(Serialize)]
    struct LeaderDoc<'a> {
        path: &'a str,
        /// `leader_latch`, `leader_selector`, `kazoo_election`, `empty` (no children) or `unknown`
        /// (children not named like participants).
        kind: &'static str,
        leader: Option<String>,
        participants: Vec<Participant>,
    }
    let mut children = client.get_children(path).await.at(path)?;
    let (kind, name) = if children.iter().any(|c| c.contains(LATCH_NAME)) {
        ("leader_latch", LATCH_NAME)
    } else if children.iter().any(|c| c.contains(LOCK_NAME)) {
        ("leader_selector", LOCK_NAME)
    } else if children.iter().any(|c| c.contains(KAZOO_LOCK_NAME)) {
        ("kazoo_election", KAZOO_LOCK_NAME)
    } else {
        // No participant nodes: nothing to read (children named otherwise are not an election).
        let kind = if children.is_empty() { "empty" } else { "unknown" };
        children.clear();
        (kind, LATCH_NAME)
    };
    sort_children(&mut children, name);
    let nodes = read_children(client, path, &children).await?;
    let mut participants: Vec<Participant> = nodes
        .iter()
        .enumerate()
        .map(|(i, (node, data, stat))| Participant {
            position: i,
            id: String::from_utf8_lossy(data).into_owned(),
            is_leader: i == 0,
            node: node.clone(),
            session_id: NodeKind::of(stat).owner().map(session_hex),
            client_address: None,
            since_ms: stat.ctime,
        })
        .collect();
    add_addresses(target, participants.iter_mut().map(|p| (&p.session_id, &mut p.client_address))).await;
    let leader = participants.first().map(|p| p.id.clone());
    if out.json {
        return out.json(&LeaderDoc { path, kind, leader, participants });
    }
    let headline = match participants.first() {
        None if kind == "unknown" => "not an election: no latch-, lock- or __lock__ nodes".to_owned(),
        None => "no participants, no leader".to_owned(),
        Some(p) => format!("leader {:?}, {} participants", p.id, participants.len()),
    };
    out.line(format!("{}  {}  {headline}", out.paint(path, Style::Bold), kind.replace('_', "-")))?;
    if participants.is_empty() {
        return Ok(());
    }
    let mut table = Table::new(&["#", "ROLE", "ID", "NODE", "SESSION", "CLIENT", "SINCE"]);
    for p in &participants {
        let (role, style) = if p.is_leader { ("leader", Style::Good) } else { ("follower", Style::Plain) };
        table.styled_row(vec![
            (p.position.to_string(), Style::Plain),
            (role.to_owned(), style),
            (if p.id.is_empty() { "-".to_owned() } else { p.id.clone() }, Style::Plain),
            (p.node.clone(), Style::Plain),
            (p.session_id.clone().unwrap_or_else(|| "-".into()), Style::Accent),
            (p.client_address.clone().unwrap_or_else(|| "-".into()), Style::Plain),
            (time_and_age(p.since_ms), Style::Plain),
        ]);
    }
    out.table(&table)
}
