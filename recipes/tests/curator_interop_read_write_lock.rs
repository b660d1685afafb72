//! Interop with real Curator 5.4 (Debian's `libcurator-recipes-java`, Java 17): a Java process
//! using Curator's own `InterProcessReadWriteLock` shares one read-write lock with this crate's
//! [`ReadWriteLock`], against the embedded server and (when available) a real ZooKeeper: both
//! order the queue alike, readers share across runtimes, a queued writer holds back later readers
//! on either side, and under contention no write hold overlaps any other hold.
//!
//! The Java side is `tests/java/CuratorDiscoveryPeer.java` (shared with
//! `curator_interop_discovery.rs`), compiled with `javac` once per test binary (cached under
//! Cargo's target tmp dir, keyed by the sources and the classpath) and driven over stdin/stdout,
//! one JVM per test, by `common::java_peer`. Without Java, javac or the jars the tests skip with
//! a `skipping:` line on stderr, except under `CI=true` (or `1`), where they fail.

mod common;
#[path = "common/settle.rs"]
mod settle;

use std::time::Duration;

use corral_recipes::lock::MutexGuard;
use corral_recipes::read_write_lock::ReadWriteLock;
use corral_recipes::{CreateMode, Framework};

use common::java_peer::{self, Java, Peer, T, assert_curator_layout, name_of, now_micros, unhex, within};

/// Checks that Curator's `tag` waits: its client holds `watch` (a data watch on the node it waits
/// for, which is there) after a round trip, so it has heard of every change up to now and set its
/// watch again; and it has not said it acquired.
async fn assert_waits(peer: &mut Peer, tag: &str, watch: &str) {
    peer.until_watching(watch).await;
    let acquired = peer.take(&format!("ACQUIRED {tag}"));
    assert!(acquired.is_empty(), "Curator's {tag} got in: {acquired:?}");
}

/// The compiled peer, or `None` (after a `skipping:` line) when Java or the jars are missing.
fn java() -> Option<&'static Java> {
    java_peer::java(&java_peer::DISCOVERY_PEER)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_write_lock_is_shared_with_curator() {
    let Some(java) = java() else { return };
    let mut peer = Peer::start(java).await;
    for env in common::envs("interop-rwlock").await {
        eprintln!("-- against the {} server", env.kind);
        peer.connect(&env).await;
        readers_share_and_a_queued_curator_writer_holds_back_a_later_reader(&env, &mut peer).await;
        a_queued_corral_writer_holds_back_a_later_curator_reader(&env, &mut peer).await;
        writers_exclude_everyone(&env, &mut peer).await;
        peer.disconnect().await;
    }
    peer.quit().await;
}

#[derive(Debug, Clone)]
struct RwNode {
    name: String,
    protected: bool,
    data: String,
}

/// The children of `path` in Curator's read-write order (its read lock's participant nodes),
/// with Curator's verdict on whether each name is protected, and each node's data.
async fn curator_rw_nodes(peer: &mut Peer, path: &str) -> Vec<RwNode> {
    peer.send(&format!("rwnodes {path}"));
    let line = peer.expect(&format!("RWNODES {path}")).await;
    line.split(' ')
        .skip(2)
        .map(|entry| {
            let mut parts = entry.split(':');
            let name = parts.next().unwrap_or_default().to_owned();
            let protected = parts.next() == Some("true");
            let data = String::from_utf8_lossy(&unhex(parts.next().unwrap_or_default())).into_owned();
            RwNode { name, protected, data }
        })
        .collect()
}

/// Both libraries list the same contenders in the same order, with the expected data and kinds,
/// and every name is Curator's protected layout.
async fn same_queue(lock: &ReadWriteLock, peer: &mut Peer, path: &str, want: &[(&str, &str)]) -> Vec<String> {
    let rust_order = lock.read_lock().participant_nodes().await.expect("participants");
    assert_eq!(lock.write_lock().participant_nodes().await.expect("participants"), rust_order);
    let java_nodes = curator_rw_nodes(peer, path).await;
    let java_order: Vec<String> = java_nodes.iter().map(|n| n.name.clone()).collect();
    assert_eq!(java_order, rust_order, "Curator and Corral order the read-write lock queue alike");
    let got: Vec<(&str, &str)> = java_nodes
        .iter()
        .map(|n| (n.data.as_str(), if n.name.contains("__WRIT__") { "__WRIT__" } else { "__READ__" }))
        .collect();
    assert_eq!(got, want, "the queue (data, kind) in Curator's order");
    for node in &java_nodes {
        assert_curator_layout(&node.name, if node.name.contains("__WRIT__") { "__WRIT__" } else { "__READ__" });
        assert!(node.protected, "Curator's ProtectedUtils rejects {:?}", node.name);
    }
    // Sequence numbers increase along the queue.
    let seqs: Vec<u64> = java_order.iter().map(|n| n[n.len() - 10..].parse().expect("sequence")).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{java_order:?}");
    rust_order
}

/// A Java reader and a Rust reader hold together; a Java writer queues behind them and a later
/// Rust reader queues behind the writer (Curator's rule), until each one ahead releases.
async fn readers_share_and_a_queued_curator_writer_holds_back_a_later_reader(env: &common::Env, peer: &mut Peer) {
    const PATH: &str = "/rw";
    let (fw1, fw2) = (env.framework(), env.framework());
    let lock = ReadWriteLock::new(&fw1, PATH);
    let lock2 = ReadWriteLock::new(&fw2, PATH);

    peer.send(&format!("rw java-r1 {PATH} read"));
    let java_r1 = peer.expect("ACQUIRED java-r1").await;
    let rust_r1 = within("Corral reads while Curator reads", lock.read_lock().clone().with_data("rust-r1").acquire())
        .await
        .expect("read lock");
    assert!(peer.take("RELEASED").is_empty(), "Curator's reader still holds");
    assert!(rust_r1.is_valid());
    // Readers exclude writers, on either side.
    assert!(lock2.write_lock().try_acquire().await.unwrap().is_none(), "a Corral writer got in past two readers");

    peer.send(&format!("rw java-w1 {PATH} write"));
    common::eventually("Curator's writer queued", || async {
        lock.read_lock().participant_nodes().await.unwrap().len() == 3
    })
    .await;
    let late = lock2.read_lock().clone().with_data("rust-r2");
    let late_reader = tokio::spawn(async move { late.acquire().await });
    common::eventually("the late Corral reader queued", || async {
        lock.read_lock().participant_nodes().await.unwrap().len() == 4
    })
    .await;
    let order = same_queue(
        &lock,
        peer,
        PATH,
        &[("java-r1", "__READ__"), ("rust-r1", "__READ__"), ("java-w1", "__WRIT__"), ("rust-r2", "__READ__")],
    )
    .await;
    assert_eq!(java_r1.split(' ').nth(2), Some(order[0].as_str()), "Curator holds with its first node");
    assert_eq!(name_of(rust_r1.path()), order[1]);

    // Curator's writer waits on the node just ahead of it; the late reader on Curator's writer.
    let ahead_of_writer = format!("data:{PATH}/{}", order[1]);
    assert_waits(peer, "java-w1", &ahead_of_writer).await;
    settle::settled(&fw2.client(), 1).await;
    assert!(!late_reader.is_finished(), "a Corral reader got in past a queued Curator writer");

    // The Java reader leaves: the Rust reader still keeps the writer out.
    peer.send("release java-r1");
    peer.expect("RELEASED java-r1").await;
    assert_waits(peer, "java-w1", &ahead_of_writer).await;
    // The Rust reader leaves: the Java writer holds; the late reader still waits.
    rust_r1.release().await.expect("release");
    let acquired = peer.expect("ACQUIRED java-w1").await;
    assert_eq!(acquired.split(' ').nth(2), Some(order[2].as_str()));
    assert!(lock.read_lock().try_acquire().await.unwrap().is_none(), "a Corral reader got in past Curator's writer");
    // The late reader waits through fw2, on Curator's writer node.
    settle::settled(&fw2.client(), 1).await;
    assert!(!late_reader.is_finished(), "a Corral reader got in while Curator's writer held the lock");
    peer.send("release java-w1");
    peer.expect("RELEASED java-w1").await;
    let late = within("the late Corral reader gets in", late_reader).await.expect("task").expect("read lock");
    assert_eq!(name_of(late.path()), order[3]);
    late.release().await.expect("release");
    common::eventually("every node gone", || async { lock.read_lock().participant_nodes().await.unwrap().is_empty() })
        .await;
    fw1.close().await;
    fw2.close().await;
}

/// A Java reader holds; a Rust writer queues behind it and a later Java reader queues behind the
/// writer. Then a Java writer keeps Corral's readers and writers out.
async fn a_queued_corral_writer_holds_back_a_later_curator_reader(env: &common::Env, peer: &mut Peer) {
    const PATH: &str = "/rw2";
    let (fw1, fw2) = (env.framework(), env.framework());
    let lock = ReadWriteLock::new(&fw1, PATH);
    let lock2 = ReadWriteLock::new(&fw2, PATH);

    peer.send(&format!("rw java-r2 {PATH} read"));
    peer.expect("ACQUIRED java-r2").await;
    let writer = lock.write_lock().clone().with_data("rust-w");
    let writer = tokio::spawn(async move { writer.acquire().await });
    common::eventually("Corral's writer queued", || async {
        lock.read_lock().participant_nodes().await.unwrap().len() == 2
    })
    .await;
    peer.send(&format!("rw java-r3 {PATH} read"));
    common::eventually("the late Curator reader queued", || async {
        lock.read_lock().participant_nodes().await.unwrap().len() == 3
    })
    .await;
    let order =
        same_queue(&lock, peer, PATH, &[("java-r2", "__READ__"), ("rust-w", "__WRIT__"), ("java-r3", "__READ__")])
            .await;
    // The late Curator reader waits on Corral's writer, which waits on Curator's first reader.
    let writer_node = format!("data:{PATH}/{}", order[1]);
    assert_waits(peer, "java-r3", &writer_node).await;
    settle::settled(&fw1.client(), 1).await;
    assert!(!writer.is_finished(), "Corral's writer got in past Curator's reader");
    assert!(lock2.read_lock().try_acquire().await.unwrap().is_none(), "a Corral reader got in past a queued writer");

    peer.send("release java-r2");
    peer.expect("RELEASED java-r2").await;
    let guard = within("Corral's writer gets in", writer).await.expect("task").expect("write lock");
    assert_eq!(name_of(guard.path()), order[1]);
    assert_waits(peer, "java-r3", &writer_node).await;
    guard.release().await.expect("release");
    let acquired = peer.expect("ACQUIRED java-r3").await;
    assert_eq!(acquired.split(' ').nth(2), Some(order[2].as_str()));
    peer.send("release java-r3");
    peer.expect("RELEASED java-r3").await;

    // A Java writer keeps out Corral's readers and writers; once it leaves, both get in.
    peer.send(&format!("rw java-w2 {PATH} write"));
    peer.expect("ACQUIRED java-w2").await;
    assert!(lock.read_lock().try_acquire().await.unwrap().is_none(), "a Corral reader got in past Curator's writer");
    assert!(lock.write_lock().try_acquire().await.unwrap().is_none(), "a Corral writer got in past Curator's writer");
    let reader = lock2.read_lock().clone();
    let reader = tokio::spawn(async move { reader.acquire().await });
    // The reader waits through fw2, on Curator's writer node.
    settle::settled(&fw2.client(), 1).await;
    assert!(!reader.is_finished(), "a Corral reader got in while Curator's writer held the lock");
    peer.send("release java-w2");
    peer.expect("RELEASED java-w2").await;
    let guard = within("Corral's reader gets in", reader).await.expect("task").expect("read lock");
    guard.release().await.expect("release");
    common::eventually("every node gone", || async { lock.read_lock().participant_nodes().await.unwrap().is_empty() })
        .await;
    fw1.close().await;
    fw2.close().await;
}

#[derive(Debug, Clone, Copy)]
struct RwHold {
    who: &'static str,
    write: bool,
    t0: i64,
    t1: i64,
}

const RW_ROUNDS: usize = 30;
const MARKER: &str = "/rw-writer";

/// One Curator contender and two Corral contenders, `RW_ROUNDS` acquisitions each, some reads
/// and some writes. A writer creates the ephemeral `MARKER` while holding and deletes it before
/// releasing; a reader checks it does not exist when it gets the lock and before it releases.
/// Violations are counted on both sides and must be 0; no write hold interval (wall clock, µs,
/// measured inside each hold) may overlap any other hold.
async fn writers_exclude_everyone(env: &common::Env, peer: &mut Peer) {
    const PATH: &str = "/rwc";
    peer.send(&format!("rwcontend java {PATH} {MARKER} {RW_ROUNDS} 2 3"));
    peer.expect("RW_STARTED java").await;
    let mut tasks = Vec::new();
    for (who, write_every) in [("rust-1", 4), ("rust-2", 2)] {
        let fw = env.framework();
        tasks.push(tokio::spawn(async move {
            let result = rw_contend(&fw, PATH, who, write_every).await;
            fw.close().await;
            result
        }));
    }
    let done = peer.expect_within("RW_DONE java", Duration::from_secs(45)).await;
    let mut holds = Vec::new();
    let mut violations = peer.take("VIOLATION");
    for task in tasks {
        let (h, v) = within("a Corral contender finishes", task).await.expect("contender");
        holds.extend(h);
        violations.extend(v);
    }
    let java_holds: Vec<RwHold> = peer
        .take("HELD java")
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            RwHold { who: "java", write: f[2] == "W", t0: f[3].parse().expect("t0"), t1: f[4].parse().expect("t1") }
        })
        .collect();
    assert_eq!(done, format!("RW_DONE java {RW_ROUNDS} 0"), "Curator reported violations: {violations:?}");
    assert_eq!(java_holds.len(), RW_ROUNDS, "Curator acquired every time");
    assert_eq!(holds.len(), 2 * RW_ROUNDS, "Corral acquired every time");
    assert!(violations.is_empty(), "read-write exclusion violated: {violations:?}");
    holds.extend(java_holds);

    let overlap = |a: &RwHold, b: &RwHold| a.t0 < b.t1 && b.t0 < a.t1;
    let mut shared_reads = 0;
    for (i, a) in holds.iter().enumerate() {
        for b in &holds[i + 1..] {
            if overlap(a, b) {
                assert!(!a.write && !b.write, "a write hold overlaps another hold: {a:?} and {b:?}");
                if (a.who == "java") != (b.who == "java") {
                    shared_reads += 1;
                }
            }
        }
    }
    holds.sort_by_key(|h| h.t0);
    let writes: Vec<&RwHold> = holds.iter().filter(|h| h.write).collect();
    let handoffs = writes.windows(2).filter(|w| (w[0].who == "java") != (w[1].who == "java")).count();
    eprintln!(
        "   {} holds ({} writes), {handoffs} writer hand-offs between Curator and Corral, {shared_reads} read holds \
         shared across runtimes",
        holds.len(),
        writes.len()
    );
    assert!(handoffs >= 3, "Curator's and Corral's writers hardly alternated ({handoffs}): the test proved nothing");
    assert!(shared_reads >= 1, "no Curator reader ever held together with a Corral reader");

    let observer = env.client().await;
    assert_eq!(observer.exists(MARKER).await.unwrap(), None);
    assert_eq!(observer.get_children(PATH).await.unwrap(), Vec::<String>::new(), "every lock node released");
    observer.close().await;
}

async fn rw_contend(fw: &Framework, path: &str, who: &'static str, write_every: usize) -> (Vec<RwHold>, Vec<String>) {
    let lock = ReadWriteLock::new(fw, path);
    let client = fw.client();
    let marker_exists = || async { client.exists(MARKER).await.expect("exists").is_some() };
    let mut holds = Vec::new();
    let mut violations = Vec::new();
    for round in 0..RW_ROUNDS {
        let write = round % write_every == write_every - 1;
        let side = if write { lock.write_lock() } else { lock.read_lock() };
        let guard: MutexGuard = side.acquire_timeout(T).await.unwrap_or_else(|e| panic!("{who} round {round}: {e}"));
        let t0 = now_micros();
        assert!(guard.is_valid());
        if write {
            match client.create(MARKER, who, CreateMode::Ephemeral).await {
                Ok(_) => {
                    // A hold inside the lock: widens the window a conflicting holder would show in (the marker).
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    match client.get_data(MARKER).await {
                        Ok((data, stat)) if data == who.as_bytes() => {
                            if let Err(e) = client.delete(MARKER, Some(stat.version)).await {
                                violations.push(format!("{who}: marker delete failed: {e}"));
                            }
                        }
                        Ok((data, _)) => violations.push(format!("{who}: marker replaced by {data:?}")),
                        Err(e) if e.is_no_node() => violations.push(format!("{who}: marker deleted")),
                        Err(e) => panic!("{who}: {e}"),
                    }
                }
                Err(e) if e.is_node_exists() => violations.push(format!("{who}: writer found the marker")),
                Err(e) => panic!("{who}: {e}"),
            }
        } else {
            if marker_exists().await {
                violations.push(format!("{who}: reader found the marker on entry"));
            }
            // A hold inside the lock: widens the window a conflicting holder would show in (the marker).
            tokio::time::sleep(Duration::from_millis(2)).await;
            if marker_exists().await {
                violations.push(format!("{who}: reader found the marker on exit"));
            }
        }
        holds.push(RwHold { who, write, t0, t1: now_micros() });
        guard.release().await.expect("release");
    }
    (holds, violations)
}
