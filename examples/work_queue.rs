//! Work queue: a producer puts jobs in a Curator-compatible distributed queue, and two consumers
//! take them in lock-safe mode — a job is removed only when its consumer acknowledges it, so a
//! consumer that dies mid-job (here: drops its message) gives the job back.
//!
//! ```text
//! cargo run --example work_queue                      # on an embedded server, no JVM
//! cargo run --example work_queue -- --zk HOST:PORT    # on a real ZooKeeper (or CORRAL_ZK)
//! cargo run --example work_queue -- --hold            # pause with a job in flight, to look at
//!                                                     # the queue with `corral queue`
//! ```

mod support;

use std::collections::BTreeSet;

use corral::queue::{BytesSerializer, DistributedQueue, QueueSerializer};
use support::{BoxError, Setup, TIMEOUT};
use tokio::sync::mpsc;

/// The queue's item type (`bytes::Bytes`), named through the serializer.
type Bytes = <BytesSerializer as QueueSerializer>::Item;

const QUEUE: &str = "/queues/work";
const LOCKS: &str = "/queues/work-locks";
const JOBS: usize = 6;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let setup = Setup::start("work_queue").await?;

    let producer = setup.framework().await?;
    let queue = DistributedQueue::new(&producer, QUEUE);
    for n in 1..=JOBS {
        queue.put(&Bytes::from(format!("job-{n}"))).await?;
    }
    setup.say(format!("produced {JOBS} jobs into {QUEUE}"));

    // A consumer that takes the first job and dies before acknowledging it.
    let crashing = setup.framework().await?;
    let mut consumer = DistributedQueue::new(&crashing, QUEUE).lock_path(LOCKS).consumer();
    let message = tokio::time::timeout(TIMEOUT, consumer.next_message()).await??;
    setup.say(format!("consumer 0 took {} and crashes before acknowledging it", text(message.items())));
    setup.hold_for(&format!("queue {QUEUE} --lock-path {LOCKS}")).await?;
    drop(message); // not acknowledged: its lock goes, the job stays
    drop(consumer);
    crashing.close().await;

    // Two healthy consumers share the rest, and the crashed consumer's job.
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let mut workers = Vec::new();
    for worker in 1..=2 {
        let fw = setup.framework().await?;
        let done_tx = done_tx.clone();
        workers.push(tokio::spawn(async move {
            let mut consumer = DistributedQueue::new(&fw, QUEUE).lock_path(LOCKS).consumer();
            loop {
                let message = consumer.next_message().await?;
                let job = text(message.items());
                message.ack().await?; // processed: the job and its lock go together
                if done_tx.send((worker, job)).is_err() {
                    return Ok::<_, BoxError>(fw);
                }
            }
        }));
    }
    let mut processed = BTreeSet::new();
    while processed.len() < JOBS {
        let (worker, job) = tokio::time::timeout(TIMEOUT, done.recv()).await?.ok_or("consumers stopped")?;
        setup.say(format!("consumer {worker} processed {job}"));
        processed.insert(job);
    }
    setup.say(format!("all {JOBS} jobs processed once acknowledged, the crashed consumer's included"));

    for worker in workers {
        worker.abort(); // dropping a waiting consumer is safe: it holds no lock
    }
    producer.close().await;
    setup.close().await;
    Ok(())
}

fn text(items: &[Bytes]) -> String {
    items.iter().map(|i| String::from_utf8_lossy(i).into_owned()).collect::<Vec<_>>().join(",")
}
