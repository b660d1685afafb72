//! Transaction records in ZooKeeper's own encoding: a `TxnHeader` followed by the txn record
//! of its type (`CreateTxn`, `DeleteTxn`, `SetDataTxn`, …, `MultiTxn`), as
//! `org.apache.zookeeper.server.util.SerializeUtils` writes and reads them.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use corral_proto::{Acl, DecodeError, Jute};

use crate::tree::NodeKind;

/// ZooKeeper's opcodes, as the `type` of a transaction header.
pub(crate) mod op {
    pub(crate) const ERROR: i32 = -1;
    pub(crate) const CREATE: i32 = 1;
    pub(crate) const DELETE: i32 = 2;
    pub(crate) const SET_DATA: i32 = 5;
    pub(crate) const SET_ACL: i32 = 7;
    pub(crate) const CHECK: i32 = 13;
    pub(crate) const MULTI: i32 = 14;
    pub(crate) const CREATE2: i32 = 15;
    pub(crate) const CREATE_CONTAINER: i32 = 19;
    pub(crate) const DELETE_CONTAINER: i32 = 20;
    pub(crate) const CREATE_TTL: i32 = 21;
    pub(crate) const CREATE_SESSION: i32 = -10;
    pub(crate) const CLOSE_SESSION: i32 = -11;
}

/// ZooKeeper's marker owner of a container node (`EphemeralType.CONTAINER_EPHEMERAL_OWNER`).
pub(crate) const CONTAINER_OWNER: i64 = i64::MIN;
/// The top byte that marks an extended ephemeral owner (`EphemeralType.EXTENDED_MASK`).
const EXTENDED_MASK: i64 = 0xff00_0000_0000_0000_u64 as i64;
/// The bits of an extended owner that name the extended type (0 for TTL).
const EXTENDED_BIT_MASK: i64 = 0x00ff_ff00_0000_0000;

/// The `ephemeralOwner` ZooKeeper stores for a node of `kind` (its `StatPersisted` field).
pub(crate) fn owner_of(kind: NodeKind) -> i64 {
    match kind {
        NodeKind::Persistent => 0,
        NodeKind::Ephemeral(session) => session,
        NodeKind::Container => CONTAINER_OWNER,
        NodeKind::Ttl(ttl) => EXTENDED_MASK | ttl,
    }
}

/// The node kind a stored `ephemeralOwner` stands for (`EphemeralType.get`).
pub(crate) fn kind_of(owner: i64) -> NodeKind {
    match owner {
        0 => NodeKind::Persistent,
        CONTAINER_OWNER => NodeKind::Container,
        o if o & EXTENDED_MASK == EXTENDED_MASK && o & EXTENDED_BIT_MASK == 0 => {
            NodeKind::Ttl(o & !(EXTENDED_MASK | EXTENDED_BIT_MASK))
        }
        o => NodeKind::Ephemeral(o),
    }
}

/// ZooKeeper's `TxnHeader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TxnHeader {
    /// The session that asked (0 for the server's own transactions).
    pub(crate) client_id: i64,
    /// The request's xid.
    pub(crate) cxid: i32,
    pub(crate) zxid: i64,
    /// Wall-clock ms: ctime/mtime of what the transaction creates or changes.
    pub(crate) time: i64,
    /// The opcode ([`op`]).
    pub(crate) kind: i32,
}

/// One change to the tree, or a failed operation (inside a multi or alone).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TxnOp {
    /// `CreateTxn` (persistent and ephemeral), `CreateContainerTxn` or `CreateTTLTxn`.
    Create {
        path: String,
        data: Option<Bytes>,
        acl: Arc<Vec<Acl>>,
        kind: NodeKind,
        /// The parent's internal cversion (its number of child creates) after the create.
        parent_cversion: i32,
    },
    /// `DeleteTxn`, for delete or deleteContainer.
    Delete { path: String, container: bool },
    /// `SetDataTxn`, with the node's new version.
    SetData { path: String, data: Option<Bytes>, version: i32 },
    /// `SetACLTxn`, with the node's new ACL version.
    SetAcl { path: String, acl: Arc<Vec<Acl>>, version: i32 },
    /// `CheckVersionTxn` (inside a multi).
    Check { path: String, version: i32 },
    /// `ErrorTxn`: the operation failed with this code and changed nothing.
    Error(i32),
}

/// The body of a logged transaction.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TxnBody {
    /// A single operation.
    Op(TxnOp),
    /// `CreateSessionTxn`: the session (the header's client id) with this timeout.
    CreateSession { timeout: i32 },
    /// `CloseSessionTxn`: the session ends, its ephemerals go.
    CloseSession { paths: Vec<String> },
    /// `MultiTxn`: every op under one zxid.
    Multi(Vec<TxnOp>),
}

impl TxnOp {
    /// The opcode ZooKeeper logs this operation with.
    pub(crate) fn opcode(&self) -> i32 {
        match self {
            TxnOp::Create { kind: NodeKind::Container, .. } => op::CREATE_CONTAINER,
            TxnOp::Create { kind: NodeKind::Ttl(_), .. } => op::CREATE_TTL,
            TxnOp::Create { .. } => op::CREATE,
            TxnOp::Delete { container: true, .. } => op::DELETE_CONTAINER,
            TxnOp::Delete { .. } => op::DELETE,
            TxnOp::SetData { .. } => op::SET_DATA,
            TxnOp::SetAcl { .. } => op::SET_ACL,
            TxnOp::Check { .. } => op::CHECK,
            TxnOp::Error(_) => op::ERROR,
        }
    }

    fn write<B: BufMut>(&self, buf: &mut B) {
        match self {
            TxnOp::Create { path, data, acl, kind, parent_cversion } => {
                path.write(buf);
                data.write(buf);
                acl.as_ref().write(buf);
                match kind {
                    NodeKind::Persistent | NodeKind::Ephemeral(_) => {
                        matches!(kind, NodeKind::Ephemeral(_)).write(buf);
                        parent_cversion.write(buf);
                    }
                    NodeKind::Container => parent_cversion.write(buf),
                    NodeKind::Ttl(ttl) => {
                        parent_cversion.write(buf);
                        ttl.write(buf);
                    }
                }
            }
            TxnOp::Delete { path, .. } => path.write(buf),
            TxnOp::SetData { path, data, version } => {
                path.write(buf);
                data.write(buf);
                version.write(buf);
            }
            TxnOp::SetAcl { path, acl, version } => {
                path.write(buf);
                acl.as_ref().write(buf);
                version.write(buf);
            }
            TxnOp::Check { path, version } => {
                path.write(buf);
                version.write(buf);
            }
            TxnOp::Error(code) => code.write(buf),
        }
    }

    /// Reads an operation of opcode `kind`; `client_id` owns an ephemeral create.
    fn read<B: Buf>(kind: i32, client_id: i64, buf: &mut B) -> Result<Self, DecodeError> {
        Ok(match kind {
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                let path = String::read(buf)?;
                let data = Option::<Bytes>::read(buf)?;
                let acl = Arc::new(Vec::<Acl>::read(buf)?);
                let (kind, parent_cversion) = match kind {
                    op::CREATE_CONTAINER => (NodeKind::Container, i32::read(buf)?),
                    op::CREATE_TTL => {
                        let cversion = i32::read(buf)?;
                        (NodeKind::Ttl(i64::read(buf)?), cversion)
                    }
                    _ => {
                        let ephemeral = bool::read(buf)?;
                        let cversion = i32::read(buf)?;
                        (if ephemeral { NodeKind::Ephemeral(client_id) } else { NodeKind::Persistent }, cversion)
                    }
                };
                TxnOp::Create { path, data, acl, kind, parent_cversion }
            }
            op::DELETE | op::DELETE_CONTAINER => {
                TxnOp::Delete { path: String::read(buf)?, container: kind == op::DELETE_CONTAINER }
            }
            op::SET_DATA => {
                TxnOp::SetData { path: String::read(buf)?, data: Option::<Bytes>::read(buf)?, version: i32::read(buf)? }
            }
            op::SET_ACL => TxnOp::SetAcl {
                path: String::read(buf)?,
                acl: Arc::new(Vec::<Acl>::read(buf)?),
                version: i32::read(buf)?,
            },
            op::CHECK => TxnOp::Check { path: String::read(buf)?, version: i32::read(buf)? },
            op::ERROR => TxnOp::Error(i32::read(buf)?),
            other => return Err(DecodeError::InvalidValue { what: "txn type", value: i64::from(other) }),
        })
    }
}

/// Encodes a transaction (header and body) as one log entry's payload.
pub(crate) fn encode(header: &TxnHeader, body: &TxnBody) -> Vec<u8> {
    let mut buf = BytesMut::with_capacity(128);
    header.client_id.write(&mut buf);
    header.cxid.write(&mut buf);
    header.zxid.write(&mut buf);
    header.time.write(&mut buf);
    header.kind.write(&mut buf);
    match body {
        TxnBody::Op(op) => op.write(&mut buf),
        TxnBody::CreateSession { timeout } => timeout.write(&mut buf),
        TxnBody::CloseSession { paths } => paths.write(&mut buf),
        TxnBody::Multi(ops) => {
            (ops.len() as i32).write(&mut buf);
            for op in ops {
                op.opcode().write(&mut buf);
                let mut inner = BytesMut::new();
                op.write(&mut inner);
                Some(inner.freeze()).write(&mut buf);
            }
        }
    }
    buf.to_vec()
}

/// Decodes a log entry's payload. Bytes after the record (a 3.6+ `TxnDigest`) are ignored.
pub(crate) fn decode(mut buf: &[u8]) -> Result<(TxnHeader, TxnBody), DecodeError> {
    let header = TxnHeader {
        client_id: i64::read(&mut buf)?,
        cxid: i32::read(&mut buf)?,
        zxid: i64::read(&mut buf)?,
        time: i64::read(&mut buf)?,
        kind: i32::read(&mut buf)?,
    };
    let body = match header.kind {
        op::CREATE_SESSION => TxnBody::CreateSession { timeout: i32::read(&mut buf)? },
        // A 3.5 close has no body; 3.6+ lists the paths to delete.
        op::CLOSE_SESSION if buf.is_empty() => TxnBody::CloseSession { paths: Vec::new() },
        op::CLOSE_SESSION => TxnBody::CloseSession { paths: Vec::<String>::read(&mut buf)? },
        op::MULTI => {
            let count = i32::read(&mut buf)?;
            if count < 0 || count as usize > buf.len() {
                return Err(DecodeError::InvalidLength { what: "multi txn", len: count });
            }
            let mut ops = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let kind = i32::read(&mut buf)?;
                let inner = Bytes::read(&mut buf)?;
                ops.push(TxnOp::read(kind, header.client_id, &mut inner.as_ref())?);
            }
            TxnBody::Multi(ops)
        }
        kind => TxnBody::Op(TxnOp::read(kind, header.client_id, &mut buf)?),
    };
    Ok((header, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_round_trip_as_zookeeper_encodes_them() {
        for kind in [
            NodeKind::Persistent,
            NodeKind::Ephemeral(0x0100_0000_0000_0001),
            NodeKind::Container,
            NodeKind::Ttl(1),
            NodeKind::Ttl(corral_proto::MAX_TTL_MS),
        ] {
            assert_eq!(kind_of(owner_of(kind)), kind);
        }
        assert_eq!(owner_of(NodeKind::Ttl(100)), 0xff00_0000_0000_0064_u64 as i64);
    }

    #[test]
    fn records_round_trip() {
        let acl = Arc::new(Acl::open_unsafe());
        let header = |kind| TxnHeader { client_id: 7, cxid: 3, zxid: 9, time: 1000, kind };
        let create = TxnOp::Create {
            path: "/e".into(),
            data: None,
            acl: Arc::clone(&acl),
            kind: NodeKind::Ephemeral(7),
            parent_cversion: 4,
        };
        let ttl = TxnOp::Create {
            path: "/t".into(),
            data: Some(Bytes::from_static(b"x")),
            acl,
            kind: NodeKind::Ttl(500),
            parent_cversion: 5,
        };
        let cases = [
            TxnBody::Op(create.clone()),
            TxnBody::Op(TxnOp::Delete { path: "/d".into(), container: true }),
            TxnBody::CreateSession { timeout: 4000 },
            TxnBody::CloseSession { paths: vec!["/e".into()] },
            TxnBody::Multi(vec![create, ttl, TxnOp::Check { path: "/".into(), version: -1 }]),
            TxnBody::Multi(vec![TxnOp::Error(0), TxnOp::Error(-101)]),
        ];
        for body in cases {
            let kind = match &body {
                TxnBody::Op(op) => op.opcode(),
                TxnBody::CreateSession { .. } => op::CREATE_SESSION,
                TxnBody::CloseSession { .. } => op::CLOSE_SESSION,
                TxnBody::Multi(_) => op::MULTI,
            };
            let bytes = encode(&header(kind), &body);
            assert_eq!(decode(&bytes), Ok((header(kind), body)));
        }
        assert!(decode(&[0; 10]).is_err());
        assert!(decode(&encode(&header(99), &TxnBody::Op(TxnOp::Error(1)))).is_err());
    }
}
