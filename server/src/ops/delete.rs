//! delete (2) and deleteContainer (20).

use corral_proto::records::DeleteRequest;
use corral_proto::{ErrorCode, Response};

use super::{Ctx, Reply};
use crate::acl::Authz;

/// Deletes a node.
pub(super) fn delete(ctx: &mut Ctx<'_>, req: &DeleteRequest) -> Reply {
    let authz = Authz::new(&ctx.auth);
    let origin = ctx.origin();
    let (zxid, result) =
        ctx.state.write(ctx.wall, ctx.config.extended_types, origin, |txn| txn.delete(&req.path, req.version, &authz));
    Reply::from_result(zxid, result.map(|()| Response::Empty))
}

/// Deletes an empty container or TTL node (normally sent by the server to itself; a client
/// may send it too, as ZooKeeper allows).
pub(super) fn delete_container(ctx: &mut Ctx<'_>, path: &[u8]) -> Reply {
    let Ok(path) = std::str::from_utf8(path) else {
        let zxid = ctx.state.fail(ctx.origin(), ctx.wall, ErrorCode::BadArguments);
        return Reply::err(zxid, ErrorCode::BadArguments);
    };
    let origin = ctx.origin();
    let (zxid, result) = ctx.state.write(ctx.wall, ctx.config.extended_types, origin, |txn| txn.delete_container(path));
    Reply::from_result(zxid, result.map(|()| Response::Empty))
}
