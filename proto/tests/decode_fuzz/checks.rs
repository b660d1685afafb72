//! The checks run on every input: no panic, no allocation sized by the wire, and an `Ok` that
//! re-encodes to what it consumed and gives the same answer from a split buffer.

use std::fmt::Debug;
use std::hint::black_box;

use bytes::{Buf, Bytes, BytesMut};
use corral_proto::records::{
    AddWatchRequest, AuthPacket, CheckVersionRequest, ChildrenResponse, ClientInfo, Create2Response, CreateRequest,
    CreateResponse, CreateTtlRequest, DeleteRequest, ErrorResponse, GetAclResponse, GetAllChildrenNumberResponse,
    GetChildren2Response, GetDataResponse, MultiHeader, PathAndWatch, PathRequest, ReconfigRequest, SaslToken,
    SetAclRequest, SetDataRequest, SetWatches, SetWatches2, StatResponse, WatchesRequest, WhoAmIResponse,
};
use corral_proto::{
    Acl, ConnectRequest, ConnectResponse, DecodeError, ErrorCode, EventType, FrameDecoder, Id, Jute, KeeperState,
    MultiRequest, MultiResponse, OpCode, Perms, ReplyHeader, Request, RequestHeader, Response, Stat, WatcherEvent,
};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use stats_alloc::Region;

use super::{ALL_OPS, GLOBAL, REQUEST_OPS};

/// Runs `f` and fails if it allocated more than a small multiple of the input: linear in what
/// arrived, never in a length the input claims. Retried, in case something else allocated at the
/// same moment.
pub(crate) fn within_budget<R>(input_len: usize, what: &str, f: impl Fn() -> R) -> Result<R, TestCaseError> {
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
pub(crate) fn both_ways<R: PartialEq + Debug>(
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

pub(crate) fn check_record<T: Jute + PartialEq + Debug>(
    input: &[u8],
    split: &Index,
    what: &str,
) -> Result<(), TestCaseError> {
    let (result, consumed) = both_ways(input, split, what, |mut buf| T::read(&mut buf))?;
    if let Ok(value) = result {
        let again = value.to_bytes();
        prop_assert_eq!(again.len(), consumed, "{}: re-encoding {:?}", what, value);
        prop_assert_eq!(T::from_bytes(&again), Ok(value), "{}: decode(encode(decode(x)))", what);
    }
    Ok(())
}

pub(crate) fn check_request(op: OpCode, input: &[u8], split: &Index) -> Result<(), TestCaseError> {
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

pub(crate) fn check_response(op: OpCode, input: &[u8], split: &Index) -> Result<(), TestCaseError> {
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
pub(crate) fn check_receive_paths(input: &[u8]) -> Result<(), TestCaseError> {
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
pub(crate) fn decode_everything(input: &[u8], split: &Index) -> Result<(), TestCaseError> {
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
