//! Leader election: three schedulers run a Curator-compatible leader latch; the first leads,
//! and when it steps down (or its process dies) the next in line takes over.
//!
//! ```text
//! cargo run --example leader_election                      # on an embedded server, no JVM
//! cargo run --example leader_election -- --zk HOST:PORT    # on a real ZooKeeper (or CORRAL_ZK)
//! cargo run --example leader_election -- --hold            # pause before each failover, to look
//!                                                          # at it with `corral leader`
//! ```

mod support;

use corral::leader_latch::{self, LeaderLatch};
use support::{BoxError, Setup, TIMEOUT, until_children};

const ELECTION: &str = "/election/scheduler";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let setup = Setup::start("leader_election").await?;
    let observer = setup.framework().await?;

    // Each participant on its own session, as separate processes would be.
    let mut participants = Vec::new();
    for (n, id) in ["scheduler-a", "scheduler-b", "scheduler-c"].into_iter().enumerate() {
        let fw = setup.framework().await?;
        let latch = LeaderLatch::start(&fw, ELECTION, id);
        until_children(&observer, ELECTION, n + 1).await?; // joined in this order
        participants.push((fw, latch));
    }

    for (_, leader) in &participants {
        leader.await_leadership_timeout(TIMEOUT).await?;
        let order: Vec<String> = leader_latch::participants(&observer, ELECTION)
            .await?
            .into_iter()
            .map(|p| if p.is_leader { format!("{} (leader)", p.id) } else { p.id })
            .collect();
        setup.say(format!("{} leads; participants in order: {}", leader.id(), order.join(", ")));
        setup.hold_for(&format!("leader {ELECTION}")).await?;
        // Step down: the node goes, and the next in line is told by its watch.
        leader.close().await;
        setup.say(format!("{} stepped down", leader.id()));
    }

    for (fw, _) in participants {
        fw.close().await;
    }
    observer.close().await;
    setup.close().await;
    Ok(())
}
