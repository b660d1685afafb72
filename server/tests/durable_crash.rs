//! Crash safety: the server binary on a data directory is killed with SIGKILL at random
//! moments while clients make acknowledged writes; restarted on the same directory, it has
//! every acknowledged write, no half-applied multi, and a zxid that never went backwards. Some
//! rounds also leave a torn or a corrupt (unacknowledged) entry after the last one, as a crash
//! in the middle of a write would.
//!
//! A few rounds by default; `CORRAL_DURABLE_LONG=1` runs 50.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zookeeper_client::{Acls, Client, CreateMode};

struct Running {
    child: Child,
    addr: SocketAddr,
}

fn start(dir: &Path, log: &Path) -> Running {
    let stderr = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("stderr file");
    // A snapshot (and a log roll, and a purge) every 150 transactions: the kills also land in
    // the middle of fuzzy snapshots, and restarts read snapshots taken under load.
    let cfg = dir.with_extension("cfg");
    std::fs::write(&cfg, "snapCount=150\nautopurge.snapRetainCount=3\n").expect("zoo.cfg");
    let mut child = Command::new(env!("CARGO_BIN_EXE_corral-server"))
        .arg("--config")
        .arg(&cfg)
        .args(["--port", "0", "--tick-time", "500", "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("spawn corral-server");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read stdout");
    let Some(addr) = line.trim().strip_prefix("listening on ") else {
        let _ = child.kill();
        let log = std::fs::read_to_string(log).unwrap_or_default();
        panic!("server did not start: {line:?}\n{log}");
    };
    Running { addr: addr.parse().expect("address"), child }
}

async fn zxid(addr: SocketAddr) -> i64 {
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    socket.write_all(b"srvr").await.expect("write");
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.expect("read");
    let hex = answer.lines().find_map(|l| l.strip_prefix("Zxid: 0x")).expect("Zxid line");
    i64::from_str_radix(hex.trim(), 16).expect("hex zxid")
}

/// What the clients were told succeeded.
#[derive(Default)]
struct Acked {
    nodes: Vec<(String, i64)>,
    pairs: Vec<u64>,
    max_zxid: i64,
}

async fn writer(client: Arc<Client>, task: usize, round: usize, acked: Arc<Mutex<Acked>>) {
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    for n in 0.. {
        if n % 4 == 3 {
            // A multi: both nodes or neither.
            let k = (round as u64) << 32 | (task as u64) << 20 | n as u64;
            let mut multi = client.new_multi_writer();
            multi.add_create(&format!("/m/a{k}"), b"a", &open).expect("op");
            multi.add_create(&format!("/m/b{k}"), b"b", &open).expect("op");
            if multi.commit().await.is_err() {
                return;
            }
            acked.lock().expect("lock").pairs.push(k);
        } else {
            let path = format!("/w/r{round}-t{task}-{n}");
            match client.create(&path, path.as_bytes(), &open).await {
                Ok((stat, _)) => {
                    let mut acked = acked.lock().expect("lock");
                    acked.max_zxid = acked.max_zxid.max(stat.czxid);
                    acked.nodes.push((path, stat.czxid));
                }
                Err(_) => return,
            }
        }
    }
}

/// The newest log file and where its entries end.
fn last_log(dir: &Path) -> (PathBuf, usize) {
    let mut logs: Vec<(i64, PathBuf)> = std::fs::read_dir(dir.join("version-2"))
        .expect("version-2")
        .filter_map(|e| {
            let e = e.expect("entry");
            let hex = e.file_name().into_string().ok()?.strip_prefix("log.")?.to_owned();
            Some((i64::from_str_radix(&hex, 16).ok()?, e.path()))
        })
        .collect();
    logs.sort();
    let (_, path) = logs.pop().expect("a log");
    let bytes = std::fs::read(&path).expect("read log");
    let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    (path, end)
}

/// Writes `bytes` at `at` in `path`, as an interrupted write of the next entry would.
fn scribble(path: &Path, at: usize, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new().write(true).open(path).expect("open log");
    file.seek(SeekFrom::Start(at as u64)).expect("seek");
    file.write_all(bytes).expect("write");
}

async fn check(addr: SocketAddr, acked: &Acked, floor: i64) -> i64 {
    let client = Client::connect(&addr.to_string()).await.expect("connect");
    let zxid = zxid(addr).await;
    assert!(zxid >= floor, "zxid went backwards: {zxid:#x} < {floor:#x}");
    assert!(zxid >= acked.max_zxid, "an acknowledged zxid {:#x} is past the server's {zxid:#x}", acked.max_zxid);
    let nodes: BTreeSet<String> = client.list_children("/w").await.expect("children").into_iter().collect();
    for (path, czxid) in &acked.nodes {
        let name = path.trim_start_matches("/w/");
        assert!(nodes.contains(name), "acknowledged {path} (zxid {czxid:#x}) lost");
    }
    let pairs: BTreeSet<String> = client.list_children("/m").await.expect("children").into_iter().collect();
    for name in &pairs {
        let other = match name.strip_prefix('a') {
            Some(k) => format!("b{k}"),
            None => format!("a{}", name.trim_start_matches('b')),
        };
        assert!(pairs.contains(&other), "half a multi: {name} without {other}");
    }
    for k in &acked.pairs {
        assert!(pairs.contains(&format!("a{k}")), "acknowledged multi {k} lost");
    }
    zxid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let rounds = if std::env::var("CORRAL_DURABLE_LONG").is_ok_and(|v| v == "1") { 50 } else { 4 };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut server = start(&data, &log);
    {
        let client = Client::connect(&server.addr.to_string()).await.expect("connect");
        let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
        client.create("/w", b"", &open).await.expect("create");
        client.create("/m", b"", &open).await.expect("create");
    }
    let mut floor = 0;
    let mut cuts = 0;
    for round in 0..rounds {
        let client = Arc::new(Client::connect(&server.addr.to_string()).await.expect("connect"));
        let writers: Vec<_> =
            (0..4).map(|task| tokio::spawn(writer(Arc::clone(&client), task, round, Arc::clone(&acked)))).collect();
        // Fault injection: SIGKILL at a random real-time point of the writes (a separate process).
        tokio::time::sleep(Duration::from_millis(fastrand::u64(30..400))).await;
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reaped");
        for w in writers {
            let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
        }
        drop(client);
        // Some rounds: the crash left part of an entry that was never acknowledged.
        let (path, end) = last_log(&data);
        match round % 3 {
            1 => scribble(&path, end, &[0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 60, 1, 2, 3, 4]),
            2 => {
                // A whole entry with a checksum that does not match.
                let mut entry = vec![0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 5, 9, 9, 9, 9, 9, b'B'];
                entry[4] ^= 0xff;
                scribble(&path, end, &entry);
            }
            _ => {}
        }
        if round % 3 != 0 {
            cuts += 1;
        }
        server = start(&data, &log);
        let snapshot = std::mem::take(&mut *acked.lock().expect("lock"));
        floor = check(server.addr, &snapshot, floor).await;
        *acked.lock().expect("lock") = snapshot;
    }
    let _ = server.child.kill();
    let _ = server.child.wait();
    let acked = acked.lock().expect("lock");
    assert!(acked.nodes.len() > rounds, "the writers wrote ({} acknowledged)", acked.nodes.len());
    let stderr = std::fs::read_to_string(&log).expect("server log");
    let warnings = stderr.matches("truncating it at the last good entry").count();
    assert!(warnings >= cuts, "a warning for every cut tail ({warnings} of {cuts}):\n{stderr}");
    assert!(stderr.contains("version-2/log."), "the warning names the file:\n{stderr}");
    let snapshots: Vec<String> = std::fs::read_dir(data.join("version-2"))
        .expect("version-2")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("snapshot."))
        .collect();
    eprintln!(
        "{rounds} kills: {} acknowledged creates, {} multis; snapshots left {snapshots:?}",
        acked.nodes.len(),
        acked.pairs.len()
    );
    assert!(snapshots.len() <= 3, "purged to 3: {snapshots:?}");
    if acked.nodes.len() > 400 {
        assert!(snapshots.iter().any(|s| s != "snapshot.0"), "snapshots under load: {snapshots:?}");
    }
}
