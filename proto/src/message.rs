//! Whole request and response bodies, keyed by opcode.
//!
//! The server decodes a [`Request`] from the opcode in the request header; the client decodes
//! a [`Response`] from the opcode of the request it is answering. Both encode the other way.

use bytes::{Buf, BufMut};

use crate::codes::{ErrorCode, OpCode};
use crate::data::Stat;
use crate::jute::{DecodeError, Jute};
use crate::multi::{MultiRequest, MultiResponse};
use crate::records::{
    AddWatchRequest, AuthPacket, CheckVersionRequest, ChildrenResponse, Create2Response, CreateRequest, CreateResponse,
    CreateTtlRequest, DeleteRequest, ErrorResponse, GetAclResponse, GetAllChildrenNumberResponse, GetChildren2Response,
    GetDataResponse, PathAndWatch, PathRequest, ReconfigRequest, SaslToken, SetAclRequest, SetDataRequest, SetWatches,
    SetWatches2, StatResponse, WatchesRequest, WhoAmIResponse,
};

/// A request body, one variant per opcode a client may send.
///
/// The opcode goes in the [`RequestHeader`](crate::RequestHeader) in front of the body; the
/// body alone does not say which request it is.
///
/// # Examples
///
/// ```
/// use corral_proto::records::DeleteRequest;
/// use corral_proto::{OpCode, Request};
///
/// let request = Request::Delete(DeleteRequest { path: "/a".into(), version: -1 });
/// let mut body = Vec::new();
/// request.write_body(&mut body);
/// assert_eq!(Request::read_body(OpCode::Delete, &mut &body[..])?, request);
/// # Ok::<(), corral_proto::DecodeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// create (1).
    Create(CreateRequest),
    /// create2 (15).
    Create2(CreateRequest),
    /// createContainer (19).
    CreateContainer(CreateRequest),
    /// createTTL (21).
    CreateTtl(CreateTtlRequest),
    /// delete (2).
    Delete(DeleteRequest),
    /// exists (3).
    Exists(PathAndWatch),
    /// getData (4).
    GetData(PathAndWatch),
    /// setData (5).
    SetData(SetDataRequest),
    /// getACL (6).
    GetAcl(PathRequest),
    /// setACL (7).
    SetAcl(SetAclRequest),
    /// getChildren (8).
    GetChildren(PathAndWatch),
    /// sync (9).
    Sync(PathRequest),
    /// ping (11), xid −2.
    Ping,
    /// getChildren2 (12).
    GetChildren2(PathAndWatch),
    /// check (13); valid inside a multi only.
    Check(CheckVersionRequest),
    /// multi (14).
    Multi(MultiRequest),
    /// reconfig (16).
    Reconfig(ReconfigRequest),
    /// checkWatches (17).
    CheckWatches(WatchesRequest),
    /// removeWatches (18).
    RemoveWatches(WatchesRequest),
    /// deleteContainer (20): one buffer holding the path. Server-internal.
    DeleteContainer(bytes::Bytes),
    /// multiRead (22).
    MultiRead(MultiRequest),
    /// auth (100), xid −4.
    Auth(AuthPacket),
    /// setWatches (101), xid −8.
    SetWatches(SetWatches),
    /// sasl (102).
    Sasl(SaslToken),
    /// getEphemerals (103).
    GetEphemerals(PathRequest),
    /// getAllChildrenNumber (104).
    GetAllChildrenNumber(PathRequest),
    /// setWatches2 (105), xid −8.
    SetWatches2(SetWatches2),
    /// addWatch (106).
    AddWatch(AddWatchRequest),
    /// whoAmI (107).
    WhoAmI,
    /// closeSession (−11).
    CloseSession,
}

impl Request {
    /// The opcode that goes in the request header.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::{OpCode, Request};
    ///
    /// assert_eq!(Request::Ping.op_code(), OpCode::Ping);
    /// assert_eq!(Request::CloseSession.op_code().code(), -11);
    /// ```
    pub fn op_code(&self) -> OpCode {
        match self {
            Self::Create(_) => OpCode::Create,
            Self::Create2(_) => OpCode::Create2,
            Self::CreateContainer(_) => OpCode::CreateContainer,
            Self::CreateTtl(_) => OpCode::CreateTtl,
            Self::Delete(_) => OpCode::Delete,
            Self::Exists(_) => OpCode::Exists,
            Self::GetData(_) => OpCode::GetData,
            Self::SetData(_) => OpCode::SetData,
            Self::GetAcl(_) => OpCode::GetAcl,
            Self::SetAcl(_) => OpCode::SetAcl,
            Self::GetChildren(_) => OpCode::GetChildren,
            Self::Sync(_) => OpCode::Sync,
            Self::Ping => OpCode::Ping,
            Self::GetChildren2(_) => OpCode::GetChildren2,
            Self::Check(_) => OpCode::Check,
            Self::Multi(_) => OpCode::Multi,
            Self::Reconfig(_) => OpCode::Reconfig,
            Self::CheckWatches(_) => OpCode::CheckWatches,
            Self::RemoveWatches(_) => OpCode::RemoveWatches,
            Self::DeleteContainer(_) => OpCode::DeleteContainer,
            Self::MultiRead(_) => OpCode::MultiRead,
            Self::Auth(_) => OpCode::Auth,
            Self::SetWatches(_) => OpCode::SetWatches,
            Self::Sasl(_) => OpCode::Sasl,
            Self::GetEphemerals(_) => OpCode::GetEphemerals,
            Self::GetAllChildrenNumber(_) => OpCode::GetAllChildrenNumber,
            Self::SetWatches2(_) => OpCode::SetWatches2,
            Self::AddWatch(_) => OpCode::AddWatch,
            Self::WhoAmI => OpCode::WhoAmI,
            Self::CloseSession => OpCode::CloseSession,
        }
    }

    /// Appends the body (without the request header) to `buf`.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::Request;
    /// use corral_proto::records::PathRequest;
    ///
    /// let mut body = Vec::new();
    /// Request::Sync(PathRequest { path: "/".into() }).write_body(&mut body);
    /// assert_eq!(body, [0, 0, 0, 1, b'/']);
    /// body.clear();
    /// Request::Ping.write_body(&mut body); // no body at all
    /// assert!(body.is_empty());
    /// ```
    pub fn write_body<B: BufMut>(&self, buf: &mut B) {
        match self {
            Self::Create(r) | Self::Create2(r) | Self::CreateContainer(r) => r.write(buf),
            Self::CreateTtl(r) => r.write(buf),
            Self::Delete(r) => r.write(buf),
            Self::Exists(r) | Self::GetData(r) | Self::GetChildren(r) | Self::GetChildren2(r) => r.write(buf),
            Self::SetData(r) => r.write(buf),
            Self::GetAcl(r) | Self::Sync(r) | Self::GetEphemerals(r) | Self::GetAllChildrenNumber(r) => r.write(buf),
            Self::SetAcl(r) => r.write(buf),
            Self::Ping | Self::WhoAmI | Self::CloseSession => {}
            Self::Check(r) => r.write(buf),
            Self::Multi(r) | Self::MultiRead(r) => r.write(buf),
            Self::Reconfig(r) => r.write(buf),
            Self::CheckWatches(r) | Self::RemoveWatches(r) => r.write(buf),
            Self::DeleteContainer(path) => path.write(buf),
            Self::Auth(r) => r.write(buf),
            Self::SetWatches(r) => r.write(buf),
            Self::Sasl(r) => r.write(buf),
            Self::SetWatches2(r) => r.write(buf),
            Self::AddWatch(r) => r.write(buf),
        }
    }

    /// Decodes the body of a request whose header carried `op`.
    ///
    /// # Errors
    ///
    /// [`DecodeError::InvalidValue`] for an opcode that is not a client request (the server
    /// answers Unimplemented and closes), or any decoding error of the body.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::records::PathAndWatch;
    /// use corral_proto::{DecodeError, OpCode, Request};
    ///
    /// let body = [0, 0, 0, 2, b'/', b'x', 1];
    /// let request = Request::read_body(OpCode::Exists, &mut &body[..])?;
    /// assert_eq!(request, Request::Exists(PathAndWatch { path: "/x".into(), watch: true }));
    ///
    /// let err = Request::read_body(OpCode::Notification, &mut &body[..]).unwrap_err();
    /// assert_eq!(err, DecodeError::InvalidValue { what: "request opcode", value: 0 });
    /// # Ok::<(), DecodeError>(())
    /// ```
    pub fn read_body<B: Buf>(op: OpCode, buf: &mut B) -> Result<Self, DecodeError> {
        Ok(match op {
            OpCode::Create => Self::Create(Jute::read(buf)?),
            OpCode::Create2 => Self::Create2(Jute::read(buf)?),
            OpCode::CreateContainer => Self::CreateContainer(Jute::read(buf)?),
            OpCode::CreateTtl => Self::CreateTtl(Jute::read(buf)?),
            OpCode::Delete => Self::Delete(Jute::read(buf)?),
            OpCode::Exists => Self::Exists(Jute::read(buf)?),
            OpCode::GetData => Self::GetData(Jute::read(buf)?),
            OpCode::SetData => Self::SetData(Jute::read(buf)?),
            OpCode::GetAcl => Self::GetAcl(Jute::read(buf)?),
            OpCode::SetAcl => Self::SetAcl(Jute::read(buf)?),
            OpCode::GetChildren => Self::GetChildren(Jute::read(buf)?),
            OpCode::Sync => Self::Sync(Jute::read(buf)?),
            OpCode::Ping => Self::Ping,
            OpCode::GetChildren2 => Self::GetChildren2(Jute::read(buf)?),
            OpCode::Check => Self::Check(Jute::read(buf)?),
            OpCode::Multi => Self::Multi(Jute::read(buf)?),
            OpCode::Reconfig => Self::Reconfig(Jute::read(buf)?),
            OpCode::CheckWatches => Self::CheckWatches(Jute::read(buf)?),
            OpCode::RemoveWatches => Self::RemoveWatches(Jute::read(buf)?),
            OpCode::DeleteContainer => Self::DeleteContainer(Jute::read(buf)?),
            OpCode::MultiRead => Self::MultiRead(Jute::read(buf)?),
            OpCode::Auth => Self::Auth(Jute::read(buf)?),
            OpCode::SetWatches => Self::SetWatches(Jute::read(buf)?),
            OpCode::Sasl => Self::Sasl(Jute::read(buf)?),
            OpCode::GetEphemerals => Self::GetEphemerals(Jute::read(buf)?),
            OpCode::GetAllChildrenNumber => Self::GetAllChildrenNumber(Jute::read(buf)?),
            OpCode::SetWatches2 => Self::SetWatches2(Jute::read(buf)?),
            OpCode::AddWatch => Self::AddWatch(Jute::read(buf)?),
            OpCode::WhoAmI => Self::WhoAmI,
            OpCode::CloseSession => Self::CloseSession,
            other => {
                return Err(DecodeError::InvalidValue { what: "request opcode", value: other.code().into() });
            }
        })
    }
}

/// A successful response body (what follows a reply header whose `err` is 0).
///
/// A reply carries no opcode: the client decodes it by the opcode of the request with the same
/// xid. Several requests share a variant (setData, exists and setACL all answer a [`Stat`]).
///
/// # Examples
///
/// ```
/// use corral_proto::records::CreateResponse;
/// use corral_proto::{OpCode, Response};
///
/// let reply = Response::Create(CreateResponse { path: "/jobs/job-0000000007".into() });
/// let mut body = Vec::new();
/// reply.write_body(&mut body);
/// assert_eq!(Response::read_body(OpCode::Create, &mut &body[..])?, reply);
/// # Ok::<(), corral_proto::DecodeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// No body: delete, ping, auth, setWatches, setWatches2, checkWatches, removeWatches,
    /// closeSession, check.
    Empty,
    /// create.
    Create(CreateResponse),
    /// create2, createContainer, createTTL.
    Create2(Create2Response),
    /// exists, setData, setACL.
    Stat(Stat),
    /// getData, reconfig.
    GetData(GetDataResponse),
    /// getACL.
    GetAcl(GetAclResponse),
    /// getChildren, getEphemerals.
    Children(ChildrenResponse),
    /// getChildren2.
    Children2(GetChildren2Response),
    /// sync: the path.
    Sync(PathRequest),
    /// multi, multiRead.
    Multi(MultiResponse),
    /// getAllChildrenNumber.
    AllChildrenNumber(GetAllChildrenNumberResponse),
    /// whoAmI.
    WhoAmI(WhoAmIResponse),
    /// addWatch: a 4-byte result code body.
    AddWatch(ErrorResponse),
    /// sasl.
    Sasl(SaslToken),
}

impl Response {
    /// Appends the body to `buf`.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::{Jute, Response, Stat};
    ///
    /// let mut body = Vec::new();
    /// Response::Stat(Stat::default()).write_body(&mut body);
    /// assert_eq!(body.len(), Stat::ENCODED_LEN);
    /// ```
    pub fn write_body<B: BufMut>(&self, buf: &mut B) {
        match self {
            Self::Empty => {}
            Self::Create(r) => r.write(buf),
            Self::Create2(r) => r.write(buf),
            Self::Stat(s) => s.write(buf),
            Self::GetData(r) => r.write(buf),
            Self::GetAcl(r) => r.write(buf),
            Self::Children(r) => r.write(buf),
            Self::Children2(r) => r.write(buf),
            Self::Sync(r) => r.write(buf),
            Self::Multi(r) => r.write(buf),
            Self::AllChildrenNumber(r) => r.write(buf),
            Self::WhoAmI(r) => r.write(buf),
            Self::AddWatch(r) => r.write(buf),
            Self::Sasl(r) => r.write(buf),
        }
    }

    /// Decodes the body of a successful reply to a request of type `op`.
    ///
    /// Bytes after the record are left in `buf` (newer servers may append fields).
    ///
    /// # Errors
    ///
    /// Any decoding error of the body, or [`DecodeError::InvalidValue`] for an opcode that
    /// has no reply.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::{Jute, OpCode, Response, Stat};
    ///
    /// let stat = Stat { version: 3, ..Stat::default() };
    /// let mut body = stat.to_bytes().to_vec();
    /// body.extend_from_slice(&[0xAA, 0xBB]); // a field a newer server might append
    /// let mut rest = &body[..];
    /// assert_eq!(Response::read_body(OpCode::SetData, &mut rest)?, Response::Stat(stat));
    /// assert_eq!(rest, &[0xAA, 0xBB]); // left for the caller
    /// assert_eq!(Response::read_body(OpCode::Delete, &mut &[][..])?, Response::Empty);
    /// # Ok::<(), corral_proto::DecodeError>(())
    /// ```
    pub fn read_body<B: Buf>(op: OpCode, buf: &mut B) -> Result<Self, DecodeError> {
        Ok(match op {
            OpCode::Create => Self::Create(Jute::read(buf)?),
            OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => Self::Create2(Jute::read(buf)?),
            OpCode::Exists | OpCode::SetData | OpCode::SetAcl => Self::Stat(StatResponse::read(buf)?.stat),
            OpCode::GetData | OpCode::Reconfig => Self::GetData(Jute::read(buf)?),
            OpCode::GetAcl => Self::GetAcl(Jute::read(buf)?),
            OpCode::GetChildren | OpCode::GetEphemerals => Self::Children(Jute::read(buf)?),
            OpCode::GetChildren2 => Self::Children2(Jute::read(buf)?),
            OpCode::Sync => Self::Sync(Jute::read(buf)?),
            OpCode::Multi | OpCode::MultiRead => Self::Multi(Jute::read(buf)?),
            OpCode::GetAllChildrenNumber => Self::AllChildrenNumber(Jute::read(buf)?),
            OpCode::WhoAmI => Self::WhoAmI(Jute::read(buf)?),
            OpCode::AddWatch => {
                // ZooKeeper sends a 4-byte ErrorResponse; tolerate an empty body too.
                if buf.remaining() >= 4 { Self::AddWatch(Jute::read(buf)?) } else { Self::Empty }
            }
            OpCode::Sasl => Self::Sasl(Jute::read(buf)?),
            OpCode::Delete
            | OpCode::Ping
            | OpCode::Auth
            | OpCode::SetWatches
            | OpCode::SetWatches2
            | OpCode::CheckWatches
            | OpCode::RemoveWatches
            | OpCode::CloseSession
            | OpCode::Check
            | OpCode::DeleteContainer => Self::Empty,
            other => {
                return Err(DecodeError::InvalidValue { what: "reply opcode", value: other.code().into() });
            }
        })
    }
}

impl From<ErrorCode> for ErrorResponse {
    fn from(err: ErrorCode) -> Self {
        ErrorResponse { err }
    }
}
