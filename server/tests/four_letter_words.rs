//! Four-letter words on the client port, in ZooKeeper's text formats.

mod common;

use common::Raw;
use corral_server::Server;

#[tokio::test]
async fn ruok_isro_srvr_conf() {
    let server = Server::start().await.expect("start");
    assert_eq!(common::word(server.addr(), b"ruok").await, "imok");
    assert_eq!(common::word(server.addr(), b"isro").await, "rw");
    let srvr = common::word(server.addr(), b"srvr").await;
    let lines: Vec<&str> = srvr.lines().collect();
    assert!(lines[0].starts_with("Zookeeper version: 3.8.0-corral-"), "{srvr}");
    assert!(lines[1].starts_with("Latency min/avg/max: "));
    assert!(lines.contains(&"Mode: standalone"));
    assert!(lines.contains(&"Node count: 5"), "a fresh server reports 5 nodes: {srvr}");
    assert!(lines.contains(&"Zxid: 0x0"));
    let conf = common::word(server.addr(), b"conf").await;
    assert!(conf.starts_with(&format!("clientPort={}\n", server.addr().port())), "{conf}");
    assert!(conf.contains("tickTime=2000\n"));
    assert!(conf.contains("minSessionTimeout=4000\nmaxSessionTimeout=40000\n"));
    server.shutdown().await;
}

#[tokio::test]
async fn stat_cons_wchs_mntr_dump_envi_reflect_the_server() {
    let server = Server::start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    c.create("/e", b"abc", 1).await.expect("create");
    c.exists("/e", true).await.expect("watch");
    c.exists("/other", true).await.expect_err("missing");

    let stat = common::word(server.addr(), b"stat").await;
    assert!(stat.contains("\nClients:\n /127.0.0.1:"), "{stat}");
    assert!(stat.contains("[0](queued=0,recved=1,sent=0)\n"), "the stat connection itself: {stat}");
    assert!(stat.contains("Zxid: 0x2\n"), "createSession + create: {stat}");
    assert!(stat.contains("Node count: 6\n"));

    let cons = common::word(server.addr(), b"cons").await;
    let session = format!("sid={:#x},lop=EXIS,", c.session_id);
    assert!(cons.contains(&session), "{cons}");
    assert!(cons.contains(",to=30000,"), "{cons}");

    assert_eq!(common::word(server.addr(), b"wchs").await, "1 connections watching 2 paths\nTotal watches:2\n");

    let mntr = common::word(server.addr(), b"mntr").await;
    for line in mntr.lines() {
        assert!(line.starts_with("zk_") && line.contains('\t'), "{line}");
    }
    assert!(mntr.contains("zk_server_state\tstandalone\n"));
    assert!(mntr.contains("zk_ephemerals_count\t1\n"));
    assert!(mntr.contains("zk_znode_count\t6\n"));
    assert!(mntr.contains("zk_global_sessions\t1\n"));

    let dump = common::word(server.addr(), b"dump").await;
    assert!(dump.starts_with("SessionTracker dump:\nSession Sets (1)/(1):\n1 expire at "), "{dump}");
    let owner = format!("Sessions with Ephemerals (1):\n{:#x}:\n\t/e\n", c.session_id);
    assert!(dump.contains(&owner), "{dump}");
    assert!(dump.contains("Connections dump:\n"));

    assert!(common::word(server.addr(), b"envi").await.starts_with("Environment:\nzookeeper.version="));
    server.shutdown().await;
}

#[tokio::test]
async fn whitelist_and_unknown_words() {
    let server = Server::builder().four_letter_words(["srvr"]).start().await.expect("start");
    assert_eq!(
        common::word(server.addr(), b"ruok").await,
        "ruok is not executed because it is not in the whitelist.\n"
    );
    assert!(common::word(server.addr(), b"srvr").await.contains("Mode: standalone"));
    assert_eq!(common::word(server.addr(), b"xyzw").await, "", "garbage first bytes: closed, no output");
    server.shutdown().await;
}
