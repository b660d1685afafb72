//! Raw session states and session events, as the client sees them.

use std::time::Duration;

/// The state of the client's session, published through a [`tokio::sync::watch`] channel
/// ([`crate::Client::state`]).
///
/// `Closed`, `Expired` and `AuthFailed` are terminal: the client will not connect again.
///
/// ```text
/// NotConnected → Connecting ⇄ Connected / ConnectedReadOnly
///                     ↓               ↓
///           Closed / Expired / AuthFailed   (terminal)
/// ```
///
/// See [`Client::state`](crate::Client::state) for an example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Built, not yet trying to connect.
    NotConnected,
    /// Looking for a server (first connection, or reconnecting within the session).
    Connecting,
    /// Connected to a read/write server.
    Connected,
    /// Connected to a read-only server (writes fail with NotReadOnly).
    ConnectedReadOnly,
    /// Closed by this client.
    Closed,
    /// The server refused the client's credentials.
    AuthFailed,
    /// The server said the session is expired.
    Expired,
}

impl SessionState {
    /// Whether the client is connected (read/write or read-only).
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_core::SessionState;
    ///
    /// assert!(SessionState::ConnectedReadOnly.is_connected());
    /// assert!(!SessionState::Connecting.is_connected());
    /// ```
    pub fn is_connected(self) -> bool {
        matches!(self, Self::Connected | Self::ConnectedReadOnly)
    }

    /// Whether the client has stopped for good.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_core::SessionState;
    ///
    /// assert!(SessionState::Expired.is_terminal());
    /// assert!(!SessionState::Connecting.is_terminal()); // reconnecting within the session
    /// ```
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Closed | Self::AuthFailed | Self::Expired)
    }
}

/// Something that happened to the session, delivered in order by [`crate::Client::session_events`].
///
/// See [`Client::session_events`](crate::Client::session_events) for an example.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// A connection was established: a new session, or the same session resumed.
    Connected {
        /// The session id.
        session_id: i64,
        /// Whether this connection resumed the session (false for the first connection).
        resumed: bool,
        /// Whether the server is read-only.
        read_only: bool,
        /// The session timeout the server granted.
        negotiated_timeout: Duration,
        /// The server's address.
        server: std::net::SocketAddr,
    },
    /// The connection was lost; the session may still be alive on the server.
    Disconnected {
        /// Why.
        reason: String,
    },
    /// The server said the session is expired.
    Expired,
    /// The server refused the credentials.
    AuthFailed,
    /// The client was closed.
    Closed,
}

/// The identity of a session: what another client needs to resume it.
///
/// See [`Client::session`](crate::Client::session) and
/// [`ClientBuilder::session`](crate::ClientBuilder::session).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionInfo {
    /// The session id (0 before the first connection).
    pub id: i64,
    /// The session password.
    pub password: bytes::Bytes,
    /// The negotiated timeout (zero before the first connection).
    pub timeout: Duration,
    /// The last zxid this client has seen.
    pub last_zxid: i64,
}
