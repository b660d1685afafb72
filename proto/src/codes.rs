//! Every number the protocol defines, as enums that keep values they do not know.
//!
//! ZooKeeper adds opcodes, error codes and event kinds from release to release; a decoder that
//! rejected unknown values would break on the next server. Each enum here has an `Unknown`
//! variant holding the raw value, and `from`/`into` the raw integer are lossless.

use bytes::{Buf, BufMut};

use crate::jute::{DecodeError, Jute};

/// Declares an enum over `i32` with an `Unknown(i32)` catch-all.
macro_rules! int_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:expr, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A value this version of Corral does not know, kept as it was on the wire.
            Unknown(i32),
        }

        impl $name {
            /// The value on the wire.
            ///
            /// The inverse of `From<i32>`: every value, unknown ones included, round-trips.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use corral_proto::codes::", stringify!($name), ";")]
            ///
            #[doc = concat!("let unknown = ", stringify!($name), "::from(9999);")]
            #[doc = concat!("assert_eq!(unknown, ", stringify!($name), "::Unknown(9999));")]
            /// assert_eq!(unknown.code(), 9999);
            #[doc = concat!("let known = ", stringify!($name), "::default();")]
            #[doc = concat!("assert_eq!(", stringify!($name), "::from(known.code()), known);")]
            /// ```
            pub const fn code(self) -> i32 {
                match self {
                    $( Self::$variant => $value, )*
                    Self::Unknown(v) => v,
                }
            }
        }

        impl From<i32> for $name {
            fn from(v: i32) -> Self {
                match v {
                    $( $value => Self::$variant, )*
                    other => Self::Unknown(other),
                }
            }
        }

        impl From<$name> for i32 {
            fn from(v: $name) -> i32 {
                v.code()
            }
        }

        impl Jute for $name {
            fn write<B: BufMut>(&self, buf: &mut B) {
                buf.put_i32(self.code());
            }
            fn read<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
                Ok(Self::from(i32::read(buf)?))
            }
        }
    };
}

int_enum! {
    /// A request type (`ZooDefs.OpCode`), the `type` field of a request header.
    ///
    /// Converts losslessly from and to the `i32` on the wire; a value this version does not
    /// know is kept as [`OpCode::Unknown`].
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::{Jute, OpCode};
    ///
    /// assert_eq!(OpCode::from(4), OpCode::GetData);
    /// assert_eq!(OpCode::AddWatch.code(), 106);
    /// assert_eq!(OpCode::from_bytes(&[0, 0, 0, 12])?, OpCode::GetChildren2);
    /// assert_eq!(OpCode::from(500), OpCode::Unknown(500)); // a future opcode, kept as is
    /// # Ok::<(), corral_proto::DecodeError>(())
    /// ```
    pub enum OpCode {
        /// Internal marker; never sent.
        #[default]
        Notification = 0,
        /// Create a node; the reply carries the path.
        Create = 1,
        /// Delete a node.
        Delete = 2,
        /// Stat a node, optionally leaving a watch (even on a missing node).
        Exists = 3,
        /// Read a node's data and stat.
        GetData = 4,
        /// Write a node's data.
        SetData = 5,
        /// Read a node's ACL.
        GetAcl = 6,
        /// Write a node's ACL.
        SetAcl = 7,
        /// List a node's children.
        GetChildren = 8,
        /// Wait until the server has caught up with the leader.
        Sync = 9,
        /// Keep-alive (xid −2).
        Ping = 11,
        /// List a node's children with the node's stat.
        GetChildren2 = 12,
        /// Version check; only valid inside a multi.
        Check = 13,
        /// Atomic transaction.
        Multi = 14,
        /// Create a node; the reply carries the path and the stat.
        Create2 = 15,
        /// Change the ensemble membership.
        Reconfig = 16,
        /// Ask whether a watch exists.
        CheckWatches = 17,
        /// Remove watches.
        RemoveWatches = 18,
        /// Create a container node.
        CreateContainer = 19,
        /// Delete a container (server-internal).
        DeleteContainer = 20,
        /// Create a node with a time to live.
        CreateTtl = 21,
        /// Several reads in one request, each with its own result.
        MultiRead = 22,
        /// Add credentials to the connection (xid −4).
        Auth = 100,
        /// Restore watches after a reconnect (xid −8).
        SetWatches = 101,
        /// SASL token exchange.
        Sasl = 102,
        /// List the calling session's ephemeral nodes.
        GetEphemerals = 103,
        /// Count every descendant of a node.
        GetAllChildrenNumber = 104,
        /// Restore watches, persistent ones included, after a reconnect (xid −8).
        SetWatches2 = 105,
        /// Add a persistent or persistent-recursive watch.
        AddWatch = 106,
        /// Ask which identities the connection is authenticated as.
        WhoAmI = 107,
        /// Create a session (server-internal).
        CreateSession = -10,
        /// Close the session.
        CloseSession = -11,
        /// The type of a failed sub-result in a multi.
        Error = -1,
    }
}

int_enum! {
    /// A result code (`KeeperException.Code`), the `err` field of a reply header.
    ///
    /// Displays as ZooKeeper names it, with the number: `NONODE (-101)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::ErrorCode;
    ///
    /// let code = ErrorCode::from(-101);
    /// assert_eq!(code, ErrorCode::NoNode);
    /// assert_eq!(code.to_string(), "NONODE (-101)");
    /// assert_eq!(ErrorCode::from(-126), ErrorCode::Unknown(-126)); // kept verbatim
    /// assert_eq!(ErrorCode::default(), ErrorCode::Ok);
    /// ```
    pub enum ErrorCode {
        /// Success.
        #[default]
        Ok = 0,
        /// Range marker for system errors; never sent.
        SystemError = -1,
        /// In a failed multi: an operation after the one that failed.
        RuntimeInconsistency = -2,
        /// A data inconsistency was found.
        DataInconsistency = -3,
        /// The connection to the server was lost (client side).
        ConnectionLoss = -4,
        /// The request could not be decoded or processed.
        MarshallingError = -5,
        /// The operation is not implemented by this server or mode.
        Unimplemented = -6,
        /// The operation timed out (client side).
        OperationTimeout = -7,
        /// Invalid arguments: a bad path, flags or TTL.
        BadArguments = -8,
        /// Unknown session (server internal).
        UnknownSession = -12,
        /// A reconfiguration has no quorum.
        NewConfigNoQuorum = -13,
        /// Another reconfiguration is in progress.
        ReconfigInProgress = -14,
        /// Range marker for API errors; never sent.
        ApiError = -100,
        /// The node does not exist.
        NoNode = -101,
        /// Not authorized for this operation.
        NoAuth = -102,
        /// The expected version does not match.
        BadVersion = -103,
        /// Ephemeral nodes may not have children.
        NoChildrenForEphemerals = -108,
        /// The node already exists.
        NodeExists = -110,
        /// The node has children.
        NotEmpty = -111,
        /// The session has expired.
        SessionExpired = -112,
        /// Invalid callback (client side).
        InvalidCallback = -113,
        /// Invalid ACL.
        InvalidAcl = -114,
        /// Authentication failed.
        AuthFailed = -115,
        /// The session moved to another server.
        SessionMoved = -118,
        /// A write was sent to a read-only server.
        NotReadOnly = -119,
        /// An ephemeral node on a local session.
        EphemeralOnLocalSession = -120,
        /// No such watch to check or remove.
        NoWatcher = -121,
        /// The request timed out (client side).
        RequestTimeout = -122,
        /// Dynamic reconfiguration is disabled.
        ReconfigDisabled = -123,
        /// The session was closed because SASL authentication is required.
        SessionClosedRequireSaslAuth = -124,
        /// A quota was exceeded.
        QuotaExceeded = -125,
        /// The server throttled the request; retry with backoff.
        ThrottledOp = -127,
    }
}

impl ErrorCode {
    /// ZooKeeper's name for the code, e.g. `"NONODE"` for [`ErrorCode::NoNode`].
    ///
    /// Unknown codes are all named `"UNKNOWN"`; [`ErrorCode::code`] still tells them apart.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::ErrorCode;
    ///
    /// assert_eq!(ErrorCode::NodeExists.name(), "NODEEXISTS");
    /// assert_eq!(ErrorCode::Unknown(-999).name(), "UNKNOWN");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::SystemError => "SYSTEMERROR",
            Self::RuntimeInconsistency => "RUNTIMEINCONSISTENCY",
            Self::DataInconsistency => "DATAINCONSISTENCY",
            Self::ConnectionLoss => "CONNECTIONLOSS",
            Self::MarshallingError => "MARSHALLINGERROR",
            Self::Unimplemented => "UNIMPLEMENTED",
            Self::OperationTimeout => "OPERATIONTIMEOUT",
            Self::BadArguments => "BADARGUMENTS",
            Self::UnknownSession => "UNKNOWNSESSION",
            Self::NewConfigNoQuorum => "NEWCONFIGNOQUORUM",
            Self::ReconfigInProgress => "RECONFIGINPROGRESS",
            Self::ApiError => "APIERROR",
            Self::NoNode => "NONODE",
            Self::NoAuth => "NOAUTH",
            Self::BadVersion => "BADVERSION",
            Self::NoChildrenForEphemerals => "NOCHILDRENFOREPHEMERALS",
            Self::NodeExists => "NODEEXISTS",
            Self::NotEmpty => "NOTEMPTY",
            Self::SessionExpired => "SESSIONEXPIRED",
            Self::InvalidCallback => "INVALIDCALLBACK",
            Self::InvalidAcl => "INVALIDACL",
            Self::AuthFailed => "AUTHFAILED",
            Self::SessionMoved => "SESSIONMOVED",
            Self::NotReadOnly => "NOTREADONLY",
            Self::EphemeralOnLocalSession => "EPHEMERALONLOCALSESSION",
            Self::NoWatcher => "NOWATCHER",
            Self::RequestTimeout => "REQUESTTIMEOUT",
            Self::ReconfigDisabled => "RECONFIGDISABLED",
            Self::SessionClosedRequireSaslAuth => "SESSIONCLOSEDREQUIRESASLAUTH",
            Self::QuotaExceeded => "QUOTAEXCEEDED",
            Self::ThrottledOp => "THROTTLEDOP",
            Self::Unknown(_) => "UNKNOWN",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

int_enum! {
    /// The kind of a watch notification (`Watcher.Event.EventType`).
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::EventType;
    ///
    /// assert_eq!(EventType::from(3), EventType::NodeDataChanged);
    /// assert_eq!(EventType::NodeDeleted.code(), 2);
    /// assert_eq!(EventType::default(), EventType::None); // a session event, not a node event
    /// ```
    pub enum EventType {
        /// A session-state change, not a node change (made on the client side).
        #[default]
        None = -1,
        /// The watched node was created.
        NodeCreated = 1,
        /// The watched node was deleted.
        NodeDeleted = 2,
        /// The watched node's data changed.
        NodeDataChanged = 3,
        /// The watched node's children changed.
        NodeChildrenChanged = 4,
        /// A data watch was removed (client side).
        DataWatchRemoved = 5,
        /// A child watch was removed (client side).
        ChildWatchRemoved = 6,
        /// A persistent watch was removed (client side).
        PersistentWatchRemoved = 7,
    }
}

int_enum! {
    /// The session state carried by a watch notification (`Watcher.Event.KeeperState`).
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::KeeperState;
    ///
    /// assert_eq!(KeeperState::from(3), KeeperState::SyncConnected);
    /// assert_eq!(KeeperState::Expired.code(), -112); // the same number as ErrorCode::SessionExpired
    /// ```
    pub enum KeeperState {
        /// Deprecated; unused.
        UnknownState = -1,
        /// The client is disconnected.
        Disconnected = 0,
        /// Deprecated; unused.
        NoSyncConnected = 1,
        /// Connected; the only state the server sends.
        #[default]
        SyncConnected = 3,
        /// Authentication failed.
        AuthFailed = 4,
        /// Connected to a read-only server.
        ConnectedReadOnly = 5,
        /// SASL authentication succeeded.
        SaslAuthenticated = 6,
        /// The client was closed.
        Closed = 7,
        /// The session expired.
        Expired = -112,
    }
}

int_enum! {
    /// Which watches `checkWatches` and `removeWatches` act on (`Watcher.WatcherType`).
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::WatcherType;
    ///
    /// assert_eq!(WatcherType::from(1), WatcherType::Children);
    /// assert_eq!(WatcherType::default(), WatcherType::Any);
    /// assert_eq!(WatcherType::PersistentRecursive.code(), 5);
    /// ```
    pub enum WatcherType {
        /// Child watches.
        Children = 1,
        /// Data and exists watches.
        Data = 2,
        /// Every kind.
        #[default]
        Any = 3,
        /// Persistent watches.
        Persistent = 4,
        /// Persistent-recursive watches.
        PersistentRecursive = 5,
    }
}

int_enum! {
    /// The mode of an `addWatch` request.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::{AddWatchMode, Jute};
    ///
    /// assert_eq!(AddWatchMode::PersistentRecursive.to_bytes().as_ref(), &[0, 0, 0, 1]);
    /// assert_eq!(AddWatchMode::from(0), AddWatchMode::Persistent);
    /// ```
    pub enum AddWatchMode {
        /// Fires for data and child changes of the node itself, and stays.
        #[default]
        Persistent = 0,
        /// Fires for data changes, creates and deletes of the node and every descendant, and stays.
        PersistentRecursive = 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_are_kept() {
        assert_eq!(ErrorCode::from(-126), ErrorCode::Unknown(-126));
        assert_eq!(i32::from(ErrorCode::Unknown(-126)), -126);
        assert_eq!(OpCode::from(999), OpCode::Unknown(999));
        assert_eq!(ErrorCode::from(-101), ErrorCode::NoNode);
        assert_eq!(KeeperState::from(-112), KeeperState::Expired);
    }

    #[test]
    fn error_codes_display_like_zookeeper() {
        assert_eq!(ErrorCode::NoNode.to_string(), "NONODE (-101)");
    }
}
