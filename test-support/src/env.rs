//! Where the integration tests of `corral-core` and `corral-recipes` run: the embedded server
//! and, when one is available, a real ZooKeeper, each test below its own chroot.
//!
//! Enabled by this crate's `env` feature (it brings in `corral-core`, `corral-server` and Tokio,
//! which the rest of the crate does without). A test that should hold on both servers loops over
//! [`envs`]; a test that needs the embedded server's fault kit takes [`embedded`]; a test on
//! paused time takes [`in_memory`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use corral_core::CreateMode;
//! use corral_test_support::env;
//!
//! // `env::envs("my-test")` gives this and, when there is one, a real ZooKeeper to loop over.
//! let env = env::embedded("my-test").await;
//! let client = env.client().await;
//! client.create("/a", "", CreateMode::Persistent).await.unwrap();
//! // The client works inside the test's chroot.
//! let server = env.server.as_ref().expect("the embedded server");
//! let root = corral_core::Client::connect(&server.connect_string()).await.unwrap();
//! assert!(root.exists("/my-test/a").await.unwrap().is_some());
//! root.close().await;
//! client.close().await;
//! # }
//! ```

use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use corral_core::{Client, CreateMode, Framework, RetryNTimes, SessionState};
use corral_server::testing::TestingServer;

use crate::FaultProxy;

/// The session timeout [`Env::client`] asks for.
pub const CLIENT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// The session timeout [`Env::framework`] asks for: short, so that faults that end a session
/// end it quickly.
pub const FRAMEWORK_SESSION_TIMEOUT: Duration = Duration::from_secs(4);

/// How long [`eventually`] and [`wait_state`] wait before they fail the test.
pub const EVENTUALLY: Duration = Duration::from_secs(30);

/// One server a test runs against, and the test's chroot on it.
#[derive(Debug)]
pub struct Env {
    /// The server's connect string, without the chroot.
    pub hosts: String,
    /// This test's chroot (created by [`envs`] or [`embedded`]).
    pub chroot: String,
    /// Which server this is, `"embedded"` or `"zookeeper"`, for failure messages.
    pub kind: &'static str,
    /// The embedded server, for its fault kit; `None` against a real ZooKeeper.
    pub server: Option<Arc<TestingServer>>,
}

impl Env {
    /// The connect string with this test's chroot.
    pub fn connect_string(&self) -> String {
        format!("{}{}", self.hosts, self.chroot)
    }

    /// A client connected inside the chroot, asking for a [`CLIENT_SESSION_TIMEOUT`] session.
    ///
    /// # Panics
    ///
    /// If the client does not connect.
    pub async fn client(&self) -> Client {
        Client::builder(self.connect_string()).session_timeout(CLIENT_SESSION_TIMEOUT).connect().await.expect("connect")
    }

    /// A framework inside the chroot with a [`FRAMEWORK_SESSION_TIMEOUT`] session, a 10 s
    /// connection timeout and quick retries (20, 50 ms apart).
    ///
    /// # Panics
    ///
    /// If the framework does not start (a bad connect string).
    pub fn framework(&self) -> Framework {
        framework_at(self.connect_string())
    }

    /// A framework like [`Env::framework`] whose connections go through a [`FaultProxy`] in front
    /// of the (first) server, with the proxy: [`Fault::Refuse`](crate::Fault::Refuse) cuts the
    /// framework off (its connection closed, reconnections refused) while the server and other
    /// clients carry on.
    ///
    /// # Panics
    ///
    /// If the proxy or the framework does not start.
    pub fn gated_framework(&self) -> (Framework, FaultProxy) {
        let proxy = FaultProxy::start(first_addr(&self.hosts)).expect("start the fault proxy");
        let fw = framework_at(format!("{}{}", proxy.addr(), self.chroot));
        (fw, proxy)
    }
}

fn framework_at(connect_string: String) -> Framework {
    Framework::builder(connect_string)
        .session_timeout(FRAMEWORK_SESSION_TIMEOUT)
        .connection_timeout(Duration::from_secs(10))
        .retry_policy(RetryNTimes::new(20, Duration::from_millis(50)))
        .start()
        .expect("start framework")
}

async fn make_chroot(hosts: &str, chroot: &str) {
    let root = Client::connect(hosts).await.expect("connect to the test server");
    root.create(chroot, "", CreateMode::Persistent).await.expect("create chroot");
    root.close().await;
}

/// The environments test `name` runs in: the embedded server (always), then a real ZooKeeper
/// ([`zookeeper()`](crate::zookeeper), which skips or, under CI, fails when there is none).
/// The same assertions run against both: that is the embedded server's compatibility evidence.
///
/// # Panics
///
/// If a server does not start or the chroot cannot be created.
pub async fn envs(name: &str) -> Vec<Env> {
    let mut out = vec![embedded(name).await];
    if let Some(zk) = crate::zookeeper() {
        let hosts = zk.connect_string();
        let chroot = crate::unique_chroot(name);
        make_chroot(&hosts, &chroot).await;
        out.push(Env { hosts, chroot, kind: "zookeeper", server: None });
    }
    out
}

/// Only the embedded server, configured like the real one the suites use (tick 2000 ms, so
/// session timeouts are clamped to 4–40 s), with the chroot `/{name}`.
///
/// # Panics
///
/// If the server does not start or the chroot cannot be created.
pub async fn embedded(name: &str) -> Env {
    embedded_with(name, corral_server::Server::builder()).await
}

/// Like [`embedded`], with the settings of `builder` (its tick is set to 2000 ms): for a server
/// configured otherwise, such as one that answers as ZooKeeper 3.5 does
/// ([`persistent_watches(false)`](corral_server::ServerBuilder::persistent_watches)).
///
/// # Panics
///
/// If the server does not start or the chroot cannot be created.
pub async fn embedded_with(name: &str, builder: corral_server::ServerBuilder) -> Env {
    let builder = builder.tick_time(Duration::from_millis(2000));
    let server = TestingServer::with_builder(builder).await.expect("start embedded server");
    let hosts = server.connect_string();
    let chroot = format!("/{name}");
    make_chroot(&hosts, &chroot).await;
    Env { hosts, chroot, kind: "embedded", server: Some(Arc::new(server)) }
}

/// The first server address of a connect string's `hosts`.
///
/// # Panics
///
/// If it does not resolve.
pub fn first_addr(hosts: &str) -> SocketAddr {
    hosts.split(',').next().and_then(|h| h.to_socket_addrs().ok()).and_then(|mut a| a.next()).expect("server address")
}

/// Polls `f` until it is true, for at most [`EVENTUALLY`]: for something that *must* happen.
///
/// # Panics
///
/// If `f` is still false after [`EVENTUALLY`]; the message names `what`.
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (at most [`EVENTUALLY`]) for `client`'s session state to satisfy `f`.
///
/// # Panics
///
/// If it does not in time, or the client is gone.
pub async fn wait_state(client: &Client, f: impl Fn(SessionState) -> bool) {
    let mut rx = client.state();
    tokio::time::timeout(EVENTUALLY, rx.wait_for(|s| f(*s))).await.expect("state within 30 s").expect("state channel");
}

/// Returns once everything the server had to tell `client`'s session up to now has reached the
/// client, and the session holds at least `watches` watches (a recipe that is waiting holds the
/// watch it waits on): the proof a test gives before it checks that something did *not* happen,
/// instead of waiting a while.
///
/// ZooKeeper answers a session's requests in order and sends a watch notification before the
/// reply to any request made after the change: so a `sync` first (what the server did until now,
/// notifications included, has arrived), then a bounded poll until the waiter has set its watch
/// again, then a second `sync` (the replies to what the waiter asked for on its way back to its
/// watch have arrived). A waiter that is still pending afterwards was not woken by anything
/// that happened before this call.
///
/// # Panics
///
/// If a sync fails, or the watches are not there within [`EVENTUALLY`].
pub async fn settled(client: &Client, watches: usize) {
    client.sync("/").await.expect("sync");
    eventually(&format!("{watches} watch(es) set"), || async { client.watcher_count().await >= watches }).await;
    client.sync("/").await.expect("sync");
}

/// The embedded server over an in-memory transport, for tests on paused time.
#[derive(Debug, Clone)]
pub struct InMemory(pub Arc<TestingServer>);

impl corral_core::Connector for InMemory {
    fn connect(&self, _host: &corral_core::HostPort) -> corral_core::ConnectFuture {
        let (stream, addr) = (self.0.connect_in_memory(), self.0.addr());
        Box::pin(async move {
            let stream = stream.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "stopped"))?;
            Ok((Box::new(stream) as corral_core::BoxStream, addr))
        })
    }
}

/// An embedded server and a framework connected to it in memory (for `start_paused` tests:
/// time only moves when every task waits).
///
/// # Panics
///
/// If the server does not start or the framework does not connect within 10 s.
pub async fn in_memory() -> (Arc<TestingServer>, Framework) {
    let server = Arc::new(TestingServer::start().await.expect("start embedded server"));
    let fw = in_memory_framework(&server).await;
    (server, fw)
}

/// One more framework connected to `server` in memory, like the one [`in_memory`] returns: a
/// 10 s session, connected when this returns.
///
/// # Panics
///
/// If the framework does not connect within 10 s.
pub async fn in_memory_framework(server: &Arc<TestingServer>) -> Framework {
    let fw = Framework::builder("memory:2181")
        .session_timeout(Duration::from_secs(10))
        .connector(InMemory(server.clone()))
        .start()
        .expect("start framework");
    fw.wait_until_connected(Duration::from_secs(10)).await.expect("connected");
    fw
}
