//! The data directory is in ZooKeeper's own format: Debian's ZooKeeper 3.8 tools read the
//! embedded server's log and snapshot (`TxnLogToolkit`, `SnapshotFormatter`), and a real
//! ZooKeeper 3.8 started on the directory serves the same tree, Stats included.
//!
//! Without Java or the ZooKeeper jar the test skips (a `skipping:` line on stderr), except
//! under `CI=true`, where it fails.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use corral_server::Server;
use zookeeper_client::{Acls, Client, CreateMode};

const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
const SLF4J_NOP_JAR: &str = "/usr/share/java/slf4j-nop.jar";

/// `java` and the class path, or `None` (after a notice) when they are missing outside CI.
fn java() -> Option<(PathBuf, String)> {
    let java = std::env::var_os("JAVA_HOME")
        .map(|home| Path::new(&home).join("bin/java"))
        .filter(|java| java.is_file())
        .or_else(|| {
            std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths)
                .map(|dir| dir.join("java"))
                .find(|java| java.is_file())
        });
    let reason = match &java {
        None => Some("no `java` in PATH or JAVA_HOME"),
        Some(_) if !Path::new(ZOOKEEPER_JAR).is_file() => Some("no /usr/share/java/zookeeper.jar"),
        Some(_) => None,
    };
    if let Some(reason) = reason {
        let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        assert!(!ci, "CI is set, so tests may not skip, but ZooKeeper's tools cannot run: {reason}");
        eprintln!("skipping: ZooKeeper's data-directory tools: {reason} (apt-get install zookeeper libslf4j-java)");
        return None;
    }
    let mut classpath = ZOOKEEPER_JAR.to_owned();
    if Path::new(SLF4J_NOP_JAR).is_file() {
        classpath.push(':');
        classpath.push_str(SLF4J_NOP_JAR);
    }
    java.map(|java| (java, classpath))
}

fn run_tool(java: &Path, classpath: &str, class: &str, file: &Path) -> String {
    let output = Command::new(java)
        .args(["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", classpath, class])
        .arg(file)
        .output()
        .expect("run the tool");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{class} {} failed:\n{text}", file.display());
    text
}

fn newest(dir: &Path, prefix: &str) -> PathBuf {
    let mut found: Vec<(i64, PathBuf)> = std::fs::read_dir(dir.join("version-2"))
        .expect("version-2")
        .filter_map(|e| {
            let e = e.expect("entry");
            let hex = e.file_name().into_string().ok()?.strip_prefix(prefix)?.strip_prefix('.')?.to_owned();
            Some((i64::from_str_radix(&hex, 16).ok()?, e.path()))
        })
        .collect();
    found.sort();
    found.pop().expect("a file").1
}

/// The user nodes (not `/zookeeper…`) with data and Stat, in path order.
async fn dump(client: &Client) -> Vec<String> {
    let mut lines = Vec::new();
    let mut stack = vec!["/".to_owned()];
    while let Some(path) = stack.pop() {
        let (data, stat) = client.get_data(&path).await.expect("get_data");
        let (acl, _) = client.get_acl(&path).await.expect("get_acl");
        let (children, _) = client.get_children(&path).await.expect("get_children");
        if !path.starts_with("/zookeeper") {
            lines.push(format!("{path} {data:?} {stat:?} {acl:?}"));
        }
        for child in children {
            stack.push(if path == "/" { format!("/{child}") } else { format!("{path}/{child}") });
        }
    }
    lines.sort();
    lines
}

struct RealZooKeeper(Child);

impl Drop for RealZooKeeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn zookeepers_tools_and_server_read_the_data_directory() {
    let Some((java, classpath)) = java() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    // Snapshots every 6 transactions: some state in snapshots, the rest in the log.
    let server = Server::builder().data_dir(dir.path()).snap_count(6).start().await.expect("start");
    let client = Client::connect(&server.connect_string()).await.expect("connect");
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.create("/hello", b"world", &open).await.expect("create");
    for i in 0..4 {
        client
            .create(
                "/hello/seq-",
                format!("{i}").as_bytes(),
                &CreateMode::PersistentSequential.with_acls(Acls::anyone_all()),
            )
            .await
            .expect("seq");
    }
    client.set_data("/hello", b"there", None).await.expect("set");
    client.delete("/hello/seq-0000000000", None).await.expect("delete");
    client.create("/jobs", b"", &CreateMode::Container.with_acls(Acls::anyone_all())).await.expect("container");
    let ttl = CreateMode::Persistent.with_acls(Acls::anyone_all()).with_ttl(Duration::from_secs(3600));
    client.create("/ttl", b"t", &ttl).await.expect("ttl");
    let mut multi = client.new_multi_writer();
    multi.add_create("/multi", b"m", &open).expect("op");
    multi.add_set_data("/hello/seq-0000000001", b"changed", None).expect("op");
    multi.commit().await.expect("multi");
    let expected = dump(&client).await;
    drop(client);
    server.shutdown().await;

    let log = run_tool(
        &java,
        &classpath,
        "org.apache.zookeeper.server.persistence.TxnLogToolkit",
        &newest(dir.path(), "log"),
    );
    assert!(log.contains("ZooKeeper Transactional Log File with dbid 0 txnlog format version 2"), "{log}");
    assert!(log.contains("EOF reached after"), "{log}");
    let snapshot = newest(dir.path(), "snapshot");
    let text = run_tool(&java, &classpath, "org.apache.zookeeper.server.SnapshotFormatter", &snapshot);
    assert!(text.contains("/hello/seq-0000000002"), "{text}");

    // A real ZooKeeper on (a copy of) the directory.
    let copy = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(copy.path().join("version-2")).expect("mkdir");
    for entry in std::fs::read_dir(dir.path().join("version-2")).expect("dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), copy.path().join("version-2").join(entry.file_name())).expect("copy");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let _zk = RealZooKeeper(
        Command::new(&java)
            .args([
                "-Dzookeeper.admin.enableServer=false",
                // TTL nodes, as the embedded server has them by default (ZooKeeper reads a TTL
                // owner as an unknown session's ephemeral otherwise, and deletes it).
                "-Dzookeeper.extendedTypesEnabled=true",
                "-Djava.net.preferIPv4Stack=true",
                "-cp",
                &classpath,
            ])
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(port.to_string())
            .arg(copy.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ZooKeeper"),
    );
    let connect = SocketAddr::from(([127, 0, 0, 1], port)).to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let client = loop {
        let attempt = Client::connector().with_connection_timeout(Duration::from_secs(2)).connect(&connect);
        if let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(5), attempt).await {
            break client;
        }
        assert!(tokio::time::Instant::now() < deadline, "ZooKeeper did not start on the directory");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(dump(&client).await, expected, "ZooKeeper serves the same tree, Stats and ACLs");
}
