//! Sessions across a restart of a durable server, on paused time: each restored session gets
//! its whole timeout afresh from the restart and expires on its bucket boundary as any other;
//! one that resumes in time keeps its ephemerals, one that does not loses them, with
//! NodeDeleted fired.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Raw, connect_request};
use corral_proto::{ErrorCode, EventType};
use corral_server::Server;
use corral_server::testing::TestingServer;
use tokio::io::DuplexStream;
use tokio::time::{Instant, sleep_until};

async fn session(stream: DuplexStream, timeout: i32) -> Raw<DuplexStream> {
    let (raw, resp) = Raw::handshake_over(stream, connect_request(timeout, 0, Bytes::from_static(&[0; 16]))).await;
    assert_eq!(resp.timeout, timeout);
    raw
}

#[tokio::test(start_paused = true)]
async fn restored_sessions_expire_on_their_bucket_after_the_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = TestingServer::with_builder(Server::builder().data_dir(dir.path())).await.expect("start");
    let mut keeper = session(server.connect_in_memory().expect("running"), 10_000).await;
    let mut leaver = session(server.connect_in_memory().expect("running"), 4_000).await;
    keeper.create("/k", b"kept", 1).await.expect("ephemeral");
    leaver.create("/l", b"left", 1).await.expect("ephemeral");
    let (keeper_id, leaver_id) = (keeper.session_id, leaver.session_id);

    // Long past both timeouts while stopped: a stopped server expires nothing.
    server.stop().await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    server.restart().await.expect("restart");
    let t0 = Instant::now();
    assert_eq!(server.sessions(), [keeper_id, leaver_id]);

    // The keeper comes back with its id and password (both restored from the directory).
    let request = connect_request(10_000, keeper_id, keeper.passwd.clone());
    let (mut keeper, resp) = Raw::handshake_over(server.connect_in_memory().expect("running"), request).await;
    assert_eq!((resp.session_id, resp.timeout), (keeper_id, 10_000), "resumed, not a new session");
    let stat = keeper.exists("/l", true).await.expect("the leaver's ephemeral is restored");
    assert_eq!(stat.ephemeral_owner, leaver_id);

    // The leaver's bucket: ((0 + 4000) / 2000 + 1) × 2000 = 6000 ms after the restart.
    sleep_until(t0 + Duration::from_millis(5_900)).await;
    assert!(server.sessions().contains(&leaver_id), "alive until its bucket");
    keeper.sync_events().await;
    sleep_until(t0 + Duration::from_millis(6_100)).await;
    assert_eq!(server.sessions(), [keeper_id], "the leaver expired on its bucket");
    let event = keeper.event().await;
    assert_eq!((event.event_type, event.path.as_str()), (EventType::NodeDeleted, "/l"));
    assert_eq!(keeper.exists("/l", false).await, Err(ErrorCode::NoNode));
    let (data, stat) = keeper.get("/k", false).await.expect("the keeper's ephemeral stays");
    assert_eq!((data.as_deref(), stat.ephemeral_owner), (Some(&b"kept"[..]), keeper_id));

    // The expiry is a transaction in the log too: after another restart the leaver stays gone.
    server.restart().await.expect("restart");
    assert_eq!(server.sessions(), [keeper_id]);
    server.close().await;
}
