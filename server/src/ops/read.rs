//! The reads: exists (3), getData (4), getChildren (8), getChildren2 (12),
//! getAllChildrenNumber (104) and getEphemerals (103).
//!
//! Reads are not fully validated on the server (a bad path is simply not found), as in
//! ZooKeeper. A watch is left only once the read has passed its checks, except that exists
//! leaves one on a missing node (that is how NodeCreated is delivered).

use corral_proto::records::{
    ChildrenResponse, GetAllChildrenNumberResponse, GetChildren2Response, GetDataResponse, PathAndWatch,
};
use corral_proto::{ErrorCode, Perms, Response};

use super::{Ctx, Reply};
use crate::acl::Authz;
use crate::watch::WatchKind;

/// exists: the stat, or NoNode (with a watch left either way when asked).
pub(super) fn exists(ctx: &mut Ctx<'_>, req: &PathAndWatch) -> Reply {
    let last = ctx.state.zxid;
    if req.path.contains('\0') {
        return Reply::err(last, ErrorCode::BadArguments);
    }
    let stat = match ctx.state.tree.get(&req.path) {
        Some(node) => {
            if let Err(code) = Authz::new(&ctx.auth).check(&node.acl, Perms::READ) {
                return Reply::err(last, code);
            }
            Some(node.stat())
        }
        None => None,
    };
    if req.watch {
        ctx.state.watches.add(&req.path, ctx.conn, WatchKind::Data);
    }
    match stat {
        Some(stat) => Reply::ok(last, Response::Stat(stat)),
        None => Reply::err(last, ErrorCode::NoNode),
    }
}

/// getData, also used inside multiRead.
pub(super) fn get_data(ctx: &mut Ctx<'_>, req: &PathAndWatch) -> Result<GetDataResponse, ErrorCode> {
    let node = ctx.state.tree.get(&req.path).ok_or(ErrorCode::NoNode)?;
    Authz::new(&ctx.auth).check(&node.acl, Perms::READ)?;
    let response = GetDataResponse { data: node.data.clone(), stat: node.stat() };
    if req.watch {
        ctx.state.watches.add(&req.path, ctx.conn, WatchKind::Data);
    }
    Ok(response)
}

/// getChildren, also used inside multiRead.
pub(super) fn get_children(ctx: &mut Ctx<'_>, req: &PathAndWatch) -> Result<ChildrenResponse, ErrorCode> {
    get_children_and_stat(ctx, req).map(|(children, _)| ChildrenResponse { children })
}

fn get_children_and_stat(
    ctx: &mut Ctx<'_>,
    req: &PathAndWatch,
) -> Result<(Vec<String>, corral_proto::Stat), ErrorCode> {
    let node = ctx.state.tree.get(&req.path).ok_or(ErrorCode::NoNode)?;
    Authz::new(&ctx.auth).check(&node.acl, Perms::READ)?;
    let result = (node.children.iter().cloned().collect(), node.stat());
    if req.watch {
        ctx.state.watches.add(&req.path, ctx.conn, WatchKind::Child);
    }
    Ok(result)
}

/// getChildren2: the children and the parent's stat.
pub(super) fn get_children2(ctx: &mut Ctx<'_>, req: &PathAndWatch) -> Reply {
    let last = ctx.state.zxid;
    Reply::from_result(
        last,
        get_children_and_stat(ctx, req)
            .map(|(children, stat)| Response::Children2(GetChildren2Response { children, stat })),
    )
}

/// getAllChildrenNumber: the number of descendants, the node itself excluded.
pub(super) fn get_all_children_number(ctx: &mut Ctx<'_>, path: &str) -> Reply {
    let last = ctx.state.zxid;
    let result = ctx.state.tree.get(path).ok_or(ErrorCode::NoNode).and_then(|node| {
        Authz::new(&ctx.auth).check(&node.acl, Perms::READ)?;
        let total_number = i32::try_from(ctx.state.tree.descendant_count(path)).unwrap_or(i32::MAX);
        Ok(Response::AllChildrenNumber(GetAllChildrenNumberResponse { total_number }))
    });
    Reply::from_result(last, result)
}

/// getEphemerals: the calling session's ephemerals whose path starts with the prefix (all of
/// them for an empty prefix or `/`).
pub(super) fn get_ephemerals(ctx: &mut Ctx<'_>, prefix: &str) -> Reply {
    let all = ctx.state.tree.ephemerals_of(ctx.session);
    let trimmed = prefix.trim();
    let children = if trimmed.is_empty() || trimmed == "/" {
        all
    } else {
        all.into_iter().filter(|p| p.starts_with(prefix)).collect()
    };
    Reply::ok(ctx.state.zxid, Response::Children(ChildrenResponse { children }))
}
