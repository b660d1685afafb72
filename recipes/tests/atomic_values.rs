//! `DistributedAtomicInteger` and `DistributedAtomicValue` on their own and next to real Curator
//! 5.4's classes of the same names: the same bytes in the node, increments and compare-and-set
//! counts that add up across languages, the same answers to trySet and compareAndSet, against the
//! embedded server and (when available) a real ZooKeeper.
//!
//! The Java side is `tests/java/CuratorAtomicPeer.java`, compiled and driven by
//! `common::java_peer` as in `curator_interop.rs`: without Java, javac or the jars the Curator
//! tests skip with a `skipping:` line on stderr, except under `CI=true` (or `1`), where they fail.

mod common;

use std::time::Duration;

use bytes::Bytes;
use corral_recipes::atomic::{DistributedAtomicInteger, DistributedAtomicValue, PromotedToLock};
use corral_recipes::{CreateMode, Error, RetryNTimes};

use common::java_peer::{self, Java, Peer, PeerSpec, hex, within};

const SPEC: PeerSpec = PeerSpec {
    class: "CuratorAtomicPeer",
    jars: &[java_peer::CURATOR_RECIPES_JARS],
    packages: java_peer::CURATOR_RECIPES_PACKAGES,
    tests: "Curator DistributedAtomicInteger/DistributedAtomicValue interop tests",
    cache: "curator-atomic-peer",
};

fn java() -> Option<&'static Java> {
    java_peer::java(&SPEC)
}

/// The peer's hex for `data` (`-` for empty).
fn peer_hex(data: &[u8]) -> String {
    if data.is_empty() { "-".to_owned() } else { hex(data) }
}

fn no_retry() -> RetryNTimes {
    RetryNTimes::new(0, Duration::ZERO)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integer_encoding_wrapping_and_corrupt_nodes() {
    let env = common::embedded("atomic-int").await;
    let fw = env.framework();
    let counter = DistributedAtomicInteger::new(&fw, "/n", no_retry());
    assert_eq!(counter.get().await.expect("get").post_value, 0, "no node reads as 0");
    assert!(counter.try_initialize(i32::MAX).await.expect("init"));
    let (data, _) = fw.client().get_data("/n").await.expect("read");
    assert_eq!(&data[..], [0x7f, 0xff, 0xff, 0xff], "4 bytes, big-endian");
    let wrapped = counter.increment().await.expect("increment");
    assert_eq!((wrapped.succeeded, wrapped.pre_value, wrapped.post_value), (true, i32::MAX, i32::MIN));
    assert_eq!(counter.subtract(1).await.expect("subtract").post_value, i32::MAX);

    // Fewer bytes than an int: Curator's getInt throws; here a clear error, no panic.
    fw.client().create("/short", &[0u8, 1, 2][..], CreateMode::Persistent).await.expect("create");
    let short = DistributedAtomicInteger::new(&fw, "/short", no_retry());
    assert!(matches!(short.get().await, Err(Error::CorruptData { .. })));
    assert!(matches!(short.increment().await, Err(Error::CorruptData { .. })));
    // An empty node is 0, and more bytes than an int are read as the first four.
    fw.client().create("/empty", "", CreateMode::Persistent).await.expect("create");
    assert_eq!(DistributedAtomicInteger::new(&fw, "/empty", no_retry()).add(5).await.expect("add").pre_value, 0);
    fw.client().create("/long", &[0u8, 0, 0, 9, 0, 0, 0, 0][..], CreateMode::Persistent).await.expect("create");
    assert_eq!(DistributedAtomicInteger::new(&fw, "/long", no_retry()).get().await.expect("get").post_value, 9);
    fw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_compare_and_set_and_promotion() {
    const TASKS: usize = 4;
    const EACH: usize = 10;
    let env = common::embedded("atomic-value").await;
    let fw = env.framework();
    let value = DistributedAtomicValue::new(&fw, "/v/leader", no_retry());
    let missing = value.compare_and_set(b"", "x").await.expect("cas");
    assert!(!missing.succeeded, "a missing node is not created by compare-and-set");
    assert!(fw.client().exists("/v/leader").await.expect("exists").is_none());
    let set = value.try_set("node-1").await.expect("set");
    assert_eq!((set.succeeded, &set.pre_value[..], &set.post_value[..]), (true, &b""[..], &b"node-1"[..]));
    let stale = value.compare_and_set(b"node-0", "node-2").await.expect("cas");
    assert_eq!((stale.succeeded, &stale.pre_value[..], &stale.post_value[..]), (false, &b"node-1"[..], &b"node-1"[..]));

    // Racing try_sets of different values, promoted to a lock: all succeed, and the node holds
    // one of them whole.
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let promotion = PromotedToLock::new("/v/leader-lock")
                .retry_policy(RetryNTimes::new((TASKS * EACH) as u32, Duration::ZERO));
            let value = DistributedAtomicValue::new(&fw, "/v/leader", no_retry()).promoted_to_lock(promotion);
            tokio::spawn(async move {
                for i in 0..EACH {
                    let result = value.try_set(format!("task-{task}-{i}")).await.expect("set");
                    assert!(result.succeeded, "gave up: {result:?}");
                }
            })
        })
        .collect();
    for task in tasks {
        within("try_sets", task).await.expect("task");
    }
    let last = value.get().await.expect("get").post_value;
    let last = std::str::from_utf8(&last).expect("utf-8");
    assert!((0..TASKS).any(|t| last == format!("task-{t}-{}", EACH - 1)), "{last:?} is some task's last value");
    let locks = fw.client().get_children("/v/leader-lock").await.unwrap_or_default();
    assert!(locks.is_empty(), "lock nodes left: {locks:?}");
    fw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integer_increments_add_up_with_curator() {
    const EACH: i32 = 30;
    let Some(java) = java() else { return };
    let mut peer = Peer::start(java).await;
    for env in common::envs("interop-atomic-int").await {
        eprintln!("-- against the {} server", env.kind);
        peer.connect(&env).await;
        let fw = env.framework();
        peer.send(&format!("intadd java /counters/slots {EACH}"));
        let rust: Vec<_> = (0..2)
            .map(|_| {
                let counter = DistributedAtomicInteger::new(
                    &fw,
                    "/counters/slots",
                    RetryNTimes::new(1000, Duration::from_millis(1)),
                );
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
        assert_eq!(peer.words("INT_ADDED java").await, [EACH.to_string(), "0".into()], "Curator gave up");
        let counter = DistributedAtomicInteger::new(&fw, "/counters/slots", no_retry());
        assert_eq!(counter.get().await.expect("get").post_value, 3 * EACH, "no increment lost");
        peer.send("getint /counters/slots");
        assert_eq!(peer.words("INT /counters/slots").await, [(3 * EACH).to_string()], "Curator reads Rust's bytes");
        let (data, _) = fw.client().get_data("/counters/slots").await.expect("read");
        assert_eq!(&data[..], (3 * EACH).to_be_bytes(), "Curator's 4-byte big-endian int");

        // trySet and compareAndSet answer alike on both sides.
        counter.force_set(i32::MAX).await.expect("force");
        // A failed compareAndSet: Curator reports its post value as 0 (null bytes), where ours
        // repeats the value read; whether it succeeded and the value before agree.
        peer.send("casint /counters/slots 1 2");
        assert_eq!(peer.words("INT_CAS /counters/slots").await, ["false", &i32::MAX.to_string(), "0"]);
        peer.send(&format!("casint /counters/slots {} 7", i32::MAX));
        assert_eq!(peer.words("INT_CAS /counters/slots").await, ["true", &i32::MAX.to_string(), "7"]);
        let result = counter.compare_and_set(7, -3).await.expect("cas");
        assert_eq!((result.succeeded, result.pre_value, result.post_value), (true, 7, -3));
        peer.send("setint /counters/slots 11");
        assert_eq!(peer.words("INT_SET /counters/slots").await, ["true", "-3", "11"]);
        assert_eq!(counter.get().await.expect("get").post_value, 11);
        peer.send("casint /counters/missing 0 1");
        assert_eq!(peer.words("INT_CAS /counters/missing").await, ["false", "0", "0"]);
        let missing = DistributedAtomicInteger::new(&fw, "/counters/missing", no_retry());
        let result = missing.compare_and_set(0, 1).await.expect("cas");
        assert_eq!((result.succeeded, result.pre_value, result.post_value), (false, 0, 0), "as Curator");

        fw.close().await;
        peer.disconnect().await;
    }
    peer.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_bytes_and_compare_and_set_are_shared_with_curator() {
    const EACH: u64 = 15;
    let Some(java) = java() else { return };
    let mut peer = Peer::start(java).await;
    for env in common::envs("interop-atomic-value").await {
        eprintln!("-- against the {} server", env.kind);
        peer.connect(&env).await;
        let fw = env.framework();
        let value = DistributedAtomicValue::new(&fw, "/config/owner", RetryNTimes::new(10, Duration::from_millis(1)));

        peer.send("getvalue /config/owner");
        assert_eq!(peer.words("VALUE /config/owner").await, ["null"], "Curator's missing value");
        assert!(value.get().await.expect("get").post_value.is_empty(), "ours: empty");

        let binary = Bytes::from_static(&[0, 0xff, 0x10, b'r', b's']);
        assert!(value.try_set(binary.clone()).await.expect("set").succeeded);
        peer.send("getvalue /config/owner");
        assert_eq!(peer.words("VALUE /config/owner").await, [hex(&binary)], "the bytes themselves");

        peer.send(&format!("setvalue /config/owner {}", hex(b"java")));
        assert_eq!(peer.words("VALUE_SET /config/owner").await, ["true", &hex(&binary), &hex(b"java")]);
        assert_eq!(&value.get().await.expect("get").post_value[..], b"java");

        // Rust's compare-and-set against what Curator wrote, and Curator's against Rust's.
        assert!(!value.compare_and_set(&binary, "rust").await.expect("cas").succeeded, "stale");
        assert!(value.compare_and_set(b"java", "rust").await.expect("cas").succeeded);
        peer.send(&format!("casvalue /config/owner {} {}", hex(b"java"), hex(b"late")));
        // Curator's failed compareAndSet reports a null post value; ours repeats the value read.
        assert_eq!(peer.words("VALUE_CAS /config/owner").await, ["false", &hex(b"rust"), "null"]);
        peer.send(&format!("casvalue /config/owner {} -", hex(b"rust")));
        assert_eq!(peer.words("VALUE_CAS /config/owner").await, ["true", &hex(b"rust"), "-"]);
        assert!(value.get().await.expect("get").post_value.is_empty(), "Curator wrote empty bytes");

        // A decimal counter in the bytes, incremented by compare-and-set loops on both sides at
        // once: nothing lost.
        value.force_set("0").await.expect("force");
        peer.send(&format!("valuecount java /config/owner {EACH}"));
        let counter = value.clone();
        let rust = tokio::spawn(async move {
            for _ in 0..EACH {
                loop {
                    let current = counter.get().await.expect("get").post_value;
                    let n: u64 = std::str::from_utf8(&current).expect("utf-8").parse().expect("decimal");
                    if counter.compare_and_set(&current, (n + 1).to_string()).await.expect("cas").succeeded {
                        break;
                    }
                }
            }
        });
        within("Rust's compare-and-set loop", rust).await.expect("task");
        assert_eq!(peer.words("VALUE_COUNTED java").await[0], EACH.to_string());
        assert_eq!(value.get().await.expect("get").post_value, (2 * EACH).to_string().as_bytes());
        peer.send("getvalue /config/owner");
        assert_eq!(peer.words("VALUE /config/owner").await, [peer_hex((2 * EACH).to_string().as_bytes())]);

        fw.close().await;
        peer.disconnect().await;
    }
    peer.quit().await;
}
