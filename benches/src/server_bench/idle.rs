//! `server-idle`: the CPU each server spends on many idle sessions that only ping.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use corral_proto::{ConnectResponse, Jute as _, OpCode, ReplyHeader, xid};
use futures::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

use super::process::target_server;
use super::procfs::{Snapshot, Usage, vm_kb};
use super::stats::Series;
use super::wire::{connect_frame, header_frame};
use super::{ServerArgs, Target, err_other};
use crate::clients::OpResult;
use crate::report::{Reporter, note};
use crate::workloads::Config;

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
