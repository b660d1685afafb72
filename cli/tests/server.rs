//! `health` and `sessions`: every host on its own, four-letter words, whitelist errors.

mod common;

use common::{client, closed_port, corral, corral_json, hex, server};
use corral_server::Server;
use corral_server::testing::TestingServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_every_host_separately() {
    let (_server, zk) = server().await;
    let session = client(&zk).await;
    let doc = corral_json(&zk, &["health"]);
    assert_eq!(doc["healthy"], true);
    let host = &doc["hosts"][0];
    assert_eq!(
        (host["status"].as_str(), host["ruok"].as_bool(), host["mode"].as_str()),
        (Some("ok"), Some(true), Some("standalone"))
    );
    assert!(host["version"].as_str().unwrap().starts_with("3.8.0"), "{host}");
    assert!(host["latency_ms"].as_f64().unwrap() >= 0.0);
    assert!(host["connections"].as_u64().unwrap() >= 1, "our session's connection: {host}");
    assert!(host["znode_count"].as_u64().unwrap() >= 2);
    assert_eq!((host["outstanding_requests"].as_u64(), host["watch_count"].as_u64()), (Some(0), Some(0)));
    assert_eq!(host["words_not_allowed"], serde_json::json!([]));

    // One host down: reported on its own line, within the timeout, and the exit code says so.
    let down = format!("127.0.0.1:{}", closed_port());
    let both = format!("{zk},{down}");
    let run = corral(&both, &["--json", "health"]);
    assert_eq!(run.code, 1, "{run:?}");
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["hosts"][0]["status"], "ok");
    assert_eq!(
        (doc["hosts"][1]["host"].as_str(), doc["hosts"][1]["status"].as_str()),
        (Some(down.as_str()), Some("unreachable"))
    );
    assert_eq!(doc["hosts"][1]["error"], "connection refused");

    let text = corral(&both, &["health"]).stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("HOST") && lines[0].contains("STATUS") && lines[0].contains("WATCHES"), "{text}");
    let status_column = lines[0].find("STATUS").unwrap();
    assert_eq!(&lines[1][status_column..status_column + 2], "ok", "aligned: {text}");
    assert_eq!(&lines[2][status_column..status_column + 11], "unreachable", "aligned: {text}");
    assert_eq!(lines[3], format!("error: {down}: connection refused"));
    assert_eq!(corral(&down, &["health"]).code, 4, "no host reachable");
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_lists_connected_clients() {
    let (_server, zk) = server().await;
    let session = client(&zk).await;
    session.create("/mine", "", corral_recipes::CreateMode::Ephemeral).await.unwrap();
    let doc = corral_json(&zk, &["sessions"]);
    let sessions = doc["hosts"][0]["sessions"].as_array().unwrap();
    let ours = sessions.iter().find(|s| s["session_id"].as_str() == Some(hex(session.session_id()).as_str()));
    let ours = ours.unwrap_or_else(|| panic!("our session in {doc}"));
    assert!(ours["client_address"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(ours["timeout_ms"].as_i64().unwrap() > 0);
    assert_eq!(ours["ephemerals"], serde_json::json!(["/mine"]), "from dump: {ours}");
    let text = corral(&zk, &["sessions"]).stdout;
    assert!(text.starts_with("HOST") && text.contains(&hex(session.session_id())), "{text}");
    assert!(text.trim_end().ends_with("1 sessions on 1 hosts"), "{text}");
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn words_outside_the_whitelist_name_the_missing_entry() {
    // ZooKeeper's default: only srvr.
    let server = TestingServer::with_builder(Server::builder().four_letter_words(["srvr"])).await.unwrap();
    let zk = server.connect_string();
    let run = corral(&zk, &["sessions"]);
    assert_eq!(run.code, 5, "{run:?}");
    assert!(run.stderr.contains("does not allow the four-letter word `cons`"), "{run:?}");
    assert!(run.stderr.contains("add `cons` to 4lw.commands.whitelist"), "{run:?}");

    // health still works from srvr, and says what it could not ask.
    let doc = corral_json(&zk, &["health"]);
    let host = &doc["hosts"][0];
    assert_eq!((host["status"].as_str(), host["mode"].as_str()), (Some("ok"), Some("standalone")));
    assert!(host["ruok"].is_null() && host["watch_count"].is_null(), "{host}");
    assert_eq!(host["words_not_allowed"], serde_json::json!(["ruok", "mntr"]));
    let text = corral(&zk, &["health"]).stdout;
    assert!(text.contains("not allowed: ruok,mntr (add them to 4lw.commands.whitelist"), "{text}");

    // Recipe views do without client addresses.
    let owner = client(&zk).await;
    owner.create("/l", "", corral_recipes::CreateMode::Persistent).await.unwrap();
    owner.create("/l/lock-", "", corral_recipes::CreateMode::EphemeralSequential).await.unwrap();
    let doc = corral_json(&zk, &["locks", "/l"]);
    assert!(doc["contenders"][0]["client_address"].is_null());
    assert_eq!(doc["contenders"][0]["role"], "holder");
    owner.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_answers_nothing_is_reported_within_the_timeout() {
    let (_up, up) = server().await;
    let hung = TestingServer::start().await.unwrap();
    hung.pause(); // accepts connections, answers nothing
    let both = format!("{up},{}", hung.connect_string());
    let started = std::time::Instant::now();
    let run = common::command(&both, &["--json", "--timeout", "300ms", "health"]).output().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(run.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(doc["hosts"][0]["status"], "ok");
    assert_eq!(doc["hosts"][1]["status"], "unreachable");
    assert_eq!(doc["hosts"][1]["error"], "no answer to `ruok` within 300ms");
    assert!(elapsed < std::time::Duration::from_secs(5), "bounded by the timeout, not by the hung host: {elapsed:?}");
}
