//! Service discovery compatible with Curator's `curator-x-discovery`: register, query and
//! follow service instances under `/<base>/<service>/<id>`, with Curator's JSON, so Java
//! services using Curator and Rust services using Corral find each other.
//!
//! - [`ServiceInstance`]: one instance, in Curator's JSON;
//! - [`ServiceDiscovery`]: registers this process's instances and keeps them registered;
//! - [`ServiceCache`]: a live view of one service's instances, with a stream of changes;
//! - [`ServiceProvider`]: picks an instance (random, round-robin, sticky) and steers clear of
//!   instances that keep failing.

mod instance;
mod provider;
mod registry;
mod service_cache;

pub use instance::{ServiceInstance, ServiceInstanceBuilder, ServiceType, UriPart, UriSpec};
pub use provider::{DownInstancePolicy, ProviderStrategy, ServiceProvider};
pub use registry::ServiceDiscovery;
pub use service_cache::{ServiceCache, ServiceCacheEvent};
