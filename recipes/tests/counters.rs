//! SharedCount and DistributedAtomicLong against the embedded server and (when available) a
//! real ZooKeeper: no lost update under concurrency, compare-and-set, and a SharedCount that
//! sees what was written while it was disconnected or its session expired.

mod common;
#[path = "common/settle.rs"]
mod settle;

use std::time::Duration;

use corral_recipes::atomic::{DistributedAtomicLong, PromotedToLock};
use corral_recipes::shared_count::SharedCount;
use corral_recipes::{ConnectionState, CreateMode, RetryNTimes};
use corral_test_support::Fault;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_lose_nothing() {
    const TASKS: usize = 8;
    const EACH: usize = 15;
    for env in common::envs("atomic-concurrent").await {
        eprintln!("-- against the {} server", env.kind);
        let fws = [env.framework(), env.framework()];
        let tasks: Vec<_> = (0..TASKS)
            .map(|i| {
                let counter = DistributedAtomicLong::new(
                    &fws[i % 2],
                    "/counters/hits",
                    RetryNTimes::new(1000, Duration::from_millis(1)),
                );
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    for _ in 0..EACH {
                        let result = counter.increment().await.expect("increment");
                        assert!(result.succeeded, "gave up: {result:?}");
                        assert_eq!(result.post_value, result.pre_value + 1);
                        seen.push(result.post_value);
                    }
                    seen
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(tokio::time::timeout(T, t).await.expect("increments finish").unwrap());
        }
        all.sort_unstable();
        let expected: Vec<i64> = (1..=(TASKS * EACH) as i64).collect();
        assert_eq!(all, expected, "every increment produced its own value");
        let counter = DistributedAtomicLong::new(&fws[0], "/counters/hits", RetryNTimes::new(0, Duration::ZERO));
        assert_eq!(counter.get().await.unwrap().post_value, (TASKS * EACH) as i64);
        for fw in &fws {
            fw.close().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promoted_to_lock_updates_lose_nothing_and_leave_no_lock_node() {
    const TASKS: usize = 6;
    const EACH: usize = 10;
    let env = common::embedded("atomic-promoted").await;
    let fw = env.framework();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            // No optimistic retry: every lost race goes to the lock. The lock does not keep out
            // other tasks' optimistic tries (as in Curator), and a task whose try succeeds goes
            // on to its next add, so a holder can lose a race to each of the other adds at
            // most: enough tries under the lock for that never to end in giving up.
            let promotion = PromotedToLock::new("/counters/hits-lock")
                .retry_policy(RetryNTimes::new((TASKS * EACH) as u32, Duration::ZERO));
            let counter = DistributedAtomicLong::new(&fw, "/counters/hits", RetryNTimes::new(0, Duration::ZERO))
                .promoted_to_lock(promotion);
            tokio::spawn(async move {
                let mut promoted = 0;
                for _ in 0..EACH {
                    let result = counter.add(2).await.expect("add");
                    assert!(result.succeeded, "gave up: {result:?}");
                    assert_eq!(result.stats.optimistic_tries, 1);
                    promoted += result.stats.promoted_lock_tries;
                }
                promoted
            })
        })
        .collect();
    let mut promoted = 0;
    for t in tasks {
        promoted += tokio::time::timeout(T, t).await.expect("adds finish").unwrap();
    }
    eprintln!("{promoted} tries under the lock");
    let counter = DistributedAtomicLong::new(&fw, "/counters/hits", RetryNTimes::new(0, Duration::ZERO));
    assert_eq!(counter.get().await.unwrap().post_value, (2 * TASKS * EACH) as i64);
    let locks = fw.client().get_children("/counters/hits-lock").await.unwrap_or_default();
    assert!(locks.is_empty(), "lock nodes left: {locks:?}");
    fw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_compare_and_set_wins_and_initialize_happens_once() {
    for env in common::envs("atomic-cas").await {
        let fw = env.framework();
        let counter = DistributedAtomicLong::new(&fw, "/n", RetryNTimes::new(0, Duration::ZERO));
        assert!(!counter.compare_and_set(0, 1).await.unwrap().succeeded, "no node: nothing to compare");
        let inits: Vec<_> = (0..5)
            .map(|i| {
                let c = counter.clone();
                tokio::spawn(async move { c.try_initialize(i).await.unwrap() })
            })
            .collect();
        let mut created = 0;
        for i in inits {
            created += usize::from(i.await.unwrap());
        }
        assert_eq!(created, 1);
        counter.force_set(10).await.unwrap();
        let tries: Vec<_> = (0..8)
            .map(|i| {
                let c = counter.clone();
                tokio::spawn(async move { c.compare_and_set(10, 100 + i).await.unwrap() })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tries {
            let result = t.await.unwrap();
            if result.succeeded {
                assert_eq!(result.pre_value, 10);
                winners.push(result.post_value);
            }
        }
        assert_eq!(winners.len(), 1, "exactly one compare-and-set from 10 wins");
        assert_eq!(counter.get().await.unwrap().post_value, winners[0]);
        fw.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_counts_agree_and_compare_and_set_on_the_version() {
    const TASKS: usize = 5;
    const EACH: usize = 8;
    for env in common::envs("shared-count").await {
        eprintln!("-- against the {} server", env.kind);
        let (fw_a, fw_b) = (env.framework(), env.framework());
        let a = SharedCount::start(&fw_a, "/shared/count", 0).await.unwrap();
        let b = SharedCount::start(&fw_b, "/shared/count", 99).await.unwrap();
        assert_eq!(b.count(), 0, "the seed only applies to a new node");

        let stale = b.versioned_count();
        assert!(a.try_set_count(&a.versioned_count(), 5).await.unwrap());
        let mut changes = b.changes();
        tokio::time::timeout(T, changes.wait_for(|v| *v.value() == 5)).await.expect("b sees 5").unwrap();
        assert!(!b.try_set_count(&stale, 6).await.unwrap(), "stale version");
        assert_eq!(b.count(), 5);

        let counts: Vec<_> = (0..TASKS)
            .map(|i| {
                let fw = if i % 2 == 0 { fw_a.clone() } else { fw_b.clone() };
                tokio::spawn(async move {
                    let count = SharedCount::start(&fw, "/shared/count", 0).await.unwrap();
                    for _ in 0..EACH {
                        loop {
                            let seen = count.versioned_count();
                            if count.try_set_count(&seen, seen.value() + 1).await.unwrap() {
                                break;
                            }
                            tokio::task::yield_now().await;
                        }
                    }
                    count.close().await;
                })
            })
            .collect();
        for c in counts {
            tokio::time::timeout(T, c).await.expect("increments finish").unwrap();
        }
        let expected = 5 + (TASKS * EACH) as i32;
        for count in [&a, &b] {
            let mut changes = count.changes();
            tokio::time::timeout(T, changes.wait_for(|v| *v.value() == expected)).await.expect("converged").unwrap();
        }
        let (data, _) = fw_a.client().get_data("/shared/count").await.unwrap();
        assert_eq!(&data[..], expected.to_be_bytes());
        a.close().await;
        b.close().await;
        assert_eq!(fw_a.client().watcher_count().await, 0, "closed counts hold no watch");
        fw_a.close().await;
        fw_b.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_count_sees_what_was_set_while_it_was_disconnected() {
    let env = common::embedded("shared-count-disconnected").await;
    let server = env.server.clone().unwrap();
    let (fw, gate) = env.gated_framework();
    let count = SharedCount::start(&fw, "/shared/count", 1).await.unwrap();
    let observer = env.client().await;

    // The same session: the connection drops, the count is set meanwhile.
    gate.set(Fault::Refuse);
    fw.connection_state().wait_for(|s| s.state == ConnectionState::Suspended).await.unwrap();
    // The reply says the server applied the write; the count's session has no connection to
    // hear of it through (the gate is closed), so it must still hold the old value.
    observer.set_data("/shared/count", 7i32.to_be_bytes().to_vec(), None).await.unwrap();
    assert_eq!(fw.current_state().state, ConnectionState::Suspended, "the gate is closed");
    assert_eq!(count.count(), 1, "nothing read without a connection");
    gate.set(Fault::Pass);
    let mut changes = count.changes();
    tokio::time::timeout(T, changes.wait_for(|v| *v.value() == 7)).await.expect("sees 7 after reconnecting").unwrap();
    assert_eq!(count.versioned_count().version(), 1);
    assert_eq!(fw.current_state().epoch, 1);

    // A new session: the session expires while disconnected, the count is set meanwhile.
    let session = fw.current_state().session_id;
    gate.set(Fault::Refuse);
    fw.connection_state().wait_for(|s| s.state == ConnectionState::Suspended).await.unwrap();
    assert!(server.expire_session(session));
    observer.set_data("/shared/count", 8i32.to_be_bytes().to_vec(), None).await.unwrap();
    gate.set(Fault::Pass);
    tokio::time::timeout(T, changes.wait_for(|v| *v.value() == 8)).await.expect("sees 8 on the new session").unwrap();
    assert_eq!(fw.current_state().epoch, 2);

    // And it keeps following on the new session.
    observer.set_data("/shared/count", 9i32.to_be_bytes().to_vec(), None).await.unwrap();
    tokio::time::timeout(T, changes.wait_for(|v| *v.value() == 9)).await.expect("sees 9").unwrap();
    count.close().await;
    fw.close().await;
    observer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_count_waits_out_a_deleted_node() {
    let env = common::embedded("shared-count-deleted").await;
    let fw = env.framework();
    let count = SharedCount::start(&fw, "/shared/count", 3).await.unwrap();
    let observer = env.client().await;
    observer.delete("/shared/count", None).await.unwrap();
    // The count has heard of the delete and watches for the node to come back.
    settle::settled(&fw.client(), 1).await;
    assert_eq!(count.count(), 3, "the last value stays");
    observer.create("/shared/count", 4i32.to_be_bytes().to_vec(), CreateMode::Persistent).await.unwrap();
    let mut changes = count.changes();
    tokio::time::timeout(T, changes.wait_for(|v| *v.value() == 4)).await.expect("sees the new node").unwrap();
    assert_eq!(count.versioned_count().version(), 0);
    assert!(count.try_set_count(&count.versioned_count(), 5).await.unwrap());
    count.close().await;
    fw.close().await;
    observer.close().await;
}
