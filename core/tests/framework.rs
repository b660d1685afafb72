//! The framework layer against a real ZooKeeper: connection states under faults, a new
//! session after LOST, protected creates, guaranteed deletes.

mod common;

use std::time::Duration;

use corral_core::framework::{Create, Delete};
use corral_core::{ConnectionState, ConnectionStateChange, CreateMode, Framework, RetryNTimes};
use corral_test_support::Fault;
use futures::StreamExt;

const T: Duration = Duration::from_secs(30);

fn framework(env: &common::Env, proxy: &corral_test_support::FaultProxy) -> Framework {
    Framework::builder(format!("{}{}", proxy.addr(), env.chroot))
        .session_timeout(Duration::from_secs(4))
        .connection_timeout(Duration::from_secs(10))
        .retry_policy(RetryNTimes::new(10, Duration::from_millis(50)))
        .start()
        .expect("start framework")
}

async fn next_state(changes: &mut corral_core::framework::StateChanges) -> ConnectionStateChange {
    tokio::time::timeout(T, changes.next()).await.expect("a state within 30 s").expect("state stream")
}

#[tokio::test]
async fn dropped_connection_is_suspended_then_reconnected_in_the_same_epoch() {
    for env in common::envs("fw-suspend").await {
        eprintln!("-- against the {} server", env.kind);
        let proxy =
            corral_test_support::FaultProxy::start(common::first_addr(&env.hosts)).expect("start the fault proxy");
        let fw = framework(&env, &proxy);
        let mut changes = fw.state_changes();
        let first = next_state(&mut changes).await;
        assert_eq!((first.state, first.epoch), (ConnectionState::Connected, 1));
        assert_eq!(first.session_id, fw.client().session_id());

        proxy.drop_connections();
        let s = next_state(&mut changes).await;
        assert_eq!((s.state, s.epoch, s.session_id), (ConnectionState::Suspended, 1, first.session_id));
        let r = next_state(&mut changes).await;
        assert_eq!((r.state, r.epoch, r.session_id), (ConnectionState::Reconnected, 1, first.session_id));
        fw.close().await;
        assert_eq!(next_state(&mut changes).await.state, ConnectionState::Lost);
    }
}

#[tokio::test]
async fn server_expiry_is_lost_then_reconnected_on_a_new_session() {
    for env in common::envs("fw-expiry").await {
        eprintln!("-- against the {} server", env.kind);
        let proxy =
            corral_test_support::FaultProxy::start(common::first_addr(&env.hosts)).expect("start the fault proxy");
        let fw = framework(&env, &proxy);
        let mut changes = fw.state_changes();
        let first = next_state(&mut changes).await;
        let info = fw.client().session();

        proxy.set(Fault::Refuse);
        assert_eq!(next_state(&mut changes).await.state, ConnectionState::Suspended);
        let thief =
            corral_core::Client::builder(env.connect_string()).session(info.id, info.password).connect().await.unwrap();
        thief.close().await;
        proxy.set(Fault::Pass);

        let lost = next_state(&mut changes).await;
        assert_eq!((lost.state, lost.epoch, lost.session_id), (ConnectionState::Lost, 1, first.session_id));
        let back = next_state(&mut changes).await;
        assert_eq!((back.state, back.epoch), (ConnectionState::Reconnected, 2));
        assert_ne!(back.session_id, first.session_id);
        assert_eq!(fw.client().session_id(), back.session_id);
        fw.client().get_children("/").await.unwrap();
        fw.close().await;
    }
}

#[tokio::test]
async fn a_silent_server_for_longer_than_the_session_timeout_is_lost_without_a_word() {
    for env in common::envs("fw-silent").await {
        eprintln!("-- against the {} server", env.kind);
        let proxy =
            corral_test_support::FaultProxy::start(common::first_addr(&env.hosts)).expect("start the fault proxy");
        let fw = framework(&env, &proxy);
        let mut changes = fw.state_changes();
        let first = next_state(&mut changes).await;
        proxy.set(Fault::Refuse);
        let suspended_at = tokio::time::Instant::now();
        assert_eq!(next_state(&mut changes).await.state, ConnectionState::Suspended);
        let lost = next_state(&mut changes).await;
        let after = suspended_at.elapsed();
        assert_eq!(lost.state, ConnectionState::Lost);
        // The negotiated timeout is 4 s: LOST comes once it has elapsed, not before.
        assert!(after >= Duration::from_millis(3900) && after < Duration::from_secs(8), "{after:?}");
        proxy.set(Fault::Pass);
        let back = next_state(&mut changes).await;
        assert_eq!((back.state, back.epoch), (ConnectionState::Reconnected, 2));
        assert_ne!(back.session_id, first.session_id);
        fw.close().await;
    }
}

#[tokio::test]
async fn a_protected_create_that_loses_its_connection_ends_with_exactly_one_node() {
    for env in common::envs("fw-protected").await {
        eprintln!("-- against the {} server", env.kind);
        let proxy =
            corral_test_support::FaultProxy::start(common::first_addr(&env.hosts)).expect("start the fault proxy");
        let fw = framework(&env, &proxy);
        fw.wait_until_connected(T).await.unwrap();
        fw.ensure_path("/locks").await.unwrap();

        // The create reaches the server, its reply is lost, then the connection drops.
        proxy.set(Fault::CutServerToClient);
        let create = {
            let fw = fw.clone();
            tokio::spawn(async move {
                fw.create("/locks/lock-", "", Create::new(CreateMode::EphemeralSequential).protected()).await
            })
        };
        let observer = env.client().await;
        tokio::time::timeout(T, async {
            while observer.get_children("/locks").await.unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
        proxy.drop_connections();
        proxy.set(Fault::Pass);
        let path = create.await.unwrap().unwrap();
        let children = observer.get_children("/locks").await.unwrap();
        assert_eq!(children.len(), 1, "{children:?}");
        assert_eq!(format!("/locks/{}", children[0]), path);
        assert!(children[0].starts_with("_c_") && children[0].contains("-lock-"), "{children:?}");
        observer.close().await;
        fw.close().await;
    }
}

#[tokio::test]
async fn a_guaranteed_delete_survives_a_dropped_connection() {
    for env in common::envs("fw-guaranteed").await {
        eprintln!("-- against the {} server", env.kind);
        let proxy =
            corral_test_support::FaultProxy::start(common::first_addr(&env.hosts)).expect("start the fault proxy");
        let fw = Framework::builder(format!("{}{}", proxy.addr(), env.chroot))
            .session_timeout(Duration::from_secs(20))
            .connection_timeout(Duration::from_millis(500))
            .retry_policy(RetryNTimes::new(1, Duration::from_millis(10)))
            .start()
            .unwrap();
        fw.wait_until_connected(T).await.unwrap();
        fw.create("/a/b", "", Create::new(CreateMode::Persistent).parents()).await.unwrap();
        fw.create("/a/c/x/y", "", Create::new(CreateMode::Persistent).parents()).await.unwrap();

        proxy.set(Fault::Refuse);
        let err = fw.delete("/a/b", Delete::new().guaranteed()).await.unwrap_err();
        assert!(err.is_retryable() || matches!(err, corral_core::Error::Timeout), "{err:?}");
        // With its children, in the background too.
        let err = fw.delete("/a/c", Delete::new().guaranteed().children()).await.unwrap_err();
        assert!(err.is_retryable() || matches!(err, corral_core::Error::Timeout), "{err:?}");
        assert_eq!(fw.pending_guaranteed_deletes(), 2);
        proxy.set(Fault::Pass);

        let observer = env.client().await;
        tokio::time::timeout(T, async {
            while observer.exists("/a/b").await.unwrap().is_some()
                || observer.exists("/a/c").await.unwrap().is_some()
                || fw.pending_guaranteed_deletes() > 0
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("deleted in the background");
        observer.close().await;
        fw.close().await;
    }
}

#[tokio::test]
async fn framework_operations_create_parents_and_respect_the_namespace() {
    for env in common::envs("fw-ops").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = Framework::builder(env.connect_string()).namespace("ns/app").start().unwrap();
        fw.wait_until_connected(T).await.unwrap();
        let p = fw.create("/x/y/z", "d", Create::new(CreateMode::Persistent).container_parents()).await.unwrap();
        assert_eq!(p, "/x/y/z");
        let observer = env.client().await;
        assert!(observer.exists("/ns/app/x/y/z").await.unwrap().is_some());
        let (_, parent) = observer.get_data("/ns/app/x").await.unwrap();
        assert_eq!(parent.ephemeral_owner, 0);

        // Idempotent create: same data is fine, other data is NodeExists.
        let idem = Create::new(CreateMode::Persistent).idempotent();
        assert_eq!(fw.create("/x/y/z", "d", idem.clone()).await.unwrap(), "/x/y/z");
        assert!(fw.create("/x/y/z", "other", idem).await.unwrap_err().is_node_exists());

        let stat = fw.set_data("/x/y/z", "e", Some(0)).await.unwrap();
        assert_eq!(stat.version, 1);
        fw.delete("/x", Delete::new().children()).await.unwrap();
        assert!(observer.exists("/ns/app/x").await.unwrap().is_none());
        fw.delete("/x", Delete::new().idempotent()).await.unwrap();
        assert!(fw.delete("/x", Delete::new()).await.unwrap_err().is_no_node());
        fw.ensure_path("/deep/er/path").await.unwrap();
        assert!(observer.exists("/ns/app/deep/er/path").await.unwrap().is_some());
        let results = fw
            .transaction(vec![
                corral_core::Op::check("/deep", None),
                corral_core::Op::create("/deep/t", "", CreateMode::Persistent),
            ])
            .await
            .unwrap();
        assert_eq!(results.len(), 2);
        observer.close().await;
        fw.close().await;
        assert_eq!(fw.current_state().state, ConnectionState::Lost);
    }
}

#[tokio::test]
async fn protected_and_idempotent_creates_refuse_what_is_not_theirs() {
    for env in common::envs("fw-refuse").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = Framework::builder(format!("{}{}", env.hosts, env.chroot)).start().unwrap();
        fw.wait_until_connected(T).await.unwrap();

        // A bad path fails the same way with or without protection, and creates nothing.
        for spec in [Create::new(CreateMode::Persistent), Create::new(CreateMode::Persistent).protected()] {
            let err = fw.create("relative", "", spec).await.unwrap_err();
            assert!(matches!(err, corral_core::Error::InvalidPath(_)), "{err:?}");
        }
        assert!(!fw.client().get_children("/").await.unwrap().iter().any(|c| c.ends_with("relative")));

        // Another session's ephemeral with the same data is not an idempotent success.
        let other = env.client().await;
        other.create("/eph", "same", CreateMode::Ephemeral).await.unwrap();
        let err = fw.create("/eph", "same", Create::new(CreateMode::Ephemeral).idempotent()).await.unwrap_err();
        assert!(err.is_node_exists(), "{err:?}");
        other.close().await;
        // Our own is.
        fw.create("/mine", "same", Create::new(CreateMode::Ephemeral)).await.unwrap();
        fw.create("/mine", "same", Create::new(CreateMode::Ephemeral).idempotent()).await.unwrap();
        fw.close().await;
    }
}
