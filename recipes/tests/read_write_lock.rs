//! ReadWriteLock against the embedded server and (when available) a real ZooKeeper.

mod common;
#[path = "common/settle.rs"]
mod settle;

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use corral_recipes::read_write_lock::ReadWriteLock;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_share_writers_exclude() {
    for env in common::envs("rwlock").await {
        eprintln!("-- against the {} server", env.kind);
        // +1 per reader, +1000 per writer: a writer must always see exactly 1000.
        let holders = Arc::new(AtomicI32::new(0));
        let mut tasks = Vec::new();
        for i in 0..4 {
            let fw = env.framework();
            let holders = holders.clone();
            tasks.push(tokio::spawn(async move {
                let lock = ReadWriteLock::new(&fw, "/rw");
                for _ in 0..6 {
                    if i % 2 == 0 {
                        let g = lock.write_lock().acquire().await.unwrap();
                        assert_eq!(holders.fetch_add(1000, Ordering::SeqCst), 0, "writer with others inside");
                        tokio::task::yield_now().await;
                        holders.fetch_sub(1000, Ordering::SeqCst);
                        g.release().await.unwrap();
                    } else {
                        let g = lock.read_lock().acquire().await.unwrap();
                        assert!(holders.fetch_add(1, Ordering::SeqCst) < 1000, "reader while a writer is inside");
                        tokio::task::yield_now().await;
                        holders.fetch_sub(1, Ordering::SeqCst);
                        g.release().await.unwrap();
                    }
                }
                fw.close().await;
            }));
        }
        for t in tasks {
            tokio::time::timeout(T, t).await.expect("no deadlock").unwrap();
        }
    }
}

#[tokio::test]
async fn a_downgrade_lets_no_writer_in_and_names_follow_curator() {
    for env in common::envs("rwlock-down").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        let other = env.framework();
        let lock = ReadWriteLock::new(&fw, "/rw");
        let theirs = ReadWriteLock::new(&other, "/rw");
        let w = lock.write_lock().acquire().await.unwrap();
        assert!(w.path().contains("-__WRIT__"), "{}", w.path());
        // A writer queues behind us.
        let waiting = tokio::spawn({
            let theirs = theirs.clone();
            async move { theirs.write_lock().acquire().await }
        });
        common::eventually("writer queued", || async {
            lock.write_lock().participant_nodes().await.unwrap().len() == 2
        })
        .await;
        let r = lock.downgrade(w).await.unwrap();
        assert!(r.path().contains("-__READ__"), "{}", r.path());
        // The writer has heard of our write node going and watches its new predecessor.
        settle::settled(&other.client(), 1).await;
        assert!(!waiting.is_finished(), "a writer got in during the downgrade");
        // A new reader queues behind the waiting writer, as in Curator: it waits on the writer's
        // node (a second watch of `other`'s session).
        let reader = tokio::spawn({
            let theirs = theirs.clone();
            async move { theirs.read_lock().acquire().await }
        });
        settle::settled(&other.client(), 2).await;
        assert!(!reader.is_finished(), "a reader behind a waiting writer waits too");
        r.release().await.unwrap();
        let w2 = tokio::time::timeout(T, waiting).await.unwrap().unwrap().unwrap();
        w2.release().await.unwrap();
        let r2 = tokio::time::timeout(T, reader).await.unwrap().unwrap().unwrap();
        r2.release().await.unwrap();
        fw.close().await;
        other.close().await;
    }
}

#[tokio::test]
async fn a_write_lock_lost_with_its_session_is_not_downgraded() {
    let env = common::embedded("rwlock-down-expired").await;
    let server = env.server.clone().unwrap();
    let (fw, other) = (env.framework(), env.framework());
    let lock = ReadWriteLock::new(&fw, "/rw");
    let w = lock.write_lock().acquire().await.unwrap();
    let old = w.session_id();
    assert!(server.expire_session(old));
    let mut states = fw.connection_state();
    tokio::time::timeout(T, states.wait_for(|s| s.state.is_connected() && s.session_id != old)).await.unwrap().unwrap();
    // The write lock went with the old session: another writer takes it.
    let theirs = ReadWriteLock::new(&other, "/rw");
    let w2 = theirs.write_lock().acquire_timeout(T).await.expect("the lock is free after the expiry");
    // Before the fix, this created a read node with the old sequence in the new session and
    // returned a valid read guard: a reader next to a writer.
    let downgraded = lock.downgrade(w).await;
    assert_eq!(downgraded.unwrap_err(), corral_recipes::Error::SessionLost { session_id: old });
    assert!(w2.is_valid() && w2.check_ownership().await.unwrap());
    let w2_name = w2.path().rsplit('/').next().unwrap().to_owned();
    common::eventually("the other writer is the only holder", || async {
        other.client().get_children("/rw").await.unwrap() == [w2_name.clone()]
    })
    .await;
    assert!(lock.read_lock().try_acquire().await.unwrap().is_none(), "no reader next to the writer");
    w2.release().await.unwrap();
    fw.close().await;
    other.close().await;
}

#[tokio::test]
async fn a_write_lock_whose_node_was_deleted_is_not_downgraded() {
    for env in common::envs("rwlock-down-deleted").await {
        eprintln!("-- against the {} server", env.kind);
        let (fw, other) = (env.framework(), env.framework());
        let lock = ReadWriteLock::new(&fw, "/rw");
        let w = lock.write_lock().acquire().await.unwrap();
        // Same session, but an operator deletes the write node and another writer gets in.
        other.client().delete(w.path(), None).await.unwrap();
        let w2 = ReadWriteLock::new(&other, "/rw").write_lock().acquire_timeout(T).await.expect("free");
        let path = w.path().to_owned();
        match lock.downgrade(w).await {
            Err(corral_recipes::Error::Core(corral_recipes::CoreError::Server {
                code: corral_recipes::ErrorCode::NoNode,
                path: p,
            })) => {
                assert_eq!(p, path)
            }
            other => panic!("downgrade of a deleted write node: {other:?}"),
        }
        let w2_name = w2.path().rsplit('/').next().unwrap().to_owned();
        assert_eq!(other.client().get_children("/rw").await.unwrap(), [w2_name], "no read node was created");
        w2.release().await.unwrap();
        fw.close().await;
        other.close().await;
    }
}

#[tokio::test]
async fn a_write_lock_of_a_sibling_directory_is_refused() {
    for env in common::envs("rwlock-down-sibling").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        let lock = ReadWriteLock::new(&fw, "/rw");
        lock.read_lock().acquire().await.unwrap().release().await.unwrap(); // "/rw" exists
        let w = ReadWriteLock::new(&fw, "/rw-other").write_lock().acquire().await.unwrap();
        let other_node = w.path().to_owned();
        // "/rw-other/..." starts with "/rw" but is not under "/rw/".
        let downgraded = lock.downgrade(w).await;
        assert!(
            matches!(downgraded, Err(corral_recipes::Error::Core(corral_recipes::CoreError::BadArguments(_)))),
            "{downgraded:?}"
        );
        assert!(fw.client().get_children("/rw").await.unwrap().is_empty(), "no read node in /rw");
        // The refused guard was consumed and released.
        common::eventually("the refused guard released", || async {
            fw.client().exists(&other_node).await.unwrap().is_none()
        })
        .await;
        fw.close().await;
    }
}

/// A writer whose session expires while it waits behind a reader, and a reader waiting behind a
/// writer, fail with `SessionLost` naming that session; the waiter's node went with it and
/// nothing was created in the next session: the holder's node is the only one left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_whose_session_expires_fails_with_session_lost_and_leaves_nothing() {
    let env = common::embedded("rwlock-waiter-lost").await;
    let server = env.server.clone().unwrap();
    let observer = env.client().await;
    for writer_waits in [true, false] {
        let dir = if writer_waits { "/rw-w" } else { "/rw-r" };
        let (holder_fw, fw) = (env.framework(), env.framework());
        let theirs = ReadWriteLock::new(&holder_fw, dir);
        let held = if writer_waits { theirs.read_lock() } else { theirs.write_lock() }.acquire().await.unwrap();
        let ours = ReadWriteLock::new(&fw, dir);
        let side = if writer_waits { ours.write_lock() } else { ours.read_lock() };
        common::assert_a_lost_waiter_leaves_nothing(&server, &observer, &fw, dir, held, side).await;
        fw.close().await;
        holder_fw.close().await;
    }
    observer.close().await;
}
