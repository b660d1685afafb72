//! `LeaderSelector::interrupt_leadership()` and `requeue()` beside Curator 5.4's
//! `interruptLeadership()` and `requeue()` (Debian's `libcurator-recipes-java`, Java 17), one
//! Corral and one Curator selector on one path, against the embedded server and (when available)
//! a real ZooKeeper: interrupting the leader hands leadership to the other side, both ways; an
//! interrupt while waiting takes a selector out of line; `requeue` puts it back behind the
//! leader; and there is never more than one leader.
//!
//! The Java side is `tests/java/CuratorPeer.java` (its `selector … once`, `interrupt` and
//! `requeue` commands), compiled and driven by `common::java_peer` as the other interop suites
//! do. Without Java, javac or the jars the tests skip with a `skipping:` line on stderr, except
//! under `CI=true` (or `1`), where they fail.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use corral_recipes::leader_selector::{LeaderSelector, Leadership};

use common::java_peer::{self, Java, PeerSpec, T, within};

const SPEC: PeerSpec = PeerSpec {
    class: "CuratorPeer",
    jars: &[java_peer::CURATOR_RECIPES_JARS],
    packages: java_peer::CURATOR_RECIPES_PACKAGES,
    tests: "Curator leader selector interop tests",
    cache: "curator-peer",
};

const PATH: &str = "/selector-interrupt";
const JAVA: &str = "java-sel";
const RUST: &str = "rust-sel";

/// The running peer and Curator's leadership as it last reported it.
struct Peer {
    io: java_peer::Peer,
    leads: Arc<StdMutex<HashMap<String, bool>>>,
}

impl Peer {
    async fn start(java: &Java) -> Self {
        let leads = Arc::new(StdMutex::new(HashMap::new()));
        let io = java_peer::Peer::start_with(java, {
            let leads = leads.clone();
            move |line| {
                let mut words = line.split(' ');
                match (words.next(), words.next()) {
                    (Some("LEADER"), Some(tag)) => leads.lock().unwrap().insert(tag.to_owned(), true),
                    (Some("NOT_LEADER"), Some(tag)) => leads.lock().unwrap().insert(tag.to_owned(), false),
                    _ => None,
                };
            }
        })
        .await;
        Self { io, leads }
    }

    fn java_leads(&self) -> bool {
        self.leads.lock().unwrap().get(JAVA).copied().unwrap_or(false)
    }

    /// Curator's participants, the leader's id marked with a `*`.
    async fn participants(&mut self) -> Vec<String> {
        self.io.send(&format!("participants {JAVA}"));
        let line = self.io.expect(&format!("PARTICIPANTS {JAVA}")).await;
        line.split(' ').nth(2).unwrap_or_default().split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
    }

    async fn requeue(&mut self) -> bool {
        self.io.send(&format!("requeue {JAVA}"));
        self.io.expect(&format!("REQUEUED {JAVA}")).await.ends_with(" true")
    }

    async fn interrupt(&mut self) {
        self.io.send(&format!("interrupt {JAVA}"));
        self.io.expect(&format!("INTERRUPTED {JAVA}")).await;
    }
}

/// Waits until both sides list exactly `ids` in line order, the first as the leader.
async fn line_is(selector: &LeaderSelector, peer: &mut Peer, ids: &[&str]) {
    let want: Vec<String> =
        ids.iter().enumerate().map(|(i, id)| if i == 0 { format!("*{id}") } else { (*id).to_owned() }).collect();
    let deadline = Instant::now() + T;
    loop {
        let rust: Vec<String> = selector
            .participants()
            .await
            .expect("participants")
            .iter()
            .map(|p| if p.is_leader { format!("*{}", p.id) } else { p.id.clone() })
            .collect();
        let java = peer.participants().await;
        if rust == want && java == want {
            return;
        }
        assert!(Instant::now() < deadline, "line: want {want:?}, Corral says {rust:?}, Curator says {java:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interrupt_and_requeue_hand_leadership_across_runtimes() {
    let Some(java) = java_peer::java(&SPEC) else { return };
    let mut peer = Peer::start(java).await;
    for env in common::envs("interop-selector-interrupt").await {
        eprintln!("-- against the {} server", env.kind);
        peer.io.connect(&env).await;
        peer.leads.lock().unwrap().clear();
        interrupts_move_leadership(&env, &mut peer).await;
        peer.io.disconnect().await;
    }
    peer.io.quit().await;
}

async fn interrupts_move_leadership(env: &common::Env, peer: &mut Peer) {
    let fw = env.framework();
    // Corral's task leads until it is cancelled (by an interrupt); no auto-requeue.
    let terms = Arc::new(AtomicUsize::new(0));
    let selector = LeaderSelector::start(&fw, PATH, RUST, false, {
        let terms = terms.clone();
        move |leadership: Leadership| {
            terms.fetch_add(1, Ordering::SeqCst);
            async move { leadership.lost().await }
        }
    });
    let mut leading = selector.leadership();
    within("Corral leads", leading.wait_for(|l| *l)).await.expect("selector");
    // Curator's selector without auto-requeue queues behind it.
    peer.io.send(&format!("selector {JAVA} {PATH} {JAVA} once"));
    peer.io.expect(&format!("SELECTOR_STARTED {JAVA}")).await;
    line_is(&selector, peer, &[RUST, JAVA]).await;
    assert!(!peer.java_leads(), "Curator leads while Corral does");
    assert!(!selector.requeue(), "requeue of a selector in line (leading) is a no-op");

    // Corral's interrupt: its task is cancelled, its node deleted, Curator leads; Corral is out
    // of line (no auto-requeue).
    assert!(selector.interrupt_leadership());
    peer.io.expect(&format!("LEADER {JAVA}")).await;
    assert!(!selector.has_leadership(), "Corral still leads while Curator's takeLeadership runs");
    within("Corral's attempt ends", selector.wait_until_done()).await;
    line_is(&selector, peer, &[JAVA]).await;

    // Corral's requeue: back in line behind Curator, not leading.
    assert!(selector.requeue());
    line_is(&selector, peer, &[JAVA, RUST]).await;
    assert!(!selector.has_leadership(), "a requeued selector leads while Curator does");
    assert!(peer.java_leads());

    // Interrupted while waiting: Corral leaves the line; Curator keeps leading.
    assert!(selector.interrupt_leadership());
    line_is(&selector, peer, &[JAVA]).await;
    assert!(selector.requeue());
    line_is(&selector, peer, &[JAVA, RUST]).await;

    // Curator's interruptLeadership(): its takeLeadership is interrupted, its node released,
    // Corral leads; Curator is out of line (no auto-requeue).
    peer.interrupt().await;
    peer.io.expect(&format!("NOT_LEADER {JAVA}")).await;
    within("Corral leads again", leading.wait_for(|l| *l)).await.expect("selector");
    assert!(!peer.java_leads(), "Curator still leads while Corral does");
    common::eventually("Corral's second term runs", || async { terms.load(Ordering::SeqCst) == 2 }).await;
    line_is(&selector, peer, &[RUST]).await;

    // Curator's requeue: back in line behind Corral.
    assert!(peer.requeue().await, "Curator's requeue of a selector out of line");
    line_is(&selector, peer, &[RUST, JAVA]).await;
    assert!(!peer.requeue().await, "Curator's requeue of a queued selector");
    assert!(!peer.java_leads());

    // Curator interrupted while waiting leaves the line too.
    peer.interrupt().await;
    line_is(&selector, peer, &[RUST]).await;
    assert!(selector.has_leadership());

    // And the last hand-over: Corral interrupts, Curator (requeued) leads.
    assert!(peer.requeue().await);
    line_is(&selector, peer, &[RUST, JAVA]).await;
    assert!(selector.interrupt_leadership());
    peer.io.expect(&format!("LEADER {JAVA}")).await;
    assert!(!selector.has_leadership());
    line_is(&selector, peer, &[JAVA]).await;
    assert_eq!(terms.load(Ordering::SeqCst), 2, "Corral led twice");

    peer.io.send(&format!("close {JAVA}"));
    peer.io.expect(&format!("CLOSED {JAVA}")).await;
    selector.close().await;
    common::eventually("Curator's node gone", || async {
        fw.client().get_children(PATH).await.map(|c| c.is_empty()).unwrap_or(false)
    })
    .await;
    fw.close().await;
}
