//! [`GroupMember`]: membership in a group (Curator's `GroupMember`): an ephemeral node
//! `<path>/<member id>` holding the member's data, kept by a [`PersistentNode`], and the list of
//! every member with its data.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use corral_core::{CreateMode, Framework, Result};

use crate::persistent_node::PersistentNode;

/// This process's membership in a group.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::time::Duration;
/// use corral_recipes::{Framework, group_member::GroupMember};
///
/// let fw = Framework::builder(server.connect_string()).start()?;
/// let me = GroupMember::start(&fw, "/groups/workers", "w1", "10.0.0.1:7000");
/// me.wait_for_membership(Duration::from_secs(10)).await?;
/// let members = me.members().await?;
/// assert_eq!(members.get("w1").map(|d| &d[..]), Some(&b"10.0.0.1:7000"[..]));
/// me.close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct GroupMember {
    fw: Framework,
    path: String,
    id: String,
    node: PersistentNode,
}

impl GroupMember {
    /// Joins the group at `path` as `id` with `data`, in the background.
    pub fn start(fw: &Framework, path: impl Into<String>, id: impl Into<String>, data: impl Into<Bytes>) -> Self {
        let path = path.into();
        let id = id.into();
        let node = PersistentNode::start(fw, format!("{path}/{id}"), CreateMode::Ephemeral, data);
        Self { fw: fw.clone(), path, id, node }
    }

    /// This member's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Waits until this member's node exists.
    ///
    /// # Errors
    ///
    /// [`corral_core::Error::Timeout`] after `timeout`.
    pub async fn wait_for_membership(&self, timeout: Duration) -> Result<()> {
        self.node.wait_for_initial_create(timeout).await
    }

    /// Changes this member's data (kept for every re-creation).
    ///
    /// # Errors
    ///
    /// Connection errors (the data is kept and used by the next re-creation).
    pub async fn set_data(&self, data: impl Into<Bytes>) -> Result<()> {
        self.node.set_data(data).await
    }

    /// Every member and its data.
    ///
    /// # Errors
    ///
    /// Connection errors after retries.
    pub async fn members(&self) -> Result<BTreeMap<String, Bytes>> {
        let path = self.path.clone();
        self.fw
            .with_retry(move |client| {
                let path = path.clone();
                async move {
                    let children = match client.get_children(&path).await {
                        Ok(c) => c,
                        Err(e) if e.is_no_node() => return Ok(BTreeMap::new()),
                        Err(e) => return Err(e),
                    };
                    let reads: Vec<_> = children.iter().map(|c| client.get_data(&format!("{path}/{c}"))).collect();
                    let mut out = BTreeMap::new();
                    for (child, read) in children.into_iter().zip(reads) {
                        match read.await {
                            Ok((data, _)) => {
                                out.insert(child, data);
                            }
                            Err(e) if e.is_no_node() => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Ok(out)
                }
            })
            .await
    }

    /// Leaves the group (deletes this member's node).
    pub async fn close(&self) {
        self.node.close().await;
    }
}
