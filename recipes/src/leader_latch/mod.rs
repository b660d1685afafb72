//! [`LeaderLatch`]: leader election with Curator's `LeaderLatch` layout — and without its
//! two-leaders bug.
//!
//! # How it works
//!
//! Each participant creates an ephemeral sequential node `<path>/_c_<uuid>-latch-<seq>` whose
//! data is its participant id, and sorts the children with Curator's rule (by the sequence
//! after the last `latch-`). The first one leads; every other participant watches only its
//! predecessor (and its own node). A Java process using Curator's `LeaderLatch` on the same
//! path takes part in the same election.
//!
//! Failover costs the successor no round trip: when the node it watches was the only one ahead
//! of it and is deleted, nobody can be ahead any more (later nodes get higher sequence
//! numbers), so it leads at once. In every other case it lists the election again, together
//! with a check of its own node, in one round trip.
//!
//! Leadership is granted only when our node is first **and its ephemeral owner is the current
//! session**: after an expiry, the old session's node may still be listed for a moment, and
//! Curator 5.4 could make that node's owner leader (CURATOR-696).
//!
//! # Connection states
//!
//! | state | what happens |
//! |---|---|
//! | SUSPENDED | leadership is lost under [`corral_core::ErrorPolicy::Standard`]; kept under [`corral_core::ErrorPolicy::SessionOnly`] |
//! | RECONNECTED (same session) | the latch checks its position again and leads again if it is still first |
//! | LOST | leadership is lost; after the new session starts the latch joins again with a new node, after a jittered pause |
//!
//! # Layout
//!
//! `mod.rs` holds the public [`LeaderLatch`] and its handles; `election.rs` the task behind it:
//! joining, checking our position, watching the predecessor, and the state handling above.

use std::time::Duration;

use crate::{Error, Result};
use corral_core::Error as CoreError;
use corral_core::Framework;
use futures::Stream;
use tokio::sync::watch;

use crate::hold::Hold;
use crate::sort::sort_children;
use crate::task::Finished;

use self::election::{Outputs, run};

mod election;

/// Curator's latch node name: a [`LeaderLatch`] participant's node is
/// `<path>/_c_<uuid>-latch-<sequence>`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use corral_recipes::leader_latch::{LATCH_NAME, LeaderLatch};
///
/// let latch = LeaderLatch::start(&fw, "/election", "worker-1");
/// latch.await_leadership().await?;
/// let nodes = fw.client().get_children("/election").await?;
/// assert!(nodes[0].starts_with("_c_") && nodes[0].contains(LATCH_NAME));
/// # latch.close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
pub const LATCH_NAME: &str = "latch-";

/// One participant of a leader election, as listed by [`LeaderLatch::participants`] and
/// [`LeaderSelector::participants`](crate::leader_selector::LeaderSelector::participants).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use corral_recipes::leader_latch::{LeaderLatch, Participant};
///
/// let latch = LeaderLatch::start(&fw, "/election", "worker-1");
/// latch.await_leadership().await?;
/// let leader = latch.leader().await?;
/// assert_eq!(leader, Some(Participant { id: "worker-1".into(), is_leader: true }));
/// # latch.close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// The participant id (the node's data).
    pub id: String,
    /// Whether it leads.
    pub is_leader: bool,
}

/// A leader election participant (Curator's `LeaderLatch`).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::time::Duration;
/// use corral_recipes::{Framework, leader_latch::LeaderLatch};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let latch = LeaderLatch::start(&fw, "/election", "worker-1");
/// latch.await_leadership_timeout(Duration::from_secs(10)).await?;
/// assert!(latch.has_leadership());
/// assert_eq!(latch.leader().await?.map(|p| p.id), Some("worker-1".to_string()));
/// latch.close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LeaderLatch {
    fw: Framework,
    path: String,
    id: String,
    leader: watch::Receiver<bool>,
    hold: watch::Receiver<Option<Hold>>,
    stop: watch::Sender<Stop>,
    finished: Finished,
}

/// How the latch is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Running,
    /// Close; observers see leadership go to false.
    Notify,
    /// Close without a last leadership change.
    Silent,
}

impl LeaderLatch {
    /// Joins the election at `path` as `participant_id` and returns at once; the latch creates its
    /// node and follows the election on a spawned Tokio task. Missing parents of `path` are created
    /// as containers.
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
    /// use corral_recipes::leader_latch::LeaderLatch;
    ///
    /// let latch = LeaderLatch::start(&fw, "/election", "worker-1");
    /// latch.await_leadership().await?;
    /// assert!(latch.has_leadership());
    /// # latch.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn start(fw: &Framework, path: impl Into<String>, participant_id: impl Into<String>) -> Self {
        let path = path.into();
        let id = participant_id.into();
        let (leader_tx, leader) = watch::channel(false);
        let (hold_tx, hold) = watch::channel(None);
        let (stop, stop_rx) = watch::channel(Stop::Running);
        let outputs = Outputs { leader: leader_tx, hold: hold_tx, leading_node: watch::channel(None).0 };
        let finished = Finished::spawn(run(fw.clone(), path.clone(), id.clone(), outputs, stop_rx));
        Self { fw: fw.clone(), path, id, leader, hold, stop, finished }
    }

    /// This participant's id (its node's data).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::leader_latch::LeaderLatch;
    /// let latch = LeaderLatch::start(&fw, "/election", "worker-1");
    /// assert_eq!(latch.id(), "worker-1");
    /// # latch.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The election path; every participant's node is a child of it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::leader_latch::LeaderLatch;
    /// let latch = LeaderLatch::start(&fw, "/election", "worker-1");
    /// assert_eq!(latch.path(), "/election");
    /// # latch.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether this participant leads now, as far as this process can tell (it asks nothing of the
    /// server).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::leader_latch::LeaderLatch;
    /// let latch = LeaderLatch::start(&fw, "/election", "worker-1");
    /// latch.await_leadership().await?;
    /// assert!(latch.has_leadership());
    /// latch.close().await;
    /// assert!(!latch.has_leadership());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn has_leadership(&self) -> bool {
        *self.leader.borrow()
    }

    /// Leadership as a watch channel: `true` while leading. The channel closes when the latch has
    /// stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::leader_latch::LeaderLatch;
    /// let latch = LeaderLatch::start(&fw, "/election", "worker-1");
    /// let mut leading = latch.leadership();
    /// leading.wait_for(|l| *l).await?;
    /// latch.close().await;
    /// assert!(!*leading.borrow());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }

    /// While this participant leads: the [`Hold`] its leadership rests on — its latch node, with
    /// the validity rule, fencing check and fencing token every lock and leadership shares. The
    /// hold stays valid only while the latch leads with that very node (and the connection
    /// state allows it); take a new one after leadership comes back.
    ///
    /// `None` while not leading.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::{CreateMode, Error, Op, leader_latch::LeaderLatch};
    ///
    /// let latch = LeaderLatch::start(&fw, "/election", "worker-1");
    /// latch.await_leadership().await?;
    /// let hold = latch.hold().expect("leading");
    /// // Write only while still the leader, in one transaction.
    /// fw.transaction(vec![hold.fencing_check(), Op::create("/report", "", CreateMode::Persistent)]).await?;
    /// latch.close().await;
    /// assert!(!hold.is_valid());
    /// let late = fw.transaction(vec![hold.fencing_check(), Op::create("/late", "", CreateMode::Persistent)]).await;
    /// assert!(matches!(late, Err(corral_recipes::CoreError::MultiFailed { index: 0, .. })));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn hold(&self) -> Option<Hold> {
        self.hold.borrow().clone().filter(|h| h.is_valid())
    }

    /// The stream of leadership changes (`true` when gained, `false` when lost), starting with
    /// the value current when it is first polled; it ends when the latch has stopped. Changes in
    /// quick succession may be merged: only the latest value is seen.
    ///
    /// Waiting for its next item is cancel safe: dropping a `next()` future loses no change.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use futures::StreamExt;
    /// # use corral_recipes::leader_latch::LeaderLatch;
    ///
    /// let latch = LeaderLatch::start(&fw, "/election", "worker-1");
    /// latch.await_leadership().await?;
    /// let mut changes = std::pin::pin!(latch.leadership_changes());
    /// assert_eq!(changes.next().await, Some(true));
    /// latch.close().await;
    /// assert_eq!(changes.next().await, Some(false));
    /// assert_eq!(changes.next().await, None);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn leadership_changes(&self) -> impl Stream<Item = bool> + Send + 'static {
        let rx = self.leader.clone();
        futures::stream::unfold((rx, true), |(mut rx, first)| async move {
            if !first && rx.changed().await.is_err() {
                return None;
            }
            let value = *rx.borrow_and_update();
            Some((value, (rx, false)))
        })
    }

    /// Waits until this participant leads; returns at once if it leads now.
    ///
    /// # Errors
    ///
    /// [`corral_core::Error::Closed`] (as [`Error::Core`]) if the latch is closed first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches the latch's state.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::leader_latch::LeaderLatch;
    /// let latch = LeaderLatch::start(&fw, "/election", "worker-1");
    /// latch.await_leadership().await?;
    /// assert_eq!(latch.leader().await?.map(|p| p.id).as_deref(), Some("worker-1"));
    /// # latch.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn await_leadership(&self) -> Result<()> {
        let mut rx = self.leader.clone();
        rx.wait_for(|l| *l).await.map(|_| ()).map_err(|_| CoreError::Closed).map_err(Error::from)
    }

    /// Waits at most `timeout` for leadership.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] after `timeout`; [`corral_core::Error::Closed`] (as [`Error::Core`]) if the latch is closed first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches the latch's state.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::{Error, leader_latch::LeaderLatch};
    ///
    /// let first = LeaderLatch::start(&fw, "/election", "worker-1");
    /// first.await_leadership_timeout(Duration::from_secs(10)).await?;
    /// let second = LeaderLatch::start(&fw, "/election", "worker-2");
    /// let waited = second.await_leadership_timeout(Duration::from_millis(100)).await;
    /// assert!(matches!(waited, Err(Error::TimedOut { .. })));
    /// # first.close().await; second.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn await_leadership_timeout(&self, timeout: Duration) -> Result<()> {
        tokio::time::timeout(timeout, self.await_leadership()).await.unwrap_or(Err(Error::TimedOut { after: timeout }))
    }

    /// Every participant, in election order (the leader first), read from the server; see
    /// [`participants`].
    ///
    /// # Errors
    ///
    /// As [`participants`].
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
    /// use corral_recipes::leader_latch::LeaderLatch;
    ///
    /// let latch = LeaderLatch::start(&fw, "/election", "worker-1");
    /// latch.await_leadership().await?;
    /// let ids: Vec<String> = latch.participants().await?.into_iter().map(|p| p.id).collect();
    /// assert_eq!(ids, ["worker-1"]);
    /// # latch.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn participants(&self) -> Result<Vec<Participant>> {
        participants(&self.fw, &self.path).await
    }

    /// The current leader according to the server (the first participant), if any.
    ///
    /// Right after a failover this can name a participant that has not yet noticed it leads.
    ///
    /// # Errors
    ///
    /// As [`participants`].
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
    /// # use corral_recipes::leader_latch::LeaderLatch;
    /// let latch = LeaderLatch::start(&fw, "/election", "worker-1");
    /// latch.await_leadership().await?;
    /// assert_eq!(latch.leader().await?.map(|p| p.id).as_deref(), Some("worker-1"));
    /// # latch.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn leader(&self) -> Result<Option<Participant>> {
        Ok(self.participants().await?.into_iter().next())
    }

    /// Leaves the election and waits until the latch has stopped: observers of
    /// [`LeaderLatch::leadership`] see `false` first (Curator's `CloseMode.NOTIFY_LEADER`), then
    /// this participant's node is deleted (a guaranteed delete). Dropping the latch does the same
    /// in the background.
    ///
    /// `close` and [`LeaderLatch::close_silently`] may be called any number of times, also from
    /// several tasks at once: every call returns only once the latch has stopped. The first call
    /// decides whether observers see the last `false`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe. The stop is signalled when the future is first polled; dropping the future
    /// after that does not undo it: the latch stops and deletes its node in the background.
    /// Dropping it takes nothing away from other calls: a later or concurrent `close` or
    /// `close_silently` still waits until the latch has stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::leader_latch::LeaderLatch;
    ///
    /// let first = LeaderLatch::start(&fw, "/election", "worker-1");
    /// first.await_leadership().await?;
    /// let second = LeaderLatch::start(&fw, "/election", "worker-2");
    /// first.close().await;
    /// second.await_leadership().await?; // the next in line takes over
    /// # second.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn close(&self) {
        self.shut_down(Stop::Notify).await;
    }

    /// Leaves the election as [`LeaderLatch::close`] does, without a last leadership change to
    /// observers (Curator's `CloseMode.SILENT`): [`LeaderLatch::has_leadership`] turns `false`, but
    /// no watcher of [`LeaderLatch::leadership`] is woken for it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`LeaderLatch::close`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use futures::StreamExt;
    /// # use corral_recipes::leader_latch::LeaderLatch;
    ///
    /// let latch = LeaderLatch::start(&fw, "/election", "worker-1");
    /// latch.await_leadership().await?;
    /// let mut changes = std::pin::pin!(latch.leadership_changes());
    /// assert_eq!(changes.next().await, Some(true));
    /// latch.close_silently().await;
    /// assert_eq!(changes.next().await, None); // no `false` first
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn close_silently(&self) {
        self.shut_down(Stop::Silent).await;
    }

    async fn shut_down(&self, mode: Stop) {
        request_stop(&self.stop, mode);
        // Every caller waits on its own: a dropped or concurrent call takes nothing away.
        self.finished.wait().await;
    }
}

/// Asks the task to stop in `mode`, unless it was asked already (the first close's mode wins).
fn request_stop(stop: &watch::Sender<Stop>, mode: Stop) {
    stop.send_if_modified(|s| {
        let first = *s == Stop::Running;
        if first {
            *s = mode;
        }
        first
    });
}

impl Drop for LeaderLatch {
    fn drop(&mut self) {
        // The task sees the stop, deletes the node and ends.
        request_stop(&self.stop, Stop::Notify);
    }
}

/// Every participant of the election at `path`, in election order (the leader first), read from
/// the participants' node data, so Curator's `LeaderLatch` participants are listed too; empty if
/// `path` does not exist. Nodes deleted while they are read are left out.
///
/// # Errors
///
/// Connection errors after retries (the listing and the reads are retried together); server
/// errors such as NoAuth as [`corral_core::Error::Server`].
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
/// use std::time::Duration;
/// use corral_recipes::leader_latch::{self, LeaderLatch};
///
/// let first = LeaderLatch::start(&fw, "/election", "worker-1");
/// first.await_leadership().await?;
/// let second = LeaderLatch::start(&fw, "/election", "worker-2");
/// # while leader_latch::participants(&fw, "/election").await?.len() < 2 {
/// #     tokio::time::sleep(Duration::from_millis(10)).await;
/// # }
/// let participants = leader_latch::participants(&fw, "/election").await?;
/// let ids: Vec<&str> = participants.iter().map(|p| p.id.as_str()).collect();
/// assert_eq!(ids, ["worker-1", "worker-2"]);
/// assert!(participants[0].is_leader);
/// # first.close().await; second.close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
pub async fn participants(fw: &Framework, path: &str) -> Result<Vec<Participant>> {
    let path = path.to_owned();
    fw.with_retry(move |client| {
        let path = path.clone();
        async move {
            let mut children = match client.get_children(&path).await {
                Ok(c) => c,
                Err(e) if e.is_no_node() => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            sort_children(&mut children, LATCH_NAME);
            read_participants(&client, &path, &children).await
        }
    })
    .await
    .map_err(Error::from)
}

/// The participant ids stored in `nodes` (children of `path`, already in election order),
/// read with pipelined requests; the first is the leader. Nodes gone meanwhile are skipped.
pub(crate) async fn read_participants(
    client: &corral_core::Client,
    path: &str,
    nodes: &[String],
) -> corral_core::Result<Vec<Participant>> {
    let reads: Vec<_> = nodes.iter().map(|n| client.get_data(&format!("{path}/{n}"))).collect();
    let mut ids = Vec::new();
    for read in reads {
        match read.await {
            Ok((data, _)) => ids.push(String::from_utf8_lossy(&data).into_owned()),
            Err(e) if e.is_no_node() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ids.into_iter().enumerate().map(|(i, id)| Participant { id, is_leader: i == 0 }).collect())
}
