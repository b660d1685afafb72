//! The client's integration tests run in `corral_test_support::env`'s environments: the embedded
//! server and a real ZooKeeper (from `corral-test-support`, or `CORRAL_TEST_ZK`), a chroot per
//! test. Faults between the client and the server go through `corral_test_support::FaultProxy`.

#![allow(unused_imports, unreachable_pub)]

pub use corral_test_support::env::{Env, embedded, envs, first_addr, wait_state};
