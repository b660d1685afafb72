//! Inputs: valid encodings, their mutations, and token soup.

use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use corral_proto::records::{
    AddWatchRequest, AuthPacket, CheckVersionRequest, ChildrenResponse, ClientInfo, Create2Response, CreateRequest,
    CreateResponse, CreateTtlRequest, DeleteRequest, ErrorResponse, GetAclResponse, GetAllChildrenNumberResponse,
    GetChildren2Response, GetDataResponse, MultiHeader, PathAndWatch, PathRequest, ReconfigRequest, SaslToken,
    SetAclRequest, SetDataRequest, SetWatches, SetWatches2, WatchesRequest, WhoAmIResponse,
};
use corral_proto::{
    Acl, ConnectRequest, ConnectResponse, ErrorCode, EventType, Id, Jute, KeeperState, MultiOp, MultiRequest,
    MultiResponse, MultiResult, Perms, ReplyHeader, Request, RequestHeader, Response, Stat, WatcherEvent, encode_frame,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use super::{ALL_OPS, NASTY_LENGTHS};

pub(crate) fn text() -> impl Strategy<Value = String> {
    prop_oneof!["(/[a-z0-9]{1,5}){0,3}", vec(any::<char>(), 0..4).prop_map(|cs| cs.into_iter().collect::<String>()),]
}

pub(crate) fn data() -> impl Strategy<Value = Option<Bytes>> {
    proptest::option::of(vec(any::<u8>(), 0..12).prop_map(Bytes::from))
}

pub(crate) fn raw() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..12).prop_map(Bytes::from)
}

pub(crate) fn acls() -> impl Strategy<Value = Vec<Acl>> {
    vec((any::<i32>(), text(), text()).prop_map(|(p, scheme, id)| Acl::new(Perms(p), Id { scheme, id })), 0..3)
}

pub(crate) fn stat() -> impl Strategy<Value = Stat> {
    (any::<[i64; 6]>(), any::<[i32; 5]>()).prop_map(|(l, i)| Stat {
        czxid: l[0],
        mzxid: l[1],
        ctime: l[2],
        mtime: l[3],
        version: i[0],
        cversion: i[1],
        aversion: i[2],
        ephemeral_owner: l[4],
        data_length: i[3],
        num_children: i[4],
        pzxid: l[5],
    })
}

pub(crate) fn create() -> impl Strategy<Value = CreateRequest> {
    (text(), data(), acls(), any::<i32>()).prop_map(|(path, data, acl, flags)| CreateRequest { path, data, acl, flags })
}

pub(crate) fn create_ttl() -> impl Strategy<Value = CreateTtlRequest> {
    (create(), any::<i64>()).prop_map(|(c, ttl)| CreateTtlRequest {
        path: c.path,
        data: c.data,
        acl: c.acl,
        flags: c.flags,
        ttl,
    })
}

pub(crate) fn path_and_watch() -> impl Strategy<Value = PathAndWatch> {
    (text(), any::<bool>()).prop_map(|(path, watch)| PathAndWatch { path, watch })
}

pub(crate) fn path() -> impl Strategy<Value = PathRequest> {
    text().prop_map(|path| PathRequest { path })
}

pub(crate) fn strings() -> impl Strategy<Value = Vec<String>> {
    vec(text(), 0..3)
}

pub(crate) fn multi_request() -> impl Strategy<Value = MultiRequest> {
    let op = prop_oneof![
        create().prop_map(MultiOp::Create),
        create().prop_map(MultiOp::Create2),
        create().prop_map(MultiOp::CreateContainer),
        create_ttl().prop_map(MultiOp::CreateTtl),
        (text(), any::<i32>()).prop_map(|(path, version)| MultiOp::Delete(DeleteRequest { path, version })),
        (text(), data(), any::<i32>()).prop_map(|(path, data, version)| MultiOp::SetData(SetDataRequest {
            path,
            data,
            version
        })),
        (text(), any::<i32>()).prop_map(|(path, version)| MultiOp::Check(CheckVersionRequest { path, version })),
        path_and_watch().prop_map(MultiOp::GetData),
        path_and_watch().prop_map(MultiOp::GetChildren),
    ];
    vec(op, 0..4).prop_map(|ops| MultiRequest { ops })
}

pub(crate) fn multi_response() -> impl Strategy<Value = MultiResponse> {
    let result = prop_oneof![
        text().prop_map(|path| MultiResult::Create(CreateResponse { path })),
        (text(), stat()).prop_map(|(path, stat)| MultiResult::Create2(Create2Response { path, stat })),
        Just(MultiResult::Delete),
        stat().prop_map(MultiResult::SetData),
        Just(MultiResult::Check),
        (data(), stat()).prop_map(|(data, stat)| MultiResult::GetData(GetDataResponse { data, stat })),
        strings().prop_map(|children| MultiResult::GetChildren(ChildrenResponse { children })),
        any::<i32>().prop_map(|c| MultiResult::Error(ErrorCode::from(c))),
    ];
    vec(result, 0..4).prop_map(|results| MultiResponse { results })
}

pub(crate) fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        create().prop_map(Request::Create),
        create().prop_map(Request::Create2),
        create().prop_map(Request::CreateContainer),
        create_ttl().prop_map(Request::CreateTtl),
        (text(), any::<i32>()).prop_map(|(path, version)| Request::Delete(DeleteRequest { path, version })),
        path_and_watch().prop_map(Request::Exists),
        path_and_watch().prop_map(Request::GetData),
        (text(), data(), any::<i32>()).prop_map(|(path, data, version)| Request::SetData(SetDataRequest {
            path,
            data,
            version
        })),
        path().prop_map(Request::GetAcl),
        (text(), acls(), any::<i32>()).prop_map(|(path, acl, version)| Request::SetAcl(SetAclRequest {
            path,
            acl,
            version
        })),
        path_and_watch().prop_map(Request::GetChildren),
        path().prop_map(Request::Sync),
        Just(Request::Ping),
        path_and_watch().prop_map(Request::GetChildren2),
        (text(), any::<i32>()).prop_map(|(path, version)| Request::Check(CheckVersionRequest { path, version })),
        multi_request().prop_map(Request::Multi),
        (proptest::option::of(text()), proptest::option::of(text()), any::<i64>()).prop_map(|(j, l, id)| {
            Request::Reconfig(ReconfigRequest {
                joining_servers: j,
                leaving_servers: l,
                new_members: None,
                cur_config_id: id,
            })
        }),
        (text(), any::<i32>())
            .prop_map(|(path, t)| Request::CheckWatches(WatchesRequest { path, watcher_type: t.into() })),
        (text(), any::<i32>())
            .prop_map(|(path, t)| Request::RemoveWatches(WatchesRequest { path, watcher_type: t.into() })),
        raw().prop_map(Request::DeleteContainer),
        multi_request().prop_map(Request::MultiRead),
        (any::<i32>(), text(), raw()).prop_map(|(auth_type, scheme, auth)| Request::Auth(AuthPacket {
            auth_type,
            scheme,
            auth
        })),
        (any::<i64>(), strings(), strings()).prop_map(|(z, d, c)| Request::SetWatches(SetWatches {
            relative_zxid: z,
            data_watches: d,
            exist_watches: Vec::new(),
            child_watches: c,
        })),
        raw().prop_map(|token| Request::Sasl(SaslToken { token })),
        path().prop_map(Request::GetEphemerals),
        path().prop_map(Request::GetAllChildrenNumber),
        (any::<i64>(), strings(), strings()).prop_map(|(z, d, p)| Request::SetWatches2(SetWatches2 {
            relative_zxid: z,
            data_watches: d,
            exist_watches: Vec::new(),
            child_watches: Vec::new(),
            persistent_watches: p,
            persistent_recursive_watches: vec!["/r".into()],
        })),
        (text(), any::<i32>()).prop_map(|(path, m)| Request::AddWatch(AddWatchRequest { path, mode: m.into() })),
        Just(Request::WhoAmI),
        Just(Request::CloseSession),
    ]
}

pub(crate) fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        Just(Response::Empty),
        text().prop_map(|path| Response::Create(CreateResponse { path })),
        (text(), stat()).prop_map(|(path, stat)| Response::Create2(Create2Response { path, stat })),
        stat().prop_map(Response::Stat),
        (data(), stat()).prop_map(|(data, stat)| Response::GetData(GetDataResponse { data, stat })),
        (acls(), stat()).prop_map(|(acl, stat)| Response::GetAcl(GetAclResponse { acl, stat })),
        strings().prop_map(|children| Response::Children(ChildrenResponse { children })),
        (strings(), stat()).prop_map(|(children, stat)| Response::Children2(GetChildren2Response { children, stat })),
        path().prop_map(Response::Sync),
        multi_response().prop_map(Response::Multi),
        any::<i32>().prop_map(|n| Response::AllChildrenNumber(GetAllChildrenNumberResponse { total_number: n })),
        vec((text(), text()), 0..3).prop_map(|v| Response::WhoAmI(WhoAmIResponse {
            client_info: v.into_iter().map(|(auth_scheme, user)| ClientInfo { auth_scheme, user }).collect()
        })),
        any::<i32>().prop_map(|c| Response::AddWatch(ErrorResponse { err: c.into() })),
        raw().prop_map(|token| Response::Sasl(SaslToken { token })),
    ]
}

/// A valid encoding of something a peer may send: a body, a handshake record, a header, or a
/// whole frame.
pub(crate) fn valid() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => request().prop_map(|r| {
            let mut b = BytesMut::new();
            r.write_body(&mut b);
            b.to_vec()
        }),
        3 => response().prop_map(|r| {
            let mut b = BytesMut::new();
            r.write_body(&mut b);
            b.to_vec()
        }),
        1 => (any::<i32>(), any::<i64>(), any::<i32>(), any::<i64>(), raw(), proptest::option::of(any::<bool>()))
            .prop_map(|(v, z, t, s, passwd, ro)| ConnectRequest {
                protocol_version: v,
                last_zxid_seen: z,
                timeout: t,
                session_id: s,
                passwd,
                read_only: ro,
            }
            .to_bytes()
            .to_vec()),
        1 => (any::<i32>(), any::<i64>(), raw(), proptest::option::of(any::<bool>()))
            .prop_map(|(t, s, passwd, ro)| ConnectResponse {
                protocol_version: 0,
                timeout: t,
                session_id: s,
                passwd,
                read_only: ro,
            }
            .to_bytes()
            .to_vec()),
        1 => (any::<i64>(), any::<i32>(), text()).prop_map(|(zxid, t, path)| {
            let mut b = BytesMut::new();
            ReplyHeader { xid: -1, zxid, err: ErrorCode::Ok }.write(&mut b);
            WatcherEvent { event_type: EventType::from(t), state: KeeperState::SyncConnected, path }.write(&mut b);
            b.to_vec()
        }),
        2 => (any::<i32>(), request()).prop_map(|(xid, r)| {
            let mut b = BytesMut::new();
            encode_frame(&mut b, |b| {
                RequestHeader { xid, op: r.op_code() }.write(b);
                r.write_body(b);
            });
            b.to_vec()
        }),
        2 => (any::<i32>(), any::<i64>(), response()).prop_map(|(xid, zxid, r)| {
            let mut b = BytesMut::new();
            encode_frame(&mut b, |b| {
                ReplyHeader { xid, zxid, err: ErrorCode::Ok }.write(b);
                r.write_body(b);
            });
            b.to_vec()
        }),
    ]
}

#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    FlipBit(Index, u8),
    Truncate(Index),
    /// Overwrite a 4-byte value that looks like a length or count (0 ≤ v ≤ what follows, or −1).
    SetLength(Index, i32),
    /// Overwrite 4 bytes anywhere.
    SetInt(Index, i32),
    Insert(Index, u8),
    Remove(Index),
}

pub(crate) fn mutation() -> impl Strategy<Value = Mutation> {
    let nasty = prop_oneof![3 => prop::sample::select(NASTY_LENGTHS), 1 => any::<i32>()];
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        2 => any::<Index>().prop_map(Mutation::Truncate),
        4 => (any::<Index>(), nasty.clone()).prop_map(|(i, v)| Mutation::SetLength(i, v)),
        1 => (any::<Index>(), nasty).prop_map(|(i, v)| Mutation::SetInt(i, v)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<Index>().prop_map(Mutation::Remove),
    ]
}

pub(crate) fn put_i32_at(bytes: &mut [u8], at: usize, v: i32) {
    for (dst, src) in bytes[at..].iter_mut().zip(v.to_be_bytes()) {
        *dst = src;
    }
}

pub(crate) fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::FlipBit(i, bit) if !bytes.is_empty() => {
            let at = i.index(bytes.len());
            bytes[at] ^= 1 << bit;
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len() + 1)),
        Mutation::SetLength(i, v) => {
            let lengths: Vec<usize> = (0..bytes.len().saturating_sub(3))
                .filter(|&at| {
                    let n = i32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
                    n == -1 || (n >= 0 && n as usize <= bytes.len() - at - 4)
                })
                .collect();
            if !lengths.is_empty() {
                let at = lengths[i.index(lengths.len())];
                put_i32_at(bytes, at, *v);
            }
        }
        Mutation::SetInt(i, v) if !bytes.is_empty() => {
            let at = i.index(bytes.len());
            put_i32_at(bytes, at, *v);
        }
        Mutation::Insert(i, b) => {
            let at = i.index(bytes.len() + 1);
            bytes.insert(at, *b);
        }
        Mutation::Remove(i) if !bytes.is_empty() => {
            let at = i.index(bytes.len());
            bytes.remove(at);
        }
        _ => {}
    }
}

pub(crate) fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (valid(), vec(mutation(), 1..4)).prop_map(|(mut bytes, ms)| {
        for m in &ms {
            apply(&mut bytes, m);
        }
        bytes
    })
}

/// Plausible pieces glued at random: small counts and lengths, opcodes, multi headers, strings,
/// booleans, nasty lengths and noise. Reaches deep into nested decoders far more often than
/// uniform bytes.
pub(crate) fn soup() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        4 => (-2i32..6).prop_map(|v| v.to_be_bytes().to_vec()),
        2 => prop::sample::select(ALL_OPS).prop_map(|v| v.to_be_bytes().to_vec()),
        3 => (prop::sample::select(ALL_OPS), any::<bool>(), -3i32..1).prop_map(|(op, done, err)| {
            MultiHeader { op: op.into(), done, err }.to_bytes().to_vec()
        }),
        2 => "[a-z/]{0,4}".prop_map(|s| s.to_bytes().to_vec()),
        1 => any::<bool>().prop_map(|b| vec![u8::from(b)]),
        1 => prop::sample::select(NASTY_LENGTHS).prop_map(|v| v.to_be_bytes().to_vec()),
        1 => vec(any::<u8>(), 0..5),
    ];
    vec(token, 0..24).prop_map(|ts| ts.concat())
}
