//! The caches on a server without persistent watches (the embedded server answering as
//! ZooKeeper 3.5 does, `persistent_watches(false)`): the one-shot fallback is chosen once per
//! framework, and a filtered-out node's children are still followed. `NodeCache` and
//! `ChildrenCache`, the randomized consistency test, the delete-while-disconnected test and
//! the watch release run in this mode in `cache.rs`; the service cache in `discovery.rs` and
//! `discovery_event_order.rs`; the lagging event stream in `cache_resync.rs`.

mod common;

use std::time::Duration;

use corral_recipes::cache::{Cache, WatchMode};
use corral_recipes::framework::PersistentWatches;
use corral_recipes::{CreateMode, Framework};
use corral_server::Server;

const T: Duration = Duration::from_secs(30);

async fn without_add_watch(name: &str) -> common::Env {
    corral_test_support::env::embedded_with(name, Server::builder().persistent_watches(false)).await
}

#[tokio::test]
async fn the_fallback_is_chosen_once_per_framework() {
    let env = without_add_watch("oneshot-once").await;
    let server = env.server.clone().unwrap();
    let fw = env.framework();
    fw.wait_until_connected(T).await.unwrap();
    assert_eq!(fw.persistent_watches(), PersistentWatches::Unknown);
    server.handshake_times(true);
    let first = Cache::builder(&fw, "/a").start();
    first.wait_initialized(T).await.unwrap();
    assert_eq!(first.watch_mode(), WatchMode::OneShot);
    assert_eq!(fw.persistent_watches(), PersistentWatches::Unavailable);
    // The probe cost one reconnection (the server closes the connection after Unimplemented).
    assert_eq!(server.handshake_times(true).len(), 1);
    let connection = fw.current_state().connection;

    // Later caches do not ask again: a probe would close the connection before their first
    // read could finish on it, and they are initialized on the same connection.
    let later: Vec<Cache> = ["/b", "/c", "/d"].iter().map(|root| Cache::builder(&fw, *root).start()).collect();
    for cache in &later {
        cache.wait_initialized(T).await.unwrap();
        assert_eq!(cache.watch_mode(), WatchMode::OneShot);
    }
    assert_eq!(fw.current_state().connection, connection);
    assert!(server.handshake_times(false).is_empty(), "no reconnection after the first probe");

    // A framework of its own learns it on its own; one on a server with addWatch keeps them.
    let other = Framework::builder(env.connect_string()).start().unwrap();
    let cache = Cache::builder(&other, "/a").start();
    cache.wait_initialized(T).await.unwrap();
    assert_eq!((cache.watch_mode(), other.persistent_watches()), (WatchMode::OneShot, PersistentWatches::Unavailable));
    let modern = common::embedded("oneshot-once-modern").await;
    let modern_fw = modern.framework();
    let persistent = Cache::builder(&modern_fw, "/a").start();
    persistent.wait_initialized(T).await.unwrap();
    assert_eq!(persistent.watch_mode(), WatchMode::Persistent);
    assert_eq!(modern_fw.persistent_watches(), PersistentWatches::Available);

    for cache in later.iter().chain([&first, &cache, &persistent]) {
        cache.close().await;
    }
    for fw in [fw, other, modern_fw] {
        fw.close().await;
    }
}

#[tokio::test]
async fn a_filtered_out_node_is_not_kept_but_its_children_are_followed() {
    let env = without_add_watch("oneshot-filter").await;
    let fw = env.framework();
    let writer = env.client().await;
    writer.create("/f", "", CreateMode::Persistent).await.unwrap();
    writer.create("/f/skip", "", CreateMode::Persistent).await.unwrap();
    let cache = Cache::builder(&fw, "/f").filter(|p| !p.ends_with("/skip")).start();
    cache.wait_initialized(T).await.unwrap();
    writer.create("/f/skip/kept", "k", CreateMode::Persistent).await.unwrap();
    common::eventually("the child of a filtered-out node", || async { cache.get("/f/skip/kept").is_some() }).await;
    assert_eq!(cache.get("/f/skip"), None);
    // /f: data + children; /f/skip: children only; /f/skip/kept: data + children.
    common::eventually("5 watches", || async { fw.client().watcher_count().await == 5 }).await;
    cache.close().await;
    writer.close().await;
    fw.close().await;
}
