//! Distributed queues with Curator's node layouts:
//!
//! - [`SimpleDistributedQueue`]: `qn-` nodes of raw bytes (ZooKeeper's own queue recipe, also
//!   kazoo's and Curator's `SimpleDistributedQueue`);
//! - [`DistributedQueue`]: `queue-` nodes holding Curator's `ItemSerializer` messages, with
//!   Curator's lock-safe mode, and its variants on the same layout and bytes:
//!   [`DistributedPriorityQueue`] (`queue-` + [`priority_name`]), [`DistributedDelayQueue`]
//!   (`queue-` + [`due_name`]) and [`DistributedIdQueue`] (`queue-` + [`id_name`], with removal
//!   by id). Their consumers are [`Consumer`] streams.
//!
//! # Delivery
//!
//! An item is a persistent sequential node. A consumer takes it by deleting it: the consumer whose
//! delete succeeds gets the item, every other one moves on. Consumers list the queue with a watch
//! and wait for it to fire (or for a connection state change) when nothing is left to take; they
//! never poll.
//!
//! - [`SimpleDistributedQueue::take`] and a [`DistributedQueue`] consumer without a lock path
//!   (Curator's normal mode) hand each item to one consumer, and lose none while the process
//!   lives: a take dropped after it deleted a node keeps the item for the next take (or puts it
//!   back in the queue). If the delete was applied but its reply lost with the connection, the
//!   consumer cannot tell from the error whether its delete or another consumer's removed the
//!   node; it then keeps the item (no loss), so in that one race an item can reach two consumers.
//!   Once handed out, an item is the caller's: if the process dies before processing it, it is
//!   gone (at most once).
//! - With a lock path ([`DistributedQueue::lock_path`], Curator's `lockPath`), a consumer first
//!   creates an ephemeral lock node for the item, and deletes the item and the lock together only
//!   when the caller [acknowledges](Message::ack) it. An item whose consumer dies, drops the
//!   [`Message`] or loses its session is delivered again: at least once.
//!
//! # Connection states
//!
//! A waiting take or consumer lists the queue again after every connection state change
//! (SUSPENDED, RECONNECTED, LOST, a new session), so an item put while the connection was down or
//! during a new session is found, and a take goes on across a new session. A [`Consumer`] also
//! yields the connection states as [`QueueEvent::State`] values, in order with the messages:
//! Curator's `QueueConsumer.stateChanged` is never called (CURATOR-336).
//!
//! Producers: a put is a sequential create, retried under the framework's retry policy. As in
//! Curator, a retry after a lost reply can create the node twice (queue names cannot carry
//! Curator's protected prefix: Curator's consumers would take it for a foreign node).

mod consumer;
mod delay;
mod distributed;
mod id;
mod keyed;
mod message;
mod priority;
mod serializer;
mod sharder;
mod simple;

use crate::{Error, Result};
use corral_core::Error as CoreError;
use corral_core::framework::StateChanges;
use corral_core::{ConnectionStateChange, Framework, OneshotWatcher};
use futures::StreamExt;
use tokio::time::Instant;

pub use consumer::{Consumer, QueueEvent};
pub use delay::{DistributedDelayQueue, due_name};
pub use distributed::{DistributedQueue, QUEUE_ITEM_NAME};
pub use id::{DistributedIdQueue, id_name};
pub use message::Message;
pub use priority::{DistributedPriorityQueue, priority_name};
pub use serializer::{
    BytesSerializer, MESSAGE_VERSION, QueueSerializer, SerializeError, decode_message, encode_message,
};
pub use sharder::{QueueSharder, QueueSharderPolicies, SHARD_PREFIX};
pub use simple::{SIMPLE_QUEUE_PREFIX, SimpleDistributedQueue};

/// Errors worth waiting out: the connection or the session is coming back.
pub(crate) fn is_transient(e: &CoreError) -> bool {
    e.is_retryable() || matches!(e, CoreError::Timeout | CoreError::SessionExpired | CoreError::ConnectionLoss)
}

/// The children of `dir` with a watch on them; an empty list and a watch on `dir`'s creation when
/// it does not exist.
pub(crate) async fn list_and_watch(fw: &Framework, dir: &str) -> Result<(Vec<String>, OneshotWatcher)> {
    fw.with_retry(|client| {
        let dir = dir.to_owned();
        async move {
            loop {
                match client.get_children_and_watch(&dir).await {
                    Ok((children, _, watcher)) => return Ok((children, watcher)),
                    Err(e) if e.is_no_node() => {}
                    Err(e) => return Err(e),
                }
                let (stat, watcher) = client.exists_and_watch(&dir).await?;
                if stat.is_none() {
                    return Ok((Vec::new(), watcher));
                }
                // Created in between: list it.
            }
        }
    })
    .await
    .map_err(Error::from)
}

/// Why a wait ended.
#[derive(Debug)]
pub(crate) enum Woken {
    /// A watch fired: list again.
    Changed,
    /// The connection state changed: list again (and tell the consumer).
    State(ConnectionStateChange),
    /// The deadline passed.
    TimedOut,
}

/// Waits for one of `watchers` to fire, a connection state change, or `deadline`.
pub(crate) async fn wait_for_change(
    watchers: Vec<OneshotWatcher>,
    states: &mut StateChanges,
    deadline: Option<Instant>,
) -> Woken {
    let fired = async {
        if watchers.is_empty() {
            std::future::pending::<()>().await;
        }
        futures::future::select_all(watchers).await;
    };
    tokio::select! {
        _ = fired => Woken::Changed,
        state = states.next() => match state {
            Some(state) => Woken::State(state),
            // The framework is gone: listing again reports it.
            None => Woken::Changed,
        },
        _ = sleep_until_opt(deadline) => Woken::TimedOut,
    }
}

pub(crate) async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Sleeps the recipes' one jittered backoff (see [`crate::task::Backoff`]), cut short by
/// `deadline`; false if the deadline passed.
pub(crate) async fn pause(fw: &Framework, attempt: u32, deadline: Option<Instant>) -> bool {
    let until = Instant::now() + crate::task::backoff_delay(&*fw.retry_policy(), attempt);
    match deadline {
        Some(d) if d <= until => {
            tokio::time::sleep_until(d).await;
            false
        }
        _ => {
            tokio::time::sleep_until(until).await;
            true
        }
    }
}

/// What taking one node gave.
#[derive(Debug)]
pub(crate) enum Taken {
    /// The node was ours: its data.
    Data(bytes::Bytes),
    /// Another consumer took it (or it changed under us).
    Gone,
}

/// A sequential node's name without its 10-character sequence suffix (`%010d`, a `-` included
/// when it wrapped): the prefix to create it again with.
pub(crate) fn without_sequence(name: &str) -> &str {
    let cut = name.len().saturating_sub(10);
    name.get(..cut).unwrap_or(name)
}

/// Takes the node at `path` by reading and deleting it (Curator's `processNormally`: delete with
/// the version read, so a node replaced in between is not taken blind).
///
/// Once the delete was sent this does not give up until it knows the outcome (or the framework
/// is closed): a connection error leaves it unknown whether the delete was applied, so it waits
/// for the connection and looks. A node still there was not deleted: it tries again. A node gone
/// counts as taken by us (see the module docs for the one race where that duplicates an item).
pub(crate) async fn take_node(fw: &Framework, path: &str) -> Result<Taken> {
    let taken = take_node_once(fw, path).await;
    if let Ok(Taken::Data(_)) = &taken {
        metrics::counter!(corral_core::metrics::QUEUE_TAKES_TOTAL).increment(1);
    }
    taken
}

async fn take_node_once(fw: &Framework, path: &str) -> Result<Taken> {
    let (data, stat) = match fw.with_retry(|client| client.get_data(path)).await {
        Ok(found) => found,
        Err(e) if e.is_no_node() => return Ok(Taken::Gone),
        Err(e) => return Err(Error::from(e)),
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let error = match fw.client().delete(path, Some(stat.version)).await {
            Ok(()) => return Ok(Taken::Data(data)),
            Err(e) if e.is_no_node() || e.code() == corral_core::ErrorCode::BadVersion => {
                return Ok(Taken::Gone);
            }
            Err(e) if is_transient(&e) => e,
            Err(CoreError::Closed) => return Ok(Taken::Data(data)),
            Err(e) => return Err(Error::from(e)),
        };
        tracing::debug!(path, error = %error, "queue item delete: outcome unknown; looking");
        // Find out whether the delete was applied.
        loop {
            match fw.with_retry(|client| client.exists(path)).await {
                Ok(Some(_)) => break,
                Ok(None) => {
                    tracing::warn!(path, "queue item gone after a lost delete reply; keeping it");
                    return Ok(Taken::Data(data));
                }
                Err(CoreError::Closed) => return Ok(Taken::Data(data)),
                Err(e) => {
                    tracing::debug!(path, error = %e, "queue item delete: still looking");
                    pause(fw, attempt, None).await;
                    attempt += 1;
                }
            }
        }
    }
}

/// Puts `bytes` back at the tail of a queue (a new `prefix` node under `dir`), in the background,
/// for items taken from ZooKeeper that no caller will receive.
pub(crate) fn requeue_in_background(fw: &Framework, dir: &str, prefix: &str, bytes: Vec<bytes::Bytes>) {
    if bytes.is_empty() {
        return;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        tracing::error!(dir, items = bytes.len(), "no Tokio runtime to put taken queue items back; they are lost");
        return;
    };
    let (fw, dir, prefix) = (fw.clone(), dir.to_owned(), prefix.to_owned());
    handle.spawn(async move {
        let spec = corral_core::framework::Create::new(corral_core::CreateMode::PersistentSequential).parents();
        for data in bytes {
            let mut attempt = 0;
            loop {
                attempt += 1;
                match fw.create(&format!("{dir}/{prefix}"), data.clone(), spec.clone()).await {
                    Ok(path) => {
                        tracing::info!(%path, "queue item taken but not delivered: put back");
                        break;
                    }
                    Err(e) if is_transient(&e) => {
                        pause(&fw, attempt, None).await;
                    }
                    Err(e) => {
                        tracing::error!(dir, error = %e, "cannot put a taken queue item back; it is lost");
                        break;
                    }
                }
            }
        }
    });
}
