//! [`ServiceCache`]: a live view of one service's instances, on the cache engine.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use crate::Error;
use crate::Result;
use corral_core::Framework;
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;

use super::instance::ServiceInstance;
use crate::cache::{CacheEvent, ChildrenCache};

/// A change to a service's instances.
///
/// Nodes whose data does not parse as an instance produce no `Added` or `Updated` (but do
/// produce `Removed` when they go).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use std::time::Duration;
/// use corral_recipes::discovery::{ServiceCacheEvent, ServiceDiscovery, ServiceInstance};
/// use futures::StreamExt;
///
/// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
/// let cache = discovery.service_cache("api");
/// let mut events = cache.events();
/// cache.wait_initialized(Duration::from_secs(10)).await?;
/// assert_eq!(events.next().await, Some(ServiceCacheEvent::Initialized));
///
/// let mut me = ServiceInstance::builder("api").id("api-1").port(8080).build();
/// discovery.register(me.clone()).await?;
/// assert_eq!(events.next().await, Some(ServiceCacheEvent::Added(me.clone())));
/// me.port = Some(9090);
/// discovery.update(me.clone()).await?;
/// assert_eq!(events.next().await, Some(ServiceCacheEvent::Updated(me)));
/// discovery.unregister("api-1").await?;
/// assert_eq!(events.next().await, Some(ServiceCacheEvent::Removed("api-1".into())));
/// # cache.close().await;
/// # discovery.close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServiceCacheEvent<T> {
    /// An instance registered.
    Added(ServiceInstance<T>),
    /// An instance's data changed.
    Updated(ServiceInstance<T>),
    /// An instance went away (its node's name: the id, plus the sequence suffix for
    /// [`ServiceType::DynamicSequential`](super::ServiceType::DynamicSequential)).
    Removed(String),
    /// The first full read is done.
    Initialized,
}

/// The instances of one service, kept up to date (Curator's `ServiceCache`), on the
/// [`crate::cache::Cache`] engine — so changes made while disconnected are not missed.
///
/// Instances are parsed once per change of their node, not on every read: the parsed view is
/// kept with the cache generation it was built from and rebuilt (re-using every instance whose
/// node did not change) only after the cache changed.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use std::time::Duration;
/// use corral_recipes::discovery::{ServiceCache, ServiceDiscovery, ServiceInstance};
///
/// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
/// discovery.register(ServiceInstance::builder("api").id("api-1").address("10.0.0.5").build()).await?;
/// let cache: ServiceCache = ServiceCache::start(&fw, "/services/api");
/// cache.wait_initialized(Duration::from_secs(10)).await?;
/// assert_eq!(cache.instances()["api-1"].address.as_deref(), Some("10.0.0.5"));
/// # cache.close().await;
/// # discovery.close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ServiceCache<T = serde_json::Value> {
    cache: ChildrenCache,
    parsed: StdMutex<Parsed<T>>,
}

/// The parsed instances and the cache generation they were parsed from.
#[derive(Debug)]
struct Parsed<T> {
    generation: Option<u64>,
    instances: Arc<BTreeMap<String, Entry<T>>>,
}

/// One parsed instance and the versions of the node it came from.
#[derive(Debug)]
pub(crate) struct Entry<T> {
    czxid: i64,
    mzxid: i64,
    pub(crate) instance: Arc<ServiceInstance<T>>,
}

impl<T: DeserializeOwned + Clone + Send + Sync + 'static> ServiceCache<T> {
    /// Starts caching the instances under `service_path` (`/<base>/<service>`).
    ///
    /// [`ServiceDiscovery::service_cache`](super::ServiceDiscovery::service_cache) builds the
    /// path from a service name.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (the cache's task is spawned on the current one).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::discovery::ServiceCache;
    ///
    /// let cache: ServiceCache = ServiceCache::start(&fw, "/services/api");
    /// cache.wait_initialized(Duration::from_secs(10)).await?;
    /// assert!(cache.instances().is_empty()); // the service need not exist yet
    /// # cache.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn start(fw: &Framework, service_path: impl Into<String>) -> Self {
        Self {
            cache: ChildrenCache::start(fw, service_path),
            parsed: StdMutex::new(Parsed { generation: None, instances: Arc::new(BTreeMap::new()) }),
        }
    }

    /// The parsed instances by id, shared: parsed again only for nodes that changed since the
    /// last call.
    pub(crate) fn parsed(&self) -> Arc<BTreeMap<String, Entry<T>>> {
        let engine = self.cache.cache();
        let mut parsed = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        if parsed.generation == Some(engine.generation()) {
            return parsed.instances.clone();
        }
        let old = parsed.instances.clone();
        let (generation, fresh) = engine.with_children(|generation, children| {
            let mut fresh = BTreeMap::new();
            for (id, node) in children {
                let (czxid, mzxid) = (node.stat.czxid, node.stat.mzxid);
                let instance = match old.get(id) {
                    Some(e) if e.czxid == czxid && e.mzxid == mzxid => e.instance.clone(),
                    _ => match ServiceInstance::from_json(&node.data) {
                        Ok(instance) => Arc::new(instance),
                        Err(error) => {
                            tracing::debug!(%id, %error, "not a service instance; skipped");
                            continue;
                        }
                    },
                };
                fresh.insert(id.to_owned(), Entry { czxid, mzxid, instance });
            }
            (generation, fresh)
        });
        *parsed = Parsed { generation: Some(generation), instances: Arc::new(fresh) };
        parsed.instances.clone()
    }

    /// Waits until the view has at least `min` instances, or `deadline` (the end of the caller's
    /// `timeout`) passes.
    pub(crate) async fn wait_for_count(
        &self,
        min: usize,
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> Result<()> {
        let mut changes = self.cache.cache().generations();
        loop {
            changes.borrow_and_update();
            if self.parsed().len() >= min {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Err(_) => return Err(Error::TimedOut { after: timeout }),
                Ok(Err(_)) => return Err(Error::CLOSED),
                Ok(Ok(())) => {}
            }
        }
    }

    /// Waits until the first full read is done.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] after `timeout`; [`corral_core::Error::Closed`] (as [`Error::Core`]) if the
    /// cache stopped first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches the cache; dropping it changes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::Error;
    /// use corral_recipes::discovery::ServiceCache;
    ///
    /// let cache: ServiceCache = ServiceCache::start(&fw, "/services/api");
    /// cache.wait_initialized(Duration::from_secs(10)).await?;
    /// cache.close().await;
    /// let other: ServiceCache = ServiceCache::start(&fw, "/services/db");
    /// other.close().await;
    /// assert_eq!(other.wait_initialized(Duration::from_secs(10)).await, Err(Error::Core(corral_recipes::CoreError::Closed)));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn wait_initialized(&self, timeout: Duration) -> Result<()> {
        self.cache.cache().wait_initialized(timeout).await
    }

    /// The current instances, by id (by node name: the id, plus the sequence suffix for
    /// [`ServiceType::DynamicSequential`](super::ServiceType::DynamicSequential)). Nodes that do
    /// not parse are skipped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::CreateMode;
    /// use corral_recipes::discovery::{ServiceDiscovery, ServiceInstance};
    ///
    /// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    /// discovery.register(ServiceInstance::builder("api").id("api-1").build()).await?;
    /// fw.create("/services/api/garbage", "not json", CreateMode::Persistent).await?;
    /// let cache = discovery.service_cache("api");
    /// cache.wait_initialized(Duration::from_secs(10)).await?;
    /// assert_eq!(cache.instances().into_keys().collect::<Vec<_>>(), ["api-1"]);
    /// # cache.close().await;
    /// # discovery.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn instances(&self) -> BTreeMap<String, ServiceInstance<T>> {
        self.parsed().iter().map(|(id, e)| (id.clone(), (*e.instance).clone())).collect()
    }

    /// Changes from now on.
    ///
    /// Events are not replayed: a stream taken as the cache starts (before its task first runs)
    /// gets an `Added` for every instance the first read finds, then `Initialized`; one taken
    /// later gets only later changes. Connection-state changes are not reported here. The
    /// stream ends when the cache is dropped.
    ///
    /// # Cancel safety
    ///
    /// Dropping a `next()` future loses no event.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::discovery::{ServiceCacheEvent, ServiceDiscovery, ServiceInstance};
    /// use futures::StreamExt;
    ///
    /// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    /// discovery.register(ServiceInstance::builder("api").id("api-1").build()).await?;
    /// let cache = discovery.service_cache("api");
    /// let mut events = cache.events();
    /// assert!(matches!(events.next().await, Some(ServiceCacheEvent::Added(i)) if i.id == "api-1"));
    /// assert_eq!(events.next().await, Some(ServiceCacheEvent::Initialized));
    /// # cache.close().await;
    /// # discovery.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn events(&self) -> impl Stream<Item = ServiceCacheEvent<T>> + Send + Unpin + 'static {
        let root = self.cache.cache().root().to_owned();
        self.cache
            .cache()
            .events()
            .filter_map(move |event| {
                let direct_child = |path: &str| {
                    path.strip_prefix(&root)
                        .and_then(|rest| rest.strip_prefix('/'))
                        .filter(|id| !id.is_empty() && !id.contains('/'))
                        .map(str::to_owned)
                };
                let out = match event {
                    CacheEvent::Created { path, node } => direct_child(&path)
                        .and_then(|_| ServiceInstance::from_json(&node.data).ok())
                        .map(ServiceCacheEvent::Added),
                    CacheEvent::Changed { path, new, .. } => direct_child(&path)
                        .and_then(|_| ServiceInstance::from_json(&new.data).ok())
                        .map(ServiceCacheEvent::Updated),
                    CacheEvent::Deleted { path, .. } => direct_child(&path).map(ServiceCacheEvent::Removed),
                    CacheEvent::Initialized => Some(ServiceCacheEvent::Initialized),
                    _ => None,
                };
                std::future::ready(out)
            })
            .boxed()
    }

    /// How the cache watches the service's instances: one persistent watch, or one-shot
    /// watches on a server without `addWatch` (ZooKeeper 3.5); see
    /// [`Cache::watch_mode`](crate::cache::Cache::watch_mode).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::{cache::WatchMode, discovery::ServiceCache};
    ///
    /// let cache: ServiceCache = ServiceCache::start(&fw, "/services/api");
    /// cache.wait_initialized(Duration::from_secs(10)).await?;
    /// assert_eq!(cache.watch_mode(), WatchMode::Persistent);
    /// # cache.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn watch_mode(&self) -> crate::cache::WatchMode {
        self.cache.cache().watch_mode()
    }

    /// Stops the cache: its watches are removed; the view keeps its last state.
    ///
    /// # Cancel safety
    ///
    /// The stop is signalled when the future is first polled; dropping it afterwards does not
    /// undo that, it only stops waiting for the cache's task to end.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::discovery::ServiceCache;
    ///
    /// let cache: ServiceCache = ServiceCache::start(&fw, "/services/api");
    /// cache.wait_initialized(Duration::from_secs(10)).await?;
    /// assert_eq!(fw.client().watcher_count().await, 1);
    /// cache.close().await;
    /// assert_eq!(fw.client().watcher_count().await, 0);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn close(&self) {
        self.cache.cache().close().await;
    }
}
