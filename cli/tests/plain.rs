//! The plain commands and the error cases, run as a process against the embedded server.

mod common;

use std::io::{BufRead, BufReader};

use common::{client, closed_port, corral, corral_json, hex, interrupt, server, spawn};
use corral_recipes::CreateMode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_set_get_stat_ls_tree_delete() {
    let (_server, zk) = server().await;
    assert_eq!(corral(&zk, &["create", "-p", "/app/config/db", "url=x"]).stdout, "/app/config/db\n");
    let seq = corral_json(&zk, &["create", "--sequential", "/app/job-", "j"]);
    assert_eq!(seq["path"], "/app/job-0000000001");
    assert_eq!(seq["stat"]["kind"], "persistent");

    let set = corral_json(&zk, &["set", "/app/config/db", "url=y", "--version", "0"]);
    assert_eq!(set["stat"]["version"], 1);
    let stale = corral(&zk, &["set", "/app/config/db", "url=z", "--version", "0"]);
    assert_eq!(stale.code, 1, "{stale:?}");
    assert!(stale.stderr.contains("version mismatch"), "{stale:?}");

    assert_eq!(corral(&zk, &["get", "/app/config/db"]).stdout, "url=y", "raw bytes, no newline off a terminal");
    let got = corral_json(&zk, &["get", "/app/config/db"]);
    assert_eq!((got["data"].as_str(), got["data_hex"].as_str()), (Some("url=y"), Some("75726c3d79")));

    let stat = corral_json(&zk, &["stat", "/app/config/db"]);
    assert_eq!(
        (stat["path"].as_str(), stat["version"].as_i64(), stat["data_length"].as_i64()),
        (Some("/app/config/db"), Some(1), Some(5))
    );
    assert!(stat["ephemeral_owner"].is_null());
    let text = corral(&zk, &["stat", "/app/config/db"]).stdout;
    assert!(text.lines().any(|l| l.starts_with("version:") && l.ends_with(" 1")), "{text}");

    // An ephemeral node of another session, for the tree's marker.
    let owner = client(&zk).await;
    owner.create("/app/worker", "w1", CreateMode::Ephemeral).await.unwrap();
    let session = hex(owner.session_id());

    assert_eq!(
        corral_json(&zk, &["ls", "/app"])["children"],
        serde_json::json!(["config", "job-0000000001", "worker"])
    );
    assert_eq!(corral(&zk, &["ls", "/app"]).stdout, "config\njob-0000000001\nworker\n");
    let all = corral_json(&zk, &["ls", "-R", "/app"]);
    assert_eq!(
        all["nodes"],
        serde_json::json!(["/app", "/app/config", "/app/config/db", "/app/job-0000000001", "/app/worker"])
    );

    let tree = corral_json(&zk, &["tree", "/app"]);
    assert_eq!((tree["node_count"].as_u64(), tree["ephemeral_count"].as_u64()), (Some(5), Some(1)));
    let worker = tree["nodes"].as_array().unwrap().iter().find(|n| n["path"] == "/app/worker").unwrap();
    assert_eq!(
        (worker["kind"].as_str(), worker["ephemeral_owner"].as_str()),
        (Some("ephemeral"), Some(session.as_str()))
    );
    let text = corral(&zk, &["tree", "/app"]).stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "/app");
    assert_eq!(lines[1], "├── config");
    assert!(lines[2].starts_with("│   └── db"), "{text}");
    assert!(lines[4].starts_with("└── worker") && lines[4].contains(&format!("[ephemeral {session}]")), "{text}");
    assert_eq!(lines[5], "5 nodes, 1 ephemeral");

    let acl = corral_json(&zk, &["acl", "/app"]);
    assert_eq!(acl["acl"], serde_json::json!([{"scheme": "world", "id": "anyone", "perms": "cdrwa"}]));

    let not_empty = corral(&zk, &["delete", "/app"]);
    assert_eq!(not_empty.code, 1);
    assert!(not_empty.stderr.contains("has children") && not_empty.stderr.contains("delete -R"), "{not_empty:?}");
    assert_eq!(corral_json(&zk, &["delete", "-R", "/app"])["deleted"], 5);
    assert!(owner.exists("/app").await.unwrap().is_none());
    let refused = corral(&zk, &["delete", "-R", "/"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    owner.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_nodes_bad_paths_and_refused_connections_are_clear() {
    let (_server, zk) = server().await;
    for args in [["get", "/missing"], ["stat", "/missing"], ["ls", "/missing"], ["locks", "/missing"]] {
        let run = corral(&zk, &args);
        assert_eq!(run.code, 3, "{run:?}");
        assert_eq!(run.stderr.trim(), "error: /missing: no such node", "{run:?}");
        assert!(run.stdout.is_empty());
    }
    let bad = corral(&zk, &["get", "no-slash"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("invalid path"), "{bad:?}");
    let trailing = corral(&zk, &["ls", "/a/"]);
    assert_eq!(trailing.code, 2, "{trailing:?}");

    let port = closed_port();
    let refused = corral(&format!("127.0.0.1:{port}"), &["ls", "/"]);
    assert_eq!(refused.code, 4, "{refused:?}");
    assert!(refused.stderr.contains(&format!("cannot connect to 127.0.0.1:{port}: connection refused")), "{refused:?}");
    let bad_zk = corral("host:notaport", &["ls", "/"]);
    assert_eq!(bad_zk.code, 2, "{bad_zk:?}");
    assert!(bad_zk.stderr.contains("invalid connect string"), "{bad_zk:?}");
    let usage = corral(&zk, &["create", "/x", "--container", "--ephemeral"]);
    assert_eq!(usage.code, 2, "clap's usage error: {usage:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_events_until_interrupted() {
    let (_server, zk) = server().await;
    let writer = client(&zk).await;
    writer.create("/jobs", "", CreateMode::Persistent).await.unwrap();
    let mut child = spawn(&zk, &["--json", "watch", "--recursive", "/jobs"]);
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.starts_with("watching /jobs"), "{line}");

    writer.create("/jobs/j1", "", CreateMode::Persistent).await.unwrap();
    writer.set_data("/jobs/j1", "done", None).await.unwrap();
    writer.delete("/jobs/j1", None).await.unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut events = Vec::new();
    for _ in 0..3 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        events.push((event["event"].as_str().unwrap().to_owned(), event["path"].as_str().unwrap().to_owned()));
    }
    let expected = ["node_created", "node_data_changed", "node_deleted"].map(|e| (e.to_owned(), "/jobs/j1".to_owned()));
    assert_eq!(events, expected);
    interrupt(&child);
    assert!(child.wait().unwrap().success(), "Ctrl-C ends a watch normally");
    writer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ephemeral_node_lives_until_interrupted() {
    let (_server, zk) = server().await;
    let mut child = spawn(&zk, &["--json", "create", "--ephemeral", "/me", "here"]);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let created: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(created["path"], "/me");
    let observer = client(&zk).await;
    let stat = observer.exists("/me").await.unwrap().expect("held while the command runs");
    assert_eq!(Some(hex(stat.ephemeral_owner).as_str()), created["session_id"].as_str());
    interrupt(&child);
    assert!(child.wait().unwrap().success());
    assert!(observer.exists("/me").await.unwrap().is_none(), "the session was closed on Ctrl-C");
    observer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_credentials_open_protected_nodes() {
    let (_server, zk) = server().await;
    let owner = corral_recipes::Client::builder(zk.clone()).digest_auth("app", "secret").connect().await.unwrap();
    let private =
        corral_recipes::CreateOptions::new(CreateMode::Persistent).with_acl(corral_recipes::Acl::creator_all());
    owner.create("/private", "s3cr3t", private).await.unwrap();

    let refused = corral(&zk, &["get", "/private"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("/private: not authorized"), "{refused:?}");
    assert_eq!(corral(&zk, &["--auth", "digest:app:secret", "get", "/private"]).stdout, "s3cr3t");
    let acl = corral_json(&zk, &["--auth", "digest:app:secret", "acl", "/private"]);
    assert_eq!((acl["acl"][0]["scheme"].as_str(), acl["acl"][0]["perms"].as_str()), (Some("digest"), Some("cdrwa")));
    assert_eq!(corral(&zk, &["--auth", "nocolon", "get", "/private"]).code, 2);
    owner.close().await;
}
