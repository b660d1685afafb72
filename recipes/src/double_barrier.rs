//! [`DistributedDoubleBarrier`]: members enter together once enough have arrived, and leave
//! together once all have finished (Curator's `DistributedDoubleBarrier`, the double barrier of
//! the ZooKeeper recipes).
//!
//! # How it works
//!
//! Curator's layout, so that Java and Rust members can share one barrier:
//!
//! - each member is an ephemeral node `<path>/<random UUID>` holding Curator's default data
//!   (the local address as text);
//! - **enter**: a member watches `<path>/ready`, creates its node and counts the children of
//!   `<path>`; the member that sees at least `member_qty` of them creates `ready`, whose
//!   creation lets every waiting member in. `member_qty` is a threshold, not a limit: more
//!   members may enter.
//! - **leave** (Curator 5.4's algorithm): members sort the member nodes by name. The lowest
//!   waits for the highest to go, then looks again; every other member deletes its node and
//!   waits for the lowest to go. The lowest deletes its node when it is the last one, and every
//!   member deletes `ready` once no member node is left.
//!
//! # Connection states
//!
//! | state | what happens |
//! |---|---|
//! | SUSPENDED | members keep waiting; their watches are restored when the connection comes back |
//! | RECONNECTED (same session) | waiting members look again (a change made while disconnected is not missed) |
//! | LOST, then the new session | the member node went with the session. A member still entering creates it again on the new session and waits on; a member leaving counts as left and waits for the others |
//!
//! Unlike Curator, a member whose [`enter_timeout`](DistributedDoubleBarrier::enter_timeout)
//! runs out, or whose enter is dropped, deletes its node, so that it is not counted as present;
//! and a [`leave_timeout`](DistributedDoubleBarrier::leave_timeout) that runs out deletes this
//! member's node too, so that the others are not held back by a member that gave up.

use std::time::Duration;

use crate::{Error, Result};
use corral_core::Framework;
use tokio::time::Instant;

pub(crate) mod member;

use member::{Flavor, Member};

/// The node whose creation lets the members in: `<path>/ready` (Curator's `READY_NODE`).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use corral_recipes::double_barrier::{DistributedDoubleBarrier, READY_NODE};
///
/// DistributedDoubleBarrier::new(&fw, "/jobs/batch-7", 1).enter().await?;
/// assert!(fw.client().exists(&format!("/jobs/batch-7/{READY_NODE}")).await?.is_some());
/// # fw.close().await;
/// # Ok(()) }
/// ```
pub const READY_NODE: &str = "ready";

/// One member of a double barrier (Curator's `DistributedDoubleBarrier`).
///
/// Each value is one member, with its own node name; create one per participant.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use corral_recipes::{Framework, double_barrier::DistributedDoubleBarrier};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let members: Vec<_> = (0..3).map(|_| DistributedDoubleBarrier::new(&fw, "/jobs/batch-7", 3)).collect();
/// // All three enter together, work, and leave together.
/// futures::future::try_join_all(members.iter().map(|m| m.enter())).await?;
/// futures::future::try_join_all(members.iter().map(|m| m.leave())).await?;
/// assert!(fw.client().get_children("/jobs/batch-7").await?.is_empty());
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DistributedDoubleBarrier {
    member: Member,
}

impl DistributedDoubleBarrier {
    /// A member of the double barrier at `path` that opens once `member_qty` members are
    /// present. The member's node name is a random UUID, chosen now; nothing is sent yet.
    ///
    /// # Panics
    ///
    /// If `member_qty` is 0 (as Curator refuses it).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::double_barrier::DistributedDoubleBarrier;
    ///
    /// let member = DistributedDoubleBarrier::new(&fw, "/jobs/batch-7", 2);
    /// assert_eq!(member.member_qty(), 2);
    /// assert!(member.our_path().starts_with("/jobs/batch-7/"));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(fw: &Framework, path: impl Into<String>, member_qty: usize) -> Self {
        assert!(member_qty > 0, "member_qty cannot be 0");
        let name = uuid::Uuid::new_v4().to_string();
        Self { member: Member::new(fw, Flavor::Curator, path.into(), name, member_qty) }
    }

    /// The barrier's path.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::double_barrier::DistributedDoubleBarrier;
    /// assert_eq!(DistributedDoubleBarrier::new(&fw, "/b", 2).path(), "/b");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &str {
        self.member.path()
    }

    /// The number of members that opens the barrier.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::double_barrier::DistributedDoubleBarrier;
    /// assert_eq!(DistributedDoubleBarrier::new(&fw, "/b", 5).member_qty(), 5);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn member_qty(&self) -> usize {
        self.member.threshold()
    }

    /// This member's node: `<path>/<random UUID>`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::double_barrier::DistributedDoubleBarrier;
    ///
    /// let member = DistributedDoubleBarrier::new(&fw, "/b", 1);
    /// member.enter().await?;
    /// assert!(fw.client().exists(member.our_path()).await?.is_some());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn our_path(&self) -> &str {
        self.member.node_path()
    }

    /// Enters the barrier and waits until it opens: until `member_qty` members are present.
    ///
    /// # Errors
    ///
    /// [`corral_core::Error::Timeout`] if the framework stays disconnected longer than its connection
    /// timeout; connection errors once the retry policy gives up; [`corral_core::Error::Closed`] if the
    /// framework is closed; server errors such as NoAuth as [`corral_core::Error::Server`], or NodeExists if
    /// an older session's node of this member has not been removed yet. On every error this
    /// member's node is deleted (in the background).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future deletes this member's node in the background (so it is
    /// not counted), also when its create request is still in flight.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::double_barrier::DistributedDoubleBarrier;
    ///
    /// let (a, b) = (DistributedDoubleBarrier::new(&fw, "/b", 2), DistributedDoubleBarrier::new(&fw, "/b", 2));
    /// let (entered_a, entered_b) = tokio::join!(a.enter(), b.enter());
    /// entered_a?;
    /// entered_b?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn enter(&self) -> Result<()> {
        self.enter_until(None).await.map(|_| ())
    }

    /// Enters the barrier and waits at most `timeout` for it to open: `Ok(())` once it is open,
    /// [`Error::TimedOut`] if it was not open in time — this member's node is then deleted, so it
    /// is not counted.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] when `timeout` passes first; otherwise as
    /// [`DistributedDoubleBarrier::enter`].
    ///
    /// # Cancel safety
    ///
    /// As [`DistributedDoubleBarrier::enter`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::{Error, double_barrier::DistributedDoubleBarrier};
    ///
    /// let alone = DistributedDoubleBarrier::new(&fw, "/b", 2);
    /// let waited = alone.enter_timeout(Duration::from_millis(100)).await;
    /// assert!(matches!(waited, Err(Error::TimedOut { .. })));
    /// assert!(fw.client().get_children("/b").await?.is_empty()); // not counted
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn enter_timeout(&self, timeout: Duration) -> Result<()> {
        if self.enter_until(Some(Instant::now() + timeout)).await? {
            Ok(())
        } else {
            Err(Error::TimedOut { after: timeout })
        }
    }

    async fn enter_until(&self, deadline: Option<Instant>) -> Result<bool> {
        let data = crate::default_data::local_address().await;
        self.member.enter_until(data.clone(), data, deadline).await
    }

    /// Leaves the barrier and waits until every member has left (Curator's leave algorithm, see
    /// the module docs), then deletes the `ready` node.
    ///
    /// # Errors
    ///
    /// [`corral_core::Error::Server`] with [`corral_core::ErrorCode::NoNode`] for this member's path if its node is
    /// missing in the session that created it (deleted by someone else, or the member never
    /// entered) while other members remain; [`corral_core::Error::Timeout`] if the framework stays
    /// disconnected longer than its connection timeout; connection errors once the retry policy
    /// gives up; [`corral_core::Error::Closed`] if the framework is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in that dropping the future still removes this member: its node is deleted in
    /// the background if it still exists. The wait for the other members is abandoned.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::double_barrier::DistributedDoubleBarrier;
    ///
    /// let member = DistributedDoubleBarrier::new(&fw, "/b", 1);
    /// member.enter().await?;
    /// member.leave().await?; // the last one out
    /// assert!(fw.client().get_children("/b").await?.is_empty()); // ready is gone too
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn leave(&self) -> Result<()> {
        self.leave_until(None).await.map(|_| ())
    }

    /// Leaves the barrier and waits at most `timeout` for every member to leave: `Ok(())` once
    /// all have, [`Error::TimedOut`] if some were still there when the time ran out. Either way
    /// this member's node is deleted.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] when `timeout` passes first; otherwise as
    /// [`DistributedDoubleBarrier::leave`].
    ///
    /// # Cancel safety
    ///
    /// As [`DistributedDoubleBarrier::leave`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::{Error, double_barrier::DistributedDoubleBarrier};
    ///
    /// let (a, b) = (DistributedDoubleBarrier::new(&fw, "/b", 2), DistributedDoubleBarrier::new(&fw, "/b", 2));
    /// let (entered_a, entered_b) = tokio::join!(a.enter(), b.enter());
    /// entered_a?;
    /// entered_b?;
    /// // b stays: a cannot see everyone leave.
    /// let waited = a.leave_timeout(Duration::from_millis(100)).await;
    /// assert!(matches!(waited, Err(Error::TimedOut { .. })));
    /// b.leave_timeout(Duration::from_secs(10)).await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn leave_timeout(&self, timeout: Duration) -> Result<()> {
        if self.leave_until(Some(Instant::now() + timeout)).await? {
            Ok(())
        } else {
            Err(Error::TimedOut { after: timeout })
        }
    }

    async fn leave_until(&self, deadline: Option<Instant>) -> Result<bool> {
        self.member.leave_until(deadline).await
    }
}
