//! LeaderLatch against the embedded server and (when available) a real ZooKeeper.

mod common;

use std::sync::Arc;
use std::time::Duration;

use corral_recipes::leader_latch::LeaderLatch;
use corral_recipes::{ConnectionState, Framework};
use futures::FutureExt;

const T: Duration = Duration::from_secs(30);

fn leaders(latches: &[LeaderLatch]) -> Vec<&str> {
    latches.iter().filter(|l| l.has_leadership()).map(|l| l.id()).collect()
}

#[tokio::test]
async fn one_leader_at_a_time_and_failover_on_close() {
    for env in common::envs("latch-basic").await {
        eprintln!("-- against the {} server", env.kind);
        let fws: Vec<Framework> = (0..3).map(|_| env.framework()).collect();
        let latches: Vec<LeaderLatch> =
            fws.iter().enumerate().map(|(i, fw)| LeaderLatch::start(fw, "/election", format!("p{i}"))).collect();
        common::eventually("a leader and three participants", || async {
            leaders(&latches).len() == 1 && latches[0].participants().await.unwrap().len() == 3
        })
        .await;
        let first = leaders(&latches)[0].to_owned();
        let participants = latches[1].participants().await.unwrap();
        assert_eq!(participants[0].id, first);
        assert!(participants[0].is_leader && !participants[1].is_leader);
        assert_eq!(latches[2].leader().await.unwrap().unwrap().id, first);

        let leader_index = latches.iter().position(|l| l.has_leadership()).unwrap();
        let mut changes = latches[leader_index].leadership();
        latches[leader_index].close().await;
        assert!(!*changes.borrow_and_update(), "close notifies");
        common::eventually("a new leader", || async {
            let l = leaders(&latches);
            l.len() == 1 && l[0] != first
        })
        .await;
        assert_eq!(latches[0].participants().await.unwrap().len(), 2);
        for l in &latches {
            l.close().await;
        }
        for fw in fws {
            fw.close().await;
        }
    }
}

#[tokio::test]
async fn an_expired_leader_steps_down_and_rejoins_without_two_leaders() {
    let env = common::embedded("latch-expiry").await;
    let server = env.server.clone().unwrap();
    let fws: Vec<Framework> = (0..3).map(|_| env.framework()).collect();
    let latches: Vec<LeaderLatch> =
        fws.iter().enumerate().map(|(i, fw)| LeaderLatch::start(fw, "/election", format!("p{i}"))).collect();
    common::eventually("a leader", || async { leaders(&latches).len() == 1 }).await;
    let leader_index = latches.iter().position(|l| l.has_leadership()).unwrap();
    let old_session = fws[leader_index].client().session_id();

    // Sample for two leaders with live sessions while the leader's session is expired by the
    // server. (The expired leader learns of the expiry a moment after the server acts; in that
    // moment its session is already gone, so it cannot act as leader on ZooKeeper.)
    let sampler = {
        let ids: Vec<tokio::sync::watch::Receiver<bool>> = latches.iter().map(|l| l.leadership()).collect();
        let fws: Vec<Framework> = fws.to_vec();
        let server = server.clone();
        tokio::spawn(async move {
            let mut max = 0;
            for _ in 0..300 {
                let live = server.sessions();
                let leading = ids
                    .iter()
                    .zip(&fws)
                    .filter(|(r, fw)| *r.borrow() && live.contains(&fw.client().session_id()))
                    .count();
                max = max.max(leading);
                // A sampling round: 300 checks of the invariant while the expiry plays out.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            max
        })
    };
    server.expire_session(old_session);
    let mut states = fws[leader_index].connection_state();
    tokio::time::timeout(T, states.wait_for(|s| s.state == ConnectionState::Lost)).await.unwrap().unwrap();
    common::eventually("another leader", || async {
        let l = leaders(&latches);
        l.len() == 1 && !latches[leader_index].has_leadership()
    })
    .await;
    common::eventually("the expired one rejoined", || async {
        latches[0].participants().await.map(|p| p.len() == 3).unwrap_or(false)
    })
    .await;
    assert!(sampler.await.unwrap() <= 1, "two leaders with live sessions at once");
    for l in &latches {
        l.close().await;
    }
    for fw in fws {
        fw.close().await;
    }
}

#[tokio::test]
async fn suspension_costs_leadership_under_the_standard_policy_and_it_comes_back() {
    let env = common::embedded("latch-suspend").await;
    let server = env.server.clone().unwrap();
    let fw = env.framework();
    let latch = LeaderLatch::start(&fw, "/election", "solo");
    latch.await_leadership_timeout(T).await.unwrap();
    let mut changes = latch.leadership();
    changes.borrow_and_update();
    server.drop_connection(fw.client().session_id());
    tokio::time::timeout(T, changes.wait_for(|l| !*l)).await.expect("lost on SUSPENDED").unwrap();
    tokio::time::timeout(T, changes.wait_for(|l| *l)).await.expect("back after RECONNECTED").unwrap();
    latch.close().await;
    fw.close().await;
}

#[tokio::test]
async fn closing_steps_down_before_a_successor_leads_in_both_modes() {
    let env = common::embedded("latch-close").await;
    let fw = env.framework();
    let a = LeaderLatch::start(&fw, "/election", "a");
    a.await_leadership_timeout(T).await.unwrap();
    let b = LeaderLatch::start(&fw, "/election", "b");
    let mut a_changes = a.leadership();
    a_changes.borrow_and_update();
    a.close_silently().await;
    assert!(!a.has_leadership(), "no leadership after a silent close");
    assert!(!a_changes.has_changed().unwrap_or(false), "a silent close notifies nobody");
    b.await_leadership_timeout(T).await.unwrap();
    b.close().await;
    assert!(!b.has_leadership());
    fw.close().await;
}

#[tokio::test]
async fn a_waiting_participant_whose_node_is_deleted_joins_again() {
    for env in common::envs("latch-own-node").await {
        eprintln!("-- against the {} server", env.kind);
        let fws: Vec<Framework> = (0..2).map(|_| env.framework()).collect();
        let first = LeaderLatch::start(&fws[0], "/election", "first");
        first.await_leadership_timeout(T).await.unwrap();
        let second = LeaderLatch::start(&fws[1], "/election", "second");
        common::eventually("two participants", || async { first.participants().await.unwrap().len() == 2 }).await;

        // Someone deletes the waiting participant's node; it must notice without waiting for
        // its predecessor, and join again with a new node.
        let admin = fws[0].client();
        let mut waiting = String::new();
        for child in admin.get_children("/election").await.unwrap() {
            if &admin.get_data(&format!("/election/{child}")).await.unwrap().0[..] == b"second" {
                waiting = child;
            }
        }
        admin.delete(&format!("/election/{waiting}"), None).await.unwrap();
        common::eventually("the waiting participant's new node", || async {
            let children = admin.get_children("/election").await.unwrap();
            children.len() == 2 && !children.contains(&waiting)
        })
        .await;
        assert!(first.has_leadership() && !second.has_leadership());

        // And it still takes over when the leader goes.
        first.close().await;
        second.await_leadership_timeout(T).await.unwrap();
        second.close().await;
        for fw in fws {
            fw.close().await;
        }
    }
}

#[tokio::test]
async fn deleting_a_waiter_in_the_middle_makes_nobody_else_leader() {
    for env in common::envs("latch-middle").await {
        eprintln!("-- against the {} server", env.kind);
        let fws: Vec<Framework> = (0..3).map(|_| env.framework()).collect();
        let a = LeaderLatch::start(&fws[0], "/election", "a");
        a.await_leadership_timeout(T).await.unwrap();
        let b = LeaderLatch::start(&fws[1], "/election", "b");
        common::eventually("b joined", || async { a.participants().await.unwrap().len() == 2 }).await;
        let c = LeaderLatch::start(&fws[2], "/election", "c");
        common::eventually("c joined", || async { a.participants().await.unwrap().len() == 3 }).await;

        // c watches b; b goes, but a still leads: c must list again, not take over.
        let admin = fws[0].client();
        for child in admin.get_children("/election").await.unwrap() {
            let path = format!("/election/{child}");
            if &admin.get_data(&path).await.unwrap().0[..] == b"b" {
                admin.delete(&path, None).await.unwrap();
            }
        }
        // b joins again at the end: a, c, b.
        common::eventually("b back behind c", || async {
            let ids: Vec<String> = a.participants().await.unwrap().into_iter().map(|p| p.id).collect();
            ids == ["a", "c", "b"]
        })
        .await;
        assert!(a.has_leadership() && !b.has_leadership() && !c.has_leadership());

        // Now c is next in line: when a goes, c leads (and b does not).
        a.close().await;
        c.await_leadership_timeout(T).await.unwrap();
        assert!(!b.has_leadership());
        b.close().await;
        c.close().await;
        for fw in fws {
            fw.close().await;
        }
    }
}

/// Whether the latch's task has ended: it drops the leadership channel's sender when it does.
fn latch_ended(latch: &LeaderLatch) -> bool {
    latch.leadership().has_changed().is_err() && !latch.has_leadership()
}

#[tokio::test]
async fn every_close_waits_for_the_end_even_concurrent_ones_and_after_a_dropped_one() {
    let env = common::embedded("latch-close-twice").await;
    let server = env.server.clone().unwrap();
    let fw = env.framework();
    for drop_one_first in [false, true] {
        let latch = Arc::new(LeaderLatch::start(&fw, "/election", "solo"));
        latch.await_leadership_timeout(T).await.unwrap();
        // Slow replies: the node's delete on close takes a while.
        server.set_latency(Duration::from_millis(300));
        if drop_one_first {
            // A close polled once (the stop is sent) and dropped.
            assert!(latch.close().now_or_never().is_none(), "close cannot finish without a round trip");
        }
        // More at once, of both kinds: each returns only after the latch has stopped.
        let closes: Vec<_> = (0..2)
            .map(|i| {
                let latch = latch.clone();
                tokio::spawn(async move {
                    if i == 0 {
                        latch.close().await
                    } else {
                        latch.close_silently().await
                    }
                    latch_ended(&latch)
                })
            })
            .collect();
        tokio::time::timeout(T, latch.close()).await.unwrap();
        assert!(latch_ended(&latch), "close returned before the latch stopped ({drop_one_first})");
        for close in closes {
            let ended = tokio::time::timeout(T, close).await.unwrap().unwrap();
            assert!(ended, "a concurrent close returned before the latch stopped ({drop_one_first})");
        }
        server.set_latency(Duration::ZERO);
        assert!(latch.participants().await.unwrap().is_empty(), "close deleted the node");
    }
    fw.close().await;
}
