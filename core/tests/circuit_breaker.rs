//! Circuit-breaking connection states (`FrameworkBuilder::circuit_breaking`) on tokio's paused
//! time, over in-memory connections to the embedded server: a flapping connection publishes one
//! SUSPENDED and one RECONNECTED at the breaker's check, and a lost session is never held back.

use std::sync::Arc;
use std::time::Duration;

use corral_core::{ConnectionState, Framework, RetryForever};
use corral_server::testing::TestingServer;
use corral_test_support::env::InMemory;
use futures::StreamExt as _;
use tokio::time::Instant;

const CHECK: Duration = Duration::from_secs(1);

async fn framework(server: &Arc<TestingServer>) -> Framework {
    let fw = Framework::builder(server.connect_string())
        .session_timeout(Duration::from_secs(10))
        .resession_jitter(Duration::ZERO)
        .circuit_breaking(RetryForever::new(CHECK))
        .connector(InMemory(Arc::clone(server)))
        .start()
        .expect("start");
    fw.wait_until_connected(Duration::from_secs(30)).await.expect("connected");
    fw
}

#[tokio::test(start_paused = true)]
async fn a_flapping_connection_is_one_suspension() {
    let server = Arc::new(TestingServer::start().await.expect("server"));
    let fw = framework(&server).await;
    let mut changes = fw.state_changes();
    let session = fw.client().session_id();

    let opened = Instant::now();
    for flap in 0..5 {
        assert!(server.drop_connection(session), "flap {flap}");
        // Back on the same session: the request went out on the new connection.
        fw.client().sync("/").await.expect("sync after a flap");
        // Still SUSPENDED as far as recipes know: the breaker is open.
        assert_eq!(fw.current_state().state, ConnectionState::Suspended, "flap {flap}");
    }
    assert!(opened.elapsed() < CHECK, "the flaps took {:?}", opened.elapsed());

    let suspended = changes.next().await.expect("a change");
    assert_eq!(suspended.state, ConnectionState::Suspended);
    let reconnected = changes.next().await.expect("a change");
    assert_eq!(reconnected.state, ConnectionState::Reconnected);
    // Published at the breaker's first check, carrying the latest connection.
    assert!(opened.elapsed() >= CHECK, "published after {:?}", opened.elapsed());
    assert_eq!(reconnected.connection, suspended.connection + 5);
    assert_eq!((reconnected.session_id, reconnected.epoch), (session, 1));

    // Closed again: the next drop is published at once.
    assert!(server.drop_connection(session));
    assert_eq!(changes.next().await.expect("a change").state, ConnectionState::Suspended);
    fw.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_lost_session_is_published_at_once_even_with_the_breaker_open() {
    let server = Arc::new(TestingServer::start().await.expect("server"));
    let fw = framework(&server).await;
    let mut changes = fw.state_changes();
    let first = fw.client().session_id();

    let opened = Instant::now();
    assert!(server.drop_connection(first));
    assert_eq!(changes.next().await.expect("a change").state, ConnectionState::Suspended);
    // The session expires while the breaker is open: LOST goes out without waiting for the check.
    assert!(server.expire_session(first));
    let lost = changes.next().await.expect("a change");
    assert_eq!((lost.state, lost.session_id), (ConnectionState::Lost, first));
    assert!(opened.elapsed() < CHECK, "LOST after {:?}", opened.elapsed());
    // The new session is published at the check.
    let back = changes.next().await.expect("a change");
    assert_eq!((back.state, back.epoch), (ConnectionState::Reconnected, 2));
    assert_ne!(back.session_id, first);
    assert!(opened.elapsed() >= CHECK, "back after {:?}", opened.elapsed());
    fw.close().await;
    assert_eq!(fw.current_state().state, ConnectionState::Lost);
}
