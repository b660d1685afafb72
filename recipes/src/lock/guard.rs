//! [`MutexGuard`]: proof of holding a [`Mutex`](super::Mutex).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::Error;
use crate::Result;
use corral_core::framework::Delete;
use corral_core::{ConnectionStateChange, Framework, Op};

use super::revoke::Revocation;
use super::{Created, delete_in_background};
use crate::hold::Hold;

/// Proof of holding a [`Mutex`](super::Mutex). Release it with [`MutexGuard::release`]; dropping it releases
/// in the background (on the current Tokio runtime; dropped outside any runtime, it logs a
/// warning and the node stays until the session ends).
///
/// The holder may take the lock again through its guard ([`MutexGuard::reenter`]); the lock
/// node then goes with the last of the guards.
///
/// A guard knows when it stops being valid: under [`ErrorPolicy::Standard`](corral_core::ErrorPolicy::Standard) as soon as the
/// connection is SUSPENDED, under [`ErrorPolicy::SessionOnly`](corral_core::ErrorPolicy::SessionOnly) when the session is LOST.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use std::time::Duration;
/// use corral_recipes::lock::Mutex;
///
/// let mutex = Mutex::new(&fw, "/locks/jobs");
/// {
///     let guard = mutex.acquire().await?;
///     assert!(guard.is_valid());
/// } // dropped: released in the background
/// mutex.acquire_timeout(Duration::from_secs(10)).await?;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MutexGuard {
    held: Arc<Held>,
    /// Whether this guard still counts in [`Held::count`]: false once [`MutexGuard::release`]
    /// took its count away, so that its drop does not take it again.
    counted: bool,
}

/// What every guard of one acquisition shares: the lock node, and how many guards hold it.
#[derive(Debug)]
struct Held {
    fw: Framework,
    path: String,
    hold: Hold,
    /// The lock metrics' `kind` label, and when the lock was acquired.
    kind: &'static str,
    acquired_at: tokio::time::Instant,
    /// [`HELD`], [`RELEASING`] or [`RELEASED`].
    release: AtomicU8,
    /// How many guards hold the node: 1, plus one per [`MutexGuard::reenter`] not released yet.
    /// The guard that takes it to 0 releases the node.
    count: AtomicUsize,
    /// Revocation requests, when the mutex is revocable (see [`Mutex::revocable`](super::Mutex::revocable)).
    revocation: Option<Revocation>,
}

/// The lock is held: dropping the last guard deletes its node.
const HELD: u8 = 0;
/// A release is under way: the guards are no longer valid, but the last one's drop still deletes
/// the node (the release may be dropped before its delete ran to its end).
const RELEASING: u8 = 1;
/// The delete ran to its end (done, refused, or handed to the framework's background retries).
const RELEASED: u8 = 2;

impl MutexGuard {
    pub(super) fn new(
        fw: &Framework,
        path: String,
        created: Created,
        kind: &'static str,
        revocation: Option<Revocation>,
    ) -> Self {
        let hold = Hold::new(fw, path.clone(), created.state, created.czxid);
        let acquired_at = tokio::time::Instant::now();
        let held = Held {
            fw: fw.clone(),
            path,
            hold,
            kind,
            acquired_at,
            release: AtomicU8::new(HELD),
            count: AtomicUsize::new(1),
            revocation,
        };
        MutexGuard { held: Arc::new(held), counted: true }
    }

    /// A guard for a lock node created outside the contention loop (a downgrade's read node).
    pub(crate) fn adopt(fw: &Framework, path: String, state: ConnectionStateChange, czxid: i64) -> Self {
        metrics::counter!(corral_core::metrics::LOCK_ACQUISITIONS_TOTAL, "kind" => "read").increment(1);
        Self::new(fw, path, Created { state, czxid }, "read", None)
    }

    /// Takes the lock again through the guard that holds it — re-entrant acquisition, as
    /// Curator's `InterProcessMutex` lets the thread that holds it acquire it again — and returns
    /// one more guard of the same lock node. Nothing is sent to the server and no node is made:
    /// the guards count their holds, and the node is deleted only when the last of them is
    /// released or dropped. Every guard of one acquisition shares its validity, fencing token
    /// and revocation.
    ///
    /// # Who may re-enter
    ///
    /// Curator ties re-entrancy to the thread that acquired; async Rust has no such identity
    /// to tie it to. A task is not one: the branches of one `join!` or `select!`, or the
    /// futures of a `FuturesUnordered`, run interleaved on one task, so "the same task" would
    /// let two of them into the critical section at once; and a guard may be moved to another
    /// task or thread legitimately. So the identity is the guard itself: whoever has (a
    /// reference to) a guard may re-enter — typically a function that holds the lock calling
    /// code that takes it again, passing the guard down. A new `acquire` on the [`Mutex`](super::Mutex),
    /// without the guard, is always one more contender and waits for the holder like any other.
    /// Handing a re-entered guard to another task shares the lock with that task on purpose.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::lock::{Mutex, MutexGuard};
    ///
    /// // A step that needs the lock, called both on its own and from inside a larger job.
    /// async fn rotate(mutex: &Mutex, held: Option<&MutexGuard>) -> corral_recipes::Result<()> {
    ///     let guard = match held {
    ///         Some(held) => held.reenter(),
    ///         None => mutex.acquire().await?,
    ///     };
    ///     // ... the work the lock protects ...
    ///     guard.release().await
    /// }
    ///
    /// let mutex = Mutex::new(&fw, "/locks/jobs");
    /// let job = mutex.acquire().await?;
    /// rotate(&mutex, Some(&job)).await?; // re-enters: no wait, no new node
    /// assert_eq!(job.lock_count(), 1);
    /// assert!(job.check_ownership().await?); // the inner release kept the node
    /// job.release().await?;
    /// rotate(&mutex, None).await?; // acquires on its own
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn reenter(&self) -> MutexGuard {
        self.held.count.fetch_add(1, Ordering::SeqCst);
        MutexGuard { held: self.held.clone(), counted: true }
    }

    /// How many guards hold this acquisition's lock node now: 1 for the guard [`Mutex::acquire`](super::Mutex::acquire)
    /// returned, plus one per [`MutexGuard::reenter`] not released or dropped yet (Curator's lock
    /// count).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::lock::Mutex;
    /// let outer = Mutex::new(&fw, "/locks/jobs").acquire().await?;
    /// let inner = outer.reenter();
    /// assert_eq!((outer.lock_count(), inner.lock_count()), (2, 2));
    /// drop(inner);
    /// assert_eq!(outer.lock_count(), 1);
    /// # outer.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn lock_count(&self) -> usize {
        self.held.count.load(Ordering::SeqCst)
    }

    /// Resolves when someone asked this lock's holder to release it ([`Revoker::attempt_revoke`](super::Revoker::attempt_revoke),
    /// or Curator's `Revoker.attemptRevoke`, wrote `__REVOKE__` into the lock node) — Curator's
    /// `RevocationListener`, as a value to await. Revocation is cooperative: nothing is released
    /// until the holder releases (or drops) its guards. A request made while this contender was
    /// still waiting counts too: the future resolves at once.
    ///
    /// Only a guard of a [`Mutex::revocable`](super::Mutex::revocable) mutex is told; for any
    /// other guard the future never resolves. It does not resolve when the guard becomes
    /// invalid (see [`MutexGuard::invalidated`] for that) or when the node is deleted.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches; a request is remembered until the guard is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::lock::{Mutex, Revoker};
    ///
    /// let guard = Mutex::new(&fw, "/locks/jobs").revocable().acquire().await?;
    /// let work = std::future::pending::<()>(); // the work the lock protects
    /// // Another process (an operator tool, a Curator service) asks for the lock.
    /// Revoker::attempt_revoke(&fw, guard.path()).await?;
    /// tokio::select! {
    ///     _ = work => {}
    ///     _ = guard.revoke_requested() => {} // wind down and let go
    /// }
    /// guard.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn revoke_requested(&self) {
        match &self.held.revocation {
            Some(revocation) => revocation.requested().await,
            None => std::future::pending().await,
        }
    }

    /// Whether a revocation was requested (see [`MutexGuard::revoke_requested`]); always false
    /// for a mutex that is not revocable.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::lock::{Mutex, Revoker};
    ///
    /// let guard = Mutex::new(&fw, "/locks/jobs").revocable().acquire().await?;
    /// assert!(!guard.is_revoke_requested());
    /// Revoker::attempt_revoke(&fw, guard.path()).await?;
    /// guard.revoke_requested().await;
    /// assert!(guard.is_revoke_requested());
    /// # guard.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn is_revoke_requested(&self) -> bool {
        self.held.revocation.as_ref().is_some_and(Revocation::is_requested)
    }

    /// The hold this guard rests on: the lock node of one session, with the validity rule and
    /// the fencing check and token shared by every guard and leadership (see [`Hold`]).
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
    /// assert_eq!(guard.hold().path(), guard.path());
    /// assert_eq!(guard.hold().fencing_token(), guard.fencing_token());
    /// # guard.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn hold(&self) -> &Hold {
        &self.held.hold
    }

    /// The lock node's path.
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
    /// assert!(guard.path().starts_with("/locks/jobs/_c_"));
    /// # guard.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &str {
        &self.held.path
    }

    /// The lock node's creation zxid: larger for every later acquisition of this lock, so the
    /// protected resource can refuse writes carrying an older token.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::lock::Mutex;
    ///
    /// let mutex = Mutex::new(&fw, "/locks/jobs");
    /// let first = mutex.acquire().await?;
    /// let token = first.fencing_token();
    /// first.release().await?;
    /// let second = mutex.acquire().await?;
    /// assert!(second.fencing_token() > token);
    /// # second.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn fencing_token(&self) -> i64 {
        self.held.hold.fencing_token()
    }

    /// The session the lock is held by.
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
    /// assert_eq!(guard.session_id(), fw.client().session_id());
    /// # guard.release().await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn session_id(&self) -> i64 {
        self.held.hold.session_id()
    }

    /// An operation to put first in your own [`Framework::transaction`]: the transaction
    /// fails (NoNode) unless this lock node still exists, that is, unless the lock is still
    /// held by this session.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_recipes::{CreateMode, Error, Framework, Op, lock::Mutex};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// let guard = Mutex::new(&fw, "/locks/ledger").acquire().await?;
    /// let check = guard.fencing_check();
    /// let write = |path: &str| vec![check.clone(), Op::create(path, "", CreateMode::Persistent)];
    /// fw.transaction(write("/entry-1")).await?;
    /// guard.release().await?;
    /// // Once the lock is gone, the same write is refused.
    /// let late = fw.transaction(write("/entry-2")).await;
    /// assert!(matches!(late, Err(corral_recipes::CoreError::MultiFailed { index: 0, .. })));
    /// assert_eq!(fw.client().exists("/entry-2").await?, None);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn fencing_check(&self) -> Op {
        self.held.hold.fencing_check()
    }

    /// Whether the lock is still held as far as this process can tell: not released, same session,
    /// and, under [`ErrorPolicy::Standard`](corral_core::ErrorPolicy::Standard), the very connection it was acquired on (a SUSPENDED in
    /// between invalidates the guard for good, even after RECONNECTED); under
    /// [`ErrorPolicy::SessionOnly`](corral_core::ErrorPolicy::SessionOnly), the connection state is not an error.
    ///
    /// It asks nothing of the server; see [`MutexGuard::check_ownership`] for that.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// # use corral_recipes::lock::Mutex;
    ///
    /// let guard = Mutex::new(&fw, "/locks/jobs").acquire().await?;
    /// assert!(guard.is_valid());
    /// server.drop_connection(guard.session_id()); // SUSPENDED, then RECONNECTED
    /// guard.invalidated().await;
    /// fw.wait_until_connected(Duration::from_secs(10)).await?;
    /// // Same session, but the lock may have been lost meanwhile: the guard stays invalid.
    /// assert!(!guard.is_valid());
    /// # drop(guard);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn is_valid(&self) -> bool {
        self.held.release.load(Ordering::SeqCst) == HELD && self.held.hold.is_valid()
    }

    /// Resolves when the guard stops being valid because of the connection state (see
    /// [`MutexGuard::is_valid`]); it does not resolve on [`MutexGuard::release`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches the connection state.
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
    /// server.drop_connection(guard.session_id()); // the test server cuts the connection
    /// tokio::select! {
    ///     _ = work => {}
    ///     _ = guard.invalidated() => {} // stop: the lock may belong to someone else by now
    /// }
    /// assert!(!guard.is_valid());
    /// # drop(guard);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn invalidated(&self) {
        self.held.hold.invalidated().await;
    }

    /// Asks the server whether the lock node still exists and belongs to the current session.
    ///
    /// # Errors
    ///
    /// Connection errors once the framework's retries give up (a retry after a new session
    /// answers `false`: the node went with the old one); server errors such as NoAuth as
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
    /// assert!(guard.check_ownership().await?);
    /// fw.client().delete(guard.path(), None).await?; // say, an operator removed the node
    /// assert!(!guard.check_ownership().await?);
    /// # drop(guard);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn check_ownership(&self) -> Result<bool> {
        self.held.hold.check_ownership().await
    }

    /// Releases the lock: deletes the lock node, and keeps trying in the background across
    /// reconnects if it cannot now (Curator's guaranteed delete). A node already gone counts as
    /// released.
    ///
    /// Of a lock held through several guards ([`MutexGuard::reenter`]), only the last release
    /// deletes the node; the others only count down (see [`MutexGuard::lock_count`]) and send
    /// nothing.
    ///
    /// # Errors
    ///
    /// A connection error, or [`corral_core::Error::Timeout`] if the connection did not come back within the
    /// connection timeout, once the framework's retries give up; the delete then goes on in the
    /// background (see [`Framework::pending_guaranteed_deletes`]). A server error such as NoAuth
    /// is returned as it is, and the node is left.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the lock is released either way. The guard is invalid from the first poll, but
    /// it counts as released only once the delete has run to its end; if the future is dropped
    /// before that (say, while the delete waits for the connection to come back), the guard is
    /// dropped with it and deletes the node in the background, as a dropped guard does.
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
    /// let node = guard.path().to_owned();
    /// guard.release().await?;
    /// assert_eq!(fw.client().exists(&node).await?, None);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn release(mut self) -> Result<()> {
        // This guard's count is taken here, not by its drop.
        self.counted = false;
        let held = self.held.clone();
        drop(self);
        if held.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            // The last one: the node goes. Dropped before the end, the last `Arc` deletes it
            // in the background.
            held.release().await
        } else {
            Ok(())
        }
    }

    /// Releases the node now, whatever the count (for recipes that hand the guard out and end
    /// the hold themselves). Cancel safe as [`MutexGuard::release`]: dropped early, the guard's
    /// own drop (or a later call) deletes the node.
    pub(crate) async fn release_shared(&self) -> Result<()> {
        self.held.release().await
    }
}

impl Held {
    fn record_hold(&self) {
        metrics::histogram!(corral_core::metrics::LOCK_HOLD_SECONDS, "kind" => self.kind)
            .record(self.acquired_at.elapsed());
    }

    async fn release(&self) -> Result<()> {
        match self.release.compare_exchange(HELD, RELEASING, Ordering::SeqCst, Ordering::SeqCst) {
            Err(RELEASED) => return Ok(()),
            Ok(_) => self.record_hold(),
            Err(_) => {}
        }
        let result = self.fw.delete(&self.path, Delete::new().guaranteed().idempotent()).await;
        // Ran to its end: deleted, refused (NoAuth: a retry would fail as well), or still being
        // retried by the framework in the background. Until here, dropping the guard deletes it.
        self.release.store(RELEASED, Ordering::SeqCst);
        result.map_err(Error::from)
    }
}

impl Drop for MutexGuard {
    fn drop(&mut self) {
        if self.counted {
            // The last guard's `Arc` is the last one too: `Held`'s drop releases the node.
            self.held.count.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The last guard of an acquisition is gone, released or not.
impl Drop for Held {
    fn drop(&mut self) {
        if self.release.load(Ordering::SeqCst) == HELD {
            self.record_hold();
        }
        if self.release.load(Ordering::SeqCst) != RELEASED {
            delete_in_background(&self.fw, std::mem::take(&mut self.path));
        }
    }
}
