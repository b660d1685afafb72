//! Programs that cannot outlive the test process: ZooKeeper's JVM (`local`) and `krb5kdc`
//! (`kerberos`), each with a fresh directory of its own.
//!
//! The program is started by a small `sh` guard that holds the read end of a pipe as its stdin;
//! the test process keeps the write end. When the test process exits — normally, by a panic, or
//! killed — the kernel closes that pipe, `cat` in the guard sees end-of-file, and the guard stops
//! the program by its PID (SIGTERM, then SIGKILL after a grace period) and removes the
//! directory. Statics are never dropped, so nothing in Rust could do this at exit. Dropping the
//! [`Guarded`] does the same at once. The PID is only signalled while `/proc/<pid>/cmdline` still
//! contains a marker (a path in the program's directory), so a PID that was reused after the
//! program died on its own is never touched.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use std::{env, fs, io};

/// `sh -c GUARD <name> <dir> <marker> <log> <grace, in tenths of a second> <program> <args>…`:
/// starts the program in the background (its output to `<dir>/<log>`), prints its PID, and
/// blocks reading stdin; then stops the program and removes `<dir>`.
const GUARD: &str = r#"
dir=$1
marker=$2
log=$3
grace=$4
shift 4
alive() {
  if [ -r /proc/self/cmdline ]; then
    grep -qaF -- "$marker" "/proc/$pid/cmdline" 2>/dev/null
  else
    kill -0 "$pid" 2>/dev/null
  fi
}
"$@" </dev/null >"$dir/$log" 2>&1 &
pid=$!
echo "$pid"
exec >/dev/null
cat >/dev/null
if alive; then
  kill -TERM "$pid" 2>/dev/null
  n=0
  while alive && [ "$n" -lt "$grace" ]; do
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

/// How to run one program under the guard.
#[derive(Debug)]
pub(crate) struct Spec<'a> {
    /// The guard's `$0`, as `ps` shows it (`corral-zookeeper`, `corral-kdc`).
    pub(crate) name: &'a str,
    /// The program's directory, removed when it stops.
    pub(crate) dir: &'a Path,
    /// What the program's command line contains while it is this program (a path in `dir`).
    pub(crate) marker: &'a OsStr,
    /// The file in `dir` that gets the program's stdout and stderr.
    pub(crate) log: &'a str,
    /// How long the program has between SIGTERM and SIGKILL.
    pub(crate) grace: Duration,
}

/// A program running under the guard; dropping it stops the program and removes its directory.
#[derive(Debug)]
pub(crate) struct Guarded {
    child: Child,
    /// The pipe the guard blocks on; closing it is the signal to stop.
    stdin: Option<ChildStdin>,
    pid: u32,
    dir: PathBuf,
    marker: Vec<u8>,
}

impl Guarded {
    /// Starts `program` with `args` under the guard; `configure` adds to the command (its
    /// environment, say). From the moment `sh` runs, `spec.dir` is removed however this ends.
    ///
    /// # Errors
    ///
    /// When `sh` cannot run (`spec.dir` is left to the caller then) or the guard reports no PID.
    pub(crate) fn spawn(
        spec: &Spec<'_>,
        program: &Path,
        args: impl IntoIterator<Item = impl AsRef<OsStr>>,
        configure: impl FnOnce(&mut Command),
    ) -> Result<Self, String> {
        let grace_tenths = (spec.grace.as_millis() / 100).to_string();
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(GUARD)
            .arg(spec.name)
            .arg(spec.dir)
            .arg(spec.marker)
            .arg(spec.log)
            .arg(grace_tenths)
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        configure(&mut command);
        let what = program.file_name().unwrap_or(program.as_os_str()).to_string_lossy().into_owned();
        let mut child = command.spawn().map_err(|e| format!("could not run `sh` to start {what}: {e}"))?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        let read = child.stdout.take().map(|out| BufReader::new(out).read_line(&mut line));
        // From here on, dropping `guarded` stops the program and removes the directory.
        let mut guarded =
            Self { child, stdin, pid: 0, dir: spec.dir.to_owned(), marker: spec.marker.as_encoded_bytes().to_vec() };
        guarded.pid = match read {
            Some(Ok(_)) => {
                line.trim().parse().map_err(|_| format!("the {what} guard printed {line:?} instead of a PID"))?
            }
            _ => return Err(format!("the {what} guard did not report {what}'s PID")),
        };
        Ok(guarded)
    }

    /// The program's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The program's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the program runs: its command line still contains the marker. A zombie has an
    /// empty command line; a reused PID has someone else's. Without `/proc` (not Linux) this
    /// says yes, and the callers' start timeouts decide instead.
    pub(crate) fn alive(&self) -> bool {
        match fs::read(format!("/proc/{}/cmdline", self.pid)) {
            Ok(cmdline) => contains(&cmdline, &self.marker),
            Err(_) => !Path::new("/proc/self").exists(),
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // Closing the pipe makes the guard stop the program and clean up; then reap the guard.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// The last `lines` lines of the log at `log`, for a failure message: `last lines of
/// <what><path>:` and the lines, or why the log could not be read.
pub(crate) fn log_tail(log: &Path, what: &str, lines: usize) -> String {
    match fs::read(log) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let tail = all[all.len().saturating_sub(lines)..].join("\n");
            format!("last lines of {what}{}:\n{tail}", log.display())
        }
        Err(err) => format!("(could not read {}: {err})", log.display()),
    }
}

/// A new, empty directory `<prefix>-<pid>-<n>` under the system temp dir.
pub(crate) fn fresh_dir(prefix: &str) -> Result<PathBuf, String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = env::temp_dir();
    let pid = std::process::id();
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("{prefix}-{pid}-{n}"));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => continue,
            Err(e) => return Err(format!("could not create {}: {e}", dir.display())),
        }
    }
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
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

    #[test]
    fn the_guard_stops_its_program_and_removes_its_directory() {
        let dir = fresh_dir("corral-guard-test").unwrap();
        let marker = dir.join("marker");
        fs::write(&marker, "").unwrap();
        let spec = Spec {
            name: "corral-guard-test",
            dir: &dir,
            marker: marker.as_os_str(),
            log: "out",
            grace: Duration::from_secs(1),
        };
        // A program that runs until it is stopped, with the marker in its command line.
        let program = ["-c", "while :; do sleep 0.1; done"].map(OsStr::new);
        let guarded = Guarded::spawn(&spec, Path::new("sh"), program.into_iter().chain([marker.as_os_str()]), |_| {})
            .expect("start");
        let pid = guarded.pid();
        assert!(guarded.alive(), "the program runs");
        drop(guarded);
        // The guard is reaped in drop, after it has stopped the program and removed the directory.
        assert!(!dir.exists(), "{} is left", dir.display());
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(!contains(&cmdline, marker.as_os_str().as_encoded_bytes()), "the program {pid} still runs");
    }
}
