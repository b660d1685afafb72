//! [`ServiceDiscovery`]: registering this process's instances and keeping them registered.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use crate::{Error, Result};
use corral_core::{CreateMode, Framework};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::instance::{ServiceInstance, ServiceType};
use super::provider::{ProviderStrategy, ServiceProvider};
use super::service_cache::ServiceCache;
use crate::persistent_node::PersistentNode;

/// Registers and finds service instances (Curator's `ServiceDiscovery`).
///
/// This process's registrations are an authoritative set kept in memory: each dynamic instance
/// is a [`PersistentNode`], so after a new session, or when someone deletes the node, it comes
/// back by itself — with the *latest* data, because [`ServiceDiscovery::update`] goes through
/// the same set (Curator's stale re-registration bugs, CURATOR-146/181).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::time::Duration;
/// use corral_recipes::Framework;
/// use corral_recipes::discovery::{ServiceDiscovery, ServiceInstance};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
/// let me = ServiceInstance::builder("api").address("10.0.0.5").port(8080).build();
/// discovery.register(me.clone()).await?;
/// assert_eq!(discovery.query_for_names().await?, ["api"]);
/// assert_eq!(discovery.query_for_instances("api").await?, [me]);
/// discovery.close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ServiceDiscovery<T = serde_json::Value> {
    fw: Framework,
    base: String,
    registered: StdMutex<HashMap<String, Registration<T>>>,
    /// Per service name: whether its parent node was ensured by this discovery (once, shared
    /// by concurrent registrations).
    parents: StdMutex<HashMap<String, Arc<tokio::sync::OnceCell<bool>>>>,
    _payload: PhantomData<fn() -> T>,
}

#[derive(Debug)]
struct Registration<T> {
    instance: ServiceInstance<T>,
    node: Arc<PersistentNode>,
}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> ServiceDiscovery<T> {
    /// Discovery under `base` (for example `/services`).
    ///
    /// A trailing `/` is dropped. Nothing is created until the first registration.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::discovery::ServiceDiscovery;
    ///
    /// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services/");
    /// assert_eq!(discovery.base_path(), "/services");
    /// assert!(discovery.query_for_names().await?.is_empty()); // no base node yet: no services
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(fw: &Framework, base: impl Into<String>) -> Self {
        let base = base.into();
        let base = if base.len() > 1 { base.trim_end_matches('/').to_owned() } else { base };
        Self {
            fw: fw.clone(),
            base,
            registered: StdMutex::new(HashMap::new()),
            parents: StdMutex::new(HashMap::new()),
            _payload: PhantomData,
        }
    }

    /// The base path.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::discovery::ServiceDiscovery;
    ///
    /// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    /// assert_eq!(discovery.base_path(), "/services");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn base_path(&self) -> &str {
        &self.base
    }

    fn service_path(&self, name: &str) -> String {
        if self.base == "/" { format!("/{name}") } else { format!("{}/{name}", self.base) }
    }

    fn instance_path(&self, name: &str, id: &str) -> String {
        format!("{}/{id}", self.service_path(name))
    }

    /// Registers `instance` and waits until its node exists. Dynamic instances are kept
    /// registered from then on (re-created after a new session or a delete).
    ///
    /// # Errors
    ///
    /// [`corral_core::Error::BadArguments`] for an id already registered by this process or a payload that
    /// does not serialize; [`corral_core::Error::Timeout`] if the node could not be created within the
    /// connection timeout (the registration stands and keeps being attempted).
    ///
    /// # Cancel safety
    ///
    /// Dropped before the service's parent node is ensured, nothing is registered. Dropped
    /// later, the registration stands as if the call had returned: its node is created (or
    /// being created) in the background, and [`ServiceDiscovery::unregister`] or
    /// [`ServiceDiscovery::close`] removes it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::{CoreError, Error};
    /// use corral_recipes::discovery::{ServiceDiscovery, ServiceInstance};
    ///
    /// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    /// let me = ServiceInstance::builder("api").id("api-1").port(8080).build();
    /// discovery.register(me.clone()).await?;
    /// assert!(fw.client().exists("/services/api/api-1").await?.is_some());
    /// // The same id twice is refused.
    /// assert!(matches!(discovery.register(me).await, Err(Error::Core(CoreError::BadArguments(_)))));
    /// # discovery.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn register(&self, instance: ServiceInstance<T>) -> Result<()> {
        let json = instance.to_json().map_err(|e| Error::bad_arguments(format!("payload: {e}")))?;
        let path = self.instance_path(&instance.name, &instance.id);
        let mode = match instance.service_type {
            ServiceType::Dynamic => CreateMode::Ephemeral,
            ServiceType::DynamicSequential => CreateMode::EphemeralSequential,
            ServiceType::Static | ServiceType::Permanent => CreateMode::Persistent,
        };
        self.ensure_parent(&instance.name).await;
        let node = {
            let mut registered = self.registered.lock().unwrap_or_else(|e| e.into_inner());
            if registered.contains_key(&instance.id) {
                return Err(Error::bad_arguments(format!("instance {} is registered already", instance.id)));
            }
            let node = Arc::new(PersistentNode::start(&self.fw, path, mode, json));
            registered.insert(instance.id.clone(), Registration { instance, node: node.clone() });
            node
        };
        node.wait_for_initial_create(self.fw.connection_timeout()).await
    }

    /// Creates the service's parent nodes (containers) once per service name, before the
    /// first registration's node: a thousand concurrent registrations then cost one create
    /// each, instead of each failing with NoNode and creating the parents itself. Failure is
    /// only logged — every registration's node still creates missing parents (they are
    /// containers, so the server may also reap them later).
    async fn ensure_parent(&self, name: &str) {
        let cell = {
            let mut parents = self.parents.lock().unwrap_or_else(|e| e.into_inner());
            parents.entry(name.to_owned()).or_default().clone()
        };
        let service = self.service_path(name);
        cell.get_or_init(|| async {
            match self.fw.ensure_container_path(&service).await {
                Ok(()) => true,
                Err(error) => {
                    tracing::debug!(%service, %error, "could not create the service's parent yet");
                    false
                }
            }
        })
        .await;
    }

    /// Replaces a registered instance's data; every later re-registration uses the new data.
    ///
    /// # Errors
    ///
    /// [`Error::NotRegistered`] if the instance was not registered by this process; connection
    /// errors (the new data is kept and used by the next re-creation).
    ///
    /// # Cancel safety
    ///
    /// The new data replaces the old in memory before anything is sent, so even a dropped
    /// call is used by every later re-creation; whether the node itself was written depends on
    /// how far the write got.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::discovery::{ServiceDiscovery, ServiceInstance};
    ///
    /// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    /// let mut me = ServiceInstance::builder("api").id("api-1").port(8080).build();
    /// discovery.register(me.clone()).await?;
    /// me.port = Some(9090);
    /// discovery.update(me).await?;
    /// let found = discovery.query_for_instance("api", "api-1").await?.unwrap();
    /// assert_eq!(found.port, Some(9090));
    /// # discovery.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn update(&self, instance: ServiceInstance<T>) -> Result<()> {
        let json = instance.to_json().map_err(|e| Error::bad_arguments(format!("payload: {e}")))?;
        let node = {
            let mut registered = self.registered.lock().unwrap_or_else(|e| e.into_inner());
            let Some(reg) = registered.get_mut(&instance.id) else {
                return Err(Error::NotRegistered { id: instance.id.clone() });
            };
            reg.instance = instance;
            reg.node.clone()
        };
        node.set_data(json).await
    }

    /// Unregisters an instance registered by this process (its node is deleted).
    ///
    /// # Errors
    ///
    /// [`Error::NotRegistered`] if the instance was not registered by this process.
    ///
    /// # Cancel safety
    ///
    /// The instance is forgotten before anything is awaited; its node's recipe is told to stop
    /// on the first poll and deletes the node even if the future is dropped then (a guaranteed
    /// delete, retried in the background while the connection is down).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::Error;
    /// use corral_recipes::discovery::{ServiceDiscovery, ServiceInstance};
    ///
    /// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    /// discovery.register(ServiceInstance::builder("api").id("api-1").build()).await?;
    /// discovery.unregister("api-1").await?;
    /// assert!(discovery.query_for_instances("api").await?.is_empty());
    /// assert!(matches!(discovery.unregister("api-1").await, Err(Error::NotRegistered { .. })));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn unregister(&self, id: &str) -> Result<()> {
        let reg = self.registered.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        match reg {
            Some(reg) => {
                reg.node.close().await;
                Ok(())
            }
            None => Err(Error::NotRegistered { id: id.to_owned() }),
        }
    }

    /// The instances this process has registered, with their latest data, in no particular
    /// order.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::discovery::{ServiceDiscovery, ServiceInstance};
    ///
    /// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    /// discovery.register(ServiceInstance::builder("api").id("api-1").build()).await?;
    /// let mine: Vec<_> = discovery.registrations().into_iter().map(|i| i.id).collect();
    /// assert_eq!(mine, ["api-1"]);
    /// # discovery.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn registrations(&self) -> Vec<ServiceInstance<T>> {
        self.registered.lock().unwrap_or_else(|e| e.into_inner()).values().map(|r| r.instance.clone()).collect()
    }

    /// The names of every service under the base path, sorted.
    ///
    /// # Errors
    ///
    /// Connection errors after retries; NoAuth as [`corral_core::Error::Server`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::discovery::{ServiceDiscovery, ServiceInstance};
    ///
    /// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    /// for name in ["web", "db", "api"] {
    ///     discovery.register(ServiceInstance::builder(name).build()).await?;
    /// }
    /// assert_eq!(discovery.query_for_names().await?, ["api", "db", "web"]);
    /// # discovery.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn query_for_names(&self) -> Result<Vec<String>> {
        let mut names = crate::sort::children_or_empty(&self.fw, &self.base).await?;
        names.sort();
        Ok(names)
    }

    /// Every instance of `name` (sorted by id). Nodes that do not parse as instances are
    /// skipped with a warning.
    ///
    /// # Errors
    ///
    /// Connection errors after retries; NoAuth as [`corral_core::Error::Server`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::CreateMode;
    /// use corral_recipes::discovery::{ServiceDiscovery, ServiceInstance};
    ///
    /// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    /// discovery.register(ServiceInstance::builder("api").id("b").build()).await?;
    /// discovery.register(ServiceInstance::builder("api").id("a").build()).await?;
    /// fw.create("/services/api/junk", "not json", CreateMode::Persistent).await?; // skipped
    /// let ids: Vec<_> = discovery.query_for_instances("api").await?.into_iter().map(|i| i.id).collect();
    /// assert_eq!(ids, ["a", "b"]);
    /// # discovery.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn query_for_instances(&self, name: &str) -> Result<Vec<ServiceInstance<T>>> {
        let path = self.service_path(name);
        let mut instances = self
            .fw
            .with_retry(move |client| {
                let path = path.clone();
                async move {
                    let ids = match client.get_children(&path).await {
                        Err(e) if e.is_no_node() => return Ok(Vec::new()),
                        other => other?,
                    };
                    // Pipelined: one round trip for all the reads.
                    let reads: Vec<_> = ids.iter().map(|id| client.get_data(&format!("{path}/{id}"))).collect();
                    let mut out = Vec::new();
                    for (id, read) in ids.iter().zip(reads) {
                        match read.await {
                            Ok((data, _)) => match ServiceInstance::from_json(&data) {
                                Ok(instance) => out.push(instance),
                                Err(e) => tracing::warn!(%path, %id, error = %e, "not a service instance"),
                            },
                            Err(e) if e.is_no_node() => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Ok(out)
                }
            })
            .await?;
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(instances)
    }

    /// One instance of `name` by id: the node `/<base>/<name>/<id>`.
    ///
    /// `None` when the node does not exist, and also when its data does not parse as an
    /// instance. A [`ServiceType::DynamicSequential`] instance's node carries a sequence suffix
    /// after the id, so it is not found by its id here; use
    /// [`ServiceDiscovery::query_for_instances`].
    ///
    /// # Errors
    ///
    /// Connection errors after the framework's retries. Data that is not a service instance
    /// counts as absent (and is logged).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::discovery::{ServiceDiscovery, ServiceInstance};
    ///
    /// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    /// discovery.register(ServiceInstance::builder("api").id("api-1").port(8080).build()).await?;
    /// let found = discovery.query_for_instance("api", "api-1").await?;
    /// assert_eq!(found.and_then(|i| i.port), Some(8080));
    /// assert_eq!(discovery.query_for_instance("api", "api-2").await?, None);
    /// # discovery.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn query_for_instance(&self, name: &str, id: &str) -> Result<Option<ServiceInstance<T>>> {
        let path = self.instance_path(name, id);
        let read = self
            .fw
            .with_retry(|client| {
                let path = path.clone();
                async move {
                    match client.get_data(&path).await {
                        Ok((data, _)) => Ok(Some(data)),
                        Err(e) if e.is_no_node() => Ok(None),
                        Err(e) => Err(e),
                    }
                }
            })
            .await?;
        Ok(read.and_then(|data| match ServiceInstance::from_json(&data) {
            Ok(instance) => Some(instance),
            Err(error) => {
                tracing::warn!(%path, %error, "not a service instance");
                None
            }
        }))
    }

    /// A live cache of `name`'s instances.
    ///
    /// Each call starts a new cache (with its own watch); close it when done.
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
    /// use corral_recipes::discovery::{ServiceDiscovery, ServiceInstance};
    ///
    /// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    /// discovery.register(ServiceInstance::builder("api").id("api-1").build()).await?;
    /// let cache = discovery.service_cache("api");
    /// cache.wait_initialized(Duration::from_secs(10)).await?;
    /// assert_eq!(cache.instances().into_keys().collect::<Vec<_>>(), ["api-1"]);
    /// # cache.close().await;
    /// # discovery.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn service_cache(&self, name: &str) -> ServiceCache<T> {
        ServiceCache::start(&self.fw, self.service_path(name))
    }

    /// A provider for `name` with `strategy`, on its own cache.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, as [`ServiceDiscovery::service_cache`].
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
    /// discovery.register(ServiceInstance::builder("db").id("db-1").build()).await?;
    /// let provider = discovery.provider("db", ProviderStrategy::Sticky);
    /// provider.wait_ready(Duration::from_secs(10), 1).await?;
    /// assert_eq!(provider.get_instance().map(|i| i.id).as_deref(), Some("db-1"));
    /// # provider.close().await;
    /// # discovery.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn provider(&self, name: &str, strategy: ProviderStrategy) -> ServiceProvider<T> {
        ServiceProvider::new(self.service_cache(name), strategy)
    }

    /// Unregisters everything this process registered: every registration's node is deleted,
    /// whatever its [`ServiceType`] (PERMANENT ones too).
    ///
    /// Caches and providers made from this discovery are not closed; close them yourself.
    ///
    /// # Cancel safety
    ///
    /// The registrations are forgotten when the future is first polled. Nodes not yet deleted
    /// when it is dropped are still deleted in the background (their recipes are told to stop
    /// when dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::discovery::{ServiceDiscovery, ServiceInstance};
    ///
    /// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    /// discovery.register(ServiceInstance::builder("api").build()).await?;
    /// discovery.close().await;
    /// assert!(discovery.registrations().is_empty());
    /// assert!(discovery.query_for_instances("api").await?.is_empty());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn close(&self) {
        let regs: Vec<Registration<T>> =
            self.registered.lock().unwrap_or_else(|e| e.into_inner()).drain().map(|(_, r)| r).collect();
        for reg in regs {
            reg.node.close().await;
        }
    }

    /// How long to wait for a registration's node (the framework's connection timeout).
    ///
    /// [`ServiceDiscovery::register`] fails with [`corral_core::Error::Timeout`] after it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::discovery::ServiceDiscovery;
    ///
    /// let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
    /// assert_eq!(discovery.registration_timeout(), fw.connection_timeout());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn registration_timeout(&self) -> Duration {
        self.fw.connection_timeout()
    }
}
