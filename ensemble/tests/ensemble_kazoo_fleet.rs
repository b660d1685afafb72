//! A mixed Python and Rust fleet on a real 3-member ensemble: two kazoo 2.11 processes with
//! kazoo's own `Lock` and two Corral contenders with the kazoo-compatible lock
//! (`corral_recipes::kazoo::lock`) share one lock and make fenced increments while the
//! ensemble's leader is killed and a follower is killed. The write log must show 0 violations,
//! and both kinds of process must have held the lock.

mod common;

use tokio::time::Instant;

use common::{PROGRESS_WAIT, Workload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensemble_kazoo_and_corral_share_a_lock_through_member_kills() {
    let Some(mut w) = Workload::start("kazoo fleet").await else { return };
    let connect = w.connect();
    let extra = ["writes=3", "gap_ms=20"];
    let Some(first_kazoo) = w.kazoo_contender("kazoo1", &connect, &extra) else { return };
    let mut contenders = vec![first_kazoo];
    contenders.extend(w.kazoo_contender("kazoo2", &connect, &extra));
    let rust_extra = ["writes=3", "gap_ms=20", "layout=kazoo"];
    contenders.extend((1..=2).map(|i| w.contender(&format!("corral{i}"), "mutex", &connect, &rust_extra)));
    w.progress(10, PROGRESS_WAIT, "the start").await;

    // One round of member kills; ten with CORRAL_ENSEMBLE_LONG.
    for _ in 0..if corral_ensemble_tests::long_mode() { 10 } else { 1 } {
        w.leader_kill().await;
        w.follower_kill().await;
    }
    // Both kinds go on writing once the ensemble is whole: more than 5 writes from each kind.
    let written = |prefix: &str, contenders: &[corral_ensemble_tests::process::Contender]| -> usize {
        contenders.iter().filter(|c| c.name().starts_with(prefix)).map(|c| c.count("write ok")).sum()
    };
    let deadline = Instant::now() + PROGRESS_WAIT;
    while written("kazoo", &contenders) <= 5 || written("corral", &contenders) <= 5 {
        assert!(
            Instant::now() < deadline,
            "kazoo wrote {}, Corral {} within {PROGRESS_WAIT:?}",
            written("kazoo", &contenders),
            written("corral", &contenders)
        );
        w.progress(1, PROGRESS_WAIT, "writes from both fleets").await;
    }

    let history = w.finish(&mut contenders).await;
    for kind in ["kazoo", "corral"] {
        assert!(history.entries.iter().any(|e| e.writer.starts_with(kind)), "no {kind} write in the log");
    }
}
