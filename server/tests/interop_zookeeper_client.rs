//! The independent `zookeeper-client` crate (kezhuw's) against the embedded server and a real
//! ZooKeeper 3.8, with the same assertions on both.
//!
//! [`scenario`] asserts ZooKeeper's documented behaviour and also logs what it observed (results,
//! errors, every Stat field, watch events). The two servers' logs are then compared entry by
//! entry. Zxids are logged as their rank among the zxids the run saw (so `czxid == mzxid`,
//! "pzxid moved" and the order of transactions still count, while the absolute numbers, which
//! depend on what else the shared server did before, do not); session ids are logged as which
//! client owns them; times as their relation to each other.
//!
//! The embedded server's log is also compared with one recorded from ZooKeeper 3.8.0
//! (`tests/common/recorded/zookeeper-client.txt`), so the test still compares something where no
//! real ZooKeeper can be started.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use corral_server::Server;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use zookeeper_client as zk;

/// A bound on every wait for an event, so a missing notification fails instead of hanging.
const WAIT: Duration = Duration::from_secs(15);

/// What a run observed, in order.
#[derive(Debug, Default)]
struct Log {
    entries: Vec<(String, Entry)>,
    /// Session ids by name ("a", "b").
    sessions: Vec<(&'static str, i64)>,
}

#[derive(Debug)]
enum Entry {
    Text(String),
    Stat(zk::Stat),
}

impl Log {
    fn note(&mut self, label: &str, value: impl Debug) {
        self.entries.push((label.to_owned(), Entry::Text(format!("{value:?}"))));
    }

    fn stat(&mut self, label: &str, stat: &zk::Stat) {
        self.entries.push((label.to_owned(), Entry::Stat(*stat)));
    }

    /// The entries as text, zxids as ranks and session ids as owner names.
    fn render(&self) -> Vec<String> {
        let zxids: Vec<i64> = self
            .entries
            .iter()
            .filter_map(|(_, e)| match e {
                Entry::Stat(s) if !s.is_invalid() => Some([s.czxid, s.mzxid, s.pzxid]),
                _ => None,
            })
            .flatten()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let rank = |z: i64| zxids.binary_search(&z).map_or_else(|_| format!("{z}"), |r| format!("z{r}"));
        self.entries
            .iter()
            .map(|(label, entry)| match entry {
                Entry::Text(t) => format!("{label}: {t}"),
                Entry::Stat(s) if s.is_invalid() => format!("{label}: invalid stat"),
                Entry::Stat(s) => {
                    let owner = match s.ephemeral_owner {
                        0 => "0".to_owned(),
                        id => self
                            .sessions
                            .iter()
                            .find(|(_, s)| *s == id)
                            .map_or_else(|| format!("unknown {id:#x}"), |(name, _)| (*name).to_owned()),
                    };
                    // Whether they are equal after a setData depends on the clock's resolution.
                    let times = if s.ctime <= s.mtime { "ctime<=mtime" } else { "ctime>mtime" };
                    format!(
                        "{label}: czxid={} mzxid={} pzxid={} version={} cversion={} aversion={} owner={owner} \
                         dataLength={} numChildren={} {times}",
                        rank(s.czxid),
                        rank(s.mzxid),
                        rank(s.pzxid),
                        s.version,
                        s.cversion,
                        s.aversion,
                        s.data_length,
                        s.num_children,
                    )
                }
            })
            .collect()
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future).await.unwrap_or_else(|_| panic!("{what}: nothing within {WAIT:?}"))
}

async fn connect(cluster: &str) -> zk::Client {
    within("connect", zk::Client::connector().with_session_timeout(Duration::from_secs(20)).connect(cluster))
        .await
        .unwrap_or_else(|e| panic!("connect to {cluster}: {e}"))
}

fn opts(mode: zk::CreateMode) -> zk::CreateOptions<'static> {
    mode.with_acls(zk::Acls::anyone_all())
}

/// Creates `chroot` (and its parents) on the server at `addr`.
async fn make_chroot(addr: &str, chroot: &str) {
    let client = connect(addr).await;
    client
        .mkdir(chroot, &opts(zk::CreateMode::Persistent))
        .await
        .unwrap_or_else(|e| panic!("mkdir {chroot} on {addr}: {e}"));
}

/// A TCP relay to the server that can refuse new connections: a's way in.
struct Gate {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Gate {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind the gate");
        let addr = listener.local_addr().expect("the gate's address");
        let open = Arc::new(AtomicBool::new(true));
        let task = tokio::spawn({
            let open = Arc::clone(&open);
            async move {
                let mut relays = JoinSet::new();
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !open.load(Ordering::SeqCst) {
                        continue; // Dropped: the client sees its connection close.
                    }
                    relays.spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
            }
        });
        Self { addr, open, task }
    }

    fn shut(&self) {
        self.open.store(false, Ordering::SeqCst);
    }

    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every check, run against one server (`cluster` carries the chroot); returns the log.
#[allow(clippy::too_many_lines)]
async fn scenario(addr: SocketAddr, chroot: &str) -> Vec<String> {
    let started = now_ms();
    let gate = Gate::start(addr).await;
    let direct = format!("{addr}{chroot}");
    let a = connect(&format!("{}{chroot}", gate.addr)).await;
    let b = connect(&direct).await;
    let mut log = Log { sessions: vec![("a", a.session_id().0), ("b", b.session_id().0)], ..Log::default() };
    assert_ne!(a.session_id().0, b.session_id().0);

    // create / get / set with versions and Stat fields.
    let (created, seq) = a.create("/p", b"hello", &opts(zk::CreateMode::Persistent)).await.expect("create /p");
    assert_eq!(seq.into_i64(), -1);
    assert_eq!((created.version, created.cversion, created.aversion), (0, 0, 0));
    assert_eq!((created.data_length, created.num_children, created.ephemeral_owner), (5, 0, 0));
    assert_eq!((created.czxid, created.pzxid), (created.mzxid, created.mzxid));
    assert_eq!(created.ctime, created.mtime);
    assert!(created.ctime >= started - 60_000 && created.ctime <= now_ms() + 60_000, "{created:?}");
    log.stat("create /p", &created);
    let (data, stat) = a.get_data("/p").await.expect("get /p");
    assert_eq!((data.as_slice(), stat), (&b"hello"[..], created));
    let set = a.set_data("/p", b"world!", Some(0)).await.expect("set /p v0");
    assert_eq!((set.version, set.data_length, set.czxid, set.pzxid), (1, 6, created.czxid, created.pzxid));
    assert!(set.mzxid > created.mzxid && set.mtime >= created.mtime);
    log.stat("set /p v0", &set);
    assert_eq!(a.set_data("/p", b"x", Some(0)).await, Err(zk::Error::BadVersion));
    let set = a.set_data("/p", b"", None).await.expect("set /p any");
    assert_eq!((set.version, set.data_length), (2, 0));
    log.stat("set /p any", &set);
    assert_eq!(a.create("/p", b"", &opts(zk::CreateMode::Persistent)).await.err(), Some(zk::Error::NodeExists));
    assert_eq!(a.create("/nope/x", b"", &opts(zk::CreateMode::Persistent)).await.err(), Some(zk::Error::NoNode));
    assert_eq!(a.get_data("/nope").await.err(), Some(zk::Error::NoNode));
    assert_eq!(a.set_data("/nope", b"", None).await.err(), Some(zk::Error::NoNode));

    // Ephemeral, sequential, container and TTL nodes.
    let (eph, _) = a.create("/p/e", b"e", &opts(zk::CreateMode::Ephemeral)).await.expect("create ephemeral");
    assert_eq!(eph.ephemeral_owner, a.session_id().0);
    log.stat("create /p/e", &eph);
    assert_eq!(
        a.create("/p/e/x", b"", &opts(zk::CreateMode::Persistent)).await.err(),
        Some(zk::Error::NoChildrenForEphemerals)
    );
    for (i, mode) in [
        zk::CreateMode::PersistentSequential,
        zk::CreateMode::PersistentSequential,
        zk::CreateMode::EphemeralSequential,
    ]
    .into_iter()
    .enumerate()
    {
        let (stat, seq) = a.create("/p/s-", b"", &opts(mode)).await.expect("sequential");
        assert_eq!(seq.into_i64(), i64::try_from(i).expect("small") + 1, "the parent had /p/e first");
        assert_eq!(seq.to_string(), format!("{:010}", i + 1));
        log.note(&format!("sequence {i}"), seq.into_i64());
        log.stat(&format!("create /p/s- #{i}"), &stat);
    }
    let (cont, _) = a.create("/cont", b"", &opts(zk::CreateMode::Container)).await.expect("container");
    assert_eq!(cont.ephemeral_owner, 0, "containers report no owner");
    log.stat("create /cont", &cont);
    a.create("/cont/child", b"c", &opts(zk::CreateMode::Persistent)).await.expect("container child");
    let ttl = opts(zk::CreateMode::Persistent).with_ttl(Duration::from_secs(600));
    let (stat, _) = a.create("/ttl", b"t", &ttl).await.expect("ttl");
    assert_eq!(stat.ephemeral_owner, 0, "TTL nodes report no owner");
    log.stat("create /ttl", &stat);
    let ttl_seq = opts(zk::CreateMode::PersistentSequential).with_ttl(Duration::from_secs(600));
    let (stat, seq) = a.create("/ttl-s-", b"", &ttl_seq).await.expect("ttl sequential");
    log.note("ttl sequence", seq.into_i64());
    log.stat("create /ttl-s-", &stat);
    assert_eq!(
        a.create("/cont/child/e", b"", &opts(zk::CreateMode::Ephemeral)).await.map(|(s, _)| s.ephemeral_owner),
        Ok(a.session_id().0)
    );

    // Children and the parent's Stat.
    let (mut children, parent) = a.get_children("/p").await.expect("children");
    children.sort();
    assert_eq!(children, ["e", "s-0000000001", "s-0000000002", "s-0000000003"]);
    assert_eq!((parent.num_children, parent.cversion), (4, 4));
    log.note("children /p", &children);
    log.stat("children2 /p", &parent);
    let mut listed = a.list_children("/p").await.expect("list");
    listed.sort();
    assert_eq!(listed, children);

    // Delete errors, then a delete.
    assert_eq!(a.delete("/p", None).await, Err(zk::Error::NotEmpty));
    assert_eq!(a.delete("/p/s-0000000001", Some(5)).await, Err(zk::Error::BadVersion));
    assert_eq!(a.delete("/missing", None).await, Err(zk::Error::NoNode));
    a.delete("/p/s-0000000001", Some(0)).await.expect("delete");
    let after = a.check_stat("/p").await.expect("exists").expect("/p exists");
    assert_eq!((after.num_children, after.cversion), (3, 5), "cversion counts deletes");
    assert!(after.pzxid > parent.pzxid);
    log.stat("exists /p after a child delete", &after);
    assert_eq!(a.check_stat("/missing").await, Ok(None));

    // multi: a failure rolls everything back; then a success.
    let mut multi = a.new_multi_writer();
    multi.add_create("/m", b"m", &opts(zk::CreateMode::Persistent)).unwrap();
    multi.add_set_data("/p", b"x", Some(99)).unwrap();
    multi.add_delete("/p/s-0000000002", None).unwrap();
    let failed = multi.commit().await;
    assert_eq!(failed, Err(zk::MultiWriteError::OperationFailed { index: 1, source: zk::Error::BadVersion }));
    log.note("failed multi", &failed);
    assert_eq!(a.check_stat("/m").await, Ok(None), "rolled back");
    assert!(a.check_stat("/p/s-0000000002").await.expect("exists").is_some());
    let mut multi = a.new_multi_writer();
    multi.add_create("/m", b"m", &opts(zk::CreateMode::Persistent)).unwrap();
    multi.add_set_data("/m", b"mm", Some(0)).unwrap();
    multi.add_check_version("/p", 2).unwrap();
    multi.add_delete("/p/s-0000000002", Some(0)).unwrap();
    multi.add_create("/m-cont", b"", &opts(zk::CreateMode::Container)).unwrap();
    multi.add_create("/m-cont/ttl", b"t", &ttl).unwrap();
    let results = multi.commit().await.expect("multi");
    assert_eq!(results.len(), 6);
    for (i, result) in results.iter().enumerate() {
        match result {
            // ZooKeeper 3.8 answers create2 without a Stat (ZOOKEEPER-4026), createContainer
            // and createTTL with one.
            zk::MultiWriteResult::Create { path, stat } => {
                assert_eq!(path, ["/m", "", "", "", "/m-cont", "/m-cont/ttl"][i]);
                assert_eq!(stat.is_invalid(), path == "/m", "{path}: {stat:?}");
                log.stat(&format!("multi create {path}"), stat);
            }
            zk::MultiWriteResult::SetData { stat } => {
                assert_eq!(stat.version, 1);
                log.stat("multi set", stat);
            }
            other => log.note(&format!("multi result {i}"), other),
        }
    }
    let mut reader = a.new_multi_reader();
    reader.add_get_data("/m").unwrap();
    reader.add_get_children("/missing").unwrap();
    reader.add_get_children("/cont").unwrap();
    for (i, result) in reader.commit().await.expect("multiRead").into_iter().enumerate() {
        match result {
            zk::MultiReadResult::Data { data, stat } => {
                assert_eq!(data, b"mm");
                log.stat("multiRead data", &stat);
            }
            other => log.note(&format!("multiRead {i}"), other),
        }
    }

    // getEphemerals: the caller's own, by path prefix (a string prefix, not a subtree).
    let mut mine = a.list_ephemerals("/").await.expect("getEphemerals");
    mine.sort();
    assert_eq!(mine, ["/cont/child/e", "/p/e", "/p/s-0000000003"]);
    assert_eq!(a.list_ephemerals("/p/s").await, Ok(vec!["/p/s-0000000003".to_owned()]));
    assert_eq!(a.list_ephemerals("/co").await, Ok(vec!["/cont/child/e".to_owned()]));
    let mut prefixed = a.list_ephemerals("/p").await.expect("getEphemerals /p");
    prefixed.sort();
    assert_eq!(prefixed, ["/p/e", "/p/s-0000000003"]);
    log.note("getEphemerals /p", &prefixed);
    assert_eq!(b.list_ephemerals("/").await, Ok(vec![]));
    log.note("descendants of /", a.count_descendants_number("/").await);

    // One-shot watches: data, child, exists (on a missing node) and a delete.
    let (_, _, data_watch) = a.get_and_watch_data("/p").await.expect("watch data");
    let (_, child_watch) = a.list_and_watch_children("/p").await.expect("watch children");
    let (missing, exists_watch) = a.check_and_watch_stat("/w").await.expect("watch exists");
    assert_eq!(missing, None);
    b.set_data("/p", b"changed", None).await.expect("set");
    b.create("/p/c", b"", &opts(zk::CreateMode::Persistent)).await.expect("create child");
    b.create("/w", b"", &opts(zk::CreateMode::Persistent)).await.expect("create /w");
    for (name, watch) in [("data", data_watch), ("child", child_watch), ("exists", exists_watch)] {
        let event = within(name, watch.changed()).await;
        log.note(&format!("{name} watch"), &event);
    }
    let (_, _, delete_watch) = a.get_and_watch_data("/w").await.expect("watch data");
    b.delete("/w", None).await.expect("delete /w");
    let event = within("delete watch", delete_watch.changed()).await;
    assert_eq!((event.event_type, event.path.as_str()), (zk::EventType::NodeDeleted, "/w"));
    log.note("delete watch", &event);

    // Persistent and recursive watches, on nodes that do not exist yet.
    let mut persistent = a.watch("/pw", zk::AddWatchMode::Persistent).await.expect("addWatch");
    let mut recursive = a.watch("/rw", zk::AddWatchMode::PersistentRecursive).await.expect("addWatch recursive");
    for (op, path) in [
        ("create", "/pw"),
        ("set", "/pw"),
        ("create", "/pw/c"),
        ("delete", "/pw/c"),
        ("delete", "/pw"),
        ("create", "/rw"),
        ("create", "/rw/x"),
        ("create", "/rw/x/y"),
        ("set", "/rw/x/y"),
        ("delete", "/rw/x/y"),
        ("create", "/pw"),
    ] {
        match op {
            "create" => b.create(path, b"", &opts(zk::CreateMode::Persistent)).await.map(drop),
            "set" => b.set_data(path, b"s", None).await.map(drop),
            _ => b.delete(path, None).await,
        }
        .unwrap_or_else(|e| panic!("{op} {path}: {e}"));
    }
    // The last operation on each watched tree ends its event sequence: the second NodeCreated of
    // /pw, the only NodeDeleted of /rw/x/y.
    for (name, watcher, last, count) in [
        ("persistent", &mut persistent, (zk::EventType::NodeCreated, "/pw"), 2),
        ("recursive", &mut recursive, (zk::EventType::NodeDeleted, "/rw/x/y"), 1),
    ] {
        let mut events = Vec::new();
        while events.iter().filter(|e: &&zk::WatchedEvent| (e.event_type, e.path.as_str()) == last).count() < count {
            match tokio::time::timeout(WAIT, watcher.changed()).await {
                Ok(event) => events.push(event),
                Err(_) => panic!("{name} watch: no {last:?} within {WAIT:?}; got {events:?}"),
            }
        }
        log.note(&format!("{name} watch events"), &events);
    }
    let (_, root) = a.get_children("/").await.expect("root");
    log.stat("chroot after all", &root);

    // Session expiry: a second client resumes a's session, then closes it; a sees it expire and
    // its ephemerals go. zookeeper-client reconnects at once when its connection drops, so a
    // would take the session straight back from the second client: a's gate stays shut (a's
    // reconnections are refused) until the close has landed.
    let (_, _, eph_watch) = b.get_and_watch_data("/p/e").await.expect("watch the ephemeral");
    let mut state = a.state_watcher();
    gate.shut();
    let thief = within("resume", zk::Client::connector().with_session(a.session().clone()).connect(&direct))
        .await
        .expect("resume a's session");
    assert_eq!(thief.session_id(), a.session_id());
    assert_eq!(within("a's disconnection", state.changed()).await, zk::SessionState::Disconnected);
    drop(thief);
    let event = within("the ephemeral's deletion", eph_watch.changed()).await;
    assert_eq!((event.event_type, event.path.as_str()), (zk::EventType::NodeDeleted, "/p/e"));
    gate.open();
    assert_eq!(within("a's session expiry", state.changed()).await, zk::SessionState::Expired);
    assert_eq!(a.get_data("/p").await.err(), Some(zk::Error::SessionExpired));
    assert_eq!(b.check_stat("/p/s-0000000003").await, Ok(None));
    assert_eq!(b.check_stat("/cont/child/e").await, Ok(None));
    log.note(
        "b after a's expiry",
        b.get_children("/p").await.map(|(mut c, _)| {
            c.sort();
            c
        }),
    );
    log.render()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_client_sees_the_same_as_on_zookeeper() {
    let real = tokio::task::spawn_blocking(|| corral_test_support::zookeeper().map(|zk| zk.addr()))
        .await
        .expect("find ZooKeeper");
    let chroot = corral_test_support::unique_chroot("zookeeper-client");
    let server = Server::start().await.expect("start");
    make_chroot(&server.addr().to_string(), &chroot).await;
    let runs = async {
        match real {
            Some(real) => {
                make_chroot(&real.to_string(), &chroot).await;
                let (embedded, real) = tokio::join!(scenario(server.addr(), &chroot), scenario(real, &chroot));
                (embedded, Some(real))
            }
            None => (scenario(server.addr(), &chroot).await, None),
        }
    };
    // Every wait for an event is bounded; this bounds the requests too.
    let (embedded, real) =
        tokio::time::timeout(Duration::from_secs(120), runs).await.expect("the scenarios finish within 120 s");
    if std::env::var(RECORD_ENV).is_ok_and(|v| v == "1") {
        let real = real.as_ref().expect("recording needs a real ZooKeeper");
        std::fs::write(RECORDED, real.join("\n") + "\n").expect("write the recording");
    }
    let recorded: Vec<String> = std::fs::read_to_string(RECORDED)
        .unwrap_or_else(|e| panic!("{RECORDED}: {e}"))
        .lines()
        .map(str::to_owned)
        .collect();
    if let Some(real) = real {
        assert_logs_eq("ZooKeeper", &embedded, &real);
    }
    assert_logs_eq("ZooKeeper 3.8.0, as recorded in tests/common/recorded/zookeeper-client.txt", &embedded, &recorded);
    server.shutdown().await;
}

/// The log of a run against ZooKeeper 3.8.0, so the embedded server is checked against it even
/// where no real ZooKeeper can be started. Rewritten from the real server's log when
/// `CORRAL_RECORD_ZOOKEEPER_CLIENT=1`.
const RECORDED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/recorded/zookeeper-client.txt");
const RECORD_ENV: &str = "CORRAL_RECORD_ZOOKEEPER_CLIENT";

fn assert_logs_eq(reference: &str, embedded: &[String], real: &[String]) {
    let n = embedded.len().max(real.len());
    let diff: Vec<String> = (0..n)
        .filter_map(|i| {
            let (e, r) = (embedded.get(i), real.get(i));
            (e != r).then(|| format!("embedded:  {e:?}\nreference: {r:?}"))
        })
        .collect();
    assert!(
        diff.is_empty(),
        "the embedded server and {reference} differ:\n{}\n\nwhole embedded log:\n{}",
        diff.join("\n"),
        embedded.join("\n")
    );
}
