//! [`RecipeTask`]: the background task a recipe owns — stopped and awaited on close, told to
//! stop when the recipe is dropped — and [`Finished`], which any number of callers can await
//! until a spawned task has ended.

use std::future::Future;

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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

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
}
