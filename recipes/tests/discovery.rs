//! Service discovery against the embedded server and (when available) a real ZooKeeper.

mod common;

use std::time::Duration;

use corral_recipes::cache::WatchMode;
use corral_recipes::discovery::{
    DownInstancePolicy, ProviderStrategy, ServiceCacheEvent, ServiceDiscovery, ServiceInstance, ServiceType,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

const T: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Meta {
    zone: String,
    weight: u32,
}

#[tokio::test]
async fn register_query_update_unregister_with_typed_payloads() {
    for env in common::envs("disc-basic").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        let discovery: ServiceDiscovery<Meta> = ServiceDiscovery::new(&fw, "/services");
        let api = ServiceInstance::builder("api")
            .id("api-1")
            .address("10.0.0.1")
            .port(8080)
            .payload(Meta { zone: "a".into(), weight: 1 })
            .uri_spec("{scheme}://{address}:{port}")
            .build();
        discovery.register(api.clone()).await.unwrap();
        discovery.register(ServiceInstance::builder("worker").id("w-1").build()).await.unwrap();
        assert!(discovery.register(api.clone()).await.is_err(), "one registration per id");
        assert_eq!(discovery.query_for_names().await.unwrap(), ["api", "worker"]);
        assert_eq!(discovery.query_for_instances("api").await.unwrap(), vec![api.clone()]);
        assert_eq!(
            discovery.query_for_instance("api", "api-1").await.unwrap().unwrap().build_uri().unwrap(),
            "http://10.0.0.1:8080"
        );

        // The node is ephemeral, with container parents, and holds Curator's JSON.
        let observer = env.client().await;
        let (json, stat) = observer.get_data("/services/api/api-1").await.unwrap();
        assert_eq!(stat.ephemeral_owner, fw.client().session_id());
        let text = String::from_utf8(json.to_vec()).unwrap();
        assert!(text.starts_with(r#"{"name":"api","id":"api-1","address":"10.0.0.1","port":8080,"sslPort":null,"payload":{"zone":"a","weight":1},"registrationTimeUTC":"#), "{text}");
        assert!(!text.contains("enabled") && !text.contains("@class"), "{text}");

        let updated = ServiceInstance { payload: Some(Meta { zone: "b".into(), weight: 2 }), ..api.clone() };
        discovery.update(updated.clone()).await.unwrap();
        assert_eq!(discovery.query_for_instance("api", "api-1").await.unwrap(), Some(updated));
        discovery.unregister("api-1").await.unwrap();
        assert_eq!(discovery.query_for_instances("api").await.unwrap(), []);
        discovery.close().await;
        assert_eq!(discovery.query_for_instances("worker").await.unwrap(), []);
        observer.close().await;
        fw.close().await;
    }
}

#[tokio::test]
async fn after_expiry_the_updated_instance_is_back_and_the_cache_follows() {
    expiry_flow(common::embedded("disc-expiry").await, WatchMode::Persistent).await;
}

/// The same on a server without persistent watches (ZooKeeper 3.5's answers): the service
/// cache runs on one-shot watches.
#[tokio::test]
async fn after_expiry_the_one_shot_service_cache_follows() {
    let env = corral_test_support::env::embedded_with(
        "disc-expiry",
        corral_server::Server::builder().persistent_watches(false),
    )
    .await;
    expiry_flow(env, WatchMode::OneShot).await;
}

async fn expiry_flow(env: common::Env, mode: WatchMode) {
    let server = env.server.clone().unwrap();
    let fw = env.framework();
    let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    let mut ids = Vec::new();
    for port in [1, 2, 3] {
        let i = ServiceInstance::builder("api").address("h").port(port).build();
        ids.push(i.id.clone());
        discovery.register(i).await.unwrap();
    }
    let first = discovery.registrations().into_iter().find(|i| i.port == Some(1)).unwrap();
    let updated = ServiceInstance { address: Some("moved".into()), ..first };
    discovery.update(updated.clone()).await.unwrap();

    let watcher_fw = env.framework();
    let watching: ServiceDiscovery = ServiceDiscovery::new(&watcher_fw, "/services");
    let cache = watching.service_cache("api");
    cache.wait_initialized(T).await.unwrap();
    assert_eq!(cache.instances().len(), 3);
    assert_eq!(cache.watch_mode(), mode);
    let mut events = cache.events();

    server.expire_session(fw.client().session_id());
    // The cache sees them go and come back; the re-registered one carries the update.
    let mut removed = 0;
    let mut added = 0;
    tokio::time::timeout(T, async {
        while let Some(e) = events.next().await {
            match e {
                ServiceCacheEvent::Removed(_) => removed += 1,
                ServiceCacheEvent::Added(_) => added += 1,
                _ => {}
            }
            if removed == 3 && added == 3 {
                break;
            }
        }
    })
    .await
    .expect("all three removed and back");
    let back = cache.instances();
    assert_eq!(back.len(), 3);
    assert_eq!(back[&updated.id].address.as_deref(), Some("moved"), "the updated data, not the stale one");
    cache.close().await;
    discovery.close().await;
    fw.close().await;
    watcher_fw.close().await;
}

#[tokio::test]
async fn providers_pick_by_strategy_and_skip_disabled_and_down_instances() {
    for env in common::envs("disc-provider").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = env.framework();
        let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
        for (id, enabled) in [("a", true), ("b", true), ("c", false)] {
            let mut b = ServiceInstance::builder("api").id(id);
            if !enabled {
                b = b.enabled(false);
            }
            discovery.register(b.build()).await.unwrap();
        }
        let rr = discovery.provider("api", ProviderStrategy::RoundRobin).with_down_policy(DownInstancePolicy {
            down_for: Duration::from_secs(60),
            error_threshold: 2,
            window: Duration::from_secs(60),
        });
        rr.wait_ready(T, 3).await.unwrap();
        let picks: Vec<String> = (0..4).map(|_| rr.get_instance().unwrap().id).collect();
        assert_eq!(picks, ["a", "b", "a", "b"], "round robin over the enabled ones");
        let a = rr.get_all_instances().into_iter().find(|i| i.id == "a").unwrap();
        rr.note_error(&a);
        assert_eq!(rr.get_all_instances().len(), 2, "one error is not enough");
        rr.note_error(&a);
        assert_eq!(rr.get_all_instances().iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["b"]);
        let sticky = discovery.provider("api", ProviderStrategy::Sticky);
        sticky.wait_ready(T, 3).await.unwrap();
        let s = sticky.get_instance().unwrap().id;
        assert!((0..5).all(|_| sticky.get_instance().unwrap().id == s));
        let random = discovery.provider("api", ProviderStrategy::Random);
        random.wait_ready(T, 3).await.unwrap();
        assert!(random.get_instance().is_some_and(|i| i.id != "c"));
        let seq = ServiceInstance::builder("seq").id("s-").service_type(ServiceType::DynamicSequential).build();
        discovery.register(seq).await.unwrap();
        let names = env.client().await.get_children("/services/seq").await.unwrap();
        assert!(names.len() == 1 && names[0].starts_with("s-") && names[0].len() == 12, "{names:?}");
        for p in [rr, sticky, random] {
            p.close().await;
        }
        discovery.close().await;
        fw.close().await;
    }
}
