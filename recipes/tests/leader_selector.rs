//! LeaderSelector against the embedded server and (when available) a real ZooKeeper.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use corral_recipes::leader_selector::LeaderSelector;
use futures::FutureExt;

const T: Duration = Duration::from_secs(30);

#[tokio::test]
async fn terms_alternate_and_never_overlap() {
    for env in common::envs("selector-terms").await {
        eprintln!("-- against the {} server", env.kind);
        let leaders = Arc::new(AtomicUsize::new(0));
        let terms = Arc::new(AtomicUsize::new(0));
        let fws = [env.framework(), env.framework()];
        let selectors: Vec<LeaderSelector> = fws
            .iter()
            .enumerate()
            .map(|(i, fw)| {
                let (leaders, terms) = (leaders.clone(), terms.clone());
                LeaderSelector::start(fw, "/sel", format!("s{i}"), true, move |leadership| {
                    let (leaders, terms) = (leaders.clone(), terms.clone());
                    async move {
                        assert!(leadership.is_valid());
                        assert_eq!(leaders.fetch_add(1, Ordering::SeqCst), 0, "two leaders");
                        // A hold inside the term: widens the window an overlap would show in (checked by `leaders`).
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        leaders.fetch_sub(1, Ordering::SeqCst);
                        terms.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        common::eventually("ten terms", || async { terms.load(Ordering::SeqCst) >= 10 }).await;
        let participants = selectors[0].participants().await.unwrap();
        assert!(participants.len() <= 2 && participants.iter().all(|p| p.id.starts_with('s')), "{participants:?}");
        for s in &selectors {
            s.close().await;
        }
        let observer = env.client().await;
        assert_eq!(observer.get_children("/sel").await.unwrap(), Vec::<String>::new());
        observer.close().await;
        for fw in fws {
            fw.close().await;
        }
    }
}

#[tokio::test]
async fn losing_the_connection_cancels_the_task_and_auto_requeue_leads_again() {
    let env = common::embedded("selector-cancel").await;
    let server = env.server.clone().unwrap();
    let fw = env.framework();
    let started = Arc::new(AtomicUsize::new(0));
    let cancelled = Arc::new(AtomicUsize::new(0));
    struct OnDrop(Arc<AtomicUsize>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let selector = {
        let (started, cancelled) = (started.clone(), cancelled.clone());
        LeaderSelector::start(&fw, "/sel", "forever", true, move |leadership| {
            let (started, cancelled) = (started.clone(), cancelled.clone());
            async move {
                let _on_drop = OnDrop(cancelled);
                started.fetch_add(1, Ordering::SeqCst);
                let _keep = leadership;
                std::future::pending::<()>().await;
            }
        })
    };
    common::eventually("leading", || async { started.load(Ordering::SeqCst) == 1 }).await;
    assert!(selector.has_leadership());
    server.drop_connection(fw.client().session_id());
    common::eventually("cancelled", || async { cancelled.load(Ordering::SeqCst) == 1 }).await;
    common::eventually("leading again", || async { started.load(Ordering::SeqCst) == 2 }).await;
    tokio::time::timeout(T, selector.close()).await.unwrap();
    assert_eq!(cancelled.load(Ordering::SeqCst), 2);
    fw.close().await;
}

#[tokio::test]
async fn every_close_and_wait_returns_after_the_end_even_concurrent_ones_and_after_a_dropped_one() {
    let env = common::embedded("selector-close-twice").await;
    let server = env.server.clone().unwrap();
    let fw = env.framework();
    struct OnDrop(Arc<AtomicUsize>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    for drop_one_first in [false, true] {
        let cancelled = Arc::new(AtomicUsize::new(0));
        let selector = Arc::new({
            let cancelled = cancelled.clone();
            LeaderSelector::start(&fw, "/sel", "forever", true, move |leadership| {
                let cancelled = cancelled.clone();
                async move {
                    let _on_drop = OnDrop(cancelled);
                    leadership.lost().await;
                }
            })
        });
        tokio::time::timeout(T, selector.leadership().wait_for(|l| *l)).await.unwrap().unwrap();
        // Whether the selector has stopped: its task cancelled the leadership task and, after
        // releasing the lock, dropped the leadership channel's sender.
        let ended = {
            let cancelled = cancelled.clone();
            move |s: &LeaderSelector| s.leadership().has_changed().is_err() && cancelled.load(Ordering::SeqCst) == 1
        };
        // Slow replies: the lock node's delete on close takes a while.
        server.set_latency(Duration::from_millis(300));
        if drop_one_first {
            // A close polled once (the stop is sent) and dropped.
            assert!(selector.close().now_or_never().is_none(), "close cannot finish without a round trip");
        }
        // More at once, closes and waits: each returns only after the selector has stopped.
        let calls: Vec<_> = (0..3)
            .map(|i| {
                let (selector, ended) = (selector.clone(), ended.clone());
                tokio::spawn(async move {
                    if i == 0 {
                        selector.close().await
                    } else {
                        selector.wait_until_done().await
                    }
                    ended(&selector)
                })
            })
            .collect();
        tokio::time::timeout(T, selector.close()).await.unwrap();
        assert!(ended(&selector), "close returned before the selector stopped ({drop_one_first})");
        for call in calls {
            let stopped = tokio::time::timeout(T, call).await.unwrap().unwrap();
            assert!(stopped, "a concurrent call returned before the selector stopped ({drop_one_first})");
        }
        server.set_latency(Duration::ZERO);
        assert!(selector.participants().await.unwrap().is_empty(), "close deleted the lock node");
    }
    fw.close().await;
}

/// Counts the drops of what it guards: a leadership task that is cancelled drops its future.
struct CountDrop(Arc<AtomicUsize>);

impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A selector whose task leads until cancelled, counting terms started and futures dropped.
fn forever(
    fw: &corral_recipes::Framework,
    id: &str,
    auto_requeue: bool,
) -> (LeaderSelector, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let (started, dropped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let selector = {
        let (started, dropped) = (started.clone(), dropped.clone());
        LeaderSelector::start(fw, "/sel", id, auto_requeue, move |leadership| {
            let (started, dropped) = (started.clone(), dropped.clone());
            async move {
                let _on_drop = CountDrop(dropped);
                started.fetch_add(1, Ordering::SeqCst);
                let _keep = leadership;
                std::future::pending::<()>().await;
            }
        })
    };
    (selector, started, dropped)
}

#[tokio::test]
async fn interrupting_cancels_the_term_and_requeue_puts_the_selector_back_in_line() {
    for env in common::envs("selector-interrupt").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        let (selector, started, dropped) = forever(&fw, "once", false);
        tokio::time::timeout(T, selector.leadership().wait_for(|l| *l)).await.unwrap().unwrap();
        assert!(!selector.requeue(), "a leading selector is in line already");

        // Interrupted: the task's future is dropped, the node deleted, the selector out of line.
        assert!(selector.interrupt_leadership());
        tokio::time::timeout(T, selector.wait_until_done()).await.expect("out of line");
        assert_eq!(dropped.load(Ordering::SeqCst), 1, "the task was not cancelled");
        assert!(!selector.has_leadership());
        assert!(selector.participants().await.unwrap().is_empty(), "the lock node stayed");
        assert!(!selector.interrupt_leadership(), "nothing left to interrupt");

        // Requeued: a second term.
        assert!(selector.requeue());
        assert!(!selector.requeue(), "requeued twice");
        common::eventually("leading again", || async { started.load(Ordering::SeqCst) == 2 }).await;
        assert!(selector.has_leadership());
        tokio::time::timeout(T, selector.close()).await.unwrap();
        assert_eq!(dropped.load(Ordering::SeqCst), 2);
        assert!(!selector.requeue() && !selector.interrupt_leadership(), "a closed selector stays closed");
        fw.close().await;
    }
}

#[tokio::test]
async fn an_interrupted_leader_with_auto_requeue_goes_to_the_back_of_the_line() {
    let env = common::embedded("selector-interrupt-requeue").await;
    let (fw_a, fw_b) = (env.framework(), env.framework());
    let (a, a_started, a_dropped) = forever(&fw_a, "a", true);
    tokio::time::timeout(T, a.leadership().wait_for(|l| *l)).await.unwrap().unwrap();
    let (b, b_started, _) = forever(&fw_b, "b", true);
    common::eventually("b queued", || async { a.participants().await.unwrap().len() == 2 }).await;

    assert!(a.interrupt_leadership());
    tokio::time::timeout(T, b.leadership().wait_for(|l| *l)).await.unwrap().unwrap();
    assert_eq!(b_started.load(Ordering::SeqCst), 1);
    assert_eq!(a_dropped.load(Ordering::SeqCst), 1);
    // a is back in line, behind b.
    common::eventually("a requeued", || async { a.participants().await.unwrap().len() == 2 }).await;
    let ids: Vec<String> = a.participants().await.unwrap().into_iter().map(|p| p.id).collect();
    assert_eq!(ids, ["b", "a"]);
    assert_eq!(a_started.load(Ordering::SeqCst), 1, "a led again before b's term ended");

    // b's term ends by interrupt too: a leads its second term.
    assert!(b.interrupt_leadership());
    common::eventually("a leads again", || async { a_started.load(Ordering::SeqCst) == 2 }).await;
    a.close().await;
    b.close().await;
    fw_a.close().await;
    fw_b.close().await;
}

#[tokio::test]
async fn interrupting_a_waiting_selector_takes_it_out_of_line() {
    let env = common::embedded("selector-interrupt-waiting").await;
    let (fw_a, fw_b) = (env.framework(), env.framework());
    let (a, _, _) = forever(&fw_a, "a", true);
    tokio::time::timeout(T, a.leadership().wait_for(|l| *l)).await.unwrap().unwrap();
    let (b, b_started, _) = forever(&fw_b, "b", false);
    common::eventually("b queued", || async { a.participants().await.unwrap().len() == 2 }).await;

    assert!(b.interrupt_leadership(), "a waiting selector is in line");
    tokio::time::timeout(T, b.wait_until_done()).await.expect("out of line");
    let ids: Vec<String> = a.participants().await.unwrap().into_iter().map(|p| p.id).collect();
    assert_eq!(ids, ["a"], "b's queued node was deleted before it said it is out of line");

    assert!(b.requeue());
    common::eventually("b queued again", || async { a.participants().await.unwrap().len() == 2 }).await;
    a.close().await;
    tokio::time::timeout(T, b.leadership().wait_for(|l| *l)).await.unwrap().unwrap();
    assert_eq!(b_started.load(Ordering::SeqCst), 1);
    b.close().await;
    fw_a.close().await;
    fw_b.close().await;
}
