//! The errors a command ends with, each with the exit code scripts can test.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the operation failed (the server refused it, or a host is unhealthy) |
//! | 2 | bad usage: unknown option, invalid path, bad argument (clap uses 2 as well) |
//! | 3 | the node does not exist |
//! | 4 | no connection: refused, unreachable, timed out, session expired |
//! | 5 | a four-letter word is not allowed by the server (`4lw.commands.whitelist`) |

use std::fmt;

use corral_recipes::{CoreError as ZkError, ErrorCode};

/// What went wrong, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The server refused the operation, or something else failed.
    Failed,
    /// The command line or a path was invalid.
    Usage,
    /// The node does not exist.
    NoNode,
    /// No connection to the ensemble.
    Connection,
    /// A four-letter word is not in the server's whitelist.
    NotAllowed,
}

impl Kind {
    /// The process exit code of this kind of failure.
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            Kind::Failed => 1,
            Kind::Usage => 2,
            Kind::NoNode => 3,
            Kind::Connection => 4,
            Kind::NotAllowed => 5,
        }
    }
}

/// A failed command: a message for stderr and an exit code.
#[derive(Debug, Clone)]
pub(crate) struct CliError {
    /// What went wrong.
    pub(crate) kind: Kind,
    /// One line for a human, without the `error:` prefix.
    pub(crate) message: String,
    /// An optional second line: what to do about it.
    pub(crate) hint: Option<String>,
}

impl CliError {
    /// An error of `kind` with `message`.
    pub(crate) fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), hint: None }
    }

    /// A usage error.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }

    /// A failure.
    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Self::new(Kind::Failed, message)
    }

    /// Adds a hint line.
    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// A client error, said in an operator's words; `path` is the node the command was about.
    pub(crate) fn zk(err: ZkError, path: &str) -> Self {
        let path = match &err {
            ZkError::Server { path: p, .. } if !p.is_empty() => p.clone(),
            _ => path.to_owned(),
        };
        match err {
            ZkError::Server { code, .. } => match code {
                ErrorCode::NoNode => Self::new(Kind::NoNode, format!("{path}: no such node")),
                ErrorCode::NodeExists => Self::failed(format!("{path}: node already exists")),
                ErrorCode::NotEmpty => Self::failed(format!("{path}: node has children"))
                    .with_hint("use `delete -R` to delete it with everything below it"),
                ErrorCode::BadVersion => {
                    Self::failed(format!("{path}: version mismatch (the node was changed since that version)"))
                }
                ErrorCode::NoAuth => Self::failed(format!("{path}: not authorized by the node's ACL")),
                ErrorCode::NoChildrenForEphemerals => {
                    Self::failed(format!("{path}: the parent is ephemeral and cannot have children"))
                }
                ErrorCode::Unimplemented => Self::failed(format!("{path}: not supported by this server"))
                    .with_hint("TTL nodes need zookeeper.extendedTypesEnabled=true; persistent watches ZooKeeper 3.6+"),
                ErrorCode::BadArguments => Self::usage(format!("{path}: bad arguments")),
                other => Self::failed(format!("{path}: {other}")),
            },
            ZkError::InvalidPath(e) => Self::usage(format!("invalid path: {e}")),
            ZkError::BadArguments(m) => Self::usage(format!("{path}: {m}")),
            ZkError::InvalidConnectString { input, reason } => {
                Self::usage(format!("invalid connect string {input:?}: {reason}"))
            }
            ZkError::ConnectionLoss => Self::new(Kind::Connection, format!("{path}: connection lost")),
            ZkError::SessionExpired => Self::new(Kind::Connection, "session expired"),
            ZkError::Timeout => Self::new(Kind::Connection, "timed out waiting for a connection"),
            ZkError::AuthFailed => Self::new(Kind::Connection, "authentication failed"),
            ZkError::Closed => Self::new(Kind::Connection, "connection closed"),
            other => Self::failed(format!("{path}: {other}")),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The result of a command.
pub(crate) type CliResult<T = ()> = Result<T, CliError>;

/// Adds the node's path to a client error.
pub(crate) trait AtPath<T> {
    /// Converts the error, naming `path`.
    fn at(self, path: &str) -> CliResult<T>;
}

impl<T> AtPath<T> for Result<T, ZkError> {
    fn at(self, path: &str) -> CliResult<T> {
        self.map_err(|e| CliError::zk(e, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_codes_become_exit_codes() {
        let missing = CliError::zk(ZkError::Server { code: ErrorCode::NoNode, path: "/a".into() }, "/x");
        assert_eq!((missing.kind.exit_code(), missing.message.as_str()), (3, "/a: no such node"));
        assert_eq!(CliError::zk(ZkError::Timeout, "/").kind.exit_code(), 4);
        let exists = CliError::zk(ZkError::Server { code: ErrorCode::NodeExists, path: String::new() }, "/b");
        assert_eq!(exists.message, "/b: node already exists");
    }
}
