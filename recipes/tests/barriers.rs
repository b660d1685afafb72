//! DistributedBarrier and DistributedDoubleBarrier against the embedded server and (when
//! available) a real ZooKeeper: waiters wake, members enter only when all have arrived and leave
//! only when all have left, timeouts on paused time, dropped connections and expiry.

mod common;
#[path = "common/settle.rs"]
mod settle;

use std::sync::Arc;
use std::time::Duration;

use corral_recipes::Client;
use corral_recipes::barrier::DistributedBarrier;
use corral_recipes::double_barrier::{DistributedDoubleBarrier, READY_NODE};
use corral_test_support::Fault;
use tokio::time::Instant;

const T: Duration = Duration::from_secs(30);

/// Asserts that `task` still waits once the session it waits on (`client`, holding `watches`
/// watches while it waits) has settled: everything the server had to tell it has arrived.
async fn assert_pending<R>(what: &str, task: &tokio::task::JoinHandle<R>, client: &Client, watches: usize) {
    settle::settled(client, watches).await;
    assert!(!task.is_finished(), "{what} finished early");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barrier_waiters_wake_when_it_is_removed() {
    for env in common::envs("barrier-wake").await {
        eprintln!("-- against the {} server", env.kind);
        let (fw, other) = (env.framework(), env.framework());
        let barrier = DistributedBarrier::new(&fw, "/gate");
        barrier.set_barrier().await.unwrap();
        let observer = env.client().await;
        let (data, _) = observer.get_data("/gate").await.unwrap();
        let text = String::from_utf8(data.to_vec()).unwrap();
        assert!(text.parse::<std::net::IpAddr>().is_ok(), "Curator's default data is an address, not {text:?}");

        let waiters: Vec<_> = (0..3)
            .map(|i| {
                let b = DistributedBarrier::new(if i % 2 == 0 { &fw } else { &other }, "/gate");
                tokio::spawn(async move { b.wait_on_barrier().await })
            })
            .collect();
        // Waiters 0 and 2 wait through `fw`, waiter 1 through `other`.
        settle::settled(&fw.client(), 2).await;
        for w in &waiters {
            assert_pending("a waiter on a set barrier", w, &other.client(), 1).await;
        }
        DistributedBarrier::new(&other, "/gate").remove_barrier().await.unwrap();
        for w in waiters {
            tokio::time::timeout(T, w).await.expect("waiter woke").unwrap().unwrap();
        }
        assert_eq!(fw.client().watcher_count().await, 0, "woken waiters hold no watch");
        fw.close().await;
        other.close().await;
        observer.close().await;
    }
}

#[tokio::test(start_paused = true)]
async fn barrier_timeout_is_exact_on_paused_time() {
    let (_server, fw) = common::in_memory().await;
    let barrier = DistributedBarrier::new(&fw, "/gate");
    barrier.set_barrier().await.unwrap();
    let start = Instant::now();
    assert!(matches!(
        barrier.wait_on_barrier_timeout(Duration::from_secs(60)).await,
        Err(corral_recipes::Error::TimedOut { .. })
    ));
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(60) && waited < Duration::from_secs(61), "waited {waited:?}");
    assert_eq!(fw.client().watcher_count().await, 0, "a timed-out waiter holds no watch");
    barrier.remove_barrier().await.unwrap();
    barrier.wait_on_barrier_timeout(Duration::from_secs(60)).await.unwrap();
    assert!(start.elapsed() < Duration::from_secs(61), "an open barrier does not wait");
    fw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barrier_waiter_wakes_when_removed_while_it_was_disconnected() {
    let env = common::embedded("barrier-disconnected").await;
    let (fw, gate) = env.gated_framework();
    fw.wait_until_connected(T).await.unwrap();
    let barrier = DistributedBarrier::new(&fw, "/gate");
    barrier.set_barrier().await.unwrap();
    let waiter = tokio::spawn(async move { barrier.wait_on_barrier().await });
    assert_pending("a waiter on a set barrier", &waiter, &fw.client(), 1).await;

    gate.set(Fault::Refuse);
    fw.connection_state().wait_for(|s| !s.state.is_connected()).await.unwrap();
    let observer = env.client().await;
    // The delete's reply says the server applied it; the waiter's session has no connection to
    // hear of it through (the gate is closed), so it must still wait.
    observer.delete("/gate", None).await.unwrap();
    assert!(!fw.current_state().state.is_connected(), "the gate is closed");
    assert!(!waiter.is_finished(), "woke without a connection");
    gate.set(Fault::Pass);
    tokio::time::timeout(T, waiter).await.expect("waiter woke after reconnecting").unwrap().unwrap();
    assert_eq!(fw.current_state().epoch, 1, "the same session");
    fw.close().await;
    observer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barrier_waiter_wakes_after_session_expiry() {
    let env = common::embedded("barrier-expiry").await;
    let server = env.server.clone().unwrap();
    let fw = env.framework();
    let barrier = DistributedBarrier::new(&fw, "/gate");
    barrier.set_barrier().await.unwrap();
    let observer = env.client().await;
    for round in 1..=2u64 {
        let waiter = tokio::spawn({
            let barrier = barrier.clone();
            async move { barrier.wait_on_barrier().await }
        });
        assert_pending("a waiter on a set barrier", &waiter, &fw.client(), 1).await;
        assert!(server.expire_session(fw.current_state().session_id));
        if round == 1 {
            // Removed between the sessions: the waiter finds it gone on the new session.
            observer.delete("/gate", None).await.unwrap();
        } else {
            // Removed once the new session is there: the waiter watches again on it.
            fw.connection_state().wait_for(|s| s.epoch == round + 1 && s.state.is_connected()).await.unwrap();
            assert_pending("a waiter while the barrier is still set", &waiter, &fw.client(), 1).await;
            observer.delete("/gate", None).await.unwrap();
        }
        tokio::time::timeout(T, waiter).await.expect("waiter woke").unwrap().unwrap();
        barrier.set_barrier().await.unwrap();
    }
    fw.close().await;
    observer.close().await;
}

/// N members on their own sessions: nobody enters before the last arrives; nobody's leave
/// returns before the last leaves; everything is cleaned up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_barrier_enters_and_leaves_together() {
    const N: usize = 4;
    for env in common::envs("double-barrier").await {
        eprintln!("-- against the {} server", env.kind);
        let fws: Vec<_> = (0..N).map(|_| env.framework()).collect();
        let members: Vec<_> = fws.iter().map(|fw| Arc::new(DistributedDoubleBarrier::new(fw, "/batch", N))).collect();
        let observer = env.client().await;
        // The straggler's node sorts lowest in one round and highest in the other: Curator's leave
        // treats the lowest member differently.
        let mut order: Vec<usize> = (0..N).collect();
        order.sort_by_key(|i| members[*i].our_path().to_owned());
        for straggler in [order[0], order[N - 1]] {
            let entering: Vec<_> = (0..N)
                .filter(|i| *i != straggler)
                .map(|i| {
                    let m = members[i].clone();
                    tokio::spawn(async move { m.enter().await })
                })
                .collect();
            common::eventually("N - 1 member nodes", || async {
                observer.get_children("/batch").await.map(|c| c.len()).unwrap_or(0) == N - 1
            })
            .await;
            for (i, e) in (0..N).filter(|i| *i != straggler).zip(&entering) {
                assert_pending("enter before the last member arrived", e, &fws[i].client(), 1).await;
            }
            assert_eq!(observer.exists(&format!("/batch/{READY_NODE}")).await.unwrap(), None);
            tokio::time::timeout(T, members[straggler].enter()).await.expect("last enters").unwrap();
            for e in entering {
                tokio::time::timeout(T, e).await.expect("all enter").unwrap().unwrap();
            }

            let leaving: Vec<_> = (0..N)
                .filter(|i| *i != straggler)
                .map(|i| {
                    let m = members[i].clone();
                    tokio::spawn(async move { m.leave().await })
                })
                .collect();
            for (i, l) in (0..N).filter(|i| *i != straggler).zip(&leaving) {
                assert_pending("leave before the last member left", l, &fws[i].client(), 1).await;
            }
            assert!(observer.exists(members[straggler].our_path()).await.unwrap().is_some());
            tokio::time::timeout(T, members[straggler].leave()).await.expect("last leaves").unwrap();
            for l in leaving {
                tokio::time::timeout(T, l).await.expect("all leave").unwrap().unwrap();
            }
            assert_eq!(observer.get_children("/batch").await.unwrap(), Vec::<String>::new(), "members and ready gone");
        }
        for fw in &fws {
            assert_eq!(fw.client().watcher_count().await, 0);
            fw.close().await;
        }
        observer.close().await;
    }
}

#[tokio::test(start_paused = true)]
async fn double_barrier_timeouts_on_paused_time() {
    let (_server, fw) = common::in_memory().await;
    let alone = DistributedDoubleBarrier::new(&fw, "/batch", 2);
    let start = Instant::now();
    assert!(matches!(alone.enter_timeout(Duration::from_secs(45)).await, Err(corral_recipes::Error::TimedOut { .. })));
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(45) && waited < Duration::from_secs(46), "waited {waited:?}");
    assert!(fw.client().get_children("/batch").await.unwrap().is_empty(), "a member that gave up is not counted");

    let (a, b) = (DistributedDoubleBarrier::new(&fw, "/batch", 2), DistributedDoubleBarrier::new(&fw, "/batch", 2));
    let (ea, eb) = tokio::join!(a.enter(), b.enter());
    ea.unwrap();
    eb.unwrap();
    let start = Instant::now();
    assert!(
        matches!(a.leave_timeout(Duration::from_secs(20)).await, Err(corral_recipes::Error::TimedOut { .. })),
        "b is still there"
    );
    assert!(start.elapsed() >= Duration::from_secs(20));
    assert!(fw.client().exists(a.our_path()).await.unwrap().is_none(), "a left anyway");
    b.leave_timeout(Duration::from_secs(20)).await.unwrap();
    assert!(fw.client().get_children("/batch").await.unwrap().is_empty());
    assert_eq!(fw.client().watcher_count().await, 0);
    fw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_enter_removes_its_member_node() {
    let env = common::embedded("double-barrier-cancel").await;
    let fw = env.framework();
    let member = DistributedDoubleBarrier::new(&fw, "/batch", 2);
    let observer = env.client().await;
    {
        let client = fw.client();
        let mut enter = std::pin::pin!(member.enter());
        tokio::select! {
            entered = &mut enter => panic!("entered alone: {entered:?}"),
            // The member has made its node and waits on its watch for the ready node.
            () = async {
                common::eventually("the member node", || async {
                    observer.get_children("/batch").await.is_ok_and(|names| names.len() == 1)
                })
                .await;
                settle::settled(&client, 1).await;
            } => {}
        }
    } // dropped while it waits
    common::eventually("the abandoned member node is deleted", || async {
        observer.get_children("/batch").await.map(|c| c.is_empty()).unwrap_or(false)
    })
    .await;
    fw.close().await;
    observer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entering_member_rejoins_after_session_expiry() {
    let env = common::embedded("double-barrier-expiry").await;
    let server = env.server.clone().unwrap();
    let (fw_a, fw_b) = (env.framework(), env.framework());
    let a = Arc::new(DistributedDoubleBarrier::new(&fw_a, "/batch", 2));
    let entering = tokio::spawn({
        let a = a.clone();
        async move { a.enter().await }
    });
    let observer = env.client().await;
    common::eventually("a's node", || async { observer.exists(a.our_path()).await.unwrap().is_some() }).await;
    assert!(server.expire_session(fw_a.current_state().session_id));
    fw_a.connection_state().wait_for(|s| s.epoch == 2 && s.state.is_connected()).await.unwrap();
    common::eventually("a's node again, on the new session", || async {
        observer
            .exists(a.our_path())
            .await
            .unwrap()
            .is_some_and(|s| s.ephemeral_owner == fw_a.current_state().session_id)
    })
    .await;
    assert!(!entering.is_finished());
    DistributedDoubleBarrier::new(&fw_b, "/batch", 2).enter().await.unwrap();
    tokio::time::timeout(T, entering).await.expect("a entered").unwrap().unwrap();
    fw_a.close().await;
    fw_b.close().await;
    observer.close().await;
}
