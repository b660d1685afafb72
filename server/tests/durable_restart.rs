//! A server with a data directory, restarted: the tree, the zxid, every Stat field and the
//! sessions come back exactly; a bad snapshot stops the start; a bad log tail is cut.

use std::path::{Path, PathBuf};
use std::time::Duration;

use corral_server::testing::TestingServer;
use corral_server::{Error, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zookeeper_client::{Acl, Acls, AuthId, Client, CreateMode, EventType, Permission, SessionState};

const WAIT: Duration = Duration::from_secs(20);

fn open() -> Acls<'static> {
    Acls::anyone_all()
}

/// Every node under `/` with its data, Stat and ACL, one line each, in path order.
async fn dump(client: &Client) -> Vec<String> {
    let mut lines = Vec::new();
    let mut stack = vec!["/".to_owned()];
    while let Some(path) = stack.pop() {
        let (data, stat) = client.get_data(&path).await.expect("get_data");
        let (acl, _) = client.get_acl(&path).await.expect("get_acl");
        let (mut children, _) = client.get_children(&path).await.expect("get_children");
        lines.push(format!("{path} {data:?} {stat:?} {acl:?}"));
        children.sort();
        for child in children.into_iter().rev() {
            stack.push(if path == "/" { format!("/{child}") } else { format!("{path}/{child}") });
        }
    }
    lines.sort();
    lines
}

/// The zxid `srvr` reports.
async fn zxid(addr: std::net::SocketAddr) -> i64 {
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    socket.write_all(b"srvr").await.expect("write");
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.expect("read");
    let hex = answer.lines().find_map(|l| l.strip_prefix("Zxid: 0x")).expect("Zxid line");
    i64::from_str_radix(hex.trim(), 16).expect("hex zxid")
}

async fn until_connected(client: &Client) {
    let mut state = client.state_watcher();
    tokio::time::timeout(WAIT, async {
        loop {
            match client.state() {
                SessionState::SyncConnected => break,
                SessionState::Expired | SessionState::Closed | SessionState::AuthFailed => {
                    panic!("session lost: {:?}", client.state())
                }
                _ => {}
            }
            state.changed().await;
        }
    })
    .await
    .expect("reconnected in time");
}

/// Every kind of write, failed ones included.
async fn write_everything(client: &Client) {
    let persistent = CreateMode::Persistent.with_acls(open());
    client.create("/app", b"root of it", &persistent).await.expect("create");
    for i in 0..5 {
        client
            .create("/app/seq-", format!("s{i}").as_bytes(), &CreateMode::PersistentSequential.with_acls(open()))
            .await
            .expect("sequential");
    }
    client.delete("/app/seq-0000000001", None).await.expect("delete");
    client.create("/app/eph", b"mine", &CreateMode::Ephemeral.with_acls(open())).await.expect("ephemeral");
    client.create("/jobs", b"", &CreateMode::Container.with_acls(open())).await.expect("container");
    client.create("/jobs/j1", b"job", &persistent).await.expect("job");
    let ttl = CreateMode::Persistent.with_acls(open()).with_ttl(Duration::from_secs(3600));
    client.create("/ttl", b"t", &ttl).await.expect("ttl");
    for v in 0..4 {
        client.set_data("/app", format!("v{v}").as_bytes(), None).await.expect("set_data");
    }
    let read_only = [Acl::new(Permission::READ | Permission::ADMIN, AuthId::new("world", "anyone"))];
    client.set_acl("/ttl", &read_only, None).await.expect("set_acl");
    assert!(client.create("/app", b"again", &persistent).await.is_err(), "NodeExists consumes a zxid");
    assert!(client.set_data("/app", b"x", Some(99)).await.is_err(), "BadVersion too");
    let mut multi = client.new_multi_writer();
    multi.add_create("/m1", b"1", &persistent).expect("op");
    multi.add_create("/m2", b"2", &persistent).expect("op");
    multi.add_set_data("/app", b"from multi", None).expect("op");
    multi.commit().await.expect("multi");
    let mut failing = client.new_multi_writer();
    failing.add_create("/m3", b"3", &persistent).expect("op");
    failing.add_delete("/absent", None).expect("op");
    assert!(failing.commit().await.is_err(), "a failed multi changes nothing but the zxid");
}

fn version_dir(dir: &Path) -> PathBuf {
    dir.join("version-2")
}

/// The files of the version directory named `<prefix>.<hex>`, by zxid.
fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<(i64, PathBuf)> = std::fs::read_dir(version_dir(dir))
        .expect("version-2")
        .filter_map(|e| {
            let e = e.expect("entry");
            let name = e.file_name().into_string().ok()?;
            let hex = name.strip_prefix(prefix)?.strip_prefix('.')?;
            Some((i64::from_str_radix(hex, 16).ok()?, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

#[tokio::test]
async fn restart_restores_tree_zxid_stats_and_sessions_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A snapshot every 7 transactions: the restart reads a snapshot and replays a log.
    let builder = Server::builder().data_dir(dir.path()).snap_count(7);
    let mut server = TestingServer::with_builder(builder).await.expect("start");
    let client = Client::connect(&server.connect_string()).await.expect("connect");
    write_everything(&client).await;
    let before = dump(&client).await;
    let zxid_before = zxid(server.addr()).await;
    let sessions = server.sessions();
    assert!(files(dir.path(), "snapshot").len() >= 2, "snapshots were taken");

    server.restart().await.expect("restart");
    until_connected(&client).await;
    assert_eq!(server.sessions(), sessions, "the session came back");
    assert_eq!(dump(&client).await, before);
    assert_eq!(zxid(server.addr()).await, zxid_before);
    assert!(client.check_stat("/app/eph").await.expect("exists").is_some(), "the ephemeral is kept");
    // The next transaction takes the next zxid.
    let (stat, _) = client.create("/after", b"", &CreateMode::Persistent.with_acls(open())).await.expect("create");
    assert_eq!(stat.czxid, zxid_before + 1);

    // The same from a server that never ran in this process's memory: a fresh start on the
    // directory, after a clean shutdown. (The ephemeral is deleted first: whether the client's
    // session is closed before the shutdown is up to its background task.)
    client.delete("/app/eph", None).await.expect("delete");
    let after = dump(&client).await;
    drop(client);
    let addr = server.addr();
    server.close().await;
    let again = Server::builder().data_dir(dir.path()).port(addr.port()).start().await.expect("start again");
    let client = Client::connect(&again.connect_string()).await.expect("connect");
    assert_eq!(dump(&client).await, after);
    again.shutdown().await;
}

#[tokio::test]
async fn a_session_that_comes_back_keeps_its_ephemerals_the_others_lose_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let builder = Server::builder().data_dir(dir.path()).tick_time(Duration::from_millis(250));
    let mut server = TestingServer::with_builder(builder).await.expect("start");
    let connect = server.connect_string();
    let timeout = Duration::from_millis(4000);
    let keeper = Client::connector().with_session_timeout(timeout).connect(&connect).await.expect("keeper");
    let leaver =
        Client::connector().with_session_timeout(timeout).with_detached().connect(&connect).await.expect("leaver");
    let ephemeral = CreateMode::Ephemeral.with_acls(open());
    keeper.create("/keep", b"k", &ephemeral).await.expect("create");
    leaver.create("/leave", b"l", &ephemeral).await.expect("create");
    let (keeper_id, leaver_id) = (keeper.session_id().0, leaver.session_id().0);
    drop(leaver); // detached: the session is not closed, only left

    server.restart().await.expect("restart");
    assert_eq!(
        server.sessions(),
        [keeper_id, leaver_id]
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    until_connected(&keeper).await;
    assert_eq!(keeper.session_id().0, keeper_id, "the same session, resumed after the restart");
    let (stat, watcher) = keeper.check_and_watch_stat("/leave").await.expect("watch");
    assert_eq!(stat.map(|s| s.ephemeral_owner), Some(leaver_id), "restored with its owner");
    // The leaver does not come back: after its timeout its ephemeral goes, and the watch fires.
    let event = tokio::time::timeout(WAIT, watcher.changed()).await.expect("NodeDeleted in time");
    assert_eq!(event.event_type, EventType::NodeDeleted);
    assert_eq!(event.path, "/leave");
    assert_eq!(server.sessions(), [keeper_id]);
    assert_eq!(keeper.get_data("/keep").await.expect("kept").0, b"k");
    server.close().await;
}

#[tokio::test]
async fn a_corrupt_snapshot_stops_the_start_and_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::builder().data_dir(dir.path()).snap_count(5).start().await.expect("start");
    let client = Client::connect(&server.connect_string()).await.expect("connect");
    for i in 0..12 {
        client.create(&format!("/n{i}"), b"data", &CreateMode::Persistent.with_acls(open())).await.expect("create");
    }
    drop(client);
    server.shutdown().await;
    let newest = files(dir.path(), "snapshot").pop().expect("a snapshot");
    let mut bytes = std::fs::read(&newest).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&newest, &bytes).expect("write");
    match Server::builder().data_dir(dir.path()).start().await {
        Err(Error::DataDir { path, message }) => {
            assert_eq!(path, newest);
            assert!(message.contains("corrupt snapshot"), "{message}");
        }
        other => panic!("started on a corrupt snapshot: {other:?}"),
    }
    let text = Server::builder().data_dir(dir.path()).start().await.expect_err("refused").to_string();
    assert!(text.contains(&newest.display().to_string()), "{text}");
}

#[tokio::test]
async fn a_second_server_on_the_same_data_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Server::builder().data_dir(dir.path()).start().await.expect("start");
    let client = Client::connect(&first.connect_string()).await.expect("connect");
    client.create("/first", b"one", &CreateMode::Persistent.with_acls(open())).await.expect("create");
    match Server::builder().data_dir(dir.path()).start().await {
        Err(Error::DataDir { path, message }) => {
            assert_eq!(path, dir.path());
            assert!(message.contains("in use by another server"), "{message}");
        }
        other => panic!("a second server started on a directory in use: {other:?}"),
    }
    // The refusal changed nothing: the first server goes on, and its data is whole after it stops.
    client.create("/second", b"two", &CreateMode::Persistent.with_acls(open())).await.expect("create after");
    drop(client);
    first.shutdown().await;
    let again = Server::builder().data_dir(dir.path()).start().await.expect("start once the first is gone");
    let client = Client::connect(&again.connect_string()).await.expect("connect again");
    assert_eq!(client.get_data("/first").await.expect("first").0, b"one");
    assert_eq!(client.get_data("/second").await.expect("second").0, b"two");
    drop(client);
    again.shutdown().await;
}

/// The offset just past the last entry of a log file (entries end with a non-zero byte; the
/// preallocated rest is zeros).
fn end_of_entries(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1)
}

async fn written_then_closed(dir: &Path, count: usize) {
    let server = Server::builder().data_dir(dir).start().await.expect("start");
    let client = Client::connect(&server.connect_string()).await.expect("connect");
    for i in 0..count {
        client.create(&format!("/n{i}"), b"data", &CreateMode::Persistent.with_acls(open())).await.expect("create");
    }
    // A last write for the corruption tests to destroy (or the session's close, if the client
    // gets it in before the shutdown).
    client.create("/sacrificed", b"", &CreateMode::Persistent.with_acls(open())).await.expect("create");
    drop(client);
    server.shutdown().await;
}

async fn present(dir: &Path, count: usize) -> Vec<bool> {
    let server = Server::builder().data_dir(dir).start().await.expect("starts despite the bad tail");
    let client = Client::connect(&server.connect_string()).await.expect("connect");
    let mut found = Vec::new();
    for i in 0..count {
        found.push(client.check_stat(&format!("/n{i}")).await.expect("exists").is_some());
    }
    drop(client);
    server.shutdown().await;
    found
}

#[tokio::test]
async fn a_torn_log_tail_is_cut_and_everything_before_it_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    written_then_closed(dir.path(), 10).await;
    let log = files(dir.path(), "log").pop().expect("a log");
    let mut bytes = std::fs::read(&log).expect("read");
    let end = end_of_entries(&bytes);
    // Half an entry after the last one: a checksum and a length, and a few bytes of payload.
    let torn = [0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 40, 1, 2, 3];
    bytes[end..end + torn.len()].copy_from_slice(&torn);
    std::fs::write(&log, &bytes).expect("write");
    assert_eq!(present(dir.path(), 10).await, [true; 10]);
    assert_eq!(std::fs::metadata(&log).expect("log").len(), end as u64, "cut at the last good entry");
    // And it starts again cleanly, with nothing lost since.
    assert_eq!(present(dir.path(), 10).await, [true; 10]);
}

#[tokio::test]
async fn a_corrupt_last_entry_is_dropped_and_the_rest_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    written_then_closed(dir.path(), 10).await;
    let log = files(dir.path(), "log").pop().expect("a log");
    let mut bytes = std::fs::read(&log).expect("read");
    let end = end_of_entries(&bytes);
    // A byte inside the payload of the last entry.
    bytes[end - 3] ^= 0x40;
    std::fs::write(&log, &bytes).expect("write");
    assert_eq!(present(dir.path(), 10).await, [true; 10]);
    assert!(std::fs::metadata(&log).expect("log").len() < end as u64);
}
