//! The test kit: expiry buckets on paused time, restart, faults, and cluster failover.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Raw, connect_request};
use corral_proto::{ErrorCode, EventType};
use corral_server::Server;
use corral_server::testing::{TestingCluster, TestingServer};
use tokio::io::DuplexStream;
use tokio::time::{Instant, sleep_until};

async fn session_over(stream: DuplexStream, timeout: i32) -> Raw<DuplexStream> {
    let (raw, resp) = Raw::handshake_over(stream, connect_request(timeout, 0, Bytes::from_static(&[0; 16]))).await;
    assert_eq!(resp.timeout, timeout);
    raw
}

/// Tick 2000, timeout 4000: a session touched at t lives in bucket ((t + 4000) / 2000 + 1) × 2000
/// and expires exactly at that boundary.
#[tokio::test(start_paused = true)]
async fn expiry_follows_the_buckets_exactly() {
    let t0 = Instant::now();
    let server = TestingServer::start().await.expect("start");
    let mut short = session_over(server.connect_in_memory().expect("running"), 4000).await;
    let mut watcher = session_over(server.connect_in_memory().expect("running"), 40_000).await;
    assert_eq!(Instant::now(), t0, "setup took no virtual time");
    short.create("/e", b"", 1).await.expect("ephemeral");
    watcher.exists("/e", true).await.expect("watch");

    // Touch at 1000: ((1000 + 4000) / 2000 + 1) × 2000 = 6000, the same bucket.
    sleep_until(t0 + Duration::from_millis(1000)).await;
    short.sync_events().await;
    // Touch at 2500: bucket 8000.
    sleep_until(t0 + Duration::from_millis(2500)).await;
    short.sync_events().await;
    sleep_until(t0 + Duration::from_millis(7999)).await;
    assert!(server.sessions().contains(&short.session_id), "alive just before its bucket");
    sleep_until(t0 + Duration::from_millis(8001)).await;
    assert!(!server.sessions().contains(&short.session_id), "expired at its bucket boundary");

    let event = watcher.event().await;
    assert_eq!((event.event_type, event.path.as_str()), (EventType::NodeDeleted, "/e"));
    short.expect_closed().await;
    assert_eq!(watcher.exists("/e", false).await, Err(ErrorCode::NoNode));
    server.close().await;
}

#[tokio::test(start_paused = true)]
async fn pause_black_holes_and_resume_answers_in_order() {
    let server = TestingServer::start().await.expect("start");
    let mut c = session_over(server.connect_in_memory().expect("running"), 40_000).await;
    server.pause();
    let xid = c.send(&corral_proto::Request::Ping).await;
    let silent = tokio::time::timeout(Duration::from_secs(5), c.read_frame()).await;
    assert!(silent.is_err(), "a paused server answers nothing");
    server.resume();
    let (header, _) = c.reply(xid, corral_proto::OpCode::Ping).await;
    assert_eq!(header.err, ErrorCode::Ok);

    server.set_latency(Duration::from_millis(700));
    let before = Instant::now();
    c.sync_events().await;
    assert!(Instant::now() - before >= Duration::from_millis(700));
    server.close().await;
}

#[tokio::test(start_paused = true)]
async fn sweeps_run_on_their_interval() {
    let server = TestingServer::with_builder(
        Server::builder()
            .container_check_interval(Duration::from_secs(5))
            .clock(corral_server::Clock::tokio_anchored()),
    )
    .await
    .expect("start");
    let mut c = session_over(server.connect_in_memory().expect("running"), 40_000).await;
    let req = corral_proto::Request::CreateTtl(corral_proto::records::CreateTtlRequest {
        path: "/ttl".into(),
        data: None,
        acl: corral_proto::Acl::open_unsafe(),
        flags: 5,
        ttl: 3000,
    });
    c.call(req).await.expect("createTTL");
    c.exists("/ttl", true).await.expect("watch");
    let event = c.event().await;
    assert_eq!((event.event_type, event.path.as_str()), (EventType::NodeDeleted, "/ttl"));
    server.close().await;
}

#[tokio::test]
async fn restart_keeps_tree_and_sessions() {
    let mut server = TestingServer::start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    c.create("/kept", b"v", 0).await.expect("create");
    c.create("/eph", b"", 1).await.expect("create");
    let port = server.port();
    server.stop().await;
    assert!(!server.is_running());
    c.expect_closed().await;
    assert!(tokio::net::TcpStream::connect(server.addr()).await.is_err(), "port released");
    server.restart().await.expect("restart");
    assert_eq!(server.port(), port);
    let (mut back, resp) = c.resume(server.addr()).await;
    assert_eq!(resp.session_id, c.session_id);
    assert_eq!(back.get("/kept", false).await.expect("kept").0.as_deref(), Some(&b"v"[..]));
    back.exists("/eph", false).await.expect("the session's ephemeral survived");
    server.close().await;
}

#[tokio::test]
async fn drop_connection_and_expire_session_faults() {
    let server = TestingServer::start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    c.create("/eph", b"", 1).await.expect("create");
    assert!(server.drop_connection(c.session_id));
    c.expect_closed().await;
    assert!(!server.drop_connection(c.session_id), "no connection any more");
    let (mut back, resp) = c.resume(server.addr()).await;
    assert_eq!(resp.session_id, c.session_id, "the session stayed");
    back.exists("/eph", false).await.expect("ephemeral stayed");

    let mut watcher = Raw::connect(server.addr()).await;
    watcher.exists("/eph", true).await.expect("watch");
    assert!(server.expire_session(c.session_id));
    assert!(!server.expire_session(c.session_id));
    back.expect_closed().await;
    assert_eq!(watcher.event().await.event_type, EventType::NodeDeleted);
    let (mut again, resp) = c.resume(server.addr()).await;
    assert_eq!(resp.timeout, 0, "expired");
    again.expect_closed().await;
    assert_eq!(server.sessions(), vec![watcher.session_id]);
    server.close().await;
}

#[tokio::test]
async fn cluster_failover_keeps_the_session() {
    let mut cluster = TestingCluster::start(3).await.expect("start");
    assert_eq!(cluster.connect_string().split(',').count(), 3);
    let mut c = Raw::connect(cluster.addr(0)).await;
    c.create("/leader", b"me", 1).await.expect("create");
    assert_eq!(cluster.member_of_session(c.session_id), Some(0));

    cluster.stop_member(0).await;
    c.expect_closed().await;
    assert!(!cluster.is_running(0));
    let (mut on1, resp) = c.resume(cluster.addr(1)).await;
    assert_eq!(resp.session_id, c.session_id);
    assert_eq!(cluster.member_of_session(c.session_id), Some(1));
    let stat = on1.exists("/leader", false).await.expect("ephemeral kept");
    assert_eq!(stat.ephemeral_owner, c.session_id);

    // A paused member: the client gives up on it and resumes elsewhere; the reattach closes the
    // black-holed connection.
    cluster.pause_member(1);
    let (mut on2, resp) = on1.resume(cluster.addr(2)).await;
    assert_eq!(resp.session_id, c.session_id);
    cluster.resume_member(1);
    on1.expect_closed().await;
    on2.create("/more", b"", 0).await.expect("create");

    // Every member sees one tree.
    cluster.restart_member(0).await.expect("restart");
    let mut other = Raw::connect(cluster.addr(0)).await;
    other.exists("/more", false).await.expect("shared tree");
    assert_eq!(cluster.sessions().len(), 2);
    cluster.close().await;
}

#[tokio::test]
async fn shutdown_releases_the_port() {
    let server = Server::start().await.expect("start");
    let addr = server.addr();
    // `Raw::connect` is a handshake: the server has accepted and serves this connection.
    let mut c = Raw::connect(addr).await;
    server.shutdown().await;
    c.expect_closed().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
