//! Property round-trips for every record and message of `corral-proto`.
//!
//! For each value: `decode(encode(x)) == x`, the decoder consumes exactly the encoded bytes (and
//! no more when junk follows), and re-encoding the decoded value gives the same bytes. Where the
//! protocol fixes a layout independently of our decoder (primitive encodings, record sizes,
//! field offsets, opcode numbers), the bytes are checked against the specification too, so a
//! bug shared by the encoder and the decoder cannot pass unnoticed.
//!
//! `main.rs` holds the properties, section by section; `strategies.rs` the generators of every
//! value, `checks.rs` the round-trip checks and wire-layout helpers they share.

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use corral_proto::records::{
    AddWatchRequest, AuthPacket, CheckVersionRequest, ChildrenResponse, Create2Response, CreateRequest, CreateResponse,
    CreateTtlRequest, DeleteRequest, ErrorResponse, GetAllChildrenNumberResponse, GetDataResponse, MultiHeader,
    PathAndWatch, PathRequest, ReconfigRequest, SaslToken, SetAclRequest, SetDataRequest, SetWatches, SetWatches2,
    StatResponse, WatchesRequest,
};
use corral_proto::{
    Acl, AddWatchMode, DecodeError, ErrorCode, EventType, FrameDecoder, Jute, KeeperState, MultiOp, MultiRequest,
    MultiResponse, MultiResult, OpCode, Perms, ReplyHeader, Request, RequestHeader, Response, Stat, WatcherType,
    encode_frame,
};
use proptest::collection::vec;
use proptest::prelude::*;

use self::checks::*;
use self::strategies::*;

mod checks;
mod strategies;

// ---------------------------------------------------------------------------------------------
// Primitives and codes
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn ints_and_longs_are_big_endian(i in int(), l in long(), b in any::<bool>()) {
        prop_assert_eq!(round_trip(&i, &[1])?.to_vec(), i.to_be_bytes().to_vec());
        prop_assert_eq!(round_trip(&l, &[1])?.to_vec(), l.to_be_bytes().to_vec());
        prop_assert_eq!(round_trip(&b, &[1])?.to_vec(), vec![u8::from(b)]);
    }

    #[test]
    fn strings_are_byte_length_then_utf8(s in text(), junk in raw()) {
        let bytes = round_trip(&s, &junk)?;
        prop_assert_eq!(be32(&bytes, 0) as usize, s.len(), "length in UTF-8 bytes, not chars");
        prop_assert_eq!(&bytes[4..], s.as_bytes());
        let opt = Some(s.clone());
        prop_assert_eq!(round_trip(&opt, &junk)?, bytes);
    }

    #[test]
    fn nullable_strings_keep_null_and_empty_apart(s in opt_text(), junk in raw()) {
        let bytes = round_trip(&s, &junk)?;
        match &s {
            None => prop_assert_eq!(bytes.as_ref(), &[0xff; 4]),
            Some(s) => prop_assert_eq!(bytes.len(), wire_len(s.as_bytes())),
        }
    }

    #[test]
    fn buffers_keep_null_empty_and_data_apart(b in opt_raw(), junk in raw()) {
        let bytes = round_trip(&b, &junk)?;
        match &b {
            None => prop_assert_eq!(bytes.as_ref(), &[0xff; 4]),
            Some(data) => {
                prop_assert_eq!(be32(&bytes, 0) as usize, data.len());
                prop_assert_eq!(&bytes[4..], data.as_ref());
                prop_assert_eq!(round_trip(data, &junk)?, bytes);
            }
        }
    }

    #[test]
    fn vectors_are_count_then_elements(v in strings(), longs in vec(long(), 0..6), junk in raw()) {
        let bytes = round_trip(&v, &junk)?;
        prop_assert_eq!(be32(&bytes, 0) as usize, v.len());
        let bytes = round_trip(&longs, &junk)?;
        prop_assert_eq!(bytes.len(), 4 + 8 * longs.len());
    }

    /// Unknown codes survive: any i32 decodes to a value that encodes back to the same i32,
    /// and exactly the values of the protocol tables have named variants.
    #[test]
    fn codes_keep_every_value(v in int()) {
        let raw = v.to_be_bytes();

        let op = decoded(OpCode::from_bytes(&raw))?;
        prop_assert_eq!(op.code(), v);
        prop_assert_eq!(i32::from(OpCode::from(v)), v);
        prop_assert_eq!(op.to_bytes().to_vec(), raw.to_vec());
        prop_assert_eq!(matches!(op, OpCode::Unknown(_)), !KNOWN_OPS.contains(&v));

        let err = decoded(ErrorCode::from_bytes(&raw))?;
        prop_assert_eq!(err.code(), v);
        prop_assert_eq!(i32::from(ErrorCode::from(v)), v);
        prop_assert_eq!(err.to_bytes().to_vec(), raw.to_vec());
        prop_assert_eq!(matches!(err, ErrorCode::Unknown(_)), !KNOWN_ERRORS.contains(&v));

        let ev = decoded(EventType::from_bytes(&raw))?;
        prop_assert_eq!(ev.code(), v);
        prop_assert_eq!(ev.to_bytes().to_vec(), raw.to_vec());
        prop_assert_eq!(matches!(ev, EventType::Unknown(_)), !KNOWN_EVENTS.contains(&v));

        let st = decoded(KeeperState::from_bytes(&raw))?;
        prop_assert_eq!(st.code(), v);
        prop_assert_eq!(st.to_bytes().to_vec(), raw.to_vec());
        prop_assert_eq!(matches!(st, KeeperState::Unknown(_)), !KNOWN_STATES.contains(&v));

        let wt = decoded(WatcherType::from_bytes(&raw))?;
        prop_assert_eq!(wt.code(), v);
        prop_assert_eq!(wt.to_bytes().to_vec(), raw.to_vec());
        prop_assert_eq!(matches!(wt, WatcherType::Unknown(_)), !KNOWN_WATCHER_TYPES.contains(&v));

        let mode = decoded(AddWatchMode::from_bytes(&raw))?;
        prop_assert_eq!(mode.code(), v);
        prop_assert_eq!(mode.to_bytes().to_vec(), raw.to_vec());
        prop_assert_eq!(matches!(mode, AddWatchMode::Unknown(_)), !KNOWN_ADD_WATCH_MODES.contains(&v));

        let perms = decoded(Perms::from_bytes(&raw))?;
        prop_assert_eq!(perms, Perms(v));
        prop_assert_eq!(perms.to_bytes().to_vec(), raw.to_vec());
    }
}

#[test]
fn known_codes_have_their_protocol_numbers() {
    let ops = [
        (OpCode::Notification, 0),
        (OpCode::Create, 1),
        (OpCode::Delete, 2),
        (OpCode::Exists, 3),
        (OpCode::GetData, 4),
        (OpCode::SetData, 5),
        (OpCode::GetAcl, 6),
        (OpCode::SetAcl, 7),
        (OpCode::GetChildren, 8),
        (OpCode::Sync, 9),
        (OpCode::Ping, 11),
        (OpCode::GetChildren2, 12),
        (OpCode::Check, 13),
        (OpCode::Multi, 14),
        (OpCode::Create2, 15),
        (OpCode::Reconfig, 16),
        (OpCode::CheckWatches, 17),
        (OpCode::RemoveWatches, 18),
        (OpCode::CreateContainer, 19),
        (OpCode::DeleteContainer, 20),
        (OpCode::CreateTtl, 21),
        (OpCode::MultiRead, 22),
        (OpCode::Auth, 100),
        (OpCode::SetWatches, 101),
        (OpCode::Sasl, 102),
        (OpCode::GetEphemerals, 103),
        (OpCode::GetAllChildrenNumber, 104),
        (OpCode::SetWatches2, 105),
        (OpCode::AddWatch, 106),
        (OpCode::WhoAmI, 107),
        (OpCode::CreateSession, -10),
        (OpCode::CloseSession, -11),
        (OpCode::Error, -1),
    ];
    assert_eq!(ops.len(), KNOWN_OPS.len());
    for (op, code) in ops {
        assert_eq!(op.code(), code, "{op:?}");
        assert_eq!(OpCode::from(code), op);
    }
    let errors = [
        (ErrorCode::Ok, 0),
        (ErrorCode::RuntimeInconsistency, -2),
        (ErrorCode::MarshallingError, -5),
        (ErrorCode::Unimplemented, -6),
        (ErrorCode::BadArguments, -8),
        (ErrorCode::NoNode, -101),
        (ErrorCode::NoAuth, -102),
        (ErrorCode::BadVersion, -103),
        (ErrorCode::NoChildrenForEphemerals, -108),
        (ErrorCode::NodeExists, -110),
        (ErrorCode::NotEmpty, -111),
        (ErrorCode::SessionExpired, -112),
        (ErrorCode::InvalidAcl, -114),
        (ErrorCode::AuthFailed, -115),
        (ErrorCode::SessionMoved, -118),
        (ErrorCode::NotReadOnly, -119),
        (ErrorCode::NoWatcher, -121),
        (ErrorCode::QuotaExceeded, -125),
        (ErrorCode::ThrottledOp, -127),
    ];
    for (err, code) in errors {
        assert_eq!(err.code(), code, "{err:?}");
        assert_eq!(ErrorCode::from(code), err);
    }
    assert_eq!(EventType::NodeDataChanged.code(), 3);
    assert_eq!(EventType::None.code(), -1);
    assert_eq!(EventType::PersistentWatchRemoved.code(), 7);
    assert_eq!(KeeperState::SyncConnected.code(), 3);
    assert_eq!(KeeperState::Expired.code(), -112);
    assert_eq!(WatcherType::Any.code(), 3);
    assert_eq!(WatcherType::PersistentRecursive.code(), 5);
    assert_eq!(AddWatchMode::PersistentRecursive.code(), 1);
}

#[test]
fn null_in_a_non_nullable_field_reads_as_empty() {
    let null = [0xff, 0xff, 0xff, 0xff];
    assert_eq!(String::from_bytes(&null), Ok(String::new()));
    assert_eq!(Bytes::from_bytes(&null), Ok(Bytes::new()));
    assert_eq!(Vec::<String>::from_bytes(&null), Ok(Vec::new()));
    // …and is written back as an empty (not null) value.
    assert_eq!(String::new().to_bytes().as_ref(), &[0, 0, 0, 0]);
    assert_eq!(Vec::<Acl>::new().to_bytes().as_ref(), &[0, 0, 0, 0]);
    // A null vector of children in a reply.
    assert_eq!(ChildrenResponse::from_bytes(&null), Ok(ChildrenResponse { children: Vec::new() }));
}

// ---------------------------------------------------------------------------------------------
// Handshake, headers, Stat, ACLs
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn connect_request_round_trips(req in connect_request()) {
        // The optional trailing byte means no junk may follow: the record must fill the frame.
        let bytes = round_trip_exact(&req)?;
        let ro = usize::from(req.read_only.is_some());
        prop_assert_eq!(bytes.len(), 24 + wire_len(&req.passwd) + ro);
        prop_assert_eq!(be32(&bytes, 0), req.protocol_version);
        prop_assert_eq!(be64(&bytes, 4), req.last_zxid_seen);
        prop_assert_eq!(be32(&bytes, 12), req.timeout);
        prop_assert_eq!(be64(&bytes, 16), req.session_id);
        if let Some(ro) = req.read_only {
            prop_assert_eq!(bytes[bytes.len() - 1], u8::from(ro));
        }
    }

    #[test]
    fn connect_response_round_trips(resp in connect_response()) {
        let bytes = round_trip_exact(&resp)?;
        let ro = usize::from(resp.read_only.is_some());
        prop_assert_eq!(bytes.len(), 16 + wire_len(&resp.passwd) + ro);
        prop_assert_eq!(be32(&bytes, 4), resp.timeout);
        prop_assert_eq!(be64(&bytes, 8), resp.session_id);
    }

    #[test]
    fn request_header_round_trips(xid in int(), op in op_code(), junk in raw()) {
        let h = RequestHeader { xid, op };
        let bytes = round_trip(&h, &junk)?;
        prop_assert_eq!(bytes.len(), 8);
        prop_assert_eq!(be32(&bytes, 4), op.code());
    }

    #[test]
    fn reply_header_round_trips(xid in int(), zxid in long(), err in error_code(), junk in raw()) {
        let h = ReplyHeader { xid, zxid, err };
        let bytes = round_trip(&h, &junk)?;
        prop_assert_eq!(bytes.len(), 16);
        prop_assert_eq!((be32(&bytes, 0), be64(&bytes, 4), be32(&bytes, 12)), (xid, zxid, err.code()));
    }

    #[test]
    fn stat_layout(s in stat(), junk in raw()) {
        let bytes = round_trip(&s, &junk)?;
        prop_assert_eq!(bytes.len(), Stat::ENCODED_LEN);
        prop_assert_eq!(bytes.len(), 68);
        // Offsets of §6.
        prop_assert_eq!(be64(&bytes, 0), s.czxid);
        prop_assert_eq!(be64(&bytes, 8), s.mzxid);
        prop_assert_eq!(be64(&bytes, 16), s.ctime);
        prop_assert_eq!(be64(&bytes, 24), s.mtime);
        prop_assert_eq!(be32(&bytes, 32), s.version);
        prop_assert_eq!(be32(&bytes, 36), s.cversion);
        prop_assert_eq!(be32(&bytes, 40), s.aversion);
        prop_assert_eq!(be64(&bytes, 44), s.ephemeral_owner);
        prop_assert_eq!(be32(&bytes, 52), s.data_length);
        prop_assert_eq!(be32(&bytes, 56), s.num_children);
        prop_assert_eq!(be64(&bytes, 60), s.pzxid);
    }

    #[test]
    fn id_and_acl(id in id(), acl in acl(), list in acls(), junk in raw()) {
        let bytes = round_trip(&id, &junk)?;
        prop_assert_eq!(bytes.len(), wire_len(id.scheme.as_bytes()) + wire_len(id.id.as_bytes()));
        let bytes = round_trip(&acl, &junk)?;
        prop_assert_eq!(be32(&bytes, 0), acl.perms.0);
        prop_assert_eq!(bytes[4..].to_vec(), acl.id.to_bytes().to_vec());
        let bytes = round_trip(&list, &junk)?;
        prop_assert_eq!(bytes.len(), acl_wire_len(&list));
    }

    #[test]
    fn watcher_event_round_trips(ev in watcher_event(), junk in raw()) {
        let bytes = round_trip(&ev, &junk)?;
        prop_assert_eq!(be32(&bytes, 0), ev.event_type.code());
        prop_assert_eq!(be32(&bytes, 4), ev.state.code());
        prop_assert_eq!(bytes[8..].to_vec(), ev.path.to_bytes().to_vec());
    }

    #[test]
    fn multi_header_round_trips(op in op_code(), done in any::<bool>(), err in int(), junk in raw()) {
        let h = MultiHeader { op, done, err };
        let bytes = round_trip(&h, &junk)?;
        prop_assert_eq!(bytes.len(), 9);
    }
}

// ---------------------------------------------------------------------------------------------
// Every record of records.rs
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn create_records(
        c in create_request(), t in create_ttl_request(), r in create_response(), r2 in create2_response(),
        junk in raw(),
    ) {
        let bytes = round_trip(&c, &junk)?;
        prop_assert_eq!(bytes.len(), wire_len(c.path.as_bytes()) + opt_wire_len(&c.data) + acl_wire_len(&c.acl) + 4);
        prop_assert_eq!(be32(&bytes, bytes.len() - 4), c.flags);
        let bytes = round_trip(&t, &junk)?;
        prop_assert_eq!(be64(&bytes, bytes.len() - 8), t.ttl);
        prop_assert_eq!(be32(&bytes, bytes.len() - 12), t.flags);
        round_trip(&r, &junk)?;
        let bytes = round_trip(&r2, &junk)?;
        prop_assert_eq!(bytes.len(), wire_len(r2.path.as_bytes()) + 68);
    }

    #[test]
    fn path_records(
        d in delete_request(), pw in path_and_watch(), p in path_request(), cv in check_version_request(),
        w in watches_request(), aw in add_watch_request(), junk in raw(),
    ) {
        let bytes = round_trip(&d, &junk)?;
        prop_assert_eq!(be32(&bytes, bytes.len() - 4), d.version);
        let bytes = round_trip(&pw, &junk)?;
        prop_assert_eq!(bytes.len(), wire_len(pw.path.as_bytes()) + 1);
        prop_assert_eq!(bytes[bytes.len() - 1], u8::from(pw.watch));
        round_trip(&p, &junk)?;
        round_trip(&cv, &junk)?;
        let bytes = round_trip(&w, &junk)?;
        prop_assert_eq!(be32(&bytes, bytes.len() - 4), w.watcher_type.code());
        let bytes = round_trip(&aw, &junk)?;
        prop_assert_eq!(be32(&bytes, bytes.len() - 4), aw.mode.code());
    }

    #[test]
    fn data_and_acl_records(
        sd in set_data_request(), gd in get_data_response(), sa in set_acl_request(), ga in get_acl_response(),
        s in stat(), junk in raw(),
    ) {
        let bytes = round_trip(&sd, &junk)?;
        prop_assert_eq!(bytes.len(), wire_len(sd.path.as_bytes()) + opt_wire_len(&sd.data) + 4);
        let bytes = round_trip(&gd, &junk)?;
        prop_assert_eq!(bytes.len(), opt_wire_len(&gd.data) + 68);
        let bytes = round_trip(&sa, &junk)?;
        prop_assert_eq!(bytes.len(), wire_len(sa.path.as_bytes()) + acl_wire_len(&sa.acl) + 4);
        let bytes = round_trip(&ga, &junk)?;
        prop_assert_eq!(bytes.len(), acl_wire_len(&ga.acl) + 68);
        let sr = StatResponse { stat: s.clone() };
        prop_assert_eq!(round_trip(&sr, &junk)?, s.to_bytes());
    }

    #[test]
    fn children_and_session_records(
        c in children_response(), c2 in children2_response(), n in int(), who in who_am_i_response(),
        ci in client_info(), e in error_code(), junk in raw(),
    ) {
        round_trip(&c, &junk)?;
        let bytes = round_trip(&c2, &junk)?;
        prop_assert_eq!(be32(&bytes, 0) as usize, c2.children.len());
        let bytes = round_trip(&GetAllChildrenNumberResponse { total_number: n }, &junk)?;
        prop_assert_eq!(bytes.to_vec(), n.to_be_bytes().to_vec());
        let bytes = round_trip(&who, &junk)?;
        prop_assert_eq!(be32(&bytes, 0) as usize, who.client_info.len());
        round_trip(&ci, &junk)?;
        let bytes = round_trip(&ErrorResponse { err: e }, &junk)?;
        prop_assert_eq!(bytes.to_vec(), e.code().to_be_bytes().to_vec());
        prop_assert_eq!(ErrorResponse::from(e), ErrorResponse { err: e });
    }

    #[test]
    fn auth_sasl_reconfig_and_watch_records(
        a in auth_packet(), t in sasl_token(), rc in reconfig_request(), sw in set_watches(), sw2 in set_watches2(),
        junk in raw(),
    ) {
        let bytes = round_trip(&a, &junk)?;
        prop_assert_eq!(be32(&bytes, 0), a.auth_type);
        prop_assert_eq!(round_trip(&t, &junk)?, t.token.to_bytes());
        let bytes = round_trip(&rc, &junk)?;
        prop_assert_eq!(be64(&bytes, bytes.len() - 8), rc.cur_config_id);
        let bytes = round_trip(&sw, &junk)?;
        prop_assert_eq!(be64(&bytes, 0), sw.relative_zxid);
        let bytes = round_trip(&sw2, &junk)?;
        prop_assert_eq!(be64(&bytes, 0), sw2.relative_zxid);
    }
}

// ---------------------------------------------------------------------------------------------
// multi
// ---------------------------------------------------------------------------------------------

/// The multi end marker of §9: `{type −1, done true, err −1}`.
const MULTI_END: [u8; 9] = [0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff];

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn multi_request_round_trips(m in multi_request(), junk in raw()) {
        let bytes = round_trip(&m, &junk)?;
        prop_assert_eq!(&bytes[bytes.len() - 9..], &MULTI_END);
        // Walk the entries: each header carries the op's type, done = false and err = −1.
        let mut rest: &[u8] = &bytes;
        for op in &m.ops {
            let h = decoded(MultiHeader::read(&mut rest))?;
            prop_assert_eq!(h, MultiHeader { op: op.op_code(), done: false, err: -1 });
            match op {
                MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => {
                    prop_assert_eq!(&decoded(CreateRequest::read(&mut rest))?, r);
                }
                MultiOp::CreateTtl(r) => prop_assert_eq!(&decoded(CreateTtlRequest::read(&mut rest))?, r),
                MultiOp::Delete(r) => prop_assert_eq!(&decoded(DeleteRequest::read(&mut rest))?, r),
                MultiOp::SetData(r) => prop_assert_eq!(&decoded(SetDataRequest::read(&mut rest))?, r),
                MultiOp::Check(r) => prop_assert_eq!(&decoded(CheckVersionRequest::read(&mut rest))?, r),
                MultiOp::GetData(r) | MultiOp::GetChildren(r) => {
                    prop_assert_eq!(&decoded(PathAndWatch::read(&mut rest))?, r);
                }
            }
        }
        prop_assert_eq!(rest, &MULTI_END[..]);
    }

    #[test]
    fn multi_response_round_trips(m in multi_response(), junk in raw()) {
        let bytes = round_trip(&m, &junk)?;
        prop_assert_eq!(&bytes[bytes.len() - 9..], &MULTI_END);
        let mut rest: &[u8] = &bytes;
        for result in &m.results {
            let h = decoded(MultiHeader::read(&mut rest))?;
            prop_assert!(!h.done);
            match result {
                MultiResult::Error(code) => {
                    // An error result: type −1, the header's err and the body both carry the code.
                    prop_assert_eq!(h.op, OpCode::Error);
                    prop_assert_eq!(h.err, code.code());
                    prop_assert_eq!(decoded(ErrorResponse::read(&mut rest))?.err, *code);
                }
                other => {
                    prop_assert_eq!(h.err, 0);
                    let (op, len) = match other {
                        MultiResult::Create(r) => (OpCode::Create, r.to_bytes().len()),
                        MultiResult::Create2(r) => (OpCode::Create2, r.to_bytes().len()),
                        MultiResult::Delete => (OpCode::Delete, 0),
                        MultiResult::SetData(_) => (OpCode::SetData, 68),
                        MultiResult::Check => (OpCode::Check, 0),
                        MultiResult::GetData(r) => (OpCode::GetData, r.to_bytes().len()),
                        MultiResult::GetChildren(r) => (OpCode::GetChildren, r.to_bytes().len()),
                        MultiResult::Error(_) => unreachable!(),
                    };
                    prop_assert_eq!(h.op, op);
                    rest.advance(len);
                }
            }
        }
        prop_assert_eq!(rest, &MULTI_END[..]);
    }
}

#[test]
fn multi_with_every_op_and_result_kind() {
    let create =
        CreateRequest { path: "/a".into(), data: Some(Bytes::from_static(b"x")), acl: Acl::open_unsafe(), flags: 0 };
    let req = MultiRequest {
        ops: vec![
            MultiOp::Create(create.clone()),
            MultiOp::Create2(create.clone()),
            MultiOp::CreateContainer(CreateRequest { flags: 4, ..create.clone() }),
            MultiOp::CreateTtl(CreateTtlRequest {
                path: "/t".into(),
                data: None,
                acl: Acl::open_unsafe(),
                flags: 5,
                ttl: 1000,
            }),
            MultiOp::Delete(DeleteRequest { path: "/a".into(), version: -1 }),
            MultiOp::SetData(SetDataRequest { path: "/a".into(), data: Some(Bytes::new()), version: 3 }),
            MultiOp::Check(CheckVersionRequest { path: "/a".into(), version: 7 }),
            MultiOp::GetData(PathAndWatch { path: "/a".into(), watch: true }),
            MultiOp::GetChildren(PathAndWatch { path: "/".into(), watch: false }),
        ],
    };
    let types: Vec<i32> = req.ops.iter().map(|o| o.op_code().code()).collect();
    assert_eq!(types, [1, 15, 19, 21, 2, 5, 13, 4, 8]);
    assert_eq!(MultiRequest::from_bytes(&req.to_bytes()), Ok(req.clone()));

    let resp = MultiResponse {
        results: vec![
            MultiResult::Create(CreateResponse { path: "/a".into() }),
            MultiResult::Create2(Create2Response { path: "/b".into(), stat: Stat::default() }),
            MultiResult::Delete,
            MultiResult::SetData(Stat { version: 4, ..Stat::default() }),
            MultiResult::Check,
            MultiResult::GetData(GetDataResponse::default()),
            MultiResult::GetChildren(ChildrenResponse { children: vec!["a".into()] }),
            MultiResult::Error(ErrorCode::NoNode),
            MultiResult::Error(ErrorCode::Unknown(-9999)),
        ],
    };
    assert_eq!(MultiResponse::from_bytes(&resp.to_bytes()), Ok(resp.clone()));
    assert_eq!(resp.failure(), Some((7, ErrorCode::NoNode)));
}

#[test]
fn create_container_and_ttl_results_read_as_create2() {
    // §9: type 15 is the result type for every create with a stat; types 19 and 21 are
    // accepted too, and written back as 15.
    let result = Create2Response { path: "/c".into(), stat: Stat { czxid: 9, ..Stat::default() } };
    for op in [OpCode::CreateContainer, OpCode::CreateTtl] {
        let mut bytes = BytesMut::new();
        MultiHeader { op, done: false, err: 0 }.write(&mut bytes);
        result.write(&mut bytes);
        bytes.extend_from_slice(&MULTI_END);
        let decoded = MultiResponse::from_bytes(&bytes).unwrap();
        assert_eq!(decoded.results, [MultiResult::Create2(result.clone())]);
        assert_eq!(&decoded.to_bytes()[..4], &15i32.to_be_bytes());
    }
}

// ---------------------------------------------------------------------------------------------
// Request / Response, keyed by opcode
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn request_round_trips(req in request(), junk in raw(), xid in int()) {
        let op = req.op_code();
        let body = request_body(&req);

        let mut rest: &[u8] = &body;
        let back = decoded(Request::read_body(op, &mut rest))?;
        prop_assert!(rest.is_empty(), "{} bytes left", rest.len());
        prop_assert_eq!(&back, &req);
        prop_assert_eq!(back.op_code(), op);
        prop_assert_eq!(request_body(&back), body.clone());

        // The decoder stops at the end of the body.
        let mut input = body.to_vec();
        input.extend_from_slice(&junk);
        let mut rest: &[u8] = &input;
        prop_assert_eq!(&decoded(Request::read_body(op, &mut rest))?, &req);
        prop_assert_eq!(rest, &junk[..]);

        // Whole frame: length, header, body; split again by the frame decoder.
        let mut wire = BytesMut::new();
        let len = encode_frame(&mut wire, |b| {
            RequestHeader { xid, op }.write(b);
            req.write_body(b);
        });
        prop_assert_eq!(len, 8 + body.len());
        prop_assert_eq!(be32(&wire, 0) as usize, len);
        let mut payload = FrameDecoder::default().decode(&mut wire).unwrap().expect("a whole frame");
        prop_assert!(wire.is_empty());
        prop_assert_eq!(decoded(RequestHeader::read(&mut payload))?, RequestHeader { xid, op });
        prop_assert_eq!(decoded(Request::read_body(op, &mut payload))?, req);
        prop_assert!(payload.is_empty());
    }

    #[test]
    fn response_round_trips((op, resp) in response(), junk in raw(), xid in int(), zxid in long()) {
        let body = response_body(&resp);

        let mut rest: &[u8] = &body;
        let back = decoded(Response::read_body(op, &mut rest))?;
        prop_assert!(rest.is_empty(), "{} bytes left", rest.len());
        prop_assert_eq!(&back, &resp);
        prop_assert_eq!(response_body(&back), body.clone());

        // The decoder stops at the end of the body; except that addWatch's optional 4-byte body
        // cannot be told from junk after an empty one.
        if !(op == OpCode::AddWatch && resp == Response::Empty) {
            let mut input = body.to_vec();
            input.extend_from_slice(&junk);
            let mut rest: &[u8] = &input;
            prop_assert_eq!(&decoded(Response::read_body(op, &mut rest))?, &resp);
            prop_assert_eq!(rest, &junk[..]);
        }

        let header = ReplyHeader { xid, zxid, err: ErrorCode::Ok };
        let mut wire = BytesMut::new();
        let len = encode_frame(&mut wire, |b| {
            header.write(b);
            resp.write_body(b);
        });
        prop_assert_eq!(len, 16 + body.len());
        let mut payload = FrameDecoder::default().decode(&mut wire).unwrap().expect("a whole frame");
        prop_assert_eq!(decoded(ReplyHeader::read(&mut payload))?, header);
        prop_assert_eq!(decoded(Response::read_body(op, &mut payload))?, resp);
        prop_assert!(payload.is_empty());
    }
}

/// One value of every `Request` variant.
fn one_of_each_request() -> Vec<Request> {
    let create = CreateRequest::default();
    let pw = PathAndWatch::default();
    let p = PathRequest::default();
    let w = WatchesRequest::default();
    vec![
        Request::Create(create.clone()),
        Request::Create2(create.clone()),
        Request::CreateContainer(create),
        Request::CreateTtl(CreateTtlRequest::default()),
        Request::Delete(DeleteRequest::default()),
        Request::Exists(pw.clone()),
        Request::GetData(pw.clone()),
        Request::SetData(SetDataRequest::default()),
        Request::GetAcl(p.clone()),
        Request::SetAcl(SetAclRequest::default()),
        Request::GetChildren(pw.clone()),
        Request::Sync(p.clone()),
        Request::Ping,
        Request::GetChildren2(pw),
        Request::Check(CheckVersionRequest::default()),
        Request::Multi(MultiRequest::default()),
        Request::Reconfig(ReconfigRequest::default()),
        Request::CheckWatches(w.clone()),
        Request::RemoveWatches(w),
        Request::DeleteContainer(Bytes::from_static(b"/c")),
        Request::MultiRead(MultiRequest::default()),
        Request::Auth(AuthPacket::default()),
        Request::SetWatches(SetWatches::default()),
        Request::Sasl(SaslToken::default()),
        Request::GetEphemerals(p.clone()),
        Request::GetAllChildrenNumber(p),
        Request::SetWatches2(SetWatches2::default()),
        Request::AddWatch(AddWatchRequest::default()),
        Request::WhoAmI,
        Request::CloseSession,
    ]
}

/// The opcodes `read` accepts (it does not answer "not a request/reply opcode"), scanning
/// every known code and a band of unknown ones around them.
fn accepted_opcodes(read: impl Fn(OpCode, &mut &[u8]) -> Result<(), DecodeError>, what: &str) -> BTreeSet<i32> {
    let zeros = [0u8; 256];
    (-300..=300)
        .chain([i32::MIN, i32::MAX])
        .filter(|&code| {
            let mut input: &[u8] = &zeros;
            !matches!(read(OpCode::from(code), &mut input), Err(DecodeError::InvalidValue { what: w, .. }) if w == what)
        })
        .collect()
}

#[test]
fn every_request_variant_has_its_opcode_and_is_covered() {
    let expected: [(i32, &str); 30] = [
        (1, "Create"),
        (15, "Create2"),
        (19, "CreateContainer"),
        (21, "CreateTtl"),
        (2, "Delete"),
        (3, "Exists"),
        (4, "GetData"),
        (5, "SetData"),
        (6, "GetAcl"),
        (7, "SetAcl"),
        (8, "GetChildren"),
        (9, "Sync"),
        (11, "Ping"),
        (12, "GetChildren2"),
        (13, "Check"),
        (14, "Multi"),
        (16, "Reconfig"),
        (17, "CheckWatches"),
        (18, "RemoveWatches"),
        (20, "DeleteContainer"),
        (22, "MultiRead"),
        (100, "Auth"),
        (101, "SetWatches"),
        (102, "Sasl"),
        (103, "GetEphemerals"),
        (104, "GetAllChildrenNumber"),
        (105, "SetWatches2"),
        (106, "AddWatch"),
        (107, "WhoAmI"),
        (-11, "CloseSession"),
    ];
    let all = one_of_each_request();
    assert_eq!(all.len(), expected.len());
    for (req, (code, name)) in all.iter().zip(expected) {
        assert_eq!(req.op_code().code(), code, "{req:?}");
        assert!(format!("{req:?}").starts_with(name), "{req:?} is not {name}");
        let body = request_body(req);
        assert_eq!(Request::read_body(req.op_code(), &mut &body[..]).as_ref(), Ok(req));
    }
    // If read_body learns a new opcode, the property tests above must learn the variant too.
    let covered: BTreeSet<i32> = all.iter().map(|r| r.op_code().code()).collect();
    let accepted = accepted_opcodes(|op, b| Request::read_body(op, b).map(drop), "request opcode");
    assert_eq!(accepted, covered);
}

#[test]
fn every_response_opcode_is_covered() {
    let mut covered: BTreeSet<i32> = EMPTY_REPLY_OPS.iter().map(|o| o.code()).collect();
    // The opcodes the `response()` strategy pairs with a non-empty body.
    covered.extend([1, 15, 19, 21, 3, 5, 7, 4, 16, 6, 8, 103, 12, 9, 14, 22, 104, 107, 106, 102]);
    let accepted = accepted_opcodes(|op, b| Response::read_body(op, b).map(drop), "reply opcode");
    assert_eq!(accepted, covered);
    // Not replies: notification, error, createSession, unknown opcodes.
    for code in [0, -1, -10, 10, 23, 99, 108, 999] {
        assert_eq!(
            Response::read_body(OpCode::from(code), &mut &[][..]),
            Err(DecodeError::InvalidValue { what: "reply opcode", value: code.into() })
        );
    }
}

#[test]
fn add_watch_reply_body_is_optional() {
    // ZooKeeper sends a 4-byte ErrorResponse{0}; an empty body is tolerated.
    assert_eq!(
        Response::read_body(OpCode::AddWatch, &mut &[0u8, 0, 0, 0][..]),
        Ok(Response::AddWatch(ErrorResponse { err: ErrorCode::Ok }))
    );
    assert_eq!(Response::read_body(OpCode::AddWatch, &mut &[][..]), Ok(Response::Empty));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    Response::AddWatch(ErrorResponse { err: ErrorCode::Ok }).write_body(&mut buf);
    assert_eq!(buf.as_ref(), &[0u8; 8]);
}
