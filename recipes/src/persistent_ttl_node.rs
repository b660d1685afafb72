//! [`PersistentTtlNode`]: a node that lives as long as its process keeps touching it, in Curator's
//! layout (`PersistentTtlNode` of Curator 5.4).
//!
//! # Layout
//!
//! The node at the path is a **container** holding the recipe's data; under it, a TTL child
//! named [`TOUCH_NODE_NAME`] (`touch`), created with the TTL and touched (its data set again)
//! every `ttl / 2`, as Curator does, with Curator's default data (the local address). While it is
//! touched, the child lives and so does the container. Once the process stops — closed, crashed
//! or cut off — the server deletes the child `ttl` after its last touch, and then the empty
//! container. A Java process using Curator's `PersistentTtlNode` on the same path sees, and
//! makes, the same two nodes.
//!
//! Unlike Curator, the container and its first `touch` are created in one transaction, so that
//! the server's container sweep never finds the container empty in between (ZOOKEEPER-3546).
//!
//! The nodes are persistent, bound to no session: the recipe creates them on any session, and a
//! lost session changes nothing for them. TTL nodes need ZooKeeper ≥ 3.5.3 with
//! `zookeeper.extendedTypesEnabled=true` (the embedded server has them on).
//!
//! # Connection states
//!
//! | state | what happens |
//! |---|---|
//! | SUSPENDED | touches fail and are tried again after the recipes' backoff; the nodes live on until the TTL passes |
//! | RECONNECTED, LOST then a new session | the next touch goes through; if the TTL passed meanwhile, both nodes are created again |

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use bytes::Bytes;
use corral_core::Error as CoreError;
use corral_core::framework::Create;
use corral_core::proto::path;
use corral_core::{CreateMode, CreateOptions, ErrorCode, Framework, Op};
use tokio::sync::watch;

use crate::task::{Backoff, RecipeTask};
use crate::{Error, Result};

/// The name of the TTL child that keeps a [`PersistentTtlNode`] alive (Curator's
/// `PersistentTtlNode.DEFAULT_CHILD_NODE_NAME`).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use std::time::Duration;
/// use corral_recipes::persistent_ttl_node::{PersistentTtlNode, TOUCH_NODE_NAME};
///
/// let node = PersistentTtlNode::start(&fw, "/workers/w1", Duration::from_secs(10), "ready");
/// node.wait_for_initial_create(Duration::from_secs(10)).await?;
/// assert_eq!(fw.client().get_children("/workers/w1").await?, [TOUCH_NODE_NAME]);
/// # node.close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
pub const TOUCH_NODE_NAME: &str = "touch";

/// A container node with data that lives while this recipe touches its TTL child (Curator's
/// `PersistentTtlNode`; see the [module docs](self) for the layout).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::time::Duration;
/// use corral_recipes::{Framework, persistent_ttl_node::PersistentTtlNode};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let node = PersistentTtlNode::start(&fw, "/workers/w1", Duration::from_secs(10), "ready");
/// node.wait_for_initial_create(Duration::from_secs(10)).await?;
/// assert_eq!(&fw.client().get_data("/workers/w1").await?.0[..], b"ready");
/// node.set_data("busy").await?;
/// assert_eq!(&fw.client().get_data("/workers/w1").await?.0[..], b"busy");
/// node.close().await; // stops touching: both nodes go once the TTL passes
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PersistentTtlNode {
    fw: Framework,
    path: String,
    data: Arc<StdMutex<Bytes>>,
    created: watch::Receiver<bool>,
    task: RecipeTask,
}

/// What the background task keeps.
#[derive(Debug, Clone)]
struct Spec {
    path: String,
    touch: String,
    ttl: Duration,
}

impl PersistentTtlNode {
    /// Keeps a container at `path` with `data`, and its TTL child [`TOUCH_NODE_NAME`] touched
    /// every `ttl / 2`, starting now in the background; returns at once. Missing parents of `path`
    /// are created as containers.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::persistent_ttl_node::PersistentTtlNode;
    ///
    /// let node = PersistentTtlNode::start(&fw, "/workers/w1", Duration::from_secs(10), "ready");
    /// node.wait_for_initial_create(Duration::from_secs(10)).await?;
    /// assert_eq!(&fw.client().get_data("/workers/w1").await?.0[..], b"ready");
    /// assert!(fw.client().exists("/workers/w1/touch").await?.is_some());
    /// # node.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn start(fw: &Framework, path: impl Into<String>, ttl: Duration, data: impl Into<Bytes>) -> Self {
        let path = path.into();
        let spec = Spec { touch: format!("{}/{TOUCH_NODE_NAME}", path.trim_end_matches('/')), path: path.clone(), ttl };
        let data = Arc::new(StdMutex::new(data.into()));
        let (created_tx, created) = watch::channel(false);
        let task = RecipeTask::spawn({
            let (fw, data) = (fw.clone(), data.clone());
            move |stop| run(fw, spec, data, created_tx, stop)
        });
        Self { fw: fw.clone(), path, data, created, task }
    }

    /// The container's path.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use std::time::Duration;
    /// # use corral_recipes::persistent_ttl_node::PersistentTtlNode;
    /// let node = PersistentTtlNode::start(&fw, "/workers/w1", Duration::from_secs(10), "");
    /// assert_eq!(node.path(), "/workers/w1");
    /// # node.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Waits until both nodes have been created (or found) once.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] when `timeout` passes first; [`Error::CLOSED`](Error::Core) if the
    /// recipe was closed before.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::persistent_ttl_node::PersistentTtlNode;
    ///
    /// let node = PersistentTtlNode::start(&fw, "/workers/w1", Duration::from_secs(10), "ready");
    /// node.wait_for_initial_create(Duration::from_secs(10)).await?;
    /// assert!(fw.client().exists("/workers/w1/touch").await?.is_some());
    /// # node.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_initial_create(&self, timeout: Duration) -> Result<()> {
        let mut created = self.created.clone();
        match tokio::time::timeout(timeout, created.wait_for(|c| *c)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(Error::CLOSED),
            Err(_) => Err(Error::TimedOut { after: timeout }),
        }
    }

    /// The data the container is kept with.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use std::time::Duration;
    /// # use corral_recipes::persistent_ttl_node::PersistentTtlNode;
    /// let node = PersistentTtlNode::start(&fw, "/workers/w1", Duration::from_secs(10), "ready");
    /// assert_eq!(&node.data()[..], b"ready");
    /// # node.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn data(&self) -> Bytes {
        self.data.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sets the container's data: kept for every later (re-)creation, and written now if the
    /// container exists (if not, the next touch creates it with this data).
    ///
    /// # Errors
    ///
    /// Connection errors once the framework's retries give up (the data is kept all the same);
    /// server errors such as NoAuth as [`corral_core::Error::Server`].
    ///
    /// # Cancel safety
    ///
    /// The data is kept from the first poll; the write may be applied even if the future is
    /// dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::persistent_ttl_node::PersistentTtlNode;
    ///
    /// let node = PersistentTtlNode::start(&fw, "/workers/w1", Duration::from_secs(10), "ready");
    /// node.wait_for_initial_create(Duration::from_secs(10)).await?;
    /// node.set_data("draining").await?;
    /// assert_eq!(&fw.client().get_data("/workers/w1").await?.0[..], b"draining");
    /// # node.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn set_data(&self, data: impl Into<Bytes>) -> Result<()> {
        let data = data.into();
        *self.data.lock().unwrap_or_else(|e| e.into_inner()) = data.clone();
        match self.fw.set_data(&self.path, data, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_no_node() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Stops touching and waits until the background task has ended. As in Curator, nothing is
    /// deleted: the server deletes the `touch` child once the TTL has passed since its last
    /// touch, and then the empty container. Dropping the recipe stops it too, without waiting.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the stop is signalled on the first poll and cannot be taken back.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::persistent_ttl_node::PersistentTtlNode;
    ///
    /// let node = PersistentTtlNode::start(&fw, "/workers/w1", Duration::from_millis(100), "");
    /// node.wait_for_initial_create(Duration::from_secs(10)).await?;
    /// node.close().await;
    /// // Past the TTL, the server's sweeps take the child, then the empty container.
    /// while fw.client().exists("/workers/w1").await?.is_some() {
    ///     tokio::time::sleep(Duration::from_millis(50)).await;
    ///     server.sweep_now();
    /// }
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn close(&self) {
        self.task.stop().await;
    }
}

async fn run(
    fw: Framework,
    spec: Spec,
    data: Arc<StdMutex<Bytes>>,
    created: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut states = fw.connection_state();
    let mut backoff = Backoff::new(&fw);
    let period = (spec.ttl / 2).max(Duration::from_millis(1));
    while !*stop.borrow() {
        // Persistent nodes: a touch abandoned on stop leaves nothing that needs cleaning up.
        let touched = tokio::select! {
            touched = touch(&fw, &spec, &data) => touched,
            _ = stop.changed() => continue,
        };
        match touched {
            Ok(()) => {
                created.send_replace(true);
                backoff.reset();
                crate::task::pause_unless_stopped(period, &mut stop).await;
            }
            Err(e) => {
                tracing::debug!(path = %spec.path, error = %e, "could not touch the TTL node; trying again");
                backoff.wait(&mut states, &mut stop).await;
            }
        }
    }
}

/// One touch: sets the child's data; creates what is missing (the container with its data and
/// the child in one transaction, the child alone under an existing container, missing
/// ancestors as containers).
async fn touch(fw: &Framework, spec: &Spec, data: &StdMutex<Bytes>) -> Result<()> {
    let stamp = crate::default_data::local_address().await;
    match fw.set_data(&spec.touch, stamp.clone(), None).await {
        Ok(_) => return Ok(()),
        Err(e) if e.is_no_node() => {}
        Err(e) => return Err(e.into()),
    }
    let acl = fw.acl_provider();
    let ours = data.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let container = CreateOptions::new(CreateMode::Container).with_acl(acl.acl_for_path(&spec.path));
    let child =
        CreateOptions::new(CreateMode::PersistentWithTtl).with_ttl(spec.ttl).with_acl(acl.acl_for_path(&spec.touch));
    let both = vec![
        Op::create(spec.path.clone(), ours.clone(), container),
        Op::create(spec.touch.clone(), stamp.clone(), child),
    ];
    match fw.transaction(both.clone()).await {
        Ok(_) => Ok(()),
        Err(CoreError::MultiFailed { index: 0, code: ErrorCode::NodeExists, .. }) => {
            // The container is there (ours from before, or another's, adopted as Curator
            // does): the child alone, and the container's data made ours.
            let create = Create::new(CreateMode::PersistentWithTtl).with_ttl(spec.ttl);
            match fw.create(&spec.touch, stamp, create).await {
                Ok(_) => {}
                Err(e) if e.is_node_exists() => {}
                Err(e) => return Err(e.into()),
            }
            fw.set_data(&spec.path, ours, None).await?;
            Ok(())
        }
        Err(CoreError::MultiFailed { index: 0, code: ErrorCode::NoNode, .. }) => {
            // Missing ancestors: made as containers, then both nodes together.
            let parent = path::parent(&spec.path).unwrap_or("/");
            match fw.create(parent, Bytes::new(), Create::new(CreateMode::Container).container_parents()).await {
                Ok(_) => {}
                Err(e) if e.is_node_exists() => {}
                Err(e) => return Err(e.into()),
            }
            match fw.transaction(both).await {
                Ok(_) => Ok(()),
                // Raced with another creator: the next touch sorts it out.
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}
