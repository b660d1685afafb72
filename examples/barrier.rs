//! Barriers: a Curator-compatible barrier that holds workers back until a coordinator lifts it,
//! then a double barrier whose members start together once all have arrived and finish together.
//!
//! ```text
//! cargo run --example barrier                      # on an embedded server, no JVM
//! cargo run --example barrier -- --zk HOST:PORT    # on a real ZooKeeper (or CORRAL_ZK)
//! cargo run --example barrier -- --hold            # pause while the barriers hold, to look at
//!                                                  # them with `corral barrier`
//! ```

mod support;

use std::sync::Arc;

use corral::barrier::DistributedBarrier;
use corral::double_barrier::DistributedDoubleBarrier;
use support::{BoxError, Setup, TIMEOUT, until_children};
use tokio::sync::Barrier;

const GATE: &str = "/barriers/release-gate";
const PHASE: &str = "/barriers/batch-phase";
const MEMBERS: usize = 3;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let setup = Arc::new(Setup::start("barrier").await?);

    // 1. A barrier: set by a coordinator; workers wait on it until it is removed.
    let coordinator = setup.framework().await?;
    let gate = DistributedBarrier::new(&coordinator, GATE);
    gate.set_barrier().await?;
    setup.say(format!("coordinator set {GATE}: workers wait"));
    let mut waiting = Vec::new();
    for worker in 1..=2 {
        let fw = setup.framework().await?;
        let timeline = setup.clone();
        waiting.push(tokio::spawn(async move {
            DistributedBarrier::new(&fw, GATE).wait_on_barrier().await?;
            timeline.say(format!("worker {worker} passed the gate"));
            fw.close().await;
            Ok::<_, BoxError>(())
        }));
    }
    setup.hold_for(&format!("barrier {GATE}")).await?;
    setup.say(format!("coordinator removes {GATE}"));
    gate.remove_barrier().await?;
    for worker in waiting {
        tokio::time::timeout(TIMEOUT, worker).await???;
    }

    // 2. A double barrier: members enter once all have arrived, and leave once all are done.
    // (`entered` makes the last step wait until every member is inside, for `--hold`.)
    let entered = Arc::new(Barrier::new(MEMBERS + 1));
    let mut members = Vec::new();
    for member in 1..=MEMBERS {
        let fw = setup.framework().await?;
        let (timeline, entered) = (setup.clone(), entered.clone());
        members.push(tokio::spawn(async move {
            let barrier = DistributedDoubleBarrier::new(&fw, PHASE, MEMBERS);
            barrier.enter().await?;
            timeline.say(format!("member {member} entered (all {MEMBERS} arrived)"));
            entered.wait().await;
            entered.wait().await; // the main task looks at the barrier in between
            barrier.leave().await?;
            timeline.say(format!("member {member} left (all done)"));
            fw.close().await;
            Ok::<_, BoxError>(())
        }));
        if member < MEMBERS {
            until_children(&coordinator, PHASE, member).await?; // arrivals one by one
            setup.say(format!("member {member} arrived and waits for the others"));
        }
    }
    entered.wait().await;
    setup.hold_for(&format!("barrier {PHASE}")).await?;
    entered.wait().await;
    for member in members {
        tokio::time::timeout(TIMEOUT, member).await???;
    }

    coordinator.close().await;
    if let Ok(setup) = Arc::try_unwrap(setup) {
        setup.close().await;
    }
    Ok(())
}
