//! The double-barrier engine that Curator's layout ([`DistributedDoubleBarrier`]) and kazoo's
//! ([`kazoo::DoubleBarrier`]) share: one member's enter and leave. The two differ only in node
//! layout and data, and in the few steps whose order or strictness the two libraries chose
//! differently; [`Flavor`] names each of those.
//!
//! [`DistributedDoubleBarrier`]: super::DistributedDoubleBarrier
//! [`kazoo::DoubleBarrier`]: crate::kazoo::DoubleBarrier

use std::sync::Mutex as StdMutex;

use crate::{Error, Result};
use bytes::Bytes;
use corral_core::Error as CoreError;
use corral_core::framework::{Create, Delete, Session};
use corral_core::{CreateMode, ErrorCode, EventType, Framework};
use tokio::time::Instant;

/// Whose layout a member follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// Curator's `DistributedDoubleBarrier`: the member node's parents are containers; `ready`
    /// holds the member data and is deleted when the last member is out; a leaving member
    /// whose node is missing in the session that made it is an error; a member that is not the
    /// lowest is out once only the lowest is left.
    Curator,
    /// kazoo's `DoubleBarrier`: persistent parents; `ready` is empty and deleted when the first
    /// member leaves; a missing node counts as left; every member waits until all are out.
    Kazoo,
}

/// One member of a double barrier at `path`, whose node is `<path>/<name>`.
#[derive(Debug)]
pub(crate) struct Member {
    fw: Framework,
    flavor: Flavor,
    path: String,
    threshold: usize,
    name: String,
    node_path: String,
    ready_path: String,
    /// The session our member node was made in, while it may exist.
    joined: StdMutex<Option<Session>>,
}

/// Deletes the member node (on the session that made it) in the background when dropped armed:
/// an abandoned enter or leave.
struct Cleanup<'a> {
    member: &'a Member,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.member.delete_in_background();
        }
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent == "/" { format!("/{name}") } else { format!("{}/{name}", parent.trim_end_matches('/')) }
}

impl Member {
    /// A member that opens the barrier at `threshold` members; nothing is sent yet.
    pub(crate) fn new(fw: &Framework, flavor: Flavor, path: String, name: String, threshold: usize) -> Self {
        let (node_path, ready_path) = (join(&path, &name), join(&path, super::READY_NODE));
        Self { fw: fw.clone(), flavor, path, threshold, name, node_path, ready_path, joined: StdMutex::new(None) }
    }

    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    pub(crate) fn threshold(&self) -> usize {
        self.threshold
    }

    pub(crate) fn node_path(&self) -> &str {
        &self.node_path
    }

    /// Enters with `data` in the member node (and `ready_data` in `ready` if this member opens
    /// the barrier); `false` once `deadline` passed with the barrier closed (the member node is
    /// then deleted).
    pub(crate) async fn enter_until(&self, data: Bytes, ready_data: Bytes, deadline: Option<Instant>) -> Result<bool> {
        // Until entered, a drop or an error takes the member node away again.
        let mut cleanup = Cleanup { member: self, armed: true };
        let mut states = self.fw.connection_state();
        if self.flavor == Flavor::Kazoo {
            self.fw.ensure_path(&self.path).await?;
        }
        loop {
            let seen = *states.borrow_and_update();
            // The ready watch first, then our node, as Curator: a ready node created after the
            // check fires the watch.
            let ready_path = self.ready_path.clone();
            let (ready, ready_watcher) = self
                .fw
                .with_retry(move |client| {
                    let path = ready_path.clone();
                    async move { client.exists_and_watch(&path).await }
                })
                .await?;
            self.join_in_current_session(&data).await?;
            if ready.is_some() {
                cleanup.armed = false;
                return Ok(true);
            }
            let count = crate::sort::children_or_empty(&self.fw, &self.path).await?.len();
            if count >= self.threshold {
                match self.fw.create(&self.ready_path, ready_data.clone(), CreateMode::Persistent).await {
                    Ok(_) => {}
                    Err(e) if e.is_node_exists() => {}
                    Err(e) => return Err(Error::from(e)),
                }
                tracing::debug!(path = %self.path, count, "double barrier full; ready");
                cleanup.armed = false;
                return Ok(true);
            }
            tokio::select! {
                event = ready_watcher => {
                    // Created counts even if it is gone again by now (everyone entered and left).
                    if event.event_type == EventType::NodeCreated {
                        cleanup.armed = false;
                        return Ok(true);
                    }
                }
                connected = crate::task::new_connection(&mut states, seen.connection) => {
                    if !connected {
                        return Err(Error::CLOSED);
                    }
                }
                _ = crate::queue::sleep_until_opt(deadline) => {
                    // One last look: the barrier may have opened as the time ran out.
                    if matches!(self.fw.client().exists(&self.ready_path).await, Ok(Some(_))) {
                        cleanup.armed = false;
                        return Ok(true);
                    }
                    cleanup.armed = false;
                    self.delete_ours().await?;
                    return Ok(false);
                }
            }
        }
    }

    /// Makes sure our member node exists in the current session, created through that
    /// session's handle: if the session is lost before the reply, the node (if made) went with
    /// it and the next session creates it again.
    async fn join_in_current_session(&self, data: &Bytes) -> Result<()> {
        let spec = match self.flavor {
            Flavor::Curator => Create::new(CreateMode::Ephemeral).container_parents().idempotent(),
            Flavor::Kazoo => Create::new(CreateMode::Ephemeral).idempotent(),
        };
        loop {
            let session = self.fw.session().await?;
            if self.joined_session().is_some_and(|s| s.epoch() == session.epoch()) {
                return Ok(());
            }
            match session.create(&self.node_path, data.clone(), spec.clone()).await {
                Ok(_) => {
                    *self.joined.lock().unwrap_or_else(|e| e.into_inner()) = Some(session);
                    return Ok(());
                }
                Err(CoreError::SessionLost { .. }) => continue,
                Err(e) => return Err(Error::from(e)),
            }
        }
    }

    fn joined_session(&self) -> Option<Session> {
        self.joined.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn take_joined(&self) -> Option<Session> {
        self.joined.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Deletes our member node on the session that made it (a lost session took it already).
    async fn delete_ours(&self) -> Result<()> {
        let Some(session) = self.take_joined() else { return Ok(()) };
        match crate::task::try_delete_on_session(&session, &self.node_path).await {
            Ok(()) => Ok(()),
            Err(e) => {
                // Not gone: keep it ours, so that a drop or a later call tries again.
                *self.joined.lock().unwrap_or_else(|e| e.into_inner()) = Some(session);
                Err(Error::from(e))
            }
        }
    }

    /// Deletes our member node, if it may exist, on its session in the background (nothing
    /// outside a Tokio runtime: the node then stays until its session ends).
    pub(crate) fn delete_in_background(&self) {
        let Some(session) = self.take_joined() else { return };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let path = self.node_path.clone();
            handle.spawn(async move { crate::task::delete_on_session(&session, &path).await });
        }
    }

    /// Leaves; `false` once `deadline` passed with members still in (our node is deleted
    /// either way).
    pub(crate) async fn leave_until(&self, deadline: Option<Instant>) -> Result<bool> {
        let kazoo = self.flavor == Flavor::Kazoo;
        if kazoo {
            // kazoo deletes `ready` first: nobody enters the finished round any more.
            self.fw.delete(&self.ready_path, Delete::new().idempotent()).await?;
        }
        let mut cleanup = Cleanup { member: self, armed: true };
        let mut ours_gone = false;
        let mut states = self.fw.connection_state();
        let mut result = true;
        loop {
            let seen = *states.borrow_and_update();
            let mut children: Vec<String> = crate::sort::children_or_empty(&self.fw, &self.path)
                .await?
                .into_iter()
                .filter(|c| c != super::READY_NODE)
                .collect();
            children.sort();
            if children.is_empty() {
                break;
            }
            let our_index = children.iter().position(|c| *c == self.name);
            if our_index.is_none() && !ours_gone {
                let joined = self.joined_session();
                if kazoo || joined.is_some_and(|s| s.epoch() != self.fw.current_state().epoch) {
                    // Our node went with an earlier session: we have left already.
                    self.take_joined();
                    ours_gone = true;
                } else {
                    return Err(Error::from(CoreError::Server {
                        code: ErrorCode::NoNode,
                        path: self.node_path.clone(),
                    }));
                }
            }
            // Alone: ours is the last node (Curator also counts a member out once only the
            // lowest is left; kazoo's waits for that one too).
            if children.len() == 1 && (our_index.is_some() || !kazoo) {
                self.delete_ours().await?;
                break;
            }
            let is_lowest = our_index == Some(0);
            let target = join(&self.path, if is_lowest { &children[children.len() - 1] } else { &children[0] });
            let (stat, watcher) = self
                .fw
                .with_retry(move |client| {
                    let path = target.clone();
                    async move { client.exists_and_watch(&path).await }
                })
                .await?;
            if !is_lowest {
                self.delete_ours().await?;
                ours_gone = true;
            }
            if stat.is_some() {
                tokio::select! {
                    _ = watcher => {}
                    connected = crate::task::new_connection(&mut states, seen.connection) => {
                        if !connected {
                            return Err(Error::CLOSED);
                        }
                    }
                    _ = crate::queue::sleep_until_opt(deadline) => {
                        result = false;
                        self.delete_ours().await?;
                        break;
                    }
                }
            }
        }
        if !kazoo {
            self.fw.delete(&self.ready_path, Delete::new().idempotent()).await?;
        }
        // A node that went with an earlier session is not ours to delete any more.
        self.take_joined();
        cleanup.armed = false;
        Ok(result)
    }
}
