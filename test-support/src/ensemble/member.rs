//! One member on disk and as a process: its directory and `zoo.cfg`, the `sh` wrapper that
//! holds its JVM (and kills it when the test process goes away), and the small OS helpers
//! around them (signals, `/proc` checks, fresh directories).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::{env, fs};

use super::{EnsembleBuilder, LOG_FILE, MemberId};
use crate::local::{QUORUM_MAIN_CLASS, SLF4J_SIMPLE_JAR, ZOOKEEPER_JAR};

/// The member wrapper: `sh -c WRAPPER corral-zk-member <cfg> <log> <java> <args>…`.
///
/// It starts java in the background (output appended to `<log>`), prints java's PID and blocks
/// reading its stdin. Once stdin is closed it kills java with SIGKILL, but only while
/// `/proc/<pid>/cmdline` still names `<cfg>` (a PID reused after java died is never touched).
pub(super) const WRAPPER: &str = r#"
cfg=$1
log=$2
shift 2
"$@" </dev/null >>"$log" 2>&1 &
pid=$!
echo "$pid"
exec >/dev/null
cat >/dev/null
if grep -qaF -- "$cfg" "/proc/$pid/cmdline" 2>/dev/null; then
  kill -KILL "$pid" 2>/dev/null
fi
wait
"#;

/// The directory guard: removes `<dir>` once its stdin closes, unless `<dir>/KEEP` exists.
const CLEANUP: &str = r#"
cat >/dev/null
[ -e "$1/KEEP" ] || rm -rf -- "$1"
"#;

/// One member: its ports, its directory, and its JVM while it runs.
#[derive(Debug)]
pub(super) struct Member {
    pub(super) client: SocketAddr,
    /// The TLS client port, with [`EnsembleBuilder::tls`].
    pub(super) secure: Option<SocketAddr>,
    pub(super) dir: PathBuf,
    pub(super) process: Option<Wrapper>,
    /// The java command line, kept to restart the member.
    pub(super) args: Vec<String>,
}

impl Member {
    pub(super) fn cfg(&self) -> PathBuf {
        self.dir.join("conf").join("zoo.cfg")
    }

    pub(super) fn log(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// Whether the JVM of this member is alive (a zombie or a reused PID is not).
    pub(super) fn alive(&self) -> bool {
        self.process.as_ref().is_some_and(|p| cmdline_names(p.java_pid, &self.cfg()))
    }
}

/// The `sh` wrapper of one JVM; dropping it kills the JVM and reaps the wrapper.
#[derive(Debug)]
pub(super) struct Wrapper {
    pub(super) child: Child,
    pub(super) stdin: Option<ChildStdin>,
    pub(super) java_pid: u32,
}

impl Drop for Wrapper {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// Writes one member's `conf/zoo.cfg` and `data/myid`, and returns the java arguments.
/// `ports` are the plain and the TLS client port (the second used with [`EnsembleBuilder::tls`]).
pub(super) fn prepare(
    builder: &EnsembleBuilder,
    dir: &Path,
    id: MemberId,
    [client, secure]: [u16; 2],
    servers: &str,
    netty_jars: &[String],
) -> io::Result<Vec<String>> {
    let conf = dir.join("conf");
    let data = dir.join("data");
    fs::create_dir_all(&conf)?;
    fs::create_dir_all(&data)?;
    fs::write(data.join("myid"), format!("{id}\n"))?;
    let tick = builder.tick_time.as_millis().max(1);
    let max_session = builder.max_session_timeout.map_or(tick * 20, |t| t.as_millis());
    let cfg = conf.join("zoo.cfg");
    fs::write(
        &cfg,
        format!(
            "tickTime={tick}\n\
             initLimit=20\n\
             syncLimit=10\n\
             maxSessionTimeout={max_session}\n\
             dataDir={}\n\
             clientPort={client}\n\
             clientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n\
             4lw.commands.whitelist=*\n\
             maxClientCnxns=0\n\
             {}{}{}{servers}",
            data.display(),
            builder.tls.as_ref().map(|tls| crate::secured::tls_cfg(tls, secure)).unwrap_or_default(),
            builder.jaas.as_deref().map(|jaas| crate::secured::jaas_settings(jaas).0).unwrap_or_default(),
            builder.extra_cfg.iter().map(|line| format!("{line}\n")).collect::<String>(),
        ),
    )?;
    let mut classpath = vec![conf.display().to_string(), ZOOKEEPER_JAR.to_owned()];
    classpath.extend(netty_jars.iter().cloned());
    let mut args = vec![
        format!("-Xmx{}m", builder.heap_mb),
        "-Xss512k".to_owned(),
        "-XX:+UseSerialGC".to_owned(),
        "-XX:TieredStopAtLevel=1".to_owned(),
        "-XX:-UsePerfData".to_owned(),
        "-Djava.net.preferIPv4Stack=true".to_owned(),
        "-Dzookeeper.extendedTypesEnabled=true".to_owned(),
        // A dead peer is found fast on loopback; keep elections from backing off for a minute.
        "-Dzookeeper.cnxTimeout=1000".to_owned(),
        "-Dzookeeper.fastleader.maxNotificationInterval=1000".to_owned(),
    ];
    if let Some(jaas) = &builder.jaas {
        args.push(crate::secured::jaas_settings(jaas).1);
    }
    if let Some(krb5_conf) = &builder.krb5_conf {
        args.push(format!("-Djava.security.krb5.conf={}", krb5_conf.display()));
    }
    if Path::new(SLF4J_SIMPLE_JAR).is_file() {
        classpath.push(SLF4J_SIMPLE_JAR.to_owned());
        args.push("-Dorg.slf4j.simpleLogger.showDateTime=true".to_owned());
    }
    args.extend(["-cp".to_owned(), classpath.join(":"), QUORUM_MAIN_CLASS.to_owned(), cfg.display().to_string()]);
    Ok(args)
}

/// Starts the `sh` guard that removes `dir` when the test process exits.
pub(super) fn spawn_cleanup(dir: &Path) -> Result<Wrapper, String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(CLEANUP)
        .arg("corral-ensemble-cleanup")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|err| format!("could not run `sh`: {err}"))?;
    let stdin = child.stdin.take();
    Ok(Wrapper { child, stdin, java_pid: 0 })
}

/// Sends `SIG<name>` to `pid` with `kill(1)`.
pub(super) fn signal(pid: u32, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status();
    if !status.is_ok_and(|s| s.success()) {
        tracing::warn!(pid, signal = name, "kill failed");
    }
}

/// Whether `pid` is a live process started for `cfg`: not gone, not a zombie, and not a reused
/// PID (its command line names `cfg`). An empty command line is a process in the middle of
/// exec (the wrapper reports the PID before java has replaced the shell): alive.
pub(super) fn cmdline_names(pid: u32, cfg: &Path) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state follows the command name, which is in parentheses and may contain anything.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
    if matches!(state, None | Some('Z' | 'X' | 'x')) {
        return false;
    }
    match fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) if cmdline.is_empty() => true,
        Ok(cmdline) => {
            let needle = cfg.as_os_str().as_encoded_bytes();
            cmdline.windows(needle.len()).any(|w| w == needle)
        }
        Err(_) => false,
    }
}

pub(super) fn append_line(path: &Path, line: &str) -> io::Result<()> {
    let mut file = fs::OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(file, "{line}")
}

pub(super) fn fresh_dir() -> Result<PathBuf, String> {
    let base = env::temp_dir();
    let pid = std::process::id();
    for n in 0..1000 {
        let dir = base.join(format!("corral-ensemble-{pid}-{n}"));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(format!("could not create {}: {err}", dir.display())),
        }
    }
    Err(format!("could not create a fresh corral-ensemble-{pid}-* directory in {}", base.display()))
}
