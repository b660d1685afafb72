//! Queue timeouts on tokio's paused time, over in-memory connections to the embedded server:
//! waits are exact, and hours of virtual waiting cost nothing.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use corral_recipes::queue::{DistributedDelayQueue, DistributedQueue, SimpleDistributedQueue};
use corral_recipes::{Framework, RetryNTimes};
use corral_server::testing::TestingServer;
use corral_test_support::env::InMemory;
use tokio::time::Instant;

async fn framework(server: &Arc<TestingServer>) -> Framework {
    let fw = Framework::builder(server.connect_string())
        .session_timeout(Duration::from_secs(10))
        .retry_policy(RetryNTimes::new(10, Duration::from_millis(50)))
        .connector(InMemory(Arc::clone(server)))
        .start()
        .expect("start");
    fw.wait_until_connected(Duration::from_secs(30)).await.expect("connected");
    fw
}

#[tokio::test(start_paused = true)]
async fn take_timeouts_wait_exactly_as_long_as_asked() {
    let server = Arc::new(TestingServer::start().await.expect("server"));
    let fw = framework(&server).await;
    let simple = SimpleDistributedQueue::new(&fw, "/simple");
    let mut consumer = DistributedQueue::new(&fw, "/dq").consumer();

    // An hour of waiting on an empty queue: the session stays alive (pings run on virtual time too).
    let start = Instant::now();
    assert!(matches!(
        simple.take_timeout(Duration::from_secs(3600)).await,
        Err(corral_recipes::Error::TimedOut { .. })
    ));
    assert_eq!(start.elapsed(), Duration::from_secs(3600));
    let start = Instant::now();
    assert!(matches!(
        consumer.next_message_timeout(Duration::from_secs(600)).await,
        Err(corral_recipes::Error::TimedOut { .. })
    ));
    assert_eq!(start.elapsed(), Duration::from_secs(600));

    // An item put five minutes into a ten-minute wait ends it then, not at the deadline.
    let producer = framework(&server).await;
    tokio::spawn({
        let producer = producer.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(300)).await;
            SimpleDistributedQueue::new(&producer, "/simple").offer("late").await.unwrap();
            DistributedQueue::new(&producer, "/dq").put(&Bytes::from("late")).await.unwrap();
        }
    });
    let start = Instant::now();
    assert_eq!(&simple.take_timeout(Duration::from_secs(600)).await.unwrap()[..], &b"late"[..]);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(300) && waited < Duration::from_secs(301), "{waited:?}");
    let message = consumer.next_message_timeout(Duration::from_secs(600)).await.expect("a message");
    assert_eq!(message.items(), [Bytes::from("late")]);
    assert!(start.elapsed() < Duration::from_secs(301));
    assert_eq!(fw.current_state().epoch, 1, "no session was lost while waiting");
    drop(consumer);
    producer.close().await;
    fw.close().await;
}

/// A wall clock that moves with tokio's (paused) time.
fn virtual_clock() -> impl Fn() -> u64 + Send + Sync + 'static {
    let (start, wall) = (Instant::now(), 1_700_000_000_000u64);
    move || wall + start.elapsed().as_millis() as u64
}

#[tokio::test(start_paused = true)]
async fn delay_queue_items_come_out_when_due_and_not_before() {
    let server = Arc::new(TestingServer::start().await.expect("server"));
    let fw = framework(&server).await;
    let queue = DistributedDelayQueue::new(&fw, "/delay").with_clock(virtual_clock());
    let start = Instant::now();
    queue.put_after(&Bytes::from("10s"), Duration::from_secs(10)).await.unwrap();
    queue.put_after(&Bytes::from("5s"), Duration::from_secs(5)).await.unwrap();
    queue.put_after(&Bytes::from("now"), Duration::ZERO).await.unwrap();
    let mut consumer = queue.consumer();
    let mut got = Vec::new();
    for _ in 0..3 {
        let message = consumer.next_message_timeout(Duration::from_secs(60)).await.expect("a message");
        got.push((message.items()[0].clone(), start.elapsed().as_millis() / 100));
    }
    // Exactly when due (to the 100 ms), earliest first, in virtual time.
    assert_eq!(got, [(Bytes::from("now"), 0), (Bytes::from("5s"), 50), (Bytes::from("10s"), 100)]);

    // An earlier item put while the consumer waits for a later one is not held up by it.
    queue.put_after(&Bytes::from("late"), Duration::from_secs(100)).await.unwrap();
    let waiting = tokio::spawn(async move {
        let message = consumer.next_message_timeout(Duration::from_secs(600)).await.expect("a message");
        (message.items()[0].clone(), consumer)
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let put_at = Instant::now();
    queue.put_after(&Bytes::from("early"), Duration::from_secs(2)).await.unwrap();
    let (first, consumer) = waiting.await.unwrap();
    assert_eq!(first, Bytes::from("early"));
    assert_eq!(put_at.elapsed().as_millis() / 100, 20);
    drop(consumer);
    fw.close().await;
}
