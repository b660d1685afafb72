//! `server-ops`: sequential latency and pipelined throughput, in child processes, against both servers.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use corral_proto::records::PathAndWatch;
use corral_proto::{ConnectResponse, ErrorCode, Jute as _, OpCode, ReplyHeader, RequestHeader, encode_frame};

use super::process::target_server;
use super::procfs::{Snapshot, Usage, loadavg};
use super::stats::Series;
use super::wire::{connect_frame, header_frame, read_frame_blocking};
use super::{ServerArgs, Target, err_other};
use crate::clients::OpResult;
use crate::report::{Reporter, note, percentile};
use crate::server::first_host;
use crate::workloads::Config;

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
