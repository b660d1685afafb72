//! Interop with real Curator 5.4 (Debian's `libcurator-recipes-java`, Java 17): a Java process
//! using Curator's own `InterProcessMutex`, `LeaderLatch` and `LeaderSelector` and this crate's
//! recipes share one lock, one election and one selector, against the embedded server and (when
//! available) a real ZooKeeper.
//!
//! The Java side is `tests/java/CuratorPeer.java`, compiled with `javac` once per test binary
//! (cached under Cargo's target tmp dir, keyed by the sources and the classpath) and driven over
//! stdin/stdout, one JVM per test, by `common::java_peer`. Without Java, javac or the jars the
//! tests skip with a `skipping:` line on stderr, except under `CI=true` (or `1`), where they fail.

mod common;
#[path = "common/settle.rs"]
mod settle;

use std::collections::{HashMap, HashSet};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use corral_recipes::leader_latch::{self, LeaderLatch, Participant};
use corral_recipes::leader_selector::LeaderSelector;
use corral_recipes::lock::Mutex;
use corral_recipes::{CreateMode, Framework};
use tokio::sync::watch;

use common::java_peer::{self, Java, PeerSpec, T, assert_curator_layout, name_of, now_micros, unhex, within};

const SPEC: PeerSpec = PeerSpec {
    class: "CuratorPeer",
    jars: &[java_peer::CURATOR_RECIPES_JARS],
    packages: java_peer::CURATOR_RECIPES_PACKAGES,
    tests: "Curator interop tests",
    cache: "curator-peer",
};

// ------------------------------------------------------------------------------------------
// The Java peer

/// The compiled peer, or `None` (after a `skipping:` line) when Java or the jars are missing.
fn java() -> Option<&'static Java> {
    java_peer::java(&SPEC)
}

/// The running peer (`common::java_peer::Peer`), plus leadership as Java last reported it.
struct Peer {
    io: java_peer::Peer,
    /// Leadership as Java last reported it (`LEADER <tag>` / `NOT_LEADER <tag>`), by tag.
    leaders: Arc<StdMutex<HashMap<String, bool>>>,
}

impl Deref for Peer {
    type Target = java_peer::Peer;

    fn deref(&self) -> &java_peer::Peer {
        &self.io
    }
}

impl DerefMut for Peer {
    fn deref_mut(&mut self) -> &mut java_peer::Peer {
        &mut self.io
    }
}

impl Peer {
    async fn start(java: &Java) -> Self {
        let leaders = Arc::new(StdMutex::new(HashMap::new()));
        let io = java_peer::Peer::start_with(java, {
            let leaders = leaders.clone();
            move |line| {
                let mut words = line.split(' ');
                match (words.next(), words.next()) {
                    (Some("LEADER"), Some(tag)) => leaders.lock().unwrap().insert(tag.to_owned(), true),
                    (Some("NOT_LEADER"), Some(tag)) => leaders.lock().unwrap().insert(tag.to_owned(), false),
                    _ => None,
                };
            }
        })
        .await;
        Self { io, leaders }
    }

    /// (Re)connects the peer's client to `env`; the peer closes its recipes and old client first.
    async fn connect(&mut self, env: &common::Env) {
        self.io.connect(env).await;
        self.leaders.lock().unwrap().clear();
    }

    /// Whether Java's recipe `tag` last reported leadership.
    fn java_leads(&self, tag: &str) -> bool {
        self.leaders.lock().unwrap().get(tag).copied().unwrap_or(false)
    }

    /// The children of `path` as Curator sorts them for `lock_name`, with Curator's verdict on
    /// whether each name is protected, and each node's data.
    async fn nodes(&mut self, path: &str, lock_name: &str) -> Vec<Node> {
        self.send(&format!("nodes {path} {lock_name}"));
        let line = self.expect(&format!("NODES {path}")).await;
        line.split(' ')
            .skip(2)
            .map(|entry| {
                let mut parts = entry.split(':');
                let name = parts.next().unwrap_or_default().to_owned();
                let protected = parts.next() == Some("true");
                let data = parts.next().map(unhex).unwrap_or_default();
                Node { name, protected, data }
            })
            .collect()
    }

    /// The participants of Java's latch or selector `tag`, the leader marked with a `*`.
    async fn participants(&mut self, tag: &str) -> Vec<String> {
        self.send(&format!("participants {tag}"));
        let line = self.expect(&format!("PARTICIPANTS {tag}")).await;
        let ids = line.split(' ').nth(2).unwrap_or_default();
        ids.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
    }

    async fn quit(self) {
        self.io.quit().await;
    }
}

#[derive(Debug, Clone)]
struct Node {
    name: String,
    protected: bool,
    data: Vec<u8>,
}

/// A participant list as `*leader,other,...`, Rust side.
fn marked(participants: &[Participant]) -> Vec<String> {
    participants.iter().map(|p| if p.is_leader { format!("*{}", p.id) } else { p.id.clone() }).collect()
}

fn expected(ids: &[&str]) -> Vec<String> {
    ids.iter().enumerate().map(|(i, id)| if i == 0 { format!("*{id}") } else { (*id).to_owned() }).collect()
}

// ------------------------------------------------------------------------------------------
// 1. Mutex

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutex_is_shared_with_curator() {
    let Some(java) = java() else { return };
    let mut peer = Peer::start(java).await;
    for env in common::envs("interop-mutex").await {
        eprintln!("-- against the {} server", env.kind);
        peer.connect(&env).await;
        one_queue_in_curator_order(&env, &mut peer).await;
        never_held_by_both(&env, &mut peer).await;
        peer.disconnect().await;
    }
    peer.quit().await;
}

/// Rust holds, Java queues, Rust queues: both libraries list the same three nodes in the same
/// order, Curator calls every name protected, and the lock passes along the queue across runtimes.
async fn one_queue_in_curator_order(env: &common::Env, peer: &mut Peer) {
    let (fw_a, fw_b) = (env.framework(), env.framework());
    let a = Mutex::new(&fw_a, "/queue").with_data("rust-a");
    let guard_a = within("rust-a acquires", a.acquire()).await.expect("acquire");
    peer.send("acquire java /queue");
    common::eventually("Curator queued", || async { a.participant_nodes().await.unwrap().len() == 2 }).await;
    let b = Mutex::new(&fw_b, "/queue").with_data("rust-b");
    let waiter = tokio::spawn(async move { b.acquire().await });
    common::eventually("rust-b queued", || async { a.participant_nodes().await.unwrap().len() == 3 }).await;

    let rust_order = a.participant_nodes().await.unwrap();
    let java_nodes = peer.nodes("/queue", "lock-").await;
    let java_order: Vec<String> = java_nodes.iter().map(|n| n.name.clone()).collect();
    assert_eq!(java_order, rust_order, "Curator and Corral order the lock queue alike");
    for node in &java_nodes {
        assert_curator_layout(&node.name, "lock-");
        assert!(node.protected, "Curator's ProtectedUtils rejects {:?}", node.name);
    }
    assert_eq!(rust_order[0], name_of(guard_a.path()), "the holder is first");
    assert_eq!(java_nodes[0].data, b"rust-a");
    assert_eq!(java_nodes[2].data, b"rust-b");
    // Curator writes its default data (the local address) into its lock node.
    eprintln!("   Curator's lock node {} holds {:?}", java_nodes[1].name, String::from_utf8_lossy(&java_nodes[1].data));

    guard_a.release().await.expect("release");
    let acquired = peer.expect("ACQUIRED java").await;
    assert_eq!(acquired.split(' ').nth(2), Some(rust_order[1].as_str()), "Curator got the lock next, with its node");
    // While Curator holds, rust-b keeps waiting (on Curator's node, its predecessor).
    settle::settled(&fw_b.client(), 1).await;
    assert!(!waiter.is_finished(), "rust-b acquired while Curator held the lock");
    peer.send("release java");
    peer.expect("RELEASED java").await;
    let guard_b = within("rust-b acquires after Curator", waiter).await.expect("task").expect("acquire");
    assert_eq!(name_of(guard_b.path()), rust_order[2]);
    assert!(guard_b.is_valid());
    guard_b.release().await.expect("release");
    common::eventually("every node gone", || async { a.participant_nodes().await.unwrap().is_empty() }).await;
    fw_a.close().await;
    fw_b.close().await;
}

#[derive(Debug, Clone, Copy)]
struct Hold {
    who: &'static str,
    t0: i64,
    t1: i64,
}

const ROUNDS: usize = 30;

/// One Curator contender and two Corral contenders, `ROUNDS` acquisitions each. Every holder
/// creates the ephemeral `/holder` node after acquiring and deletes it before releasing: a
/// NodeExists (or a foreign or missing holder node) means two held the lock at once. The hold
/// intervals (wall clock, µs, measured inside each hold) must not overlap either.
async fn never_held_by_both(env: &common::Env, peer: &mut Peer) {
    peer.send(&format!("mutex java /lock /holder {ROUNDS} 1"));
    peer.expect("MUTEX_STARTED java").await;
    let mut tasks = Vec::new();
    for who in ["rust-1", "rust-2"] {
        let fw = env.framework();
        tasks.push(tokio::spawn(async move {
            let result = contend(&fw, who).await;
            fw.close().await;
            result
        }));
    }
    let done = peer.expect_within("MUTEX_DONE java", Duration::from_secs(45)).await;
    let mut holds = Vec::new();
    let mut violations = peer.take("VIOLATION");
    for task in tasks {
        let (h, v) = within("a Rust contender finishes", task).await.expect("contender");
        holds.extend(h);
        violations.extend(v);
    }
    let java_holds: Vec<Hold> = peer
        .take("HELD java")
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Hold { who: "java", t0: f[2].parse().expect("t0"), t1: f[3].parse().expect("t1") }
        })
        .collect();
    assert_eq!(done, format!("MUTEX_DONE java {ROUNDS} 0"), "Curator reported violations: {violations:?}");
    assert_eq!(java_holds.len(), ROUNDS, "Curator acquired every time");
    assert_eq!(holds.len(), 2 * ROUNDS, "Corral acquired every time");
    assert!(violations.is_empty(), "mutual exclusion violated: {violations:?}");
    holds.extend(java_holds);

    holds.sort_by_key(|h| h.t0);
    let mut last: Option<Hold> = None;
    for h in &holds {
        if let Some(prev) = last {
            assert!(h.t0 >= prev.t1, "hold intervals overlap: {prev:?} and {h:?}");
        }
        if last.is_none_or(|p| h.t1 > p.t1) {
            last = Some(*h);
        }
    }
    let handoffs = holds.windows(2).filter(|w| (w[0].who == "java") != (w[1].who == "java")).count();
    eprintln!("   {} acquisitions, {handoffs} hand-offs between Curator and Corral", holds.len());
    assert!(handoffs >= 5, "Curator and Corral hardly contended ({handoffs} hand-offs): the test proved nothing");

    let observer = env.client().await;
    assert_eq!(observer.exists("/holder").await.unwrap(), None);
    assert_eq!(observer.get_children("/lock").await.unwrap(), Vec::<String>::new(), "every lock node released");
    observer.close().await;
}

async fn contend(fw: &Framework, who: &'static str) -> (Vec<Hold>, Vec<String>) {
    let mutex = Mutex::new(fw, "/lock");
    let mut holds = Vec::new();
    let mut violations = Vec::new();
    for round in 0..ROUNDS {
        let guard = mutex.acquire_timeout(T).await.unwrap_or_else(|e| panic!("{who} round {round}: {e}"));
        let t0 = now_micros();
        assert!(guard.is_valid());
        let client = fw.client();
        match client.create("/holder", who, CreateMode::Ephemeral).await {
            Ok(_) => {
                // A hold inside the lock: widens the window a second holder would show in (the marker check).
                tokio::time::sleep(Duration::from_millis(1)).await;
                match client.get_data("/holder").await {
                    Ok((data, stat)) if data == who.as_bytes() => {
                        if let Err(e) = client.delete("/holder", Some(stat.version)).await {
                            violations.push(format!("{who}: holder delete failed: {e}"));
                        }
                    }
                    Ok((data, _)) => violations.push(format!("{who}: holder replaced by {data:?}")),
                    Err(e) if e.is_no_node() => violations.push(format!("{who}: holder deleted")),
                    Err(e) => panic!("{who}: {e}"),
                }
            }
            Err(e) if e.is_node_exists() => violations.push(format!("{who}: holder exists")),
            Err(e) => panic!("{who}: {e}"),
        }
        holds.push(Hold { who, t0, t1: now_micros() });
        guard.release().await.expect("release");
    }
    (holds, violations)
}

// ------------------------------------------------------------------------------------------
// 2. LeaderLatch

/// Who leads, sampled across both runtimes. Participants the test is closing are left out from
/// the moment it decides to close them (an application stops acting as leader before it closes
/// its latch); everyone else counts as leader as soon as it says so.
#[derive(Clone)]
struct Leaders {
    java: Arc<StdMutex<HashMap<String, bool>>>,
    rust: Vec<(String, watch::Receiver<bool>)>,
    /// The client of each Corral participant, by id.
    sessions: Vec<(String, corral_recipes::Client)>,
    closing: Arc<StdMutex<HashSet<String>>>,
}

impl Leaders {
    fn now(&self) -> Vec<String> {
        let closing = self.closing.lock().unwrap().clone();
        let mut out: Vec<String> =
            self.java.lock().unwrap().iter().filter(|(_, l)| **l).map(|(tag, _)| tag.clone()).collect();
        out.extend(self.rust.iter().filter(|(_, rx)| *rx.borrow()).map(|(id, _)| id.clone()));
        out.retain(|id| !closing.contains(id));
        out.sort();
        out
    }

    fn closing(&self, id: &str) {
        self.closing.lock().unwrap().insert(id.to_owned());
    }

    /// Samples as often as the runtime lets it (yielding between samples) until `stop`; returns
    /// the number of samples and every sample that had more than one leader.
    fn sample(&self, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(usize, Vec<Vec<String>>)> {
        let this = self.clone();
        tokio::spawn(async move {
            let (mut samples, mut bad) = (0, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                let now = this.now();
                if now.len() > 1 {
                    bad.push(now);
                }
                samples += 1;
                tokio::task::yield_now().await;
            }
            (samples, bad)
        })
    }

    /// Waits until `leader` alone leads (never more than one meanwhile), then checks it stays
    /// so once every participant has heard all the server said until then: a round trip through
    /// each Corral participant's session, until it has set its watches again (the leader one, on
    /// its own node; the others two, on their own node and the one ahead), and two syncs through
    /// Curator's client.
    async fn settle(&self, peer: &mut Peer, leader: &str) {
        common::eventually(&format!("{leader} alone leads"), || async {
            let now = self.now();
            assert!(now.len() <= 1, "two leaders at once: {now:?}");
            now == [leader]
        })
        .await;
        let closing = self.closing.lock().unwrap().clone();
        for (id, client) in &self.sessions {
            let watches = if closing.contains(id) {
                0
            } else if id == leader {
                1
            } else {
                2
            };
            settle::settled(client, watches).await;
        }
        peer.sync().await;
        assert_eq!(self.now(), [leader], "leadership flapped");
    }
}

/// Waits until Corral (through `fw`) and Curator (through Java's recipe `java_tag`) list the
/// participants of `path` as `ids`, the first as leader.
async fn agree_on_participants(fw: &Framework, path: &str, peer: &mut Peer, java_tag: &str, ids: &[&str]) {
    let want = expected(ids);
    let deadline = Instant::now() + T;
    loop {
        let rust = marked(&leader_latch::participants(fw, path).await.expect("participants"));
        let java = peer.participants(java_tag).await;
        if rust == want && java == want {
            return;
        }
        assert!(Instant::now() < deadline, "participants: want {want:?}, Corral says {rust:?}, Curator says {java:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_latch_is_shared_with_curator() {
    let Some(java) = java() else { return };
    let mut peer = Peer::start(java).await;
    for env in common::envs("interop-latch").await {
        eprintln!("-- against the {} server", env.kind);
        peer.connect(&env).await;
        one_latch_leader_across_runtimes(&env, &mut peer).await;
        peer.disconnect().await;
    }
    peer.quit().await;
}

async fn one_latch_leader_across_runtimes(env: &common::Env, peer: &mut Peer) {
    const PATH: &str = "/election";
    // Java joins first and leads; then rust-1, then rust-2 queue behind it.
    peer.send(&format!("latch java-1 {PATH} java-1"));
    peer.expect("LATCH_STARTED java-1").await;
    peer.expect("LEADER java-1").await;
    let (fw1, fw2, observer) = (env.framework(), env.framework(), env.framework());
    let r1 = LeaderLatch::start(&fw1, PATH, "rust-1");
    common::eventually("rust-1 joined", || async { r1.participants().await.unwrap().len() == 2 }).await;
    let r2 = LeaderLatch::start(&fw2, PATH, "rust-2");
    common::eventually("rust-2 joined", || async { r2.participants().await.unwrap().len() == 3 }).await;

    let leaders = Leaders {
        java: peer.leaders.clone(),
        rust: vec![("rust-1".into(), r1.leadership()), ("rust-2".into(), r2.leadership())],
        sessions: vec![("rust-1".into(), fw1.client()), ("rust-2".into(), fw2.client())],
        closing: Arc::default(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = leaders.sample(stop.clone());

    // Same names, same order, same ids on both sides.
    leaders.settle(peer, "java-1").await;
    agree_on_participants(&observer, PATH, peer, "java-1", &["java-1", "rust-1", "rust-2"]).await;
    assert_eq!(marked(&r1.participants().await.unwrap()), expected(&["java-1", "rust-1", "rust-2"]));
    assert_eq!(r2.leader().await.unwrap().map(|p| p.id), Some("java-1".to_owned()));
    let nodes = peer.nodes(PATH, "latch-").await;
    let ids: Vec<String> = nodes.iter().map(|n| String::from_utf8_lossy(&n.data).into_owned()).collect();
    assert_eq!(ids, ["java-1", "rust-1", "rust-2"], "node data is the participant id, in Curator's order");
    for node in &nodes {
        assert_curator_layout(&node.name, "latch-");
        assert!(node.protected, "Curator's ProtectedUtils rejects {:?}", node.name);
    }

    // Curator's leader leaves: leadership moves to Corral. Java joins again, last.
    leaders.closing("java-1");
    peer.send("close java-1");
    peer.expect("CLOSED java-1").await;
    assert!(!peer.java_leads("java-1"), "Curator's latch still leads after close");
    leaders.settle(peer, "rust-1").await;
    assert!(!r2.has_leadership());
    peer.send(&format!("latch java-2 {PATH} java-2"));
    peer.expect("LATCH_STARTED java-2").await;
    agree_on_participants(&observer, PATH, peer, "java-2", &["rust-1", "rust-2", "java-2"]).await;
    leaders.settle(peer, "rust-1").await;

    // Corral's leader leaves: the next Corral participant leads; Curator still waits.
    leaders.closing("rust-1");
    r1.close().await;
    assert!(!r1.has_leadership());
    leaders.settle(peer, "rust-2").await;
    agree_on_participants(&observer, PATH, peer, "java-2", &["rust-2", "java-2"]).await;

    // The last Corral leader leaves: leadership moves to Curator.
    leaders.closing("rust-2");
    r2.close().await;
    leaders.settle(peer, "java-2").await;
    agree_on_participants(&observer, PATH, peer, "java-2", &["java-2"]).await;
    peer.send("close java-2");
    peer.expect("CLOSED java-2").await;

    stop.store(true, Ordering::SeqCst);
    let (samples, bad) = within("the sampler stops", sampler).await.expect("sampler");
    assert!(samples > 50, "only {samples} samples");
    assert!(
        bad.is_empty(),
        "two leaders at once in {} of {samples} samples: {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    // Curator's `LeaderLatch.close()` deletes its node in the background (`guaranteed()
    // .inBackground()`), so CLOSED can arrive before the delete has even been sent.
    common::eventually("Curator's background delete of its latch node", || async {
        leader_latch::participants(&observer, PATH).await.unwrap().is_empty()
    })
    .await;
    for fw in [fw1, fw2, observer] {
        fw.close().await;
    }
}

// ------------------------------------------------------------------------------------------
// 3. LeaderSelector

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_selector_is_shared_with_curator() {
    let Some(java) = java() else { return };
    let mut peer = Peer::start(java).await;
    for env in common::envs("interop-selector").await {
        eprintln!("-- against the {} server", env.kind);
        peer.connect(&env).await;
        selector_leadership_moves_between_runtimes(&env, &mut peer).await;
        peer.disconnect().await;
    }
    peer.quit().await;
}

async fn selector_participants(selector: &LeaderSelector, peer: &mut Peer, ids: &[&str]) {
    let want = expected(ids);
    let deadline = Instant::now() + T;
    loop {
        let rust = marked(&selector.participants().await.expect("participants"));
        let java = peer.participants("java-sel").await;
        if rust == want && java == want {
            return;
        }
        assert!(Instant::now() < deadline, "participants: want {want:?}, Corral says {rust:?}, Curator says {java:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn selector_leadership_moves_between_runtimes(env: &common::Env, peer: &mut Peer) {
    const PATH: &str = "/selector";
    peer.send(&format!("selector java-sel {PATH} java-sel"));
    peer.expect("SELECTOR_STARTED java-sel").await;
    peer.expect("LEADER java-sel").await;

    let fw = env.framework();
    let (done_tx, done_rx) = watch::channel(false);
    let terms = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let selector = LeaderSelector::start(&fw, PATH, "rust-sel", false, {
        let terms = terms.clone();
        move |_leadership| {
            let mut done = done_rx.clone();
            terms.fetch_add(1, Ordering::SeqCst);
            async move {
                let _ = done.wait_for(|d| *d).await;
            }
        }
    });
    // Curator leads; Corral lists it (from its lock node's data) and waits behind it.
    selector_participants(&selector, peer, &["java-sel", "rust-sel"]).await;
    let nodes = peer.nodes(PATH, "lock-").await;
    let ids: Vec<String> = nodes.iter().map(|n| String::from_utf8_lossy(&n.data).into_owned()).collect();
    assert_eq!(ids, ["java-sel", "rust-sel"]);
    for node in &nodes {
        assert_curator_layout(&node.name, "lock-");
        assert!(node.protected, "Curator's ProtectedUtils rejects {:?}", node.name);
    }
    assert!(!selector.has_leadership(), "Corral leads while Curator's takeLeadership runs");

    // Curator steps down and re-queues: Corral leads, Curator waits behind it.
    peer.send("stepdown java-sel");
    peer.expect("NOT_LEADER java-sel").await;
    let mut leading = selector.leadership();
    within("Corral leads", leading.wait_for(|l| *l)).await.expect("selector");
    // (`leadership()` turns true just before the task is called.)
    common::eventually("Corral's task runs", || async { terms.load(Ordering::SeqCst) == 1 }).await;
    selector_participants(&selector, peer, &["rust-sel", "java-sel"]).await;
    assert!(!peer.java_leads("java-sel"), "Curator leads while Corral's task runs");

    // Corral's term ends (no re-queue): Curator leads again.
    done_tx.send_replace(true);
    within("Corral's selector finishes", selector.wait_until_done()).await;
    assert!(!selector.has_leadership());
    peer.expect("LEADER java-sel").await;
    selector_participants(&selector, peer, &["java-sel"]).await;
    peer.send("close java-sel");
    peer.expect("CLOSED java-sel").await;
    // Curator releases the lock on its leadership thread, after close() returns.
    common::eventually("Curator's node gone", || async { selector.participants().await.unwrap().is_empty() }).await;
    fw.close().await;
}
