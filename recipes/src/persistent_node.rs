//! [`PersistentNode`]: a node that stays there — re-created after a new session and after
//! being deleted, with its latest data (Curator's `PersistentNode`).
//!
//! # Connection states
//!
//! | state | what happens |
//! |---|---|
//! | SUSPENDED | nothing: an ephemeral node is still there while the session lives |
//! | RECONNECTED (same session) | the node is checked and re-created if it was deleted meanwhile |
//! | LOST, then the new session | the node is created again with the latest data, after a short jittered pause |
//!
//! If the node exists when the recipe creates it: a persistent node is adopted (its data set to
//! ours); an ephemeral node owned by another session (an older one of ours, not yet reaped, or
//! another process's, e.g. a [`GroupMember`](crate::group_member::GroupMember) with the same id)
//! is waited out, then created as ours — never adopted, so it cannot vanish with its old owner.
//! [`PersistentNode::close`] ends that wait at once and leaves the other session's node alone.

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use crate::{Error, Result};
use bytes::Bytes;
use corral_core::framework::{Create, Delete, Session};
use corral_core::{CreateMode, EventType, Framework};
use tokio::sync::watch;

use crate::task::{self, RecipeTask};

/// A node kept in existence by this process (Curator's `PersistentNode`).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::time::Duration;
/// use corral_recipes::{CreateMode, Framework, persistent_node::PersistentNode};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let node = PersistentNode::start(&fw, "/workers/w1", CreateMode::Ephemeral, "ready");
/// node.wait_for_initial_create(Duration::from_secs(10)).await?;
/// assert_eq!(node.actual_path().as_deref(), Some("/workers/w1"));
/// node.set_data("busy").await?;
/// assert_eq!(&fw.client().get_data("/workers/w1").await?.0[..], b"busy");
/// node.close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PersistentNode {
    fw: Framework,
    shared: Arc<Shared>,
    actual: watch::Receiver<Option<String>>,
    task: RecipeTask,
}

#[derive(Debug)]
struct Shared {
    data: StdMutex<Bytes>,
}

/// How the recipe creates its node.
#[derive(Debug, Clone)]
struct Spec {
    path: String,
    mode: CreateMode,
    protected: bool,
    ttl: Option<Duration>,
}

impl PersistentNode {
    /// Keeps a node at `path` in `mode` with `data`, starting now in the background, and returns
    /// at once. Missing parents are created as containers.
    ///
    /// With a sequential `mode`, `path` is the prefix and every (re-)creation makes a new node: see
    /// [`PersistentNode::actual_path`].
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
    /// use corral_recipes::{CreateMode, persistent_node::PersistentNode};
    ///
    /// let node = PersistentNode::start(&fw, "/workers/w1", CreateMode::Ephemeral, "ready");
    /// node.wait_for_initial_create(Duration::from_secs(10)).await?;
    /// fw.client().delete("/workers/w1", None).await?; // someone deletes it...
    /// // ... and the recipe puts it back, with its data.
    /// while fw.client().exists("/workers/w1").await?.is_none() {
    ///     tokio::time::sleep(Duration::from_millis(10)).await;
    /// }
    /// assert_eq!(&fw.client().get_data("/workers/w1").await?.0[..], b"ready");
    /// # node.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn start(fw: &Framework, path: impl Into<String>, mode: CreateMode, data: impl Into<Bytes>) -> Self {
        Self::spawn(fw, Spec { path: path.into(), mode, protected: false, ttl: None }, data.into())
    }

    /// Like [`PersistentNode::start`], with Curator's protected names (`_c_<uuid>-` before the
    /// node's name), which sequential ephemeral nodes need to be found again after a connection
    /// loss.
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
    /// use corral_recipes::{CreateMode, persistent_node::PersistentNode};
    ///
    /// let mode = CreateMode::EphemeralSequential;
    /// let node = PersistentNode::start_protected(&fw, "/workers/w-", mode, "");
    /// node.wait_for_initial_create(Duration::from_secs(10)).await?;
    /// let path = node.actual_path().expect("created");
    /// assert!(path.starts_with("/workers/_c_") && path.ends_with("-w-0000000000"));
    /// # node.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn start_protected(fw: &Framework, path: impl Into<String>, mode: CreateMode, data: impl Into<Bytes>) -> Self {
        Self::spawn(fw, Spec { path: path.into(), mode, protected: true, ttl: None }, data.into())
    }

    /// A TTL node (ZooKeeper ≥ 3.5.3 with extended types): persistent, deleted by the server
    /// once it has had no children and no change for `ttl` — and kept alive by this recipe
    /// touching it (setting its data again) every `ttl / 2` (Curator's `PersistentTtlNode`).
    ///
    /// Closing the recipe deletes the node at once; if the process is gone instead, the server
    /// deletes it `ttl` after its last touch.
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
    /// use corral_recipes::persistent_node::PersistentNode;
    ///
    /// let node = PersistentNode::start_ttl(&fw, "/workers/w1", Duration::from_secs(1), "ready");
    /// node.wait_for_initial_create(Duration::from_secs(10)).await?;
    /// tokio::time::sleep(Duration::from_secs(2)).await; // well past the TTL
    /// server.sweep_now(); // the server deletes the TTL nodes that are due
    /// assert!(fw.client().exists("/workers/w1").await?.is_some()); // kept alive
    /// # node.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn start_ttl(fw: &Framework, path: impl Into<String>, ttl: Duration, data: impl Into<Bytes>) -> Self {
        let spec = Spec { path: path.into(), mode: CreateMode::PersistentWithTtl, protected: false, ttl: Some(ttl) };
        Self::spawn(fw, spec, data.into())
    }

    fn spawn(fw: &Framework, spec: Spec, data: Bytes) -> Self {
        let shared = Arc::new(Shared { data: StdMutex::new(data) });
        let (actual_tx, actual) = watch::channel(None);
        let (run_fw, run_shared) = (fw.clone(), shared.clone());
        let task = RecipeTask::spawn(move |stop| run(run_fw, spec, run_shared, actual_tx, stop));
        Self { fw: fw.clone(), shared, actual, task }
    }

    /// The node's actual path (with the sequence suffix or protected prefix), once created;
    /// `None` while it does not exist (before the first create, while it is being re-created, and
    /// after [`PersistentNode::close`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::{CreateMode, persistent_node::PersistentNode};
    ///
    /// let node = PersistentNode::start(&fw, "/jobs/job-", CreateMode::EphemeralSequential, "");
    /// node.wait_for_initial_create(Duration::from_secs(10)).await?;
    /// assert_eq!(node.actual_path().as_deref(), Some("/jobs/job-0000000000"));
    /// node.close().await;
    /// assert_eq!(node.actual_path(), None);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn actual_path(&self) -> Option<String> {
        self.actual.borrow().clone()
    }

    /// The node's path as a watch channel: `Some(path)` while it exists, `None` while it is
    /// being re-created. The channel closes when the recipe has stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::{CreateMode, persistent_node::PersistentNode};
    ///
    /// let node = PersistentNode::start(&fw, "/jobs/job-", CreateMode::EphemeralSequential, "");
    /// let mut path = node.path_changes();
    /// let created = path.wait_for(Option::is_some).await?.clone();
    /// assert_eq!(created.as_deref(), Some("/jobs/job-0000000000"));
    /// # node.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn path_changes(&self) -> watch::Receiver<Option<String>> {
        self.actual.clone()
    }

    /// Waits until the node exists; returns at once while it does.
    ///
    /// Despite its name (Curator's `waitForInitialCreate`), it also waits while the node is being
    /// re-created.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] after `timeout`; [`corral_core::Error::Closed`] (as [`Error::Core`]) if the recipe stops first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches the recipe's state.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::{CreateMode, persistent_node::PersistentNode};
    ///
    /// let node = PersistentNode::start(&fw, "/workers/w1", CreateMode::Ephemeral, "ready");
    /// node.wait_for_initial_create(Duration::from_secs(10)).await?;
    /// assert!(fw.client().exists("/workers/w1").await?.is_some());
    /// # node.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_initial_create(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.actual.clone();
        match tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await {
            Err(_) => Err(Error::TimedOut { after: timeout }),
            Ok(Err(_)) => Err(Error::CLOSED),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// The data the node is (re-)created with: the latest given to [`PersistentNode::start`] or
    /// [`PersistentNode::set_data`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::{CreateMode, persistent_node::PersistentNode};
    /// let node = PersistentNode::start(&fw, "/workers/w1", CreateMode::Ephemeral, "ready");
    /// assert_eq!(node.data(), "ready");
    /// # node.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn data(&self) -> Bytes {
        self.shared.data.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sets the node's data now, and for every re-creation. If the node does not exist at the
    /// moment, only the data for the next creation is changed.
    ///
    /// # Errors
    ///
    /// Connection errors after retries, and server errors such as NoAuth, when the node exists but
    /// could not be written; the new data is kept either way and used by the next re-creation.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: once the future is polled, the new data is kept for re-creations even if
    /// the future is dropped, while the live node may or may not have it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::{CreateMode, persistent_node::PersistentNode};
    ///
    /// let node = PersistentNode::start(&fw, "/workers/w1", CreateMode::Ephemeral, "ready");
    /// node.wait_for_initial_create(Duration::from_secs(10)).await?;
    /// node.set_data("busy").await?;
    /// assert_eq!(node.data(), "busy");
    /// assert_eq!(&fw.client().get_data("/workers/w1").await?.0[..], b"busy");
    /// # node.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn set_data(&self, data: impl Into<Bytes>) -> Result<()> {
        let data = data.into();
        *self.shared.data.lock().unwrap_or_else(|e| e.into_inner()) = data.clone();
        match self.actual_path() {
            Some(path) => match self.fw.set_data(&path, data, None).await {
                Ok(_) => Ok(()),
                // Deleted meanwhile: the task re-creates it with the new data.
                Err(e) if e.is_no_node() => Ok(()),
                Err(e) => Err(Error::from(e)),
            },
            None => Ok(()),
        }
    }

    /// Stops keeping the node, deletes it (a guaranteed delete, whatever its mode) and waits until
    /// the recipe's task has ended. Dropping the recipe does the same in the background.
    ///
    /// Only a node this recipe created (or adopted) is deleted. While the recipe is waiting out
    /// another session's ephemeral node at `path` (see the module docs), `close` stops the wait
    /// at once and leaves that node alone. A create request already sent is awaited first (it is
    /// bounded by the retry policy), so that a node it makes is deleted too.
    ///
    /// `close` may be called any number of times, also from several tasks at once: every call
    /// returns only once the task has ended and the node is deleted (or, if the delete failed for
    /// now, handed to the framework's background retries, see
    /// [`Framework::pending_guaranteed_deletes`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe. The stop is signalled when the future is first polled; dropping the future
    /// after that does not undo it: the recipe stops and deletes the node in the background.
    /// Dropping it takes nothing away from other calls: a later or concurrent `close` still waits
    /// until the task has ended.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::{CreateMode, persistent_node::PersistentNode};
    ///
    /// let node = PersistentNode::start(&fw, "/config/owner", CreateMode::Persistent, "me");
    /// node.wait_for_initial_create(Duration::from_secs(10)).await?;
    /// node.close().await;
    /// assert_eq!(fw.client().exists("/config/owner").await?, None);
    ///
    /// // Another session's ephemeral node holds the path: the recipe waits for it to go, and
    /// // `close` ends that wait, leaving the other node alone.
    /// let other = corral_recipes::Client::connect(&server.connect_string()).await?;
    /// other.create("/lead", "theirs", CreateMode::Ephemeral).await?;
    /// let node = PersistentNode::start(&fw, "/lead", CreateMode::Ephemeral, "mine");
    /// tokio::time::timeout(Duration::from_secs(5), node.close()).await?;
    /// assert_eq!(&fw.client().get_data("/lead").await?.0[..], b"theirs");
    /// # other.close().await;
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
    shared: Arc<Shared>,
    actual: watch::Sender<Option<String>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut states = fw.connection_state();
    // The session our node was made (or adopted) in: an ephemeral node is deleted on it only.
    let mut owner: Option<Session> = None;
    let mut backoff = task::Backoff::new(&fw);
    while !*stop.borrow() {
        let state = *states.borrow_and_update();
        if !state.state.is_connected() {
            tokio::select! {
                _ = states.changed() => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let path = actual.borrow().clone();
        let path = match path {
            // A new session took an ephemeral node with the old one.
            Some(p) if !(spec.mode.is_ephemeral() && owner.as_ref().is_none_or(|s| !s.is_live())) => p,
            _ => {
                if owner.as_ref().is_some_and(|s| s.epoch() != state.epoch) {
                    actual.send_replace(None);
                    owner = None;
                    metrics::counter!(corral_core::metrics::RECIPE_RECREATIONS_TOTAL, "recipe" => "persistent_node")
                        .increment(1);
                    // Spread the re-creations of many clients expired together.
                    if !task::pause_unless_stopped(task::recreate_pause(&fw), &mut stop).await {
                        continue;
                    }
                }
                match create(&fw, &spec, &shared, &mut stop).await {
                    Ok(Some((p, session))) => {
                        backoff.reset();
                        owner = Some(session);
                        actual.send_replace(Some(p.clone()));
                        p
                    }
                    // Stopped while waiting: nothing of ours was created.
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(path = %spec.path, error = %e, "cannot create the node yet");
                        backoff.wait(&mut states, &mut stop).await;
                        continue;
                    }
                }
            }
        };
        // Watch the node; re-create it if it goes. (Dropping the request's future on stop drops
        // its watcher too, which removes the watch.)
        let watched = tokio::select! {
            watched = fw.client().exists_and_watch(&path) => watched,
            _ = stop.changed() => continue,
        };
        let touch = async {
            match spec.ttl {
                Some(ttl) => tokio::time::sleep(ttl / 2).await,
                None => std::future::pending().await,
            }
        };
        match watched {
            Ok((None, _)) => {
                actual.send_replace(None);
            }
            Ok((Some(_), watcher)) => {
                backoff.reset();
                tokio::select! {
                    event = watcher => {
                        if event.event_type == EventType::NodeDeleted {
                            tracing::info!(%path, "node deleted; re-creating it");
                            actual.send_replace(None);
                        }
                    }
                    _ = states.changed() => {}
                    _ = stop.changed() => {}
                    _ = touch => {
                        let data = shared.data.lock().unwrap_or_else(|e| e.into_inner()).clone();
                        let _ = fw.client().set_data(&path, data, None).await;
                    }
                }
            }
            Err(e) => {
                tracing::debug!(%path, error = %e, "cannot watch the node");
                backoff.wait(&mut states, &mut stop).await;
            }
        }
    }
    let last = actual.borrow().clone();
    if let Some(path) = last {
        tracing::debug!(%path, "recipe closed; deleting the node");
        match owner.filter(|_| spec.mode.is_ephemeral()) {
            // An ephemeral node on its own session only: a node at a fixed path after that
            // session ended may be another process's. If the session is gone, so is the node.
            Some(session) => task::delete_on_session(&session, &path).await,
            None => {
                let _ = fw.delete(&path, Delete::new().guaranteed().idempotent()).await;
            }
        }
    }
    actual.send_replace(None);
}

/// Creates the node once, in the current session (adopting or waiting out an existing one, see
/// the module docs), and returns its path and the session it was made in. The create is bound
/// to that session: if the session is lost first, it fails and a protected create's node (if
/// made) is cleaned up, so no node is left that the recipe does not know.
///
/// Returns `Ok(None)` when the recipe is stopped while it waits: for another session's ephemeral
/// node to go, or for the answer of a read. A create or set request already sent is always
/// awaited (it is bounded by the retry policy), so that a node it makes is known and deleted.
async fn create(
    fw: &Framework,
    spec: &Spec,
    shared: &Shared,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<(String, Session)>> {
    loop {
        let session = fw.session().await?;
        let data = shared.data.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut create = Create::new(spec.mode).container_parents();
        if spec.protected {
            create = create.protected();
        }
        if let Some(ttl) = spec.ttl {
            create = create.with_ttl(ttl);
        }
        match session.create(&spec.path, data.clone(), create).await {
            Ok(created) => return Ok(Some((created.path, session))),
            Err(e) if e.is_node_exists() && !spec.mode.is_sequential() => {
                let client = session.client();
                // Dropped on stop: the watcher goes with the reply, and its watch with it.
                let existing = tokio::select! {
                    existing = client.exists_and_watch(&spec.path) => existing?,
                    _ = stopped(stop) => return Ok(None),
                };
                match existing {
                    (None, _) => continue,
                    (Some(stat), watcher) => {
                        if spec.mode.is_ephemeral() && stat.ephemeral_owner != session.id() {
                            // Someone else's (or an older session's) node: wait for it to go, or
                            // for the recipe to stop. The timeout only bounds a lost watch.
                            tracing::debug!(path = %spec.path, owner = stat.ephemeral_owner, "waiting for a foreign ephemeral to go");
                            let bound = client.session().timeout * 2;
                            tokio::select! {
                                _ = tokio::time::timeout(bound, watcher) => continue,
                                _ = stopped(stop) => {
                                    tracing::debug!(path = %spec.path, "stopped while waiting for a foreign ephemeral");
                                    return Ok(None);
                                }
                            }
                        }
                        session
                            .with_retry(|c| {
                                let (path, data) = (spec.path.clone(), data.clone());
                                async move { c.set_data(&path, data, None).await }
                            })
                            .await?;
                        return Ok(Some((spec.path.clone(), session)));
                    }
                }
            }
            Err(e) => return Err(Error::from(e)),
        }
    }
}

/// Resolves once the recipe is told to stop (at once if it has been already).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the recipe is gone, which also means stop.
    let _ = stop.wait_for(|s| *s).await;
}
