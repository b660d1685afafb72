//! The request and response records of the client protocol, one struct per `zookeeper.jute`
//! record, fields in wire order, names in snake_case.

use bytes::{Buf, BufMut, Bytes};

use crate::codes::{AddWatchMode, ErrorCode, EventType, KeeperState, OpCode, WatcherType};
use crate::data::{Acl, Stat};
use crate::jute::{DecodeError, Jute, record};

/// Reserved xids: values a client never uses for ordinary requests.
pub mod xid {
    /// A watch notification (server → client).
    pub const NOTIFICATION: i32 = -1;
    /// A ping and its reply.
    pub const PING: i32 = -2;
    /// An auth packet and its reply.
    pub const AUTH: i32 = -4;
    /// setWatches / setWatches2 and its reply.
    pub const SET_WATCHES: i32 = -8;
}

/// The first frame a client sends, with no request header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectRequest {
    /// Always 0.
    pub protocol_version: i32,
    /// The highest zxid the client has seen (0 for a fresh client).
    pub last_zxid_seen: i64,
    /// The requested session timeout in ms.
    pub timeout: i32,
    /// 0 for a new session; otherwise the session to resume.
    pub session_id: i64,
    /// The session password: 16 zero bytes for a new session.
    pub passwd: Bytes,
    /// Whether the client accepts a read-only server. `None` when the (pre-3.4) client did not
    /// send the byte; the response then omits its read-only byte too.
    pub read_only: Option<bool>,
}

impl Jute for ConnectRequest {
    fn write<B: BufMut>(&self, buf: &mut B) {
        self.protocol_version.write(buf);
        self.last_zxid_seen.write(buf);
        self.timeout.write(buf);
        self.session_id.write(buf);
        self.passwd.write(buf);
        if let Some(ro) = self.read_only {
            ro.write(buf);
        }
    }
    fn read<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        Ok(Self {
            protocol_version: i32::read(buf)?,
            last_zxid_seen: i64::read(buf)?,
            timeout: i32::read(buf)?,
            session_id: i64::read(buf)?,
            passwd: Bytes::read(buf)?,
            read_only: if buf.has_remaining() { Some(bool::read(buf)?) } else { None },
        })
    }
}

/// The server's answer to a [`ConnectRequest`], with no reply header.
///
/// A `timeout` of 0 means the session is expired or unknown.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectResponse {
    /// Always 0.
    pub protocol_version: i32,
    /// The negotiated session timeout in ms; 0 when the session is invalid.
    pub timeout: i32,
    /// The session id; 0 when invalid.
    pub session_id: i64,
    /// The session password (16 bytes).
    pub passwd: Bytes,
    /// Whether the server is read-only; `None` when the request carried no read-only byte.
    pub read_only: Option<bool>,
}

impl Jute for ConnectResponse {
    fn write<B: BufMut>(&self, buf: &mut B) {
        self.protocol_version.write(buf);
        self.timeout.write(buf);
        self.session_id.write(buf);
        self.passwd.write(buf);
        if let Some(ro) = self.read_only {
            ro.write(buf);
        }
    }
    fn read<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        Ok(Self {
            protocol_version: i32::read(buf)?,
            timeout: i32::read(buf)?,
            session_id: i64::read(buf)?,
            passwd: Bytes::read(buf)?,
            read_only: if buf.has_remaining() { Some(bool::read(buf)?) } else { None },
        })
    }
}

record! {
    /// The header in front of every request after the handshake.
    pub struct RequestHeader {
        /// The request id, echoed in the reply; see [`xid`] for the reserved values.
        pub xid: i32,
        /// The operation.
        pub op: OpCode,
    }
}

record! {
    /// The header in front of every reply and notification after the handshake.
    ///
    /// A response record follows only when `err` is [`ErrorCode::Ok`].
    pub struct ReplyHeader {
        /// The xid of the request answered, or [`xid::NOTIFICATION`].
        pub xid: i32,
        /// The server's last processed zxid (for a write, that write's zxid).
        pub zxid: i64,
        /// The result.
        pub err: ErrorCode,
    }
}

record! {
    /// create, create2 and createContainer.
    pub struct CreateRequest {
        /// The path (a prefix for sequential modes).
        pub path: String,
        /// The data; `None` is null data.
        pub data: Option<Bytes>,
        /// The ACL of the new node.
        pub acl: Vec<Acl>,
        /// The [`crate::CreateMode`] flags.
        pub flags: i32,
    }
}

record! {
    /// createTTL.
    pub struct CreateTtlRequest {
        /// The path (a prefix for sequential modes).
        pub path: String,
        /// The data; `None` is null data.
        pub data: Option<Bytes>,
        /// The ACL of the new node.
        pub acl: Vec<Acl>,
        /// The [`crate::CreateMode`] flags (5 or 6).
        pub flags: i32,
        /// The time to live in ms, in (0, 2⁴⁰ − 1].
        pub ttl: i64,
    }
}

record! {
    /// The reply to create: the actual path, with any sequence suffix.
    pub struct CreateResponse {
        /// The created path.
        pub path: String,
    }
}

record! {
    /// The reply to create2, createContainer and createTTL.
    pub struct Create2Response {
        /// The created path.
        pub path: String,
        /// The new node's stat.
        pub stat: Stat,
    }
}

record! {
    /// delete.
    pub struct DeleteRequest {
        /// The path.
        pub path: String,
        /// The expected data version; −1 for any.
        pub version: i32,
    }
}

record! {
    /// exists, getData, getChildren and getChildren2: a path and whether to leave a watch.
    pub struct PathAndWatch {
        /// The path.
        pub path: String,
        /// Whether to leave a one-shot watch.
        pub watch: bool,
    }
}

/// exists.
pub type ExistsRequest = PathAndWatch;
/// getData.
pub type GetDataRequest = PathAndWatch;
/// getChildren.
pub type GetChildrenRequest = PathAndWatch;
/// getChildren2.
pub type GetChildren2Request = PathAndWatch;

record! {
    /// A reply that is just a [`Stat`]: exists, setData, setACL.
    pub struct StatResponse {
        /// The node's stat.
        pub stat: Stat,
    }
}

/// exists.
pub type ExistsResponse = StatResponse;
/// setData.
pub type SetDataResponse = StatResponse;
/// setACL.
pub type SetAclResponse = StatResponse;

record! {
    /// The reply to getData.
    pub struct GetDataResponse {
        /// The data; `None` is null data.
        pub data: Option<Bytes>,
        /// The node's stat.
        pub stat: Stat,
    }
}

record! {
    /// setData.
    pub struct SetDataRequest {
        /// The path.
        pub path: String,
        /// The new data; `None` is null data.
        pub data: Option<Bytes>,
        /// The expected data version; −1 for any.
        pub version: i32,
    }
}

record! {
    /// A request that is just a path: getACL, sync, getEphemerals, getAllChildrenNumber.
    pub struct PathRequest {
        /// The path (a prefix for getEphemerals).
        pub path: String,
    }
}

/// getACL.
pub type GetAclRequest = PathRequest;
/// sync.
pub type SyncRequest = PathRequest;
/// The reply to sync.
pub type SyncResponse = PathRequest;
/// getEphemerals.
pub type GetEphemeralsRequest = PathRequest;
/// getAllChildrenNumber.
pub type GetAllChildrenNumberRequest = PathRequest;

record! {
    /// The reply to getACL.
    pub struct GetAclResponse {
        /// The ACL.
        pub acl: Vec<Acl>,
        /// The node's stat.
        pub stat: Stat,
    }
}

record! {
    /// setACL.
    pub struct SetAclRequest {
        /// The path.
        pub path: String,
        /// The new ACL.
        pub acl: Vec<Acl>,
        /// The expected ACL version (aversion); −1 for any.
        pub version: i32,
    }
}

record! {
    /// The reply to getChildren, and to getEphemerals.
    pub struct ChildrenResponse {
        /// Child names (relative), or ephemeral paths for getEphemerals.
        pub children: Vec<String>,
    }
}

/// getChildren.
pub type GetChildrenResponse = ChildrenResponse;
/// getEphemerals.
pub type GetEphemeralsResponse = ChildrenResponse;

record! {
    /// The reply to getChildren2.
    pub struct GetChildren2Response {
        /// Child names (relative).
        pub children: Vec<String>,
        /// The parent's stat.
        pub stat: Stat,
    }
}

record! {
    /// check (inside a multi only).
    pub struct CheckVersionRequest {
        /// The path.
        pub path: String,
        /// The expected data version; −1 for any.
        pub version: i32,
    }
}

record! {
    /// checkWatches and removeWatches.
    pub struct WatchesRequest {
        /// The path.
        pub path: String,
        /// Which watches.
        pub watcher_type: WatcherType,
    }
}

/// checkWatches.
pub type CheckWatchesRequest = WatchesRequest;
/// removeWatches.
pub type RemoveWatchesRequest = WatchesRequest;

record! {
    /// addWatch.
    pub struct AddWatchRequest {
        /// The path.
        pub path: String,
        /// Persistent or persistent-recursive.
        pub mode: AddWatchMode,
    }
}

record! {
    /// A bare result code: the reply body of addWatch, and failed results inside a multi.
    pub struct ErrorResponse {
        /// The code.
        pub err: ErrorCode,
    }
}

record! {
    /// The reply to getAllChildrenNumber.
    pub struct GetAllChildrenNumberResponse {
        /// The number of descendants, the node itself excluded.
        pub total_number: i32,
    }
}

record! {
    /// One identity in a whoAmI reply.
    pub struct ClientInfo {
        /// The scheme, e.g. `ip` or `digest`.
        pub auth_scheme: String,
        /// The user within the scheme.
        pub user: String,
    }
}

record! {
    /// The reply to whoAmI.
    pub struct WhoAmIResponse {
        /// The connection's identities.
        pub client_info: Vec<ClientInfo>,
    }
}

record! {
    /// The auth packet (xid −4).
    pub struct AuthPacket {
        /// Always 0.
        pub auth_type: i32,
        /// The scheme, e.g. `digest`.
        pub scheme: String,
        /// The credentials, e.g. `user:password`.
        pub auth: Bytes,
    }
}

record! {
    /// A SASL token, both ways (GetSASLRequest / SetSASLResponse).
    pub struct SaslToken {
        /// The token.
        pub token: Bytes,
    }
}

record! {
    /// reconfig.
    pub struct ReconfigRequest {
        /// Servers to add, or `None`.
        pub joining_servers: Option<String>,
        /// Servers to remove, or `None`.
        pub leaving_servers: Option<String>,
        /// A whole new membership, or `None`.
        pub new_members: Option<String>,
        /// The expected current config version; −1 for any.
        pub cur_config_id: i64,
    }
}

record! {
    /// setWatches (xid −8): watches to restore after a reconnect.
    pub struct SetWatches {
        /// The last zxid the client saw; changes after it fire at once.
        pub relative_zxid: i64,
        /// Data watches.
        pub data_watches: Vec<String>,
        /// Exists watches.
        pub exist_watches: Vec<String>,
        /// Child watches.
        pub child_watches: Vec<String>,
    }
}

record! {
    /// setWatches2 (xid −8): watches to restore, persistent ones included.
    pub struct SetWatches2 {
        /// The last zxid the client saw; changes after it fire at once.
        pub relative_zxid: i64,
        /// Data watches.
        pub data_watches: Vec<String>,
        /// Exists watches.
        pub exist_watches: Vec<String>,
        /// Child watches.
        pub child_watches: Vec<String>,
        /// Persistent watches.
        pub persistent_watches: Vec<String>,
        /// Persistent-recursive watches.
        pub persistent_recursive_watches: Vec<String>,
    }
}

record! {
    /// A watch notification (reply xid −1).
    pub struct WatcherEvent {
        /// What happened.
        pub event_type: EventType,
        /// The session state (always SyncConnected from a server).
        pub state: KeeperState,
        /// The node's path (server side, chroot included).
        pub path: String,
    }
}

record! {
    /// The header in front of each operation and result of a multi.
    pub struct MultiHeader {
        /// The operation or result type; −1 ends the list.
        pub op: OpCode,
        /// True on the terminating header.
        pub done: bool,
        /// The result code (−1 in requests).
        pub err: i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_header_bytes() {
        let h = RequestHeader { xid: xid::PING, op: OpCode::Ping };
        assert_eq!(h.to_bytes().as_ref(), &[0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 0x0b]);
    }

    #[test]
    fn legacy_connect_request_has_no_read_only_byte() {
        let req = ConnectRequest { timeout: 30_000, passwd: Bytes::from_static(&[0; 16]), ..Default::default() };
        let bytes = req.to_bytes();
        assert_eq!(bytes.len(), 44);
        assert_eq!(ConnectRequest::from_bytes(&bytes).unwrap().read_only, None);
        let req = ConnectRequest { read_only: Some(false), ..req };
        assert_eq!(req.to_bytes().len(), 45);
    }
}
