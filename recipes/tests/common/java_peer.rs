//! A Java peer for the Curator interop tests (`curator_interop*.rs`): compiles one of
//! `tests/java/<class>.java` (with its support class `PeerIo.java`) with `javac` once per source
//! and classpath (`corral_test_support::java::compiled_classes`), and drives the JVM over
//! stdin/stdout, one command line in, one answer or event line out, every wait bounded. Without Java, javac or the jars the tests skip with a `skipping:` line on stderr,
//! except under `CI=true` (or `1`), where they fail.

#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use corral_test_support::java::{CompileError, classpath, compiled_classes, jdk_tool};
use tokio::sync::mpsc;

/// Bound on every single wait for the other side.
pub const T: Duration = Duration::from_secs(30);
/// Runtime only: an slf4j binding, so the peer's warnings reach its stderr (kept for failures).
const RUNTIME_JARS: &[&str] = &["slf4j-simple.jar"];
/// Compiled together with every peer: the line protocol and helpers the peers share.
const SUPPORT: &[&str] = &["PeerIo"];

/// The jars a peer using Curator's recipes runs against (in `/usr/share/java`).
pub const CURATOR_RECIPES_JARS: &[&str] = &[
    "curator-recipes.jar",
    "curator-framework.jar",
    "curator-client.jar",
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "guava.jar",
    "slf4j-api.jar",
];

/// The Debian packages that provide [`CURATOR_RECIPES_JARS`].
pub const CURATOR_RECIPES_PACKAGES: &str = "libcurator-recipes-java zookeeper libslf4j-java";

/// The peer of `curator_interop_discovery.rs` and `curator_interop_read_write_lock.rs`
/// (`CuratorDiscoveryPeer.java`: Curator's service discovery and `InterProcessReadWriteLock`).
pub const DISCOVERY_PEER: PeerSpec = PeerSpec {
    class: "CuratorDiscoveryPeer",
    jars: &[
        &["curator-x-discovery.jar"],
        CURATOR_RECIPES_JARS,
        &["jackson-databind.jar", "jackson-core.jar", "jackson-annotations.jar"],
    ],
    packages: "libcurator-discovery-java libcurator-recipes-java zookeeper libjackson2-databind-java libslf4j-java",
    tests: "Curator discovery/read-write-lock interop tests",
    cache: "curator-discovery-peer",
};

/// Which peer a test binary runs.
#[derive(Debug)]
pub struct PeerSpec {
    /// The main class, in `tests/java/<class>.java`.
    pub class: &'static str,
    /// The jars (in `/usr/share/java`) to compile and run it against, in lists joined in order
    /// (so that a peer can name [`CURATOR_RECIPES_JARS`] and add its own).
    pub jars: &'static [&'static [&'static str]],
    /// The Debian packages that provide them, for the message when one is missing.
    pub packages: &'static str,
    /// Which tests skip without Java, for the `skipping:` line.
    pub tests: &'static str,
    /// The compiled classes' directory name (before the hash), for
    /// `corral_test_support::java::compiled_classes`.
    pub cache: &'static str,
}

/// How to start the compiled peer.
#[derive(Debug)]
pub struct Java {
    java: PathBuf,
    classpath: String,
    class: &'static str,
}

/// The compiled peer, or `None` (after a `skipping:` line) when Java or the jars are missing.
/// One peer per test binary.
pub fn java(spec: &PeerSpec) -> Option<&'static Java> {
    static JAVA: OnceLock<(&'static str, Result<Java, String>)> = OnceLock::new();
    let (class, prepared) = JAVA.get_or_init(|| (spec.class, Java::prepare(spec)));
    assert_eq!(*class, spec.class, "one Java peer per test binary");
    match prepared {
        Ok(java) => Some(java),
        Err(reason) => {
            let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
            assert!(!ci, "CI is set, so tests may not skip, but the Curator peer cannot run: {reason}");
            static NOTICE: std::sync::Once = std::sync::Once::new();
            NOTICE.call_once(|| {
                // Straight to the handle: libtest captures eprintln! of passing tests.
                let _ = std::io::stderr().lock().write_all(format!("skipping: {}: {reason}\n", spec.tests).as_bytes());
            });
            None
        }
    }
}

impl Java {
    fn prepare(spec: &PeerSpec) -> Result<Self, String> {
        let jdk = |name| jdk_tool(name).map_err(|why| format!("{why} (install openjdk-17-jdk-headless)"));
        let java = jdk("java")?;
        let install = format!("apt-get install {}", spec.packages);
        let compile_jars: Vec<&str> = spec.jars.iter().copied().flatten().copied().collect();
        let compile_cp = classpath(&compile_jars, &install)?;
        let runtime_cp = classpath(RUNTIME_JARS, &install)?;

        let java_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java");
        let sources: Vec<PathBuf> =
            std::iter::once(&spec.class).chain(SUPPORT).map(|class| java_dir.join(format!("{class}.java"))).collect();
        let classes = compiled_classes(spec.cache, &sources, &compile_cp).map_err(CompileError::skip_reason)?;
        Ok(Self { java, classpath: format!("{}:{compile_cp}:{runtime_cp}", classes.display()), class: spec.class })
    }
}

/// A running Java peer. Dropping it kills the JVM (also when a test panics).
#[derive(Debug)]
pub struct Peer {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<String>,
    /// Lines received but not consumed yet, in order.
    pending: VecDeque<String>,
    /// The last lines of the JVM's stderr, for failure messages.
    stderr: Arc<StdMutex<String>>,
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
    /// Starts the JVM and waits for its `READY`.
    pub async fn start(java: &Java) -> Self {
        Self::start_with(java, |_| {}).await
    }

    /// Like [`Peer::start`], with `observe` called on every stdout line as it arrives (on the
    /// reader thread, before the line is queued).
    pub async fn start_with(java: &Java, mut observe: impl FnMut(&str) + Send + 'static) -> Self {
        let mut child = Command::new(&java.java)
            .args(["-Xshare:auto", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx256m"])
            .args(["-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-Dorg.slf4j.simpleLogger.showDateTime=true"])
            .args(["-cp", &java.classpath, java.class])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the Java peer");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::unbounded_channel();
        let stderr = Arc::new(StdMutex::new(String::new()));
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                observe(&line);
                if tx.send(line).is_err() {
                    break;
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
        let mut peer = Self { child, stdin, lines, pending: VecDeque::new(), stderr };
        peer.expect("READY").await;
        peer
    }

    pub fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").and_then(|()| self.stdin.flush()).unwrap_or_else(|e| {
            panic!("writing `{command}` to the Java peer: {e}\nits stderr:\n{}", self.stderr_tail())
        });
    }

    pub fn stderr_tail(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn matches(line: &str, head: &str) -> bool {
        line == head || line.strip_prefix(head).is_some_and(|rest| rest.starts_with(' '))
    }

    fn check_errors(&self) {
        if let Some(error) = self.pending.iter().find(|l| l.starts_with("ERROR ")) {
            panic!("the Java peer failed: {error}\nits stderr:\n{}", self.stderr_tail());
        }
    }

    /// Waits for the first line that is `head` or starts with `head `, and consumes it. Any
    /// `ERROR` line from the peer fails the test.
    pub async fn expect(&mut self, head: &str) -> String {
        self.expect_within(head, T).await
    }

    pub async fn expect_within(&mut self, head: &str, limit: Duration) -> String {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            self.check_errors();
            if let Some(i) = self.pending.iter().position(|l| Self::matches(l, head)) {
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

    /// A round trip through Curator's client (`sync`, twice): what the server told it before
    /// the call has been handled, and so have the replies to what the handlers asked in turn.
    pub async fn sync(&mut self) {
        self.send("sync");
        self.expect("SYNCED").await;
    }

    /// The watches Curator's client holds after a [`Peer::sync`], as `<kind>:<path>` (kind
    /// `data`, `exist` or `child`; paths inside the chroot).
    pub async fn watches(&mut self) -> Vec<String> {
        self.send("watches");
        let line = self.expect("WATCHES").await;
        line.split(' ').skip(1).map(str::to_owned).collect()
    }

    /// Waits (bounded by [`T`]) until Curator's client holds `watch` (`<kind>:<path>`): a recipe
    /// that waits on a node shows this way. A data watch from `exists` says the node was there.
    pub async fn until_watching(&mut self, watch: &str) {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let watches = self.watches().await;
            if watches.iter().any(|w| w == watch) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "Curator never held {watch}; it holds {watches:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Consumes every line received so far that starts with `head ` (every line for "").
    pub fn take(&mut self, head: &str) -> Vec<String> {
        while let Ok(line) = self.lines.try_recv() {
            self.pending.push_back(line);
        }
        self.check_errors();
        let prefix = if head.is_empty() { String::new() } else { format!("{head} ") };
        let (taken, kept) = self.pending.drain(..).partition(|l| l.starts_with(&prefix));
        self.pending = kept;
        taken.into()
    }

    /// The words after `head` in the next line that is `head` or starts with `head `.
    pub async fn words(&mut self, head: &str) -> Vec<String> {
        let line = self.expect(head).await;
        line[head.len()..].split_whitespace().map(str::to_owned).collect()
    }

    /// Sends `command` and parses the JSON after `head ` in its answer.
    pub async fn query(&mut self, command: &str, head: &str) -> serde_json::Value {
        self.send(command);
        let line = self.expect(head).await;
        serde_json::from_str(&line[head.len() + 1..]).unwrap_or_else(|e| panic!("bad JSON in `{line}`: {e}"))
    }

    /// (Re)connects the peer's client to `env`; the peer closes its recipes and old client first.
    pub async fn connect(&mut self, env: &super::Env) {
        self.send(&format!("connect {}", env.connect_string()));
        self.expect("CONNECTED").await;
        // Forget what the previous environment's recipes said.
        self.take("");
    }

    /// Curator's client never left CONNECTED: the server (embedded or real) kept it happy.
    pub fn assert_stayed_connected(&mut self) {
        let states = self.take("STATE");
        assert!(
            states.iter().all(|s| s == "STATE CONNECTED"),
            "Curator's connection was disturbed: {states:?}\nits stderr:\n{}",
            self.stderr_tail()
        );
    }

    /// Checks Curator stayed connected, then closes the peer's recipes and client (before the
    /// environment's server goes away).
    pub async fn disconnect(&mut self) {
        self.assert_stayed_connected();
        self.send("disconnect");
        self.expect("DISCONNECTED").await;
    }

    pub async fn quit(mut self) {
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

// ------------------------------------------------------------------------------------------
// Helpers for both sides' answers

/// Lowercase hex, as the peers' `hex()`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex")).collect()
}

/// Wall-clock microseconds, as the peers' `micros()`.
pub fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

pub fn name_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

pub async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(T, f).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Curator's protected layout: `_c_<36-char uuid>-<lock name><10-digit sequence>`.
pub fn assert_curator_layout(name: &str, lock_name: &str) {
    let ok = name.len() == 40 + lock_name.len() + 10
        && name.starts_with("_c_")
        && uuid::Uuid::try_parse(&name[3..39]).is_ok()
        && name[39..].starts_with('-')
        && name[40..].starts_with(lock_name)
        && name[40 + lock_name.len()..].bytes().all(|b| b.is_ascii_digit());
    assert!(ok, "{name:?} is not `_c_<uuid>-{lock_name}<seq>`");
}
