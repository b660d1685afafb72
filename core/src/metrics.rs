//! The numbers Corral reports through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! The libraries only record; install any `metrics` recorder in your binary
//! (`metrics-exporter-prometheus`, for one) to export them. Without a recorder every call is a
//! no-op. Every name starts with `corral_`; durations are in seconds.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `corral_requests_total` | counter | `op` | requests sent to a server, by operation (`create`, `get_data`, `multi`, …) |
//! | `corral_request_duration_seconds` | histogram | `op` | from writing a request to its reply |
//! | `corral_requests_in_flight` | gauge | | requests written and not yet answered, over every client of the process |
//! | `corral_bytes_sent_total` / `corral_bytes_received_total` | counter | | bytes of ZooKeeper frames written and read |
//! | `corral_connections_total` | counter | `resumed` (`true`/`false`) | handshakes that succeeded: `resumed` when an existing session went on |
//! | `corral_tls_handshakes_total` | counter | `resumed` (`true`/`false`) | TLS handshakes that succeeded: `resumed` when the server took a session ticket (or id) from an earlier handshake of the same [`ClientTls`](crate::ClientTls) or a clone, and no certificate was checked |
//! | `corral_disconnects_total` | counter | | connections lost while the session went on |
//! | `corral_session_expiries_total` | counter | | sessions the server answered as expired |
//! | `corral_connection_states_total` | counter | `state` (`connected`, `suspended`, `reconnected`, `lost`, `read_only`) | connection states the framework posted |
//! | `corral_retries_total` | counter | | operations tried again under a retry policy |
//! | `corral_watches_registered` | gauge | | watches the clients of the process hold |
//! | `corral_lock_acquisitions_total` | counter | `kind` (`mutex`, `read`, `write`, `kazoo`) | locks acquired |
//! | `corral_lock_wait_seconds` | histogram | `kind` | from an acquisition's start to holding the lock |
//! | `corral_lock_hold_seconds` | histogram | `kind` | from acquiring a lock to releasing (or dropping) its guard |
//! | `corral_leadership_terms_total` | counter | `recipe` (`latch`, `selector`) | leadership gained |
//! | `corral_recipe_recreations_total` | counter | `recipe` (`latch`, `selector`, `persistent_node`) | a recipe starting over in a new session (its node made again after the re-create pause) |
//! | `corral_cache_resyncs_total` | counter | | full reads of a cache's tree (first one and after every reconnect) |
//! | `corral_cache_nodes` | gauge | | nodes the caches of the process hold (a cache's count leaves with the cache) |
//! | `corral_queue_puts_total` / `corral_queue_takes_total` | counter | | queue items put and taken |
//!
//! # Examples
//!
//! ```
//! use corral_core::metrics::{REQUESTS_TOTAL, REQUEST_DURATION_SECONDS};
//!
//! assert_eq!(REQUESTS_TOTAL, "corral_requests_total");
//! assert!(REQUEST_DURATION_SECONDS.ends_with("_seconds"));
//! ```

use corral_proto::OpCode;

/// Requests sent, by `op`.
pub const REQUESTS_TOTAL: &str = "corral_requests_total";
/// Request round trips, by `op`, in seconds.
pub const REQUEST_DURATION_SECONDS: &str = "corral_request_duration_seconds";
/// Requests written and not yet answered.
pub const REQUESTS_IN_FLIGHT: &str = "corral_requests_in_flight";
/// Bytes of frames written.
pub const BYTES_SENT_TOTAL: &str = "corral_bytes_sent_total";
/// Bytes of frames read.
pub const BYTES_RECEIVED_TOTAL: &str = "corral_bytes_received_total";
/// Successful handshakes, by `resumed`.
pub const CONNECTIONS_TOTAL: &str = "corral_connections_total";
/// Successful TLS handshakes, by `resumed`.
pub const TLS_HANDSHAKES_TOTAL: &str = "corral_tls_handshakes_total";
/// Connections lost while the session went on.
pub const DISCONNECTS_TOTAL: &str = "corral_disconnects_total";
/// Sessions answered as expired.
pub const SESSION_EXPIRIES_TOTAL: &str = "corral_session_expiries_total";
/// Connection states posted by frameworks, by `state`.
pub const CONNECTION_STATES_TOTAL: &str = "corral_connection_states_total";
/// Operations tried again under a retry policy.
pub const RETRIES_TOTAL: &str = "corral_retries_total";
/// Watches held.
pub const WATCHES_REGISTERED: &str = "corral_watches_registered";
/// Locks acquired, by `kind`.
pub const LOCK_ACQUISITIONS_TOTAL: &str = "corral_lock_acquisitions_total";
/// Time to acquire a lock, by `kind`, in seconds.
pub const LOCK_WAIT_SECONDS: &str = "corral_lock_wait_seconds";
/// Time a lock was held, by `kind`, in seconds.
pub const LOCK_HOLD_SECONDS: &str = "corral_lock_hold_seconds";
/// Leadership gained, by `recipe`.
pub const LEADERSHIP_TERMS_TOTAL: &str = "corral_leadership_terms_total";
/// Nodes made again in a new session, by `recipe`.
pub const RECIPE_RECREATIONS_TOTAL: &str = "corral_recipe_recreations_total";
/// Full reads of a cache's tree.
pub const CACHE_RESYNCS_TOTAL: &str = "corral_cache_resyncs_total";
/// Nodes held by caches.
pub const CACHE_NODES: &str = "corral_cache_nodes";
/// Queue items put.
pub const QUEUE_PUTS_TOTAL: &str = "corral_queue_puts_total";
/// Queue items taken.
pub const QUEUE_TAKES_TOTAL: &str = "corral_queue_takes_total";

/// The `op` label of an operation.
pub(crate) fn op_label(op: OpCode) -> &'static str {
    match op {
        OpCode::Create | OpCode::Create2 => "create",
        OpCode::CreateContainer => "create_container",
        OpCode::CreateTtl => "create_ttl",
        OpCode::Delete | OpCode::DeleteContainer => "delete",
        OpCode::Exists => "exists",
        OpCode::GetData => "get_data",
        OpCode::SetData => "set_data",
        OpCode::GetAcl => "get_acl",
        OpCode::SetAcl => "set_acl",
        OpCode::GetChildren | OpCode::GetChildren2 => "get_children",
        OpCode::Sync => "sync",
        OpCode::Ping => "ping",
        OpCode::Check => "check",
        OpCode::Multi => "multi",
        OpCode::MultiRead => "multi_read",
        OpCode::Reconfig => "reconfig",
        OpCode::CheckWatches | OpCode::RemoveWatches => "remove_watches",
        OpCode::AddWatch => "add_watch",
        OpCode::SetWatches | OpCode::SetWatches2 => "set_watches",
        OpCode::GetEphemerals => "get_ephemerals",
        OpCode::GetAllChildrenNumber => "get_all_children_number",
        OpCode::Auth | OpCode::Sasl => "auth",
        _ => "other",
    }
}
