//! GroupMember against the embedded server.

mod common;

use std::time::Duration;

use corral_recipes::group_member::GroupMember;

const T: Duration = Duration::from_secs(30);

/// On paused time over in-memory connections: the duplicate's timed-out wait for membership
/// proves the server had nothing for it (virtual time only moves once every task waits).
#[tokio::test(start_paused = true)]
async fn closing_a_member_with_a_duplicate_id_returns_and_leaves_the_first_one_alone() {
    let (server, fw1) = common::in_memory().await;
    let fw2 = common::in_memory_framework(&server).await;
    let first = GroupMember::start(&fw1, "/group", "w1", "first");
    first.wait_for_membership(T).await.unwrap();
    let duplicate = GroupMember::start(&fw2, "/group", "w1", "second");
    // The duplicate found the first member's node and waits for it to go.
    common::eventually("the duplicate waits", || async { fw2.client().watcher_count().await == 1 }).await;
    assert!(duplicate.wait_for_membership(Duration::from_secs(60)).await.is_err());
    // Before the fix, this waited for the first member's node to go, that is, forever.
    tokio::time::timeout(Duration::from_secs(5), duplicate.close()).await.expect("close returns");
    let (data, stat) = fw1.client().get_data("/group/w1").await.unwrap();
    assert_eq!((&data[..], stat.ephemeral_owner), (&b"first"[..], fw1.client().session_id()));
    assert_eq!(first.members().await.unwrap().len(), 1);
    assert_eq!(fw2.client().watcher_count().await, 0, "a closed member holds no watch");
    first.close().await;
    assert!(first.members().await.unwrap().is_empty());
    fw1.close().await;
    fw2.close().await;
}
