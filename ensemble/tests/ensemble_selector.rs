//! Leader selector and leader latch on a real 3-member ensemble: each leadership term makes fenced
//! writes. The ensemble's leader is killed, the leading contender is stalled past its session
//! timeout, and a majority of the ensemble is killed and restarted. Never two leaders whose writes
//! succeed; a new leader within twice the session timeout of the stall.

mod common;

use std::time::Duration;

use corral_ensemble_tests::process::Contender;
use corral_ensemble_tests::{SESSION_TIMEOUT, long_mode};
use tokio::time::Instant;

use common::{PROGRESS_WAIT, QUORUM_WAIT, Workload, blocking};

/// The contender that leads now: its last `leader` line is later than its last `released` line.
async fn leading(contenders: &[Contender], bound: Duration) -> usize {
    let started = Instant::now();
    loop {
        for (i, c) in contenders.iter().enumerate() {
            let last = c.seen().into_iter().rev().find(|l| l.starts_with("leader") || l.starts_with("released"));
            if last.is_some_and(|l| l.starts_with("leader")) {
                return i;
            }
        }
        assert!(started.elapsed() < bound, "no contender led within {bound:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensemble_selector_one_leader_through_member_kills_and_a_leader_stall() {
    one_leader("selector").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensemble_latch_one_leader_through_member_kills_and_a_leader_stall() {
    one_leader("latch").await;
}

/// The workload, with contenders of `mode` (`selector` or `latch`).
async fn one_leader(mode: &str) {
    // One ensemble at a time on a 2-core machine: the two tests of this file take turns.
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = TURN.lock().await;
    let Some(mut w) = Workload::start(mode).await else { return };
    let connect = w.connect();
    let mut contenders: Vec<_> =
        (1..=3).map(|i| w.contender(&format!("{}{i}", &mode[..1]), mode, &connect, &["writes=5"])).collect();
    w.progress(10, PROGRESS_WAIT, "the start").await;

    let rounds = if long_mode() { 20 } else { 1 };
    for _ in 0..rounds {
        w.leader_kill().await;

        // The leading contender stalls: another one must lead within 2 × the session timeout.
        // It must really lead when it stops (its term may end between its line and the signal):
        // the ensemble says whose node is first.
        let picked = Instant::now();
        let (i, before, lost, started) = loop {
            let i = leading(&contenders, PROGRESS_WAIT).await;
            let before: Vec<usize> = contenders.iter().map(|c| c.count("leader")).collect();
            // Counted before the stall: after the resume LOST can come at once.
            let lost = contenders[i].count("state LOST");
            contenders[i].pause();
            let started = Instant::now();
            if w.lock_owner().await == Some(contenders[i].session()) {
                break (i, before, lost, started);
            }
            contenders[i].resume();
            assert!(picked.elapsed() < PROGRESS_WAIT, "could not stop the leader while it led");
        };
        w.report.count("contender stalls");
        let took = loop {
            let others_led = contenders.iter().enumerate().any(|(j, c)| j != i && c.count("leader") > before[j]);
            if others_led {
                break started.elapsed();
            }
            assert!(started.elapsed() < PROGRESS_WAIT, "no new leader within {PROGRESS_WAIT:?} of the stall");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        w.report.recovered("a leader stall (to a new leader)", took);
        // A little slack over 2 × the session timeout for a loaded 2-core machine.
        assert!(took <= SESSION_TIMEOUT * 2 + Duration::from_secs(2), "a new leader took {took:?}");
        // The stall lasts at least 1.5 × the session timeout, so the session surely expires (the
        // leader may have sent its release just before it stopped, and been followed at once).
        // Real time: the ensemble is ZooKeeper processes expiring sessions on their own clocks.
        tokio::time::sleep((SESSION_TIMEOUT * 3 / 2).saturating_sub(started.elapsed())).await;
        w.report.count("session expiries");
        contenders[i].resume();
        contenders[i].wait_count("state LOST", lost + 1, PROGRESS_WAIT).await;
        w.progress(3, PROGRESS_WAIT, "a leader stall").await;

        // A majority of the ensemble dies: nobody can write; then it comes back.
        let victims = blocking(|| w.zk.kill_majority());
        w.report.count("majority kills");
        let started = Instant::now();
        for id in victims {
            blocking(|| w.zk.restart(id)).expect("restart a member");
            w.report.count("member restarts");
        }
        blocking(|| w.zk.wait_for_quorum(QUORUM_WAIT)).expect("the ensemble whole again");
        w.progress(3, PROGRESS_WAIT, "a majority kill").await;
        w.report.recovered("a majority kill", started.elapsed());
    }

    let history = w.finish(&mut contenders).await;
    assert!(history.terms() >= 4, "{} terms", history.terms());
}
