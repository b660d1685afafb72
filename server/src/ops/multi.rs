//! multi (14), atomic, and multiRead (22), not atomic.

use corral_proto::records::{Create2Response, CreateRequest, CreateResponse};
use corral_proto::{ErrorCode, MultiOp, MultiRequest, MultiResponse, MultiResult, Response};

use super::{Ctx, Reply, read};
use crate::acl::Authz;
use crate::persist::{TxnBody, TxnOp};
use crate::txn::{CreateSpec, Txn};

fn spec(r: &CreateRequest, ttl: Option<i64>) -> CreateSpec<'_> {
    CreateSpec { path: &r.path, data: r.data.clone(), acl: &r.acl, flags: r.flags, ttl }
}

/// multi: every op applies under one zxid, or none does. A failed multi still has header
/// err 0: ops before the failing one report OK, the failing one its code, the rest
/// RuntimeInconsistency. As in ZooKeeper 3.8, create and create2 answer a type-1 result (path
/// only, ZOOKEEPER-4026) while createContainer and createTTL answer a create2 result (path and
/// stat).
pub(super) fn multi(ctx: &mut Ctx<'_>, req: MultiRequest) -> Reply {
    let authz = Authz::new(&ctx.auth);
    let session = ctx.session;
    let count = req.ops.len();
    let zxid = ctx.state.next_zxid();
    let journaling = ctx.state.journaling();
    let mut txn = Txn::new(&mut ctx.state.tree, zxid, ctx.wall, ctx.config.extended_types).recording(journaling);
    let mut results = Vec::with_capacity(count);
    let mut failure = None;
    for (index, op) in req.ops.iter().enumerate() {
        let result = match op {
            MultiOp::Create(r) | MultiOp::Create2(r) => {
                txn.create(spec(r, None), &authz, session).map(|(path, _)| MultiResult::Create(CreateResponse { path }))
            }
            MultiOp::CreateContainer(r) => txn
                .create(spec(r, None), &authz, session)
                .map(|(path, stat)| MultiResult::Create2(Create2Response { path, stat })),
            MultiOp::CreateTtl(r) => {
                let create =
                    CreateSpec { path: &r.path, data: r.data.clone(), acl: &r.acl, flags: r.flags, ttl: Some(r.ttl) };
                txn.create(create, &authz, session)
                    .map(|(path, stat)| MultiResult::Create2(Create2Response { path, stat }))
            }
            MultiOp::Delete(r) => txn.delete(&r.path, r.version, &authz).map(|()| MultiResult::Delete),
            MultiOp::SetData(r) => txn.set_data(&r.path, r.data.clone(), r.version, &authz).map(MultiResult::SetData),
            MultiOp::Check(r) => txn.check(&r.path, r.version, &authz).map(|()| MultiResult::Check),
            MultiOp::GetData(_) | MultiOp::GetChildren(_) => Err(ErrorCode::BadArguments),
        };
        match result {
            Ok(r) => results.push(r),
            Err(code) => {
                failure = Some((index, code));
                break;
            }
        }
    }
    let results = match failure {
        None => {
            let ops = txn.take_ops();
            let changes = txn.commit();
            ctx.state.log(ctx.origin(), zxid, ctx.wall, TxnBody::Multi(ops));
            ctx.state.deliver(&changes);
            results
        }
        Some((failed, code)) => {
            txn.rollback();
            tracing::debug!(failed, %code, "multi rolled back");
            let codes: Vec<ErrorCode> = (0..count)
                .map(|i| match i.cmp(&failed) {
                    std::cmp::Ordering::Less => ErrorCode::Ok,
                    std::cmp::Ordering::Equal => code,
                    std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
                })
                .collect();
            // Logged as ZooKeeper logs a failed multi: one ErrorTxn per operation.
            let failed_ops = codes.iter().map(|c| TxnOp::Error(c.code())).collect();
            ctx.state.log(ctx.origin(), zxid, ctx.wall, TxnBody::Multi(failed_ops));
            codes.into_iter().map(MultiResult::Error).collect()
        }
    };
    Reply::ok(zxid, Response::Multi(MultiResponse { results }))
}

/// multiRead: each getData/getChildren gets its own result or error. A write op in it is
/// refused as a whole with MarshallingError (ZooKeeper fails the request the same way).
pub(super) fn multi_read(ctx: &mut Ctx<'_>, req: &MultiRequest) -> Reply {
    let last = ctx.state.zxid;
    if req.ops.iter().any(|op| !op.is_read()) {
        return Reply::err(last, ErrorCode::MarshallingError);
    }
    let results = req
        .ops
        .iter()
        .map(|op| {
            let result = match op {
                MultiOp::GetData(r) => read::get_data(ctx, r).map(MultiResult::GetData),
                MultiOp::GetChildren(r) => read::get_children(ctx, r).map(MultiResult::GetChildren),
                _ => Err(ErrorCode::MarshallingError),
            };
            result.unwrap_or_else(MultiResult::Error)
        })
        .collect();
    Reply::ok(last, Response::Multi(MultiResponse { results }))
}
