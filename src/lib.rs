//! Corral: ZooKeeper coordination for Rust, in the spirit of Apache Curator.
//!
//! This facade re-exports the crates of the workspace:
//!
//! - [`proto`] (`corral-proto`): the wire protocol, sans I/O;
//! - [`core`]'s items at the top level (`corral-core`): the async client that owns the session.

pub use corral_core::*;
pub use corral_proto as proto;
