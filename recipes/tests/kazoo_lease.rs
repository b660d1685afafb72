//! kazoo 2.11's `NonBlockingLease` and `MultiNonBlockingLease` beside Corral's on the same
//! paths, both directions, against the embedded server and a real ZooKeeper.

mod common;

use std::time::{Duration, SystemTime};

use common::kazoo_peer::ok;
use corral_recipes::kazoo::{MultiNonBlockingLease, NonBlockingLease};
use corral_test_support::python::{KazooPeer, kazoo_python};
use serde_json::json;

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_shared_with_kazoo_both_ways() {
    let Some(python) = kazoo_python() else { return };
    for env in common::envs("kazoo-lease").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
        let peer = KazooPeer::start(python, &env.connect_string()).expect("kazoo peer");

        // kazoo holds: we are refused, but renew under kazoo's identity.
        let (peer, answer) = ok(peer, json!({"op": "lease", "path": "/lease", "seconds": 60, "id": "py"})).await;
        assert_eq!(answer["obtained"], true);
        let (peer, answer) = ok(peer, json!({"op": "lease_holder", "path": "/lease"})).await;
        assert_eq!(answer["raw"], answer["redumped"]);
        let theirs = NonBlockingLease::new(&fw, "/lease", MINUTE, "py").holder().await.unwrap().unwrap();
        assert_eq!(theirs.holder, "py");
        let left = theirs.end.duration_since(SystemTime::now()).unwrap_or_default();
        assert!(left > Duration::from_secs(50) && left <= MINUTE, "kazoo's end, read as UTC: {left:?} left");
        let id = "rüst \"ω\"";
        assert!(!NonBlockingLease::new(&fw, "/lease", MINUTE, id).obtain().await.unwrap(), "kazoo's lease taken");
        assert!(NonBlockingLease::new(&fw, "/lease", MINUTE, "py").obtain().await.unwrap(), "a renewal");

        // Once kazoo's ends (on our clock), we take it, and write what kazoo writes.
        let later = || SystemTime::now() + Duration::from_secs(120);
        let ours = NonBlockingLease::new(&fw, "/lease", MINUTE, id).with_clock(later);
        assert!(ours.obtain().await.unwrap());
        let (peer, answer) = ok(peer, json!({"op": "lease_holder", "path": "/lease"})).await;
        assert_eq!(answer["raw"], answer["redumped"], "our data is json.dumps's, byte for byte");
        let raw = fw.client().get_data("/lease/lease_holder").await.unwrap().0;
        assert!(raw.is_ascii() && std::str::from_utf8(&raw).unwrap().contains(r#""holder": "r\u00fcst \"\u03c9\"""#));
        let (peer, answer) = ok(peer, json!({"op": "lease", "path": "/lease", "seconds": 60, "id": "py"})).await;
        assert_eq!(answer["obtained"], false, "kazoo took our lease");
        let (peer, answer) =
            ok(peer, json!({"op": "lease", "path": "/lease", "seconds": 60, "id": "py", "clock_offset": 240})).await;
        assert_eq!(answer["obtained"], true, "kazoo takes our ended lease");
        assert!(!ours.obtain().await.unwrap());

        // Another storage version is left alone by both.
        let other = br#"{"version": 2, "holder": "future", "end": "2000-01-01T00:00:00"}"#.to_vec();
        fw.client().set_data("/lease/lease_holder", other, None).await.unwrap();
        assert!(!NonBlockingLease::new(&fw, "/lease", MINUTE, "x").obtain().await.unwrap());
        let (peer, answer) = ok(peer, json!({"op": "lease", "path": "/lease", "seconds": 60, "id": "y"})).await;
        assert_eq!(answer["obtained"], false);
        drop(peer);
        fw.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_leases_shared_with_kazoo() {
    let Some(python) = kazoo_python() else { return };
    for env in common::envs("kazoo-multi-lease").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
        let peer = KazooPeer::start(python, &env.connect_string()).expect("kazoo peer");
        let lease = |id: &str| MultiNonBlockingLease::new(&fw, 3, "/crawl", MINUTE, id);

        let (peer, answer) =
            ok(peer, json!({"op": "lease", "path": "/crawl", "count": 3, "seconds": 60, "id": "py-1"})).await;
        assert_eq!(answer["obtained"], true);
        assert_eq!(lease("rust-1").obtain().await.unwrap(), Some(1), "kazoo holds /crawl/0");
        let (peer, answer) =
            ok(peer, json!({"op": "lease", "path": "/crawl", "count": 3, "seconds": 60, "id": "py-2"})).await;
        assert_eq!(answer["obtained"], true);
        assert_eq!(lease("rust-2").obtain().await.unwrap(), None, "three hosts at most");
        let (peer, answer) =
            ok(peer, json!({"op": "lease", "path": "/crawl", "count": 3, "seconds": 60, "id": "py-3"})).await;
        assert_eq!(answer["obtained"], false, "three hosts at most");
        assert_eq!(lease("py-2").obtain().await.unwrap(), Some(2), "kazoo's py-2 took /crawl/2");
        let mut holders = Vec::new();
        for n in 0..3 {
            let holder = NonBlockingLease::new(&fw, format!("/crawl/{n}"), MINUTE, "x").holder().await.unwrap();
            holders.push(holder.unwrap().holder);
        }
        assert_eq!(holders, ["py-1", "rust-1", "py-2"]);
        drop(peer);
        fw.close().await;
    }
}

#[tokio::test]
async fn an_obtain_whose_session_ends_while_it_waits_for_the_lock_fails_and_writes_nothing() {
    let env = common::embedded("kazoo-lease-fenced").await;
    let server = env.server.clone().unwrap();
    let (fw, other) = (env.framework(), env.framework());
    // While our obtain waits for the lock (held by another), our session ends: the obtain
    // fails and nothing is written.
    let held = corral_recipes::kazoo::lock(&other, "/lease", "other").acquire().await.unwrap();
    let lease = NonBlockingLease::new(&fw, "/lease", MINUTE, "rust");
    let obtaining = tokio::spawn(async move { lease.obtain().await });
    common::eventually("our contender queued", || async {
        corral_recipes::kazoo::contenders(&other, "/lease").await.unwrap() == ["other", "rust"]
    })
    .await;
    server.expire_session(fw.client().session_id());
    assert!(obtaining.await.unwrap().is_err(), "an obtain that lost its lock");
    held.release().await.unwrap();
    assert!(other.client().exists("/lease/lease_holder").await.unwrap().is_none());
    fw.close().await;
    other.close().await;
}

/// Rust and kazoo processes race for one lease: exactly one gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_holder_when_both_languages_race() {
    let Some(python) = kazoo_python() else { return };
    let env = common::embedded("kazoo-lease-race").await;
    let fw = env.framework();
    fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
    for round in 0..5 {
        let path = format!("/race/{round}");
        let peers: Vec<KazooPeer> =
            (0..2).map(|_| KazooPeer::start(python, &env.connect_string()).expect("kazoo peer")).collect();
        let kazoo = peers.into_iter().enumerate().map(|(i, peer)| {
            tokio::spawn(ok(peer, json!({"op": "lease", "path": path, "seconds": 60, "id": format!("py-{i}")})))
        });
        let kazoo: Vec<_> = kazoo.collect();
        let rust: Vec<_> = (0..3)
            .map(|i| {
                let lease = NonBlockingLease::new(&fw, path.clone(), MINUTE, format!("rust-{i}"));
                tokio::spawn(async move { lease.obtain().await.unwrap() })
            })
            .collect();
        let mut winners = Vec::new();
        for (i, task) in rust.into_iter().enumerate() {
            if task.await.unwrap() {
                winners.push(format!("rust-{i}"));
            }
        }
        for (i, task) in kazoo.into_iter().enumerate() {
            let (_peer, answer) = task.await.unwrap();
            if answer["obtained"] == true {
                winners.push(format!("py-{i}"));
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let holder = NonBlockingLease::new(&fw, path.clone(), MINUTE, "x").holder().await.unwrap().unwrap();
        assert_eq!(holder.holder, winners[0], "the stored holder is the one winner");
    }
    fw.close().await;
}
