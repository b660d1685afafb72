//! Recipe test environments come from `corral_test_support::env`: an embedded server (with its
//! fault kit) and, when available, a real ZooKeeper (`corral-test-support` or `CORRAL_TEST_ZK`),
//! each test in its own chroot. The peers of the interop suites live here.

#![allow(dead_code, unused_imports, unreachable_pub)]

pub mod java_peer;
pub mod kazoo_peer;

pub use corral_test_support::env::{
    Env, InMemory, embedded, envs, eventually, in_memory, in_memory_framework, settled,
};

/// The ephemeral owner of each child of `dir`, by child name, sorted by name; empty if `dir`
/// does not exist.
pub async fn child_owners(client: &corral_recipes::Client, dir: &str) -> Vec<(String, i64)> {
    let children = match client.get_children(dir).await {
        Ok(children) => children,
        Err(e) if e.is_no_node() => return Vec::new(),
        Err(e) => panic!("listing {dir}: {e}"),
    };
    let mut owners = Vec::new();
    for child in children {
        if let Some(stat) = client.exists(&format!("{dir}/{child}")).await.expect("exists") {
            owners.push((child, stat.ephemeral_owner));
        }
    }
    owners.sort();
    owners
}

/// Expires `fw`'s session on `server` while `waiting` (an acquisition through `fw`, queued
/// behind a holder) waits, and returns the acquisition's error with the expired session's id,
/// once `fw` is on its next session (so that anything the acquisition did there would show).
///
/// # Panics
///
/// If the acquisition succeeds, or does not end within 30 s.
pub async fn expire_while_waiting<T: std::fmt::Debug>(
    server: &corral_server::testing::TestingServer,
    fw: &corral_recipes::Framework,
    waiting: tokio::task::JoinHandle<corral_recipes::Result<T>>,
) -> (corral_recipes::Error, i64) {
    let session = fw.client().session_id();
    assert!(server.expire_session(session), "the waiter's session exists");
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(30), waiting).await;
    let err = outcome.expect("the acquisition ends").expect("the task").expect_err("no acquisition");
    let next = fw.session().await.expect("the next session");
    assert_ne!(next.id(), session);
    (err, session)
}

/// The lock scenario of a lost waiter: `waiter` (a contender through `fw`) queues behind
/// `held` (a guard of another session) in `dir`, then `fw`'s session expires. The acquisition
/// must fail with `Error::SessionLost` naming that session, and `held`'s node be the only one
/// left in `dir`: the waiter's went with its session, and nothing was made in the next one.
/// Then `held` is released and `waiter` acquires afresh, in the next session.
///
/// # Panics
///
/// If any of that does not hold.
pub async fn assert_a_lost_waiter_leaves_nothing(
    server: &corral_server::testing::TestingServer,
    observer: &corral_recipes::Client,
    fw: &corral_recipes::Framework,
    dir: &str,
    held: corral_recipes::lock::MutexGuard,
    waiter: &corral_recipes::lock::Mutex,
) {
    let waiting = tokio::spawn({
        let waiter = waiter.clone();
        async move { waiter.acquire().await }
    });
    eventually("the waiter queued", || async { waiter.participant_nodes().await.unwrap().len() == 2 }).await;
    let (err, session) = expire_while_waiting(server, fw, waiting).await;
    assert_eq!(err, corral_recipes::Error::SessionLost { session_id: session }, "{dir}");
    assert_eq!(err.code(), corral_recipes::ErrorCode::SessionExpired);
    let holder_name = held.path().rsplit('/').next().unwrap().to_owned();
    assert_eq!(child_owners(observer, dir).await, [(holder_name, held.session_id())], "{dir}");
    held.release().await.unwrap();
    let again = waiter.acquire_timeout(std::time::Duration::from_secs(30)).await.expect("the next session contends");
    assert_ne!(again.session_id(), session);
    again.release().await.unwrap();
}
