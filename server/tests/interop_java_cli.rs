//! ZooKeeper's own Java CLI (`org.apache.zookeeper.ZooKeeperMain` from Debian's `zookeeper`
//! package) against the embedded server and against a real ZooKeeper 3.8: the same commands
//! must print the same thing on both.
//!
//! The CLI reads its commands from stdin, one JVM per session. Its stdout and stderr go into
//! one pipe, so results and error messages stay in order. What legitimately differs between
//! two servers is normalised away before comparing (see [`normalise`]): zxids become their
//! rank within the transcript (so equalities and order between them still count), session ids
//! become `session#1`, `session#2`… in order of appearance, and times become `<time>`. Watch
//! notifications are printed by the CLI's event thread, so they are taken out of the
//! transcript and compared as their own sequence.
//!
//! With a data directory, the CLI reads back after a restart what it wrote before it.
//!
//! The embedded server's transcripts are also compared with ones recorded from ZooKeeper
//! 3.8.0, so the test still means something where no real ZooKeeper could be started. Without
//! Java or the ZooKeeper jar the tests skip (with a `skipping:` line on stderr), except under
//! `CI=true`, where they fail.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use common::Raw;
use corral_proto::ErrorCode;
use corral_server::Server;

const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// An slf4j binding that prints nothing; without one slf4j warns on stderr (filtered anyway).
const SLF4J_NOP_JAR: &str = "/usr/share/java/slf4j-nop.jar";
/// A bound on one CLI run, so a server that never answers fails the test instead of hanging it.
const CLI_DEADLINE: Duration = Duration::from_secs(60);

/// How to start the CLI, or why it cannot be.
fn cli() -> Option<&'static Cli> {
    static CLI: OnceLock<Result<Cli, String>> = OnceLock::new();
    match CLI.get_or_init(Cli::find) {
        Ok(cli) => Some(cli),
        Err(reason) => {
            let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
            if ci {
                panic!("CI is set, so tests may not skip, but ZooKeeper's Java CLI cannot run: {reason}");
            }
            static NOTICE: std::sync::Once = std::sync::Once::new();
            NOTICE.call_once(|| {
                let _ = std::io::stderr()
                    .lock()
                    .write_all(format!("skipping: ZooKeeper's Java CLI tests: {reason}\n").as_bytes());
            });
            None
        }
    }
}

#[derive(Debug)]
struct Cli {
    java: PathBuf,
    classpath: String,
}

/// A normalised CLI transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Transcript {
    /// Results and error messages, in order.
    lines: Vec<String>,
    /// Node events (`type:None` session events are dropped: the last one races with exit).
    events: Vec<String>,
    /// The JVM's exit status.
    exit: Option<i32>,
}

impl Cli {
    fn find() -> Result<Self, String> {
        let java = match std::env::var_os("JAVA_HOME") {
            Some(home) if Path::new(&home).join("bin/java").is_file() => Path::new(&home).join("bin/java"),
            _ => std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths)
                .map(|dir| dir.join("java"))
                .find(|java| java.is_file())
                .ok_or("no `java` in PATH or JAVA_HOME (apt-get install zookeeper libslf4j-java)")?,
        };
        if !Path::new(ZOOKEEPER_JAR).is_file() {
            return Err(format!("no {ZOOKEEPER_JAR} (apt-get install zookeeper libslf4j-java)"));
        }
        // The jar's manifest Class-Path brings jute, netty, commons-cli, slf4j-api and the rest.
        let mut classpath = ZOOKEEPER_JAR.to_owned();
        if Path::new(SLF4J_NOP_JAR).is_file() {
            classpath.push(':');
            classpath.push_str(SLF4J_NOP_JAR);
        }
        Ok(Self { java, classpath })
    }

    /// Runs `script` (one command a line) in one CLI session connected to `server` (which may
    /// carry a chroot) and returns its normalised transcript.
    fn run(&self, server: &str, script: &[&str]) -> Transcript {
        let (mut reader, writer) = std::io::pipe().expect("pipe");
        let mut command = Command::new(&self.java);
        command
            .args([
                "-XX:TieredStopAtLevel=1",
                "-XX:+UseSerialGC",
                "-Xshare:auto",
                "-Djava.net.preferIPv4Stack=true",
                "-Dzookeeper.sasl.client=false",
                "-cp",
                &self.classpath,
                "org.apache.zookeeper.ZooKeeperMain",
                "-server",
                server,
            ])
            .stdin(Stdio::piped())
            .stdout(writer.try_clone().expect("pipe"))
            .stderr(writer);
        let mut child = command.spawn().expect("start the Java CLI");
        // The command holds the pipe's write ends: drop it so the reader sees the end.
        drop(command);
        let output = thread::spawn(move || {
            let mut out = Vec::new();
            let _ = reader.read_to_end(&mut out);
            out
        });
        {
            let mut stdin = child.stdin.take().expect("stdin");
            let mut input = script.join("\n");
            input.push_str("\nquit\n");
            stdin.write_all(input.as_bytes()).expect("write the script");
        }
        let deadline = Instant::now() + CLI_DEADLINE;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the CLI") {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(10));
        };
        let raw = String::from_utf8_lossy(&output.join().expect("reader")).into_owned();
        let Some(status) = status else {
            panic!("the CLI on {server} did not finish within {CLI_DEADLINE:?}; it printed:\n{raw}");
        };
        normalise(&raw, status.code())
    }
}

/// Turns raw CLI output into a [`Transcript`]; see the module docs.
fn normalise(raw: &str, exit: Option<i32>) -> Transcript {
    const ZXID_KEYS: [&str; 3] = ["cZxid = ", "mZxid = ", "pZxid = "];
    let mut zxids: Vec<i64> = raw
        .lines()
        .filter_map(|line| ZXID_KEYS.iter().find_map(|key| line.strip_prefix(key)))
        .map(|hex| parse_hex(hex).unwrap_or_else(|| panic!("a zxid in {raw}")))
        .collect();
    zxids.sort_unstable();
    zxids.dedup();
    let mut sessions: Vec<i64> = Vec::new();
    let mut lines = Vec::new();
    let mut events = Vec::new();
    for line in raw.lines() {
        let line = line.trim_end();
        if line.is_empty()
            || line == "WATCHER::"
            || line == "Welcome to ZooKeeper!"
            || line.starts_with("Connecting to ")
            || line.starts_with("JLine support is ")
            || line.starts_with("SLF4J:")
        {
            continue;
        }
        if let Some(event) = line.strip_prefix("WatchedEvent ") {
            if !event.contains(" type:None ") {
                events.push(event.to_owned());
            }
            continue;
        }
        if let Some(key) = ZXID_KEYS.iter().find(|key| line.starts_with(**key)) {
            let zxid = parse_hex(&line[key.len()..]).expect("checked above");
            let rank = zxids.binary_search(&zxid).expect("collected above");
            lines.push(format!("{key}z{rank}"));
        } else if line.starts_with("ctime = ") || line.starts_with("mtime = ") {
            lines.push(format!("{}<time>", &line[..8]));
        } else if let Some(owner) = line.strip_prefix("ephemeralOwner = ") {
            let owner = parse_hex(owner).unwrap_or_else(|| panic!("an ephemeralOwner in {raw}"));
            if owner == 0 {
                lines.push(line.to_owned());
            } else {
                let n = sessions.iter().position(|s| *s == owner).unwrap_or_else(|| {
                    sessions.push(owner);
                    sessions.len() - 1
                });
                lines.push(format!("ephemeralOwner = session#{}", n + 1));
            }
        } else if let Some(list) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            // getEphemerals prints the server's (hash) order; ls sorts already.
            let mut items: Vec<&str> = list.split(", ").filter(|s| !s.is_empty()).collect();
            items.sort_unstable();
            lines.push(format!("[{}]", items.join(", ")));
        } else {
            lines.push(line.to_owned());
        }
    }
    Transcript { lines, events, exit }
}

fn parse_hex(s: &str) -> Option<i64> {
    u64::from_str_radix(s.trim().strip_prefix("0x")?, 16).ok().map(|v| v as i64)
}

/// A chroot of the same name on both servers, so that paths the servers leak through the
/// chroot (getEphemerals does, on ZooKeeper 3.8) compare equal.
struct Servers {
    /// Keeps the embedded server's tasks running while the CLI runs on this thread.
    runtime: tokio::runtime::Runtime,
    embedded: Server,
    real: Option<SocketAddr>,
    chroot: String,
}

impl Servers {
    fn start(prefix: &str) -> Self {
        let real = corral_test_support::zookeeper().map(|zk| zk.addr());
        let chroot = corral_test_support::unique_chroot(prefix);
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let embedded = runtime.block_on(async {
            let server = Server::start().await.expect("start the embedded server");
            let mut c = Raw::connect(server.addr()).await;
            c.create(corral_test_support::CHROOT_BASE, b"", 0).await.expect("create the chroot base");
            c.create(&chroot, b"", 0).await.expect("create the chroot");
            c.close_session().await;
            if let Some(real) = real {
                let mut c = Raw::connect(real).await;
                match c.create(corral_test_support::CHROOT_BASE, b"", 0).await {
                    Ok(_) | Err(ErrorCode::NodeExists) => {}
                    Err(e) => panic!("creating the chroot base on ZooKeeper: {e:?}"),
                }
                c.create(&chroot, b"", 0).await.expect("create the chroot on ZooKeeper");
                c.close_session().await;
            }
            server
        });
        Self { runtime, embedded, real, chroot }
    }

    /// Runs each script as one session, in order, on both servers at once; returns the
    /// embedded server's transcripts and the real one's (if there is a real one).
    fn run(&self, cli: &Cli, scripts: &[&[&str]]) -> (Vec<Transcript>, Option<Vec<Transcript>>) {
        let run_all = |addr: SocketAddr| -> Vec<Transcript> {
            let server = format!("{addr}{}", self.chroot);
            scripts.iter().map(|script| cli.run(&server, script)).collect()
        };
        thread::scope(|scope| {
            let real = self.real.map(|addr| scope.spawn(move || run_all(addr)));
            let embedded = run_all(self.embedded.addr());
            (embedded, real.map(|r| r.join().expect("the real ZooKeeper's CLI runs")))
        })
    }

    fn shutdown(self) {
        let Self { runtime, embedded, .. } = self;
        runtime.block_on(embedded.shutdown());
    }
}

/// Where the transcripts recorded from ZooKeeper 3.8.0 live.
const RECORDED_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/recorded");
/// Set to `1` to (re)write the recorded transcripts from the real ZooKeeper's.
const RECORD_ENV: &str = "CORRAL_RECORD_CLI";

/// Checks the embedded server's transcripts against the real server's and the recorded ones
/// (`tests/common/recorded/cli-<name>.txt`, with `<chroot>` for the chroot's path).
fn compare(servers: &Servers, name: &str, embedded: &[Transcript], real: Option<&[Transcript]>) {
    let file = format!("{RECORDED_DIR}/cli-{name}.txt");
    if std::env::var(RECORD_ENV).is_ok_and(|v| v == "1") {
        let real = real.expect("recording needs a real ZooKeeper");
        std::fs::write(&file, render(real).replace(&servers.chroot, "<chroot>")).expect("write the recording");
    }
    let recorded = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    let recorded = parse(&recorded.replace("<chroot>", &servers.chroot));
    assert_eq!(recorded.len(), embedded.len(), "{file} has a transcript per session");
    for (i, got) in embedded.iter().enumerate() {
        if let Some(real) = real {
            assert_transcripts_eq(&format!("{name}, session {}: embedded vs ZooKeeper", i + 1), got, &real[i]);
        }
        assert_transcripts_eq(&format!("{name}, session {}: embedded vs {file}", i + 1), got, &recorded[i]);
    }
}

/// The text form of transcripts: `--- session N`, then the lines, `event: …` lines and `exit: …`.
fn render(transcripts: &[Transcript]) -> String {
    let mut out = String::new();
    for (i, t) in transcripts.iter().enumerate() {
        out.push_str(&format!("--- session {}\n", i + 1));
        for line in &t.lines {
            out.push_str(line);
            out.push('\n');
        }
        for event in &t.events {
            out.push_str(&format!("event: {event}\n"));
        }
        out.push_str(&format!("exit: {:?}\n", t.exit));
    }
    out
}

fn parse(text: &str) -> Vec<Transcript> {
    let mut out: Vec<Transcript> = Vec::new();
    for line in text.lines() {
        if line.starts_with("--- session ") {
            out.push(Transcript { lines: Vec::new(), events: Vec::new(), exit: None });
            continue;
        }
        let t = out.last_mut().expect("a `--- session` line first");
        if let Some(event) = line.strip_prefix("event: ") {
            t.events.push(event.to_owned());
        } else if let Some(exit) = line.strip_prefix("exit: ") {
            t.exit = match exit {
                "None" => None,
                code => Some(code.trim_start_matches("Some(").trim_end_matches(')').parse().expect("an exit code")),
            };
        } else {
            t.lines.push(line.to_owned());
        }
    }
    out
}

fn assert_transcripts_eq(what: &str, got: &Transcript, want: &Transcript) {
    if got == want {
        return;
    }
    let mut report = format!("{what}: transcripts differ (left: embedded, right: reference)\n");
    let n = got.lines.len().max(want.lines.len());
    for i in 0..n {
        let l = got.lines.get(i).map_or("<none>", String::as_str);
        let r = want.lines.get(i).map_or("<none>", String::as_str);
        let mark = if l == r { "  " } else { "!!" };
        report.push_str(&format!("{mark} {l:<50} | {r}\n"));
    }
    report.push_str(&format!(
        "events:\n  {:?}\n  {:?}\nexit: {:?} vs {:?}\n",
        got.events, want.events, got.exit, want.exit
    ));
    panic!("{report}");
}

#[test]
fn tree_commands_print_what_zookeeper_prints() {
    let Some(cli) = cli() else { return };
    let servers = Servers::start("cli-tree");
    let first: &[&str] = &[
        "create /n hello",
        "get -s /n",
        "set /n world",
        "set -s /n again",
        "set /n v -v 5",
        "create /n",
        "get /missing",
        "delete /missing",
        "ls /missing",
        "stat /missing",
        "create /n/c1 x",
        "create /n/c2",
        "ls -s /n",
        "delete /n/c1",
        "delete /n",
        "delete -v 9 /n/c2",
        "stat /n",
        "create -s /n/q- a",
        "create -s /n/q- b",
        "delete /n/q-0000000003",
        "create -s /n/q-",
        "create /nodata",
        "get -s /nodata",
        "create -e /eph e",
        "create -e -s /n/eseq-",
        "create /eph/child",
        "getEphemerals",
        "getEphemerals /n",
        "stat /eph",
        "create -c /cont",
        "create /cont/child",
        "stat /cont",
        "create -t 600000 /ttl t",
        "stat /ttl",
        "create -t 600000 -s /n/tseq-",
        "addauth digest alice:pw",
        "create /acl x auth::cdrwa",
        "getAcl /acl",
        "setAcl /n world:anyone:cdra",
        "getAcl -s /n",
        "ls -R /",
        "getAllChildrenNumber /",
        "getAllChildrenNumber /n",
        "stat /",
        "whoami",
    ];
    let second: &[&str] =
        &["ls /", "ls /n", "getEphemerals", "get /acl", "set /n x", "stat /n", "deleteall /n", "stat /", "ls /"];
    let (embedded, real) = servers.run(cli, &[first, second]);
    compare(&servers, "tree", &embedded, real.as_deref());
    servers.shutdown();
}

#[test]
fn watch_commands_deliver_what_zookeeper_delivers() {
    let Some(cli) = cli() else { return };
    let servers = Servers::start("cli-watch");
    let script: &[&str] = &[
        "create /w",
        "addWatch /w",
        "addWatch -m PERSISTENT_RECURSIVE /r",
        "create /r",
        "create /r/a",
        "set /r/a x",
        "delete /r/a",
        "set /w 1",
        "create /w/c",
        "delete /w/c",
        "get -w /w",
        "set /w 2",
        "ls -w /r",
        "create /r/b",
        "stat -w /gone",
        "create /gone",
        "delete /gone",
        "removewatches /w",
        "set /w 3",
        "addWatch /missing-parent/x",
        // The CLI prints events from its own thread: give it a few round trips to catch up.
        "ls /",
        "ls /",
        "ls /",
    ];
    let (embedded, real) = servers.run(cli, &[script]);
    compare(&servers, "watch", &embedded, real.as_deref());
    servers.shutdown();
}

/// ZooKeeper's CLI reads back from a restarted durable server (a data directory) what it wrote
/// before the restart: the same reads print the same transcript before and after.
#[test]
fn a_restarted_durable_server_serves_what_the_cli_wrote() {
    let Some(cli) = cli() else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let start = || runtime.block_on(Server::builder().data_dir(dir.path()).start()).expect("start the durable server");
    let write: &[&str] = &[
        "create /d hello",
        "create -s /d/q- a",
        "create -s /d/q- b",
        "set /d world",
        "create -t 600000 /d/ttl t",
        "create -c /d/cont",
        "create /d/cont/c",
        "create /d/nodata",
        "setAcl /d/q-0000000000 world:anyone:r",
        "delete /d/q-0000000001",
    ];
    let read: &[&str] = &[
        "get -s /d",
        "ls -R /d",
        "get -s /d/q-0000000000",
        "getAcl -s /d/q-0000000000",
        "stat /d/ttl",
        "stat /d/cont",
        "get -s /d/nodata",
        "getAllChildrenNumber /d",
    ];
    let server = start();
    let written = cli.run(&server.connect_string(), write);
    assert_eq!(written.exit, Some(0), "{written:?}");
    let before = cli.run(&server.connect_string(), read);
    runtime.block_on(server.shutdown());
    let server = start();
    let after = cli.run(&server.connect_string(), read);
    assert_transcripts_eq("reads after the restart vs before", &after, &before);
    assert!(before.lines.iter().any(|l| l == "world"), "{before:?}");
    runtime.block_on(server.shutdown());
}
