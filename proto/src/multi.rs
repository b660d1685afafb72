//! multi (atomic transactions) and multiRead: a run of `(MultiHeader, record)` entries closed
//! by a `done` header, both ways.

use bytes::{Buf, BufMut};

use crate::codes::{ErrorCode, OpCode};
use crate::data::Stat;
use crate::jute::{DecodeError, Jute};
use crate::records::{
    CheckVersionRequest, ChildrenResponse, Create2Response, CreateRequest, CreateResponse, CreateTtlRequest,
    DeleteRequest, ErrorResponse, GetDataResponse, MultiHeader, PathAndWatch, SetDataRequest,
};

/// One operation of a multi or multiRead.
///
/// # Examples
///
/// ```
/// use corral_proto::records::CheckVersionRequest;
/// use corral_proto::{MultiOp, OpCode};
///
/// let op = MultiOp::Check(CheckVersionRequest { path: "/lock".into(), version: 0 });
/// assert_eq!((op.op_code(), op.path(), op.is_read()), (OpCode::Check, "/lock", false));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    /// create (type 1); the result carries the path only.
    Create(CreateRequest),
    /// create2 (type 15); on ZooKeeper ≥ 3.9 the result carries a stat.
    Create2(CreateRequest),
    /// createContainer (type 19).
    CreateContainer(CreateRequest),
    /// createTTL (type 21).
    CreateTtl(CreateTtlRequest),
    /// delete (type 2).
    Delete(DeleteRequest),
    /// setData (type 5).
    SetData(SetDataRequest),
    /// check (type 13).
    Check(CheckVersionRequest),
    /// getData (type 4), multiRead only.
    GetData(PathAndWatch),
    /// getChildren (type 8), multiRead only.
    GetChildren(PathAndWatch),
}

impl MultiOp {
    /// The opcode of this operation, written in the operation's multi header.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::records::PathAndWatch;
    /// use corral_proto::{MultiOp, OpCode};
    ///
    /// let op = MultiOp::GetChildren(PathAndWatch { path: "/a".into(), watch: false });
    /// assert_eq!(op.op_code(), OpCode::GetChildren);
    /// ```
    pub fn op_code(&self) -> OpCode {
        match self {
            Self::Create(_) => OpCode::Create,
            Self::Create2(_) => OpCode::Create2,
            Self::CreateContainer(_) => OpCode::CreateContainer,
            Self::CreateTtl(_) => OpCode::CreateTtl,
            Self::Delete(_) => OpCode::Delete,
            Self::SetData(_) => OpCode::SetData,
            Self::Check(_) => OpCode::Check,
            Self::GetData(_) => OpCode::GetData,
            Self::GetChildren(_) => OpCode::GetChildren,
        }
    }

    /// The path this operation acts on.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::MultiOp;
    /// use corral_proto::records::DeleteRequest;
    ///
    /// let op = MultiOp::Delete(DeleteRequest { path: "/todo/t-1".into(), version: -1 });
    /// assert_eq!(op.path(), "/todo/t-1");
    /// ```
    pub fn path(&self) -> &str {
        match self {
            Self::Create(r) | Self::Create2(r) | Self::CreateContainer(r) => &r.path,
            Self::CreateTtl(r) => &r.path,
            Self::Delete(r) => &r.path,
            Self::SetData(r) => &r.path,
            Self::Check(r) => &r.path,
            Self::GetData(r) | Self::GetChildren(r) => &r.path,
        }
    }

    /// Whether this is a read (allowed in multiRead only).
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::MultiOp;
    /// use corral_proto::records::{DeleteRequest, PathAndWatch};
    ///
    /// assert!(MultiOp::GetData(PathAndWatch { path: "/a".into(), watch: false }).is_read());
    /// assert!(!MultiOp::Delete(DeleteRequest { path: "/a".into(), version: -1 }).is_read());
    /// ```
    pub fn is_read(&self) -> bool {
        matches!(self, Self::GetData(_) | Self::GetChildren(_))
    }
}

fn end_header() -> MultiHeader {
    MultiHeader { op: OpCode::Error, done: true, err: -1 }
}

/// The body of a multi or multiRead request.
///
/// On the wire: for each operation a multi header (its type, `done = false`, `err = -1`) and
/// its record, then a closing header with `done = true`.
///
/// # Examples
///
/// ```
/// use corral_proto::records::{DeleteRequest, SetDataRequest};
/// use corral_proto::{Jute, MultiOp, MultiRequest};
///
/// let multi = MultiRequest {
///     ops: vec![
///         MultiOp::SetData(SetDataRequest { path: "/done".into(), data: Some("t-1".into()), version: -1 }),
///         MultiOp::Delete(DeleteRequest { path: "/todo/t-1".into(), version: 0 }),
///     ],
/// };
/// let bytes = multi.to_bytes();
/// assert_eq!(&bytes[bytes.len() - 9..], &[0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff]);
/// assert_eq!(MultiRequest::from_bytes(&bytes)?, multi);
/// # Ok::<(), corral_proto::DecodeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiRequest {
    /// The operations, in order.
    pub ops: Vec<MultiOp>,
}

impl Jute for MultiRequest {
    fn write<B: BufMut>(&self, buf: &mut B) {
        for op in &self.ops {
            MultiHeader { op: op.op_code(), done: false, err: -1 }.write(buf);
            match op {
                MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => r.write(buf),
                MultiOp::CreateTtl(r) => r.write(buf),
                MultiOp::Delete(r) => r.write(buf),
                MultiOp::SetData(r) => r.write(buf),
                MultiOp::Check(r) => r.write(buf),
                MultiOp::GetData(r) | MultiOp::GetChildren(r) => r.write(buf),
            }
        }
        end_header().write(buf);
    }

    fn read<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        let mut ops = Vec::new();
        loop {
            let header = MultiHeader::read(buf)?;
            if header.done {
                return Ok(Self { ops });
            }
            ops.push(match header.op {
                OpCode::Create => MultiOp::Create(Jute::read(buf)?),
                OpCode::Create2 => MultiOp::Create2(Jute::read(buf)?),
                OpCode::CreateContainer => MultiOp::CreateContainer(Jute::read(buf)?),
                OpCode::CreateTtl => MultiOp::CreateTtl(Jute::read(buf)?),
                OpCode::Delete => MultiOp::Delete(Jute::read(buf)?),
                OpCode::SetData => MultiOp::SetData(Jute::read(buf)?),
                OpCode::Check => MultiOp::Check(Jute::read(buf)?),
                OpCode::GetData => MultiOp::GetData(Jute::read(buf)?),
                OpCode::GetChildren => MultiOp::GetChildren(Jute::read(buf)?),
                other => {
                    return Err(DecodeError::InvalidValue { what: "multi op type", value: other.code().into() });
                }
            });
        }
    }
}

/// The result of one operation of a multi or multiRead.
///
/// # Examples
///
/// ```
/// use corral_proto::{ErrorCode, Jute, MultiResponse, MultiResult};
///
/// // A failed multi reports every operation as an error: the one that failed with its code.
/// let failed = MultiResponse { results: vec![MultiResult::Error(ErrorCode::BadVersion)] };
/// let bytes = failed.to_bytes();
/// // Header: type -1 (error), done = false, err = -103; then the code again as the record.
/// assert_eq!(&bytes[..13], &[0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0x99, 0xff, 0xff, 0xff, 0x99]);
/// assert_eq!(MultiResponse::from_bytes(&bytes)?.results, [MultiResult::Error(ErrorCode::BadVersion)]);
/// # Ok::<(), corral_proto::DecodeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiResult {
    /// A create answered with its path (type 1; also create2 on ZooKeeper ≤ 3.8).
    Create(CreateResponse),
    /// A create answered with its path and stat (type 15).
    Create2(Create2Response),
    /// A delete succeeded (type 2).
    Delete,
    /// A setData succeeded (type 5).
    SetData(Stat),
    /// A check succeeded (type 13).
    Check,
    /// A getData result (type 4), multiRead only.
    GetData(GetDataResponse),
    /// A getChildren result (type 8), multiRead only.
    GetChildren(ChildrenResponse),
    /// The operation failed, or (in a failed multi) was rolled back: [`ErrorCode::Ok`] for
    /// operations before the failing one, its own code for the failing one, and
    /// [`ErrorCode::RuntimeInconsistency`] for the ones after it.
    Error(ErrorCode),
}

impl MultiResult {
    fn op_code(&self) -> OpCode {
        match self {
            Self::Create(_) => OpCode::Create,
            Self::Create2(_) => OpCode::Create2,
            Self::Delete => OpCode::Delete,
            Self::SetData(_) => OpCode::SetData,
            Self::Check => OpCode::Check,
            Self::GetData(_) => OpCode::GetData,
            Self::GetChildren(_) => OpCode::GetChildren,
            Self::Error(_) => OpCode::Error,
        }
    }
}

/// The body of a multi or multiRead reply.
///
/// # Examples
///
/// ```
/// use corral_proto::records::CreateResponse;
/// use corral_proto::{Jute, MultiResponse, MultiResult};
///
/// let reply = MultiResponse {
///     results: vec![MultiResult::Create(CreateResponse { path: "/done/t-1".into() }), MultiResult::Delete],
/// };
/// let decoded = MultiResponse::from_bytes(&reply.to_bytes())?;
/// assert_eq!(decoded, reply);
/// assert_eq!(decoded.failure(), None);
/// # Ok::<(), corral_proto::DecodeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiResponse {
    /// One result per operation, in order.
    pub results: Vec<MultiResult>,
}

impl MultiResponse {
    /// The first failure of an atomic multi, as `(index, code)`: the result that is neither
    /// [`ErrorCode::Ok`] nor [`ErrorCode::RuntimeInconsistency`].
    ///
    /// In a multiRead, each failed read is its own [`MultiResult::Error`]; this finds the first.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::{ErrorCode, MultiResponse, MultiResult};
    ///
    /// let reply = MultiResponse {
    ///     results: vec![
    ///         MultiResult::Error(ErrorCode::Ok),
    ///         MultiResult::Error(ErrorCode::NodeExists),
    ///         MultiResult::Error(ErrorCode::RuntimeInconsistency),
    ///     ],
    /// };
    /// assert_eq!(reply.failure(), Some((1, ErrorCode::NodeExists)));
    /// ```
    pub fn failure(&self) -> Option<(usize, ErrorCode)> {
        self.results.iter().enumerate().find_map(|(i, r)| match r {
            MultiResult::Error(code) if !matches!(code, ErrorCode::Ok | ErrorCode::RuntimeInconsistency) => {
                Some((i, *code))
            }
            _ => None,
        })
    }
}

impl Jute for MultiResponse {
    fn write<B: BufMut>(&self, buf: &mut B) {
        for result in &self.results {
            let err = match result {
                MultiResult::Error(code) => code.code(),
                _ => 0,
            };
            MultiHeader { op: result.op_code(), done: false, err }.write(buf);
            match result {
                MultiResult::Create(r) => r.write(buf),
                MultiResult::Create2(r) => r.write(buf),
                MultiResult::Delete | MultiResult::Check => {}
                MultiResult::SetData(stat) => stat.write(buf),
                MultiResult::GetData(r) => r.write(buf),
                MultiResult::GetChildren(r) => r.write(buf),
                MultiResult::Error(code) => ErrorResponse { err: *code }.write(buf),
            }
        }
        end_header().write(buf);
    }

    fn read<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        let mut results = Vec::new();
        loop {
            let header = MultiHeader::read(buf)?;
            if header.done {
                return Ok(Self { results });
            }
            results.push(match header.op {
                OpCode::Create => MultiResult::Create(Jute::read(buf)?),
                OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => MultiResult::Create2(Jute::read(buf)?),
                OpCode::Delete => MultiResult::Delete,
                OpCode::SetData => MultiResult::SetData(Jute::read(buf)?),
                OpCode::Check => MultiResult::Check,
                OpCode::GetData => MultiResult::GetData(Jute::read(buf)?),
                OpCode::GetChildren => MultiResult::GetChildren(Jute::read(buf)?),
                OpCode::Error => MultiResult::Error(ErrorResponse::read(buf)?.err),
                other => {
                    return Err(DecodeError::InvalidValue { what: "multi result type", value: other.code().into() });
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_multi_is_just_the_end_header() {
        let bytes = MultiRequest::default().to_bytes();
        assert_eq!(bytes.as_ref(), &[0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(MultiRequest::from_bytes(&bytes), Ok(MultiRequest::default()));
    }

    #[test]
    fn failure_finds_the_failing_op() {
        let r = MultiResponse {
            results: vec![
                MultiResult::Error(ErrorCode::Ok),
                MultiResult::Error(ErrorCode::NoNode),
                MultiResult::Error(ErrorCode::RuntimeInconsistency),
            ],
        };
        assert_eq!(r.failure(), Some((1, ErrorCode::NoNode)));
        assert_eq!(MultiResponse::from_bytes(&r.to_bytes()), Ok(r));
    }
}
