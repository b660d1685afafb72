//! Interop with real Curator 5.4 for barriers and counters: a Java process using Curator's own
//! `SharedCount`, `DistributedAtomicLong`, `DistributedBarrier` and `DistributedDoubleBarrier`
//! and this crate's recipes share one count, one counter and one barrier, against the embedded
//! server and (when available) a real ZooKeeper.
//!
//! The Java side is `tests/java/CuratorCountersPeer.java`, compiled and driven by
//! `common::java_peer` as in `curator_interop.rs`: without Java, javac or the jars the tests skip
//! with a `skipping:` line on stderr, except under `CI=true` (or `1`), where they fail.

mod common;
#[path = "common/settle.rs"]
mod settle;

use std::sync::Arc;
use std::time::Duration;

use corral_recipes::RetryNTimes;
use corral_recipes::atomic::DistributedAtomicLong;
use corral_recipes::barrier::DistributedBarrier;
use corral_recipes::double_barrier::DistributedDoubleBarrier;
use corral_recipes::shared_count::SharedCount;

use common::java_peer::{self, Java, Peer, PeerSpec, unhex, within};

const SPEC: PeerSpec = PeerSpec {
    class: "CuratorCountersPeer",
    jars: &[java_peer::CURATOR_RECIPES_JARS],
    packages: java_peer::CURATOR_RECIPES_PACKAGES,
    tests: "Curator barrier and counter interop tests",
    cache: "curator-counters-peer",
};

fn java() -> Option<&'static Java> {
    java_peer::java(&SPEC)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_count_is_shared_with_curator() {
    let Some(java) = java() else { return };
    let mut peer = Peer::start(java).await;
    for env in common::envs("interop-shared-count").await {
        eprintln!("-- against the {} server", env.kind);
        peer.connect(&env).await;
        let fw = env.framework();
        let rust = SharedCount::start(&fw, "/shared/count", 0).await.expect("start");
        peer.send("count java /shared/count 99");
        assert_eq!(peer.words("COUNT_STARTED java").await, ["0", "0"], "Curator reads Rust's seed");

        rust.set_count(42).await.expect("set");
        assert_eq!(peer.words("COUNT java").await, ["42", "1"]);
        let (data, _) = fw.client().get_data("/shared/count").await.expect("read");
        assert_eq!(&data[..], [0x00, 0x00, 0x00, 0x2A], "Curator's 4-byte big-endian int");

        let stale = rust.versioned_count();
        peer.send("setcount java -7");
        peer.expect("COUNT_SET java").await;
        // Curator's listener reports its own write too.
        assert_eq!(peer.words("COUNT java").await, ["-7", "2"]);
        let mut changes = rust.changes();
        within("Rust sees Curator's count", changes.wait_for(|v| *v.value() == -7)).await.expect("watch");
        assert!(!rust.try_set_count(&stale, 1).await.expect("try"), "Curator moved the version");

        // Curator's compare-and-set against the version Rust wrote.
        let seen = rust.versioned_count();
        assert!(rust.try_set_count(&seen, 8).await.expect("try"));
        assert_eq!(peer.words("COUNT java").await, ["8", &(seen.version() + 1).to_string()]);
        peer.send(&format!("trysetcount java {} 9", seen.version()));
        assert_eq!(peer.words("TRY_SET java").await, ["false"], "a stale version loses in Curator too");
        peer.send(&format!("trysetcount java {} 9", seen.version() + 1));
        assert_eq!(peer.words("TRY_SET java").await, ["true"]);
        within("Rust sees 9", changes.wait_for(|v| *v.value() == 9)).await.expect("watch");

        rust.close().await;
        fw.close().await;
        peer.disconnect().await;
    }
    peer.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_long_increments_add_up_with_curator() {
    const EACH: i64 = 40;
    let Some(java) = java() else { return };
    let mut peer = Peer::start(java).await;
    for env in common::envs("interop-atomic").await {
        eprintln!("-- against the {} server", env.kind);
        peer.connect(&env).await;
        let fw = env.framework();
        peer.send(&format!("increment java /counters/hits {EACH}"));
        let rust: Vec<_> = (0..2)
            .map(|_| {
                let counter =
                    DistributedAtomicLong::new(&fw, "/counters/hits", RetryNTimes::new(1000, Duration::from_millis(1)));
                tokio::spawn(async move {
                    for _ in 0..EACH {
                        assert!(counter.increment().await.expect("increment").succeeded, "Rust gave up");
                    }
                })
            })
            .collect();
        for task in rust {
            within("Rust increments", task).await.expect("task");
        }
        assert_eq!(peer.words("INCREMENTED java").await, [EACH.to_string(), "0".into()], "Curator gave up");
        let counter = DistributedAtomicLong::new(&fw, "/counters/hits", RetryNTimes::new(0, Duration::ZERO));
        assert_eq!(counter.get().await.expect("get").post_value, 3 * EACH, "no increment lost");
        peer.send("getlong /counters/hits");
        assert_eq!(peer.words("LONG /counters/hits").await, [(3 * EACH).to_string()], "Curator reads Rust's bytes");
        let (data, _) = fw.client().get_data("/counters/hits").await.expect("read");
        assert_eq!(&data[..], (3 * EACH).to_be_bytes(), "Curator's 8-byte big-endian long");
        fw.close().await;
        peer.disconnect().await;
    }
    peer.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barriers_are_shared_with_curator() {
    let Some(java) = java() else { return };
    let mut peer = Peer::start(java).await;
    for env in common::envs("interop-barriers").await {
        eprintln!("-- against the {} server", env.kind);
        peer.connect(&env).await;
        let fw = env.framework();

        // DistributedBarrier: both write Curator's default data; each side's waiter passes when
        // the other side removes the barrier.
        peer.send("barrier /gate set");
        peer.expect("BARRIER /gate set").await;
        DistributedBarrier::new(&fw, "/gate-rust").set_barrier().await.expect("set");
        peer.send("data /gate");
        let java_data = unhex(&peer.words("DATA /gate").await[0]);
        let (rust_data, _) = fw.client().get_data("/gate-rust").await.expect("read");
        assert_eq!(String::from_utf8_lossy(&rust_data), String::from_utf8_lossy(&java_data), "Curator's default data");

        let barrier = DistributedBarrier::new(&fw, "/gate");
        let watches = fw.client().watcher_count().await;
        let waiter = tokio::spawn({
            let barrier = barrier.clone();
            async move { barrier.wait_on_barrier().await }
        });
        // The waiter has set its watch on Curator's barrier and heard everything since.
        settle::settled(&fw.client(), watches + 1).await;
        assert!(!waiter.is_finished(), "passed a barrier Curator set");
        peer.send("barrier /gate remove");
        peer.expect("BARRIER /gate remove").await;
        within("Rust passes", waiter).await.expect("task").expect("wait");
        barrier.set_barrier().await.expect("set");
        peer.send("barrierwait java /gate");
        // Curator's waiter found the barrier (its `exists` left a data watch, not an exist
        // watch) and waits on it: it cannot pass before the barrier goes.
        peer.until_watching("data:/gate").await;
        assert!(peer.take("BARRIER_PASSED").is_empty(), "Curator passed a barrier Corral set");
        barrier.remove_barrier().await.expect("remove");
        assert_eq!(peer.words("BARRIER_PASSED java").await, ["true"]);

        // DistributedDoubleBarrier with two members, one each; either one arrives first.
        for java_first in [true, false] {
            let rust = Arc::new(DistributedDoubleBarrier::new(&fw, "/batch", 2));
            let entering = if java_first {
                peer.send("dbarrier java /batch 2");
                // Curator's member is in; that it waits for Corral's shows below, in the order
                // the server made the nodes.
                common::eventually("Curator's member node", || async {
                    fw.client().get_children("/batch").await.is_ok_and(|names| names.len() == 1)
                })
                .await;
                None
            } else {
                let watches = fw.client().watcher_count().await;
                let task = tokio::spawn({
                    let rust = rust.clone();
                    async move { rust.enter().await }
                });
                // The member waits on its watch for the ready node.
                settle::settled(&fw.client(), watches + 1).await;
                assert!(!task.is_finished(), "entered alone");
                peer.send("dbarrier java /batch 2");
                Some(task)
            };
            match entering {
                None => within("Rust enters", rust.enter()).await.expect("enter"),
                Some(task) => within("Rust enters", task).await.expect("task").expect("enter"),
            }
            assert_eq!(peer.words("ENTERED java").await, ["true"]);
            let names = fw.client().get_children("/batch").await.expect("list");
            assert!(names.iter().filter(|n| *n != "ready").all(|n| uuid::Uuid::try_parse(n).is_ok()), "{names:?}");
            // Nobody entered alone: the ready node came after both members' nodes.
            let ready = fw.client().exists("/batch/ready").await.expect("stat").expect("the ready node");
            for name in names.iter().filter(|n| *n != "ready") {
                let member = fw.client().exists(&format!("/batch/{name}")).await.expect("stat").expect("member");
                assert!(ready.czxid > member.czxid, "the ready node was made before member {name} joined");
            }

            // Leaving: Rust first, then Curator; nobody's leave returns before both left.
            let watches = fw.client().watcher_count().await;
            let leaving = tokio::spawn({
                let rust = rust.clone();
                async move { rust.leave().await }
            });
            // The member waits on its watch on Curator's member node.
            settle::settled(&fw.client(), watches + 1).await;
            assert!(!leaving.is_finished(), "left while Curator was still in");
            peer.send("leave java");
            assert_eq!(peer.words("LEFT java").await, ["true"]);
            within("Rust leaves", leaving).await.expect("task").expect("leave");
            assert!(fw.client().get_children("/batch").await.expect("list").is_empty());
        }
        fw.close().await;
        peer.disconnect().await;
    }
    peer.quit().await;
}
