//! [`Hold`]: what holding a lock, a lease or a leadership rests on — one ephemeral node of one
//! session — with the validity rule written once.
//!
//! Every guard and every leadership of this crate hands out the same `Hold`
//! ([`MutexGuard::hold`](crate::lock::MutexGuard::hold), [`Lease::hold`](crate::semaphore::Lease::hold),
//! [`Leadership::hold`](crate::leader_selector::Leadership::hold),
//! [`LeaderLatch::hold`](crate::leader_latch::LeaderLatch::hold)), and each of them offers the
//! same four methods: `is_valid()`, `invalidated()`, `fencing_check()` and `fencing_token()`.
//!
//! # The validity rule
//!
//! A hold is valid while this process can tell that its node is still its own:
//!
//! - under [`ErrorPolicy::Standard`], only on the very connection it was taken on — a
//!   SUSPENDED in between invalidates it for good, even after RECONNECTED, because during the
//!   gap the session may have expired and the node gone to someone else;
//! - under [`ErrorPolicy::SessionOnly`], for the whole session (until LOST);
//! - and, for a leadership, only while the recipe still says it leads.
//!
//! Validity asks nothing of the server. A process can be paused (a long GC, a stopped VM) for
//! longer than its session and wake up still believing it holds: put
//! [`Hold::fencing_check`] in the same transaction as every write the hold protects, or compare
//! [`Hold::fencing_token`] in the protected resource.

use crate::Error;
use crate::Result;
use corral_core::{ConnectionStateChange, ErrorPolicy, Framework, Op};
use tokio::sync::watch;

/// One held ephemeral node of one session: a lock, a lease or a leadership. Cheap to clone.
///
/// See the [module docs](self) for the validity rule.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use corral_recipes::{CreateMode, Framework, Op, lock::Mutex};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let guard = Mutex::new(&fw, "/locks/ledger").acquire().await?;
/// let hold = guard.hold().clone();
/// assert!(hold.is_valid());
/// // Write only while the lock node is still there, in one transaction.
/// fw.transaction(vec![hold.fencing_check(), Op::create("/entry", "", CreateMode::Persistent)]).await?;
/// guard.release().await?;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Hold {
    fw: Framework,
    path: String,
    session_id: i64,
    epoch: u64,
    connection: u64,
    czxid: i64,
    states: watch::Receiver<ConnectionStateChange>,
    /// For a leadership: the path of the node the recipe currently leads with; the hold is
    /// valid only while that is this hold's node.
    leading: Option<watch::Receiver<Option<String>>>,
}

impl Hold {
    /// A hold on `path`, made with the connection state `state` (the session's id and epoch and
    /// the connection the node was created or confirmed on) and the node's `czxid`.
    pub(crate) fn new(fw: &Framework, path: String, state: ConnectionStateChange, czxid: i64) -> Self {
        Self {
            fw: fw.clone(),
            path,
            session_id: state.session_id,
            epoch: state.epoch,
            connection: state.connection,
            czxid,
            states: fw.connection_state(),
            leading: None,
        }
    }

    /// The hold is valid only while `leading` names its node.
    pub(crate) fn while_leading(mut self, leading: watch::Receiver<Option<String>>) -> Self {
        self.leading = Some(leading);
        self
    }

    /// The held node's path.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::lock::Mutex;
    /// let guard = Mutex::new(&fw, "/locks/jobs").acquire().await?;
    /// assert!(guard.hold().path().starts_with("/locks/jobs/_c_"));
    /// # guard.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The session that owns the node (from the create's reply).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::lock::Mutex;
    /// let guard = Mutex::new(&fw, "/locks/jobs").acquire().await?;
    /// assert_eq!(guard.hold().session_id(), fw.client().session_id());
    /// # guard.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn session_id(&self) -> i64 {
        self.session_id
    }

    /// The node's creation zxid: larger for every later hold of the same lock, lease pool or
    /// election, so a protected resource can refuse writes that carry an older token.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::lock::Mutex;
    /// let mutex = Mutex::new(&fw, "/locks/jobs");
    /// let first = mutex.acquire().await?.hold().fencing_token();
    /// let second = mutex.acquire().await?;
    /// assert!(second.hold().fencing_token() > first);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn fencing_token(&self) -> i64 {
        self.czxid
    }

    /// An operation to put first in your own transaction ([`Framework::transaction`] or
    /// [`Client::multi`](corral_core::Client::multi)): the transaction fails (NoNode, nothing
    /// applied) unless the held node still exists. Lock, lease and latch nodes have sequential
    /// names that are never reused, so the node at that path is this very node.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::{CreateMode, Error, Op, lock::Mutex};
    ///
    /// let guard = Mutex::new(&fw, "/locks/ledger").acquire().await?;
    /// let hold = guard.hold().clone();
    /// guard.release().await?;
    /// let late = fw.transaction(vec![hold.fencing_check(), Op::create("/entry", "", CreateMode::Persistent)]).await;
    /// assert!(matches!(late, Err(corral_recipes::CoreError::MultiFailed { index: 0, .. })));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn fencing_check(&self) -> Op {
        Op::check(self.path.clone(), None)
    }

    /// Whether the hold is still valid as far as this process can tell (see the
    /// [module docs](self) for the rule). It asks nothing of the server.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::lock::Mutex;
    /// let guard = Mutex::new(&fw, "/locks/jobs").acquire().await?;
    /// let hold = guard.hold().clone();
    /// server.drop_connection(hold.session_id()); // SUSPENDED, then RECONNECTED
    /// hold.invalidated().await;
    /// assert!(!hold.is_valid()); // for good, under the Standard error policy
    /// # drop(guard);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn is_valid(&self) -> bool {
        self.valid_in(*self.states.borrow()) && self.leading.as_ref().is_none_or(|l| self.leads(&l.borrow()))
    }

    /// Resolves once the hold is no longer valid (at once if it is not). It does not resolve
    /// when a guard is released: a release is the holder's own doing.
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
    /// # use corral_recipes::lock::Mutex;
    /// let guard = Mutex::new(&fw, "/locks/jobs").acquire().await?;
    /// let work = std::future::pending::<()>(); // the work the lock protects
    /// server.expire_session(guard.hold().session_id());
    /// tokio::select! {
    ///     _ = work => {}
    ///     _ = guard.hold().invalidated() => {} // stop: the lock may be someone else's by now
    /// }
    /// # drop(guard);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn invalidated(&self) {
        let mut states = self.states.clone();
        let by_state = states.wait_for(|s| !self.valid_in(*s));
        match self.leading.clone() {
            None => {
                let _ = by_state.await;
            }
            Some(mut leading) => {
                tokio::select! {
                    _ = by_state => {}
                    _ = leading.wait_for(|l| !self.leads(l)) => {}
                }
            }
        }
    }

    /// Asks the server whether the node still exists and belongs to this hold's session.
    ///
    /// # Errors
    ///
    /// Connection errors once the framework's retries give up; server errors such as NoAuth as
    /// [`corral_core::Error::Server`].
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
    /// # use corral_recipes::lock::Mutex;
    /// let guard = Mutex::new(&fw, "/locks/jobs").acquire().await?;
    /// assert!(guard.hold().check_ownership().await?);
    /// fw.client().delete(guard.path(), None).await?; // say, an operator removed the node
    /// assert!(!guard.hold().check_ownership().await?);
    /// # drop(guard);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn check_ownership(&self) -> Result<bool> {
        let owner = self.session_id;
        self.fw
            .with_retry(|client| {
                let path = self.path.clone();
                async move { Ok(client.exists(&path).await?.is_some_and(|s| s.ephemeral_owner == owner)) }
            })
            .await
            .map_err(Error::from)
    }

    fn leads(&self, leading: &Option<String>) -> bool {
        leading.as_deref() == Some(self.path.as_str())
    }

    /// The rule, once: see the module docs.
    fn valid_in(&self, now: ConnectionStateChange) -> bool {
        let policy = self.fw.error_policy();
        match policy {
            ErrorPolicy::Standard => {
                now.epoch == self.epoch && now.connection == self.connection && now.state.is_connected()
            }
            ErrorPolicy::SessionOnly => now.epoch == self.epoch && !policy.is_error(now.state),
        }
    }
}
