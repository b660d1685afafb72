//! The recipe runtime: what every recipe's background work is made of, written once.
//!
//! - [`RecipeTask`]: the background task a recipe owns — stopped and awaited on close, told to
//!   stop when the recipe is dropped — and [`Finished`], which any number of callers can await
//!   until a spawned task has ended;
//! - [`Backoff`]: the one jittered backoff after a failure, shaped by the framework's retry
//!   policy, and [`recreate_pause`], the one jittered pause before re-creating what a lost
//!   session took (the framework's [`recreate_jitter`](corral_core::Framework::recreate_jitter));
//! - [`wait_change`] and [`new_connection`]: following the connection — wake on a state
//!   change, a stop, or a deadline.

use std::future::Future;
use std::time::Duration;

use corral_core::ConnectionStateChange;
use corral_core::Error as CoreError;
use tokio::sync::watch;

/// Tells when a spawned task has ended, to any number of waiters.
///
/// The task holds the sending half of a watch channel and drops it when it ends (returns,
/// panics or is cancelled by the runtime shutting down); waiting is watching for the channel
/// to close. Unlike a `JoinHandle`, which only one caller can await, every waiter sees the end,
/// and a waiter that gives up takes nothing away from the others.
#[derive(Debug, Clone)]
pub(crate) struct Finished(watch::Receiver<()>);

impl Finished {
    /// Spawns `task` on the current Tokio runtime and tracks its end.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub(crate) fn spawn<Fut>(task: Fut) -> Self
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (done, rx) = watch::channel(());
        tokio::spawn(async move {
            task.await;
            // Only now, after everything the task held is released: the waiters wake.
            drop(done);
        });
        Self(rx)
    }

    /// Waits until the task has ended; returns at once if it has.
    ///
    /// Cancel safe: each call watches on its own, so dropping one changes nothing for the others.
    pub(crate) async fn wait(&self) {
        let mut rx = self.0.clone();
        // Nothing is ever sent: `changed` fails exactly when the task dropped its sender.
        while rx.changed().await.is_ok() {}
    }
}

/// A recipe's background task and its stop signal.
#[derive(Debug)]
pub(crate) struct RecipeTask {
    stop: watch::Sender<bool>,
    finished: Finished,
}

impl RecipeTask {
    /// Spawns `run`, which gets a receiver that turns `true` when the recipe stops.
    pub(crate) fn spawn<F, Fut>(run: F) -> Self
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, rx) = watch::channel(false);
        Self { stop, finished: Finished::spawn(run(rx)) }
    }

    /// Waits until the task ends by itself (without signalling it). Any number of callers may
    /// wait, at the same time or one after another: each returns only once the task has ended.
    ///
    /// Cancel safe: dropping the future changes nothing for the task or for other waiters.
    pub(crate) async fn join(&self) {
        self.finished.wait().await;
    }

    /// Signals the task to stop and waits until it has, as [`RecipeTask::join`] does.
    ///
    /// Cancel safe: the signal is sent on the first poll and cannot be taken back; dropping the
    /// future only stops this caller's wait (the task still ends, and other callers still wait
    /// for that).
    pub(crate) async fn stop(&self) {
        self.stop.send_replace(true);
        self.join().await;
    }
}

impl Drop for RecipeTask {
    fn drop(&mut self) {
        // The task sees the signal, releases what it holds and ends.
        self.stop.send_replace(true);
    }
}

/// Waits until the framework is connected on a connection other than `seen` (a reconnect within
/// the session, or a new session); `false` if the framework is gone.
///
/// Cancel safe: it only watches the connection state.
pub(crate) async fn new_connection(
    states: &mut watch::Receiver<corral_core::ConnectionStateChange>,
    seen: u64,
) -> bool {
    states.wait_for(|s| s.state.is_connected() && s.connection != seen).await.is_ok()
}

/// The longest a recipe backs off after failures, whatever the retry policy says.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The one backoff recipes use after a failed step (a create refused, a read that timed out):
/// after `n` failures in a row it waits the framework retry policy's delay for attempt `n`
/// (capped at [`MAX_BACKOFF`]; once the policy gives up, the cap — a recipe never stops
/// following its session), drawn uniformly from the upper half of it so that clients that
/// failed together do not retry together. A success resets it.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: std::sync::Arc<dyn corral_core::RetryPolicy>,
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(fw: &corral_core::Framework) -> Self {
        Self { policy: fw.retry_policy(), failures: 0 }
    }

    /// Forgets the failures: the step succeeded.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    /// Counts one more failure and returns how long to wait before the next try.
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        backoff_delay(&*self.policy, self.failures)
    }

    /// Counts one more failure and waits: the delay, a connection state change or a stop,
    /// whichever comes first.
    ///
    /// Cancel safe: it only sleeps and watches.
    pub(crate) async fn wait<T>(
        &mut self,
        states: &mut watch::Receiver<ConnectionStateChange>,
        stop: &mut watch::Receiver<T>,
    ) {
        let delay = self.next_delay();
        wait_change(states, stop, Some(delay)).await;
    }
}

/// The recipes' delay after `failures` failures in a row (1, 2, …): see [`Backoff`]. For loops
/// that count their own failures.
pub(crate) fn backoff_delay(policy: &dyn corral_core::RetryPolicy, failures: u32) -> Duration {
    let delay = policy.next_delay(failures.max(1), Duration::ZERO).unwrap_or(MAX_BACKOFF).min(MAX_BACKOFF);
    jitter_upper_half(delay)
}

/// Deletes `path` (a node `session` owns) on that session only, retrying within it; a node
/// already gone counts as deleted. If the session is gone, so is its ephemeral node, and a node
/// at `path` now would be someone else's: nothing is sent.
///
/// Cancel safe: dropping it stops retrying; a delete already sent may still be applied.
pub(crate) async fn delete_on_session(session: &corral_core::framework::Session, path: &str) {
    match try_delete_on_session(session, path).await {
        Ok(()) | Err(CoreError::Closed) => {}
        Err(e) => tracing::warn!(path, error = %e, "node not deleted; it stays until its session ends"),
    }
}

/// Deletes `path` on `session` (which made it) with the session's retries: `Ok` once it is
/// gone, also when it was gone already or went with the session.
pub(crate) async fn try_delete_on_session(
    session: &corral_core::framework::Session,
    path: &str,
) -> std::result::Result<(), CoreError> {
    let deleted = session
        .with_retry(|c| async move {
            match c.delete(path, None).await {
                Err(e) if e.is_no_node() => Ok(()),
                other => other,
            }
        })
        .await;
    match deleted {
        Err(CoreError::SessionLost { .. }) => Ok(()),
        other => other,
    }
}

/// A duration drawn uniformly from `[d / 2, d]`.
fn jitter_upper_half(d: Duration) -> Duration {
    let half = d / 2;
    let spread = (d - half).as_micros() as u64;
    half + Duration::from_micros(if spread == 0 { 0 } else { fastrand::u64(0..=spread) })
}

/// The pause before a recipe re-creates what a lost session took with it: uniform in
/// `[0, fw.recreate_jitter()]`, so that a fleet whose sessions expired together does not write
/// in the same instant.
pub(crate) fn recreate_pause(fw: &corral_core::Framework) -> Duration {
    let max = fw.recreate_jitter().as_micros() as u64;
    Duration::from_micros(if max == 0 { 0 } else { fastrand::u64(0..=max) })
}

/// Waits for a connection state change, a change of `stop`, or `max` (forever with `None`).
///
/// Cancel safe: it only sleeps and watches.
pub(crate) async fn wait_change<T>(
    states: &mut watch::Receiver<ConnectionStateChange>,
    stop: &mut watch::Receiver<T>,
    max: Option<Duration>,
) {
    let sleep = async {
        match max {
            Some(max) => tokio::time::sleep(max).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = states.changed() => {}
        _ = stop.changed() => {}
        _ = sleep => {}
    }
}

/// Sleeps `pause` unless `stop` changes first; `false` if it did.
///
/// Cancel safe: it only sleeps and watches.
pub(crate) async fn pause_unless_stopped<T>(pause: Duration, stop: &mut watch::Receiver<T>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(pause) => true,
        _ = stop.changed() => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use futures::FutureExt;

    use super::*;

    /// A task that, once told to stop, takes a while to clean up and then sets `cleaned`.
    fn slow_to_stop(cleaned: Arc<AtomicBool>) -> RecipeTask {
        RecipeTask::spawn(move |mut stop| async move {
            let _ = stop.wait_for(|s| *s).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            cleaned.store(true, Ordering::SeqCst);
        })
    }

    #[tokio::test]
    async fn every_stop_waits_for_the_end_even_after_a_dropped_one() {
        let cleaned = Arc::new(AtomicBool::new(false));
        let task = slow_to_stop(cleaned.clone());
        // Polled once (the stop is sent), then dropped.
        assert!(task.stop().now_or_never().is_none());
        let (a, b) = tokio::join!(
            async {
                task.stop().await;
                cleaned.load(Ordering::SeqCst)
            },
            async {
                task.join().await;
                cleaned.load(Ordering::SeqCst)
            }
        );
        assert!(a && b, "a stop or join returned before the task ended");
        // After the end, at once.
        tokio::time::timeout(Duration::from_secs(5), task.stop()).await.unwrap();
    }

    #[tokio::test]
    async fn a_panicking_task_counts_as_ended() {
        let task = RecipeTask::spawn(|_| async { panic!("boom") });
        tokio::time::timeout(Duration::from_secs(5), task.join()).await.unwrap();
    }

    #[test]
    fn jitter_stays_in_the_upper_half_and_varies() {
        let d = Duration::from_millis(400);
        let draws: Vec<_> = (0..200).map(|_| jitter_upper_half(d)).collect();
        assert!(draws.iter().all(|x| *x >= d / 2 && *x <= d));
        let distinct: std::collections::HashSet<_> = draws.iter().collect();
        assert!(distinct.len() > 10, "no jitter: {distinct:?}");
        assert_eq!(jitter_upper_half(Duration::ZERO), Duration::ZERO);
    }
}
