//! kazoo 2.11's `SetPartitioner` and Corral's `kazoo::SetPartitioner` splitting one set
//! without overlap, both directions, against the embedded server and a real ZooKeeper.

mod common;

use std::time::Duration;

use common::kazoo_peer::ok;
use corral_recipes::Framework;
use corral_recipes::kazoo::{self, PartitionState, SetPartitioner};
use corral_test_support::python::{KazooPeer, kazoo_python};
use futures::StreamExt;
use serde_json::json;

const SET: [&str; 4] = ["a", "b", "c", "d"];

fn start(fw: &Framework, id: &str) -> SetPartitioner {
    SetPartitioner::builder(fw, "/part", SET, id)
        .time_boundary(Duration::from_millis(300))
        .max_reaction_time(Duration::from_millis(300))
        .start()
}

/// Follows `p` as an application would (releasing on Release) until it holds `expected`.
async fn until_acquired(p: &SetPartitioner, expected: &[&str]) {
    let mut states = p.states();
    let follow = async {
        while let Some(state) = states.next().await {
            if std::env::var("DEBUG_PART").is_ok() {
                eprintln!("rust partitioner: {state:?}");
            }
            match state {
                PartitionState::Acquired(items) if items == expected => return,
                PartitionState::Release => p.release_set(),
                PartitionState::Failure => panic!("the partitioner failed"),
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), follow).await.expect("our partitioner acquired its share");
}

/// Polls the kazoo partitioner `name` as kazoo's docs loop does until it holds `expected`
/// (for at most 60 s: a member that joined a moment ago may not have been noticed yet).
///
/// At every poll, kazoo's acquired items and ours (if `ours` is given) must not overlap.
async fn py_until_acquired(
    mut peer: KazooPeer,
    name: &str,
    expected: &[&str],
    ours: Option<&SetPartitioner>,
) -> KazooPeer {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (p, answer) = ok(peer, json!({"op": "part_poll", "name": name, "timeout": 1})).await;
        peer = p;
        if std::env::var("DEBUG_PART").is_ok() {
            eprintln!("kazoo partitioner: {answer}");
        }
        if let (Some(PartitionState::Acquired(items)), "ACQUIRED") =
            (ours.map(SetPartitioner::state), answer["state"].as_str().unwrap_or_default())
        {
            for item in &items {
                assert!(!answer["set"].as_array().unwrap().contains(&json!(item)), "{item} held by both: {answer}");
            }
        }
        if answer["state"] == "ACQUIRED" && answer["set"] == json!(expected) {
            return peer;
        }
        assert_ne!(answer["state"], "FAILURE", "kazoo's partitioner failed");
        assert!(tokio::time::Instant::now() < deadline, "kazoo's partitioner never held {expected:?}: {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every item's lock has exactly one contender: no item is held twice, or wanted by a member
/// that is not its holder.
async fn each_item_locked_once(fw: &Framework) {
    for item in SET {
        let contenders = kazoo::contenders(fw, &format!("/part/locks/{item}")).await.unwrap();
        assert_eq!(contenders, [""], "item {item}: kazoo's lock data is empty; one holder");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_split_with_kazoo_both_ways() {
    let Some(python) = kazoo_python() else { return };
    for env in common::envs("kazoo-partitioner").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
        let peer = KazooPeer::start(python, &env.connect_string()).expect("kazoo peer");

        // Alone, we hold everything.
        let ours = start(&fw, "rust");
        until_acquired(&ours, &SET).await;
        each_item_locked_once(&fw).await;
        for item in SET {
            let dir = fw.client().exists(&format!("/part/locks/{item}")).await.unwrap().unwrap();
            assert_eq!(dir.ephemeral_owner, 0, "a persistent lock directory, as kazoo makes it");
        }

        // kazoo joins: we release on its arrival and each side holds its share.
        let part = json!({"op": "part_start", "path": "/part", "set": SET, "id": "py", "name": "p",
            "time_boundary": 0.3, "max_reaction_time": 0.3});
        let (peer, _) = ok(peer, part).await;
        let ((), peer) =
            tokio::join!(until_acquired(&ours, &["b", "d"]), py_until_acquired(peer, "p", &["a", "c"], Some(&ours)));
        each_item_locked_once(&fw).await;
        let mut members = kazoo::shallow_party_members(&fw, "/part/party").await.unwrap();
        members.sort();
        assert_eq!(members, ["py", "rust"]);
        for name in fw.client().get_children("/part/party").await.unwrap() {
            let id = name.split_once('-').unwrap().1;
            assert_eq!(&fw.client().get_data(&format!("/part/party/{name}")).await.unwrap().0[..], id.as_bytes());
        }

        // We leave: kazoo takes it all.
        ours.finish().await;
        assert_eq!(ours.state(), PartitionState::Failure);
        let peer = py_until_acquired(peer, "p", &SET, None).await;
        each_item_locked_once(&fw).await;

        // We come back: kazoo releases on our arrival and the set is split again.
        let ours = start(&fw, "rust");
        let ((), peer) =
            tokio::join!(until_acquired(&ours, &["b", "d"]), py_until_acquired(peer, "p", &["a", "c"], Some(&ours)));
        each_item_locked_once(&fw).await;
        let (peer, _) = ok(peer, json!({"op": "part_finish", "name": "p"})).await;
        until_acquired(&ours, &SET).await;
        ours.finish().await;
        drop(peer);
        fw.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_session_is_lost_fails_and_the_others_take_its_share() {
    let env = common::embedded("kazoo-partitioner-lost").await;
    let server = env.server.clone().unwrap();
    let (fw, other) = (env.framework(), env.framework());
    let (lost, stays) = (start(&fw, "w1"), start(&other, "w2"));
    tokio::join!(until_acquired(&lost, &["a", "c"]), until_acquired(&stays, &["b", "d"]));
    let mut states = lost.states();
    server.expire_session(fw.client().session_id());
    let last = tokio::time::timeout(Duration::from_secs(30), async {
        let mut last = None;
        while let Some(state) = states.next().await {
            last = Some(state);
        }
        last
    })
    .await
    .unwrap();
    assert_eq!(last, Some(PartitionState::Failure), "for good, as kazoo");
    until_acquired(&stays, &SET).await;
    each_item_locked_once(&other).await;
    // Nothing of the failed member in the new session.
    assert_eq!(kazoo::shallow_party_members(&other, "/part/party").await.unwrap(), ["w2"]);
    stays.finish().await;
    fw.close().await;
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shallow_party_members_carry_the_identifier_as_data_as_kazoos_do() {
    let Some(python) = kazoo_python() else { return };
    let env = common::embedded("kazoo-shallow-party-data").await;
    let fw = env.framework();
    let peer = KazooPeer::start(python, &env.connect_string()).expect("kazoo peer");
    let (peer, _) =
        ok(peer, json!({"op": "party_join", "path": "/party", "id": "py", "name": "s", "shallow": true})).await;
    let ours = kazoo::Party::join_shallow(&fw, "/party", "rust");
    ours.wait_joined(Duration::from_secs(10)).await.unwrap();
    for name in fw.client().get_children("/party").await.unwrap() {
        let id = name.split_once('-').unwrap().1;
        assert_eq!(&fw.client().get_data(&format!("/party/{name}")).await.unwrap().0[..], id.as_bytes(), "{name}");
    }
    ours.leave().await;
    drop(peer);
    fw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_asks_for_a_release_and_the_set_is_acquired_again() {
    let env = common::embedded("kazoo-partitioner-suspended").await;
    let server = env.server.clone().unwrap();
    let fw = env.framework();
    let p = start(&fw, "w1");
    until_acquired(&p, &SET).await;
    let mut states = p.states();
    let session = fw.client().session_id();
    server.drop_connection(session); // SUSPENDED, then RECONNECTED in the same session
    let released = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(state) = states.next().await {
            if state == PartitionState::Release {
                return;
            }
        }
        panic!("the stream ended");
    });
    released.await.expect("Release after a dropped connection, as kazoo");
    p.release_set();
    until_acquired(&p, &SET).await;
    assert_eq!(fw.client().session_id(), session, "the same session throughout");
    each_item_locked_once(&fw).await;
    p.finish().await;
    fw.close().await;
}
