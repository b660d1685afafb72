//! Just enough of the ZooKeeper protocol, by hand, for the blocking probes and the minimal clients.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use corral_proto::{ConnectRequest, ConnectResponse, Jute as _, OpCode, RequestHeader, encode_frame};

/// A framed ConnectRequest for a new session.
pub(super) fn connect_frame(timeout_ms: i32) -> Bytes {
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout: timeout_ms,
        session_id: 0,
        passwd: Bytes::from_static(&[0; 16]),
        read_only: Some(false),
    };
    let mut buf = BytesMut::new();
    encode_frame(&mut buf, |b| req.write(b));
    buf.freeze()
}

/// A framed request with a header and no body (ping, closeSession).
pub(super) fn header_frame(xid: i32, op: OpCode) -> Bytes {
    let mut buf = BytesMut::new();
    encode_frame(&mut buf, |b| RequestHeader { xid, op }.write(b));
    buf.freeze()
}

/// One frame's payload, from a blocking stream.
pub(super) fn read_frame_blocking(s: &mut StdTcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = usize::try_from(i32::from_be_bytes(len))
        .ok()
        .filter(|&n| n <= 1 << 20)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad frame length"))?;
    let mut body = vec![0; len];
    s.read_exact(&mut body)?;
    Ok(body)
}

/// Connects, opens a session, checks the answer grants it, then closes the session. `wait`
/// bounds the connect and each read.
pub(super) fn handshake_blocking(addr: &SocketAddr, wait: Duration) -> Result<(), String> {
    let mut s = StdTcpStream::connect_timeout(addr, wait).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(wait)).map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    s.write_all(&connect_frame(10_000)).map_err(|e| e.to_string())?;
    let body = read_frame_blocking(&mut s).map_err(|e| e.to_string())?;
    let resp = ConnectResponse::read(&mut &body[..]).map_err(|e| e.to_string())?;
    if resp.timeout <= 0 || resp.session_id == 0 {
        return Err("session refused".to_owned());
    }
    // Not timed: close the session so that ZooKeeper does not keep it until it expires.
    if s.write_all(&header_frame(1, OpCode::CloseSession)).is_ok() {
        let _ = read_frame_blocking(&mut s);
    }
    Ok(())
}

/// A four-letter word, blocking; `wait` bounds the connect and each read.
pub(super) fn four_letter_word_blocking(addr: &SocketAddr, word: &str, wait: Duration) -> std::io::Result<String> {
    let mut s = StdTcpStream::connect_timeout(addr, wait)?;
    s.set_read_timeout(Some(wait))?;
    s.write_all(word.as_bytes())?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[cfg(test)]
mod tests {
    use corral_proto::xid;

    use super::*;

    #[test]
    fn frames() {
        // Ping: length 8, xid -2, op 11.
        assert_eq!(&header_frame(xid::PING, OpCode::Ping)[..], &[0, 0, 0, 8, 255, 255, 255, 254, 0, 0, 0, 11]);
        // ConnectRequest: 4 + 8 + 4 + 8 + (4 + 16) + 1 bytes.
        assert_eq!(connect_frame(10_000).len(), 4 + 45);
    }
}
