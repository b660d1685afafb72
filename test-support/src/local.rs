//! Starting Debian's ZooKeeper (`/usr/share/java/zookeeper.jar`) as a child of the test process.
//!
//! The JVM is started by a small `sh` wrapper that holds the read end of a pipe as its stdin.
//! The test process keeps the write end. When the test process exits — normally, by a panic,
//! or killed — the kernel closes that pipe, `cat` in the wrapper sees end-of-file, and the
//! wrapper stops the JVM by its PID and removes the server's directory. Statics are never
//! dropped, so nothing in Rust could do this at exit.

use std::io::{self, BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};
use std::{env, fs, thread};

use crate::ports::free_port;
use crate::wire;

/// The ZooKeeper server jar of Debian's `zookeeper` package. Its manifest `Class-Path` pulls in the
/// rest (jute, netty, slf4j-api, …) from `/usr/share/java`.
pub(crate) const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
const SLF4J_SIMPLE_JAR: &str = "/usr/share/java/slf4j-simple.jar";
const SLF4J_LOG4J12_JAR: &str = "/usr/share/java/slf4j-log4j12.jar";
const LOG4J_JAR: &str = "/usr/share/java/log4j-1.2.jar";
const MAIN_CLASS: &str = "org.apache.zookeeper.server.ZooKeeperServerMain";
/// The main class of a quorum member (see [`Extra::myid`]).
const QUORUM_MAIN_CLASS: &str = "org.apache.zookeeper.server.quorum.QuorumPeerMain";
const INSTALL_HINT: &str = "apt-get install zookeeper libslf4j-java";

/// How long a server may take to report a `Mode:` in `srvr`.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a port is tried again when the server could not bind it (another process took it).
const BIND_ATTEMPTS: usize = 5;
const POLL_INTERVAL: Duration = Duration::from_millis(100);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
const LOG_FILE: &str = "zookeeper.log";
const LOG_TAIL_LINES: usize = 25;

/// The wrapper: `sh -c WRAPPER corral-zookeeper <dir> <java> <args>…`.
///
/// It starts java in the background (output to `<dir>/zookeeper.log`), prints java's PID, and
/// blocks reading its stdin. Once stdin is closed it sends SIGTERM to that PID, SIGKILL after
/// 10 s, and removes `<dir>`. The PID is only signalled while `/proc/<pid>/cmdline` still names
/// `<dir>/conf/zoo.cfg`, so a PID that was reused after java died on its own is never touched.
const WRAPPER: &str = r#"
dir=$1
shift
alive() {
  if [ -r /proc/self/cmdline ]; then
    grep -qaF -- "$dir/conf/zoo.cfg" "/proc/$pid/cmdline" 2>/dev/null
  else
    kill -0 "$pid" 2>/dev/null
  fi
}
"$@" </dev/null >"$dir/zookeeper.log" 2>&1 &
pid=$!
echo "$pid"
exec >/dev/null
cat >/dev/null
if alive; then
  kill -TERM "$pid" 2>/dev/null
  n=0
  while alive && [ "$n" -lt 100 ]; do
    sleep 0.1
    n=$((n + 1))
  done
  if alive; then
    kill -KILL "$pid" 2>/dev/null
  fi
fi
wait
rm -rf -- "$dir"
"#;

/// A ZooKeeper server process owned by this test process.
#[derive(Debug)]
pub(crate) struct LocalServer {
    addr: SocketAddr,
    #[allow(dead_code, reason = "held for its Drop, which stops the server; only tests read it")]
    process: Wrapper,
}

impl LocalServer {
    /// The loopback address the server listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The directory holding the server's configuration, data and log; removed when the server stops.
    pub(crate) fn dir(&self) -> &Path {
        &self.process.dir
    }

    /// The JVM's process id.
    #[cfg(test)]
    pub(crate) fn java_pid(&self) -> u32 {
        self.process.java_pid
    }
}

/// The `sh` wrapper process; dropping it stops the JVM and removes its directory.
#[derive(Debug)]
struct Wrapper {
    child: Child,
    /// The pipe the wrapper blocks on; closing it is the signal to stop.
    stdin: Option<ChildStdin>,
    java_pid: u32,
    dir: PathBuf,
}

impl Wrapper {
    fn java_alive(&self) -> bool {
        match fs::read(format!("/proc/{}/cmdline", self.java_pid)) {
            // A zombie has an empty command line; a reused PID has someone else's.
            Ok(cmdline) => contains(&cmdline, self.dir.join("conf").join("zoo.cfg").as_os_str().as_encoded_bytes()),
            // No /proc (not Linux): rely on the start timeout instead.
            Err(_) if !Path::new("/proc/self").exists() => true,
            Err(_) => false,
        }
    }

    fn log_tail(&self) -> String {
        let log = self.dir.join(LOG_FILE);
        match fs::read(&log) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
                format!("last lines of {}:\n{tail}", log.display())
            }
            Err(err) => format!("(could not read {}: {err})", log.display()),
        }
    }
}

impl Drop for Wrapper {
    fn drop(&mut self) {
        // Closing the pipe makes the wrapper stop java and clean up; then reap the wrapper.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
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
fn find_java() -> Result<PathBuf, String> {
    if let Some(home) = env::var_os("JAVA_HOME") {
        let java = Path::new(&home).join("bin").join("java");
        if java.is_file() {
            return Ok(java);
        }
    }
    env::var_os("PATH")
        .iter()
        .flat_map(env::split_paths)
        .map(|dir| dir.join("java"))
        .find(|java| java.is_file())
        .ok_or_else(|| {
            format!("no `java` in PATH or JAVA_HOME (Debian's `zookeeper` package brings one: `{INSTALL_HINT}`)")
        })
}

/// A new, empty directory under the system temp dir, named after this process.
fn fresh_dir() -> Result<PathBuf, String> {
    let base = env::temp_dir();
    let pid = std::process::id();
    for n in 0..1000 {
        let dir = base.join(format!("corral-zookeeper-{pid}-{n}"));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(format!("could not create {}: {err}", dir.display())),
        }
    }
    Err(format!("could not create a fresh corral-zookeeper-{pid}-* directory in {}", base.display()))
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
    let dir = fresh_dir().map_err(Failure::Fatal)?;
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
    let spawned = Command::new("sh")
        .arg("-c")
        .arg(WRAPPER)
        .arg("corral-zookeeper")
        .arg(&dir)
        .arg(java)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) => {
            let _ = fs::remove_dir_all(&dir);
            return Err(Failure::Fatal(format!("could not run `sh` to start ZooKeeper: {err}")));
        }
    };
    let stdin = child.stdin.take();
    let pid_line = child.stdout.take().map(|stdout| {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    // From here on, dropping `process` stops java and removes `dir`.
    let mut process = Wrapper { child, stdin, java_pid: 0, dir };
    process.java_pid = match pid_line {
        Some(Ok(line)) => line
            .trim()
            .parse()
            .map_err(|_| Failure::Fatal(format!("the ZooKeeper wrapper printed {line:?} instead of java's PID")))?,
        _ => {
            return Err(Failure::Fatal("the ZooKeeper wrapper did not report java's PID".to_owned()));
        }
    };

    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if !process.java_alive() {
            let tail = process.log_tail();
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
            let data_dir = format!("dataDir={}", process.dir.join("data").display());
            return match wire::four_letter(addr, "conf", PROBE_TIMEOUT) {
                Ok(conf) if conf.lines().any(|line| line.starts_with(&data_dir)) => Ok(LocalServer { addr, process }),
                _ => Err(Failure::PortTaken(format!("port {port} is served by another ZooKeeper"))),
            };
        }
        if Instant::now() >= deadline {
            return Err(Failure::Fatal(format!(
                "ZooKeeper on {addr} did not report a `Mode:` in `srvr` within {} s; {}",
                START_TIMEOUT.as_secs(),
                process.log_tail()
            )));
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Whether `srvr` answers with a `Mode:` line. (`ruok` answers `imok` before the server serves.)
pub(crate) fn is_serving(addr: SocketAddr) -> bool {
    wire::four_letter(addr, "srvr", PROBE_TIMEOUT).is_ok_and(|reply| reply.lines().any(|l| l.starts_with("Mode:")))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_finds_sub_slices() {
        assert!(contains(b"java\0-cp\0/tmp/corral-zookeeper-1-0/conf\0", b"/tmp/corral-zookeeper-1-0"));
        assert!(!contains(b"", b"/tmp/x"));
        assert!(!contains(b"anything", b""));
    }
}
