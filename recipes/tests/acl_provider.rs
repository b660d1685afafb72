//! Recipes on an ensemble where `world:anyone` may only read: with an `AclProvider` on the
//! framework, every node the recipes make is the creator's (and readable by anyone), the
//! recipes work (a tree cache, a selector, a group member and a counter among them), and a
//! stranger can neither delete a lock node nor jump a queue; over TLS too,
//! against a real ZooKeeper's `secureClientPort`.

#[path = "../../core/tests/certs/mod.rs"]
mod certs;
mod common;

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use corral_recipes::atomic::DistributedAtomicLong;
use corral_recipes::cache::{Cache, CacheEvent};
use corral_recipes::discovery::{ServiceDiscovery, ServiceInstance};
use corral_recipes::double_barrier::DistributedDoubleBarrier;
use corral_recipes::group_member::GroupMember;
use corral_recipes::leader_latch::LeaderLatch;
use corral_recipes::leader_selector::{LeaderSelector, Leadership};
use corral_recipes::lock::Mutex;
use corral_recipes::persistent_node::PersistentNode;
use corral_recipes::queue::DistributedQueue;
use corral_recipes::read_write_lock::ReadWriteLock;
use corral_recipes::semaphore::SemaphoreV2;
use corral_recipes::shared_count::SharedCount;
use corral_recipes::{
    Acl, AclProvider, Client, ClientTls, CreateMode, ErrorCode, Framework, FrameworkBuilder, Id, Perms, RetryNTimes,
};
use futures::StreamExt;

#[derive(Debug)]
struct OwnerWritesWorldReads;

impl AclProvider for OwnerWritesWorldReads {
    fn default_acl(&self) -> Vec<Acl> {
        vec![Acl::new(Perms::ALL, Id::authenticated()), Acl::new(Perms::READ, Id::anyone())]
    }
}

/// Every node below `root`, breadth first.
async fn all_nodes(client: &Client, root: &str) -> Vec<String> {
    let (mut out, mut todo) = (Vec::new(), VecDeque::from([root.to_owned()]));
    while let Some(path) = todo.pop_front() {
        for child in client.get_children(&path).await.unwrap_or_default() {
            let child = if path == "/" { format!("/{child}") } else { format!("{path}/{child}") };
            todo.push_back(child.clone());
            out.push(child);
        }
    }
    out
}

/// A framework with the provider's ACL and a digest login, as `builder` connects it.
fn secured(builder: FrameworkBuilder) -> Framework {
    builder
        .session_timeout(Duration::from_secs(4))
        .retry_policy(RetryNTimes::new(20, Duration::from_millis(50)))
        .digest_auth("app", "secret")
        .acl_provider(OwnerWritesWorldReads)
        .start()
        .unwrap()
}

/// Every recipe's basic flow under `/app` through `fw`; `observer` (another client, no login)
/// checks the ACLs of what they made.
async fn recipes_with_acls(fw: Framework, observer: Client) {
    fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
    // The application's root: only the application may write below it.
    fw.create("/app", "", CreateMode::Persistent).await.unwrap();
    // A tree cache over all of it: it sees what the recipes make, through the same ACLs.
    let (cache, mut events) = Cache::builder(&fw, "/app").start_with_events();
    cache.wait_initialized(Duration::from_secs(10)).await.unwrap();

    let guard = Mutex::new(&fw, "/app/locks/job").acquire().await.unwrap();
    let lease = SemaphoreV2::new(&fw, "/app/sem", 2).acquire().await.unwrap();
    let latch = LeaderLatch::start(&fw, "/app/election", "me");
    latch.await_leadership_timeout(Duration::from_secs(10)).await.unwrap();
    let node = PersistentNode::start(&fw, "/app/members/me", CreateMode::Ephemeral, "up");
    node.wait_for_initial_create(Duration::from_secs(10)).await.unwrap();
    let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/app/services");
    discovery.register(ServiceInstance::builder("api").id("i1").port(8080).build()).await.unwrap();
    let queue: DistributedQueue = DistributedQueue::new(&fw, "/app/queue");
    queue.put(&Bytes::from("job-1")).await.unwrap();
    let count = SharedCount::start(&fw, "/app/count", 1).await.unwrap();
    assert!(count.try_set_count(&count.versioned_count(), 2).await.unwrap());
    let barrier = DistributedDoubleBarrier::new(&fw, "/app/barrier", 1);
    barrier.enter().await.unwrap();
    // A downgrade's read node is made in a multi of its own: the provider's ACL too.
    let rw = ReadWriteLock::new(&fw, "/app/rw");
    let read = rw.downgrade(rw.write_lock().acquire().await.unwrap()).await.unwrap();
    let selector = LeaderSelector::start(&fw, "/app/scheduler", "me", false, |l: Leadership| async move {
        l.lost().await;
    });
    selector.leadership().wait_for(|leading| *leading).await.unwrap();
    let member = GroupMember::start(&fw, "/app/group", "me", "up");
    member.wait_for_membership(Duration::from_secs(10)).await.unwrap();
    let hits = DistributedAtomicLong::new(&fw, "/app/hits", RetryNTimes::new(10, Duration::from_millis(10)));
    assert!(hits.increment().await.unwrap().succeeded);
    // The cache has seen the lock's node and the member's.
    let wanted = [guard.path().to_owned(), "/app/group/me".to_owned()];
    tokio::time::timeout(Duration::from_secs(10), async {
        while !wanted.iter().all(|p| cache.get(p).is_some()) {
            let event: CacheEvent = events.next().await.expect("the cache's events ended");
            drop(event);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the cache never saw {wanted:?}"));

    // Everything the recipes made has the provider's ACL.
    let nodes = all_nodes(&observer, "/app").await;
    assert!(nodes.len() >= 10, "{nodes:?}");
    for path in &nodes {
        let (acl, _) = observer.get_acl(path).await.unwrap();
        assert!(
            acl.iter().all(|a| a.id != Id::anyone() || a.perms == Perms::READ),
            "{path} is writable by anyone: {acl:?}"
        );
    }
    // A stranger reads, but cannot take the lock from its holder or put into the queue.
    assert!(observer.exists(guard.path()).await.unwrap().is_some());
    let err = observer.delete(guard.path(), None).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NoAuth);
    let err = observer.create("/app/queue/queue-x", "", CreateMode::PersistentSequential).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NoAuth);

    // And the recipes run to their end.
    let mut consumer = queue.consumer();
    let message = consumer.next_message().await.unwrap();
    assert_eq!(&message.items()[0][..], b"job-1");
    message.ack().await.unwrap();
    barrier.leave().await.unwrap();
    read.release().await.unwrap();
    selector.close().await;
    member.close().await;
    guard.release().await.unwrap();
    lease.release().await.unwrap();
    latch.close().await;
    node.close().await;
    discovery.close().await;
    drop(count);
    cache.close().await;
    observer.close().await;
    fw.close().await;
}

#[tokio::test]
async fn recipes_work_where_the_world_may_only_read() {
    for env in common::envs("acl-provider").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = secured(Framework::builder(env.connect_string()));
        recipes_with_acls(fw, env.client().await).await;
    }
}

/// The same over TLS, against a real ZooKeeper 3.8's Netty `secureClientPort` (the observer
/// on its plain port). Skips (or fails under `CI=true`) without Java and Debian's ZooKeeper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipes_work_over_tls_against_a_real_zookeeper() {
    let ca = certs::Ca::new("test CA");
    let Some((zk, dir)) = certs::zookeeper_with_tls(&ca, "zk-tls-recipes", "none") else { return };
    let tls = ClientTls::builder().ca_pem(&ca.pem).build().unwrap();
    let fw = secured(Framework::builder(zk.secure_addr().unwrap().to_string()).tls(tls));
    let observer = Client::connect(&zk.addr().to_string()).await.unwrap();
    recipes_with_acls(fw, observer).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_namespace_is_created_with_the_providers_acl() {
    for env in common::envs("acl-namespace").await {
        let fw = Framework::builder(env.connect_string())
            .namespace("app/ns")
            .digest_auth("app", "secret")
            .acl_provider(OwnerWritesWorldReads)
            .start()
            .unwrap();
        fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
        let observer = env.client().await;
        for path in ["/app", "/app/ns"] {
            let (acl, _) = observer.get_acl(path).await.unwrap();
            assert!(
                acl.iter().all(|a| a.id != Id::anyone() || a.perms == Perms::READ),
                "{path} is writable by anyone: {acl:?}"
            );
        }
        let err = observer.create("/app/ns/x", "", CreateMode::Persistent).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::NoAuth);
        observer.close().await;
        fw.close().await;
    }
}
