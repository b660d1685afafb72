//! `server-startup`: exec of a server → first connect, handshake, `imok`, `srvr` and log line.

use std::net::{SocketAddr, TcpStream as StdTcpStream, ToSocketAddrs as _};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::process::ServerProcess;
use super::stats::Series;
use super::wire::{four_letter_word_blocking, handshake_blocking};
use super::{ServerArgs, Target, err_other};
use crate::clients::OpResult;
use crate::report::{Reporter, note};
use crate::server::first_host;
use crate::workloads::Config;

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
