//! The embedded server against a real ZooKeeper 3.8: the targets of issue 3, measured with
//! Corral's client in the same run.
//!
//! ```text
//! corral-bench --zk 127.0.0.1:21810 --zk-sh ../shared/anchors/zk.sh server
//! corral-bench --zk 127.0.0.1:21810 server-ops server-rss
//! ```
//!
//! - `server-ops`: the `latency` and `throughput` workloads, each in a child process of this
//!   same binary (Corral's client, the default runtime), against a fresh `corral-server` process
//!   and against ZooKeeper, alternating the order every round; medians, ratios, and the CPU the
//!   server, the client and the other tenants used meanwhile. Then the same sequential getData
//!   with a minimal blocking client, for the server's share of the latency.
//! - `server-startup`: exec of the `corral-server` binary → first TCP connect, first completed
//!   session handshake, first `imok`, first `srvr` with a `Mode:` line, and the `listening on`
//!   line; with `--zk-sh`, the same for `zk.sh start nosync`.
//! - `server-rss`: `VmRSS` of each server process before and after 100 × 1 000 znodes of 100 B
//!   (created pipelined, 1 000 in flight).
//! - `server-idle`: 10 000 sessions opened by a minimal pinger (handshake, then one ping every
//!   negotiated timeout ÷ 3, as ZooKeeper's clients do when idle), then the server's CPU
//!   (`utime + stime` from `/proc/PID/stat`) over a window, as % of one core; for a 10 s and a
//!   30 s session timeout (3 000 and 1 000 pings/s).
//!
//! The embedded server always runs as its release binary (`corral-server --port P`), started
//! and killed (by pid) here. ZooKeeper is the one the anchors' `zk.sh` runs, found through its
//! pid file; with `--zk-sh` this module restarts it (`zk.sh stop`, `zk.sh start nosync`) where
//! a benchmark needs a fresh process, and leaves it running. A `corral-server` outlives this
//! process only if this process is killed outright (SIGKILL); `timeout` and Ctrl-C signal the
//! whole process group, the server included.
//!
//! One file per measurement family — `ops` (latency and throughput), `startup`, `rss`, `idle` —
//! on shared parts: `process` (the `corral-server` process, the target of a round), `procfs`
//! (CPU and memory from `/proc`), `wire` (hand-made protocol frames for the blocking probes and
//! the minimal clients) and `stats` (medians and the reported series).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::clients::OpError;
use crate::report::note;

mod idle;
mod ops;
mod process;
mod procfs;
mod rss;
mod startup;
mod stats;
mod wire;

pub(crate) use idle::idle;
pub(crate) use ops::ops;
pub(crate) use rss::rss;
pub(crate) use startup::startup;

/// The flags of the `server-*` benchmarks.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServerArgs {
    /// server-*: the corral-server binary (default: `corral-server` next to this executable,
    /// i.e. `target/release/corral-server`).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// server-*: the servers to measure, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Target::Embedded, Target::Zk])]
    server_targets: Vec<Target>,
    /// server-*: rounds; each server is measured once per round, the order alternating.
    #[arg(long, default_value_t = 3)]
    server_rounds: usize,
    /// server-*: the anchors' zk.sh. When given, server-startup times `zk.sh start nosync`,
    /// and server-rss and server-idle restart ZooKeeper before each of its rounds; ZooKeeper
    /// is left running. Without it, the running ZooKeeper is used as it is.
    #[arg(long)]
    zk_sh: Option<PathBuf>,
    /// server-*: ZooKeeper's pid file (written by zk.sh), for its CPU and memory.
    #[arg(long, default_value = "/tmp/anchor-zk/zk.pid")]
    zk_pid_file: PathBuf,
    /// server-startup: measured starts of the corral-server binary.
    #[arg(long, default_value_t = 20)]
    startup_runs: usize,
    /// server-startup: measured starts of ZooKeeper (needs --zk-sh).
    #[arg(long, default_value_t = 3)]
    zk_startup_runs: usize,
    /// server-rss: parent znodes.
    #[arg(long, default_value_t = 100)]
    rss_parents: usize,
    /// server-rss: children per parent.
    #[arg(long, default_value_t = 1_000)]
    rss_children: usize,
    /// server-rss: data size of every child, bytes.
    #[arg(long, default_value_t = 100)]
    rss_data_size: usize,
    /// server-idle: sessions opened.
    #[arg(long, default_value_t = 10_000)]
    idle_sessions: usize,
    /// server-idle: requested session timeouts, ms, comma-separated; each is measured (pings
    /// every third of the negotiated timeout). The first one gives the headline metric.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000, 30_000])]
    idle_timeout_ms: Vec<u64>,
    /// server-idle: the measured window, s.
    #[arg(long, default_value_t = 20.0)]
    idle_window_secs: f64,
    /// server-idle: local source addresses 127.0.0.2, 127.0.0.3, ... the sessions are spread
    /// over (zk.sh allows 200 connections per client address).
    #[arg(long, default_value_t = 64)]
    idle_source_ips: u8,
    /// server-ops: also measure sequential latency with the server and the client pinned to
    /// this one CPU (`taskset`), each round, after the unpinned measurement. On a small VM an
    /// idle vCPU's wake-up costs tens of µs and dominates a loopback round trip; on one CPU
    /// both servers pay only their own work.
    #[arg(long)]
    pin_cpu: Option<usize>,
}

/// A server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub(crate) enum Target {
    /// The `corral-server` binary, started by the benchmark.
    Embedded,
    /// The ZooKeeper 3.8 at `--zk`.
    Zk,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Embedded => "embedded",
            Target::Zk => "zk",
        }
    }
}

impl ServerArgs {
    /// The targets in the order of `round` (1-based): the first round as given, then alternating.
    fn order(&self, round: usize) -> Vec<Target> {
        let mut targets: Vec<Target> = Vec::new();
        for t in &self.server_targets {
            if !targets.contains(t) {
                targets.push(*t);
            }
        }
        if round.is_multiple_of(2) {
            targets.reverse();
        }
        targets
    }

    fn wants(&self, target: Target) -> bool {
        self.server_targets.contains(&target)
    }

    fn rounds(&self) -> usize {
        self.server_rounds.max(1)
    }

    fn bin(&self) -> Result<PathBuf, String> {
        let bin = match &self.server_bin {
            Some(path) => path.clone(),
            None => std::env::current_exe()
                .map_err(|e| format!("cannot locate this executable: {e}"))?
                .with_file_name("corral-server"),
        };
        if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!(
                "{} not found: build it with `cargo build --release -p corral-server` or pass --server-bin",
                bin.display()
            ))
        }
    }

    fn zk_pid(&self) -> Result<u32, String> {
        let text = std::fs::read_to_string(&self.zk_pid_file)
            .map_err(|e| format!("ZooKeeper's pid file {}: {e}", self.zk_pid_file.display()))?;
        text.trim().parse().map_err(|e| format!("ZooKeeper's pid file {}: {e}", self.zk_pid_file.display()))
    }

    /// `zk.sh ARGS`, returning its standard output.
    fn zk_sh(&self, args: &[&str]) -> Result<String, String> {
        let script = self.zk_sh.as_ref().ok_or("--zk-sh is needed")?;
        let out = Command::new(script).args(args).stdin(Stdio::null()).output().map_err(|e| format!("zk.sh: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "zk.sh {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Restarts ZooKeeper with forceSync=no if `--zk-sh` was given.
    fn zk_restart(&self) -> Result<bool, String> {
        if self.zk_sh.is_none() {
            return Ok(false);
        }
        self.zk_sh(&["stop"])?;
        let out = self.zk_sh(&["start", "nosync"])?;
        note(format_args!("{}", out.trim()));
        Ok(true)
    }
}

fn err_other(e: impl std::fmt::Display) -> OpError {
    OpError::Other(e.to_string())
}
