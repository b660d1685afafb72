//! Model-based test: random operation sequences run against the embedded server (raw protocol
//! over its in-memory transport) and against a small reference model of ZooKeeper's tree, and
//! every result is compared. The same sequences also run against a real ZooKeeper 3.8 (fewer
//! cases, below a chroot), which is the evidence that the model is ZooKeeper's.
//!
//! The model is written from ZooKeeper's rules (../shared/zookeeper-protocol.md §6–§9), not from
//! the server's code: the order in which create, delete, setData and check report their errors;
//! sequential suffixes from the parent's count of creates; cversion counting child creates and
//! deletes; NoChildrenForEphemerals only under session-owned nodes (not containers or TTL
//! nodes); null data distinct from empty data; atomic multi with OK / failing code /
//! RuntimeInconsistency results and no Stat for creates (as 3.8 answers); one zxid for every
//! write request (failed ones and whole multis included), session creation and close;
//! ephemerals deleted when their session closes; one-shot data and child watches (exists leaves
//! one on a missing node, getData does not) with at most one event per session and trigger.
//!
//! Each Stat is compared field by field: zxids exactly (on the embedded server the model counts
//! them; on a shared real server it takes each write's zxid from the reply and checks that they
//! increase), times by what the model has seen (ctime never changes, mtime moves only with the
//! data, ctime = mtime at creation). Watch events are collected after every step by pinging both
//! sessions.
//!
//! `main.rs` holds the operations, their strategies and the driver that runs them against a
//! server; `reference.rs` the model.

#[path = "../common/mod.rs"]
mod common;
mod reference;

use std::fmt::Debug;

use bytes::Bytes;
use common::{Raw, connect_request};
use corral_proto::records::{
    CheckVersionRequest, Create2Response, CreateRequest, CreateResponse, CreateTtlRequest, DeleteRequest, PathAndWatch,
    SetDataRequest,
};
use corral_proto::{Acl, ErrorCode, KeeperState, MultiOp, MultiRequest, MultiResult, ReplyHeader, Request, Response};
use corral_server::Server;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use self::reference::{Kind, Model, Node};

/// The node every case works under (created before the case starts, and part of the model).
const BASE: &str = "/m";
/// Paths that non-sequential creates aim at; reads and deletes also aim at every node that exists.
const PATHS: [&str; 8] = ["/m", "/m/a", "/m/b", "/m/a/b", "/m/a/c", "/m/b/a", "/m/a/b/c", "/m/x/y"];
const TTL_MS: i64 = 600_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Persistent,
    Ephemeral,
    PersistentSequential,
    EphemeralSequential,
    Container,
    Ttl,
    TtlSequential,
}

impl Mode {
    fn flags(self) -> i32 {
        match self {
            Mode::Persistent => 0,
            Mode::Ephemeral => 1,
            Mode::PersistentSequential => 2,
            Mode::EphemeralSequential => 3,
            Mode::Container => 4,
            Mode::Ttl => 5,
            Mode::TtlSequential => 6,
        }
    }

    fn sequential(self) -> bool {
        matches!(self, Mode::PersistentSequential | Mode::EphemeralSequential | Mode::TtlSequential)
    }

    fn ephemeral(self) -> bool {
        matches!(self, Mode::Ephemeral | Mode::EphemeralSequential)
    }
}

/// The expected version sent with delete, setData and check.
#[derive(Debug, Clone, Copy)]
enum Ver {
    /// −1.
    Any,
    /// The node's version as the model has it (0 if it does not exist).
    Current,
    /// One more than that.
    Wrong,
}

type Data = Option<Vec<u8>>;

#[derive(Debug, Clone)]
enum Sub {
    Create { pick: usize, mode: Mode, data: Data },
    Delete { pick: usize, ver: Ver },
    SetData { pick: usize, data: Data, ver: Ver },
    Check { pick: usize, ver: Ver },
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        s: usize,
        pick: usize,
        mode: Mode,
        data: Data,
    },
    Delete {
        s: usize,
        pick: usize,
        ver: Ver,
    },
    SetData {
        s: usize,
        pick: usize,
        data: Data,
        ver: Ver,
    },
    GetData {
        s: usize,
        pick: usize,
        watch: bool,
    },
    Exists {
        s: usize,
        pick: usize,
        watch: bool,
    },
    GetChildren {
        s: usize,
        pick: usize,
        watch: bool,
    },
    Multi {
        s: usize,
        ops: Vec<Sub>,
    },
    /// Session 1 closes (its ephemerals go) and a new session 1 opens.
    Reconnect,
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![
        3 => Just(Mode::Persistent),
        2 => Just(Mode::Ephemeral),
        2 => Just(Mode::PersistentSequential),
        2 => Just(Mode::EphemeralSequential),
        1 => Just(Mode::Container),
        1 => Just(Mode::Ttl),
        1 => Just(Mode::TtlSequential),
    ]
}

fn ver() -> impl Strategy<Value = Ver> {
    prop_oneof![2 => Just(Ver::Any), 3 => Just(Ver::Current), 1 => Just(Ver::Wrong)]
}

fn data() -> impl Strategy<Value = Data> {
    prop_oneof![1 => Just(None), 4 => prop::collection::vec(any::<u8>(), 0..4).prop_map(Some)]
}

fn sub() -> impl Strategy<Value = Sub> {
    let pick = 0..64usize;
    prop_oneof![
        3 => (pick.clone(), mode(), data()).prop_map(|(pick, mode, data)| Sub::Create { pick, mode, data }),
        2 => (pick.clone(), ver()).prop_map(|(pick, ver)| Sub::Delete { pick, ver }),
        2 => (pick.clone(), data(), ver()).prop_map(|(pick, data, ver)| Sub::SetData { pick, data, ver }),
        1 => (pick, ver()).prop_map(|(pick, ver)| Sub::Check { pick, ver }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let s = prop_oneof![3 => Just(0usize), 2 => Just(1usize)];
    let pick = 0..64usize;
    prop_oneof![
        6 => (s.clone(), pick.clone(), mode(), data())
            .prop_map(|(s, pick, mode, data)| Op::Create { s, pick, mode, data }),
        3 => (s.clone(), pick.clone(), ver()).prop_map(|(s, pick, ver)| Op::Delete { s, pick, ver }),
        3 => (s.clone(), pick.clone(), data(), ver())
            .prop_map(|(s, pick, data, ver)| Op::SetData { s, pick, data, ver }),
        2 => (s.clone(), pick.clone(), any::<bool>()).prop_map(|(s, pick, watch)| Op::GetData { s, pick, watch }),
        2 => (s.clone(), pick.clone(), any::<bool>()).prop_map(|(s, pick, watch)| Op::Exists { s, pick, watch }),
        2 => (s.clone(), pick, any::<bool>()).prop_map(|(s, pick, watch)| Op::GetChildren { s, pick, watch }),
        2 => (s, prop::collection::vec(sub(), 1..5)).prop_map(|(s, ops)| Op::Multi { s, ops }),
        1 => Just(Op::Reconnect),
    ]
}

fn create_request(path: &str, mode: Mode, data: &Data) -> (Request, MultiOp) {
    let create = CreateRequest {
        path: path.to_owned(),
        data: data.as_deref().map(Bytes::copy_from_slice),
        acl: Acl::open_unsafe(),
        flags: mode.flags(),
    };
    match mode {
        Mode::Container => (Request::CreateContainer(create.clone()), MultiOp::CreateContainer(create)),
        Mode::Ttl | Mode::TtlSequential => {
            let ttl = CreateTtlRequest {
                path: create.path,
                data: create.data,
                acl: create.acl,
                flags: create.flags,
                ttl: TTL_MS,
            };
            (Request::CreateTtl(ttl.clone()), MultiOp::CreateTtl(ttl))
        }
        _ => (Request::Create2(create.clone()), MultiOp::Create(create)),
    }
}

fn path_and_watch(path: &str, watch: bool) -> PathAndWatch {
    PathAndWatch { path: path.to_owned(), watch }
}

/// Anything a [`Raw`] connection can run over: the in-memory transport or TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The server a case runs against.
enum Target {
    /// The embedded server, over its in-memory transport. Nothing else writes to it, so zxids
    /// are checked exactly.
    Embedded(Server),
    /// A real ZooKeeper, below a chroot of the case's own (the paths are prefixed on the wire).
    /// Other clients may write to it, so zxids are only checked to increase.
    Real(SocketAddr),
}

impl Target {
    async fn open(&self) -> Raw<Box<dyn Io>> {
        let stream: Box<dyn Io> = match self {
            Target::Embedded(server) => Box::new(server.connect_in_memory()),
            Target::Real(addr) => Box::new(TcpStream::connect(addr).await.expect("connect to ZooKeeper")),
        };
        let request = connect_request(30_000, 0, Bytes::from_static(&[0; 16]));
        let (raw, response) = Raw::handshake_over(stream, request).await;
        assert_ne!(response.timeout, 0, "session refused");
        raw
    }
}

/// One case: the server, a connection per session, and the model.
struct Case {
    target: Target,
    conns: [Raw<Box<dyn Io>>; 2],
    model: Model,
    /// Prepended to every path on the wire (the chroot on a real ZooKeeper).
    prefix: String,
}

impl Case {
    async fn start(target: Target) -> Self {
        let mut conns = [target.open().await, target.open().await];
        let prefix = match target {
            Target::Embedded(_) => String::new(),
            Target::Real(_) => {
                let chroot = corral_test_support::unique_chroot("model");
                conns[0].create(&chroot, b"", 0).await.expect("create the chroot");
                chroot
            }
        };
        let (header, response) = conns[0]
            .request(Request::Create2(CreateRequest {
                path: format!("{prefix}{BASE}"),
                data: None,
                acl: Acl::open_unsafe(),
                flags: 0,
            }))
            .await;
        let Some(Response::Create2(created)) = response else {
            panic!("creating {BASE}: {header:?}");
        };
        let mut model =
            Model { zxid: header.zxid, sessions: [conns[0].session_id, conns[1].session_id], ..Model::default() };
        let s = created.stat;
        model.nodes.insert(
            BASE.to_owned(),
            Node {
                data: None,
                kind: Kind::Persistent,
                owner: 0,
                version: 0,
                creates: 0,
                deletes: 0,
                czxid: s.czxid,
                mzxid: s.mzxid,
                pzxid: s.pzxid,
                ctime: Some(s.ctime),
                mtime: Some(s.mtime),
            },
        );
        Self { target, conns, model, prefix }
    }

    fn exclusive(&self) -> bool {
        matches!(self.target, Target::Embedded(_))
    }

    /// The path on the wire.
    fn wire(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    /// A real ZooKeeper's ContainerManager may delete an emptied container at any time: there,
    /// containers are made as persistent nodes.
    fn mode(&self, mode: Mode) -> Mode {
        match (&self.target, mode) {
            (Target::Real(_), Mode::Container) => Mode::Persistent,
            _ => mode,
        }
    }

    /// Sends `request` on session `s` and checks the reply's zxid: a new one for a write (the
    /// next one on the embedded server), the last one for a read. The model takes it over.
    async fn send(
        &mut self,
        s: usize,
        request: Request,
        write: bool,
    ) -> Result<(ReplyHeader, Option<Response>), TestCaseError> {
        let what = format!("{request:?}");
        let (header, response) = self.conns[s].request(request).await;
        let last = self.model.zxid;
        match (self.exclusive(), write) {
            (true, true) => prop_assert_eq!(header.zxid, last + 1, "{}: the reply's zxid", what),
            (true, false) => prop_assert_eq!(header.zxid, last, "{}: the reply's zxid", what),
            (false, true) => prop_assert!(header.zxid > last, "{}: the reply's zxid {:?}", what, header),
            (false, false) => prop_assert!(header.zxid >= last, "{}: the reply's zxid {:?}", what, header),
        }
        self.model.zxid = header.zxid;
        Ok((header, response))
    }

    async fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let what = format!("{op:?}");
        match op {
            Op::Create { s, pick, mode, data } => {
                let mode = self.mode(*mode);
                let path = self.model.create_target(*pick, mode);
                let (request, _) = create_request(&self.wire(&path), mode, data);
                let (header, response) = self.send(*s, request, true).await?;
                let zxid = self.model.zxid;
                match self.model.create(*s, &path, mode, data, zxid) {
                    Ok(made) => {
                        prop_assert_eq!(header.err, ErrorCode::Ok, "{}", what);
                        let Some(Response::Create2(r)) = response else {
                            return Err(TestCaseError::fail(format!("{what}: {response:?}")));
                        };
                        prop_assert_eq!(&r.path, &self.wire(&made), "{}", what);
                        self.model.check_stat(&what, &made, &r.stat)?;
                    }
                    Err(code) => prop_assert_eq!(header.err, code, "{}", what),
                }
            }
            Op::Delete { s, pick, ver } => {
                let path = self.model.pick(*pick);
                let version = self.model.version_for(&path, *ver);
                let request = Request::Delete(DeleteRequest { path: self.wire(&path), version });
                let (header, _) = self.send(*s, request, true).await?;
                let zxid = self.model.zxid;
                let want = self.model.delete(&path, version, zxid).err().unwrap_or(ErrorCode::Ok);
                prop_assert_eq!(header.err, want, "{}", what);
            }
            Op::SetData { s, pick, data, ver } => {
                let path = self.model.pick(*pick);
                let version = self.model.version_for(&path, *ver);
                let request = Request::SetData(SetDataRequest {
                    path: self.wire(&path),
                    data: data.as_deref().map(Bytes::copy_from_slice),
                    version,
                });
                let (header, response) = self.send(*s, request, true).await?;
                let zxid = self.model.zxid;
                match self.model.set_data(&path, data, version, zxid) {
                    Ok(()) => {
                        let Some(Response::Stat(stat)) = response else {
                            return Err(TestCaseError::fail(format!("{what}: {header:?} {response:?}")));
                        };
                        self.model.check_stat(&what, &path, &stat)?;
                    }
                    Err(code) => prop_assert_eq!(header.err, code, "{}", what),
                }
            }
            Op::GetData { s, pick, watch } => {
                let path = self.model.pick(*pick);
                let request = Request::GetData(path_and_watch(&self.wire(&path), *watch));
                let (header, response) = self.send(*s, request, false).await?;
                if self.model.nodes.contains_key(&path) {
                    let Some(Response::GetData(r)) = response else {
                        return Err(TestCaseError::fail(format!("{what}: {header:?} {response:?}")));
                    };
                    let want = self.model.nodes[&path].data.clone();
                    prop_assert_eq!(r.data.as_deref(), want.as_deref(), "{}: data (null is not empty)", what);
                    self.model.check_stat(&what, &path, &r.stat)?;
                    if *watch {
                        self.model.data_watches.insert((*s, path));
                    }
                } else {
                    // No watch is left on a missing node by getData.
                    prop_assert_eq!(header.err, ErrorCode::NoNode, "{}", what);
                }
            }
            Op::Exists { s, pick, watch } => {
                let path = self.model.pick(*pick);
                let request = Request::Exists(path_and_watch(&self.wire(&path), *watch));
                let (header, response) = self.send(*s, request, false).await?;
                if self.model.nodes.contains_key(&path) {
                    let Some(Response::Stat(stat)) = response else {
                        return Err(TestCaseError::fail(format!("{what}: {header:?} {response:?}")));
                    };
                    self.model.check_stat(&what, &path, &stat)?;
                } else {
                    prop_assert_eq!(header.err, ErrorCode::NoNode, "{}", what);
                }
                // exists leaves a watch whether or not the node exists.
                if *watch {
                    self.model.data_watches.insert((*s, path));
                }
            }
            Op::GetChildren { s, pick, watch } => {
                let path = self.model.pick(*pick);
                let request = Request::GetChildren2(path_and_watch(&self.wire(&path), *watch));
                let (header, response) = self.send(*s, request, false).await?;
                if self.model.nodes.contains_key(&path) {
                    let Some(Response::Children2(r)) = response else {
                        return Err(TestCaseError::fail(format!("{what}: {header:?} {response:?}")));
                    };
                    let mut got = r.children.clone();
                    got.sort();
                    prop_assert_eq!(got, self.model.children(&path), "{}: children", what);
                    self.model.check_stat(&what, &path, &r.stat)?;
                    if *watch {
                        self.model.child_watches.insert((*s, path));
                    }
                } else {
                    prop_assert_eq!(header.err, ErrorCode::NoNode, "{}", what);
                }
            }
            Op::Multi { s, ops } => self.multi(*s, ops, &what).await?,
            Op::Reconnect => {
                let (header, _) = self.send(1, Request::CloseSession, true).await?;
                prop_assert_eq!(header.err, ErrorCode::Ok, "closeSession");
                self.conns[1].expect_closed().await;
                let zxid = self.model.zxid;
                self.model.end_session(1, zxid);
                self.conns[1] = self.target.open().await;
                self.model.sessions[1] = self.conns[1].session_id;
                if self.exclusive() {
                    // createSession is a transaction too.
                    self.model.zxid += 1;
                }
            }
        }
        self.check_events(&what).await
    }

    /// Plans a multi of session `s` on a copy of the model, as transaction `zxid`: the ops to
    /// send, the expected results, and the model afterwards (if it commits). Later operations
    /// see what earlier ones did; after a failure the rest are only sent.
    fn plan(&self, s: usize, subs: &[Sub], zxid: i64) -> (Vec<MultiOp>, Vec<Result<MultiResult, ErrorCode>>, Model) {
        let mut scratch = self.model.clone();
        let mut request = Vec::new();
        let mut want: Vec<Result<MultiResult, ErrorCode>> = Vec::new();
        for sub in subs {
            let apply = !want.iter().any(Result::is_err);
            let skipped = Err(ErrorCode::RuntimeInconsistency);
            let (op, result) = match sub {
                Sub::Create { pick, mode, data } => {
                    let mode = self.mode(*mode);
                    let path = scratch.create_target(*pick, mode);
                    let (_, op) = create_request(&self.wire(&path), mode, data);
                    // As ZooKeeper 3.8 answers: create and create2 without a Stat, createContainer
                    // and createTTL with the Stat right after the create (times aside).
                    let result = if apply {
                        scratch.create(s, &path, mode, data, zxid).map(|made| match mode {
                            Mode::Container | Mode::Ttl | Mode::TtlSequential => {
                                MultiResult::Create2(Create2Response {
                                    path: self.wire(&made),
                                    stat: scratch.stat(&made),
                                })
                            }
                            _ => MultiResult::Create(CreateResponse { path: self.wire(&made) }),
                        })
                    } else {
                        skipped
                    };
                    (op, result)
                }
                Sub::Delete { pick, ver } => {
                    let path = scratch.pick(*pick);
                    let version = scratch.version_for(&path, *ver);
                    let result = if apply {
                        scratch.delete(&path, version, zxid).map(|()| MultiResult::Delete)
                    } else {
                        skipped
                    };
                    (MultiOp::Delete(DeleteRequest { path: self.wire(&path), version }), result)
                }
                Sub::SetData { pick, data, ver } => {
                    let path = scratch.pick(*pick);
                    let version = scratch.version_for(&path, *ver);
                    // The Stat right after this op (times aside): later ops may change it.
                    let result = if apply {
                        scratch.set_data(&path, data, version, zxid).map(|()| MultiResult::SetData(scratch.stat(&path)))
                    } else {
                        skipped
                    };
                    let op = MultiOp::SetData(SetDataRequest {
                        path: self.wire(&path),
                        data: data.as_deref().map(Bytes::copy_from_slice),
                        version,
                    });
                    (op, result)
                }
                Sub::Check { pick, ver } => {
                    let path = scratch.pick(*pick);
                    let version = scratch.version_for(&path, *ver);
                    let result =
                        if apply { scratch.check(&path, version).map(|()| MultiResult::Check) } else { skipped };
                    (MultiOp::Check(CheckVersionRequest { path: self.wire(&path), version }), result)
                }
            };
            request.push(op);
            want.push(result);
        }
        scratch.zxid = zxid;
        (request, want, scratch)
    }

    async fn multi(&mut self, s: usize, subs: &[Sub], what: &str) -> Result<(), TestCaseError> {
        let (request, _, _) = self.plan(s, subs, self.model.zxid + 1);
        let (header, response) = self.send(s, Request::Multi(MultiRequest { ops: request.clone() }), true).await?;
        // Planned again with the zxid the multi got (the same on the embedded server).
        let (replanned, want, scratch) = self.plan(s, subs, header.zxid);
        prop_assert_eq!(&replanned, &request, "{}: planning is deterministic", what);
        prop_assert_eq!(header.err, ErrorCode::Ok, "{}: a multi's header is OK even when it fails", what);
        let Some(Response::Multi(got)) = response else {
            return Err(TestCaseError::fail(format!("{what}: {response:?}")));
        };
        prop_assert_eq!(got.results.len(), request.len(), "{}: one result per op", what);
        if let Some(failed) = want.iter().position(Result::is_err) {
            let code = want[failed].clone().expect_err("the failure");
            for (i, result) in got.results.iter().enumerate() {
                let expected = match i.cmp(&failed) {
                    std::cmp::Ordering::Less => ErrorCode::Ok,
                    std::cmp::Ordering::Equal => code,
                    std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
                };
                prop_assert_eq!(result, &MultiResult::Error(expected), "{}: result {}", what, i);
            }
            // Nothing applied and no watch fired: the model stays as it was.
            return Ok(());
        }
        let mut mtimes = Vec::new();
        for (i, (got, want)) in got.results.iter().zip(want).enumerate() {
            match (got, want.expect("no failure")) {
                (MultiResult::SetData(stat), MultiResult::SetData(mut expected)) => {
                    let MultiOp::SetData(r) = &request[i] else { unreachable!("planned above") };
                    expected.ctime = stat.ctime;
                    expected.mtime = stat.mtime;
                    prop_assert_eq!(stat, &expected, "{}: result {} ({})", what, i, r.path);
                    mtimes.push((r.path[self.prefix.len()..].to_owned(), stat.ctime, stat.mtime));
                }
                (MultiResult::Create2(got), MultiResult::Create2(mut expected)) => {
                    expected.stat.ctime = got.stat.ctime;
                    expected.stat.mtime = got.stat.mtime;
                    prop_assert_eq!(got, &expected, "{}: result {}", what, i);
                    prop_assert_eq!(got.stat.ctime, got.stat.mtime, "{}: result {}", what, i);
                    mtimes.push((got.path[self.prefix.len()..].to_owned(), got.stat.ctime, got.stat.mtime));
                }
                (got, expected) => prop_assert_eq!(got, &expected, "{}: result {}", what, i),
            }
        }
        self.model = scratch;
        for (path, ctime, mtime) in mtimes {
            if let Some(node) = self.model.nodes.get_mut(&path) {
                prop_assert_eq!(*node.ctime.get_or_insert(ctime), ctime, "{}: ctime of {}", what, path);
                node.mtime = Some(mtime);
            }
        }
        Ok(())
    }

    /// Pings both sessions (so every notification sent so far has arrived) and compares the
    /// events each got with the model's.
    async fn check_events(&mut self, what: &str) -> Result<(), TestCaseError> {
        for s in 0..2 {
            self.conns[s].sync_events().await;
            let mut got = Vec::new();
            for e in self.conns[s].events.drain(..) {
                prop_assert_eq!(e.state, KeeperState::SyncConnected);
                let Some(path) = e.path.strip_prefix(&self.prefix) else {
                    return Err(TestCaseError::fail(format!("{what}: an event outside the chroot: {e:?}")));
                };
                got.push((e.event_type, path.to_owned()));
            }
            let mut want = std::mem::take(&mut self.model.pending[s]);
            if what == "Reconnect" {
                // A closing session's ephemerals go in no particular order.
                want.sort_by(|a, b| (a.0.code(), &a.1).cmp(&(b.0.code(), &b.1)));
                got.sort_by(|a, b| (a.0.code(), &a.1).cmp(&(b.0.code(), &b.1)));
            }
            prop_assert_eq!(got, want, "{}: events of session {}", what, s);
        }
        Ok(())
    }
}

async fn run(target: Target, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut case = Case::start(target).await;
    for (i, op) in ops.iter().enumerate() {
        case.step(op).await.map_err(|e| TestCaseError::fail(format!("step {i}: {e}")))?;
    }
    // Finally, every node the model has, with its data and Stat.
    let paths: Vec<String> = case.model.nodes.keys().cloned().collect();
    for path in paths {
        let request = Request::GetData(path_and_watch(&case.wire(&path), false));
        let (header, response) = case.send(0, request, false).await?;
        let Some(Response::GetData(r)) = response else {
            return Err(TestCaseError::fail(format!("final getData {path}: {header:?}")));
        };
        let want = case.model.nodes[&path].data.clone();
        prop_assert_eq!(r.data.as_deref(), want.as_deref(), "final data of {}", path);
        case.model.check_stat("final", &path, &r.stat)?;
    }
    // Dropping an embedded server stops it at once (shutdown() would linger for the clients).
    drop(case);
    Ok(())
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config { cases, failure_persistence: None, max_shrink_iters: 4096, ..Config::default() })
}

#[test]
fn embedded_server_matches_the_model() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runner(128)
        .run(&prop::collection::vec(op(), 30..60), |ops| {
            runtime.block_on(async {
                let server = Server::start().await.expect("start");
                run(Target::Embedded(server), ops).await
            })
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The same model against a real ZooKeeper: evidence that the model is ZooKeeper's.
#[test]
fn zookeeper_matches_the_model() {
    let Some(zk) = corral_test_support::zookeeper() else { return };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runner(32)
        .run(&prop::collection::vec(op(), 30..60), |ops| runtime.block_on(run(Target::Real(zk.addr()), ops)))
        .unwrap_or_else(|e| panic!("{e}"));
}
