//! Interop with real Curator 5.4 (Debian's `libcurator-recipes-java`, Java 17): a Java process
//! using Curator's own `InterProcessMutex`, `LeaderLatch` and `LeaderSelector` and this crate's
//! recipes share one lock, one election and one selector, against the embedded server and (when
//! available) a real ZooKeeper.
//!
//! The Java side is `tests/java/CuratorPeer.java`, compiled with `javac` once per test binary
//! (cached under Cargo's target tmp dir, keyed by the source and the classpath) and driven over
//! stdin/stdout, one JVM per test. Without Java, javac or the jars the tests skip with a
//! `skipping:` line on stderr, except under `CI=true` (or `1`), where they fail.

mod common;

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use corral_recipes::leader_latch::{self, LeaderLatch, Participant};
use corral_recipes::leader_selector::LeaderSelector;
use corral_recipes::lock::Mutex;
use corral_recipes::{CreateMode, Framework};
use tokio::sync::{mpsc, watch};

/// Bound on every single wait for the other side.
const T: Duration = Duration::from_secs(30);
const JARS: &[&str] = &[
    "curator-recipes.jar",
    "curator-framework.jar",
    "curator-client.jar",
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "guava.jar",
    "slf4j-api.jar",
];
/// Runtime only: an slf4j binding, so the peer's warnings reach its stderr (kept for failures).
const RUNTIME_JARS: &[&str] = &["slf4j-simple.jar"];
const JAR_DIR: &str = "/usr/share/java";

// ------------------------------------------------------------------------------------------
// The Java peer

/// How to start the compiled peer.
#[derive(Debug)]
struct Java {
    java: PathBuf,
    classpath: String,
}

/// The compiled peer, or `None` (after a `skipping:` line) when Java or the jars are missing.
fn java() -> Option<&'static Java> {
    static JAVA: OnceLock<Result<Java, String>> = OnceLock::new();
    match JAVA.get_or_init(Java::prepare) {
        Ok(java) => Some(java),
        Err(reason) => {
            let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
            assert!(!ci, "CI is set, so tests may not skip, but the Curator peer cannot run: {reason}");
            static NOTICE: std::sync::Once = std::sync::Once::new();
            NOTICE.call_once(|| {
                // Straight to the handle: libtest captures eprintln! of passing tests.
                let _ = std::io::stderr()
                    .lock()
                    .write_all(format!("skipping: Curator interop tests: {reason}\n").as_bytes());
            });
            None
        }
    }
}

fn tool(name: &str) -> Result<PathBuf, String> {
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        let path = Path::new(&home).join("bin").join(name);
        if path.is_file() {
            return Ok(path);
        }
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("no `{name}` in JAVA_HOME or PATH (install openjdk-17-jdk-headless)"))
}

impl Java {
    fn prepare() -> Result<Self, String> {
        let java = tool("java")?;
        let javac = tool("javac")?;
        let jar = |name: &&str| {
            let path = Path::new(JAR_DIR).join(name);
            if path.is_file() {
                Ok(path.display().to_string())
            } else {
                Err(format!(
                    "{} is missing (apt-get install libcurator-recipes-java zookeeper libslf4j-java)",
                    path.display()
                ))
            }
        };
        let compile_cp = JARS.iter().map(jar).collect::<Result<Vec<_>, _>>()?.join(":");
        let runtime_cp = RUNTIME_JARS.iter().map(jar).collect::<Result<Vec<_>, _>>()?.join(":");

        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java/CuratorPeer.java");
        let text = std::fs::read(&source).map_err(|e| format!("{}: {e}", source.display()))?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (&text, &compile_cp).hash(&mut hasher);
        let classes = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("curator-peer-{:016x}", hasher.finish()));
        if !classes.join("CuratorPeer.class").is_file() {
            // Compile next to the final place and rename, so concurrent test binaries never see
            // half-written classes.
            let scratch = classes.with_extension(format!("tmp-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&scratch);
            std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
            let log = scratch.join("javac.log");
            let log_file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
            let mut javac = Command::new(&javac);
            javac.args(["-implicit:none", "-sourcepath", "", "-d"]).arg(&scratch).args(["-cp", &compile_cp]);
            javac.arg(&source).stdin(Stdio::null()).stdout(Stdio::null()).stderr(log_file);
            let status = run_bounded(javac, Duration::from_secs(120))?;
            // A compile error is a bug in the peer, not a missing prerequisite: fail, CI or not.
            assert!(
                status.success(),
                "javac {} failed ({status}):\n{}",
                source.display(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            if std::fs::rename(&scratch, &classes).is_err() {
                // Another test binary got there first.
                let _ = std::fs::remove_dir_all(&scratch);
            }
        }
        Ok(Self { java, classpath: format!("{}:{compile_cp}:{runtime_cp}", classes.display()) })
    }
}

/// Runs a command to completion, killing it after `limit`.
fn run_bounded(mut command: Command, limit: Duration) -> Result<std::process::ExitStatus, String> {
    let mut child = command.spawn().map_err(|e| format!("cannot start {command:?}: {e}"))?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running Java peer. Dropping it kills the JVM (also when a test panics).
struct Peer {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<String>,
    /// Lines received but not consumed yet, in order.
    pending: VecDeque<String>,
    /// The last lines of the JVM's stderr, for failure messages.
    stderr: Arc<StdMutex<String>>,
    /// Leadership as Java last reported it (`LEADER <tag>` / `NOT_LEADER <tag>`), by tag.
    leaders: Arc<StdMutex<HashMap<String, bool>>>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("the Java peer's stderr:\n{}", self.stderr_tail());
        }
    }
}

impl Peer {
    async fn start(java: &Java) -> Self {
        let mut child = Command::new(&java.java)
            .args(["-Xshare:auto", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx256m"])
            .args(["-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-Dorg.slf4j.simpleLogger.showDateTime=true"])
            .args(["-cp", &java.classpath, "CuratorPeer"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the Java peer");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::unbounded_channel();
        let leaders = Arc::new(StdMutex::new(HashMap::new()));
        let stderr = Arc::new(StdMutex::new(String::new()));
        std::thread::spawn({
            let leaders = leaders.clone();
            move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let mut words = line.split(' ');
                    match (words.next(), words.next()) {
                        (Some("LEADER"), Some(tag)) => leaders.lock().unwrap().insert(tag.to_owned(), true),
                        (Some("NOT_LEADER"), Some(tag)) => leaders.lock().unwrap().insert(tag.to_owned(), false),
                        _ => None,
                    };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        });
        std::thread::spawn({
            let stderr = stderr.clone();
            move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut s = stderr.lock().unwrap();
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                    if s.len() > 16_384 {
                        let cut = s.len() - 8_192;
                        let cut = (cut..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(cut);
                        s.drain(..cut);
                    }
                }
            }
        });
        let mut peer = Self { child, stdin, lines, pending: VecDeque::new(), stderr, leaders };
        peer.expect("READY").await;
        peer
    }

    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").and_then(|()| self.stdin.flush()).unwrap_or_else(|e| {
            panic!("writing `{command}` to the Java peer: {e}\nits stderr:\n{}", self.stderr_tail())
        });
    }

    fn stderr_tail(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the first line that is `head` or starts with `head `, and consumes it. Any
    /// `ERROR` line from the peer fails the test.
    async fn expect(&mut self, head: &str) -> String {
        self.expect_within(head, T).await
    }

    async fn expect_within(&mut self, head: &str, limit: Duration) -> String {
        let deadline = tokio::time::Instant::now() + limit;
        let matches = |line: &str| line == head || line.strip_prefix(head).is_some_and(|rest| rest.starts_with(' '));
        loop {
            if let Some(error) = self.pending.iter().find(|l| l.starts_with("ERROR ")) {
                panic!("the Java peer failed: {error}\nits stderr:\n{}", self.stderr_tail());
            }
            if let Some(i) = self.pending.iter().position(|l| matches(l)) {
                return self.pending.remove(i).expect("present");
            }
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => self.pending.push_back(line),
                Ok(None) => panic!(
                    "the Java peer exited while we waited for `{head}` ({:?})\nits stderr:\n{}",
                    self.child.try_wait(),
                    self.stderr_tail()
                ),
                Err(_) => panic!(
                    "no `{head}` from the Java peer within {limit:?}; unconsumed lines: {:?}\nits stderr:\n{}",
                    self.pending,
                    self.stderr_tail()
                ),
            }
        }
    }

    /// Consumes every line received so far that starts with `head ` (every line for "").
    fn take(&mut self, head: &str) -> Vec<String> {
        while let Ok(line) = self.lines.try_recv() {
            self.pending.push_back(line);
        }
        if let Some(error) = self.pending.iter().find(|l| l.starts_with("ERROR ")) {
            panic!("the Java peer failed: {error}\nits stderr:\n{}", self.stderr_tail());
        }
        let prefix = if head.is_empty() { String::new() } else { format!("{head} ") };
        let (taken, kept) = self.pending.drain(..).partition(|l| l.starts_with(&prefix));
        self.pending = kept;
        taken.into()
    }

    /// (Re)connects the peer's client to `env`; the peer closes its recipes and old client first.
    async fn connect(&mut self, env: &common::Env) {
        self.send(&format!("connect {}", env.connect_string()));
        self.expect("CONNECTED").await;
        // Forget what the previous environment's recipes said.
        self.take("");
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

    /// Curator's client never left CONNECTED: the server (embedded or real) kept it happy.
    fn assert_stayed_connected(&mut self) {
        let states = self.take("STATE");
        assert!(
            states.iter().all(|s| s == "STATE CONNECTED"),
            "Curator's connection was disturbed: {states:?}\nits stderr:\n{}",
            self.stderr_tail()
        );
    }

    /// Checks Curator stayed connected, then closes the peer's recipes and client (before the
    /// environment's server goes away).
    async fn disconnect(&mut self) {
        self.assert_stayed_connected();
        self.send("disconnect");
        self.expect("DISCONNECTED").await;
    }

    async fn quit(mut self) {
        self.send("quit");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "the Java peer exited with {status}\nits stderr:\n{}", self.stderr_tail());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Shown with --nocapture: Curator's and ZooKeeper's warnings, if any.
        eprintln!("the Java peer's stderr:\n{}", self.stderr_tail());
        // Drop kills it if it is still there.
    }
}

#[derive(Debug, Clone)]
struct Node {
    name: String,
    protected: bool,
    data: Vec<u8>,
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex")).collect()
}

fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// Curator's protected layout: `_c_<36-char uuid>-<lock name><10-digit sequence>`.
fn assert_curator_layout(name: &str, lock_name: &str) {
    let ok = name.len() == 40 + lock_name.len() + 10
        && name.starts_with("_c_")
        && uuid::Uuid::try_parse(&name[3..39]).is_ok()
        && name[39..].starts_with('-')
        && name[40..].starts_with(lock_name)
        && name[40 + lock_name.len()..].bytes().all(|b| b.is_ascii_digit());
    assert!(ok, "{name:?} is not `_c_<uuid>-{lock_name}<seq>`");
}

/// A participant list as `*leader,other,...`, Rust side.
fn marked(participants: &[Participant]) -> Vec<String> {
    participants.iter().map(|p| if p.is_leader { format!("*{}", p.id) } else { p.id.clone() }).collect()
}

fn expected(ids: &[&str]) -> Vec<String> {
    ids.iter().enumerate().map(|(i, id)| if i == 0 { format!("*{id}") } else { (*id).to_owned() }).collect()
}

fn name_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(T, f).await.unwrap_or_else(|_| panic!("timed out: {what}"))
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
    // While Curator holds, rust-b keeps waiting.
    tokio::time::sleep(Duration::from_millis(300)).await;
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
        let guard = mutex.acquire_timeout(T).await.expect("acquire").unwrap_or_else(|| panic!("{who} round {round}"));
        let t0 = now_micros();
        assert!(guard.is_valid());
        let client = fw.client();
        match client.create("/holder", who, CreateMode::Ephemeral).await {
            Ok(_) => {
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

    /// Samples every 2 ms until `stop`; returns the number of samples and every sample that
    /// had more than one leader.
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
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (samples, bad)
        })
    }

    /// Waits until `leader` alone leads (never more than one meanwhile), then checks it stays
    /// so for 200 ms.
    async fn settle(&self, leader: &str) {
        common::eventually(&format!("{leader} alone leads"), || async {
            let now = self.now();
            assert!(now.len() <= 1, "two leaders at once: {now:?}");
            now == [leader]
        })
        .await;
        for _ in 0..40 {
            assert_eq!(self.now(), [leader], "leadership flapped");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
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
        closing: Arc::default(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = leaders.sample(stop.clone());

    // Same names, same order, same ids on both sides.
    leaders.settle("java-1").await;
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
    leaders.settle("rust-1").await;
    assert!(!r2.has_leadership());
    peer.send(&format!("latch java-2 {PATH} java-2"));
    peer.expect("LATCH_STARTED java-2").await;
    agree_on_participants(&observer, PATH, peer, "java-2", &["rust-1", "rust-2", "java-2"]).await;
    leaders.settle("rust-1").await;

    // Corral's leader leaves: the next Corral participant leads; Curator still waits.
    leaders.closing("rust-1");
    r1.close().await;
    assert!(!r1.has_leadership());
    leaders.settle("rust-2").await;
    agree_on_participants(&observer, PATH, peer, "java-2", &["rust-2", "java-2"]).await;

    // The last Corral leader leaves: leadership moves to Curator.
    leaders.closing("rust-2");
    r2.close().await;
    leaders.settle("java-2").await;
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
    assert_eq!(leader_latch::participants(&observer, PATH).await.unwrap(), Vec::new());
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
