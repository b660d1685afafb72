//! [`ServiceCache`]: a live view of one service's instances, on the cache engine.

use std::collections::BTreeMap;
use std::marker::PhantomData;
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
#[derive(Debug)]
pub struct ServiceCache<T = serde_json::Value> {
    cache: ChildrenCache,
    _payload: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned + Send + 'static> ServiceCache<T> {
    /// Starts caching the instances under `service_path` (`/<base>/<service>`).
    pub fn start(fw: &Framework, service_path: impl Into<String>) -> Self {
        Self { cache: ChildrenCache::start(fw, service_path), _payload: PhantomData }
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
        self.cache
            .current()
            .into_iter()
            .filter_map(|(id, node)| ServiceInstance::from_json(&node.data).ok().map(|i| (id, i)))
            .collect()
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
