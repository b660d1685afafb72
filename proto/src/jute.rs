//! Jute, ZooKeeper's binary record encoding, over [`bytes::Buf`] and [`bytes::BufMut`].
//!
//! Every primitive is big-endian; strings and buffers carry a 4-byte length where `-1` means
//! null; vectors carry a 4-byte element count where `-1` means null; records are their fields
//! back to back, with no tag and no length.
//!
//! Decoding never trusts a length read from the wire: a length larger than the bytes that are
//! left is [`DecodeError::UnexpectedEof`], a negative length other than `-1` is
//! [`DecodeError::InvalidLength`], and no allocation is sized from a wire value before it has
//! been checked against the remaining input.

use bytes::{Buf, BufMut, Bytes};

/// Why a frame or record could not be decoded.
///
/// A decoding error on a connection means the peer speaks something we do not understand:
/// both the client and the server close that connection and nothing else.
///
/// # Examples
///
/// ```
/// use corral_proto::{DecodeError, Jute};
///
/// // A string announcing 5 bytes, with only 2 present.
/// let err = String::from_bytes(&[0, 0, 0, 5, b'h', b'i']).unwrap_err();
/// assert_eq!(err, DecodeError::UnexpectedEof { what: "ustring" });
/// assert_eq!(err.to_string(), "unexpected end of input while reading ustring");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended in the middle of a value.
    #[error("unexpected end of input while reading {what}")]
    UnexpectedEof {
        /// What was being read.
        what: &'static str,
    },
    /// A length or count field is negative (and not the null marker `-1`) or impossible.
    #[error("invalid length {len} for {what}")]
    InvalidLength {
        /// What was being read.
        what: &'static str,
        /// The length found on the wire.
        len: i32,
    },
    /// A string is not valid UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A value that must be one of a fixed set is not.
    #[error("invalid value {value} for {what}")]
    InvalidValue {
        /// What was being read.
        what: &'static str,
        /// The value found on the wire.
        value: i64,
    },
    /// The record was decoded but bytes are left over where none may be.
    #[error("{0} trailing bytes after the record")]
    TrailingBytes(usize),
}

/// A value with a jute encoding: a primitive, a string, a buffer, a vector or a record.
///
/// Implemented for every record in this crate. `write` never fails; `read` fails with a
/// [`DecodeError`] and never panics, whatever the input.
///
/// # Examples
///
/// ```
/// use corral_proto::Jute;
/// use corral_proto::records::PathAndWatch;
///
/// let request = PathAndWatch { path: "/a".into(), watch: true };
/// // A ustring (4-byte length, then UTF-8), then a boolean byte.
/// assert_eq!(request.to_bytes().as_ref(), &[0, 0, 0, 2, b'/', b'a', 1]);
/// assert_eq!(PathAndWatch::from_bytes(&request.to_bytes())?, request);
/// # Ok::<(), corral_proto::DecodeError>(())
/// ```
pub trait Jute: Sized {
    /// Appends the encoding of `self` to `buf`.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use corral_proto::Jute;
    ///
    /// let mut buf = BytesMut::new();
    /// 1i32.write(&mut buf);
    /// "/a".to_owned().write(&mut buf);
    /// assert_eq!(buf.as_ref(), &[0, 0, 0, 1, 0, 0, 0, 2, b'/', b'a']);
    /// ```
    fn write<B: BufMut>(&self, buf: &mut B);

    /// Reads one value from the front of `buf`.
    ///
    /// `buf` is advanced past the value; what follows is left for the next read.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] if `buf` does not start with a valid encoding.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::Jute;
    ///
    /// let mut buf: &[u8] = &[0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 9];
    /// assert_eq!(i32::read(&mut buf)?, 7);
    /// assert_eq!(i64::read(&mut buf)?, 9);
    /// assert!(buf.is_empty());
    /// assert!(i32::read(&mut buf).is_err());
    /// # Ok::<(), corral_proto::DecodeError>(())
    /// ```
    fn read<B: Buf>(buf: &mut B) -> Result<Self, DecodeError>;

    /// Encodes `self` into a fresh [`Bytes`].
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::Bytes;
    /// use corral_proto::Jute;
    ///
    /// // Null and empty buffers differ on the wire.
    /// assert_eq!(None::<Bytes>.to_bytes().as_ref(), &[0xff, 0xff, 0xff, 0xff]);
    /// assert_eq!(Some(Bytes::new()).to_bytes().as_ref(), &[0, 0, 0, 0]);
    /// ```
    fn to_bytes(&self) -> Bytes {
        let mut out = bytes::BytesMut::new();
        self.write(&mut out);
        out.freeze()
    }

    /// Decodes a value that must fill `bytes` exactly.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] if the bytes are not a valid encoding, or
    /// [`DecodeError::TrailingBytes`] if bytes are left over.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::{DecodeError, Jute};
    ///
    /// assert_eq!(i32::from_bytes(&[0, 0, 0, 42]), Ok(42));
    /// assert_eq!(i32::from_bytes(&[0, 0, 0, 42, 0]), Err(DecodeError::TrailingBytes(1)));
    /// ```
    fn from_bytes(mut bytes: &[u8]) -> Result<Self, DecodeError> {
        let value = Self::read(&mut bytes)?;
        if bytes.is_empty() { Ok(value) } else { Err(DecodeError::TrailingBytes(bytes.len())) }
    }
}

fn need<B: Buf>(buf: &B, n: usize, what: &'static str) -> Result<(), DecodeError> {
    if buf.remaining() < n { Err(DecodeError::UnexpectedEof { what }) } else { Ok(()) }
}

/// Reads a length prefix: `Ok(None)` for the null marker `-1`, otherwise a length that fits in
/// what is left of `buf` (each element taking at least `min_elem` bytes).
pub(crate) fn read_len<B: Buf>(buf: &mut B, min_elem: usize, what: &'static str) -> Result<Option<usize>, DecodeError> {
    let len = i32::read(buf)?;
    if len == -1 {
        return Ok(None);
    }
    if len < 0 {
        return Err(DecodeError::InvalidLength { what, len });
    }
    let n = len as usize;
    if n.saturating_mul(min_elem) > buf.remaining() {
        return Err(DecodeError::UnexpectedEof { what });
    }
    Ok(Some(n))
}

impl Jute for i32 {
    fn write<B: BufMut>(&self, buf: &mut B) {
        buf.put_i32(*self);
    }
    fn read<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        need(buf, 4, "int")?;
        Ok(buf.get_i32())
    }
}

impl Jute for i64 {
    fn write<B: BufMut>(&self, buf: &mut B) {
        buf.put_i64(*self);
    }
    fn read<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        need(buf, 8, "long")?;
        Ok(buf.get_i64())
    }
}

impl Jute for bool {
    fn write<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(u8::from(*self));
    }
    /// Any non-zero byte reads as `true`, as ZooKeeper's reader does.
    fn read<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        need(buf, 1, "boolean")?;
        Ok(buf.get_u8() != 0)
    }
}

/// A non-null `ustring`. A null string on the wire reads as the empty string.
impl Jute for String {
    fn write<B: BufMut>(&self, buf: &mut B) {
        write_str(self, buf);
    }
    fn read<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        Ok(Option::<String>::read(buf)?.unwrap_or_default())
    }
}

/// Writes a non-null `ustring`: a 4-byte length, then the UTF-8 bytes.
///
/// The same encoding as `String::write`, without needing an owned `String`.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use corral_proto::jute::write_str;
///
/// let mut buf = BytesMut::new();
/// write_str("/ü", &mut buf);
/// assert_eq!(buf.as_ref(), &[0, 0, 0, 3, b'/', 0xc3, 0xbc]);
/// ```
pub fn write_str<B: BufMut>(s: &str, buf: &mut B) {
    buf.put_i32(s.len() as i32);
    buf.put_slice(s.as_bytes());
}

/// A nullable `ustring`.
impl Jute for Option<String> {
    fn write<B: BufMut>(&self, buf: &mut B) {
        match self {
            Some(s) => write_str(s, buf),
            None => buf.put_i32(-1),
        }
    }
    fn read<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        let Some(len) = read_len(buf, 1, "ustring")? else {
            return Ok(None);
        };
        let mut raw = vec![0; len];
        buf.copy_to_slice(&mut raw);
        String::from_utf8(raw).map(Some).map_err(|_| DecodeError::InvalidUtf8)
    }
}

/// A nullable `buffer`. Null and empty are different values (ZooKeeper keeps null node data).
impl Jute for Option<Bytes> {
    fn write<B: BufMut>(&self, buf: &mut B) {
        match self {
            Some(b) => {
                buf.put_i32(b.len() as i32);
                buf.put_slice(b);
            }
            None => buf.put_i32(-1),
        }
    }
    fn read<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        let Some(len) = read_len(buf, 1, "buffer")? else {
            return Ok(None);
        };
        Ok(Some(buf.copy_to_bytes(len)))
    }
}

/// A non-null `buffer`. A null buffer on the wire reads as empty.
impl Jute for Bytes {
    fn write<B: BufMut>(&self, buf: &mut B) {
        buf.put_i32(self.len() as i32);
        buf.put_slice(self);
    }
    fn read<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        Ok(Option::<Bytes>::read(buf)?.unwrap_or_default())
    }
}

/// A `vector<T>`. A null vector on the wire reads as empty; an empty vector is written as count 0.
impl<T: Jute> Jute for Vec<T> {
    fn write<B: BufMut>(&self, buf: &mut B) {
        buf.put_i32(self.len() as i32);
        for item in self {
            item.write(buf);
        }
    }
    fn read<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        // Every element of every vector in the protocol takes at least one byte.
        let Some(n) = read_len(buf, 1, "vector")? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            out.push(T::read(buf)?);
        }
        Ok(out)
    }
}

/// Declares a jute record: a struct whose fields are encoded in declaration order.
macro_rules! record {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $crate::jute::Jute for $name {
            #[allow(unused_variables)]
            fn write<B: ::bytes::BufMut>(&self, buf: &mut B) {
                $( $crate::jute::Jute::write(&self.$field, buf); )*
            }
            #[allow(unused_variables)]
            fn read<B: ::bytes::Buf>(buf: &mut B) -> Result<Self, $crate::jute::DecodeError> {
                Ok(Self { $( $field: $crate::jute::Jute::read(buf)?, )* })
            }
        }
    };
}
pub(crate) use record;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_empty_buffers_differ() {
        assert_eq!(None::<Bytes>.to_bytes().as_ref(), &[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(Some(Bytes::new()).to_bytes().as_ref(), &[0, 0, 0, 0]);
        assert_eq!(Option::<Bytes>::from_bytes(&[0xff, 0xff, 0xff, 0xff]), Ok(None));
        assert_eq!(Option::<Bytes>::from_bytes(&[0, 0, 0, 0]), Ok(Some(Bytes::new())));
    }

    #[test]
    fn lengths_are_checked_before_allocating() {
        // A 2 GiB string in a 4-byte frame must fail cleanly.
        assert_eq!(String::from_bytes(&[0x7f, 0xff, 0xff, 0xff]), Err(DecodeError::UnexpectedEof { what: "ustring" }));
        assert_eq!(
            Vec::<i64>::from_bytes(&[0x7f, 0xff, 0xff, 0xff]),
            Err(DecodeError::UnexpectedEof { what: "vector" })
        );
        assert_eq!(
            String::from_bytes(&[0xff, 0xff, 0xff, 0xfe]),
            Err(DecodeError::InvalidLength { what: "ustring", len: -2 })
        );
        assert_eq!(String::from_bytes(&[0, 0, 0, 1, 0xff]), Err(DecodeError::InvalidUtf8));
    }

    #[test]
    fn booleans_read_leniently() {
        assert_eq!(bool::from_bytes(&[7]), Ok(true));
        assert_eq!(bool::from_bytes(&[0]), Ok(false));
        assert_eq!(true.to_bytes().as_ref(), &[1]);
    }

    #[test]
    fn trailing_bytes_are_reported() {
        assert_eq!(i32::from_bytes(&[0, 0, 0, 1, 9]), Err(DecodeError::TrailingBytes(1)));
    }
}
