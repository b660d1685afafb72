//! [`LeaderSelector`]: run an async task while leading (Curator's `LeaderSelector`).
//!
//! The selector contends for a [`Mutex`] at the election path (Curator's layout: `lock-` nodes
//! holding the participant id), and while it holds the lock it runs your leadership task.
//! Leadership ends when the task returns, or when the lock stops being valid (SUSPENDED under
//! [`corral_core::ErrorPolicy::Standard`], LOST always) — then the task is **cancelled** (its
//! future is dropped), which Curator can only ask for by interrupting a thread. With
//! auto-requeue the selector contends again afterwards.

use std::future::Future;
use std::sync::Arc;

use crate::{Error, Result};
use corral_core::Framework;
use tokio::sync::watch;

use crate::hold::Hold;
use crate::leader_latch::Participant;
use crate::lock::{Mutex, MutexGuard};
use crate::task::RecipeTask;

/// What the leadership task is given: which term it is and how to tell that leadership is
/// ending.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use corral_recipes::leader_selector::LeaderSelector;
///
/// let (tx, mut terms) = tokio::sync::mpsc::unbounded_channel();
/// let selector = LeaderSelector::start(&fw, "/scheduler", "node-1", false, move |leadership| {
///     let tx = tx.clone();
///     async move {
///         let _ = tx.send((leadership.round(), leadership.is_valid()));
///     }
/// });
/// assert_eq!(terms.recv().await, Some((1, true)));
/// # selector.close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Leadership {
    guard: Arc<MutexGuard>,
    round: u64,
}

impl Leadership {
    /// Which leadership term of this selector this is (1 for the first, +1 each time leadership is
    /// taken again).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::leader_selector::LeaderSelector;
    ///
    /// let (tx, mut rounds) = tokio::sync::mpsc::unbounded_channel();
    /// // With auto-requeue, each term ends when the task returns and the next one begins.
    /// let selector = LeaderSelector::start(&fw, "/scheduler", "node-1", true, move |leadership| {
    ///     let tx = tx.clone();
    ///     async move {
    ///         let _ = tx.send(leadership.round());
    ///     }
    /// });
    /// assert_eq!(rounds.recv().await, Some(1));
    /// assert_eq!(rounds.recv().await, Some(2));
    /// selector.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn round(&self) -> u64 {
        self.round
    }

    /// Whether leadership is still valid (see [`MutexGuard::is_valid`]). It asks nothing of the
    /// server; check it before each step of long work, or use [`Leadership::lost`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::leader_selector::LeaderSelector;
    ///
    /// let (tx, mut steps) = tokio::sync::mpsc::unbounded_channel();
    /// let selector = LeaderSelector::start(&fw, "/scheduler", "node-1", false, move |leadership| {
    ///     let tx = tx.clone();
    ///     async move {
    ///         for step in 0..3 {
    ///             if !leadership.is_valid() {
    ///                 return; // step down
    ///             }
    ///             let _ = tx.send(step);
    ///         }
    ///     }
    /// });
    /// selector.wait_until_done().await;
    /// assert_eq!(steps.recv().await, Some(0));
    /// # selector.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn is_valid(&self) -> bool {
        self.guard.is_valid()
    }

    /// An operation for your own transactions that fails unless leadership is still held (see
    /// [`MutexGuard::fencing_check`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::{CreateMode, Op, leader_selector::LeaderSelector};
    ///
    /// fw.create("/schedule", "v1", CreateMode::Persistent).await?;
    /// let writer = fw.clone();
    /// let selector = LeaderSelector::start(&fw, "/scheduler", "node-1", false, move |leadership| {
    ///     let fw = writer.clone();
    ///     async move {
    ///         // Written only if this process still leads.
    ///         let ops = vec![leadership.fencing_check(), Op::set_data("/schedule", "v2", None)];
    ///         let _ = fw.transaction(ops).await;
    ///     }
    /// });
    /// selector.wait_until_done().await;
    /// assert_eq!(&fw.client().get_data("/schedule").await?.0[..], b"v2");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn fencing_check(&self) -> corral_core::Op {
        self.guard.fencing_check()
    }

    /// A token that increases with every leadership term, across processes (the lock node's czxid,
    /// see [`MutexGuard::fencing_token`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::leader_selector::LeaderSelector;
    ///
    /// let (tx, mut tokens) = tokio::sync::mpsc::unbounded_channel();
    /// let selector = LeaderSelector::start(&fw, "/scheduler", "node-1", true, move |leadership| {
    ///     let tx = tx.clone();
    ///     async move {
    ///         let _ = tx.send(leadership.fencing_token());
    ///     }
    /// });
    /// let first = tokens.recv().await.unwrap();
    /// let second = tokens.recv().await.unwrap();
    /// assert!(second > first);
    /// selector.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn fencing_token(&self) -> i64 {
        self.guard.fencing_token()
    }

    /// Resolves when leadership stops being valid; the selector then cancels the task anyway.
    ///
    /// It does not resolve when the selector is closed (the task is cancelled then too).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches the connection state.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::leader_selector::{LeaderSelector, Leadership};
    ///
    /// // Serve until leadership is lost.
    /// let serve = |leadership: Leadership| async move { leadership.lost().await };
    /// let selector = LeaderSelector::start(&fw, "/scheduler", "node-1", false, serve);
    /// selector.leadership().wait_for(|leading| *leading).await?;
    /// server.drop_connection(fw.client().session_id()); // SUSPENDED ends leadership
    /// selector.wait_until_done().await;
    /// assert!(!selector.has_leadership());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn lost(&self) {
        self.guard.invalidated().await;
    }

    /// The same as [`Leadership::lost`], under the name every hold shares (see
    /// [`Hold::invalidated`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches the connection state.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::leader_selector::{LeaderSelector, Leadership};
    ///
    /// let serve = |leadership: Leadership| async move { leadership.invalidated().await };
    /// let selector = LeaderSelector::start(&fw, "/scheduler", "node-1", false, serve);
    /// selector.leadership().wait_for(|leading| *leading).await?;
    /// server.expire_session(fw.client().session_id());
    /// selector.wait_until_done().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn invalidated(&self) {
        self.guard.invalidated().await;
    }

    /// The hold this leadership rests on: the lock node the selector holds while leading (see
    /// [`Hold`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::leader_selector::{LeaderSelector, Leadership};
    ///
    /// let (tx, rx) = tokio::sync::oneshot::channel();
    /// let tx = std::sync::Mutex::new(Some(tx));
    /// let serve = move |leadership: Leadership| {
    ///     let _ = tx.lock().unwrap().take().map(|tx| tx.send(leadership.hold().clone()));
    ///     async {}
    /// };
    /// let selector = LeaderSelector::start(&fw, "/scheduler", "node-1", false, serve);
    /// let hold = rx.await?;
    /// assert!(hold.path().starts_with("/scheduler/_c_"));
    /// selector.wait_until_done().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn hold(&self) -> &Hold {
        self.guard.hold()
    }
}

/// A participant that runs a task while it leads (Curator's `LeaderSelector`).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use corral_recipes::{Framework, leader_selector::LeaderSelector};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let terms = Arc::new(AtomicU32::new(0));
/// let counted = terms.clone();
/// let selector = LeaderSelector::start(&fw, "/scheduler", "node-1", false, move |_leadership| {
///     let counted = counted.clone();
///     async move {
///         counted.fetch_add(1, Ordering::SeqCst); // lead: do the work, then return to step down
///     }
/// });
/// selector.wait_until_done().await;
/// assert_eq!(terms.load(Ordering::SeqCst), 1);
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LeaderSelector {
    fw: Framework,
    path: String,
    id: String,
    leading: watch::Receiver<bool>,
    task: RecipeTask,
}

impl LeaderSelector {
    /// Starts contending at `path` as `participant_id` and returns at once; `task` runs, on a
    /// spawned Tokio task, each time leadership is taken. With `auto_requeue`, the selector
    /// contends again after each term; without it, it stops after the first.
    ///
    /// A term ends when the task's future completes, when leadership stops being valid (the
    /// future is then dropped), or when the selector is closed or dropped (likewise). The lock is
    /// released after each term. Failures to take the lock are retried with a growing pause (up to
    /// 1.6 s).
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
    /// use corral_recipes::leader_selector::{LeaderSelector, Leadership};
    ///
    /// // Lead until leadership is lost or the selector is closed.
    /// let lead = |leadership: Leadership| async move { leadership.lost().await };
    /// let selector = LeaderSelector::start(&fw, "/scheduler", "node-1", true, lead);
    /// selector.leadership().wait_for(|leading| *leading).await?;
    /// selector.close().await;
    /// assert!(!selector.has_leadership());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn start<F, Fut>(
        fw: &Framework,
        path: impl Into<String>,
        participant_id: impl Into<String>,
        auto_requeue: bool,
        task: F,
    ) -> Self
    where
        F: Fn(Leadership) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let path = path.into();
        let id = participant_id.into();
        let mutex = Mutex::new(fw, path.clone()).with_data(id.clone());
        Self::with_mutex(fw, path, id, mutex, auto_requeue, task)
    }

    /// A selector contending through `mutex` (whose data is `id`): Curator's layout, or
    /// kazoo's for [`crate::kazoo::election`].
    pub(crate) fn with_mutex<F, Fut>(
        fw: &Framework,
        path: String,
        id: String,
        mutex: Mutex,
        auto_requeue: bool,
        task: F,
    ) -> Self
    where
        F: Fn(Leadership) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (leading_tx, leading) = watch::channel(false);
        let task = RecipeTask::spawn(move |stop| run(mutex, Arc::new(task), auto_requeue, leading_tx, stop));
        Self { fw: fw.clone(), path, id, leading, task }
    }

    /// This participant's id (stored in its lock node).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::leader_selector::LeaderSelector;
    /// let selector = LeaderSelector::start(&fw, "/scheduler", "node-1", false, |_| async {});
    /// assert_eq!(selector.id(), "node-1");
    /// # selector.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the leadership task is running now.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::leader_selector::{LeaderSelector, Leadership};
    /// let lead = |leadership: Leadership| async move { leadership.lost().await };
    /// let selector = LeaderSelector::start(&fw, "/scheduler", "node-1", true, lead);
    /// selector.leadership().wait_for(|leading| *leading).await?;
    /// assert!(selector.has_leadership());
    /// # selector.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn has_leadership(&self) -> bool {
        *self.leading.borrow()
    }

    /// Leadership as a watch channel: `true` while the task runs. The channel closes when the
    /// selector stops.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::leader_selector::{LeaderSelector, Leadership};
    /// let lead = |leadership: Leadership| async move { leadership.lost().await };
    /// let selector = LeaderSelector::start(&fw, "/scheduler", "node-1", true, lead);
    /// let mut leading = selector.leadership();
    /// leading.wait_for(|l| *l).await?;
    /// selector.close().await;
    /// assert!(!*leading.borrow());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// Every participant in election order, the leader first (read from the lock nodes' data,
    /// so Curator participants are listed too); empty if nobody contends.
    ///
    /// # Errors
    ///
    /// Connection errors: the listing is retried under the retry policy, the reads of the nodes'
    /// data are not. Nodes deleted meanwhile are left out.
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
    /// use std::time::Duration;
    /// use corral_recipes::leader_latch::Participant;
    /// use corral_recipes::leader_selector::{LeaderSelector, Leadership};
    ///
    /// let lead = |leadership: Leadership| async move { leadership.lost().await };
    /// let a = LeaderSelector::start(&fw, "/scheduler", "node-a", true, lead);
    /// a.leadership().wait_for(|leading| *leading).await?;
    /// let b = LeaderSelector::start(&fw, "/scheduler", "node-b", true, lead);
    /// # while b.participants().await?.len() < 2 {
    /// #     tokio::time::sleep(Duration::from_millis(10)).await;
    /// # }
    /// let participants = b.participants().await?;
    /// assert_eq!(participants[0], Participant { id: "node-a".into(), is_leader: true });
    /// assert_eq!(participants[1], Participant { id: "node-b".into(), is_leader: false });
    /// # a.close().await; b.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn participants(&self) -> Result<Vec<Participant>> {
        let nodes = Mutex::new(&self.fw, self.path.clone()).participant_nodes().await?;
        crate::leader_latch::read_participants(&self.fw.client(), &self.path, &nodes).await.map_err(Error::from)
    }

    /// Waits until the selector stops by itself (without auto-requeue: after one term) or is
    /// closed, and its lock node is released; returns at once if it has stopped.
    ///
    /// Any number of callers may wait, at the same time or one after another (together with
    /// [`LeaderSelector::close`] calls): each returns only once the selector has stopped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits. Dropping the future affects neither the selector nor any other
    /// `wait_until_done` or `close` call.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use corral_recipes::leader_selector::LeaderSelector;
    ///
    /// let done = Arc::new(AtomicBool::new(false));
    /// let flag = done.clone();
    /// let task = move |_| {
    ///     let flag = flag.clone();
    ///     async move { flag.store(true, Ordering::SeqCst) }
    /// };
    /// let selector = LeaderSelector::start(&fw, "/scheduler", "node-1", false, task);
    /// selector.wait_until_done().await;
    /// assert!(done.load(Ordering::SeqCst));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn wait_until_done(&self) {
        self.task.join().await;
    }

    /// Stops contending and waits until the selector has stopped: a running leadership task is
    /// cancelled (its future dropped) and the lock node deleted. Dropping the selector stops it
    /// too, without waiting.
    ///
    /// `close` may be called any number of times, also from several tasks at once: every call
    /// returns only once the selector has stopped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe. The stop is signalled when the future is first polled; dropping the future
    /// after that does not undo it: the selector stops and deletes its node in the background.
    /// Dropping it takes nothing away from other calls: a later or concurrent `close` or
    /// [`LeaderSelector::wait_until_done`] still waits until the selector has stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::leader_selector::{LeaderSelector, Leadership};
    ///
    /// let lead = |leadership: Leadership| async move { leadership.lost().await };
    /// let selector = LeaderSelector::start(&fw, "/scheduler", "node-1", true, lead);
    /// selector.leadership().wait_for(|leading| *leading).await?;
    /// // Both calls return once the selector has stopped and deleted its node.
    /// tokio::join!(selector.close(), selector.wait_until_done());
    /// assert!(!selector.has_leadership());
    /// assert!(selector.participants().await?.is_empty());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn close(&self) {
        self.task.stop().await;
    }

    /// The election path; every participant's lock node is a child of it
    /// ([`crate::lock::LOCK_NAME`] nodes).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::leader_selector::LeaderSelector;
    /// let selector = LeaderSelector::start(&fw, "/scheduler", "node-1", false, |_| async {});
    /// assert_eq!(selector.path(), "/scheduler");
    /// # selector.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &str {
        &self.path
    }
}

async fn run<F, Fut>(
    mutex: Mutex,
    task: Arc<F>,
    auto_requeue: bool,
    leading: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) where
    F: Fn(Leadership) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut round = 0u64;
    let fw = mutex.framework().clone();
    let mut backoff = crate::task::Backoff::new(&fw);
    // The session epoch of our last contention: in a new session we contend again only after
    // the jittered re-create pause, so that a fleet whose sessions expired together does not
    // queue up in the same instant.
    let mut contended_in = 0u64;
    while !*stop.borrow() {
        // Contend on a connected session, so that the epoch compared is the one contended in.
        let epoch = tokio::select! {
            session = fw.session() => match session {
                Ok(session) => session.epoch(),
                Err(_) => {
                    crate::task::pause_unless_stopped(backoff.next_delay(), &mut stop).await;
                    continue;
                }
            },
            _ = stop.changed() => continue,
        };
        if contended_in != 0 && epoch != contended_in {
            metrics::counter!(corral_core::metrics::RECIPE_RECREATIONS_TOTAL, "recipe" => "selector").increment(1);
            if !crate::task::pause_unless_stopped(crate::task::recreate_pause(&fw), &mut stop).await {
                continue;
            }
        }
        contended_in = epoch;
        // Cancellable without dropping the acquisition: on close the queued node is deleted
        // before `close` returns.
        let guard = match mutex.acquire_cancellable(stop.clone()).await {
            Ok(Some(guard)) => guard,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "could not take leadership; contending again");
                let delay = backoff.next_delay();
                crate::task::pause_unless_stopped(delay, &mut stop).await;
                continue;
            }
        };
        if *stop.borrow() {
            let _ = guard.release().await;
            break;
        }
        backoff.reset();
        round += 1;
        let guard = Arc::new(guard);
        metrics::counter!(corral_core::metrics::LEADERSHIP_TERMS_TOTAL, "recipe" => "selector").increment(1);
        leading.send_replace(true);
        let user = task(Leadership { guard: guard.clone(), round });
        tokio::select! {
            _ = user => tracing::debug!(round, "leadership task finished"),
            _ = guard.invalidated() => tracing::info!(round, "leadership lost; the task was cancelled"),
            _ = stop.changed() => {}
        }
        leading.send_replace(false);
        let _ = guard.release_shared().await;
        if !auto_requeue {
            break;
        }
    }
}
