//! [`RecipeTask`]: the background task a recipe owns — stopped and awaited on close, told to
//! stop when the recipe is dropped.

use std::future::Future;
use std::sync::Mutex;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A recipe's background task and its stop signal.
#[derive(Debug)]
pub(crate) struct RecipeTask {
    stop: watch::Sender<bool>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl RecipeTask {
    /// Spawns `run`, which gets a receiver that turns `true` when the recipe stops.
    pub(crate) fn spawn<F, Fut>(run: F) -> Self
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, rx) = watch::channel(false);
        Self { stop, handle: Mutex::new(Some(tokio::spawn(run(rx)))) }
    }

    /// Waits until the task ends by itself (without signalling it).
    pub(crate) async fn join(&self) {
        let handle = self.handle.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }

    /// Signals the task to stop and waits until it has.
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
