//! Mutex on a real 3-member ensemble: contenders (child processes: three Corral, one Curator)
//! increment a fenced counter while the ensemble's leader is killed, a follower is killed and
//! restarted, and the contender holding the lock is stalled (SIGSTOP) past its session timeout.
//! The write log must show 0 violations.

mod common;

use corral_ensemble_tests::{SESSION_TIMEOUT, long_mode};
use tokio::time::Instant;

use common::{PROGRESS_WAIT, Workload, holding};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensemble_mutex_fenced_counter_survives_member_kills_and_stalls() {
    let Some(mut w) = Workload::start("mutex").await else { return };
    let connect = w.connect();
    let extra = ["writes=3", "gap_ms=20"];
    let mut contenders: Vec<_> = (1..=3).map(|i| w.contender(&format!("m{i}"), "mutex", &connect, &extra)).collect();
    // A Curator InterProcessMutex on the same lock, making the same fenced writes.
    contenders.extend(w.curator_contender("curator", &connect, &extra));
    w.progress(10, PROGRESS_WAIT, "the start").await;

    let rounds = if long_mode() { 25 } else { 1 };
    for _ in 0..rounds {
        // The ensemble's leader dies; a new one is elected; the old one comes back as a follower.
        w.leader_kill().await;
        // A follower dies and comes back.
        w.follower_kill().await;

        // The contender holding the lock stalls past its session timeout: its session expires on
        // the ensemble, the others go on, and when it wakes up its next write is refused.
        let holder = holding(&contenders, PROGRESS_WAIT).await;
        let stalled = &mut contenders[holder];
        let session: i64 = stalled
            .last("state")
            .and_then(|line| line.split(' ').nth(2).and_then(|s| s.parse().ok()))
            .expect("the contender printed its session");
        stalled.pause();
        w.report.count("contender stalls");
        let started = Instant::now();
        // The others take the lock once the ensemble expired the holder's session.
        w.progress(3, PROGRESS_WAIT, "a contender stall").await;
        w.report.recovered("a holder stall (to the next writes)", started.elapsed());
        // The stall lasts at least 1.5 × the session timeout, and until the session is gone.
        // Real time: the ensemble is ZooKeeper processes expiring sessions on their own clocks.
        tokio::time::sleep((SESSION_TIMEOUT * 3 / 2).saturating_sub(started.elapsed())).await;
        w.session_gone(session, PROGRESS_WAIT).await.expect("the stalled contender's session expires");
        w.report.count("session expiries");
        let lost = stalled.count("state LOST");
        stalled.resume();
        stalled.wait_count("state LOST", lost + 1, PROGRESS_WAIT).await;
        w.progress(3, PROGRESS_WAIT, "the stalled contender's return").await;
    }

    let history = w.finish(&mut contenders).await;
    assert!(history.entries.len() >= 10 + rounds * 12, "{} writes", history.entries.len());
}
