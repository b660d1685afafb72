//! kazoo 2.11 against a durable server that restarts: what it wrote is there afterwards, Stat
//! included, and its ephemeral node is still its session's (the session was restored).

use std::time::Duration;

use corral_server::Server;
use corral_server::testing::TestingServer;
use corral_test_support::python::{KazooPeer, json_i64, kazoo_python};

/// One command to the peer, off the runtime's threads (the peer answers in its own time).
fn ask(peer: &mut KazooPeer, command: &str) -> String {
    let answer = tokio::task::block_in_place(|| peer.request(command)).expect("the kazoo peer answers");
    assert!(!answer.contains("\"error\""), "{command} -> {answer}");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kazoo_reads_back_its_data_and_its_ephemeral_after_a_restart() {
    let Some(python) = kazoo_python() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    // A session long enough to outlive the restart and the second peer's start.
    let builder = Server::builder().data_dir(dir.path()).max_session_timeout(Duration::from_secs(60));
    let mut server = TestingServer::with_builder(builder).await.expect("a durable server");
    let mut writer = KazooPeer::start(python, &server.connect_string()).expect("kazoo peer");
    ask(&mut writer, r#"{"op":"create","path":"/durable/kept","data":"written before"}"#);
    ask(&mut writer, r#"{"op":"create","path":"/durable/mine","data":"ephemeral","ephemeral":true}"#);
    let before = ask(&mut writer, r#"{"op":"get","path":"/durable/kept"}"#);
    let owner = writer.session_id;

    server.restart().await.expect("restart from the data directory");

    // A kazoo client that was never connected before the restart reads what the first wrote.
    let mut reader = KazooPeer::start(python, &server.connect_string()).expect("kazoo peer after the restart");
    let after = ask(&mut reader, r#"{"op":"get","path":"/durable/kept"}"#);
    assert_eq!(after, before, "data and Stat as before the restart");
    assert!(after.contains("\"written before\""), "{after}");
    let mine = ask(&mut reader, r#"{"op":"get","path":"/durable/mine"}"#);
    assert_eq!(json_i64(&mine, "ephemeral_owner"), Some(owner), "the ephemeral kept its session: {mine}");
    assert!(server.sessions().contains(&owner), "the writer's session was restored");
    drop((writer, reader));
    server.close().await;
}
