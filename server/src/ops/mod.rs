//! One file per family of operations, like mini-redis's one file per command. Each handler
//! takes the decoded request and a [`Ctx`] (the locked state, the connection and its session)
//! and returns the [`Reply`] to queue.

use std::sync::Arc;

use corral_proto::{ErrorCode, Id, OpCode, Request, Response};

use crate::config::Config;
use crate::state::{ConnId, Origin, State};

mod create;
mod delete;
mod multi;
mod read;
mod session;
mod set;
mod watches;

/// Everything a handler may use: the locked state and who is asking.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub(crate) state: &'a mut State,
    pub(crate) config: &'a Config,
    pub(crate) conn: ConnId,
    pub(crate) session: i64,
    /// The connection's identities (shared, so the state can be borrowed mutably alongside).
    pub(crate) auth: Arc<Vec<Id>>,
    /// Wall-clock ms, for ctime/mtime.
    pub(crate) wall: i64,
    /// The request's xid.
    pub(crate) xid: i32,
}

impl Ctx<'_> {
    /// Who the request's transaction is for, as the log names it.
    pub(crate) fn origin(&self) -> Origin {
        Origin { session: self.session, xid: self.xid }
    }
}

/// What to send back, and whether to close the connection afterwards.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) err: ErrorCode,
    pub(crate) zxid: i64,
    pub(crate) body: Option<Response>,
    pub(crate) close: bool,
}

impl Reply {
    /// A successful reply.
    pub(crate) fn ok(zxid: i64, body: Response) -> Self {
        Self { err: ErrorCode::Ok, zxid, body: Some(body), close: false }
    }

    /// A header-only reply with `err`.
    pub(crate) fn err(zxid: i64, err: ErrorCode) -> Self {
        Self { err, zxid, body: None, close: false }
    }

    /// A reply from a result.
    pub(crate) fn from_result(zxid: i64, result: Result<Response, ErrorCode>) -> Self {
        match result {
            Ok(body) => Self::ok(zxid, body),
            Err(code) => Self::err(zxid, code),
        }
    }

    /// The same reply, then close the connection.
    pub(crate) fn then_close(mut self) -> Self {
        self.close = true;
        self
    }
}

/// Handles one decoded request.
pub(crate) fn dispatch(ctx: &mut Ctx<'_>, request: Request) -> Reply {
    let last = ctx.state.zxid;
    match request {
        Request::Create(r) => create::create(ctx, OpCode::Create, r, None),
        Request::Create2(r) => create::create(ctx, OpCode::Create2, r, None),
        Request::CreateContainer(r) => create::create(ctx, OpCode::CreateContainer, r, None),
        Request::CreateTtl(r) => {
            let ttl = r.ttl;
            let req = corral_proto::records::CreateRequest { path: r.path, data: r.data, acl: r.acl, flags: r.flags };
            create::create(ctx, OpCode::CreateTtl, req, Some(ttl))
        }
        Request::Delete(r) => delete::delete(ctx, &r),
        Request::DeleteContainer(path) => delete::delete_container(ctx, &path),
        Request::Exists(r) => read::exists(ctx, &r),
        Request::GetData(r) => Reply::from_result(last, read::get_data(ctx, &r).map(Response::GetData)),
        Request::GetChildren(r) => Reply::from_result(last, read::get_children(ctx, &r).map(Response::Children)),
        Request::GetChildren2(r) => read::get_children2(ctx, &r),
        Request::GetAllChildrenNumber(r) => read::get_all_children_number(ctx, &r.path),
        Request::GetEphemerals(r) => read::get_ephemerals(ctx, &r.path),
        Request::SetData(r) => set::set_data(ctx, r),
        Request::GetAcl(r) => set::get_acl(ctx, &r.path),
        Request::SetAcl(r) => set::set_acl(ctx, &r),
        // ZooKeeper 3.8.5+/3.9.3+: check is only valid inside a multi (ZOOKEEPER-2623).
        Request::Check(_) => Reply::err(last, ErrorCode::Unimplemented).then_close(),
        Request::Multi(r) => multi::multi(ctx, r),
        Request::MultiRead(r) => multi::multi_read(ctx, &r),
        Request::SetWatches(r) => watches::set_watches(
            ctx,
            r.relative_zxid,
            [&r.data_watches, &r.exist_watches, &r.child_watches, &Vec::new(), &Vec::new()],
        ),
        Request::SetWatches2(r) => watches::set_watches(
            ctx,
            r.relative_zxid,
            [
                &r.data_watches,
                &r.exist_watches,
                &r.child_watches,
                &r.persistent_watches,
                &r.persistent_recursive_watches,
            ],
        ),
        Request::AddWatch(r) => watches::add_watch(ctx, &r),
        Request::CheckWatches(r) => watches::check_watches(ctx, &r, false),
        Request::RemoveWatches(r) => watches::check_watches(ctx, &r, true),
        Request::Sync(r) => Reply::ok(last, Response::Sync(r)),
        // Answered by the connection before dispatch (conn.rs); kept for completeness.
        Request::Ping => Reply::err(last, ErrorCode::Ok),
        Request::Auth(r) => session::auth(ctx, &r),
        Request::WhoAmI => session::who_am_i(ctx),
        Request::CloseSession => session::close_session(ctx),
        Request::Reconfig(_) => session::reconfig(ctx),
        Request::Sasl(_) => Reply::err(0, ErrorCode::AuthFailed).then_close(),
        // Request is non-exhaustive: anything newer is answered as an unknown opcode.
        _ => Reply::err(last, ErrorCode::Unimplemented).then_close(),
    }
}

/// Whether `op` is something a client may send (the rest is answered Unimplemented, then the
/// connection is closed).
pub(crate) fn is_client_op(op: OpCode) -> bool {
    !matches!(op, OpCode::Notification | OpCode::CreateSession | OpCode::Error | OpCode::Unknown(_))
}

/// Whether this server answers `op` as an unknown opcode although it knows it: the opcodes
/// ZooKeeper 3.5 lacks, with [`crate::ServerBuilder::persistent_watches`] off.
pub(crate) fn is_refused(op: OpCode, config: &Config) -> bool {
    watches::is_refused(op, config)
}

/// Whether a read-only server refuses `op` with NotReadOnly: the opcodes ZooKeeper's
/// `ReadOnlyRequestProcessor` refuses — every write, multi (even one of checks only), check
/// and sync.
pub(crate) fn is_write(op: OpCode) -> bool {
    matches!(
        op,
        OpCode::Create
            | OpCode::Create2
            | OpCode::CreateTtl
            | OpCode::CreateContainer
            | OpCode::Delete
            | OpCode::DeleteContainer
            | OpCode::SetData
            | OpCode::SetAcl
            | OpCode::Reconfig
            | OpCode::Multi
            | OpCode::Check
            | OpCode::Sync
    )
}

/// ZooKeeper's four-letter name of an operation, as `cons` shows it in `lop=`.
pub(crate) fn short_name(op: OpCode) -> &'static str {
    match op {
        OpCode::Create | OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => "CREA",
        OpCode::Delete | OpCode::DeleteContainer => "DELE",
        OpCode::Exists => "EXIS",
        OpCode::GetData => "GETD",
        OpCode::SetData => "SETD",
        OpCode::GetAcl => "GETA",
        OpCode::SetAcl => "SETA",
        OpCode::GetChildren => "GETC",
        OpCode::GetChildren2 => "GETC",
        OpCode::Sync => "SYNC",
        OpCode::Ping => "PING",
        OpCode::Check => "CHEC",
        OpCode::Multi => "MULT",
        OpCode::MultiRead => "MLTR",
        OpCode::Reconfig => "RECO",
        OpCode::CheckWatches => "CHKW",
        OpCode::RemoveWatches => "REMW",
        OpCode::Auth => "AUTH",
        OpCode::SetWatches | OpCode::SetWatches2 => "SETW",
        OpCode::Sasl => "SASL",
        OpCode::GetEphemerals => "GETE",
        OpCode::GetAllChildrenNumber => "GACN",
        OpCode::AddWatch => "ADDW",
        OpCode::WhoAmI => "HOMI",
        OpCode::CloseSession => "CLOS",
        _ => "NA",
    }
}
