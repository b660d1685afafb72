//! The caches on a server without persistent watches (the embedded server answering as
//! ZooKeeper 3.5 does, `persistent_watches(false)`): the one-shot fallback is chosen once per
//! framework, `NodeCache` and `ChildrenCache` follow their nodes with exactly the watches they
//! need (none below the depth limit, one per slot, set again after a delete-and-recreate), and
//! release them on close. The randomized consistency test and the delete-while-disconnected test
//! run in this mode in `cache.rs`; the service cache's expiry test in `discovery.rs`.

mod common;

use std::time::Duration;

use corral_recipes::cache::{Cache, ChildrenCache, NodeCache, WatchMode};
use corral_recipes::framework::PersistentWatches;
use corral_recipes::{CreateMode, Framework};
use corral_server::Server;

const T: Duration = Duration::from_secs(30);

async fn without_add_watch(name: &str) -> common::Env {
    common::embedded_with(name, Server::builder().persistent_watches(false)).await
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
async fn node_and_children_caches_follow_their_nodes_with_one_shot_watches() {
    let env = without_add_watch("oneshot-views").await;
    let fw = env.framework();
    let writer = env.client().await;
    writer.create("/p", "root", CreateMode::Persistent).await.unwrap();
    writer.create("/p/a", "1", CreateMode::Persistent).await.unwrap();
    writer.create("/p/a/deep", "x", CreateMode::Persistent).await.unwrap();
    let node = NodeCache::start(&fw, "/p");
    let children = ChildrenCache::start(&fw, "/p");
    node.cache().wait_initialized(T).await.unwrap();
    children.cache().wait_initialized(T).await.unwrap();
    assert_eq!((node.cache().watch_mode(), children.cache().watch_mode()), (WatchMode::OneShot, WatchMode::OneShot));
    assert_eq!(&node.current().unwrap().data[..], b"root");
    assert_eq!(children.current().keys().collect::<Vec<_>>(), ["a"], "depth 1 only");
    // NodeCache: the data of /p. ChildrenCache: the data and children of /p and the data of
    // /p/a — nothing at or below /p/a/deep, and no children watch at the depth limit.
    let watches = 1 + 3;
    common::eventually("the views' watches", || async { fw.client().watcher_count().await == watches }).await;

    writer.create("/p/b", "2", CreateMode::Persistent).await.unwrap();
    writer.set_data("/p", "changed", None).await.unwrap();
    writer.set_data("/p/a", "1b", None).await.unwrap();
    writer.create("/p/a/deeper", "", CreateMode::Persistent).await.unwrap();
    common::eventually("the views follow", || async {
        let current = children.current();
        current.keys().collect::<Vec<_>>() == ["a", "b"]
            && &current["a"].data[..] == b"1b"
            && node.current().is_some_and(|n| &n.data[..] == b"changed")
    })
    .await;
    assert_eq!(children.cache().get("/p/a/deeper"), None);

    // Deleted and created again: followed again, with the same number of watches.
    writer.delete("/p/a/deep", None).await.unwrap();
    writer.delete("/p/a/deeper", None).await.unwrap();
    writer.delete("/p/a", None).await.unwrap();
    writer.delete("/p/b", None).await.unwrap();
    writer.create("/p/a", "again", CreateMode::Persistent).await.unwrap();
    common::eventually("the re-created child", || async {
        let current = children.current();
        current.len() == 1 && current.get("a").is_some_and(|n| &n.data[..] == b"again")
    })
    .await;
    common::eventually("the views' watches again", || async { fw.client().watcher_count().await == watches }).await;
    writer.set_data("/p/a", "followed", None).await.unwrap();
    common::eventually("the re-created child is watched", || async {
        children.current().get("a").is_some_and(|n| &n.data[..] == b"followed")
    })
    .await;

    // The node itself deleted and created again.
    writer.delete("/p/a", None).await.unwrap();
    writer.delete("/p", None).await.unwrap();
    common::eventually("gone", || async { node.current().is_none() && children.current().is_empty() }).await;
    // Only the exists watches on the missing root are left (one per cache).
    common::eventually("exists watches", || async { fw.client().watcher_count().await == 2 }).await;
    writer.create("/p", "back", CreateMode::Persistent).await.unwrap();
    writer.create("/p/c", "3", CreateMode::Persistent).await.unwrap();
    common::eventually("back", || async {
        node.current().is_some_and(|n| &n.data[..] == b"back") && children.current().keys().collect::<Vec<_>>() == ["c"]
    })
    .await;

    node.cache().close().await;
    children.cache().close().await;
    common::eventually("watches released", || async { fw.client().watcher_count().await == 0 }).await;
    writer.close().await;
    fw.close().await;
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
