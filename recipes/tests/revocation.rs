//! Revocation (Curator's `Revoker` and `makeRevocable`): a revocable holder is told through
//! `MutexGuard::revoke_requested` when `__REVOKE__` is written into its lock node, against the
//! embedded server and (when available) a real ZooKeeper — and across libraries, with a Java
//! peer on Curator 5.4 (`tests/java/CuratorRevokePeer.java`, driven by `common::java_peer`):
//! our `Revoker` revokes a Curator holder, Curator's `Revoker` revokes ours.

mod common;
#[path = "common/settle.rs"]
mod settle;

use std::time::Duration;

use corral_recipes::Framework;
use corral_recipes::lock::{Mutex, REVOKE_MESSAGE, Revoker};
use corral_recipes::read_write_lock::ReadWriteLock;

use common::java_peer::{self, PeerSpec, name_of, within};

const T: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_revocable_holder_is_told_once_asked_and_its_watch_goes_with_it() {
    for env in common::envs("revoke-holder").await {
        eprintln!("-- against the {} server", env.kind);
        let (fw, other) = (env.framework(), env.framework());
        let guard = Mutex::new(&fw, "/lock").revocable().acquire().await.unwrap();
        let inner = guard.reenter();
        assert!(!guard.is_revoke_requested());
        assert_eq!(fw.client().watcher_count().await, 1, "the holder watches its own node");

        // Another process asks.
        assert!(Revoker::attempt_revoke(&other, guard.path()).await.unwrap());
        tokio::time::timeout(T, inner.revoke_requested()).await.expect("told");
        assert!(guard.is_revoke_requested() && inner.is_revoke_requested(), "every guard of the hold is told");
        assert!(guard.is_valid(), "cooperative: still held until released");
        assert_eq!(&other.client().get_data(guard.path()).await.unwrap().0[..], REVOKE_MESSAGE);
        // Told once for good: nothing more to watch.
        common::eventually("the watch dropped", || async { fw.client().watcher_count().await == 0 }).await;

        let node = guard.path().to_owned();
        inner.release().await.unwrap();
        guard.release().await.unwrap();
        assert!(!Revoker::attempt_revoke(&other, &node).await.unwrap(), "a released node cannot be revoked");

        // Never asked: the watch goes when the guard does.
        let guard = Mutex::new(&fw, "/lock").revocable().acquire().await.unwrap();
        assert_eq!(fw.client().watcher_count().await, 1);
        guard.release().await.unwrap();
        common::eventually("no watch left", || async { fw.client().watcher_count().await == 0 }).await;
        fw.close().await;
        other.close().await;
    }
}

#[tokio::test]
async fn other_data_changes_are_not_requests_and_a_plain_mutex_is_never_told() {
    let env = common::embedded("revoke-other-data").await;
    let fw = env.framework();
    let guard = Mutex::new(&fw, "/lock").revocable().acquire().await.unwrap();
    // Written through the holder's own session: the change's notification reaches it before the
    // reply, and `settled` returns once the holder has read the node and watches it again.
    fw.client().set_data(guard.path(), "host-1", None).await.unwrap();
    settle::settled(&fw.client(), 1).await;
    assert!(!guard.is_revoke_requested(), "any data change was taken for a request");
    // Still watched: a real request is seen.
    Revoker::attempt_revoke(&fw, guard.path()).await.unwrap();
    tokio::time::timeout(T, guard.revoke_requested()).await.expect("told");
    guard.release().await.unwrap();

    // Not revocable: no watch at all, and the request changes nothing for the holder.
    let plain = Mutex::new(&fw, "/lock").acquire().await.unwrap();
    assert_eq!(fw.client().watcher_count().await, 0);
    assert!(Revoker::attempt_revoke(&fw, plain.path()).await.unwrap());
    fw.client().sync("/").await.unwrap();
    assert!(!plain.is_revoke_requested());
    plain.release().await.unwrap();

    // The request's own bytes are refused as a revocable node's data.
    let refused = Mutex::new(&fw, "/lock").with_data(REVOKE_MESSAGE).revocable().try_acquire().await;
    assert_eq!(refused.unwrap_err().code(), corral_recipes::ErrorCode::BadArguments);
    fw.close().await;
}

#[tokio::test]
async fn a_request_made_while_waiting_counts_once_the_lock_is_held() {
    for env in common::envs("revoke-waiter").await {
        eprintln!("-- against the {} server", env.kind);
        let (fw, other) = (env.framework(), env.framework());
        let mutex = Mutex::new(&fw, "/lock");
        let holder = mutex.acquire().await.unwrap();
        let waiter = tokio::spawn({
            let mutex = Mutex::new(&other, "/lock").revocable();
            async move { mutex.acquire().await }
        });
        common::eventually("queued", || async { mutex.participant_nodes().await.unwrap().len() == 2 }).await;
        let queued = format!("/lock/{}", mutex.participant_nodes().await.unwrap()[1]);
        assert!(Revoker::attempt_revoke(&fw, &queued).await.unwrap());
        // The plain holder's node was not asked for: it holds on.
        assert!(!holder.is_revoke_requested());
        holder.release().await.unwrap();
        let guard = tokio::time::timeout(T, waiter).await.unwrap().unwrap().unwrap();
        assert_eq!(guard.path(), queued);
        assert!(guard.is_revoke_requested(), "the request made while waiting was lost");
        guard.release().await.unwrap();
        fw.close().await;
        other.close().await;
    }
}

#[tokio::test]
async fn either_side_of_a_read_write_lock_can_be_revocable() {
    let env = common::embedded("revoke-rw").await;
    let fw = env.framework();
    let lock = ReadWriteLock::new(&fw, "/rw");
    let write = lock.write_lock().clone().revocable().acquire().await.unwrap();
    Revoker::attempt_revoke(&fw, write.path()).await.unwrap();
    tokio::time::timeout(T, write.revoke_requested()).await.expect("the writer is told");
    write.release().await.unwrap();
    let read = lock.read_lock().clone().revocable().acquire().await.unwrap();
    Revoker::attempt_revoke(&fw, read.path()).await.unwrap();
    tokio::time::timeout(T, read.revoke_requested()).await.expect("the reader is told");
    read.release().await.unwrap();
    fw.close().await;
}

/// A revocable acquisition reads its node once it holds: a session that expires around the
/// create or that read leaves no node of a live session but the guard's, and a guard that is
/// returned is told of a request.
#[tokio::test]
async fn a_revocable_acquisition_expired_mid_flight_leaves_nothing_unowned() {
    let env = common::embedded("revoke-expiry").await;
    let server = env.server.clone().unwrap();
    let observer = env.client().await;
    for run in 0..8u64 {
        let fw = env.framework();
        fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
        let dir = format!("/lock-{run}");
        let mutex = Mutex::new(&fw, dir.clone()).revocable();
        let old = fw.client().session_id();
        server.set_latency(Duration::from_millis(1));
        let acquire = tokio::spawn(async move { mutex.acquire().await });
        // Fault injection: each run expires the session at a different point of the real-time acquisition.
        tokio::time::sleep(Duration::from_micros(run * 500)).await;
        assert!(server.expire_session(old));
        server.set_latency(Duration::ZERO);
        common::eventually("a new session", || async {
            let s = fw.current_state();
            s.state.is_connected() && s.session_id != old && s.session_id != 0
        })
        .await;
        let live = |dir: String| {
            let (server, observer) = (server.clone(), &observer);
            async move {
                let children = observer.get_children(&dir).await.unwrap_or_default();
                let sessions = server.sessions();
                let mut nodes = Vec::new();
                for child in children {
                    let path = format!("{dir}/{child}");
                    if let Some(stat) = observer.exists(&path).await.unwrap()
                        && sessions.contains(&stat.ephemeral_owner)
                    {
                        nodes.push((path, stat.ephemeral_owner));
                    }
                }
                nodes
            }
        };
        match acquire.await.unwrap() {
            Ok(guard) => {
                assert_eq!(live(dir.clone()).await, vec![(guard.path().to_owned(), guard.session_id())], "run {run}");
                assert_eq!(guard.session_id(), fw.client().session_id(), "run {run}");
                Revoker::attempt_revoke(&fw, guard.path()).await.unwrap();
                tokio::time::timeout(T, guard.revoke_requested()).await.expect("told");
                guard.release().await.unwrap();
            }
            Err(e) => assert!(e.is_retryable() || e.code() == corral_recipes::ErrorCode::SessionExpired, "{e}"),
        }
        common::eventually("no lock node left", || async {
            fw.pending_guaranteed_deletes() == 0 && live(dir.clone()).await.is_empty()
        })
        .await;
        fw.close().await;
    }
    observer.close().await;
}

// ------------------------------------------------------------------------------------------
// Interop with Curator's Revoker and makeRevocable

const SPEC: PeerSpec = PeerSpec {
    class: "CuratorRevokePeer",
    jars: &[java_peer::CURATOR_RECIPES_JARS],
    packages: java_peer::CURATOR_RECIPES_PACKAGES,
    tests: "Curator revocation interop tests",
    cache: "curator-revoke-peer",
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_works_both_ways_with_curator() {
    let Some(java) = java_peer::java(&SPEC) else { return };
    let mut peer = java_peer::Peer::start(java).await;
    for env in common::envs("revoke-interop").await {
        eprintln!("-- against the {} server", env.kind);
        peer.connect(&env).await;
        let fw = env.framework();
        our_revoker_revokes_a_curator_holder(&fw, &mut peer).await;
        curators_revoker_revokes_our_holder(&fw, &mut peer).await;
        fw.close().await;
        peer.disconnect().await;
    }
    peer.quit().await;
}

/// Curator holds a revocable `InterProcessMutex`, Corral waits behind it and revokes it: Curator's
/// listener is called, it releases, and Corral holds.
async fn our_revoker_revokes_a_curator_holder(fw: &Framework, peer: &mut java_peer::Peer) {
    peer.send("hold java /to-rust true");
    let acquired = peer.expect("ACQUIRED java").await;
    let java_node = format!("/to-rust/{}", acquired.split(' ').nth(2).expect("node name"));
    let mutex = Mutex::new(fw, "/to-rust");
    let waiter = tokio::spawn({
        let mutex = mutex.clone();
        async move { mutex.acquire().await }
    });
    common::eventually("Corral queued", || async { mutex.participant_nodes().await.unwrap().len() == 2 }).await;
    assert!(!waiter.is_finished());
    assert!(within("revoke", Revoker::attempt_revoke(fw, &java_node)).await.unwrap());
    peer.expect("REVOKE_REQUESTED java").await;
    peer.expect("RELEASED java").await;
    let guard = within("Corral acquires", waiter).await.unwrap().unwrap();
    assert_eq!(mutex.participant_nodes().await.unwrap(), [name_of(guard.path())]);
    guard.release().await.unwrap();
}

/// Corral holds a revocable mutex, Curator waits behind it and revokes it with its own `Revoker`:
/// Corral's guard is told, it releases, and Curator holds.
async fn curators_revoker_revokes_our_holder(fw: &Framework, peer: &mut java_peer::Peer) {
    let guard = Mutex::new(fw, "/to-java").revocable().acquire().await.unwrap();
    peer.send("hold java /to-java false");
    common::eventually("Curator queued", || async {
        Mutex::new(fw, "/to-java").participant_nodes().await.unwrap().len() == 2
    })
    .await;
    peer.send(&format!("revoke {}", guard.path()));
    peer.expect(&format!("REVOKE_SENT {}", guard.path())).await;
    within("Corral is told", guard.revoke_requested()).await;
    guard.release().await.unwrap();
    peer.expect("ACQUIRED java").await;
    peer.send("let-go java");
    peer.expect("RELEASED java").await;
    common::eventually("every node gone", || async {
        Mutex::new(fw, "/to-java").participant_nodes().await.unwrap().is_empty()
    })
    .await;
}
