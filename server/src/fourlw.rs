//! The four-letter admin words, in ZooKeeper's text formats (tools such as `zkServer.sh
//! status` and monitoring agents parse them).
//!
//! Unlike ZooKeeper, every word is enabled by default (this is a test and development
//! server); [`crate::ServerBuilder::four_letter_words`] restricts them, and a word left out
//! answers ZooKeeper's "not in the whitelist" line.

use std::fmt::Write as _;

use crate::state::{ConnId, ConnInfo, Shared, State};

/// The version line's value: ZooKeeper's protocol level, then ours.
pub(crate) const VERSION: &str = concat!("3.8.0-corral-", env!("CARGO_PKG_VERSION"));

/// ZooKeeper's `getState()` of a read-only server, which `srvr`, `stat` and `mntr` print.
const READ_ONLY_MODE: &str = "read-only";

/// Runs `cmd` on a member (read-only or not) and returns its text.
pub(crate) fn run(cmd: &str, shared: &Shared, state: &State, me: ConnId, port: u16, read_only: bool) -> String {
    if !shared.config.four_letter_word_allowed(cmd) {
        return format!("{cmd} is not executed because it is not in the whitelist.\n");
    }
    match cmd {
        "ruok" => "imok".to_owned(),
        "isro" => if read_only { "ro" } else { "rw" }.to_owned(),
        "srvr" => srvr(state, None, read_only),
        "stat" => srvr(state, Some(me), read_only),
        "cons" => cons(state, me),
        "mntr" => mntr(shared, state, read_only),
        "wchs" => wchs(state),
        "wchc" => wchc(state),
        "wchp" => wchp(state),
        "dump" => dump(shared, state),
        "envi" => envi(),
        "conf" => conf(shared, port),
        "dirs" => "datadir_size: 0\nlogdir_size: 0\n".to_owned(),
        "crst" => "Connection stats reset.\n".to_owned(),
        "srst" => "Server stats reset.\n".to_owned(),
        other => format!("{other} is not executed because it is not supported by this server.\n"),
    }
}

/// Java's `Double.toString` for the small non-negative values we print: at least one decimal.
fn java_double(v: f64) -> String {
    let rounded = (v * 10_000.0).round() / 10_000.0;
    let s = format!("{rounded}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

/// The mode line's value: `standalone`, or `read-only` as ZooKeeper's read-only server says.
fn mode(read_only: bool) -> &'static str {
    if read_only { READ_ONLY_MODE } else { "standalone" }
}

fn srvr(state: &State, clients_of: Option<ConnId>, read_only: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Zookeeper version: {VERSION}, built on 1970-01-01 00:00 UTC");
    if read_only {
        // StatCommand prints this line for a ReadOnlyZooKeeperServer.
        out.push_str("READ-ONLY mode; serving only read-only clients\n");
    }
    if let Some(me) = clients_of {
        out.push_str("Clients:\n");
        for (id, info) in state.conns_in_order() {
            out.push_str(&conn_line(id, info, me, true));
            out.push('\n');
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "Latency min/avg/max: {}/{}/{}",
        state.latency.min(),
        java_double(state.latency.avg()),
        state.latency.max()
    );
    let _ = writeln!(out, "Received: {}", state.received);
    let _ = writeln!(out, "Sent: {}", state.sent);
    let _ = writeln!(out, "Connections: {}", state.conns.len());
    let _ = writeln!(out, "Outstanding: 0");
    let _ = writeln!(out, "Zxid: {:#x}", state.zxid);
    let _ = writeln!(out, "Mode: {}", mode(read_only));
    // ZooKeeper counts the root twice (under "" and "/").
    let _ = writeln!(out, "Node count: {}", state.tree.len() + 1);
    out
}

/// One connection as `stat` (brief) and `cons` (full) list it.
fn conn_line(id: ConnId, info: &ConnInfo, me: ConnId, brief: bool) -> String {
    let interest = if id == me { 0 } else { 1 };
    let mut line = format!(" /{}[{interest}](queued=0,recved={},sent={}", info.peer, info.received, info.sent);
    if !brief && let Some(session) = info.session {
        let _ = write!(
            line,
            ",sid={session:#x},lop={},est={},to={},lcxid={:#x},lzxid={:#x},lresp={},llat={},minlat={},avglat={},maxlat={}",
            info.last_op,
            info.established,
            info.timeout_ms,
            info.last_cxid,
            info.last_zxid,
            info.last_response,
            info.last_latency,
            info.latency.min(),
            info.latency.avg().round() as u64,
            info.latency.max()
        );
    }
    line.push(')');
    line
}

fn cons(state: &State, me: ConnId) -> String {
    let mut out = String::new();
    for (id, info) in state.conns_in_order() {
        out.push_str(&conn_line(id, info, me, false));
        out.push('\n');
    }
    out.push('\n');
    out
}

fn mntr(shared: &Shared, state: &State, read_only: bool) -> String {
    let (_, _, watch_count) = state.watches.data_summary();
    let rows: [(&str, String); 17] = [
        ("version", format!("{VERSION}, built on 1970-01-01 00:00 UTC")),
        ("server_state", mode(read_only).to_owned()),
        ("avg_latency", java_double(state.latency.avg())),
        ("max_latency", state.latency.max().to_string()),
        ("min_latency", state.latency.min().to_string()),
        ("packets_received", state.received.to_string()),
        ("packets_sent", state.sent.to_string()),
        ("num_alive_connections", state.conns.len().to_string()),
        ("outstanding_requests", "0".to_owned()),
        ("znode_count", (state.tree.len() + 1).to_string()),
        ("watch_count", watch_count.to_string()),
        ("ephemerals_count", state.tree.ephemeral_count().to_string()),
        ("approximate_data_size", state.tree.approximate_data_size().to_string()),
        ("global_sessions", state.sessions.len().to_string()),
        ("local_sessions", "0".to_owned()),
        ("uptime", shared.now_ms().to_string()),
        ("last_proposal_size", "-1".to_owned()),
    ];
    rows.iter().fold(String::new(), |mut out, (k, v)| {
        let _ = writeln!(out, "zk_{k}\t{v}");
        out
    })
}

fn wchs(state: &State) -> String {
    let (conns, paths, total) = state.watches.data_summary();
    format!("{conns} connections watching {paths} paths\nTotal watches:{total}\n")
}

fn session_of(state: &State, conn: ConnId) -> i64 {
    state.conns.get(&conn).and_then(|c| c.session).unwrap_or(0)
}

fn wchc(state: &State) -> String {
    let mut by_session: std::collections::BTreeMap<i64, Vec<String>> = std::collections::BTreeMap::new();
    for (path, conn) in state.watches.data_entries() {
        by_session.entry(session_of(state, conn)).or_default().push(path);
    }
    let mut out = String::new();
    for (session, paths) in by_session {
        let _ = writeln!(out, "{session:#x}");
        for path in paths {
            let _ = writeln!(out, "\t{path}");
        }
    }
    out
}

fn wchp(state: &State) -> String {
    let mut out = String::new();
    let mut last: Option<String> = None;
    for (path, conn) in state.watches.data_entries() {
        if last.as_deref() != Some(path.as_str()) {
            let _ = writeln!(out, "{path}");
            last = Some(path);
        }
        let _ = writeln!(out, "\t{:#x}", session_of(state, conn));
    }
    out
}

fn dump(shared: &Shared, state: &State) -> String {
    let mut out = String::from("SessionTracker dump:\n");
    let buckets = state.sessions.buckets();
    let _ = writeln!(out, "Session Sets ({})/({}):", buckets.len(), state.sessions.len());
    // Buckets are on the monotonic clock; show them as wall-clock dates.
    let now_mono = i64::try_from(shared.now_ms()).unwrap_or(i64::MAX);
    let wall_now = shared.wall_ms();
    for (at, ids) in &buckets {
        let wall = wall_now + (i64::try_from(*at).unwrap_or(i64::MAX) - now_mono);
        let _ = writeln!(out, "{} expire at {}:", ids.len(), java_date(wall));
        for id in ids {
            let _ = writeln!(out, "\t{id:#x}");
        }
    }
    out.push_str("ephemeral nodes dump:\n");
    let ephemerals = state.tree.all_ephemerals();
    let _ = writeln!(out, "Sessions with Ephemerals ({}):", ephemerals.len());
    let mut owners: Vec<&i64> = ephemerals.keys().collect();
    owners.sort_unstable();
    for owner in owners {
        let _ = writeln!(out, "{owner:#x}:");
        for path in ephemerals.get(owner).into_iter().flatten() {
            let _ = writeln!(out, "\t{path}");
        }
    }
    out.push_str("Connections dump:\n");
    let _ = writeln!(out, "Connections Sets (1)/({}):", state.conns.len());
    let _ = writeln!(out, "{} expire at {}:", state.conns.len(), java_date(wall_now));
    for (id, info) in state.conns_in_order() {
        let _ = writeln!(out, "\tip: {} sessionId: {:#x}", info.peer, session_of(state, id));
    }
    out
}

fn envi() -> String {
    let mut out = String::from("Environment:\n");
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_owned());
    let rows = [
        ("zookeeper.version", format!("{VERSION}, built on 1970-01-01 00:00 UTC")),
        ("host.name", host),
        ("os.name", std::env::consts::OS.to_owned()),
        ("os.arch", std::env::consts::ARCH.to_owned()),
        ("user.name", std::env::var("USER").unwrap_or_default()),
        ("user.home", std::env::var("HOME").unwrap_or_default()),
        ("user.dir", std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default()),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "{k}={v}");
    }
    out
}

fn conf(shared: &Shared, port: u16) -> String {
    let c = &shared.config;
    format!(
        "clientPort={}\nsecureClientPort=-1\ndataDir=\ndataDirSize=0\ndataLogDir=\ndataLogSize=0\ntickTime={}\n\
         maxClientCnxns=0\nminSessionTimeout={}\nmaxSessionTimeout={}\nclientPortListenBacklog=-1\nserverId=0\n",
        port,
        c.tick_ms(),
        c.min_timeout_ms(),
        c.max_timeout_ms()
    )
}

/// Java's `Date.toString()` in UTC: `Thu Jan 01 00:00:00 UTC 1970`.
pub(crate) fn java_date(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = DAYS.get(days.rem_euclid(7) as usize).copied().unwrap_or("Thu");
    let month_name = MONTHS.get((month - 1) as usize).copied().unwrap_or("Jan");
    format!("{weekday} {month_name} {day:02} {:02}:{:02}:{:02} UTC {year}", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_like_java() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(java_date(1_700_000_000_000), "Tue Nov 14 22:13:20 UTC 2023");
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
    }

    #[test]
    fn doubles_like_java() {
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(4.30434), "4.3043");
        assert_eq!(java_double(2.0), "2.0");
    }
}
