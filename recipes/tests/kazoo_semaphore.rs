//! kazoo 2.11's `Semaphore` and Corral's `kazoo::Semaphore` on one pool, both directions,
//! against the embedded server and a real ZooKeeper.

mod common;

use std::time::Duration;

use common::kazoo_peer::{ask, is_uuid_hex, ok};
use corral_recipes::kazoo::{self, Semaphore};
use corral_recipes::{Error, kazoo::SemaphoreLease};
use corral_test_support::python::{KazooPeer, kazoo_python};
use serde_json::json;

async fn acquired(lease: tokio::task::JoinHandle<corral_recipes::Result<SemaphoreLease>>) -> SemaphoreLease {
    lease.await.unwrap().expect("the lease came")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_shared_with_kazoo_both_ways() {
    let Some(python) = kazoo_python() else { return };
    for env in common::envs("kazoo-semaphore").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
        let peer = KazooPeer::start(python, &env.connect_string()).expect("kazoo peer");

        // kazoo creates the pool: its max_leases is the node's data.
        let sem = json!({"op": "sem_acquire", "path": "/pool", "id": "py", "max": 2, "name": "a"});
        let (peer, answer) = ok(peer, sem).await;
        assert_eq!(answer["acquired"], true, "{answer}");
        assert_eq!(&fw.client().get_data("/pool").await.unwrap().0[..], b"2");
        // kazoo's lock directory is persistent, never a container (ZooKeeper marks those with
        // an ephemeral owner of i64::MIN): kazoo does not retry a create whose parent was swept.
        let ours_first = Semaphore::new(&fw, "/pool2", "rust", 1).acquire().await.unwrap();
        let lock_dir = fw.client().exists("/pool2-__lock__").await.unwrap().unwrap();
        assert_eq!(lock_dir.ephemeral_owner, 0, "a persistent lock directory");
        ours_first.release().await.unwrap();
        let pool = Semaphore::new(&fw, "/pool", "rust", 2);
        let ours = pool.try_acquire().await.unwrap().expect("a second lease beside kazoo's");
        let name = ours.path().rsplit('/').next().unwrap();
        assert!(is_uuid_hex(name), "kazoo's lease name: {name}");
        assert_eq!(&fw.client().get_data(ours.path()).await.unwrap().0[..], b"rust");

        // Full: neither side gets a third lease.
        assert!(pool.try_acquire().await.unwrap().is_none(), "three leases of two");
        let (peer, answer) = ok(
            peer,
            json!({"op": "sem_acquire", "path": "/pool", "id": "py", "max": 2, "name": "b", "blocking": false}),
        )
        .await;
        assert_eq!(answer["acquired"], false, "kazoo took a third lease of two: {answer}");
        let (peer, answer) = ok(peer, json!({"op": "sem_holders", "path": "/pool", "max": 2})).await;
        assert_eq!(answer["holders"], json!(["py", "rust"]));
        let mut holders = pool.lease_holders().await.unwrap();
        holders.sort();
        assert_eq!(holders, ["py", "rust"]);

        // We wait (holding the pool's kazoo lock, whose contender data is kazoo's bytes repr),
        // kazoo releases, we hold.
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.acquire_timeout(Duration::from_secs(20)).await }
        });
        common::eventually("our acquirer holds the pool's lock", || async {
            kazoo::contenders(&fw, "/pool-__lock__").await.unwrap() == ["b'rust'"]
        })
        .await;
        let (peer, answer) = ok(peer, json!({"op": "contenders", "path": "/pool-__lock__"})).await;
        assert_eq!(answer["contenders"], json!(["b'rust'"]), "kazoo reads our lock contender");
        let (peer, answer) = ok(peer, json!({"op": "sem_release", "name": "a"})).await;
        assert_eq!(answer["released"], true);
        let second = acquired(waiting).await;

        // kazoo waits for a lease (holding the lock); we release; kazoo holds.
        let kazoo_waits = tokio::spawn(ask(
            peer,
            json!({"op": "sem_acquire", "path": "/pool", "id": "py", "max": 2, "name": "c", "timeout": 20}),
        ));
        common::eventually("kazoo's acquirer holds the pool's lock", || async {
            kazoo::contenders(&fw, "/pool-__lock__").await.unwrap() == ["b'py'"]
        })
        .await;
        assert!(pool.try_acquire().await.unwrap().is_none(), "a lease past kazoo's waiting acquirer");
        ours.release().await.unwrap();
        let (peer, answer) = kazoo_waits.await.unwrap();
        assert_eq!(answer["acquired"], true, "{answer}");
        let (peer, answer) = ok(peer, json!({"op": "sem_holders", "path": "/pool", "max": 2})).await;
        assert_eq!(answer["holders"], json!(["py", "rust"]));

        second.release().await.unwrap();
        let (peer, _) = ok(peer, json!({"op": "sem_release", "name": "c"})).await;
        assert!(pool.lease_holders().await.unwrap().is_empty());
        drop(peer);
        fw.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_max_leases_is_refused_on_both_sides() {
    let Some(python) = kazoo_python() else { return };
    for env in common::envs("kazoo-semaphore-max").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
        let peer = KazooPeer::start(python, &env.connect_string()).expect("kazoo peer");

        // Ours made the pool with 2; kazoo with 3 refuses it.
        let lease = Semaphore::new(&fw, "/pool", "rust", 2).acquire().await.unwrap();
        let (peer, answer) =
            ask(peer, json!({"op": "sem_acquire", "path": "/pool", "id": "py", "max": 3, "name": "a"})).await;
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains("Inconsistent max leases: 2, expected: 3"), "{answer}");
        lease.release().await.unwrap();

        // kazoo made another with 1; ours with 3 refuses it, with kazoo's words.
        let (peer, _) =
            ok(peer, json!({"op": "sem_acquire", "path": "/other", "id": "py", "max": 1, "name": "b"})).await;
        let err = Semaphore::new(&fw, "/other", "rust", 3).acquire().await.unwrap_err();
        assert!(
            matches!(&err, Error::Core(corral_recipes::CoreError::BadArguments(m)) if m.contains("inconsistent max leases: 1, expected: 3")),
            "{err}"
        );
        // Data that is no number is someone else's and ignored, by both.
        fw.client().set_data("/other", "not a number", None).await.unwrap();
        let (peer, _) = ok(peer, json!({"op": "sem_release", "name": "b"})).await;
        let lease = Semaphore::new(&fw, "/other", "rust", 3).try_acquire().await.unwrap().expect("a free lease");
        lease.release().await.unwrap();
        drop(peer);
        fw.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_exclusion_holds_across_languages_under_contention() {
    let Some(python) = kazoo_python() else { return };
    let env = common::embedded("kazoo-semaphore-race").await;
    let fw = env.framework();
    fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
    let mut peer = KazooPeer::start(python, &env.connect_string()).expect("kazoo peer");
    // Rust tasks and a Python peer take and give back the one lease in a loop; the holders
    // listing never shows two at once.
    let rust = {
        let fw = fw.clone();
        tokio::spawn(async move {
            let pool = Semaphore::new(&fw, "/mutex", "rust", 1);
            for _ in 0..15 {
                let lease = pool.acquire().await.unwrap();
                let holders = pool.lease_holders().await.unwrap();
                assert_eq!(holders, ["rust"], "two holders of one lease");
                lease.release().await.unwrap();
            }
        })
    };
    for i in 0..15 {
        let name = format!("n{i}");
        let (p, answer) =
            ok(peer, json!({"op": "sem_acquire", "path": "/mutex", "id": "py", "max": 1, "name": name, "timeout": 30}))
                .await;
        assert_eq!(answer["acquired"], true, "{answer}");
        assert_eq!(Semaphore::new(&fw, "/mutex", "x", 1).lease_holders().await.unwrap(), ["py"], "two holders");
        let (p, _) = ok(p, json!({"op": "sem_release", "name": name})).await;
        peer = p;
    }
    rust.await.unwrap();
    drop(peer);
    fw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_acquirer_fails_with_its_session_and_leaves_nothing() {
    let env = common::embedded("kazoo-semaphore-lost").await;
    let server = env.server.clone().unwrap();
    let fw = env.framework();
    let other = env.framework();
    let held = Semaphore::new(&other, "/pool", "other", 1).acquire().await.unwrap();
    let pool = Semaphore::new(&fw, "/pool", "rust", 1);
    let waiting = tokio::spawn({
        let pool = pool.clone();
        async move { pool.acquire().await }
    });
    common::eventually("our acquirer holds the lock", || async {
        kazoo::contenders(&fw, "/pool-__lock__").await.unwrap() == ["b'rust'"]
    })
    .await;
    let session = fw.client().session_id();
    server.expire_session(session);
    let err = waiting.await.unwrap().unwrap_err();
    assert_eq!(err, Error::SessionLost { session_id: session });
    // The lock node went with the session; no lease was made in the next one.
    assert!(kazoo::contenders(&other, "/pool-__lock__").await.unwrap().is_empty());
    assert_eq!(pool.lease_holders().await.unwrap(), ["other"]);
    held.release().await.unwrap();
    // The next session acquires afresh.
    pool.acquire().await.unwrap().release().await.unwrap();
    fw.close().await;
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_acquisition_leaves_no_node() {
    let env = common::embedded("kazoo-semaphore-cancel").await;
    let fw = env.framework();
    let pool = Semaphore::new(&fw, "/pool", "rust", 1);
    let held = pool.acquire().await.unwrap();
    let waiting = tokio::spawn({
        let pool = pool.clone();
        async move { pool.acquire().await }
    });
    common::eventually("the second acquirer holds the lock and waits", || async {
        kazoo::contenders(&fw, "/pool-__lock__").await.unwrap() == ["b'rust'"]
    })
    .await;
    waiting.abort();
    let _ = waiting.await;
    common::eventually("its lock node deleted", || async {
        kazoo::contenders(&fw, "/pool-__lock__").await.unwrap().is_empty()
    })
    .await;
    assert_eq!(pool.lease_holders().await.unwrap(), ["rust"], "one lease: the held one");
    held.release().await.unwrap();
    assert!(pool.lease_holders().await.unwrap().is_empty());
    fw.close().await;
}

/// An acquirer whose session expires while it waits for the pool's lock (held by another
/// acquirer waiting for a lease) fails with `SessionLost` naming that session; its lock node
/// went with the session and nothing was created in the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acquirer_waiting_for_the_lock_fails_with_its_session_and_leaves_nothing() {
    let env = common::embedded("kazoo-semaphore-lock-lost").await;
    let server = env.server.clone().unwrap();
    let fw = env.framework();
    let other = env.framework();
    let held = Semaphore::new(&other, "/pool", "holder", 1).acquire().await.unwrap();
    let queued = tokio::spawn({
        let pool = Semaphore::new(&other, "/pool", "next", 1);
        async move { pool.acquire().await }
    });
    common::eventually("the next acquirer holds the lock", || async {
        kazoo::contenders(&other, "/pool-__lock__").await.unwrap() == ["b'next'"]
    })
    .await;
    let pool = Semaphore::new(&fw, "/pool", "rust", 1);
    let waiting = tokio::spawn({
        let pool = pool.clone();
        async move { pool.acquire().await }
    });
    common::eventually("our acquirer waits for the lock", || async {
        kazoo::contenders(&other, "/pool-__lock__").await.unwrap() == ["b'next'", "b'rust'"]
    })
    .await;
    let (err, session) = common::expire_while_waiting(&server, &fw, waiting).await;
    assert_eq!(err, Error::SessionLost { session_id: session });
    assert_eq!(kazoo::contenders(&other, "/pool-__lock__").await.unwrap(), ["b'next'"]);
    assert_eq!(pool.lease_holders().await.unwrap(), ["holder"]);
    held.release().await.unwrap();
    queued.await.unwrap().unwrap().release().await.unwrap();
    fw.close().await;
    other.close().await;
}
