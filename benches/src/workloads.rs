//! The workloads, shaped like `CuratorAnchors.java`'s benchmarks a (`latency`),
//! b (`throughput`) and h (`startup`), generic over the client under test.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;

use crate::clients::{BenchClient, OpError, OpResult};
use crate::report::{Reporter, Unit, note};
use crate::server;

/// Workload sizes and durations; the defaults are the anchors' (see `main.rs` for the flags).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The connect string.
    pub(crate) zk: String,
    /// The root znode this client's benchmarks work under (deleted at the end of each).
    pub(crate) root: String,
    /// Requested session timeout.
    pub(crate) session_timeout: Duration,
    /// Data size of every znode written.
    pub(crate) data_size: usize,
    /// Sequential gets before the measured ones.
    pub(crate) get_warmup: usize,
    /// Measured sequential gets (at most).
    pub(crate) gets: usize,
    /// Time limit of the measured gets.
    pub(crate) get_limit: Duration,
    /// Create+delete pairs before the measured ones.
    pub(crate) pair_warmup: usize,
    /// Measured create+delete pairs (at most).
    pub(crate) pairs: usize,
    /// Time limit of the measured pairs.
    pub(crate) pair_limit: Duration,
    /// Requests in flight in the throughput benchmark.
    pub(crate) outstanding: usize,
    /// Znodes the throughput benchmark cycles over.
    pub(crate) nodes: usize,
    /// Unmeasured pass before each throughput window.
    pub(crate) tp_warmup: Duration,
    /// Measured throughput window.
    pub(crate) tp_window: Duration,
    /// Connects after the first one in the startup benchmark.
    pub(crate) warm_connects: usize,
    /// When `main` started (for `startup_main_to_connected`).
    pub(crate) main_started: Instant,
}

impl Config {
    fn data(&self) -> Bytes {
        Bytes::from(vec![0u8; self.data_size])
    }

    fn server(&self) -> &str {
        server::first_host(&self.zk)
    }
}

fn context(what: &str) -> impl FnOnce(OpError) -> OpError + '_ {
    move |e| OpError::Other(format!("{what}: {e}"))
}

/// Creates `path` and its missing ancestors with empty data (Curator's
/// `creatingParentsIfNeeded`).
async fn ensure_path<C: BenchClient>(c: &C, path: &str) -> OpResult {
    let empty = Bytes::new();
    let mut end = 0;
    while end < path.len() {
        end = path[end + 1..].find('/').map_or(path.len(), |i| end + 1 + i);
        match c.create(&path[..end], &empty).await {
            Ok(()) | Err(OpError::NodeExists) => {}
            Err(e) => return Err(OpError::Other(format!("create {}: {e}", &path[..end]))),
        }
    }
    Ok(())
}

/// Deletes `path` and everything below it; a missing node is fine.
pub(crate) async fn delete_tree<C: BenchClient>(c: &C, path: &str) -> OpResult {
    // Breadth-first listing, then deletion deepest first.
    let mut nodes = vec![path.to_owned()];
    let mut i = 0;
    while i < nodes.len() {
        match c.children(&nodes[i]).await {
            Ok(children) => {
                let parent = nodes[i].clone();
                nodes.extend(children.into_iter().map(|child| format!("{parent}/{child}")));
            }
            Err(OpError::NoNode) => {}
            Err(e) => return Err(OpError::Other(format!("list {}: {e}", nodes[i]))),
        }
        i += 1;
    }
    for node in nodes.iter().rev() {
        match c.delete(node).await {
            Ok(()) | Err(OpError::NoNode) => {}
            Err(e) => return Err(OpError::Other(format!("delete {node}: {e}"))),
        }
    }
    Ok(())
}

/// Benchmark a: sequential `getData`, `create`, `delete` latency of one client on a 128-byte
/// znode, and the server requests per create+delete pair.
pub(crate) async fn latency<C: BenchClient>(cfg: &Config, r: &Reporter) -> OpResult {
    let c = C::connect(&cfg.zk, cfg.session_timeout).await?;
    let base = format!("{}/lat", cfg.root);
    let data = cfg.data();
    delete_tree(&c, &base).await?;
    ensure_path(&c, &base).await?;
    let p = format!("{base}/node");
    c.create(&p, &data).await.map_err(context("create the get node"))?;

    for _ in 0..cfg.get_warmup {
        c.get(&p).await.map_err(context("warm-up get"))?;
    }
    let mut lat = Vec::with_capacity(cfg.gets);
    let deadline = Instant::now() + cfg.get_limit;
    while lat.len() < cfg.gets && Instant::now() < deadline {
        let t0 = Instant::now();
        c.get(&p).await.map_err(context("get"))?;
        lat.push(t0.elapsed());
    }
    r.stats("raw_get", &mut lat, Unit::Micros);

    let q = format!("{base}/cd");
    for _ in 0..cfg.pair_warmup {
        c.create(&q, &data).await.map_err(context("warm-up create"))?;
        c.delete(&q).await.map_err(context("warm-up delete"))?;
    }
    let mut creates = Vec::with_capacity(cfg.pairs);
    let mut deletes = Vec::with_capacity(cfg.pairs);
    let mut pairs = Vec::with_capacity(cfg.pairs);
    let deadline = Instant::now() + cfg.pair_limit;
    let packets_before = server::packets_received(cfg.server()).await;
    while pairs.len() < cfg.pairs && Instant::now() < deadline {
        let t0 = Instant::now();
        c.create(&q, &data).await.map_err(context("create"))?;
        let t1 = Instant::now();
        c.delete(&q).await.map_err(context("delete"))?;
        let t2 = Instant::now();
        creates.push(t1 - t0);
        deletes.push(t2 - t1);
        pairs.push(t2 - t0);
    }
    let packets_after = server::packets_received(cfg.server()).await;
    r.per_op("raw_create_delete_requests_per_pair", packets_before, packets_after, pairs.len());
    r.stats("raw_create", &mut creates, Unit::Micros);
    r.stats("raw_delete", &mut deletes, Unit::Micros);
    r.stats("raw_create_delete", &mut pairs, Unit::Micros);

    delete_tree(&c, &base).await?;
    c.close().await;
    Ok(())
}

/// Which request the throughput benchmark pipelines.
#[derive(Debug, Clone, Copy)]
enum TpOp {
    Set,
    Get,
}

impl TpOp {
    fn name(self) -> &'static str {
        match self {
            TpOp::Set => "set",
            TpOp::Get => "get",
        }
    }
}

/// Completed and failed requests of one throughput pass, and its length (drain included).
pub(crate) struct Pass {
    pub(crate) done: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed: Duration,
}

/// Issues `issue(path)` round-robin over `paths` for `length`, keeping `outstanding` requests
/// in flight, then waits for the rest (the anchors' semaphore loop, with a window of futures
/// driven by this one task instead of a callback per request).
pub(crate) async fn pipelined<'a, F, Fut>(issue: F, paths: &'a [String], outstanding: usize, length: Duration) -> Pass
where
    F: Fn(&'a str) -> Fut,
    Fut: Future<Output = OpResult> + 'a,
{
    let mut in_flight = FuturesUnordered::new();
    let (mut done, mut errors) = (0u64, 0u64);
    let mut tally = |result: OpResult| {
        done += 1;
        if result.is_err() {
            errors += 1;
        }
    };
    let start = Instant::now();
    let end = start + length;
    let mut issued = 0usize;
    while Instant::now() < end {
        if in_flight.len() >= outstanding.max(1) {
            if let Some(result) = in_flight.next().await {
                tally(result);
            }
            continue;
        }
        // The request is queued here, when the future is created.
        in_flight.push(issue(&paths[issued % paths.len()]));
        issued += 1;
    }
    while let Some(result) = in_flight.next().await {
        tally(result);
    }
    Pass { done, errors, elapsed: start.elapsed() }
}

/// CPU time (user + system) this process has used so far, from `/proc/self/stat` (Linux;
/// `None` elsewhere). Clock ticks are taken as 1/100 s, the value on every Linux we run on.
pub(crate) fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// CPU time (user + system) of each thread of process `pid` so far, keyed by thread id, with
/// the thread's name, from `/proc/PID/task/*/stat` (Linux; empty elsewhere). Ticks are taken
/// as 1/100 s, as in [`process_cpu`].
pub(crate) fn thread_cpu(pid: u32) -> std::collections::HashMap<u32, (String, Duration)> {
    let mut threads = std::collections::HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return threads };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let mut fields = stat[close + 1..].split_whitespace().skip(11);
        let ticks: Option<u64> = fields
            .next()
            .and_then(|u| u.parse().ok())
            .zip(fields.next().and_then(|s| s.parse().ok()))
            .map(|(u, s): (u64, u64)| u + s);
        if let Some(ticks) = ticks {
            threads.insert(tid, (stat[open + 1..close].to_owned(), Duration::from_millis(ticks * 10)));
        }
    }
    threads
}

/// Read and write system calls process `pid` (this one with `None`) has made so far, from
/// `/proc/PID/io` (`syscr`, `syscw`; Linux only, and only for a process of the same user).
pub(crate) fn syscalls(pid: Option<u32>) -> Option<(u64, u64)> {
    let path = pid.map_or_else(|| "/proc/self/io".to_owned(), |pid| format!("/proc/{pid}/io"));
    let text = std::fs::read_to_string(path).ok()?;
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok());
    Some((field("syscr:")?, field("syscw:")?))
}

/// The busiest thread between two [`thread_cpu`] snapshots: its name and the CPU time it used.
pub(crate) fn busiest_thread(
    before: &std::collections::HashMap<u32, (String, Duration)>,
    after: &std::collections::HashMap<u32, (String, Duration)>,
) -> Option<(String, Duration)> {
    after
        .iter()
        .map(|(tid, (name, cpu))| {
            let earlier = before.get(tid).map_or(Duration::ZERO, |(_, c)| *c);
            (name.clone(), cpu.saturating_sub(earlier))
        })
        .max_by_key(|(_, used)| *used)
}

/// CPU time the threads used between two [`thread_cpu`] snapshots, all together.
pub(crate) fn total_cpu(
    before: &std::collections::HashMap<u32, (String, Duration)>,
    after: &std::collections::HashMap<u32, (String, Duration)>,
) -> Duration {
    after.iter().map(|(tid, (_, cpu))| cpu.saturating_sub(before.get(tid).map_or(Duration::ZERO, |(_, c)| *c))).sum()
}

/// Benchmark b: pipelined `setData` then `getData` over 100 znodes × 128 B with 1 000 requests
/// in flight: a warm-up pass, then a measured window, for each.
pub(crate) async fn throughput<C: BenchClient>(cfg: &Config, r: &Reporter) -> OpResult {
    let c = C::connect(&cfg.zk, cfg.session_timeout).await?;
    let base = format!("{}/tp", cfg.root);
    let data = cfg.data();
    delete_tree(&c, &base).await?;
    ensure_path(&c, &base).await?;
    let paths: Vec<String> = (0..cfg.nodes.max(1)).map(|i| format!("{base}/n{i}")).collect();
    for p in &paths {
        c.create(p, &data).await.map_err(context("create a throughput node"))?;
    }
    note(format_args!(
        "throughput: {} outstanding, {} znodes x {} B, {:.1} s warm-up + {:.1} s window per op",
        cfg.outstanding,
        paths.len(),
        cfg.data_size,
        cfg.tp_warmup.as_secs_f64(),
        cfg.tp_window.as_secs_f64()
    ));
    for op in [TpOp::Set, TpOp::Get] {
        let mut passes = Vec::with_capacity(2);
        let mut cpu = None;
        for length in [cfg.tp_warmup, cfg.tp_window] {
            cpu = process_cpu();
            passes.push(match op {
                TpOp::Set => pipelined(|p| c.set(p, &data), &paths, cfg.outstanding, length).await,
                TpOp::Get => pipelined(|p| c.get(p), &paths, cfg.outstanding, length).await,
            });
        }
        let cpu = cpu.zip(process_cpu()).map(|(before, after)| after.saturating_sub(before));
        let Some(pass) = passes.pop() else { continue };
        let name = op.name();
        let rate = pass.done as f64 / pass.elapsed.as_secs_f64();
        r.out(&format!("raw_async_{name}_ops"), format!("{rate:.0}"), "ops/s");
        r.out(&format!("raw_async_{name}_errors"), pass.errors, "count");
        if let Some(cpu) = cpu.filter(|_| pass.done > 0) {
            let per_op = cpu.as_secs_f64() * 1e6 / pass.done as f64;
            r.out(&format!("raw_async_{name}_client_cpu"), format!("{per_op:.1}"), "us/op");
        }
    }
    delete_tree(&c, &base).await?;
    c.close().await;
    Ok(())
}

/// Benchmark h: the first connect in the process, exec → connected (from `ANCHOR_EXEC_NS`,
/// wall-clock ns set by the caller just before exec), and warm connects.
pub(crate) async fn startup<C: BenchClient>(cfg: &Config, r: &Reporter) -> OpResult {
    let exec_ns = std::env::var("ANCHOR_EXEC_NS").ok();
    let t0 = Instant::now();
    let c = C::connect(&cfg.zk, cfg.session_timeout).await?;
    let connected = Instant::now();
    let wall_now = SystemTime::now();
    r.out("startup_first", format!("{:.1}", (connected - t0).as_secs_f64() * 1e3), "ms");
    if let Some(ns) = exec_ns {
        match (ns.trim().parse::<i128>(), wall_now.duration_since(UNIX_EPOCH)) {
            (Ok(exec), Ok(now)) => {
                let ms = (now.as_nanos() as i128 - exec) as f64 / 1e6;
                r.out("startup_exec_to_connected", format!("{ms:.1}"), "ms");
            }
            _ => note(format_args!("ANCHOR_EXEC_NS={ns:?} is not a wall-clock nanosecond count")),
        }
    }
    r.out("startup_main_to_connected", format!("{:.1}", (connected - cfg.main_started).as_secs_f64() * 1e3), "ms");
    c.close().await;
    let mut lat = Vec::with_capacity(cfg.warm_connects);
    for _ in 0..cfg.warm_connects {
        let a = Instant::now();
        let x = C::connect(&cfg.zk, cfg.session_timeout).await?;
        lat.push(a.elapsed());
        x.close().await;
    }
    r.stats("startup_warm", &mut lat, Unit::Millis);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_cpu_reads_proc() {
        if cfg!(target_os = "linux") {
            assert!(process_cpu().is_some());
        }
    }

    #[test]
    fn thread_cpu_reads_this_process() {
        if cfg!(target_os = "linux") {
            let pid = std::process::id();
            let before = thread_cpu(pid);
            assert!(!before.is_empty());
            let spin = std::time::Instant::now();
            while spin.elapsed() < Duration::from_millis(50) {
                std::hint::black_box(0u64);
            }
            let after = thread_cpu(pid);
            assert!(busiest_thread(&before, &after).is_some());
            assert!(total_cpu(&before, &after) <= Duration::from_secs(60));
            let (reads, writes) = syscalls(None).unwrap();
            assert!(reads > 0 && writes < u64::MAX);
            assert!(syscalls(Some(pid)).is_some());
        }
    }

    #[test]
    fn context_prefixes() {
        let e = context("get")(OpError::NoNode);
        assert_eq!(e, OpError::Other("get: no node".into()));
    }
}
