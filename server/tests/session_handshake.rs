//! The handshake and session resumption rules (zookeeper-protocol.md §3.3, §12).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Raw, connect_request, frame};
use corral_proto::{ConnectRequest, ConnectResponse, ErrorCode, Jute};
use corral_server::Server;
use corral_server::testing::TestingServer;

#[tokio::test]
async fn new_session_gets_id_password_and_clamped_timeout() {
    let server = Server::start().await.expect("start");
    let (a, resp) = Raw::handshake(server.addr(), connect_request(1000, 0, Bytes::from_static(&[0; 16]))).await;
    assert_eq!(resp.protocol_version, 0);
    assert_eq!(resp.timeout, 4000, "clamped up to 2 × tick");
    assert_eq!(resp.passwd.len(), 16);
    assert_eq!(resp.read_only, Some(false));
    assert_eq!(resp.session_id as u64 >> 56, 1, "server id in the top byte");
    let (b, resp) = Raw::handshake(server.addr(), connect_request(10_000_000, 0, Bytes::from_static(&[0; 16]))).await;
    assert_eq!(resp.timeout, 40_000, "clamped down to 20 × tick");
    assert_eq!(b.session_id, a.session_id + 1, "ids are consecutive");
    server.shutdown().await;
}

#[tokio::test]
async fn configured_bounds_apply() {
    let server = Server::builder()
        .tick_time(Duration::from_millis(100))
        .min_session_timeout(Duration::from_millis(300))
        .max_session_timeout(Duration::from_millis(700))
        .start()
        .await
        .expect("start");
    let (_, low) = Raw::handshake(server.addr(), connect_request(1, 0, Bytes::from_static(&[0; 16]))).await;
    let (_, high) = Raw::handshake(server.addr(), connect_request(99_999, 0, Bytes::from_static(&[0; 16]))).await;
    assert_eq!((low.timeout, high.timeout), (300, 700));
    server.shutdown().await;
}

#[tokio::test]
async fn legacy_request_without_read_only_byte_gets_36_bytes() {
    let server = Server::start().await.expect("start");
    let req = ConnectRequest { read_only: None, ..connect_request(30_000, 0, Bytes::from_static(&[0; 16])) };
    let stream = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
    let mut raw = Raw::new(stream);
    raw.send_raw(&frame(|b| req.write(b))).await;
    let payload = raw.read_frame().await.expect("response");
    assert_eq!(payload.len(), 36);
    server.shutdown().await;
}

#[tokio::test]
async fn resume_with_password_keeps_session_and_closes_old_socket() {
    let server = Server::start().await.expect("start");
    let mut first = Raw::connect(server.addr()).await;
    first.create("/eph", b"", 1).await.expect("create");
    let (mut second, resp) = first.resume(server.addr()).await;
    assert_eq!(resp.session_id, first.session_id);
    assert_eq!(resp.passwd, first.passwd);
    first.expect_closed().await;
    let stat = second.exists("/eph", false).await.expect("ephemeral survives");
    assert_eq!(stat.ephemeral_owner, second.session_id);
    server.shutdown().await;
}

fn assert_expired(resp: &ConnectResponse) {
    assert_eq!(resp.timeout, 0);
    assert_eq!(resp.session_id, 0);
    assert_eq!(resp.passwd.as_ref(), &[0u8; 16]);
}

#[tokio::test]
async fn wrong_password_unknown_id_and_closed_session_are_expired() {
    let server = Server::start().await.expect("start");
    let mut live = Raw::connect(server.addr()).await;

    let (mut bad, resp) =
        Raw::handshake(server.addr(), connect_request(30_000, live.session_id, Bytes::from_static(&[7; 16]))).await;
    assert_expired(&resp);
    bad.expect_closed().await;
    // As in ZooKeeper, the reconnect attempt closed the session's previous connection.
    live.expect_closed().await;

    let (mut unknown, resp) =
        Raw::handshake(server.addr(), connect_request(30_000, 0x0100_0000_0000_0042, Bytes::from_static(&[0; 16])))
            .await;
    assert_expired(&resp);
    unknown.expect_closed().await;

    let (mut again, resp) = live.resume(server.addr()).await;
    assert_eq!(resp.session_id, live.session_id, "the session itself survived the bad attempt");
    again.close_session().await;
    let (mut after_close, resp) = live.resume(server.addr()).await;
    assert_expired(&resp);
    after_close.expect_closed().await;
    server.shutdown().await;
}

#[tokio::test]
async fn client_ahead_of_server_is_refused() {
    let server = Server::start().await.expect("start");
    let mut req = connect_request(30_000, 0, Bytes::from_static(&[0; 16]));
    req.last_zxid_seen = 1_000_000;
    let stream = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
    let mut raw = Raw::new(stream);
    raw.send_raw(&frame(|b| req.write(b))).await;
    assert!(raw.read_frame().await.is_none(), "closed without an answer");
    server.shutdown().await;
}

#[tokio::test]
async fn close_session_deletes_ephemerals_and_fires_watches() {
    let server = TestingServer::start().await.expect("start");
    let mut owner = Raw::connect(server.addr()).await;
    let mut watcher = Raw::connect(server.addr()).await;
    owner.create("/e", b"x", 1).await.expect("create");
    watcher.exists("/e", true).await.expect("exists");
    watcher.children("/", true).await.expect("children");
    assert_eq!(server.sessions().len(), 2);
    owner.close_session().await;
    let mut events: Vec<(i32, String)> = Vec::new();
    for _ in 0..2 {
        let e = watcher.event().await;
        events.push((e.event_type.code(), e.path));
    }
    events.sort();
    assert_eq!(events, vec![(2, "/e".to_owned()), (4, "/".to_owned())]);
    assert_eq!(watcher.exists("/e", false).await, Err(ErrorCode::NoNode));
    assert_eq!(server.sessions(), vec![watcher.session_id]);
    server.close().await;
}

#[tokio::test]
async fn handshake_deadline_closes_silent_connections() {
    let server = Server::builder().handshake_timeout(Duration::from_millis(50)).start().await.expect("start");
    let stream = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
    let mut raw = Raw::new(stream);
    assert!(raw.read_frame().await.is_none());
    server.shutdown().await;
}
