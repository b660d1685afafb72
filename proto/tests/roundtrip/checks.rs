//! The round-trip checks, and helpers that compute wire layouts independently of the decoder.

use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use corral_proto::{Acl, DecodeError, Jute, Request, Response};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

pub(crate) fn cfg() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

pub(crate) fn decoded<T>(r: Result<T, DecodeError>) -> Result<T, TestCaseError> {
    r.map_err(|e| TestCaseError::fail(format!("decoding failed: {e:?}")))
}

/// `decode(encode(x)) == x`, all bytes consumed, re-encoding identical. Returns the encoding.
pub(crate) fn round_trip_exact<T: Jute + PartialEq + Debug>(value: &T) -> Result<Bytes, TestCaseError> {
    let bytes = value.to_bytes();
    let mut rest: &[u8] = &bytes;
    let back = decoded(T::read(&mut rest))?;
    prop_assert!(rest.is_empty(), "{} bytes left after decoding {:?}", rest.len(), value);
    prop_assert_eq!(&back, value);
    prop_assert_eq!(back.to_bytes(), bytes.clone());
    prop_assert_eq!(decoded(T::from_bytes(&bytes))?, back);
    Ok(bytes)
}

/// [`round_trip_exact`], and with `junk` after the record the decoder stops exactly at its end
/// while `from_bytes` reports the junk as trailing bytes.
pub(crate) fn round_trip<T: Jute + PartialEq + Debug>(value: &T, junk: &[u8]) -> Result<Bytes, TestCaseError> {
    let bytes = round_trip_exact(value)?;
    let mut input = bytes.to_vec();
    input.extend_from_slice(junk);
    let mut rest: &[u8] = &input;
    let back = decoded(T::read(&mut rest))?;
    prop_assert_eq!(rest, junk, "the decoder must stop at the end of the record");
    prop_assert_eq!(&back, value);
    if !junk.is_empty() {
        prop_assert_eq!(T::from_bytes(&input), Err(DecodeError::TrailingBytes(junk.len())));
    }
    Ok(bytes)
}

/// Length of a `ustring`/`buffer` on the wire.
pub(crate) fn wire_len(s: &[u8]) -> usize {
    4 + s.len()
}

pub(crate) fn opt_wire_len(b: &Option<Bytes>) -> usize {
    b.as_ref().map_or(4, |b| wire_len(b))
}

pub(crate) fn acl_wire_len(acl: &[Acl]) -> usize {
    4 + acl.iter().map(|a| 4 + wire_len(a.id.scheme.as_bytes()) + wire_len(a.id.id.as_bytes())).sum::<usize>()
}

pub(crate) fn be32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

pub(crate) fn be64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

pub(crate) fn request_body(req: &Request) -> BytesMut {
    let mut buf = BytesMut::new();
    req.write_body(&mut buf);
    buf
}

pub(crate) fn response_body(resp: &Response) -> BytesMut {
    let mut buf = BytesMut::new();
    resp.write_body(&mut buf);
    buf
}
