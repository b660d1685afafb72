//! The server commands: `health` and `sessions`, asking every host of the connect string on
//! its own with four-letter words (no session is opened).

use std::process::ExitCode;
use std::time::Duration;

use corral_recipes::{ClientTls, HostPort};
use serde::Serialize;

use crate::connect::Target;
use crate::error::{CliError, CliResult, Kind};
use crate::fourlw::{Srvr, WordError, ask, not_allowed, parse_cons, parse_dump_ephemerals, parse_mntr};
use crate::output::{Out, Style, Table, now_ms, session_hex, short_duration};

/// One host's health, as `--json` prints it.
#[derive(Debug, Serialize)]
struct HostHealth {
    /// `host:port`.
    host: String,
    /// `ok`, `not_ok` (answered, but not `imok` or not serving), or `unreachable`.
    status: &'static str,
    /// What went wrong, if anything.
    error: Option<String>,
    /// The answer to `ruok` was `imok` (`None`: `ruok` not allowed).
    ruok: Option<bool>,
    /// Round trip of the first word answered, connect included, in ms.
    latency_ms: Option<f64>,
    /// `standalone`, `leader`, `follower`, `observer`, `read-only`.
    mode: Option<String>,
    /// Server version.
    version: Option<String>,
    /// Open client connections.
    connections: Option<u64>,
    /// Requests queued and not yet answered.
    outstanding_requests: Option<u64>,
    /// Number of znodes.
    znode_count: Option<u64>,
    /// Number of watches (from `mntr`).
    watch_count: Option<u64>,
    /// Number of ephemeral nodes (from `mntr`).
    ephemerals_count: Option<u64>,
    /// Server-side request latency min/avg/max in ms.
    server_latency_ms: Option<[String; 3]>,
    /// The last zxid (`0x…`).
    zxid: Option<String>,
    /// Four-letter words this host refused: add them to `4lw.commands.whitelist`.
    words_not_allowed: Vec<String>,
}

impl HostHealth {
    fn new(host: &HostPort) -> Self {
        Self {
            host: host.to_string(),
            status: "ok",
            error: None,
            ruok: None,
            latency_ms: None,
            mode: None,
            version: None,
            connections: None,
            outstanding_requests: None,
            znode_count: None,
            watch_count: None,
            ephemerals_count: None,
            server_latency_ms: None,
            zxid: None,
            words_not_allowed: Vec::new(),
        }
    }
}

/// Asks one host `ruok`, `srvr` and `mntr`.
async fn check_host(host: &HostPort, timeout: Duration, tls: Option<&ClientTls>) -> HostHealth {
    let mut health = HostHealth::new(host);
    let latency = |d: Duration, h: &mut HostHealth| {
        if h.latency_ms.is_none() {
            h.latency_ms = Some((d.as_secs_f64() * 10_000.0).round() / 10.0);
        }
    };
    // `ruok` first: it also tells an unreachable host quickly.
    match ask(host, "ruok", timeout, tls).await {
        Ok((answer, took)) => {
            latency(took, &mut health);
            health.ruok = Some(answer.trim() == "imok");
            if answer.trim() != "imok" {
                health.status = "not_ok";
                health.error = Some(format!("ruok answered {:?}", answer.trim()));
            }
        }
        Err(WordError::NotAllowed(word)) => health.words_not_allowed.push(word),
        Err(WordError::Unreachable(reason)) => {
            health.status = "unreachable";
            health.error = Some(reason);
            return health;
        }
        Err(other) => {
            health.status = "not_ok";
            health.error = Some(other.describe());
        }
    }
    match ask(host, "srvr", timeout, tls).await {
        Ok((answer, took)) => {
            latency(took, &mut health);
            let srvr = Srvr::parse(&answer);
            health.mode = srvr.mode;
            health.version = srvr.version;
            health.connections = srvr.connections;
            health.outstanding_requests = srvr.outstanding;
            health.znode_count = srvr.node_count;
            health.zxid = srvr.zxid;
            health.server_latency_ms = srvr.latency.map(|(a, b, c)| [a, b, c]);
        }
        Err(WordError::NotAllowed(word)) => health.words_not_allowed.push(word),
        Err(e) => {
            health.status = if matches!(e, WordError::Unreachable(_)) { "unreachable" } else { "not_ok" };
            health.error.get_or_insert(e.describe());
        }
    }
    match ask(host, "mntr", timeout, tls).await {
        Ok((answer, _)) => {
            let mntr = parse_mntr(&answer);
            let number = |key: &str| mntr.get(key).and_then(|v| v.parse::<u64>().ok());
            health.watch_count = number("watch_count");
            health.ephemerals_count = number("ephemerals_count");
            health.znode_count = health.znode_count.or_else(|| number("znode_count"));
            health.connections = health.connections.or_else(|| number("num_alive_connections"));
            health.outstanding_requests = health.outstanding_requests.or_else(|| number("outstanding_requests"));
            health.mode = health.mode.take().or_else(|| mntr.get("server_state").cloned());
        }
        Err(WordError::NotAllowed(word)) => health.words_not_allowed.push(word),
        Err(e) => {
            health.error.get_or_insert(e.describe());
        }
    }
    if health.ruok.is_none() && health.mode.is_none() && health.status == "ok" {
        // Neither ruok nor srvr answered: nothing says this host is well.
        health.status = "not_ok";
        health.error.get_or_insert_with(|| "neither ruok nor srvr is allowed".to_owned());
    }
    health
}

/// `health`: every host of the connect string, separately. Exit code 0 when every host is
/// `ok`, 4 when none could be reached, 1 otherwise.
pub(crate) async fn health(target: &Target, out: &Out) -> CliResult<ExitCode> {
    #[derive(Serialize)]
    struct HealthDoc {
        connect_string: String,
        healthy: bool,
        hosts: Vec<HostHealth>,
    }
    let hosts =
        futures::future::join_all(target.hosts().iter().map(|h| check_host(h, target.timeout, target.tls.as_ref())))
            .await;
    let healthy = hosts.iter().all(|h| h.status == "ok");
    let none_reachable = hosts.iter().all(|h| h.status == "unreachable");
    let code = if healthy {
        ExitCode::SUCCESS
    } else if none_reachable {
        ExitCode::from(Kind::Connection.exit_code())
    } else {
        ExitCode::from(Kind::Failed.exit_code())
    };
    if out.json {
        out.json(&HealthDoc { connect_string: target.raw.clone(), healthy, hosts })?;
        return Ok(code);
    }
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut table = Table::new(&[
        "HOST",
        "STATUS",
        "MODE",
        "VERSION",
        "RTT",
        "CONNS",
        "OUTSTANDING",
        "ZNODES",
        "WATCHES",
        "EPHEMERALS",
    ]);
    for h in &hosts {
        let style = match h.status {
            "ok" => Style::Good,
            "unreachable" => Style::Bad,
            _ => Style::Warn,
        };
        table.styled_row(vec![
            (h.host.clone(), Style::Plain),
            (h.status.to_owned(), style),
            (h.mode.clone().unwrap_or_else(|| "-".into()), Style::Plain),
            (h.version.clone().unwrap_or_else(|| "-".into()), Style::Plain),
            (h.latency_ms.map_or_else(|| "-".into(), |ms| format!("{ms}ms")), Style::Plain),
            (opt(h.connections), Style::Plain),
            (opt(h.outstanding_requests), Style::Plain),
            (opt(h.znode_count), Style::Plain),
            (opt(h.watch_count), Style::Plain),
            (opt(h.ephemerals_count), Style::Plain),
        ]);
    }
    out.table(&table)?;
    for h in &hosts {
        if let Some(error) = &h.error {
            out.line(format!("{} {}: {error}", out.paint("error:", Style::Bad), h.host))?;
        }
        if !h.words_not_allowed.is_empty() {
            let words = h.words_not_allowed.join(",");
            out.line(format!(
                "{} {}: not allowed: {words} (add them to 4lw.commands.whitelist for full details)",
                out.paint("note:", Style::Warn),
                h.host
            ))?;
        }
    }
    Ok(code)
}

/// One session of `sessions`, as `--json` prints it.
#[derive(Debug, Serialize)]
struct SessionRow {
    /// The session id (`0x…`).
    session_id: String,
    /// The client's address as the server sees it.
    client_address: String,
    /// The negotiated timeout in ms.
    timeout_ms: Option<i64>,
    /// The last operation (`PING`, `GETD`, …).
    last_operation: Option<String>,
    /// Requests queued.
    queued: Option<i64>,
    /// Packets received from the client.
    received: Option<i64>,
    /// Packets sent to the client.
    sent: Option<i64>,
    /// When the connection was established, ms since the epoch.
    established_ms: Option<i64>,
    /// Average request latency in ms.
    avg_latency_ms: Option<i64>,
    /// Largest request latency in ms.
    max_latency_ms: Option<i64>,
    /// The session's ephemeral nodes (from `dump`; `None` when no host allows it).
    ephemerals: Option<Vec<String>>,
}

/// One host's sessions.
#[derive(Debug, Serialize)]
struct HostSessions {
    host: String,
    error: Option<String>,
    sessions: Vec<SessionRow>,
}

/// `sessions`: the client sessions connected to each host (`cons`), with their ephemeral nodes
/// (`dump`, when allowed).
pub(crate) async fn sessions(target: &Target, out: &Out) -> CliResult {
    #[derive(Serialize)]
    struct SessionsDoc {
        connect_string: String,
        hosts: Vec<HostSessions>,
    }
    let (answers, dumps) = futures::future::join(
        futures::future::join_all(target.hosts().iter().map(|h| ask(h, "cons", target.timeout, target.tls.as_ref()))),
        futures::future::join_all(target.hosts().iter().map(|h| ask(h, "dump", target.timeout, target.tls.as_ref()))),
    )
    .await;
    // Every member has the whole tree, so any dump lists every session's ephemerals.
    let dumps: Vec<String> = dumps.into_iter().filter_map(Result::ok).map(|(text, _)| text).collect();
    let ephemerals = (!dumps.is_empty()).then(|| {
        let mut all = std::collections::HashMap::new();
        for dump in &dumps {
            all.extend(parse_dump_ephemerals(dump));
        }
        all
    });
    // A command that got nothing from any host fails with the first host's reason.
    if answers.iter().all(Result::is_err) {
        let (host, err) = target
            .hosts()
            .iter()
            .zip(answers)
            .find_map(|(h, a)| a.err().map(|e| (h, e)))
            .ok_or_else(|| CliError::failed("no hosts"))?;
        return Err(match err {
            WordError::NotAllowed(word) => not_allowed(&word, host),
            other => other.into_cli(host),
        });
    }
    let hosts: Vec<HostSessions> = target
        .hosts()
        .iter()
        .zip(answers)
        .map(|(host, answer)| match answer {
            Err(e) => HostSessions { host: host.to_string(), error: Some(e.describe()), sessions: Vec::new() },
            Ok((text, _)) => {
                let sessions = parse_cons(&text)
                    .into_iter()
                    .filter_map(|c| {
                        let sid = c.session_id()?;
                        Some(SessionRow {
                            session_id: session_hex(sid),
                            timeout_ms: c.number("to"),
                            last_operation: c.fields.get("lop").cloned(),
                            queued: c.number("queued"),
                            received: c.number("recved"),
                            sent: c.number("sent"),
                            established_ms: c.number("est"),
                            avg_latency_ms: c.number("avglat"),
                            max_latency_ms: c.number("maxlat"),
                            ephemerals: ephemerals.as_ref().map(|e| {
                                let mut paths = e.get(&sid).cloned().unwrap_or_default();
                                paths.sort();
                                paths
                            }),
                            client_address: c.address,
                        })
                    })
                    .collect();
                HostSessions { host: host.to_string(), error: None, sessions }
            }
        })
        .collect();
    if out.json {
        return out.json(&SessionsDoc { connect_string: target.raw.clone(), hosts });
    }
    let opt = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut table = Table::new(&[
        "HOST",
        "SESSION",
        "CLIENT",
        "TIMEOUT",
        "LAST_OP",
        "QUEUED",
        "RECV",
        "SENT",
        "AGE",
        "AVG_LAT",
        "EPHEMERALS",
    ]);
    let now = now_ms();
    for host in &hosts {
        for s in &host.sessions {
            table.styled_row(vec![
                (host.host.clone(), Style::Plain),
                (s.session_id.clone(), Style::Accent),
                (s.client_address.clone(), Style::Plain),
                (s.timeout_ms.map_or_else(|| "-".into(), short_duration), Style::Plain),
                (s.last_operation.clone().unwrap_or_else(|| "-".into()), Style::Plain),
                (opt(s.queued), Style::Plain),
                (opt(s.received), Style::Plain),
                (opt(s.sent), Style::Plain),
                (s.established_ms.map_or_else(|| "-".into(), |e| short_duration(now.saturating_sub(e))), Style::Plain),
                (s.avg_latency_ms.map_or_else(|| "-".into(), |l| format!("{l}ms")), Style::Plain),
                (s.ephemerals.as_ref().map_or_else(|| "-".into(), |e| e.len().to_string()), Style::Plain),
            ]);
        }
    }
    let total: usize = hosts.iter().map(|h| h.sessions.len()).sum();
    if table.is_empty() {
        out.line("no client sessions")?;
    } else {
        out.table(&table)?;
    }
    for host in &hosts {
        if let Some(error) = &host.error {
            out.line(format!("{} {}: {error}", out.paint("error:", Style::Bad), host.host))?;
        }
    }
    if ephemerals.is_none() {
        out.line(format!("{} ephemeral nodes need `dump` in 4lw.commands.whitelist", out.paint("note:", Style::Warn)))?;
    }
    out.line(out.paint(&format!("{total} sessions on {} hosts", hosts.len()), Style::Dim))
}
