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
//!
//! `main.rs` holds the allocator, the opcode and length tables and the properties;
//! `checks.rs` what is checked on every input; `inputs.rs` how the inputs are made.

use std::alloc::System;
use std::fmt::Debug;
use std::hint::black_box;
use std::sync::{Mutex, MutexGuard};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use corral_proto::records::{
    ChildrenResponse, CreateRequest, GetAclResponse, GetDataResponse, SetWatches, SetWatches2, WhoAmIResponse,
};
use corral_proto::{
    Acl, ConnectRequest, ConnectResponse, DEFAULT_MAX_FRAME, DecodeError, FrameDecoder, FrameError, Jute, MultiRequest,
    MultiResponse, OpCode, Request, Response, WatcherEvent, encode_frame,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

use self::checks::*;
use self::inputs::*;

mod checks;
mod inputs;

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
