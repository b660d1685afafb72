//! The `corral-server` process under test, and which server a round measures.

use std::io::{BufRead as _, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{ServerArgs, Target};
use crate::server::first_host;
use crate::workloads::Config;

/// A free TCP port on 127.0.0.1 (bound, then released).
pub(super) fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| format!("no free port: {e}"))
}

/// A `corral-server` process started by a benchmark; killed (by its pid) and reaped on drop.
#[derive(Debug)]
pub(super) struct ServerProcess {
    pub(super) child: Child,
    pub(super) addr: SocketAddr,
    /// When it was spawned.
    pub(super) started: Instant,
    /// Its stdout lines, with the time each was read.
    pub(super) lines: mpsc::Receiver<(Instant, String)>,
}

impl ServerProcess {
    /// Spawns `bin --port P` on a free port. Returns at once, before it listens.
    pub(super) fn spawn(bin: &Path) -> Result<Self, String> {
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
    pub(super) fn start(bin: &Path) -> Result<Self, String> {
        let mut server = Self::spawn(bin)?;
        server.wait_listening(Duration::from_secs(10))?;
        Ok(server)
    }

    /// Waits for the `listening on ADDR` line; returns exec → line.
    pub(super) fn wait_listening(&mut self, limit: Duration) -> Result<Duration, String> {
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

    pub(super) fn pid(&self) -> u32 {
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
pub(super) fn target_server(
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
