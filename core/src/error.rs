//! The client's one error type.

use corral_proto::{ErrorCode, PathError};

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a client operation can fail with: the server's result codes verbatim, plus the
/// failures the client finds by itself.
///
/// `Error` is `Clone + PartialEq`, so tests can compare it and one failure can be handed to
/// several waiters. Match on [`Error::Server`] with the [`ErrorCode`] to handle one server
/// answer; [`Error::code`] gives the code of any error.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let client = corral_core::Client::connect(&server.connect_string()).await?;
/// use corral_core::{Error, ErrorCode};
///
/// match client.delete("/missing", None).await {
///     Err(Error::Server { code: ErrorCode::NoNode, path }) => assert_eq!(path, "/missing"),
///     other => panic!("unexpected {other:?}"),
/// }
/// // Argument errors are found before anything is sent.
/// let err = client.get_data("no-leading-slash").await.unwrap_err();
/// assert!(matches!(err, Error::InvalidPath(_)));
/// assert_eq!(err.code(), ErrorCode::BadArguments);
/// # client.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with this code (e.g. [`ErrorCode::NoNode`]).
    #[error("{code} for path {path:?}")]
    Server {
        /// The code, verbatim; unknown codes are kept as [`ErrorCode::Unknown`].
        code: ErrorCode,
        /// The client-side path the request was for (empty when the request had none).
        path: String,
    },
    /// The connection was lost before the reply arrived, or no connection came back in time
    /// for a queued request. The request may or may not have been applied.
    #[error("connection lost")]
    ConnectionLoss,
    /// The session expired; this client cannot be used any more.
    #[error("session expired")]
    SessionExpired,
    /// The server refused the client's credentials; this client cannot be used any more.
    #[error("authentication failed")]
    AuthFailed,
    /// The client was closed.
    #[error("client closed")]
    Closed,
    /// The session an operation was bound to (through a
    /// [`Session`](crate::framework::Session)) is gone: expired, assumed lost after a long
    /// suspension, or replaced. Nothing of the operation runs on a later session; whatever the
    /// old session owned (its ephemeral nodes, locks, leadership) is gone or going with it.
    #[error("session {session_id:#x} is gone")]
    SessionLost {
        /// The session the operation was bound to.
        session_id: i64,
    },
    /// No connection could be established within the allowed time.
    #[error("timed out waiting for a connection")]
    Timeout,
    /// A path was refused before anything was sent.
    #[error(transparent)]
    InvalidPath(#[from] PathError),
    /// The request does not fit in one frame (ZooKeeper's `jute.maxbuffer`).
    #[error("request of {size} bytes exceeds the frame limit of {max} bytes")]
    RequestTooLarge {
        /// The encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// An argument was refused before anything was sent.
    #[error("bad arguments: {0}")]
    BadArguments(String),
    /// The connect string could not be parsed.
    #[error("invalid connect string {input:?}: {reason}")]
    InvalidConnectString {
        /// The connect string.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An atomic multi failed: nothing was applied.
    #[error("multi failed at operation {index} ({path:?}): {code}")]
    MultiFailed {
        /// The index of the failing operation.
        index: usize,
        /// Its code.
        code: ErrorCode,
        /// Its path.
        path: String,
    },
    /// TLS could not be set up: a bad certificate or key file ([`crate::ClientTlsBuilder::build`]),
    /// or, from [`crate::ClientBuilder::connect`], the servers' certificates were refused (not
    /// signed by a trusted CA, not naming the host) or a server refused the client's (or its
    /// lack of one). The message says which.
    #[error("TLS: {0}")]
    Tls(String),
    /// SASL authentication could not run: a mechanism error, or a server token that could not
    /// be understood. A server that refuses the credentials gives [`Error::AuthFailed`].
    #[error("SASL: {0}")]
    Sasl(String),
    /// Node data could not be compressed or decompressed by the framework's
    /// [`CompressionProvider`](crate::framework::CompressionProvider): not in its format (as a
    /// node written uncompressed), corrupt, or past its size limit.
    #[error("compression of {path:?}: {reason}")]
    Compression {
        /// The node's path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The server has no persistent watches: ZooKeeper before 3.6 has no `addWatch` (it answers
    /// the unknown opcode Unimplemented and closes the connection). Returned by
    /// [`Framework::watch`](crate::Framework::watch) instead of asking such a server again;
    /// [`Error::code`] is [`ErrorCode::Unimplemented`]. Watch with one-shot watches instead, as
    /// the caches of `corral-recipes` do by themselves on such a server.
    #[error(
        "the server has no persistent watches (addWatch needs ZooKeeper 3.6 or later), so {path:?} cannot be watched \
         persistently; use one-shot watches instead, as corral-recipes' caches fall back to by themselves"
    )]
    NoPersistentWatches {
        /// The path that was to be watched.
        path: String,
    },
}

impl Error {
    /// The ZooKeeper code closest to this error, as the Java client would report it.
    ///
    /// [`Error::Closed`] maps to [`ErrorCode::SessionExpired`] (the session is gone), argument
    /// errors to [`ErrorCode::BadArguments`], and [`Error::Timeout`] to
    /// [`ErrorCode::OperationTimeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_core::{Error, ErrorCode};
    ///
    /// assert_eq!(Error::ConnectionLoss.code(), ErrorCode::ConnectionLoss);
    /// assert_eq!(Error::Closed.code(), ErrorCode::SessionExpired);
    /// let multi = Error::MultiFailed { index: 1, code: ErrorCode::BadVersion, path: "/a".into() };
    /// assert_eq!(multi.code(), ErrorCode::BadVersion);
    /// ```
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Server { code, .. } | Self::MultiFailed { code, .. } => *code,
            Self::ConnectionLoss => ErrorCode::ConnectionLoss,
            Self::SessionExpired | Self::Closed | Self::SessionLost { .. } => ErrorCode::SessionExpired,
            Self::AuthFailed => ErrorCode::AuthFailed,
            Self::Timeout => ErrorCode::OperationTimeout,
            Self::InvalidPath(_) | Self::RequestTooLarge { .. } | Self::BadArguments(_) => ErrorCode::BadArguments,
            Self::InvalidConnectString { .. } | Self::Tls(_) | Self::Compression { .. } => ErrorCode::BadArguments,
            Self::Sasl(_) => ErrorCode::AuthFailed,
            Self::NoPersistentWatches { .. } => ErrorCode::Unimplemented,
        }
    }

    /// Whether retrying the same request later can succeed: connection loss, timeouts,
    /// SessionMoved and ThrottledOp. Session expiry, closing and server verdicts are final.
    ///
    /// "Can succeed" is not "is safe": after ConnectionLoss a write may have been applied
    /// already, so retry only idempotent operations, or use the [`Framework`](crate::Framework)'s
    /// protected and idempotent creates.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_core::{Error, ErrorCode};
    ///
    /// assert!(Error::ConnectionLoss.is_retryable());
    /// assert!(!Error::SessionExpired.is_retryable());
    /// let no_node = Error::Server { code: ErrorCode::NoNode, path: "/a".into() };
    /// assert!(!no_node.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.code(),
            ErrorCode::ConnectionLoss | ErrorCode::OperationTimeout | ErrorCode::SessionMoved | ErrorCode::ThrottledOp
        ) && !matches!(self, Self::Closed | Self::SessionExpired | Self::SessionLost { .. })
    }

    /// Whether the server answered NoNode.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// let err = client.get_data("/missing").await.unwrap_err();
    /// assert!(err.is_no_node());
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn is_no_node(&self) -> bool {
        matches!(self, Self::Server { code: ErrorCode::NoNode, .. })
    }

    /// Whether the server answered NodeExists.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::CreateMode;
    ///
    /// // Create unless it exists.
    /// match client.create("/zookeeper", "", CreateMode::Persistent).await {
    ///     Ok(_) => {}
    ///     Err(e) if e.is_node_exists() => {}
    ///     Err(e) => return Err(e.into()),
    /// }
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn is_node_exists(&self) -> bool {
        matches!(self, Self::Server { code: ErrorCode::NodeExists, .. })
    }

    pub(crate) fn server(code: ErrorCode, path: impl Into<String>) -> Self {
        match code {
            ErrorCode::ConnectionLoss => Self::ConnectionLoss,
            ErrorCode::SessionExpired => Self::SessionExpired,
            ErrorCode::AuthFailed => Self::AuthFailed,
            code => Self::Server { code, path: path.into() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_retryability() {
        assert!(Error::ConnectionLoss.is_retryable());
        assert!(Error::server(ErrorCode::ThrottledOp, "/a").is_retryable());
        assert!(!Error::SessionExpired.is_retryable());
        assert!(!Error::Closed.is_retryable());
        assert!(Error::server(ErrorCode::NoNode, "/a").is_no_node());
        assert_eq!(Error::server(ErrorCode::SessionExpired, "/a"), Error::SessionExpired);
        assert_eq!(Error::Closed.code(), ErrorCode::SessionExpired);
        let none = Error::NoPersistentWatches { path: "/a".into() };
        assert_eq!(none.code(), ErrorCode::Unimplemented);
        assert!(!none.is_retryable());
        assert!(none.to_string().contains("no persistent watches") && none.to_string().contains("one-shot"));
    }
}
