//! The durable embedded server against a real ZooKeeper 3.8 with fsync, in the same run, with
//! the same client (`zookeeper-client`), data directories on the same disk:
//!
//! - durable create: p50 and p99 of 2,000 creates (100 B) made one at a time;
//! - pipelined durable setData: 20,000 setData (100 B) with 500 in flight, per second;
//! - restart with 100,000 znodes: from exec to the first answered getData of the last node.
//!
//! ```text
//! cargo bench -p corral-server --bench durable            # both servers
//! CORRAL_BENCH_DIR=/some/disk cargo bench -p corral-server --bench durable
//! ```
//!
//! ZooKeeper is `org.apache.zookeeper.server.ZooKeeperServerMain` from Debian's
//! `/usr/share/java/zookeeper.jar`, with `forceSync=yes` (its default); without Java it is
//! skipped and only the embedded server is measured. Both servers are processes started and
//! killed (by pid) here.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zookeeper_client::{Acls, Client, CreateMode};

const CREATES: usize = 2_000;
const SETS: usize = 20_000;
const IN_FLIGHT: usize = 500;
const RESTART_NODES: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Corral,
    ZooKeeper,
}

struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn java_classpath() -> Option<String> {
    let jar = "/usr/share/java/zookeeper.jar";
    let java_ok = Command::new("java").arg("-version").stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    (java_ok && Path::new(jar).is_file()).then(|| format!("{jar}:/usr/share/java/slf4j-nop.jar"))
}

fn start(kind: Kind, dir: &Path, port: u16) -> Proc {
    let child = match kind {
        Kind::Corral => {
            let mut child = Command::new(env!("CARGO_BIN_EXE_corral-server"))
                .args(["--port", &port.to_string(), "--data-dir"])
                .arg(dir)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn corral-server");
            let mut line = String::new();
            BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("listening line");
            child
        }
        Kind::ZooKeeper => {
            let cfg = dir.join("zoo.cfg");
            let mut file = std::fs::File::create(&cfg).expect("zoo.cfg");
            write!(
                file,
                "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nforceSync=yes\n\
                 maxClientCnxns=0\nadmin.enableServer=false\n4lw.commands.whitelist=*\n",
                dir.display()
            )
            .expect("write zoo.cfg");
            Command::new("java")
                .args(["-Dzookeeper.extendedTypesEnabled=true", "-Djava.net.preferIPv4Stack=true", "-cp"])
                .arg(java_classpath().expect("java"))
                .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
                .arg(&cfg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn ZooKeeper")
        }
    };
    Proc { child }
}

/// Connects, retrying until the server answers (ZooKeeper's JVM takes a while).
async fn connect(port: u16) -> Client {
    let deadline = Instant::now() + Duration::from_secs(120);
    let target = format!("127.0.0.1:{port}");
    loop {
        let attempt = Client::connector().with_connection_timeout(Duration::from_millis(500)).connect(&target);
        if let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(2), attempt).await {
            return client;
        }
        assert!(Instant::now() < deadline, "no server on {target}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs `n` requests made by `make`, `window` in flight; returns the elapsed time.
async fn pipelined<'a, T>(n: usize, window: usize, mut make: impl FnMut(usize) -> Pending<'a, T>) -> Duration {
    let started = Instant::now();
    let mut queue: VecDeque<Pending<'a, T>> = VecDeque::with_capacity(window);
    for i in 0..n {
        if queue.len() == window
            && let Some(first) = queue.pop_front()
        {
            first.await;
        }
        queue.push_back(make(i));
    }
    while let Some(next) = queue.pop_front() {
        next.await;
    }
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Results {
    create_p50: Duration,
    create_p99: Duration,
    set_rate: f64,
    restart: Duration,
}

async fn measure(kind: Kind, root: &Path) -> Results {
    let dir = root.join(format!("{kind:?}").to_lowercase());
    std::fs::create_dir_all(&dir).expect("dir");
    let port = free_port();
    let server = start(kind, &dir, port);
    let client = connect(port).await;
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let data = vec![b'x'; 100];
    client.create("/c", b"", &open).await.expect("create /c");
    let mut latencies = Vec::with_capacity(CREATES);
    for i in 0..CREATES {
        let sent = Instant::now();
        client.create(&format!("/c/n{i}"), &data, &open).await.expect("create");
        latencies.push(sent.elapsed());
    }
    latencies.sort();
    client.create("/p", b"", &open).await.expect("create /p");
    let set_time = pipelined(SETS, IN_FLIGHT, |_| {
        let f = client.set_data("/p", &data, None);
        Box::pin(async move {
            f.await.expect("set_data");
        })
    })
    .await;
    client.create("/r", b"", &open).await.expect("create /r");
    let paths: Vec<String> = (0..RESTART_NODES).map(|i| format!("/r/n{i}")).collect();
    pipelined(RESTART_NODES, 1_000, |i| {
        let f = client.create(&paths[i], &data, &open);
        Box::pin(async move {
            f.await.expect("create");
        })
    })
    .await;
    drop(client);
    drop(server); // SIGKILL
    let started = Instant::now();
    let _server = start(kind, &dir, port);
    let client = connect(port).await;
    client.get_data(&format!("/r/n{}", RESTART_NODES - 1)).await.expect("the last node is back");
    let restart = started.elapsed();
    Results {
        create_p50: percentile(&latencies, 0.5),
        create_p99: percentile(&latencies, 0.99),
        set_rate: SETS as f64 / set_time.as_secs_f64(),
        restart,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let base = std::env::var_os("CORRAL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/durable-bench"));
    std::fs::create_dir_all(&base).expect("bench dir");
    let root = tempfile::tempdir_in(&base).expect("tempdir");
    let mut kinds = vec![Kind::Corral];
    if java_classpath().is_some() {
        kinds.push(Kind::ZooKeeper);
    } else {
        eprintln!("no java or zookeeper.jar: measuring the embedded server only");
    }
    let mut results = Vec::new();
    for kind in kinds {
        let r = measure(kind, root.path()).await;
        println!(
            "{kind:?}: durable create p50 {:.3} ms, p99 {:.3} ms; pipelined setData {:.0}/s; restart with {RESTART_NODES} znodes {:.3} s",
            r.create_p50.as_secs_f64() * 1e3,
            r.create_p99.as_secs_f64() * 1e3,
            r.set_rate,
            r.restart.as_secs_f64()
        );
        results.push((kind, r));
    }
    if let [(_, corral), (_, zk)] = results.as_slice() {
        println!(
            "ratios: create p50 corral/zk {:.2} (target <= 1), setData rate corral/zk {:.2} (target >= 3), restart corral {:.3} s vs zk {:.3} s (target <= 1 s)",
            corral.create_p50.as_secs_f64() / zk.create_p50.as_secs_f64(),
            corral.set_rate / zk.set_rate,
            corral.restart.as_secs_f64(),
            zk.restart.as_secs_f64()
        );
    }
}
