//! ReadWriteLock against the embedded server and (when available) a real ZooKeeper.

mod common;

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
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "a writer got in during the downgrade");
        // A new reader queues behind the waiting writer, as in Curator.
        let r2 = theirs.read_lock().acquire_timeout(Duration::from_millis(300)).await.unwrap();
        assert!(r2.is_none(), "a reader behind a waiting writer waits too");
        r.release().await.unwrap();
        let w2 = tokio::time::timeout(T, waiting).await.unwrap().unwrap().unwrap();
        w2.release().await.unwrap();
        fw.close().await;
        other.close().await;
    }
}
