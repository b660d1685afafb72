//! [`ServiceProvider`]: picks an instance of a service, and keeps away from failing ones.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::instance::ServiceInstance;
use super::service_cache::ServiceCache;

/// How a [`ServiceProvider`] picks among instances (Curator's `ProviderStrategy`).
///
/// Every strategy picks among the instances that are enabled and not marked down, in id
/// order.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use std::time::Duration;
/// use corral_recipes::discovery::{ProviderStrategy, ServiceDiscovery, ServiceInstance};
///
/// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
/// for id in ["a", "b", "c"] {
///     discovery.register(ServiceInstance::builder("api").id(id).build()).await?;
/// }
/// let provider = discovery.provider("api", ProviderStrategy::RoundRobin);
/// provider.wait_ready(Duration::from_secs(10), 3).await?;
/// let picks: Vec<_> = (0..4).map(|_| provider.get_instance().unwrap().id).collect();
/// assert_eq!(picks, ["a", "b", "c", "a"]);
/// # provider.close().await;
/// # discovery.close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProviderStrategy {
    /// A uniformly random instance each time.
    #[default]
    Random,
    /// Each instance in turn.
    RoundRobin,
    /// The same instance as last time while it exists and is up; then another one.
    Sticky,
}

/// Marks an instance down after `error_threshold` errors within `window`, for `down_for`
/// (Curator's `DownInstancePolicy`: 30 s, 2 errors).
///
/// Errors older than `window` are forgotten; reaching the threshold clears the count and
/// marks the instance down.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use corral_recipes::discovery::DownInstancePolicy;
///
/// let strict = DownInstancePolicy { error_threshold: 1, ..DownInstancePolicy::default() };
/// assert_eq!(strict.down_for, Duration::from_secs(30));
/// assert_eq!(DownInstancePolicy::default().error_threshold, 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownInstancePolicy {
    /// How long an instance stays down.
    pub down_for: Duration,
    /// Errors that make it down.
    pub error_threshold: usize,
    /// The window the errors are counted in.
    pub window: Duration,
}

impl Default for DownInstancePolicy {
    fn default() -> Self {
        Self { down_for: Duration::from_secs(30), error_threshold: 2, window: Duration::from_secs(30) }
    }
}

/// Picks instances of one service from a live [`ServiceCache`] (Curator's `ServiceProvider`).
///
/// Disabled instances (`enabled: false`) are never picked; instances reported with
/// [`ServiceProvider::note_error`] too often are skipped for a while.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::time::Duration;
/// use corral_recipes::Framework;
/// use corral_recipes::discovery::{ProviderStrategy, ServiceDiscovery, ServiceInstance};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
/// for port in [8080, 8081] {
///     discovery.register(ServiceInstance::builder("api").address("10.0.0.5").port(port).build()).await?;
/// }
/// let provider = discovery.provider("api", ProviderStrategy::RoundRobin);
/// provider.wait_ready(Duration::from_secs(10), 2).await?;
/// let a = provider.get_instance().unwrap().port;
/// let b = provider.get_instance().unwrap().port;
/// assert_ne!(a, b);
/// # provider.close().await; discovery.close().await; fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ServiceProvider<T = serde_json::Value> {
    cache: ServiceCache<T>,
    strategy: ProviderStrategy,
    policy: DownInstancePolicy,
    next: AtomicUsize,
    sticky: StdMutex<Option<String>>,
    errors: StdMutex<HashMap<String, Vec<Instant>>>,
    down_until: StdMutex<HashMap<String, Instant>>,
}

impl<T: DeserializeOwned + Clone + Send + Sync + 'static> ServiceProvider<T> {
    /// A provider over `cache` with `strategy` and the default down-instance policy.
    ///
    /// [`ServiceDiscovery::provider`](super::ServiceDiscovery::provider) makes the cache too.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::discovery::{ProviderStrategy, ServiceCache, ServiceProvider};
    ///
    /// let cache: ServiceCache = ServiceCache::start(&fw, "/services/api");
    /// let provider = ServiceProvider::new(cache, ProviderStrategy::Random);
    /// provider.wait_ready(Duration::from_secs(10), 0).await?;
    /// assert_eq!(provider.get_instance(), None); // nobody registered
    /// # provider.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(cache: ServiceCache<T>, strategy: ProviderStrategy) -> Self {
        Self {
            cache,
            strategy,
            policy: DownInstancePolicy::default(),
            next: AtomicUsize::new(0),
            sticky: StdMutex::new(None),
            errors: StdMutex::new(HashMap::new()),
            down_until: StdMutex::new(HashMap::new()),
        }
    }

    /// Sets the down-instance policy.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::discovery::{
    ///     DownInstancePolicy, ProviderStrategy, ServiceDiscovery, ServiceInstance, ServiceProvider,
    /// };
    ///
    /// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    /// discovery.register(ServiceInstance::builder("api").id("flaky").build()).await?;
    /// let policy = DownInstancePolicy { error_threshold: 1, ..DownInstancePolicy::default() };
    /// let provider =
    ///     ServiceProvider::new(discovery.service_cache("api"), ProviderStrategy::Random).with_down_policy(policy);
    /// provider.wait_ready(Duration::from_secs(10), 1).await?;
    /// let flaky = provider.get_instance().unwrap();
    /// provider.note_error(&flaky); // one error is enough now
    /// assert_eq!(provider.get_instance(), None);
    /// # provider.close().await;
    /// # discovery.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn with_down_policy(mut self, policy: DownInstancePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Waits until the cache is loaded and has at least `min_instances` instances.
    ///
    /// # Errors
    ///
    /// [`crate::Error::TimedOut`] after `timeout` (which bounds the whole wait);
    /// [`corral_core::Error::Closed`] if the cache stopped before its first full read.
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
    /// use corral_recipes::discovery::{ProviderStrategy, ServiceDiscovery, ServiceInstance};
    ///
    /// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    /// discovery.register(ServiceInstance::builder("api").build()).await?;
    /// let provider = discovery.provider("api", ProviderStrategy::Random);
    /// provider.wait_ready(Duration::from_secs(10), 1).await?;
    /// // Nobody else is coming.
    /// let waited = provider.wait_ready(Duration::from_millis(100), 2).await;
    /// assert!(matches!(waited, Err(Error::TimedOut { .. })));
    /// # provider.close().await;
    /// # discovery.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn wait_ready(&self, timeout: Duration, min_instances: usize) -> crate::Result<()> {
        let deadline = Instant::now() + timeout;
        self.cache.wait_initialized(timeout).await?;
        self.cache.wait_for_count(min_instances, deadline, timeout).await
    }

    /// Every instance that may be picked now (enabled and not down), in id order.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::discovery::{ProviderStrategy, ServiceDiscovery, ServiceInstance};
    ///
    /// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    /// discovery.register(ServiceInstance::builder("api").id("b").build()).await?;
    /// discovery.register(ServiceInstance::builder("api").id("a").build()).await?;
    /// discovery.register(ServiceInstance::builder("api").id("off").enabled(false).build()).await?;
    /// let provider = discovery.provider("api", ProviderStrategy::Random);
    /// provider.wait_ready(Duration::from_secs(10), 3).await?;
    /// let ids: Vec<_> = provider.get_all_instances().into_iter().map(|i| i.id).collect();
    /// assert_eq!(ids, ["a", "b"]);
    /// # provider.close().await;
    /// # discovery.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn get_all_instances(&self) -> Vec<ServiceInstance<T>> {
        self.with_candidates(|candidates| candidates.iter().map(|i| ServiceInstance::clone(i)).collect())
    }

    /// Calls `f` with the instances that may be picked now, in id order. Nothing is parsed or
    /// cloned here: the cache parses each instance once per change of its node.
    fn with_candidates<R>(&self, f: impl FnOnce(&[&Arc<ServiceInstance<T>>]) -> R) -> R {
        let parsed = self.cache.parsed();
        let now = Instant::now();
        let mut down = self.down_until.lock().unwrap_or_else(|e| e.into_inner());
        down.retain(|_, until| *until > now);
        let candidates: Vec<&Arc<ServiceInstance<T>>> =
            parsed.values().map(|e| &e.instance).filter(|i| i.is_enabled() && !down.contains_key(&i.id)).collect();
        drop(down);
        f(&candidates)
    }

    /// Picks an instance with the provider's strategy, or `None` if none is available.
    ///
    /// It reads the cache's current view: no request is sent.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::discovery::{ProviderStrategy, ServiceDiscovery, ServiceInstance};
    ///
    /// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    /// for id in ["a", "b"] {
    ///     discovery.register(ServiceInstance::builder("api").id(id).build()).await?;
    /// }
    /// let provider = discovery.provider("api", ProviderStrategy::Sticky);
    /// provider.wait_ready(Duration::from_secs(10), 2).await?;
    /// let first = provider.get_instance().unwrap();
    /// assert!((0..10).all(|_| provider.get_instance().as_ref() == Some(&first)));
    /// # provider.close().await;
    /// # discovery.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn get_instance(&self) -> Option<ServiceInstance<T>> {
        self.with_candidates(|instances| {
            if instances.is_empty() {
                return None;
            }
            let pick = match self.strategy {
                ProviderStrategy::Random => instances.get(fastrand::usize(..instances.len())),
                ProviderStrategy::RoundRobin => {
                    instances.get(self.next.fetch_add(1, Ordering::Relaxed) % instances.len())
                }
                ProviderStrategy::Sticky => {
                    let mut sticky = self.sticky.lock().unwrap_or_else(|e| e.into_inner());
                    let kept = sticky.as_ref().and_then(|id| instances.iter().find(|i| &i.id == id));
                    match kept {
                        Some(i) => Some(i),
                        None => {
                            let pick = instances.get(fastrand::usize(..instances.len()));
                            *sticky = pick.map(|i| i.id.clone());
                            pick
                        }
                    }
                }
            };
            pick.map(|i| ServiceInstance::clone(i))
        })
    }

    /// Reports that talking to `instance` failed; after enough errors within the window it is
    /// skipped for a while (see [`DownInstancePolicy`]).
    ///
    /// The count is this provider's own: other providers still pick the instance.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::discovery::{ProviderStrategy, ServiceDiscovery, ServiceInstance};
    ///
    /// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    /// for id in ["a", "b"] {
    ///     discovery.register(ServiceInstance::builder("api").id(id).build()).await?;
    /// }
    /// let provider = discovery.provider("api", ProviderStrategy::RoundRobin);
    /// provider.wait_ready(Duration::from_secs(10), 2).await?;
    /// let a = provider.get_instance().unwrap();
    /// provider.note_error(&a);
    /// provider.note_error(&a); // two errors within 30 s: down for 30 s
    /// let ids: Vec<_> = provider.get_all_instances().into_iter().map(|i| i.id).collect();
    /// assert_eq!(ids, ["b"]);
    /// # provider.close().await;
    /// # discovery.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn note_error(&self, instance: &ServiceInstance<T>) {
        let now = Instant::now();
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        let list = errors.entry(instance.id.clone()).or_default();
        list.retain(|t| now.duration_since(*t) < self.policy.window);
        list.push(now);
        if list.len() >= self.policy.error_threshold {
            list.clear();
            tracing::info!(id = %instance.id, down_for = ?self.policy.down_for, "instance marked down");
            self.down_until
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(instance.id.clone(), now + self.policy.down_for);
        }
    }

    /// The underlying cache.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::discovery::{ProviderStrategy, ServiceDiscovery, ServiceInstance};
    ///
    /// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    /// discovery.register(ServiceInstance::builder("api").id("off").enabled(false).build()).await?;
    /// let provider = discovery.provider("api", ProviderStrategy::Random);
    /// provider.wait_ready(Duration::from_secs(10), 1).await?;
    /// assert_eq!(provider.cache().instances().len(), 1); // the cache has it,
    /// assert_eq!(provider.get_instance(), None); // the provider does not pick it
    /// # provider.close().await;
    /// # discovery.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn cache(&self) -> &ServiceCache<T> {
        &self.cache
    }

    /// Stops the provider's cache; the provider then picks from the cache's last view.
    ///
    /// # Cancel safety
    ///
    /// As [`ServiceCache::close`]: the stop is signalled on the first poll and goes on if the
    /// future is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::discovery::{ProviderStrategy, ServiceDiscovery};
    ///
    /// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    /// let provider = discovery.provider("api", ProviderStrategy::Random);
    /// provider.wait_ready(Duration::from_secs(10), 0).await?;
    /// assert_eq!(fw.client().watcher_count().await, 1);
    /// provider.close().await;
    /// assert_eq!(fw.client().watcher_count().await, 0);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn close(&self) {
        self.cache.close().await;
    }
}
