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
use std::time::Duration;

use corral_core::{Framework, Result};
use tokio::sync::watch;

use crate::leader_latch::Participant;
use crate::lock::{Mutex, MutexGuard};
use crate::task::RecipeTask;

/// What the leadership task is given: who it is and how to tell that leadership is ending.
#[derive(Debug)]
pub struct Leadership {
    guard: Arc<MutexGuard>,
    round: u64,
}

impl Leadership {
    /// Which leadership term this is (1 for the first, +1 each time leadership is taken again).
    pub fn round(&self) -> u64 {
        self.round
    }

    /// Whether leadership is still valid (see [`MutexGuard::is_valid`]).
    pub fn is_valid(&self) -> bool {
        self.guard.is_valid()
    }

    /// An operation for your own transactions that fails unless leadership is still held.
    pub fn fencing_check(&self) -> corral_core::Op {
        self.guard.fencing_check()
    }

    /// Increases with every leadership term, across processes (the lock node's czxid).
    pub fn fencing_token(&self) -> i64 {
        self.guard.fencing_token()
    }

    /// Resolves when leadership stops being valid; the selector then cancels the task anyway.
    pub async fn lost(&self) {
        self.guard.invalidated().await;
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
    /// Starts contending at `path` as `participant_id`; `task` runs each time leadership is
    /// taken. With `auto_requeue`, the selector contends again after each term.
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
        let (leading_tx, leading) = watch::channel(false);
        let mutex = Mutex::new(fw, path.clone()).with_data(id.clone());
        let task = RecipeTask::spawn(move |stop| run(mutex, Arc::new(task), auto_requeue, leading_tx, stop));
        Self { fw: fw.clone(), path, id, leading, task }
    }

    /// This participant's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the leadership task is running now.
    pub fn has_leadership(&self) -> bool {
        *self.leading.borrow()
    }

    /// Leadership as a watch channel: `true` while the task runs.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// Every participant in election order, the leader first (read from the lock nodes' data,
    /// so Curator participants are listed too).
    ///
    /// # Errors
    ///
    /// Connection errors after retries.
    pub async fn participants(&self) -> Result<Vec<Participant>> {
        let nodes = Mutex::new(&self.fw, self.path.clone()).participant_nodes().await?;
        crate::leader_latch::read_participants(&self.fw.client(), &self.path, &nodes).await
    }

    /// Waits until the selector stops by itself (without auto-requeue: after one term).
    pub async fn wait_until_done(&self) {
        self.task.join().await;
    }

    /// Stops contending; a running leadership task is cancelled and the lock released.
    pub async fn close(&self) {
        self.task.stop().await;
    }

    /// The election path; every participant's lock node is a child of it
    /// ([`crate::lock::LOCK_NAME`] nodes).
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
    let mut failures = 0u32;
    while !*stop.borrow() {
        // Cancellable without dropping the acquisition: on close the queued node is deleted
        // before `close` returns.
        let guard = match mutex.acquire_cancellable(stop.clone()).await {
            Ok(Some(guard)) => guard,
            Ok(None) => break,
            Err(e) => {
                failures = (failures + 1).min(6);
                tracing::debug!(error = %e, "could not take leadership; contending again");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(25 << failures)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
        };
        if *stop.borrow() {
            let _ = guard.release().await;
            break;
        }
        failures = 0;
        round += 1;
        let guard = Arc::new(guard);
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
