//! Session migration: when the member a client is connected to dies (a follower, then the
//! ensemble's leader), the session continues on another member — the same session id, a watch
//! set before the kill still fires — and the time to RECONNECTED is measured, next to a Curator
//! client's in the same run.

mod common;

use std::time::Duration;

use corral_ensemble_tests::process::Contender;
use corral_ensemble_tests::{SESSION_TIMEOUT, long_mode};
use corral_recipes::{ConnectionState, CreateMode, EventType, Framework};
use corral_test_support::{Ensemble, MemberId};
use tokio::time::Instant;

use common::{PROGRESS_WAIT, QUORUM_WAIT, Workload, blocking};

/// The member whose `cons` lists `session`.
fn member_of(zk: &Ensemble, session: i64) -> Option<MemberId> {
    let sid = format!("sid={session:#x}");
    zk.ids().into_iter().find(|&id| zk.four_letter(id, "cons").is_ok_and(|cons| cons.contains(&sid)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensemble_session_moves_to_another_member_when_its_member_dies() {
    let Some(mut w) = Workload::start("session migration").await else { return };
    let fw = Framework::builder(w.connect()).session_timeout(SESSION_TIMEOUT).start().expect("framework");
    fw.wait_until_connected(PROGRESS_WAIT).await.expect("connect");
    let session = fw.client().session_id();

    let rounds = if long_mode() { 20 } else { 2 };
    for round in 0..rounds {
        // Even rounds: whichever member the client is on; odd rounds: the leader.
        let started = Instant::now();
        let member = loop {
            let on = blocking(|| member_of(&w.zk, session));
            let leader = blocking(|| w.zk.leader());
            match on {
                Some(on) if round % 2 == 0 || Some(on) == leader => break on,
                // Not on the leader yet: reconnect, to some member chosen by the client.
                Some(_) => fw.client().drop_connection(),
                None => {}
            }
            assert!(started.elapsed() < PROGRESS_WAIT, "session {session:#x} not found on the member wanted");
            fw.wait_until_connected(PROGRESS_WAIT).await.expect("connected");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let was_leader = blocking(|| w.zk.leader()) == Some(member);
        let probe = format!("/probe-{round}");
        let (stat, watcher) = fw.client().exists_and_watch(&probe).await.expect("set a watch");
        assert_eq!(stat, None);
        let before = fw.current_state();

        blocking(|| w.zk.kill(member));
        w.report.count(if was_leader { "leader kills" } else { "follower kills" });
        let started = Instant::now();
        let mut states = fw.connection_state();
        let back = tokio::time::timeout(
            SESSION_TIMEOUT * 2,
            states.wait_for(|s| s.state == ConnectionState::Reconnected && s.connection > before.connection),
        )
        .await
        .unwrap_or_else(|_| panic!("not RECONNECTED within 2 × the session timeout of killing member {member}"))
        .map(|s| *s)
        .expect("state channel");
        let took = started.elapsed();
        w.report.recovered(
            if was_leader { "the leader's death (RECONNECTED)" } else { "a follower's death (RECONNECTED)" },
            took,
        );
        assert_eq!((back.session_id, back.epoch), (session, before.epoch), "the session did not survive");
        let now_on = blocking(|| member_of(&w.zk, session));
        assert!(now_on.is_some_and(|m| m != member), "the session is on {now_on:?}, not on a live member");

        // The watch set on the dead member was restored on the new one.
        w.fw.with_retry(|client| {
            let probe = probe.clone();
            async move { client.create(&probe, "", CreateMode::Persistent).await }
        })
        .await
        .expect("create the probe");
        let event = tokio::time::timeout(PROGRESS_WAIT, watcher).await.expect("the watch fired after the move");
        assert_eq!((event.event_type, event.path.as_str()), (EventType::NodeCreated, probe.as_str()));

        blocking(|| w.zk.restart(member)).expect("restart the member");
        blocking(|| w.zk.wait_for_quorum(QUORUM_WAIT)).expect("the ensemble whole again");
        w.report.count("member restarts");
    }
    assert_eq!(fw.client().session_id(), session);
    fw.close().await;

    // Side by side: a Curator client (the Curator contender, alone on the mutex) whose member dies.
    let mut contenders: Vec<Contender> =
        w.curator_contender("curator", &w.connect(), &["gap_ms=20"]).into_iter().collect();
    if let Some(curator) = contenders.first_mut() {
        for _ in 0..rounds {
            curator.wait_count("state", 1, PROGRESS_WAIT).await;
            let line = curator.last("state").expect("a state line");
            let sid: i64 = line.split(' ').nth(2).and_then(|s| s.parse().ok()).expect("state <STATE> <session>");
            let started = Instant::now();
            let member = loop {
                if let Some(on) = blocking(|| member_of(&w.zk, sid)) {
                    break on;
                }
                assert!(started.elapsed() < PROGRESS_WAIT, "Curator's session {sid:#x} on no member");
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            blocking(|| w.zk.kill(member));
            let started = Instant::now();
            let back = curator.expect("state RECONNECTED", SESSION_TIMEOUT * 2).await;
            w.report.recovered("Curator: a member's death (RECONNECTED)", started.elapsed());
            assert!(back.ends_with(&format!(" {sid} 0")), "Curator's session changed: {back}");
            blocking(|| w.zk.restart(member)).expect("restart the member");
            blocking(|| w.zk.wait_for_quorum(QUORUM_WAIT)).expect("the ensemble whole again");
        }
    }
    w.finish(&mut contenders).await;
}
