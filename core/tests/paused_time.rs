//! Timing and bad-input behaviour over an in-memory transport with paused time: a scripted
//! server plays the other side byte by byte, so no test waits on a real clock.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use corral_core::proto::{
    ConnectRequest, ConnectResponse, ErrorCode, FrameDecoder, Jute, OpCode, ReplyHeader, RequestHeader, encode_frame,
    xid,
};
use corral_core::{BoxStream, Client, ConnectFuture, Connector, Error, HostPort, SessionEvent, SessionState};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Hands each connection attempt's server end to the test.
#[derive(Debug)]
struct Scripted(mpsc::UnboundedSender<DuplexStream>);

impl Connector for Scripted {
    fn connect(&self, _host: &HostPort) -> ConnectFuture {
        let (client, server) = tokio::io::duplex(1 << 20);
        let sent = self.0.send(server);
        Box::pin(async move {
            sent.map_err(|_| std::io::Error::other("test over"))?;
            Ok((Box::new(client) as BoxStream, SocketAddr::from(([127, 0, 0, 1], 2181))))
        })
    }
}

/// The server side of one scripted connection.
struct Peer {
    io: DuplexStream,
    buf: BytesMut,
}

impl Peer {
    async fn frame(&mut self) -> Option<Bytes> {
        let mut decoder = FrameDecoder::default();
        loop {
            if let Ok(Some(f)) = decoder.decode(&mut self.buf) {
                return Some(f.freeze());
            }
            if self.io.read_buf(&mut self.buf).await.ok()? == 0 {
                return None;
            }
        }
    }

    async fn handshake(&mut self, timeout_ms: i32, session_id: i64) -> ConnectRequest {
        let req = ConnectRequest::from_bytes(&self.frame().await.expect("connect request")).expect("decode");
        let resp = ConnectResponse {
            protocol_version: 0,
            timeout: timeout_ms,
            session_id,
            passwd: Bytes::from_static(&[9; 16]),
            read_only: Some(false),
        };
        self.send(|b| resp.write(b)).await;
        req
    }

    async fn send(&mut self, f: impl FnOnce(&mut BytesMut)) {
        let mut out = BytesMut::new();
        encode_frame(&mut out, f);
        self.io.write_all(&out).await.expect("write to client");
    }

    async fn reply(&mut self, xid: i32, zxid: i64, err: ErrorCode, body: &[u8]) {
        self.send(|b| {
            ReplyHeader { xid, zxid, err }.write(b);
            b.extend_from_slice(body);
        })
        .await;
    }
}

async fn setup(timeout: Duration) -> (Client, mpsc::UnboundedReceiver<DuplexStream>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = Client::builder("scripted:2181").session_timeout(timeout).connector(Scripted(tx)).build().unwrap();
    (client, rx)
}

async fn accept(rx: &mut mpsc::UnboundedReceiver<DuplexStream>) -> Peer {
    Peer { io: rx.recv().await.expect("a connection attempt"), buf: BytesMut::new() }
}

#[tokio::test(start_paused = true)]
async fn pings_after_a_third_of_the_timeout_when_idle() {
    let (client, mut conns) = setup(Duration::from_secs(3)).await;
    let mut peer = accept(&mut conns).await;
    let req = peer.handshake(3000, 0x42).await;
    assert_eq!((req.session_id, req.timeout, req.passwd.len()), (0, 3000, 16));
    let start = Instant::now();
    for n in 1..=3 {
        let frame = peer.frame().await.expect("ping");
        let header = RequestHeader::read(&mut frame.clone()).unwrap();
        assert_eq!((header.xid, header.op), (xid::PING, OpCode::Ping));
        assert_eq!(start.elapsed().as_millis() / 100, (1000 * n) / 100, "ping {n} at T/3 intervals");
        peer.reply(xid::PING, 7, ErrorCode::Ok, &[]).await;
    }
    assert_eq!(*client.state().borrow(), SessionState::Connected);
    assert_eq!(client.session().last_zxid, 7, "ping replies carry the server's zxid");
}

#[tokio::test(start_paused = true)]
async fn silence_for_two_thirds_of_the_timeout_drops_the_connection_and_resumes_the_session() {
    let (client, mut conns) = setup(Duration::from_secs(3)).await;
    let mut events = client.session_events();
    let mut peer = accept(&mut conns).await;
    peer.handshake(3000, 0x42).await;
    assert!(matches!(events.next().await, Some(SessionEvent::Connected { resumed: false, .. })));
    let start = Instant::now();
    // Answer nothing (not even pings).
    let pending = client.get_data("/x");
    match events.next().await {
        Some(SessionEvent::Disconnected { reason }) => assert!(reason.contains("no response"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(2000) && elapsed < Duration::from_millis(2100), "{elapsed:?}");
    assert_eq!(pending.await.unwrap_err(), Error::ConnectionLoss);
    // The next attempt resumes the session with its id, password and last zxid.
    let mut peer2 = accept(&mut conns).await;
    let req = peer2.handshake(3000, 0x42).await;
    assert_eq!((req.session_id, req.passwd.as_ref()), (0x42, &[9u8; 16][..]));
    assert!(matches!(events.next().await, Some(SessionEvent::Connected { resumed: true, .. })));
    drop(peer);
}

#[tokio::test(start_paused = true)]
async fn timeout_zero_means_expired_and_no_new_session() {
    let (client, mut conns) = setup(Duration::from_secs(3)).await;
    let mut peer = accept(&mut conns).await;
    peer.handshake(3000, 0x42).await;
    peer.io.shutdown().await.unwrap();
    drop(peer);
    let mut peer = accept(&mut conns).await;
    let req = peer.handshake(0, 0).await;
    assert_eq!(req.session_id, 0x42);
    let mut state = client.state();
    state.wait_for(|s| *s == SessionState::Expired).await.unwrap();
    assert_eq!(client.get_data("/x").await.unwrap_err(), Error::SessionExpired);
    assert!(conns.try_recv().is_err(), "no further connection attempt");
}

#[tokio::test(start_paused = true)]
async fn malformed_and_oversize_frames_close_the_connection_without_panicking() {
    let (client, mut conns) = setup(Duration::from_secs(3)).await;
    let mut events = client.session_events();

    // 1. A reply whose body is truncated.
    let mut peer = accept(&mut conns).await;
    peer.handshake(3000, 0x42).await;
    let _ = events.next().await;
    let pending = client.get_data("/x");
    let frame = peer.frame().await.unwrap();
    let header = RequestHeader::read(&mut frame.clone()).unwrap();
    peer.reply(header.xid, 1, ErrorCode::Ok, &[0, 0, 0, 9, 1]).await;
    assert_eq!(pending.await.unwrap_err(), Error::ConnectionLoss);
    assert!(matches!(events.next().await, Some(SessionEvent::Disconnected { .. })));

    // 2. A frame length above the limit.
    let mut peer = accept(&mut conns).await;
    peer.handshake(3000, 0x42).await;
    let _ = events.next().await;
    peer.io.write_all(&0x0100_0000i32.to_be_bytes()).await.unwrap();
    match events.next().await {
        Some(SessionEvent::Disconnected { reason }) => assert!(reason.contains("exceeds"), "{reason}"),
        other => panic!("{other:?}"),
    }

    // 3. A reply for an xid nobody asked for, and garbage in a notification.
    let mut peer = accept(&mut conns).await;
    peer.handshake(3000, 0x42).await;
    let _ = events.next().await;
    peer.reply(77, 1, ErrorCode::Ok, &[]).await;
    assert!(matches!(events.next().await, Some(SessionEvent::Disconnected { .. })));
    let mut peer = accept(&mut conns).await;
    peer.handshake(3000, 0x42).await;
    let _ = events.next().await;
    peer.reply(xid::NOTIFICATION, -1, ErrorCode::Ok, &[0xff]).await;
    assert!(matches!(events.next().await, Some(SessionEvent::Disconnected { .. })));

    // The client is still alive and resumes.
    let mut peer = accept(&mut conns).await;
    peer.handshake(3000, 0x42).await;
    let pending = client.exists("/x");
    let frame = peer.frame().await.unwrap();
    let header = RequestHeader::read(&mut frame.clone()).unwrap();
    peer.reply(header.xid, 2, ErrorCode::NoNode, &[]).await;
    assert_eq!(pending.await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn requests_made_while_disconnected_wait_for_the_connection_then_time_out() {
    let (tx, mut conns) = mpsc::unbounded_channel();
    let client = Client::builder("scripted:2181")
        .session_timeout(Duration::from_secs(3))
        .connection_timeout(Duration::from_secs(5))
        .connector(Scripted(tx))
        .build()
        .unwrap();
    let start = Instant::now();
    let pending = client.get_data("/x");
    // Refuse every connection attempt by dropping the server end at once.
    let refuse = tokio::spawn(async move {
        while let Some(s) = conns.recv().await {
            drop(s)
        }
    });
    assert_eq!(pending.await.unwrap_err(), Error::ConnectionLoss);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(5) && waited < Duration::from_secs(6), "{waited:?}");
    assert_eq!(*client.state().borrow(), SessionState::Connecting);
    client.close().await;
    assert_eq!(*client.state().borrow(), SessionState::Closed);
    refuse.abort();
}

#[tokio::test(start_paused = true)]
async fn watches_are_restored_in_batches_under_the_frame_limit() {
    use corral_core::proto::records::{GetDataResponse, SetWatches2};
    use corral_core::proto::{AddWatchMode, Stat};

    let (client, mut conns) = setup(Duration::from_secs(30)).await;
    let mut peer = accept(&mut conns).await;
    peer.handshake(30_000, 0x42).await;
    // 400 data watches on ~1000-byte paths (400 KB of paths), plus one persistent watch.
    let long = "x".repeat(1000);
    let mut watchers = Vec::new();
    for i in 0..400 {
        let fut = client.get_data_and_watch(&format!("/{long}{i}"));
        let frame = peer.frame().await.unwrap();
        let header = RequestHeader::read(&mut frame.clone()).unwrap();
        let body = GetDataResponse { data: Some(Bytes::new()), stat: Stat::default() }.to_bytes();
        peer.reply(header.xid, 10, ErrorCode::Ok, &body).await;
        watchers.push(fut.await.unwrap().2);
    }
    let add = client.add_watch("/tree", AddWatchMode::PersistentRecursive);
    let frame = peer.frame().await.unwrap();
    let header = RequestHeader::read(&mut frame.clone()).unwrap();
    peer.reply(header.xid, 11, ErrorCode::Ok, &[0, 0, 0, 0]).await;
    let _tree = add.await.unwrap();

    drop(peer);
    let mut peer = accept(&mut conns).await;
    let req = peer.handshake(30_000, 0x42).await;
    assert_eq!(req.last_zxid_seen, 11);
    let mut restored = 0;
    let mut persistent = 0;
    while restored < 400 {
        let frame = peer.frame().await.expect("setWatches2 frame");
        assert!(frame.len() <= 0xFFFFF, "frame of {} bytes", frame.len());
        let mut body = frame.clone();
        let header = RequestHeader::read(&mut body).unwrap();
        assert_eq!((header.xid, header.op), (xid::SET_WATCHES, OpCode::SetWatches2));
        let sw = SetWatches2::read(&mut body).unwrap();
        assert_eq!(sw.relative_zxid, 11);
        assert!(sw.data_watches.iter().map(String::len).sum::<usize>() <= 128 * 1024 + 1100);
        restored += sw.data_watches.len();
        persistent += sw.persistent_recursive_watches.len();
        peer.reply(xid::SET_WATCHES, 11, ErrorCode::Ok, &[]).await;
    }
    // The persistent watch rides in the last batch.
    if persistent == 0 {
        let frame = peer.frame().await.unwrap();
        let mut body = frame.clone();
        let _ = RequestHeader::read(&mut body).unwrap();
        persistent += SetWatches2::read(&mut body).unwrap().persistent_recursive_watches.len();
    }
    assert_eq!((restored, persistent), (400, 1));
}

#[tokio::test(start_paused = true)]
async fn a_server_that_closes_right_after_the_handshake_does_not_cause_a_reconnect_storm() {
    let (client, mut conns) = setup(Duration::from_secs(3)).await;
    let start = Instant::now();
    let mut attempts = 0;
    // Accept every handshake and hang up at once, for one second of (virtual) time.
    while start.elapsed() < Duration::from_secs(1) {
        let next = tokio::time::timeout(Duration::from_secs(1), conns.recv()).await;
        let Ok(Some(io)) = next else { break };
        let mut peer = Peer { io, buf: BytesMut::new() };
        peer.handshake(3000, 0x42).await;
        drop(peer);
        attempts += 1;
    }
    // With jittered, doubling pauses (10 ms base, up to 640 ms) a second holds a handful of
    // attempts, not thousands.
    assert!((2..=20).contains(&attempts), "{attempts} connection attempts in one second");
    assert!(!client.state().borrow().is_terminal());
}
