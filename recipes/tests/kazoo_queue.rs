//! kazoo 2.11's `Queue` and `LockingQueue` beside Corral's `kazoo::Queue` and
//! `kazoo::LockingQueue` on the same paths, both directions, against the embedded server and a
//! real ZooKeeper.

mod common;

use std::time::Duration;

use common::kazoo_peer::{ask, is_uuid_hex, ok};
use corral_recipes::Error;
use corral_recipes::kazoo::{LockingQueue, Queue};
use corral_test_support::python::{KazooPeer, kazoo_python};
use serde_json::json;

fn is_entry_name(name: &str) -> bool {
    let b = name.as_bytes();
    name.len() == "entry-100-0000000000".len()
        && name.starts_with("entry-")
        && b[6..9].iter().all(u8::is_ascii_digit)
        && b[9] == b'-'
        && b[10..].iter().all(u8::is_ascii_digit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_shared_with_kazoo_both_ways() {
    let Some(python) = kazoo_python() else { return };
    for env in common::envs("kazoo-queue").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
        let peer = KazooPeer::start(python, &env.connect_string()).expect("kazoo peer");
        let queue = Queue::new(&fw, "/q");

        let (peer, _) = ok(peer, json!({"op": "queue_put", "path": "/q", "value": "p-low", "priority": 200})).await;
        let (peer, _) = ok(peer, json!({"op": "queue_put", "path": "/q", "value": "p-high", "priority": 5})).await;
        queue.put("r-mid", 100).await.unwrap();
        queue.put("r-first", 5).await.unwrap();
        for name in fw.client().get_children("/q").await.unwrap() {
            assert!(is_entry_name(&name), "kazoo's entry name: {name}");
        }
        assert_eq!(queue.len().await.unwrap(), 4);
        let (peer, answer) = ok(peer, json!({"op": "queue_len", "path": "/q"})).await;
        assert_eq!(answer["len"], 4);

        // By priority, then in put order, whoever takes.
        assert_eq!(queue.get().await.unwrap().as_deref(), Some(&b"p-high"[..]));
        let (peer, answer) = ok(peer, json!({"op": "queue_get", "path": "/q"})).await;
        assert_eq!(answer["value"], "r-first");
        assert_eq!(queue.get().await.unwrap().as_deref(), Some(&b"r-mid"[..]));
        let (peer, answer) = ok(peer, json!({"op": "queue_get", "path": "/q"})).await;
        assert_eq!(answer["value"], "p-low");
        assert_eq!(queue.get().await.unwrap(), None);
        let (peer, answer) = ok(peer, json!({"op": "queue_get", "path": "/q"})).await;
        assert_eq!(answer["value"], serde_json::Value::Null);
        drop(peer);
        fw.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locking_queue_shared_with_kazoo_both_ways() {
    let Some(python) = kazoo_python() else { return };
    for env in common::envs("kazoo-locking-queue").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
        let peer = KazooPeer::start(python, &env.connect_string()).expect("kazoo peer");
        let queue = LockingQueue::new(&fw, "/lq");

        let put_all = json!({"op": "queue_put", "locking": true, "path": "/lq", "values": ["a", "b"], "priority": 100});
        let (peer, _) = ok(peer, put_all).await;
        queue.put("c", 50).await.unwrap();
        for name in fw.client().get_children("/lq/entries").await.unwrap() {
            assert!(is_entry_name(&name), "kazoo's entry name: {name}");
        }

        // We lock the first (by priority); kazoo skips it and locks the next.
        let c = queue.get_timeout(Duration::from_secs(10)).await.expect("an entry");
        assert_eq!(c.value(), "c");
        let lock = fw.client().get_data(c.lock_path()).await.unwrap();
        assert!(is_uuid_hex(std::str::from_utf8(&lock.0).unwrap()), "the consumer id as kazoo writes it");
        let (peer, answer) = ok(peer, json!({"op": "lqueue_get", "path": "/lq", "name": "k1", "timeout": 10})).await;
        assert_eq!(answer["value"], "a", "kazoo skips our locked entry");
        let (peer, answer) = ok(peer, json!({"op": "lqueue_holds", "name": "k1"})).await;
        assert_eq!(answer["holds"], true);
        assert!(c.holds_lock().await.unwrap());
        let b = queue.get_timeout(Duration::from_secs(10)).await.expect("we skip kazoo's locked entry");
        assert_eq!(b.value(), "b");
        assert!(
            matches!(queue.get_timeout(Duration::ZERO).await, Err(corral_recipes::Error::TimedOut { .. })),
            "all three are locked"
        );
        let (peer, answer) = ok(peer, json!({"op": "lqueue_get", "path": "/lq", "name": "k2", "timeout": 0})).await;
        assert_eq!(answer["value"], serde_json::Value::Null, "all three are locked");

        // Our release hands "c" to kazoo; kazoo's consume and ours delete entries and locks.
        let kazoo_waits =
            tokio::spawn(ask(peer, json!({"op": "lqueue_get", "path": "/lq", "name": "k2", "timeout": 20})));
        assert!(c.release().await.unwrap());
        let (peer, answer) = kazoo_waits.await.unwrap();
        assert_eq!(answer["value"], "c", "{answer}");
        let (peer, answer) = ok(peer, json!({"op": "lqueue_consume", "name": "k1"})).await;
        assert_eq!(answer["consumed"], true);
        assert_eq!(queue.len().await.unwrap(), 2);
        assert!(b.consume().await.unwrap());
        let (peer, answer) = ok(peer, json!({"op": "lqueue_consume", "name": "k2"})).await;
        assert_eq!(answer["consumed"], true);
        let (peer, answer) = ok(peer, json!({"op": "queue_len", "locking": true, "path": "/lq"})).await;
        assert_eq!(answer["len"], 0);
        assert!(fw.client().get_children("/lq/taken").await.unwrap().is_empty());

        // kazoo waits for an entry we put; it releases; we get it.
        let kazoo_waits =
            tokio::spawn(ask(peer, json!({"op": "lqueue_get", "path": "/lq", "name": "k3", "timeout": 20})));
        queue.put("d", 100).await.unwrap();
        let (peer, answer) = kazoo_waits.await.unwrap();
        assert_eq!(answer["value"], "d");
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { queue.get_timeout(Duration::from_secs(20)).await }
        });
        let (peer, answer) = ok(peer, json!({"op": "lqueue_release", "name": "k3"})).await;
        assert_eq!(answer["released"], true);
        let d = waiting.await.unwrap().expect("kazoo's released entry");
        assert_eq!(d.value(), "d");
        assert!(d.consume().await.unwrap());
        assert_eq!(queue.len().await.unwrap(), 0);
        drop(peer);
        fw.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_locked_by_a_lost_session_goes_to_another_consumer() {
    let env = common::embedded("kazoo-locking-queue-lost").await;
    let server = env.server.clone().unwrap();
    let (fw, other) = (env.framework(), env.framework());
    let queue = LockingQueue::new(&fw, "/lq");
    queue.put("job", 100).await.unwrap();
    let entry = queue.get().await.unwrap();
    let theirs = LockingQueue::new(&other, "/lq");
    assert!(matches!(theirs.get_timeout(Duration::ZERO).await, Err(corral_recipes::Error::TimedOut { .. })), "locked");
    let waiting = tokio::spawn(async move { theirs.get_timeout(Duration::from_secs(20)).await });
    server.expire_session(fw.client().session_id());
    let got = waiting.await.unwrap().expect("the entry comes free with the session");
    assert_eq!(got.value(), "job");
    // The old consumer holds nothing and consumes nothing.
    assert!(!entry.holds_lock().await.unwrap());
    assert!(!entry.consume().await.unwrap());
    assert!(got.consume().await.unwrap());
    assert_eq!(queue.len().await.unwrap(), 0);
    fw.close().await;
    other.close().await;
}

#[tokio::test]
async fn priorities_above_999_are_refused_before_anything_is_sent() {
    let env = common::embedded("kazoo-queue-priority").await;
    let fw = env.framework();
    let err = Queue::new(&fw, "/q").put("x", 1000).await.unwrap_err();
    assert!(
        matches!(&err, Error::Core(corral_recipes::CoreError::BadArguments(m)) if m.contains("between 0 and 999")),
        "{err}"
    );
    let err = LockingQueue::new(&fw, "/lq").put_all(["x"], 1000).await.unwrap_err();
    assert!(matches!(err, Error::Core(corral_recipes::CoreError::BadArguments(_))));
    assert!(fw.client().exists("/q").await.unwrap().is_none());
    assert_eq!(Queue::new(&fw, "/q").put("x", 999).await.unwrap(), "/q/entry-999-0000000000");
    fw.close().await;
}

/// Rust and kazoo consumers drain one queue at once: every item is taken exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_of_both_languages_take_each_item_once() {
    let Some(python) = kazoo_python() else { return };
    for env in common::envs("kazoo-queue-race").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
        for locking in [false, true] {
            let path = if locking { "/race-locking" } else { "/race" };
            let items: Vec<String> = (0..60).map(|i| format!("item-{i}")).collect();
            if locking {
                LockingQueue::new(&fw, path).put_all(items.iter().map(|i| i.clone().into_bytes()), 100).await.unwrap();
            } else {
                for item in &items {
                    Queue::new(&fw, path).put(item.clone().into_bytes(), 100).await.unwrap();
                }
            }
            let peer = KazooPeer::start(python, &env.connect_string()).expect("kazoo peer");
            let python_drains =
                tokio::spawn(ask(peer, json!({"op": "queue_drain", "path": path, "locking": locking, "timeout": 0.2})));
            // Ours start once kazoo's has taken something, so that they race.
            common::eventually("kazoo's consumer started", || async {
                let left =
                    if locking { LockingQueue::new(&fw, path).len().await } else { Queue::new(&fw, path).len().await };
                left.unwrap() < items.len()
            })
            .await;
            let rust_drains = (0..2).map(|_| {
                let fw = fw.clone();
                tokio::spawn(async move {
                    let mut taken = Vec::new();
                    if locking {
                        let queue = LockingQueue::new(&fw, path);
                        while let Some(entry) = in_time(queue.get_timeout(Duration::ZERO).await) {
                            let value = String::from_utf8(entry.value().to_vec()).unwrap();
                            if entry.consume().await.unwrap() {
                                taken.push(value);
                            }
                        }
                    } else {
                        let queue = Queue::new(&fw, path);
                        while let Some(value) = queue.get().await.unwrap() {
                            taken.push(String::from_utf8(value.to_vec()).unwrap());
                        }
                    }
                    taken
                })
            });
            let mut all = Vec::new();
            for drain in rust_drains.collect::<Vec<_>>() {
                all.extend(drain.await.unwrap());
            }
            let rust_count = all.len();
            let (peer, answer) = python_drains.await.unwrap();
            assert!(answer.get("error").is_none(), "{answer}");
            for value in answer["values"].as_array().unwrap() {
                all.push(value.as_str().unwrap().to_owned());
            }
            eprintln!("locking {locking}: Rust took {rust_count}, kazoo {}", all.len() - rust_count);
            all.sort();
            let mut expected = items.clone();
            expected.sort();
            assert_eq!(all, expected, "each item exactly once");
            drop(peer);
        }
        fw.close().await;
    }
}

/// What a `*_timeout` get gave: the entry, or `None` when the time ran out; any other error fails.
fn in_time<T>(got: corral_recipes::Result<T>) -> Option<T> {
    match got {
        Ok(entry) => Some(entry),
        Err(Error::TimedOut { .. }) => None,
        Err(e) => panic!("get: {e}"),
    }
}
