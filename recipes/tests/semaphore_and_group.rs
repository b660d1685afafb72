//! SemaphoreV2, SemaphoreMutex, MultiLock and GroupMember against the embedded server and (when
//! available) a real ZooKeeper.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use corral_recipes::Error;
use corral_recipes::group_member::GroupMember;
use corral_recipes::lock::Mutex;
use corral_recipes::multi_lock::MultiLock;
use corral_recipes::semaphore::{SemaphoreMutex, SemaphoreV2};

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_semaphore_never_hands_out_more_leases_than_it_has() {
    for env in common::envs("semaphore").await {
        eprintln!("-- against the {} server", env.kind);
        let inside = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let fw = env.framework();
            let (inside, peak) = (inside.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                let sem = SemaphoreV2::new(&fw, "/sem", 2);
                for _ in 0..4 {
                    let lease = sem.acquire().await.unwrap();
                    assert!(lease.is_valid());
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    assert!(now <= 2, "{now} leases out of 2");
                    // A hold inside the lease: widens the window an overlap would show in (checked by `inside`).
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    lease.release().await.unwrap();
                }
                fw.close().await;
            }));
        }
        for t in tasks {
            tokio::time::timeout(T, t).await.expect("no deadlock").unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 2);
        // Capacity is exactly two: two leases at once, the third waits.
        let fw = env.framework();
        let sem = SemaphoreV2::new(&fw, "/sem", 2);
        let (l1, l2) = (sem.acquire().await.unwrap(), sem.acquire().await.unwrap());
        let third = tokio::spawn({
            let sem = sem.clone();
            async move { sem.acquire().await }
        });
        // The third waits on a watch, and nothing the server did so far woke it.
        common::settled(&fw.client(), 1).await;
        assert!(!third.is_finished(), "a third lease out of two");
        l1.release().await.unwrap();
        let l3 = tokio::time::timeout(T, third).await.expect("the freed lease").unwrap().unwrap();
        l2.release().await.unwrap();
        l3.release().await.unwrap();
        fw.close().await;
        let observer = env.client().await;
        assert_eq!(observer.get_children("/sem/leases").await.unwrap(), Vec::<String>::new());
        observer.close().await;
    }
}

#[tokio::test]
async fn semaphore_mutex_and_multi_lock() {
    for env in common::envs("semmutex").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        let lock = SemaphoreMutex::new(&fw, "/sm");
        let lease = lock.acquire().await.unwrap();
        assert!(lease.path().contains("/sm/leases/_c_") && lease.path().contains("-lease-"), "{}", lease.path());
        assert!(lock.try_acquire().await.unwrap().is_none());
        lease.release().await.unwrap();
        assert!(lock.try_acquire().await.unwrap().is_some());

        let multi = MultiLock::new(&fw, ["/m/a", "/m/b"]);
        let held_b = Mutex::new(&fw, "/m/b").acquire().await.unwrap();
        // A timed-out attempt: `a_timed_out_acquisition_leaves_nothing_held` on paused time.
        held_b.release().await.unwrap();
        let both = multi.acquire().await.unwrap();
        assert!(both.is_valid());
        assert_eq!(both.fencing_checks().len(), 2);
        both.release().await.unwrap();
        fw.close().await;
    }
}

#[tokio::test]
async fn group_members_see_each_other_and_leave() {
    for env in common::envs("group").await {
        eprintln!("-- against the {} server", env.kind);
        let fws = [env.framework(), env.framework()];
        let a = GroupMember::start(&fws[0], "/g", "a", "1");
        let b = GroupMember::start(&fws[1], "/g", "b", "2");
        a.wait_for_membership(T).await.unwrap();
        b.wait_for_membership(T).await.unwrap();
        let members = a.members().await.unwrap();
        assert_eq!(members.keys().collect::<Vec<_>>(), ["a", "b"]);
        b.set_data("3").await.unwrap();
        assert_eq!(&a.members().await.unwrap()["b"][..], b"3");
        b.close().await;
        assert_eq!(a.members().await.unwrap().keys().collect::<Vec<_>>(), ["a"]);
        a.close().await;
        for fw in fws {
            fw.close().await;
        }
    }
}

/// The timeouts of `SemaphoreV2` and `MultiLock` on paused time over in-memory connections: a
/// timed-out wait is exact, and leaves nothing held.
#[tokio::test(start_paused = true)]
async fn a_timed_out_acquisition_leaves_nothing_held() {
    let (_server, fw) = common::in_memory().await;
    let sem = SemaphoreV2::new(&fw, "/sem", 2);
    let (l1, l2) = (sem.acquire().await.unwrap(), sem.acquire().await.unwrap());
    let start = tokio::time::Instant::now();
    assert!(matches!(sem.acquire_timeout(Duration::from_secs(600)).await, Err(corral_recipes::Error::TimedOut { .. })));
    assert_eq!(start.elapsed(), Duration::from_secs(600));
    assert_eq!(fw.client().get_children("/sem/leases").await.unwrap().len(), 2, "the timed-out lease is gone");
    l1.release().await.unwrap();
    l2.release().await.unwrap();

    let multi = MultiLock::new(&fw, ["/m/a", "/m/b"]);
    let held_b = Mutex::new(&fw, "/m/b").acquire().await.unwrap();
    let start = tokio::time::Instant::now();
    assert!(matches!(
        multi.acquire_timeout(Duration::from_secs(600)).await,
        Err(corral_recipes::Error::TimedOut { .. })
    ));
    assert_eq!(start.elapsed(), Duration::from_secs(600));
    // Nothing is left held after the failed attempt: /m/a is free.
    assert!(Mutex::new(&fw, "/m/a").try_acquire().await.unwrap().is_some());
    held_b.release().await.unwrap();
    fw.close().await;
}

/// An acquirer whose session expires while it waits for a free lease (holding the inner lock)
/// fails with `SessionLost` naming that session; its lease node and inner lock node went with
/// the session, and nothing was created in the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_waiter_whose_session_expires_fails_with_session_lost_and_leaves_nothing() {
    let env = common::embedded("semaphore-waiter-lost").await;
    let server = env.server.clone().unwrap();
    let observer = env.client().await;
    let (holder_fw, fw) = (env.framework(), env.framework());
    let held = SemaphoreV2::new(&holder_fw, "/sem", 1).acquire().await.unwrap();
    let pool = SemaphoreV2::new(&fw, "/sem", 1);
    let waiting = tokio::spawn({
        let pool = pool.clone();
        async move { pool.acquire().await }
    });
    common::eventually("the waiter made its lease node", || async {
        pool.participant_nodes().await.unwrap().len() == 2
    })
    .await;
    let (err, session) = common::expire_while_waiting(&server, &fw, waiting).await;
    assert_eq!(err, Error::SessionLost { session_id: session });
    let holder_name = held.path().rsplit('/').next().unwrap().to_owned();
    assert_eq!(common::child_owners(&observer, "/sem/leases").await, [(holder_name, held.hold().session_id())]);
    assert!(common::child_owners(&observer, "/sem/locks").await.is_empty(), "the inner lock went with the session");
    held.release().await.unwrap();
    pool.acquire_timeout(T).await.unwrap().release().await.unwrap();
    fw.close().await;
    holder_fw.close().await;
    observer.close().await;
}

/// A multi-lock whose session expires while it holds the first lock and waits for the second
/// fails with `SessionLost` naming that session: the first lock went with it, and nothing was
/// taken in the next session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_lock_whose_session_expires_fails_with_session_lost_and_leaves_nothing() {
    let env = common::embedded("multi-lock-lost").await;
    let server = env.server.clone().unwrap();
    let observer = env.client().await;
    let (holder_fw, fw) = (env.framework(), env.framework());
    let held = Mutex::new(&holder_fw, "/m/b").acquire().await.unwrap();
    let multi = MultiLock::new(&fw, ["/m/a", "/m/b"]);
    let waiting = tokio::spawn(async move { multi.acquire().await });
    let b = Mutex::new(&fw, "/m/b");
    common::eventually("a held, b queued", || async { b.participant_nodes().await.unwrap().len() == 2 }).await;
    let (err, session) = common::expire_while_waiting(&server, &fw, waiting).await;
    assert_eq!(err, Error::SessionLost { session_id: session });
    assert!(common::child_owners(&observer, "/m/a").await.is_empty(), "a went with the session");
    let holder_name = held.path().rsplit('/').next().unwrap().to_owned();
    assert_eq!(common::child_owners(&observer, "/m/b").await, [(holder_name, held.session_id())]);
    held.release().await.unwrap();
    fw.close().await;
    holder_fw.close().await;
    observer.close().await;
}

/// A multi-lock whose session expires after its first lock is held and while its second
/// lock's node is being made takes no lock in the next session: it fails with `SessionLost`
/// naming the first lock's session (it used to take the second lock in the next session and
/// return it beside a first lock gone with the old one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_lock_never_takes_its_next_lock_in_a_later_session() {
    let env = common::embedded("multi-lock-between").await;
    let server = env.server.clone().unwrap();
    let observer = env.client().await;
    for dir in ["/m", "/m/a", "/m/b"] {
        observer.create(dir, "", corral_recipes::CreateMode::Persistent).await.unwrap();
    }
    let fw = env.framework();
    fw.wait_until_connected(T).await.unwrap();
    let session = fw.client().session_id();
    let (_, _, b_made) = observer.get_children_and_watch("/m/b").await.unwrap();
    // Every request waits 50 ms before it is handled: the second lock's listing is handled
    // well after its create, whose watch event arrives at once.
    server.set_latency(Duration::from_millis(50));
    let multi = MultiLock::new(&fw, ["/m/a", "/m/b"]);
    let waiting = tokio::spawn(async move { multi.acquire().await });
    tokio::time::timeout(T, b_made).await.expect("the second lock's node is made");
    assert!(server.expire_session(session));
    server.set_latency(Duration::ZERO);
    let err = tokio::time::timeout(T, waiting).await.unwrap().unwrap().unwrap_err();
    assert_eq!(err, Error::SessionLost { session_id: session });
    let next = fw.session().await.unwrap();
    assert_ne!(next.id(), session);
    assert!(common::child_owners(&observer, "/m/a").await.is_empty(), "a went with the session");
    assert!(common::child_owners(&observer, "/m/b").await.is_empty(), "b was not taken in the next session");
    fw.close().await;
    observer.close().await;
}
