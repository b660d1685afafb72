//! The long run on a real 3-member ensemble: every fault kind, round after round, on one fenced
//! mutex workload (three Corral contenders and one Curator `InterProcessMutex`, each reaching the
//! ensemble through one fault proxy per member), with Corral's and Curator's leader latch,
//! leader selector and service discovery measured side by side.
//!
//! Each round applies, one after the other:
//! - a **member kill of the ensemble's leader** (kill -9; a new leader is elected; the old one is
//!   restarted and serves again as a follower). From the kill, the test measures the mutex's
//!   recovery (three more fenced writes) and, for Corral and for Curator each, the time to a new
//!   leader (the first `leader` line of the side's two latch contenders), the time to a new
//!   selector leader (the first `selector-leader` line; a member kill suspends every client, and
//!   both libraries' selectors give up leadership on SUSPENDED), and the time until each
//!   of the side's two instances is read back by its own process after its client reconnected;
//! - every other round, a **member kill of a follower** (and its restart);
//! - a **partition** between the mutex contenders and the member they were herded onto: a black
//!   hole, its replies cut, or its requests cut, in turn;
//! - a **stall of the lock holder** (SIGSTOP) past its session timeout, until its **session
//!   expires** on the ensemble (it prints LOST after SIGCONT, and its late write, if any, is
//!   refused by the fence).
//!
//! The history of fenced writes must show 0 violations (a lost or duplicated update, or a write
//! with an older token after a newer one), and in the long mode the recovery after a member kill
//! must be within 2 × the session timeout at p99.
//!
//! Sizes: [`ROUNDS_ENV`] rounds (default 1; 110 under `CORRAL_ENSEMBLE_LONG=1`), and at least
//! [`ACQUISITIONS_ENV`] fenced acquisitions (default 0; 10,000 in the long mode): after the
//! rounds, the workload runs on until it has made them. Every 10 rounds the report so far is
//! printed, so a run that fails late still shows what it did.

mod common;

use std::time::{Duration, Instant};

use corral_ensemble_tests::process::Contender;
use corral_ensemble_tests::report::percentile;
use corral_ensemble_tests::{SESSION_TIMEOUT, long_mode};
use corral_test_support::{Fault, FaultProxy, MemberId};

use common::{PROGRESS_WAIT, QUORUM_WAIT, Workload, apply, blocking, connections, holding};

/// How many rounds of faults to apply.
const ROUNDS_ENV: &str = "CORRAL_ENSEMBLE_ROUNDS";
/// How many fenced acquisitions the mutex workload must make at least.
const ACQUISITIONS_ENV: &str = "CORRAL_ENSEMBLE_ACQUISITIONS";

const CORRAL: &str = "Corral";
const CURATOR: &str = "Curator";
const NEW_LEADER: &str = "a new leader (latch) after a leader kill";
const NEW_SELECTOR_LEADER: &str = "a new leader (selector) after a leader kill";
const INSTANCE_BACK: &str = "instance read back after a leader kill";
const LEADER_KILL: &str = "a member kill (the leader)";
const FOLLOWER_KILL: &str = "a member kill (a follower)";
const PARTITIONS: [(Fault, &str); 3] = [
    (Fault::BlackHole, "partitions: black hole"),
    (Fault::CutServerToClient, "partitions: replies cut"),
    (Fault::CutClientToServer, "partitions: requests cut"),
];
const STALLS: &str = "contender stalls (the lock holder)";
const EXPIRIES: &str = "session expiries";

/// The number in `name`, or `long` / `short` by the mode when it is not set.
fn sized(name: &str, long: u64, short: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) if long_mode() => long,
        Err(_) => short,
    }
}

/// The contenders whose leader latch and discovery are measured, by side.
struct Compared {
    contenders: Vec<Contender>,
    sides: Vec<(&'static str, Vec<usize>)>,
}

impl Compared {
    /// Two Corral processes and, when Java can run here, two Curator ones, on separate
    /// elections and services, connected to every member directly (no fault proxy).
    fn start(w: &Workload) -> Self {
        let direct = w.connect();
        let mut contenders = Vec::new();
        let mut sides = Vec::new();
        let corral = ["election=/election-corral", "service=compare-corral", "selector=/selector-corral"];
        sides.push((CORRAL, vec![0, 1]));
        contenders.extend((1..=2).map(|i| w.contender(&format!("corral-{i}"), "compare", &direct, &corral)));
        let curator =
            ["mode=compare", "election=/election-curator", "service=compare-curator", "selector=/selector-curator"];
        let java: Vec<Contender> =
            (1..=2).filter_map(|i| w.curator_contender(&format!("curator-{i}"), &direct, &curator)).collect();
        if !java.is_empty() {
            sides.push((CURATOR, vec![2, 3]));
            contenders.extend(java);
        }
        Self { contenders, sides }
    }

    /// Waits until every contender registered and each side has a leader.
    async fn ready(&self) {
        for c in &self.contenders {
            c.wait_count("registered", 1, PROGRESS_WAIT).await;
        }
        let started = Instant::now();
        for (side, members) in &self.sides {
            while !members.iter().any(|&i| self.contenders[i].last("leader").is_some()) {
                assert!(started.elapsed() < PROGRESS_WAIT, "{side}'s latch has no leader after {PROGRESS_WAIT:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            while !members.iter().any(|&i| self.contenders[i].last("selector-leader").is_some()) {
                assert!(started.elapsed() < PROGRESS_WAIT, "{side}'s selector has no leader after {PROGRESS_WAIT:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// When one of `members` first printed a line starting with `prefix` since `since`.
    async fn first_since(&self, members: &[usize], prefix: &str, since: Instant, what: &str) -> Duration {
        loop {
            let first = members.iter().filter_map(|&i| self.contenders[i].first_since(prefix, since)).min();
            if let Some(at) = first {
                return at - since;
            }
            assert!(
                since.elapsed() < PROGRESS_WAIT,
                "{what}: no {prefix:?} line within {PROGRESS_WAIT:?}\n{}",
                members.iter().map(|&i| self.contenders[i].report()).collect::<Vec<_>>().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensemble_long_run_every_fault_kind_with_curator_side_by_side() {
    let rounds = sized(ROUNDS_ENV, 110, 1);
    let acquisitions = sized(ACQUISITIONS_ENV, 10_000, 0);
    let Some(mut w) = Workload::start("long run").await else { return };
    let (proxies, through_proxies) = w.client_proxies();
    let extra = ["writes=1"];
    let mut contenders: Vec<_> =
        (1..=3).map(|i| w.contender(&format!("m{i}"), "mutex", &through_proxies, &extra)).collect();
    contenders.extend(w.curator_contender("curator-m", &through_proxies, &extra));
    let mut compared = Compared::start(&w);
    compared.ready().await;
    w.progress(10, PROGRESS_WAIT, "the start").await;

    for round in 0..rounds {
        leader_kill(&mut w, &compared).await;
        if round % 2 == 0 {
            follower_kill(&mut w).await;
        }
        partition(&mut w, &proxies, contenders.len(), round as usize).await;
        stall(&mut w, &mut contenders).await;
        if (round + 1) % 10 == 0 && round + 1 < rounds {
            eprint!("after round {} of {rounds}:\n{}", round + 1, w.report.table());
        }
    }

    // The workload runs on until it made the acquisitions asked for (each makes one write, so
    // the counter bounds the acquisitions from below).
    while w.counter().await < acquisitions {
        w.progress(100, PROGRESS_WAIT, "the run to the acquisitions asked for").await;
    }
    let sessions_lost: usize = contenders.iter().map(|c| c.count("state LOST")).sum();
    w.report.set("mutex client sessions lost (new session)", sessions_lost as u64);
    let kept_through: usize = compared.contenders.iter().map(|c| c.count("state LOST")).sum();
    w.report.set("side-by-side clients' sessions lost", kept_through as u64);
    for c in &mut compared.contenders {
        let exited = c.stop(Duration::from_secs(20));
        assert!(exited, "{} did not stop within 20 s\n{}", c.name(), c.report());
    }
    let table = w.report.table().clone();
    let history = w.finish(&mut contenders).await;

    assert!(history.terms() as u64 >= acquisitions, "{} acquisitions, wanted {acquisitions}", history.terms());
    assert!(table.faults_of("member kills: the leader") >= rounds);
    assert!(table.faults_of(STALLS) >= rounds && table.faults_of(EXPIRIES) >= rounds);
    assert!(PARTITIONS.iter().map(|(_, kind)| table.faults_of(kind)).sum::<u64>() >= rounds);
    if long_mode() {
        for kind in [LEADER_KILL, FOLLOWER_KILL] {
            let p99 = percentile(table.recoveries_of(kind), 99).expect("recoveries measured");
            assert!(p99 <= SESSION_TIMEOUT * 2, "recovery after {kind}: p99 {p99:?} > 2 × {SESSION_TIMEOUT:?}");
        }
    }
}

/// Kills the ensemble's leader; measures the mutex's recovery and, side by side, the time to a
/// new leader and to each instance read back; restarts the old leader.
async fn leader_kill(w: &mut Workload, compared: &Compared) {
    let killed = Instant::now();
    let leader = blocking(|| w.zk.kill_leader()).expect("a leader to kill");
    w.report.count("member kills: the leader");
    w.progress(3, PROGRESS_WAIT, "a leader kill").await;
    w.report.recovered(LEADER_KILL, killed.elapsed());
    for (side, members) in &compared.sides {
        let took =
            compared.first_since(members, "leader", killed, &format!("{side}'s latch after a leader kill")).await;
        w.report.compare(NEW_LEADER, side, took);
        let what = format!("{side}'s selector after a leader kill");
        let took = compared.first_since(members, "selector-leader", killed, &what).await;
        w.report.compare(NEW_SELECTOR_LEADER, side, took);
        for &i in members {
            let what = format!("{} after a leader kill", compared.contenders[i].name());
            let took = compared.first_since(&[i], "instance-back", killed, &what).await;
            w.report.compare(INSTANCE_BACK, side, took);
        }
    }
    blocking(|| w.zk.restart(leader)).expect("restart the old leader");
    blocking(|| w.zk.wait_serving(leader, QUORUM_WAIT)).expect("the old leader serves again");
    blocking(|| w.zk.wait_for_quorum(QUORUM_WAIT)).expect("the ensemble whole again");
    w.report.count("member restarts");
}

/// Kills a follower, measures the mutex's recovery, restarts it.
async fn follower_kill(w: &mut Workload) {
    let follower = w.zk.ids().into_iter().find(|&id| Some(id) != w.zk.leader()).expect("a follower");
    let killed = Instant::now();
    blocking(|| w.zk.kill(follower));
    w.report.count("member kills: a follower");
    w.progress(3, PROGRESS_WAIT, "a follower kill").await;
    w.report.recovered(FOLLOWER_KILL, killed.elapsed());
    blocking(|| w.zk.restart(follower)).expect("restart the follower");
    blocking(|| w.zk.wait_for_quorum(QUORUM_WAIT)).expect("the ensemble whole again");
    w.report.count("member restarts");
}

/// Herds the mutex contenders onto one member, then cuts them from it (the kind of cut goes
/// round by round); they must move to another member and the workload go on.
async fn partition(w: &mut Workload, proxies: &[(MemberId, FaultProxy)], clients: usize, round: usize) {
    let on = proxies[round % proxies.len()].0;
    let proxy = &proxies[round % proxies.len()].1;
    let others: Vec<(MemberId, Fault)> =
        proxies.iter().filter(|(id, _)| *id != on).map(|(id, _)| (*id, Fault::Refuse)).collect();
    apply(proxies, &others);
    connections(proxy, clients, "herding the clients onto one member").await;
    w.progress(1, PROGRESS_WAIT, "herding the clients onto one member").await;
    let (fault, kind) = PARTITIONS[(round / proxies.len()) % PARTITIONS.len()];
    apply(proxies, &[(on, fault)]);
    w.report.count(kind);
    let cut = Instant::now();
    w.progress(3, PROGRESS_WAIT, kind).await;
    w.report.recovered("a partition (to the next writes)", cut.elapsed());
    apply(proxies, &[]);
}

/// Stalls the lock holder past its session timeout; the others go on; its session expires; it
/// learns so when it wakes up.
async fn stall(w: &mut Workload, contenders: &mut [Contender]) {
    // It must really hold the lock when it stops (its hold may end between its line and the
    // signal): the ensemble says whose node is first.
    let picked = Instant::now();
    let (i, lost, stalled) = loop {
        let i = holding(contenders, PROGRESS_WAIT).await;
        let lost = contenders[i].count("state LOST");
        contenders[i].pause();
        let stalled = Instant::now();
        if w.lock_owner().await == Some(contenders[i].session()) {
            break (i, lost, stalled);
        }
        contenders[i].resume();
        assert!(picked.elapsed() < PROGRESS_WAIT, "could not stop the lock holder while it held the lock");
    };
    let session = contenders[i].session();
    w.report.count(STALLS);
    w.progress(3, PROGRESS_WAIT, "a holder stall").await;
    w.report.recovered("a holder stall (to the next writes)", stalled.elapsed());
    // The stall lasts at least 1.5 × the session timeout, and until the session is gone.
    // Real time: the ensemble is ZooKeeper processes expiring sessions on their own clocks.
    tokio::time::sleep((SESSION_TIMEOUT * 3 / 2).saturating_sub(stalled.elapsed())).await;
    w.session_gone(session, PROGRESS_WAIT).await.expect("the stalled holder's session expires");
    contenders[i].resume();
    contenders[i].wait_count("state LOST", lost + 1, PROGRESS_WAIT).await;
    w.report.count(EXPIRIES);
    w.progress(3, PROGRESS_WAIT, "the stalled holder's return").await;
}
