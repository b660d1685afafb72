//! Session behaviour against a real ZooKeeper: reconnect within the session with watches
//! restored, expiry, resumption, close, credentials, and in-flight requests on a lost connection.

mod common;

use std::time::Duration;

use corral_core::{AddWatchMode, Client, CreateMode, Error, EventType, KeeperState, SessionEvent, SessionState};
use corral_test_support::Fault;
use futures::{FutureExt, StreamExt};

const T: Duration = Duration::from_secs(20);

async fn through_proxy(env: &common::Env, proxy: &corral_test_support::FaultProxy) -> Client {
    Client::builder(format!("{}{}", proxy.addr(), env.chroot))
        .session_timeout(Duration::from_secs(8))
        .connect()
        .await
        .expect("connect through proxy")
}

#[tokio::test]
async fn reconnect_keeps_the_session_and_fires_changes_missed_while_disconnected() {
    for env in common::envs("reconnect").await {
        eprintln!("-- against the {} server", env.kind);
        let proxy =
            corral_test_support::FaultProxy::start(common::first_addr(&env.hosts)).expect("start the fault proxy");
        let c = through_proxy(&env, &proxy).await;
        let other = env.client().await;
        let id = c.session_id();
        let events = c.session_events();

        c.create("/data", "1", CreateMode::Persistent).await.unwrap();
        c.create("/kids", "", CreateMode::Persistent).await.unwrap();
        c.create("/eph", "", CreateMode::Ephemeral).await.unwrap();
        let (_, _, data_watch) = c.get_data_and_watch("/data").await.unwrap();
        let (_, _, child_watch) = c.get_children_and_watch("/kids").await.unwrap();
        let (_, exist_watch) = c.exists_and_watch("/later").await.unwrap();
        let mut recursive = c.add_watch("/kids", AddWatchMode::PersistentRecursive).await.unwrap();

        // Cut the connection and refuse new ones while the other client changes everything.
        proxy.set(Fault::Refuse);
        common::wait_state(&c, |s| s == SessionState::Connecting).await;
        other.set_data("/data", "2", None).await.unwrap();
        other.create("/kids/a", "", CreateMode::Persistent).await.unwrap();
        other.create("/later", "", CreateMode::Persistent).await.unwrap();
        proxy.set(Fault::Pass);

        // The same session comes back, and every missed change fires.
        let ev = tokio::time::timeout(T, data_watch).await.unwrap();
        assert_eq!((ev.event_type, ev.path.as_str()), (EventType::NodeDataChanged, "/data"));
        let ev = tokio::time::timeout(T, child_watch).await.unwrap();
        assert_eq!((ev.event_type, ev.path.as_str()), (EventType::NodeChildrenChanged, "/kids"));
        let ev = tokio::time::timeout(T, exist_watch).await.unwrap();
        assert_eq!((ev.event_type, ev.path.as_str()), (EventType::NodeCreated, "/later"));
        assert_eq!(c.session_id(), id);
        assert!(other.exists("/eph").await.unwrap().is_some(), "the session (and its ephemeral) survived");

        // The recursive watch was restored: later changes still arrive.
        other.set_data("/kids/a", "x", None).await.unwrap();
        let ev = tokio::time::timeout(T, recursive.next()).await.unwrap().unwrap();
        assert_eq!((ev.event_type, ev.path.as_str()), (EventType::NodeDataChanged, "/kids/a"));

        // The stream ends after the session's last event (here, closed): everything is in it.
        c.close().await;
        let saw: Vec<SessionEvent> =
            tokio::time::timeout(T, events.collect()).await.expect("the event stream ends after Closed");
        assert!(matches!(saw.first(), Some(SessionEvent::Disconnected { .. })), "{saw:?}");
        assert!(
            saw.iter()
                .any(|e| matches!(e, SessionEvent::Connected { resumed: true, session_id, .. } if *session_id == id)),
            "{saw:?}"
        );
        other.close().await;
    }
}

#[tokio::test]
async fn in_flight_requests_fail_with_connection_loss_and_none_hang() {
    for env in common::envs("inflight").await {
        eprintln!("-- against the {} server", env.kind);
        let proxy =
            corral_test_support::FaultProxy::start(common::first_addr(&env.hosts)).expect("start the fault proxy");
        let c = through_proxy(&env, &proxy).await;
        c.create("/n", "", CreateMode::Persistent).await.unwrap();
        let futures: Vec<_> = (0..500).map(|_| c.get_data("/n")).collect();
        proxy.drop_connections();
        let mut ok = 0;
        let mut lost = 0;
        for f in futures {
            match tokio::time::timeout(T, f).await.expect("no request may hang") {
                Ok(_) => ok += 1,
                Err(Error::ConnectionLoss) => lost += 1,
                Err(e) => panic!("unexpected error {e:?}"),
            }
        }
        assert_eq!(ok + lost, 500);
        // The client recovers by itself.
        c.get_data("/n").await.unwrap();
        c.close().await;
    }
}

#[tokio::test]
async fn expiry_is_reported_and_never_replaced_by_a_new_session() {
    for env in common::envs("expiry").await {
        eprintln!("-- against the {} server", env.kind);
        let proxy =
            corral_test_support::FaultProxy::start(common::first_addr(&env.hosts)).expect("start the fault proxy");
        let c = through_proxy(&env, &proxy).await;
        c.create("/eph", "", CreateMode::Ephemeral).await.unwrap();
        let (_, _, watch) = c.get_data_and_watch("/eph").await.unwrap();
        let events = c.session_events();
        let info = c.session();

        // Keep the first client away, expire its session from a second handle, then let it back.
        proxy.set(Fault::Refuse);
        let thief =
            Client::builder(env.connect_string()).session(info.id, info.password.clone()).connect().await.unwrap();
        assert_eq!(thief.session_id(), info.id, "a second handle resumes the same session");
        thief.close().await;
        proxy.set(Fault::Pass);

        common::wait_state(&c, |s| s == SessionState::Expired).await;
        let ev = tokio::time::timeout(T, watch).await.unwrap();
        assert_eq!((ev.event_type, ev.state), (EventType::None, KeeperState::Expired));
        assert_eq!(c.get_data("/eph").await.unwrap_err(), Error::SessionExpired);
        // The stream ends after the session's last event: everything it will ever say is here.
        let saw: Vec<SessionEvent> =
            tokio::time::timeout(T, events.collect()).await.expect("the event stream ends after Expired");
        assert!(saw.contains(&SessionEvent::Expired), "{saw:?}");
        assert!(!saw.iter().any(|e| matches!(e, SessionEvent::Connected { .. })), "no new session: {saw:?}");

        let other = env.client().await;
        assert_eq!(other.exists("/eph").await.unwrap(), None, "the expired session's ephemeral is gone");
        other.close().await;
    }
}

#[tokio::test]
async fn resuming_an_unknown_session_is_expired() {
    for env in common::envs("unknown").await {
        eprintln!("-- against the {} server", env.kind);
        let err = Client::builder(env.connect_string())
            .session(0x0123_4567_89ab_cdef, vec![0u8; 16])
            .connect()
            .await
            .unwrap_err();
        assert_eq!(err, Error::SessionExpired);
    }
}

#[tokio::test]
async fn close_deletes_ephemerals_and_ends_watchers() {
    for env in common::envs("close").await {
        eprintln!("-- against the {} server", env.kind);
        let c = env.client().await;
        let other = env.client().await;
        c.create("/e", "", CreateMode::Ephemeral).await.unwrap();
        let (_, deleted) = other.exists_and_watch("/e").await.unwrap();
        let (_, _, own) = c.get_data_and_watch("/e").await.unwrap();
        c.close().await;
        assert_eq!(*c.state().borrow(), SessionState::Closed);
        assert_eq!(tokio::time::timeout(T, deleted).await.unwrap().event_type, EventType::NodeDeleted);
        // The server deletes the ephemeral while closing and may tell this connection first.
        let ev = tokio::time::timeout(T, own).await.unwrap();
        assert!(ev.state == KeeperState::Closed || ev.event_type == EventType::NodeDeleted, "{ev:?}");
        assert_eq!(c.get_data("/e").await.unwrap_err(), Error::Closed);
        other.close().await;
    }
}

#[tokio::test]
async fn dropping_every_handle_closes_the_session() {
    for env in common::envs("dropclose").await {
        eprintln!("-- against the {} server", env.kind);
        let other = env.client().await;
        {
            let c = env.client().await;
            c.create("/e", "", CreateMode::Ephemeral).await.unwrap();
        }
        tokio::time::timeout(T, async {
            while other.exists("/e").await.unwrap().is_some() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("ephemeral deleted soon after the last handle was dropped");
        other.close().await;
    }
}

#[tokio::test]
async fn credentials_are_replayed_after_reconnect_and_bad_ones_end_the_session() {
    for env in common::envs("auth").await {
        eprintln!("-- against the {} server", env.kind);
        let proxy =
            corral_test_support::FaultProxy::start(common::first_addr(&env.hosts)).expect("start the fault proxy");
        let c = Client::builder(format!("{}{}", proxy.addr(), env.chroot))
            .digest_auth("bob", "pw")
            .connect()
            .await
            .unwrap();
        c.create(
            "/mine",
            "",
            corral_core::CreateOptions::new(CreateMode::Persistent).with_acl(corral_core::Acl::creator_all()),
        )
        .await
        .unwrap();
        proxy.drop_connections();
        // After the reconnect the credentials are sent again before this request.
        tokio::time::timeout(T, async {
            loop {
                match c.set_data("/mine", "x", None).await {
                    Ok(_) => break,
                    Err(Error::ConnectionLoss) => tokio::time::sleep(Duration::from_millis(20)).await,
                    Err(e) => panic!("{e:?}"),
                }
            }
        })
        .await
        .unwrap();

        let bad = env.client().await;
        assert_eq!(bad.add_auth("no-such-scheme", "x").await.unwrap_err(), Error::AuthFailed);
        common::wait_state(&bad, |s| s == SessionState::AuthFailed).await;
        assert_eq!(bad.get_data("/").await.unwrap_err(), Error::AuthFailed);
        c.close().await;
    }
}

#[tokio::test]
async fn connect_fails_over_to_a_live_host() {
    for env in common::envs("failover").await {
        eprintln!("-- against the {} server", env.kind);
        // Two dead ports (nothing listens) and the real server, in random order.
        let dead1 = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let dead2 = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let cs = format!("{dead1},{},{dead2}{}", env.hosts, env.chroot);
        let c = Client::builder(cs).connect_timeout(Duration::from_secs(2)).connect().await.unwrap();
        c.get_children("/").await.unwrap();
        c.close().await;
    }
}

#[tokio::test]
async fn the_negotiated_timeout_and_password_are_exposed() {
    for env in common::envs("ping").await {
        eprintln!("-- against the {} server", env.kind);
        let c = Client::builder(env.connect_string()).session_timeout(Duration::from_secs(4)).connect().await.unwrap();
        let info = c.session();
        assert_eq!(info.timeout, Duration::from_secs(4));
        assert_eq!(info.password.len(), 16);
        c.get_data("/").await.unwrap();
        c.close().await;
    }
}

/// On paused time over an in-memory connection to the embedded server, whose session expiry
/// runs on the same virtual clock: an hour idle costs nothing.
#[tokio::test(start_paused = true)]
async fn pings_keep_an_idle_session_alive() {
    let server = std::sync::Arc::new(corral_server::testing::TestingServer::start().await.unwrap());
    let c = Client::builder("memory:2181")
        .session_timeout(Duration::from_secs(4))
        .connector(corral_test_support::env::InMemory(server.clone()))
        .connect()
        .await
        .unwrap();
    let session = c.session_id();
    let mut events = c.session_events();
    // Idle for far longer than the session timeout: only pings keep it alive.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(*c.state().borrow(), SessionState::Connected);
    // Events are queued as they happen: a disconnection would be waiting here already.
    assert!(events.next().now_or_never().is_none(), "no disconnection");
    assert!(server.sessions().contains(&session), "the server kept the session");
    c.get_data("/").await.unwrap();
    c.close().await;
}
