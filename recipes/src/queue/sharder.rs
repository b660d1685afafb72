//! [`QueueSharder`]: one logical queue spread over shard queues under a path, a new shard added
//! when one grows past a threshold (Curator's `QueueSharder` and `QueueSharderPolicies`).
//!
//! # Layout
//!
//! As Curator: each shard is a queue at `<queue path>/queue-<uuid>` (any child of the queue path
//! counts as a shard, so a Curator process and this one share the shards), and one
//! [`LeaderLatch`] at the leader path chooses which sharder may add shards.
//!
//! # How it works
//!
//! On start the sharder makes a queue handle for every shard it finds, or creates one shard if
//! there is none. Every [`QueueSharderPolicies::threshold_check`] (and on
//! [`QueueSharder::check_threshold`]) it lists the shards again — so it learns shards other
//! processes added — and counts each shard's items: a shard with at least
//! [`QueueSharderPolicies::new_queue_threshold`] items stops being preferred, one with at most
//! half of it becomes preferred again, and if some shard was over the threshold and this
//! sharder is the leader, it adds a shard, up to [`QueueSharderPolicies::max_queues`].
//! [`QueueSharder::queue`] hands out a preferred shard at random (any shard when none is
//! preferred).
//!
//! # Connection states
//!
//! The check runs whatever the connection state; one that fails (the connection is down) is
//! logged and tried again at the next interval. Leadership is the latch's: on SUSPENDED and LOST
//! it is given up, so no shard is added until it is won again. Shards are persistent: they
//! outlive sessions, and nothing is removed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use corral_core::{CreateMode, Framework, framework::Create};

use crate::Result;
use crate::leader_latch::LeaderLatch;
use crate::task::{RecipeTask, pause_unless_stopped};

/// The prefix of a shard's name (Curator's `QUEUE_PREFIX`).
pub const SHARD_PREFIX: &str = "queue-";

/// When a [`QueueSharder`] adds shards (Curator's `QueueSharderPolicies`, with its defaults).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use corral_recipes::queue::QueueSharderPolicies;
///
/// let defaults = QueueSharderPolicies::default();
/// assert_eq!(defaults.new_queue_threshold(), 10_000);
/// assert_eq!(defaults.threshold_check(), Duration::from_secs(30));
/// assert_eq!(defaults.max_queues(), 10);
/// let busy = QueueSharderPolicies::default().with_new_queue_threshold(500).with_max_queues(32);
/// assert_eq!((busy.new_queue_threshold(), busy.max_queues()), (500, 32));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSharderPolicies {
    new_queue_threshold: u32,
    threshold_check: Duration,
    max_queues: usize,
}

impl Default for QueueSharderPolicies {
    fn default() -> Self {
        Self { new_queue_threshold: 10_000, threshold_check: Duration::from_secs(30), max_queues: 10 }
    }
}

impl QueueSharderPolicies {
    /// The number of items in a shard that makes the leader add a shard (10,000).
    ///
    /// # Examples
    ///
    /// See [`QueueSharderPolicies`].
    pub fn new_queue_threshold(&self) -> u32 {
        self.new_queue_threshold
    }

    /// Sets [`QueueSharderPolicies::new_queue_threshold`] (at least 1).
    ///
    /// # Examples
    ///
    /// See [`QueueSharderPolicies`].
    pub fn with_new_queue_threshold(mut self, threshold: u32) -> Self {
        self.new_queue_threshold = threshold.max(1);
        self
    }

    /// How often the shards are counted (30 s).
    ///
    /// # Examples
    ///
    /// See [`QueueSharderPolicies`].
    pub fn threshold_check(&self) -> Duration {
        self.threshold_check
    }

    /// Sets [`QueueSharderPolicies::threshold_check`] (at least 1 ms).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use corral_recipes::queue::QueueSharderPolicies;
    ///
    /// let eager = QueueSharderPolicies::default().with_threshold_check(Duration::from_secs(1));
    /// assert_eq!(eager.threshold_check(), Duration::from_secs(1));
    /// ```
    pub fn with_threshold_check(mut self, every: Duration) -> Self {
        self.threshold_check = every.max(Duration::from_millis(1));
        self
    }

    /// The most shards the leader adds up to (10).
    ///
    /// # Examples
    ///
    /// See [`QueueSharderPolicies`].
    pub fn max_queues(&self) -> usize {
        self.max_queues
    }

    /// Sets [`QueueSharderPolicies::max_queues`] (at least 1).
    ///
    /// # Examples
    ///
    /// See [`QueueSharderPolicies`].
    pub fn with_max_queues(mut self, max: usize) -> Self {
        self.max_queues = max.max(1);
        self
    }
}

/// Makes the queue handle of one shard from its path (Curator's `QueueAllocator`).
type Allocate<Q> = dyn Fn(&Framework, &str) -> Q + Send + Sync;

/// The shards known here: queue handles by path, and the preferred ones.
#[derive(Debug)]
struct Shards<Q> {
    queues: BTreeMap<String, Q>,
    preferred: BTreeSet<String>,
}

struct Shared<Q> {
    fw: Framework,
    path: String,
    policies: QueueSharderPolicies,
    allocate: Box<Allocate<Q>>,
    shards: StdMutex<Shards<Q>>,
    latch: LeaderLatch,
}

impl<Q> std::fmt::Debug for Shared<Q> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueSharder")
            .field("path", &self.path)
            .field("policies", &self.policies)
            .finish_non_exhaustive()
    }
}

/// One logical queue over shard queues that multiply as they fill (Curator's `QueueSharder`).
///
/// `Q` is any queue handle (a [`DistributedQueue`](super::DistributedQueue), a
/// [`SimpleDistributedQueue`](super::SimpleDistributedQueue), …), made for each shard by the
/// allocator given to [`QueueSharder::start`]. Producers put into [`QueueSharder::queue`];
/// consumers consume every shard ([`QueueSharder::queues`]).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use corral_recipes::queue::{DistributedQueue, QueueSharder, QueueSharderPolicies};
///
/// let policies = QueueSharderPolicies::default().with_new_queue_threshold(3);
/// let sharder = QueueSharder::start(&fw, "/jobs", "/jobs-leader", policies, |fw, path| DistributedQueue::new(fw, path)).await?;
/// assert_eq!(sharder.queue_paths().len(), 1); // one shard to begin with
/// for i in 0..3 {
///     sharder.queue().put(&format!("job {i}").into()).await?;
/// }
/// sharder.leadership().wait_for(|leader| *leader).await?;
/// sharder.check_threshold().await?; // the shard is full: the leader adds one
/// assert_eq!(sharder.queue_paths().len(), 2);
/// assert!(sharder.queue_paths().iter().all(|p| p.starts_with("/jobs/queue-")));
/// sharder.close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct QueueSharder<Q> {
    shared: Arc<Shared<Q>>,
    task: RecipeTask,
}

impl<Q: Clone + Send + Sync + 'static> QueueSharder<Q> {
    /// Starts sharding under `queue_path` with the leader latch at `leader_path`: finds the
    /// shards (creating the queue path and one shard if there are none), joins the election and
    /// starts the periodic check. `allocate` makes the queue handle of a shard from its path.
    ///
    /// # Errors
    ///
    /// Connection errors once the framework's retry policy gives up; server errors such as
    /// NoAuth; [`corral_core::Error::InvalidPath`] (wrapped in [`Error::Core`](crate::Error::Core)) for an invalid
    /// path.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the queue path and a first shard may have been created when the
    /// future is dropped (they are persistent and harmless).
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    ///
    /// # Examples
    ///
    /// See [`QueueSharder`].
    pub async fn start<F>(
        fw: &Framework,
        queue_path: impl Into<String>,
        leader_path: impl Into<String>,
        policies: QueueSharderPolicies,
        allocate: F,
    ) -> Result<Self>
    where
        F: Fn(&Framework, &str) -> Q + Send + Sync + 'static,
    {
        let path = queue_path.into();
        fw.ensure_path(&path).await?;
        let latch = LeaderLatch::start(fw, leader_path, "");
        let shared = Arc::new(Shared {
            fw: fw.clone(),
            path,
            policies,
            allocate: Box::new(allocate),
            shards: StdMutex::new(Shards { queues: BTreeMap::new(), preferred: BTreeSet::new() }),
            latch,
        });
        let existing = shared.list().await?;
        if existing.is_empty() {
            shared.add_new().await?;
        }
        let task = RecipeTask::spawn({
            let shared = shared.clone();
            move |mut stop| async move {
                while pause_unless_stopped(shared.policies.threshold_check, &mut stop).await {
                    if let Err(e) = shared.check().await {
                        tracing::warn!(path = %shared.path, error = %e, "queue sharder check failed; trying again at the next one");
                    }
                }
            }
        });
        Ok(Self { shared, task })
    }

    /// A shard to put into: a preferred one at random, or any one when none is preferred
    /// (Curator's `getQueue`).
    ///
    /// # Examples
    ///
    /// See [`QueueSharder`].
    pub fn queue(&self) -> Q {
        let shards = self.shared.lock();
        let pick = |n: usize| fastrand::usize(..n.max(1));
        let path = if shards.preferred.is_empty() {
            shards.queues.keys().nth(pick(shards.queues.len()))
        } else {
            shards.preferred.iter().nth(pick(shards.preferred.len()))
        };
        // `start` made at least one shard, and shards are never removed.
        path.and_then(|p| shards.queues.get(p)).or_else(|| shards.queues.values().next()).cloned().expect("a shard")
    }

    /// Every shard known here, with its path (for consumers: each shard is a queue to consume).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::queue::{QueueSharder, QueueSharderPolicies, SimpleDistributedQueue};
    ///
    /// let sharder = QueueSharder::start(&fw, "/jobs", "/jobs-leader", QueueSharderPolicies::default(), |fw, path| {
    ///     SimpleDistributedQueue::new(fw, path)
    /// })
    /// .await?;
    /// sharder.queue().offer("job").await?;
    /// let mut taken = Vec::new();
    /// for (_, shard) in sharder.queues() {
    ///     while let Some(item) = shard.poll().await? {
    ///         taken.push(item);
    ///     }
    /// }
    /// assert_eq!(taken, ["job"]);
    /// sharder.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn queues(&self) -> Vec<(String, Q)> {
        self.shared.lock().queues.iter().map(|(p, q)| (p.clone(), q.clone())).collect()
    }

    /// The paths of every shard known here, in order.
    ///
    /// # Examples
    ///
    /// See [`QueueSharder`].
    pub fn queue_paths(&self) -> Vec<String> {
        self.shared.lock().queues.keys().cloned().collect()
    }

    /// Whether this sharder is the one that adds shards, as a watch channel.
    ///
    /// # Examples
    ///
    /// See [`QueueSharder`].
    pub fn leadership(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shared.latch.leadership()
    }

    /// Runs the check the sharder runs every [`QueueSharderPolicies::threshold_check`] now:
    /// learns new shards, updates the preferred ones and, if a shard is over the threshold and
    /// this sharder leads, adds a shard (up to the maximum).
    ///
    /// # Errors
    ///
    /// Connection errors once the framework's retry policy gives up; server errors such as
    /// NoAuth.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a shard may have been created when the future is dropped.
    ///
    /// # Examples
    ///
    /// See [`QueueSharder`].
    pub async fn check_threshold(&self) -> Result<()> {
        self.shared.check().await
    }

    /// Stops the periodic check and leaves the election. The shards and their items stay.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the check is told to stop on the first poll; the latch closes in the
    /// background if the future is dropped.
    ///
    /// # Examples
    ///
    /// See [`QueueSharder`].
    pub async fn close(&self) {
        self.task.stop().await;
        self.shared.latch.close().await;
    }
}

impl<Q: Clone + Send + Sync + 'static> Shared<Q> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shards<Q>> {
        self.shards.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lists the shards, making a handle for every new one; returns their paths.
    async fn list(&self) -> Result<Vec<String>> {
        let children = self.fw.with_retry(|client| async move { client.get_children(&self.path).await }).await?;
        let paths: Vec<String> = children.iter().map(|c| format!("{}/{c}", self.path.trim_end_matches('/'))).collect();
        for path in &paths {
            self.adopt(path);
        }
        Ok(paths)
    }

    /// Makes a handle for the shard at `path` if there is none yet; a new shard is preferred.
    fn adopt(&self, path: &str) {
        let mut shards = self.lock();
        if !shards.queues.contains_key(path) {
            let queue = (self.allocate)(&self.fw, path);
            shards.queues.insert(path.to_owned(), queue);
            shards.preferred.insert(path.to_owned());
        }
    }

    /// Creates a new shard and adopts it.
    async fn add_new(&self) -> Result<()> {
        let path = format!("{}/{SHARD_PREFIX}{}", self.path.trim_end_matches('/'), uuid::Uuid::new_v4());
        let spec = Create::new(CreateMode::Persistent).parents().idempotent();
        self.fw.create(&path, "", spec).await?;
        self.adopt(&path);
        Ok(())
    }

    /// Curator's `checkThreshold`.
    async fn check(&self) -> Result<()> {
        let threshold = self.policies.new_queue_threshold;
        let mut over = None;
        for path in self.list().await? {
            let stat = self.fw.with_retry(|client| {
                let path = path.clone();
                async move { client.exists(&path).await }
            });
            // A shard deleted meanwhile counts as empty.
            let items = stat.await?.map_or(0, |s| u32::try_from(s.num_children).unwrap_or(0));
            let mut shards = self.lock();
            if items >= threshold {
                over = Some(items);
                shards.preferred.remove(&path);
            } else if items <= threshold / 2 {
                shards.preferred.insert(path);
            }
        }
        let Some(items) = over else { return Ok(()) };
        if !self.latch.has_leadership() {
            return Ok(());
        }
        let count = self.lock().queues.len();
        if count < self.policies.max_queues {
            tracing::info!(path = %self.path, items, threshold, "adding a queue shard: a shard is over the threshold");
            self.add_new().await
        } else {
            tracing::warn!(path = %self.path, max = self.policies.max_queues, "the maximum number of queue shards is reached");
            Ok(())
        }
    }
}
