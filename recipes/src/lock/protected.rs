//! A contender's node under a protected name, and its cleanup when an acquisition is dropped.

use std::time::Duration;

use bytes::Bytes;
use corral_core::framework::{Delete, PROTECTED_PREFIX};
use corral_core::{ConnectionState, ConnectionStateChange, CreateMode, Error, Framework, Result};
use tokio::time::Instant;

/// What creating a contender's node established.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Created {
    /// The connection state the create was sent in.
    pub(crate) state: ConnectionStateChange,
    pub(crate) czxid: i64,
}

/// One acquisition's ephemeral sequential node under a protected name,
/// `<dir>/_c_<uuid>-<name><sequence>`, and its cleanup: until [`ProtectedNode::hand_over`], the
/// node is deleted in the background when this value is dropped.
///
/// The prefix is chosen before the create request is sent, so a node whose create was still
/// waiting for its reply (the acquisition dropped, or failed with a connection error) is found by
/// listing `dir` and deleted, as Curator's `findAndDeleteProtectedNodeInBackground` does.
#[derive(Debug)]
pub(crate) struct ProtectedNode {
    fw: Framework,
    dir: String,
    prefix: String,
    stage: Stage,
}

#[derive(Debug)]
enum Stage {
    /// No create sent yet: nothing to delete.
    Unsent,
    /// A create was sent, the last one in session epoch `epoch`; its node may exist.
    Sent { epoch: u64 },
    /// The node exists at this path.
    Created(String),
    /// Handed over or deleted: nothing left to do.
    Done,
}

impl ProtectedNode {
    pub(crate) fn new(fw: &Framework, dir: &str) -> Self {
        let prefix = format!("{PROTECTED_PREFIX}{}-", uuid::Uuid::new_v4());
        Self { fw: fw.clone(), dir: dir.to_owned(), prefix, stage: Stage::Unsent }
    }

    /// Creates the node (retrying under the retry policy, creating `dir` as a container if needed)
    /// and, with `list`, lists `dir` in the same round trip: ZooKeeper answers a session's
    /// requests in order, so the listing already contains the new node.
    pub(crate) async fn create(
        &mut self,
        name: &str,
        data: Bytes,
        list: bool,
    ) -> Result<(String, Created, Option<Vec<String>>)> {
        let target = format!("{}/{}{name}", self.dir, self.prefix);
        let mut attempt = 0u32;
        let start = Instant::now();
        loop {
            attempt += 1;
            // Take the client and the state of one and the same connected session.
            self.fw.wait_until_connected(self.fw.connection_timeout()).await?;
            let state = self.fw.current_state();
            let client = self.fw.client();
            if client.session_id() != state.session_id || !state.state.is_connected() {
                continue;
            }
            // From here on a drop looks for the node by its prefix.
            self.stage = Stage::Sent { epoch: state.epoch };
            let create = client.create(&target, data.clone(), CreateMode::EphemeralSequential);
            let listing = list.then(|| client.get_children(&self.dir));
            let error = match create.await {
                Ok((path, stat)) => {
                    self.stage = Stage::Created(path.clone());
                    let children = match listing {
                        Some(listing) => listing.await.ok(),
                        None => None,
                    };
                    return Ok((path, Created { state, czxid: stat.czxid }, children));
                }
                Err(e) => e,
            };
            drop(listing);
            if error.is_no_node() {
                self.fw.ensure_container_path(&self.dir).await?;
                continue;
            }
            let policy = self.fw.retry_policy();
            let retryable = policy.allows(&error) || matches!(error, Error::SessionExpired | Error::Closed);
            let Some(delay) = policy.next_delay(attempt, start.elapsed()).filter(|_| retryable) else {
                return Err(error);
            };
            self.fw.wait_until_connected(self.fw.connection_timeout()).await.map_err(|_| error.clone())?;
            tokio::time::sleep(delay).await;
            // The create may have succeeded before the connection dropped: find it by prefix.
            if let Some(found) = self.find_by_prefix().await? {
                return Ok(found);
            }
        }
    }

    async fn find_by_prefix(&mut self) -> Result<Option<(String, Created, Option<Vec<String>>)>> {
        let state = self.fw.current_state();
        let client = self.fw.client();
        let children = match client.get_children(&self.dir).await {
            Ok(c) => c,
            Err(e) if e.is_no_node() => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(name) = children.iter().find(|c| c.starts_with(&self.prefix)) else {
            return Ok(None);
        };
        let path = format!("{}/{name}", self.dir);
        match client.exists(&path).await? {
            Some(stat) if stat.ephemeral_owner == client.session_id() && state.session_id == client.session_id() => {
                self.stage = Stage::Created(path.clone());
                Ok(Some((path, Created { state, czxid: stat.czxid }, Some(children))))
            }
            Some(_) => {
                // Left by an older session: not ours.
                let _ = self.fw.delete(&path, Delete::new().guaranteed().idempotent()).await;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// The node now belongs to a guard or lease, which deletes it itself: nothing to clean here.
    pub(crate) fn hand_over(&mut self) {
        self.stage = Stage::Done;
    }

    /// Deletes the node now (a guaranteed delete: on a connection error it goes on in the
    /// background). Cancel safe: the cleanup stays armed until the delete has run to its end.
    pub(crate) async fn delete_now(&mut self) -> Result<()> {
        let result = match &self.stage {
            Stage::Created(path) => self.fw.delete(path, Delete::new().guaranteed().idempotent()).await,
            Stage::Sent { epoch } => {
                delete_by_prefix(&self.fw, &self.dir, &self.prefix, *epoch).await;
                Ok(())
            }
            Stage::Unsent | Stage::Done => Ok(()),
        };
        self.stage = Stage::Done;
        result
    }
}

impl Drop for ProtectedNode {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Created(path) => delete_in_background(&self.fw, path),
            Stage::Sent { epoch } => {
                let Ok(handle) = tokio::runtime::Handle::try_current() else {
                    tracing::warn!(dir = %self.dir, prefix = %self.prefix, "no Tokio runtime to delete an abandoned node; it stays until the session ends");
                    return;
                };
                let (fw, dir, prefix) =
                    (self.fw.clone(), std::mem::take(&mut self.dir), std::mem::take(&mut self.prefix));
                handle.spawn(async move { delete_by_prefix(&fw, &dir, &prefix, epoch).await });
            }
            Stage::Unsent | Stage::Done => {}
        }
    }
}

/// Finds and deletes the node(s) of `dir` named with `prefix`: those of an abandoned create.
///
/// Why one listing is enough: the client sends a session's requests in order and ZooKeeper
/// answers them in order, so a getChildren sent after the create sees the node if the create was
/// applied. If the connection dropped with the create in flight, the listing goes out on a later
/// connection, after the server has applied or discarded what the old one carried. If the session
/// ended meanwhile (LOST, or a newer epoch than the create's), the ephemeral node is gone with it.
async fn delete_by_prefix(fw: &Framework, dir: &str, prefix: &str, epoch: u64) {
    let mut pause = Duration::from_millis(50);
    loop {
        let listed = fw
            .with_retry(|client| {
                let dir = dir.to_owned();
                async move { client.get_children(&dir).await }
            })
            .await;
        let error = match listed {
            Ok(children) => {
                for name in children.iter().filter(|c| c.starts_with(prefix)) {
                    let path = format!("{dir}/{name}");
                    tracing::debug!(%path, "deleting the node of an abandoned acquisition");
                    if let Err(e) = fw.delete(&path, Delete::new().guaranteed().idempotent()).await {
                        tracing::debug!(%path, error = %e, "abandoned node's delete continues in the background");
                    }
                }
                return;
            }
            Err(e) if e.is_no_node() => return,
            Err(e) => e,
        };
        let now = fw.current_state();
        let session_over = now.epoch != epoch || now.state == ConnectionState::Lost;
        if session_over || !(error.is_retryable() || matches!(error, Error::Timeout)) {
            tracing::debug!(dir, prefix, error = %error, session_over, "no longer looking for an abandoned node");
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// Deletes `path` (guaranteed) on the current Tokio runtime; outside any runtime, logs a warning
/// and leaves the node to the session.
pub(crate) fn delete_in_background(fw: &Framework, path: String) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(%path, "no Tokio runtime to delete the node; it stays until the session ends");
        return;
    };
    let fw = fw.clone();
    handle.spawn(async move {
        if let Err(e) = fw.delete(&path, Delete::new().guaranteed().idempotent()).await {
            tracing::debug!(%path, error = %e, "node delete continues in the background");
        }
    });
}
