//! Shared helpers for the client's integration tests: a server to talk to (a real ZooKeeper
//! from `corral-test-support`, or `CORRAL_TEST_ZK`), a private chroot per test. Faults between
//! the client and the server go through `corral_test_support::FaultProxy`.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use corral_core::{Client, CreateMode};

/// A test environment: the server's connect string and this test's chroot.
pub struct Env {
    pub hosts: String,
    pub chroot: String,
    /// Which server this is ("embedded" or "zookeeper"), for failure messages.
    pub kind: &'static str,
    /// Keeps an embedded server alive for the test.
    pub embedded: Option<std::sync::Arc<corral_server::testing::TestingServer>>,
}

impl Env {
    /// The connect string with this test's chroot.
    pub fn connect_string(&self) -> String {
        format!("{}{}", self.hosts, self.chroot)
    }

    /// A connected client inside the chroot.
    pub async fn client(&self) -> Client {
        Client::builder(self.connect_string())
            .session_timeout(Duration::from_secs(10))
            .connect()
            .await
            .expect("connect")
    }
}

/// The environments test `name` runs in: the embedded server (always), and a real ZooKeeper
/// (started by corral-test-support, or `CORRAL_TEST_ZK`) when one is available. The same
/// assertions run against both: that is the embedded server's compatibility evidence.
pub async fn envs(name: &str) -> Vec<Env> {
    let mut out = vec![embedded(name).await];
    if let Some(zk) = corral_test_support::zookeeper() {
        let hosts = zk.connect_string();
        let chroot = corral_test_support::unique_chroot(name);
        let root = Client::connect(&hosts).await.expect("connect to the test server");
        root.create(&chroot, "", CreateMode::Persistent).await.expect("create chroot");
        root.close().await;
        out.push(Env { hosts, chroot, kind: "zookeeper", embedded: None });
    }
    out
}

/// An embedded server configured like the real one the suites use (tick 2000 ms, so session
/// timeouts are clamped to 4-40 s), with a chroot for test `name`.
pub async fn embedded(name: &str) -> Env {
    let builder = corral_server::Server::builder().tick_time(Duration::from_millis(2000));
    let server = corral_server::testing::TestingServer::with_builder(builder).await.expect("start embedded server");
    let hosts = server.connect_string();
    let chroot = format!("/{name}");
    let root = Client::connect(&hosts).await.expect("connect to the embedded server");
    root.create(&chroot, "", CreateMode::Persistent).await.expect("create chroot");
    root.close().await;
    Env { hosts, chroot, kind: "embedded", embedded: Some(std::sync::Arc::new(server)) }
}

/// The first server address of `hosts`.
pub fn first_addr(hosts: &str) -> SocketAddr {
    use std::net::ToSocketAddrs;
    hosts.split(',').next().and_then(|h| h.to_socket_addrs().ok()).and_then(|mut a| a.next()).expect("server address")
}

/// Waits (bounded) for the client's state to satisfy `f`.
pub async fn wait_state(client: &Client, f: impl Fn(corral_core::SessionState) -> bool) {
    let mut rx = client.state();
    tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|s| f(*s)))
        .await
        .expect("state within 30 s")
        .expect("state channel");
}
