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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delete {
    version: Option<i32>,
    guaranteed: bool,
    children: bool,
    idempotent: bool,
}

impl Delete {
    /// A plain delete of any version.
    pub fn new() -> Self {
        Self::default()
    }

    /// Deletes only if the node's version matches.
    pub fn version(mut self, version: i32) -> Self {
        self.version = Some(version);
        self
    }

    /// Guaranteed (Curator's `guaranteed()`): if the delete cannot be done now for connection
    /// or session reasons, it keeps being retried in the background, across reconnects and new
    /// sessions, until it succeeds or the node is gone. Lock release depends on this.
    pub fn guaranteed(mut self) -> Self {
        self.guaranteed = true;
        self
    }

    /// Deletes the node's descendants first.
    pub fn children(mut self) -> Self {
        self.children = true;
        self
    }

    /// A missing node counts as deleted (Curator's `quietly()` / idempotent delete).
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
                self.guarantee_delete(path.to_owned(), spec.version);
                Err(e)
            }
            other => other,
        }
    }

    /// Keeps deleting `path` in the background until it is gone.
    fn guarantee_delete(&self, path: String, version: Option<i32>) {
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
                    fw.client().delete(&path, version).await
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
