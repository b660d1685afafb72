//! [`ServiceCache`]: a live view of one service's instances, on the cache engine.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use corral_core::{Framework, Result};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;

use super::instance::ServiceInstance;
use crate::cache::{CacheEvent, ChildrenCache};

/// A change to a service's instances.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServiceCacheEvent<T> {
    /// An instance registered.
    Added(ServiceInstance<T>),
    /// An instance's data changed.
    Updated(ServiceInstance<T>),
    /// An instance went away (its id).
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

    /// Waits until the view has at least `min` instances, or `deadline` passes.
    pub(crate) async fn wait_for_count(&self, min: usize, deadline: tokio::time::Instant) -> Result<()> {
        let mut changes = self.cache.cache().generations();
        loop {
            changes.borrow_and_update();
            if self.parsed().len() >= min {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Err(_) => return Err(corral_core::Error::Timeout),
                Ok(Err(_)) => return Err(corral_core::Error::Closed),
                Ok(Ok(())) => {}
            }
        }
    }

    /// Waits until the first full read is done.
    ///
    /// # Errors
    ///
    /// [`corral_core::Error::Timeout`] after `timeout`.
    pub async fn wait_initialized(&self, timeout: Duration) -> Result<()> {
        self.cache.cache().wait_initialized(timeout).await
    }

    /// The current instances, by id. Nodes that do not parse are skipped.
    pub fn instances(&self) -> BTreeMap<String, ServiceInstance<T>> {
        self.parsed().iter().map(|(id, e)| (id.clone(), (*e.instance).clone())).collect()
    }

    /// Changes from now on.
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

    /// Stops the cache.
    pub async fn close(&self) {
        self.cache.cache().close().await;
    }
}
