//! Queue interop with real Curator 5.4 (Debian's `libcurator-recipes-java`, Java 17): Curator's
//! `DistributedQueue` (and its priority, delay and id variants) and `SimpleDistributedQueue` and
//! this crate's queues produce into and
//! consume from the same paths, Curator's `ItemSerializer` bytes are checked against a fixed
//! vector, and both sides honour each other's lock nodes in lock-safe mode.
//!
//! The Java side is `tests/java/CuratorQueuePeer.java`, compiled and driven by
//! `common::java_peer` as the other interop suites do. Without Java, javac or the jars the tests
//! skip with a `skipping:` line on stderr, except under `CI=true` (or `1`), where they fail.

mod common;

use std::time::Duration;

use bytes::Bytes;
use corral_recipes::queue::{
    DistributedDelayQueue, DistributedIdQueue, DistributedPriorityQueue, DistributedQueue, SimpleDistributedQueue,
    decode_message, due_name, encode_message, id_name, priority_name,
};

use common::java_peer::{self, Java, Peer, PeerSpec, hex, unhex, within};

const SPEC: PeerSpec = PeerSpec {
    class: "CuratorQueuePeer",
    jars: &[java_peer::CURATOR_RECIPES_JARS],
    packages: java_peer::CURATOR_RECIPES_PACKAGES,
    tests: "Curator queue interop tests",
    cache: "curator-queue-peer",
};

fn java() -> Option<&'static Java> {
    java_peer::java(&SPEC)
}

/// Curator 5.4's `ItemSerializer` message for the items "a" and "bc" (written by Curator, see
/// `item_serializer_bytes_are_curators`).
const A_BC: [u8; 18] = [0, 1, 0, 1, 0x01, 0, 0, 0, 1, b'a', 0x01, 0, 0, 0, 2, b'b', b'c', 0x02];

/// The items of Java's `ITEM <tag> <hex>` lines, waiting for `n` of them.
async fn java_items(peer: &mut Peer, tag: &str, n: usize) -> Vec<Bytes> {
    let mut items = Vec::new();
    for _ in 0..n {
        let line = peer.expect(&format!("ITEM {tag}")).await;
        items.push(Bytes::from(unhex(line.split(' ').nth(2).unwrap_or_default())));
    }
    items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn item_serializer_bytes_are_curators() {
    let Some(java) = java() else { return };
    let mut peer = Peer::start(java).await;
    // Curator's own serializer, called directly.
    peer.send("serialize 61 6263");
    let line = peer.expect("SERIALIZED").await;
    assert_eq!(unhex(&line["SERIALIZED ".len()..]), A_BC, "Curator's bytes changed");
    assert_eq!(&encode_message([&b"a"[..], &b"bc"[..]])[..], &A_BC[..], "our bytes differ from Curator's");
    peer.send("serialize 6869");
    let line = peer.expect("SERIALIZED").await;
    assert_eq!(unhex(&line["SERIALIZED ".len()..]), &encode_message([&b"hi"[..]])[..]);

    // And what Curator's put stores in the node.
    for env in common::envs("interop-queue-bytes").await {
        peer.connect(&env).await;
        peer.send("put_multi /bytes 61 6263");
        peer.expect("PUT /bytes").await;
        let fw = env.framework();
        let (data, _) = fw.client().get_data("/bytes/queue-0000000000").await.expect("Curator's node");
        assert_eq!(&data[..], &A_BC[..]);
        assert_eq!(decode_message(&data).expect("decode"), [&b"a"[..], &b"bc"[..]]);
        fw.close().await;
        peer.disconnect().await;
    }
    peer.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn curator_produces_and_corral_consumes() {
    let Some(java) = java() else { return };
    let mut peer = Peer::start(java).await;
    for env in common::envs("interop-queue-j2r").await {
        eprintln!("-- against the {} server", env.kind);
        peer.connect(&env).await;
        let fw = env.framework();
        for (path, lock) in [("/plain", None), ("/locked", Some("/locked-locks"))] {
            for i in 0..5 {
                peer.send(&format!("put {path} {}", hex(format!("item-{i}").as_bytes())));
                peer.expect(&format!("PUT {path}")).await;
            }
            peer.send(&format!("put_multi {path} 78 - 797a"));
            peer.expect(&format!("PUT {path}")).await;
            let mut queue = DistributedQueue::new(&fw, path);
            if let Some(lock) = lock {
                queue = queue.lock_path(lock);
            }
            let mut consumer = queue.consumer();
            for i in 0..5 {
                let message = within("take", consumer.next_message()).await.expect("take");
                assert_eq!(message.items(), [Bytes::from(format!("item-{i}"))], "{path}: Curator's order");
                message.ack().await.expect("ack");
            }
            let message = within("take", consumer.next_message()).await.expect("take");
            assert_eq!(message.items(), [Bytes::from("x"), Bytes::new(), Bytes::from("yz")]);
            message.ack().await.expect("ack");
            assert!(fw.client().get_children(path).await.expect("list").is_empty());
        }
        // The simple queue: Curator offers, Corral takes.
        peer.send(&format!("offer /simple {}", hex(b"from-java")));
        peer.expect("OFFERED /simple").await;
        let simple = SimpleDistributedQueue::new(&fw, "/simple");
        assert_eq!(within("take", simple.take()).await.expect("take"), "from-java");
        fw.close().await;
        peer.disconnect().await;
    }
    peer.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corral_produces_and_curator_consumes() {
    let Some(java) = java() else { return };
    let mut peer = Peer::start(java).await;
    for env in common::envs("interop-queue-r2j").await {
        eprintln!("-- against the {} server", env.kind);
        peer.connect(&env).await;
        let fw = env.framework();
        let queue = DistributedQueue::new(&fw, "/plain");
        let mut expected = Vec::new();
        for i in 0..5 {
            let item = Bytes::from(format!("item-{i}"));
            queue.put(&item).await.expect("put");
            expected.push(item);
        }
        let multi = [Bytes::from("x"), Bytes::new(), Bytes::from("yz")];
        queue.put_multi(&multi).await.expect("put_multi");
        expected.extend(multi);
        peer.send("consume j plain /plain -");
        peer.expect("CONSUMING j").await;
        assert_eq!(java_items(&mut peer, "j", expected.len()).await, expected, "Curator's consumer, in order");
        common::eventually("Curator deleted the nodes", || async {
            fw.client().get_children("/plain").await.expect("list").is_empty()
        })
        .await;
        peer.send("close j");
        peer.expect("CLOSED j").await;

        // The simple queue: Corral offers, Curator takes.
        SimpleDistributedQueue::new(&fw, "/simple").offer("from-rust").await.expect("offer");
        peer.send("take /simple");
        let line = peer.expect("TOOK /simple").await;
        assert_eq!(unhex(line.rsplit(' ').next().unwrap_or_default()), b"from-rust");
        fw.close().await;
        peer.disconnect().await;
    }
    peer.quit().await;
}

/// Corral holds the lock of one message: Curator's lock-safe consumer skips it and takes the
/// others; once Corral releases it without acknowledging, Curator takes it too (at its next
/// listing: Curator 5.4 does not watch the lock directory, so a new put triggers it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_sides_honour_each_others_locks() {
    let Some(java) = java() else { return };
    let mut peer = Peer::start(java).await;
    for env in common::envs("interop-queue-locks").await {
        eprintln!("-- against the {} server", env.kind);
        peer.connect(&env).await;
        let fw = env.framework();
        let queue = DistributedQueue::new(&fw, "/q").lock_path("/q-locks");
        queue.put(&Bytes::from("held")).await.expect("put");
        let mut consumer = queue.consumer();
        let held = within("take", consumer.next_message()).await.expect("take");
        assert_eq!(held.items(), [Bytes::from("held")]);

        peer.send("consume j plain /q /q-locks");
        peer.expect("CONSUMING j").await;
        queue.put(&Bytes::from("free")).await.expect("put");
        assert_eq!(java_items(&mut peer, "j", 1).await, [Bytes::from("free")]);
        // Curator goes through the queue in order, one item at a time: once it has taken an item
        // put after the held one, it has passed the held one by, and left it in the queue.
        queue.put(&Bytes::from("after")).await.expect("put");
        assert_eq!(java_items(&mut peer, "j", 1).await, [Bytes::from("after")], "Curator took the held message");
        assert!(fw.client().exists(held.path()).await.expect("exists").is_some(), "the held message is gone");

        drop(held); // released, not acknowledged
        common::eventually("lock released", || async {
            fw.client().get_children("/q-locks").await.expect("list").is_empty()
        })
        .await;
        queue.put(&Bytes::from("nudge")).await.expect("put");
        let mut got = java_items(&mut peer, "j", 2).await;
        got.sort();
        assert_eq!(got, [Bytes::from("held"), Bytes::from("nudge")]);
        // Curator deletes what it consumed; then, with Curator's consumer closed, the next message
        // ours finds is the one put after that: it kept nothing of what Curator took.
        common::eventually("Curator deleted what it consumed", || async {
            fw.client().get_children("/q").await.expect("list").is_empty()
        })
        .await;
        peer.send("close j");
        peer.expect("CLOSED j").await;
        queue.put(&Bytes::from("last")).await.expect("put");
        let last = within("our consumer takes the last message", consumer.next_message()).await.expect("take");
        assert_eq!(last.items(), [Bytes::from("last")], "Curator left a message behind");
        last.ack().await.expect("ack");
        drop(consumer);
        fw.close().await;
        peer.disconnect().await;
    }
    peer.quit().await;
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after the epoch").as_millis() as u64
}

/// The priority, delay and id queues: the same node names on both sides, and items flowing
/// Curator → Corral and Corral → Curator in each kind's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn priority_delay_and_id_queues_are_curators() {
    let Some(java) = java() else { return };
    let mut peer = Peer::start(java).await;
    for env in common::envs("interop-queue-kinds").await {
        eprintln!("-- against the {} server", env.kind);
        peer.connect(&env).await;
        let fw = env.framework();
        let names = |path: &'static str| {
            let fw = fw.clone();
            async move {
                let mut children = fw.client().get_children(path).await.expect("list");
                children.sort_by_key(|c| c[c.len() - 10..].to_owned());
                children
            }
        };

        // Node names, as the reference tree of curator-reference.md §2.1 shows them.
        let due = 0x1A2002211BC_u64;
        peer.send("put_priority /names 61 5");
        peer.expect("PUT /names").await;
        peer.send("put_priority /names 61 -3");
        peer.expect("PUT /names").await;
        peer.send(&format!("put_delay /names 61 {due}"));
        peer.expect("PUT /names").await;
        peer.send("put_id /names 61 my-id");
        peer.expect("PUT /names").await;
        let expected = [
            format!("queue-{}0000000000", priority_name(5)),
            format!("queue-{}0000000001", priority_name(-3)),
            format!("queue-{}0000000002", due_name(due)),
            format!("queue-{}0000000003", id_name("my-id")),
        ];
        assert_eq!(names("/names").await, expected);
        assert_eq!(expected[..2], ["queue-1000000050000000000", "queue-0FFFFFFFD0000000001"]);

        // Priority: Curator → Corral.
        for (item, priority) in [("c", 7), ("a", -1), ("b", 3)] {
            peer.send(&format!("put_priority /pq {} {priority}", hex(item.as_bytes())));
            peer.expect("PUT /pq").await;
        }
        let mut consumer = DistributedPriorityQueue::new(&fw, "/pq").consumer();
        let mut got = Vec::new();
        for _ in 0..3 {
            got.extend(within("take", consumer.next_message()).await.expect("take").take_items());
        }
        assert_eq!(got, ["a", "b", "c"].map(Bytes::from));
        drop(consumer);
        // Priority: Corral → Curator.
        let pq = DistributedPriorityQueue::new(&fw, "/pq2");
        for (item, priority) in [("c", 7), ("a", -1), ("b", 3)] {
            pq.put(&Bytes::from(item), priority).await.expect("put");
        }
        peer.send("consume jp priority /pq2 -");
        peer.expect("CONSUMING jp").await;
        assert_eq!(java_items(&mut peer, "jp", 3).await, ["a", "b", "c"].map(Bytes::from));

        // Id: removal across runtimes, and the rest consumed in put order.
        let idq = DistributedIdQueue::new(&fw, "/idq");
        idq.put(&Bytes::from("a"), "x").await.expect("put");
        peer.send(&format!("put_id /idq {} y", hex(b"b")));
        peer.expect("PUT /idq").await;
        idq.put(&Bytes::from("c"), "x").await.expect("put");
        peer.send(&format!("put_id /idq {} z", hex(b"d")));
        peer.expect("PUT /idq").await;
        peer.send("remove_id /idq x");
        assert_eq!(peer.expect("REMOVED /idq").await, "REMOVED /idq 2", "Curator removes Corral's items");
        assert_eq!(idq.remove("z").await.expect("remove"), 1, "Corral removes Curator's item");
        let mut consumer = idq.consumer();
        assert_eq!(within("take", consumer.next_message()).await.expect("take").items(), [Bytes::from("b")]);
        drop(consumer);

        // Delay: Curator's item comes out of Corral's consumer when due, and the other way round.
        let due = wall_ms() + 1500;
        peer.send(&format!("put_delay /dq {} {due}", hex(b"j2r")));
        peer.expect("PUT /dq").await;
        let mut consumer = DistributedDelayQueue::new(&fw, "/dq").consumer();
        let message = within("take", consumer.next_message()).await.expect("take");
        assert!(wall_ms() >= due, "taken before it was due");
        assert_eq!(message.items(), [Bytes::from("j2r")]);
        drop(consumer);
        let due = wall_ms() + 1500;
        let delay = DistributedDelayQueue::new(&fw, "/dq2");
        delay.put(&Bytes::from("r2j"), std::time::UNIX_EPOCH + Duration::from_millis(due)).await.expect("put");
        peer.send("consume jd delay /dq2 -");
        peer.expect("CONSUMING jd").await;
        let line = peer.expect("ITEM jd").await;
        let mut words = line.split(' ').skip(2);
        assert_eq!(words.next().map(unhex), Some(b"r2j".to_vec()));
        let consumed_at: u64 = words.next().and_then(|w| w.parse().ok()).expect("a time");
        assert!(consumed_at >= due, "Curator took it {} ms early", due - consumed_at);

        for tag in ["jp", "jd"] {
            peer.send(&format!("close {tag}"));
            peer.expect(&format!("CLOSED {tag}")).await;
        }
        fw.close().await;
        peer.disconnect().await;
    }
    peer.quit().await;
}
