//! Interop with real Curator 5.4 (Debian's `libcurator-discovery-java` and
//! `libcurator-recipes-java`, Java 17): a Java process using Curator's own `ServiceDiscovery`
//! (default `JsonInstanceSerializer` over a `Map` payload), `ServiceCache` and `ServiceProvider`
//! shares one registry with this crate's discovery, against the embedded server and (when
//! available) a real ZooKeeper. The read-write lock, driven through the same Java peer, is in
//! `curator_interop_read_write_lock.rs`.
//!
//! The Java side is `tests/java/CuratorDiscoveryPeer.java`, compiled with `javac` once per test
//! binary (cached under Cargo's target tmp dir, keyed by the sources and the classpath) and
//! driven over stdin/stdout, one JVM per test, by `common::java_peer`. Without Java, javac or the
//! jars the tests skip with a `skipping:` line on stderr, except under `CI=true` (or `1`), where
//! they fail.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use corral_recipes::discovery::{
    ProviderStrategy, ServiceCacheEvent, ServiceDiscovery, ServiceInstance, ServiceProvider, ServiceType,
};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use common::java_peer::{self, Java, Peer, T, within};

/// The compiled peer, or `None` (after a `skipping:` line) when Java or the jars are missing.
fn java() -> Option<&'static Java> {
    java_peer::java(&java_peer::DISCOVERY_PEER)
}

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
