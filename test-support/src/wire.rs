//! Just enough of the ZooKeeper client protocol to probe a server: four-letter words, and
//! one persistent create on a short-lived session. The real client lives in `corral-core`;
//! this crate must not depend on it (it is what that client is tested with).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// `NodeExists` (−110): the node is already there.
pub(crate) const NODE_EXISTS: i32 = -110;

const OP_CREATE: i32 = 1;
const OP_CLOSE_SESSION: i32 = -11;
const PERMS_ALL: i32 = 31;
/// Largest reply frame we accept; ZooKeeper's own default `jute.maxbuffer`.
const MAX_FRAME: usize = 0xFFFFF;

/// Sends a four-letter word as the first bytes of a fresh connection and returns the plain-text reply.
pub(crate) fn four_letter(addr: SocketAddr, word: &str, timeout: Duration) -> io::Result<String> {
    if word.len() != 4 || !word.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a four-letter word is four lower-case ASCII letters, not {word:?}"),
        ));
    }
    let mut stream = connect(addr, timeout)?;
    stream.write_all(word.as_bytes())?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply)?;
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// Opens a new session, creates `path` as an empty persistent node open to everyone, and closes the session.
///
/// Returns the create's error code as the server sent it (0, or for instance [`NODE_EXISTS`]).
pub(crate) fn create_persistent(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<i32> {
    let mut stream = connect(addr, timeout)?;

    // ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId, passwd (16 zero bytes), readOnly.
    let mut connect = Vec::with_capacity(45);
    put_i32(&mut connect, 0);
    put_i64(&mut connect, 0);
    put_i32(&mut connect, duration_ms(timeout));
    put_i64(&mut connect, 0);
    put_bytes(&mut connect, &[0; 16]);
    connect.push(0);
    write_frame(&mut stream, &connect)?;
    let response = read_frame(&mut stream)?;
    if get_i32(&response, 4)? <= 0 {
        return Err(protocol_error(format!(
            "the server refused to open a session (ConnectResponse of {} bytes with timeout <= 0)",
            response.len()
        )));
    }

    // RequestHeader + CreateRequest{path, data = empty, acl = OPEN_ACL_UNSAFE, flags = persistent}.
    let mut create = Vec::new();
    put_i32(&mut create, 1);
    put_i32(&mut create, OP_CREATE);
    put_bytes(&mut create, path.as_bytes());
    put_bytes(&mut create, &[]);
    put_i32(&mut create, 1);
    put_i32(&mut create, PERMS_ALL);
    put_bytes(&mut create, b"world");
    put_bytes(&mut create, b"anyone");
    put_i32(&mut create, 0);
    write_frame(&mut stream, &create)?;
    let reply = read_frame(&mut stream)?;
    let xid = get_i32(&reply, 0)?;
    if xid != 1 {
        return Err(protocol_error(format!("expected the reply to xid 1, got xid {xid}")));
    }
    let err = get_i32(&reply, 12)?;

    // closeSession, so the session does not linger until it expires. Its reply does not matter.
    let mut close = Vec::with_capacity(8);
    put_i32(&mut close, 2);
    put_i32(&mut close, OP_CLOSE_SESSION);
    if write_frame(&mut stream, &close).is_ok() {
        let _ = read_frame(&mut stream);
    }
    Ok(err)
}

fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn duration_ms(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}

fn write_frame(stream: &mut TcpStream, payload: &[u8]) -> io::Result<()> {
    let len = i32::try_from(payload.len()).map_err(|_| protocol_error("frame too large".to_owned()))?;
    let mut frame = Vec::with_capacity(4 + payload.len());
    put_i32(&mut frame, len);
    frame.extend_from_slice(payload);
    stream.write_all(&frame)
}

fn read_frame(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0; 4];
    stream.read_exact(&mut len)?;
    let len = i32::from_be_bytes(len);
    let len = usize::try_from(len)
        .ok()
        .filter(|&len| len <= MAX_FRAME)
        .ok_or_else(|| protocol_error(format!("bad frame length {len}")))?;
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload)?;
    Ok(payload)
}

fn put_i32(out: &mut Vec<u8>, value: i32) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_i64(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// A jute `buffer` or `ustring`: an `int` length, then the bytes.
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Everything this module sends is tiny; a length beyond i32 cannot occur.
    put_i32(out, i32::try_from(bytes.len()).unwrap_or(i32::MAX));
    out.extend_from_slice(bytes);
}

fn get_i32(bytes: &[u8], at: usize) -> io::Result<i32> {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_be_bytes)
        .ok_or_else(|| protocol_error(format!("reply of {} bytes is too short", bytes.len())))
}

fn protocol_error(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_letter_words_are_checked_before_connecting() {
        // Port 9 (discard) is never contacted: the word is rejected first.
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        for word in ["", "ruo", "ruokk", "RUOK", "ru k"] {
            let err = four_letter(addr, word, Duration::from_millis(10)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{word:?}");
        }
    }

    #[test]
    fn jute_encodings() {
        let mut out = Vec::new();
        put_i32(&mut out, -2);
        put_i64(&mut out, 1);
        put_bytes(&mut out, b"ab");
        assert_eq!(out, [0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, b'a', b'b']);
        assert_eq!(get_i32(&out, 0).unwrap(), -2);
        assert!(get_i32(&out, 15).is_err());
    }
}
