//! Partitions between clients and members: each contender reaches the ensemble only through one
//! [`FaultProxy`](corral_test_support::FaultProxy) per member. The clients are herded onto one
//! member, which is then black-holed, cut one way (its replies lost; then the clients' requests
//! lost), and stalled (SIGSTOP); each time the clients must move to another member and the mutex
//! go on with 0 violations.

mod common;

use corral_ensemble_tests::long_mode;
use corral_test_support::{Fault, MemberId};
use tokio::time::Instant;

use common::{PROGRESS_WAIT, QUORUM_WAIT, Workload, apply, blocking, connections};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensemble_partitions_move_clients_to_another_member() {
    let Some(mut w) = Workload::start("partition").await else { return };
    let (proxies, connect) = w.client_proxies();
    let mut contenders: Vec<_> =
        (1..=3).map(|i| w.contender(&format!("p{i}"), "mutex", &connect, &["writes=3"])).collect();
    w.progress(10, PROGRESS_WAIT, "the start").await;
    let proxy = |id: MemberId| &proxies[(id - 1) as usize].1;
    let n = contenders.len();

    let rounds = if long_mode() { 10 } else { 1 };
    for _ in 0..rounds {
        // Everyone on member 1.
        apply(&proxies, &[(2, Fault::Refuse), (3, Fault::Refuse)]);
        connections(proxy(1), n, "herding the clients onto member 1").await;
        w.progress(3, PROGRESS_WAIT, "herding the clients onto member 1").await;

        // Member 1 goes silent (black hole): the clients move to member 2.
        apply(&proxies, &[(1, Fault::BlackHole), (3, Fault::Refuse)]);
        w.report.count("partitions: black hole");
        let started = Instant::now();
        connections(proxy(2), n, "after black-holing member 1").await;
        w.progress(3, PROGRESS_WAIT, "black-holing member 1").await;
        w.report.recovered("a black hole", started.elapsed());

        // Member 2's replies are lost (its clients' requests still arrive): they move to member 1.
        apply(&proxies, &[(2, Fault::CutServerToClient), (3, Fault::Refuse)]);
        w.report.count("partitions: server-to-client cut");
        let started = Instant::now();
        connections(proxy(1), n, "after cutting member 2's replies").await;
        w.progress(3, PROGRESS_WAIT, "cutting member 2's replies").await;
        w.report.recovered("a server-to-client cut", started.elapsed());

        // The clients' requests to member 1 are lost: they move to member 2.
        apply(&proxies, &[(1, Fault::CutClientToServer), (3, Fault::Refuse)]);
        w.report.count("partitions: client-to-server cut");
        let started = Instant::now();
        connections(proxy(2), n, "after cutting the requests to member 1").await;
        w.progress(3, PROGRESS_WAIT, "cutting the requests to member 1").await;
        w.report.recovered("a client-to-server cut", started.elapsed());

        // Member 2 stalls (SIGSTOP): the clients move to member 1 or 3, the ensemble goes on.
        apply(&proxies, &[]);
        w.zk.pause(2);
        w.report.count("member stalls");
        let started = Instant::now();
        w.progress(3, PROGRESS_WAIT, "stalling member 2").await;
        w.report.recovered("a member stall", started.elapsed());
        w.zk.resume(2);
        blocking(|| w.zk.wait_for_quorum(QUORUM_WAIT)).expect("the ensemble whole again");
        w.progress(3, PROGRESS_WAIT, "member 2's return").await;
    }
    apply(&proxies, &[]);
    let sessions_lost: usize = contenders.iter().map(|c| c.count("state LOST")).sum();
    w.report.set("client sessions lost (new session)", sessions_lost as u64);
    w.finish(&mut contenders).await;
}
