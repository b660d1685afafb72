//! `QueueSharder`: Curator's layout (`<path>/queue-<uuid>` shards, a leader latch), a shard added
//! by the leader only when one is over the threshold and only up to the maximum, preferred
//! shards for producers, followers learning the leader's shards, and the periodic check; and the
//! same shards shared with Curator 5.4's own `QueueSharder` (a Java peer,
//! `tests/java/CuratorSharderPeer.java`, driven by `common::java_peer`: without Java or the jars
//! that test skips with a `skipping:` line, except under `CI=true` (or `1`), where it fails).

mod common;

use std::time::Duration;

use bytes::Bytes;
use corral_recipes::queue::{DistributedQueue, QueueSharder, QueueSharderPolicies, SimpleDistributedQueue};

use common::java_peer::{self, Peer, PeerSpec, hex};

const SPEC: PeerSpec = PeerSpec {
    class: "CuratorSharderPeer",
    jars: &[java_peer::CURATOR_RECIPES_JARS],
    packages: java_peer::CURATOR_RECIPES_PACKAGES,
    tests: "Curator QueueSharder interop test",
    cache: "curator-sharder-peer",
};

const T: Duration = Duration::from_secs(30);

async fn sharder(
    fw: &corral_recipes::Framework,
    policies: QueueSharderPolicies,
) -> QueueSharder<SimpleDistributedQueue> {
    QueueSharder::start(fw, "/jobs", "/jobs-leader", policies, |fw, path| SimpleDistributedQueue::new(fw, path))
        .await
        .expect("start the sharder")
}

async fn lead(sharder: &QueueSharder<SimpleDistributedQueue>) {
    tokio::time::timeout(T, sharder.leadership().wait_for(|l| *l)).await.expect("leadership in time").expect("latch");
}

/// Puts `n` items into the shard at `path`.
async fn fill(fw: &corral_recipes::Framework, path: &str, n: usize) {
    let shard = SimpleDistributedQueue::new(fw, path);
    for i in 0..n {
        shard.offer(format!("item {i}")).await.expect("offer");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_shard_makes_the_leader_add_one_up_to_the_max() {
    for env in common::envs("sharder-max").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        let policies = QueueSharderPolicies::default()
            .with_new_queue_threshold(4)
            .with_max_queues(3)
            .with_threshold_check(Duration::from_secs(3600));
        let sharder = sharder(&fw, policies).await;
        lead(&sharder).await;
        let first = sharder.queue_paths();
        assert_eq!(first.len(), 1);
        let name = first[0].strip_prefix("/jobs/queue-").expect("Curator's shard name");
        assert!(uuid::Uuid::try_parse(name).is_ok(), "{name} is a uuid");

        // Below the threshold nothing is added.
        fill(&fw, &first[0], 3).await;
        sharder.check_threshold().await.expect("check");
        assert_eq!(sharder.queue_paths(), first);

        // At the threshold the leader adds a shard, and producers get only the new one.
        fill(&fw, &first[0], 1).await;
        sharder.check_threshold().await.expect("check");
        let second = sharder.queue_paths();
        assert_eq!(second.len(), 2);
        let new = second.iter().find(|p| **p != first[0]).expect("a new shard").clone();
        for _ in 0..20 {
            assert_eq!(sharder.queue().path(), new, "the full shard is not preferred");
        }

        // Up to the maximum, and no further.
        fill(&fw, &new, 4).await;
        sharder.check_threshold().await.expect("check");
        assert_eq!(sharder.queue_paths().len(), 3);
        for path in sharder.queue_paths() {
            fill(&fw, &path, 4).await;
        }
        sharder.check_threshold().await.expect("check");
        assert_eq!(sharder.queue_paths().len(), 3, "max_queues");
        let mut on_server = fw.client().get_children("/jobs").await.expect("list");
        on_server.sort();
        let known: Vec<String> =
            sharder.queue_paths().iter().map(|p| p.trim_start_matches("/jobs/").to_owned()).collect();
        assert_eq!(on_server, known, "the shards are exactly the nodes under the queue path");

        // Drained to half the threshold, the first shard is preferred again.
        let drain = SimpleDistributedQueue::new(&fw, &first[0]);
        for _ in 0..6 {
            drain.poll().await.expect("poll").expect("an item");
        }
        sharder.check_threshold().await.expect("check");
        for _ in 0..20 {
            assert_eq!(sharder.queue().path(), first[0], "the only shard at or under half the threshold");
        }
        sharder.close().await;
        fw.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_learn_the_leaders_shards_and_add_none() {
    let env = common::embedded("sharder-follower").await;
    let (fw_a, fw_b) = (env.framework(), env.framework());
    let policies =
        QueueSharderPolicies::default().with_new_queue_threshold(2).with_threshold_check(Duration::from_secs(3600));
    let leader = sharder(&fw_a, policies).await;
    lead(&leader).await;
    let follower = sharder(&fw_b, policies).await;
    assert_eq!(follower.queue_paths(), leader.queue_paths(), "the follower found the shard, made none");
    assert!(!*follower.leadership().borrow());

    fill(&fw_b, &follower.queue_paths()[0], 2).await;
    follower.check_threshold().await.expect("check");
    assert_eq!(follower.queue_paths().len(), 1, "only the leader adds shards");
    leader.check_threshold().await.expect("check");
    assert_eq!(leader.queue_paths().len(), 2);
    follower.check_threshold().await.expect("check");
    assert_eq!(follower.queue_paths(), leader.queue_paths(), "the follower learns the new shard");

    // When the leader goes, the follower takes over adding shards.
    leader.close().await;
    tokio::time::timeout(T, follower.leadership().wait_for(|l| *l)).await.expect("takes over").expect("latch");
    for path in follower.queue_paths() {
        fill(&fw_b, &path, 2).await;
    }
    follower.check_threshold().await.expect("check");
    assert_eq!(follower.queue_paths().len(), 3);
    follower.close().await;
    fw_a.close().await;
    fw_b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_check_adds_shards_and_consumers_see_every_item() {
    let env = common::embedded("sharder-periodic").await;
    let fw = env.framework();
    let policies =
        QueueSharderPolicies::default().with_new_queue_threshold(5).with_threshold_check(Duration::from_millis(50));
    let sharder =
        QueueSharder::start(&fw, "/work", "/work-leader", policies, |fw, path| DistributedQueue::new(fw, path))
            .await
            .expect("start");
    let mut put = 0;
    // Producers keep putting; the background check spreads them over new shards.
    common::eventually("a second shard", || {
        let queue = sharder.queue();
        put += 1;
        let item = Bytes::from(format!("job {put}"));
        let sharder = &sharder;
        async move {
            queue.put(&item).await.expect("put");
            sharder.queue_paths().len() >= 2
        }
    })
    .await;
    let mut taken = 0;
    for (path, shard) in sharder.queues() {
        // Every item of a shard is one node in it; take them all through its consumer.
        let items = fw.client().get_children(&path).await.expect("list").len();
        let mut consumer = shard.consumer();
        for _ in 0..items {
            let message = tokio::time::timeout(T, consumer.next_message()).await.expect("in time").expect("message");
            taken += message.items().len();
        }
    }
    assert_eq!(taken, put, "every item is in some shard");
    sharder.close().await;
    fw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_are_shared_with_curators_queue_sharder() {
    let Some(java) = java_peer::java(&SPEC) else { return };
    let mut peer = Peer::start(java).await;
    for env in common::envs("interop-sharder").await {
        eprintln!("-- against the {} server", env.kind);
        peer.connect(&env).await;
        let fw = env.framework();
        // Curator's sharder first: it makes the first shard and leads.
        peer.send("sharder /shared /shared-leader 3 100 5");
        peer.expect("SHARDER_STARTED").await;
        common::eventually("Curator's shard and latch node", || async {
            let shards = fw.client().get_children("/shared").await.unwrap_or_default();
            let latch = fw.client().get_children("/shared-leader").await.unwrap_or_default();
            shards.len() == 1 && latch.len() == 1
        })
        .await;
        let policies =
            QueueSharderPolicies::default().with_new_queue_threshold(3).with_threshold_check(Duration::from_secs(3600));
        let rust =
            QueueSharder::start(&fw, "/shared", "/shared-leader", policies, |fw, path| DistributedQueue::new(fw, path))
                .await
                .expect("start");
        peer.send("shards");
        let java_shards: Vec<String> = peer.words("SHARDS").await.split_off(1);
        assert_eq!(rust.queue_paths(), java_shards, "Rust adopted Curator's shard and made none");

        // Rust fills the shard; Curator's leader adds one at its next check, Rust learns it.
        for i in 0..3 {
            rust.queue().put(&Bytes::from(format!("rust {i}"))).await.expect("put");
        }
        common::eventually("Curator adds a shard and Rust learns it", || async {
            rust.check_threshold().await.expect("check");
            rust.queue_paths().len() == 2
        })
        .await;
        assert!(!*rust.leadership().borrow(), "Curator leads");
        peer.send("shards");
        let java_shards: Vec<String> = peer.words("SHARDS").await.split_off(1);
        assert_eq!(rust.queue_paths(), java_shards);
        assert!(java_shards.iter().all(|p| p.starts_with("/shared/queue-")), "{java_shards:?}");

        // Both sides now prefer the new shard; Curator's items there reach a Rust consumer.
        let new = rust.queue().path().to_owned();
        peer.send(&format!("put {}", hex(b"from curator")));
        assert_eq!(peer.expect("PUT").await, format!("PUT {new}"), "Curator prefers the same shard");
        let mut consumer = rust.queue().consumer();
        let message = tokio::time::timeout(T, consumer.next_message()).await.expect("in time").expect("message");
        assert_eq!(message.items(), [Bytes::from_static(b"from curator")]);

        peer.send("closesharder");
        peer.expect("SHARDER_CLOSED").await;
        rust.close().await;
        fw.close().await;
        peer.disconnect().await;
    }
    peer.quit().await;
}
