//! Deleting nodes through the framework: versions, children, idempotence and guaranteed
//! deletes that keep trying in the background across reconnects.

use std::sync::atomic::Ordering;
use std::time::Duration;

use corral_proto::ErrorCode;
use futures::future::BoxFuture;

use super::Framework;
use crate::client::Client;
use crate::error::{Error, Result};

/// How [`Framework::delete`] deletes a node.
///
/// `Delete::new()` (or `Delete::default()`) deletes any version of a leaf node once; the
/// methods add a version check, recursion, idempotence and the background guarantee.
///
/// # Examples
///
/// ```
/// use corral_core::framework::Delete;
///
/// let release = Delete::new().guaranteed().idempotent();
/// assert_ne!(release, Delete::new());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delete {
    version: Option<i32>,
    guaranteed: bool,
    children: bool,
    idempotent: bool,
}

impl Delete {
    /// A plain delete of any version: once, of a leaf node, NoNode reported.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use corral_core::{ErrorCode, framework::Delete};
    ///
    /// assert_eq!(Delete::new(), Delete::default());
    /// fw.ensure_path("/dir/leaf").await?;
    /// let err = fw.delete("/dir", Delete::new()).await.unwrap_err();
    /// assert_eq!(err.code(), ErrorCode::NotEmpty);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Deletes only if the node's version matches.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use corral_core::{CreateMode, ErrorCode, framework::Delete};
    ///
    /// fw.create("/task", "", CreateMode::Persistent).await?;
    /// fw.set_data("/task", "claimed", None).await?; // version 1 now
    /// let err = fw.delete("/task", Delete::new().version(0)).await.unwrap_err();
    /// assert_eq!(err.code(), ErrorCode::BadVersion);
    /// fw.delete("/task", Delete::new().version(1)).await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn version(mut self, version: i32) -> Self {
        self.version = Some(version);
        self
    }

    /// Guaranteed (Curator's `guaranteed()`): if the delete cannot be done now for connection
    /// or session reasons, it keeps being retried in the background, across reconnects and new
    /// sessions, until it succeeds or the node is gone. Lock release depends on this.
    ///
    /// [`Framework::delete`] still returns the error; the background work shows in
    /// [`Framework::pending_guaranteed_deletes`]. It gives up on BadVersion, NotEmpty and
    /// NoAuth, and when the framework is closed. Only a delete that ran to its error goes on
    /// in the background: dropping the `delete` future earlier cancels it.
    ///
    /// The background retries use the version given to [`Delete::version`]; combined with
    /// [`Delete::children`], they delete the children first, as the first try did.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::{CreateMode, Framework, RetryOneTime, framework::Delete};
    ///
    /// let fw = Framework::builder(server.connect_string())
    ///     .connection_timeout(Duration::from_millis(200))
    ///     .retry_policy(RetryOneTime::new(Duration::from_millis(10)))
    ///     .start()?;
    /// fw.wait_until_connected(Duration::from_secs(5)).await?;
    /// fw.create("/lock-1", "", CreateMode::Persistent).await?;
    /// server.stop().await;
    /// assert!(fw.delete("/lock-1", Delete::new().guaranteed()).await.is_err());
    /// assert_eq!(fw.pending_guaranteed_deletes(), 1);
    /// server.restart().await?;
    /// while fw.pending_guaranteed_deletes() > 0 {
    ///     tokio::time::sleep(Duration::from_millis(20)).await;
    /// }
    /// assert_eq!(fw.client().exists("/lock-1").await?, None);
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn guaranteed(mut self) -> Self {
        self.guaranteed = true;
        self
    }

    /// Deletes the node's descendants first (depth first, one request each: not atomic).
    ///
    /// If another client adds a child meanwhile, the delete fails with NotEmpty.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use corral_core::framework::Delete;
    ///
    /// fw.ensure_path("/tree/a/b").await?;
    /// fw.ensure_path("/tree/c").await?;
    /// fw.delete("/tree", Delete::new().children()).await?;
    /// assert_eq!(fw.client().exists("/tree").await?, None);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn children(mut self) -> Self {
        self.children = true;
        self
    }

    /// A missing node counts as deleted (Curator's `quietly()` / idempotent delete).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use corral_core::framework::Delete;
    ///
    /// let err = fw.delete("/gone", Delete::new()).await.unwrap_err();
    /// assert!(err.is_no_node());
    /// fw.delete("/gone", Delete::new().idempotent()).await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }
}

fn delete_tree<'a>(client: &'a Client, path: &'a str) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        let children = match client.get_children(path).await {
            Ok(c) => c,
            Err(e) if e.is_no_node() => return Ok(()),
            Err(e) => return Err(e),
        };
        for child in children {
            let child_path = if path == "/" { format!("/{child}") } else { format!("{path}/{child}") };
            delete_tree(client, &child_path).await?;
            match client.delete(&child_path, None).await {
                Ok(()) => {}
                Err(e) if e.is_no_node() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
}

impl Framework {
    /// Deletes a node, retrying under the retry policy. See [`Delete`] for the options.
    ///
    /// # Errors
    ///
    /// As [`Client::delete`] after retries (NoNode is success for an idempotent delete, and
    /// for a retry after a connection loss). A guaranteed delete returns the error too, and
    /// goes on in the background.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the node (or some descendants, with [`Delete::children`]) may have
    /// been deleted when the future is dropped, and a guaranteed delete dropped before it
    /// returned does not go on in the background.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use corral_core::{CreateMode, framework::Delete};
    ///
    /// fw.create("/session-1", "", CreateMode::Persistent).await?;
    /// fw.delete("/session-1", Delete::new()).await?;
    /// assert_eq!(fw.client().exists("/session-1").await?, None);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, path: &str, spec: Delete) -> Result<()> {
        let mut attempt = 0u32;
        let result = self
            .with_retry(|client| {
                attempt += 1;
                let path = path.to_owned();
                let retried = attempt > 1;
                async move {
                    if spec.children {
                        delete_tree(&client, &path).await?;
                    }
                    match client.delete(&path, spec.version).await {
                        Err(e) if e.is_no_node() && (spec.idempotent || retried) => Ok(()),
                        other => other,
                    }
                }
            })
            .await;
        match result {
            Err(e) if spec.guaranteed && needs_background(&e) => {
                self.guarantee_delete(path.to_owned(), spec.version, spec.children);
                Err(e)
            }
            other => other,
        }
    }

    /// Keeps deleting `path` in the background until it is gone.
    fn guarantee_delete(&self, path: String, version: Option<i32>, children: bool) {
        tracing::info!(%path, "delete failed for now; retrying in the background");
        self.shared_deletes().fetch_add(1, Ordering::SeqCst);
        let weak = self.weak();
        tokio::spawn(async move {
            let mut pause = Duration::from_millis(50);
            loop {
                let Some(fw) = Framework::from_weak(&weak) else { return };
                if fw.is_closed() {
                    fw.shared_deletes().fetch_sub(1, Ordering::SeqCst);
                    return;
                }
                let connected = fw.connected();
                let attempt = async {
                    connected.await?;
                    let client = fw.client();
                    if children {
                        delete_tree(&client, &path).await?;
                    }
                    client.delete(&path, version).await
                };
                match attempt.await {
                    Ok(()) => break,
                    Err(e) if e.is_no_node() => break,
                    Err(Error::Server {
                        code: ErrorCode::BadVersion | ErrorCode::NotEmpty | ErrorCode::NoAuth,
                        ..
                    }) => {
                        tracing::warn!(%path, "guaranteed delete cannot succeed; giving up");
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(%path, error = %e, ?pause, "guaranteed delete: will retry");
                        drop(fw);
                        tokio::time::sleep(pause + Duration::from_millis(fastrand::u64(0..=pause.as_millis() as u64)))
                            .await;
                        pause = (pause * 2).min(Duration::from_secs(2));
                        continue;
                    }
                }
            }
            if let Some(fw) = Framework::from_weak(&weak) {
                fw.shared_deletes().fetch_sub(1, Ordering::SeqCst);
            }
        });
    }
}

fn needs_background(e: &Error) -> bool {
    e.is_retryable() || matches!(e, Error::SessionExpired | Error::Closed | Error::Timeout)
}
