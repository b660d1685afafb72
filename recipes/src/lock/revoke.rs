//! Revocation, as Curator does it: [`Revoker::attempt_revoke`] writes `__REVOKE__` into a lock
//! node, and the holder of a revocable lock, which watches its own node, is told (through
//! [`MutexGuard::revoke_requested`](super::MutexGuard::revoke_requested)) and releases.

use bytes::Bytes;
use corral_core::{EventType, Framework, OneshotWatcher};
use tokio::sync::watch;

use crate::Result;
use crate::task::{Backoff, RecipeTask};

/// The data that asks a lock's holder to release it: Curator's `LockInternals.REVOKE_MESSAGE`,
/// the bytes of `__REVOKE__`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use corral_recipes::lock::{Mutex, REVOKE_MESSAGE, Revoker};
///
/// let guard = Mutex::new(&fw, "/locks/jobs").acquire().await?;
/// Revoker::attempt_revoke(&fw, guard.path()).await?;
/// assert_eq!(&fw.client().get_data(guard.path()).await?.0[..], REVOKE_MESSAGE);
/// # guard.release().await?;
/// # fw.close().await;
/// # Ok(()) }
/// ```
pub const REVOKE_MESSAGE: &[u8] = b"__REVOKE__";

/// Asks the holder of a lock to release it (Curator's `Revoker`).
///
/// Revocation is cooperative: the holder is told only if it made its lock revocable
/// ([`Mutex::revocable`](super::Mutex::revocable) here, `InterProcessMutex.makeRevocable` in
/// Curator), and it releases when it chooses to. Both libraries write and recognize the same
/// request, so a Corral process can revoke a Curator holder and the other way round.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use corral_recipes::lock::{Mutex, Revoker};
///
/// let mutex = Mutex::new(&fw, "/locks/jobs");
/// let holder = tokio::spawn({
///     let mutex = mutex.clone().revocable();
///     async move {
///         let guard = mutex.acquire().await?;
///         guard.revoke_requested().await; // told to let go
///         guard.release().await
///     }
/// });
/// # while mutex.participant_nodes().await?.is_empty() { tokio::task::yield_now().await; }
/// // An operator takes the lock over: revoke whoever holds it, then wait for it.
/// let holder_node = format!("/locks/jobs/{}", mutex.participant_nodes().await?[0]);
/// Revoker::attempt_revoke(&fw, &holder_node).await?;
/// let guard = mutex.acquire().await?;
/// holder.await??;
/// # guard.release().await?;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Revoker;

impl Revoker {
    /// Writes the revocation request ([`REVOKE_MESSAGE`]) into the lock node at `path` (a
    /// contender's node, usually the holder's: see
    /// [`Mutex::participant_nodes`](super::Mutex::participant_nodes)); `false` if there is no
    /// such node (it was released meanwhile), which Curator ignores as well.
    ///
    /// # Errors
    ///
    /// Connection errors once the framework's retries give up; server errors such as NoAuth as
    /// [`corral_core::Error::Server`].
    ///
    /// # Cancel safety
    ///
    /// The write may be applied even if the future is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::lock::{Mutex, Revoker};
    ///
    /// let guard = Mutex::new(&fw, "/locks/jobs").revocable().acquire().await?;
    /// assert!(Revoker::attempt_revoke(&fw, guard.path()).await?);
    /// guard.revoke_requested().await;
    /// let node = guard.path().to_owned();
    /// guard.release().await?;
    /// assert!(!Revoker::attempt_revoke(&fw, &node).await?); // gone already
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn attempt_revoke(fw: &Framework, path: &str) -> Result<bool> {
        match fw.set_data(path, Bytes::from_static(REVOKE_MESSAGE), None).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_no_node() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// The holder's side: whether a revocation was requested, followed by a background task that
/// keeps a data watch on the lock node until the request comes, the node goes, or the guards
/// are gone (dropping this stops the task, which drops the watch).
#[derive(Debug)]
pub(crate) struct Revocation {
    requested: watch::Receiver<bool>,
    _follow: Option<RecipeTask>,
}

impl Revocation {
    /// Reads the lock node at `path` with a data watch and, unless it holds a request already,
    /// follows it. `None` if the node is gone: the session that made it ended.
    pub(crate) async fn arm(fw: &Framework, path: &str) -> Result<Option<Self>> {
        let Some((requested, watcher)) = read_and_watch(fw, path).await? else {
            return Ok(None);
        };
        let (tx, rx) = watch::channel(requested);
        let follow = (!requested).then(|| {
            let (fw, path) = (fw.clone(), path.to_owned());
            RecipeTask::spawn(move |stop| follow(fw, path, watcher, tx, stop))
        });
        Ok(Some(Self { requested: rx, _follow: follow }))
    }

    pub(crate) fn is_requested(&self) -> bool {
        *self.requested.borrow()
    }

    /// Resolves once a revocation is requested; never if the node went without one.
    pub(crate) async fn requested(&self) {
        let mut rx = self.requested.clone();
        if rx.wait_for(|r| *r).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The node's data is a revocation request, and a watch on its next change; `None` if it is gone.
async fn read_and_watch(fw: &Framework, path: &str) -> Result<Option<(bool, OneshotWatcher)>> {
    let read = fw
        .with_retry(|client| {
            let path = path.to_owned();
            async move {
                match client.get_data_and_watch(&path).await {
                    Ok((data, _, watcher)) => Ok(Some((data[..] == *REVOKE_MESSAGE, watcher))),
                    Err(e) if e.is_no_node() => Ok(None),
                    Err(e) => Err(e),
                }
            }
        })
        .await?;
    Ok(read)
}

/// Follows the lock node's data until a revocation request (then tells), the node's deletion or
/// the session's end (nothing more to revoke), or `stop`.
async fn follow(
    fw: Framework,
    path: String,
    mut watcher: OneshotWatcher,
    requested: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(&fw);
    let mut states = fw.connection_state();
    loop {
        let event = tokio::select! {
            event = &mut watcher => event,
            _ = stop.wait_for(|s| *s) => return,
        };
        if event.event_type != EventType::NodeDataChanged {
            // Deleted (released), or the session ended with the node.
            return;
        }
        // Read the new data and watch again; retried until it works or the node is gone.
        loop {
            let read = tokio::select! {
                read = read_and_watch(&fw, &path) => read,
                _ = stop.wait_for(|s| *s) => return,
            };
            match read {
                Ok(Some((true, _))) => {
                    tracing::info!(%path, "revocation requested");
                    requested.send_replace(true);
                    return;
                }
                Ok(Some((false, next))) => {
                    backoff.reset();
                    watcher = next;
                    break;
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(%path, error = %e, "could not read the lock node; trying again");
                    backoff.wait(&mut states, &mut stop).await;
                    if *stop.borrow() {
                        return;
                    }
                }
            }
        }
    }
}
