//! kazoo 2.11's `TreeCache` and Corral's `Cache` on the same tree: for the same changes, the
//! same events (by kazoo's `TreeEvent` names, `CacheEvent::kazoo_name`) for the same paths in
//! the same order, against the embedded server and a real ZooKeeper.

mod common;

use std::time::Duration;

use common::kazoo_peer::ok;
use corral_recipes::CreateMode;
use corral_recipes::cache::{Cache, CacheEvent};
use corral_test_support::python::{KazooPeer, kazoo_python};
use futures::StreamExt as _;
use serde_json::json;

const T: Duration = Duration::from_secs(20);

/// Our next event that kazoo also has, as `[name, path]`.
async fn next_ours(events: &mut (impl futures::Stream<Item = CacheEvent> + Unpin)) -> (String, Option<String>) {
    loop {
        let event =
            tokio::time::timeout(T, events.next()).await.expect("an event in time").expect("the stream goes on");
        let path = match &event {
            CacheEvent::Created { path, .. } | CacheEvent::Changed { path, .. } | CacheEvent::Deleted { path, .. } => {
                Some(path.clone())
            }
            _ => None,
        };
        if let Some(name) = event.kazoo_name() {
            return (name.to_owned(), path);
        }
    }
}

/// kazoo's events so far, waiting (bounded) until there are at least `n`.
async fn kazoo_events(mut peer: KazooPeer, n: usize) -> (KazooPeer, Vec<(String, Option<String>)>) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let (back, answer) = ok(peer, json!({"op": "tree_events", "name": "tree"})).await;
        peer = back;
        let events: Vec<(String, Option<String>)> = answer["events"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|e| (e[0].as_str().unwrap_or_default().to_owned(), e[1].as_str().map(str::to_owned)))
            .collect();
        if events.len() >= n {
            return (peer, events);
        }
        assert!(tokio::time::Instant::now() < deadline, "kazoo saw only {events:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_changes_make_the_same_events_as_kazoos_tree_cache() {
    let Some(python) = kazoo_python() else { return };
    for env in common::envs("kazoo-tree-cache").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        fw.wait_until_connected(T).await.unwrap();
        let client = fw.client();
        client.create("/tree", "v1", CreateMode::Persistent).await.unwrap();
        client.create("/tree/old", "", CreateMode::Persistent).await.unwrap();

        let peer = KazooPeer::start(python, &env.connect_string()).expect("kazoo peer");
        let (peer, _) = ok(peer, json!({"op": "tree_start", "name": "tree", "path": "/tree"})).await;
        let (cache, mut events) = Cache::builder(&fw, "/tree").start_with_events();
        let mut ours = Vec::new();
        // The first read: every node, then INITIALIZED (kazoo's order of siblings is its own:
        // compare the initial load as a set, the rest in order).
        for _ in 0..3 {
            ours.push(next_ours(&mut events).await);
        }
        let (mut peer, initial) = kazoo_events(peer, 3).await;
        let sorted = |mut v: Vec<(String, Option<String>)>| {
            v.sort();
            v
        };
        assert_eq!(sorted(initial.clone()), sorted(ours.clone()), "initial load");
        assert_eq!(ours.last().map(|e| e.0.as_str()), Some("INITIALIZED"));

        // One change at a time, each seen by both before the next.
        let steps: Vec<(&str, &str)> = vec![
            ("create", "/tree/a"),
            ("set", "/tree/a"),
            ("create", "/tree/a/b"),
            ("set", "/tree"),
            ("delete", "/tree/a/b"),
            ("delete", "/tree/old"),
            ("delete", "/tree/a"),
        ];
        let mut seen = 3;
        for (what, path) in steps {
            match what {
                "create" => drop(client.create(path, "x", CreateMode::Persistent).await.unwrap()),
                "set" => drop(client.set_data(path, "changed", None).await.unwrap()),
                _ => client.delete(path, None).await.unwrap(),
            }
            ours.push(next_ours(&mut events).await);
            seen += 1;
            let (back, theirs) = kazoo_events(peer, seen).await;
            peer = back;
            assert_eq!(theirs[3..], ours[3..], "after {what} {path}");
        }
        let names: Vec<&str> = ours[3..].iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "NODE_ADDED",
                "NODE_UPDATED",
                "NODE_ADDED",
                "NODE_UPDATED",
                "NODE_REMOVED",
                "NODE_REMOVED",
                "NODE_REMOVED"
            ]
        );
        let (peer, _) = ok(peer, json!({"op": "tree_close", "name": "tree"})).await;
        drop(peer);
        cache.close().await;
        fw.close().await;
    }
}
