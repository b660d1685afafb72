//! Nothing from the network can panic a decoder, or make it allocate in proportion to a length
//! it read from the wire.
//!
//! Every decoder (`Request::read_body` for every opcode, unknown ones included,
//! `Response::read_body` likewise, the handshake records, headers, `WatcherEvent`, multi, every
//! record, and `FrameDecoder` on random chunkings) is fed arbitrary bytes, structured "token
//! soup", and valid encodings mutated with bit flips, truncations, insertions and length fields
//! set to huge or negative values. Each must return `Ok` or `Err`; when it returns `Ok` the
//! value must re-encode to exactly as many bytes as were consumed and decode again to itself, and
//! a non-contiguous buffer must give the same answer as a contiguous one. A counting global
//! allocator checks that no decode allocates more than a small multiple of its input.

use std::alloc::System;
use std::fmt::Debug;
use std::hint::black_box;
use std::sync::{Mutex, MutexGuard};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use corral_proto::records::{
    AddWatchRequest, AuthPacket, CheckVersionRequest, ChildrenResponse, ClientInfo, Create2Response, CreateRequest,
    CreateResponse, CreateTtlRequest, DeleteRequest, ErrorResponse, GetAclResponse, GetAllChildrenNumberResponse,
    GetChildren2Response, GetDataResponse, MultiHeader, PathAndWatch, PathRequest, ReconfigRequest, SaslToken,
    SetAclRequest, SetDataRequest, SetWatches, SetWatches2, StatResponse, WatchesRequest, WhoAmIResponse,
};
use corral_proto::{
    Acl, ConnectRequest, ConnectResponse, DEFAULT_MAX_FRAME, DecodeError, ErrorCode, EventType, FrameDecoder,
    FrameError, Id, Jute, KeeperState, MultiOp, MultiRequest, MultiResponse, MultiResult, OpCode, Perms, ReplyHeader,
    Request, RequestHeader, Response, Stat, WatcherEvent, encode_frame,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The allocation counters are process-wide: the tests of this file run one at a time so that
/// one test's allocations are not charged to another's decode.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Every opcode of the protocol, and unknown ones.
const ALL_OPS: &[i32] = &[
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    11,
    12,
    13,
    14,
    15,
    16,
    17,
    18,
    19,
    20,
    21,
    22,
    100,
    101,
    102,
    103,
    104,
    105,
    106,
    107,
    -10,
    -11,
    -1,
    // Unknown.
    10,
    23,
    99,
    108,
    999,
    -12,
    i32::MIN,
    i32::MAX,
];

/// The opcodes `Request::read_body` accepts (§5, client requests).
const REQUEST_OPS: &[i32] = &[
    1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 100, 101, 102, 103, 104, 105, 106, 107,
    -11,
];

/// Lengths that must not be trusted: huge, negative, just past the input, and ordinary.
const NASTY_LENGTHS: &[i32] = &[
    i32::MAX,
    i32::MAX - 1,
    0x7fff_fff0,
    0x4000_0000,
    0x0100_0000,
    0x0010_0000,
    0x000f_ffff,
    i32::MIN,
    -1,
    -2,
    -1000,
    0,
    1,
    2,
    255,
];

fn cfg() -> ProptestConfig {
    ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() }
}

// ---------------------------------------------------------------------------------------------
// The checks run on every input
// ---------------------------------------------------------------------------------------------

/// Runs `f` and fails if it allocated more than a small multiple of the input: linear in what
/// arrived, never in a length the input claims. Retried, in case something else allocated at the
/// same moment.
fn within_budget<R>(input_len: usize, what: &str, f: impl Fn() -> R) -> Result<R, TestCaseError> {
    let budget = 128 * input_len + 64 * 1024;
    let mut least = usize::MAX;
    for _ in 0..3 {
        let region = Region::new(GLOBAL);
        let r = black_box(f());
        let used = region.change().bytes_allocated;
        if used <= budget {
            return Ok(r);
        }
        least = least.min(used);
    }
    Err(TestCaseError::fail(format!(
        "{what}: allocated {least} bytes decoding {input_len} input bytes (budget {budget})"
    )))
}

/// The same bytes as one slice and as two chained slices (a non-contiguous `Buf`).
fn both_ways<R: PartialEq + Debug>(
    input: &[u8],
    split: &Index,
    what: &str,
    decode: impl Fn(&mut dyn Buf) -> R,
) -> Result<(R, usize), TestCaseError> {
    let mut contiguous = input;
    let r = within_budget(input.len(), what, || decode(&mut &input[..]))?;
    let r2 = decode(&mut contiguous);
    prop_assert_eq!(&r, &r2);
    let consumed = input.len() - contiguous.remaining();
    let at = split.index(input.len() + 1);
    let mut chained = (&input[..at]).chain(&input[at..]);
    let r3 = decode(&mut chained);
    prop_assert_eq!(&r, &r3, "{}: a chained buffer split at {} decodes differently", what, at);
    prop_assert_eq!(chained.remaining(), input.len() - consumed, "{}: chained consumption", what);
    Ok((r, consumed))
}

fn check_record<T: Jute + PartialEq + Debug>(input: &[u8], split: &Index, what: &str) -> Result<(), TestCaseError> {
    let (result, consumed) = both_ways(input, split, what, |mut buf| T::read(&mut buf))?;
    if let Ok(value) = result {
        let again = value.to_bytes();
        prop_assert_eq!(again.len(), consumed, "{}: re-encoding {:?}", what, value);
        prop_assert_eq!(T::from_bytes(&again), Ok(value), "{}: decode(encode(decode(x)))", what);
    }
    Ok(())
}

fn check_request(op: OpCode, input: &[u8], split: &Index) -> Result<(), TestCaseError> {
    let what = format!("Request::read_body({op:?})");
    let (result, consumed) = both_ways(input, split, &what, |mut buf| Request::read_body(op, &mut buf))?;
    match result {
        Ok(req) => {
            prop_assert!(REQUEST_OPS.contains(&op.code()), "{} accepted", what);
            prop_assert_eq!(req.op_code(), op);
            let mut again = BytesMut::new();
            req.write_body(&mut again);
            prop_assert_eq!(again.len(), consumed, "{}: re-encoding {:?}", what, req);
            let mut rest = &again[..];
            prop_assert_eq!(Request::read_body(op, &mut rest), Ok(req));
            prop_assert!(rest.is_empty());
        }
        Err(DecodeError::InvalidValue { what: "request opcode", .. }) => {
            prop_assert!(!REQUEST_OPS.contains(&op.code()), "{} refused", what)
        }
        Err(_) => {}
    }
    Ok(())
}

fn check_response(op: OpCode, input: &[u8], split: &Index) -> Result<(), TestCaseError> {
    let what = format!("Response::read_body({op:?})");
    let (result, consumed) = both_ways(input, split, &what, |mut buf| Response::read_body(op, &mut buf))?;
    if let Ok(resp) = result {
        let mut again = BytesMut::new();
        resp.write_body(&mut again);
        prop_assert_eq!(again.len(), consumed, "{}: re-encoding {:?}", what, resp);
        let mut rest = &again[..];
        prop_assert_eq!(Response::read_body(op, &mut rest), Ok(resp));
        prop_assert!(rest.is_empty());
    }
    Ok(())
}

/// What a server does with bytes from a client, and a client with bytes from a server.
fn check_receive_paths(input: &[u8]) -> Result<(), TestCaseError> {
    within_budget(input.len(), "server/client receive path", || {
        let mut buf = BytesMut::from(input);
        let mut decoder = FrameDecoder::default();
        while let Ok(Some(frame)) = decoder.decode(&mut buf) {
            let mut server_view = &frame[..];
            if let Ok(header) = RequestHeader::read(&mut server_view) {
                let _ = black_box(Request::read_body(header.op, &mut server_view));
            }
            let mut client_view = &frame[..];
            if let Ok(header) = ReplyHeader::read(&mut client_view) {
                if header.xid == -1 {
                    let _ = black_box(WatcherEvent::read(&mut client_view));
                } else if header.err == ErrorCode::Ok {
                    let op = OpCode::from(header.xid & 0x7f);
                    let _ = black_box(Response::read_body(op, &mut client_view));
                }
            }
        }
    })
}

/// Feeds `input` to every decoder.
fn decode_everything(input: &[u8], split: &Index) -> Result<(), TestCaseError> {
    macro_rules! records {
        ($($t:ty),* $(,)?) => {
            $( check_record::<$t>(input, split, stringify!($t))?; )*
        };
    }
    records!(
        ConnectRequest,
        ConnectResponse,
        RequestHeader,
        ReplyHeader,
        WatcherEvent,
        MultiHeader,
        MultiRequest,
        MultiResponse,
        Stat,
        Id,
        Acl,
        Vec<Acl>,
        Perms,
        CreateRequest,
        CreateTtlRequest,
        CreateResponse,
        Create2Response,
        DeleteRequest,
        PathAndWatch,
        StatResponse,
        GetDataResponse,
        SetDataRequest,
        PathRequest,
        GetAclResponse,
        SetAclRequest,
        ChildrenResponse,
        GetChildren2Response,
        CheckVersionRequest,
        WatchesRequest,
        AddWatchRequest,
        ErrorResponse,
        GetAllChildrenNumberResponse,
        ClientInfo,
        WhoAmIResponse,
        AuthPacket,
        SaslToken,
        ReconfigRequest,
        SetWatches,
        SetWatches2,
        String,
        Option<String>,
        Bytes,
        Option<Bytes>,
        Vec<String>,
        Vec<i64>,
        OpCode,
        ErrorCode,
        EventType,
        KeeperState,
        bool,
    );
    for &code in ALL_OPS {
        let op = OpCode::from(code);
        check_request(op, input, split)?;
        check_response(op, input, split)?;
    }
    check_receive_paths(input)
}

// ---------------------------------------------------------------------------------------------
// Inputs: valid encodings, mutations, token soup
// ---------------------------------------------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    prop_oneof!["(/[a-z0-9]{1,5}){0,3}", vec(any::<char>(), 0..4).prop_map(|cs| cs.into_iter().collect::<String>()),]
}

fn data() -> impl Strategy<Value = Option<Bytes>> {
    proptest::option::of(vec(any::<u8>(), 0..12).prop_map(Bytes::from))
}

fn raw() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..12).prop_map(Bytes::from)
}

fn acls() -> impl Strategy<Value = Vec<Acl>> {
    vec((any::<i32>(), text(), text()).prop_map(|(p, scheme, id)| Acl::new(Perms(p), Id { scheme, id })), 0..3)
}

fn stat() -> impl Strategy<Value = Stat> {
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

fn create() -> impl Strategy<Value = CreateRequest> {
    (text(), data(), acls(), any::<i32>()).prop_map(|(path, data, acl, flags)| CreateRequest { path, data, acl, flags })
}

fn create_ttl() -> impl Strategy<Value = CreateTtlRequest> {
    (create(), any::<i64>()).prop_map(|(c, ttl)| CreateTtlRequest {
        path: c.path,
        data: c.data,
        acl: c.acl,
        flags: c.flags,
        ttl,
    })
}

fn path_and_watch() -> impl Strategy<Value = PathAndWatch> {
    (text(), any::<bool>()).prop_map(|(path, watch)| PathAndWatch { path, watch })
}

fn path() -> impl Strategy<Value = PathRequest> {
    text().prop_map(|path| PathRequest { path })
}

fn strings() -> impl Strategy<Value = Vec<String>> {
    vec(text(), 0..3)
}

fn multi_request() -> impl Strategy<Value = MultiRequest> {
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

fn multi_response() -> impl Strategy<Value = MultiResponse> {
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

fn request() -> impl Strategy<Value = Request> {
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

fn response() -> impl Strategy<Value = Response> {
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
fn valid() -> impl Strategy<Value = Vec<u8>> {
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
enum Mutation {
    FlipBit(Index, u8),
    Truncate(Index),
    /// Overwrite a 4-byte value that looks like a length or count (0 ≤ v ≤ what follows, or −1).
    SetLength(Index, i32),
    /// Overwrite 4 bytes anywhere.
    SetInt(Index, i32),
    Insert(Index, u8),
    Remove(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
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

fn put_i32_at(bytes: &mut [u8], at: usize, v: i32) {
    for (dst, src) in bytes[at..].iter_mut().zip(v.to_be_bytes()) {
        *dst = src;
    }
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
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

fn mutated() -> impl Strategy<Value = Vec<u8>> {
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
fn soup() -> impl Strategy<Value = Vec<u8>> {
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

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn arbitrary_bytes_never_panic(input in vec(any::<u8>(), 0..160), split in any::<Index>()) {
        let _serial = serial();
        decode_everything(&input, &split)?;
    }

    #[test]
    fn token_soup_never_panics(input in soup(), split in any::<Index>()) {
        let _serial = serial();
        decode_everything(&input, &split)?;
    }

    #[test]
    fn mutated_encodings_never_panic(input in mutated(), split in any::<Index>()) {
        let _serial = serial();
        decode_everything(&input, &split)?;
    }

    /// The unmutated encodings decode, so the mutations above start from something deep.
    #[test]
    fn valid_requests_decode(req in request()) {
        let _serial = serial();
        let mut body = BytesMut::new();
        req.write_body(&mut body);
        let mut rest = &body[..];
        prop_assert_eq!(Request::read_body(req.op_code(), &mut rest), Ok(req));
        prop_assert!(rest.is_empty());
    }

    /// Valid frames survive any chunking: every payload comes out whole, in order.
    #[test]
    fn frames_survive_any_chunking(
        payloads in vec(vec(any::<u8>(), 0..40), 0..6),
        chunks in vec(1usize..12, 1..8),
    ) {
        let _serial = serial();
        let mut stream = BytesMut::new();
        for p in &payloads {
            encode_frame(&mut stream, |b| b.put_slice(p));
        }
        for max in [DEFAULT_MAX_FRAME, 40] {
            let mut decoder = FrameDecoder::new(max);
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            let mut fed = 0;
            let mut sizes = chunks.iter().cycle();
            while fed < stream.len() {
                let n = (*sizes.next().unwrap()).min(stream.len() - fed);
                buf.extend_from_slice(&stream[fed..fed + n]);
                fed += n;
                while let Some(frame) = decoder.decode(&mut buf).map_err(|e| TestCaseError::fail(e.to_string()))? {
                    out.push(frame.to_vec());
                }
            }
            prop_assert_eq!(&out, &payloads);
            prop_assert!(buf.is_empty());
        }
    }

    /// Any byte stream, in any chunking, gives frames, `Ok(None)` or an error that names the
    /// offending length, and the bytes add up.
    #[test]
    fn frame_decoder_on_any_stream(
        stream in prop_oneof![vec(any::<u8>(), 0..200), soup(), mutated()],
        chunks in vec(1usize..32, 1..8),
        max in prop_oneof![Just(DEFAULT_MAX_FRAME), 0usize..64],
    ) {
        let _serial = serial();
        let mut decoder = FrameDecoder::new(max);
        let mut buf = BytesMut::new();
        let mut fed = 0;
        let mut taken = 0;
        let mut sizes = chunks.iter().cycle();
        'feed: while fed < stream.len() {
            let n = (*sizes.next().unwrap()).min(stream.len() - fed);
            buf.extend_from_slice(&stream[fed..fed + n]);
            fed += n;
            loop {
                let front = (buf.len() >= 4).then(|| i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
                match decoder.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        prop_assert_eq!(front, Some(frame.len() as i32));
                        prop_assert!(frame.len() <= max);
                        taken += 4 + frame.len();
                    }
                    Ok(None) => {
                        if let Some(len) = front {
                            prop_assert!(len >= 0 && len as usize <= max && buf.len() < 4 + len as usize);
                        }
                        break;
                    }
                    Err(FrameError::NegativeLength(len)) => {
                        prop_assert_eq!(front, Some(len));
                        prop_assert!(len < 0);
                        break 'feed;
                    }
                    Err(FrameError::TooLarge { len, max: m }) => {
                        prop_assert_eq!(front, Some(len as i32));
                        prop_assert_eq!(m, max);
                        prop_assert!(len > max);
                        break 'feed;
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("unexpected {e}"))),
                }
            }
        }
        prop_assert_eq!(taken + buf.len(), fed, "every byte fed is in a frame or still buffered");
    }
}

// ---------------------------------------------------------------------------------------------
// 2 GiB claims in a few bytes
// ---------------------------------------------------------------------------------------------

/// Claimed lengths of 256 MiB and more: allocating any of them would blow the budget.
const HUGE: &[i32] = &[i32::MAX, 0x7fff_fff0, 0x4000_0000, 0x1000_0000];

/// Decodes `input` with `decode` and checks the budget (128 bytes per input byte + 64 KiB).
fn tiny_alloc<R: Debug>(what: &str, input: &[u8], decode: impl Fn(&mut &[u8]) -> R) -> R {
    within_budget(input.len(), what, || decode(&mut &input[..])).unwrap_or_else(|e| panic!("{e}"))
}

fn eof<T>(what: &'static str) -> Result<T, DecodeError> {
    Err(DecodeError::UnexpectedEof { what })
}

fn claim(prefix: &[u8], len: i32) -> Vec<u8> {
    let mut v = prefix.to_vec();
    v.extend_from_slice(&len.to_be_bytes());
    v
}

#[test]
fn huge_claims_in_tiny_inputs_allocate_nothing_big() {
    let _serial = serial();
    for &len in HUGE {
        let four = claim(&[], len);

        // A 4-byte input claiming a 2 GiB string, buffer or vector.
        assert_eq!(tiny_alloc("String", &four, |b| String::read(b)), eof("ustring"));
        assert_eq!(tiny_alloc("Option<String>", &four, |b| Option::<String>::read(b)), eof("ustring"));
        assert_eq!(tiny_alloc("Bytes", &four, |b| Bytes::read(b)), eof("buffer"));
        assert_eq!(tiny_alloc("Option<Bytes>", &four, |b| Option::<Bytes>::read(b)), eof("buffer"));
        assert_eq!(tiny_alloc("Vec<String>", &four, |b| Vec::<String>::read(b)), eof("vector"));
        assert_eq!(tiny_alloc("Vec<Acl>", &four, |b| Vec::<Acl>::read(b)), eof("vector"));
        assert_eq!(tiny_alloc("Vec<i64>", &four, |b| Vec::<i64>::read(b)), eof("vector"));
        assert!(tiny_alloc("ChildrenResponse", &four, |b| ChildrenResponse::read(b)).is_err());
        assert!(tiny_alloc("GetAclResponse", &four, |b| GetAclResponse::read(b)).is_err());
        assert!(tiny_alloc("WhoAmIResponse", &four, |b| WhoAmIResponse::read(b)).is_err());
        assert!(tiny_alloc("GetDataResponse", &four, |b| GetDataResponse::read(b)).is_err());
        assert!(tiny_alloc("CreateRequest", &four, |b| CreateRequest::read(b)).is_err());

        // …and the same claim after the fixed fields that come first.
        let connect = claim(&[0; 20], len);
        assert!(tiny_alloc("ConnectRequest", &connect, |b| ConnectRequest::read(b)).is_err());
        let connect = claim(&[0; 16], len);
        assert!(tiny_alloc("ConnectResponse", &connect, |b| ConnectResponse::read(b)).is_err());
        let event = claim(&[0, 0, 0, 3, 0, 0, 0, 3], len);
        assert!(tiny_alloc("WatcherEvent", &event, |b| WatcherEvent::read(b)).is_err());
        let watches = claim(&[0; 8], len);
        assert!(tiny_alloc("SetWatches", &watches, |b| SetWatches::read(b)).is_err());
        assert!(tiny_alloc("SetWatches2", &watches, |b| SetWatches2::read(b)).is_err());
        let multi_create = claim(&[0, 0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff], len);
        assert!(tiny_alloc("MultiRequest", &multi_create, |b| MultiRequest::read(b)).is_err());
        assert!(tiny_alloc("MultiResponse", &multi_create, |b| MultiResponse::read(b)).is_err());
        let multi_children = claim(&[0, 0, 0, 8, 0, 0, 0, 0, 0], len);
        assert!(tiny_alloc("MultiResponse", &multi_children, |b| MultiResponse::read(b)).is_err());

        // Every opcode, both ways.
        for &code in ALL_OPS {
            let op = OpCode::from(code);
            let r = tiny_alloc("Request::read_body", &four, |b| Request::read_body(op, b));
            if !matches!(op, OpCode::Ping | OpCode::WhoAmI | OpCode::CloseSession) {
                assert!(r.is_err(), "{op:?} accepted a 2 GiB claim: {r:?}");
            }
            let _ = tiny_alloc("Response::read_body", &four, |b| Response::read_body(op, b));
        }
    }
}

#[test]
fn frame_decoder_refuses_huge_frames_without_reserving() {
    let _serial = serial();
    for &len in HUGE {
        let mut buf = BytesMut::from(&len.to_be_bytes()[..]);
        let r = within_budget(4, "FrameDecoder", || FrameDecoder::default().decode(&mut buf.clone()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r, Err(FrameError::TooLarge { len: len as usize, max: DEFAULT_MAX_FRAME }));
        assert!(FrameDecoder::default().decode(&mut buf).is_err());
        assert!(buf.capacity() < 64, "reserved {} bytes for a refused frame", buf.capacity());
    }
    // Within the limit, room may be reserved for the announced frame: never more than the limit.
    let mut decoder = FrameDecoder::new(4096);
    let mut buf = BytesMut::from(&4096i32.to_be_bytes()[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert!(buf.capacity() <= 2 * (4 + 4096), "reserved {}", buf.capacity());
    let mut buf = BytesMut::from(&4097i32.to_be_bytes()[..]);
    assert_eq!(decoder.decode(&mut buf), Err(FrameError::TooLarge { len: 4097, max: 4096 }));
    let mut buf = BytesMut::from(&(-1i32).to_be_bytes()[..]);
    assert_eq!(decoder.decode(&mut buf), Err(FrameError::NegativeLength(-1)));
}

/// The budget check itself can fail: a decoder that trusted the claim would be caught.
#[test]
fn the_allocation_budget_catches_a_trusting_decoder() {
    let _serial = serial();
    let four = claim(&[], 0x1000_0000);
    let trusting = |b: &mut &[u8]| {
        let n = b.get_i32() as usize;
        let v: Vec<u8> = Vec::with_capacity(n);
        black_box(v.capacity())
    };
    let caught = within_budget(four.len(), "trusting", || trusting(&mut &four[..]));
    assert!(caught.is_err());
}
