//! Starting Debian's ZooKeeper (`/usr/share/java/zookeeper.jar`) as a child of the test process.
//!
//! The JVM runs under the `guard` module's `sh` guard, so that it stops, and its directory goes,
//! when the test process exits however it exits (SIGTERM, SIGKILL after 10 s). The guard only
//! signals the PID while its command line names `<dir>/conf/zoo.cfg`.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use std::{fs, thread};

use crate::guard::{self, Guarded, Spec, fresh_dir};
use crate::ports::free_port;
use crate::wire;

/// The ZooKeeper server jar of Debian's `zookeeper` package. Its manifest `Class-Path` pulls in the
/// rest (jute, netty, slf4j-api, …) from `/usr/share/java`.
pub(crate) const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
pub(crate) const SLF4J_SIMPLE_JAR: &str = "/usr/share/java/slf4j-simple.jar";
const SLF4J_LOG4J12_JAR: &str = "/usr/share/java/slf4j-log4j12.jar";
const LOG4J_JAR: &str = "/usr/share/java/log4j-1.2.jar";
const MAIN_CLASS: &str = "org.apache.zookeeper.server.ZooKeeperServerMain";
/// The main class of a quorum member (see [`Extra::myid`]).
pub(crate) const QUORUM_MAIN_CLASS: &str = "org.apache.zookeeper.server.quorum.QuorumPeerMain";
pub(crate) const INSTALL_HINT: &str = "apt-get install zookeeper libslf4j-java";

/// How long a server may take to report a `Mode:` in `srvr`.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a port is tried again when the server could not bind it (another process took it).
const BIND_ATTEMPTS: usize = 5;
const POLL_INTERVAL: Duration = Duration::from_millis(100);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
const LOG_FILE: &str = "zookeeper.log";
const LOG_TAIL_LINES: usize = 25;
/// How long the JVM has between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A ZooKeeper server process owned by this test process.
#[derive(Debug)]
pub(crate) struct LocalServer {
    addr: SocketAddr,
    process: Guarded,
}

impl LocalServer {
    /// The loopback address the server listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The directory holding the server's configuration, data and log; removed when the server stops.
    pub(crate) fn dir(&self) -> &Path {
        self.process.dir()
    }

    /// The JVM's process id.
    pub(crate) fn java_pid(&self) -> u32 {
        self.process.pid()
    }
}

/// The last lines of the server's log in `dir`, for failure messages.
fn log_tail(dir: &Path) -> String {
    guard::log_tail(&dir.join(LOG_FILE), "", LOG_TAIL_LINES)
}

/// Why one start attempt failed.
#[derive(Debug)]
enum Failure {
    /// The server could not bind its port, or died without saying why: try another port.
    PortTaken(String),
    /// Anything else: give up.
    Fatal(String),
}

/// Starts a standalone server on a free loopback port, trying another port if the chosen one was taken
/// in the meantime.
pub(crate) fn start(tick_time_ms: u32) -> Result<LocalServer, String> {
    start_with_ports(tick_time_ms, free_port)
}

/// What a private server adds to the standard configuration: `zoo.cfg` lines and JVM arguments
/// (see the `secured` module).
#[derive(Debug, Clone, Default)]
pub(crate) struct Extra {
    /// More `zoo.cfg` lines; `{client_port}` stands for the client port chosen.
    pub(crate) cfg: String,
    pub(crate) jvm: Vec<String>,
    pub(crate) classpath: Vec<String>,
    /// Run as a quorum member with this `myid` (`QuorumPeerMain`) instead of standalone.
    pub(crate) myid: Option<u32>,
}

/// [`start`], with `extra` configuration.
pub(crate) fn start_with_extra(tick_time_ms: u32, extra: &Extra) -> Result<LocalServer, String> {
    start_inner(tick_time_ms, free_port, extra)
}

/// [`start`], with the ports to try supplied by `next_port`.
pub(crate) fn start_with_ports(
    tick_time_ms: u32,
    next_port: impl FnMut() -> io::Result<u16>,
) -> Result<LocalServer, String> {
    start_inner(tick_time_ms, next_port, &Extra::default())
}

fn start_inner(
    tick_time_ms: u32,
    mut next_port: impl FnMut() -> io::Result<u16>,
    extra: &Extra,
) -> Result<LocalServer, String> {
    let java = find_java()?;
    if !Path::new(ZOOKEEPER_JAR).is_file() {
        return Err(format!("{ZOOKEEPER_JAR} not found (install Debian's ZooKeeper: `{INSTALL_HINT}`)"));
    }
    let mut last = String::new();
    for _ in 0..BIND_ATTEMPTS {
        let port = next_port().map_err(|err| format!("could not find a free port on 127.0.0.1: {err}"))?;
        match launch(&java, tick_time_ms, port, extra) {
            Ok(server) => return Ok(server),
            Err(Failure::PortTaken(reason)) => last = reason,
            Err(Failure::Fatal(reason)) => return Err(reason),
        }
    }
    Err(format!("ZooKeeper could not bind a port in {BIND_ATTEMPTS} attempts; the last: {last}"))
}

/// `$JAVA_HOME/bin/java` if it exists, otherwise `java` from `PATH`.
pub(crate) fn find_java() -> Result<PathBuf, String> {
    crate::java::jdk_tool("java")
        .map_err(|why| format!("{why} (Debian's `zookeeper` package brings one: `{INSTALL_HINT}`)"))
}

/// Writes `conf/zoo.cfg` (and a log4j configuration when log4j is the logging binding) into `dir`,
/// and returns the java arguments.
fn prepare(dir: &Path, tick_time_ms: u32, port: u16, extra: &Extra) -> io::Result<Vec<String>> {
    let conf = dir.join("conf");
    let data = dir.join("data");
    fs::create_dir(&conf)?;
    fs::create_dir(&data)?;
    let cfg = conf.join("zoo.cfg");
    fs::write(
        &cfg,
        format!(
            "tickTime={tick_time_ms}\n\
             dataDir={}\n\
             clientPort={port}\n\
             clientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n\
             4lw.commands.whitelist=*\n\
             maxClientCnxns=0\n\
             {}",
            data.display(),
            extra.cfg.replace("{client_port}", &port.to_string())
        ),
    )?;
    if let Some(id) = extra.myid {
        fs::write(data.join("myid"), format!("{id}\n"))?;
    }

    // ZooKeeper logs through slf4j; without a binding it still runs, but silently.
    let mut classpath = vec![conf.display().to_string(), ZOOKEEPER_JAR.to_owned()];
    let mut args = vec!["-Xmx512m".to_owned()];
    if Path::new(SLF4J_SIMPLE_JAR).is_file() {
        classpath.push(SLF4J_SIMPLE_JAR.to_owned());
        args.push("-Dorg.slf4j.simpleLogger.showDateTime=true".to_owned());
    } else if Path::new(SLF4J_LOG4J12_JAR).is_file() && Path::new(LOG4J_JAR).is_file() {
        classpath.extend([SLF4J_LOG4J12_JAR.to_owned(), LOG4J_JAR.to_owned()]);
        let properties = conf.join("log4j.properties");
        fs::write(
            &properties,
            "log4j.rootLogger=INFO, CONSOLE\n\
             log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\n\
             log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\n\
             log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t:%C{1}@%L] - %m%n\n",
        )?;
        args.push(format!("-Dlog4j.configuration=file:{}", properties.display()));
    }
    classpath.extend(extra.classpath.iter().cloned());
    args.extend(extra.jvm.iter().cloned());
    args.extend([
        "-Djava.net.preferIPv4Stack=true".to_owned(),
        "-Dzookeeper.extendedTypesEnabled=true".to_owned(),
        "-cp".to_owned(),
        classpath.join(":"),
        if extra.myid.is_some() { QUORUM_MAIN_CLASS } else { MAIN_CLASS }.to_owned(),
        cfg.display().to_string(),
    ]);
    Ok(args)
}

/// One attempt: start the server on `port` and wait until it serves.
fn launch(java: &Path, tick_time_ms: u32, port: u16, extra: &Extra) -> Result<LocalServer, Failure> {
    let dir = fresh_dir("corral-zookeeper").map_err(Failure::Fatal)?;
    let args = match prepare(&dir, tick_time_ms, port, extra) {
        Ok(args) => args,
        Err(err) => {
            let _ = fs::remove_dir_all(&dir);
            return Err(Failure::Fatal(format!(
                "could not write ZooKeeper's configuration in {}: {err}",
                dir.display()
            )));
        }
    };
    let marker = dir.join("conf").join("zoo.cfg");
    let spec =
        Spec { name: "corral-zookeeper", dir: &dir, marker: marker.as_os_str(), log: LOG_FILE, grace: STOP_GRACE };
    let process = match Guarded::spawn(&spec, java, args, |_| {}) {
        Ok(process) => process,
        Err(reason) => {
            // `sh` may not have run: the directory is ours to remove (a no-op if the guard did).
            let _ = fs::remove_dir_all(&dir);
            return Err(Failure::Fatal(reason));
        }
    };

    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if !process.alive() {
            let tail = log_tail(process.dir());
            return Err(if tail.contains("Address already in use") {
                Failure::PortTaken(format!("port {port} was taken"))
            } else if !["Exception", "ERROR", "Error"].iter().any(|w| tail.contains(w)) {
                // Gone before logging any reason (killed from outside, or starved at start on a
                // busy machine): worth another try on a fresh port.
                Failure::PortTaken(format!("ZooKeeper on port {port} exited without a reason in its log"))
            } else {
                Failure::Fatal(format!("ZooKeeper exited during startup; {tail}"))
            });
        }
        if is_serving(addr) {
            // Another process may have bound the port between `free_port` and java's bind (for
            // instance another test binary's ZooKeeper): make sure the server that answers is ours.
            let data_dir = format!("dataDir={}", process.dir().join("data").display());
            return match wire::four_letter(addr, "conf", PROBE_TIMEOUT) {
                Ok(conf) if conf.lines().any(|line| line.starts_with(&data_dir)) => Ok(LocalServer { addr, process }),
                _ => Err(Failure::PortTaken(format!("port {port} is served by another ZooKeeper"))),
            };
        }
        if Instant::now() >= deadline {
            return Err(Failure::Fatal(format!(
                "ZooKeeper on {addr} did not report a `Mode:` in `srvr` within {} s; {}",
                START_TIMEOUT.as_secs(),
                log_tail(process.dir())
            )));
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Whether `srvr` answers with a `Mode:` line. (`ruok` answers `imok` before the server serves.)
pub(crate) fn is_serving(addr: SocketAddr) -> bool {
    wire::four_letter(addr, "srvr", PROBE_TIMEOUT).is_ok_and(|reply| reply.lines().any(|l| l.starts_with("Mode:")))
}
