//! Recipe test environments come from `corral_test_support::env`: an embedded server (with its
//! fault kit) and, when available, a real ZooKeeper (`corral-test-support` or `CORRAL_TEST_ZK`),
//! each test in its own chroot. The peers of the interop suites live here.

#![allow(dead_code, unused_imports, unreachable_pub)]

pub mod java_peer;
pub mod kazoo_peer;

pub use corral_test_support::env::{Env, InMemory, embedded, envs, eventually, in_memory};
