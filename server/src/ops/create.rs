//! create (1), create2 (15), createContainer (19) and createTTL (21).

use corral_proto::records::{Create2Response, CreateRequest, CreateResponse};
use corral_proto::{OpCode, Response};

use super::{Ctx, Reply};
use crate::acl::Authz;
use crate::txn::CreateSpec;

/// Creates a node; the reply carries the path (create) or the path and stat (the others).
pub(super) fn create(ctx: &mut Ctx<'_>, op: OpCode, req: CreateRequest, ttl: Option<i64>) -> Reply {
    let authz = Authz::new(&ctx.auth);
    let session = ctx.session;
    let spec = CreateSpec { path: &req.path, data: req.data, acl: &req.acl, flags: req.flags, ttl };
    let origin = ctx.origin();
    let (zxid, result) =
        ctx.state.write(ctx.wall, ctx.config.extended_types, origin, |txn| txn.create(spec, &authz, session));
    Reply::from_result(
        zxid,
        result.map(|(path, stat)| match op {
            OpCode::Create => Response::Create(CreateResponse { path }),
            _ => Response::Create2(Create2Response { path, stat }),
        }),
    )
}
