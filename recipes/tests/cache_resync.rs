//! A cache event stream that falls behind loses nothing silently: it gets the whole view
//! (`CacheEvent::Resynced`) instead of the node events it missed, and a mirror built from the
//! stream alone ends equal to the cache.

use std::collections::BTreeMap;
use std::time::Duration;

use corral_recipes::cache::{Cache, CacheEvent, CachedNode, WatchMode};
use corral_recipes::{CreateMode, Framework};
use corral_server::testing::TestingServer;
use corral_server::{Server, ServerBuilder};
use futures::StreamExt as _;

const T: Duration = Duration::from_secs(30);

/// Waits (bounded) until the cache holds `n` nodes.
async fn until_len(cache: &Cache, n: usize) {
    let waited = tokio::time::timeout(T, async {
        while cache.snapshot().len() != n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the cache holds {} nodes, not {n}", cache.snapshot().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_falls_behind_gets_the_whole_view_and_misses_nothing() {
    falls_behind(Server::builder(), WatchMode::Persistent).await;
}

/// The same with the one-shot fallback (a server answering as ZooKeeper 3.5 does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_a_one_shot_cache_that_falls_behind_misses_nothing() {
    falls_behind(Server::builder().persistent_watches(false), WatchMode::OneShot).await;
}

async fn falls_behind(builder: ServerBuilder, mode: WatchMode) {
    let server = TestingServer::with_builder(builder).await.expect("server");
    let fw = Framework::builder(server.connect_string()).start().expect("framework");
    fw.create("/big", "", CreateMode::Persistent).await.expect("root");
    let cache = Cache::builder(&fw, "/big").start();
    cache.wait_initialized(T).await.expect("initialized");
    assert_eq!(cache.watch_mode(), mode);
    let mut mirror: BTreeMap<String, CachedNode> = cache.snapshot();
    let mut events = cache.events();

    // 1,500 node events while nobody reads the stream: more than it buffers.
    let client = fw.client();
    for chunk in (0..1500).collect::<Vec<_>>().chunks(250) {
        let creates = chunk.iter().map(|i| client.create(&format!("/big/n{i:04}"), "v1", CreateMode::Persistent));
        for created in futures::future::join_all(creates).await {
            created.expect("create");
        }
    }
    until_len(&cache, 1501).await;
    // Changes after the lag: they must come as events after the view.
    client.set_data("/big/n0007", "v2", None).await.expect("set");
    client.delete("/big/n0008", None).await.expect("delete");
    client.create("/big/late", "", CreateMode::Persistent).await.expect("create late");
    until_len(&cache, 1501).await;
    let waited = tokio::time::timeout(T, async {
        while cache.get("/big/n0007").is_none_or(|n| &n.data[..] != b"v2") || cache.get("/big/late").is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the cache did not see the later changes");

    // Read the stream until the mirror is the cache's view.
    let mut resynced = None;
    let built = tokio::time::timeout(T, async {
        while mirror != cache.snapshot() {
            match events.next().await.expect("the stream goes on") {
                CacheEvent::Created { path, node } => {
                    mirror.insert(path, node);
                }
                CacheEvent::Changed { path, new, .. } => {
                    mirror.insert(path, new);
                }
                CacheEvent::Deleted { path, .. } => {
                    mirror.remove(&path);
                }
                CacheEvent::Resynced { nodes, skipped } => {
                    resynced = Some(skipped);
                    mirror = nodes;
                }
                _ => {}
            }
        }
    })
    .await;
    assert!(
        built.is_ok(),
        "the mirror ({} nodes) never became the view ({} nodes)",
        mirror.len(),
        cache.snapshot().len()
    );
    let skipped = resynced.expect("the stream said it fell behind");
    assert!(skipped > 0);
    assert_eq!(&mirror["/big/n0007"].data[..], b"v2");
    assert!(!mirror.contains_key("/big/n0008"));

    cache.close().await;
    // The stream ends with the cache.
    drop(cache);
    let ended = tokio::time::timeout(T, async { while events.next().await.is_some() {} }).await;
    assert!(ended.is_ok(), "the stream outlived its cache");
    fw.close().await;
    server.close().await;
}
