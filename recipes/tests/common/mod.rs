//! Recipe test environments: an embedded server (with its fault kit) and, when available, a
//! real ZooKeeper (`corral-test-support` or `CORRAL_TEST_ZK`), each test in its own chroot.

#![allow(dead_code, unreachable_pub)]

pub mod java_peer;
pub mod kazoo_peer;

use std::sync::Arc;
use std::time::Duration;

use corral_recipes::{Client, CreateMode, Framework, RetryNTimes};
use corral_server::testing::TestingServer;

/// Where a test runs.
pub struct Env {
    pub hosts: String,
    pub chroot: String,
    pub kind: &'static str,
    /// The embedded server, for fault injection (None against a real ZooKeeper).
    pub server: Option<Arc<TestingServer>>,
}

impl Env {
    pub fn connect_string(&self) -> String {
        format!("{}{}", self.hosts, self.chroot)
    }

    /// A framework with a short session timeout and quick retries.
    pub fn framework(&self) -> Framework {
        Framework::builder(self.connect_string())
            .session_timeout(Duration::from_secs(4))
            .connection_timeout(Duration::from_secs(10))
            .retry_policy(RetryNTimes::new(20, Duration::from_millis(50)))
            .start()
            .expect("start framework")
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.connect_string()).await.expect("connect")
    }
}

async fn make_chroot(hosts: &str, chroot: &str) {
    let root = Client::connect(hosts).await.expect("connect to the test server");
    root.create(chroot, "", CreateMode::Persistent).await.expect("create chroot");
    root.close().await;
}

/// The embedded server, then the real ZooKeeper when one is available.
pub async fn envs(name: &str) -> Vec<Env> {
    let mut out = vec![embedded(name).await];
    if let Some(zk) = corral_test_support::zookeeper() {
        let hosts = zk.connect_string();
        let chroot = corral_test_support::unique_chroot(name);
        make_chroot(&hosts, &chroot).await;
        out.push(Env { hosts, chroot, kind: "zookeeper", server: None });
    }
    out
}

/// Only the embedded server (for tests that need its fault kit).
pub async fn embedded(name: &str) -> Env {
    let builder = corral_server::Server::builder().tick_time(Duration::from_millis(2000));
    let server = TestingServer::with_builder(builder).await.expect("start embedded server");
    let hosts = server.connect_string();
    let chroot = format!("/{name}");
    make_chroot(&hosts, &chroot).await;
    Env { hosts, chroot, kind: "embedded", server: Some(Arc::new(server)) }
}

/// Polls `f` until it is true, for at most 30 s.
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Env {
    /// A framework like [`Env::framework`] whose connections go through a fault proxy in front
    /// of the embedded server, with the proxy: `Fault::Refuse` cuts the framework off (its
    /// connection closed, reconnections refused) while the server and other clients carry on.
    pub fn gated_framework(&self) -> (Framework, corral_test_support::FaultProxy) {
        let server = self.server.as_ref().expect("the embedded server");
        let proxy = corral_test_support::FaultProxy::start(server.addr()).expect("start the fault proxy");
        let fw = Framework::builder(format!("{}{}", proxy.addr(), self.chroot))
            .session_timeout(Duration::from_secs(4))
            .connection_timeout(Duration::from_secs(10))
            .retry_policy(RetryNTimes::new(20, Duration::from_millis(50)))
            .start()
            .expect("start framework");
        (fw, proxy)
    }
}

/// The embedded server over an in-memory transport, for tests on paused time.
#[derive(Debug, Clone)]
pub struct InMemory(pub Arc<TestingServer>);

impl corral_recipes::Connector for InMemory {
    fn connect(&self, _host: &corral_recipes::HostPort) -> corral_recipes::ConnectFuture {
        let (stream, addr) = (self.0.connect_in_memory(), self.0.addr());
        Box::pin(async move {
            let stream = stream.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "stopped"))?;
            Ok((Box::new(stream) as corral_recipes::BoxStream, addr))
        })
    }
}

/// An embedded server and a framework connected to it in memory (for `start_paused` tests:
/// time only moves when every task waits).
pub async fn in_memory() -> (Arc<TestingServer>, Framework) {
    let server = Arc::new(TestingServer::start().await.expect("start embedded server"));
    let fw = Framework::builder("memory:2181")
        .session_timeout(Duration::from_secs(10))
        .connector(InMemory(server.clone()))
        .start()
        .expect("start framework");
    fw.wait_until_connected(Duration::from_secs(10)).await.expect("connected");
    (server, fw)
}
