//! kazoo 2.11 (Python, from PyPI in a venv the tests make) and Corral's `kazoo` layouts on the
//! same lock paths, both directions, against the embedded server and a real ZooKeeper.

mod common;

use std::time::Duration;

use corral_recipes::kazoo;
use corral_test_support::python::{KazooPeer, kazoo_python};

/// Runs a blocking peer request off the runtime's threads; returns the peer with the answer.
async fn request(mut peer: KazooPeer, command: String) -> (KazooPeer, String) {
    tokio::task::spawn_blocking(move || {
        let answer = peer.request(&command).expect("the kazoo peer answers");
        (peer, answer)
    })
    .await
    .unwrap()
}

fn is_kazoo_name(name: &str, node_name: &str) -> bool {
    let Some((hex, seq)) = name.split_once(node_name) else { return false };
    hex.len() == 32
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && seq.len() == 10
        && seq.bytes().all(|b| b.is_ascii_digit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_lock_shared_with_kazoo_both_ways() {
    let Some(python) = kazoo_python() else { return };
    for env in common::envs("kazoo-lock").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
        let peer = KazooPeer::start(python, &env.connect_string()).expect("kazoo peer");

        // kazoo holds: we wait; it releases: we hold.
        let (peer, answer) =
            request(peer, r#"{"op":"lock","kind":"Lock","path":"/locks/a","id":"py","name":"a"}"#.into()).await;
        assert!(answer.contains(r#""acquired": true"#), "{answer}");
        let ours = kazoo::lock(&fw, "/locks/a", "rust");
        let waiting = tokio::spawn(async move { ours.acquire_timeout(Duration::from_secs(20)).await });
        common::eventually("our contender queued", || async {
            kazoo::contenders(&fw, "/locks/a").await.unwrap() == ["py", "rust"]
        })
        .await;
        // Ours waits on a watch, and nothing the server did so far woke it.
        common::settled(&fw.client(), 1).await;
        assert!(!waiting.is_finished(), "both held the lock");
        let (peer, answer) = request(peer, r#"{"op":"contenders","path":"/locks/a"}"#.into()).await;
        assert!(answer.contains(r#"["py", "rust"]"#), "kazoo sees our contender: {answer}");
        let (peer, _) = request(peer, r#"{"op":"release","name":"a"}"#.into()).await;
        let guard = waiting.await.unwrap().expect("we hold once kazoo released");
        let name = guard.path().rsplit('/').next().unwrap().to_owned();
        assert!(is_kazoo_name(&name, kazoo::LOCK_NODE_NAME), "kazoo's node name: {name}");

        // We hold: kazoo waits; we release: kazoo holds.
        let (peer, answer) =
            request(peer, r#"{"op":"lock","kind":"Lock","path":"/locks/a","id":"py","name":"b","timeout":0.3}"#.into())
                .await;
        assert!(answer.contains(r#""acquired": false"#), "both held the lock: {answer}");
        let kazoo_waits = tokio::spawn(request(
            peer,
            r#"{"op":"lock","kind":"Lock","path":"/locks/a","id":"py","name":"c","timeout":20}"#.into(),
        ));
        common::eventually("kazoo's contender queued", || async {
            kazoo::contenders(&fw, "/locks/a").await.unwrap() == ["rust", "py"]
        })
        .await;
        guard.release().await.unwrap();
        let (peer, answer) = kazoo_waits.await.unwrap();
        assert!(answer.contains(r#""acquired": true"#), "{answer}");
        let (peer, _) = request(peer, r#"{"op":"release","name":"c"}"#.into()).await;
        drop(peer);
        fw.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_and_write_locks_shared_with_kazoo() {
    let Some(python) = kazoo_python() else { return };
    for env in common::envs("kazoo-rw").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
        let peer = KazooPeer::start(python, &env.connect_string()).expect("kazoo peer");

        // A kazoo reader and ours hold together; our writer waits for both.
        let (peer, answer) =
            request(peer, r#"{"op":"lock","kind":"ReadLock","path":"/rw","id":"py-reader","name":"r"}"#.into()).await;
        assert!(answer.contains(r#""acquired": true"#), "{answer}");
        let reader = kazoo::read_lock(&fw, "/rw", "rust-reader")
            .acquire_timeout(Duration::from_secs(10))
            .await
            .expect("readers share the lock");
        assert!(is_kazoo_name(reader.path().rsplit('/').next().unwrap(), kazoo::READ_LOCK_NODE_NAME));
        let writer = kazoo::write_lock(&fw, "/rw", "rust-writer");
        let beside_readers = tokio::spawn({
            let writer = writer.clone();
            async move { writer.acquire().await }
        });
        common::eventually("our writer queued", || async { fw.client().get_children("/rw").await.unwrap().len() == 3 })
            .await;
        // Our writer waits on a watch, and nothing the server did so far woke it; dropped, it
        // leaves the line (its node deleted).
        common::settled(&fw.client(), 1).await;
        assert!(!beside_readers.is_finished(), "a writer beside readers");
        beside_readers.abort();
        common::eventually("our writer left", || async { fw.client().get_children("/rw").await.unwrap().len() == 2 })
            .await;

        // A kazoo writer waits for our reader.
        let (peer, answer) = request(peer, r#"{"op":"release","name":"r"}"#.into()).await;
        assert!(answer.contains("released"), "{answer}");
        let (peer, answer) = request(
            peer,
            r#"{"op":"lock","kind":"WriteLock","path":"/rw","id":"py-writer","name":"w","timeout":0.3}"#.into(),
        )
        .await;
        assert!(answer.contains(r#""acquired": false"#), "kazoo's writer beside our reader: {answer}");
        reader.release().await.unwrap();
        let (peer, answer) = request(
            peer,
            r#"{"op":"lock","kind":"WriteLock","path":"/rw","id":"py-writer","name":"w","timeout":10}"#.into(),
        )
        .await;
        assert!(answer.contains(r#""acquired": true"#), "{answer}");
        // Our writer waits for kazoo's, then holds.
        let waiting = tokio::spawn(async move { writer.acquire_timeout(Duration::from_secs(20)).await });
        let (peer, _) = request(peer, r#"{"op":"release","name":"w"}"#.into()).await;
        let guard = waiting.await.unwrap().expect("our writer holds once kazoo's released");
        guard.release().await.unwrap();
        drop(peer);
        fw.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_parties_and_elections_shared_with_kazoo() {
    use corral_recipes::kazoo::{Counter, Party};
    let Some(python) = kazoo_python() else { return };
    for env in common::envs("kazoo-misc").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
        let peer = KazooPeer::start(python, &env.connect_string()).expect("kazoo peer");

        // Int, float and Curator-mode counters, changed by both sides in turn.
        let (peer, answer) = request(peer, r#"{"op":"counter_add","path":"/c/int","delta":5}"#.into()).await;
        assert!(answer.contains(r#""post": 5"#), "{answer}");
        let ints = Counter::new(&fw, "/c/int", 0i64);
        assert_eq!(ints.add(-2).await.unwrap().post_value, 3);
        let (peer, answer) = request(peer, r#"{"op":"counter_value","path":"/c/int"}"#.into()).await;
        assert!(answer.contains(r#""value": 3"#), "{answer}");

        let floats = Counter::new(&fw, "/c/float", 0.0f64);
        floats.add(0.1).await.unwrap();
        let (peer, answer) =
            request(peer, r#"{"op":"counter_add","path":"/c/float","delta":0.2,"float":true}"#.into()).await;
        assert!(answer.contains(r#""pre": 0.1"#) && answer.contains(r#""post": 0.30000000000000004"#), "{answer}");
        assert_eq!(floats.value().await.unwrap(), 0.1 + 0.2);
        assert_eq!(floats.add(1e16).await.unwrap().post_value, 0.1 + 0.2 + 1e16);
        let (peer, answer) = request(peer, r#"{"op":"counter_value","path":"/c/float","float":true}"#.into()).await;
        assert!(answer.contains(r#""value": 1e+16"#), "kazoo reads our repr: {answer}");

        let curator = Counter::new(&fw, "/c/curator", 0).curator();
        curator.add(7).await.unwrap();
        let (peer, answer) =
            request(peer, r#"{"op":"counter_add","path":"/c/curator","delta":1,"curator":true}"#.into()).await;
        assert!(answer.contains(r#""post": 8"#), "{answer}");
        let shared = corral_recipes::shared_count::SharedCount::start(&fw, "/c/curator", 0).await.unwrap();
        assert_eq!(shared.count(), 8, "Curator's SharedCount reads kazoo's support_curator bytes");
        drop(shared);

        // Parties: each side lists the other's members.
        let ours = Party::join(&fw, "/party", "rust-1");
        ours.wait_joined(Duration::from_secs(10)).await.unwrap();
        let (peer, _) = request(peer, r#"{"op":"party_join","path":"/party","id":"py-1","name":"p"}"#.into()).await;
        let (peer, answer) = request(peer, r#"{"op":"party_members","path":"/party"}"#.into()).await;
        assert!(answer.contains(r#""members": ["py-1", "rust-1"]"#), "{answer}");
        let mut members = kazoo::party_members(&fw, "/party").await.unwrap();
        members.sort();
        assert_eq!(members, ["py-1", "rust-1"]);
        let shallow = Party::join_shallow(&fw, "/shallow", "rust-2");
        shallow.wait_joined(Duration::from_secs(10)).await.unwrap();
        let (peer, _) =
            request(peer, r#"{"op":"party_join","path":"/shallow","id":"py-2","name":"s","shallow":true}"#.into())
                .await;
        let (peer, answer) = request(peer, r#"{"op":"party_members","path":"/shallow","shallow":true}"#.into()).await;
        assert!(answer.contains(r#""members": ["py-2", "rust-2"]"#), "{answer}");
        let mut members = kazoo::shallow_party_members(&fw, "/shallow").await.unwrap();
        members.sort();
        assert_eq!(members, ["py-2", "rust-2"]);
        ours.leave().await;
        shallow.leave().await;
        let (peer, answer) = request(peer, r#"{"op":"party_members","path":"/party"}"#.into()).await;
        assert!(answer.contains(r#""members": ["py-1"]"#), "{answer}");

        // Election: kazoo's Election is a Lock; a Python leader keeps ours waiting.
        let (peer, answer) =
            request(peer, r#"{"op":"lock","kind":"Lock","path":"/election","id":"py","name":"e"}"#.into()).await;
        assert!(answer.contains(r#""acquired": true"#), "{answer}");
        let (led_tx, mut led) = tokio::sync::watch::channel(false);
        let election = kazoo::election(&fw, "/election", "rust", false, move |leadership| {
            led_tx.send_replace(true);
            async move { leadership.invalidated().await }
        });
        common::eventually("our participant queued", || async {
            kazoo::contenders(&fw, "/election").await.unwrap() == ["py", "rust"]
        })
        .await;
        let (peer, answer) = request(peer, r#"{"op":"election_contenders","path":"/election"}"#.into()).await;
        assert!(answer.contains(r#"["py", "rust"]"#), "kazoo's Election sees us: {answer}");
        assert!(!*led.borrow(), "two leaders");
        let (peer, _) = request(peer, r#"{"op":"release","name":"e"}"#.into()).await;
        tokio::time::timeout(Duration::from_secs(20), led.wait_for(|l| *l)).await.unwrap().unwrap();
        election.close().await;
        drop(peer);
        fw.close().await;
    }
}

#[tokio::test]
async fn kazoo_lock_directories_are_persistent_as_kazoo_makes_them() {
    // A kazoo peer between its `ensure_path` and its create fails if a container sweep took the
    // directory meanwhile; kazoo makes persistent ones, so our kazoo layout does too. (A Stat
    // cannot tell a container from a persistent node: the sweep can.)
    let server = corral_server::testing::TestingServer::start().await.unwrap();
    let fw = corral_recipes::Framework::builder(server.connect_string()).start().unwrap();
    let guard = kazoo::lock(&fw, "/fresh/kazoo/lock", "rust").acquire().await.unwrap();
    let curator = corral_recipes::lock::Mutex::new(&fw, "/fresh/curator/lock").acquire().await.unwrap();
    guard.release().await.unwrap();
    curator.release().await.unwrap();
    server.sweep_now();
    server.sweep_now(); // the emptied parent of a swept container goes in the next round
    for dir in ["/fresh/kazoo/lock", "/fresh/kazoo"] {
        assert!(fw.client().exists(dir).await.unwrap().is_some(), "{dir} was swept: not persistent");
    }
    assert!(fw.client().exists("/fresh/curator/lock").await.unwrap().is_none(), "Curator's stays a container");
    fw.close().await;
    server.close().await;
}
