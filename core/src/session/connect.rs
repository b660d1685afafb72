//! One connection attempt: resolve the host, open TCP (and TLS), exchange ConnectRequest/ConnectResponse.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use corral_proto::{ConnectRequest, ConnectResponse, FrameDecoder, Jute, encode_frame};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::connect_string::HostPort;
use crate::transport::{ConnectFailure, Dialer, Transport};

/// An established connection, handshake done.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) stream: Transport,
    pub(crate) addr: SocketAddr,
    pub(crate) response: ConnectResponse,
    /// Bytes read past the ConnectResponse (a server may pipeline nothing here, but be safe).
    pub(crate) leftover: BytesMut,
}

/// How a handshake ended.
#[derive(Debug)]
pub(crate) enum Handshake {
    Connected(Connection),
    /// The server answered with timeout 0: the session is expired or unknown.
    Expired {
        addr: SocketAddr,
    },
}

/// What the handshake sends.
#[derive(Debug, Clone)]
pub(crate) struct HandshakeParams {
    pub(crate) session_id: i64,
    pub(crate) password: Bytes,
    pub(crate) last_zxid: i64,
    pub(crate) timeout: Duration,
    pub(crate) read_only: bool,
    pub(crate) max_frame: usize,
}

/// Connects to `host` (resolving its name now) and performs the handshake, all within `limit`.
pub(crate) async fn connect(
    host: &HostPort,
    dialer: &Dialer,
    params: &HandshakeParams,
    limit: Duration,
) -> Result<Handshake, ConnectFailure> {
    let attempt = async {
        let (stream, addr) = dialer.open(host).await?;
        handshake(stream, addr, params).await
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("connection attempt to {host} timed out after {limit:?}").into()),
    }
}

async fn handshake(
    mut stream: Transport,
    addr: SocketAddr,
    params: &HandshakeParams,
) -> Result<Handshake, ConnectFailure> {
    let password = if params.password.is_empty() { Bytes::from_static(&[0; 16]) } else { params.password.clone() };
    let request = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: params.last_zxid,
        timeout: i32::try_from(params.timeout.as_millis()).unwrap_or(i32::MAX),
        session_id: params.session_id,
        passwd: password,
        read_only: Some(params.read_only),
    };
    let mut out = BytesMut::new();
    encode_frame(&mut out, |b| request.write(b));
    stream
        .write_all(&out)
        .await
        .map_err(|e| ConnectFailure::io(format_args!("handshake write to {addr} failed"), &e))?;
    // A TLS stream may hold the request until flushed.
    stream.flush().await.map_err(|e| ConnectFailure::io(format_args!("handshake write to {addr} failed"), &e))?;

    let mut decoder = FrameDecoder::new(params.max_frame);
    let mut buf = BytesMut::with_capacity(64);
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => {
                // Read with the leniency ZooKeeper's reader has: the read-only byte is optional.
                let response = ConnectResponse::read(&mut frame.freeze())
                    .map_err(|e| format!("malformed ConnectResponse from {addr}: {e}"))?;
                if response.timeout <= 0 {
                    return Ok(Handshake::Expired { addr });
                }
                return Ok(Handshake::Connected(Connection { stream, addr, response, leftover: buf }));
            }
            Ok(None) => {}
            Err(e) => return Err(format!("bad handshake frame from {addr}: {e}").into()),
        }
        // With TLS 1.3 a server that refuses our certificate (or the lack of one) says so only
        // now, after the client's side of the TLS handshake has completed.
        let n = stream
            .read_buf(&mut buf)
            .await
            .map_err(|e| ConnectFailure::io(format_args!("handshake read from {addr} failed"), &e))?;
        if n == 0 {
            // ZooKeeper closes without answering when we have seen a newer zxid than it has,
            // or when it is read-only and we did not allow that.
            return Err(format!("{addr} closed the connection during the handshake").into());
        }
    }
}
