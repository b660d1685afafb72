//! [`SharedValue`] and [`SharedCount`]: a value every process sees, with compare-and-set on the
//! node's version (Curator's `SharedValue`, `SharedCount` and `VersionedValue`).
//!
//! # How it works
//!
//! The value is the data of one persistent node, created with a seed value if it does not
//! exist. A [`SharedCount`] stores a 4-byte big-endian signed integer (Curator's encoding; 42 is
//! `00 00 00 2A`), so a Java process using Curator's `SharedCount` (or kazoo's
//! `Counter(support_curator=True)`) shares the count. The recipe reads the node with a watch
//! and reads it again after every change, on a background task; the latest value and its
//! version are a watch channel ([`SharedValue::changes`]), not a listener.
//!
//! [`SharedValue::try_set_value`] writes only if the node is still at the version the caller
//! read (a compare-and-set on the node's version): two processes cannot both move the value
//! from the same version.
//!
//! # Connection states
//!
//! | state | what happens |
//! |---|---|
//! | SUSPENDED | nothing: the last value read stays the current one (watch the framework's [`connection_state`](corral_core::Framework::connection_state) to know it may be stale) |
//! | RECONNECTED (same session) | the value is read again in the background, as Curator does (the restored watch would report a change too) |
//! | LOST, then the new session | the value is read again on the new session, with a new watch |
//!
//! A change made while disconnected is therefore seen once the connection is back. If the node
//! is deleted, the last value stays until it is created again.

use std::sync::Arc;

use crate::{Error, Result};
use bytes::Bytes;
use corral_core::Error as CoreError;
use corral_core::framework::Create;
use corral_core::{CreateMode, ErrorCode, Framework, Stat};
use tokio::sync::watch;

use crate::task::RecipeTask;

/// A value with the node version it was read at (Curator's `VersionedValue`): what
/// [`SharedValue::try_set_value`] and [`SharedCount::try_set_count`] compare against.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use corral_recipes::shared_count::SharedCount;
///
/// let count = SharedCount::start(&fw, "/counters/jobs", 0).await?;
/// let seen = count.versioned_count();
/// assert_eq!((seen.version(), *seen.value()), (0, 0));
/// count.set_count(5).await?;
/// assert_eq!((count.versioned_count().version(), count.count()), (1, 5));
/// # count.close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedValue<T> {
    version: i32,
    value: T,
    /// The zxid of the change that wrote it, to keep only the newest of concurrent reads.
    mzxid: i64,
}

impl<T> VersionedValue<T> {
    /// The node's version when the value was read (its `Stat::version`).
    ///
    /// # Examples
    ///
    /// See [`VersionedValue`].
    pub fn version(&self) -> i32 {
        self.version
    }

    /// The value.
    ///
    /// # Examples
    ///
    /// See [`VersionedValue`].
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The value, taken out.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::shared_count::SharedValue;
    ///
    /// let shared = SharedValue::start(&fw, "/config/mode", "blue").await?;
    /// assert_eq!(shared.versioned_value().into_value(), "blue");
    /// # shared.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn into_value(self) -> T {
        self.value
    }
}

/// What the handle and its task share: the node, the codec and the current value.
#[derive(Debug)]
struct Node<T> {
    fw: Framework,
    path: String,
    decode: fn(&[u8]) -> Option<T>,
    current: watch::Sender<VersionedValue<T>>,
}

impl<T: Clone + Send + Sync + 'static> Node<T> {
    /// Publishes what was read or written, unless a newer change was published already.
    fn update(&self, data: &[u8], stat: &Stat) {
        let Some(value) = (self.decode)(data) else {
            tracing::warn!(path = %self.path, len = data.len(), "cannot decode the shared value; keeping the last one");
            return;
        };
        self.current.send_if_modified(|current| {
            if stat.mzxid <= current.mzxid {
                return false;
            }
            *current = VersionedValue { version: stat.version, value, mzxid: stat.mzxid };
            true
        });
    }

    async fn read(&self) -> Result<()> {
        let path = self.path.clone();
        let (data, stat) = self
            .fw
            .with_retry(move |client| {
                let path = path.clone();
                async move { client.get_data(&path).await }
            })
            .await?;
        self.update(&data, &stat);
        Ok(())
    }

    async fn set(&self, data: Bytes) -> Result<()> {
        let stat = self.fw.set_data(&self.path, data.clone(), None).await?;
        self.update(&data, &stat);
        Ok(())
    }

    async fn try_set(&self, previous: &VersionedValue<T>, data: Bytes) -> Result<bool>
    where
        T: PartialEq,
    {
        {
            // Curator's shortcut: the caller's value is not the current one, so it is stale.
            let current = self.current.borrow();
            if current.version != previous.version || current.value != previous.value {
                return Ok(false);
            }
        }
        // One try, no retry: after a ConnectionLoss the write may or may not have been applied,
        // and a retry could not tell ours from another writer's equal value at the next version.
        match self.fw.client().set_data(&self.path, data.clone(), Some(previous.version)).await {
            Ok(stat) => {
                self.update(&data, &stat);
                Ok(true)
            }
            Err(CoreError::Server { code: ErrorCode::BadVersion, .. }) => {
                self.read().await?;
                Ok(false)
            }
            Err(e) => Err(Error::from(e)),
        }
    }
}

/// The shared machinery of [`SharedValue`] and [`SharedCount`].
#[derive(Debug)]
struct Shared<T> {
    node: Arc<Node<T>>,
    changes: watch::Receiver<VersionedValue<T>>,
    task: RecipeTask,
}

impl<T: Clone + PartialEq + Send + Sync + 'static> Shared<T> {
    async fn start(fw: &Framework, path: String, seed: Bytes, decode: fn(&[u8]) -> Option<T>) -> Result<Self> {
        match fw.create(&path, seed, Create::new(CreateMode::Persistent).container_parents()).await {
            Ok(_) => {}
            Err(e) if e.is_node_exists() => {}
            Err(e) => return Err(Error::from(e)),
        }
        let read_path = path.clone();
        let (data, stat) = fw
            .with_retry(move |client| {
                let path = read_path.clone();
                async move { client.get_data(&path).await }
            })
            .await?;
        let Some(value) = decode(&data) else {
            return Err(Error::corrupt(path, format!("{} bytes, which do not decode", data.len())));
        };
        let (current, changes) = watch::channel(VersionedValue { version: stat.version, value, mzxid: stat.mzxid });
        let node = Arc::new(Node { fw: fw.clone(), path, decode, current });
        let task_node = node.clone();
        let task = RecipeTask::spawn(move |stop| follow(task_node, stop));
        Ok(Self { node, changes, task })
    }

    fn versioned(&self) -> VersionedValue<T> {
        self.changes.borrow().clone()
    }
}

/// Reads the node with a watch, and again after every change and every new connection, until
/// stopped.
async fn follow<T: Clone + Send + Sync + 'static>(node: Arc<Node<T>>, mut stop: watch::Receiver<bool>) {
    let mut states = node.fw.connection_state();
    let mut backoff = crate::task::Backoff::new(&node.fw);
    while !*stop.borrow() {
        let seen = *states.borrow_and_update();
        if !seen.state.is_connected() {
            tokio::select! {
                changed = states.changed() => if changed.is_err() { break },
                _ = stop.changed() => {}
            }
            continue;
        }
        let client = node.fw.client();
        // Awaited even when stopping: a watching request dropped before its reply would leave
        // its watch registered in the session (nobody could drop the watcher). It is a round
        // trip on a live connection, or a ConnectionLoss when the connection drops.
        let read = client.get_data_and_watch(&node.path).await;
        let watcher = match read {
            Ok((data, stat, watcher)) => {
                backoff.reset();
                node.update(&data, &stat);
                watcher
            }
            Err(e) if e.is_no_node() => match client.exists_and_watch(&node.path).await {
                // Created again meanwhile: read it.
                Ok((Some(_), _)) => continue,
                Ok((None, watcher)) => {
                    tracing::debug!(path = %node.path, "shared value deleted; waiting for it to come back");
                    watcher
                }
                Err(e) => {
                    tracing::debug!(path = %node.path, error = %e, "cannot watch the shared value");
                    continue;
                }
            },
            Err(e) => {
                tracing::debug!(path = %node.path, error = %e, "cannot read the shared value");
                backoff.wait(&mut states, &mut stop).await;
                continue;
            }
        };
        tokio::select! {
            // Changed, deleted, or the session ended: read again.
            _ = watcher => {}
            connected = crate::task::new_connection(&mut states, seen.connection) => {
                if !connected {
                    break;
                }
                tracing::debug!(path = %node.path, "reconnected; reading the shared value again");
            }
            _ = stop.changed() => {}
        }
    }
}

/// A shared byte value (Curator's `SharedValue`).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use corral_recipes::{Framework, shared_count::SharedValue};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let mode = SharedValue::start(&fw, "/config/mode", "blue").await?;
/// let other = SharedValue::start(&fw, "/config/mode", "ignored: the node exists").await?;
/// let mut changes = other.changes();
/// mode.set_value("green").await?;
/// changes.wait_for(|v| v.value() == "green").await?;
/// # mode.close().await;
/// # other.close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SharedValue {
    shared: Shared<Bytes>,
}

impl SharedValue {
    /// Starts sharing the value at `path`: creates the node with `seed` if it does not exist
    /// (missing parents as containers), reads it, and follows it on a spawned task.
    ///
    /// # Errors
    ///
    /// Connection errors once the retry policy gives up; [`corral_core::Error::InvalidPath`] for a bad path;
    /// server errors such as NoAuth as [`corral_core::Error::Server`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the node may have been created when the future is dropped.
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
    /// use corral_recipes::shared_count::SharedValue;
    ///
    /// let shared = SharedValue::start(&fw, "/config/mode", "blue").await?;
    /// assert_eq!(shared.value(), "blue");
    /// assert_eq!(&fw.client().get_data("/config/mode").await?.0[..], b"blue");
    /// # shared.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn start(fw: &Framework, path: impl Into<String>, seed: impl Into<Bytes>) -> Result<Self> {
        Ok(Self { shared: Shared::start(fw, path.into(), seed.into(), |b| Some(Bytes::copy_from_slice(b))).await? })
    }

    /// The current value (the latest this process has seen).
    ///
    /// # Examples
    ///
    /// See [`SharedValue::start`].
    pub fn value(&self) -> Bytes {
        self.shared.changes.borrow().value.clone()
    }

    /// The current value with its version, for [`SharedValue::try_set_value`].
    ///
    /// # Examples
    ///
    /// See [`SharedValue::try_set_value`].
    pub fn versioned_value(&self) -> VersionedValue<Bytes> {
        self.shared.versioned()
    }

    /// The current value as a watch channel: it changes whenever the node is written (also to
    /// the same bytes: the version moves). After [`SharedValue::close`] it no longer changes.
    ///
    /// # Examples
    ///
    /// See [`SharedValue`].
    pub fn changes(&self) -> watch::Receiver<VersionedValue<Bytes>> {
        self.shared.changes.clone()
    }

    /// Sets the value, whatever it is now.
    ///
    /// # Errors
    ///
    /// Connection errors once the retry policy gives up; server errors such as NoNode (the node
    /// was deleted) or NoAuth as [`corral_core::Error::Server`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the value may have been written when the future is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::shared_count::SharedValue;
    ///
    /// let shared = SharedValue::start(&fw, "/config/mode", "blue").await?;
    /// shared.set_value("green").await?;
    /// assert_eq!(shared.value(), "green"); // seen at once by the writer
    /// # shared.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn set_value(&self, value: impl Into<Bytes>) -> Result<()> {
        self.shared.node.set(value.into()).await
    }

    /// Sets the value only if the node is still at `previous`'s version (and `previous` is the
    /// value this process has seen last): `Ok(true)` if written, `Ok(false)` if someone else
    /// wrote first (the current value is then read again).
    ///
    /// # Errors
    ///
    /// Server errors such as NoNode or NoAuth as [`corral_core::Error::Server`]. A connection error is
    /// returned as is, without a retry: the write may or may not have been applied (see
    /// [`SharedValue::changes`] for what happened).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the value may have been written when the future is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::shared_count::SharedValue;
    ///
    /// let shared = SharedValue::start(&fw, "/config/mode", "blue").await?;
    /// let seen = shared.versioned_value();
    /// assert!(shared.try_set_value(&seen, "green").await?);
    /// assert!(!shared.try_set_value(&seen, "red").await?); // stale: the version moved
    /// assert_eq!(shared.value(), "green");
    /// # shared.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn try_set_value(&self, previous: &VersionedValue<Bytes>, value: impl Into<Bytes>) -> Result<bool> {
        self.shared.node.try_set(previous, value.into()).await
    }

    /// Stops following the node and waits until the background task has ended. The node is
    /// left as it is. Dropping the recipe stops it too, in the background.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the stop is signalled on the first poll; dropping the future only stops
    /// this caller's wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::shared_count::SharedValue;
    ///
    /// let shared = SharedValue::start(&fw, "/config/mode", "blue").await?;
    /// shared.close().await;
    /// assert_eq!(fw.client().watcher_count().await, 0); // its watch is gone
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn close(&self) {
        self.shared.task.stop().await;
    }
}

/// Curator's `SharedCount` encoding: a 4-byte big-endian signed integer.
fn encode_count(count: i32) -> Bytes {
    Bytes::copy_from_slice(&count.to_be_bytes())
}

/// Decodes the first four bytes, as Java's `ByteBuffer.getInt` does; fewer do not decode.
fn decode_count(data: &[u8]) -> Option<i32> {
    data.get(..4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A shared 32-bit count (Curator's `SharedCount`), stored as 4 big-endian bytes.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use corral_recipes::{Framework, shared_count::SharedCount};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let count = SharedCount::start(&fw, "/counters/jobs", 0).await?;
/// // Increment with compare-and-set, retrying when someone else was first.
/// loop {
///     let seen = count.versioned_count();
///     if count.try_set_count(&seen, seen.value() + 1).await? {
///         break;
///     }
/// }
/// assert_eq!(count.count(), 1);
/// assert_eq!(&fw.client().get_data("/counters/jobs").await?.0[..], [0, 0, 0, 1]);
/// # count.close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SharedCount {
    shared: Shared<i32>,
}

impl SharedCount {
    /// Starts sharing the count at `path`: creates the node with `seed` if it does not exist
    /// (missing parents as containers), reads it, and follows it on a spawned task.
    ///
    /// # Errors
    ///
    /// As [`SharedValue::start`]; [`corral_core::Error::BadArguments`] if the node holds fewer than 4 bytes.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the node may have been created when the future is dropped.
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
    /// use corral_recipes::shared_count::SharedCount;
    ///
    /// let count = SharedCount::start(&fw, "/counters/jobs", 42).await?;
    /// assert_eq!(count.count(), 42);
    /// assert_eq!(&fw.client().get_data("/counters/jobs").await?.0[..], [0x00, 0x00, 0x00, 0x2A]);
    /// # count.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn start(fw: &Framework, path: impl Into<String>, seed: i32) -> Result<Self> {
        Ok(Self { shared: Shared::start(fw, path.into(), encode_count(seed), decode_count).await? })
    }

    /// The current count (the latest this process has seen).
    ///
    /// # Examples
    ///
    /// See [`SharedCount::start`].
    pub fn count(&self) -> i32 {
        self.shared.changes.borrow().value
    }

    /// The current count with its version, for [`SharedCount::try_set_count`].
    ///
    /// # Examples
    ///
    /// See [`SharedCount`].
    pub fn versioned_count(&self) -> VersionedValue<i32> {
        self.shared.versioned()
    }

    /// The current count as a watch channel: it changes whenever the node is written. After
    /// [`SharedCount::close`] it no longer changes.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::shared_count::SharedCount;
    ///
    /// let count = SharedCount::start(&fw, "/counters/jobs", 0).await?;
    /// let mut changes = count.changes();
    /// fw.client().set_data("/counters/jobs", 7i32.to_be_bytes().to_vec(), None).await?;
    /// changes.wait_for(|c| *c.value() == 7).await?;
    /// # count.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn changes(&self) -> watch::Receiver<VersionedValue<i32>> {
        self.shared.changes.clone()
    }

    /// Sets the count, whatever it is now.
    ///
    /// # Errors
    ///
    /// As [`SharedValue::set_value`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the count may have been written when the future is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::shared_count::SharedCount;
    ///
    /// let count = SharedCount::start(&fw, "/counters/jobs", 0).await?;
    /// count.set_count(-3).await?;
    /// assert_eq!(count.count(), -3);
    /// # count.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn set_count(&self, count: i32) -> Result<()> {
        self.shared.node.set(encode_count(count)).await
    }

    /// Sets the count only if the node is still at `previous`'s version (Curator's
    /// `trySetCount`): `Ok(true)` if written, `Ok(false)` if someone else wrote first (the
    /// current count is then read again).
    ///
    /// # Errors
    ///
    /// As [`SharedValue::try_set_value`]: a connection error is returned without a retry, and
    /// the write may or may not have been applied.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the count may have been written when the future is dropped.
    ///
    /// # Examples
    ///
    /// See [`SharedCount`].
    pub async fn try_set_count(&self, previous: &VersionedValue<i32>, count: i32) -> Result<bool> {
        self.shared.node.try_set(previous, encode_count(count)).await
    }

    /// Stops following the node and waits until the background task has ended, as
    /// [`SharedValue::close`].
    ///
    /// # Cancel safety
    ///
    /// As [`SharedValue::close`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::shared_count::SharedCount;
    ///
    /// let count = SharedCount::start(&fw, "/counters/jobs", 0).await?;
    /// count.close().await;
    /// assert_eq!(fw.client().watcher_count().await, 0);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn close(&self) {
        self.shared.task.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_curators_bytes() {
        assert_eq!(&encode_count(42)[..], [0x00, 0x00, 0x00, 0x2A]);
        assert_eq!(&encode_count(-1)[..], [0xFF; 4]);
        assert_eq!(decode_count(&[0x00, 0x00, 0x00, 0x2A]), Some(42));
        assert_eq!(decode_count(&[0x80, 0, 0, 0, 9]), Some(i32::MIN), "extra bytes ignored, as ByteBuffer.getInt");
        assert_eq!(decode_count(&[0, 0, 1]), None);
    }
}
