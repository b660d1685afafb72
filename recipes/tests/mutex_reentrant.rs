//! Re-entrant acquisition of a Mutex through its guard (`MutexGuard::reenter`), against the
//! embedded server and (when available) a real ZooKeeper: one node however many times the
//! holder re-enters, the lock passed on only when the last guard goes, and no other contender
//! let in meanwhile.

mod common;
#[path = "common/settle.rs"]
mod settle;

use std::time::Duration;

use corral_recipes::lock::Mutex;

const T: Duration = Duration::from_secs(30);

#[tokio::test]
async fn re_entries_share_one_node_and_only_the_last_release_lets_the_next_in() {
    for env in common::envs("mutex-reenter").await {
        eprintln!("-- against the {} server", env.kind);
        let (fw, other) = (env.framework(), env.framework());
        let mutex = Mutex::new(&fw, "/lock");
        let outer = mutex.acquire().await.unwrap();
        let inner = outer.reenter();
        let innermost = inner.reenter();
        assert_eq!(outer.lock_count(), 3);
        for guard in [&outer, &inner, &innermost] {
            assert_eq!(guard.path(), outer.path());
            assert_eq!(guard.fencing_token(), outer.fencing_token());
            assert!(guard.is_valid());
        }
        assert_eq!(mutex.participant_nodes().await.unwrap().len(), 1, "no node per re-entry");

        // A contender of another session queues behind the one node.
        let waiter = tokio::spawn({
            let mutex = Mutex::new(&other, "/lock");
            async move { mutex.acquire().await }
        });
        common::eventually("the contender queued", || async { mutex.participant_nodes().await.unwrap().len() == 2 })
            .await;

        // Inner releases, in any order, only count down: the node stays, the contender waits.
        inner.release().await.unwrap();
        assert_eq!(outer.lock_count(), 2);
        drop(outer);
        assert_eq!(innermost.lock_count(), 1);
        assert!(innermost.is_valid());
        assert!(innermost.check_ownership().await.unwrap(), "the node survived the inner releases");
        // Everything the server did so far has reached the contender, which still waits on its watch.
        settle::settled(&other.client(), 1).await;
        assert!(!waiter.is_finished(), "the contender got the lock while a re-entered guard held it");

        // The last guard releases: the node goes, the contender holds.
        let node = innermost.path().to_owned();
        innermost.release().await.unwrap();
        assert_eq!(fw.client().exists(&node).await.unwrap(), None);
        let next = tokio::time::timeout(T, waiter).await.expect("the contender acquires").unwrap().unwrap();
        assert!(next.is_valid());
        assert_eq!(next.lock_count(), 1);
        next.release().await.unwrap();
        assert!(mutex.participant_nodes().await.unwrap().is_empty());
        fw.close().await;
        other.close().await;
    }
}

#[tokio::test]
async fn dropping_every_guard_releases_in_the_background_and_validity_is_shared() {
    let env = common::embedded("mutex-reenter-drop").await;
    let server = env.server.clone().unwrap();
    let fw = env.framework();
    let mutex = Mutex::new(&fw, "/lock");

    // Dropped in turn: the node stays until the last one.
    let outer = mutex.acquire().await.unwrap();
    let inner = outer.reenter();
    drop(outer);
    assert!(inner.check_ownership().await.unwrap());
    drop(inner);
    common::eventually("the last drop deleted the node", || async {
        mutex.participant_nodes().await.unwrap().is_empty()
    })
    .await;

    // One acquisition, one validity: a SUSPENDED invalidates every guard of it.
    let outer = mutex.acquire().await.unwrap();
    let inner = outer.reenter();
    server.drop_connection(fw.client().session_id());
    tokio::time::timeout(T, inner.invalidated()).await.expect("invalidated");
    assert!(!outer.is_valid() && !inner.is_valid());
    // A guard re-entered after that is as invalid as the one it came from.
    let late = inner.reenter();
    assert!(!late.is_valid());
    assert_eq!(late.lock_count(), 3);
    drop((outer, inner, late));
    common::eventually("released after the reconnect", || async {
        mutex.participant_nodes().await.map(|n| n.is_empty()).unwrap_or(false)
    })
    .await;
    fw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_entered_guard_can_be_handed_to_another_task_and_the_lock_stays_exclusive() {
    let env = common::embedded("mutex-reenter-tasks").await;
    let (fw, other) = (env.framework(), env.framework());
    let mutex = Mutex::new(&fw, "/lock");
    let outer = mutex.acquire().await.unwrap();
    // Workers share the hold on purpose; each ends with its own release.
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let guard = outer.reenter();
            tokio::spawn(async move {
                assert!(guard.is_valid());
                tokio::task::yield_now().await;
                guard.release().await
            })
        })
        .collect();
    let contender = Mutex::new(&other, "/lock");
    for worker in workers {
        tokio::time::timeout(T, worker).await.unwrap().unwrap().unwrap();
    }
    assert_eq!(outer.lock_count(), 1);
    assert!(contender.try_acquire().await.unwrap().is_none(), "the workers' releases freed the lock");
    outer.release().await.unwrap();
    let guard = contender.try_acquire().await.unwrap().expect("free once the last guard released");
    guard.release().await.unwrap();
    fw.close().await;
    other.close().await;
}
