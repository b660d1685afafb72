//! Counters: a Curator-compatible shared count every process sees change, and a distributed
//! atomic long that concurrent workers increment without losing an update.
//!
//! ```text
//! cargo run --example counters                      # on an embedded server, no JVM
//! cargo run --example counters -- --zk HOST:PORT    # on a real ZooKeeper (or CORRAL_ZK)
//! cargo run --example counters -- --hold            # pause at the end, to read the counters
//!                                                   # with `corral counter`
//! ```

mod support;

use std::time::Duration;

use corral::RetryNTimes;
use corral::atomic::DistributedAtomicLong;
use corral::shared_count::SharedCount;
use support::{BoxError, Setup, TIMEOUT};

const SHARED: &str = "/counters/replicas";
const ATOMIC: &str = "/counters/requests";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let setup = Setup::start("counters").await?;

    // A shared count: one process sets it, another sees each new value.
    let (a, b) = (setup.framework().await?, setup.framework().await?);
    let writer = SharedCount::start(&a, SHARED, 3).await?;
    let reader = SharedCount::start(&b, SHARED, 3).await?;
    let mut changes = reader.changes();
    for replicas in [5, 8] {
        writer.set_count(replicas).await?;
        let seen = tokio::time::timeout(TIMEOUT, changes.wait_for(|v| *v.value() == replicas)).await??;
        setup.say(format!(
            "set {SHARED} to {replicas}; the other process sees {} (version {})",
            seen.value(),
            seen.version()
        ));
    }

    // An atomic long: four workers, 25 increments each, compare-and-set under the hood.
    let mut workers = Vec::new();
    for _ in 0..4 {
        let fw = setup.framework().await?;
        workers.push(tokio::spawn(async move {
            let counter = DistributedAtomicLong::new(&fw, ATOMIC, RetryNTimes::new(100, Duration::from_millis(5)));
            let mut retries = 0;
            for _ in 0..25 {
                let result = counter.increment().await?;
                if !result.succeeded {
                    return Err::<_, BoxError>("an increment gave up (too much contention)".into());
                }
                retries += result.stats.optimistic_tries.saturating_sub(1);
            }
            fw.close().await;
            Ok(retries)
        }));
    }
    let mut retries = 0;
    for worker in workers {
        retries += tokio::time::timeout(TIMEOUT, worker).await???;
    }
    let total = DistributedAtomicLong::new(&a, ATOMIC, RetryNTimes::new(3, Duration::from_millis(5))).get().await?;
    setup.say(format!(
        "4 workers × 25 increments of {ATOMIC} = {} ({retries} compare-and-set retries)",
        total.post_value
    ));

    setup.hold_for(&format!("counter {SHARED}     # and: counter {ATOMIC}")).await?;
    writer.close().await;
    reader.close().await;
    a.close().await;
    b.close().await;
    setup.close().await;
    Ok(())
}
