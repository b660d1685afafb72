//! Golden bytes: frames captured from a real ZooKeeper 3.8.0 (`tests/fixtures/*.hex`, see the
//! README there) are decoded, their stable fields checked, and the decoded values re-encoded:
//! the bytes must be identical to what went over the wire. This pins the encoding to the real
//! server, so a bug shared by our client and our embedded server cannot pass unnoticed
//! (`zookeeper-protocol.md` §18).
//!
//! Session ids, passwords, zxids and times are whatever the server produced: they are checked
//! for their relations (a reply's zxid is the Stat's `czxid`…), never predicted.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use corral_proto::records::{CreateRequest, DeleteRequest, PathAndWatch, SetDataRequest};
use corral_proto::{
    Acl, ConnectRequest, ConnectResponse, ErrorCode, EventType, FrameDecoder, Jute, KeeperState, MultiOp, MultiResult,
    OpCode, ReplyHeader, Request, RequestHeader, Response, Stat, WatcherEvent, encode_frame, xid,
};

// ---------------------------------------------------------------------------------------------
// Fixture parser
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// `> `: client → server.
    ToServer,
    /// `< `: server → client.
    ToClient,
}

#[derive(Debug, Clone)]
struct Frame {
    dir: Dir,
    /// The whole frame, length prefix included.
    wire: Vec<u8>,
    /// Where it came from, for messages.
    origin: String,
}

impl Frame {
    fn payload(&self) -> &[u8] {
        &self.wire[4..]
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str, origin: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "{origin}: odd number of hex digits");
    assert!(s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)), "{origin}: not lower-case hex: {s:?}");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Parses a fixture: `#` comments and blank lines are skipped; `> ` / `< ` lines are frames in
/// hex with their 4-byte length prefix, which must equal the payload length.
fn parse(name: &str, text: &str) -> Vec<Frame> {
    let mut frames = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let origin = format!("{name}:{}", i + 1);
        let (dir, digits) = if let Some(d) = line.strip_prefix("> ") {
            (Dir::ToServer, d)
        } else if let Some(d) = line.strip_prefix("< ") {
            (Dir::ToClient, d)
        } else {
            panic!("{origin}: neither a comment nor a '> '/'< ' frame: {line:?}");
        };
        let wire = unhex(digits.trim(), &origin);
        assert!(wire.len() >= 4, "{origin}: shorter than a length prefix");
        let len = i32::from_be_bytes([wire[0], wire[1], wire[2], wire[3]]);
        assert_eq!(
            usize::try_from(len).ok(),
            Some(wire.len() - 4),
            "{origin}: the length prefix does not match the payload"
        );
        frames.push(Frame { dir, wire, origin });
    }
    assert!(!frames.is_empty(), "{name}: no frames");
    frames
}

/// The frames of one direction, split again from one concatenated stream by `FrameDecoder`,
/// one byte at a time, must be the same payloads.
fn check_stream(frames: &[Frame], dir: Dir) {
    let stream: Vec<u8> = frames.iter().filter(|f| f.dir == dir).flat_map(|f| f.wire.iter().copied()).collect();
    let mut decoder = FrameDecoder::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for byte in stream {
        buf.extend_from_slice(&[byte]);
        while let Some(payload) = decoder.decode(&mut buf).expect("a valid frame") {
            out.push(payload.to_vec());
        }
    }
    assert!(buf.is_empty());
    let expected: Vec<Vec<u8>> = frames.iter().filter(|f| f.dir == dir).map(|f| f.payload().to_vec()).collect();
    assert_eq!(out, expected);
}

fn load(name: &str, text: &str) -> Vec<Frame> {
    let frames = parse(name, text);
    check_stream(&frames, Dir::ToServer);
    check_stream(&frames, Dir::ToClient);
    frames
}

/// The single client frame and the single server frame of a request/reply fixture.
fn exchange(name: &str, text: &str) -> (Frame, Frame) {
    let frames = load(name, text);
    let [req, rep] = frames.as_slice() else {
        panic!("{name}: expected one request and one reply, got {} frames", frames.len());
    };
    assert_eq!((req.dir, rep.dir), (Dir::ToServer, Dir::ToClient), "{name}");
    (req.clone(), rep.clone())
}

// ---------------------------------------------------------------------------------------------
// Decode, then re-encode and compare
// ---------------------------------------------------------------------------------------------

fn framed(body: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_frame(&mut buf, body);
    buf.to_vec()
}

fn assert_same_bytes(ours: &[u8], frame: &Frame) {
    assert_eq!(hex(ours), hex(&frame.wire), "{}: re-encoding the decoded value changed the bytes", frame.origin);
}

/// Decodes a request frame (header + body, every byte consumed) and re-encodes it.
fn request(frame: &Frame) -> (RequestHeader, Request) {
    assert_eq!(frame.dir, Dir::ToServer, "{}", frame.origin);
    let mut rest = frame.payload();
    let header = RequestHeader::read(&mut rest).unwrap_or_else(|e| panic!("{}: header: {e}", frame.origin));
    let body = Request::read_body(header.op, &mut rest).unwrap_or_else(|e| panic!("{}: body: {e}", frame.origin));
    assert!(rest.is_empty(), "{}: {} bytes left after the body", frame.origin, rest.len());
    assert_eq!(body.op_code(), header.op);
    assert_same_bytes(
        &framed(|b| {
            header.write(b);
            body.write_body(b);
        }),
        frame,
    );
    (header, body)
}

/// Decodes a reply frame to a request of type `op`: the header, then a body only if `err` is 0;
/// every byte must be consumed. Re-encodes it.
fn reply(frame: &Frame, op: OpCode) -> (ReplyHeader, Option<Response>) {
    assert_eq!(frame.dir, Dir::ToClient, "{}", frame.origin);
    let mut rest = frame.payload();
    let header = ReplyHeader::read(&mut rest).unwrap_or_else(|e| panic!("{}: header: {e}", frame.origin));
    let body = (header.err == ErrorCode::Ok)
        .then(|| Response::read_body(op, &mut rest).unwrap_or_else(|e| panic!("{}: body: {e}", frame.origin)));
    assert!(rest.is_empty(), "{}: {} bytes left after the body", frame.origin, rest.len());
    assert_same_bytes(
        &framed(|b| {
            header.write(b);
            if let Some(body) = &body {
                body.write_body(b);
            }
        }),
        frame,
    );
    (header, body)
}

/// Decodes a whole payload as one record (every byte consumed) and re-encodes it.
fn record<T: Jute + std::fmt::Debug>(frame: &Frame) -> T {
    let value = T::from_bytes(frame.payload()).unwrap_or_else(|e| panic!("{}: {e}", frame.origin));
    assert_same_bytes(&framed(|b| value.write(b)), frame);
    value
}

/// A Stat as a freshly created node with `data_length` bytes has it, created at `zxid`.
fn assert_fresh_stat(stat: &Stat, zxid: i64, data_length: i32) {
    assert_eq!((stat.czxid, stat.mzxid, stat.pzxid), (zxid, zxid, zxid), "czxid = mzxid = pzxid = the create's zxid");
    assert!(stat.ctime > 0);
    assert_eq!(stat.mtime, stat.ctime);
    assert_eq!((stat.version, stat.cversion, stat.aversion), (0, 0, 0));
    assert_eq!(stat.ephemeral_owner, 0, "persistent");
    assert_eq!((stat.data_length, stat.num_children), (data_length, 0));
}

const CONNECT: &str = include_str!("fixtures/connect.hex");
const PING: &str = include_str!("fixtures/ping.hex");
const CREATE: &str = include_str!("fixtures/create.hex");
const GET_DATA_WATCH: &str = include_str!("fixtures/get-data-watch.hex");
const SET_DATA: &str = include_str!("fixtures/set-data.hex");
const WATCH_EVENT: &str = include_str!("fixtures/watch-event.hex");
const MULTI_FAILED: &str = include_str!("fixtures/multi-failed.hex");
const CREATE2: &str = include_str!("fixtures/create2.hex");
const ERROR_NO_NODE: &str = include_str!("fixtures/error-no-node.hex");
const CLOSE_SESSION: &str = include_str!("fixtures/close-session.hex");

fn open_create(path: &str, data: &'static [u8]) -> CreateRequest {
    CreateRequest { path: path.into(), data: Some(Bytes::from_static(data)), acl: Acl::open_unsafe(), flags: 0 }
}

/// The zxid of `create.hex`'s reply: the zxid of `/golden-create`.
fn golden_create_zxid() -> i64 {
    let (_, rep) = exchange("create.hex", CREATE);
    reply(&rep, OpCode::Create).0.zxid
}

// ---------------------------------------------------------------------------------------------
// One test per fixture
// ---------------------------------------------------------------------------------------------

#[test]
fn connect() {
    let (req, rep) = exchange("connect.hex", CONNECT);

    // §3.1: 45 bytes with a 16-byte passwd and the readOnly byte (49 with the length).
    assert_eq!(req.wire.len(), 49);
    let request: ConnectRequest = record(&req);
    assert_eq!(
        request,
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout: 30_000,
            session_id: 0,
            passwd: Bytes::from_static(&[0; 16]),
            read_only: Some(false),
        }
    );

    // §3.2: 37 bytes, readOnly byte included because the request had one.
    assert_eq!(rep.payload().len(), 37);
    let response: ConnectResponse = record(&rep);
    assert_eq!(response.protocol_version, 0);
    assert_eq!(response.timeout, 30_000, "30 s is inside [2, 20] × tickTime 2000: not clamped");
    assert_ne!(response.session_id, 0);
    assert_eq!(response.session_id >> 56, 1, "a standalone server uses server id 1 (§12.1)");
    assert_eq!(response.passwd.len(), 16);
    assert_eq!(response.read_only, Some(false));

    // Without its read-only byte the same response is the 36-byte legacy form.
    let legacy = ConnectResponse { read_only: None, ..response.clone() };
    assert_eq!(legacy.to_bytes().as_ref(), &rep.payload()[..36]);
    assert_eq!(ConnectResponse::from_bytes(&rep.payload()[..36]), Ok(legacy));
}

#[test]
fn ping() {
    let (req, rep) = exchange("ping.hex", PING);
    // §4: the wire example of the protocol document.
    assert_eq!(hex(&req.wire), "00000008fffffffe0000000b");
    let (header, body) = request(&req);
    assert_eq!(header, RequestHeader { xid: xid::PING, op: OpCode::Ping });
    assert_eq!(body, Request::Ping);

    assert_eq!(rep.payload().len(), 16, "a ping reply is a bare ReplyHeader");
    let (header, body) = reply(&rep, OpCode::Ping);
    assert_eq!((header.xid, header.err), (xid::PING, ErrorCode::Ok));
    assert!(header.zxid > 0, "the server's last zxid");
    assert_eq!(body, Some(Response::Empty));
    assert_eq!(hex(&rep.wire[..8]), "00000010fffffffe");
}

#[test]
fn create() {
    let (req, rep) = exchange("create.hex", CREATE);
    let (header, body) = request(&req);
    assert_eq!(header.op, OpCode::Create);
    assert!(header.xid > 0);
    assert_eq!(body, Request::Create(open_create("/golden-create", b"hello")));

    let (reply_header, body) = reply(&rep, OpCode::Create);
    assert_eq!((reply_header.xid, reply_header.err), (header.xid, ErrorCode::Ok));
    assert!(reply_header.zxid > 0);
    let Some(Response::Create(created)) = body else {
        panic!("not a CreateResponse: {body:?}");
    };
    assert_eq!(created.path, "/golden-create");
}

#[test]
fn get_data_with_watch() {
    let (req, rep) = exchange("get-data-watch.hex", GET_DATA_WATCH);
    let (header, body) = request(&req);
    assert_eq!(header.op, OpCode::GetData);
    assert_eq!(body, Request::GetData(PathAndWatch { path: "/golden-create".into(), watch: true }));

    let (reply_header, body) = reply(&rep, OpCode::GetData);
    assert_eq!((reply_header.xid, reply_header.err), (header.xid, ErrorCode::Ok));
    let Some(Response::GetData(data)) = body else {
        panic!("not a GetDataResponse: {body:?}");
    };
    assert_eq!(data.data.as_deref(), Some(&b"hello"[..]));
    assert_fresh_stat(&data.stat, golden_create_zxid(), 5);
    // A read reports the last zxid, here still the create's.
    assert_eq!(reply_header.zxid, data.stat.czxid);
}

#[test]
fn set_data_reply_has_the_new_stat() {
    let (req, rep) = exchange("set-data.hex", SET_DATA);
    let (header, body) = request(&req);
    assert_eq!(header.op, OpCode::SetData);
    assert_eq!(
        body,
        Request::SetData(SetDataRequest {
            path: "/golden-create".into(),
            data: Some(Bytes::from_static(b"world")),
            version: -1,
        })
    );

    let (reply_header, body) = reply(&rep, OpCode::SetData);
    assert_eq!((reply_header.xid, reply_header.err), (header.xid, ErrorCode::Ok));
    let Some(Response::Stat(stat)) = body else {
        panic!("not a Stat: {body:?}");
    };
    let created = golden_create_zxid();
    assert_eq!((stat.czxid, stat.pzxid), (created, created));
    assert_eq!(stat.mzxid, reply_header.zxid, "mzxid is the setData's zxid");
    assert!(stat.mzxid > stat.czxid);
    assert!(stat.mtime >= stat.ctime);
    assert_eq!((stat.version, stat.cversion, stat.aversion), (1, 0, 0));
    assert_eq!((stat.data_length, stat.num_children, stat.ephemeral_owner), (5, 0, 0));
}

#[test]
fn watch_notification() {
    let frames = load("watch-event.hex", WATCH_EVENT);
    let [frame] = frames.as_slice() else {
        panic!("expected one notification frame");
    };
    assert_eq!(frame.dir, Dir::ToClient);
    let mut rest = frame.payload();
    let header = ReplyHeader::read(&mut rest).unwrap();
    // §4.1: xid −1, err 0, and zxid −1 on ZooKeeper ≤ 3.8.
    assert_eq!(header, ReplyHeader { xid: xid::NOTIFICATION, zxid: -1, err: ErrorCode::Ok });
    let event = WatcherEvent::from_bytes(rest).unwrap();
    assert_eq!(
        event,
        WatcherEvent {
            event_type: EventType::NodeDataChanged,
            state: KeeperState::SyncConnected,
            path: "/golden-create".into(),
        }
    );
    assert_same_bytes(
        &framed(|b| {
            header.write(b);
            event.write(b);
        }),
        frame,
    );
}

#[test]
fn failed_multi() {
    let (req, rep) = exchange("multi-failed.hex", MULTI_FAILED);
    let (header, body) = request(&req);
    assert_eq!(header.op, OpCode::Multi);
    let Request::Multi(multi) = body else {
        panic!("not a multi: {body:?}");
    };
    assert_eq!(
        multi.ops,
        [
            MultiOp::Create(open_create("/golden-multi", b"")),
            MultiOp::Delete(DeleteRequest { path: "/golden-missing".into(), version: -1 }),
            MultiOp::SetData(SetDataRequest {
                path: "/golden-create".into(),
                data: Some(Bytes::from_static(b"multi")),
                version: -1,
            }),
        ]
    );
    // The empty data is an empty buffer, not null.
    assert!(matches!(&multi.ops[0], MultiOp::Create(c) if c.data == Some(Bytes::new())));

    let (reply_header, body) = reply(&rep, OpCode::Multi);
    // §9: a failed multi has err 0 in the header; the failure is in the results.
    assert_eq!((reply_header.xid, reply_header.err), (header.xid, ErrorCode::Ok));
    let Some(Response::Multi(results)) = body else {
        panic!("not a multi reply: {body:?}");
    };
    assert_eq!(
        results.results,
        [
            MultiResult::Error(ErrorCode::Ok),
            MultiResult::Error(ErrorCode::NoNode),
            MultiResult::Error(ErrorCode::RuntimeInconsistency),
        ]
    );
    let codes: Vec<i32> = results
        .results
        .iter()
        .map(|r| match r {
            MultiResult::Error(code) => code.code(),
            other => panic!("not an error result: {other:?}"),
        })
        .collect();
    assert_eq!(codes, [0, -101, -2]);
    assert_eq!(results.failure(), Some((1, ErrorCode::NoNode)));
    // The end marker {type −1, done true, err −1}.
    assert_eq!(hex(&rep.wire[rep.wire.len() - 9..]), "ffffffff01ffffffff");
    assert_eq!(hex(&req.wire[req.wire.len() - 9..]), "ffffffff01ffffffff");
}

#[test]
fn create2_reply_has_a_stat() {
    let (req, rep) = exchange("create2.hex", CREATE2);
    let (header, body) = request(&req);
    assert_eq!(header.op, OpCode::Create2);
    assert_eq!(body, Request::Create2(open_create("/golden-create2", b"hello2")));

    let (reply_header, body) = reply(&rep, OpCode::Create2);
    assert_eq!((reply_header.xid, reply_header.err), (header.xid, ErrorCode::Ok));
    let Some(Response::Create2(created)) = body else {
        panic!("not a Create2Response: {body:?}");
    };
    assert_eq!(created.path, "/golden-create2");
    assert_fresh_stat(&created.stat, reply_header.zxid, 6);
    assert!(reply_header.zxid > golden_create_zxid());
}

#[test]
fn error_reply_has_no_body() {
    let (req, rep) = exchange("error-no-node.hex", ERROR_NO_NODE);
    let (header, body) = request(&req);
    assert_eq!(body, Request::GetData(PathAndWatch { path: "/golden-missing".into(), watch: false }));

    // §4: when err != 0 the reply is the bare 16-byte header.
    assert_eq!(rep.payload().len(), 16);
    let (reply_header, body) = reply(&rep, OpCode::GetData);
    assert_eq!((reply_header.xid, reply_header.err), (header.xid, ErrorCode::NoNode));
    assert_eq!(reply_header.err.code(), -101);
    assert_eq!(body, None);
    assert!(reply_header.zxid > 0);
}

#[test]
fn close_session() {
    let (req, rep) = exchange("close-session.hex", CLOSE_SESSION);
    let (header, body) = request(&req);
    assert_eq!(header.op, OpCode::CloseSession);
    assert_eq!(header.op.code(), -11);
    assert!(header.xid > 0, "closeSession uses a normal xid");
    assert_eq!(body, Request::CloseSession);
    assert_eq!(req.payload().len(), 8, "header only");

    let (reply_header, body) = reply(&rep, OpCode::CloseSession);
    assert_eq!((reply_header.xid, reply_header.err), (header.xid, ErrorCode::Ok));
    assert_eq!(body, Some(Response::Empty));
    assert_eq!(rep.payload().len(), 16);
}

/// Session A's xids go up by one from 1, in the order of the README's table.
#[test]
fn session_a_xids_are_sequential() {
    let files = [
        ("create.hex", CREATE),
        ("get-data-watch.hex", GET_DATA_WATCH),
        ("multi-failed.hex", MULTI_FAILED),
        ("create2.hex", CREATE2),
        ("error-no-node.hex", ERROR_NO_NODE),
        ("close-session.hex", CLOSE_SESSION),
    ];
    let xids: Vec<i32> = files.iter().map(|(name, text)| request(&exchange(name, text).0).0.xid).collect();
    assert_eq!(xids, [1, 2, 3, 4, 5, 6]);
}

// ---------------------------------------------------------------------------------------------
// Every fixture in the directory, whatever it holds
// ---------------------------------------------------------------------------------------------

/// Every frame of every `*.hex` file, the ones added later included, decodes completely and
/// re-encodes to the same bytes: client frames by their header's opcode, server frames by the
/// opcode of the request with the same xid (or as a notification for xid −1), and the frames of
/// a `connect*` file as the handshake.
#[test]
fn every_fixture_frame_re_encodes_identically() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/fixtures exists")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".hex"))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "fixtures missing: {names:?}");

    let mut frames_checked = 0;
    for name in &names {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let frames = load(name, &text);
        if name.starts_with("connect") {
            for frame in &frames {
                match frame.dir {
                    Dir::ToServer => drop(record::<ConnectRequest>(frame)),
                    Dir::ToClient => drop(record::<ConnectResponse>(frame)),
                }
                frames_checked += 1;
            }
            continue;
        }
        let mut pending: Vec<RequestHeader> = Vec::new();
        for frame in &frames {
            match frame.dir {
                Dir::ToServer => pending.push(request(frame).0),
                Dir::ToClient => {
                    let xid = i32::from_be_bytes(frame.payload()[..4].try_into().unwrap());
                    if xid == xid::NOTIFICATION {
                        let mut rest = frame.payload();
                        let header = ReplyHeader::read(&mut rest).unwrap();
                        let event = WatcherEvent::from_bytes(rest)
                            .unwrap_or_else(|e| panic!("{}: notification: {e}", frame.origin));
                        assert_same_bytes(
                            &framed(|b| {
                                header.write(b);
                                event.write(b);
                            }),
                            frame,
                        );
                    } else {
                        // Replies come in request order (§1).
                        assert!(!pending.is_empty(), "{}: a reply with no request", frame.origin);
                        let asked = pending.remove(0);
                        assert_eq!(asked.xid, xid, "{}: replies in request order", frame.origin);
                        reply(frame, asked.op);
                    }
                }
            }
            frames_checked += 1;
        }
    }
    assert!(frames_checked >= 19, "only {frames_checked} frames checked");
}

/// The parser itself refuses what it must.
#[test]
fn fixture_parser_checks_the_length_prefix() {
    let ok = parse("inline", "# c\n\n> 00000001ab\n< 00000000\n");
    assert_eq!(ok.len(), 2);
    assert_eq!((ok[0].dir, ok[0].payload()), (Dir::ToServer, &[0xab][..]));
    assert_eq!((ok[1].dir, ok[1].payload()), (Dir::ToClient, &[][..]));
    for bad in ["> 00000002ab\n", "> 0000000\n", "> 00000001AB\n", "00000001ab\n", "< 000000\n"] {
        assert!(std::panic::catch_unwind(|| parse("inline", bad)).is_err(), "{bad:?} was accepted");
    }
}
