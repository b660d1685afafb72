//! An async ZooKeeper client that owns its session.
//!
//! [`Client`] connects to one of the servers of a connect string
//! (`host1:port1,host2:port2/optional/chroot`), keeps the session alive with pings, reconnects
//! within the session when a connection drops (restoring every watch with setWatches, so that
//! a change made while disconnected still fires), and reports the session's state through a
//! [`tokio::sync::watch`] channel ([`Client::state`]) and a stream of [`SessionEvent`]s. When the
//! server says the session has expired, the client says so ([`SessionState::Expired`]) and
//! stops: it never quietly starts a new session (that is the framework layer's job).
//!
//! Every ZooKeeper operation is an async method with typed results. Requests are pipelined and
//! ordered when their future is created. Watches are values: one-shot watches are futures
//! ([`OneshotWatcher`]), persistent watches are streams ([`PersistentWatcher`]); dropping one
//! removes it.
//!
//! On top of the client, the [`framework`] layer ([`Framework`]) adds Curator's connection
//! states, retries under a [`RetryPolicy`], a new session after the old one is lost, and the
//! create and delete variants recipes need.
//!
//! The examples in this documentation run against the embedded server of the `corral-server`
//! crate (`corral_server::testing::TestingServer`, started in the hidden first lines); tests can
//! use it the same way with `corral-server` as a dev-dependency.
//!
//! # Layout
//!
//! - `client/`: the public [`Client`] — `mod.rs` the handle, `ops.rs` one async method per
//!   operation, `multi.rs` transactions, `admin.rs` watch management, credentials and
//!   server-level calls, `builder.rs` [`ClientBuilder`].
//! - `session/` (private): the session task that owns the connection, the session and the
//!   watches — `connect.rs` one connection attempt, `io.rs` one live connection, `sasl.rs` the
//!   SASL exchange, `probe.rs` the search for a read/write server, `watch.rs` the watch
//!   registry; the reconnect story is told in its module docs.
//! - `watcher.rs`: the public watcher types; `state.rs`: raw session states and events;
//!   `ops.rs`: argument and result types of operations; `error.rs`: the one [`Error`].
//! - `connect_string.rs` (hosts and chroot), `transport.rs` ([`Connector`]), `tls.rs`,
//!   `sasl/` (DIGEST-MD5 and GSSAPI mechanisms): how a connection is made.
//! - [`framework`]: [`Framework`], Curator's `CuratorFramework` — connection states (`state.rs`,
//!   `manager.rs`, `circuit_breaker.rs`), the [`Session`](framework::Session) handle, create,
//!   delete and protected create, ACL and compression providers, ensemble tracking, and the
//!   builder.
//! - `retry/`: [`RetryPolicy`] and the [`retry`] loop (`mod.rs`), the jittered exponential
//!   policies (`exponential.rs`) and the others (`policies.rs`).
//! - [`metrics`]: the names of the numbers reported through the `metrics` facade.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = corral_server::testing::TestingServer::start().await?;
//! use corral_core::{Client, CreateMode, EventType};
//!
//! // In production: "zk1:2181,zk2:2181,zk3:2181/my-app".
//! let client = Client::connect(&server.connect_string()).await?;
//! client.create("/config", "v1", CreateMode::Persistent).await?;
//! let (data, stat, watcher) = client.get_data_and_watch("/config").await?;
//! assert_eq!(&data[..], b"v1");
//! client.set_data("/config", "v2", Some(stat.version)).await?;
//! let event = watcher.await;
//! assert_eq!((event.event_type, event.path.as_str()), (EventType::NodeDataChanged, "/config"));
//! client.close().await;
//! # Ok(()) }
//! ```

mod client;
mod connect_string;
mod error;
pub mod framework;
pub mod metrics;
mod ops;
mod retry;
mod sasl;
mod session;
mod state;
mod tls;
mod transport;
mod watcher;

pub use client::{Client, ClientBuilder, Identity};
pub use connect_string::{ConnectString, DEFAULT_PORT, HostPort};
pub use corral_proto as proto;
pub use corral_proto::{
    Acl, AddWatchMode, CreateMode, ErrorCode, EventType, Id, KeeperState, Perms, Stat, WatcherType,
};
pub use error::{Error, Result};
pub use framework::{AclProvider, ConnectionState, ConnectionStateChange, ErrorPolicy, Framework, FrameworkBuilder};
pub use ops::{CreateOptions, Op, OpResult, ReadOp, ReadResult};
pub use retry::{
    BackoffPolicy, BoundedExponentialBackoffRetry, ExponentialBackoffRetry, MAX_EXPONENTIAL_RETRIES, RetryForever,
    RetryNTimes, RetryOneTime, RetryPolicy, RetryUntilElapsed, SessionFailedRetryPolicy, retry,
};
/// The `rustls` that [`ClientTls::from_rustls`] takes a configuration of.
pub use rustls;
pub use sasl::Sasl;
pub use state::{SessionEvent, SessionInfo, SessionState};
pub use tls::{ClientTls, ClientTlsBuilder};
pub use transport::{AsyncStream, BoxStream, ConnectFuture, Connector};
pub use watcher::{OneshotWatcher, PersistentWatcher, WatchedEvent};
