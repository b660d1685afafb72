//! `locks`, `leader`, `services` and `health` on a real ZooKeeper 3.8 (the embedded server when
//! none is available), with a Java process using Curator 5.4 and a Rust process using
//! corral-recipes on the same znodes: the tool must show exactly both sides.
//!
//! Without Java, javac or Curator's jars (Debian: libcurator-discovery-java zookeeper
//! libjackson2-databind-java libslf4j-java) the test prints `skipping:` and passes, except
//! under `CI=true`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{T, client, corral, corral_json, framework, hex, until_children};
use corral_recipes::discovery::{ServiceDiscovery, ServiceInstance};
use corral_recipes::leader_latch::LeaderLatch;
use corral_recipes::lock::Mutex;
use corral_server::testing::TestingServer;
use corral_test_support::java::{CompileError, JAR_DIR, classpath, compiled_classes, jdk_tool};

const JARS: &[&str] = &[
    "curator-x-discovery.jar",
    "curator-recipes.jar",
    "curator-framework.jar",
    "curator-client.jar",
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "guava.jar",
    "slf4j-api.jar",
    "jackson-databind.jar",
    "jackson-core.jar",
    "jackson-annotations.jar",
];
/// How long the JVM may take to start, connect and take everything.
const JVM: Duration = Duration::from_secs(60);

const LOCK: &str = "/locks/shared";
const ELECTION: &str = "/election/shared";
const BASE: &str = "/services";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// `java` and the classpath of the compiled peer, or why not.
fn compiled_peer() -> Result<(PathBuf, String), String> {
    let java = jdk_tool("java").map_err(|why| format!("{why} (install openjdk-17-jdk-headless)"))?;
    let classpath = classpath(JARS, "apt-get install libcurator-recipes-java")?;
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java/CliPeer.java");
    let classes = compiled_classes("cli-peer", &[source], &classpath).map_err(CompileError::skip_reason)?;
    let runtime = Path::new(JAR_DIR).join("slf4j-simple.jar");
    Ok((java, format!("{}:{classpath}:{}", classes.display(), runtime.display())))
}

/// The Java process; killed when dropped (also when the test fails).
struct JavaPeer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl JavaPeer {
    fn start(java: &Path, classpath: &str, zk: &str) -> Self {
        let mut child = Command::new(java)
            .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
            .args(["-cp", classpath, "CliPeer", zk, LOCK, ELECTION, "java-peer", BASE, "api", "java-1", "8080"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start java");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Self { child, stdin, lines }
    }

    /// Waits for `READY <session hex>` and returns the session id as the CLI prints it.
    fn ready(&self) -> String {
        let line = self.lines.recv_timeout(JVM).expect("the Java peer did not get ready");
        let session = line.strip_prefix("READY ").unwrap_or_else(|| panic!("unexpected line from the peer: {line}"));
        format!("0x{session}")
    }

    /// Closes stdin: the peer releases everything and exits.
    fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait for java");
        assert!(status.success(), "the Java peer failed: {status}");
    }
}

impl Drop for JavaPeer {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_and_corral_side_by_side() {
    let (java, classpath) = match compiled_peer() {
        Ok(peer) => peer,
        Err(reason) => {
            assert!(!in_ci(), "CI is set, so this test may not skip: {reason}");
            let _ =
                std::io::stderr().write_all(format!("skipping: the Curator peer cannot run: {reason}\n").as_bytes());
            return;
        }
    };
    // A real ZooKeeper 3.8 if there is one; otherwise the embedded server.
    let mut _embedded = None;
    let (hosts, kind) = match corral_test_support::zookeeper() {
        Some(zk) => (zk.connect_string(), "zookeeper"),
        None => {
            let server = TestingServer::start().await.unwrap();
            let hosts = server.connect_string();
            _embedded = Some(server);
            (hosts, "embedded")
        }
    };
    let chroot = corral_test_support::unique_chroot("cli-curator");
    let root = client(&hosts).await;
    root.create(&chroot, "", corral_recipes::CreateMode::Persistent).await.unwrap();
    let zk = format!("{hosts}{chroot}");

    // Java first: it holds the lock, leads, and is registered.
    let peer = JavaPeer::start(&java, &classpath, &zk);
    let java_session = peer.ready();
    // Then Rust: waits for the lock, follows in the election, registers beside Java.
    let fw = framework(&zk);
    fw.wait_until_connected(T).await.unwrap();
    let rust_session = hex(fw.client().session_id());
    let mutex = Mutex::new(&fw, LOCK);
    let waiter = tokio::spawn(async move { mutex.acquire().await });
    let latch = LeaderLatch::start(&fw, ELECTION, "rust-peer");
    let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, BASE);
    discovery
        .register(ServiceInstance::builder("api").id("rust-1").address("10.1.2.4").port(9090).build())
        .await
        .unwrap();
    let observer = client(&zk).await;
    until_children(&observer, LOCK, 2).await;
    until_children(&observer, ELECTION, 2).await;

    let locks = corral_json(&zk, &["locks", LOCK]);
    let seen: Vec<(&str, &str)> = locks["contenders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["role"].as_str().unwrap(), c["session_id"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, [("holder", java_session.as_str()), ("waiter", rust_session.as_str())], "on {kind}: {locks}");
    for c in locks["contenders"].as_array().unwrap() {
        let node = c["node"].as_str().unwrap();
        assert!(node.starts_with("_c_") && node.contains("-lock-") && c["protected_id"].is_string(), "{node}");
    }

    let leader = corral_json(&zk, &["leader", ELECTION]);
    assert_eq!((leader["kind"].as_str(), leader["leader"].as_str()), (Some("leader_latch"), Some("java-peer")));
    let participants: Vec<(&str, &str)> = leader["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["session_id"].as_str().unwrap()))
        .collect();
    assert_eq!(participants, [("java-peer", java_session.as_str()), ("rust-peer", rust_session.as_str())]);

    let services = corral_json(&zk, &["services", BASE, "api"]);
    let instances: Vec<(&str, &str, i64, &str)> = services["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let (id, address) = (i["id"].as_str().unwrap(), i["address"].as_str().unwrap());
            (id, address, i["port"].as_i64().unwrap(), i["session_id"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        instances,
        [("java-1", "10.1.2.3", 8080, java_session.as_str()), ("rust-1", "10.1.2.4", 9090, rust_session.as_str())]
    );
    assert_eq!(services["instances"][0]["payload"], "java");
    assert_eq!(services["instances"][0]["service_type"], "DYNAMIC");

    // Client addresses and sessions come from the server's `cons`, in its own format.
    for c in locks["contenders"].as_array().unwrap() {
        assert!(c["client_address"].as_str().is_some_and(|a| a.starts_with("127.0.0.1:")), "on {kind}: {c}");
    }
    let sessions = corral_json(&hosts, &["sessions"]);
    let listed: Vec<&str> =
        sessions["hosts"][0]["sessions"].as_array().unwrap().iter().filter_map(|s| s["session_id"].as_str()).collect();
    assert!(listed.contains(&java_session.as_str()) && listed.contains(&rust_session.as_str()), "{sessions}");
    // Their ephemeral nodes, from the server's `dump` (server paths: the chroot included).
    let java_row =
        sessions["hosts"][0]["sessions"].as_array().unwrap().iter().find(|s| s["session_id"] == java_session.as_str());
    let java_ephemerals = java_row.unwrap()["ephemerals"].as_array().unwrap();
    let lock_dir = format!("{chroot}{LOCK}/_c_");
    assert!(
        java_ephemerals.iter().any(|p| p.as_str().unwrap().starts_with(&lock_dir)),
        "on {kind}: {java_ephemerals:?}"
    );

    let health = corral_json(&hosts, &["health"]);
    assert_eq!(health["hosts"][0]["status"], "ok", "{health}");
    assert!(health["hosts"][0]["version"].as_str().unwrap().starts_with("3."), "{health}");

    // Java lets go: Rust holds and leads, and the tool says so.
    peer.finish();
    let guard = tokio::time::timeout(T, waiter).await.unwrap().unwrap().unwrap();
    latch.await_leadership_timeout(T).await.unwrap();
    let locks = corral_json(&zk, &["locks", LOCK]);
    assert_eq!((locks["holders"].as_u64(), locks["waiters"].as_u64()), (Some(1), Some(0)));
    assert_eq!(locks["contenders"][0]["session_id"].as_str(), Some(rust_session.as_str()));
    assert_eq!(corral_json(&zk, &["leader", ELECTION])["leader"], "rust-peer");
    let text = corral(&zk, &["services", BASE]).stdout;
    assert!(!text.contains("java-1") && text.contains("rust-1"), "{text}");

    guard.release().await.unwrap();
    latch.close().await;
    discovery.close().await;
    fw.close().await;
    observer.close().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), root.close()).await;
}
