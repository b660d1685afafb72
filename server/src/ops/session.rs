//! auth (100), whoAmI (107), closeSession (−11) and reconfig (16).
//!
//! ping is answered by the connection itself (`conn.rs`: it only touches the session), sync
//! needs no state and is answered in [`super::dispatch`]; getConfig is a getData of
//! `/zookeeper/config`.

use std::sync::Arc;

use corral_proto::records::{AuthPacket, WhoAmIResponse};
use corral_proto::{ErrorCode, Response};

use super::{Ctx, Reply};
use crate::acl;

/// auth: adds the credentials' ids to the connection. Failure answers AuthFailed and closes.
/// Auth replies carry zxid 0, as ZooKeeper's do.
pub(super) fn auth(ctx: &mut Ctx<'_>, packet: &AuthPacket) -> Reply {
    let Some(info) = ctx.state.conns.get_mut(&ctx.conn) else {
        return Reply::err(0, ErrorCode::AuthFailed).then_close();
    };
    match acl::authenticate(&packet.scheme, &packet.auth, &info.peer_ip, ctx.config.super_digest.as_deref()) {
        Some(ids) => {
            for id in ids {
                if !info.auth.contains(&id) {
                    Arc::make_mut(&mut info.auth).push(id);
                }
            }
            Reply::err(0, ErrorCode::Ok)
        }
        None => {
            tracing::info!(scheme = %packet.scheme, "authentication failed");
            Reply::err(0, ErrorCode::AuthFailed).then_close()
        }
    }
}

/// whoAmI: the connection's identities.
pub(super) fn who_am_i(ctx: &mut Ctx<'_>) -> Reply {
    let client_info = acl::who_am_i(&ctx.auth);
    Reply::ok(ctx.state.zxid, Response::WhoAmI(WhoAmIResponse { client_info }))
}

/// closeSession: deletes the session's ephemerals in one transaction, answers, then closes.
pub(super) fn close_session(ctx: &mut Ctx<'_>) -> Reply {
    tracing::info!(session = format_args!("{:#x}", ctx.session), "session closed by client");
    let zxid = ctx.state.end_session(ctx.session, ctx.wall, ctx.config, false);
    Reply::err(zxid, ErrorCode::Ok).then_close()
}

/// reconfig: ReconfigDisabled unless enabled, and then Unimplemented, as on a standalone
/// ZooKeeper. Either way the failed write consumes a zxid.
pub(super) fn reconfig(ctx: &mut Ctx<'_>) -> Reply {
    let code = if ctx.config.reconfig_enabled { ErrorCode::Unimplemented } else { ErrorCode::ReconfigDisabled };
    let zxid = ctx.state.fail(ctx.origin(), ctx.wall, code);
    Reply::err(zxid, code)
}
