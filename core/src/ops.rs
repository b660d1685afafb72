//! Argument and result types of client operations: create options, multi operations and
//! their results.

use std::time::Duration;

use bytes::Bytes;
use corral_proto::{Acl, CreateMode, Stat};

/// How to create a node: its mode, ACL and (for TTL modes) time to live.
///
/// A bare [`CreateMode`] converts into options with the open ACL (`world:anyone`, all
/// permissions), so `client.create(path, data, CreateMode::Ephemeral)` works.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let client = corral_core::Client::connect(&server.connect_string()).await?;
/// use std::time::Duration;
/// use corral_core::{Acl, CreateMode, CreateOptions};
///
/// // Deleted by the server once it has no children and was not modified for a minute.
/// let options = CreateOptions::new(CreateMode::PersistentWithTtl)
///     .with_ttl(Duration::from_secs(60))
///     .with_acl(Acl::read_unsafe());
/// client.create("/heartbeat", "", &options).await?;
/// let (acl, _) = client.get_acl("/heartbeat").await?;
/// assert_eq!(acl, Acl::read_unsafe());
/// # client.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOptions {
    /// The node's mode.
    pub mode: CreateMode,
    /// The node's ACL.
    pub acl: Vec<Acl>,
    /// The time to live, for the TTL modes only.
    pub ttl: Option<Duration>,
}

impl CreateOptions {
    /// Options for `mode` with the open ACL and no TTL.
    ///
    /// `CreateOptions::new(mode)` and `mode.into()` are the same.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_core::{Acl, CreateMode, CreateOptions};
    ///
    /// let options = CreateOptions::new(CreateMode::Ephemeral);
    /// assert_eq!(options.acl, Acl::open_unsafe());
    /// assert_eq!(options.ttl, None);
    /// assert_eq!(options, CreateMode::Ephemeral.into());
    /// ```
    pub fn new(mode: CreateMode) -> Self {
        Self { mode, acl: Acl::open_unsafe(), ttl: None }
    }

    /// Sets the ACL (the open ACL by default).
    ///
    /// See [`Acl`]'s constructors for the usual ACLs.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::{Acl, CreateMode, CreateOptions, ErrorCode};
    ///
    /// let read_only = CreateOptions::new(CreateMode::Persistent).with_acl(Acl::read_unsafe());
    /// client.create("/published", "v1", read_only).await?;
    /// let err = client.set_data("/published", "v2", None).await.unwrap_err();
    /// assert_eq!(err.code(), ErrorCode::NoAuth);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn with_acl(mut self, acl: Vec<Acl>) -> Self {
        self.acl = acl;
        self
    }

    /// Sets the time to live (TTL modes only).
    ///
    /// A TTL must be given for the TTL modes and only for them, and must be at most
    /// [`MAX_TTL_MS`](corral_proto::MAX_TTL_MS); otherwise the create fails with
    /// [`Error::BadArguments`](crate::Error::BadArguments) before anything is sent.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use std::time::Duration;
    /// use corral_core::{CreateMode, CreateOptions, Error};
    ///
    /// let wrong = CreateOptions::new(CreateMode::Persistent).with_ttl(Duration::from_secs(60));
    /// let result = client.create("/session-data", "", wrong).await;
    /// assert!(matches!(result, Err(Error::BadArguments(_))));
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

impl From<CreateMode> for CreateOptions {
    fn from(mode: CreateMode) -> Self {
        Self::new(mode)
    }
}

impl From<&CreateOptions> for CreateOptions {
    fn from(opts: &CreateOptions) -> Self {
        opts.clone()
    }
}

/// One write of an atomic [`crate::Client::multi`].
///
/// Build operations with [`Op::create`], [`Op::delete`], [`Op::set_data`] and [`Op::check`];
/// paths are relative to the client's chroot.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let client = corral_core::Client::connect(&server.connect_string()).await?;
/// use corral_core::{CreateMode, Op};
///
/// // Move a task from "todo" to "done", atomically: no observer sees it in both or neither.
/// client.create("/todo", "", CreateMode::Persistent).await?;
/// client.create("/done", "", CreateMode::Persistent).await?;
/// client.create("/todo/t-1", "payload", CreateMode::Persistent).await?;
/// client
///     .multi(vec![
///         Op::create("/done/t-1", "payload", CreateMode::Persistent),
///         Op::delete("/todo/t-1", Some(0)),
///     ])
///     .await?;
/// assert_eq!(client.get_children("/done").await?, ["t-1"]);
/// assert!(client.get_children("/todo").await?.is_empty());
/// # client.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Create a node.
    Create {
        /// The path (a prefix for sequential modes).
        path: String,
        /// The data.
        data: Bytes,
        /// Mode, ACL and TTL.
        options: CreateOptions,
    },
    /// Delete a node.
    Delete {
        /// The path.
        path: String,
        /// The expected version, or `None` for any.
        version: Option<i32>,
    },
    /// Set a node's data.
    SetData {
        /// The path.
        path: String,
        /// The new data.
        data: Bytes,
        /// The expected version, or `None` for any.
        version: Option<i32>,
    },
    /// Check a node's version (the transaction fails if it differs).
    Check {
        /// The path.
        path: String,
        /// The expected version, or `None` to check only that the node exists.
        version: Option<i32>,
    },
}

impl Op {
    /// A create; `options` is a [`CreateMode`] or [`CreateOptions`], as for
    /// [`Client::create`](crate::Client::create).
    ///
    /// Inside a multi the result reports the actual path, with its sequence suffix.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::{CreateMode, Op, OpResult};
    ///
    /// let results = client
    ///     .multi(vec![
    ///         Op::create("/queue", "", CreateMode::Persistent),
    ///         Op::create("/queue/item-", "first", CreateMode::PersistentSequential),
    ///     ])
    ///     .await?;
    /// assert!(matches!(&results[1], OpResult::Create { path, .. } if path == "/queue/item-0000000000"));
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn create(path: impl Into<String>, data: impl Into<Bytes>, options: impl Into<CreateOptions>) -> Self {
        Self::Create { path: path.into(), data: data.into(), options: options.into() }
    }

    /// A delete; `version` `None` matches any version.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::{CreateMode, Error, ErrorCode, Op};
    ///
    /// client.create("/a", "", CreateMode::Persistent).await?;
    /// client.create("/b", "", CreateMode::Persistent).await?;
    /// // Both or neither: "/b" is at version 0, so the whole multi fails.
    /// let err = client.multi(vec![Op::delete("/a", None), Op::delete("/b", Some(5))]).await.unwrap_err();
    /// assert!(matches!(err, Error::MultiFailed { index: 1, code: ErrorCode::BadVersion, .. }));
    /// assert!(client.exists("/a").await?.is_some());
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn delete(path: impl Into<String>, version: Option<i32>) -> Self {
        Self::Delete { path: path.into(), version }
    }

    /// A setData; `version` `None` matches any version.
    ///
    /// Its result is [`OpResult::SetData`] with the node's new stat.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::{CreateMode, Op, OpResult};
    ///
    /// client.create("/primary", "db-1", CreateMode::Persistent).await?;
    /// client.create("/standby", "db-2", CreateMode::Persistent).await?;
    /// // Swap the roles in one step.
    /// let results = client
    ///     .multi(vec![Op::set_data("/primary", "db-2", Some(0)), Op::set_data("/standby", "db-1", Some(0))])
    ///     .await?;
    /// assert!(matches!(&results[0], OpResult::SetData(stat) if stat.version == 1));
    /// assert_eq!(&client.get_data("/primary").await?.0[..], b"db-2");
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn set_data(path: impl Into<String>, data: impl Into<Bytes>, version: Option<i32>) -> Self {
        Self::SetData { path: path.into(), data: data.into(), version }
    }

    /// A version check; `version` `None` checks only that the node exists.
    ///
    /// A check writes nothing: it makes the transaction depend on a node it does not change
    /// (a lock node still held, a configuration still at the version read).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::{CreateMode, ErrorCode, Op};
    ///
    /// // Record a result only while our lease node exists.
    /// client.create("/lease", "", CreateMode::Ephemeral).await?;
    /// let guarded = |value: &'static str| {
    ///     vec![Op::check("/lease", None), Op::create("/result", value, CreateMode::Persistent)]
    /// };
    /// client.multi(guarded("42")).await?;
    /// client.delete("/result", None).await?;
    /// client.delete("/lease", None).await?;
    /// let err = client.multi(guarded("43")).await.unwrap_err();
    /// assert_eq!(err.code(), ErrorCode::NoNode);
    /// assert_eq!(client.exists("/result").await?, None);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn check(path: impl Into<String>, version: Option<i32>) -> Self {
        Self::Check { path: path.into(), version }
    }

    /// The path this operation acts on.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_core::Op;
    ///
    /// let op = Op::set_data("/config", "v2", None);
    /// assert_eq!(op.path(), "/config");
    /// ```
    pub fn path(&self) -> &str {
        match self {
            Self::Create { path, .. }
            | Self::Delete { path, .. }
            | Self::SetData { path, .. }
            | Self::Check { path, .. } => path,
        }
    }
}

/// The result of one operation of a successful multi, in the order of the operations.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let client = corral_core::Client::connect(&server.connect_string()).await?;
/// use corral_core::{CreateMode, Op, OpResult};
///
/// let results = client
///     .multi(vec![
///         Op::create("/job", "new", CreateMode::Persistent),
///         Op::check("/job", Some(0)),
///         Op::set_data("/job", "running", Some(0)),
///         Op::delete("/job", Some(1)),
///     ])
///     .await?;
/// assert!(matches!(&results[0], OpResult::Create { path, .. } if path == "/job"));
/// assert_eq!(results[1], OpResult::Check);
/// assert!(matches!(&results[2], OpResult::SetData(stat) if stat.version == 1));
/// assert_eq!(results[3], OpResult::Delete);
/// # client.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpResult {
    /// A node was created.
    Create {
        /// Its path (with the sequence suffix), relative to the chroot.
        path: String,
        /// Its stat, when the server reports it (ZooKeeper ≥ 3.9, or container/TTL creates).
        stat: Option<Stat>,
    },
    /// A node was deleted.
    Delete,
    /// A node's data was set.
    SetData(Stat),
    /// A version check passed.
    Check,
}

/// One read of a [`crate::Client::multi_read`]; the `String` is the path.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let client = corral_core::Client::connect(&server.connect_string()).await?;
/// use corral_core::{ReadOp, ReadResult};
///
/// let results = client.multi_read(vec![ReadOp::GetChildren("/".into())]).await?;
/// assert!(matches!(&results[0], Ok(ReadResult::Children(names)) if names.contains(&"zookeeper".to_owned())));
/// # client.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    /// getData.
    GetData(String),
    /// getChildren.
    GetChildren(String),
}

/// The result of one read of a [`crate::Client::multi_read`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let client = corral_core::Client::connect(&server.connect_string()).await?;
/// use corral_core::{CreateMode, ReadOp, ReadResult};
///
/// client.create("/config", "v1", CreateMode::Persistent).await?;
/// let results = client.multi_read(vec![ReadOp::GetData("/config".into())]).await?;
/// let Ok(ReadResult::Data(data, stat)) = &results[0] else { panic!("{results:?}") };
/// assert_eq!((&data[..], stat.version), (&b"v1"[..], 0));
/// # client.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadResult {
    /// A node's data and stat.
    Data(Bytes, Stat),
    /// A node's children (names, not paths).
    Children(Vec<String>),
}
