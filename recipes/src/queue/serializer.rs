//! Item serialization: the [`QueueSerializer`] trait (one item to bytes and back) and Curator's
//! `ItemSerializer` message format, which packs one or more serialized items into a node's data.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The version word Curator's `ItemSerializer` writes first: `0x00010001`.
pub const MESSAGE_VERSION: i32 = 0x0001_0001;
const ITEM_OPCODE: u8 = 0x01;
const EOF_OPCODE: u8 = 0x02;

/// Turns a queue item into bytes and back (Curator's `QueueSerializer`).
///
/// The bytes of each item are wrapped in Curator's message format (see [`encode_message`]) before
/// they are stored, so a serializer only deals with one item. Use [`BytesSerializer`] for raw
/// bytes, or implement this trait for your own type.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use corral_recipes::queue::QueueSerializer;
///
/// /// UTF-8 strings, as Curator users often write them.
/// #[derive(Debug)]
/// struct Utf8;
///
/// impl QueueSerializer for Utf8 {
///     type Item = String;
///
///     fn serialize(&self, item: &String) -> Bytes {
///         Bytes::copy_from_slice(item.as_bytes())
///     }
///
///     fn deserialize(&self, bytes: Bytes) -> Result<String, corral_recipes::queue::SerializeError> {
///         String::from_utf8(bytes.to_vec()).map_err(corral_recipes::queue::SerializeError::new)
///     }
/// }
///
/// assert_eq!(Utf8.deserialize(Utf8.serialize(&"job-1".to_string()))?, "job-1");
/// # Ok::<(), corral_recipes::queue::SerializeError>(())
/// ```
pub trait QueueSerializer: fmt::Debug + Send + Sync + 'static {
    /// The item type.
    type Item: Send + 'static;

    /// The bytes of `item`.
    fn serialize(&self, item: &Self::Item) -> Bytes;

    /// The item these bytes were made from.
    ///
    /// # Errors
    ///
    /// [`SerializeError`] for bytes that are not an item. The consumer logs it and discards
    /// the message, as Curator does with a corrupted one.
    fn deserialize(&self, bytes: Bytes) -> Result<Self::Item, SerializeError>;
}

/// The default serializer: items are raw [`Bytes`], stored as they are.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use corral_recipes::queue::{BytesSerializer, QueueSerializer};
///
/// let bytes = BytesSerializer.serialize(&Bytes::from_static(b"job-1"));
/// assert_eq!(&bytes[..], b"job-1");
/// assert_eq!(BytesSerializer.deserialize(bytes)?, Bytes::from_static(b"job-1"));
/// # Ok::<(), corral_recipes::queue::SerializeError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerializer;

impl QueueSerializer for BytesSerializer {
    type Item = Bytes;

    fn serialize(&self, item: &Bytes) -> Bytes {
        item.clone()
    }

    fn deserialize(&self, bytes: Bytes) -> Result<Bytes, SerializeError> {
        Ok(bytes)
    }
}

/// Bytes that are not a queue item or message.
///
/// # Examples
///
/// ```
/// use corral_recipes::queue::{SerializeError, decode_message};
///
/// let err: SerializeError = decode_message(&[0, 0, 0, 9]).unwrap_err();
/// assert!(err.to_string().contains("version"));
/// ```
#[derive(Debug)]
pub struct SerializeError(Box<dyn std::error::Error + Send + Sync>);

impl SerializeError {
    /// Wraps the cause.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_recipes::queue::SerializeError;
    ///
    /// let err = SerializeError::new("not UTF-8");
    /// assert_eq!(err.to_string(), "not UTF-8");
    /// ```
    pub fn new(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(cause.into())
    }
}

impl fmt::Display for SerializeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SerializeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Packs serialized items into one message, byte for byte as Curator's `ItemSerializer`:
/// the version int `0x00010001`, then for each item the byte `0x01`, its length as an int and its
/// bytes, then the byte `0x02`; ints big-endian.
///
/// # Examples
///
/// ```
/// use corral_recipes::queue::encode_message;
///
/// let message = encode_message([&b"hi"[..]]);
/// assert_eq!(&message[..], &[0, 1, 0, 1, 0x01, 0, 0, 0, 2, b'h', b'i', 0x02]);
/// ```
pub fn encode_message<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Bytes {
    let mut out = BytesMut::with_capacity(64);
    out.put_i32(MESSAGE_VERSION);
    for item in items {
        out.put_u8(ITEM_OPCODE);
        // A node's data is far below 2 GiB (ZooKeeper's jute.maxbuffer), so the length fits.
        out.put_i32(i32::try_from(item.len()).unwrap_or(i32::MAX));
        out.put_slice(item);
    }
    out.put_u8(EOF_OPCODE);
    out.freeze()
}

/// Unpacks a message written by [`encode_message`] or by Curator into the items' bytes.
///
/// As Curator, anything after the end marker is ignored.
///
/// # Errors
///
/// [`SerializeError`] for a wrong version, an unknown opcode, a negative length or a message cut
/// short.
///
/// # Examples
///
/// ```
/// use corral_recipes::queue::{decode_message, encode_message};
///
/// let items = decode_message(&encode_message([&b"a"[..], &b""[..], &b"ccc"[..]]))?;
/// assert_eq!(items, [&b"a"[..], &b""[..], &b"ccc"[..]]);
/// # Ok::<(), corral_recipes::queue::SerializeError>(())
/// ```
pub fn decode_message(message: &[u8]) -> Result<Vec<Bytes>, SerializeError> {
    let bytes = Bytes::copy_from_slice(message);
    decode_bytes(bytes)
}

pub(crate) fn decode_bytes(mut buf: Bytes) -> Result<Vec<Bytes>, SerializeError> {
    let short = || SerializeError::new("queue message cut short");
    if buf.remaining() < 4 {
        return Err(short());
    }
    let version = buf.get_i32();
    if version != MESSAGE_VERSION {
        return Err(SerializeError::new(format!(
            "incorrect queue message version: expected {MESSAGE_VERSION:#010x}, found {version:#010x}"
        )));
    }
    let mut items = Vec::new();
    loop {
        if !buf.has_remaining() {
            return Err(short());
        }
        match buf.get_u8() {
            EOF_OPCODE => return Ok(items),
            ITEM_OPCODE => {}
            other => return Err(SerializeError::new(format!("incorrect queue message opcode {other:#04x}"))),
        }
        if buf.remaining() < 4 {
            return Err(short());
        }
        let len = buf.get_i32();
        let len = usize::try_from(len).map_err(|_| SerializeError::new(format!("bad item size {len}")))?;
        if buf.remaining() < len {
            return Err(short());
        }
        items.push(buf.split_to(len));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by Curator 5.4's `ItemSerializer.serialize` for the items "a" and "bc" (the
    /// interop test checks the same bytes against a node Curator wrote).
    const CURATOR_A_BC: [u8; 17] = [0, 1, 0, 1, 1, 0, 0, 0, 1, b'a', 1, 0, 0, 0, 2, b'b', b'c'];

    #[test]
    fn matches_curators_bytes() {
        let mut expected = CURATOR_A_BC.to_vec();
        expected.push(2);
        assert_eq!(&encode_message([&b"a"[..], &b"bc"[..]])[..], &expected[..]);
        assert_eq!(&encode_message(std::iter::empty())[..], &[0, 1, 0, 1, 2]);
        assert_eq!(decode_message(&expected).unwrap(), [&b"a"[..], &b"bc"[..]]);
    }

    #[test]
    fn refuses_what_curator_refuses() {
        assert!(decode_message(&CURATOR_A_BC).is_err(), "no end marker");
        assert!(decode_message(&[0, 1, 0, 2, 2]).is_err(), "version");
        assert!(decode_message(&[0, 1, 0, 1, 3]).is_err(), "opcode");
        assert!(decode_message(&[0, 1, 0, 1, 1, 0xff, 0xff, 0xff, 0xff, 2]).is_err(), "negative size");
        assert!(decode_message(&[0, 1, 0, 1, 1, 0, 0, 0, 5, 1, 2]).is_err(), "short item");
        // Trailing bytes after the end marker are ignored, as DataInputStream leaves them.
        assert_eq!(decode_message(&[0, 1, 0, 1, 2, 9, 9]).unwrap().len(), 0);
    }
}
