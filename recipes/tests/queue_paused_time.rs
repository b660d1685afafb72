//! Queue timeouts on tokio's paused time, over in-memory connections to the embedded server:
//! waits are exact, and hours of virtual waiting cost nothing.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use corral_recipes::queue::{DistributedQueue, SimpleDistributedQueue};
use corral_recipes::{BoxStream, ConnectFuture, Connector, Framework, HostPort, RetryNTimes};
use corral_server::testing::TestingServer;
use tokio::time::Instant;

/// Connects to the embedded server in memory, so that time can be paused.
#[derive(Debug)]
struct InMemory(Arc<TestingServer>);

impl Connector for InMemory {
    fn connect(&self, _host: &HostPort) -> ConnectFuture {
        let server = Arc::clone(&self.0);
        Box::pin(async move {
            let stream = server
                .connect_in_memory()
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "server stopped"))?;
            Ok((Box::new(stream) as BoxStream, server.addr()))
        })
    }
}

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
    assert_eq!(simple.take_timeout(Duration::from_secs(3600)).await.unwrap(), None);
    assert_eq!(start.elapsed(), Duration::from_secs(3600));
    let start = Instant::now();
    assert!(consumer.next_message_timeout(Duration::from_secs(600)).await.unwrap().is_none());
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
    assert_eq!(simple.take_timeout(Duration::from_secs(600)).await.unwrap().as_deref(), Some(&b"late"[..]));
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(300) && waited < Duration::from_secs(301), "{waited:?}");
    let message = consumer.next_message_timeout(Duration::from_secs(600)).await.unwrap().expect("a message");
    assert_eq!(message.items(), [Bytes::from("late")]);
    assert!(start.elapsed() < Duration::from_secs(301));
    assert_eq!(fw.current_state().epoch, 1, "no session was lost while waiting");
    drop(consumer);
    producer.close().await;
    fw.close().await;
}
