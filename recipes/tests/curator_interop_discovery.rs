//! Interop with real Curator 5.4 (Debian's `libcurator-discovery-java` and
//! `libcurator-recipes-java`, Java 17): a Java process using Curator's own `ServiceDiscovery`
//! (default `JsonInstanceSerializer` over a `Map` payload), `ServiceCache`, `ServiceProvider` and
//! `InterProcessReadWriteLock` shares one registry and one read-write lock with this crate's
//! recipes, against the embedded server and (when available) a real ZooKeeper.
//!
//! The Java side is `tests/java/CuratorDiscoveryPeer.java`, compiled with `javac` once per test
//! binary (cached under Cargo's target tmp dir, keyed by the sources and the classpath) and
//! driven over stdin/stdout, one JVM per test, by `common::java_peer`. Without Java, javac or the
//! jars the tests skip with a `skipping:` line on stderr, except under `CI=true` (or `1`), where
//! they fail.

mod common;
#[path = "common/settle.rs"]
mod settle;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use corral_recipes::discovery::{
    ProviderStrategy, ServiceCacheEvent, ServiceDiscovery, ServiceInstance, ServiceProvider, ServiceType,
};
use corral_recipes::lock::MutexGuard;
use corral_recipes::read_write_lock::ReadWriteLock;
use corral_recipes::{CreateMode, Framework};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use common::java_peer::{self, Java, Peer, PeerSpec, T, assert_curator_layout, name_of, now_micros, unhex, within};

/// How long "still blocked" is watched for.
const BLOCKED: Duration = Duration::from_millis(400);
const SPEC: PeerSpec = PeerSpec {
    class: "CuratorDiscoveryPeer",
    jars: &[
        "curator-x-discovery.jar",
        "curator-recipes.jar",
        "curator-framework.jar",
        "curator-client.jar",
        "zookeeper.jar",
        "zookeeper-jute.jar",
        "guava.jar",
        "slf4j-api.jar",
        "jackson-databind.jar",
        "jackson-core.jar",
        "jackson-annotations.jar",
    ],
    packages: "libcurator-discovery-java libcurator-recipes-java zookeeper libjackson2-databind-java libslf4j-java",
    tests: "Curator discovery/read-write-lock interop tests",
    cache: "curator-discovery-peer",
};

/// The compiled peer, or `None` (after a `skipping:` line) when Java or the jars are missing.
fn java() -> Option<&'static Java> {
    java_peer::java(&SPEC)
}

// ------------------------------------------------------------------------------------------
// 1. Service discovery

/// A typed payload. `deny_unknown_fields`: Curator's `@class` must not reach it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Zone {
    zone: String,
    weight: u32,
}

/// An instance as the peer describes one (`describe` in the Java file), built from Corral's view.
fn describe<T: Serialize>(i: &ServiceInstance<T>) -> Value {
    json!({
        "name": i.name,
        "id": i.id,
        "address": i.address,
        "port": i.port,
        "sslPort": i.ssl_port,
        "payload": serde_json::to_value(&i.payload).expect("payload"),
        "registrationTimeUTC": i.registration_time_utc,
        "serviceType": serde_json::to_value(i.service_type).expect("service type"),
        "enabled": i.is_enabled(),
        "uri": i.build_uri(),
    })
}

fn describe_all<T: Serialize>(instances: &[ServiceInstance<T>]) -> Value {
    Value::Array(instances.iter().map(describe).collect())
}

fn ids<T>(instances: &[ServiceInstance<T>]) -> Vec<String> {
    instances.iter().map(|i| i.id.clone()).collect()
}

/// Waits for the next cache event that `want` accepts (earlier ones are skipped).
async fn next_event<T, S>(events: &mut S, what: &str, want: impl Fn(&ServiceCacheEvent<T>) -> bool)
where
    S: Stream<Item = ServiceCacheEvent<T>> + Unpin,
{
    within(what, async {
        loop {
            let event = events.next().await.unwrap_or_else(|| panic!("cache events ended before: {what}"));
            if want(&event) {
                return;
            }
        }
    })
    .await;
}

/// Waits until Corral's provider offers exactly `want` (by id).
async fn provider_offers<T: DeserializeOwned + Clone + Send + Sync + 'static>(
    provider: &ServiceProvider<T>,
    want: &[&str],
) {
    common::eventually(&format!("Corral's provider offers {want:?}"), || async {
        ids(&provider.get_all_instances()) == want
    })
    .await;
}

/// Waits until Java's service cache `tag` reports exactly `want` (by id).
async fn java_cache_holds(peer: &mut Peer, tag: &str, want: &[&str]) {
    let deadline = Instant::now() + T;
    let head = format!("CACHE_CHANGED {tag}");
    loop {
        let line = peer.expect_within(&head, deadline.saturating_duration_since(Instant::now())).await;
        let got: Vec<String> = serde_json::from_str(&line[head.len() + 1..]).expect("ids");
        if got == want {
            return;
        }
    }
}

/// Waits until Java's provider `tag` offers exactly `want` (by id, from `getAllInstances`);
/// returns Curator's description of them.
async fn java_provider_offers(peer: &mut Peer, tag: &str, want: &[&str]) -> Value {
    let deadline = Instant::now() + T;
    loop {
        let provided = peer.query(&format!("provide {tag} 0"), &format!("PROVIDED {tag}")).await;
        let all = provided["all"].clone();
        let got: Vec<&str> = all.as_array().expect("all").iter().filter_map(|i| i["id"].as_str()).collect();
        if got == want {
            return all;
        }
        assert!(Instant::now() < deadline, "Curator's provider offers {got:?}, not {want:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn discovery_is_shared_with_curator() {
    let Some(java) = java() else { return };
    let mut peer = Peer::start(java).await;
    for env in common::envs("interop-discovery").await {
        eprintln!("-- against the {} server", env.kind);
        peer.connect(&env).await;
        peer.send("discovery /services");
        peer.expect("DISCOVERY_STARTED").await;
        curator_registers_corral_finds(&env, &mut peer).await;
        corral_registers_curator_finds(&env, &mut peer).await;
        peer.disconnect().await;
    }
    peer.quit().await;
}

/// Java registers (payloads carrying Jackson's `@class`); Corral's queries, caches and providers
/// (untyped and typed) see the same instances Curator sees, and follow Java's unregistrations.
async fn curator_registers_corral_finds(env: &common::Env, peer: &mut Peer) {
    let fw = env.framework();
    let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    let typed: ServiceDiscovery<Zone> = ServiceDiscovery::new(&fw, "/services");
    let cache = discovery.service_cache("java-svc");
    let mut events = cache.events();
    within("Corral's cache starts", cache.wait_initialized(T)).await.expect("cache");
    let provider = typed.provider("java-svc", ProviderStrategy::RoundRobin);
    let sticky = discovery.provider("java-svc", ProviderStrategy::Sticky);

    peer.send(
        r#"register java-svc j-1 10.0.0.1 8080 8443 DYNAMIC {scheme}://{address}:{port}/api {"zone":"a","weight":3}"#,
    );
    peer.expect("REGISTERED j-1").await;
    peer.send(
        r#"register java-svc j-2 10.0.0.2 8081 - STATIC {scheme}://{address}:{port}/{name}/{id}?ssl={ssl-port}&type={service-type}&t={registration-time-utc}&braces={[}{port}{]} {"zone":"b","weight":1}"#,
    );
    peer.expect("REGISTERED j-2").await;
    peer.send("register java-plain j-3 10.0.0.3 9000 - DYNAMIC - -");
    peer.expect("REGISTERED j-3").await;

    // What Curator wrote: its JSON with Jackson's type tag in the payload; DYNAMIC is an
    // ephemeral node, STATIC a persistent one.
    let observer = env.client().await;
    let (raw, stat) = observer.get_data("/services/java-svc/j-1").await.expect("j-1");
    let raw = String::from_utf8(raw.to_vec()).expect("UTF-8");
    eprintln!("   Curator wrote {raw}");
    assert!(raw.contains(r#""payload":{"@class":"#), "Curator's payload carries @class: {raw}");
    assert_ne!(stat.ephemeral_owner, 0, "DYNAMIC is ephemeral");
    let (_, stat) = observer.get_data("/services/java-svc/j-2").await.expect("j-2");
    assert_eq!(stat.ephemeral_owner, 0, "STATIC is persistent");

    // Queries: Corral reads exactly what Curator reads.
    let java_view = peer.query("instances java-svc", "INSTANCES java-svc").await;
    assert_eq!(java_view.as_array().map(Vec::len), Some(2), "Curator's own view: {java_view}");
    assert_eq!(discovery.query_for_names().await.unwrap(), ["java-plain", "java-svc"]);
    assert_eq!(peer.query("names", "NAMES").await, json!(["java-plain", "java-svc"]));
    let found = discovery.query_for_instances("java-svc").await.unwrap();
    assert_eq!(describe_all(&found), java_view, "Corral and Curator read the same instances");
    assert_eq!(found[0].payload, Some(json!({"zone": "a", "weight": 3})), "payload without @class");
    assert_eq!(found[0].build_uri().as_deref(), Some("https://10.0.0.1:8080/api"));
    let t = found[1].registration_time_utc;
    assert_eq!(
        found[1].build_uri(),
        Some(format!("http://10.0.0.2:8081/java-svc/j-2?ssl=&type=static&t={t}&braces={{8081}}")),
        "Curator's other uriSpec variables"
    );
    assert_eq!((found[0].service_type, found[1].service_type), (ServiceType::Dynamic, ServiceType::Static));
    let typed_found = typed.query_for_instances("java-svc").await.expect("typed payloads parse despite @class");
    let zones: Vec<Option<Zone>> = typed_found.iter().map(|i| i.payload.clone()).collect();
    assert_eq!(
        zones,
        [Some(Zone { zone: "a".into(), weight: 3 }), Some(Zone { zone: "b".into(), weight: 1 })],
        "typed payloads"
    );
    let plain = discovery.query_for_instance("java-plain", "j-3").await.unwrap().expect("j-3");
    assert_eq!(describe(&plain), peer.query("instances java-plain", "INSTANCES java-plain").await[0]);
    assert_eq!((plain.payload, plain.uri_spec, plain.ssl_port), (None, None, None));

    // The cache and the providers follow.
    for id in ["j-1", "j-2"] {
        next_event(&mut events, &format!("Added({id})"), |e| matches!(e, ServiceCacheEvent::Added(i) if i.id == id))
            .await;
    }
    let cached: Vec<ServiceInstance> = cache.instances().into_values().collect();
    assert_eq!(describe_all(&cached), java_view, "Corral's cache holds what Curator reads");
    within("the typed provider is ready", provider.wait_ready(T, 2)).await.expect("provider");
    provider_offers(&provider, &["j-1", "j-2"]).await;
    let picks: Vec<String> = (0..4).map(|_| provider.get_instance().expect("an instance").id).collect();
    assert!(picks.windows(2).all(|w| w[0] != w[1]), "round robin alternates: {picks:?}");
    assert_eq!(picks.iter().collect::<BTreeSet<_>>().len(), 2, "round robin: {picks:?}");
    assert!(provider.get_all_instances().iter().all(|i| i.payload.is_some()), "typed payloads in the provider");
    within("the sticky provider is ready", sticky.wait_ready(T, 2)).await.expect("provider");
    let first = sticky.get_instance().expect("an instance").id;
    assert!((0..5).all(|_| sticky.get_instance().map(|i| i.id) == Some(first.clone())), "sticky sticks");

    // Java updates: Corral's cache sees the new data.
    peer.send(
        r#"update java-svc j-1 10.0.0.9 8088 8443 DYNAMIC {scheme}://{address}:{port}/api {"zone":"a2","weight":4}"#,
    );
    peer.expect("UPDATED j-1").await;
    next_event(
        &mut events,
        "Updated(j-1)",
        |e| matches!(e, ServiceCacheEvent::Updated(i) if i.id == "j-1" && i.address.as_deref() == Some("10.0.0.9")),
    )
    .await;
    let java_view = peer.query("instances java-svc", "INSTANCES java-svc").await;
    let cached: Vec<ServiceInstance> = cache.instances().into_values().collect();
    assert_eq!(describe_all(&cached), java_view, "Corral's cache holds the update Curator reads");
    assert_eq!(cached[0].payload, Some(json!({"zone": "a2", "weight": 4})));
    common::eventually("the typed provider sees the update", || async {
        provider.get_all_instances().iter().any(|i| i.payload == Some(Zone { zone: "a2".into(), weight: 4 }))
    })
    .await;

    // Java unregisters, DYNAMIC and STATIC alike: Corral's cache and providers follow.
    peer.send("unregister j-1");
    peer.expect("UNREGISTERED j-1").await;
    next_event(&mut events, "Removed(j-1)", |e| matches!(e, ServiceCacheEvent::Removed(id) if id == "j-1")).await;
    assert_eq!(cache.instances().keys().collect::<Vec<_>>(), ["j-2"]);
    provider_offers(&provider, &["j-2"]).await;
    common::eventually("the sticky provider moves on", || async {
        sticky.get_instance().map(|i| i.id).as_deref() == Some("j-2")
    })
    .await;
    peer.send("unregister j-2");
    peer.expect("UNREGISTERED j-2").await;
    next_event(&mut events, "Removed(j-2)", |e| matches!(e, ServiceCacheEvent::Removed(id) if id == "j-2")).await;
    provider_offers(&provider, &[]).await;
    assert!(provider.get_instance().is_none());
    assert_eq!(observer.exists("/services/java-svc/j-2").await.unwrap(), None, "the STATIC node is gone");
    assert_eq!(discovery.query_for_instances("java-svc").await.unwrap(), []);
    peer.send("unregister j-3");
    peer.expect("UNREGISTERED j-3").await;

    provider.close().await;
    sticky.close().await;
    cache.close().await;
    observer.close().await;
    fw.close().await;
}

/// Corral registers (untyped and typed payloads, uriSpec, sslPort, DYNAMIC and STATIC, one
/// disabled); Curator's serializer accepts every node, Curator's queries, cache and provider see
/// the same fields, and follow Corral's unregistrations.
async fn corral_registers_curator_finds(env: &common::Env, peer: &mut Peer) {
    peer.send("cache jc rust-svc");
    let started = peer.expect("CACHE_STARTED jc").await;
    assert_eq!(started, "CACHE_STARTED jc []");
    peer.send("provider jp rust-svc round-robin");
    peer.expect("PROVIDER_STARTED jp").await;

    let fw = env.framework();
    let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    let typed: ServiceDiscovery<Zone> = ServiceDiscovery::new(&fw, "/services");
    let r1 = ServiceInstance::builder("rust-svc")
        .id("r-1")
        .address("10.1.0.1")
        .port(9090)
        .ssl_port(9443)
        .payload(json!({"zone": "c", "weight": 5, "tags": ["x", "y"], "nested": {"k": true}}))
        .uri_spec("{scheme}://{address}:{port}/api")
        .build();
    let r2 = ServiceInstance::builder("rust-svc")
        .id("r-2")
        .address("10.1.0.2")
        .port(9091)
        .payload(Zone { zone: "d".into(), weight: 2 })
        .service_type(ServiceType::Static)
        .uri_spec("{scheme}://{address}:{port}/{name}/{id}?ssl={ssl-port}")
        .build();
    let r3 = ServiceInstance::builder("rust-svc").id("r-3").address("10.1.0.3").port(9092).enabled(false).build();
    discovery.register(r1.clone()).await.expect("register r-1");
    typed.register(r2.clone()).await.expect("register r-2");
    discovery.register(r3.clone()).await.expect("register r-3");
    let mut expected = vec![describe(&r1), describe(&r2), describe(&r3)];

    // Corral's JSON: no @class, no `enabled` unless set.
    let observer = env.client().await;
    let raw = String::from_utf8(observer.get_data("/services/rust-svc/r-1").await.unwrap().0.to_vec()).unwrap();
    eprintln!("   Corral wrote {raw}");
    assert!(!raw.contains("@class") && !raw.contains("enabled"), "{raw}");

    // Curator's serializer accepts every node and reads every field; the node modes follow the
    // service types.
    for (value, (id, mode)) in expected.iter().zip([("r-1", "ephemeral"), ("r-2", "persistent"), ("r-3", "ephemeral")])
    {
        let path = format!("/services/rust-svc/{id}");
        let mut decoded = peer.query(&format!("decode {path}"), &format!("DECODED {path}")).await;
        assert_eq!(decoded.as_object_mut().and_then(|o| o.remove("mode")), Some(json!(mode)), "{id}'s node mode");
        assert_eq!(&decoded, value, "Curator's JsonInstanceSerializer reads {id} as Corral wrote it");
    }
    assert_eq!(expected[0]["serviceType"], "DYNAMIC");
    assert_eq!(expected[1]["serviceType"], "STATIC");
    assert_eq!(expected[0]["uri"], "https://10.1.0.1:9090/api", "Curator builds the URI from Corral's uriSpec");
    assert_eq!(expected[2]["enabled"], false);

    // Curator's queries, cache and provider (which leaves the disabled instance out).
    let names = peer.query("names", "NAMES").await;
    assert!(names.as_array().is_some_and(|n| n.contains(&json!("rust-svc"))), "{names}");
    assert_eq!(peer.query("instances rust-svc", "INSTANCES rust-svc").await, Value::Array(expected.clone()));
    java_cache_holds(peer, "jc", &["r-1", "r-2", "r-3"]).await;
    let all = java_provider_offers(peer, "jp", &["r-1", "r-2"]).await;
    assert_eq!(all, Value::Array(expected[..2].to_vec()), "Curator's provider skips the disabled r-3");
    let provided = peer.query("provide jp 4", "PROVIDED jp").await;
    let picks = provided["picks"].as_array().expect("picks");
    assert!(picks.windows(2).all(|w| w[0] != w[1]), "Curator's round robin alternates: {picks:?}");
    assert_eq!(
        picks.iter().filter_map(Value::as_str).collect::<BTreeSet<_>>().len(),
        2,
        "Curator's round robin: {picks:?}"
    );

    // Corral updates: Curator reads the new data.
    let r1 = ServiceInstance { port: Some(9099), payload: Some(json!({"zone": "c2"})), ..r1 };
    discovery.update(r1.clone()).await.expect("update r-1");
    expected[0] = describe(&r1);
    assert_eq!(peer.query("instances rust-svc", "INSTANCES rust-svc").await, Value::Array(expected.clone()));
    let path = "/services/rust-svc/r-1";
    let mut decoded = peer.query(&format!("decode {path}"), &format!("DECODED {path}")).await;
    assert_eq!(decoded.as_object_mut().and_then(|o| o.remove("mode")), Some(json!("ephemeral")));
    assert_eq!(decoded, expected[0]);
    let deadline = Instant::now() + T;
    while java_provider_offers(peer, "jp", &["r-1", "r-2"]).await[0] != expected[0] {
        assert!(Instant::now() < deadline, "Curator's provider never saw Corral's update");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Corral unregisters (DYNAMIC, then STATIC, then closes): Curator's cache and provider follow.
    discovery.unregister("r-1").await.expect("unregister r-1");
    java_cache_holds(peer, "jc", &["r-2", "r-3"]).await;
    expected.remove(0);
    assert_eq!(java_provider_offers(peer, "jp", &["r-2"]).await, json!([expected[0]]));
    typed.unregister("r-2").await.expect("unregister r-2");
    java_cache_holds(peer, "jc", &["r-3"]).await;
    assert_eq!(observer.exists("/services/rust-svc/r-2").await.unwrap(), None, "the STATIC node is gone");
    java_provider_offers(peer, "jp", &[]).await;
    assert_eq!(peer.query("provide jp 1", "PROVIDED jp").await, json!({"all": [], "picks": [null]}));
    discovery.close().await;
    java_cache_holds(peer, "jc", &[]).await;
    assert_eq!(peer.query("instances rust-svc", "INSTANCES rust-svc").await, json!([]));

    observer.close().await;
    fw.close().await;
}

// ------------------------------------------------------------------------------------------
// 2. Read-write lock

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_write_lock_is_shared_with_curator() {
    let Some(java) = java() else { return };
    let mut peer = Peer::start(java).await;
    for env in common::envs("interop-rwlock").await {
        eprintln!("-- against the {} server", env.kind);
        peer.connect(&env).await;
        readers_share_and_a_queued_curator_writer_holds_back_a_later_reader(&env, &mut peer).await;
        a_queued_corral_writer_holds_back_a_later_curator_reader(&env, &mut peer).await;
        writers_exclude_everyone(&env, &mut peer).await;
        peer.disconnect().await;
    }
    peer.quit().await;
}

#[derive(Debug, Clone)]
struct RwNode {
    name: String,
    protected: bool,
    data: String,
}

/// The children of `path` in Curator's read-write order (its read lock's participant nodes),
/// with Curator's verdict on whether each name is protected, and each node's data.
async fn curator_rw_nodes(peer: &mut Peer, path: &str) -> Vec<RwNode> {
    peer.send(&format!("rwnodes {path}"));
    let line = peer.expect(&format!("RWNODES {path}")).await;
    line.split(' ')
        .skip(2)
        .map(|entry| {
            let mut parts = entry.split(':');
            let name = parts.next().unwrap_or_default().to_owned();
            let protected = parts.next() == Some("true");
            let data = String::from_utf8_lossy(&unhex(parts.next().unwrap_or_default())).into_owned();
            RwNode { name, protected, data }
        })
        .collect()
}

/// Both libraries list the same contenders in the same order, with the expected data and kinds,
/// and every name is Curator's protected layout.
async fn same_queue(lock: &ReadWriteLock, peer: &mut Peer, path: &str, want: &[(&str, &str)]) -> Vec<String> {
    let rust_order = lock.read_lock().participant_nodes().await.expect("participants");
    assert_eq!(lock.write_lock().participant_nodes().await.expect("participants"), rust_order);
    let java_nodes = curator_rw_nodes(peer, path).await;
    let java_order: Vec<String> = java_nodes.iter().map(|n| n.name.clone()).collect();
    assert_eq!(java_order, rust_order, "Curator and Corral order the read-write lock queue alike");
    let got: Vec<(&str, &str)> = java_nodes
        .iter()
        .map(|n| (n.data.as_str(), if n.name.contains("__WRIT__") { "__WRIT__" } else { "__READ__" }))
        .collect();
    assert_eq!(got, want, "the queue (data, kind) in Curator's order");
    for node in &java_nodes {
        assert_curator_layout(&node.name, if node.name.contains("__WRIT__") { "__WRIT__" } else { "__READ__" });
        assert!(node.protected, "Curator's ProtectedUtils rejects {:?}", node.name);
    }
    // Sequence numbers increase along the queue.
    let seqs: Vec<u64> = java_order.iter().map(|n| n[n.len() - 10..].parse().expect("sequence")).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{java_order:?}");
    rust_order
}

/// A Java reader and a Rust reader hold together; a Java writer queues behind them and a later
/// Rust reader queues behind the writer (Curator's rule), until each one ahead releases.
async fn readers_share_and_a_queued_curator_writer_holds_back_a_later_reader(env: &common::Env, peer: &mut Peer) {
    const PATH: &str = "/rw";
    let (fw1, fw2) = (env.framework(), env.framework());
    let lock = ReadWriteLock::new(&fw1, PATH);
    let lock2 = ReadWriteLock::new(&fw2, PATH);

    peer.send(&format!("rw java-r1 {PATH} read"));
    let java_r1 = peer.expect("ACQUIRED java-r1").await;
    let rust_r1 = within("Corral reads while Curator reads", lock.read_lock().clone().with_data("rust-r1").acquire())
        .await
        .expect("read lock");
    assert!(peer.take("RELEASED").is_empty(), "Curator's reader still holds");
    assert!(rust_r1.is_valid());
    // Readers exclude writers, on either side.
    assert!(lock2.write_lock().try_acquire().await.unwrap().is_none(), "a Corral writer got in past two readers");

    peer.send(&format!("rw java-w1 {PATH} write"));
    common::eventually("Curator's writer queued", || async {
        lock.read_lock().participant_nodes().await.unwrap().len() == 3
    })
    .await;
    let late = lock2.read_lock().clone().with_data("rust-r2");
    let late_reader = tokio::spawn(async move { late.acquire().await });
    common::eventually("the late Corral reader queued", || async {
        lock.read_lock().participant_nodes().await.unwrap().len() == 4
    })
    .await;
    let order = same_queue(
        &lock,
        peer,
        PATH,
        &[("java-r1", "__READ__"), ("rust-r1", "__READ__"), ("java-w1", "__WRIT__"), ("rust-r2", "__READ__")],
    )
    .await;
    assert_eq!(java_r1.split(' ').nth(2), Some(order[0].as_str()), "Curator holds with its first node");
    assert_eq!(name_of(rust_r1.path()), order[1]);

    peer.expect_none_within("ACQUIRED java-w1", BLOCKED).await;
    assert!(!late_reader.is_finished(), "a Corral reader got in past a queued Curator writer");

    // The Java reader leaves: the Rust reader still keeps the writer out.
    peer.send("release java-r1");
    peer.expect("RELEASED java-r1").await;
    peer.expect_none_within("ACQUIRED java-w1", BLOCKED).await;
    // The Rust reader leaves: the Java writer holds; the late reader still waits.
    rust_r1.release().await.expect("release");
    let acquired = peer.expect("ACQUIRED java-w1").await;
    assert_eq!(acquired.split(' ').nth(2), Some(order[2].as_str()));
    assert!(lock.read_lock().try_acquire().await.unwrap().is_none(), "a Corral reader got in past Curator's writer");
    // The late reader waits through fw2, on Curator's writer node.
    settle::settled(&fw2.client(), 1).await;
    assert!(!late_reader.is_finished(), "a Corral reader got in while Curator's writer held the lock");
    peer.send("release java-w1");
    peer.expect("RELEASED java-w1").await;
    let late = within("the late Corral reader gets in", late_reader).await.expect("task").expect("read lock");
    assert_eq!(name_of(late.path()), order[3]);
    late.release().await.expect("release");
    common::eventually("every node gone", || async { lock.read_lock().participant_nodes().await.unwrap().is_empty() })
        .await;
    fw1.close().await;
    fw2.close().await;
}

/// A Java reader holds; a Rust writer queues behind it and a later Java reader queues behind the
/// writer. Then a Java writer keeps Corral's readers and writers out.
async fn a_queued_corral_writer_holds_back_a_later_curator_reader(env: &common::Env, peer: &mut Peer) {
    const PATH: &str = "/rw2";
    let (fw1, fw2) = (env.framework(), env.framework());
    let lock = ReadWriteLock::new(&fw1, PATH);
    let lock2 = ReadWriteLock::new(&fw2, PATH);

    peer.send(&format!("rw java-r2 {PATH} read"));
    peer.expect("ACQUIRED java-r2").await;
    let writer = lock.write_lock().clone().with_data("rust-w");
    let writer = tokio::spawn(async move { writer.acquire().await });
    common::eventually("Corral's writer queued", || async {
        lock.read_lock().participant_nodes().await.unwrap().len() == 2
    })
    .await;
    peer.send(&format!("rw java-r3 {PATH} read"));
    common::eventually("the late Curator reader queued", || async {
        lock.read_lock().participant_nodes().await.unwrap().len() == 3
    })
    .await;
    let order =
        same_queue(&lock, peer, PATH, &[("java-r2", "__READ__"), ("rust-w", "__WRIT__"), ("java-r3", "__READ__")])
            .await;
    peer.expect_none_within("ACQUIRED java-r3", BLOCKED).await;
    assert!(!writer.is_finished(), "Corral's writer got in past Curator's reader");
    assert!(lock2.read_lock().try_acquire().await.unwrap().is_none(), "a Corral reader got in past a queued writer");

    peer.send("release java-r2");
    peer.expect("RELEASED java-r2").await;
    let guard = within("Corral's writer gets in", writer).await.expect("task").expect("write lock");
    assert_eq!(name_of(guard.path()), order[1]);
    peer.expect_none_within("ACQUIRED java-r3", BLOCKED).await;
    guard.release().await.expect("release");
    let acquired = peer.expect("ACQUIRED java-r3").await;
    assert_eq!(acquired.split(' ').nth(2), Some(order[2].as_str()));
    peer.send("release java-r3");
    peer.expect("RELEASED java-r3").await;

    // A Java writer keeps out Corral's readers and writers; once it leaves, both get in.
    peer.send(&format!("rw java-w2 {PATH} write"));
    peer.expect("ACQUIRED java-w2").await;
    assert!(lock.read_lock().try_acquire().await.unwrap().is_none(), "a Corral reader got in past Curator's writer");
    assert!(lock.write_lock().try_acquire().await.unwrap().is_none(), "a Corral writer got in past Curator's writer");
    let reader = lock2.read_lock().clone();
    let reader = tokio::spawn(async move { reader.acquire().await });
    // The reader waits through fw2, on Curator's writer node.
    settle::settled(&fw2.client(), 1).await;
    assert!(!reader.is_finished(), "a Corral reader got in while Curator's writer held the lock");
    peer.send("release java-w2");
    peer.expect("RELEASED java-w2").await;
    let guard = within("Corral's reader gets in", reader).await.expect("task").expect("read lock");
    guard.release().await.expect("release");
    common::eventually("every node gone", || async { lock.read_lock().participant_nodes().await.unwrap().is_empty() })
        .await;
    fw1.close().await;
    fw2.close().await;
}

#[derive(Debug, Clone, Copy)]
struct RwHold {
    who: &'static str,
    write: bool,
    t0: i64,
    t1: i64,
}

const RW_ROUNDS: usize = 30;
const MARKER: &str = "/rw-writer";

/// One Curator contender and two Corral contenders, `RW_ROUNDS` acquisitions each, some reads
/// and some writes. A writer creates the ephemeral `MARKER` while holding and deletes it before
/// releasing; a reader checks it does not exist when it gets the lock and before it releases.
/// Violations are counted on both sides and must be 0; no write hold interval (wall clock, µs,
/// measured inside each hold) may overlap any other hold.
async fn writers_exclude_everyone(env: &common::Env, peer: &mut Peer) {
    const PATH: &str = "/rwc";
    peer.send(&format!("rwcontend java {PATH} {MARKER} {RW_ROUNDS} 2 3"));
    peer.expect("RW_STARTED java").await;
    let mut tasks = Vec::new();
    for (who, write_every) in [("rust-1", 4), ("rust-2", 2)] {
        let fw = env.framework();
        tasks.push(tokio::spawn(async move {
            let result = rw_contend(&fw, PATH, who, write_every).await;
            fw.close().await;
            result
        }));
    }
    let done = peer.expect_within("RW_DONE java", Duration::from_secs(45)).await;
    let mut holds = Vec::new();
    let mut violations = peer.take("VIOLATION");
    for task in tasks {
        let (h, v) = within("a Corral contender finishes", task).await.expect("contender");
        holds.extend(h);
        violations.extend(v);
    }
    let java_holds: Vec<RwHold> = peer
        .take("HELD java")
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            RwHold { who: "java", write: f[2] == "W", t0: f[3].parse().expect("t0"), t1: f[4].parse().expect("t1") }
        })
        .collect();
    assert_eq!(done, format!("RW_DONE java {RW_ROUNDS} 0"), "Curator reported violations: {violations:?}");
    assert_eq!(java_holds.len(), RW_ROUNDS, "Curator acquired every time");
    assert_eq!(holds.len(), 2 * RW_ROUNDS, "Corral acquired every time");
    assert!(violations.is_empty(), "read-write exclusion violated: {violations:?}");
    holds.extend(java_holds);

    let overlap = |a: &RwHold, b: &RwHold| a.t0 < b.t1 && b.t0 < a.t1;
    let mut shared_reads = 0;
    for (i, a) in holds.iter().enumerate() {
        for b in &holds[i + 1..] {
            if overlap(a, b) {
                assert!(!a.write && !b.write, "a write hold overlaps another hold: {a:?} and {b:?}");
                if (a.who == "java") != (b.who == "java") {
                    shared_reads += 1;
                }
            }
        }
    }
    holds.sort_by_key(|h| h.t0);
    let writes: Vec<&RwHold> = holds.iter().filter(|h| h.write).collect();
    let handoffs = writes.windows(2).filter(|w| (w[0].who == "java") != (w[1].who == "java")).count();
    eprintln!(
        "   {} holds ({} writes), {handoffs} writer hand-offs between Curator and Corral, {shared_reads} read holds \
         shared across runtimes",
        holds.len(),
        writes.len()
    );
    assert!(handoffs >= 3, "Curator's and Corral's writers hardly alternated ({handoffs}): the test proved nothing");
    assert!(shared_reads >= 1, "no Curator reader ever held together with a Corral reader");

    let observer = env.client().await;
    assert_eq!(observer.exists(MARKER).await.unwrap(), None);
    assert_eq!(observer.get_children(PATH).await.unwrap(), Vec::<String>::new(), "every lock node released");
    observer.close().await;
}

async fn rw_contend(fw: &Framework, path: &str, who: &'static str, write_every: usize) -> (Vec<RwHold>, Vec<String>) {
    let lock = ReadWriteLock::new(fw, path);
    let client = fw.client();
    let marker_exists = || async { client.exists(MARKER).await.expect("exists").is_some() };
    let mut holds = Vec::new();
    let mut violations = Vec::new();
    for round in 0..RW_ROUNDS {
        let write = round % write_every == write_every - 1;
        let side = if write { lock.write_lock() } else { lock.read_lock() };
        let guard: MutexGuard =
            side.acquire_timeout(T).await.expect("acquire").unwrap_or_else(|| panic!("{who} round {round}"));
        let t0 = now_micros();
        assert!(guard.is_valid());
        if write {
            match client.create(MARKER, who, CreateMode::Ephemeral).await {
                Ok(_) => {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    match client.get_data(MARKER).await {
                        Ok((data, stat)) if data == who.as_bytes() => {
                            if let Err(e) = client.delete(MARKER, Some(stat.version)).await {
                                violations.push(format!("{who}: marker delete failed: {e}"));
                            }
                        }
                        Ok((data, _)) => violations.push(format!("{who}: marker replaced by {data:?}")),
                        Err(e) if e.is_no_node() => violations.push(format!("{who}: marker deleted")),
                        Err(e) => panic!("{who}: {e}"),
                    }
                }
                Err(e) if e.is_node_exists() => violations.push(format!("{who}: writer found the marker")),
                Err(e) => panic!("{who}: {e}"),
            }
        } else {
            if marker_exists().await {
                violations.push(format!("{who}: reader found the marker on entry"));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            if marker_exists().await {
                violations.push(format!("{who}: reader found the marker on exit"));
            }
        }
        holds.push(RwHold { who, write, t0, t1: now_micros() });
        guard.release().await.expect("release");
    }
    (holds, violations)
}
