//! Queues against the embedded server: order, many producers and consumers, lock-safe
//! redelivery, takes waiting across a dropped connection and a session expiry, dropped takes,
//! connection states as consumer events, and watches released with the consumer.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use corral_recipes::queue::{DistributedQueue, QueueEvent, SimpleDistributedQueue};
use corral_recipes::{ConnectionState, CreateMode, Error, Framework};
use futures::StreamExt;

/// What a `*_timeout` take gave: the item, or `None` when the time ran out; any other error fails.
fn in_time<T>(taken: corral_recipes::Result<T>) -> Option<T> {
    match taken {
        Ok(item) => Some(item),
        Err(Error::TimedOut { .. }) => None,
        Err(e) => panic!("take: {e}"),
    }
}

const T: Duration = Duration::from_secs(30);

async fn bounded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(T, f).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

async fn connected(fw: &Framework) -> i64 {
    fw.wait_until_connected(T).await.expect("connected");
    fw.current_state().session_id
}

fn item(producer: usize, i: usize) -> Bytes {
    Bytes::from(format!("p{producer}-{i:04}"))
}

#[tokio::test]
async fn simple_queue_is_fifo_for_one_producer() {
    for env in common::envs("simple_fifo").await {
        simple_fifo(&env).await;
    }
}

async fn simple_fifo(env: &common::Env) {
    let fw = env.framework();
    let queue = SimpleDistributedQueue::new(&fw, "/q");
    for i in 0..25 {
        queue.offer(item(0, i)).await.unwrap();
    }
    assert_eq!(queue.peek().await.unwrap(), Some(item(0, 0)));
    for i in 0..25 {
        assert_eq!(bounded("take", queue.take()).await.unwrap(), item(0, i));
    }
    assert_eq!(queue.poll().await.unwrap(), None);
    // A foreign node is skipped, as Curator does.
    fw.client().create("/q/foreign", "x", CreateMode::Persistent).await.unwrap();
    assert_eq!(queue.poll().await.unwrap(), None);
    fw.close().await;
}

#[tokio::test]
async fn simple_queue_delivers_every_item_once_to_many_consumers() {
    let env = common::embedded("simple_many").await;
    let (producers, consumers, per_producer) = (3, 3, 40);
    let total = producers * per_producer;
    let delivered = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for c in 0..consumers {
        let fw = env.framework();
        let delivered = delivered.clone();
        handles.push(tokio::spawn(async move {
            let queue = SimpleDistributedQueue::new(&fw, "/q");
            let mut got = Vec::new();
            // Until everything was delivered (a lost item makes the test time out).
            while delivered.load(Ordering::SeqCst) < total {
                if let Some(item) = in_time(queue.take_timeout(Duration::from_millis(100)).await) {
                    got.push(item);
                    delivered.fetch_add(1, Ordering::SeqCst);
                }
            }
            fw.close().await;
            (c, got)
        }));
    }
    let mut producing = Vec::new();
    for p in 0..producers {
        let fw = env.framework();
        producing.push(tokio::spawn(async move {
            let queue = SimpleDistributedQueue::new(&fw, "/q");
            for i in 0..per_producer {
                queue.offer(item(p, i)).await.expect("offer");
            }
            fw.close().await;
        }));
    }
    for p in producing {
        bounded("producer", p).await.unwrap();
    }
    let mut seen = BTreeMap::new();
    for h in handles {
        let (c, got) = bounded("consumer", h).await.unwrap();
        // Each consumer sees each producer's items in order.
        for p in 0..producers {
            let mine: Vec<&Bytes> = got.iter().filter(|b| b.starts_with(format!("p{p}-").as_bytes())).collect();
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "consumer {c}: producer {p}'s items out of order");
        }
        for item in got {
            *seen.entry(item).or_insert(0) += 1;
        }
    }
    assert_eq!(seen.len(), producers * per_producer, "items lost");
    assert!(seen.values().all(|&n| n == 1), "items delivered twice: {seen:?}");
}

#[tokio::test]
async fn distributed_queue_is_fifo_and_keeps_multi_items_together() {
    for env in common::envs("dq_fifo").await {
        distributed_fifo(&env).await;
    }
}

async fn distributed_fifo(env: &common::Env) {
    let fw = env.framework();
    let queue = DistributedQueue::new(&fw, "/q");
    for i in 0..10 {
        queue.put(&item(0, i)).await.unwrap();
    }
    queue.put_multi(&[item(1, 0), item(1, 1), item(1, 2)]).await.unwrap();
    let mut consumer = queue.consumer();
    for i in 0..10 {
        let message = bounded("take", consumer.next_message()).await.unwrap();
        assert_eq!(message.items(), [item(0, i)]);
        assert!(!message.is_locked());
    }
    let message = bounded("take", consumer.next_message()).await.unwrap();
    assert_eq!(message.items(), [item(1, 0), item(1, 1), item(1, 2)]);
    assert!(fw.client().get_children("/q").await.unwrap().is_empty(), "normal mode deletes before yielding");
    fw.close().await;
}

async fn many_to_many(name: &str, lock: bool) {
    let env = common::embedded(name).await;
    let (producers, consumers, per_producer) = (3, 3, 30);
    let total = producers * per_producer;
    let delivered = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..consumers {
        let fw = env.framework();
        let delivered = delivered.clone();
        handles.push(tokio::spawn(async move {
            let mut queue = DistributedQueue::new(&fw, "/q");
            if lock {
                queue = queue.lock_path("/q-locks");
            }
            let mut consumer = queue.consumer();
            let mut got = Vec::new();
            // Until everything was delivered (a lost item makes the test time out).
            while delivered.load(Ordering::SeqCst) < total {
                if let Some(mut message) = in_time(consumer.next_message_timeout(Duration::from_millis(100)).await) {
                    let items = message.take_items();
                    message.ack().await.expect("ack");
                    delivered.fetch_add(items.len(), Ordering::SeqCst);
                    got.extend(items);
                }
            }
            drop(consumer);
            fw.close().await;
            got
        }));
    }
    for p in 0..producers {
        let fw = env.framework();
        let queue = DistributedQueue::new(&fw, "/q");
        let all: Vec<usize> = (0..per_producer).collect();
        for chunk in all.chunks(3) {
            if chunk[0] % 2 == 0 {
                let items: Vec<Bytes> = chunk.iter().map(|&i| item(p, i)).collect();
                queue.put_multi(&items).await.unwrap();
            } else {
                for &i in chunk {
                    queue.put(&item(p, i)).await.unwrap();
                }
            }
        }
        fw.close().await;
    }
    let mut seen = BTreeMap::new();
    for h in handles {
        for item in bounded("consumer", h).await.unwrap() {
            *seen.entry(item).or_insert(0) += 1;
        }
    }
    assert_eq!(seen.len(), producers * per_producer, "items lost");
    assert!(seen.values().all(|&n| n == 1), "items delivered twice: {seen:?}");
    let fw = env.framework();
    assert!(fw.client().get_children("/q").await.unwrap().is_empty());
    if lock {
        assert!(fw.client().get_children("/q-locks").await.unwrap().is_empty(), "locks left behind");
    }
    fw.close().await;
}

#[tokio::test]
async fn distributed_queue_delivers_every_item_once_to_many_consumers() {
    many_to_many("dq_many", false).await;
}

#[tokio::test]
async fn lock_safe_queue_delivers_every_item_once_to_many_consumers() {
    many_to_many("dq_many_locked", true).await;
}

// The tests that check a consumer is *not* given something run on paused time over in-memory
// connections: a `*_timeout` take that times out there proves the server had nothing for it
// (virtual time only moves once every task, the server's included, waits).

#[tokio::test(start_paused = true)]
async fn lock_safe_message_dropped_without_ack_is_delivered_again() {
    let (server, fw1) = common::in_memory().await;
    let fw2 = common::in_memory_framework(&server).await;
    let queue1 = DistributedQueue::new(&fw1, "/q").lock_path("/q-locks");
    let queue2 = DistributedQueue::new(&fw2, "/q").lock_path("/q-locks");
    queue1.put(&item(0, 0)).await.unwrap();
    let mut first = queue1.consumer();
    let mut second = queue2.consumer();
    let message = bounded("take", first.next_message()).await.unwrap();
    assert!(message.is_locked());
    // Locked: the other consumer does not get it.
    assert!(matches!(
        second.next_message_timeout(Duration::from_millis(500)).await,
        Err(corral_recipes::Error::TimedOut { .. })
    ));
    drop(message);
    // The lock's deletion wakes the other consumer (no new put needed).
    let again = bounded("redelivery", second.next_message()).await.unwrap();
    assert_eq!(again.items(), [item(0, 0)]);
    again.ack().await.unwrap();
    assert!(fw1.client().get_children("/q").await.unwrap().is_empty());
    assert!(matches!(
        first.next_message_timeout(Duration::from_millis(300)).await,
        Err(corral_recipes::Error::TimedOut { .. })
    ));
    drop((first, second));
    fw1.close().await;
    fw2.close().await;
}

#[tokio::test(start_paused = true)]
async fn lock_safe_message_of_an_expired_session_is_delivered_again() {
    let (server, fw1) = common::in_memory().await;
    let fw2 = common::in_memory_framework(&server).await;
    let queue1 = DistributedQueue::new(&fw1, "/q").lock_path("/q-locks");
    let queue2 = DistributedQueue::new(&fw2, "/q").lock_path("/q-locks");
    queue1.put(&item(0, 0)).await.unwrap();
    let mut first = queue1.consumer();
    let message = bounded("take", first.next_message()).await.unwrap();
    let mut second = queue2.consumer();
    assert!(matches!(
        second.next_message_timeout(Duration::from_millis(300)).await,
        Err(corral_recipes::Error::TimedOut { .. })
    ));
    let old = connected(&fw1).await;
    server.expire_session(old);
    let again = bounded("redelivery after expiry", second.next_message()).await.unwrap();
    assert_eq!(again.items(), [item(0, 0)]);
    // The first consumer's session is gone: its ack must not delete what the second one holds.
    bounded("new session", fw1.connection_state().wait_for(|s| s.epoch == 2 && s.state.is_connected())).await.unwrap();
    assert_eq!(message.ack().await, Err(Error::SessionLost { session_id: old }));
    assert_eq!(fw2.client().get_children("/q-locks").await.unwrap().len(), 1, "the second lock is intact");
    again.ack().await.unwrap();
    assert!(fw2.client().get_children("/q").await.unwrap().is_empty());
    drop((first, second));
    fw1.close().await;
    fw2.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_waiting_take_survives_a_dropped_connection_and_a_session_expiry() {
    let (server, consumer_fw) = common::in_memory().await;
    let producer_fw = common::in_memory_framework(&server).await;
    let session = connected(&consumer_fw).await;
    let simple = SimpleDistributedQueue::new(&consumer_fw, "/simple");
    let distributed = DistributedQueue::new(&consumer_fw, "/dq");
    let simple_take = tokio::spawn({
        let simple = simple.clone();
        async move { simple.take().await }
    });
    let mut consumer = distributed.consumer();
    // Let both wait on their watches.
    assert!(matches!(
        consumer.next_message_timeout(Duration::from_millis(300)).await,
        Err(corral_recipes::Error::TimedOut { .. })
    ));

    // A dropped connection: the same session comes back.
    server.drop_connection(session);
    let producer_simple = SimpleDistributedQueue::new(&producer_fw, "/simple");
    let producer_dq = DistributedQueue::new(&producer_fw, "/dq");
    producer_simple.offer("one").await.unwrap();
    producer_dq.put(&Bytes::from("one")).await.unwrap();
    assert_eq!(bounded("simple take", simple_take).await.unwrap().unwrap(), "one");
    assert_eq!(bounded("dq take", consumer.next_message()).await.unwrap().items(), [Bytes::from("one")]);

    // A session expiry while both wait again; the items come during the new session.
    let simple_take = tokio::spawn({
        let simple = simple.clone();
        async move { simple.take().await }
    });
    assert!(matches!(
        consumer.next_message_timeout(Duration::from_millis(300)).await,
        Err(corral_recipes::Error::TimedOut { .. })
    ));
    server.expire_session(connected(&consumer_fw).await);
    producer_simple.offer("two").await.unwrap();
    producer_dq.put(&Bytes::from("two")).await.unwrap();
    assert_eq!(bounded("simple take", simple_take).await.unwrap().unwrap(), "two");
    assert_eq!(bounded("dq take", consumer.next_message()).await.unwrap().items(), [Bytes::from("two")]);
    assert!(consumer_fw.current_state().epoch >= 2, "the session did expire");
    drop(consumer);
    consumer_fw.close().await;
    producer_fw.close().await;
}

#[tokio::test(start_paused = true)]
async fn the_consumer_reports_connection_states_in_its_stream() {
    let (server, fw) = common::in_memory().await;
    let session = connected(&fw).await;
    let queue = DistributedQueue::new(&fw, "/q");
    let mut consumer = queue.consumer();
    assert!(matches!(
        consumer.next_message_timeout(Duration::from_millis(200)).await,
        Err(corral_recipes::Error::TimedOut { .. })
    ));
    server.drop_connection(session);
    let mut states = Vec::new();
    while states.last() != Some(&ConnectionState::Reconnected) {
        match bounded("event", consumer.next()).await.unwrap().unwrap() {
            QueueEvent::State(s) => states.push(s.state),
            QueueEvent::Message(m) => panic!("unexpected message {m:?}"),
        }
    }
    assert_eq!(states, [ConnectionState::Suspended, ConnectionState::Reconnected]);
    drop(consumer);
    fw.close().await;
}

/// Delays every request, then drops a take at many different points of its way (listing, reading,
/// deleting): no item may be lost, and none delivered twice.
#[tokio::test]
async fn dropped_takes_lose_nothing() {
    let env = common::embedded("dropped_takes").await;
    let server = env.server.clone().unwrap();
    let fw = env.framework();
    connected(&fw).await;
    let simple = SimpleDistributedQueue::new(&fw, "/simple");
    let dq = DistributedQueue::new(&fw, "/dq");
    let rounds = 12;
    for i in 0..rounds {
        simple.offer(item(0, i)).await.unwrap();
        dq.put(&item(0, i)).await.unwrap();
    }
    server.set_latency(Duration::from_millis(40));
    let (mut from_simple, mut from_dq) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let cut = Duration::from_millis(15 * (i as u64 + 1));
        if let Ok(taken) = tokio::time::timeout(cut, simple.take()).await {
            from_simple.push(taken.unwrap());
        }
        // A consumer dropped mid-take puts what it took back.
        let mut consumer = dq.consumer();
        if let Ok(taken) = tokio::time::timeout(cut, consumer.next_message()).await {
            from_dq.extend(taken.unwrap().take_items());
        }
        drop(consumer);
    }
    server.set_latency(Duration::ZERO);
    while let Some(taken) = in_time(simple.take_timeout(Duration::from_secs(1)).await) {
        from_simple.push(taken);
    }
    let mut consumer = dq.consumer();
    while let Some(mut message) = in_time(consumer.next_message_timeout(Duration::from_secs(1)).await) {
        from_dq.extend(message.take_items());
    }
    for (what, got) in [("simple", from_simple), ("distributed", from_dq)] {
        let distinct: HashSet<&Bytes> = got.iter().collect();
        assert_eq!(distinct.len(), got.len(), "{what}: delivered twice: {got:?}");
        assert_eq!(got.len(), rounds, "{what}: lost: {got:?}");
    }
    drop(consumer);
    fw.close().await;
}

#[tokio::test]
async fn a_dropped_consumer_leaves_no_watch_behind() {
    let env = common::embedded("dq_watches").await;
    let fw = env.framework();
    connected(&fw).await;
    let watches = |n: usize| {
        let fw = fw.clone();
        async move { common::eventually(&format!("{n} watches"), || async { fw.client().watcher_count().await == n }).await }
    };
    let mut consumer = DistributedQueue::new(&fw, "/q").lock_path("/q-locks").consumer();
    let waiting = tokio::spawn(async move { consumer.next_message().await.map(|_| ()) });
    watches(2).await; // the queue and its locks
    waiting.abort(); // drops the consumer
    watches(0).await;
    let simple = SimpleDistributedQueue::new(&fw, "/s");
    let waiting = tokio::spawn(async move { simple.take().await.map(|_| ()) });
    watches(1).await;
    waiting.abort();
    watches(0).await;
    fw.close().await;
}

// ------------------------------------------------------------------------------------------
// Priority and id queues (the delay queue runs on paused time: queue_paused_time.rs)

#[tokio::test]
async fn priority_queue_takes_lowest_first_and_an_urgent_item_jumps_the_line() {
    use corral_recipes::queue::DistributedPriorityQueue;
    let env = common::embedded("pq").await;
    let fw = env.framework();
    let queue = DistributedPriorityQueue::new(&fw, "/q");
    for (name, priority) in [("p5", 5), ("m3", -3), ("p0", 0), ("big", i32::MAX), ("small", i32::MIN), ("p5b", 5)] {
        queue.put(&Bytes::from(name), priority).await.unwrap();
    }
    let mut consumer = queue.consumer();
    let mut order = Vec::new();
    for _ in 0..3 {
        order.extend(bounded("take", consumer.next_message()).await.unwrap().take_items());
    }
    // The consumer has listed "p5", "p5b", "big" as still to come; an urgent item goes first.
    queue.put(&Bytes::from("urgent"), -1).await.unwrap();
    for _ in 0..4 {
        order.extend(bounded("take", consumer.next_message()).await.unwrap().take_items());
    }
    assert_eq!(order, ["small", "m3", "p0", "urgent", "p5", "p5b", "big"].map(Bytes::from));
    drop(consumer);
    fw.close().await;
}

#[tokio::test]
async fn id_queue_removes_by_id_and_keeps_put_order() {
    use corral_recipes::queue::DistributedIdQueue;
    let env = common::embedded("idq").await;
    let fw = env.framework();
    let queue = DistributedIdQueue::new(&fw, "/q");
    queue.put(&Bytes::from("a"), "zz").await.unwrap();
    queue.put(&Bytes::from("b"), "gone").await.unwrap();
    queue.put(&Bytes::from("c"), "aa").await.unwrap();
    queue.put(&Bytes::from("d"), "gone").await.unwrap();
    queue.put(&Bytes::from("e"), "x/y").await.unwrap();
    assert_eq!(queue.remove("gone").await.unwrap(), 2);
    assert_eq!(queue.remove("nothing").await.unwrap(), 0);
    assert_eq!(queue.remove("x/y").await.unwrap(), 1, "ids are compared as stored");
    let mut consumer = queue.consumer();
    let mut got = Vec::new();
    while got.len() < 2 {
        got.extend(bounded("take", consumer.next_message()).await.unwrap().take_items());
    }
    assert_eq!(got, ["a", "c"].map(Bytes::from), "put order, whatever the ids");
    assert!(fw.client().get_children("/q").await.unwrap().is_empty(), "nothing else is queued");

    // Lock-safe: an item a consumer holds is not removed; one it released is.
    let locked = DistributedIdQueue::new(&fw, "/l").lock_path("/l-locks");
    locked.put(&Bytes::from("held"), "id").await.unwrap();
    let mut consumer = locked.consumer();
    let message = bounded("take", consumer.next_message()).await.unwrap();
    assert_eq!(locked.remove("id").await.unwrap(), 0);
    drop(consumer);
    drop(message);
    common::eventually("lock released", || async { fw.client().get_children("/l-locks").await.unwrap().is_empty() })
        .await;
    assert_eq!(locked.remove("id").await.unwrap(), 1);
    assert!(fw.client().get_children("/l-locks").await.unwrap().is_empty(), "removal's lock released");
    fw.close().await;
}

/// Drops the connection at many points of a take's way (listing, reading, deleting, with the
/// server slowed down so the requests are in flight): each take still returns its item, once,
/// and leaves nothing behind. (A delete applied whose reply is lost: `queue_reply_lost.rs`.)
#[tokio::test]
async fn takes_across_a_connection_lost_mid_delete_return_each_item_once() {
    let env = common::embedded("take_mid_delete").await;
    let server = env.server.clone().unwrap();
    let fw = env.framework();
    let simple = SimpleDistributedQueue::new(&fw, "/simple");
    let dq = DistributedQueue::new(&fw, "/dq");
    let mut consumer = dq.consumer();
    for round in 0..8u64 {
        simple.offer(item(0, round as usize)).await.unwrap();
        dq.put(&item(1, round as usize)).await.unwrap();
        let session = connected(&fw).await;
        server.set_latency(Duration::from_millis(50));
        let taking = tokio::spawn({
            let simple = simple.clone();
            async move { simple.take().await }
        });
        let (cut, taken) = tokio::join!(
            async {
                // Fault injection: each round cuts the connection at a different point of the real-time take.
                tokio::time::sleep(Duration::from_millis(20 + 20 * round)).await;
                server.drop_connection(session);
                server.set_latency(Duration::ZERO);
            },
            bounded("dq take", consumer.next_message())
        );
        let () = cut;
        assert_eq!(bounded("simple take", taking).await.unwrap().unwrap(), item(0, round as usize), "round {round}");
        assert_eq!(taken.unwrap().items(), [item(1, round as usize)], "round {round}");
        assert_eq!(simple.poll().await.unwrap(), None, "round {round}: left behind");
        assert!(fw.client().get_children("/dq").await.unwrap().is_empty(), "round {round}: left behind");
    }
    drop(consumer);
    fw.close().await;
}
