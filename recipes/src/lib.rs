//! ZooKeeper recipes in the spirit of Apache Curator, compatible with it on the wire.
//!
//! Every recipe takes a [`Framework`] (the session with connection states and retries), owns
//! its watches and tasks, releases them on close or drop, and documents what it does on
//! SUSPENDED, LOST and RECONNECTED. Node names follow Curator's conventions (`_c_<uuid>-`
//! protected prefixes, `lock-`, Curator's sort rule), so a Java service using Curator and a
//! Rust service using Corral can share one lock.
//!
//! - [`lock::Mutex`]: Curator's `InterProcessMutex` (re-entrant through its guard, revocable),
//!   with guards that know when they stop being valid and a fencing check for your own
//!   transactions.
//! - [`leader_latch::LeaderLatch`]: Curator's `LeaderLatch`, granting leadership only to a node
//!   of the current session.
//! - [`leader_selector::LeaderSelector`]: runs an async task while leading and cancels it when
//!   leadership is lost; auto-requeue.
//! - [`read_write_lock::ReadWriteLock`]: Curator's `InterProcessReadWriteLock` (`__READ__` /
//!   `__WRIT__`), with a downgrade that lets no writer in between.
//! - [`semaphore::SemaphoreV2`] and [`semaphore::SemaphoreMutex`]: Curator's `locks/` +
//!   `leases/lease-` layout; [`multi_lock::MultiLock`]: several locks as one.
//! - [`cache::Cache`]: a subtree mirror on one persistent recursive watch that never misses a
//!   change (resyncs by czxid/mzxid after every reconnect), falling back to one-shot watches
//!   per node on ZooKeeper 3.5; [`cache::NodeCache`] and [`cache::ChildrenCache`] as views.
//! - [`discovery`]: service discovery compatible with Curator's `curator-x-discovery`
//!   (`ServiceDiscovery`, `ServiceInstance` in Curator's JSON, `ServiceCache`,
//!   `ServiceProvider`).
//! - [`group_member::GroupMember`]: group membership with member data.
//! - [`persistent_node::PersistentNode`]: a node re-created after a new session or a delete,
//!   with its latest data; TTL variant included. [`persistent_ttl_node::PersistentTtlNode`]:
//!   Curator's layout of a node that lives while touched (a container and a TTL `touch` child).
//! - [`barrier::DistributedBarrier`] and [`double_barrier::DistributedDoubleBarrier`]: Curator's
//!   barriers (a node that holds waiters back; members that enter and leave together).
//! - [`shared_count::SharedValue`] and [`shared_count::SharedCount`]: a value every process sees,
//!   as a watch channel, with compare-and-set on the node's version.
//! - [`atomic::DistributedAtomicLong`], [`atomic::DistributedAtomicInteger`] and
//!   [`atomic::DistributedAtomicValue`]: a 64-bit or 32-bit counter or raw bytes updated by
//!   compare-and-set, optionally promoted to a lock when contention is high (one engine, Curator's
//!   encodings).
//!
//! - [`queue`]: Curator's distributed queues — [`queue::SimpleDistributedQueue`] (`qn-` nodes)
//!   and [`queue::DistributedQueue`] (`queue-` nodes of Curator's item messages, with the
//!   lock-safe mode as a message to acknowledge) with its priority, delay and id variants —
//!   consumed as streams; [`queue::QueueSharder`] spreads items over shards as Curator's does.
//!
//! # Sessions, holds and the recipe runtime
//!
//! - **Bound to one session.** Whatever a recipe owns through a session — a contender's lock
//!   node, a lease, a latch membership, an ephemeral [`persistent_node::PersistentNode`], a
//!   barrier member — is created through the framework's [`Session`](framework::Session)
//!   handle, with Curator's protected create
//!   ([`ProtectedCreate`](framework::ProtectedCreate)), and its owner is the one the create's
//!   reply names. An operation bound to a session that is gone fails with
//!   [`Error::SessionLost`]; it never lands silently in the next session, where it would make a
//!   node the recipe does not know. The recipe then starts over in the new session.
//! - **One hold type.** Every lock guard, lease and leadership rests on a [`hold::Hold`] —
//!   one ephemeral node of one session — with the same `is_valid()`, `invalidated()`,
//!   `fencing_check()` and `fencing_token()`, and the error-policy rule written once (see the
//!   [`hold`] module).
//! - **One runtime.** Every recipe's background work follows the connection the same way and,
//!   after a failure, waits the one jittered backoff derived from the framework's retry policy
//!   (or until the connection state changes); re-creations after a new session wait a uniform
//!   pause up to [`FrameworkBuilder::recreate_jitter`], so a fleet whose sessions expired
//!   together does not write in the same instant.
//!
//! # Errors and timeouts
//!
//! Every recipe fails with the one [`Error`] of this crate: [`Error::SessionLost`] when the
//! session its work was bound to is gone, [`Error::CorruptData`] when a node holds what it cannot
//! read, [`Error::NotRegistered`], [`Error::TimedOut`], and [`Error::Core`] wrapping the client's
//! own errors ([`CoreError`]). **One timeout convention:** a method whose name ends in `_timeout`
//! fails with [`Error::TimedOut`] when its deadline passes — never `Ok(None)` or `Ok(false)` —
//! so `?` cannot mistake "not in time" for success. (`try_acquire` does not wait and answers
//! `Ok(None)` when the lock is taken.) [`CoreError::Timeout`] inside [`Error::Core`] keeps its
//! own meaning: the framework waited longer than its connection timeout for a connection.
//!
//! This crate re-exports `corral-core`, so depending on it alone is enough; its error type is
//! [`CoreError`] here.
//!
//! # Layout
//!
//! One module per recipe, named as above; a recipe that needs more than one file is a directory
//! with the public type in its `mod.rs`: [`lock`] (guard, protected contender, revocation),
//! [`leader_latch`] (the latch's election task), [`queue`] (one file per queue kind, the
//! consumer, messages, serializer, sharder), [`cache`] (engine, diff, views), [`discovery`]
//! (instance, registry, service cache, provider), [`atomic`] (numeric and raw-value engines),
//! and [`kazoo`] (kazoo's layouts: one file per recipe family). What every recipe shares, written
//! once: `task` (the recipe runtime), [`hold`] (what a hold rests on), [`sort`] (Curator's child
//! ordering), `default_data` (Curator's default node data) and `error` (the one [`Error`]).

pub mod atomic;
pub mod barrier;
pub mod cache;
mod default_data;
pub mod discovery;
pub mod double_barrier;
mod error;
pub mod group_member;
pub mod hold;
pub mod kazoo;
pub mod leader_latch;
pub mod leader_selector;
pub mod lock;
pub mod multi_lock;
pub mod persistent_node;
pub mod persistent_ttl_node;
pub mod queue;
pub mod read_write_lock;
pub mod semaphore;
pub mod shared_count;
pub mod sort;
mod task;

pub use corral_core::*;
// The recipes' own error and result shadow the client's, which is `CoreError` here.
pub use corral_core::Error as CoreError;
pub(crate) use error::within;
pub use error::{Error, Result};
