//! A service cache's view already holds what an event says when the event arrives: a reader
//! that looks at `instances()` as it handles `Added`/`Removed` never sees the view from before
//! (the view's generation used to be bumped after the events went out, so a reader on another
//! worker thread could read the old parsed view).

use std::time::Duration;

use corral_recipes::Framework;
use corral_recipes::cache::WatchMode;
use corral_recipes::discovery::{ServiceCacheEvent, ServiceDiscovery, ServiceInstance};
use corral_server::testing::TestingServer;
use corral_server::{Server, ServerBuilder};
use futures::StreamExt as _;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_holds_each_event_when_it_arrives() {
    view_holds_each_event(Server::builder(), WatchMode::Persistent).await;
}

/// The same with the one-shot fallback (a server answering as ZooKeeper 3.5 does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_one_shot_view_holds_each_event_when_it_arrives() {
    view_holds_each_event(Server::builder().persistent_watches(false), WatchMode::OneShot).await;
}

async fn view_holds_each_event(builder: ServerBuilder, mode: WatchMode) {
    let server = TestingServer::with_builder(builder).await.expect("server");
    let fw = Framework::builder(server.connect_string()).start().expect("framework");
    let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    discovery.register(ServiceInstance::builder("api").id("base").build()).await.expect("register");
    let cache = discovery.service_cache("api");
    cache.wait_initialized(T).await.expect("initialized");
    assert_eq!(cache.watch_mode(), mode);
    let mut events = cache.events();
    for round in 0..200 {
        let id = format!("i-{round}");
        discovery.register(ServiceInstance::builder("api").id(id.clone()).build()).await.expect("register");
        let added = tokio::time::timeout(T, events.next()).await.expect("in time").expect("an event");
        assert!(matches!(&added, ServiceCacheEvent::Added(i) if i.id == id), "{added:?}");
        assert!(cache.instances().contains_key(&id), "round {round}: Added({id}) but the view lacks it");
        discovery.unregister(&id).await.expect("unregister");
        let removed = tokio::time::timeout(T, events.next()).await.expect("in time").expect("an event");
        assert_eq!(removed, ServiceCacheEvent::Removed(id.clone()));
        assert!(!cache.instances().contains_key(&id), "round {round}: Removed({id}) but the view still has it");
    }
    cache.close().await;
    discovery.close().await;
    fw.close().await;
    server.close().await;
}
