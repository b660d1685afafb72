//! Corral: ZooKeeper coordination for Rust, in the spirit of Apache Curator.
//!
//! This facade re-exports the workspace's library crates, so one dependency is enough:
//!
//! - everything of `corral-recipes` at the top level: the recipes ([`lock`],
//!   [`leader_latch`], [`persistent_node`]) and, through it, `corral-core`: [`Client`],
//!   [`Framework`], connection states, retry policies;
//! - [`proto`] (`corral-proto`): the wire protocol, sans I/O.
//!
//! For tests and examples without a JVM, add `corral-server` (the embedded server and its test
//! kit) as a dev-dependency.

pub use corral_recipes::*;
