//! CPU ticks and memory from `/proc`, and the CPU a measurement used.

use std::time::Instant;

/// `/proc` CPU ticks per second (`USER_HZ`); 100 on every Linux we run on.
const CLK_TCK: f64 = 100.0;

/// The fields of `/proc/PID/stat` after the command name (`pid` may be `self`); index 0 is
/// the state (field 3), so utime is index 11.
pub(super) fn proc_stat(pid: &str) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    Some(rest.split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect())
}

/// utime + stime of a process, in ticks.
pub(super) fn process_ticks(pid: &str) -> Option<u64> {
    let f = proc_stat(pid)?;
    Some(f.get(10)? + f.get(11)?)
}

/// cutime + cstime of this process (its waited-for children), in ticks.
pub(super) fn children_ticks() -> u64 {
    proc_stat("self").and_then(|f| Some(f.get(12)? + f.get(13)?)).unwrap_or(0)
}

/// (busy, total) ticks of the whole machine from `/proc/stat`, counted as run-all.sh does:
/// busy = user + nice + system + irq + softirq + steal, total = busy + idle + iowait.
pub(super) fn machine_ticks() -> (u64, u64) {
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
pub(super) fn vm_kb(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.get(key.len()..)?.split_whitespace().next()?.parse().ok()
}

/// The first three fields of `/proc/loadavg`.
pub(super) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// CPU counters at one instant.
#[derive(Debug, Clone, Copy)]
pub(super) struct Snapshot {
    pub(super) at: Instant,
    pub(super) server: Option<u64>,
    pub(super) server_sys: Option<u64>,
    pub(super) own: u64,
    pub(super) children: u64,
    pub(super) busy: u64,
    pub(super) total: u64,
}

impl Snapshot {
    pub(super) fn take(server: Option<u32>) -> Self {
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
pub(super) struct Usage {
    pub(super) wall: f64,
    pub(super) server: f64,
    /// The server's system (kernel) time, included in `server`.
    pub(super) server_sys: f64,
    pub(super) client: f64,
    pub(super) other: f64,
    pub(super) busy_pct: f64,
}

impl Usage {
    pub(super) fn between(a: &Snapshot, b: &Snapshot) -> Self {
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

    pub(super) fn describe(&self) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_readings() {
        if cfg!(target_os = "linux") {
            assert!(process_ticks("self").is_some());
            assert!(vm_kb(std::process::id(), "VmRSS:").is_some_and(|kb| kb > 0));
            assert!(machine_ticks().1 > 0);
        }
    }
}
