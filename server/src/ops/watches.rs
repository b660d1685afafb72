//! setWatches (101), setWatches2 (105), addWatch (106), checkWatches (17) and
//! removeWatches (18).

use corral_proto::records::{AddWatchRequest, ErrorResponse, WatchesRequest};
use corral_proto::{AddWatchMode, ErrorCode, EventType, OpCode, Response, WatcherType};

use super::{Ctx, Reply};
use crate::config::Config;
use crate::state::encode_notification;
use crate::watch::WatchKind;

/// setWatches / setWatches2: restores a reconnecting client's watches, firing at once what it
/// missed since `relative_zxid` (zookeeper-protocol.md §8.5). The lists are, in order: data,
/// exist, child, persistent, persistent-recursive.
pub(super) fn set_watches(ctx: &mut Ctx<'_>, relative_zxid: i64, lists: [&Vec<String>; 5]) -> Reply {
    let [data, exist, child, persistent, recursive] = lists;
    let conn = ctx.conn;
    let mut now = Vec::new();
    for path in data {
        match ctx.state.tree.get(path) {
            None => now.push((EventType::NodeDeleted, path)),
            Some(node) if node.mzxid > relative_zxid => now.push((EventType::NodeDataChanged, path)),
            Some(_) => ctx.state.watches.add(path, conn, WatchKind::Data),
        }
    }
    for path in exist {
        match ctx.state.tree.get(path) {
            Some(_) => now.push((EventType::NodeCreated, path)),
            None => ctx.state.watches.add(path, conn, WatchKind::Data),
        }
    }
    for path in child {
        match ctx.state.tree.get(path) {
            None => now.push((EventType::NodeDeleted, path)),
            Some(node) if node.pzxid > relative_zxid => now.push((EventType::NodeChildrenChanged, path)),
            Some(_) => ctx.state.watches.add(path, conn, WatchKind::Child),
        }
    }
    for path in persistent {
        ctx.state.watches.add(path, conn, WatchKind::Persistent);
    }
    for path in recursive {
        ctx.state.watches.add(path, conn, WatchKind::PersistentRecursive);
    }
    for (event, path) in now {
        ctx.state.send(conn, encode_notification(event, path));
    }
    Reply::err(ctx.state.zxid, ErrorCode::Ok)
}

/// addWatch: a persistent or persistent-recursive watch. The reply body is a 4-byte
/// ErrorResponse holding 0, as ZooKeeper sends it.
pub(super) fn add_watch(ctx: &mut Ctx<'_>, req: &AddWatchRequest) -> Reply {
    let last = ctx.state.zxid;
    let kind = match req.mode {
        AddWatchMode::Persistent => WatchKind::Persistent,
        AddWatchMode::PersistentRecursive => WatchKind::PersistentRecursive,
        _ => return Reply::err(last, ErrorCode::BadArguments),
    };
    ctx.state.watches.add(&req.path, ctx.conn, kind);
    Reply::ok(last, Response::AddWatch(ErrorResponse { err: ErrorCode::Ok }))
}

/// Whether `op` is one of the persistent-watch opcodes (addWatch, setWatches2) that ZooKeeper
/// 3.5 does not know, and the server is told to answer as 3.5 does
/// ([`crate::ServerBuilder::persistent_watches`]): then the connection answers it as an unknown
/// opcode (Unimplemented, then close), before its body is read.
pub(super) fn is_refused(op: OpCode, config: &Config) -> bool {
    !config.persistent_watches && matches!(op, OpCode::AddWatch | OpCode::SetWatches2)
}

/// checkWatches (`remove == false`) and removeWatches: NoWatcher if there is no such watch.
///
/// Without persistent watches, the persistent watcher types are a MarshallingError, as in
/// ZooKeeper 3.5, whose `WatcherType.fromInt` throws on them (and its final processor turns
/// any such exception into MarshallingError).
pub(super) fn check_watches(ctx: &mut Ctx<'_>, req: &WatchesRequest, remove: bool) -> Reply {
    let last = ctx.state.zxid;
    if matches!(req.watcher_type, WatcherType::Unknown(_)) {
        return Reply::err(last, ErrorCode::BadArguments);
    }
    if !ctx.config.persistent_watches
        && matches!(req.watcher_type, WatcherType::Persistent | WatcherType::PersistentRecursive)
    {
        return Reply::err(last, ErrorCode::MarshallingError);
    }
    let found = if remove {
        ctx.state.watches.remove(&req.path, ctx.conn, req.watcher_type)
    } else {
        ctx.state.watches.contains(&req.path, ctx.conn, req.watcher_type)
    };
    if found { Reply::ok(last, Response::Empty) } else { Reply::err(last, ErrorCode::NoWatcher) }
}
