//! The recipe-aware commands on nodes our recipes wrote (Curator's layouts).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{T, client, corral, corral_json, framework, hex, server, until_children};
use corral_recipes::barrier::DistributedBarrier;
use corral_recipes::discovery::{ServiceDiscovery, ServiceInstance};
use corral_recipes::leader_latch::LeaderLatch;
use corral_recipes::lock::Mutex;
use corral_recipes::queue::{DistributedQueue, SimpleDistributedQueue};
use corral_recipes::read_write_lock::ReadWriteLock;
use corral_recipes::semaphore::SemaphoreV2;
use corral_recipes::shared_count::SharedCount;
use corral_recipes::{CreateMode, RetryNTimes, atomic::DistributedAtomicLong};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_shows_the_holder_and_the_waiters_in_order() {
    let (_server, zk) = server().await;
    let holder_fw = framework(&zk);
    let guard = Mutex::new(&holder_fw, "/locks/jobs").acquire().await.unwrap();
    let mut waiters = Vec::new();
    let mut waiter_sessions = Vec::new();
    let mut frameworks = Vec::new();
    for _ in 0..2 {
        let fw = framework(&zk);
        let observer = client(&zk).await;
        let before = observer.get_children("/locks/jobs").await.unwrap().len();
        let mutex = Mutex::new(&fw, "/locks/jobs");
        waiters.push(tokio::spawn(async move { mutex.acquire().await }));
        until_children(&observer, "/locks/jobs", before + 1).await;
        waiter_sessions.push(hex(fw.client().session_id()));
        observer.close().await;
        frameworks.push(fw);
    }

    let doc = corral_json(&zk, &["locks", "/locks/jobs"]);
    assert_eq!(
        (doc["kind"].as_str(), doc["holders"].as_u64(), doc["waiters"].as_u64()),
        (Some("mutex"), Some(1), Some(2))
    );
    let contenders = doc["contenders"].as_array().unwrap();
    let roles: Vec<&str> = contenders.iter().map(|c| c["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["holder", "waiter", "waiter"]);
    let holder_node = guard.path().rsplit('/').next().unwrap();
    assert_eq!(contenders[0]["node"], holder_node);
    assert_eq!(contenders[0]["session_id"].as_str(), Some(hex(guard.session_id()).as_str()));
    let sessions: Vec<&str> = contenders[1..].iter().map(|c| c["session_id"].as_str().unwrap()).collect();
    assert_eq!(sessions, waiter_sessions.iter().map(String::as_str).collect::<Vec<_>>(), "waiters in arrival order");
    assert_eq!(contenders[1]["waits_on"], contenders[0]["node"]);
    assert_eq!(contenders[2]["waits_on"], contenders[1]["node"]);
    for c in contenders {
        assert!(c["node"].as_str().unwrap().starts_with("_c_") && c["protected_id"].is_string(), "{c}");
        assert!(c["client_address"].as_str().unwrap().starts_with("127.0.0.1:"), "address from cons: {c}");
        assert!(c["since_ms"].as_i64().unwrap() > 0);
    }

    let text = corral(&zk, &["locks", "/locks/jobs"]).stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "/locks/jobs  mutex  held by 1, 2 waiting", "{text}");
    assert!(lines[1].starts_with("#  ROLE    TYPE  NODE"), "{text}");
    assert!(lines[2].starts_with("0  holder  lock  _c_") && lines[2].contains(&hex(guard.session_id())), "{text}");
    assert!(lines[3].starts_with("1  waiter  lock  _c_"), "{text}");
    assert_eq!(lines.len(), 5);

    guard.release().await.unwrap();
    let first = tokio::time::timeout(T, waiters.remove(0)).await.unwrap().unwrap().unwrap();
    let doc = corral_json(&zk, &["locks", "/locks/jobs"]);
    let holder = hex(first.session_id());
    assert_eq!(doc["contenders"][0]["session_id"].as_str(), Some(holder.as_str()), "the first waiter holds now");
    assert_eq!(doc["waiters"], 1);
    first.release().await.unwrap();
    holder_fw.close().await;
    for fw in frameworks {
        fw.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_write_locks_and_semaphores() {
    let (_server, zk) = server().await;
    let (a, b) = (framework(&zk), framework(&zk));
    let observer = client(&zk).await;
    let read = ReadWriteLock::new(&a, "/rw").read_lock().acquire().await.unwrap();
    let writer = ReadWriteLock::new(&b, "/rw");
    let waiting = tokio::spawn(async move { writer.write_lock().acquire().await.map(|g| g.session_id()) });
    until_children(&observer, "/rw", 2).await;
    let doc = corral_json(&zk, &["locks", "/rw"]);
    assert_eq!(doc["kind"], "read_write_lock");
    let c = doc["contenders"].as_array().unwrap();
    let seen: Vec<(&str, &str)> =
        c.iter().map(|c| (c["lock_type"].as_str().unwrap(), c["role"].as_str().unwrap())).collect();
    assert_eq!(seen, [("read", "holder"), ("write", "waiter")]);
    assert_eq!(c[1]["waits_on"], c[0]["node"]);
    read.release().await.unwrap();
    tokio::time::timeout(T, waiting).await.unwrap().unwrap().unwrap();

    let first = SemaphoreV2::new(&a, "/sem", 2).acquire().await.unwrap();
    let second = SemaphoreV2::new(&b, "/sem", 2).acquire().await.unwrap();
    let doc = corral_json(&zk, &["locks", "/sem", "--max-leases", "2"]);
    assert_eq!(
        (doc["kind"].as_str(), doc["holders"].as_u64(), doc["waiters"].as_u64()),
        (Some("semaphore"), Some(2), Some(0))
    );
    let sessions: Vec<&str> =
        doc["contenders"].as_array().unwrap().iter().map(|c| c["session_id"].as_str().unwrap()).collect();
    assert_eq!(sessions, [hex(a.client().session_id()), hex(b.client().session_id())]);
    let text = corral(&zk, &["locks", "/sem"]).stdout;
    assert!(text.starts_with("/sem  semaphore  2 leases, 0 acquiring (pass --max-leases N"), "{text}");
    first.release().await.unwrap();
    second.release().await.unwrap();
    observer.close().await;
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_shows_the_latch_participants_in_order() {
    let (_server, zk) = server().await;
    let observer = client(&zk).await;
    let mut latches = Vec::new();
    let mut frameworks = Vec::new();
    for (i, id) in ["alpha", "beta", "gamma"].into_iter().enumerate() {
        let fw = framework(&zk);
        latches.push(LeaderLatch::start(&fw, "/election", id));
        frameworks.push(fw);
        until_children(&observer, "/election", i + 1).await;
    }
    latches[0].await_leadership_timeout(T).await.unwrap();
    let doc = corral_json(&zk, &["leader", "/election"]);
    assert_eq!((doc["kind"].as_str(), doc["leader"].as_str()), (Some("leader_latch"), Some("alpha")));
    let participants = doc["participants"].as_array().unwrap();
    let ids: Vec<(&str, bool)> =
        participants.iter().map(|p| (p["id"].as_str().unwrap(), p["is_leader"].as_bool().unwrap())).collect();
    assert_eq!(ids, [("alpha", true), ("beta", false), ("gamma", false)]);
    assert_eq!(participants[0]["session_id"].as_str(), Some(hex(frameworks[0].client().session_id()).as_str()));
    assert!(participants[0]["node"].as_str().unwrap().contains("-latch-"));

    let text = corral(&zk, &["leader", "/election"]).stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "/election  leader-latch  leader \"alpha\", 3 participants");
    assert!(lines[2].starts_with("0  leader    alpha"), "{text}");
    assert!(lines[3].starts_with("1  follower  beta"), "{text}");

    latches[0].close().await;
    latches[1].await_leadership_timeout(T).await.unwrap();
    assert_eq!(corral_json(&zk, &["leader", "/election"])["leader"], "beta");
    for latch in &latches[1..] {
        latch.close().await;
    }
    for fw in frameworks {
        fw.close().await;
    }
    observer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_lists_curator_instances() {
    let (_server, zk) = server().await;
    let fw = framework(&zk);
    let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    let api = ServiceInstance::builder("api")
        .id("api-1")
        .address("10.0.0.5")
        .port(8080)
        .ssl_port(8443)
        .payload(serde_json::json!({"zone": "a"}))
        .build();
    let registered_at = api.registration_time_utc;
    discovery.register(api).await.unwrap();
    discovery
        .register(ServiceInstance::builder("worker").id("w-1").address("10.0.0.6").port(9090).build())
        .await
        .unwrap();

    let doc = corral_json(&zk, &["services", "/services"]);
    assert_eq!(doc["services"], serde_json::json!(["api", "worker"]));
    let api = &doc["instances"][0];
    assert_eq!((api["service"].as_str(), api["id"].as_str()), (Some("api"), Some("api-1")));
    assert_eq!(
        (api["address"].as_str(), api["port"].as_i64(), api["ssl_port"].as_i64()),
        (Some("10.0.0.5"), Some(8080), Some(8443))
    );
    assert_eq!(api["payload"], serde_json::json!({"zone": "a"}));
    assert_eq!(api["registration_time_ms"].as_i64(), Some(registered_at));
    assert_eq!(api["service_type"], "DYNAMIC");
    assert_eq!(api["session_id"].as_str(), Some(hex(fw.client().session_id()).as_str()));

    let only = corral_json(&zk, &["services", "/services", "worker"]);
    assert_eq!(only["instances"].as_array().unwrap().len(), 1);
    assert_eq!(only["instances"][0]["port"], 9090);
    let text = corral(&zk, &["services", "/services"]).stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("SERVICE  ID     ADDRESS   PORT  SSL   TYPE"), "{text}");
    assert!(lines[1].starts_with("api      api-1  10.0.0.5  8080  8443  DYNAMIC"), "{text}");
    assert!(lines[2].starts_with("worker   w-1    10.0.0.6  9090  -     DYNAMIC"), "{text}");

    let missing = corral(&zk, &["services", "/services", "nope"]);
    assert_eq!(missing.code, 3, "{missing:?}");
    discovery.close().await;
    fw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_depth_age_and_lock_safe_items_in_flight() {
    let (_server, zk) = server().await;
    let fw = framework(&zk);
    let queue = DistributedQueue::new(&fw, "/queues/jobs").lock_path("/queues/jobs-locks");
    queue.put(&Bytes::from("job-1")).await.unwrap();
    queue.put_multi(&[Bytes::from("job-2"), Bytes::from("job-3")]).await.unwrap();
    queue.put(&Bytes::from("job-4")).await.unwrap();

    let doc = corral_json(&zk, &["queue", "/queues/jobs"]);
    assert_eq!(
        (doc["kind"].as_str(), doc["depth"].as_u64(), doc["items"].as_u64()),
        (Some("distributed_queue"), Some(3), Some(4))
    );
    assert!(doc["oldest_item_age_ms"].as_i64().unwrap() >= 0);
    let nodes: Vec<&str> = doc["queue"].as_array().unwrap().iter().map(|i| i["node"].as_str().unwrap()).collect();
    assert_eq!(nodes, ["queue-0000000000", "queue-0000000001", "queue-0000000002"]);

    // A consumer takes the first message and has not acknowledged it yet.
    let other = framework(&zk);
    let mut consumer = DistributedQueue::new(&other, "/queues/jobs").lock_path("/queues/jobs-locks").consumer();
    let message = tokio::time::timeout(T, consumer.next_message()).await.unwrap().unwrap();
    let doc = corral_json(&zk, &["queue", "/queues/jobs", "--lock-path", "/queues/jobs-locks"]);
    let in_flight = doc["in_flight"].as_array().unwrap();
    assert_eq!(in_flight.len(), 1, "{doc}");
    assert_eq!(in_flight[0]["node"].as_str(), message.path().rsplit('/').next());
    assert_eq!(in_flight[0]["session_id"].as_str(), Some(hex(other.client().session_id()).as_str()));
    let text = corral(&zk, &["queue", "/queues/jobs", "--lock-path", "/queues/jobs-locks"]).stdout;
    assert!(text.starts_with("/queues/jobs  distributed-queue\n"), "{text}");
    assert!(text.contains("depth:") && text.contains("in flight:") && text.contains("IN FLIGHT"), "{text}");
    message.ack().await.unwrap();
    drop(consumer);

    let simple = SimpleDistributedQueue::new(&fw, "/queues/simple");
    simple.offer("a").await.unwrap();
    simple.offer("b").await.unwrap();
    let doc = corral_json(&zk, &["queue", "/queues/simple"]);
    assert_eq!(
        (doc["kind"].as_str(), doc["depth"].as_u64(), doc["items"].as_u64()),
        (Some("simple_queue"), Some(2), Some(2))
    );
    other.close().await;
    fw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_barriers() {
    let (_server, zk) = server().await;
    let fw = framework(&zk);
    let count = SharedCount::start(&fw, "/counters/shared", 42).await.unwrap();
    let doc = corral_json(&zk, &["counter", "/counters/shared"]);
    assert_eq!(
        (doc["kind"].as_str(), doc["value"].as_i64(), doc["data_hex"].as_str()),
        (Some("shared_count"), Some(42), Some("0000002a"))
    );
    let text = corral(&zk, &["counter", "/counters/shared"]).stdout;
    assert!(text.starts_with("/counters/shared  looks like a SharedCount (4-byte big-endian int)\nvalue:"), "{text}");
    count.close().await;

    let long = DistributedAtomicLong::new(&fw, "/counters/long", RetryNTimes::new(5, Duration::from_millis(10)));
    long.add(7_000_000_000).await.unwrap();
    let doc = corral_json(&zk, &["counter", "/counters/long"]);
    assert_eq!((doc["kind"].as_str(), doc["value"].as_i64()), (Some("distributed_atomic_long"), Some(7_000_000_000)));

    let observer = client(&zk).await;
    observer.create("/counters/text", "hello", CreateMode::Persistent).await.unwrap();
    assert_eq!(corral_json(&zk, &["counter", "/counters/text"])["kind"], "unknown");

    let barrier = DistributedBarrier::new(&fw, "/barrier");
    barrier.set_barrier().await.unwrap();
    let doc = corral_json(&zk, &["barrier", "/barrier"]);
    assert_eq!((doc["kind"].as_str(), doc["state"].as_str()), (Some("barrier"), Some("set")));
    barrier.remove_barrier().await.unwrap();
    let doc = corral_json(&zk, &["barrier", "/barrier"]);
    assert_eq!((doc["state"].as_str(), doc["exists"].as_bool()), (Some("removed"), Some(false)));
    observer.close().await;
    fw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kazoo_locks_and_a_path_shared_with_curator() {
    let (_server, zk) = server().await;
    let kazoo = client(&zk).await;
    kazoo.create("/kz", "", CreateMode::Persistent).await.unwrap();
    // kazoo's names: uuid4().hex + "__lock__" / "__rlock__" + sequence, the identifier as data.
    let names = ["a1b2c3d4e5f60718293a4b5c6d7e8f90__rlock__", "0f1e2d3c4b5a69788796a5b4c3d2e1f0__lock__"];
    for (name, id) in names.iter().zip(["reader", "writer"]) {
        kazoo.create(&format!("/kz/{name}"), id, CreateMode::EphemeralSequential).await.unwrap();
    }
    let doc = corral_json(&zk, &["locks", "/kz"]);
    assert_eq!(doc["kind"], "kazoo_read_write_lock");
    let seen: Vec<(&str, &str, &str)> = doc["contenders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["lock_type"].as_str().unwrap(), c["role"].as_str().unwrap(), c["data"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, [("read", "holder", "reader"), ("write", "waiter", "writer")]);

    // A Curator contender on the same path: both sides may think they hold it.
    let fw = framework(&zk);
    let guard = Mutex::new(&fw, "/kz").try_acquire().await.unwrap();
    let run = corral(&zk, &["locks", "/kz"]);
    assert!(
        run.stdout.lines().nth(1).unwrap().starts_with("warning: Curator and kazoo contenders share this path"),
        "{run:?}"
    );
    assert_eq!(corral_json(&zk, &["locks", "/kz"])["warnings"].as_array().unwrap().len(), 1);
    drop(guard);
    fw.close().await;

    // kazoo's Election is a Lock whose data is the identifier.
    kazoo.create("/kz-election", "", CreateMode::Persistent).await.unwrap();
    for id in ["first", "second"] {
        kazoo
            .create("/kz-election/9a8b7c6d5e4f30211203f4e5d6c7b8a9__lock__", id, CreateMode::EphemeralSequential)
            .await
            .unwrap();
    }
    let doc = corral_json(&zk, &["leader", "/kz-election"]);
    assert_eq!((doc["kind"].as_str(), doc["leader"].as_str()), (Some("kazoo_election"), Some("first")));
    kazoo.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_delay_and_id_queues_in_consumer_order() {
    use corral_recipes::queue::{DistributedDelayQueue, DistributedIdQueue, DistributedPriorityQueue};
    let (_server, zk) = server().await;
    let fw = framework(&zk);
    let priority = DistributedPriorityQueue::new(&fw, "/q/priority");
    for (item, p) in [("low", 5), ("urgent", -3), ("normal", 0)] {
        priority.put(&Bytes::from(item), p).await.unwrap();
    }
    let doc = corral_json(&zk, &["queue", "/q/priority"]);
    assert_eq!(doc["kind"], "priority_queue");
    let order: Vec<i64> = doc["queue"].as_array().unwrap().iter().map(|i| i["priority"].as_i64().unwrap()).collect();
    assert_eq!(order, [-3, 0, 5], "lowest priority value first, as consumers take them");

    let delay = DistributedDelayQueue::new(&fw, "/q/delay");
    delay.put_after(&Bytes::from("later"), Duration::from_secs(3600)).await.unwrap();
    delay.put(&Bytes::from("now"), std::time::SystemTime::now() - Duration::from_secs(1)).await.unwrap();
    let doc = corral_json(&zk, &["queue", "/q/delay"]);
    assert_eq!(
        (doc["kind"].as_str(), doc["depth"].as_u64(), doc["due"].as_u64()),
        (Some("delay_queue"), Some(2), Some(1))
    );
    let first_due = doc["queue"][0]["due_ms"].as_i64().unwrap();
    assert!(first_due < doc["queue"][1]["due_ms"].as_i64().unwrap(), "the due item comes first: {doc}");

    let ids = DistributedIdQueue::new(&fw, "/q/ids");
    ids.put(&Bytes::from("x"), "order-17").await.unwrap();
    let doc = corral_json(&zk, &["queue", "/q/ids"]);
    assert_eq!((doc["kind"].as_str(), doc["queue"][0]["id"].as_str()), (Some("id_queue"), Some("order-17")));
    fw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_barrier_gathering_then_entered() {
    use corral_recipes::double_barrier::DistributedDoubleBarrier;
    let (_server, zk) = server().await;
    let observer = client(&zk).await;
    let mut members = Vec::new();
    for n in 1..=3 {
        let fw = framework(&zk);
        let barrier = DistributedDoubleBarrier::new(&fw, "/phase", 3);
        members.push(tokio::spawn(async move { barrier.enter().await.map(|()| (fw, barrier)) }));
        if n < 3 {
            until_children(&observer, "/phase", n).await;
            let doc = corral_json(&zk, &["barrier", "/phase"]);
            assert_eq!((doc["kind"].as_str(), doc["state"].as_str()), (Some("double_barrier"), Some("gathering")));
            assert_eq!(doc["members"].as_array().unwrap().len(), n);
        }
    }
    let mut entered = Vec::new();
    for member in members {
        entered.push(tokio::time::timeout(T, member).await.unwrap().unwrap().unwrap());
    }
    let doc = corral_json(&zk, &["barrier", "/phase"]);
    assert_eq!((doc["state"].as_str(), doc["ready"].as_bool()), (Some("entered"), Some(true)));
    assert_eq!(doc["members"].as_array().unwrap().len(), 3);
    let text = corral(&zk, &["barrier", "/phase"]).stdout;
    assert!(text.starts_with("/phase  double barrier entered: 3 members inside"), "{text}");
    for (fw, _) in entered {
        fw.close().await;
    }
    observer.close().await;
}
