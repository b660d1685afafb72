//! A contender's node under a protected name: core's [`ProtectedCreate`], tried on the current
//! session and, while nothing is held yet, on the next one if that session is lost first.

use crate::{Error, Result};
use bytes::Bytes;
use corral_core::Error as CoreError;
use corral_core::framework::{Create, Delete, ProtectedCreate};
use corral_core::{ConnectionState, ConnectionStateChange, CreateMode, ErrorCode, Framework};

/// What creating a contender's node established: the connection state the create was sent in
/// (the session's id and epoch, the connection's number) and the node's czxid.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Created {
    /// The connection state the create was sent in.
    pub(crate) state: ConnectionStateChange,
    pub(crate) czxid: i64,
}

impl Created {
    /// The session the node belongs to: the one whose handle made it (the create's reply named
    /// it as the owner).
    pub(crate) fn session_id(&self) -> i64 {
        self.state.session_id
    }

    /// Whether the framework is still on the node's session (not LOST, not a later one).
    pub(crate) fn session_is_current(&self, fw: &Framework) -> bool {
        let now = fw.current_state();
        now.epoch == self.state.epoch && now.state != ConnectionState::Lost
    }

    /// [`Error::SessionLost`] for the node's session: the work bound to it ended with it.
    pub(crate) fn session_lost(&self) -> Error {
        Error::SessionLost { session_id: self.session_id() }
    }

    /// Why the work bound to the node's session ended: the framework was closed
    /// ([`CoreError::Closed`]), or the session is gone ([`Created::session_lost`]).
    pub(crate) fn ended(&self, fw: &Framework) -> Error {
        if fw.is_closed() { Error::from(CoreError::Closed) } else { self.session_lost() }
    }

    /// The error for this node found gone at `path`: [`Error::SessionLost`] once its session is
    /// over (the node went with it); while the session lives, someone deleted it, and that is a
    /// `NoNode` for the node (as Curator's "Sequential path not found").
    pub(crate) fn node_gone(&self, fw: &Framework, path: &str) -> Error {
        if self.session_is_current(fw) {
            tracing::warn!(%path, "a contender's node was deleted under it while its session lives");
            Error::from(CoreError::Server { code: ErrorCode::NoNode, path: path.to_owned() })
        } else {
            self.ended(fw)
        }
    }
}

/// How a contender's node is named.
#[derive(Debug, Clone, Copy)]
enum Name<'a> {
    /// `_c_<uuid>-<name><seq>`.
    Curator(&'a str),
    /// `<unique><seq>`; `unique` must be unique to this contender.
    Unique(&'a str),
}

/// One acquisition's ephemeral sequential node, `<dir>/_c_<uuid>-<name><sequence>`, and its
/// clean-up: until [`ProtectedNode::hand_over`], the node is deleted in the background when this
/// value is dropped (also while its create waits for the reply).
#[derive(Debug)]
pub(crate) struct ProtectedNode {
    fw: Framework,
    dir: String,
    node: Option<ProtectedCreate>,
    /// The session the node must be created in, if the work it is part of is bound to one.
    bound: Option<i64>,
}

impl ProtectedNode {
    pub(crate) fn new(fw: &Framework, dir: &str) -> Self {
        Self { fw: fw.clone(), dir: dir.to_owned(), node: None, bound: None }
    }

    /// A node that is part of work bound to the session `session_id` (a lock held in it): it is
    /// created in that session or not at all, and its create fails with [`Error::SessionLost`]
    /// for `session_id` once that session is gone.
    pub(crate) fn bound_to(fw: &Framework, dir: &str, session_id: i64) -> Self {
        Self { bound: Some(session_id), ..Self::new(fw, dir) }
    }

    /// Creates the node (creating `dir` as a container if needed — persistent parents for
    /// kazoo's layout, as kazoo makes them) in the current session and,
    /// with `list`, lists `dir` in the same round trip. If the session is lost before the
    /// create is answered, nothing is held yet: the node (if made) went with that session, and
    /// a fresh one is created in the next session, the retry policy permitting — unless the
    /// node is [bound](ProtectedNode::bound_to) to a session.
    pub(crate) async fn create(
        &mut self,
        name: &str,
        data: Bytes,
        list: bool,
    ) -> Result<(String, Created, Option<Vec<String>>)> {
        self.create_named(Name::Curator(name), data, list).await
    }

    /// As [`ProtectedNode::create`], for a layout whose contenders name their nodes with a
    /// `unique` name of their own instead of Curator's protected prefix (kazoo's).
    pub(crate) async fn create_unique(
        &mut self,
        unique: &str,
        data: Bytes,
        list: bool,
    ) -> Result<(String, Created, Option<Vec<String>>)> {
        self.create_named(Name::Unique(unique), data, list).await
    }

    async fn create_named(
        &mut self,
        name: Name<'_>,
        data: Bytes,
        list: bool,
    ) -> Result<(String, Created, Option<Vec<String>>)> {
        // Curator makes a lock's directory a container; kazoo's `ensure_path` makes persistent
        // nodes, and a kazoo contender whose directory a container sweep took between its
        // `ensure_path` and its create fails: in kazoo's layout, persistent parents.
        let spec = match name {
            Name::Curator(_) => Create::new(CreateMode::EphemeralSequential).container_parents(),
            Name::Unique(_) => Create::new(CreateMode::EphemeralSequential).parents(),
        };
        let policy = self.fw.retry_policy();
        let start = tokio::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            let session = self.fw.session().await?;
            if let Some(bound) = self.bound.filter(|id| *id != session.id()) {
                return Err(Error::SessionLost { session_id: bound });
            }
            // A new value per session: the old one's clean-up (if any) is for the old session.
            let node = self.node.insert(match name {
                Name::Curator(name) => ProtectedCreate::new(&self.fw, &format!("{}/{name}", self.dir), spec.clone())?,
                Name::Unique(unique) => ProtectedCreate::with_unique_name(&self.fw, &self.dir, unique, spec.clone())?,
            });
            let result = if list {
                node.create_and_list(&session, data.clone()).await.map(|(c, l)| (c, Some(l)))
            } else {
                node.create(&session, data.clone()).await.map(|c| (c, None))
            };
            match result {
                Ok((created, children)) => {
                    let held = Created { state: created.state, czxid: created.stat.czxid };
                    return Ok((created.path, held, children));
                }
                Err(CoreError::SessionLost { session_id }) => {
                    attempt += 1;
                    if self.bound.is_some() || policy.next_delay(attempt, start.elapsed()).is_none() {
                        // The last try's session ended under its create, too.
                        return Err(Error::SessionLost { session_id });
                    }
                }
                Err(e) => return Err(Error::from(e)),
            }
        }
    }

    /// The node now belongs to a guard or lease, which deletes it itself: nothing to clean here.
    pub(crate) fn hand_over(&mut self) {
        if let Some(mut node) = self.node.take() {
            node.keep();
        }
    }

    /// Deletes the node now, on its own session (in the background if that cannot finish now).
    pub(crate) async fn delete_now(&mut self) {
        if let Some(node) = self.node.take() {
            node.delete().await;
        }
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
