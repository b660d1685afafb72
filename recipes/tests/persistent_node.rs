//! PersistentNode against the embedded server and (when available) a real ZooKeeper.

mod common;
#[path = "common/settle.rs"]
mod settle;

use std::sync::Arc;
use std::time::Duration;

use corral_recipes::persistent_node::PersistentNode;
use corral_recipes::{ConnectionState, CreateMode};
use futures::FutureExt;

const T: Duration = Duration::from_secs(30);

#[tokio::test]
async fn an_ephemeral_node_comes_back_after_expiry_with_its_latest_data() {
    // Server-side expiry needs the embedded server's fault kit (the framework suite in
    // corral-core covers expiry on a real ZooKeeper).
    {
        let env = common::embedded("pnode-expiry").await;
        let fw = env.framework();
        let node = PersistentNode::start(&fw, "/services/api/i1", CreateMode::Ephemeral, "v1");
        node.wait_for_initial_create(T).await.unwrap();
        node.set_data("v2").await.unwrap();
        let observer = env.client().await;
        assert_eq!(&observer.get_data("/services/api/i1").await.unwrap().0[..], b"v2");

        let before = fw.client().session_id();
        assert!(env.server.as_ref().unwrap().expire_session(before));
        let mut states = fw.connection_state();
        tokio::time::timeout(T, states.wait_for(|s| s.epoch == 2 && s.state.is_connected())).await.unwrap().unwrap();
        common::eventually("re-created by the new session", || async {
            match observer.get_data("/services/api/i1").await {
                Ok((data, stat)) => &data[..] == b"v2" && stat.ephemeral_owner != before && stat.ephemeral_owner != 0,
                Err(_) => false,
            }
        })
        .await;
        node.close().await;
        assert_eq!(observer.exists("/services/api/i1").await.unwrap(), None, "close deletes the node");
        assert_eq!(fw.client().watcher_count().await, 0, "a closed recipe holds no watch");
        observer.close().await;
        fw.close().await;
    }
}

#[tokio::test]
async fn a_deleted_node_is_recreated_and_sequential_paths_follow() {
    for env in common::envs("pnode-delete").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        let plain = PersistentNode::start(&fw, "/p", CreateMode::Persistent, "x");
        let seq = PersistentNode::start_protected(&fw, "/members/m-", CreateMode::EphemeralSequential, "y");
        plain.wait_for_initial_create(T).await.unwrap();
        seq.wait_for_initial_create(T).await.unwrap();
        let first = seq.actual_path().unwrap();
        assert!(first.starts_with("/members/_c_") && first.contains("-m-"), "{first}");

        let observer = env.client().await;
        observer.delete("/p", None).await.unwrap();
        observer.delete(&first, None).await.unwrap();
        common::eventually("both back", || async {
            observer.exists("/p").await.unwrap().is_some()
                && seq.actual_path().is_some_and(|p| p != first)
                && observer.get_children("/members").await.unwrap().len() == 1
        })
        .await;
        plain.close().await;
        seq.close().await;
        assert_eq!(observer.get_children("/members").await.unwrap(), Vec::<String>::new());
        observer.close().await;
        fw.close().await;
    }
}

#[tokio::test]
async fn a_foreign_ephemeral_is_waited_out_not_adopted() {
    let env = common::embedded("pnode-foreign").await;
    let other = env.client().await;
    other.create("/leader", "theirs", CreateMode::Ephemeral).await.unwrap();
    let fw = env.framework();
    let node = PersistentNode::start(&fw, "/leader", CreateMode::Ephemeral, "ours");
    // The node has found the foreign one and watches for it to go.
    settle::settled(&fw.client(), 1).await;
    assert_eq!(node.actual_path(), None, "not adopted while another session owns it");
    other.close().await;
    node.wait_for_initial_create(T).await.unwrap();
    let observer = env.client().await;
    let (data, stat) = observer.get_data("/leader").await.unwrap();
    assert_eq!((&data[..], stat.ephemeral_owner), (&b"ours"[..], fw.client().session_id()));
    let mut states = fw.connection_state();
    assert!(states.borrow_and_update().state != ConnectionState::Lost);
    node.close().await;
    observer.close().await;
    fw.close().await;
}

#[tokio::test]
async fn close_ends_the_wait_for_a_foreign_ephemeral_and_leaves_it_alone() {
    let env = common::embedded("pnode-foreign-close").await;
    let other = env.client().await;
    other.create("/leader", "theirs", CreateMode::Ephemeral).await.unwrap();
    let fw = env.framework();
    let node = PersistentNode::start(&fw, "/leader", CreateMode::Ephemeral, "ours");
    // The recipe found the foreign node and watches it, waiting for it to go.
    common::eventually("waiting on the foreign node", || async { fw.client().watcher_count().await == 1 }).await;
    // Before the fix, close waited for the other session's node to go, that is, forever.
    tokio::time::timeout(Duration::from_secs(5), node.close())
        .await
        .expect("close returns while the foreign node stays");
    assert_eq!(node.actual_path(), None);
    let (data, stat) = other.get_data("/leader").await.unwrap();
    assert_eq!(
        (&data[..], stat.ephemeral_owner),
        (&b"theirs"[..], other.session_id()),
        "the foreign node is untouched"
    );
    assert_eq!(fw.client().watcher_count().await, 0, "a closed recipe holds no watch");
    other.close().await;
    fw.close().await;
}

/// Whether the recipe's task has ended: it drops the path channel's sender when it does.
fn task_ended(node: &PersistentNode) -> bool {
    node.path_changes().has_changed().is_err() && node.actual_path().is_none()
}

#[tokio::test]
async fn every_close_waits_for_the_end_even_concurrent_ones_and_after_a_dropped_one() {
    let env = common::embedded("pnode-close-twice").await;
    let server = env.server.clone().unwrap();
    let fw = env.framework();
    let observer = env.client().await;
    for drop_one_first in [false, true] {
        let path = format!("/workers/w-{drop_one_first}");
        let node = Arc::new(PersistentNode::start(&fw, path.clone(), CreateMode::Ephemeral, "x"));
        node.wait_for_initial_create(T).await.unwrap();
        // Slow replies: the node's delete on close takes a while.
        server.set_latency(Duration::from_millis(300));
        if drop_one_first {
            // A close polled once (the stop is sent) and dropped.
            assert!(node.close().now_or_never().is_none(), "close cannot finish without a round trip");
        }
        // Three at once: each must return only after the task has ended.
        let closes: Vec<_> = (0..2)
            .map(|_| {
                let node = node.clone();
                tokio::spawn(async move {
                    node.close().await;
                    task_ended(&node)
                })
            })
            .collect();
        tokio::time::timeout(T, node.close()).await.unwrap();
        assert!(task_ended(&node), "close returned before the task ended ({drop_one_first})");
        for close in closes {
            let ended = tokio::time::timeout(T, close).await.unwrap().unwrap();
            assert!(ended, "a concurrent close returned before the task ended ({drop_one_first})");
        }
        server.set_latency(Duration::ZERO);
        assert_eq!(observer.exists(&path).await.unwrap(), None, "close deleted the node");
    }
    observer.close().await;
    fw.close().await;
}
