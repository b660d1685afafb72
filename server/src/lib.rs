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
//! Around them: `server` ([`ServerBuilder`], [`Server`]) and `config` (settings, the injectable
//! clock); `persist/` the data directory (transaction log, snapshots, replay on start);
//! `fourlw` the four-letter words; `tls`, `x509`, `sasl` the secure port and its auth schemes;
//! `zoo_cfg` reading ZooKeeper's own `zoo.cfg`; [`testing`] the test kit (`TestingServer`,
//! `TestingCluster`); `main.rs` the `corral-server` binary.
//!
//! # A data directory
//!
//! With [`ServerBuilder::data_dir`] (`--data-dir`, `dataDir` in `zoo.cfg`) the server is
//! durable as a standalone ZooKeeper is: every transaction (failed writes, session creation and
//! closing included) is appended to a transaction log and fsynced before anything that reflects
//! it leaves the server — the reply, a notification, or a read of it by another client. One
//! writer task takes whatever is queued and fsyncs once for all of it (group commit), so
//! pipelined writes share fsyncs. Every [`snap_count`](ServerBuilder::snap_count) transactions
//! the log rolls over and a fuzzy snapshot is written without stopping writes; older snapshots
//! and logs are purged, keeping [`snap_retain_count`](ServerBuilder::snap_retain_count) (at
//! least 3).
//!
//! The files are ZooKeeper 3.8's own, so its tools and a real ZooKeeper read them:
//! `<dataDir>/version-2/log.<first zxid, hex>` — the header `ZKLG`, version 2, dbid; then per
//! entry the Adler-32 of the payload, the payload's length and bytes (a `TxnHeader` and its
//! `CreateTxn`, `DeleteTxn`, `SetDataTxn`, `SetACLTxn`, `CreateSessionTxn`, `CloseSessionTxn`,
//! `ErrorTxn` or `MultiTxn`) and the byte `B`, in a file preallocated with zeros — and
//! `<dataDir>/version-2/snapshot.<zxid, hex>` — the header `ZKSN`, version 2; the sessions with
//! their timeouts, the ACL lists, every node (path, data, ACL id, `StatPersisted`) parents
//! first, `/`, then the Adler-32 of all of it. `<dataDir>/corral.secret` (16 random bytes) is
//! ours: session passwords derive from it, so a restored session keeps its password; so is
//! `<dataDir>/corral.lock`, locked (`flock`) while a server runs, so that a second one refuses
//! the directory (ZooKeeper itself takes no such lock: do not start one on a directory in use).
//!
//! On start the newest snapshot is loaded and the log after it replayed. A torn or corrupt
//! entry at the end of the last log (a crash mid-write; nothing in it was acknowledged) is cut
//! off with a warning naming the file and offset. A snapshot that does not read back exactly, a
//! gap in the zxids, or a bad entry with transactions after it stops the start with
//! [`Error::DataDir`] naming the file: the server never starts on less than the directory
//! holds. Sessions come back with their whole timeout afresh (their clients could not reach a
//! stopped server): a client that reconnects in time keeps its session and ephemerals, the
//! others expire as usual and their ephemerals go, with watches fired.
//!
//! [`ServerBuilder::force_sync`]`(false)` (`forceSync=no`) drops the fsyncs, for CI speed: it
//! is **unsafe for data**, as a machine crash can lose writes that were acknowledged.
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
