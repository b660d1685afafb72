//! Chaos: eight contenders on one mutex and one latch while the embedded server drops
//! connections and expires sessions at random. A fencing counter proves mutual exclusion.
//!
//! Short by default (a few hundred acquisitions). `CORRAL_CHAOS_LONG=1` runs the long version
//! (at least 10,000 acquisitions) — minutes, not for every CI run.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use corral_recipes::leader_latch::LeaderLatch;
use corral_recipes::lock::Mutex;
use corral_recipes::{CoreError as Error, CreateMode, ErrorCode, Framework, Op};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_exclusion_holds_under_random_faults() {
    let long = std::env::var("CORRAL_CHAOS_LONG").is_ok_and(|v| v == "1");
    let target = if long { 10_000 } else { 300 };
    let env = common::embedded("chaos").await;
    let server = env.server.clone().unwrap();
    let setup = env.client().await;
    setup.create("/counter", "0", CreateMode::Persistent).await.unwrap();
    setup.close().await;

    let acquisitions = Arc::new(AtomicUsize::new(0));
    let fenced = Arc::new(AtomicUsize::new(0));
    let violations = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let fws: Vec<Framework> = (0..8).map(|_| env.framework()).collect();

    let mut tasks = Vec::new();
    for fw in &fws {
        let (fw, acquisitions, fenced, violations, done) =
            (fw.clone(), acquisitions.clone(), fenced.clone(), violations.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mutex = Mutex::new(&fw, "/lock");
            while !done.load(Ordering::SeqCst) {
                let Ok(guard) = mutex.acquire_timeout(Duration::from_secs(5)).await else { continue };
                // Read-increment-write, fenced by the lock: a write from a holder that lost the
                // lock fails its check; two valid holders at once would collide on the version.
                let write = async {
                    let (data, stat) = fw.client().get_data("/counter").await?;
                    let value: u64 = String::from_utf8_lossy(&data).parse().unwrap_or(0);
                    tokio::task::yield_now().await;
                    fw.client()
                        .multi(vec![
                            guard.fencing_check(),
                            Op::set_data("/counter", (value + 1).to_string(), Some(stat.version)),
                        ])
                        .await
                };
                match write.await {
                    Ok(_) => {
                        acquisitions.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(Error::MultiFailed { index: 1, code: ErrorCode::BadVersion, .. }) => {
                        violations.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => {
                        fenced.fetch_add(1, Ordering::SeqCst);
                    }
                }
                let _ = guard.release().await;
            }
        }));
    }

    // Faults: every ~50 ms drop a random contender's connection, now and then expire one.
    let chaos = {
        let (server, fws, done, acquisitions) = (server.clone(), fws.clone(), done.clone(), acquisitions.clone());
        tokio::spawn(async move {
            let mut faults = 0;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(if long { 1800 } else { 60 });
            while acquisitions.load(Ordering::SeqCst) < target && tokio::time::Instant::now() < deadline {
                // Fault injection: random real-time gaps between faults (a soak; the assertions are on exclusion).
                tokio::time::sleep(Duration::from_millis(fastrand::u64(20..80))).await;
                let victim = &fws[fastrand::usize(..fws.len())];
                let session = victim.client().session_id();
                if fastrand::u8(..10) == 0 {
                    server.expire_session(session);
                } else {
                    server.drop_connection(session);
                }
                faults += 1;
            }
            done.store(true, Ordering::SeqCst);
            faults
        })
    };
    let faults = chaos.await.unwrap();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t).await.expect("contender stuck").unwrap();
    }
    let (ok, fenced, violations) =
        (acquisitions.load(Ordering::SeqCst), fenced.load(Ordering::SeqCst), violations.load(Ordering::SeqCst));
    eprintln!("chaos: {ok} fenced writes, {fenced} fenced out, {violations} violations, {faults} faults");
    assert_eq!(violations, 0, "mutual exclusion violated");
    assert!(ok >= target, "only {ok} acquisitions completed");
    let check = env.client().await;
    let (data, _) = check.get_data("/counter").await.unwrap();
    assert_eq!(String::from_utf8_lossy(&data), ok.to_string(), "every fenced write counted exactly once");
    check.close().await;
    for fw in fws {
        fw.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latch_never_has_two_leaders_with_live_sessions_under_random_faults() {
    let env = common::embedded("chaos-latch").await;
    let server = env.server.clone().unwrap();
    let fws: Vec<Framework> = (0..8).map(|_| env.framework()).collect();
    let latches: Vec<LeaderLatch> =
        fws.iter().enumerate().map(|(i, fw)| LeaderLatch::start(fw, "/election", format!("p{i}"))).collect();
    let rounds = if std::env::var("CORRAL_CHAOS_LONG").is_ok_and(|v| v == "1") { 2000 } else { 200 };
    let mut max_live_leaders = 0;
    let mut leader_changes = 0;
    let mut last = None;
    for round in 0..rounds {
        if round % 10 == 0 {
            // Half the faults hit the leader, so leadership really moves; every 50th round
            // expires the leader for certain, so the liveness check below cannot fail by
            // chance (random faults alone left leadership in place about once in 700 runs).
            let leader = latches.iter().position(LeaderLatch::has_leadership);
            let forced = round % 50 == 0 && leader.is_some();
            let index = match leader {
                Some(l) if forced || fastrand::bool() => l,
                _ => fastrand::usize(..fws.len()),
            };
            let victim = &fws[index];
            let session = victim.client().session_id();
            if forced || fastrand::bool() {
                server.expire_session(session);
            } else {
                server.drop_connection(session);
            }
        }
        // A sampling round: each round checks the invariant; progress is checked after the loop.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let live = server.sessions();
        let leading: Vec<usize> = latches
            .iter()
            .enumerate()
            .filter(|(i, l)| l.has_leadership() && live.contains(&fws[*i].client().session_id()))
            .map(|(i, _)| i)
            .collect();
        max_live_leaders = max_live_leaders.max(leading.len());
        if let Some(&l) = leading.first()
            && last != Some(l)
        {
            leader_changes += 1;
            last = Some(l);
        }
    }
    assert!(max_live_leaders <= 1, "two leaders with live sessions");
    assert!(leader_changes >= 2, "faults moved leadership around ({leader_changes} changes)");
    for l in &latches {
        l.close().await;
    }
    for fw in fws {
        fw.close().await;
    }
}
