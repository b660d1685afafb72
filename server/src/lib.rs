//! An embedded, wire-compatible ZooKeeper server, and the test kit built on it.
//!
//! `corral-server` speaks the ZooKeeper client protocol of 3.5 – 3.9 (through
//! [`corral_proto`]) well enough that clients cannot tell it from a standalone ZooKeeper 3.8:
//! sessions with ZooKeeper's ids, passwords and expiry buckets; persistent, ephemeral,
//! sequential, container and TTL nodes with exact `Stat`s; one-shot, persistent and recursive
//! watches; atomic multi; ACLs with the `world`, `auth`, `digest` and `ip` schemes; and the
//! four-letter admin words. It keeps everything in memory unless given a data directory
//! ([`ServerBuilder::data_dir`]: a transaction log fsynced before every reply, snapshots, and
//! recovery on start, in ZooKeeper's own file format), and replicates nothing: production
//! runs against a real ensemble.
//!
//! - [`Server`] runs in-process (`Server::builder()...start().await`), on `127.0.0.1` and a
//!   port chosen by the system unless told otherwise. The `corral-server` binary runs the same
//!   thing from a shell.
//! - [`testing`] is the test kit: [`testing::TestingServer`], [`testing::TestingCluster`] and
//!   faults (expire a session, drop a connection, pause a member, add latency, make a member
//!   read-only as a ZooKeeper server that lost its quorum).
//!
//! # Layout
//!
//! The crate follows mini-redis: `conn` runs one task per connection (four-letter words,
//! handshake, requests in order); `ops/` has one file per family of operations; `txn` holds the
//! rules of every write over the `tree`; `session` is the session tracker with its expiry
//! buckets; `watch` the watch tables; `acl` the permission checks and auth schemes; `state`
//! puts them behind one mutex, held for microseconds and never across an `.await`.
//!
//! # Where it differs from ZooKeeper on purpose
//!
//! - Every four-letter word is enabled by default (ZooKeeper enables only `srvr`).
//! - Nothing is persisted unless a data directory is given; without one, a
//!   [`testing::TestingServer`] restart keeps the state in memory, with one it reloads it from
//!   disk.
//! - SASL is not supported: a SASL packet is answered AuthFailed and the connection closed.
//! - A read-only member ([`ServerBuilder::read_only`]) always grants new read-only sessions (a
//!   ZooKeeper server does only with `localSessionsEnabled=true`), and serves the one shared
//!   tree, so it sees at once what read/write members write.
//! - Notifications carry zxid −1, and create and create2 results inside a multi carry no stat
//!   (createContainer and createTTL ones do), as in ZooKeeper 3.8.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), corral_server::Error> {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let server = corral_server::Server::start().await?;
//! let mut socket = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
//! socket.write_all(b"ruok").await.expect("write");
//! let mut answer = String::new();
//! socket.read_to_string(&mut answer).await.expect("read");
//! assert_eq!(answer, "imok");
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod acl;
mod config;
mod conn;
mod fourlw;
mod ops;
mod persist;
mod sasl;
mod server;
mod session;
mod state;
pub mod testing;
mod tls;
mod tree;
mod txn;
mod watch;
mod x509;
mod zoo_cfg;

pub use acl::digest;
pub use config::Clock;
/// The `rustls` that [`ServerTls::from_rustls`] takes a configuration of.
pub use rustls;
pub use sasl::SaslUsers;
pub use server::{Error, Server, ServerBuilder};
pub use tls::{ClientAuth, ServerTls, ServerTlsBuilder};
