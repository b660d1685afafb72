//! The ensemble harness itself: election, a leader kill, a restart, a majority kill, and every
//! process and directory gone after drop; and a member cut off from its peers.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use corral_test_support::{Ensemble, Mode};

const POLL_INTERVAL: Duration = Duration::from_millis(100);

#[test]
fn ensemble_elects_survives_a_leader_kill_and_takes_the_member_back() {
    let Some(mut zk) = Ensemble::builder().start_or_skip() else { return };
    let t = Duration::from_secs(60);
    let leader = zk.leader().expect("a leader after start");
    assert_eq!(zk.serving().len(), 3, "{zk}");
    assert_eq!(zk.connect_string().split(',').count(), 3);
    // Without peer proxies the members talk directly: each follower to the leader at least.
    let direct = zk.direct_peer_connections();
    assert!(direct.iter().filter(|&&(a, b)| a == leader || b == leader).count() == 2, "{direct:?}");
    let pid = zk.pid(leader).expect("the leader runs");

    assert_eq!(zk.kill_leader(), Ok(leader));
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "the killed leader (pid {pid}) is still there");
    let new_leader = zk.wait_for_quorum(t).unwrap();
    assert_ne!(new_leader, leader);

    zk.restart(leader).unwrap();
    assert_eq!(zk.wait_serving(leader, t), Ok(Mode::Follower));
    assert_eq!(zk.wait_for_quorum(t), Ok(new_leader));

    // Without a majority nobody serves; with it back, the ensemble forms again.
    let victims = zk.kill_majority();
    assert_eq!(victims.len(), 2);
    let deadline = Instant::now() + t;
    while !zk.serving().is_empty() {
        assert!(Instant::now() < deadline, "{:?} still serve without a quorum", zk.serving());
        thread::sleep(POLL_INTERVAL);
    }
    for id in victims {
        zk.restart(id).unwrap();
    }
    zk.wait_for_quorum(t).unwrap();

    let dir = zk.dir().to_owned();
    let pids: Vec<u32> = zk.ids().into_iter().filter_map(|id| zk.pid(id)).collect();
    drop(zk);
    for pid in pids {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "member java {pid} still there");
    }
    // The guard removes the directory right after its pipe closes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while dir.exists() && Instant::now() < deadline {
        thread::sleep(POLL_INTERVAL);
    }
    assert!(!dir.exists(), "{} was not removed", dir.display());
}

#[test]
fn ensemble_member_cut_off_from_its_peers_stops_serving_and_comes_back() {
    let Some(zk) = Ensemble::builder().peer_proxies(true).start_or_skip() else { return };
    let t = Duration::from_secs(60);
    let leader = zk.wait_for_quorum(t).unwrap();
    // Every member-to-member connection runs through a proxy (ZooKeeper's election connects
    // back to the address a handshake names; the proxies rewrite it), or isolation would leak.
    assert_eq!(zk.direct_peer_connections(), vec![], "{zk}");
    assert!(zk.isolate(leader));
    let others: Vec<_> = zk.ids().into_iter().filter(|&id| id != leader).collect();
    let new_leader = zk.wait_for_leader_among(&others, t).unwrap();
    assert_ne!(new_leader, leader);
    // The isolated member gives up leading (no quorum): it stops serving its clients.
    let deadline = Instant::now() + t;
    while zk.mode(leader).is_some() {
        assert!(Instant::now() < deadline, "member {leader} still serves: {:?}", zk.mode(leader));
        thread::sleep(POLL_INTERVAL);
    }
    assert_eq!(zk.direct_peer_connections(), vec![], "{zk}");
    zk.heal_peers();
    assert_eq!(zk.wait_for_quorum(t), Ok(new_leader));
    assert_eq!(zk.mode(leader), Some(Mode::Follower));
    assert_eq!(zk.direct_peer_connections(), vec![], "{zk}");
}
