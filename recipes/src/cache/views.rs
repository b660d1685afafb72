//! [`NodeCache`] and [`ChildrenCache`]: the [`Cache`] engine limited to one node or one level.

use std::collections::BTreeMap;

use corral_core::Framework;

use super::{Cache, CachedNode};

/// A cache of one node (Curator's `NodeCache`): the [`Cache`] engine limited to its root.
///
/// A persistent watch is recursive like every cache's, so changes below the node cost a
/// notification each (ignored); with one-shot watches ([`WatchMode::OneShot`](super::WatchMode))
/// it holds one data watch on the node and nothing below.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::time::Duration;
/// use corral_recipes::{CreateMode, Framework, cache::{CacheEvent, NodeCache}};
/// use futures::StreamExt;
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// fw.create("/leader", "node-1", CreateMode::Persistent).await?;
/// let leader = NodeCache::start(&fw, "/leader");
/// let mut events = leader.cache().events();
/// leader.cache().wait_initialized(Duration::from_secs(10)).await?;
/// fw.set_data("/leader", "node-2", None).await?;
/// while let Some(event) = events.next().await {
///     if let CacheEvent::Changed { new, .. } = event {
///         assert_eq!(&new.data[..], b"node-2");
///         break;
///     }
/// }
/// assert_eq!(&leader.current().unwrap().data[..], b"node-2");
/// # leader.cache().close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NodeCache {
    cache: Cache,
}

impl NodeCache {
    /// Starts caching the node at `path`.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, as [`CacheBuilder::start`](super::CacheBuilder::start).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_recipes::{Framework, cache::NodeCache};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// let node = NodeCache::start(&fw, "/config");
    /// assert_eq!(node.cache().root(), "/config");
    /// node.cache().wait_initialized(Duration::from_secs(10)).await?;
    /// # node.cache().close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn start(fw: &Framework, path: impl Into<String>) -> Self {
        Self { cache: Cache::builder(fw, path).max_depth(0).start() }
    }

    /// The node's cached state, or `None` if it does not exist.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_recipes::{Framework, cache::NodeCache};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// let node = NodeCache::start(&fw, "/maintenance");
    /// node.cache().wait_initialized(Duration::from_secs(10)).await?;
    /// assert_eq!(node.current(), None);
    /// # node.cache().close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn current(&self) -> Option<CachedNode> {
        self.cache.get(self.cache.root())
    }

    /// The underlying cache (events, initialization, close).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_recipes::{CreateMode, Framework, cache::NodeCache};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// fw.create("/config", "v1", CreateMode::Persistent).await?;
    /// let node = NodeCache::start(&fw, "/config");
    /// node.cache().wait_initialized(Duration::from_secs(10)).await?;
    /// assert!(node.cache().is_initialized());
    /// node.cache().close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn cache(&self) -> &Cache {
        &self.cache
    }
}

/// A cache of a node's children (what Curator's `PathChildrenCache` is used for): the [`Cache`]
/// engine limited to one level.
///
/// The parent itself is cached too (it is the root); [`ChildrenCache::current`] leaves it out.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::time::Duration;
/// use corral_recipes::{CreateMode, Framework, cache::{CacheEvent, ChildrenCache}};
/// use futures::StreamExt;
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// fw.ensure_path("/members").await?;
/// let members = ChildrenCache::start(&fw, "/members");
/// let mut events = members.cache().events();
/// members.cache().wait_initialized(Duration::from_secs(10)).await?;
/// fw.create("/members/m1", "10.0.0.1", CreateMode::Ephemeral).await?;
/// while let Some(event) = events.next().await {
///     if matches!(event, CacheEvent::Created { path, .. } if path == "/members/m1") {
///         break;
///     }
/// }
/// assert_eq!(members.current().into_keys().collect::<Vec<_>>(), ["m1"]);
/// # members.cache().close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ChildrenCache {
    cache: Cache,
}

impl ChildrenCache {
    /// Starts caching the children of `path` (with their data).
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, as [`CacheBuilder::start`](super::CacheBuilder::start).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_recipes::{Framework, cache::ChildrenCache};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// fw.ensure_path("/queue/item-1/details").await?;
    /// let queue = ChildrenCache::start(&fw, "/queue");
    /// queue.cache().wait_initialized(Duration::from_secs(10)).await?;
    /// assert!(queue.cache().get("/queue/item-1/details").is_none()); // one level only
    /// # queue.cache().close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn start(fw: &Framework, path: impl Into<String>) -> Self {
        Self { cache: Cache::builder(fw, path).max_depth(1).start() }
    }

    /// The cached children: name → node.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_recipes::{CreateMode, Framework, cache::ChildrenCache};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// fw.ensure_path("/members").await?;
    /// fw.create("/members/m1", "10.0.0.1", CreateMode::Persistent).await?;
    /// fw.create("/members/m2", "10.0.0.2", CreateMode::Persistent).await?;
    /// let members = ChildrenCache::start(&fw, "/members");
    /// members.cache().wait_initialized(Duration::from_secs(10)).await?;
    /// let current = members.current();
    /// assert_eq!(current.keys().collect::<Vec<_>>(), ["m1", "m2"]);
    /// assert_eq!(&current["m2"].data[..], b"10.0.0.2");
    /// # members.cache().close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn current(&self) -> BTreeMap<String, CachedNode> {
        let root = self.cache.root().to_owned();
        let prefix = if root == "/" { "/".to_owned() } else { format!("{root}/") };
        self.cache
            .snapshot()
            .into_iter()
            .filter(|(p, _)| p.len() > prefix.len() && p.starts_with(&prefix))
            .map(|(p, n)| (p[prefix.len()..].to_owned(), n))
            .collect()
    }

    /// The underlying cache (events, initialization, close).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_recipes::{Framework, cache::ChildrenCache};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// fw.ensure_path("/members").await?;
    /// let members = ChildrenCache::start(&fw, "/members");
    /// members.cache().wait_initialized(Duration::from_secs(10)).await?;
    /// assert_eq!(members.cache().children("/members"), Vec::<String>::new());
    /// members.cache().close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn cache(&self) -> &Cache {
        &self.cache
    }
}
