//! The ZooKeeper client protocol, sans I/O: jute records, opcodes, error codes, `Stat`, ACLs,
//! watch events, path rules and framing, for ZooKeeper 3.5 – 3.9.
//!
//! Both directions of every record encode and decode, so the same crate serves the Corral
//! client (`corral-core`) and the embedded server (`corral-server`). The encoding is pinned by
//! golden bytes captured from a real ZooKeeper 3.8 (see `tests/golden.rs`), so a bug shared by
//! both sides cannot hide.
//!
//! # Layout
//!
//! - [`jute`]: the [`Jute`] trait and the primitive encodings.
//! - [`codes`]: [`OpCode`], [`ErrorCode`], [`EventType`], [`KeeperState`], [`WatcherType`],
//!   [`AddWatchMode`], each keeping unknown values.
//! - [`data`]: [`Stat`], [`Acl`], [`Id`], [`Perms`], [`CreateMode`].
//! - [`records`]: one struct per request and response record, and the reserved [`xid`]s.
//! - [`multi`]: multi and multiRead bodies.
//! - [`message`]: [`Request`] and [`Response`], whole bodies keyed by opcode.
//! - [`path`]: [`validate_path`] and friends.
//! - [`frame`]: [`FrameDecoder`], [`encode_frame`], [`four_letter_word`].
//!
//! # Examples
//!
//! ```
//! use corral_proto::{Jute, OpCode, Request, RequestHeader, encode_frame, records::PathAndWatch};
//! use bytes::BytesMut;
//!
//! let request = Request::GetData(PathAndWatch { path: "/app/config".into(), watch: true });
//! let mut buf = BytesMut::new();
//! encode_frame(&mut buf, |b| {
//!     RequestHeader { xid: 1, op: request.op_code() }.write(b);
//!     request.write_body(b);
//! });
//! assert_eq!(&buf[..4], &[0, 0, 0, 24]);
//! assert_eq!(request.op_code(), OpCode::GetData);
//! ```

pub mod codes;
pub mod data;
pub mod frame;
pub mod jute;
pub mod message;
pub mod multi;
pub mod path;
pub mod records;

pub use codes::{AddWatchMode, ErrorCode, EventType, KeeperState, OpCode, WatcherType};
pub use data::{Acl, CreateMode, Id, MAX_TTL_MS, Perms, Stat};
pub use frame::{DEFAULT_MAX_FRAME, FrameDecoder, FrameError, encode_frame, four_letter_word};
pub use jute::{DecodeError, Jute};
pub use message::{Request, Response};
pub use multi::{MultiOp, MultiRequest, MultiResponse, MultiResult};
pub use path::{PathError, validate_path, validate_sequential_path};
pub use records::{ConnectRequest, ConnectResponse, ReplyHeader, RequestHeader, WatcherEvent, xid};
