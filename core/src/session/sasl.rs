//! The SASL exchange at the start of a connection: before credentials, watches and queued
//! requests, so that all of them run with the SASL identity (the Java client holds its
//! outgoing queue the same way while `clientTunneledAuthenticationInProgress`).

use std::time::Duration;

use bytes::BytesMut;
use corral_proto::records::SaslToken;
use corral_proto::{ErrorCode, FrameDecoder, Jute, OpCode, ReplyHeader, RequestHeader, encode_frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::sasl::{Mechanism, Step};

/// How an exchange failed.
#[derive(Debug)]
pub(super) enum SaslEnd {
    /// The server refused the credentials (AUTH_FAILED, or SESSIONCLOSEDREQUIRESASLAUTH).
    AuthFailed,
    /// The mechanism could not go on: the server's token made no sense, or failed to prove the
    /// server knows the password. Ends the session like a refusal, with this reason.
    Mechanism(String),
    /// The connection failed meanwhile.
    Disconnected(String),
}

/// Runs one step of `mechanism`: on the blocking pool if it may block.
async fn run<T: Send + 'static>(
    mechanism: &mut Option<Box<dyn Mechanism>>,
    f: impl FnOnce(&mut dyn Mechanism) -> Result<T, String> + Send + 'static,
) -> Result<T, SaslEnd> {
    let Some(mut m) = mechanism.take() else {
        return Err(SaslEnd::Mechanism("the SASL mechanism failed in an earlier step".into()));
    };
    if !m.blocking() {
        let result = f(m.as_mut());
        *mechanism = Some(m);
        return result.map_err(SaslEnd::Mechanism);
    }
    let joined = tokio::task::spawn_blocking(move || {
        let result = f(m.as_mut());
        (m, result)
    })
    .await;
    match joined {
        Ok((m, result)) => {
            *mechanism = Some(m);
            result.map_err(SaslEnd::Mechanism)
        }
        Err(e) => Err(SaslEnd::Mechanism(format!("the SASL mechanism failed: {e}"))),
    }
}

/// Runs the exchange on a fresh connection within `limit`, with xids from `next_xid` on.
pub(super) async fn exchange<R, W>(
    mechanism: Box<dyn Mechanism>,
    next_xid: &mut i32,
    reader: &mut R,
    writer: &mut W,
    rbuf: &mut BytesMut,
    decoder: &mut FrameDecoder,
    limit: Duration,
) -> Result<(), SaslEnd>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut mechanism = Some(mechanism);
    let exchange = async {
        let mut token = run(&mut mechanism, |m| m.initial()).await?;
        loop {
            let xid = *next_xid;
            *next_xid += 1;
            let mut out = BytesMut::new();
            encode_frame(&mut out, |b| {
                RequestHeader { xid, op: OpCode::Sasl }.write(b);
                SaslToken { token: token.into() }.write(b);
            });
            writer.write_all(&out).await.map_err(|e| SaslEnd::Disconnected(format!("SASL write failed: {e}")))?;
            writer.flush().await.map_err(|e| SaslEnd::Disconnected(format!("SASL write failed: {e}")))?;
            let frame = loop {
                match decoder.decode(rbuf) {
                    Ok(Some(frame)) => break frame.freeze(),
                    Ok(None) => {}
                    Err(e) => return Err(SaslEnd::Disconnected(format!("bad frame during SASL: {e}"))),
                }
                match reader.read_buf(rbuf).await {
                    Ok(0) => return Err(SaslEnd::Disconnected("server closed the connection during SASL".into())),
                    Ok(_) => {}
                    Err(e) => return Err(SaslEnd::Disconnected(format!("SASL read failed: {e}"))),
                }
            };
            let mut frame = frame;
            let header = ReplyHeader::read(&mut frame)
                .map_err(|e| SaslEnd::Disconnected(format!("bad SASL reply header: {e}")))?;
            if header.xid != xid {
                return Err(SaslEnd::Disconnected(format!("SASL reply for xid {}, expected {xid}", header.xid)));
            }
            match header.err {
                ErrorCode::Ok => {}
                ErrorCode::AuthFailed | ErrorCode::SessionClosedRequireSaslAuth => return Err(SaslEnd::AuthFailed),
                err => return Err(SaslEnd::Mechanism(format!("the server answered SASL with {err}"))),
            }
            let reply =
                SaslToken::read(&mut frame).map_err(|e| SaslEnd::Mechanism(format!("undecodable SASL reply: {e}")))?;
            let reply = reply.token;
            match run(&mut mechanism, move |m| m.step(&reply)).await? {
                Step::Send(next) => token = next,
                Step::Done => return Ok(()),
            }
        }
    };
    match tokio::time::timeout(limit, exchange).await {
        Ok(result) => result,
        Err(_) => Err(SaslEnd::Disconnected(format!("no SASL answer within {limit:?}"))),
    }
}
