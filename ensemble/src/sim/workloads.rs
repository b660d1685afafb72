//! The simulated workloads: the clients' loops, the run's phases (start, faults, calm, stop)
//! and the final checks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use corral_recipes::leader_latch::LeaderLatch;
use corral_recipes::leader_selector::LeaderSelector;
use corral_recipes::lock::Mutex;
use corral_recipes::queue::DistributedQueue;
use corral_recipes::{CoreError, CreateMode, Error, ErrorCode, Framework};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::faults::{self, FaultKind};
use super::{PROGRESS_BOUND, Workload, World, error_kind};
use crate::fenced::{self, LOCK, QUEUE, QUEUE_LOCKS};
use crate::history::History;

/// Runs `workload` in `world`: start the clients, wait for progress, apply the faults, wait for
/// progress once they are over, stop, and check.
pub(super) async fn run(workload: Workload, world: &Arc<World>) {
    let observer = world.framework(world.clients);
    if let Err(err) = observer.wait_until_connected(PROGRESS_BOUND).await {
        world.violation(format!("the observer did not connect: {err}"));
        return;
    }
    if let Err(err) = prepare(&observer).await {
        world.violation(format!("preparing the nodes failed: {err}"));
        return;
    }
    let clients: Vec<JoinHandle<()>> = (0..world.clients)
        .map(|c| {
            let world = Arc::clone(world);
            match workload {
                Workload::Mutex => tokio::spawn(mutex(world, c)),
                Workload::Selector => tokio::spawn(selector(world, c)),
                Workload::Latch => tokio::spawn(latch(world, c)),
                Workload::Queue => tokio::spawn(consumer(world, c)),
            }
        })
        .collect();
    let (producer_stop, producer) = match workload {
        Workload::Queue => {
            let (stop, stopped) = tokio::sync::watch::channel(false);
            (Some(stop), Some(tokio::spawn(produce(Arc::clone(world), observer.clone(), stopped))))
        }
        _ => (None, None),
    };

    if world.progress_after(0, PROGRESS_BOUND).await.is_none() {
        world.violation("no progress at the start".to_owned());
    } else {
        let count = world.rand(super::FAULTS, 2..6) as usize;
        faults::run(world, count, &FaultKind::ALL, PROGRESS_BOUND).await;
        // Calm: the workload goes on without faults.
        let from = world.progress_count();
        if world.progress_after(from + 2, PROGRESS_BOUND).await.is_none() {
            world.violation("no progress once the faults were over".to_owned());
        }
    }

    let mut put = 0;
    if let (Some(stop), Some(producer)) = (producer_stop, producer) {
        stop.send_replace(true);
        put = producer.await.unwrap_or(0);
        drained(world, &observer).await;
    }
    world.stop();
    for (c, client) in clients.into_iter().enumerate() {
        if tokio::time::timeout(PROGRESS_BOUND, client).await.is_err() {
            world.violation(format!("{} did not stop within {} s", world.name(c), PROGRESS_BOUND.as_secs()));
        }
    }
    match workload {
        Workload::Queue => check_queue(world, put),
        _ => check_history(world, &observer).await,
    }
}

/// Creates the counter, the write log and the lock's parent.
async fn prepare(fw: &Framework) -> corral_recipes::Result<()> {
    fenced::prepare(fw).await?;
    match fw.client().create(LOCK, "", CreateMode::Persistent).await {
        Ok(_) | Err(CoreError::Server { code: ErrorCode::NodeExists, .. }) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// Reads the write log and records its violations and counts.
async fn check_history(world: &World, observer: &Framework) {
    let started = Instant::now();
    let history = loop {
        match History::read(observer).await {
            Ok(history) => break history,
            // The observer only reads: a session it lost (say, to an election window shorter
            // than the session timeout, when its reconnect pause outlasted the rest of it) breaks
            // none of the workload's promises. It reads again in its next session, and the
            // report counts it.
            Err(err) if started.elapsed() < PROGRESS_BOUND => {
                world.event(format!("obs history read failed, reading again: {err}"));
                world.report(|r| r.add("observer's history reads failed (read again)", 1));
                let _ = observer.wait_until_connected(PROGRESS_BOUND).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => {
                world.violation(format!("reading the history failed: {err}"));
                return;
            }
        }
    };
    for v in &history.violations {
        world.violation(format!("history: {v}"));
    }
    world.report(|r| r.add("fencing tokens that wrote (holds, terms)", history.terms() as u64));
    world.event(format!("history {} writes, {} terms", history.entries.len(), history.terms()));
}

/// Makes `writes` fenced writes as client `c` holding `token` (session `session`), stopping at
/// the first that is not applied; a stall can strike between two writes.
async fn hold_and_write(
    world: &World,
    c: usize,
    fw: &Framework,
    check: impl Fn() -> corral_recipes::Op,
    token: i64,
    session: i64,
) {
    let writes = world.rand(c, 1..4);
    for n in 0..writes {
        if n > 0 {
            tokio::time::sleep(world.rand_duration(c, Duration::ZERO, Duration::from_millis(150))).await;
        }
        // Deliberately no validity check first: after a stall the holder writes as if nothing
        // happened, and the fence alone must refuse it.
        world.stall_point(c).await;
        if !world.fenced_write(c, fw, check(), token, session).await {
            break;
        }
    }
}

async fn mutex(world: Arc<World>, c: usize) {
    let fw = world.framework(c);
    let mutex = Mutex::new(&fw, LOCK);
    while !world.stopping() {
        world.stall_point(c).await;
        let acquired = tokio::select! {
            biased;
            () = world.stopped() => break,
            acquired = mutex.acquire_timeout(Duration::from_secs(5)) => acquired,
        };
        match acquired {
            Ok(guard) => {
                let (token, session) = (guard.fencing_token(), guard.session_id());
                world.event_of(c, format!("acquired {token} {session:#x}"));
                world.report(|r| r.add("acquisitions", 1));
                let holding = world.holding(c, session);
                hold_and_write(&world, c, &fw, || guard.fencing_check(), token, session).await;
                drop(holding);
                world.event_of(c, format!("released {token}"));
                if let Err(err) = guard.release().await {
                    world.event_of(c, format!("release failed {}", error_kind(&err)));
                }
                tokio::time::sleep(world.think_time(c)).await;
            }
            Err(Error::TimedOut { .. }) => world.event_of(c, "acquire timed out".to_owned()),
            Err(err) => {
                world.event_of(c, format!("acquire failed {}", error_kind(&err)));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn selector(world: Arc<World>, c: usize) {
    let fw = world.framework(c);
    let (writer, me) = (fw.clone(), Arc::clone(&world));
    let selector = LeaderSelector::start(&fw, LOCK, world.name(c), true, move |leadership| {
        let (fw, world) = (writer.clone(), Arc::clone(&me));
        async move {
            let (token, session) = (leadership.fencing_token(), leadership.hold().session_id());
            world.event_of(c, format!("leader {} {token} {session:#x}", leadership.round()));
            world.report(|r| r.add("leader terms", 1));
            let holding = world.holding(c, session);
            hold_and_write(&world, c, &fw, || leadership.fencing_check(), token, session).await;
            drop(holding);
            world.event_of(c, format!("released {token}"));
            tokio::time::sleep(world.think_time(c)).await;
        }
    });
    world.stopped().await;
    selector.close().await;
}

async fn latch(world: Arc<World>, c: usize) {
    let fw = world.framework(c);
    while !world.stopping() {
        world.stall_point(c).await;
        let latch = LeaderLatch::start(&fw, LOCK, world.name(c));
        let mut leading = latch.leadership();
        let led = tokio::select! {
            biased;
            () = world.stopped() => false,
            led = leading.wait_for(|leads| *leads) => led.is_ok(),
        };
        drop(leading);
        if let Some(hold) = latch.hold().filter(|_| led) {
            let (token, session) = (hold.fencing_token(), hold.session_id());
            world.event_of(c, format!("leader {token} {session:#x}"));
            world.report(|r| r.add("leader terms", 1));
            let holding = world.holding(c, session);
            hold_and_write(&world, c, &fw, || hold.fencing_check(), token, session).await;
            drop(holding);
            world.event_of(c, format!("released {token}"));
        }
        latch.close().await;
        tokio::time::sleep(world.think_time(c)).await;
    }
}

/// Puts items until told to stop; returns how many.
async fn produce(world: Arc<World>, fw: Framework, stop: tokio::sync::watch::Receiver<bool>) -> usize {
    let queue = DistributedQueue::new(&fw, QUEUE).lock_path(QUEUE_LOCKS);
    let mut put = 0;
    while !*stop.borrow() {
        // The producer's link fails only when its member is killed; a put whose reply was lost
        // then is retried, and may leave the item in the queue twice (the check allows for it).
        match queue.put(&Bytes::from(format!("item-{put}"))).await {
            Ok(_) => {
                world.event(format!("put item-{put}"));
                put += 1;
            }
            Err(err) => world.violation(format!("a put on a healthy link failed: {err}")),
        }
        tokio::time::sleep(world.rand_duration(world.clients, Duration::from_millis(50), Duration::from_millis(600)))
            .await;
    }
    world.report(|r| r.add("items put", put as u64));
    put
}

async fn consumer(world: Arc<World>, c: usize) {
    let fw = world.framework(c);
    let mut consumer = DistributedQueue::new(&fw, QUEUE).lock_path(QUEUE_LOCKS).consumer();
    while !world.stopping() {
        world.stall_point(c).await;
        let next = tokio::select! {
            biased;
            () = world.stopped() => break,
            next = consumer.next_message_timeout(Duration::from_secs(1)) => next,
        };
        match next {
            Ok(message) => {
                // Each item with the queue node that carried it: a put retried after a lost reply
                // can leave two nodes with the same item, and each must be acknowledged once.
                let node = message.path().rsplit('/').next().unwrap_or_default().to_owned();
                let items: Vec<String> =
                    message.items().iter().map(|item| format!("{} {node}", String::from_utf8_lossy(item))).collect();
                let session = world.session_of(c);
                for item in &items {
                    world.event_of(c, format!("took {item}"));
                }
                let holding = world.holding(c, session);
                // The processing; a stall can strike with the message in hand.
                tokio::time::sleep(world.rand_duration(c, Duration::ZERO, Duration::from_millis(100))).await;
                world.stall_point(c).await;
                let acked = message.ack().await;
                drop(holding);
                match acked {
                    Ok(()) => {
                        for item in &items {
                            world.event_of(c, format!("acked {item}"));
                        }
                        world.progressed();
                    }
                    Err(err) => {
                        let kind = error_kind(&err);
                        for item in &items {
                            world.event_of(c, format!("ack-failed {item} {kind}"));
                        }
                        let unknown = matches!(err, Error::Core(CoreError::ConnectionLoss));
                        world.report(|r| {
                            r.add(if unknown { "acks of unknown outcome" } else { "acks refused (lock lost)" }, 1)
                        });
                    }
                }
            }
            Err(Error::TimedOut { .. }) => {}
            Err(err) => {
                world.event_of(c, format!("take failed {}", error_kind(&err)));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Waits (bounded) until the queue and its lock directory are empty.
async fn drained(world: &World, observer: &Framework) {
    let bound = PROGRESS_BOUND * 2;
    let result = tokio::time::timeout(bound, async {
        loop {
            let client = observer.client();
            let items = client.get_children(QUEUE).await.map_or(usize::MAX, |c| c.len());
            let locks = client.get_children(QUEUE_LOCKS).await.map_or(0, |c| c.len());
            if items == 0 && locks == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    if result.is_err() {
        world.violation(format!("the queue was not drained within {} s", bound.as_secs()));
    }
}

/// Every queue node was acknowledged at most once, and every item put at least once; an item
/// never acknowledged is allowed only for an ack of unknown outcome (its reply lost: the item is
/// gone, unacknowledged). An item in two nodes (a put retried after its reply was lost) is
/// counted, not a violation: a sequential create is not idempotent.
fn check_queue(world: &World, put: usize) {
    // item -> node -> acknowledgements
    let mut acked: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut taken: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut nodes: BTreeMap<String, BTreeMap<String, ()>> = BTreeMap::new();
    let mut unknown_acks = 0;
    for line in world.trace_lines() {
        let mut words = line.split_whitespace().skip(2);
        let (what, item, node) = (words.next(), words.next(), words.next());
        let (Some(what), Some(item), Some(node)) = (what, item, node) else { continue };
        let key = (item.to_owned(), node.to_owned());
        match what {
            "acked" => *acked.entry(key.0).or_default().entry(key.1).or_default() += 1,
            "took" => {
                nodes.entry(key.0.clone()).or_default().insert(key.1.clone(), ());
                *taken.entry(key).or_default() += 1;
            }
            "ack-failed" if line.ends_with("ConnectionLoss") => unknown_acks += 1,
            _ => {}
        }
    }
    for (item, by_node) in &acked {
        for (node, n) in by_node {
            if *n > 1 {
                world.violation(format!("{item} in {node} was acknowledged {n} times"));
            }
        }
    }
    let never: Vec<String> = (0..put).map(|k| format!("item-{k}")).filter(|item| !acked.contains_key(item)).collect();
    if never.len() > unknown_acks {
        world.violation(format!(
            "{} items never acknowledged ({unknown_acks} acks of unknown outcome): {never:?}",
            never.len()
        ));
    }
    let again = taken.values().filter(|n| **n > 1).count();
    let doubled = nodes.values().filter(|n| n.len() > 1).count();
    world.report(|r| {
        r.add("items acknowledged", acked.len() as u64);
        r.add("items delivered more than once", again as u64);
        r.add("items put twice (put retried, reply lost)", doubled as u64);
    });
}
