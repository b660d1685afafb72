//! setData (5), getACL (6) and setACL (7).

use corral_proto::records::{GetAclResponse, SetAclRequest, SetDataRequest};
use corral_proto::{ErrorCode, Perms, Response};

use super::{Ctx, Reply};
use crate::acl::{self, Authz};

/// setData: the new stat.
pub(super) fn set_data(ctx: &mut Ctx<'_>, req: SetDataRequest) -> Reply {
    let authz = Authz::new(&ctx.auth);
    let origin = ctx.origin();
    let (zxid, result) = ctx.state.write(ctx.wall, ctx.config.extended_types, origin, |txn| {
        txn.set_data(&req.path, req.data, req.version, &authz)
    });
    Reply::from_result(zxid, result.map(Response::Stat))
}

/// setACL: the new stat. The version is compared with the ACL version.
pub(super) fn set_acl(ctx: &mut Ctx<'_>, req: &SetAclRequest) -> Reply {
    let authz = Authz::new(&ctx.auth);
    let origin = ctx.origin();
    let (zxid, result) = ctx.state.write(ctx.wall, ctx.config.extended_types, origin, |txn| {
        txn.set_acl(&req.path, &req.acl, req.version, &authz)
    });
    Reply::from_result(zxid, result.map(Response::Stat))
}

/// getACL: needs READ or ADMIN; without ADMIN, digest ids are masked as `user:x`.
pub(super) fn get_acl(ctx: &mut Ctx<'_>, path: &str) -> Reply {
    let last = ctx.state.zxid;
    let Some(node) = ctx.state.tree.get(path) else {
        return Reply::err(last, ErrorCode::NoNode);
    };
    let authz = Authz::new(&ctx.auth);
    let acl = if authz.allows(&node.acl, Perms::ADMIN) {
        node.acl.as_ref().clone()
    } else if authz.allows(&node.acl, Perms::READ) {
        acl::mask_digests(&node.acl)
    } else {
        return Reply::err(last, ErrorCode::NoAuth);
    };
    Reply::ok(last, Response::GetAcl(GetAclResponse { acl, stat: node.stat() }))
}
