//! [`ProtectedCreate`]: Curator's protected create (`_c_<uuid>-` names), bound to a session and
//! cancel safe — the one implementation behind [`Create::protected`], [`Session::create`] and
//! every recipe's contender node.

use super::create::{join, split};
use super::session::{Created, Session};
use super::{Create, Framework, PROTECTED_PREFIX};
use crate::error::{Error, Result};
use bytes::Bytes;

/// A protected create: the node is named `<dir>/_c_<uuid>-<name>`, with a prefix chosen before
/// anything is sent, so that after a connection loss the node is found again by listing `dir`
/// instead of being created twice (Curator's `withProtection`).
///
/// - **Bound to a session.** [`ProtectedCreate::create`] takes a [`Session`]: the create is
///   sent, retried and looked for on that session only. For an ephemeral mode a node is ours
///   only if the create's reply (or the lookup's stat) names this session as its owner; once
///   the session is gone the create fails with [`Error::SessionLost`] — the node, if it was
///   made, goes with its session. For a persistent mode the node outlives sessions, so the
///   lookup by prefix finds it from a later session too: call `create` again with the next
///   session and the same `ProtectedCreate`.
/// - **Cancel safe.** Until [`ProtectedCreate::keep`], dropping the value (or a `create`
///   future mid-way) deletes whatever the create may have made, in the background on the
///   current Tokio runtime: by path once the reply is in, by listing `dir` for the prefix while
///   a create is in flight (as Curator's `findAndDeleteProtectedNodeInBackground`). An
///   ephemeral node is deleted on its own session only; if that session is gone, so is the
///   node. The framework counts these clean-ups in
///   [`Framework::pending_guaranteed_deletes`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
/// use corral_core::{CreateMode, framework::{Create, ProtectedCreate}};
///
/// let session = fw.session().await?;
/// let spec = Create::new(CreateMode::EphemeralSequential).container_parents();
/// let mut node = ProtectedCreate::new(&fw, "/locks/job/lock-", spec)?;
/// let (created, children) = node.create_and_list(&session, "").await?;
/// assert_eq!(children, vec![created.path.rsplit('/').next().unwrap().to_string()]);
/// drop(node); // not kept: deleted in the background
/// # while fw.pending_guaranteed_deletes() > 0 { tokio::task::yield_now().await; }
/// # assert!(fw.client().get_children("/locks/job").await?.is_empty());
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ProtectedCreate {
    fw: Framework,
    dir: String,
    prefix: String,
    target: String,
    spec: Create,
    stage: Stage,
}

#[derive(Debug)]
enum Stage {
    /// Nothing sent that could have been applied.
    Unsent,
    /// A create was sent on `session`; its node may exist.
    Sent { session: Session },
    /// The node exists at `path` (made in `session`).
    Made { path: String, session: Session },
    /// Kept by the caller, or cleaned up: nothing left to do.
    Done,
}

impl ProtectedCreate {
    /// A protected create of `path` (`/dir/name`; for a sequential mode the sequence number is
    /// appended to the name) with the options of `spec` (mode, parents, ACL, TTL); `spec`'s own
    /// protected and idempotent flags are ignored. The prefix is chosen now.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] for a path a plain create would refuse.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_core::{CreateMode, Error, framework::{PROTECTED_PREFIX, ProtectedCreate}};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// let node = ProtectedCreate::new(&fw, "/election/n-", CreateMode::EphemeralSequential)?;
    /// assert!(node.prefix().starts_with(PROTECTED_PREFIX));
    /// let err = ProtectedCreate::new(&fw, "no-slash", CreateMode::Ephemeral).unwrap_err();
    /// assert!(matches!(err, Error::InvalidPath(_)));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(fw: &Framework, path: &str, spec: impl Into<Create>) -> Result<Self> {
        let spec = spec.into().with_provided_acl(fw, path);
        // Checked before the protected name is built from it, so that a protected create of a
        // bad path fails as a plain one does instead of creating something else.
        if spec.mode().is_sequential() {
            corral_proto::validate_sequential_path(path)?;
        } else {
            corral_proto::validate_path(path)?;
        }
        let (dir, name) = split(path);
        let prefix = format!("{PROTECTED_PREFIX}{}-", uuid::Uuid::new_v4());
        let target = join(dir, &format!("{prefix}{name}"));
        Ok(Self { fw: fw.clone(), dir: dir.to_owned(), prefix, target, spec, stage: Stage::Unsent })
    }

    /// A protected create of `<dir>/<unique_name>` (plus the sequence number for a sequential
    /// mode), for layouts other than Curator's: `unique_name` itself is the prefix the node is
    /// found again by, so it must be unique to this create — kazoo's locks, for one, name their
    /// nodes `<uuid hex>__lock__`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] for a `dir` or a name a plain create would refuse;
    /// [`Error::BadArguments`] for an empty name or one with a `/`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// use corral_core::{CreateMode, framework::{Create, ProtectedCreate}};
    ///
    /// let name = format!("{}__lock__", uuid::Uuid::new_v4().simple());
    /// let spec = Create::new(CreateMode::EphemeralSequential).parents();
    /// let mut node = ProtectedCreate::with_unique_name(&fw, "/locks/job", &name, spec)?;
    /// let created = node.create(&fw.session().await?, "worker-1").await?;
    /// assert!(created.path.starts_with(&format!("/locks/job/{name}")));
    /// assert_eq!(node.prefix(), name);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn with_unique_name(fw: &Framework, dir: &str, unique_name: &str, spec: impl Into<Create>) -> Result<Self> {
        let spec = spec.into().with_provided_acl(fw, &join(dir, unique_name));
        if unique_name.is_empty() || unique_name.contains('/') {
            return Err(Error::BadArguments(format!("{unique_name:?} is no node name")));
        }
        let target = join(dir, unique_name);
        if spec.mode().is_sequential() {
            corral_proto::validate_sequential_path(&target)?;
        } else {
            corral_proto::validate_path(&target)?;
        }
        let (fw, dir, prefix) = (fw.clone(), dir.to_owned(), unique_name.to_owned());
        Ok(Self { fw, dir, prefix, target, spec, stage: Stage::Unsent })
    }

    /// The node's name prefix: `_c_<uuid>-`, or the unique name of
    /// [`ProtectedCreate::with_unique_name`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// use corral_core::{CreateMode, framework::ProtectedCreate};
    ///
    /// let mut node = ProtectedCreate::new(&fw, "/n-", CreateMode::EphemeralSequential)?;
    /// let created = node.create(&fw.session().await?, "").await?;
    /// assert!(created.path.starts_with(&format!("/{}", node.prefix())));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Creates the node in `session` (or finds the one an earlier try of this value made) and
    /// returns it. Missing parents are created if the spec asks for them.
    ///
    /// # Errors
    ///
    /// [`Error::SessionLost`] once `session` is gone (for a persistent mode, call again with the
    /// next session: the node is looked for first); [`Error::Closed`] once the framework is
    /// closed; NoNode without parents, NoAuth and other server verdicts as [`Error::Server`];
    /// connection errors once the retry policy gives up.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a node the dropped future may have made is deleted when this value is
    /// dropped (see the type's docs); calling `create` again instead finds it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// use corral_core::{CreateMode, framework::{Create, ProtectedCreate}};
    ///
    /// let session = fw.session().await?;
    /// let spec = Create::new(CreateMode::EphemeralSequential).parents();
    /// let mut node = ProtectedCreate::new(&fw, "/workers/w-", spec)?;
    /// let created = node.create(&session, "payload").await?;
    /// assert_eq!(created.owner(), Some(session.id()));
    /// assert_eq!(node.keep().as_deref(), Some(created.path.as_str())); // ours to delete now
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn create(&mut self, session: &Session, data: impl Into<Bytes>) -> Result<Created> {
        Ok(self.create_inner(session, data.into(), false).await?.0)
    }

    /// As [`ProtectedCreate::create`], and lists `dir` right after: the listing is sent before
    /// the create's reply is awaited and the server answers a session's requests in order, so
    /// it already contains the new node, in one round trip.
    ///
    /// # Errors
    ///
    /// As [`ProtectedCreate::create`].
    ///
    /// # Cancel safety
    ///
    /// As [`ProtectedCreate::create`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// use corral_core::{CreateMode, framework::{Create, ProtectedCreate}};
    ///
    /// let session = fw.session().await?;
    /// let spec = Create::new(CreateMode::EphemeralSequential).container_parents();
    /// let mut first = ProtectedCreate::new(&fw, "/queue/q-", spec.clone())?;
    /// let mut second = ProtectedCreate::new(&fw, "/queue/q-", spec)?;
    /// first.create(&session, "").await?;
    /// let (_, listing) = second.create_and_list(&session, "").await?;
    /// assert_eq!(listing.len(), 2);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn create_and_list(
        &mut self,
        session: &Session,
        data: impl Into<Bytes>,
    ) -> Result<(Created, Vec<String>)> {
        let (created, listing) = self.create_inner(session, data.into(), true).await?;
        match listing {
            Some(children) => Ok((created, children)),
            None => {
                let dir = self.dir.clone();
                let children = session.with_retry(|c| c.get_children(&dir)).await?;
                Ok((created, children))
            }
        }
    }

    async fn create_inner(
        &mut self,
        session: &Session,
        data: Bytes,
        list: bool,
    ) -> Result<(Created, Option<Vec<String>>)> {
        if let Stage::Made { .. } | Stage::Done = self.stage {
            return Err(Error::BadArguments("this protected create has already made its node".into()));
        }
        let data = self.fw.encode(&self.target, data, self.spec.is_compressed())?;
        let policy = self.fw.retry_policy();
        let start = tokio::time::Instant::now();
        let mut attempt = 0u32;
        let mut made_parents = false;
        loop {
            let Some(state) = session.connected_state() else {
                // Disconnected for now (or gone): wait for this session to come back.
                session.reconnected(0).await?;
                continue;
            };
            // A try of ours may have been applied before its reply was lost: look first.
            if matches!(self.stage, Stage::Sent { .. }) || !self.spec.mode().is_ephemeral() && attempt > 0 {
                match self.find(session).await {
                    Ok(Some(found)) => {
                        let listing = if list { session.client().get_children(&self.dir).await.ok() } else { None };
                        return Ok((found, listing));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let e = session.classify(e);
                        self.backoff(session, &*policy, e, &mut attempt, start, state.connection).await?;
                        continue;
                    }
                }
            }
            // From here on a drop looks for the node by its prefix, on this session.
            self.stage = Stage::Sent { session: session.clone() };
            let client = session.client();
            let create = client.create(&self.target, data.clone(), self.spec.options().clone());
            let listing = list.then(|| client.get_children(&self.dir));
            let error = match create.await {
                Ok((path, stat)) => {
                    let created = Created { path: path.clone(), stat, state };
                    self.stage = Stage::Made { path, session: session.clone() };
                    session.check_owner(&created, self.spec.mode()).await?;
                    let listing = match listing {
                        Some(listing) => listing.await.ok(),
                        None => None,
                    };
                    return Ok((created, listing));
                }
                Err(e) => session.classify(e),
            };
            drop(listing);
            if !error.is_retryable() {
                // A verdict: the create was not applied, and an earlier try was looked for
                // before this one was sent.
                self.stage = Stage::Unsent;
            }
            if error.is_no_node()
                && !made_parents
                && let Some(mode) = self.spec.parents_mode()
            {
                made_parents = true;
                let (fw, dir) = (self.fw.clone(), self.dir.clone());
                session
                    .with_retry(|c| {
                        let (fw, dir) = (fw.clone(), dir.clone());
                        async move { fw.ensure_path_with(&c, &dir, mode).await }
                    })
                    .await?;
                continue;
            }
            self.backoff(session, &*policy, error, &mut attempt, start, state.connection).await?;
        }
    }

    /// After a failed try: gives up with `error` unless it is retryable and the policy allows
    /// another try; otherwise waits for the session's connection and the policy's delay.
    async fn backoff(
        &self,
        session: &Session,
        policy: &dyn crate::RetryPolicy,
        error: Error,
        attempt: &mut u32,
        start: tokio::time::Instant,
        connection: u64,
    ) -> Result<()> {
        *attempt += 1;
        if !policy.allows(&error) {
            return Err(error);
        }
        let Some(delay) = policy.next_delay(*attempt, start.elapsed()) else { return Err(error) };
        if session.reconnected(connection).await? {
            return Ok(()); // a new connection was the wait
        }
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// The node an earlier try made, if any: found by its prefix, and for an ephemeral mode
    /// only if `session` owns it.
    async fn find(&mut self, session: &Session) -> Result<Option<Created>> {
        let state = session.connected_state().ok_or(Error::ConnectionLoss)?;
        let client = session.client();
        let children = match client.get_children(&self.dir).await {
            Ok(c) => c,
            Err(e) if e.is_no_node() => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(name) = children.into_iter().find(|c| c.starts_with(&self.prefix)) else { return Ok(None) };
        let path = join(&self.dir, &name);
        let Some(stat) = client.exists(&path).await? else { return Ok(None) };
        if self.spec.mode().is_ephemeral() && stat.ephemeral_owner != session.id() {
            // Made by an earlier session that the server has not expired yet: not ours, and
            // never counted as ours. Delete it rather than leave it sorting ahead of us.
            tracing::debug!(%path, "protected node of an older session; deleting it");
            let _ = client.delete(&path, None).await;
            return Ok(None);
        }
        self.stage = Stage::Made { path: path.clone(), session: session.clone() };
        Ok(Some(Created { path, stat, state }))
    }

    /// The node is the caller's now: nothing will delete it when this value is dropped.
    /// Returns its path, if one was made.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// use corral_core::{CreateMode, framework::ProtectedCreate};
    ///
    /// let mut node = ProtectedCreate::new(&fw, "/kept", CreateMode::Persistent)?;
    /// node.create(&fw.session().await?, "").await?;
    /// let path = node.keep().unwrap();
    /// assert!(fw.client().exists(&path).await?.is_some());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn keep(&mut self) -> Option<String> {
        match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Made { path, .. } => Some(path),
            _ => None,
        }
    }

    /// Deletes whatever this create made (or may have made) now, and waits for the delete.
    /// An ephemeral node is deleted on its own session; if that session is gone, so is the
    /// node.
    ///
    /// # Errors
    ///
    /// Never fails: a delete that cannot finish now goes on in the background.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped, the clean-up goes on in the background.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// use corral_core::{CreateMode, framework::ProtectedCreate};
    ///
    /// let mut node = ProtectedCreate::new(&fw, "/tmp-", CreateMode::EphemeralSequential)?;
    /// let created = node.create(&fw.session().await?, "").await?;
    /// node.delete().await;
    /// assert_eq!(fw.client().exists(&created.path).await?, None);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn delete(mut self) {
        let cleanup = self.take_cleanup();
        if let Some(cleanup) = cleanup {
            // Spawned so that a dropped `delete` still finishes it.
            if let Some(task) = cleanup.spawn() {
                let _ = task.await;
            }
        }
    }

    fn take_cleanup(&mut self) -> Option<Cleanup> {
        let ephemeral = self.spec.mode().is_ephemeral();
        let (fw, dir, prefix) = (self.fw.clone(), self.dir.clone(), self.prefix.clone());
        match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Made { path, session } => Some(Cleanup { fw, dir, prefix, path: Some(path), session, ephemeral }),
            Stage::Sent { session } => Some(Cleanup { fw, dir, prefix, path: None, session, ephemeral }),
            Stage::Unsent | Stage::Done => None,
        }
    }
}

impl Drop for ProtectedCreate {
    fn drop(&mut self) {
        if let Some(cleanup) = self.take_cleanup() {
            let _ = cleanup.spawn();
        }
    }
}

/// What a protected create left to delete.
struct Cleanup {
    fw: Framework,
    dir: String,
    prefix: String,
    /// The node's path, once known; otherwise it is looked for by prefix.
    path: Option<String>,
    session: Session,
    ephemeral: bool,
}

impl Cleanup {
    /// Runs the clean-up on the current Tokio runtime, counted in the framework's pending
    /// deletes; outside any runtime, logs a warning (an ephemeral node then stays until its
    /// session ends).
    fn spawn(self) -> Option<tokio::task::JoinHandle<()>> {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(dir = %self.dir, prefix = %self.prefix, "no Tokio runtime to delete an abandoned protected node");
            return None;
        };
        let counter = self.fw.clone();
        counter.shared_deletes().fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Some(handle.spawn(async move {
            self.run().await;
            counter.shared_deletes().fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }))
    }

    async fn run(self) {
        let (dir, prefix, path) = (self.dir.clone(), self.prefix.clone(), self.path.clone());
        let delete = |client: crate::Client| {
            let (dir, prefix, path) = (dir.clone(), prefix.clone(), path.clone());
            async move { delete_with(&client, &dir, &prefix, path.as_deref()).await }
        };
        let result = if self.ephemeral {
            // On its own session only: if that session is gone, so is the node.
            self.session.with_retry(delete).await
        } else {
            // A persistent node outlives its session: any session may delete it.
            self.fw.with_retry(delete).await
        };
        match result {
            Ok(()) => {}
            Err(Error::SessionLost { .. } | Error::Closed) if self.ephemeral => {}
            Err(e) => tracing::warn!(dir = %self.dir, prefix = %self.prefix, error = %e,
                "could not delete an abandoned protected node; an ephemeral one stays until its session ends"),
        }
    }
}

/// Deletes `path`, or else every child of `dir` named with `prefix`.
///
/// Why one listing is enough: the client sends a session's requests in order and ZooKeeper
/// answers them in order, so a listing sent after the create sees the node if the create was
/// applied; if the connection dropped with the create in flight, the listing goes out on a
/// later connection, after the server has applied or discarded what the old one carried.
async fn delete_with(client: &crate::Client, dir: &str, prefix: &str, path: Option<&str>) -> Result<()> {
    let paths = match path {
        Some(path) => vec![path.to_owned()],
        None => match client.get_children(dir).await {
            Ok(children) => children.iter().filter(|c| c.starts_with(prefix)).map(|c| join(dir, c)).collect(),
            Err(e) if e.is_no_node() => return Ok(()),
            Err(e) => return Err(e),
        },
    };
    for path in paths {
        tracing::debug!(%path, "deleting the node of an abandoned protected create");
        match client.delete(&path, None).await {
            Ok(()) => {}
            Err(e) if e.is_no_node() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
