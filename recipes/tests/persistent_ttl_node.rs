//! PersistentTtlNode in Curator's layout — a container with the data and a TTL `touch` child —
//! against the embedded server and (when available) a real ZooKeeper started with extended
//! types.

mod common;

use common::java_peer;

use std::time::Duration;

use corral_recipes::persistent_ttl_node::{PersistentTtlNode, TOUCH_NODE_NAME};

const T: Duration = Duration::from_secs(30);

#[tokio::test]
async fn the_nodes_have_curators_shape_and_come_back_after_a_delete() {
    for env in common::envs("ttl-node-shape").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        // Touched every second: a delete is repaired within one.
        let node = PersistentTtlNode::start(&fw, "/workers/w1", Duration::from_secs(2), "ready");
        node.wait_for_initial_create(T).await.unwrap();
        let client = fw.client();
        // (ZooKeeper shows containers and TTL nodes to clients with an ephemeral owner of 0: their
        // kinds are proven by the server's sweeps in the expiry test.)
        let (data, stat) = client.get_data("/workers/w1").await.unwrap();
        assert_eq!((&data[..], stat.ephemeral_owner), (&b"ready"[..], 0), "the data on the container");
        assert_eq!(client.get_children("/workers/w1").await.unwrap(), [TOUCH_NODE_NAME]);
        let (stamp, touch) = client.get_data("/workers/w1/touch").await.unwrap();
        assert_eq!(touch.ephemeral_owner, 0, "bound to no session");
        assert!(!stamp.is_empty(), "the touch carries Curator's default data (the local address)");

        node.set_data("busy").await.unwrap();
        assert_eq!(&client.get_data("/workers/w1").await.unwrap().0[..], b"busy");

        // Deleted by someone: both come back, with the latest data, at the next touch.
        client.delete("/workers/w1/touch", None).await.unwrap();
        client.delete("/workers/w1", None).await.unwrap();
        common::eventually("re-created", || async { client.exists("/workers/w1/touch").await.unwrap().is_some() })
            .await;
        assert_eq!(&client.get_data("/workers/w1").await.unwrap().0[..], b"busy");
        node.close().await;
        fw.close().await;
    }
}

#[tokio::test]
async fn an_existing_container_is_adopted_with_our_data() {
    let env = common::embedded("ttl-node-adopt").await;
    let fw = env.framework();
    let client = fw.client();
    client.create("/w2", "theirs", corral_recipes::CreateMode::Container).await.unwrap();
    client.create("/w2/other", "", corral_recipes::CreateMode::Persistent).await.unwrap();
    let node = PersistentTtlNode::start(&fw, "/w2", Duration::from_secs(20), "ours");
    node.wait_for_initial_create(T).await.unwrap();
    assert_eq!(&client.get_data("/w2").await.unwrap().0[..], b"ours");
    assert!(client.exists("/w2/touch").await.unwrap().is_some());
    node.close().await;
    fw.close().await;
}

#[tokio::test]
async fn touched_it_outlives_its_ttl_and_closed_the_server_takes_both_nodes() {
    let env = common::embedded("ttl-node-expiry").await;
    let server = env.server.clone().unwrap();
    let fw = env.framework();
    let ttl = Duration::from_millis(300);
    let node = PersistentTtlNode::start(&fw, "/w3", ttl, "ready");
    node.wait_for_initial_create(T).await.unwrap();
    let client = fw.client();
    let first = client.exists("/w3/touch").await.unwrap().unwrap();
    // Touched again and again: each touch is a new modification, and past several TTLs the
    // server's sweeps have left both nodes alone.
    let mut last = first.mzxid;
    for _ in 0..4 {
        let seen = last;
        common::eventually("touched", || async {
            server.sweep_now();
            client.exists("/w3/touch").await.unwrap().expect("the touch node stays").mzxid > seen
        })
        .await;
        last = client.exists("/w3/touch").await.unwrap().unwrap().mzxid;
    }
    assert!(client.exists("/w3").await.unwrap().is_some());
    assert_eq!(client.exists("/w3/touch").await.unwrap().unwrap().czxid, first.czxid, "never re-created");

    // Closed: nothing deleted now, but once the TTL passes the sweeps take the child, then the
    // emptied container.
    node.close().await;
    assert!(client.exists("/w3/touch").await.unwrap().is_some(), "close deleted the node (Curator leaves it)");
    common::eventually("both gone", || async {
        server.sweep_now();
        client.exists("/w3").await.unwrap().is_none()
    })
    .await;
    fw.close().await;
}

// ------------------------------------------------------------------------------------------
// Interop with Curator's PersistentTtlNode (`tests/java/CuratorTtlNodePeer.java`)

const SPEC: java_peer::PeerSpec = java_peer::PeerSpec {
    class: "CuratorTtlNodePeer",
    jars: &[java_peer::CURATOR_RECIPES_JARS],
    packages: java_peer::CURATOR_RECIPES_PACKAGES,
    tests: "Curator PersistentTtlNode interop tests",
    cache: "curator-ttl-node-peer",
};

/// The container's data, its children and the `touch` child's data.
async fn shape(client: &corral_recipes::Client, path: &str) -> (Vec<u8>, Vec<String>, Vec<u8>) {
    let data = client.get_data(path).await.unwrap().0.to_vec();
    let children = client.get_children(path).await.unwrap();
    let touch = client.get_data(&format!("{path}/{TOUCH_NODE_NAME}")).await.unwrap().0.to_vec();
    (data, children, touch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_and_corral_make_the_same_nodes_and_share_one() {
    let Some(java) = java_peer::java(&SPEC) else { return };
    let mut peer = java_peer::Peer::start(java).await;
    for env in common::envs("ttl-node-interop").await {
        eprintln!("-- against the {} server", env.kind);
        peer.connect(&env).await;
        let fw = env.framework();
        let client = fw.client();

        // Side by side: the same nodes, byte for byte (the touch holds each library's default
        // data, the local address).
        peer.send(&format!("ttl-node java /java 2000 {}", java_peer::hex(b"ready")));
        peer.expect("TTL_NODE_STARTED java").await;
        // (Curator's first touch comes `ttl / 2` after the container; ours with it.)
        common::eventually("Curator's first touch", || async { client.exists("/java/touch").await.unwrap().is_some() })
            .await;
        let ours = PersistentTtlNode::start(&fw, "/rust", Duration::from_secs(2), "ready");
        ours.wait_for_initial_create(T).await.unwrap();
        let (java_shape, rust_shape) = (shape(&client, "/java").await, shape(&client, "/rust").await);
        assert_eq!(rust_shape, java_shape, "Curator's and Corral's PersistentTtlNode differ");
        // Curator reads ours as it reads its own.
        peer.send("shape /rust");
        let line = peer.expect("SHAPE /rust").await;
        let (data, children, touch) = rust_shape;
        assert_eq!(
            line,
            format!("SHAPE /rust {} {} {}", java_peer::hex(&data), children.join(","), java_peer::hex(&touch))
        );

        // One path, both libraries: Corral adopts Curator's nodes instead of making others.
        let before = client.exists("/java/touch").await.unwrap().unwrap();
        let shared = PersistentTtlNode::start(&fw, "/java", Duration::from_secs(2), "ready");
        shared.wait_for_initial_create(T).await.unwrap();
        let after = client.exists("/java/touch").await.unwrap().unwrap();
        assert_eq!(after.czxid, before.czxid, "the touch node was made again");
        assert_eq!(client.get_children("/java").await.unwrap(), [TOUCH_NODE_NAME]);

        shared.close().await;
        ours.close().await;
        peer.send("close java");
        peer.expect("CLOSED java").await;
        fw.close().await;
        peer.disconnect().await;
    }
    peer.quit().await;
}
