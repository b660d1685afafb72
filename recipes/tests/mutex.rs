//! The Mutex recipe against the embedded server and (when available) a real ZooKeeper.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use corral_recipes::lock::Mutex;
use corral_recipes::{ConnectionState, CoreError, CreateMode, Op};

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contenders_never_hold_the_lock_together() {
    for env in common::envs("mutex-excl").await {
        eprintln!("-- against the {} server", env.kind);
        let holders = Arc::new(AtomicUsize::new(0));
        let acquisitions = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let fw = env.framework();
            let (holders, acquisitions) = (holders.clone(), acquisitions.clone());
            tasks.push(tokio::spawn(async move {
                let mutex = Mutex::new(&fw, "/lock");
                for _ in 0..10 {
                    let guard = mutex.acquire().await.expect("acquire");
                    assert_eq!(holders.fetch_add(1, Ordering::SeqCst), 0, "two holders at once");
                    tokio::task::yield_now().await;
                    holders.fetch_sub(1, Ordering::SeqCst);
                    acquisitions.fetch_add(1, Ordering::SeqCst);
                    guard.release().await.expect("release");
                }
                fw.close().await;
            }));
        }
        for t in tasks {
            tokio::time::timeout(T, t).await.expect("no deadlock").expect("task");
        }
        assert_eq!(acquisitions.load(Ordering::SeqCst), 40);
        let observer = env.client().await;
        assert_eq!(observer.get_children("/lock").await.unwrap(), Vec::<String>::new(), "every node released");
        observer.close().await;
    }
}

#[tokio::test]
async fn try_and_timeout_leave_nothing_behind_and_names_follow_curator() {
    for env in common::envs("mutex-try").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        let other = env.framework();
        let guard = Mutex::new(&fw, "/lock").acquire().await.unwrap();
        let name = guard.path().rsplit('/').next().unwrap().to_owned();
        assert!(name.starts_with("_c_") && name.len() == 40 + "lock-".len() + 10, "{name}");
        assert_eq!(&name[39..45], "-lock-");

        let contender = Mutex::new(&other, "/lock");
        assert!(contender.try_acquire().await.unwrap().is_none());
        // A timed-out acquire: `a_timed_out_acquire_leaves_nothing_behind` on paused time.
        assert_eq!(contender.participant_nodes().await.unwrap(), vec![name.clone()]);

        // A dropped acquire future removes its node too.
        let pending = tokio::spawn({
            let contender = contender.clone();
            async move { contender.acquire().await }
        });
        common::eventually("the waiter queued", || async { contender.participant_nodes().await.unwrap().len() == 2 })
            .await;
        pending.abort();
        common::eventually("the abandoned node removed", || async {
            contender.participant_nodes().await.unwrap().len() == 1
        })
        .await;

        let fence = guard.fencing_token();
        guard.release().await.unwrap();
        let next = contender.acquire().await.unwrap();
        assert!(next.fencing_token() > fence, "fencing tokens increase");
        next.release().await.unwrap();
        fw.close().await;
        other.close().await;
    }
}

/// On paused time over in-memory connections: the wait is exact, and the timed-out contender's
/// node is gone with it.
#[tokio::test(start_paused = true)]
async fn a_timed_out_acquire_leaves_nothing_behind() {
    let (server, fw) = common::in_memory().await;
    let other = common::in_memory_framework(&server).await;
    let guard = Mutex::new(&fw, "/lock").acquire().await.unwrap();
    let name = guard.path().rsplit('/').next().unwrap().to_owned();
    let contender = Mutex::new(&other, "/lock");
    let start = tokio::time::Instant::now();
    assert!(matches!(
        contender.acquire_timeout(Duration::from_secs(600)).await,
        Err(corral_recipes::Error::TimedOut { .. })
    ));
    assert_eq!(start.elapsed(), Duration::from_secs(600));
    assert_eq!(contender.participant_nodes().await.unwrap(), vec![name]);
    guard.release().await.unwrap();
    contender.acquire().await.unwrap().release().await.unwrap();
    fw.close().await;
    other.close().await;
}

#[tokio::test]
async fn waiters_watch_only_their_predecessor() {
    let env = common::embedded("mutex-herd").await;
    let server = env.server.clone().unwrap();
    let fw = env.framework();
    let holder = Mutex::new(&fw, "/lock").acquire().await.unwrap();
    let mut waiters = Vec::new();
    for _ in 0..5 {
        let waiter_fw = env.framework();
        waiters.push(tokio::spawn(async move {
            let g = Mutex::new(&waiter_fw, "/lock").acquire().await.unwrap();
            g.release().await.unwrap();
            waiter_fw.close().await;
        }));
        // Queue them one at a time so the order is known.
        let mutex = Mutex::new(&fw, "/lock");
        let n = waiters.len() + 1;
        common::eventually("queued", || async { mutex.participant_nodes().await.unwrap().len() == n }).await;
    }
    // Five waiters, five watches, each on a different node, none on the directory.
    let wchp = four_letter(&server, "wchp").await;
    let watched: Vec<&str> = wchp.lines().filter(|l| l.starts_with('/')).collect();
    assert_eq!(watched.len(), 5, "{wchp}");
    assert!(watched.iter().all(|p| p.starts_with("/mutex-herd/lock/_c_")), "{wchp}");
    holder.release().await.unwrap();
    for w in waiters {
        tokio::time::timeout(T, w).await.unwrap().unwrap();
    }
    fw.close().await;
}

async fn four_letter(server: &corral_server::testing::TestingServer, word: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    s.write_all(word.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn a_guard_is_invalid_once_suspended_and_the_fencing_check_fails_after_expiry() {
    let env = common::embedded("mutex-faults").await;
    let server = env.server.clone().unwrap();
    let fw = env.framework();
    let guard = Mutex::new(&fw, "/lock").acquire().await.unwrap();
    assert!(guard.is_valid());
    assert!(guard.check_ownership().await.unwrap());

    // A dropped connection: SUSPENDED makes the guard invalid under the Standard policy.
    server.drop_connection(guard.session_id());
    tokio::time::timeout(T, guard.invalidated()).await.expect("invalidated on SUSPENDED");
    assert!(!guard.is_valid());
    let mut states = fw.connection_state();
    states.wait_for(|s| s.state == ConnectionState::Reconnected).await.unwrap();
    assert!(!guard.is_valid(), "a guard never becomes valid again");

    // A server-side expiry: the node goes, and a transaction fenced by the guard fails.
    server.expire_session(guard.session_id());
    states.wait_for(|s| s.epoch == 2 && s.state.is_connected()).await.unwrap();
    let err = fw
        .transaction(vec![guard.fencing_check(), Op::create("/write", "x", CreateMode::Persistent)])
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::MultiFailed { index: 0, .. }), "{err:?}");
    assert!(!guard.check_ownership().await.unwrap());
    // Someone else can take the lock now.
    let other = env.framework();
    let g2 = Mutex::new(&other, "/lock").acquire_timeout(T).await.expect("free after expiry");
    drop(guard);
    g2.release().await.unwrap();
    other.close().await;
    fw.close().await;
}

#[tokio::test]
async fn session_only_policy_keeps_the_lock_across_a_short_disconnection() {
    let env = common::embedded("mutex-sessiononly").await;
    let server = env.server.clone().unwrap();
    let fw = corral_recipes::Framework::builder(env.connect_string())
        .session_timeout(Duration::from_secs(10))
        .error_policy(corral_recipes::ErrorPolicy::SessionOnly)
        .start()
        .unwrap();
    let guard = Mutex::new(&fw, "/lock").acquire().await.unwrap();
    let mut states = fw.connection_state();
    server.drop_connection(guard.session_id());
    states.wait_for(|s| s.state == ConnectionState::Suspended).await.unwrap();
    assert!(guard.is_valid());
    states.wait_for(|s| s.state == ConnectionState::Reconnected).await.unwrap();
    assert!(guard.is_valid());
    assert!(guard.check_ownership().await.unwrap());
    guard.release().await.unwrap();
    fw.close().await;
}

/// A waiter whose session expires while it waits for a held lock fails with `SessionLost`
/// naming that session (the code still says SessionExpired); its node went with the session,
/// and nothing was created in the next one: the holder's node is the only one left. The same
/// for kazoo's layout, which runs on the same engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_whose_session_expires_fails_with_session_lost_and_leaves_nothing() {
    let env = common::embedded("mutex-waiter-lost").await;
    let server = env.server.clone().unwrap();
    let observer = env.client().await;
    let curator: fn(&corral_recipes::Framework) -> Mutex = |fw| Mutex::new(fw, "/lock");
    let kazoo: fn(&corral_recipes::Framework) -> Mutex = |fw| corral_recipes::kazoo::lock(fw, "/klock", "rust");
    for (dir, make) in [("/lock", curator), ("/klock", kazoo)] {
        let (holder_fw, fw) = (env.framework(), env.framework());
        let held = make(&holder_fw).acquire().await.unwrap();
        common::assert_a_lost_waiter_leaves_nothing(&server, &observer, &fw, dir, held, &make(&fw)).await;
        fw.close().await;
        holder_fw.close().await;
    }
    observer.close().await;
}

/// A waiter whose framework is closed under it ends with `Closed`, not `SessionLost`: the close
/// ended the work, and an application that starts over on `SessionLost` must not start over.
#[tokio::test]
async fn a_waiter_whose_framework_closes_fails_with_closed() {
    let env = common::embedded("mutex-waiter-closed").await;
    let (holder_fw, fw) = (env.framework(), env.framework());
    let held = Mutex::new(&holder_fw, "/lock").acquire().await.unwrap();
    let waiter = Mutex::new(&fw, "/lock");
    let waiting = tokio::spawn({
        let waiter = waiter.clone();
        async move { waiter.acquire().await }
    });
    common::eventually("the waiter queued", || async { waiter.participant_nodes().await.unwrap().len() == 2 }).await;
    fw.close().await;
    let err = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the acquisition ends")
        .expect("the task")
        .expect_err("no acquisition");
    assert_eq!(err, corral_recipes::Error::Core(CoreError::Closed), "{err:?}");
    // The waiter's node went with the closed session; the holder's is the only one left.
    let observer = env.client().await;
    let holder_name = held.path().rsplit('/').next().unwrap().to_owned();
    assert_eq!(common::child_owners(&observer, "/lock").await, [(holder_name, held.session_id())]);
    held.release().await.unwrap();
    observer.close().await;
    holder_fw.close().await;
}
