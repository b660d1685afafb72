//! kazoo 2.11's `Barrier` and `DoubleBarrier` beside Corral's `kazoo::Barrier` and
//! `kazoo::DoubleBarrier` on the same paths, both directions, against the embedded server and a
//! real ZooKeeper.

mod common;

use std::time::Duration;

use common::kazoo_peer::{ask, is_uuid_hex, ok};
use corral_recipes::kazoo::{Barrier, DoubleBarrier};
use corral_test_support::python::{KazooPeer, kazoo_python};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_barrier_shared_with_kazoo_both_ways() {
    let Some(python) = kazoo_python() else { return };
    for env in common::envs("kazoo-barrier").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
        let peer = KazooPeer::start(python, &env.connect_string()).expect("kazoo peer");

        // kazoo puts it up; we wait; kazoo's own wait times out; we take it down: both clear.
        let (peer, _) = ok(peer, json!({"op": "barrier_create", "path": "/gate/a"})).await;
        let ours = Barrier::new(&fw, "/gate/a");
        let waiting = tokio::spawn({
            let ours = ours.clone();
            async move { ours.wait_timeout(Duration::from_secs(20)).await }
        });
        let (peer, answer) = ok(peer, json!({"op": "barrier_wait", "path": "/gate/a", "timeout": 0})).await;
        assert_eq!(answer["cleared"], false, "{answer}");
        assert!(!waiting.is_finished(), "we passed a barrier kazoo put up");
        let kazoo_waits = tokio::spawn(ask(peer, json!({"op": "barrier_wait", "path": "/gate/a", "timeout": 20})));
        assert!(ours.remove().await.unwrap());
        waiting.await.unwrap().expect("we cleared once it went");
        let (peer, answer) = kazoo_waits.await.unwrap();
        assert_eq!(answer["cleared"], true, "{answer}");
        let (peer, answer) = ok(peer, json!({"op": "barrier_remove", "path": "/gate/a"})).await;
        assert_eq!(answer["removed"], false, "already down: {answer}");

        // We put it up (as kazoo would: empty data); kazoo takes it down; our waiter clears.
        ours.create().await.unwrap();
        assert!(fw.client().get_data("/gate/a").await.unwrap().0.is_empty());
        let waiting = tokio::spawn({
            let ours = ours.clone();
            async move { ours.wait_timeout(Duration::from_secs(20)).await }
        });
        let (peer, answer) = ok(peer, json!({"op": "barrier_remove", "path": "/gate/a"})).await;
        assert_eq!(answer["removed"], true, "{answer}");
        waiting.await.unwrap().expect("in time");
        assert!(!ours.remove().await.unwrap());
        drop(peer);
        fw.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_barrier_shared_with_kazoo_both_ways() {
    let Some(python) = kazoo_python() else { return };
    for env in common::envs("kazoo-double-barrier").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
        let peer = KazooPeer::start(python, &env.connect_string()).expect("kazoo peer");

        // Three members: a Rust one waits, kazoo's waits, the last (Rust) lets all in.
        let first = std::sync::Arc::new(DoubleBarrier::new(&fw, "/round", 3, "rust-1"));
        let entering = tokio::spawn({
            let first = first.clone();
            async move { first.enter_timeout(Duration::from_secs(30)).await }
        });
        let kazoo_enters = tokio::spawn(ask(
            peer,
            json!({"op": "dbarrier_enter", "path": "/round", "num": 3, "id": "py", "name": "d"}),
        ));
        common::eventually("two members in", || async {
            fw.client().get_children("/round").await.map(|c| c.len() == 2).unwrap_or(false)
        })
        .await;
        assert!(fw.client().exists("/round/ready").await.unwrap().is_none(), "open with two of three");
        assert!(!entering.is_finished() && !kazoo_enters.is_finished(), "entered with two of three");
        let mut members = Vec::new();
        for name in fw.client().get_children("/round").await.unwrap() {
            assert!(is_uuid_hex(&name), "kazoo's member name: {name}");
            members.push(
                String::from_utf8(fw.client().get_data(&format!("/round/{name}")).await.unwrap().0.to_vec()).unwrap(),
            );
        }
        members.sort();
        assert_eq!(members, ["py", "rust-1"]);
        let last = DoubleBarrier::new(&fw, "/round", 3, "rust-2");
        last.enter_timeout(Duration::from_secs(20)).await.unwrap();
        entering.await.unwrap().expect("the waiting Rust member entered");
        let (peer, answer) = kazoo_enters.await.unwrap();
        assert_eq!(answer["entered"], true, "{answer}");
        assert!(fw.client().get_data("/round/ready").await.unwrap().0.is_empty());

        // Leaving: nobody is out before all are.
        let leaving = tokio::spawn({
            let first = first.clone();
            async move { first.leave_timeout(Duration::from_secs(30)).await }
        });
        let kazoo_leaves = tokio::spawn(ask(peer, json!({"op": "dbarrier_leave", "name": "d"})));
        common::eventually("only the last member left in the barrier's way", || async {
            fw.client().exists("/round/ready").await.unwrap().is_none()
        })
        .await;
        assert!(!leaving.is_finished() && !kazoo_leaves.is_finished(), "out before the last member left");
        last.leave_timeout(Duration::from_secs(20)).await.unwrap();
        leaving.await.unwrap().expect("in time");
        let (peer, answer) = kazoo_leaves.await.unwrap();
        assert_eq!(answer["left"], true, "{answer}");
        assert!(fw.client().get_children("/round").await.unwrap().is_empty());

        // Two members, kazoo first this time.
        let kazoo_enters = tokio::spawn(ask(
            peer,
            json!({"op": "dbarrier_enter", "path": "/pair", "num": 2, "id": "py", "name": "e"}),
        ));
        common::eventually("kazoo's member in", || async {
            fw.client().get_children("/pair").await.map(|c| c.len() == 1).unwrap_or(false)
        })
        .await;
        let ours = DoubleBarrier::new(&fw, "/pair", 2, "rust");
        ours.enter_timeout(Duration::from_secs(20)).await.unwrap();
        let (peer, answer) = kazoo_enters.await.unwrap();
        assert_eq!(answer["entered"], true, "{answer}");
        let kazoo_leaves = tokio::spawn(ask(peer, json!({"op": "dbarrier_leave", "name": "e"})));
        ours.leave_timeout(Duration::from_secs(20)).await.unwrap();
        let (peer, _) = kazoo_leaves.await.unwrap();
        assert!(fw.client().get_children("/pair").await.unwrap().is_empty());
        drop(peer);
        fw.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entering_member_joins_again_in_a_new_session() {
    let env = common::embedded("kazoo-double-barrier-lost").await;
    let server = env.server.clone().unwrap();
    let fw = env.framework();
    let member = std::sync::Arc::new(DoubleBarrier::new(&fw, "/round", 2, "rust-1"));
    let entering = tokio::spawn({
        let member = member.clone();
        async move { member.enter_timeout(Duration::from_secs(30)).await }
    });
    common::eventually("our member in", || async { fw.client().exists(member.node_path()).await.unwrap().is_some() })
        .await;
    let old = fw.client().exists(member.node_path()).await.unwrap().unwrap().ephemeral_owner;
    server.expire_session(old);
    common::eventually("our member in again, in the new session", || async {
        matches!(fw.client().exists(member.node_path()).await, Ok(Some(s)) if s.ephemeral_owner != old && s.ephemeral_owner != 0)
    })
    .await;
    let other = env.framework();
    let second = DoubleBarrier::new(&other, "/round", 2, "rust-2");
    second.enter_timeout(Duration::from_secs(20)).await.unwrap();
    entering.await.unwrap().expect("in time");
    let (a, b) = tokio::join!(member.leave(), second.leave());
    a.unwrap();
    b.unwrap();
    assert!(fw.client().get_children("/round").await.unwrap().is_empty());
    fw.close().await;
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_enter_takes_its_member_node_away() {
    let env = common::embedded("kazoo-double-barrier-cancel").await;
    let fw = env.framework();
    let member = std::sync::Arc::new(DoubleBarrier::new(&fw, "/round", 2, "rust-1"));
    let entering = tokio::spawn({
        let member = member.clone();
        async move { member.enter().await }
    });
    common::eventually("our member in", || async { fw.client().exists(member.node_path()).await.unwrap().is_some() })
        .await;
    entering.abort();
    let _ = entering.await;
    common::eventually("our member node deleted", || async {
        fw.client().get_children("/round").await.unwrap().is_empty()
    })
    .await;
    fw.close().await;
}
