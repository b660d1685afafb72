//! Runs the built `corral` binary against an embedded server.

#![allow(dead_code, unreachable_pub)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use corral_recipes::{Client, Framework};
use corral_server::testing::TestingServer;

/// How long anything in these tests may take before it counts as hung.
pub const T: Duration = Duration::from_secs(20);

/// What one run of the binary left behind.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The stdout as JSON; panics (with the run) unless it succeeded.
    pub fn json(&self) -> serde_json::Value {
        assert_eq!(self.code, 0, "{self:?}");
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// The binary with a clean environment: no `CORRAL_ZK`, no colour.
pub fn command(zk: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corral"));
    cmd.env_remove("CORRAL_ZK")
        .env_remove("CORRAL_AUTH")
        .env("NO_COLOR", "1")
        .arg("--zk")
        .arg(zk)
        .arg("--timeout")
        .arg("5s")
        .args(args);
    cmd
}

/// Runs `corral --zk ZK ARGS…` to completion.
pub fn corral(zk: &str, args: &[&str]) -> Run {
    let output = command(zk, args).stdin(Stdio::null()).output().expect("run corral");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `corral --zk ZK --json ARGS…` and parses its document.
pub fn corral_json(zk: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    corral(zk, &all).json()
}

/// Starts the binary with piped stdout and stderr (for `watch` and `create --ephemeral`).
pub fn spawn(zk: &str, args: &[&str]) -> Child {
    command(zk, args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn corral")
}

/// Sends SIGINT (Ctrl-C) to a child this test started.
pub fn interrupt(child: &Child) {
    let status = Command::new("kill").arg("-INT").arg(child.id().to_string()).status().expect("run kill");
    assert!(status.success());
}

/// An embedded server and a framework on it.
pub async fn server() -> (TestingServer, String) {
    let server = TestingServer::start().await.expect("start server");
    let zk = server.connect_string();
    (server, zk)
}

/// A framework on `zk`.
pub fn framework(zk: &str) -> Framework {
    Framework::builder(zk).session_timeout(Duration::from_secs(10)).start().expect("start framework")
}

/// A connected client on `zk`.
pub async fn client(zk: &str) -> Client {
    Client::connect(zk).await.expect("connect")
}

/// Waits until `path` has `n` children (the recipes' waiters are in place).
pub async fn until_children(client: &Client, path: &str, n: usize) {
    tokio::time::timeout(T, async {
        loop {
            if client.get_children(path).await.map(|c| c.len()).unwrap_or(0) == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{path} never had {n} children"));
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// The session id as the CLI prints it.
pub fn hex(id: i64) -> String {
    format!("{id:#x}")
}
