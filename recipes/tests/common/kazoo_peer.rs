//! Driving a kazoo peer from async tests: requests run off the runtime's threads, answers are
//! read as JSON.

use corral_test_support::python::KazooPeer;

/// Runs a blocking peer request off the runtime's threads; returns the peer with the answer,
/// parsed (panics on a peer that is gone or an answer that is no JSON).
pub async fn ask(mut peer: KazooPeer, command: serde_json::Value) -> (KazooPeer, serde_json::Value) {
    tokio::task::spawn_blocking(move || {
        let answer = peer.request(&command.to_string()).expect("the kazoo peer answers");
        let parsed: serde_json::Value = serde_json::from_str(&answer).expect("the peer answers JSON");
        (peer, parsed)
    })
    .await
    .unwrap()
}

/// As [`ask`], and fails the test if the peer answered with an error.
pub async fn ok(peer: KazooPeer, command: serde_json::Value) -> (KazooPeer, serde_json::Value) {
    let (peer, answer) = ask(peer, command.clone()).await;
    assert!(answer.get("error").is_none(), "kazoo failed {command}: {answer}");
    (peer, answer)
}

/// Whether `name` is a uuid4 hex (32 lowercase hex digits), as kazoo names its nodes.
pub fn is_uuid_hex(name: &str) -> bool {
    name.len() == 32 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
