//! Cancellation at the worst moments, made deterministic with the embedded server's fault kit and
//! a fault proxy that holds traffic from a chosen request: an acquisition dropped while its create request is in flight, and a release
//! dropped while its delete is lost with the connection. In every case the node must go and the
//! lock (or lease) must become free while the session lives on.

mod common;

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use corral_recipes::lock::Mutex;
use corral_recipes::semaphore::SemaphoreV2;
use corral_recipes::{ConnectionStateChange, Framework, RetryNTimes};
use corral_test_support::{Fault, FaultProxy};

const T: Duration = Duration::from_secs(30);
const CREATE: i32 = 1;
const CREATE2: i32 = 15;
const DELETE: i32 = 2;

/// A framework with a session long enough to outlive every fault below.
fn framework(connect_string: String) -> Framework {
    Framework::builder(connect_string)
        .session_timeout(Duration::from_secs(10))
        .connection_timeout(Duration::from_secs(10))
        .retry_policy(RetryNTimes::new(20, Duration::from_millis(50)))
        .start()
        .expect("start framework")
}

async fn connected(fw: &Framework) -> ConnectionStateChange {
    fw.wait_until_connected(T).await.expect("connected");
    fw.current_state()
}

/// Bounds `f` by [`T`].
async fn bounded<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(T, f).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A fault proxy in front of `env`'s embedded server, and the connect string through it.
fn proxy_for(env: &common::Env) -> (FaultProxy, String) {
    let server = env.server.as_ref().expect("the embedded server");
    let proxy = FaultProxy::start(server.addr()).expect("start the fault proxy");
    let connect_string = format!("{}{}", proxy.addr(), env.chroot);
    (proxy, connect_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutex_acquire_dropped_while_its_create_is_in_flight_leaves_no_node() {
    let env = common::embedded("cancel-mutex-acquire").await;
    let server = env.server.clone().unwrap();
    let fw = framework(env.connect_string());
    let other = framework(env.connect_string());
    let mutex = Mutex::new(&fw, "/lock");
    mutex.acquire().await.unwrap().release().await.unwrap(); // the directory exists
    let observer = env.client().await;
    let (before, _, created) = observer.get_children_and_watch("/lock").await.unwrap();
    assert!(before.is_empty());
    let session = connected(&fw).await;

    // Every request now waits 500 ms at the server. The first poll sends the create; the
    // future is dropped long before its reply can come.
    server.set_latency(Duration::from_millis(500));
    {
        let mut acquire = pin!(mutex.acquire());
        assert!(futures::poll!(acquire.as_mut()).is_pending());
    }
    let mut created = pin!(created);
    assert!(futures::poll!(created.as_mut()).is_pending(), "the create is still in flight when dropped");
    bounded("the abandoned create is applied", created).await;
    server.set_latency(Duration::ZERO);

    // The node made after the drop is found by its protected prefix and deleted: another
    // contender gets the lock, and the session that made the node is still alive.
    let contender = Mutex::new(&other, "/lock");
    let guard = contender.acquire_timeout(Duration::from_secs(10)).await.expect("the lock is free");
    let name = guard.path().rsplit('/').next().unwrap().to_owned();
    assert_eq!(contender.participant_nodes().await.unwrap(), vec![name], "no _c_ node of the dropped acquire");
    assert_eq!(fw.current_state().epoch, session.epoch, "the session did not end");
    guard.release().await.unwrap();

    // The cleanup never touches a later acquisition of the same mutex.
    let mine = mutex.acquire().await.unwrap();
    common::eventually("background work done", || async { fw.pending_guaranteed_deletes() == 0 }).await;
    assert!(mine.check_ownership().await.unwrap());
    mine.release().await.unwrap();
    observer.close().await;
    fw.close().await;
    other.close().await;
}

/// Drops a [`SemaphoreV2::acquire`] of `fw` while the create matching `held` is held by the proxy,
/// then lets the create through, and checks that another acquirer gets the only lease.
async fn drop_semaphore_acquire_while(held: &'static str, name: &str) {
    let env = common::embedded(name).await;
    let (proxy, through_proxy) = proxy_for(&env);
    let fw = framework(through_proxy);
    let other = framework(env.connect_string());
    let sem = SemaphoreV2::new(&fw, "/sem", 1);
    sem.acquire().await.unwrap().release().await.unwrap(); // the directories exist
    let observer = env.client().await;
    let watched = if held == "/locks/" { "/sem/locks" } else { "/sem/leases" };
    let (before, _, created) = observer.get_children_and_watch(watched).await.unwrap();
    assert!(before.is_empty());
    let session = connected(&fw).await;

    proxy.hold_from(move |op, path| (op == CREATE || op == CREATE2) && path.contains(held));
    {
        let mut acquire = pin!(sem.acquire());
        tokio::select! {
            r = acquire.as_mut() => panic!("acquired while its create is held: {r:?}"),
            () = bounded("the create reaches the proxy", proxy.holding()) => {}
        }
    }
    // The create reaches the server only after the future is gone.
    proxy.release_hold();
    bounded("the abandoned create is applied", created).await;

    let contender = SemaphoreV2::new(&other, "/sem", 1);
    let lease = contender.acquire_timeout(Duration::from_secs(10)).await.expect("the lease is free");
    let lease_name = lease.path().rsplit('/').next().unwrap().to_owned();
    assert_eq!(contender.participant_nodes().await.unwrap(), vec![lease_name]);
    assert_eq!(observer.get_children("/sem/locks").await.unwrap(), Vec::<String>::new());
    assert_eq!(fw.current_state().epoch, session.epoch, "the session did not end");
    lease.release().await.unwrap();
    observer.close().await;
    fw.close().await;
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_semaphore_acquire_dropped_while_its_inner_lock_create_is_in_flight_leaves_no_node() {
    drop_semaphore_acquire_while("/locks/", "cancel-sem-lock").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_semaphore_acquire_dropped_while_its_lease_create_is_in_flight_leaves_no_lease() {
    drop_semaphore_acquire_while("/leases/", "cancel-sem-lease").await;
}

/// Holds the delete of `node` at the proxy, cuts the connection (the delete is lost) and refuses
/// to reconnect while `release` is driven into its wait for a connection, drops it there, lets
/// the framework reconnect, and checks that the node goes within the same session.
async fn drop_release_mid_way<F: Future>(proxy: &FaultProxy, fw: &Framework, node: &str, release: F)
where
    F::Output: std::fmt::Debug,
{
    let session = connected(fw).await;
    let name = node.rsplit('/').next().unwrap().to_owned();
    proxy.hold_from(move |op, path| op == DELETE && path.ends_with(&name));
    let mut states = fw.connection_state();
    {
        let mut release = pin!(release);
        assert!(futures::poll!(release.as_mut()).is_pending());
        bounded("the delete reaches the proxy", proxy.holding()).await;
        proxy.set(Fault::Refuse); // closes the connection (the held delete is lost) and refuses others
        // Polled only once the framework is SUSPENDED: the delete's ConnectionLoss is already
        // there, so the release goes straight into the retry loop's wait for a connection (a
        // poll before that could retry at once and queue a second delete in the client).
        let _ = bounded("SUSPENDED", states.wait_for(|s| !s.state.is_connected())).await;
        assert!(futures::poll!(release.as_mut()).is_pending(), "waiting for a connection");
    }
    proxy.release_hold();
    proxy.set(Fault::Pass);
    let now = connected(fw).await;
    assert_eq!((now.epoch, now.session_id), (session.epoch, session.session_id), "same session");
    common::eventually("the node deleted", || async { fw.client().exists(node).await.unwrap().is_none() }).await;
    assert_eq!(fw.current_state().epoch, session.epoch, "the session did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutex_release_dropped_while_the_delete_waits_for_a_connection_still_releases() {
    let env = common::embedded("cancel-mutex-release").await;
    let (proxy, through_proxy) = proxy_for(&env);
    let fw = framework(through_proxy);
    let other = framework(env.connect_string());
    let guard = Mutex::new(&fw, "/lock").acquire().await.unwrap();
    let node = guard.path().to_owned();
    drop_release_mid_way(&proxy, &fw, &node, guard.release()).await;
    let next = Mutex::new(&other, "/lock").acquire_timeout(Duration::from_secs(10)).await.expect("the lock is free");
    drop(next);
    fw.close().await;
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_release_dropped_while_the_delete_waits_for_a_connection_still_releases() {
    let env = common::embedded("cancel-lease-release").await;
    let (proxy, through_proxy) = proxy_for(&env);
    let fw = framework(through_proxy);
    let other = framework(env.connect_string());
    let lease = SemaphoreV2::new(&fw, "/sem", 1).acquire().await.unwrap();
    let node = lease.path().to_owned();
    drop_release_mid_way(&proxy, &fw, &node, lease.release()).await;
    let next =
        SemaphoreV2::new(&other, "/sem", 1).acquire_timeout(Duration::from_secs(10)).await.expect("the lease is free");
    drop(next);
    fw.close().await;
    other.close().await;
}
