//! The `Session` handle: operations bound to one session never land in the next one, and the
//! protected create is cancel safe at every point of its life.

use std::time::Duration;

use corral_core::framework::{Create, ProtectedCreate};
use corral_core::{Client, CreateMode, Error, Framework, RetryNTimes};
use corral_server::testing::TestingServer;
use futures::FutureExt;

fn framework(server: &TestingServer) -> Framework {
    Framework::builder(server.connect_string())
        .session_timeout(Duration::from_secs(4))
        .retry_policy(RetryNTimes::new(20, Duration::from_millis(20)))
        .start()
        .expect("start")
}

async fn new_session(fw: &Framework, old: i64) {
    let mut states = fw.connection_state();
    tokio::time::timeout(
        Duration::from_secs(10),
        states.wait_for(|s| s.state.is_connected() && s.session_id != old && s.session_id != 0),
    )
    .await
    .expect("a new session in time")
    .expect("framework alive");
}

async fn no_pending_cleanups(fw: &Framework) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fw.pending_guaranteed_deletes() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "background clean-ups did not finish");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn an_operation_through_an_expired_session_fails_and_never_lands_in_the_next() {
    let server = TestingServer::start().await.unwrap();
    let fw = framework(&server);
    let session = fw.session().await.unwrap();
    let old = session.id();
    // The request is delayed by the server while the session expires under it.
    server.set_latency(Duration::from_millis(20));
    let late = {
        let session = session.clone();
        tokio::spawn(async move { session.create("/late", "", CreateMode::Ephemeral).await })
    };
    // Fault injection: real time, so that the expiry lands while the delayed request is in flight.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(server.expire_session(old));
    server.set_latency(Duration::ZERO);
    session.gone().await;
    assert!(!session.is_live());
    let err = late.await.unwrap().unwrap_err();
    assert_eq!(err, Error::SessionLost { session_id: old });

    // After the expiry every kind of operation through the old handle fails the same way.
    let err = session.create("/after", "", CreateMode::Ephemeral).await.unwrap_err();
    assert_eq!(err, Error::SessionLost { session_id: old });
    let err = session.with_retry(|c| async move { c.get_children("/").await }).await.unwrap_err();
    assert_eq!(err, Error::SessionLost { session_id: old });
    let spec = Create::new(CreateMode::EphemeralSequential).protected();
    let err = session.create("/p-", "", spec).await.unwrap_err();
    assert_eq!(err, Error::SessionLost { session_id: old });

    // Nothing of it landed in the framework's next session.
    new_session(&fw, old).await;
    let next = fw.session().await.unwrap();
    assert_ne!(next.id(), old);
    assert_eq!(next.epoch(), session.epoch() + 1);
    assert!(next.client().get_ephemerals("/").await.unwrap().is_empty());
    assert!(next.client().get_children("/").await.unwrap().iter().all(|c| c == "zookeeper"));
    fw.close().await;
    server.close().await;
}

#[tokio::test]
async fn session_bound_retries_wait_for_the_same_session_to_reconnect() {
    let server = TestingServer::start().await.unwrap();
    let fw = framework(&server);
    let session = fw.session().await.unwrap();
    server.drop_connection(session.id());
    // Queued while disconnected, sent once the same session is back.
    let created = session.create("/member", "", CreateMode::Ephemeral).await.unwrap();
    assert_eq!(created.owner(), Some(session.id()));
    assert!(session.is_live());
    assert_eq!(fw.session().await.unwrap().id(), session.id());
    fw.close().await;
    // Closing the framework ends every session handle.
    assert_eq!(session.create("/x", "", CreateMode::Ephemeral).await.unwrap_err(), Error::Closed);
    server.close().await;
}

/// Drops a protected create after `polls` polls spaced `step` apart (the server delays every
/// request by 2 ms, so the drop lands before the send, in flight, or after the node was made).
async fn drop_protected_create_at(server: &TestingServer, fw: &Framework, mode: CreateMode, dir: &str, polls: u32) {
    let session = fw.session().await.unwrap();
    let mut node = ProtectedCreate::new(fw, &format!("{dir}/n-"), Create::new(mode).parents()).unwrap();
    {
        let mut create = std::pin::pin!(node.create(&session, "x"));
        for _ in 0..polls {
            if create.as_mut().now_or_never().is_some() {
                break;
            }
            // Fault injection: each call drops the create at a different point of its real-time way.
            tokio::time::sleep(Duration::from_micros(700)).await;
        }
    }
    drop(node);
    no_pending_cleanups(fw).await;
    let observer = Client::connect(&server.connect_string()).await.unwrap();
    let left = match observer.get_children(dir).await {
        Ok(children) => children,
        Err(e) if e.is_no_node() => vec![],
        Err(e) => panic!("{e}"),
    };
    assert!(left.is_empty(), "{mode:?}, dropped after {polls} polls: left {left:?}");
    observer.close().await;
}

#[tokio::test]
async fn a_dropped_protected_create_leaves_no_node_at_any_point() {
    let server = TestingServer::start().await.unwrap();
    let fw = framework(&server);
    fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
    server.set_latency(Duration::from_millis(2));
    for mode in [CreateMode::EphemeralSequential, CreateMode::PersistentSequential, CreateMode::Ephemeral] {
        for polls in 0..12 {
            let dir = format!("/drop-{}-{polls}", mode as i32);
            drop_protected_create_at(&server, &fw, mode, &dir, polls).await;
        }
    }
    // And a create that finished but was never kept.
    server.set_latency(Duration::ZERO);
    let session = fw.session().await.unwrap();
    let mut node =
        ProtectedCreate::new(&fw, "/done/n-", Create::new(CreateMode::PersistentSequential).parents()).unwrap();
    let created = node.create(&session, "").await.unwrap();
    assert!(fw.client().exists(&created.path).await.unwrap().is_some());
    drop(node);
    no_pending_cleanups(&fw).await;
    assert_eq!(fw.client().exists(&created.path).await.unwrap(), None);
    fw.close().await;
    server.close().await;
}

#[tokio::test]
async fn a_dropped_framework_create_in_protected_mode_cleans_up_too() {
    let server = TestingServer::start().await.unwrap();
    let fw = framework(&server);
    fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
    fw.ensure_path("/jobs").await.unwrap();
    server.set_latency(Duration::from_millis(5));
    let spec = Create::new(CreateMode::PersistentSequential).protected();
    let create = fw.create("/jobs/job-", "payload", spec);
    // Dropped while the server still delays it.
    assert!(tokio::time::timeout(Duration::from_millis(2), create).await.is_err());
    server.set_latency(Duration::ZERO);
    no_pending_cleanups(&fw).await;
    assert!(fw.client().get_children("/jobs").await.unwrap().is_empty());
    fw.close().await;
    server.close().await;
}
