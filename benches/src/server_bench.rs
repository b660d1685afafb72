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

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream as StdTcpStream, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use corral_proto::records::PathAndWatch;
use corral_proto::{
    ConnectRequest, ConnectResponse, ErrorCode, Jute as _, OpCode, ReplyHeader, RequestHeader, encode_frame, xid,
};
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

use crate::clients::{BenchClient as _, Corral, OpError, OpResult};
use crate::report::{Reporter, note, percentile};
use crate::server::first_host;
use crate::workloads::Config;

/// `/proc` CPU ticks per second (`USER_HZ`); 100 on every Linux we run on.
const CLK_TCK: f64 = 100.0;

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

// ------------------------------------------------------------------ /proc

/// The fields of `/proc/PID/stat` after the command name (`pid` may be `self`); index 0 is
/// the state (field 3), so utime is index 11.
fn proc_stat(pid: &str) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    Some(rest.split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect())
}

/// utime + stime of a process, in ticks.
fn process_ticks(pid: &str) -> Option<u64> {
    let f = proc_stat(pid)?;
    Some(f.get(10)? + f.get(11)?)
}

/// cutime + cstime of this process (its waited-for children), in ticks.
fn children_ticks() -> u64 {
    proc_stat("self").and_then(|f| Some(f.get(12)? + f.get(13)?)).unwrap_or(0)
}

/// (busy, total) ticks of the whole machine from `/proc/stat`, counted as run-all.sh does:
/// busy = user + nice + system + irq + softirq + steal, total = busy + idle + iowait.
fn machine_ticks() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let v: Vec<u64> = line.split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect();
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
    (busy, busy + get(3) + get(4))
}

/// A `VmRSS:`-style field of `/proc/PID/status`, in KiB.
fn vm_kb(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.get(key.len()..)?.split_whitespace().next()?.parse().ok()
}

/// The first three fields of `/proc/loadavg`.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// CPU counters at one instant.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    at: Instant,
    server: Option<u64>,
    server_sys: Option<u64>,
    own: u64,
    children: u64,
    busy: u64,
    total: u64,
}

impl Snapshot {
    fn take(server: Option<u32>) -> Self {
        let (busy, total) = machine_ticks();
        Self {
            at: Instant::now(),
            server: server.and_then(|pid| process_ticks(&pid.to_string())),
            server_sys: server.and_then(|pid| proc_stat(&pid.to_string())?.get(11).copied()),
            own: process_ticks("self").unwrap_or(0),
            children: children_ticks(),
            busy,
            total,
        }
    }
}

/// CPU used between two snapshots, in cores.
#[derive(Debug, Clone, Copy)]
struct Usage {
    wall: f64,
    server: f64,
    /// The server's system (kernel) time, included in `server`.
    server_sys: f64,
    client: f64,
    other: f64,
    busy_pct: f64,
}

impl Usage {
    fn between(a: &Snapshot, b: &Snapshot) -> Self {
        let wall = (b.at - a.at).as_secs_f64().max(1e-9);
        let cores = |ticks: u64| ticks as f64 / CLK_TCK / wall;
        let server = cores(b.server.unwrap_or(0).saturating_sub(a.server.unwrap_or(0)));
        let client = cores(b.own.saturating_sub(a.own) + b.children.saturating_sub(a.children));
        let busy = cores(b.busy.saturating_sub(a.busy));
        let total = b.total.saturating_sub(a.total).max(1) as f64;
        Self {
            wall,
            server,
            server_sys: cores(b.server_sys.unwrap_or(0).saturating_sub(a.server_sys.unwrap_or(0))),
            client,
            other: (busy - server - client).max(0.0),
            busy_pct: 100.0 * b.busy.saturating_sub(a.busy) as f64 / total,
        }
    }

    fn describe(&self) -> String {
        format!(
            "wall={:.1}s server_cpu={:.2} cores client_cpu={:.2} cores other_cpu={:.2} cores machine_busy={:.0}% loadavg={}",
            self.wall,
            self.server,
            self.client,
            self.other,
            self.busy_pct,
            loadavg()
        )
    }
}

// ------------------------------------------------------------------ the corral-server process

/// A free TCP port on 127.0.0.1 (bound, then released).
fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| format!("no free port: {e}"))
}

/// A `corral-server` process started by a benchmark; killed (by its pid) and reaped on drop.
#[derive(Debug)]
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    /// When it was spawned.
    started: Instant,
    /// Its stdout lines, with the time each was read.
    lines: mpsc::Receiver<(Instant, String)>,
}

impl ServerProcess {
    /// Spawns `bin --port P` on a free port. Returns at once, before it listens.
    fn spawn(bin: &Path) -> Result<Self, String> {
        let port = free_port()?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let started = Instant::now();
        let mut child = Command::new(bin)
            .arg("--port")
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send((Instant::now(), line));
            }
        });
        Ok(Self { child, addr, started, lines })
    }

    /// Spawns the server and waits for its `listening on` line.
    fn start(bin: &Path) -> Result<Self, String> {
        let mut server = Self::spawn(bin)?;
        server.wait_listening(Duration::from_secs(10))?;
        Ok(server)
    }

    /// Waits for the `listening on ADDR` line; returns exec → line.
    fn wait_listening(&mut self, limit: Duration) -> Result<Duration, String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) if line.starts_with("listening on") => {
                    if !line.ends_with(&self.addr.to_string()) {
                        return Err(format!("corral-server says {line:?}, expected {}", self.addr));
                    }
                    return Ok(at - self.started);
                }
                Ok(_) => {}
                Err(_) => {
                    let status = self.child.try_wait().ok().flatten();
                    return Err(format!("corral-server printed no `listening on` line (exit status {status:?})"));
                }
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server's address and pid for a target; starts the embedded one.
fn target_server(
    target: Target,
    cfg: &Config,
    sa: &ServerArgs,
) -> Result<(Option<ServerProcess>, String, u32), String> {
    match target {
        Target::Embedded => {
            let server = ServerProcess::start(&sa.bin()?)?;
            let (addr, pid) = (server.addr.to_string(), server.pid());
            Ok((Some(server), addr, pid))
        }
        Target::Zk => Ok((None, first_host(&cfg.zk).to_owned(), sa.zk_pid()?)),
    }
}

// ------------------------------------------------------------------ raw protocol

/// A framed ConnectRequest for a new session.
fn connect_frame(timeout_ms: i32) -> Bytes {
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout: timeout_ms,
        session_id: 0,
        passwd: Bytes::from_static(&[0; 16]),
        read_only: Some(false),
    };
    let mut buf = BytesMut::new();
    encode_frame(&mut buf, |b| req.write(b));
    buf.freeze()
}

/// A framed request with a header and no body (ping, closeSession).
fn header_frame(xid: i32, op: OpCode) -> Bytes {
    let mut buf = BytesMut::new();
    encode_frame(&mut buf, |b| RequestHeader { xid, op }.write(b));
    buf.freeze()
}

/// One frame's payload, from a blocking stream.
fn read_frame_blocking(s: &mut StdTcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = usize::try_from(i32::from_be_bytes(len))
        .ok()
        .filter(|&n| n <= 1 << 20)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad frame length"))?;
    let mut body = vec![0; len];
    s.read_exact(&mut body)?;
    Ok(body)
}

/// Connects, opens a session, checks the answer grants it, then closes the session. `wait`
/// bounds the connect and each read.
fn handshake_blocking(addr: &SocketAddr, wait: Duration) -> Result<(), String> {
    let mut s = StdTcpStream::connect_timeout(addr, wait).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(wait)).map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    s.write_all(&connect_frame(10_000)).map_err(|e| e.to_string())?;
    let body = read_frame_blocking(&mut s).map_err(|e| e.to_string())?;
    let resp = ConnectResponse::read(&mut &body[..]).map_err(|e| e.to_string())?;
    if resp.timeout <= 0 || resp.session_id == 0 {
        return Err("session refused".to_owned());
    }
    // Not timed: close the session so that ZooKeeper does not keep it until it expires.
    if s.write_all(&header_frame(1, OpCode::CloseSession)).is_ok() {
        let _ = read_frame_blocking(&mut s);
    }
    Ok(())
}

/// A four-letter word, blocking; `wait` bounds the connect and each read.
fn four_letter_word_blocking(addr: &SocketAddr, word: &str, wait: Duration) -> std::io::Result<String> {
    let mut s = StdTcpStream::connect_timeout(addr, wait)?;
    s.set_read_timeout(Some(wait))?;
    s.write_all(word.as_bytes())?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

// ------------------------------------------------------------------ statistics and output

/// The median (the mean of the middle two for an even count); `None` when empty.
fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// `[min–max]` of a series, for the notes.
fn spread(values: &[f64], decimals: usize) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("[{min:.decimals$}–{max:.decimals$}] over {}", values.len())
}

/// Per-target series of named values, collected over the rounds.
#[derive(Debug, Default)]
struct Series(BTreeMap<(Target, String), Vec<f64>>);

impl Series {
    fn push(&mut self, target: Target, key: &str, value: f64) {
        self.0.entry((target, key.to_owned())).or_default().push(value);
    }

    fn get(&self, target: Target, key: &str) -> &[f64] {
        self.0.get(&(target, key.to_owned())).map_or(&[], Vec::as_slice)
    }

    fn median(&self, target: Target, key: &str) -> Option<f64> {
        median(self.get(target, key))
    }

    /// Prints `server_<target>_<name>` = the median of `key`, with its spread as a note.
    fn out(&self, r: &Reporter, target: Target, key: &str, name: &str, decimals: usize, unit: &str) -> Option<f64> {
        let values = self.get(target, key);
        let m = median(values)?;
        r.out(&format!("server_{}_{name}", target.name()), format!("{m:.decimals$}"), unit);
        if values.len() > 1 {
            note(format_args!("server_{}_{name} {}", target.name(), spread(values, decimals)));
        }
        Some(m)
    }

    /// Prints `metric` = embedded median ÷ ZooKeeper median, when both exist.
    fn ratio(&self, r: &Reporter, key: &str, metric: &str) -> Option<f64> {
        let e = self.median(Target::Embedded, key)?;
        let z = self.median(Target::Zk, key)?;
        (z != 0.0).then(|| {
            let ratio = e / z;
            let decimals = if ratio.abs() >= 0.1 { 2 } else { 4 };
            r.out(metric, format!("{ratio:.decimals$}"), "x");
            ratio
        })
    }
}

// ------------------------------------------------------------------ server-ops

/// The workload flags for a child process, from this process's configuration.
fn workload_args(cfg: &Config, zk: &str, bench: &str) -> Vec<String> {
    let s = |d: Duration| format!("{}", d.as_secs_f64());
    [
        ("--zk", zk.to_owned()),
        ("--session-timeout-ms", cfg.session_timeout.as_millis().to_string()),
        ("--data-size", cfg.data_size.to_string()),
        ("--get-warmup", cfg.get_warmup.to_string()),
        ("--gets", cfg.gets.to_string()),
        ("--get-secs", s(cfg.get_limit)),
        ("--pair-warmup", cfg.pair_warmup.to_string()),
        ("--pairs", cfg.pairs.to_string()),
        ("--pair-secs", s(cfg.pair_limit)),
        ("--outstanding", cfg.outstanding.to_string()),
        ("--nodes", cfg.nodes.to_string()),
        ("--warmup-secs", s(cfg.tp_warmup)),
        ("--window-secs", s(cfg.tp_window)),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_owned(), value])
    .chain(std::iter::once(bench.to_owned()))
    .collect()
}

/// Runs this binary with `args` and returns its `metric=value` lines, and the CPU used
/// meanwhile (the server's from `server_pid`).
fn run_child(args: &[String], server_pid: u32) -> Result<(BTreeMap<String, f64>, Usage), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate this executable: {e}"))?;
    let before = Snapshot::take(Some(server_pid));
    let out = Command::new(exe).args(args).stdin(Stdio::null()).output().map_err(|e| format!("child: {e}"))?;
    let after = Snapshot::take(Some(server_pid));
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "child `corral-bench {}` failed ({}): {}{}",
            args.join(" "),
            out.status,
            stdout.lines().rev().take(5).collect::<Vec<_>>().join(" | "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let metrics = stdout
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once('=')?;
            let value = rest.split_whitespace().next()?.parse().ok()?;
            Some((name.to_owned(), value))
        })
        .collect();
    Ok((metrics, Usage::between(&before, &after)))
}

/// The metrics of the latency and throughput workloads kept per round: (child's name, our
/// name, decimals, unit).
const OPS_METRICS: &[(&str, &str, usize, &str)] = &[
    ("raw_get_p50", "get_p50", 1, "us"),
    ("raw_get_p99", "get_p99", 1, "us"),
    ("raw_create_p50", "create_p50", 1, "us"),
    ("raw_delete_p50", "delete_p50", 1, "us"),
    ("raw_create_delete_p50", "create_delete_p50", 1, "us"),
    ("raw_async_set_ops", "async_set_ops", 0, "ops/s"),
    ("raw_async_get_ops", "async_get_ops", 0, "ops/s"),
    ("raw_async_set_errors", "async_set_errors", 0, "count"),
    ("raw_async_get_errors", "async_get_errors", 0, "count"),
    ("raw_async_set_client_cpu", "async_set_client_cpu", 1, "us/op"),
    ("raw_async_get_client_cpu", "async_get_client_cpu", 1, "us/op"),
    ("tp_server_cores", "throughput_server_cores", 2, "cores"),
    ("tp_client_cores", "throughput_client_cores", 2, "cores"),
    ("tp_other_cores", "throughput_other_cores", 2, "cores"),
    ("lat_server_cores", "latency_server_cores", 2, "cores"),
    ("rawclient_get_p50", "rawclient_get_p50", 1, "us"),
    ("rawclient_get_p99", "rawclient_get_p99", 1, "us"),
];

/// Sequential `getData /zookeeper` with a minimal blocking client (one thread, one socket, no
/// runtime): the server's share of the latency, without Corral's tasks. Returns (p50, p99) in
/// µs (nearest rank) of the measured requests, after `warmup` unmeasured ones.
fn raw_client_latency(addr: &str, warmup: usize, gets: usize, limit: Duration) -> Result<(f64, f64), String> {
    let addr: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let fail = |e: std::io::Error| format!("raw client: {e}");
    let mut s = StdTcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(fail)?;
    s.set_nodelay(true).map_err(fail)?;
    s.set_read_timeout(Some(Duration::from_secs(5))).map_err(fail)?;
    s.write_all(&connect_frame(30_000)).map_err(fail)?;
    let body = read_frame_blocking(&mut s).map_err(fail)?;
    let resp = ConnectResponse::read(&mut &body[..]).map_err(|e| e.to_string())?;
    if resp.timeout <= 0 {
        return Err("raw client: session refused".to_owned());
    }
    let request = {
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, |b| {
            RequestHeader { xid: 1, op: OpCode::GetData }.write(b);
            PathAndWatch { path: "/zookeeper".to_owned(), watch: false }.write(b);
        });
        buf.freeze()
    };
    let mut lat = Vec::with_capacity(gets);
    let deadline = Instant::now() + limit;
    for i in 0..warmup + gets.max(1) {
        if i >= warmup && Instant::now() >= deadline {
            break;
        }
        let t = Instant::now();
        s.write_all(&request).map_err(fail)?;
        let reply = read_frame_blocking(&mut s).map_err(fail)?;
        let elapsed = t.elapsed();
        let header = ReplyHeader::read(&mut &reply[..]).map_err(|e| e.to_string())?;
        if header.err != ErrorCode::Ok {
            return Err(format!("raw client: getData /zookeeper answered {:?}", header.err));
        }
        if i >= warmup {
            lat.push(elapsed.as_secs_f64() * 1e6);
        }
    }
    if s.write_all(&header_frame(2, OpCode::CloseSession)).is_ok() {
        let _ = read_frame_blocking(&mut s);
    }
    lat.sort_by(f64::total_cmp);
    let p = |q: f64| percentile(&lat, q).unwrap_or(f64::NAN);
    Ok((p(50.0), p(99.0)))
}

/// `server-ops`: sequential latency and pipelined throughput against both servers.
pub(crate) async fn ops(cfg: &Config, sa: &ServerArgs) -> OpResult {
    let (cfg, sa) = (cfg.clone(), sa.clone());
    tokio::task::spawn_blocking(move || ops_blocking(&cfg, &sa)).await.map_err(err_other)?.map_err(err_other)
}

fn ops_blocking(cfg: &Config, sa: &ServerArgs) -> Result<(), String> {
    let r = Reporter::new("");
    if sa.wants(Target::Zk) {
        // ZooKeeper's JIT: an unmeasured pass first, as run-compare.sh does with Curator's warm-up.
        let zk = first_host(&cfg.zk);
        let mut warm = workload_args(cfg, zk, "throughput");
        warm.extend(["latency".to_owned()]);
        for (flag, value) in [("--warmup-secs", "2"), ("--window-secs", "3"), ("--gets", "5000"), ("--pairs", "500")] {
            if let Some(i) = warm.iter().position(|a| a == flag) {
                warm[i + 1] = value.to_owned();
            }
        }
        let (_, usage) = run_child(&warm, sa.zk_pid()?)?;
        note(format_args!("server-ops: ZooKeeper warm-up pass done ({})", usage.describe()));
    }
    let mut series = Series::default();
    for round in 1..=sa.rounds() {
        for target in sa.order(round) {
            let (server, addr, pid) = target_server(target, cfg, sa)?;
            for bench in ["latency", "throughput"] {
                let (metrics, usage) = run_child(&workload_args(cfg, &addr, bench), pid)?;
                let prefix = if bench == "latency" { "lat" } else { "tp" };
                series.push(target, &format!("{prefix}_server_cores"), usage.server);
                series.push(target, &format!("{prefix}_client_cores"), usage.client);
                series.push(target, &format!("{prefix}_other_cores"), usage.other);
                let mut shown = Vec::new();
                for (key, value) in &metrics {
                    if OPS_METRICS.iter().any(|(k, ..)| k == key) {
                        series.push(target, key, *value);
                        shown.push(format!("{key}={value}"));
                    }
                }
                note(format_args!(
                    "[server-ops r{round} {} {bench}] {} | {}",
                    target.name(),
                    shown.join(" "),
                    usage.describe()
                ));
            }
            // The server alone: the same sequential getData with a minimal blocking client.
            let (p50, p99) = raw_client_latency(&addr, cfg.get_warmup, cfg.gets, cfg.get_limit)?;
            series.push(target, "rawclient_get_p50", p50);
            series.push(target, "rawclient_get_p99", p99);
            note(format_args!(
                "[server-ops r{round} {} raw client] getData /zookeeper p50 {p50:.1} us, p99 {p99:.1} us | loadavg {}",
                target.name(),
                loadavg()
            ));
            if let Some(cpu) = sa.pin_cpu {
                let (p50, p99) = pinned_latency(cfg, &addr, pid, cpu)?;
                series.push(target, "pinned_get_p50", p50);
                series.push(target, "pinned_get_p99", p99);
                note(format_args!(
                    "[server-ops r{round} {} pinned to cpu {cpu}] raw_get_p50={p50} raw_get_p99={p99}",
                    target.name()
                ));
            }
            drop(server);
        }
    }
    for target in sa.order(1) {
        for (key, name, decimals, unit) in OPS_METRICS {
            series.out(&r, target, key, name, *decimals, unit);
        }
    }
    series.ratio(&r, "raw_async_get_ops", "server_get_ops_ratio");
    series.ratio(&r, "raw_async_set_ops", "server_set_ops_ratio");
    series.ratio(&r, "raw_get_p50", "server_get_p50_ratio");
    series.ratio(&r, "raw_create_delete_p50", "server_create_delete_p50_ratio");
    series.ratio(&r, "rawclient_get_p50", "server_rawclient_get_p50_ratio");
    if sa.pin_cpu.is_some() {
        for target in sa.order(1) {
            series.out(&r, target, "pinned_get_p50", "pinned_get_p50", 1, "us");
            series.out(&r, target, "pinned_get_p99", "pinned_get_p99", 1, "us");
        }
        series.ratio(&r, "pinned_get_p50", "server_pinned_get_p50_ratio");
    }
    Ok(())
}

/// Runs `taskset` with `args`.
fn taskset(args: &[&str]) -> Result<(), String> {
    let status = Command::new("taskset")
        .args(args)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("taskset: {e} (util-linux)"))?;
    if status.success() { Ok(()) } else { Err(format!("taskset {}: {status}", args.join(" "))) }
}

/// The latency child with the server (every thread of `pid`) and the child pinned to `cpu`;
/// the server's affinity is given back afterwards. Returns the child's (`raw_get_p50`,
/// `raw_get_p99`) in µs.
fn pinned_latency(cfg: &Config, addr: &str, pid: u32, cpu: usize) -> Result<(f64, f64), String> {
    let all = format!("0-{}", std::thread::available_parallelism().map_or(1, |n| n.get()).saturating_sub(1));
    let pid_text = pid.to_string();
    let cpu_text = cpu.to_string();
    taskset(&["-a", "-p", "-c", &cpu_text, &pid_text])?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate this executable: {e}"))?;
    let mut args = vec!["-c".to_owned(), cpu_text.clone(), exe.display().to_string()];
    args.extend(workload_args(cfg, addr, "latency"));
    let out = Command::new("taskset").args(&args).stdin(Stdio::null()).output();
    let restored = taskset(&["-a", "-p", "-c", &all, &pid_text]);
    let out = out.map_err(|e| format!("pinned child: {e}"))?;
    restored?;
    if !out.status.success() {
        return Err(format!("pinned latency child failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let metric = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('=')?.split_whitespace().next()?.parse::<f64>().ok())
            .ok_or_else(|| format!("pinned child printed no {name}"))
    };
    Ok((metric("raw_get_p50")?, metric("raw_get_p99")?))
}

// ------------------------------------------------------------------ server-startup

/// When each readiness probe first succeeded, from exec.
#[derive(Debug, Default, Clone, Copy)]
struct Probes {
    connect: Option<Duration>,
    handshake: Option<Duration>,
    ruok: Option<Duration>,
    srvr_mode: Option<Duration>,
}

impl Probes {
    fn done(&self) -> bool {
        self.connect.is_some() && self.handshake.is_some() && self.ruok.is_some() && self.srvr_mode.is_some()
    }
}

/// Probes `addr` from four threads at once, each retrying (after `pause`) until its check has
/// succeeded once or `limit` has passed: a TCP connect, a session handshake, `ruok` → `imok`,
/// and `srvr` with a `Mode:` line. Until `srvr` has reported a mode, each attempt waits at most
/// 25 ms for its answer, so that a server that accepts connections but does not answer yet
/// (ZooKeeper while it loads) holds back neither the other probes nor the next attempt; after
/// that the handshake may take up to 2 s (a cold JVM's first session). `also` is called on
/// this thread every `pause` meanwhile (it may record times of its own).
fn probe_until_serving(
    addr: &SocketAddr,
    t0: Instant,
    limit: Duration,
    pause: Duration,
    mut also: impl FnMut(),
) -> Probes {
    let deadline = t0 + limit;
    let short = Duration::from_millis(25);
    let serving = AtomicBool::new(false);
    let probe = |check: &dyn Fn() -> bool| {
        while Instant::now() < deadline {
            if check() {
                return Some(t0.elapsed());
            }
            std::thread::sleep(pause);
        }
        None
    };
    std::thread::scope(|scope| {
        let connect = scope.spawn(|| probe(&|| StdTcpStream::connect_timeout(addr, short).is_ok()));
        let handshake = scope.spawn(|| {
            probe(&|| {
                let wait = if serving.load(Ordering::Relaxed) { Duration::from_secs(2) } else { short };
                handshake_blocking(addr, wait).is_ok()
            })
        });
        let ruok = scope.spawn(|| probe(&|| four_letter_word_blocking(addr, "ruok", short).is_ok_and(|a| a == "imok")));
        let srvr = scope.spawn(|| {
            let at = probe(&|| four_letter_word_blocking(addr, "srvr", short).is_ok_and(|a| a.contains("\nMode: ")));
            serving.store(true, Ordering::Relaxed);
            at
        });
        while ![&connect, &handshake, &ruok, &srvr].iter().all(|h| h.is_finished()) {
            also();
            std::thread::sleep(pause);
        }
        also();
        Probes {
            connect: connect.join().ok().flatten(),
            handshake: handshake.join().ok().flatten(),
            ruok: ruok.join().ok().flatten(),
            srvr_mode: srvr.join().ok().flatten(),
        }
    })
}

fn ms(d: Option<Duration>) -> f64 {
    d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

/// `server-startup`: exec → accepting, for the binary and (with `--zk-sh`) for ZooKeeper.
pub(crate) async fn startup(cfg: &Config, sa: &ServerArgs) -> OpResult {
    let (cfg, sa) = (cfg.clone(), sa.clone());
    tokio::task::spawn_blocking(move || startup_blocking(&cfg, &sa)).await.map_err(err_other)?.map_err(err_other)
}

fn startup_blocking(cfg: &Config, sa: &ServerArgs) -> Result<(), String> {
    let r = Reporter::new("");
    let mut series = Series::default();
    if sa.wants(Target::Embedded) {
        let bin = sa.bin()?;
        // One unmeasured start, so that the binary is in the page cache like the rest.
        drop(ServerProcess::start(&bin)?);
        for run in 1..=sa.startup_runs.max(1) {
            let mut server = ServerProcess::spawn(&bin)?;
            let (addr, t0) = (server.addr, server.started);
            let mut listening = None;
            let p = probe_until_serving(&addr, t0, Duration::from_secs(10), Duration::from_micros(100), || {
                while let Ok((at, line)) = server.lines.try_recv() {
                    if line.starts_with("listening on") && listening.is_none() {
                        listening = Some(at - t0);
                    }
                }
            });
            if listening.is_none() {
                listening = server.wait_listening(Duration::from_secs(1)).ok();
            }
            drop(server);
            let t = Target::Embedded;
            for (key, value) in [
                ("listening", listening),
                ("connect", p.connect),
                ("handshake", p.handshake),
                ("ruok", p.ruok),
                ("srvr_mode", p.srvr_mode),
            ] {
                series.push(t, key, ms(value));
            }
            if run <= 3 || !p.done() {
                note(format_args!(
                    "[server-startup embedded run {run}] exec→listening line {:.2} ms, connect {:.2}, handshake {:.2}, ruok {:.2}, srvr {:.2}",
                    ms(listening),
                    ms(p.connect),
                    ms(p.handshake),
                    ms(p.ruok),
                    ms(p.srvr_mode)
                ));
            }
        }
    }
    if sa.wants(Target::Zk) {
        match &sa.zk_sh {
            None => note("server-startup: ZooKeeper skipped (needs --zk-sh)"),
            Some(script) => {
                let addr = first_host(&cfg.zk)
                    .to_socket_addrs()
                    .map_err(|e| format!("{}: {e}", cfg.zk))?
                    .next()
                    .ok_or("no address for --zk")?;
                for run in 1..=sa.zk_startup_runs.max(1) {
                    sa.zk_sh(&["stop"])?;
                    let t0 = Instant::now();
                    let mut child = Command::new(script)
                        .args(["start", "nosync"])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .map_err(|e| format!("zk.sh start: {e}"))?;
                    let mut script_done = None;
                    let p = probe_until_serving(&addr, t0, Duration::from_secs(30), Duration::from_millis(1), || {
                        if script_done.is_none() && child.try_wait().ok().flatten().is_some() {
                            script_done = Some(t0.elapsed());
                        }
                    });
                    let status = child.wait().map_err(|e| format!("zk.sh start: {e}"))?;
                    if !status.success() {
                        return Err(format!("zk.sh start nosync failed: {status}"));
                    }
                    let script_done = script_done.or_else(|| Some(t0.elapsed()));
                    let t = Target::Zk;
                    for (key, value) in [
                        ("script", script_done),
                        ("connect", p.connect),
                        ("handshake", p.handshake),
                        ("ruok", p.ruok),
                        ("srvr_mode", p.srvr_mode),
                    ] {
                        series.push(t, key, ms(value));
                    }
                    note(format_args!(
                        "[server-startup zk run {run}] exec of `zk.sh start nosync` → connect {:.1} ms, ruok {:.1}, srvr with Mode {:.1}, handshake {:.1}, zk.sh returned {:.1}",
                        ms(p.connect),
                        ms(p.ruok),
                        ms(p.srvr_mode),
                        ms(p.handshake),
                        ms(script_done)
                    ));
                }
                note("server-startup: ZooKeeper left running (nosync)");
            }
        }
    }
    let names = [
        ("listening", "exec_to_listening_ms"),
        ("script", "exec_to_script_done_ms"),
        ("connect", "exec_to_connect_ms"),
        ("handshake", "exec_to_handshake_ms"),
        ("ruok", "exec_to_ruok_ms"),
        ("srvr_mode", "exec_to_srvr_mode_ms"),
    ];
    for target in [Target::Embedded, Target::Zk] {
        for (key, name) in names {
            series.out(&r, target, key, name, 2, "ms");
        }
    }
    if let Some(m) = series.median(Target::Embedded, "handshake") {
        r.out("server_start_to_accepting_ms", format!("{m:.2}"), "ms");
        let max = series.get(Target::Embedded, "handshake").iter().copied().fold(f64::NAN, f64::max);
        r.out("server_start_to_accepting_max_ms", format!("{max:.2}"), "ms");
    }
    series.ratio(&r, "handshake", "server_start_to_accepting_ratio");
    Ok(())
}

// ------------------------------------------------------------------ server-rss

/// A request of the memory benchmark.
#[derive(Debug, Clone, Copy)]
enum PathOp<'a> {
    /// Create a persistent node with this data.
    Create(&'a Bytes),
    /// Delete the node, any version.
    Delete,
}

/// Applies `op` to every path with at most `window` requests in flight (each request is
/// queued when its future is created); returns (completed, failed, first error).
async fn pipeline(c: &Corral, paths: &[String], op: PathOp<'_>, window: usize) -> (u64, u64, Option<OpError>) {
    let mut in_flight = FuturesUnordered::new();
    let (mut done, mut failed, mut first) = (0u64, 0u64, None);
    let mut next = paths.iter();
    loop {
        while in_flight.len() < window.max(1) {
            let Some(path) = next.next() else { break };
            let request: futures::future::BoxFuture<'_, OpResult> = match op {
                PathOp::Create(data) => Box::pin(c.create(path, data)),
                PathOp::Delete => Box::pin(c.delete(path)),
            };
            in_flight.push(request);
        }
        let Some(result) = in_flight.next().await else {
            return (done, failed, first);
        };
        done += 1;
        if let Err(e) = result {
            failed += 1;
            first.get_or_insert(e);
        }
    }
}

/// One server's memory with `parents × children` znodes.
#[derive(Debug)]
struct RssRound {
    empty_kb: u64,
    full_kb: u64,
    hwm_kb: u64,
    create_rate: f64,
}

async fn rss_round(target: Target, cfg: &Config, sa: &ServerArgs) -> Result<RssRound, String> {
    if target == Target::Zk {
        sa.zk_restart()?;
    }
    let (server, addr, pid) = target_server(target, cfg, sa)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let empty_kb = vm_kb(pid, "VmRSS:").ok_or("no VmRSS")?;
    let c = Corral::connect(&addr, Duration::from_secs(30)).await.map_err(|e| e.to_string())?;
    let root = "/server-rss";
    let data = Bytes::from(vec![b'x'; sa.rss_data_size]);
    let empty = Bytes::new();
    let parents: Vec<String> = (0..sa.rss_parents).map(|p| format!("{root}/p{p}")).collect();
    for path in std::iter::once(&root.to_owned()).chain(&parents) {
        match c.create(path, &empty).await {
            Ok(()) | Err(OpError::NodeExists) => {}
            Err(e) => return Err(format!("create {path}: {e}")),
        }
    }
    let children: Vec<String> =
        parents.iter().flat_map(|p| (0..sa.rss_children).map(move |i| format!("{p}/c{i:04}"))).collect();
    let t = Instant::now();
    let (done, failed, first) = pipeline(&c, &children, PathOp::Create(&data), 1_000).await;
    let create_rate = done as f64 / t.elapsed().as_secs_f64();
    if failed > 0 {
        return Err(format!("{failed} of {done} creates failed, first: {first:?}"));
    }
    let mut count = 0;
    for p in &parents {
        count += c.children(p).await.map_err(|e| format!("list {p}: {e}"))?.len();
    }
    if count != children.len() {
        return Err(format!("{count} children listed, {} created", children.len()));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let full_kb = vm_kb(pid, "VmRSS:").ok_or("no VmRSS")?;
    let hwm_kb = vm_kb(pid, "VmHWM:").unwrap_or(0);
    if target == Target::Zk {
        // Context: the JVM heap as G1 sees it, then after a full GC (the live set); the RSS
        // above was read before either.
        for command in [&["GC.heap_info"][..], &["GC.run"], &["GC.heap_info"]] {
            let Ok(out) = Command::new("jcmd").arg(pid.to_string()).args(command).stdin(Stdio::null()).output() else {
                break;
            };
            if command == ["GC.heap_info"] {
                let text = String::from_utf8_lossy(&out.stdout);
                let heap: Vec<&str> = text.lines().filter(|l| l.contains("total") && l.contains("used")).collect();
                note(format_args!(
                    "[server-rss zk] jcmd GC.heap_info: {} (VmRSS now {:.1} MiB)",
                    heap.join(" | ").split_whitespace().collect::<Vec<_>>().join(" "),
                    vm_kb(pid, "VmRSS:").unwrap_or(0) as f64 / 1024.0
                ));
            }
        }
        // Leave ZooKeeper as it was.
        let (_, failed, first) = pipeline(&c, &children, PathOp::Delete, 1_000).await;
        if failed > 0 {
            note(format_args!("[server-rss zk] {failed} deletes failed, first: {first:?}"));
        }
        for path in parents.iter().rev().chain(std::iter::once(&root.to_owned())) {
            let _ = c.delete(path).await;
        }
    }
    c.close().await;
    drop(server);
    Ok(RssRound { empty_kb, full_kb, hwm_kb, create_rate })
}

/// `server-rss`: resident memory of each server with `parents × children` znodes.
pub(crate) async fn rss(cfg: &Config, sa: &ServerArgs) -> OpResult {
    let r = Reporter::new("");
    let n = sa.rss_parents * sa.rss_children;
    let label = if n.is_multiple_of(1000) { format!("{}k", n / 1000) } else { n.to_string() };
    let mut series = Series::default();
    for round in 1..=sa.rounds() {
        for target in sa.order(round) {
            let before = Snapshot::take(None);
            let x = rss_round(target, cfg, sa).await.map_err(err_other)?;
            let mb = |kb: u64| kb as f64 / 1024.0;
            series.push(target, "empty", mb(x.empty_kb));
            series.push(target, "full", mb(x.full_kb));
            series.push(target, "delta", mb(x.full_kb.saturating_sub(x.empty_kb)));
            series.push(target, "hwm", mb(x.hwm_kb));
            series.push(target, "create", x.create_rate);
            note(format_args!(
                "[server-rss r{round} {}] VmRSS empty {:.1} MiB, with {n} znodes of {} B {:.1} MiB (VmHWM {:.1}), creates {:.0}/s | loadavg {} machine_busy {:.0}%",
                target.name(),
                mb(x.empty_kb),
                sa.rss_data_size,
                mb(x.full_kb),
                mb(x.hwm_kb),
                x.create_rate,
                loadavg(),
                Usage::between(&before, &Snapshot::take(None)).busy_pct
            ));
        }
    }
    for target in sa.order(1) {
        series.out(&r, target, "empty", "rss_empty_mb", 1, "MiB");
        series.out(&r, target, "full", &format!("rss_{label}_znodes_mb"), 1, "MiB");
        series.out(&r, target, "delta", &format!("rss_{label}_znodes_delta_mb"), 1, "MiB");
        series.out(&r, target, "hwm", &format!("hwm_{label}_znodes_mb"), 1, "MiB");
        series.out(&r, target, "create", &format!("create_{label}_ops"), 0, "ops/s");
    }
    series.ratio(&r, "full", &format!("server_rss_{label}_znodes_ratio"));
    series.ratio(&r, "delta", &format!("server_rss_{label}_znodes_delta_ratio"));
    Ok(())
}

// ------------------------------------------------------------------ server-idle

/// Counters shared by the pinger tasks.
#[derive(Debug, Default)]
struct PingStats {
    sent: AtomicU64,
    answered: AtomicU64,
    /// Sessions whose connection failed, or whose ping was not answered within the interval.
    lost: AtomicU64,
}

/// Reads one reply header (and skips its body) from an async stream.
async fn read_reply(s: &mut TcpStream) -> std::io::Result<ReplyHeader> {
    let len = s.read_i32().await?;
    let len = usize::try_from(len)
        .ok()
        .filter(|&n| (16..=1 << 20).contains(&n))
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad frame length"))?;
    let mut body = vec![0; len];
    s.read_exact(&mut body).await?;
    ReplyHeader::read(&mut &body[..]).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
}

/// Connects from `source` and opens a session; returns the stream and the ping interval
/// (negotiated timeout ÷ 3).
async fn open_session(addr: SocketAddr, source: Ipv4Addr, timeout_ms: i32) -> std::io::Result<(TcpStream, Duration)> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let mut s = socket.connect(addr).await?;
    s.set_nodelay(true)?;
    s.write_all(&connect_frame(timeout_ms)).await?;
    let len = usize::try_from(s.read_i32().await?)
        .ok()
        .filter(|&n| n <= 1024)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad frame length"))?;
    let mut body = vec![0; len];
    s.read_exact(&mut body).await?;
    let resp = ConnectResponse::read(&mut &body[..])
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    if resp.timeout <= 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "session refused"));
    }
    Ok((s, Duration::from_millis(u64::try_from(resp.timeout).unwrap_or(0) / 3)))
}

/// One idle session: a ping every `interval`, until `stop`; then closeSession. The first ping
/// comes `phase` (0 ≤ phase < 1) of an interval after the handshake, so that sessions opened
/// together do not ping together (clients that connected at different times would not).
async fn pinger(mut s: TcpStream, interval: Duration, phase: f64, stop: Arc<AtomicBool>, stats: Arc<PingStats>) {
    let ping = header_frame(xid::PING, OpCode::Ping);
    let mut next = tokio::time::Instant::now() + interval.mul_f64(phase.clamp(0.0, 1.0));
    loop {
        tokio::time::sleep_until(next).await;
        if stop.load(Ordering::Relaxed) {
            if s.write_all(&header_frame(1, OpCode::CloseSession)).await.is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(5), read_reply(&mut s)).await;
            }
            return;
        }
        stats.sent.fetch_add(1, Ordering::Relaxed);
        let exchange = async {
            s.write_all(&ping).await?;
            loop {
                if read_reply(&mut s).await?.xid == xid::PING {
                    return Ok::<(), std::io::Error>(());
                }
            }
        };
        match tokio::time::timeout(interval, exchange).await {
            Ok(Ok(())) => stats.answered.fetch_add(1, Ordering::Relaxed),
            _ => {
                stats.lost.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        next += interval;
    }
}

/// One server's CPU with `n` idle sessions.
#[derive(Debug)]
struct IdleRound {
    usage: Usage,
    pings: u64,
    lost: u64,
    opened: usize,
    failed_opens: usize,
    rss_kb: u64,
    interval: Duration,
}

async fn idle_round(target: Target, cfg: &Config, sa: &ServerArgs, timeout_ms: u64) -> Result<IdleRound, String> {
    if target == Target::Zk {
        sa.zk_restart()?;
    }
    let (server, addr, pid) = target_server(target, cfg, sa)?;
    let addr: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let timeout_ms = i32::try_from(timeout_ms).map_err(|e| e.to_string())?;
    let ips = sa.idle_source_ips.clamp(1, 250);
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(PingStats::default());
    let opened_at = Instant::now();
    let mut opens = futures::stream::iter(0..sa.idle_sessions)
        .map(|i| {
            let source = Ipv4Addr::new(127, 0, 0, 2 + u8::try_from(i % usize::from(ips)).unwrap_or(0));
            let (stop, stats) = (Arc::clone(&stop), Arc::clone(&stats));
            async move {
                let (s, interval) = open_session(addr, source, timeout_ms).await?;
                // Low-discrepancy phases: i × the golden ratio, mod 1.
                let phase = (i as f64 * 0.618_033_988_749_895).fract();
                Ok::<_, std::io::Error>((tokio::spawn(pinger(s, interval, phase, stop, stats)), interval))
            }
        })
        .buffer_unordered(200);
    let (mut tasks, mut failed_opens, mut first_error, mut interval) = (Vec::new(), 0, None, Duration::ZERO);
    while let Some(result) = opens.next().await {
        match result {
            Ok((task, i)) => {
                tasks.push(task);
                interval = interval.max(i);
            }
            Err(e) => {
                failed_opens += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    drop(opens);
    note(format_args!(
        "[server-idle {}] {} sessions open in {:.1} s ({failed_opens} failed{}), pinging every {} ms",
        target.name(),
        tasks.len(),
        opened_at.elapsed().as_secs_f64(),
        first_error.map_or_else(String::new, |e| format!(", first: {e}")),
        interval.as_millis()
    ));
    // Steady state: every session has pinged at least once.
    tokio::time::sleep(interval + Duration::from_secs(1)).await;
    let window = Duration::try_from_secs_f64(sa.idle_window_secs).map_err(|e| e.to_string())?;
    let (answered0, lost0) = (stats.answered.load(Ordering::Relaxed), stats.lost.load(Ordering::Relaxed));
    let before = Snapshot::take(Some(pid));
    tokio::time::sleep(window).await;
    let after = Snapshot::take(Some(pid));
    let (answered1, lost1) = (stats.answered.load(Ordering::Relaxed), stats.lost.load(Ordering::Relaxed));
    let rss_kb = vm_kb(pid, "VmRSS:").unwrap_or(0);
    stop.store(true, Ordering::Relaxed);
    let opened = tasks.len();
    for task in tasks {
        let _ = task.await;
    }
    drop(server);
    Ok(IdleRound {
        usage: Usage::between(&before, &after),
        pings: answered1 - answered0,
        lost: lost1 - lost0,
        opened,
        failed_opens,
        rss_kb,
        interval,
    })
}

/// `server-idle`: CPU of each server with `--idle-sessions` sessions pinging at their normal
/// rate.
pub(crate) async fn idle(cfg: &Config, sa: &ServerArgs) -> OpResult {
    let r = Reporter::new("");
    let n = sa.idle_sessions;
    let label = if n.is_multiple_of(1000) { format!("{}k", n / 1000) } else { n.to_string() };
    let mut series = Series::default();
    for (t, &timeout_ms) in sa.idle_timeout_ms.iter().enumerate() {
        let secs = timeout_ms as f64 / 1e3;
        let tl = format!("t{secs}s");
        for round in 1..=sa.rounds() {
            for target in sa.order(round + t) {
                let x = idle_round(target, cfg, sa, timeout_ms).await.map_err(err_other)?;
                let pct = 100.0 * x.usage.server;
                let pings_per_s = x.pings as f64 / x.usage.wall;
                let us_per_ping =
                    if x.pings > 0 { x.usage.server * x.usage.wall * 1e6 / x.pings as f64 } else { f64::NAN };
                series.push(target, &format!("cpu_{tl}"), pct);
                series.push(target, &format!("sys_{tl}"), 100.0 * x.usage.server_sys);
                series.push(target, &format!("pings_{tl}"), pings_per_s);
                series.push(target, &format!("us_per_ping_{tl}"), us_per_ping);
                series.push(target, &format!("client_{tl}"), 100.0 * x.usage.client);
                series.push(target, &format!("rss_{tl}"), x.rss_kb as f64 / 1024.0);
                series.push(target, &format!("lost_{tl}"), (x.lost + x.failed_opens as u64) as f64);
                note(format_args!(
                    "[server-idle {tl} r{round} {}] {} sessions, ping every {} ms: server {pct:.2}% of a core ({:.2}% system), {pings_per_s:.0} pings/s answered, {us_per_ping:.1} us server CPU/ping, VmRSS {:.1} MiB, lost {} | {}",
                    target.name(),
                    x.opened,
                    x.interval.as_millis(),
                    100.0 * x.usage.server_sys,
                    x.rss_kb as f64 / 1024.0,
                    x.lost + x.failed_opens as u64,
                    x.usage.describe()
                ));
            }
        }
        for target in sa.order(1) {
            let name = |what: &str| format!("idle_{label}_{tl}_{what}");
            series.out(&r, target, &format!("cpu_{tl}"), &name("cpu_pct"), 2, "%");
            series.out(&r, target, &format!("sys_{tl}"), &name("system_cpu_pct"), 2, "%");
            series.out(&r, target, &format!("pings_{tl}"), &name("pings_per_s"), 0, "pings/s");
            series.out(&r, target, &format!("us_per_ping_{tl}"), &name("us_per_ping"), 1, "us/ping");
            series.out(&r, target, &format!("client_{tl}"), &name("client_cpu_pct"), 2, "%");
            series.out(&r, target, &format!("rss_{tl}"), &name("rss_mb"), 1, "MiB");
            series.out(&r, target, &format!("lost_{tl}"), &name("lost_sessions"), 0, "count");
        }
        if t == 0
            && let Some(m) = series.median(Target::Embedded, &format!("cpu_{tl}"))
        {
            r.out(&format!("server_idle_{label}_sessions_cpu_pct"), format!("{m:.2}"), "%");
        }
        series.ratio(&r, &format!("cpu_{tl}"), &format!("server_idle_{label}_{tl}_cpu_ratio"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[3.0, 1.0]), Some(2.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
    }

    #[test]
    fn frames() {
        // Ping: length 8, xid -2, op 11.
        assert_eq!(&header_frame(xid::PING, OpCode::Ping)[..], &[0, 0, 0, 8, 255, 255, 255, 254, 0, 0, 0, 11]);
        // ConnectRequest: 4 + 8 + 4 + 8 + (4 + 16) + 1 bytes.
        assert_eq!(connect_frame(10_000).len(), 4 + 45);
    }

    #[test]
    fn proc_readings() {
        if cfg!(target_os = "linux") {
            assert!(process_ticks("self").is_some());
            assert!(vm_kb(std::process::id(), "VmRSS:").is_some_and(|kb| kb > 0));
            assert!(machine_ticks().1 > 0);
        }
    }
}
