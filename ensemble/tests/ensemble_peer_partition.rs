//! Partitions between the members of the ensemble (through a proxy on every member-to-member
//! link), while mutex contenders connected to every member make fenced writes: the leader cut
//! off from its peers but not from its clients, a follower cut off the same way, and one link
//! cut one way (the leader's messages to a follower lost, the follower's still arriving). The
//! majority side goes on; the write log shows 0 violations.

mod common;

use corral_ensemble_tests::long_mode;
use corral_test_support::Fault;
use tokio::time::Instant;

use common::{PROGRESS_WAIT, QUORUM_WAIT, Workload, blocking};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensemble_members_cut_off_from_their_peers() {
    let Some(mut w) = Workload::start_with("peer partition", |b| b.peer_proxies(true)).await else { return };
    let connect = w.connect();
    let extra = ["writes=3", "gap_ms=20"];
    let mut contenders: Vec<_> = (1..=3).map(|i| w.contender(&format!("q{i}"), "mutex", &connect, &extra)).collect();
    w.progress(10, PROGRESS_WAIT, "the start").await;

    let rounds = if long_mode() { 10 } else { 1 };
    for _ in 0..rounds {
        // The leader is cut off from its peers; its clients still reach it, until it gives up
        // leading for want of a quorum. The other two elect a leader and the writes go on.
        let leader = blocking(|| w.zk.wait_for_quorum(QUORUM_WAIT)).expect("a leader");
        assert!(w.zk.isolate(leader));
        w.report.count("partitions: leader cut off from its peers");
        let started = Instant::now();
        let others: Vec<_> = w.zk.ids().into_iter().filter(|&id| id != leader).collect();
        let new_leader = blocking(|| w.zk.wait_for_leader_among(&others, QUORUM_WAIT)).expect("the majority elects");
        assert_ne!(new_leader, leader);
        w.progress(3, PROGRESS_WAIT, "cutting the leader off from its peers").await;
        w.report.recovered("the leader cut off from its peers", started.elapsed());
        w.zk.heal_peers();
        blocking(|| w.zk.wait_for_quorum(QUORUM_WAIT)).expect("the ensemble whole again");
        w.progress(3, PROGRESS_WAIT, "healing the leader's links").await;

        // A follower is cut off: the leader and the other follower are a majority, nobody waits.
        let leader = blocking(|| w.zk.wait_for_quorum(QUORUM_WAIT)).expect("a leader");
        let follower = w.zk.ids().into_iter().find(|&id| id != leader).expect("a follower");
        assert!(w.zk.isolate(follower));
        w.report.count("partitions: follower cut off from its peers");
        let started = Instant::now();
        w.progress(3, PROGRESS_WAIT, "cutting a follower off from its peers").await;
        w.report.recovered("a follower cut off from its peers", started.elapsed());
        w.zk.heal_peers();
        blocking(|| w.zk.wait_for_quorum(QUORUM_WAIT)).expect("the ensemble whole again");

        // One way: what the leader sends a follower is lost; what the follower sends arrives.
        let leader = blocking(|| w.zk.wait_for_quorum(QUORUM_WAIT)).expect("a leader");
        let follower = w.zk.ids().into_iter().find(|&id| id != leader).expect("a follower");
        let link = w.zk.peer_link(follower, leader).expect("peer proxies");
        link.quorum.set(Fault::CutServerToClient);
        w.report.count("partitions: leader-to-follower one-way cut");
        let started = Instant::now();
        w.progress(3, PROGRESS_WAIT, "cutting the leader's messages to a follower").await;
        w.report.recovered("a leader-to-follower one-way cut", started.elapsed());
        w.zk.heal_peers();
        blocking(|| w.zk.wait_for_quorum(QUORUM_WAIT)).expect("the ensemble whole again");
        w.progress(3, PROGRESS_WAIT, "healing the one-way cut").await;
    }
    w.finish(&mut contenders).await;
}
