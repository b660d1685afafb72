//! The ensemble tracker against a real ZooKeeper 3.8 that is reconfigured while the framework
//! runs: a reconfigurable single member (`corral_test_support::reconfigurable_zookeeper`),
//! to which observers that do not run are added and removed — changes of the server list
//! clients are told about, which the framework must follow (Curator's `EnsembleTracker`).

use std::time::Duration;

use corral_core::{Client, CreateMode, Framework};
use corral_test_support::reconfigurable_zookeeper;

const WAIT: Duration = Duration::from_secs(20);

/// Waits (bounded) until the framework uses exactly `expected`.
async fn until_using(fw: &Framework, expected: &str) {
    let waited = tokio::time::timeout(WAIT, async {
        while fw.current_connection_string() != expected {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the framework uses {:?}, not {expected:?}", fw.current_connection_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_framework_follows_reconfigurations_of_its_ensemble() {
    let Some(zk) = reconfigurable_zookeeper() else { return };
    let own = zk.connect_string();
    let admin = Client::connect(&own).await.expect("admin");
    admin.create("/app", "", CreateMode::Persistent).await.expect("chroot node");
    // A chroot, to show the configuration is read outside it.
    let fw = Framework::builder(format!("{own}/app")).ensemble_tracker(true).start().expect("framework");
    fw.wait_until_connected(WAIT).await.expect("connected");
    let untracked = Framework::builder(format!("{own}/app")).start().expect("untracked framework");
    untracked.wait_until_connected(WAIT).await.expect("connected");

    // The configuration names the one member, as given: nothing changes.
    let (config, _) = admin.get_config().await.expect("config");
    assert!(String::from_utf8_lossy(&config).contains(&format!(";{own}")), "{config:?}");
    until_using(&fw, &format!("{own}/app")).await;

    // An observer joins the configuration (it need not run: observers are in no quorum).
    let observer = "127.0.0.1:1";
    let (joined, _) = admin
        .reconfig(Some(&format!("server.2=127.0.0.1:2:3:observer;{observer}")), None, None, -1)
        .await
        .expect("reconfig: add an observer");
    assert!(String::from_utf8_lossy(&joined).contains("server.2="), "{joined:?}");
    until_using(&fw, &format!("{own},{observer}/app")).await;
    // The session stayed where it was (its server is still listed) and works.
    fw.client().create("/still-here", "", CreateMode::Persistent).await.expect("create");
    assert!(admin.exists("/app/still-here").await.expect("exists").is_some());

    // It leaves again.
    admin.reconfig(None, Some("2"), None, -1).await.expect("reconfig: remove the observer");
    until_using(&fw, &format!("{own}/app")).await;

    // The watch comes back with a reconnection (outside the chroot): a change made meanwhile
    // is seen too.
    fw.client().drop_connection();
    admin
        .reconfig(Some(&format!("server.3=127.0.0.1:4:5:observer;{observer}")), None, None, -1)
        .await
        .expect("reconfig");
    until_using(&fw, &format!("{own},{observer}/app")).await;

    // Without the tracker, the servers stay as given.
    assert_eq!(untracked.current_connection_string(), format!("{own}/app"));
    untracked.close().await;
    fw.close().await;
    admin.close().await;
}
