//! Four-letter words: ask one host, and read ZooKeeper's answers to `srvr`, `mntr` and `cons`.
//!
//! A word is sent on its own TCP connection and the server answers and closes it. A word the
//! server does not allow is answered `<word> is not executed because it is not in the
//! whitelist.` (ZooKeeper's `4lw.commands.whitelist`, which allows only `srvr` by default).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use corral_recipes::{BoxStream, ClientTls, HostPort};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::connect::io_reason;
use crate::error::{CliError, Kind};

/// The most we read of one answer (`cons` on a busy server is long, but not this long).
const MAX_ANSWER: u64 = 16 << 20;

/// Why a word got no useful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WordError {
    /// No connection: refused, unreachable, timed out.
    Unreachable(String),
    /// The word is not in the server's `4lw.commands.whitelist`.
    NotAllowed(String),
    /// The server is up but not serving (no quorum): ZooKeeper's "not currently serving requests".
    NotServing,
    /// The server closed the connection without a word, or answered garbage.
    Other(String),
}

impl WordError {
    /// One line for a table or a message.
    pub(crate) fn describe(&self) -> String {
        match self {
            WordError::Unreachable(reason) => reason.clone(),
            WordError::NotAllowed(word) => format!("`{word}` is not in 4lw.commands.whitelist"),
            WordError::NotServing => "not serving requests (no quorum?)".to_owned(),
            WordError::Other(reason) => reason.clone(),
        }
    }

    /// The command's error when this word was needed from every host.
    pub(crate) fn into_cli(self, host: &HostPort) -> CliError {
        match self {
            WordError::NotAllowed(word) => not_allowed(&word, host),
            WordError::Unreachable(reason) => CliError::new(Kind::Connection, format!("{host}: {reason}")),
            other => CliError::failed(format!("{host}: {}", other.describe())),
        }
    }
}

/// The error for a word the server refuses, naming the whitelist entry to add.
pub(crate) fn not_allowed(word: &str, host: &HostPort) -> CliError {
    CliError::new(Kind::NotAllowed, format!("{host} does not allow the four-letter word `{word}`")).with_hint(format!(
        "add `{word}` to 4lw.commands.whitelist in the server's zoo.cfg (e.g. 4lw.commands.whitelist=srvr,ruok,mntr,cons) and restart it"
    ))
}

/// Sends `word` to `host` and returns the answer and the round trip (connect included).
///
/// With `tls`, the word goes over TLS, as a secured ensemble's `secureClientPort` wants it.
pub(crate) async fn ask(
    host: &HostPort,
    word: &str,
    timeout: Duration,
    tls: Option<&ClientTls>,
) -> Result<(String, Duration), WordError> {
    let started = Instant::now();
    let exchange = async {
        let tcp = TcpStream::connect((host.host.as_str(), host.port))
            .await
            .map_err(|e| WordError::Unreachable(io_reason(&e)))?;
        let mut socket: BoxStream = match tls {
            None => Box::new(tcp),
            Some(tls) => tls.handshake(tcp, host).await.map_err(|e| match e {
                corral_recipes::CoreError::Tls(reason) => WordError::Unreachable(reason),
                other => WordError::Unreachable(other.to_string()),
            })?,
        };
        socket.write_all(word.as_bytes()).await.map_err(|e| WordError::Unreachable(io_reason(&e)))?;
        socket.flush().await.map_err(|e| WordError::Unreachable(io_reason(&e)))?;
        let mut answer = Vec::new();
        // A server may reset instead of closing after a refused word, and ZooKeeper's Netty
        // closes a TLS connection without close_notify: keep what arrived.
        let read = (&mut socket).take(MAX_ANSWER).read_to_end(&mut answer).await;
        if let Err(e) = read
            && answer.is_empty()
        {
            // TLS 1.3 finishes the client's side of the handshake before the server has checked
            // the client: a refusal arrives as an alert on the first read.
            if let Some(refusal) = e.get_ref().and_then(|inner| inner.downcast_ref::<corral_recipes::rustls::Error>()) {
                let hint = match refusal {
                    corral_recipes::rustls::Error::AlertReceived(_) => "; does it require a client certificate?",
                    _ => "",
                };
                return Err(WordError::Unreachable(format!("the server refused the TLS connection ({refusal}){hint}")));
            }
            return Err(WordError::Other(format!("no answer to `{word}` ({})", io_reason(&e))));
        }
        Ok(String::from_utf8_lossy(&answer).into_owned())
    };
    let answer = tokio::time::timeout(timeout, exchange).await.map_err(|_| {
        WordError::Unreachable(format!("no answer to `{word}` within {}", crate::connect::humanize(timeout)))
    })??;
    let elapsed = started.elapsed();
    classify(word, answer).map(|a| (a, elapsed))
}

/// Turns ZooKeeper's refusals into errors.
fn classify(word: &str, answer: String) -> Result<String, WordError> {
    if answer.contains("is not executed because it is not in the whitelist") {
        return Err(WordError::NotAllowed(word.to_owned()));
    }
    if answer.contains("not currently serving requests") {
        return Err(WordError::NotServing);
    }
    if answer.is_empty() {
        // ZooKeeper before 3.5 closed the connection on a word it did not allow.
        return Err(WordError::Other(format!("empty answer to `{word}` (not allowed, or not a ZooKeeper server?)")));
    }
    Ok(answer)
}

/// The answer to `srvr` (or `stat`), read as `Key: value` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Srvr {
    /// The version, up to the first comma (`3.8.0-…`).
    pub(crate) version: Option<String>,
    /// `standalone`, `leader`, `follower`, `observer`, `read-only`.
    pub(crate) mode: Option<String>,
    /// Latency min/avg/max in ms, as the server prints them.
    pub(crate) latency: Option<(String, String, String)>,
    /// Open connections.
    pub(crate) connections: Option<u64>,
    /// Requests queued and not yet answered.
    pub(crate) outstanding: Option<u64>,
    /// The last zxid, as printed (`0x…`).
    pub(crate) zxid: Option<String>,
    /// Number of znodes.
    pub(crate) node_count: Option<u64>,
}

impl Srvr {
    /// Reads an answer to `srvr`.
    pub(crate) fn parse(text: &str) -> Self {
        let mut srvr = Srvr::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else { continue };
            let value = value.trim();
            match key.trim() {
                "Zookeeper version" => {
                    srvr.version = Some(value.split(',').next().unwrap_or(value).trim().to_owned());
                }
                "Mode" => srvr.mode = Some(value.to_owned()),
                "Latency min/avg/max" => {
                    let parts: Vec<&str> = value.split('/').collect();
                    if let [min, avg, max] = parts[..] {
                        srvr.latency = Some((min.to_owned(), avg.to_owned(), max.to_owned()));
                    }
                }
                "Connections" => srvr.connections = value.parse().ok(),
                "Outstanding" => srvr.outstanding = value.parse().ok(),
                "Zxid" => srvr.zxid = Some(value.to_owned()),
                "Node count" => srvr.node_count = value.parse().ok(),
                _ => {}
            }
        }
        srvr
    }
}

/// The answer to `mntr`: `zk_<name>\t<value>` lines, by name without the `zk_` prefix.
pub(crate) fn parse_mntr(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once('\t').or_else(|| line.split_once(' '))?;
            Some((key.trim().trim_start_matches("zk_").to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// One connection of a `cons` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Connection {
    /// The client's address as the server sees it (`127.0.0.1:52341`).
    pub(crate) address: String,
    /// The fields in parentheses: `queued`, `recved`, `sent`, `sid`, `lop`, `est`, `to`,
    /// `lcxid`, `lzxid`, `lresp`, `llat`, `minlat`, `avglat`, `maxlat`.
    pub(crate) fields: HashMap<String, String>,
}

impl Connection {
    /// The session id, if the connection has one.
    pub(crate) fn session_id(&self) -> Option<i64> {
        let sid = self.fields.get("sid")?;
        let hex = sid.strip_prefix("0x").unwrap_or(sid);
        u64::from_str_radix(hex, 16).ok().map(|v| v as i64)
    }

    /// A numeric field.
    pub(crate) fn number(&self, key: &str) -> Option<i64> {
        self.fields.get(key)?.parse().ok()
    }
}

/// Reads an answer to `cons`: ` /127.0.0.1:52341[1](queued=0,recved=5,sent=5,sid=0x…,…)`.
pub(crate) fn parse_cons(text: &str) -> Vec<Connection> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let open = line.find('(')?;
            let head = &line[..open];
            let head = head.rfind('[').map_or(head, |i| &head[..i]);
            let address = head.rsplit('/').next().unwrap_or(head).to_owned();
            let body = line[open + 1..].trim_end_matches(')');
            let fields = body
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect();
            Some(Connection { address, fields })
        })
        .collect()
}

/// The ephemeral nodes of each session, from the "Sessions with Ephemerals" part of a `dump`
/// answer (`0x<session>:` lines, each followed by tab-indented paths).
pub(crate) fn parse_dump_ephemerals(text: &str) -> HashMap<i64, Vec<String>> {
    let mut by_session: HashMap<i64, Vec<String>> = HashMap::new();
    let mut current: Option<i64> = None;
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("Sessions with Ephemerals") {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(path) = line.strip_prefix('\t') {
            if let Some(session) = current {
                by_session.entry(session).or_default().push(path.trim().to_owned());
            }
        } else if let Some(hex) = line.trim().strip_suffix(':').and_then(|l| l.strip_prefix("0x")) {
            current = u64::from_str_radix(hex, 16).ok().map(|v| v as i64);
            if let Some(session) = current {
                by_session.entry(session).or_default();
            }
        } else {
            break; // the next part of the dump
        }
    }
    by_session
}

/// The client address of every session connected to one of `hosts`, as far as the servers
/// tell it (`cons`); hosts that refuse or do not answer are skipped.
pub(crate) async fn session_addresses(
    hosts: &[HostPort],
    timeout: Duration,
    tls: Option<&ClientTls>,
) -> HashMap<i64, String> {
    let answers = futures::future::join_all(hosts.iter().map(|h| ask(h, "cons", timeout, tls))).await;
    answers
        .into_iter()
        .filter_map(Result::ok)
        .flat_map(|(text, _)| parse_cons(&text))
        .filter_map(|c| Some((c.session_id()?, c.address)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srvr_of_zookeeper_3_8() {
        let text = "Zookeeper version: 3.8.0-5a02a05eddb59aee6ac762f7ea82e92a68eb9c0f, built on 2022-02-25 08:49 UTC\n\
                    Latency min/avg/max: 0/0.4348/5\nReceived: 47\nSent: 46\nConnections: 2\nOutstanding: 0\n\
                    Zxid: 0x1a\nMode: standalone\nNode count: 9\n";
        let srvr = Srvr::parse(text);
        assert_eq!(srvr.version.as_deref(), Some("3.8.0-5a02a05eddb59aee6ac762f7ea82e92a68eb9c0f"));
        assert_eq!(srvr.mode.as_deref(), Some("standalone"));
        assert_eq!(srvr.latency, Some(("0".into(), "0.4348".into(), "5".into())));
        assert_eq!((srvr.connections, srvr.outstanding, srvr.node_count), (Some(2), Some(0), Some(9)));
        assert_eq!(srvr.zxid.as_deref(), Some("0x1a"));
    }

    #[test]
    fn mntr_and_cons() {
        let mntr = parse_mntr("zk_version\t3.8.0, built on x\nzk_watch_count\t3\nzk_znode_count\t12\n");
        assert_eq!(mntr.get("watch_count").map(String::as_str), Some("3"));
        assert_eq!(mntr.get("version").map(String::as_str), Some("3.8.0, built on x"));
        let cons = parse_cons(
            " /127.0.0.1:52341[1](queued=0,recved=5,sent=5,sid=0x100000a2b3c0001,lop=PING,est=1701000000000,to=30000,\
             lcxid=0x3,lzxid=0x1a,lresp=1701000000100,llat=0,minlat=0,avglat=0,maxlat=1)\n \
             /127.0.0.1:52342[0](queued=0,recved=1,sent=0)\n\n",
        );
        assert_eq!(cons.len(), 2);
        assert_eq!(cons[0].address, "127.0.0.1:52341");
        assert_eq!(cons[0].session_id(), Some(0x100000a2b3c0001));
        assert_eq!(cons[0].number("to"), Some(30000));
        assert_eq!(cons[0].fields.get("lop").map(String::as_str), Some("PING"));
        assert_eq!(cons[1].session_id(), None);
    }

    #[test]
    fn ephemerals_from_dump() {
        let dump = "SessionTracker dump:\nSession Sets (2)/(2):\n0 expire at Sun Dec 06 06:00:00 UTC 2026:\n\
                    1 expire at Sun Dec 06 06:00:04 UTC 2026:\n\t0x100000a2b3c0001\nephemeral nodes dump:\n\
                    Sessions with Ephemerals (2):\n0x100000a2b3c0001:\n\t/locks/a/_c_x-lock-0000000001\n\t/me\n\
                    0x100000a2b3c0002:\n\t/you\nConnections dump:\nConnections Sets (1)/(1):\n";
        let ephemerals = parse_dump_ephemerals(dump);
        assert_eq!(ephemerals.len(), 2);
        assert_eq!(ephemerals[&0x100000a2b3c0001], ["/locks/a/_c_x-lock-0000000001", "/me"]);
        assert_eq!(ephemerals[&0x100000a2b3c0002], ["/you"]);
        assert!(parse_dump_ephemerals("garbage").is_empty());
    }

    #[test]
    fn refusals() {
        let refused = classify("cons", "cons is not executed because it is not in the whitelist.\n".into());
        assert_eq!(refused, Err(WordError::NotAllowed("cons".into())));
        let down = classify("srvr", "This ZooKeeper instance is not currently serving requests\n".into());
        assert_eq!(down, Err(WordError::NotServing));
        assert_eq!(classify("ruok", "imok".into()), Ok("imok".into()));
    }
}
