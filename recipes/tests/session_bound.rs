//! Recipes bound to one session: a session that expires while a recipe's create is in flight
//! (the embedded server's latency fault plus `expire_session`) leaves no node of a live session
//! that its recipe does not own, and the recipe recovers in the next session.
//!
//! Each scenario runs several times with the expiry at a different moment of the create (before
//! it is sent, while the server delays it, after it is applied but before the reply).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use corral_recipes::double_barrier::DistributedDoubleBarrier as DoubleBarrier;
use corral_recipes::leader_latch::LeaderLatch;
use corral_recipes::lock::Mutex;
use corral_recipes::persistent_node::PersistentNode;
use corral_recipes::semaphore::SemaphoreV2 as Semaphore;
use corral_recipes::{Client, CreateMode, Framework};
use corral_server::testing::TestingServer;

const RUNS: u64 = 8;
/// The test environment's session timeout (see `common::Env::framework`).
const SESSION_TIMEOUT: Duration = Duration::from_secs(4);

/// The ephemeral owner of every child of `dir`, by path (an empty map if `dir` does not exist).
async fn owners(observer: &Client, dir: &str) -> HashMap<String, i64> {
    let children = common::child_owners(observer, dir).await;
    children.into_iter().map(|(child, owner)| (format!("{dir}/{child}"), owner)).collect()
}

/// The nodes under `dir` whose owner is a session the server still has.
async fn live_nodes(server: &TestingServer, observer: &Client, dir: &str) -> Vec<(String, i64)> {
    let live = server.sessions();
    let mut nodes: Vec<_> = owners(observer, dir).await.into_iter().filter(|(_, o)| live.contains(o)).collect();
    nodes.sort();
    nodes
}

/// Expires `fw`'s session `after` a moment, while the server delays every request by 1 ms.
async fn expire_mid_request(server: &TestingServer, fw: &Framework, after: Duration) -> i64 {
    let session = fw.client().session_id();
    // Fault injection: real time, so that the expiry lands while a delayed request is in flight.
    tokio::time::sleep(after).await;
    assert!(server.expire_session(session), "the session to expire exists");
    session
}

/// Waits until `fw` is connected on a session other than `old`.
async fn next_session(fw: &Framework, old: i64) {
    common::eventually("a new session", || async {
        let s = fw.current_state();
        s.state.is_connected() && s.session_id != old && s.session_id != 0
    })
    .await;
}

#[tokio::test]
async fn latch_expired_mid_create_leaves_one_node_per_session_and_a_leader() {
    let env = common::embedded("bound-latch").await;
    let server = env.server.clone().unwrap();
    let observer = env.client().await;
    for run in 0..RUNS {
        let dir = format!("/election-{run}");
        let (a, b) = (env.framework(), env.framework());
        a.wait_until_connected(Duration::from_secs(10)).await.unwrap();
        b.wait_until_connected(Duration::from_secs(10)).await.unwrap();
        server.set_latency(Duration::from_millis(1));
        let la = LeaderLatch::start(&a, dir.clone(), "a");
        let lb = LeaderLatch::start(&b, dir.clone(), "b");
        let old = expire_mid_request(&server, &a, Duration::from_micros(run * 400)).await;
        server.set_latency(Duration::ZERO);
        next_session(&a, old).await;

        // Somebody leads within twice the session timeout, and keeps leading.
        let deadline = tokio::time::Instant::now() + 2 * SESSION_TIMEOUT;
        while !(la.has_leadership() || lb.has_leadership()) {
            assert!(tokio::time::Instant::now() < deadline, "run {run}: nobody leads after the expiry");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        common::eventually("one latch node per live session", || async {
            let nodes = live_nodes(&server, &observer, &dir).await;
            let sessions = [a.client().session_id(), b.client().session_id()];
            nodes.len() == 2 && sessions.iter().all(|s| nodes.iter().filter(|(_, o)| o == s).count() == 1)
        })
        .await;
        assert_eq!(la.participants().await.unwrap().len(), 2, "run {run}");
        assert!(la.has_leadership() ^ lb.has_leadership(), "run {run}: exactly one leader");
        la.close().await;
        lb.close().await;
        assert!(live_nodes(&server, &observer, &dir).await.is_empty(), "run {run}: close leaves nothing");
        a.close().await;
        b.close().await;
    }
    observer.close().await;
}

#[tokio::test]
async fn protected_persistent_node_expired_mid_create_leaves_no_orphan() {
    let env = common::embedded("bound-pnode").await;
    let server = env.server.clone().unwrap();
    let observer = env.client().await;
    for run in 0..RUNS {
        let dir = format!("/members-{run}");
        let fw = env.framework();
        fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
        server.set_latency(Duration::from_millis(1));
        let node =
            PersistentNode::start_protected(&fw, format!("{dir}/m-"), CreateMode::EphemeralSequential, "payload");
        let old = expire_mid_request(&server, &fw, Duration::from_micros(run * 400)).await;
        server.set_latency(Duration::ZERO);
        next_session(&fw, old).await;
        node.wait_for_initial_create(2 * SESSION_TIMEOUT).await.unwrap();
        common::eventually("exactly the recipe's node", || async {
            let Some(actual) = node.actual_path() else { return false };
            let nodes = live_nodes(&server, &observer, &dir).await;
            nodes == vec![(actual, fw.client().session_id())]
        })
        .await;
        node.close().await;
        assert!(live_nodes(&server, &observer, &dir).await.is_empty(), "run {run}: the orphan survived close");
        fw.close().await;
    }
    observer.close().await;
}

#[tokio::test]
async fn mutex_semaphore_and_barrier_expired_mid_create_leave_nothing_unowned() {
    let env = common::embedded("bound-locks").await;
    let server = env.server.clone().unwrap();
    let observer = env.client().await;
    for run in 0..RUNS {
        let fw = env.framework();
        fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();

        // Mutex: the acquisition ends in the next session with exactly the guard's node.
        let dir = format!("/lock-{run}");
        let mutex = Mutex::new(&fw, dir.clone());
        server.set_latency(Duration::from_millis(1));
        let acquire = tokio::spawn(async move { mutex.acquire().await.map(|g| (g, mutex)) });
        let old = expire_mid_request(&server, &fw, Duration::from_micros(run * 400)).await;
        server.set_latency(Duration::ZERO);
        next_session(&fw, old).await;
        match acquire.await.unwrap() {
            Ok((guard, _mutex)) => {
                let nodes = live_nodes(&server, &observer, &dir).await;
                assert_eq!(nodes, vec![(guard.path().to_owned(), fw.client().session_id())], "run {run}");
                guard.release().await.unwrap();
            }
            Err(e) => {
                // Lost with the session: whatever it made went with it.
                assert!(e.is_retryable() || e.code() == corral_recipes::ErrorCode::SessionExpired, "{e}");
            }
        }
        common::eventually("no lock node left", || async {
            fw.pending_guaranteed_deletes() == 0 && live_nodes(&server, &observer, &dir).await.is_empty()
        })
        .await;

        // Semaphore: the same for its lease.
        let dir = format!("/sem-{run}");
        let semaphore = Semaphore::new(&fw, dir.clone(), 2);
        let before = fw.client().session_id();
        server.set_latency(Duration::from_millis(1));
        let acquire = tokio::spawn(async move { semaphore.acquire().await.map(|l| (l, semaphore)) });
        let old = expire_mid_request(&server, &fw, Duration::from_micros(run * 400)).await;
        assert_eq!(old, before);
        server.set_latency(Duration::ZERO);
        next_session(&fw, old).await;
        if let Ok((lease, _semaphore)) = acquire.await.unwrap() {
            let leases = live_nodes(&server, &observer, &format!("{dir}/leases")).await;
            assert_eq!(leases, vec![(lease.path().to_owned(), fw.client().session_id())], "run {run}");
            lease.release().await.unwrap();
        }
        common::eventually("no lease or lock node left", || async {
            fw.pending_guaranteed_deletes() == 0
                && live_nodes(&server, &observer, &format!("{dir}/leases")).await.is_empty()
                && live_nodes(&server, &observer, &format!("{dir}/locks")).await.is_empty()
        })
        .await;

        // Double barrier: our member node is the current session's, exactly once.
        let dir = format!("/barrier-{run}");
        let barrier = DoubleBarrier::new(&fw, dir.clone(), 1);
        let ours = barrier.our_path().to_owned();
        server.set_latency(Duration::from_millis(1));
        let enter = tokio::spawn(async move { barrier.enter().await.map(|()| barrier) });
        let old = expire_mid_request(&server, &fw, Duration::from_micros(run * 400)).await;
        server.set_latency(Duration::ZERO);
        next_session(&fw, old).await;
        if let Ok(barrier) = enter.await.unwrap() {
            let session = fw.client().session_id();
            let nodes: Vec<_> =
                live_nodes(&server, &observer, &dir).await.into_iter().filter(|(_, o)| *o != 0).collect();
            assert_eq!(nodes, vec![(ours.clone(), session)], "run {run}");
            barrier.leave().await.unwrap();
        }
        assert!(
            live_nodes(&server, &observer, &dir).await.iter().all(|(_, o)| *o == 0),
            "run {run}: a member node outlived the barrier"
        );
        fw.close().await;
    }
    observer.close().await;
}

#[tokio::test]
async fn every_hold_fences_a_stale_holder_after_its_session_expired() {
    use corral_recipes::Op;
    let env = common::embedded("bound-holds").await;
    let server = env.server.clone().unwrap();
    let (stale, other) = (env.framework(), env.framework());
    stale.wait_until_connected(Duration::from_secs(10)).await.unwrap();
    other.wait_until_connected(Duration::from_secs(10)).await.unwrap();

    let latch = LeaderLatch::start(&stale, "/fenced/latch", "stale");
    latch.await_leadership_timeout(Duration::from_secs(10)).await.unwrap();
    let guard = Mutex::new(&stale, "/fenced/lock").acquire().await.unwrap();
    let lease = Semaphore::new(&stale, "/fenced/sem", 1).acquire().await.unwrap();
    let holds = [latch.hold().expect("leading"), guard.hold().clone(), lease.hold().clone()];
    let write = |hold: &corral_recipes::hold::Hold, n: usize| {
        vec![hold.fencing_check(), Op::create(format!("/fenced-write-{n}"), "", CreateMode::Persistent)]
    };
    for (n, hold) in holds.iter().enumerate() {
        assert!(hold.is_valid());
        other.transaction(write(hold, n)).await.expect("a valid hold's write");
    }

    // The session expires (a paused process, as far as the server can tell): every hold ends,
    // and its fenced write is refused whoever sends it.
    server.expire_session(stale.client().session_id());
    for (n, hold) in holds.iter().enumerate() {
        tokio::time::timeout(Duration::from_secs(10), hold.invalidated()).await.expect("invalidated in time");
        assert!(!hold.is_valid());
        let late = other.transaction(write(hold, n + 10)).await;
        assert!(matches!(late, Err(corral_recipes::CoreError::MultiFailed { index: 0, .. })), "{late:?}");
    }
    // Tokens grow with every later hold of the same lock.
    let newer = Mutex::new(&other, "/fenced/lock").acquire().await.unwrap();
    assert!(newer.fencing_token() > holds[1].fencing_token());
    newer.release().await.unwrap();
    drop((guard, lease));
    latch.close().await;
    stale.close().await;
    other.close().await;
}

#[tokio::test]
async fn lock_safe_consumer_expired_mid_lock_leaves_no_unowned_lock() {
    use bytes::Bytes;
    use corral_recipes::queue::DistributedQueue;
    let env = common::embedded("bound-queue").await;
    let server = env.server.clone().unwrap();
    let observer = env.client().await;
    for run in 0..RUNS {
        let (dir, locks) = (format!("/q-{run}"), format!("/q-{run}-locks"));
        let fw = env.framework();
        fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
        let queue: DistributedQueue = DistributedQueue::new(&fw, dir.clone()).lock_path(locks.clone());
        queue.put(&Bytes::from(format!("job-{run}"))).await.unwrap();
        let mut consumer = queue.consumer();
        server.set_latency(Duration::from_millis(1));
        let take = tokio::spawn(async move {
            let message = consumer.next_message().await;
            (message, consumer)
        });
        let old = expire_mid_request(&server, &fw, Duration::from_micros(run * 400)).await;
        server.set_latency(Duration::ZERO);
        next_session(&fw, old).await;
        let (message, mut consumer) = take.await.unwrap();
        // Delivered in this take, or again to the next one once the old session's lock is gone.
        let message = match message {
            Ok(m) => m,
            Err(_) => tokio::time::timeout(2 * SESSION_TIMEOUT, consumer.next_message()).await.unwrap().unwrap(),
        };
        // Whatever lock is held now is this session's, and only one.
        let held = live_nodes(&server, &observer, &locks).await;
        assert!(held.len() <= 1 && held.iter().all(|(_, o)| *o == fw.client().session_id()), "run {run}: {held:?}");
        message.ack().await.unwrap();
        common::eventually("queue and locks empty", || async {
            live_nodes(&server, &observer, &locks).await.is_empty()
                && observer.get_children(&dir).await.map(|c| c.is_empty()).unwrap_or(true)
        })
        .await;
        drop(consumer);
        fw.close().await;
    }
    observer.close().await;
}

/// An ack whose session ends while it is in flight never claims "delivered again" (SessionLost)
/// for an item it removed: it answers `ConnectionLoss` (outcome unknown) instead.
#[tokio::test]
async fn an_ack_cut_by_an_expiry_never_misreports_a_removed_item() {
    use bytes::Bytes;
    use corral_recipes::queue::DistributedQueue;
    use corral_recipes::{CoreError, Error};
    let env = common::embedded("bound-ack").await;
    let server = env.server.clone().unwrap();
    let observer = env.client().await;
    for run in 0..RUNS {
        let (dir, locks) = (format!("/aq-{run}"), format!("/aq-{run}-locks"));
        let fw = env.framework();
        fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
        let queue: DistributedQueue = DistributedQueue::new(&fw, dir.clone()).lock_path(locks);
        queue.put(&Bytes::from("job")).await.unwrap();
        let mut consumer = queue.consumer();
        let message = consumer.next_message().await.unwrap();
        let item = message.path().to_owned();
        server.set_latency(Duration::from_millis(2));
        let ack = tokio::spawn(message.ack());
        let old = expire_mid_request(&server, &fw, Duration::from_micros(run * 500)).await;
        server.set_latency(Duration::ZERO);
        let outcome = ack.await.unwrap();
        let removed = observer.exists(&item).await.unwrap().is_none();
        match outcome {
            Ok(()) => assert!(removed, "run {run}: acked but the item is still there"),
            Err(Error::SessionLost { session_id }) => {
                assert_eq!(session_id, old, "run {run}: the lock's session");
                assert!(!removed, "run {run}: 'delivered again' for an item that was removed")
            }
            Err(Error::Core(CoreError::ConnectionLoss)) => {}
            Err(e) => panic!("run {run}: {e}"),
        }
        drop(consumer);
        fw.close().await;
    }
    observer.close().await;
}

#[tokio::test]
async fn read_write_lock_and_selector_expired_mid_create_leave_nothing_unowned() {
    use corral_recipes::leader_selector::LeaderSelector;
    use corral_recipes::read_write_lock::ReadWriteLock;
    let env = common::embedded("bound-rw").await;
    let server = env.server.clone().unwrap();
    let observer = env.client().await;
    for run in 0..RUNS {
        let fw = env.framework();
        fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();

        // A write lock: the acquisition ends in the next session with exactly the guard's node.
        let dir = format!("/rw-{run}");
        let lock = ReadWriteLock::new(&fw, dir.clone());
        server.set_latency(Duration::from_millis(1));
        let acquire = tokio::spawn(async move { lock.write_lock().acquire().await });
        let old = expire_mid_request(&server, &fw, Duration::from_micros(run * 400)).await;
        server.set_latency(Duration::ZERO);
        next_session(&fw, old).await;
        if let Ok(guard) = acquire.await.unwrap() {
            let nodes = live_nodes(&server, &observer, &dir).await;
            assert_eq!(nodes, vec![(guard.path().to_owned(), fw.client().session_id())], "run {run}");
            guard.release().await.unwrap();
        }
        common::eventually("no rw lock node left", || async {
            fw.pending_guaranteed_deletes() == 0 && live_nodes(&server, &observer, &dir).await.is_empty()
        })
        .await;

        // A selector: it leads in the next session with one node of that session.
        let dir = format!("/sel-{run}");
        server.set_latency(Duration::from_millis(1));
        let selector =
            LeaderSelector::start(
                &fw,
                dir.clone(),
                "me",
                true,
                |leadership| async move { leadership.invalidated().await },
            );
        let old = expire_mid_request(&server, &fw, Duration::from_micros(run * 400)).await;
        server.set_latency(Duration::ZERO);
        next_session(&fw, old).await;
        common::eventually("the selector leads with one node of the live session", || async {
            let nodes = live_nodes(&server, &observer, &dir).await;
            selector.has_leadership() && nodes.len() == 1 && nodes[0].1 == fw.client().session_id()
        })
        .await;
        selector.close().await;
        assert!(live_nodes(&server, &observer, &dir).await.is_empty(), "run {run}: close leaves nothing");
        fw.close().await;
    }
    observer.close().await;
}

#[tokio::test]
async fn kazoo_semaphore_barrier_and_locking_queue_expired_mid_create_leave_nothing_unowned() {
    use corral_recipes::kazoo::{DoubleBarrier as KazooDoubleBarrier, LockingQueue, Semaphore as KazooSemaphore};

    let env = common::embedded("bound-kazoo").await;
    let server = env.server.clone().unwrap();
    let observer = env.client().await;
    for run in 0..RUNS {
        let fw = env.framework();
        fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
        let lost =
            |e: &corral_recipes::Error| e.is_retryable() || e.code() == corral_recipes::ErrorCode::SessionExpired;

        // kazoo's Semaphore: the lease (and its lock's node) is the current session's, or gone.
        let dir = format!("/ksem-{run}");
        let semaphore = KazooSemaphore::new(&fw, dir.clone(), "rust", 2);
        server.set_latency(Duration::from_millis(1));
        let acquire = tokio::spawn(async move { semaphore.acquire().await.map(|l| (l, semaphore)) });
        let old = expire_mid_request(&server, &fw, Duration::from_micros(run * 400)).await;
        server.set_latency(Duration::ZERO);
        next_session(&fw, old).await;
        match acquire.await.unwrap() {
            Ok((lease, _semaphore)) => {
                let leases = live_nodes(&server, &observer, &dir).await;
                assert_eq!(leases, vec![(lease.path().to_owned(), fw.client().session_id())], "run {run}");
                lease.release().await.unwrap();
            }
            Err(e) => assert!(lost(&e), "run {run}: {e}"),
        }
        common::eventually("no lease or lock node left", || async {
            fw.pending_guaranteed_deletes() == 0
                && live_nodes(&server, &observer, &dir).await.is_empty()
                && live_nodes(&server, &observer, &format!("{dir}-__lock__")).await.is_empty()
        })
        .await;

        // kazoo's DoubleBarrier: our member node exists once, in the current session.
        let dir = format!("/kbarrier-{run}");
        let barrier = KazooDoubleBarrier::new(&fw, dir.clone(), 1, "rust");
        let ours = barrier.node_path().to_owned();
        server.set_latency(Duration::from_millis(1));
        let enter = tokio::spawn(async move { barrier.enter().await.map(|()| barrier) });
        let old = expire_mid_request(&server, &fw, Duration::from_micros(run * 400)).await;
        server.set_latency(Duration::ZERO);
        next_session(&fw, old).await;
        match enter.await.unwrap() {
            Ok(barrier) => {
                let nodes = live_nodes(&server, &observer, &dir).await;
                assert_eq!(nodes, vec![(ours.clone(), fw.client().session_id())], "run {run}");
                barrier.leave().await.unwrap();
            }
            Err(e) => assert!(lost(&e), "run {run}: {e}"),
        }
        common::eventually("no member node left", || async { live_nodes(&server, &observer, &dir).await.is_empty() })
            .await;

        // kazoo's LockingQueue: the taken lock is the current session's, or nobody's.
        let dir = format!("/kqueue-{run}");
        let queue = LockingQueue::new(&fw, dir.clone());
        queue.put("job", 100).await.unwrap();
        server.set_latency(Duration::from_millis(1));
        let get = tokio::spawn(async move { queue.get().await.map(|entry| (entry, queue)) });
        let old = expire_mid_request(&server, &fw, Duration::from_micros(run * 400)).await;
        server.set_latency(Duration::ZERO);
        next_session(&fw, old).await;
        let taken = format!("{dir}/taken");
        match get.await.unwrap() {
            Ok((entry, _queue)) => {
                let locks = live_nodes(&server, &observer, &taken).await;
                assert_eq!(locks, vec![(entry.lock_path().to_owned(), fw.client().session_id())], "run {run}");
                entry.release().await.unwrap();
            }
            Err(e) => assert!(lost(&e), "run {run}: {e}"),
        }
        common::eventually("no taken lock left", || async {
            fw.pending_guaranteed_deletes() == 0 && live_nodes(&server, &observer, &taken).await.is_empty()
        })
        .await;
        fw.close().await;
    }
    observer.close().await;
}
