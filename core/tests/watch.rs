//! `Framework::watch` on a server without `addWatch` (the embedded server answering as ZooKeeper
//! 3.5 does, `persistent_watches(false)`) and on one with it. The `addWatch` requests sent are
//! counted by `corral_requests_total{op="add_watch"}`, through a recorder local to the test's
//! thread (a current-thread runtime runs the framework's tasks there too); the connections by
//! the server's handshakes.

mod common;

use std::pin::pin;
use std::time::Duration;

use corral_core::framework::{ConnectionStateChange, PersistentWatches, StateChanges};
use corral_core::metrics::REQUESTS_TOTAL;
use corral_core::{AddWatchMode, ConnectionState, CreateMode, Error, ErrorCode, EventType};
use corral_server::Server;
use futures::{FutureExt, Stream, StreamExt};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

const T: Duration = Duration::from_secs(30);

/// `addWatch` requests sent since the last call.
fn add_watches(snapshotter: &Snapshotter) -> u64 {
    let mut sent = 0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let (key, DebugValue::Counter(n)) = (key.key(), value) else { continue };
        if key.name() == REQUESTS_TOTAL && key.labels().any(|l| l.key() == "op" && l.value() == "add_watch") {
            sent += n;
        }
    }
    sent
}

async fn next_state(changes: &mut StateChanges) -> ConnectionStateChange {
    tokio::time::timeout(T, changes.next()).await.expect("a state within 30 s").expect("state stream")
}

async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    tokio::time::timeout(T, stream.next()).await.expect("an item within 30 s")
}

#[tokio::test]
async fn without_add_watch_one_error_then_the_end_and_no_second_probe() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let env = corral_test_support::env::embedded_with("watch-35", Server::builder().persistent_watches(false)).await;
    let server = env.server.clone().expect("embedded");
    let fw = env.framework();
    let mut changes = fw.state_changes();
    assert_eq!(next_state(&mut changes).await.state, ConnectionState::Connected);
    fw.create("/n", "", CreateMode::Persistent).await.unwrap();
    assert_eq!(fw.persistent_watches(), PersistentWatches::Unknown);
    add_watches(&snapshotter);

    // The first stream asks once: one error that says why, then the end.
    let mut first = pin!(fw.watch("/n", AddWatchMode::Persistent));
    let err = next(&mut first).await.expect("an error item").unwrap_err();
    assert_eq!(err, Error::NoPersistentWatches { path: "/n".into() });
    assert_eq!(err.code(), ErrorCode::Unimplemented);
    let message = err.to_string();
    assert!(message.contains("no persistent watches") && message.contains("one-shot"), "{message}");
    assert!(next(&mut first).await.is_none(), "the stream ends after the error");
    assert_eq!(add_watches(&snapshotter), 1, "one addWatch, not one per poll");
    assert_eq!(fw.persistent_watches(), PersistentWatches::Unavailable);
    // The server closed the connection after Unimplemented; the session went on.
    assert_eq!(next_state(&mut changes).await.state, ConnectionState::Suspended);
    assert_eq!(next_state(&mut changes).await.state, ConnectionState::Reconnected);
    server.handshake_times(true);
    let connection = fw.current_state().connection;

    // A later stream knows already: the same error at once, nothing sent.
    let mut second = pin!(fw.watch("/n", AddWatchMode::PersistentRecursive));
    assert_eq!(
        second.next().now_or_never().expect("ready without a round trip"),
        Some(Err(Error::NoPersistentWatches { path: "/n".into() }))
    );
    assert_eq!(second.next().now_or_never().expect("ready"), None);
    // A round trip on the same connection after it: an addWatch would have had it closed.
    fw.client().exists("/n").await.expect("exists on the same connection");
    assert_eq!(add_watches(&snapshotter), 0, "no addWatch for the second stream");
    assert!(server.handshake_times(false).is_empty(), "no reconnection");
    assert_eq!(fw.current_state().connection, connection);
    assert!(changes.next().now_or_never().is_none(), "no state change");
    fw.close().await;
}

#[tokio::test]
async fn with_add_watch_the_streams_run_on() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let env = common::embedded("watch-36").await;
    let fw = env.framework();
    fw.create("/n", "", CreateMode::Persistent).await.unwrap();
    add_watches(&snapshotter);
    let mut data = pin!(fw.watch("/n", AddWatchMode::Persistent));
    let mut tree = pin!(fw.watch("/n", AddWatchMode::PersistentRecursive));
    // The first polls add the watches, ahead of the writes below.
    assert!(data.next().now_or_never().is_none() && tree.next().now_or_never().is_none());

    for round in 0..2 {
        fw.set_data("/n", format!("{round}"), None).await.unwrap();
        let e = next(&mut data).await.expect("an event").unwrap();
        assert_eq!((e.event_type, e.path.as_str()), (EventType::NodeDataChanged, "/n"));
        let e = next(&mut tree).await.expect("an event").unwrap();
        assert_eq!((e.event_type, e.path.as_str()), (EventType::NodeDataChanged, "/n"));
    }
    assert_eq!(add_watches(&snapshotter), 2, "one addWatch per stream");
    assert_eq!(fw.persistent_watches(), PersistentWatches::Available);
    fw.create("/n/kid", "", CreateMode::Persistent).await.unwrap();
    let e = next(&mut tree).await.expect("an event").unwrap();
    assert_eq!((e.event_type, e.path.as_str()), (EventType::NodeCreated, "/n/kid"));
    let e = next(&mut data).await.expect("an event").unwrap();
    assert_eq!((e.event_type, e.path.as_str()), (EventType::NodeChildrenChanged, "/n"));
    assert_eq!(add_watches(&snapshotter), 0, "the watches stay; nothing asked again");
    fw.close().await;
}
