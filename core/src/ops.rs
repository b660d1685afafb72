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
/// use std::time::Duration;
/// use corral_core::{CreateMode, CreateOptions, proto::Acl};
///
/// let opts = CreateOptions::new(CreateMode::PersistentWithTtl)
///     .with_ttl(Duration::from_secs(60))
///     .with_acl(Acl::creator_all());
/// assert_eq!(opts.mode, CreateMode::PersistentWithTtl);
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
    pub fn new(mode: CreateMode) -> Self {
        Self { mode, acl: Acl::open_unsafe(), ttl: None }
    }

    /// Sets the ACL.
    pub fn with_acl(mut self, acl: Vec<Acl>) -> Self {
        self.acl = acl;
        self
    }

    /// Sets the time to live (TTL modes only).
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
    /// A create.
    pub fn create(path: impl Into<String>, data: impl Into<Bytes>, options: impl Into<CreateOptions>) -> Self {
        Self::Create { path: path.into(), data: data.into(), options: options.into() }
    }

    /// A delete; `version` `None` matches any version.
    pub fn delete(path: impl Into<String>, version: Option<i32>) -> Self {
        Self::Delete { path: path.into(), version }
    }

    /// A setData; `version` `None` matches any version.
    pub fn set_data(path: impl Into<String>, data: impl Into<Bytes>, version: Option<i32>) -> Self {
        Self::SetData { path: path.into(), data: data.into(), version }
    }

    /// A version check; `version` `None` checks only that the node exists.
    pub fn check(path: impl Into<String>, version: Option<i32>) -> Self {
        Self::Check { path: path.into(), version }
    }

    /// The path this operation acts on.
    pub fn path(&self) -> &str {
        match self {
            Self::Create { path, .. }
            | Self::Delete { path, .. }
            | Self::SetData { path, .. }
            | Self::Check { path, .. } => path,
        }
    }
}

/// The result of one operation of a successful multi.
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

/// One read of a [`crate::Client::multi_read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    /// getData.
    GetData(String),
    /// getChildren.
    GetChildren(String),
}

/// The result of one read of a multiRead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadResult {
    /// A node's data and stat.
    Data(Bytes, Stat),
    /// A node's children (names, not paths).
    Children(Vec<String>),
}
