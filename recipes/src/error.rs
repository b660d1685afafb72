//! The recipes' one error type.
//!
//! A recipe fails for a reason of its own — the session it was bound to is gone, another process
//! wrote data it cannot read, the caller's deadline passed, an instance was never registered
//! here — or because the client failed underneath it. [`Error`] names the first kind and wraps
//! the second as [`Error::Core`], so one `match` covers every recipe.

use std::time::Duration;

use corral_core::ErrorCode;

/// A `Result` whose error is the recipes' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a recipe can fail with.
///
/// `Error` is `Clone + PartialEq`, like the client's, so tests can compare it and one failure can
/// be handed to several waiters. [`Error::code`] gives the ZooKeeper code closest to any error.
///
/// # Timeouts
///
/// Every recipe method whose name ends in `_timeout` fails with [`Error::TimedOut`] once its
/// deadline passes, and with nothing else because of the deadline: the lock not acquired, the
/// queue still empty, the barrier still up, the leadership not granted. (The recipes used to
/// answer `Ok(None)`, `Ok(false)` or the client's timeout, depending on the method.)
/// [`corral_core::Error::Timeout`], wrapped in [`Error::Core`], keeps its own meaning: the
/// framework gave up waiting for a connection.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::time::Duration;
///
/// use corral_recipes::lock::Mutex;
/// use corral_recipes::{Error, Framework};
///
/// let a = Framework::builder(server.connect_string()).start()?;
/// let b = Framework::builder(server.connect_string()).start()?;
/// let held = Mutex::new(&a, "/locks/report").acquire().await?;
/// // `b` cannot have it while `a` holds it.
/// let waited = Mutex::new(&b, "/locks/report").acquire_timeout(Duration::from_millis(50)).await;
/// assert!(matches!(waited, Err(Error::TimedOut { .. })));
/// held.release().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The session the recipe's work was bound to is gone: expired, assumed lost after a long
    /// suspension, or replaced. Nothing of the operation ran on a later session, and what the
    /// old session owned (its lock node, lease, leadership, membership) is gone or going with it.
    #[error("session {session_id:#x} is gone")]
    SessionLost {
        /// The session the work was bound to.
        session_id: i64,
    },
    /// A node holds data this recipe cannot read — written by another process or another
    /// version — so it refuses to guess. Nothing was changed.
    #[error("{path} holds data that cannot be read: {reason}")]
    CorruptData {
        /// The node.
        path: String,
        /// What is wrong with its data.
        reason: String,
    },
    /// The instance or member named was not registered through this object.
    #[error("{id} is not registered here")]
    NotRegistered {
        /// The id the caller named.
        id: String,
    },
    /// The deadline of a `*_timeout` method passed first.
    #[error("timed out after {after:?}")]
    TimedOut {
        /// The deadline the caller gave.
        after: Duration,
    },
    /// The client failed underneath the recipe (connection, server answer, closed framework,
    /// bad argument, ...).
    #[error(transparent)]
    Core(corral_core::Error),
}

impl Error {
    /// The ZooKeeper code closest to this error, as Curator would report it.
    ///
    /// [`Error::SessionLost`] maps to [`ErrorCode::SessionExpired`], [`Error::CorruptData`] and
    /// [`Error::NotRegistered`] to [`ErrorCode::BadArguments`], [`Error::TimedOut`] to
    /// [`ErrorCode::OperationTimeout`], and a wrapped client error to its own code.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use corral_recipes::{Error, ErrorCode};
    ///
    /// assert_eq!(Error::TimedOut { after: Duration::from_secs(1) }.code(), ErrorCode::OperationTimeout);
    /// assert_eq!(Error::from(corral_core::Error::ConnectionLoss).code(), ErrorCode::ConnectionLoss);
    /// ```
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::SessionLost { .. } => ErrorCode::SessionExpired,
            Self::CorruptData { .. } | Self::NotRegistered { .. } => ErrorCode::BadArguments,
            Self::TimedOut { .. } => ErrorCode::OperationTimeout,
            Self::Core(err) => err.code(),
        }
    }

    /// The client's error underneath, if this is one.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_recipes::Error;
    ///
    /// let err = Error::from(corral_core::Error::Closed);
    /// assert_eq!(err.core(), Some(&corral_core::Error::Closed));
    /// ```
    pub fn core(&self) -> Option<&corral_core::Error> {
        match self {
            Self::Core(err) => Some(err),
            _ => None,
        }
    }

    /// Whether trying the same operation again may succeed (a connection loss or timeout of the
    /// client, or a session lost — the recipe starts over in the next one); false for
    /// everything a retry would meet again.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_recipes::Error;
    ///
    /// assert!(Error::from(corral_core::Error::ConnectionLoss).is_retryable());
    /// assert!(!Error::NotRegistered { id: "api-1".into() }.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::SessionLost { .. } => true,
            Self::Core(err) => err.is_retryable(),
            Self::CorruptData { .. } | Self::NotRegistered { .. } | Self::TimedOut { .. } => false,
        }
    }

    /// A [`Error::CorruptData`] for `path`.
    pub(crate) fn corrupt(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::CorruptData { path: path.into(), reason: reason.into() }
    }

    /// A wrapped [`corral_core::Error::BadArguments`]: the caller passed something the recipe
    /// refuses before sending anything.
    pub(crate) fn bad_arguments(reason: impl Into<String>) -> Self {
        Self::Core(corral_core::Error::BadArguments(reason.into()))
    }

    /// A wrapped [`corral_core::Error::Closed`]: the recipe or its framework was closed.
    pub(crate) const CLOSED: Self = Self::Core(corral_core::Error::Closed);
}

/// `Ok(None)` for a [`Error::TimedOut`]: what a recipe that waits with a deadline of its own
/// makes of a `*_timeout` call.
pub(crate) fn within<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(Error::TimedOut { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The client's errors become [`Error::Core`], except a lost session, which is
/// [`Error::SessionLost`] whichever layer noticed it.
impl From<corral_core::Error> for Error {
    fn from(err: corral_core::Error) -> Self {
        match err {
            corral_core::Error::SessionLost { session_id } => Self::SessionLost { session_id },
            err => Self::Core(err),
        }
    }
}

impl From<corral_core::proto::PathError> for Error {
    fn from(err: corral_core::proto::PathError) -> Self {
        Self::Core(err.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_session_is_one_variant_whichever_layer_saw_it() {
        let err = Error::from(corral_core::Error::SessionLost { session_id: 7 });
        assert_eq!(err, Error::SessionLost { session_id: 7 });
        assert_eq!(err.code(), ErrorCode::SessionExpired);
        assert!(err.is_retryable());
    }

    #[test]
    fn client_errors_are_wrapped_with_their_code() {
        let err = Error::from(corral_core::Error::Closed);
        assert_eq!(err, Error::CLOSED);
        assert_eq!(err.code(), ErrorCode::SessionExpired);
        assert!(!err.is_retryable());
        let path = Error::from(corral_core::proto::validate_path("no-slash").unwrap_err());
        assert_eq!(path.code(), ErrorCode::BadArguments);
    }

    #[test]
    fn recipe_failures_say_what_and_where() {
        let err = Error::corrupt("/counter", "3 bytes, not an 8-byte long");
        assert_eq!(err.to_string(), "/counter holds data that cannot be read: 3 bytes, not an 8-byte long");
        assert_eq!(Error::TimedOut { after: Duration::from_millis(50) }.to_string(), "timed out after 50ms");
        assert_eq!(Error::NotRegistered { id: "api-1".into() }.to_string(), "api-1 is not registered here");
    }
}
