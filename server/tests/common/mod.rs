//! A raw ZooKeeper client for the integration tests: it speaks bytes through corral-proto
//! only (the corral-core client is deliberately not used: an independent path to the server).

#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use corral_proto::records::{CreateRequest, PathAndWatch};
use corral_proto::{
    Acl, ConnectRequest, ConnectResponse, ErrorCode, FrameDecoder, Jute, OpCode, ReplyHeader, Request, RequestHeader,
    Response, Stat, WatcherEvent, encode_frame, xid,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A bound on every wait for the server, so a broken server fails a test instead of hanging it.
pub const WAIT: Duration = Duration::from_secs(10);

/// A connection speaking the raw protocol.
pub struct Raw<S> {
    pub stream: S,
    buf: BytesMut,
    decoder: FrameDecoder,
    next_xid: i32,
    pub session_id: i64,
    pub passwd: Bytes,
    pub timeout: i32,
    pub last_zxid: i64,
    pub events: VecDeque<WatcherEvent>,
}

pub fn connect_request(timeout: i32, session_id: i64, passwd: Bytes) -> ConnectRequest {
    ConnectRequest { protocol_version: 0, last_zxid_seen: 0, timeout, session_id, passwd, read_only: Some(false) }
}

pub fn frame(body: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut buf = BytesMut::new();
    encode_frame(&mut buf, body);
    buf.freeze()
}

impl Raw<TcpStream> {
    /// A new session with a 30 s requested timeout.
    pub async fn connect(addr: SocketAddr) -> Self {
        let (raw, resp) = Self::handshake(addr, connect_request(30_000, 0, Bytes::from_static(&[0; 16]))).await;
        assert_ne!(resp.timeout, 0, "new session refused");
        raw
    }

    /// A TCP connection and the raw answer to `req`.
    pub async fn handshake(addr: SocketAddr, req: ConnectRequest) -> (Self, ConnectResponse) {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Self::handshake_over(stream, req).await
    }

    /// Resumes this connection's session on `addr`.
    pub async fn resume(&self, addr: SocketAddr) -> (Self, ConnectResponse) {
        let mut req = connect_request(self.timeout, self.session_id, self.passwd.clone());
        req.last_zxid_seen = self.last_zxid;
        Self::handshake(addr, req).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Raw<S> {
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            decoder: FrameDecoder::default(),
            next_xid: 1,
            session_id: 0,
            passwd: Bytes::new(),
            timeout: 0,
            last_zxid: 0,
            events: VecDeque::new(),
        }
    }

    pub async fn handshake_over(stream: S, req: ConnectRequest) -> (Self, ConnectResponse) {
        let mut raw = Self::new(stream);
        raw.send_raw(&frame(|b| req.write(b))).await;
        let payload = raw.read_frame().await.expect("a ConnectResponse");
        let resp = ConnectResponse::from_bytes(&payload).expect("decodable ConnectResponse");
        raw.session_id = resp.session_id;
        raw.passwd = resp.passwd.clone();
        raw.timeout = resp.timeout;
        (raw, resp)
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
        self.stream.flush().await.expect("flush");
    }

    /// The next frame's payload, or `None` at end of stream (or a reset).
    pub async fn read_frame(&mut self) -> Option<BytesMut> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf).expect("server frame within limits") {
                return Some(frame);
            }
            let read =
                tokio::time::timeout(WAIT, self.stream.read_buf(&mut self.buf)).await.expect("server answered in time");
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Reads until the server closes; panics if a whole frame other than a notification
    /// arrives first.
    pub async fn expect_closed(&mut self) {
        while let Some(frame) = self.read_frame().await {
            let mut body = &frame[..];
            let header = ReplyHeader::read(&mut body).expect("header");
            assert_eq!(header.xid, xid::NOTIFICATION, "unexpected reply {header:?} instead of close");
        }
    }

    /// Sends a request with the next xid (or the reserved one) and returns the xid used.
    pub async fn send(&mut self, request: &Request) -> i32 {
        let xid = match request.op_code() {
            OpCode::Ping => xid::PING,
            OpCode::Auth => xid::AUTH,
            OpCode::SetWatches | OpCode::SetWatches2 => xid::SET_WATCHES,
            _ => {
                let x = self.next_xid;
                self.next_xid += 1;
                x
            }
        };
        let bytes = frame(|b| {
            RequestHeader { xid, op: request.op_code() }.write(b);
            request.write_body(b);
        });
        self.send_raw(&bytes).await;
        xid
    }

    /// Reads the reply to `xid` (queueing notifications that arrive first).
    pub async fn reply(&mut self, xid: i32, op: OpCode) -> (ReplyHeader, Option<Response>) {
        loop {
            let frame = self.read_frame().await.expect("a reply before the connection closed");
            let mut body = &frame[..];
            let header = ReplyHeader::read(&mut body).expect("reply header");
            if header.xid == xid::NOTIFICATION {
                self.events.push_back(WatcherEvent::read(&mut body).expect("watcher event"));
                continue;
            }
            assert_eq!(header.xid, xid, "replies must come in request order");
            self.last_zxid = self.last_zxid.max(header.zxid);
            let response = (header.err == ErrorCode::Ok).then(|| Response::read_body(op, &mut body).expect("body"));
            return (header, response);
        }
    }

    pub async fn request(&mut self, request: Request) -> (ReplyHeader, Option<Response>) {
        let xid = self.send(&request).await;
        self.reply(xid, request.op_code()).await
    }

    /// The response, or the error code.
    pub async fn call(&mut self, request: Request) -> Result<Response, ErrorCode> {
        let (header, response) = self.request(request).await;
        match header.err {
            ErrorCode::Ok => Ok(response.unwrap_or(Response::Empty)),
            code => Err(code),
        }
    }

    /// The next watch notification.
    pub async fn event(&mut self) -> WatcherEvent {
        if let Some(e) = self.events.pop_front() {
            return e;
        }
        let frame = self.read_frame().await.expect("a notification");
        let mut body = &frame[..];
        let header = ReplyHeader::read(&mut body).expect("header");
        assert_eq!(header.xid, xid::NOTIFICATION, "expected a notification, got {header:?}");
        WatcherEvent::read(&mut body).expect("event")
    }

    /// Pings, collecting any notification queued before the ping's reply.
    pub async fn sync_events(&mut self) {
        let (h, _) = self.request(Request::Ping).await;
        assert_eq!(h.err, ErrorCode::Ok);
    }

    pub async fn create(&mut self, path: &str, data: &[u8], flags: i32) -> Result<String, ErrorCode> {
        self.create_acl(path, data, flags, Acl::open_unsafe()).await
    }

    pub async fn create_acl(
        &mut self,
        path: &str,
        data: &[u8],
        flags: i32,
        acl: Vec<Acl>,
    ) -> Result<String, ErrorCode> {
        let req = CreateRequest { path: path.into(), data: Some(Bytes::copy_from_slice(data)), acl, flags };
        match self.call(Request::Create(req)).await? {
            Response::Create(r) => Ok(r.path),
            other => panic!("unexpected {other:?}"),
        }
    }

    pub async fn create2(&mut self, path: &str, data: Option<&[u8]>, flags: i32) -> Result<(String, Stat), ErrorCode> {
        let req =
            CreateRequest { path: path.into(), data: data.map(Bytes::copy_from_slice), acl: Acl::open_unsafe(), flags };
        match self.call(Request::Create2(req)).await? {
            Response::Create2(r) => Ok((r.path, r.stat)),
            other => panic!("unexpected {other:?}"),
        }
    }

    pub async fn get(&mut self, path: &str, watch: bool) -> Result<(Option<Bytes>, Stat), ErrorCode> {
        match self.call(Request::GetData(PathAndWatch { path: path.into(), watch })).await? {
            Response::GetData(r) => Ok((r.data, r.stat)),
            other => panic!("unexpected {other:?}"),
        }
    }

    pub async fn exists(&mut self, path: &str, watch: bool) -> Result<Stat, ErrorCode> {
        match self.call(Request::Exists(PathAndWatch { path: path.into(), watch })).await? {
            Response::Stat(s) => Ok(s),
            other => panic!("unexpected {other:?}"),
        }
    }

    pub async fn children(&mut self, path: &str, watch: bool) -> Result<Vec<String>, ErrorCode> {
        match self.call(Request::GetChildren(PathAndWatch { path: path.into(), watch })).await? {
            Response::Children(r) => {
                let mut c = r.children;
                c.sort();
                Ok(c)
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    pub async fn set(&mut self, path: &str, data: &[u8], version: i32) -> Result<Stat, ErrorCode> {
        let req = corral_proto::records::SetDataRequest {
            path: path.into(),
            data: Some(Bytes::copy_from_slice(data)),
            version,
        };
        match self.call(Request::SetData(req)).await? {
            Response::Stat(s) => Ok(s),
            other => panic!("unexpected {other:?}"),
        }
    }

    pub async fn delete(&mut self, path: &str, version: i32) -> Result<(), ErrorCode> {
        let req = corral_proto::records::DeleteRequest { path: path.into(), version };
        self.call(Request::Delete(req)).await.map(|_| ())
    }

    pub async fn close_session(&mut self) {
        let (h, _) = self.request(Request::CloseSession).await;
        assert_eq!(h.err, ErrorCode::Ok);
        self.expect_closed().await;
    }
}

/// Sends the four-letter word `cmd` to `addr` and returns the whole answer (the server closes
/// the connection after it).
pub async fn word(addr: SocketAddr, cmd: &[u8]) -> String {
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    socket.write_all(cmd).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, socket.read_to_end(&mut out)).await.expect("answered and closed in time").expect("read");
    String::from_utf8(out).expect("text")
}
