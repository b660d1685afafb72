//! Fault tests of Corral's recipes on a real, replicated ZooKeeper ensemble (test only).
//!
//! The tests (`tests/ensemble_*.rs`) start a 3-member ZooKeeper 3.8 ensemble with
//! [`corral_test_support::Ensemble`], run contenders as child processes (the `contender` binary
//! of this crate, see [`process`]), and apply faults: member kills and restarts (the leader
//! too), partitions through [`corral_test_support::FaultProxy`], and client stalls (SIGSTOP past
//! the session timeout, then SIGCONT).
//!
//! Every contender that holds a lock (or leads) increments one shared counter with a
//! [fenced write](fenced::fenced_increment): its fencing check and the counter's update in one
//! multi, which also appends an entry to a log of writes. [`history`] reads that log back and
//! finds every violation: a lost or duplicated update, or a write carrying an older fencing
//! token after a newer one.
//!
//! Set `CORRAL_ENSEMBLE_LONG=1` for the long runs (more faults of every kind). The long run of
//! `tests/ensemble_long_run.rs` (every fault kind round after round, Corral and Curator side by
//! side) is sized by `CORRAL_ENSEMBLE_ROUNDS` and `CORRAL_ENSEMBLE_ACQUISITIONS` (110 rounds and
//! 10,000 fenced acquisitions in the long mode).
//!
//! [`sim`] is the deterministic simulation of the same workloads (the embedded server, paused
//! time, in-memory links, one seed per interleaving), and [`report`] the faults report both print.

pub mod fenced;
pub mod history;
pub mod process;
pub mod report;
pub mod sim;

use std::time::Duration;

/// Set to `1` to run the long versions of the workloads.
pub const LONG_ENV: &str = "CORRAL_ENSEMBLE_LONG";

/// Whether the long versions of the workloads run (`CORRAL_ENSEMBLE_LONG=1`).
pub fn long_mode() -> bool {
    std::env::var(LONG_ENV).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// The session timeout the contenders ask for.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(4);
