//! `Client::update_server_list` and `Framework::update_server_list` on an embedded cluster: the
//! session moves only when its server leaves the list, keeps its watches, and later sessions
//! start from the new list.

use std::time::Duration;

use corral_core::{Client, ConnectionState, CreateMode, Error, EventType, Framework};
use corral_server::testing::TestingCluster;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn the_session_moves_only_when_its_server_leaves_the_list() {
    let cluster = TestingCluster::start(3).await.expect("cluster");
    let client = Client::connect(&cluster.addr(0).to_string()).await.expect("connect");
    let session = client.session_id();
    client.create("/watched", "", CreateMode::Persistent).await.expect("create");
    let (_, _, watcher) = client.get_data_and_watch("/watched").await.expect("watch");

    // Member 0 stays in the list: the requests after the update run on the same connection.
    client.update_server_list(&format!("{},{}", cluster.addr(2), cluster.addr(0))).expect("update");
    client.sync("/").await.expect("sync");
    assert_eq!(cluster.member_of_session(session), Some(0));

    // Member 0 leaves: the session resumes on member 1, the only one left, with its watch.
    client.update_server_list(&cluster.addr(1).to_string()).expect("update");
    client.sync("/").await.expect("sync after the move");
    assert_eq!(cluster.member_of_session(session), Some(1));
    assert_eq!(client.session_id(), session);
    let other = Client::connect(&cluster.addr(2).to_string()).await.expect("other");
    other.set_data("/watched", "changed", None).await.expect("set");
    let event = tokio::time::timeout(WAIT, watcher).await.expect("the watch survived the move");
    assert_eq!(event.event_type, EventType::NodeDataChanged);

    // A dropped connection comes back to a server of the new list only.
    client.drop_connection();
    client.sync("/").await.expect("sync after a drop");
    assert_eq!(cluster.member_of_session(session), Some(1));

    other.close().await;
    client.close().await;
    cluster.close().await;
}

#[tokio::test]
async fn bad_lists_are_refused_and_change_nothing() {
    let cluster = TestingCluster::start(2).await.expect("cluster");
    let root = Client::connect(&cluster.connect_string()).await.expect("root client");
    root.create("/app", "", CreateMode::Persistent).await.expect("chroot node");
    let client = Client::connect(&format!("{}/app", cluster.addr(0))).await.expect("connect");
    let session = client.session_id();
    assert!(matches!(client.update_server_list("not a host list:x"), Err(Error::InvalidConnectString { .. })));
    assert!(matches!(
        client.update_server_list(&format!("{}/elsewhere", cluster.addr(1))),
        Err(Error::BadArguments(_))
    ));
    // The same chroot is accepted, as is none (the chroot stays).
    client.update_server_list(&format!("{}/app", cluster.addr(1))).expect("same chroot");
    client.create("/in-app", "", CreateMode::Persistent).await.expect("create in the chroot");
    assert_eq!(cluster.member_of_session(session), Some(1));
    assert!(root.exists("/app/in-app").await.expect("exists").is_some());
    client.close().await;
    assert!(matches!(client.update_server_list(&cluster.addr(0).to_string()), Err(Error::Closed)));
    root.close().await;
    cluster.close().await;
}

#[tokio::test]
async fn a_framework_keeps_the_new_list_for_its_next_sessions() {
    let mut cluster = TestingCluster::start(2).await.expect("cluster");
    let fw = Framework::builder(cluster.addr(0).to_string())
        .session_timeout(Duration::from_secs(4))
        .resession_jitter(Duration::ZERO)
        .start()
        .expect("framework");
    fw.wait_until_connected(WAIT).await.expect("connected");
    let connection = fw.connection_state().borrow().connection;
    // Member 0 stays listed: no reconnection.
    fw.update_server_list(&cluster.connect_string()).expect("update");
    fw.client().sync("/").await.expect("sync");
    assert_eq!(fw.connection_state().borrow().connection, connection);

    // Member 0 leaves and stops; the session moves, then expires: the next session can only
    // have come from the new list, since the builder named member 0 alone.
    fw.update_server_list(&cluster.addr(1).to_string()).expect("update");
    fw.client().sync("/").await.expect("sync");
    cluster.stop_member(0).await;
    let mut states = fw.connection_state();
    let first = fw.client().session_id();
    assert!(cluster.expire_session(first));
    let second =
        tokio::time::timeout(WAIT, states.wait_for(|s| s.epoch == 2 && s.state == ConnectionState::Reconnected))
            .await
            .expect("a new session in time")
            .expect("framework running")
            .session_id;
    assert_ne!(second, first);
    assert_eq!(cluster.member_of_session(second), Some(1));
    fw.close().await;
    cluster.close().await;
}
