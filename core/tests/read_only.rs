//! Read-only servers, end to end against an embedded `TestingCluster` whose members can be
//! read-only: reading through one, NotReadOnly on writes, the background search for a
//! read/write server (on paused time, over in-memory connections), `seenRwServerBefore`, and
//! the framework's connection states.

use std::sync::Arc;
use std::time::Duration;

use corral_core::{
    BoxStream, Client, ClientBuilder, ConnectFuture, ConnectionState, ConnectionStateChange, Connector, CreateMode,
    Error, ErrorCode, Framework, HostPort, SessionEvent, SessionState,
};
use corral_server::Server;
use corral_server::testing::TestingCluster;
use futures::{Stream, StreamExt};
use tokio::time::Instant;

/// A bound on every wait, in (mostly virtual) time.
const WAIT: Duration = Duration::from_secs(30);

/// Connects each host of the connect string to its cluster member in memory, so that the tests
/// can pause time.
#[derive(Debug)]
struct InMemory(Arc<TestingCluster>);

impl Connector for InMemory {
    fn connect(&self, host: &HostPort) -> ConnectFuture {
        let cluster = Arc::clone(&self.0);
        let port = host.port;
        Box::pin(async move {
            let index = (0..cluster.len())
                .find(|&i| cluster.addr(i).port() == port)
                .ok_or_else(|| std::io::Error::other("no such member"))?;
            let stream = cluster
                .connect_in_memory(index)
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "member stopped"))?;
            Ok((Box::new(stream) as BoxStream, cluster.addr(index)))
        })
    }
}

async fn cluster(members: usize, read_only: bool) -> Arc<TestingCluster> {
    Arc::new(TestingCluster::with_builder(members, Server::builder().read_only(read_only)).await.expect("cluster"))
}

fn builder(cluster: &Arc<TestingCluster>) -> ClientBuilder {
    Client::builder(cluster.connect_string())
        .session_timeout(Duration::from_secs(10))
        .connection_timeout(Duration::from_secs(5))
        .connector(InMemory(Arc::clone(cluster)))
}

fn member_of(cluster: &TestingCluster, client: &Client) -> usize {
    cluster.member_of_session(client.session_id()).expect("the session is connected")
}

async fn wait_state(client: &Client, want: SessionState) {
    let mut rx = client.state();
    tokio::time::timeout(WAIT, rx.wait_for(|s| *s == want)).await.expect("state in time").expect("state channel");
}

async fn next_event(events: &mut (impl Stream<Item = SessionEvent> + Unpin)) -> SessionEvent {
    tokio::time::timeout(WAIT, events.next()).await.expect("an event in time").expect("event stream")
}

#[tokio::test]
async fn reads_work_and_writes_fail_with_not_read_only_on_a_read_only_member() {
    let cluster = cluster(1, false).await;
    let writer = Client::connect(&cluster.connect_string()).await.expect("connect");
    writer.create("/config", "v1", CreateMode::Persistent).await.expect("create");
    writer.close().await;
    cluster.set_read_only(0, true);

    let client = Client::builder(cluster.connect_string()).allow_read_only(true).connect().await.expect("connect");
    assert_eq!(*client.state().borrow(), SessionState::ConnectedReadOnly);
    let (data, _) = client.get_data("/config").await.expect("getData");
    assert_eq!(&data[..], b"v1");
    assert_eq!(client.get_children("/").await.expect("children").len(), 2);
    let write = client.create("/x", "", CreateMode::Persistent).await;
    assert_eq!(write, Err(Error::Server { code: ErrorCode::NotReadOnly, path: "/x".into() }));
    assert_eq!(client.set_data("/config", "v2", None).await.map_err(|e| e.code()), Err(ErrorCode::NotReadOnly));
    assert_eq!(client.delete("/config", None).await.map_err(|e| e.code()), Err(ErrorCode::NotReadOnly));
    assert_eq!(client.sync("/config").await.map_err(|e| e.code()), Err(ErrorCode::NotReadOnly));
    assert!(!write.expect_err("refused").is_retryable(), "NotReadOnly is not retried");
    assert_eq!(*client.state().borrow(), SessionState::ConnectedReadOnly, "a refused write keeps the connection");
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_client_without_allow_read_only_never_connects_to_a_read_only_member() {
    let cluster = cluster(3, true).await;
    cluster.set_read_only(2, false);
    // Hosts are shuffled per client: every one of them ends on the only read/write member.
    let mut clients = Vec::new();
    for _ in 0..8 {
        let client = builder(&cluster).connect().await.expect("connect");
        assert_eq!(*client.state().borrow(), SessionState::Connected);
        assert_eq!(member_of(&cluster, &client), 2);
        clients.push(client);
    }
    // With no read/write member left, nobody connects, however long it tries.
    cluster.set_read_only(2, true);
    let refused = builder(&cluster).connection_timeout(Duration::from_secs(3)).connect().await;
    assert_eq!(refused.err(), Some(Error::Timeout));
    tokio::time::sleep(Duration::from_secs(3)).await;
    for client in &clients {
        assert_eq!(*client.state().borrow(), SessionState::Connecting, "read-only members refuse it");
    }
    for client in clients {
        client.close().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_read_only_client_moves_to_a_read_write_member_by_itself() {
    let cluster = cluster(3, true).await;
    let client = builder(&cluster).allow_read_only(true).connect().await.expect("connect");
    assert_eq!(*client.state().borrow(), SessionState::ConnectedReadOnly);
    let read_only_session = client.session_id();
    let target = (member_of(&cluster, &client) + 1) % 3;
    let mut events = client.session_events();
    let connected_at = Instant::now();

    // The probes run 100, 300, 700, 1500 ms after connecting (intervals 100, 200, 400, 800):
    // a member that turns read/write at 1000 ms is found by the round at 1500 ms.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(*client.state().borrow(), SessionState::ConnectedReadOnly, "no read/write member yet");
    cluster.set_read_only(target, false);
    wait_state(&client, SessionState::Connected).await;
    let moved_after = connected_at.elapsed();
    assert!(
        (Duration::from_millis(1500)..Duration::from_millis(1510)).contains(&moved_after),
        "moved after {moved_after:?}"
    );

    match next_event(&mut events).await {
        SessionEvent::Disconnected { reason } => assert!(reason.contains("read/write server found"), "{reason}"),
        other => panic!("expected the read-only connection to end, got {other:?}"),
    }
    match next_event(&mut events).await {
        SessionEvent::Connected { session_id, resumed, read_only, server, .. } => {
            assert_ne!(session_id, read_only_session, "a read-only session is not resumed elsewhere");
            assert!(!resumed && !read_only);
            assert_eq!(server, cluster.addr(target));
        }
        other => panic!("expected a connection, got {other:?}"),
    }
    assert_eq!(member_of(&cluster, &client), target);
    client.create("/moved", "", CreateMode::Persistent).await.expect("writes work now");
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_read_only_session_is_replaced_not_resumed_until_a_read_write_server_was_seen() {
    let cluster = cluster(2, true).await;
    let client = builder(&cluster).allow_read_only(true).connect().await.expect("connect");
    let first = client.session_id();
    let mut events = client.session_events();
    assert!(cluster.drop_connection(first));
    assert!(matches!(next_event(&mut events).await, SessionEvent::Disconnected { .. }));
    match next_event(&mut events).await {
        SessionEvent::Connected { session_id, resumed, read_only, .. } => {
            assert_ne!(session_id, first, "a new session (id 0 in the handshake), as the Java client");
            assert!(!resumed && read_only);
        }
        other => panic!("expected a connection, got {other:?}"),
    }
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_read_write_session_is_resumed_elsewhere_when_its_member_turns_read_only() {
    let cluster = cluster(2, false).await;
    let client = builder(&cluster).allow_read_only(true).connect().await.expect("connect");
    assert_eq!(*client.state().borrow(), SessionState::Connected);
    let session = client.session_id();
    let member = member_of(&cluster, &client);
    let mut events = client.session_events();

    // The member loses its quorum: the session moves to the other member, unchanged.
    cluster.set_read_only(member, true);
    assert!(matches!(next_event(&mut events).await, SessionEvent::Disconnected { .. }));
    match next_event(&mut events).await {
        SessionEvent::Connected { session_id, resumed, read_only, .. } => {
            assert_eq!(session_id, session);
            assert!(resumed && !read_only);
        }
        other => panic!("expected a connection, got {other:?}"),
    }
    assert_eq!(member_of(&cluster, &client), 1 - member);

    // Every member read-only: read-only servers refuse a read/write session, and the client
    // does not trade it for a read-only one.
    cluster.set_read_only(1 - member, true);
    assert!(matches!(next_event(&mut events).await, SessionEvent::Disconnected { .. }));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(*client.state().borrow(), SessionState::Connecting);
    assert_eq!(client.session_id(), session);
    cluster.set_read_only(member, false);
    wait_state(&client, SessionState::Connected).await;
    assert_eq!(client.session_id(), session, "resumed once a read/write member is back");
    client.close().await;
}

async fn next_state(changes: &mut (impl Stream<Item = ConnectionStateChange> + Unpin)) -> ConnectionStateChange {
    tokio::time::timeout(WAIT, changes.next()).await.expect("a state in time").expect("state stream")
}

#[tokio::test(start_paused = true)]
async fn framework_posts_read_only_then_lost_and_connected_on_a_new_epoch() {
    let cluster = cluster(2, true).await;
    let fw = Framework::builder(cluster.connect_string())
        .session_timeout(Duration::from_secs(10))
        .allow_read_only(true)
        .connector(InMemory(Arc::clone(&cluster)))
        .start()
        .expect("framework");
    let mut changes = fw.state_changes();
    let read_only = next_state(&mut changes).await;
    assert_eq!((read_only.state, read_only.epoch), (ConnectionState::ReadOnly, 1));
    assert_eq!(read_only.session_id, fw.client().session_id());
    assert!(!fw.error_policy().is_error(read_only.state));
    let member = cluster.member_of_session(read_only.session_id).expect("connected");

    cluster.set_read_only(1 - member, false);
    // SUSPENDED (the read-only connection is closed) may be overtaken by what follows: the
    // stream keeps LOST and the latest state, never a backlog.
    let mut lost = next_state(&mut changes).await;
    if lost.state == ConnectionState::Suspended {
        assert_eq!(lost.epoch, 1);
        lost = next_state(&mut changes).await;
    }
    assert_eq!((lost.state, lost.epoch, lost.session_id), (ConnectionState::Lost, 1, read_only.session_id));
    let connected = next_state(&mut changes).await;
    // As in Curator, READ_ONLY is not the first connection: the first read/write one is CONNECTED.
    assert_eq!((connected.state, connected.epoch), (ConnectionState::Connected, 2));
    assert_ne!(connected.session_id, read_only.session_id);
    assert_eq!(connected.session_id, fw.client().session_id());
    assert_eq!(cluster.member_of_session(connected.session_id), Some(1 - member));
    fw.client().create("/after", "", CreateMode::Persistent).await.expect("writes work");

    // Later, the member turns read-only and the session (now a read/write one) moves back,
    // resumed: RECONNECTED in the same epoch.
    cluster.set_read_only(member, false);
    cluster.set_read_only(1 - member, true);
    let mut reconnected = next_state(&mut changes).await;
    if reconnected.state == ConnectionState::Suspended {
        reconnected = next_state(&mut changes).await;
    }
    assert_eq!(
        (reconnected.state, reconnected.epoch, reconnected.session_id),
        (ConnectionState::Reconnected, 2, connected.session_id)
    );
    fw.close().await;
}
