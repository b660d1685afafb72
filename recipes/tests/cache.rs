//! The cache engine: randomized consistency under faults, delete-and-recreate while
//! disconnected, watch release on close — each with a persistent watch and with the one-shot
//! fallback (a server answering as ZooKeeper 3.5 does).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use corral_recipes::cache::{Cache, CacheEvent, CachedNode, ChildrenCache, NodeCache, WatchMode};
use corral_recipes::{Client, ConnectionState, CreateMode, Framework, RetryNTimes};
use corral_server::Server;
use futures::StreamExt;

const T: Duration = Duration::from_secs(30);

/// The server's tree below `root`: path → (data, czxid, mzxid).
async fn server_tree(client: &Client, root: &str) -> BTreeMap<String, (Vec<u8>, i64, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        let Ok((data, stat)) = client.get_data(&path).await else { continue };
        out.insert(path.clone(), (data.to_vec(), stat.czxid, stat.mzxid));
        if let Ok(children) = client.get_children(&path).await {
            stack.extend(children.into_iter().map(|c| format!("{path}/{c}")));
        }
    }
    out
}

fn view(map: &BTreeMap<String, CachedNode>) -> BTreeMap<String, (Vec<u8>, i64, i64)> {
    map.iter().map(|(p, n)| (p.clone(), (n.data.to_vec(), n.stat.czxid, n.stat.mzxid))).collect()
}

/// An embedded server that answers as ZooKeeper 3.5 does: no persistent watches.
async fn without_add_watch(name: &str) -> common::Env {
    corral_test_support::env::embedded_with(name, Server::builder().persistent_watches(false)).await
}

/// The watches a cache of `tree` (unlimited depth, no filter) holds in `mode`: one persistent
/// watch; or a data and a children watch per node (an exists watch alone on a missing root).
fn watches_for(mode: WatchMode, tree: &BTreeMap<String, (Vec<u8>, i64, i64)>) -> usize {
    match mode {
        WatchMode::OneShot => (2 * tree.len()).max(1),
        _ => 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_converges_to_the_server_under_random_changes_and_faults() {
    let env = common::embedded("cache-random").await;
    converges_under_random_changes_and_faults(&env, false, WatchMode::Persistent).await;
}

/// The same on a server without persistent watches (ZooKeeper 3.5's answers): the one-shot
/// fallback, through the same changes, connection drops and expiries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_one_shot_cache_converges_to_the_server_under_random_changes_and_faults() {
    let env = without_add_watch("cache-random-oneshot").await;
    converges_under_random_changes_and_faults(&env, false, WatchMode::OneShot).await;
}

/// The one-shot engine, forced, against every server at hand: the embedded one and a real
/// ZooKeeper 3.8, whose one-shot watches and setWatches are the reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_one_shot_cache_converges_on_every_server() {
    for env in common::envs("cache-random-forced").await {
        eprintln!("-- against the {} server", env.kind);
        converges_under_random_changes_and_faults(&env, true, WatchMode::OneShot).await;
    }
}

/// Ends `fw`'s connection, or (`expire`) its session, on either server: with the embedded
/// server's fault kit; on a real ZooKeeper from the client side, or by taking the session over
/// from a second client and closing it (Curator's `KillSession`).
async fn fault(env: &common::Env, fw: &Framework, expire: bool) {
    let session = fw.client().session();
    match &env.server {
        Some(server) => {
            let landed = if expire { server.expire_session(session.id) } else { server.drop_connection(session.id) };
            assert!(landed, "no session {:#x} to hit", session.id);
        }
        None if expire => {
            let thief =
                Client::builder(env.hosts.clone()).session(session.id, session.password).connect().await.unwrap();
            thief.close().await;
        }
        None => fw.client().drop_connection(),
    }
}

async fn converges_under_random_changes_and_faults(env: &common::Env, force_one_shot: bool, mode: WatchMode) {
    let fw = env.framework();
    let builder = Cache::builder(&fw, "/tree");
    let cache = if force_one_shot { builder.one_shot_watches() } else { builder }.start();
    let mut events = cache.events();
    cache.wait_initialized(T).await.unwrap();
    assert_eq!(cache.watch_mode(), mode);

    // Replay the event stream into a map of its own: it must end up equal to the view.
    let replay = tokio::spawn(async move {
        let mut map = BTreeMap::new();
        while let Some(event) = events.next().await {
            match event {
                CacheEvent::Created { path, node } => {
                    map.insert(path, node);
                }
                CacheEvent::Changed { path, new, .. } => {
                    map.insert(path, new);
                }
                CacheEvent::Deleted { path, .. } => {
                    map.remove(&path);
                }
                _ => {}
            }
        }
        map
    });

    let writer = env.client().await;
    let names = ["a", "b", "c"];
    let paths: Vec<String> = std::iter::once("/tree".to_owned())
        .chain(names.iter().map(|n| format!("/tree/{n}")))
        .chain(names.iter().flat_map(|n| names.iter().map(move |m| format!("/tree/{n}/{m}"))))
        .collect();
    for step in 0..320 {
        let path = &paths[fastrand::usize(..paths.len())];
        match fastrand::u8(..4) {
            0 | 1 => {
                let _ = writer.create(path, step.to_string(), CreateMode::Persistent).await;
            }
            2 => {
                let _ = writer.set_data(path, step.to_string(), None).await;
            }
            _ => {
                let _ = writer.delete(path, None).await;
            }
        }
        // A dropped connection and an expiry in turn, every 40 steps; the last step's fault is
        // an expiry (so the end state is the work of a new session's first resync).
        if step % 40 == 39 {
            // Each fault lands: on a connection the framework has made since the last one.
            let before = fw.current_state();
            fault(env, &fw, step % 80 == 79).await;
            let mut states = fw.connection_state();
            tokio::time::timeout(T, states.wait_for(|s| s.state.is_connected() && s.connection != before.connection))
                .await
                .expect("reconnected after the fault")
                .unwrap();
        }
    }
    // Quiescence: the view equals the server's tree, and every node is watched exactly once
    // per slot (no watch added twice, none lost to a delete-and-recreate or an expiry).
    let expected = server_tree(&writer, "/tree").await;
    common::eventually("the cache matches the server", || {
        let (cache, expected, fw) = (&cache, &expected, &fw);
        async move { fw.current_state().state.is_connected() && view(&cache.snapshot()) == *expected }
    })
    .await;
    let watches = watches_for(mode, &expected);
    common::eventually(&format!("{watches} watches"), || async { fw.client().watcher_count().await == watches }).await;
    // Proof that the cache follows changes from here on (its watches are live, not just counted).
    let _ = writer.create("/tree", "", CreateMode::Persistent).await;
    let _ = writer.create("/tree/a", "", CreateMode::Persistent).await;
    writer.create("/tree/a/late", "x", CreateMode::Persistent).await.unwrap();
    writer.set_data("/tree", "last", None).await.unwrap();
    let expected = server_tree(&writer, "/tree").await;
    common::eventually("the cache follows a last change", || {
        let (cache, expected) = (&cache, &expected);
        async move { view(&cache.snapshot()) == *expected }
    })
    .await;
    let snapshot = cache.snapshot();
    cache.close().await;
    drop(cache);
    let replayed = tokio::time::timeout(T, replay).await.unwrap().unwrap();
    assert_eq!(view(&replayed), view(&snapshot), "the event stream replays to the same tree");
    writer.close().await;
    fw.close().await;
}

#[tokio::test]
async fn delete_and_recreate_while_disconnected_is_never_silent() {
    delete_and_recreate_while_disconnected(Server::builder(), WatchMode::Persistent).await;
}

#[tokio::test]
async fn delete_and_recreate_while_disconnected_is_never_silent_with_one_shot_watches() {
    delete_and_recreate_while_disconnected(Server::builder().persistent_watches(false), WatchMode::OneShot).await;
}

async fn delete_and_recreate_while_disconnected(builder: corral_server::ServerBuilder, mode: WatchMode) {
    let cluster =
        corral_server::testing::TestingCluster::with_builder(2, builder.tick_time(Duration::from_millis(2000)))
            .await
            .unwrap();
    let fw = Framework::builder(cluster.addr(0).to_string())
        .session_timeout(Duration::from_secs(20))
        .retry_policy(RetryNTimes::new(20, Duration::from_millis(50)))
        .start()
        .unwrap();
    let writer = Client::connect(&cluster.addr(1).to_string()).await.unwrap();
    writer.create("/svc", "", CreateMode::Persistent).await.unwrap();
    writer.create("/svc/x", "old", CreateMode::Persistent).await.unwrap();
    let cache = Cache::builder(&fw, "/svc").start();
    cache.wait_initialized(T).await.unwrap();
    assert_eq!(cache.watch_mode(), mode);
    let old_czxid = cache.get("/svc/x").unwrap().stat.czxid;
    let mut events = cache.events();

    // The cache's member goes silent; meanwhile /svc/x is deleted and created again, with the
    // same version (0) and the same data length — only its czxid tells.
    cluster.pause_member(0);
    fw.client().drop_connection();
    writer.delete("/svc/x", None).await.unwrap();
    writer.create("/svc/x", "new", CreateMode::Persistent).await.unwrap();
    cluster.resume_member(0);

    let mut saw = Vec::new();
    tokio::time::timeout(T, async {
        while let Some(event) = events.next().await {
            match event {
                CacheEvent::Deleted { path, .. } if path == "/svc/x" => saw.push("deleted"),
                CacheEvent::Created { path, .. } if path == "/svc/x" => {
                    saw.push("created");
                    break;
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the re-creation surfaced");
    assert_eq!(saw, ["deleted", "created"]);
    let node = cache.get("/svc/x").unwrap();
    assert!(node.stat.czxid > old_czxid);
    assert_eq!(&node.data[..], b"new");
    cache.close().await;
    writer.close().await;
    fw.close().await;
}

#[tokio::test]
async fn closing_a_cache_leaves_no_watch_on_the_server() {
    closing_leaves_no_watch(common::embedded("cache-wchs").await).await;
}

#[tokio::test]
async fn closing_a_one_shot_cache_leaves_no_watch_on_the_server() {
    closing_leaves_no_watch(without_add_watch("cache-wchs").await).await;
}

async fn closing_leaves_no_watch(env: common::Env) {
    let server = env.server.clone().unwrap();
    let fw = env.framework();
    let caches: Vec<Cache> = (0..3).map(|i| Cache::builder(&fw, format!("/c{i}")).start()).collect();
    for c in &caches {
        c.wait_initialized(T).await.unwrap();
    }
    assert!(wchs_total(&server).await >= 3);
    for c in &caches {
        c.close().await;
    }
    common::eventually("server watches back to zero", || async { wchs_total(&server).await == 0 }).await;
    fw.close().await;
}

/// `Total watches:N` from the server's `wchs` four-letter word.
async fn wchs_total(server: &corral_server::testing::TestingServer) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    s.write_all(b"wchs").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.lines().find_map(|l| l.strip_prefix("Total watches:")).and_then(|n| n.trim().parse().ok()).unwrap_or(usize::MAX)
}

/// `/p` ("root") with `/p/a` ("1") and `/p/a/deep`, written by the returned client, and a
/// `NodeCache` and a `ChildrenCache` on `/p`, initialized.
async fn views_of_p(env: &common::Env, fw: &Framework) -> (Client, NodeCache, ChildrenCache) {
    let writer = env.client().await;
    writer.create("/p", "root", CreateMode::Persistent).await.unwrap();
    writer.create("/p/a", "1", CreateMode::Persistent).await.unwrap();
    writer.create("/p/a/deep", "x", CreateMode::Persistent).await.unwrap();
    let node = NodeCache::start(fw, "/p");
    let children = ChildrenCache::start(fw, "/p");
    node.cache().wait_initialized(T).await.unwrap();
    children.cache().wait_initialized(T).await.unwrap();
    assert_eq!(&node.current().unwrap().data[..], b"root");
    assert_eq!(children.current().keys().collect::<Vec<_>>(), ["a"], "depth 1 only");
    (writer, node, children)
}

#[tokio::test]
async fn node_and_children_views_and_watches_released_on_close() {
    for env in common::envs("cache-views").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        let (writer, node, children) = views_of_p(&env, &fw).await;
        writer.create("/p/b", "2", CreateMode::Persistent).await.unwrap();
        writer.set_data("/p", "changed", None).await.unwrap();
        common::eventually("views follow", || async {
            children.current().len() == 2 && node.current().is_some_and(|n| &n.data[..] == b"changed")
        })
        .await;
        assert!(fw.client().watcher_count().await >= 2);
        node.cache().close().await;
        children.cache().close().await;
        common::eventually("watches released", || async { fw.client().watcher_count().await == 0 }).await;
        // The root deleted and created again: the cache follows.
        let tree = Cache::builder(&fw, "/p").start();
        tree.wait_initialized(T).await.unwrap();
        writer.delete("/p/a/deep", None).await.unwrap();
        writer.delete("/p/a", None).await.unwrap();
        writer.delete("/p/b", None).await.unwrap();
        writer.delete("/p", None).await.unwrap();
        common::eventually("root gone", || async { tree.snapshot().is_empty() }).await;
        writer.create("/p", "again", CreateMode::Persistent).await.unwrap();
        common::eventually("root back", || async { tree.get("/p").is_some_and(|n| &n.data[..] == b"again") }).await;
        tree.close().await;
        writer.close().await;
        fw.close().await;
    }
}

/// On a server without persistent watches: the views follow their nodes with exactly the
/// watches they need (none below the depth limit, one per slot, set again after a
/// delete-and-recreate), and release them on close.
#[tokio::test]
async fn node_and_children_caches_follow_their_nodes_with_one_shot_watches() {
    let env = without_add_watch("cache-views-oneshot").await;
    let fw = env.framework();
    let (writer, node, children) = views_of_p(&env, &fw).await;
    assert_eq!((node.cache().watch_mode(), children.cache().watch_mode()), (WatchMode::OneShot, WatchMode::OneShot));
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
async fn the_cache_posts_suspended_then_reconnected() {
    let cluster = corral_server::testing::TestingCluster::start(1).await.unwrap();
    let fw = Framework::builder(cluster.addr(0).to_string()).session_timeout(Duration::from_secs(20)).start().unwrap();
    let cache = Cache::builder(&fw, "/states").start();
    cache.wait_initialized(T).await.unwrap();
    let mut events = cache.events();
    let mut next_state = async || loop {
        match tokio::time::timeout(T, events.next()).await.expect("a connection state event") {
            Some(CacheEvent::ConnectionState(change)) => return change.state,
            Some(_) => {}
            None => panic!("the cache's events ended"),
        }
    };

    // Held disconnected until the member resumes, so SUSPENDED cannot be skipped over.
    cluster.pause_member(0);
    fw.client().drop_connection();
    assert_eq!(next_state().await, ConnectionState::Suspended);
    cluster.resume_member(0);
    assert_eq!(next_state().await, ConnectionState::Reconnected);
    cache.close().await;
    fw.close().await;
}
