//! Creating nodes through the framework: parents, protected mode, idempotence, retries.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use corral_proto::{Acl, CreateMode};

use super::Framework;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::ops::CreateOptions;

/// Curator's protected-name prefix: `_c_<uuid>-` in front of the node name.
///
/// See [`Create::protected`].
///
/// # Examples
///
/// ```
/// use corral_core::framework::PROTECTED_PREFIX;
///
/// // A name left by a protected create, from Curator or from Corral.
/// let name = "_c_2f1e5a3c-9b0d-4c1e-8a51-0d7c3b1f9e20-lock-0000000007";
/// assert!(name.starts_with(PROTECTED_PREFIX));
/// let (_, rest) = name.split_at(PROTECTED_PREFIX.len() + 36 + 1); // the uuid and its `-`
/// assert_eq!(rest, "lock-0000000007");
/// ```
pub const PROTECTED_PREFIX: &str = "_c_";

/// How [`Framework::create`] creates a node.
///
/// A bare [`CreateMode`] converts into a plain create (no parents, not protected).
///
/// # Examples
///
/// ```
/// use corral_core::{CreateMode, framework::Create};
///
/// let spec = Create::new(CreateMode::EphemeralSequential).container_parents().protected();
/// assert!(spec.is_protected());
/// assert_eq!(spec.mode(), CreateMode::EphemeralSequential);
///
/// let plain: Create = CreateMode::Persistent.into();
/// assert!(!plain.is_protected());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Create {
    options: CreateOptions,
    parents: Option<CreateMode>,
    protected: bool,
    idempotent: bool,
    /// Set by [`Create::with_acl`]; otherwise the framework's [`AclProvider`](super::AclProvider)
    /// chooses.
    explicit_acl: bool,
    /// Set by [`Create::compressed`].
    compressed: bool,
}

impl Create {
    /// A create in `mode` with the open ACL: no parents, not protected, not idempotent.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use corral_core::{CreateMode, framework::Create};
    ///
    /// let path = fw.create("/member", "up", Create::new(CreateMode::Ephemeral)).await?;
    /// assert_eq!(path, "/member");
    /// // No parents: a missing parent is an error.
    /// let err = fw.create("/missing/member", "up", Create::new(CreateMode::Ephemeral)).await.unwrap_err();
    /// assert!(err.is_no_node());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(mode: CreateMode) -> Self {
        Self {
            options: CreateOptions::new(mode),
            parents: None,
            protected: false,
            idempotent: false,
            explicit_acl: false,
            compressed: false,
        }
    }

    /// Creates missing parents as persistent nodes.
    ///
    /// Parents get empty data and the open ACL, whatever the ACL of the node itself; the
    /// namespace is created too.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use corral_core::{CreateMode, framework::Create};
    ///
    /// fw.create("/a/b/c", "leaf", Create::new(CreateMode::Persistent).parents()).await?;
    /// assert!(fw.client().exists("/a/b").await?.is_some());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn parents(mut self) -> Self {
        self.parents = Some(CreateMode::Persistent);
        self
    }

    /// Creates missing parents as container nodes (the server deletes them once empty).
    ///
    /// Recipes use it for their directories (`/locks/job-42`), so that directories do not pile
    /// up; the server sweeps empty containers periodically (ZooKeeper's
    /// `znode.container.checkIntervalMs`, one minute by default).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use corral_core::{CreateMode, framework::{Create, Delete}};
    ///
    /// let spec = Create::new(CreateMode::Ephemeral).container_parents();
    /// let lock = fw.create("/locks/job-42/lock", "", spec).await?;
    /// fw.delete(&lock, Delete::new()).await?;
    /// server.sweep_now(); // the server's periodic sweep, run now
    /// assert_eq!(fw.client().exists("/locks/job-42").await?, None);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn container_parents(mut self) -> Self {
        self.parents = Some(CreateMode::Container);
        self
    }

    /// Protected mode (Curator's `withProtection`): the name gets a `_c_<uuid>-` prefix, and
    /// after a connection loss the node is looked up by that prefix instead of being created a
    /// second time. For ephemeral modes, a node found there that belongs to an older session is
    /// deleted and created again.
    ///
    /// The returned path includes the prefix. The prefix is Curator's, so Java and Rust
    /// processes can share protected nodes (locks, leader latches).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use corral_core::{CreateMode, framework::{Create, PROTECTED_PREFIX}};
    ///
    /// let spec = Create::new(CreateMode::EphemeralSequential).parents().protected();
    /// let path = fw.create("/election/n-", "", spec).await?;
    /// let name = path.strip_prefix("/election/").unwrap();
    /// assert!(name.starts_with(PROTECTED_PREFIX)); // "_c_<uuid>-n-0000000000"
    /// assert!(name.ends_with("-n-0000000000"));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn protected(mut self) -> Self {
        self.protected = true;
        self
    }

    /// Idempotent: if the node already exists with exactly this data (and, for an ephemeral
    /// mode, belongs to the current session), the create succeeds (a retry after a connection
    /// loss then does not fail with NodeExists).
    ///
    /// Not for sequential modes, whose every create makes a new node.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use corral_core::{CreateMode, ErrorCode, framework::Create};
    ///
    /// let spec = Create::new(CreateMode::Persistent).idempotent();
    /// fw.create("/config", "v1", spec.clone()).await?;
    /// fw.create("/config", "v1", spec.clone()).await?; // the same node: fine
    /// let err = fw.create("/config", "v2", spec).await.unwrap_err();
    /// assert_eq!(err.code(), ErrorCode::NodeExists);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Sets the ACL (the open ACL by default). Parents created by [`Create::parents`] keep the
    /// open ACL.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use corral_core::{Acl, CreateMode, ErrorCode, framework::Create};
    ///
    /// fw.create("/frozen", "v1", Create::new(CreateMode::Persistent).with_acl(Acl::read_unsafe())).await?;
    /// let err = fw.set_data("/frozen", "v2", None).await.unwrap_err();
    /// assert_eq!(err.code(), ErrorCode::NoAuth);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn with_acl(mut self, acl: Vec<Acl>) -> Self {
        self.options.acl = acl;
        self.explicit_acl = true;
        self
    }

    /// Sets the TTL (TTL modes only; see [`CreateOptions::with_ttl`]).
    ///
    /// The server must have TTL nodes enabled (ZooKeeper's `zookeeper.extendedTypesEnabled`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use std::time::Duration;
    /// use corral_core::{CreateMode, framework::Create};
    ///
    /// let spec = Create::new(CreateMode::PersistentWithTtl).with_ttl(Duration::from_millis(50));
    /// fw.create("/heartbeat", "", spec).await?;
    /// tokio::time::sleep(Duration::from_millis(100)).await; // unmodified for longer than its TTL
    /// server.sweep_now();
    /// assert_eq!(fw.client().exists("/heartbeat").await?, None);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.options.ttl = Some(ttl);
        self
    }

    /// Compresses the data with the framework's
    /// [`CompressionProvider`](super::CompressionProvider) (Curator's `create().compressed()`;
    /// gzip in Curator's format by default). Read it back with
    /// [`Framework::get_data_decompressed`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use corral_core::{CreateMode, framework::Create};
    ///
    /// let spec = Create::new(CreateMode::Persistent).compressed();
    /// assert!(spec.is_compressed());
    /// fw.create("/report", "row\n".repeat(500), spec).await?;
    /// let (raw, _) = fw.client().get_data("/report").await?;
    /// assert_eq!(&raw[..2], [0x1f, 0x8b]);
    /// assert_eq!(fw.get_data_decompressed("/report").await?.0.len(), 2000);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn compressed(mut self) -> Self {
        self.compressed = true;
        self
    }

    /// Whether the data is compressed (see [`Create::compressed`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_core::{CreateMode, framework::Create};
    ///
    /// assert!(!Create::new(CreateMode::Persistent).is_compressed());
    /// ```
    pub fn is_compressed(&self) -> bool {
        self.compressed
    }

    /// Whether protected mode is on.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_core::{CreateMode, framework::Create};
    ///
    /// assert!(!Create::new(CreateMode::Ephemeral).is_protected());
    /// assert!(Create::new(CreateMode::Ephemeral).protected().is_protected());
    /// ```
    pub fn is_protected(&self) -> bool {
        self.protected
    }

    /// The mode.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_core::{CreateMode, framework::Create};
    ///
    /// let spec: Create = CreateMode::PersistentSequential.into();
    /// assert_eq!(spec.mode(), CreateMode::PersistentSequential);
    /// ```
    pub fn mode(&self) -> CreateMode {
        self.options.mode
    }
}

impl Create {
    /// The spec with the ACL `fw`'s provider gives `path`, unless one was set explicitly.
    pub(super) fn with_provided_acl(mut self, fw: &Framework, path: &str) -> Self {
        if !self.explicit_acl {
            self.options.acl = fw.inner.acl.acl_for_path(path);
        }
        self
    }

    pub(super) fn options(&self) -> &CreateOptions {
        &self.options
    }

    pub(super) fn parents_mode(&self) -> Option<CreateMode> {
        self.parents
    }
}

impl From<CreateMode> for Create {
    fn from(mode: CreateMode) -> Self {
        Self::new(mode)
    }
}

/// Splits `/a/b/name` into (`/a/b`, `name`).
pub(super) fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("/", path),
    }
}

pub(super) fn join(parent: &str, name: &str) -> String {
    if parent == "/" { format!("/{name}") } else { format!("{parent}/{name}") }
}

impl Framework {
    /// Creates a node, retrying under the retry policy, and returns its actual path.
    ///
    /// See [`Create`] for parents, protected mode and idempotence.
    ///
    /// # Errors
    ///
    /// As [`Client::create`], after retries are exhausted: NoNode for a missing parent without
    /// [`Create::parents`], NodeExists (for an idempotent create: when the node exists with
    /// other data, or is another session's ephemeral), [`Error::InvalidPath`] (also for a
    /// protected create), [`Error::BadArguments`] and [`Error::Compression`] (for
    /// [`Create::compressed`]) before anything is sent, connection errors once the retry
    /// policy gives up.
    ///
    /// # Cancel safety
    ///
    /// A protected create ([`Create::protected`]) is cancel safe: a node it may have made is
    /// deleted in the background when the future is dropped (see
    /// [`ProtectedCreate`](super::ProtectedCreate)). Any other create is not: a node may have
    /// been created when the future is dropped, and nothing deletes it (an ephemeral one goes
    /// with its session).
    ///
    /// # Sessions
    ///
    /// A protected create that loses its session before the reply is tried again on the next
    /// session (its ephemeral node, if it was made, went with the old one); a plain create is
    /// retried across sessions as any [`Framework::with_retry`] operation. To bind a create to
    /// one session, use [`Framework::session`] and [`Session::create`](super::Session::create).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use corral_core::{CreateMode, framework::Create};
    ///
    /// let spec = Create::new(CreateMode::PersistentSequential).parents();
    /// let path = fw.create("/jobs/job-", "payload", spec).await?;
    /// assert_eq!(path, "/jobs/job-0000000000");
    /// // A bare mode is a plain create.
    /// fw.create("/jobs/latest", path.clone(), CreateMode::Persistent).await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn create(&self, path: &str, data: impl Into<Bytes>, spec: impl Into<Create>) -> Result<String> {
        let spec = spec.into().with_provided_acl(self, path);
        let data = data.into();
        if spec.protected {
            return self.create_protected(path, data, spec).await;
        }
        let data = self.encode(path, data, spec.compressed)?;
        if spec.mode().is_sequential() {
            corral_proto::validate_sequential_path(path)?;
        } else {
            corral_proto::validate_path(path)?;
        }
        self.with_retry(|client| {
            let (spec, data) = (spec.clone(), data.clone());
            let fw = self.clone();
            async move { Ok(fw.create_once(&client, path, data, &spec).await?.0) }
        })
        .await
    }

    /// A protected create through the framework: one [`ProtectedCreate`](super::ProtectedCreate)
    /// tried on the current session and, if that session is lost first, on the next (the
    /// retry policy permitting). An ephemeral node made in a lost session went with it; a
    /// persistent one is found again by its prefix.
    async fn create_protected(&self, path: &str, data: Bytes, spec: Create) -> Result<String> {
        let mut node = super::ProtectedCreate::new(self, path, spec)?;
        let policy = self.retry_policy();
        let start = tokio::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            let session = self.session().await?;
            match node.create(&session, data.clone()).await {
                Ok(created) => {
                    node.keep();
                    return Ok(created.path);
                }
                Err(Error::SessionLost { .. }) if !self.is_closed() => {
                    attempt += 1;
                    if policy.next_delay(attempt, start.elapsed()).is_none() {
                        return Err(Error::ConnectionLoss);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub(super) async fn create_once(
        &self,
        client: &Client,
        path: &str,
        data: Bytes,
        spec: &Create,
    ) -> Result<(String, corral_proto::Stat)> {
        let result = match client.create(path, data.clone(), spec.options.clone()).await {
            Err(e) if e.is_no_node() && spec.parents.is_some() => {
                let (parent, _) = split(path);
                self.ensure_path_with(client, parent, spec.parents.unwrap_or(CreateMode::Persistent)).await?;
                client.create(path, data.clone(), spec.options.clone()).await
            }
            other => other,
        };
        match result {
            Ok(created) => Ok(created),
            Err(e) if e.is_node_exists() && spec.idempotent && !spec.mode().is_sequential() => {
                // Ours only if it holds our data and, for an ephemeral, belongs to our session.
                let (existing, stat) = client.get_data(path).await?;
                let owned = !spec.mode().is_ephemeral() || stat.ephemeral_owner == client.session_id();
                if existing == data && owned { Ok((path.to_owned(), stat)) } else { Err(e) }
            }
            Err(e) => Err(e),
        }
    }

    /// Creates `path` and every missing ancestor as persistent nodes; existing nodes are left
    /// alone.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] before anything is sent; NoAuth, NoChildrenForEphemerals as
    /// [`Error::Server`]; connection errors once the retry policy gives up.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in effect: dropping the future may leave some of the nodes created, and
    /// calling it again completes the path.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// fw.ensure_path("/services/web/instances").await?;
    /// fw.ensure_path("/services/web/instances").await?; // nothing to do
    /// assert!(fw.client().exists("/services/web").await?.is_some());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn ensure_path(&self, path: &str) -> Result<()> {
        self.with_retry(|client| {
            let fw = self.clone();
            let path = path.to_owned();
            async move { fw.ensure_path_with(&client, &path, CreateMode::Persistent).await }
        })
        .await
    }

    /// Like [`Framework::ensure_path`], with containers for the nodes it creates.
    ///
    /// # Errors
    ///
    /// As [`Framework::ensure_path`].
    ///
    /// # Cancel safety
    ///
    /// As [`Framework::ensure_path`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use corral_core::CreateMode;
    ///
    /// fw.ensure_container_path("/queues/q1").await?;
    /// fw.create("/queues/q1/item", "", CreateMode::Persistent).await?;
    /// fw.client().delete("/queues/q1/item", None).await?;
    /// server.sweep_now(); // empty containers are deleted by the server
    /// assert_eq!(fw.client().exists("/queues/q1").await?, None);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn ensure_container_path(&self, path: &str) -> Result<()> {
        self.with_retry(|client| {
            let fw = self.clone();
            let path = path.to_owned();
            async move { fw.ensure_path_with(&client, &path, CreateMode::Container).await }
        })
        .await
    }

    pub(super) async fn ensure_path_with(&self, client: &Client, path: &str, mode: CreateMode) -> Result<()> {
        corral_proto::validate_path(path)?;
        client.ensure_chroot_with(&|p| self.inner.acl.acl_for_path(p)).await?;
        if path == "/" {
            return Ok(());
        }
        // Every level's create is queued before any is awaited: the server answers a session's
        // requests in order, so each parent exists before its child's create is applied, and
        // the whole path costs one round trip.
        let mut current = String::new();
        let creates: Vec<_> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|segment| {
                current.push('/');
                current.push_str(segment);
                let options = CreateOptions { mode, acl: self.inner.acl.acl_for_path(&current), ttl: None };
                client.create(&current, Bytes::new(), options)
            })
            .collect();
        let mut first_error = None;
        for create in creates {
            match create.await {
                Ok(_) => {}
                Err(e) if e.is_node_exists() => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Sets a node's data, retrying under the retry policy.
    ///
    /// With `version` set, a retry that finds the version already bumped by one and the data
    /// already equal to `data` counts as success (the first attempt was applied before the
    /// connection dropped).
    ///
    /// See [`Framework::set_data_compressed`] for data compressed by the framework's provider.
    ///
    /// # Errors
    ///
    /// As [`Client::set_data`], after retries.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the data may have been set when the future is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use corral_core::{CreateMode, ErrorCode};
    ///
    /// fw.create("/config", "v1", CreateMode::Persistent).await?;
    /// let stat = fw.set_data("/config", "v2", Some(0)).await?;
    /// assert_eq!(stat.version, 1);
    /// let stale = fw.set_data("/config", "v3", Some(0)).await.unwrap_err();
    /// assert_eq!(stale.code(), ErrorCode::BadVersion);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn set_data(
        &self,
        path: &str,
        data: impl Into<Bytes>,
        version: Option<i32>,
    ) -> Result<corral_proto::Stat> {
        self.set_data_raw(path, data.into(), version).await
    }

    /// [`Framework::set_data`] of data as it is to be stored.
    pub(super) async fn set_data_raw(
        &self,
        path: &str,
        data: Bytes,
        version: Option<i32>,
    ) -> Result<corral_proto::Stat> {
        let attempts = Arc::new(AtomicU32::new(0));
        self.with_retry(|client| {
            let (data, path, attempts) = (data.clone(), path.to_owned(), attempts.clone());
            async move {
                let attempt = attempts.fetch_add(1, Ordering::SeqCst);
                match client.set_data(&path, data.clone(), version).await {
                    Err(Error::Server { code: corral_proto::ErrorCode::BadVersion, path: p }) if attempt > 0 => {
                        let (current, stat) = client.get_data(&path).await?;
                        if version.is_some_and(|v| stat.version == v.wrapping_add(1)) && current == data {
                            Ok(stat)
                        } else {
                            Err(Error::Server { code: corral_proto::ErrorCode::BadVersion, path: p })
                        }
                    }
                    other => other,
                }
            }
        })
        .await
    }

    /// Runs `ops` as one atomic transaction, retrying under the retry policy.
    ///
    /// # Errors
    ///
    /// [`Error::MultiFailed`] when an operation fails (nothing applied); connection errors
    /// after retries. A retry after ConnectionLoss may find the first attempt applied: guard
    /// such transactions with a [`crate::Op::check`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the transaction may have been applied when the future is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use corral_core::{CreateMode, Op, OpResult};
    ///
    /// fw.create("/config", "v1", CreateMode::Persistent).await?;
    /// let results = fw
    ///     .transaction(vec![Op::check("/config", Some(0)), Op::set_data("/config", "v2", Some(0))])
    ///     .await?;
    /// assert!(matches!(&results[1], OpResult::SetData(stat) if stat.version == 1));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn transaction(&self, ops: Vec<crate::Op>) -> Result<Vec<crate::OpResult>> {
        self.with_retry(|client| client.multi(ops.clone())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_join() {
        assert_eq!(split("/a/b/c"), ("/a/b", "c"));
        assert_eq!(split("/c"), ("/", "c"));
        assert_eq!(join("/", "c"), "/c");
        assert_eq!(join("/a", "c"), "/a/c");
    }
}
