//! What the framework has learned about its servers' features, remembered for its lifetime:
//! today, whether they have persistent watches (`addWatch`, ZooKeeper ≥ 3.6).

use std::sync::atomic::{AtomicU8, Ordering};

use super::Framework;
use crate::ErrorCode;
use crate::error::Result;

/// Whether the servers have persistent watches (`addWatch`, ZooKeeper ≥ 3.6), as far as a
/// [`Framework`] has learned: see [`Framework::persistent_watches`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PersistentWatches {
    /// No `addWatch` has been answered yet.
    Unknown,
    /// An `addWatch` succeeded.
    Available,
    /// A server answered `addWatch` Unimplemented (ZooKeeper 3.5 has no such opcode). Final:
    /// recipes use one-shot watches for the rest of the framework's life.
    Unavailable,
}

const UNKNOWN: u8 = 0;
const AVAILABLE: u8 = 1;
const UNAVAILABLE: u8 = 2;

/// The shared memory behind [`Framework::persistent_watches`].
#[derive(Debug, Default)]
pub(crate) struct Features {
    persistent_watches: AtomicU8,
}

impl Framework {
    /// Whether the servers have persistent watches, as the `addWatch` replies recorded with
    /// [`Framework::note_add_watch`] told.
    ///
    /// ZooKeeper 3.5 has no `addWatch`: it answers the unknown opcode Unimplemented and closes
    /// the connection (the session survives; the framework posts SUSPENDED and RECONNECTED).
    /// Recipes that would use a persistent watch — the caches — try it once, and after an
    /// Unimplemented fall back to one-shot watches; the framework remembers that for its
    /// lifetime (and logs it once), so the probe costs one reconnection per framework, not
    /// one per cache or per session.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_core::{AddWatchMode, Framework, framework::PersistentWatches};
    /// use corral_server::{Server, testing::TestingServer};
    ///
    /// // A server that answers as ZooKeeper 3.5 does.
    /// let server = TestingServer::with_builder(Server::builder().persistent_watches(false)).await?;
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// assert_eq!(fw.persistent_watches(), PersistentWatches::Unknown);
    /// let refused = fw.session().await?.client().add_watch("/", AddWatchMode::Persistent).await;
    /// assert_eq!(fw.note_add_watch(&refused), PersistentWatches::Unavailable);
    /// assert_eq!(fw.persistent_watches(), PersistentWatches::Unavailable);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn persistent_watches(&self) -> PersistentWatches {
        match self.inner.shared.features.persistent_watches.load(Ordering::SeqCst) {
            AVAILABLE => PersistentWatches::Available,
            UNAVAILABLE => PersistentWatches::Unavailable,
            _ => PersistentWatches::Unknown,
        }
    }

    /// Records what the reply to an `addWatch` says about persistent watches, and returns
    /// [`Framework::persistent_watches`] afterwards: a success makes an unknown answer
    /// [`PersistentWatches::Available`]; Unimplemented makes it
    /// [`PersistentWatches::Unavailable`] for good (logged once); any other error says nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_core::{AddWatchMode, Framework, framework::PersistentWatches};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// let watch = fw.session().await?.client().add_watch("/", AddWatchMode::Persistent).await;
    /// assert_eq!(fw.note_add_watch(&watch), PersistentWatches::Available);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn note_add_watch<T>(&self, reply: &Result<T>) -> PersistentWatches {
        let memory = &self.inner.shared.features.persistent_watches;
        match reply {
            Ok(_) => {
                let _ = memory.compare_exchange(UNKNOWN, AVAILABLE, Ordering::SeqCst, Ordering::SeqCst);
            }
            Err(e) if e.code() == ErrorCode::Unimplemented => {
                if memory.swap(UNAVAILABLE, Ordering::SeqCst) != UNAVAILABLE {
                    tracing::warn!(
                        "the server has no addWatch (ZooKeeper < 3.6): caches use one-shot watches for this framework's lifetime"
                    );
                }
            }
            Err(_) => {}
        }
        self.persistent_watches()
    }
}
