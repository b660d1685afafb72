//! Contenders as child processes of the test, driven over stdin/stdout.
//!
//! A [`Contender`] runs the `contender` binary of this crate (its path comes from the test:
//! `env!("CARGO_BIN_EXE_contender")`), or the Curator contender (`tests/java`). It answers with one event per line on stdout (see the
//! binary's docs); the test waits for lines with a bound on every wait. [`Contender::pause`]
//! and [`Contender::resume`] stop and continue the whole process with SIGSTOP and SIGCONT — a
//! stall the contender cannot notice — and only ever signal this child, by its PID.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// A contender process.
#[derive(Debug)]
pub struct Contender {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every line printed, with when the test read it.
    seen: Arc<Mutex<Vec<(Instant, String)>>>,
    stderr: PathBuf,
    paused: bool,
}

impl Contender {
    /// Starts `binary` as contender `name` with `args` (`key=value` words; `id=<name>` is added),
    /// its stderr going to `<log_dir>/<name>.log`.
    ///
    /// # Panics
    ///
    /// If the process cannot be started.
    pub fn spawn(binary: &Path, name: &str, args: &[String], log_dir: &Path) -> Self {
        Self::spawn_command(Command::new(binary), name, args, log_dir)
    }

    /// Like [`Contender::spawn`], for any program speaking the same line protocol (the Curator
    /// contender runs as `java … CuratorContender`): `command` gets `id=<name>` and `args`
    /// appended.
    ///
    /// # Panics
    ///
    /// If the process cannot be started.
    pub fn spawn_command(mut command: Command, name: &str, args: &[String], log_dir: &Path) -> Self {
        let stderr = log_dir.join(format!("{name}.log"));
        let file = fs::File::create(&stderr).unwrap_or_else(|e| panic!("create {}: {e}", stderr.display()));
        let mut child = command
            .arg(format!("id={name}"))
            .args(args)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start contender {name} ({command:?}): {e}"));
        let (tx, lines) = mpsc::unbounded_channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let all = seen.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                all.lock().unwrap_or_else(|p| p.into_inner()).push((Instant::now(), line.clone()));
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Self { name: name.to_owned(), child, stdin, lines, seen, stderr, paused: false }
    }

    /// The contender's name (its writer id).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line the contender printed so far.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(_, line)| line.clone()).collect()
    }

    /// When the contender first printed a line starting with `prefix` at or after `since` (as
    /// the test read it: the lines come through a pipe, so a few milliseconds late at most).
    pub fn first_since(&self, prefix: &str, since: Instant) -> Option<Instant> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter().find(|(at, line)| *at >= since && line.starts_with(prefix)).map(|(at, _)| *at)
    }

    /// How many lines printed so far start with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.seen().iter().filter(|line| line.starts_with(prefix)).count()
    }

    /// The last line printed so far that starts with `prefix`.
    pub fn last(&self, prefix: &str) -> Option<String> {
        self.seen().into_iter().rev().find(|line| line.starts_with(prefix))
    }

    /// The session the contender is on as far as it said (its last `state` line), 0 before one.
    pub fn session(&self) -> i64 {
        self.last("state").and_then(|line| line.split(' ').nth(2).and_then(|s| s.parse().ok())).unwrap_or(0)
    }

    /// Sends one command line.
    ///
    /// # Panics
    ///
    /// If the contender's stdin is closed.
    pub fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{command}").unwrap_or_else(|e| panic!("send {command:?} to {}: {e}", self.name));
    }

    /// Waits for the next line starting with `prefix` (skipping others) and returns it.
    ///
    /// # Panics
    ///
    /// When none came within `timeout`, or the contender exited; the message has everything it
    /// printed and the end of its stderr.
    pub async fn expect(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) if line.starts_with(prefix) => return line,
                Ok(Some(_)) => {}
                Ok(None) => panic!("{} exited before printing {prefix:?}\n{}", self.name, self.report()),
                Err(_) => panic!("{} printed no {prefix:?} within {timeout:?}\n{}", self.name, self.report()),
            }
        }
    }

    /// Waits until at least `n` lines printed so far start with `prefix`, without consuming
    /// any line from [`Contender::expect`].
    ///
    /// # Panics
    ///
    /// When that did not happen within `timeout`.
    pub async fn wait_count(&self, prefix: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.count(prefix) < n {
            assert!(
                Instant::now() < deadline,
                "{} printed fewer than {n} {prefix:?} within {timeout:?}\n{}",
                self.name,
                self.report()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the whole process (SIGSTOP).
    pub fn pause(&mut self) {
        signal(self.pid(), "STOP");
        self.paused = true;
    }

    /// Continues the process (SIGCONT).
    pub fn resume(&mut self) {
        signal(self.pid(), "CONT");
        self.paused = false;
    }

    /// Asks the contender to stop (it releases what it holds and closes its session) and waits
    /// for it to exit, killing it after `timeout`. Returns whether it exited by itself.
    pub fn stop(&mut self, timeout: Duration) -> bool {
        if self.paused {
            self.resume();
        }
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "stop");
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the contender printed, and the end of its stderr.
    pub fn report(&self) -> String {
        let seen = self.seen();
        let from = seen.len().saturating_sub(40);
        let err = fs::read_to_string(&self.stderr).unwrap_or_default();
        let err_lines: Vec<&str> = err.lines().collect();
        let err_tail = err_lines[err_lines.len().saturating_sub(30)..].join("\n");
        format!(
            "--- last stdout lines of {}:\n{}\n--- end of its stderr ({}):\n{err_tail}",
            self.name,
            seen[from..].join("\n"),
            self.stderr.display()
        )
    }
}

impl Drop for Contender {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if self.paused {
                signal(self.pid(), "CONT");
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if thread::panicking() {
            let _ = std::io::stderr().lock().write_all(format!("{}\n", self.report()).as_bytes());
        }
    }
}

/// Sends `SIG<name>` to our own child `pid` with `kill(1)`.
fn signal(pid: u32, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status();
    assert!(status.is_ok_and(|s| s.success()), "kill -{name} {pid} failed");
}
