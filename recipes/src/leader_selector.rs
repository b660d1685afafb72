//! [`LeaderSelector`]: run an async task while leading (Curator's `LeaderSelector`).
//!
//! The selector contends for a [`Mutex`] at the election path (Curator's layout: `lock-` nodes
//! holding the participant id), and while it holds the lock it runs your leadership task.
//! Leadership ends when the task returns, or when the lock stops being valid (SUSPENDED under
//! [`corral_core::ErrorPolicy::Standard`], LOST always) — then the task is **cancelled** (its
//! future is dropped), which Curator can only ask for by interrupting a thread. With
//! auto-requeue the selector contends again afterwards.
//!
//! # Interrupting and requeueing
//!
//! As in Curator, [`LeaderSelector::interrupt_leadership`] ends the current attempt — the term
//! being led (the task's future is dropped and the lock node deleted) or the wait in line — and
//! [`LeaderSelector::requeue`] puts a selector that is out of line (after a term without
//! auto-requeue, or after an interrupt) back in line. With auto-requeue, an interrupted selector
//! goes back in line by itself.

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
    line: watch::Sender<Line>,
    task: RecipeTask,
}

/// Where the selector stands: in line (waiting or leading: Curator's `isQueued`), and whether
/// the current attempt is to be interrupted.
#[derive(Debug, Clone, Copy)]
struct Line {
    queued: bool,
    interrupted: bool,
    closed: bool,
}

impl LeaderSelector {
    /// Starts contending at `path` as `participant_id` and returns at once; `task` runs, on a
    /// spawned Tokio task, each time leadership is taken. With `auto_requeue`, the selector
    /// contends again after each term; without it, it leaves the line after the first (until
    /// [`LeaderSelector::requeue`]).
    ///
    /// A term ends when the task's future completes, when leadership stops being valid (the
    /// future is then dropped), when it is interrupted ([`LeaderSelector::interrupt_leadership`],
    /// likewise), or when the selector is closed or dropped (likewise). The lock is released
    /// after each term. Failures to take the lock are retried with a growing pause (up to
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
        // In line from the start, as Curator's `start()` requeues.
        let (line, _) = watch::channel(Line { queued: true, interrupted: false, closed: false });
        let task = RecipeTask::spawn({
            let line = line.clone();
            move |stop| run(mutex, Arc::new(task), auto_requeue, leading_tx, line, stop)
        });
        Self { fw: fw.clone(), path, id, leading, line, task }
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
    /// selector is closed or dropped.
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

    /// Waits until the selector is out of line — without auto-requeue after a term, or after an
    /// [interrupt](LeaderSelector::interrupt_leadership), until [`LeaderSelector::requeue`] — or
    /// closed, and its lock node is released; returns at once if it is.
    ///
    /// Any number of callers may wait, at the same time or one after another (together with
    /// [`LeaderSelector::close`] calls): each returns only once the selector is out of line or
    /// has stopped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits. Dropping the future affects neither the selector nor any other
    /// `wait_until_done` or `close` call.
    ///
    pub async fn wait_until_done(&self) {
        let mut line = self.line.subscribe();
        tokio::select! {
            _ = self.task.join() => {}
            _ = until(&mut line, |l| !l.queued) => {}
        }
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
        self.line.send_modify(|l| l.closed = true);
        self.task.stop().await;
    }

    /// Ends the current attempt, as Curator's `interruptLeadership()`: a running leadership task
    /// is cancelled (its future dropped) and the lock node deleted; a selector still waiting in
    /// line leaves it (its node deleted). With auto-requeue the selector then goes back in line;
    /// without it, it stays out until [`LeaderSelector::requeue`].
    ///
    /// Returns at once; `false` if there was nothing to interrupt (out of line, or closed).
    /// Watch [`LeaderSelector::leadership`] or await [`LeaderSelector::wait_until_done`] to see
    /// the attempt end.
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
    /// let selector = LeaderSelector::start(&fw, "/scheduler", "node-1", false, lead);
    /// selector.leadership().wait_for(|leading| *leading).await?;
    /// assert!(selector.interrupt_leadership());
    /// selector.wait_until_done().await; // the task was cancelled and the node deleted
    /// assert!(!selector.has_leadership());
    /// assert!(selector.participants().await?.is_empty());
    /// assert!(!selector.interrupt_leadership()); // out of line now
    /// # selector.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn interrupt_leadership(&self) -> bool {
        let mut in_line = false;
        self.line.send_if_modified(|l| {
            in_line = l.queued && !l.closed;
            let fresh = in_line && !l.interrupted;
            l.interrupted |= fresh;
            fresh
        });
        in_line
    }

    /// Puts the selector back in line, as Curator's `requeue()`: `true` if it was out of line
    /// (after a term without auto-requeue, or an interrupt) and contends again now; `false` if
    /// it is in line already — waiting, or leading (a requeue does not queue a term after the
    /// current one: return from the task, or use auto-requeue, for that) — or closed.
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
    /// let selector = LeaderSelector::start(&fw, "/scheduler", "node-1", false, move |leadership| {
    ///     let tx = tx.clone();
    ///     async move {
    ///         let _ = tx.send(leadership.round());
    ///     }
    /// });
    /// assert_eq!(rounds.recv().await, Some(1));
    /// selector.wait_until_done().await; // one term, no auto-requeue: out of line
    /// assert!(selector.requeue());
    /// assert_eq!(rounds.recv().await, Some(2));
    /// # selector.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn requeue(&self) -> bool {
        self.line.send_if_modified(|l| {
            let requeued = !l.queued && !l.closed;
            l.queued |= requeued;
            requeued
        })
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
    line: watch::Sender<Line>,
    mut stop: watch::Receiver<bool>,
) where
    F: Fn(Leadership) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut round = 0u64;
    let fw = mutex.framework().clone();
    let mut backoff = crate::task::Backoff::new(&fw);
    let mut in_line = line.subscribe();
    // The session epoch of our last contention: in a new session we contend again only after
    // the jittered re-create pause, so that a fleet whose sessions expired together does not
    // queue up in the same instant.
    let mut contended_in = 0u64;
    while !*stop.borrow() {
        let now = *in_line.borrow_and_update();
        if !now.queued {
            // Out of line until `requeue`.
            tokio::select! {
                _ = until(&mut in_line, |l| l.queued) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        if now.interrupted {
            // Interrupted between terms or while backing off: this attempt ends here.
            line.send_modify(|l| {
                l.queued = auto_requeue;
                l.interrupted = false;
            });
            continue;
        }
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
            _ = until(&mut in_line, |l| l.interrupted) => continue,
        };
        if contended_in != 0 && epoch != contended_in {
            metrics::counter!(corral_core::metrics::RECIPE_RECREATIONS_TOTAL, "recipe" => "selector").increment(1);
            if !crate::task::pause_unless_stopped(crate::task::recreate_pause(&fw), &mut stop).await {
                continue;
            }
        }
        contended_in = epoch;
        // Cancellable without dropping the acquisition: on close or interrupt the queued node is
        // deleted before the selector says it is out of line.
        let guard = match acquire_unless_cancelled(&mutex, &mut stop, &mut in_line).await {
            Ok(Some(guard)) => guard,
            Ok(None) => continue, // stopped, or interrupted: seen at the top
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
        if in_line.borrow().interrupted {
            // Interrupted as the lock came: no term; the attempt ends at the top.
            let _ = guard.release().await;
            continue;
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
            _ = until(&mut in_line, |l| l.interrupted) => tracing::info!(round, "leadership interrupted; the task was cancelled"),
            _ = stop.changed() => {}
        }
        leading.send_replace(false);
        let _ = guard.release_shared().await;
        // The attempt is over, the node released: back in line only with auto-requeue.
        line.send_modify(|l| {
            l.queued = auto_requeue;
            l.interrupted = false;
        });
    }
    line.send_modify(|l| l.closed = true);
}

/// Acquires `mutex` unless the selector is stopped or its attempt interrupted first; then the
/// queued node is deleted before `Ok(None)` is returned.
async fn acquire_unless_cancelled(
    mutex: &Mutex,
    stop: &mut watch::Receiver<bool>,
    line: &mut watch::Receiver<Line>,
) -> Result<Option<MutexGuard>> {
    let (cancel, cancelled) = watch::channel(false);
    let acquire = mutex.acquire_cancellable(cancelled);
    tokio::pin!(acquire);
    loop {
        tokio::select! {
            acquired = &mut acquire => return acquired,
            _ = until(stop, |s| *s), if !*cancel.borrow() => { cancel.send_replace(true); }
            _ = until(line, |l| l.interrupted), if !*cancel.borrow() => { cancel.send_replace(true); }
        }
    }
}

/// Resolves once `rx` holds a value for which `f` is true; never if its sender is gone first.
async fn until<T>(rx: &mut watch::Receiver<T>, f: impl FnMut(&T) -> bool) {
    if rx.wait_for(f).await.is_err() {
        std::future::pending::<()>().await;
    }
}
