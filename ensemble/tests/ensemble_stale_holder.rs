//! The paused lock holder: a contender holding the mutex is stopped (SIGSTOP) past its session
//! timeout, another contender takes the lock and writes, then the first one wakes up and at
//! once makes its write as if it still held the lock. The fence must refuse it.

mod common;

use corral_ensemble_tests::SESSION_TIMEOUT;

use common::{PROGRESS_WAIT, Workload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensemble_stale_holder_write_is_rejected() {
    let Some(mut w) = Workload::start("stale holder").await else { return };
    let connect = w.connect();
    let mut stale = w.contender("stale", "hold", &connect, &[]);
    let acquired = stale.expect("acquired", PROGRESS_WAIT).await;
    let session: i64 = acquired.split(' ').nth(2).and_then(|s| s.parse().ok()).expect("acquired <token> <session>");
    let mut next = w.contender("next", "hold", &connect, &[]);
    next.expect("state CONNECTED", PROGRESS_WAIT).await;

    // The holder stalls; the ensemble expires its session and deletes its lock node.
    stale.pause();
    w.report.count("contender stalls");
    // Fault injection: real time, the ensemble is ZooKeeper processes expiring sessions on their clocks.
    tokio::time::sleep(SESSION_TIMEOUT + SESSION_TIMEOUT / 2).await;
    w.session_gone(session, PROGRESS_WAIT).await.expect("the stalled holder's session expires");
    w.report.count("session expiries");

    // The next contender holds the lock now and writes.
    next.expect("acquired", PROGRESS_WAIT).await;
    next.send("write");
    let wrote = next.expect("write", PROGRESS_WAIT).await;
    assert!(wrote.starts_with("write ok 1 "), "the new holder's write: {wrote}");

    // The stale holder wakes up and writes at once, before it can have heard of its session.
    stale.resume();
    stale.send("write");
    let refused = stale.expect("write", PROGRESS_WAIT).await;
    assert!(refused.starts_with("write rejected"), "the stale holder's write was not refused by its fence: {refused}");
    stale.wait_count("state LOST", 1, PROGRESS_WAIT).await;

    let history = w.finish(&mut [stale, next]).await;
    assert_eq!(history.entries.len(), 1, "{:?}", history.entries);
    assert_eq!(history.entries[0].writer, "next");
    eprintln!("the stale holder's write: {refused}");
}
