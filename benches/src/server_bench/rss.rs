//! `server-rss`: resident memory of each server before and after a tree of small znodes.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;

use super::process::target_server;
use super::procfs::{Snapshot, Usage, loadavg, vm_kb};
use super::stats::Series;
use super::{ServerArgs, Target, err_other};
use crate::clients::{BenchClient as _, Corral, OpError, OpResult};
use crate::report::{Reporter, note};
use crate::workloads::Config;

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
