//! `services`, `queue`, `barrier` and `counter`: the data structures of Curator's recipes, read
//! from their layouts (`locks` and `leader` are in `locks`).

use corral_recipes::Client;
use serde::Serialize;
use serde_json::Value;

use crate::error::{AtPath, CliResult};
use crate::layout::{Counter, Instance, QueueName, READY_NODE, decode_message, sequence};
use crate::locks::read_children;
use crate::nodes::{NodeKind, child_path};
use crate::output::{
    Out, Style, Table, data_preview, data_text, hex, iso_time, now_ms, session_hex, short_duration, time_and_age,
};
use crate::plain::no_node;

/// One service instance, as `--json` prints it.
#[derive(Debug, Serialize)]
struct InstanceRow {
    service: String,
    id: String,
    address: Option<String>,
    port: Option<i64>,
    ssl_port: Option<i64>,
    payload: Value,
    registration_time_ms: Option<i64>,
    /// `DYNAMIC`, `STATIC`, `PERMANENT`, `DYNAMIC_SEQUENTIAL`.
    service_type: Option<String>,
    enabled: bool,
    uri_spec: Value,
    /// The session owning the node (for `DYNAMIC` instances).
    session_id: Option<String>,
    /// The node's path.
    node: String,
    /// Why the node could not be read as an instance.
    error: Option<String>,
}

/// `services BASEPATH [NAME]`: Curator's `{base}/{service}/{id}` with its JSON.
pub(crate) async fn services(client: &Client, out: &Out, base: &str, name: Option<&str>) -> CliResult {
    #[derive(Serialize)]
    struct ServicesDoc<'a> {
        base_path: &'a str,
        services: Vec<String>,
        instances: Vec<InstanceRow>,
    }
    let mut names = match name {
        Some(n) => {
            let path = child_path(base, n);
            client.exists(&path).await.at(&path)?.ok_or_else(|| no_node(&path))?;
            vec![n.to_owned()]
        }
        None => client.get_children(base).await.at(base)?,
    };
    names.sort();
    let mut instances = Vec::new();
    for service in &names {
        let dir = child_path(base, service);
        let mut ids = match client.get_children(&dir).await {
            Err(e) if e.is_no_node() => continue,
            other => other.at(&dir)?,
        };
        ids.sort();
        for (id, data, stat) in read_children(client, &dir, &ids).await? {
            let node = child_path(&dir, &id);
            let session_id = NodeKind::of(&stat).owner().map(session_hex);
            instances.push(match Instance::parse(&data) {
                Ok(i) => InstanceRow {
                    service: i.name.unwrap_or_else(|| service.clone()),
                    id: i.id.unwrap_or(id),
                    address: i.address,
                    port: i.port,
                    ssl_port: i.ssl_port,
                    payload: i.payload,
                    registration_time_ms: i.registration_time_ms,
                    service_type: i.service_type,
                    enabled: i.enabled,
                    uri_spec: i.uri_spec,
                    session_id,
                    node,
                    error: None,
                },
                Err(reason) => InstanceRow {
                    service: service.clone(),
                    id,
                    address: None,
                    port: None,
                    ssl_port: None,
                    payload: Value::Null,
                    registration_time_ms: None,
                    service_type: None,
                    enabled: false,
                    uri_spec: Value::Null,
                    session_id,
                    node,
                    error: Some(format!("not a service instance: {reason}")),
                },
            });
        }
    }
    if out.json {
        return out.json(&ServicesDoc { base_path: base, services: names, instances });
    }
    if names.is_empty() {
        return out.line(format!("no services under {base}"));
    }
    let mut table =
        Table::new(&["SERVICE", "ID", "ADDRESS", "PORT", "SSL", "TYPE", "REGISTERED", "SESSION", "PAYLOAD"]);
    let opt = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    for i in &instances {
        let payload = match (&i.error, &i.payload) {
            (Some(e), _) => e.clone(),
            (None, Value::Null) => "-".to_owned(),
            (None, p) => data_preview(p.to_string().as_bytes(), 40),
        };
        let service_type = match (&i.service_type, i.enabled) {
            (Some(t), true) => t.clone(),
            (Some(t), false) => format!("{t} (disabled)"),
            (None, _) => "-".to_owned(),
        };
        table.styled_row(vec![
            (i.service.clone(), Style::Bold),
            (i.id.clone(), Style::Plain),
            (i.address.clone().unwrap_or_else(|| "-".into()), Style::Plain),
            (opt(i.port), Style::Plain),
            (opt(i.ssl_port), Style::Plain),
            (service_type, if i.enabled { Style::Plain } else { Style::Warn }),
            (i.registration_time_ms.map_or_else(|| "-".into(), time_and_age), Style::Plain),
            (i.session_id.clone().unwrap_or_else(|| "-".into()), Style::Accent),
            (payload, if i.error.is_some() { Style::Bad } else { Style::Dim }),
        ]);
    }
    let empty: Vec<&String> = names
        .iter()
        .filter(|n| !instances.iter().any(|i| &i.service == *n || i.node.starts_with(&child_path(base, n))))
        .collect();
    if !table.is_empty() {
        out.table(&table)?;
    }
    for name in empty {
        out.line(format!("{name}: no instances"))?;
    }
    Ok(())
}

/// One queue item, as `--json` prints it.
#[derive(Debug, Serialize)]
struct QueueItem {
    node: String,
    /// Items in the node's message (Curator packs several in one `put_multi`); 1 for `qn-`.
    items: Option<usize>,
    created_ms: i64,
    priority: Option<i32>,
    due_ms: Option<i64>,
    id: Option<String>,
    data_length: i32,
}

/// One lock-safe item being processed.
#[derive(Debug, Serialize)]
struct InFlight {
    node: String,
    session_id: Option<String>,
    since_ms: i64,
}

/// `queue PATH [--lock-path P]`.
pub(crate) async fn queue(client: &Client, out: &Out, path: &str, lock_path: Option<&str>) -> CliResult {
    #[derive(Serialize)]
    struct QueueDoc<'a> {
        path: &'a str,
        /// `distributed_queue`, `priority_queue`, `delay_queue`, `id_queue`, `simple_queue`, `empty`.
        kind: &'static str,
        /// Item nodes (messages).
        depth: usize,
        /// Items in them.
        items: usize,
        oldest_item_ms: Option<i64>,
        oldest_item_age_ms: Option<i64>,
        /// Delay queue: items already due.
        due: Option<usize>,
        /// Nodes that are not queue items.
        other_nodes: Vec<String>,
        /// Nodes whose data is not a Curator message.
        corrupt: usize,
        lock_path: Option<&'a str>,
        in_flight: Vec<InFlight>,
        /// The items in the order consumers take them.
        queue: Vec<QueueItem>,
    }
    let children = client.get_children(path).await.at(path)?;
    let (mut named, other_nodes): (Vec<_>, Vec<_>) =
        children.into_iter().map(|c| (QueueName::parse(&c), c)).partition(|(n, _)| n.is_some());
    let other_nodes: Vec<String> = other_nodes.into_iter().map(|(_, c)| c).collect();
    // The consumers' order: priority, due time, then the sequence.
    named.sort_by_key(|(n, c)| {
        let rank = match n {
            Some(QueueName::Priority(p)) => i64::from(*p),
            Some(QueueName::Delay(due)) => *due,
            _ => 0,
        };
        (rank, sequence(c).unwrap_or(i64::MAX))
    });
    let kind = named.first().and_then(|(n, _)| n.as_ref()).map_or("empty", QueueName::queue_kind);
    let names: Vec<String> = named.iter().map(|(_, c)| c.clone()).collect();
    let nodes = read_children(client, path, &names).await?;
    let mut corrupt = 0;
    let items: Vec<QueueItem> = nodes
        .iter()
        .map(|(node, data, stat)| {
            let name = QueueName::parse(node);
            let count = match name {
                Some(QueueName::Simple) => Some(1),
                _ => decode_message(data).ok().map(|m| m.len()),
            };
            if count.is_none() {
                corrupt += 1;
            }
            QueueItem {
                node: node.clone(),
                items: count,
                created_ms: stat.ctime,
                priority: if let Some(QueueName::Priority(p)) = name { Some(p) } else { None },
                due_ms: if let Some(QueueName::Delay(d)) = name { Some(d) } else { None },
                id: if let Some(QueueName::Id(id)) = &name { Some(id.clone()) } else { None },
                data_length: stat.data_length,
            }
        })
        .collect();
    let now = now_ms();
    let oldest = items.iter().map(|i| i.created_ms).min();
    let due = (kind == "delay_queue").then(|| items.iter().filter(|i| i.due_ms.is_some_and(|d| d <= now)).count());
    let in_flight = match lock_path {
        None => Vec::new(),
        Some(lock_dir) => {
            let mut locks = client.get_children(lock_dir).await.at(lock_dir)?;
            locks.sort_by_key(|l| sequence(l).unwrap_or(i64::MAX));
            read_children(client, lock_dir, &locks)
                .await?
                .into_iter()
                .map(|(node, _, stat)| InFlight {
                    node,
                    session_id: NodeKind::of(&stat).owner().map(session_hex),
                    since_ms: stat.ctime,
                })
                .collect()
        }
    };
    let doc = QueueDoc {
        path,
        kind,
        depth: items.len(),
        items: items.iter().filter_map(|i| i.items).sum(),
        oldest_item_ms: oldest,
        oldest_item_age_ms: oldest.map(|o| now.saturating_sub(o).max(0)),
        due,
        other_nodes,
        corrupt,
        lock_path,
        in_flight,
        queue: items,
    };
    if out.json {
        return out.json(&doc);
    }
    out.line(format!("{}  {}", out.paint(path, Style::Bold), kind.replace('_', "-")))?;
    let mut fields = vec![
        ("depth", format!("{} nodes, {} items", doc.depth, doc.items)),
        ("oldest item", doc.oldest_item_ms.map_or_else(|| "-".into(), time_and_age)),
    ];
    if let Some(due) = doc.due {
        fields.push(("due now", due.to_string()));
    }
    if let Some(lock_dir) = lock_path {
        fields.push(("in flight", format!("{} (locks under {lock_dir})", doc.in_flight.len())));
    }
    if doc.corrupt > 0 {
        fields.push(("corrupt", format!("{} nodes are not Curator messages", doc.corrupt)));
    }
    if !doc.other_nodes.is_empty() {
        fields.push(("other nodes", doc.other_nodes.join(", ")));
    }
    out.fields(&fields)?;
    if !doc.queue.is_empty() {
        const SHOWN: usize = 10;
        let mut table = Table::new(&["NEXT", "NODE", "ITEMS", "AGE", "KEY", "SIZE"]);
        for (i, item) in doc.queue.iter().take(SHOWN).enumerate() {
            let key = match (&item.priority, &item.due_ms, &item.id) {
                (Some(p), _, _) => format!("priority {p}"),
                (_, Some(d), _) => format!("due {}", iso_time(*d)),
                (_, _, Some(id)) => format!("id {id}"),
                _ => "-".to_owned(),
            };
            table.row([
                i.to_string(),
                item.node.clone(),
                item.items.map_or_else(|| "corrupt".into(), |n| n.to_string()),
                short_duration(now.saturating_sub(item.created_ms)),
                key,
                format!("{} B", item.data_length),
            ]);
        }
        out.table(&table)?;
        if doc.queue.len() > SHOWN {
            out.line(out.paint(&format!("… and {} more", doc.queue.len() - SHOWN), Style::Dim))?;
        }
    }
    if !doc.in_flight.is_empty() {
        let mut table = Table::new(&["IN FLIGHT", "SESSION", "SINCE"]);
        for f in &doc.in_flight {
            table.styled_row(vec![
                (f.node.clone(), Style::Warn),
                (f.session_id.clone().unwrap_or_else(|| "-".into()), Style::Accent),
                (time_and_age(f.since_ms), Style::Plain),
            ]);
        }
        out.table(&table)?;
    }
    Ok(())
}

/// `barrier PATH`: a DistributedBarrier (the node exists while the barrier is set) or a
/// DistributedDoubleBarrier (member nodes and `ready`).
pub(crate) async fn barrier(client: &Client, out: &Out, path: &str) -> CliResult {
    #[derive(Serialize)]
    struct Member {
        node: String,
        session_id: Option<String>,
        since_ms: i64,
    }
    #[derive(Serialize)]
    struct BarrierDoc<'a> {
        path: &'a str,
        /// `barrier` or `double_barrier`.
        kind: &'static str,
        /// barrier: `set` (waiters block) or `removed` (waiters pass); double barrier: `idle`,
        /// `gathering` (members waiting to enter), `entered` (`ready` exists).
        state: &'static str,
        exists: bool,
        ready: bool,
        members: Vec<Member>,
    }
    let Some(_) = client.exists(path).await.at(path)? else {
        let doc =
            BarrierDoc { path, kind: "barrier", state: "removed", exists: false, ready: false, members: Vec::new() };
        return if out.json {
            out.json(&doc)
        } else {
            out.line(format!(
                "{}  barrier removed: waiters pass (the node does not exist)",
                out.paint(path, Style::Bold)
            ))
        };
    };
    let mut children = client.get_children(path).await.at(path)?;
    children.sort();
    let ready = children.iter().any(|c| c == READY_NODE);
    children.retain(|c| c != READY_NODE);
    let members: Vec<Member> = read_children(client, path, &children)
        .await?
        .into_iter()
        .map(|(node, _, stat)| Member {
            node,
            session_id: NodeKind::of(&stat).owner().map(session_hex),
            since_ms: stat.ctime,
        })
        .collect();
    let (kind, state) = match (members.is_empty(), ready) {
        (true, false) => ("barrier", "set"),
        (_, true) => ("double_barrier", "entered"),
        (false, false) => ("double_barrier", "gathering"),
    };
    let doc = BarrierDoc { path, kind, state, exists: true, ready, members };
    if out.json {
        return out.json(&doc);
    }
    let headline = match state {
        "set" => "barrier set: waiters block until the node is deleted".to_owned(),
        "entered" => format!("double barrier entered: {} members inside (`ready` exists)", doc.members.len()),
        _ => format!("double barrier gathering: {} members waiting (no `ready` yet)", doc.members.len()),
    };
    out.line(format!("{}  {headline}", out.paint(path, Style::Bold)))?;
    if !doc.members.is_empty() {
        let mut table = Table::new(&["MEMBER", "SESSION", "SINCE"]);
        for m in &doc.members {
            table.styled_row(vec![
                (m.node.clone(), Style::Plain),
                (m.session_id.clone().unwrap_or_else(|| "-".into()), Style::Accent),
                (time_and_age(m.since_ms), Style::Plain),
            ]);
        }
        out.table(&table)?;
    }
    Ok(())
}

/// `counter PATH`: a SharedCount (4-byte big-endian int) or a DistributedAtomicLong (8-byte
/// big-endian long).
pub(crate) async fn counter(client: &Client, out: &Out, path: &str) -> CliResult {
    #[derive(Serialize)]
    struct CounterDoc<'a> {
        path: &'a str,
        /// `shared_count`, `distributed_atomic_long`, `empty` or `unknown`.
        kind: &'static str,
        value: Option<i64>,
        data_length: usize,
        data_hex: String,
        data: Option<String>,
        version: i32,
        mtime_ms: i64,
    }
    let (data, stat) = client.get_data(path).await.at(path)?;
    let (kind, value) = match Counter::decode(&data) {
        Counter::SharedCount(v) => ("shared_count", Some(i64::from(v))),
        Counter::AtomicLong(v) => ("distributed_atomic_long", Some(v)),
        Counter::Empty => ("empty", None),
        Counter::Unknown => ("unknown", None),
    };
    let doc = CounterDoc {
        path,
        kind,
        value,
        data_length: data.len(),
        data_hex: hex(&data),
        data: data_text(&data),
        version: stat.version,
        mtime_ms: stat.mtime,
    };
    if out.json {
        return out.json(&doc);
    }
    let looks_like = match kind {
        "shared_count" => "looks like a SharedCount (4-byte big-endian int)".to_owned(),
        "distributed_atomic_long" => "looks like a DistributedAtomicLong (8-byte big-endian long)".to_owned(),
        "empty" => "empty: a counter that was never set (reads as 0)".to_owned(),
        _ => format!("not a counter: {} bytes ({})", data.len(), data_preview(&data, 32)),
    };
    out.line(format!("{}  {looks_like}", out.paint(path, Style::Bold)))?;
    let mut fields = Vec::new();
    if let Some(v) = value {
        fields.push(("value", out.paint(&v.to_string(), Style::Good)));
    }
    fields.push(("version", stat.version.to_string()));
    fields.push(("updated", time_and_age(stat.mtime)));
    out.fields(&fields)
}
