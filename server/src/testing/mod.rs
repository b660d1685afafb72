//! The test kit: what Apache Curator's `curator-test` is to Java users.
//!
//! - [`TestingServer`]: one server on a random port that can be stopped and restarted with
//!   its tree and sessions intact.
//! - [`TestingCluster`]: several listeners sharing one tree and one session tracker, so a
//!   client given every address fails over and keeps its session when a member stops. It is a
//!   simulated ensemble for client tests, not a replicated store.
//! - Faults, applied on the server side: expire a session, drop a session's connection,
//!   pause a member (a black hole: it accepts and buffers but answers nothing) and resume it,
//!   add latency, switch a member into or out of read-only mode
//!   ([`TestingCluster::set_read_only`]).
//!
//! All time goes through [`tokio::time`]; with [`TestingServer::connect_in_memory`] a test can
//! run on paused time.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), corral_server::Error> {
//! use corral_server::testing::TestingServer;
//!
//! let mut server = TestingServer::start().await?;
//! let connect = server.connect_string();
//! // ... point a client at `connect`, then:
//! server.restart().await?;
//! assert_eq!(server.connect_string(), connect);
//! server.close().await;
//! # Ok(())
//! # }
//! ```

mod cluster;
mod server;

pub use cluster::TestingCluster;
pub use server::TestingServer;
