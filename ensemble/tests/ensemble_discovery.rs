//! Service discovery on a real 3-member ensemble: three contenders register an instance each and
//! keep a service cache. After a leader kill, an instance's process stalled past its session, and
//! a majority kill, every instance is back within 2 × the session timeout, and once the faults
//! stop every contender's cache equals the ensemble's tree.

mod common;

use std::time::Duration;

use corral_ensemble_tests::fenced::{SERVICE, SERVICES};
use corral_ensemble_tests::process::Contender;
use corral_ensemble_tests::{SESSION_TIMEOUT, long_mode};
use tokio::time::Instant;

use common::{PROGRESS_WAIT, QUORUM_WAIT, Workload, blocking};

/// The instance ids registered in the ensemble's tree, sorted, with their nodes' owners.
async fn registered(w: &Workload) -> Vec<(String, i64)> {
    let path = format!("{SERVICES}/{SERVICE}");
    let mut ids = w.fw.client().get_children(&path).await.unwrap_or_default();
    ids.sort();
    let mut owned = Vec::new();
    for id in ids {
        let owner = w.fw.client().exists(&format!("{path}/{id}")).await.ok().flatten().map_or(0, |s| s.ephemeral_owner);
        owned.push((id, owner));
    }
    owned
}

/// Waits until the tree holds exactly the instances of `want`, each registered by its
/// contender's current session (not a node of a session that is gone but not yet expired);
/// returns how long it took.
async fn tree_is(w: &Workload, contenders: &[Contender], want: &[&str], bound: Duration, what: &str) -> Duration {
    let started = Instant::now();
    loop {
        let now = registered(w).await;
        let live = now.len() == want.len()
            && now.iter().zip(want).all(|((id, owner), name)| {
                id == name && contenders.iter().find(|c| c.name() == *name).is_some_and(|c| c.session() == *owner)
            });
        if live {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < bound,
            "{what}: the registry holds {now:x?}, not {want:?} of live sessions, after {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every contender's last cache line lists exactly `want`.
async fn caches_are(contenders: &[Contender], want: &[String], bound: Duration) {
    let line = format!("cache {}", want.join(","));
    let started = Instant::now();
    while let Some(behind) = contenders.iter().find(|c| c.last("cache").as_deref() != Some(line.as_str())) {
        assert!(
            started.elapsed() < bound,
            "{}'s cache is {:?}, the tree {want:?}\n{}",
            behind.name(),
            behind.last("cache"),
            behind.report()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensemble_discovery_instances_come_back_and_caches_match_the_tree() {
    let Some(mut w) = Workload::start("discovery").await else { return };
    let connect = w.connect();
    let names: Vec<String> = (1..=3).map(|i| format!("d{i}")).collect();
    let mut contenders: Vec<_> = names.iter().map(|n| w.contender(n, "discovery", &connect, &[])).collect();
    let back_within = SESSION_TIMEOUT * 2;
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    tree_is(&w, &contenders, &all, PROGRESS_WAIT, "at the start").await;
    caches_are(&contenders, &names, PROGRESS_WAIT).await;

    let rounds = if long_mode() { 15 } else { 1 };
    for round in 0..rounds {
        let leader = blocking(|| w.zk.kill_leader()).expect("a leader to kill");
        w.report.count("leader kills");
        blocking(|| w.zk.wait_for_quorum(QUORUM_WAIT)).expect("a new leader");
        let took = tree_is(&w, &contenders, &all, back_within, "after a leader kill").await;
        w.report.recovered("a leader kill (all registered)", took);
        blocking(|| w.zk.restart(leader)).expect("restart the old leader");
        blocking(|| w.zk.wait_for_quorum(QUORUM_WAIT)).expect("the ensemble whole again");
        w.report.count("member restarts");

        // One instance's process stalls: its node goes with its session, and comes back after.
        let i = round % contenders.len();
        let lost = contenders[i].count("state LOST");
        contenders[i].pause();
        w.report.count("contender stalls");
        // The stall lasts at least 1.5 × the session timeout (so the session surely expires; a
        // node missing for another reason, say a re-registration under way, is not enough) ...
        // Real time: the ensemble is ZooKeeper processes expiring sessions on their own clocks.
        tokio::time::sleep(SESSION_TIMEOUT * 3 / 2).await;
        // ... and until the instance is gone from the tree, the others registered by live sessions.
        let others: Vec<&str> = all.iter().copied().filter(|n| *n != names[i]).collect();
        tree_is(&w, &contenders, &others, PROGRESS_WAIT, "the stalled instance's session expiring").await;
        w.report.count("session expiries");
        contenders[i].resume();
        let started = Instant::now();
        contenders[i].wait_count("state LOST", lost + 1, PROGRESS_WAIT).await;
        tree_is(&w, &contenders, &all, back_within, "after the stall").await;
        let took = started.elapsed();
        assert!(took <= back_within, "the stalled instance was back {took:?} after its resume");
        w.report.recovered("a stall (re-registered after resume)", took);

        // A majority of the ensemble dies and comes back: every instance is registered again.
        let victims = blocking(|| w.zk.kill_majority());
        w.report.count("majority kills");
        for id in victims {
            blocking(|| w.zk.restart(id)).expect("restart a member");
            w.report.count("member restarts");
        }
        blocking(|| w.zk.wait_for_quorum(QUORUM_WAIT)).expect("the ensemble whole again");
        let took = tree_is(&w, &contenders, &all, back_within, "after a majority kill").await;
        w.report.recovered("a majority kill (all registered, from quorum)", took);
    }
    caches_are(&contenders, &names, back_within).await;
    w.finish(&mut contenders).await;
}
