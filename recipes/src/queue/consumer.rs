//! [`Consumer`]: the consuming side of the `queue-` queues, a stream of [`QueueEvent`]s; the
//! claim of one node in a task of its own; the orders of Curator's queue kinds.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::{Error, Result};
use bytes::Bytes;
use corral_core::Error as CoreError;
use corral_core::framework::StateChanges;
use corral_core::{ConnectionStateChange, Framework, OneshotWatcher};
use futures::{FutureExt, Stream, StreamExt};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::message::{LockHold, ack_locked, take_lock};
use super::serializer::decode_bytes;
use super::{
    Message, QUEUE_ITEM_NAME, QueueSerializer, SerializeError, Taken, Woken, is_transient, list_and_watch, pause,
    requeue_in_background, take_node, wait_for_change, without_sequence,
};

/// Milliseconds since the Unix epoch, as a delay queue's consumers compare them with the nodes'
/// due times.
pub(crate) type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// How a consumer orders (and, for delays, holds back) the listed nodes: Curator's
/// `sortChildren` and `getDelay` of each queue kind.
#[derive(Clone)]
pub(crate) enum Order {
    /// `DistributedQueue`: names as strings.
    Fifo,
    /// `DistributedPriorityQueue`: names as strings, and the queue listed again whenever it
    /// changed before the next node is taken (Curator's `refreshOnWatch`), so that an urgent item
    /// put meanwhile goes first.
    Priority,
    /// `DistributedDelayQueue`: by the due time in `|%08X|`; a node is taken once due.
    Delay(Clock),
    /// `DistributedIdQueue`: by the name without its `|id|`.
    Id,
}

impl std::fmt::Debug for Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Fifo => "Fifo",
            Self::Priority => "Priority",
            Self::Delay(_) => "Delay",
            Self::Id => "Id",
        })
    }
}

/// The due time (ms since the epoch) of a delay queue node, `queue-|<hex>|<seq>`; 0 when it
/// has none (Curator's `getEpoch`).
pub(crate) fn due_time(name: &str) -> u64 {
    let Some(last) = name.rfind('|') else { return 0 };
    let Some(first) = name[..last].rfind('|') else { return 0 };
    if first == 0 || last <= first + 1 {
        return 0;
    }
    u64::from_str_radix(&name[first + 1..last], 16).unwrap_or(0)
}

/// An id queue node's (id, name without `|id|`) (Curator's `parseId`); the whole name twice
/// for a node without one.
pub(crate) fn parse_id(name: &str) -> (&str, String) {
    if let Some(first) = name.find('|')
        && let Some(len) = name[first + 1..].find('|')
    {
        let second = first + 1 + len;
        return (&name[first + 1..second], format!("{}{}", &name[..first], &name[second + 1..]));
    }
    (name, name.to_owned())
}

impl Order {
    /// Sorts `names`; for a delay queue, keeps only those due and returns when the next one is.
    fn arrange(&self, names: &mut Vec<String>) -> Option<Instant> {
        match self {
            Self::Fifo | Self::Priority => names.sort(),
            Self::Id => names.sort_by_cached_key(|n| parse_id(n).1),
            Self::Delay(clock) => {
                names.sort_by_cached_key(|n| (due_time(n), n.clone()));
                let now = clock();
                let due = names.iter().take_while(|n| due_time(n) <= now).count();
                let next = names.get(due).map(|n| due_time(n) - now);
                names.truncate(due);
                return next.map(|ms| Instant::now() + Duration::from_millis(ms));
            }
        }
        None
    }
}

/// Starts a consumer of the queue at `dir`.
pub(crate) fn start<S: QueueSerializer>(
    fw: &Framework,
    dir: &str,
    lock_dir: Option<String>,
    serializer: Arc<S>,
    order: Order,
) -> Consumer<S::Item> {
    let run = Run {
        fw: fw.clone(),
        dir: dir.to_owned(),
        lock_dir,
        serializer,
        order,
        id: Bytes::from(uuid::Uuid::new_v4().to_string()),
        states: fw.state_changes(),
        pending: VecDeque::new(),
        inflight: None,
        watchers: Vec::new(),
        next_due: None,
        attempt: 0,
        done: false,
    };
    let stream = futures::stream::unfold(run, |mut run| async move {
        if run.done {
            return None;
        }
        let event = run.step().await;
        if matches!(event, Err(Error::Core(CoreError::Closed))) {
            run.done = true;
        }
        Some((event, run))
    });
    Consumer { stream: Box::pin(stream) }
}

/// What a [`Consumer`] yields.
#[derive(Debug)]
pub enum QueueEvent<T> {
    /// A message taken from the queue.
    Message(Message<T>),
    /// The framework's connection state changed (see [`Framework::state_changes`]). The
    /// consumer lists the queue again after each one.
    State(ConnectionStateChange),
}

/// A [`DistributedQueue`](super::DistributedQueue) consumer: a stream of [`QueueEvent`]s, messages in node order with
/// the connection states in between.
///
/// The stream waits on a watch of the queue's children (and of the lock directory in lock-safe
/// mode), never polls, waits out connection errors and session expiry with a jittered backoff,
/// and ends after yielding [`corral_core::Error::Closed`] once the framework is closed.
///
/// # Cancel safety
///
/// Dropping a `next()` (or [`Consumer::next_message`]) future loses nothing: the step under way
/// stays in the stream and goes on at the next poll. Dropping the consumer while it takes a
/// message puts the message back in the queue, in the background: in normal mode as a new node
/// of the same name (so at the tail of its priority, due time or id), in lock-safe mode by
/// releasing its lock.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use bytes::Bytes;
/// use corral_recipes::queue::DistributedQueue;
///
/// let queue = DistributedQueue::new(&fw, "/queues/jobs");
/// let mut consumer = queue.consumer();
/// let producer = tokio::spawn({
///     let queue = queue.clone();
///     async move { queue.put(&Bytes::from("job-1")).await }
/// });
/// assert_eq!(consumer.next_message().await?.items(), [Bytes::from("job-1")]);
/// producer.await??;
/// # fw.close().await;
/// # Ok(()) }
/// ```
pub struct Consumer<T> {
    stream: Pin<Box<dyn Stream<Item = Result<QueueEvent<T>>> + Send>>,
}

impl<T> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").finish_non_exhaustive()
    }
}

impl<T> Stream for Consumer<T> {
    type Item = Result<QueueEvent<T>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.stream.as_mut().poll_next(cx)
    }
}

impl<T> Consumer<T> {
    /// The next message, skipping connection states; waits for one.
    ///
    /// # Errors
    ///
    /// [`corral_core::Error::Closed`] once the framework is closed; server errors such as NoAuth as
    /// [`corral_core::Error::Server`]. The consumer can be used again after an error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as the stream's `next()`: nothing is lost.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use bytes::Bytes;
    /// use corral_recipes::queue::DistributedQueue;
    ///
    /// let queue = DistributedQueue::new(&fw, "/queues/jobs");
    /// queue.put(&Bytes::from("job-1")).await?;
    /// let message = queue.consumer().next_message().await?;
    /// assert_eq!(message.items(), [Bytes::from("job-1")]);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn next_message(&mut self) -> Result<Message<T>> {
        loop {
            match self.stream.next().await {
                Some(Ok(QueueEvent::Message(message))) => return Ok(message),
                Some(Ok(QueueEvent::State(_))) => continue,
                Some(Err(e)) => return Err(e),
                None => return Err(Error::CLOSED),
            }
        }
    }

    /// As [`Consumer::next_message`], waiting at most `timeout`; [`Error::TimedOut`] if no message
    /// came in time.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] when `timeout` passes first; otherwise as [`Consumer::next_message`].
    ///
    /// # Cancel safety
    ///
    /// As [`Consumer::next_message`]: a message being taken when the time runs out is not lost, the next
    /// take gets it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::{Error, queue::DistributedQueue};
    ///
    /// let mut consumer = DistributedQueue::new(&fw, "/queues/jobs").consumer();
    /// let waited = consumer.next_message_timeout(Duration::from_millis(100)).await;
    /// assert!(matches!(waited, Err(Error::TimedOut { .. })));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn next_message_timeout(&mut self, timeout: Duration) -> Result<Message<T>> {
        tokio::time::timeout(timeout, self.next_message()).await.unwrap_or(Err(Error::TimedOut { after: timeout }))
    }
}

/// A node taken from the queue but not yet handed to the caller. Dropped unhanded, it puts the
/// data back (normal mode) or releases the lock (lock-safe mode).
#[derive(Debug)]
struct Claimed {
    fw: Framework,
    dir: String,
    path: String,
    data: Option<Bytes>,
    lock: Option<LockHold>,
}

impl Drop for Claimed {
    fn drop(&mut self) {
        if self.lock.is_none()
            && let Some(data) = self.data.take()
        {
            // Under its own name (priority, due time or id kept), at the tail.
            let name = corral_core::proto::path::name(&self.path);
            requeue_in_background(&self.fw, &self.dir, without_sequence(name), vec![data]);
        }
    }
}

impl Claimed {
    /// The message, or (corrupted) the claim back, to dispose of.
    fn into_message<S: QueueSerializer>(mut self, serializer: &S) -> std::result::Result<Message<S::Item>, Box<Self>> {
        let Some(data) = self.data.take() else { return Err(Box::new(self)) };
        let decoded = decode_bytes(data).and_then(|parts| {
            parts.into_iter().map(|part| serializer.deserialize(part)).collect::<std::result::Result<Vec<_>, _>>()
        });
        match decoded {
            Ok(items) => Ok(Message::new(items, std::mem::take(&mut self.path), self.lock.take())),
            Err(e) => {
                corrupted(&self.path, &e);
                Err(Box::new(self))
            }
        }
    }
}

fn corrupted(path: &str, e: &SerializeError) {
    tracing::error!(path, error = %e, "corrupted queue message; discarded");
}

/// What one claim task needs.
#[derive(Debug, Clone)]
struct Claimer {
    fw: Framework,
    dir: String,
    lock_dir: Option<String>,
    id: Bytes,
}

impl Claimer {
    /// Takes the first of `names` still there (and, in lock-safe mode, not locked); returns it and
    /// the names after it.
    async fn claim(self, mut names: VecDeque<String>) -> Result<(Option<Claimed>, VecDeque<String>)> {
        while let Some(name) = names.pop_front() {
            let path = format!("{}/{name}", self.dir);
            let Some(lock_dir) = &self.lock_dir else {
                match take_node(&self.fw, &path).await? {
                    Taken::Data(data) => {
                        let claimed =
                            Claimed { fw: self.fw.clone(), dir: self.dir.clone(), path, data: Some(data), lock: None };
                        return Ok((Some(claimed), names));
                    }
                    Taken::Gone => continue,
                }
            };
            let Some(hold) = take_lock(&self.fw, format!("{lock_dir}/{name}"), self.id.clone()).await? else {
                continue;
            };
            match self.fw.with_retry(|client| client.get_data(&path)).await {
                Ok((data, _)) => {
                    let claimed = Claimed {
                        fw: self.fw.clone(),
                        dir: self.dir.clone(),
                        path,
                        data: Some(data),
                        lock: Some(hold),
                    };
                    return Ok((Some(claimed), names));
                }
                // Processed by the consumer that held the lock before us.
                Err(e) if e.is_no_node() => hold.release().await,
                Err(e) => return Err(Error::from(e)),
            }
        }
        Ok((None, names))
    }
}

type ClaimTask = JoinHandle<Result<(Option<Claimed>, VecDeque<String>)>>;

/// A consumer's state, kept across `next()` calls (and across dropped ones).
struct Run<S: QueueSerializer> {
    fw: Framework,
    dir: String,
    lock_dir: Option<String>,
    serializer: Arc<S>,
    order: Order,
    /// The data of this consumer's lock nodes.
    id: Bytes,
    states: StateChanges,
    /// Names from the last listing not tried yet, in order.
    pending: VecDeque<String>,
    /// The claim under way: its own task, so that dropping the consumer does not cut a delete
    /// short (the task's unclaimed result puts the message back, see [`Claimed`]).
    inflight: Option<ClaimTask>,
    /// The watches of the last listing (the queue's first).
    watchers: Vec<OneshotWatcher>,
    /// When the next node of a delay queue is due.
    next_due: Option<Instant>,
    attempt: u32,
    done: bool,
}

impl<S: QueueSerializer> Run<S> {
    async fn step(&mut self) -> Result<QueueEvent<S::Item>> {
        loop {
            if let Some(Some(state)) = self.states.next().now_or_never() {
                return Ok(self.on_state(state));
            }
            if let Some(task) = self.inflight.as_mut() {
                let joined = task.await;
                self.inflight = None;
                match joined {
                    Ok(Ok((Some(claimed), rest))) => {
                        self.attempt = 0;
                        self.pending = rest;
                        match claimed.into_message(&*self.serializer) {
                            Ok(message) => return Ok(QueueEvent::Message(message)),
                            Err(mut corrupt) => {
                                // As Curator: a corrupted message is consumed (deleted with its lock).
                                if let Some(hold) = corrupt.lock.take() {
                                    let path = corrupt.path.clone();
                                    tokio::spawn(async move {
                                        let _ = ack_locked(hold, &path).await;
                                    });
                                }
                                continue;
                            }
                        }
                    }
                    Ok(Ok((None, _))) => {
                        // Nothing left to take from the last listing: wait for a change.
                        self.pending.clear();
                        if let Some(state) = self.wait().await {
                            return Ok(self.on_state(state));
                        }
                        continue;
                    }
                    Ok(Err(e)) if e.core().is_some_and(is_transient) => {
                        self.retry_later(&e).await;
                        continue;
                    }
                    Ok(Err(e)) => {
                        self.pending.clear();
                        return Err(e);
                    }
                    Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
                    Err(_) => return Err(Error::CLOSED),
                }
            }
            if self.pending.is_empty() {
                match self.list().await {
                    Ok(true) => {}
                    Ok(false) => {
                        if let Some(state) = self.wait().await {
                            return Ok(self.on_state(state));
                        }
                        continue;
                    }
                    Err(e) if e.core().is_some_and(is_transient) => {
                        self.retry_later(&e).await;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            if matches!(self.order, Order::Priority) && self.queue_changed() {
                // Something was put (or taken) since the listing: list again, in case it goes
                // first.
                self.pending.clear();
                self.watchers.clear();
                continue;
            }
            let claimer = Claimer {
                fw: self.fw.clone(),
                dir: self.dir.clone(),
                lock_dir: self.lock_dir.clone(),
                id: self.id.clone(),
            };
            self.inflight = Some(tokio::spawn(claimer.claim(std::mem::take(&mut self.pending))));
        }
    }

    /// Waits for a watch, a state change, or the next due time; a state change is returned.
    async fn wait(&mut self) -> Option<ConnectionStateChange> {
        let watchers = std::mem::take(&mut self.watchers);
        match wait_for_change(watchers, &mut self.states, self.next_due.take()).await {
            Woken::State(state) => Some(state),
            Woken::Changed | Woken::TimedOut => None,
        }
    }

    /// Whether the queue's watch of the last listing has fired (it is then dropped, with the
    /// rest of the listing's watches).
    fn queue_changed(&mut self) -> bool {
        match self.watchers.first_mut() {
            Some(watcher) => watcher.now_or_never().is_some(),
            None => false,
        }
    }

    /// After a connection state change everything is listed again.
    fn on_state(&mut self, state: ConnectionStateChange) -> QueueEvent<S::Item> {
        self.pending.clear();
        self.watchers.clear();
        QueueEvent::State(state)
    }

    async fn retry_later(&mut self, e: &Error) {
        self.attempt += 1;
        self.pending.clear();
        tracing::debug!(path = %self.dir, error = %e, attempt = self.attempt, "queue consumer: retrying");
        pause(&self.fw, self.attempt, None).await;
    }

    /// Lists the queue (and the locks) with watches; whether there is anything to try.
    async fn list(&mut self) -> Result<bool> {
        let (children, queue_watch) = list_and_watch(&self.fw, &self.dir).await?;
        let mut names: Vec<String> = children
            .into_iter()
            .filter(|c| {
                let ours = c.starts_with(QUEUE_ITEM_NAME);
                if !ours {
                    tracing::warn!(path = %self.dir, child = %c, "foreign node in queue path");
                }
                ours
            })
            .collect();
        let mut watchers = vec![queue_watch];
        if let Some(lock_dir) = &self.lock_dir {
            let (locks, lock_watch) = list_and_watch(&self.fw, lock_dir).await?;
            names.retain(|n| !locks.contains(n));
            watchers.push(lock_watch);
        }
        self.next_due = self.order.arrange(&mut names);
        self.watchers = watchers;
        self.pending = names.into();
        Ok(!self.pending.is_empty())
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_as_curator_parses_them() {
        assert_eq!(due_time("queue-|1A2002211BC|0000000000"), 0x1A2002211BC);
        assert_eq!(due_time("queue-0000000000"), 0);
        assert_eq!(due_time("queue-||0000000000"), 0);
        assert_eq!(parse_id("queue-|my-id|0000000003"), ("my-id", "queue-0000000003".to_owned()));
        assert_eq!(parse_id("queue-0000000003"), ("queue-0000000003", "queue-0000000003".to_owned()));
        assert_eq!(super::super::without_sequence("queue-|x|0000000012"), "queue-|x|");
        assert_eq!(super::super::without_sequence("qn--000000001"), "qn-");
    }

    #[test]
    fn orders_sort_as_curators() {
        let mut names: Vec<String> =
            ["queue-|b|0000000001", "queue-|a|0000000002", "queue-|c|0000000000"].map(String::from).into();
        Order::Id.arrange(&mut names);
        assert_eq!(names, ["queue-|c|0000000000", "queue-|b|0000000001", "queue-|a|0000000002"]);

        let clock: Clock = Arc::new(|| 100);
        let mut names: Vec<String> =
            ["queue-|00000096|0000000000", "queue-|00000010|0000000001", "queue-|00000064|0000000002"]
                .map(String::from)
                .into();
        let next = Order::Delay(clock).arrange(&mut names);
        // 0x10 and 0x64 (= 100) are due, 0x96 (150) comes 50 ms later.
        assert_eq!(names, ["queue-|00000010|0000000001", "queue-|00000064|0000000002"]);
        let next = next.expect("a next due time");
        assert!(
            next > Instant::now() + Duration::from_millis(40) && next <= Instant::now() + Duration::from_millis(50)
        );
    }
}
