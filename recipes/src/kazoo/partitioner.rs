//! kazoo's `SetPartitioner`: a set of items split among the members of a party, each item
//! held by one member at a time, re-split when members come and go.
//!
//! # Layout (kazoo 2.11's `kazoo/recipe/partitioner.py`)
//!
//! | node | kind | data |
//! |---|---|---|
//! | `<path>/party/<uuid hex>-<identifier>` | ephemeral, one per member (a kazoo `ShallowParty`) | the identifier |
//! | `<path>/locks/<item>/<uuid hex>__lock__<seq>` | a kazoo [`lock`](super::lock) contender per item a member holds or wants | empty |
//!
//! # How it works
//!
//! A member joins the party and is [`Allocating`](PartitionState::Allocating): it waits until
//! the party has not changed for `time_boundary` (kazoo's `PatientChildrenWatch`), computes its
//! share — by default kazoo's: the items sorted, every `n`-th from the member's place among the
//! `n` identifiers sorted — and locks each item of it, giving each lock at most
//! `max_reaction_time` at a time so that a party change in between starts it over. With all
//! its locks it is [`Acquired`](PartitionState::Acquired). When the party changes it goes to
//! [`Release`](PartitionState::Release) and keeps its locks until the application has stopped
//! working on its items and calls [`SetPartitioner::release_set`]; then it allocates again.
//! Identifiers must be unique within a party, as kazoo requires.
//!
//! Instead of kazoo's polled flags, the states come as a [`Stream`](futures::Stream)
//! ([`SetPartitioner::states`]).
//!
//! # Connection states
//!
//! | state | what happens |
//! |---|---|
//! | SUSPENDED (an error under the Standard policy) | `Allocating` or `Acquired` goes to `Release` (as kazoo on every connection change): the locks may be lost |
//! | RECONNECTED (same session) | nothing more; the application's `release_set` allocates again |
//! | LOST | [`Failure`](PartitionState::Failure), for good, as kazoo: the party node and the locks went with the session. Make a new partitioner |
//!
//! The party node and every lock are made through the session the partitioner started in
//! (its [`Session`] handle); nothing of it runs in a later session.

use std::sync::Arc;
use std::time::Duration;

use crate::Result;
use corral_core::framework::{Create, Session};
use corral_core::{ConnectionState, ConnectionStateChange, CreateMode, ErrorPolicy, Framework, OneshotWatcher};
use futures::{FutureExt, Stream};
use tokio::sync::watch;

use super::child_path;
use crate::lock::MutexGuard;
use crate::task::RecipeTask;

/// A partitioner's state: kazoo's `PartitionState`, with the acquired items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionState {
    /// The set is being split: waiting for the party to settle, or for item locks.
    Allocating,
    /// This member holds these items (sorted as the partition function returned them).
    Acquired(Vec<String>),
    /// The party changed (or the connection did): stop working on the items, then call
    /// [`SetPartitioner::release_set`].
    Release,
    /// The session was lost, or the partitioner finished: it holds nothing and is done.
    Failure,
}

/// How a member's share is computed: `(identifier, members, set) -> share`, where `members`
/// are the party's identifiers (unsorted) and `set` the items. Every member must use the same
/// function.
pub type PartitionFn = Arc<dyn Fn(&str, &[String], &[String]) -> Vec<String> + Send + Sync>;

/// kazoo's default partition function: the items sorted, and from the member's index `i` in
/// the sorted identifiers, every `n`-th item (`sorted(set)[i::n]`); nothing if `identifier` is
/// not a member.
///
/// # Examples
///
/// ```
/// use corral_recipes::kazoo::kazoo_partition;
///
/// let set: Vec<String> = ["d", "a", "c", "b", "e"].map(String::from).to_vec();
/// let members = ["rust", "py"].map(String::from);
/// assert_eq!(kazoo_partition("py", &members, &set), ["a", "c", "e"]);
/// assert_eq!(kazoo_partition("rust", &members, &set), ["b", "d"]);
/// ```
pub fn kazoo_partition(identifier: &str, members: &[String], set: &[String]) -> Vec<String> {
    let mut items = set.to_vec();
    items.sort();
    let mut workers = members.to_vec();
    workers.sort();
    let Some(i) = workers.iter().position(|w| w == identifier) else { return Vec::new() };
    items.into_iter().skip(i).step_by(workers.len()).collect()
}

/// Options of a [`SetPartitioner`]: kazoo's keyword arguments.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use std::time::Duration;
/// use corral_recipes::kazoo::{PartitionState, SetPartitioner};
///
/// let partitioner = SetPartitioner::builder(&fw, "/work", ["q1", "q2"], "worker-1")
///     .time_boundary(Duration::from_millis(100))
///     .max_reaction_time(Duration::from_millis(200))
///     .start();
/// assert!(matches!(partitioner.wait_for_acquire().await, PartitionState::Acquired(_)));
/// # partitioner.finish().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
pub struct SetPartitionerBuilder {
    fw: Framework,
    path: String,
    set: Vec<String>,
    identifier: String,
    time_boundary: Duration,
    max_reaction_time: Duration,
    partition: PartitionFn,
}

impl std::fmt::Debug for SetPartitionerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetPartitionerBuilder")
            .field("path", &self.path)
            .field("set", &self.set)
            .field("identifier", &self.identifier)
            .field("time_boundary", &self.time_boundary)
            .field("max_reaction_time", &self.max_reaction_time)
            .finish_non_exhaustive()
    }
}

impl SetPartitionerBuilder {
    /// How long the party must stay unchanged before the set is split (kazoo's
    /// `time_boundary`, 30 s by default).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::kazoo::SetPartitioner;
    ///
    /// let p = SetPartitioner::builder(&fw, "/work", ["a"], "w").time_boundary(Duration::ZERO).start();
    /// p.wait_for_acquire().await;
    /// # p.finish().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn time_boundary(mut self, time_boundary: Duration) -> Self {
        self.time_boundary = time_boundary;
        self
    }

    /// How long one try for an item's lock may last before the party is looked at again
    /// (kazoo's `max_reaction_time`, 1 s by default).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::kazoo::SetPartitioner;
    ///
    /// let p = SetPartitioner::builder(&fw, "/work", ["a"], "w")
    ///     .time_boundary(Duration::ZERO)
    ///     .max_reaction_time(Duration::from_millis(100))
    ///     .start();
    /// p.wait_for_acquire().await;
    /// # p.finish().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn max_reaction_time(mut self, max_reaction_time: Duration) -> Self {
        self.max_reaction_time = max_reaction_time;
        self
    }

    /// The partition function (kazoo's `partition_func`); [`kazoo_partition`] by default.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::kazoo::{PartitionState, SetPartitioner};
    ///
    /// // Everything to one member: a failover, not a split.
    /// let p = SetPartitioner::builder(&fw, "/work", ["a", "b"], "w")
    ///     .time_boundary(Duration::ZERO)
    ///     .partition_func(|me: &str, members: &[String], set: &[String]| {
    ///         if members.iter().min().map(String::as_str) == Some(me) { set.to_vec() } else { Vec::new() }
    ///     })
    ///     .start();
    /// assert_eq!(p.wait_for_acquire().await, PartitionState::Acquired(vec!["a".into(), "b".into()]));
    /// # p.finish().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn partition_func(
        mut self,
        partition: impl Fn(&str, &[String], &[String]) -> Vec<String> + Send + Sync + 'static,
    ) -> Self {
        self.partition = Arc::new(partition);
        self
    }

    /// Starts the partitioner: joins the party and begins allocating, in a background task.
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
    /// use std::time::Duration;
    /// use corral_recipes::kazoo::{PartitionState, SetPartitioner};
    ///
    /// let p = SetPartitioner::builder(&fw, "/work", ["a"], "w").time_boundary(Duration::ZERO).start();
    /// assert_eq!(p.state(), PartitionState::Allocating);
    /// # p.finish().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn start(self) -> SetPartitioner {
        let (state_tx, state) = watch::channel(PartitionState::Allocating);
        // How many times the application called `release_set`.
        let (release, release_rx) = watch::channel(0u64);
        let member = Member {
            fw: self.fw,
            path: self.path,
            set: self.set,
            identifier: self.identifier,
            time_boundary: self.time_boundary,
            max_reaction_time: self.max_reaction_time,
            partition: self.partition,
            state: state_tx,
            release: release_rx,
            locks: Vec::new(),
        };
        let task = RecipeTask::spawn(move |stop| member.run(stop));
        SetPartitioner { state, release, task }
    }
}

/// kazoo's `SetPartitioner(path, set, identifier=…)`: this process's member of a party that
/// splits `set`; see the [module docs](crate::kazoo). Dropping it leaves the party and releases its
/// locks in the background.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use std::time::Duration;
/// use corral_recipes::kazoo::{PartitionState, SetPartitioner};
/// use futures::StreamExt;
///
/// let partitioner = SetPartitioner::builder(&fw, "/work", ["q1", "q2", "q3"], "worker-1")
///     .time_boundary(Duration::from_millis(100))
///     .start();
/// let mut states = partitioner.states();
/// while let Some(state) = states.next().await {
///     match state {
///         PartitionState::Acquired(items) => {
///             assert_eq!(items, ["q1", "q2", "q3"]); // alone: everything
///             break; // work on the items here
///         }
///         PartitionState::Release => partitioner.release_set(), // stop work first
///         PartitionState::Failure => break,
///         PartitionState::Allocating => {}
///     }
/// }
/// partitioner.finish().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SetPartitioner {
    state: watch::Receiver<PartitionState>,
    release: watch::Sender<u64>,
    task: RecipeTask,
}

impl SetPartitioner {
    /// A partitioner of `set` at `path` for the member `identifier` (kazoo's default is
    /// `"<fqdn>-<pid>"`; it must be unique in the party and a valid node name). See
    /// [`SetPartitionerBuilder`] for the options, then [`SetPartitionerBuilder::start`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::kazoo::SetPartitioner;
    ///
    /// let p = SetPartitioner::builder(&fw, "/work", ["a"], "w").time_boundary(Duration::ZERO).start();
    /// p.wait_for_acquire().await;
    /// assert_eq!(fw.client().get_children("/work").await?.len(), 2); // party and locks
    /// # p.finish().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn builder(
        fw: &Framework,
        path: impl Into<String>,
        set: impl IntoIterator<Item = impl Into<String>>,
        identifier: impl Into<String>,
    ) -> SetPartitionerBuilder {
        SetPartitionerBuilder {
            fw: fw.clone(),
            path: path.into(),
            set: set.into_iter().map(Into::into).collect(),
            identifier: identifier.into(),
            time_boundary: Duration::from_secs(30),
            max_reaction_time: Duration::from_secs(1),
            partition: Arc::new(kazoo_partition),
        }
    }

    /// The state now.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::kazoo::{PartitionState, SetPartitioner};
    ///
    /// let p = SetPartitioner::builder(&fw, "/work", ["a"], "w").time_boundary(Duration::ZERO).start();
    /// p.wait_for_acquire().await;
    /// assert_eq!(p.state(), PartitionState::Acquired(vec!["a".into()]));
    /// # p.finish().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn state(&self) -> PartitionState {
        self.state.borrow().clone()
    }

    /// The states as they change: the current one first, then each new one; the stream ends
    /// after [`PartitionState::Failure`]. A reader that falls behind sees the latest state
    /// (intermediate ones may be skipped, but a `Release` stays until
    /// [`SetPartitioner::release_set`], so it is never missed).
    ///
    /// # Cancel safety
    ///
    /// Dropping a `next()` future loses no state: the next call sees the latest.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::kazoo::{PartitionState, SetPartitioner};
    /// use futures::StreamExt;
    ///
    /// let p = SetPartitioner::builder(&fw, "/work", ["a"], "w").time_boundary(Duration::ZERO).start();
    /// let mut states = p.states();
    /// assert_eq!(states.next().await, Some(PartitionState::Allocating));
    /// p.finish().await;
    /// while let Some(state) = states.next().await {} // ends after Failure
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn states(&self) -> impl Stream<Item = PartitionState> + Send + Unpin + 'static {
        let rx = self.state.clone();
        Box::pin(futures::stream::unfold((rx, true, false), |(mut rx, first, done)| async move {
            if done || (!first && rx.changed().await.is_err()) {
                return None;
            }
            let state = rx.borrow_and_update().clone();
            let done = state == PartitionState::Failure;
            Some((state, (rx, false, done)))
        }))
    }

    /// Waits until the set is acquired or the partitioner has failed (kazoo's
    /// `wait_for_acquire`, without its timeout: wrap it in [`tokio::time::timeout`]); returns
    /// that state.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::kazoo::{PartitionState, SetPartitioner};
    ///
    /// let p = SetPartitioner::builder(&fw, "/work", ["b", "a"], "w").time_boundary(Duration::ZERO).start();
    /// assert_eq!(p.wait_for_acquire().await, PartitionState::Acquired(vec!["a".into(), "b".into()]));
    /// # p.finish().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_acquire(&self) -> PartitionState {
        let mut rx = self.state.clone();
        let waited = rx
            .wait_for(|s| matches!(s, PartitionState::Acquired(_) | PartitionState::Failure))
            .await
            .map(|s| s.clone());
        waited.unwrap_or(PartitionState::Failure)
    }

    /// Releases the items after a [`PartitionState::Release`] (kazoo's `release_set`): the locks
    /// are deleted and the set is allocated again. Call it once the application has stopped
    /// working on the items. Called in another state, it does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::kazoo::{PartitionState, SetPartitioner};
    ///
    /// let builder = |id| SetPartitioner::builder(&fw, "/work", ["a", "b"], id).time_boundary(Duration::ZERO);
    /// let first = builder("w1").start();
    /// first.wait_for_acquire().await;
    /// let second = builder("w2").start(); // the party changes
    /// let mut states = first.states();
    /// # use futures::StreamExt;
    /// while states.next().await != Some(PartitionState::Release) {}
    /// first.release_set();
    /// assert_eq!(first.wait_for_acquire().await, PartitionState::Acquired(vec!["a".into()]));
    /// assert_eq!(second.wait_for_acquire().await, PartitionState::Acquired(vec!["b".into()]));
    /// # first.finish().await; second.finish().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn release_set(&self) {
        self.release.send_modify(|n| *n += 1);
    }

    /// Releases the items, leaves the party and ends in [`PartitionState::Failure`] (kazoo's
    /// `finish`); waits until that is done.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the partitioner finishes anyway.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::kazoo::{PartitionState, SetPartitioner};
    ///
    /// let p = SetPartitioner::builder(&fw, "/work", ["a"], "w").time_boundary(Duration::ZERO).start();
    /// p.wait_for_acquire().await;
    /// p.finish().await;
    /// assert_eq!(p.state(), PartitionState::Failure);
    /// assert!(fw.client().get_children("/work/party").await?.is_empty());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn finish(&self) {
        self.task.stop().await;
    }
}

/// The background task's state: one member of the party.
struct Member {
    fw: Framework,
    path: String,
    set: Vec<String>,
    identifier: String,
    time_boundary: Duration,
    max_reaction_time: Duration,
    partition: PartitionFn,
    state: watch::Sender<PartitionState>,
    release: watch::Receiver<u64>,
    locks: Vec<MutexGuard>,
}

/// Why allocation or holding stopped.
enum Outcome {
    /// Look at the party again (and allocate again).
    Again,
    /// The party or the connection changed while acquired: wait for the application.
    Release,
    /// Leave: finished, or the session is gone.
    End,
}

impl Member {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let party_node = match self.join().await {
            Ok(joined) => Some(joined),
            Err(e) => {
                tracing::warn!(path = %self.path, error = %e, "set partitioner could not join its party");
                None
            }
        };
        if let Some((session, node)) = &party_node {
            self.follow(session, &mut stop).await;
            self.release_locks().await;
            crate::task::delete_on_session(session, node).await;
        }
        self.state.send_replace(PartitionState::Failure);
    }

    /// Creates the structure nodes and our party node (the identifier as its name's tail and
    /// as data, as kazoo's `ShallowParty`), through the current session.
    async fn join(&self) -> Result<(Session, String)> {
        for dir in ["locks", "party"] {
            self.fw.ensure_path(&child_path(&self.path, dir)).await?;
        }
        let session = self.fw.session().await?;
        let name = format!("{}-{}", uuid::Uuid::new_v4().simple(), self.identifier);
        let node = child_path(&child_path(&self.path, "party"), &name);
        let spec = Create::new(CreateMode::Ephemeral).idempotent();
        let created = session.create(&node, self.identifier.clone(), spec).await?;
        Ok((session, created.path))
    }

    /// The state machine, until the session is gone or the partitioner stops.
    async fn follow(&mut self, session: &Session, stop: &mut watch::Receiver<bool>) {
        let mut states = self.fw.connection_state();
        states.borrow_and_update();
        loop {
            self.state.send_replace(PartitionState::Allocating);
            let outcome = match self.allocate(session, stop, &mut states).await {
                Ok(outcome) => outcome,
                Err(e) => {
                    tracing::warn!(path = %self.path, error = %e, "set partition failed");
                    Outcome::End
                }
            };
            match outcome {
                Outcome::Again => {
                    self.release_locks().await;
                    continue;
                }
                Outcome::End => return,
                Outcome::Release => {}
            }
            // Only a `release_set` from now on counts.
            self.release.borrow_and_update();
            self.state.send_replace(PartitionState::Release);
            let mut release = self.release.clone();
            tokio::select! {
                Ok(()) = release.changed() => {}
                _ = session.gone() => return,
                _ = stop.wait_for(|s| *s) => return,
            }
            self.release_locks().await;
        }
    }

    /// Allocating, then acquired: returns when the set must be allocated again or released.
    async fn allocate(
        &mut self,
        session: &Session,
        stop: &mut watch::Receiver<bool>,
        states: &mut watch::Receiver<ConnectionStateChange>,
    ) -> Result<Outcome> {
        let Some((members, watcher)) = self.settled_party(session, stop).await? else { return Ok(Outcome::End) };
        let mut changed = Box::pin(watcher);
        if !members.contains(&self.identifier) {
            tracing::warn!(path = %self.path, identifier = %self.identifier, "our party node is gone");
            return Ok(Outcome::End);
        }
        let share = (self.partition)(&self.identifier, &members, &self.set);
        // The connection the locks are taken on.
        let start = *states.borrow_and_update();
        for item in &share {
            let dir = child_path(&child_path(&self.path, "locks"), item);
            // Persistent, as kazoo's `Lock` makes it: a container could be swept between a
            // kazoo member's `ensure_path` and its create, which kazoo does not retry.
            self.fw.ensure_path(&dir).await?;
            let mutex = super::lock(&self.fw, dir, "");
            loop {
                let attempt = tokio::select! {
                    got = mutex.acquire_timeout(self.max_reaction_time) => crate::within(got)?,
                    _ = session.gone() => return Ok(Outcome::End),
                    _ = stop.wait_for(|s| *s) => return Ok(Outcome::End),
                };
                // Made in another session, the lock is not ours to count on.
                if let Some(guard) = attempt {
                    if guard.session_id() != session.id() {
                        return Ok(Outcome::End);
                    }
                    self.locks.push(guard);
                    break;
                }
                if changed.as_mut().now_or_never().is_some() {
                    return Ok(Outcome::Again);
                }
                if self.connection_error(&start, states) {
                    return Ok(Outcome::Release);
                }
            }
            if changed.as_mut().now_or_never().is_some() {
                return Ok(Outcome::Again);
            }
        }
        self.state.send_replace(PartitionState::Acquired(share));
        loop {
            tokio::select! {
                _ = changed.as_mut() => return Ok(Outcome::Release),
                changed = states.changed() => {
                    if changed.is_err() {
                        return Ok(Outcome::End);
                    }
                    if self.connection_error(&start, states) {
                        return Ok(Outcome::Release);
                    }
                }
                _ = session.gone() => return Ok(Outcome::End),
                _ = stop.wait_for(|s| *s) => return Ok(Outcome::End),
            }
        }
    }

    /// Whether the connection went wrong since `start` under the framework's error policy:
    /// under Standard, a SUSPENDED now or in between (the connection is not `start`'s any
    /// more); LOST is left to the session's end.
    fn connection_error(
        &self,
        start: &ConnectionStateChange,
        states: &mut watch::Receiver<ConnectionStateChange>,
    ) -> bool {
        let now = *states.borrow_and_update();
        let policy = self.fw.error_policy();
        now.state != ConnectionState::Lost
            && (policy.is_error(now.state)
                || matches!(policy, ErrorPolicy::Standard) && now.connection != start.connection)
    }

    /// kazoo's `PatientChildrenWatch`: the party's identifiers once they have not changed for
    /// `time_boundary`, and a watch that fires on the next change. `None` on stop or when the
    /// session is gone.
    async fn settled_party(
        &self,
        session: &Session,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Option<(Vec<String>, OneshotWatcher)>> {
        let party = child_path(&self.path, "party");
        loop {
            let (children, mut watcher) = session
                .with_retry(|c| {
                    let party = party.clone();
                    async move { c.get_children_and_watch(&party).await.map(|(children, _, w)| (children, w)) }
                })
                .await?;
            let settled = tokio::select! {
                _ = tokio::time::sleep(self.time_boundary) => true,
                _ = &mut watcher => false,
                _ = session.gone() => return Ok(None),
                _ = stop.wait_for(|s| *s) => return Ok(None),
            };
            if settled {
                // kazoo's ShallowParty: the identifier follows the first `-`.
                let members = children.iter().map(|c| c.split_once('-').map_or("", |(_, id)| id).to_owned()).collect();
                return Ok(Some((members, watcher)));
            }
        }
    }

    async fn release_locks(&mut self) {
        for guard in self.locks.drain(..) {
            if let Err(e) = guard.release().await {
                tracing::debug!(error = %e, "partition lock release continues in the background");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::kazoo_partition;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kazoos_split_covers_the_set_once() {
        let set = strings(&["e", "a", "d", "b", "c", "f", "g"]);
        let members = strings(&["w3", "w1", "w2"]);
        let mut all: Vec<String> = members.iter().flat_map(|m| kazoo_partition(m, &members, &set)).collect();
        assert_eq!(kazoo_partition("w1", &members, &set), strings(&["a", "d", "g"]));
        all.sort();
        assert_eq!(all, strings(&["a", "b", "c", "d", "e", "f", "g"]));
        assert!(kazoo_partition("stranger", &members, &set).is_empty());
    }
}
