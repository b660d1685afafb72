//! kazoo's layouts, for fleets that share znodes with Python services on kazoo 2.11.
//!
//! The engines are this crate's own (the contention loop, the session-bound protected create,
//! the [`Hold`](crate::hold::Hold) of every guard); only the node names and data follow kazoo:
//!
//! | kazoo | here | node | data |
//! |---|---|---|---|
//! | `Lock(path, identifier)` | [`lock`] | `<path>/<uuid hex>__lock__<seq>` | the identifier, UTF-8 |
//! | `WriteLock(path, identifier)` | [`write_lock`] | `<path>/<uuid hex>__lock__<seq>` | the identifier |
//! | `ReadLock(path, identifier)` | [`read_lock`] | `<path>/<uuid hex>__rlock__<seq>` | the identifier |
//! | `Lock.contenders()` | [`contenders`] | | identifiers in lock order |
//! | `Election(path, identifier).run(func)` | [`election`] | `__lock__` nodes (it is a `Lock`) | the identifier |
//! | `Counter(path, default)` | [`Counter`] | `<path>` | `repr(value)` in ASCII, or 4 bytes big-endian with `support_curator` |
//! | `Party(path, identifier)` | [`Party::join`], [`party_members`] | `<path>/<uuid hex>__party__` (ephemeral) | the identifier |
//! | `ShallowParty(path, identifier)` | [`Party::join_shallow`], [`shallow_party_members`] | `<path>/<uuid hex>-<identifier>` | the identifier |
//! | `Semaphore(path, identifier, max_leases)` | [`Semaphore`] | `<path>` (`max_leases`), `<path>/<uuid hex>` leases, a `Lock` at `<path>-__lock__` | the identifier (the lock's: `b'identifier'`) |
//! | `Barrier(path)` | [`Barrier`] | `<path>` | empty |
//! | `DoubleBarrier(path, num_clients, identifier)` | [`DoubleBarrier`] | `<path>/<uuid hex>` (ephemeral), `<path>/ready` | the identifier; empty |
//! | `Queue(path)` | [`Queue`] | `<path>/entry-<ppp>-<seq>` | the item |
//! | `LockingQueue(path)` | [`LockingQueue`] | `<path>/entries/entry-<ppp>-<seq>`, `<path>/taken/<entry>` (ephemeral) | the item; the consumer's id |
//! | `NonBlockingLease(path, duration, identifier)` | [`NonBlockingLease`] | a `Lock` on `<path>`, `<path>/lease_holder` | `{"version": 1, "holder": …, "end": …}` |
//! | `MultiNonBlockingLease(count, path, …)` | [`MultiNonBlockingLease`] | `<path>/<n>` leases | as above |
//! | `SetPartitioner(path, set, identifier=…)` | [`SetPartitioner`] | `<path>/party` (a `ShallowParty`), `<path>/locks/<item>` (a `Lock` each) | the identifier; empty |
//!
//! Contenders are matched and ordered as kazoo does: a child counts if its name ends in
//! `__lock__` or `__rlock__` followed by a ten-digit sequence number (`-?\d{10}`), and they are
//! ordered by that number, compared as text. A [`lock`] waits only for `__lock__` nodes (kazoo's
//! `Lock` ignores readers), a [`write_lock`] for both, a [`read_lock`] only for `__lock__` nodes
//! (writers). Curator's `-lock-` nodes are not contenders for kazoo, and kazoo's are none for
//! Curator (see `curator-reference.md`, probes A–D): do not mix the two families on one path.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = corral_server::testing::TestingServer::start().await?;
//! # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
//! use corral_recipes::kazoo;
//!
//! // The same lock as `zk.Lock("/locks/report", "rust-worker-1")` in Python.
//! let lock = kazoo::lock(&fw, "/locks/report", "rust-worker-1");
//! let guard = lock.acquire().await?;
//! assert!(guard.path().contains("__lock__"));
//! assert_eq!(kazoo::contenders(&fw, "/locks/report").await?, ["rust-worker-1"]);
//! guard.release().await?;
//! # fw.close().await;
//! # Ok(()) }
//! ```

use std::future::Future;

use crate::Error;
use crate::Result;
use corral_core::Framework;

use crate::leader_selector::{LeaderSelector, Leadership};
use crate::lock::{Kind, Mutex};

mod barrier;
mod counter;
mod lease;
mod partitioner;
mod party;
mod queue;
mod semaphore;

pub use barrier::{Barrier, DoubleBarrier, READY_NODE_NAME};
pub use counter::{Counter, CounterChange, CounterValue};
pub use lease::{LEASE_HOLDER_NODE_NAME, LEASE_VERSION, LeaseHolder, MultiNonBlockingLease, NonBlockingLease};
pub use partitioner::{PartitionFn, PartitionState, SetPartitioner, SetPartitionerBuilder, kazoo_partition};
pub use party::{PARTY_NODE_NAME, Party, party_members, shallow_party_members};
pub use queue::{DEFAULT_PRIORITY, ENTRY_PREFIX, LockingQueue, Queue, QueueEntry};
pub use semaphore::{Semaphore, SemaphoreLease};

/// kazoo's exclusive lock node name (after the uuid hex, before the sequence).
pub const LOCK_NODE_NAME: &str = "__lock__";
/// kazoo's read lock node name.
pub const READ_LOCK_NODE_NAME: &str = "__rlock__";

/// Which of kazoo's locks a contender is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockKind {
    /// `Lock`: `__lock__`, waits for `__lock__`.
    Exclusive,
    /// `ReadLock`: `__rlock__`, waits for `__lock__` (writers).
    Read,
    /// `WriteLock`: `__lock__`, waits for `__lock__` and `__rlock__`.
    Write,
}

impl LockKind {
    pub(crate) fn node_name(self) -> &'static str {
        match self {
            Self::Exclusive | Self::Write => LOCK_NODE_NAME,
            Self::Read => READ_LOCK_NODE_NAME,
        }
    }

    /// A new contender's unique node name: kazoo's `uuid4().hex + node_name`.
    pub(crate) fn unique_name(self) -> String {
        format!("{}{}", uuid::Uuid::new_v4().simple(), self.node_name())
    }

    /// Whether a contender named `name` (of the given node name) keeps this kind waiting.
    fn waits_for(self, node_name: &str) -> bool {
        match self {
            Self::Exclusive | Self::Read => node_name == LOCK_NODE_NAME,
            Self::Write => node_name == LOCK_NODE_NAME || node_name == READ_LOCK_NODE_NAME,
        }
    }

    /// In `children` sorted with [`sort_contenders`], the contender that our node at `index`
    /// waits for: the nearest one before it that this kind waits for (kazoo's
    /// `_get_predecessor`); `None` when we hold.
    pub(crate) fn watch_target(self, children: &[String], index: usize) -> Option<usize> {
        children[..index].iter().rposition(|c| contender(c).is_some_and(|(name, _)| self.waits_for(name)))
    }
}

/// kazoo's contender rule: a name ending in `__lock__` or `__rlock__` and a ten-digit sequence
/// number (`-?\d{10}`); the node name and the sequence text.
pub(crate) fn contender(child: &str) -> Option<(&'static str, &str)> {
    let digits = child.get(child.len().checked_sub(10)?..)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut rest = &child[..child.len() - 10];
    let mut seq_start = child.len() - 10;
    if let Some(stripped) = rest.strip_suffix('-') {
        rest = stripped;
        seq_start -= 1;
    }
    let name = [LOCK_NODE_NAME, READ_LOCK_NODE_NAME].into_iter().find(|n| rest.ends_with(n))?;
    Some((name, &child[seq_start..]))
}

/// Sorts `children` as kazoo orders contenders: by sequence text; whatever is no contender
/// goes last (kazoo ignores it).
pub(crate) fn sort_contenders(children: &mut [String]) {
    children.sort_by(|a, b| match (contender(a), contender(b)) {
        (Some((_, x)), Some((_, y))) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    });
}

/// kazoo's `Lock(path, identifier)`: an exclusive lock whose contenders are `__lock__` nodes
/// with the identifier as data. A [`Mutex`] in every other respect: acquire, guards, holds,
/// cancel safety, session binding.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use std::time::Duration;
/// use corral_recipes::kazoo;
///
/// let first = kazoo::lock(&fw, "/locks/report", "a").acquire().await?;
/// let second = kazoo::lock(&fw, "/locks/report", "b");
/// assert!(matches!(second.acquire_timeout(Duration::from_millis(50)).await, Err(corral_recipes::Error::TimedOut { .. })));
/// first.release().await?;
/// second.acquire_timeout(Duration::from_secs(10)).await?;
/// # fw.close().await;
/// # Ok(()) }
/// ```
pub fn lock(fw: &Framework, path: impl Into<String>, identifier: impl Into<String>) -> Mutex {
    Mutex::with_kind(fw, path, Kind::Kazoo(LockKind::Exclusive)).with_data(identifier.into())
}

/// kazoo's `WriteLock(path, identifier)`: waits for every earlier `__lock__` and `__rlock__`
/// contender.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use std::time::Duration;
/// use corral_recipes::kazoo;
///
/// let reader = kazoo::read_lock(&fw, "/locks/table", "r").acquire().await?;
/// let writer = kazoo::write_lock(&fw, "/locks/table", "w");
/// assert!(matches!(writer.acquire_timeout(Duration::from_millis(50)).await, Err(corral_recipes::Error::TimedOut { .. })));
/// reader.release().await?;
/// writer.acquire_timeout(Duration::from_secs(10)).await?;
/// # fw.close().await;
/// # Ok(()) }
/// ```
pub fn write_lock(fw: &Framework, path: impl Into<String>, identifier: impl Into<String>) -> Mutex {
    Mutex::with_kind(fw, path, Kind::Kazoo(LockKind::Write)).with_data(identifier.into())
}

/// kazoo's `ReadLock(path, identifier)`: `__rlock__` nodes that wait only for earlier writers,
/// so any number of readers hold at once.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use corral_recipes::kazoo;
///
/// let a = kazoo::read_lock(&fw, "/locks/table", "a").acquire().await?;
/// let b = kazoo::read_lock(&fw, "/locks/table", "b").acquire().await?; // both hold
/// assert!(b.path().contains("__rlock__"));
/// # drop((a, b));
/// # fw.close().await;
/// # Ok(()) }
/// ```
pub fn read_lock(fw: &Framework, path: impl Into<String>, identifier: impl Into<String>) -> Mutex {
    Mutex::with_kind(fw, path, Kind::Kazoo(LockKind::Read)).with_data(identifier.into())
}

/// kazoo's `Election(path, identifier)`: a [`LeaderSelector`] whose contenders are kazoo
/// `Lock` nodes, so a Python `election.run(func)` and a Rust task take turns leading. `task`
/// runs while this participant leads; with `auto_requeue` it contends again after each term
/// (kazoo's `run` leads once).
///
/// # Panics
///
/// Outside a Tokio runtime.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use corral_recipes::kazoo;
///
/// let (tx, rx) = tokio::sync::oneshot::channel();
/// let tx = std::sync::Mutex::new(Some(tx));
/// let term = move |_leadership| {
///     let _ = tx.lock().unwrap().take().map(|tx| tx.send(()));
///     async {}
/// };
/// let election = kazoo::election(&fw, "/elections/report", "rust-1", false, term);
/// rx.await?; // led once, as kazoo's `run(func)`
/// election.wait_until_done().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
pub fn election<F, Fut>(
    fw: &Framework,
    path: impl Into<String>,
    identifier: impl Into<String>,
    auto_requeue: bool,
    task: F,
) -> LeaderSelector
where
    F: Fn(Leadership) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (path, id) = (path.into(), identifier.into());
    let mutex = lock(fw, path.clone(), id.clone());
    LeaderSelector::with_mutex(fw, path, id, mutex, auto_requeue, task)
}

/// kazoo's `Lock.contenders()`: the identifiers (node data) of every `__lock__` and `__rlock__`
/// contender under `path`, in lock order; empty if `path` does not exist.
///
/// # Errors
///
/// Connection errors once the framework's retries give up; server errors such as NoAuth.
///
/// # Cancel safety
///
/// Cancel safe: it only reads.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use corral_recipes::kazoo;
///
/// assert!(kazoo::contenders(&fw, "/locks/none").await?.is_empty());
/// let held = kazoo::lock(&fw, "/locks/report", "worker-7").acquire().await?;
/// assert_eq!(kazoo::contenders(&fw, "/locks/report").await?, ["worker-7"]);
/// # held.release().await?;
/// # fw.close().await;
/// # Ok(()) }
/// ```
pub async fn contenders(fw: &Framework, path: &str) -> Result<Vec<String>> {
    let mut children: Vec<String> =
        crate::sort::children_or_empty(fw, path).await?.into_iter().filter(|c| contender(c).is_some()).collect();
    sort_contenders(&mut children);
    let mut out = Vec::with_capacity(children.len());
    for child in children {
        let node = format!("{}/{child}", path.trim_end_matches('/'));
        let data = fw
            .with_retry(|client| {
                let node = node.clone();
                async move {
                    match client.get_data(&node).await {
                        Ok((data, _)) => Ok(Some(data)),
                        Err(e) if e.is_no_node() => Ok(None),
                        Err(e) => Err(e),
                    }
                }
            })
            .await?;
        if let Some(data) = data {
            out.push(String::from_utf8_lossy(&data).into_owned());
        }
    }
    Ok(out)
}

/// `<parent>/<name>`.
pub(crate) fn child_path(parent: &str, name: &str) -> String {
    format!("{}/{name}", parent.trim_end_matches('/'))
}

/// The data and stat of `path`, or `None` if it does not exist, with the framework's retries.
pub(crate) async fn data_or_none(fw: &Framework, path: &str) -> Result<Option<(bytes::Bytes, corral_core::Stat)>> {
    fw.with_retry(|client| async move {
        match client.get_data(path).await {
            Ok(found) => Ok(Some(found)),
            Err(e) if e.is_no_node() => Ok(None),
            Err(e) => Err(e),
        }
    })
    .await
    .map_err(Error::from)
}

/// The errors the kazoo recipes make, made here only.
pub(crate) mod errors {
    use crate::Error;

    /// `path` holds what kazoo would not accept either (`why` says what).
    pub(crate) fn corrupt(path: &str, why: String) -> Error {
        Error::corrupt(path, why)
    }

    /// An argument kazoo refuses too.
    pub(crate) fn bad_argument(what: String) -> Error {
        Error::bad_arguments(what)
    }

    /// What a recipe held through `session_id` went with that session.
    pub(crate) fn session_lost(session_id: i64) -> Error {
        Error::SessionLost { session_id }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn contenders_follow_kazoos_regex() {
        let hex = "514e5a83c0a44b5bb3b6a5a1b2c3d4e5";
        assert_eq!(contender(&format!("{hex}__lock__0000000032")), Some((LOCK_NODE_NAME, "0000000032")));
        assert_eq!(contender(&format!("{hex}__rlock__0000000001")), Some((READ_LOCK_NODE_NAME, "0000000001")));
        assert_eq!(contender(&format!("{hex}__lock__-000000001")), None); // `-` plus ten digits
        assert_eq!(contender(&format!("{hex}__lock__-0000000001")), Some((LOCK_NODE_NAME, "-0000000001")));
        assert_eq!(contender("_c_2f1e5a3c-9b0d-4c1e-8a51-0d7c3b1f9e20-lock-0000000007"), None);
        assert_eq!(contender("__lock__000000001"), None);
        assert_eq!(contender("x"), None);
    }

    #[test]
    fn waiting_follows_kazoos_predecessor_rule() {
        let mut children = names(&[
            "c__rlock__0000000003",
            "junk",
            "a__lock__0000000001",
            "b__rlock__0000000002",
            "d__lock__0000000004",
        ]);
        sort_contenders(&mut children);
        assert_eq!(
            children,
            names(&[
                "a__lock__0000000001",
                "b__rlock__0000000002",
                "c__rlock__0000000003",
                "d__lock__0000000004",
                "junk"
            ])
        );
        // A writer waits for the nearest earlier contender of either kind.
        assert_eq!(LockKind::Write.watch_target(&children, 3), Some(2));
        // A reader waits only for the nearest earlier writer.
        assert_eq!(LockKind::Read.watch_target(&children, 2), Some(0));
        // kazoo's plain Lock ignores readers.
        assert_eq!(LockKind::Exclusive.watch_target(&children, 3), Some(0));
        assert_eq!(LockKind::Exclusive.watch_target(&children, 0), None);
    }
}
