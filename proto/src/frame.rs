//! Framing: every message is a 4-byte big-endian length, then that many bytes.
//!
//! [`FrameDecoder`] splits a byte stream into frames and refuses lengths that are negative or
//! above the limit (`jute.maxbuffer`, 1 MiB − 1 by default); the caller closes the connection on
//! [`FrameError`]. [`encode_frame`] writes one frame. [`four_letter_word`] recognises the admin
//! commands a server must answer when they arrive in place of the first length.

use bytes::{Buf, BufMut, BytesMut};

/// ZooKeeper's default `jute.maxbuffer`: the largest frame payload, 1 MiB − 1.
///
/// # Examples
///
/// ```
/// use corral_proto::{DEFAULT_MAX_FRAME, FrameDecoder};
///
/// assert_eq!(DEFAULT_MAX_FRAME, 1024 * 1024 - 1);
/// assert_eq!(FrameDecoder::default().max(), DEFAULT_MAX_FRAME);
/// ```
pub const DEFAULT_MAX_FRAME: usize = 0xFFFFF;

/// The most [`FrameDecoder::decode`] reserves ahead of the bytes that have arrived, so that a
/// peer cannot make us allocate a whole frame's worth of memory by sending just a length.
const MAX_RESERVE_AHEAD: usize = 8 * 1024;

/// A frame the peer sent cannot be accepted; the connection must be closed.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use corral_proto::{FrameDecoder, FrameError};
///
/// let mut buf = BytesMut::from(&(-1i32).to_be_bytes()[..]);
/// let err = FrameDecoder::default().decode(&mut buf).unwrap_err();
/// assert_eq!(err, FrameError::NegativeLength(-1));
/// assert_eq!(err.to_string(), "negative frame length -1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix is above the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The length prefix is negative.
    #[error("negative frame length {0}")]
    NegativeLength(i32),
}

/// Splits a byte stream into frame payloads.
///
/// Feed it the bytes as they arrive and call [`FrameDecoder::decode`] until it returns
/// `Ok(None)`. With the `codec` feature it is also a `tokio_util` `Decoder` (and an `Encoder`
/// of payloads).
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use corral_proto::FrameDecoder;
///
/// let mut decoder = FrameDecoder::default();
/// let mut buf = BytesMut::new();
/// buf.extend_from_slice(&[0, 0, 0, 2, b'h']); // half a frame
/// assert_eq!(decoder.decode(&mut buf)?, None);
/// buf.extend_from_slice(&[b'i', 0, 0, 0, 0]); // its end, and an empty frame
/// assert_eq!(decoder.decode(&mut buf)?.as_deref(), Some(&b"hi"[..]));
/// assert_eq!(decoder.decode(&mut buf)?.as_deref(), Some(&b""[..]));
/// assert_eq!(decoder.decode(&mut buf)?, None);
/// # Ok::<(), corral_proto::FrameError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDecoder {
    max: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl FrameDecoder {
    /// A decoder accepting payloads of at most `max` bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use corral_proto::{FrameDecoder, FrameError};
    ///
    /// let mut decoder = FrameDecoder::new(16);
    /// let mut buf = BytesMut::from(&17i32.to_be_bytes()[..]);
    /// assert_eq!(decoder.decode(&mut buf), Err(FrameError::TooLarge { len: 17, max: 16 }));
    /// ```
    pub const fn new(max: usize) -> Self {
        Self { max }
    }

    /// The largest payload accepted.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::FrameDecoder;
    ///
    /// assert_eq!(FrameDecoder::new(4096).max(), 4096);
    /// ```
    pub const fn max(&self) -> usize {
        self.max
    }

    /// Takes one whole frame's payload off the front of `buf`, or returns `Ok(None)` if the frame
    /// is not complete yet. In that case it reserves room for the rest of the frame, but at most
    /// 8 KiB: the buffer grows with the bytes that arrive, not with the length announced.
    ///
    /// # Errors
    ///
    /// [`FrameError`] if the length prefix is negative or above the limit. The length is checked
    /// as soon as its 4 bytes are there, before the payload arrives.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use corral_proto::FrameDecoder;
    ///
    /// let mut decoder = FrameDecoder::default();
    /// // A peer announcing a 1 MiB − 1 frame and sending nothing more.
    /// let mut buf = BytesMut::from(&0xFFFFFi32.to_be_bytes()[..]);
    /// assert_eq!(decoder.decode(&mut buf)?, None);
    /// assert!(buf.capacity() < 16 * 1024); // room for what may come next, not for 1 MiB
    /// # Ok::<(), corral_proto::FrameError>(())
    /// ```
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if len < 0 {
            return Err(FrameError::NegativeLength(len));
        }
        let len = len as usize;
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        if buf.len() < 4 + len {
            buf.reserve((4 + len - buf.len()).min(MAX_RESERVE_AHEAD));
            return Ok(None);
        }
        buf.advance(4);
        Ok(Some(buf.split_to(len)))
    }
}

/// Appends one frame to `buf`: a length placeholder, whatever `body` writes, then the real
/// length. Returns the payload length (the caller checks it against its limit).
///
/// # Examples
///
/// ```
/// use bytes::{BufMut, BytesMut};
/// use corral_proto::encode_frame;
///
/// let mut buf = BytesMut::new();
/// let len = encode_frame(&mut buf, |b| b.put_slice(b"ruok?"));
/// assert_eq!(len, 5);
/// assert_eq!(buf.as_ref(), b"\0\0\0\x05ruok?");
/// ```
pub fn encode_frame(buf: &mut BytesMut, body: impl FnOnce(&mut BytesMut)) -> usize {
    let start = buf.len();
    buf.put_i32(0);
    body(buf);
    let len = buf.len() - start - 4;
    buf[start..start + 4].copy_from_slice(&(len as i32).to_be_bytes());
    len
}

/// The four-letter admin commands ZooKeeper answers on its client port.
///
/// # Examples
///
/// ```
/// use corral_proto::frame::FOUR_LETTER_WORDS;
///
/// assert!(FOUR_LETTER_WORDS.contains(&"ruok"));
/// assert!(FOUR_LETTER_WORDS.iter().all(|w| w.len() == 4));
/// ```
pub const FOUR_LETTER_WORDS: &[&str] = &[
    "conf", "cons", "crst", "dump", "envi", "ruok", "srst", "srvr", "stat", "wchs", "wchc", "wchp", "mntr", "isro",
    "gtmk", "stmk", "dirs", "hash",
];

/// The four-letter word spelled by the first four bytes of a connection, if any.
///
/// ASCII letters make a length ≥ 0x61000000, far above any frame limit, so this cannot clash
/// with a real length.
///
/// # Examples
///
/// ```
/// use corral_proto::four_letter_word;
///
/// assert_eq!(four_letter_word(*b"srvr"), Some("srvr"));
/// assert_eq!(four_letter_word([0, 0, 0, 44]), None); // a frame length
/// ```
pub fn four_letter_word(first: [u8; 4]) -> Option<&'static str> {
    FOUR_LETTER_WORDS.iter().copied().find(|w| w.as_bytes() == first)
}

#[cfg(feature = "codec")]
mod codec {
    use bytes::{Bytes, BytesMut};

    use super::{FrameDecoder, FrameError};

    /// An I/O error or a refused frame.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::{Bytes, BytesMut};
    /// use corral_proto::FrameDecoder;
    /// use corral_proto::frame::CodecError;
    /// use tokio_util::codec::Encoder;
    ///
    /// let mut codec = FrameDecoder::new(2);
    /// let err = codec.encode(Bytes::from_static(b"abc"), &mut BytesMut::new()).unwrap_err();
    /// assert!(matches!(err, CodecError::Frame(_)));
    /// ```
    #[derive(Debug, thiserror::Error)]
    pub enum CodecError {
        /// The transport failed.
        #[error(transparent)]
        Io(#[from] std::io::Error),
        /// The peer sent a frame we refuse.
        #[error(transparent)]
        Frame(#[from] FrameError),
    }

    impl tokio_util::codec::Decoder for FrameDecoder {
        type Item = BytesMut;
        type Error = CodecError;
        fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, CodecError> {
            Ok(FrameDecoder::decode(self, src)?)
        }
    }

    impl tokio_util::codec::Encoder<Bytes> for FrameDecoder {
        type Error = CodecError;
        fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
            if item.len() > self.max() {
                return Err(FrameError::TooLarge { len: item.len(), max: self.max() }.into());
            }
            super::encode_frame(dst, |b| b.extend_from_slice(&item));
            Ok(())
        }
    }
}

#[cfg(feature = "codec")]
pub use codec::CodecError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_partial_and_whole_frames() {
        let mut d = FrameDecoder::default();
        let mut buf = BytesMut::from(&[0, 0, 0, 3, 1, 2][..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        buf.extend_from_slice(&[3, 0, 0, 0, 0]);
        assert_eq!(d.decode(&mut buf).unwrap().unwrap().as_ref(), &[1, 2, 3]);
        assert_eq!(d.decode(&mut buf).unwrap().unwrap().as_ref(), &[] as &[u8]);
        assert!(buf.is_empty());
    }

    #[test]
    fn limit_is_one_mib_minus_one() {
        let mut d = FrameDecoder::default();
        let mut ok = BytesMut::from(&0xFFFFFi32.to_be_bytes()[..]);
        assert_eq!(d.decode(&mut ok), Ok(None));
        let mut big = BytesMut::from(&0x100000i32.to_be_bytes()[..]);
        assert_eq!(d.decode(&mut big), Err(FrameError::TooLarge { len: 0x100000, max: 0xFFFFF }));
        let mut neg = BytesMut::from(&(-5i32).to_be_bytes()[..]);
        assert_eq!(d.decode(&mut neg), Err(FrameError::NegativeLength(-5)));
    }

    #[test]
    fn encodes_with_length() {
        let mut buf = BytesMut::new();
        assert_eq!(encode_frame(&mut buf, |b| b.put_slice(b"abc")), 3);
        assert_eq!(buf.as_ref(), &[0, 0, 0, 3, b'a', b'b', b'c']);
    }

    #[test]
    fn recognises_four_letter_words() {
        assert_eq!(four_letter_word(*b"ruok"), Some("ruok"));
        assert_eq!(four_letter_word(*b"xyzw"), None);
    }
}
