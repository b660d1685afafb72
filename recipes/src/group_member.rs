//! [`GroupMember`]: membership in a group (Curator's `GroupMember`): an ephemeral node
//! `<path>/<member id>` holding the member's data, kept by a [`PersistentNode`], and the list of
//! every member with its data.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::Error;
use crate::Result;
use bytes::Bytes;
use corral_core::{CreateMode, Framework};

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
    /// Joins the group at `path` as `id` with `data` and returns at once: a [`PersistentNode`]
    /// keeps the ephemeral node `<path>/<id>` in existence in the background. Missing parents are
    /// created as containers.
    ///
    /// Member ids must be unique in the group: while another session's node holds `<path>/<id>`,
    /// this member waits for it to go (and never takes it over); [`GroupMember::close`] ends that
    /// wait at once.
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
    /// use corral_recipes::group_member::GroupMember;
    ///
    /// let me = GroupMember::start(&fw, "/groups/workers", "w1", "10.0.0.1:7000");
    /// me.wait_for_membership(Duration::from_secs(10)).await?;
    /// let (data, _) = fw.client().get_data("/groups/workers/w1").await?;
    /// assert_eq!(&data[..], b"10.0.0.1:7000");
    /// # me.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn start(fw: &Framework, path: impl Into<String>, id: impl Into<String>, data: impl Into<Bytes>) -> Self {
        let path = path.into();
        let id = id.into();
        let node = PersistentNode::start(fw, format!("{path}/{id}"), CreateMode::Ephemeral, data);
        Self { fw: fw.clone(), path, id, node }
    }

    /// This member's id (its node's name).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// # use corral_recipes::group_member::GroupMember;
    /// let me = GroupMember::start(&fw, "/groups/workers", "w1", "");
    /// assert_eq!(me.id(), "w1");
    /// # me.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Waits until this member's node exists; returns at once while it does.
    ///
    /// # Errors
    ///
    /// As [`PersistentNode::wait_for_initial_create`]: [`crate::Error::TimedOut`] after
    /// `timeout`; [`corral_core::Error::Closed`] if the member is closed first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches the recipe's state.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// # use corral_recipes::group_member::GroupMember;
    ///
    /// let me = GroupMember::start(&fw, "/groups/workers", "w1", "");
    /// me.wait_for_membership(Duration::from_secs(10)).await?;
    /// assert!(fw.client().exists("/groups/workers/w1").await?.is_some());
    /// # me.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_membership(&self, timeout: Duration) -> Result<()> {
        self.node.wait_for_initial_create(timeout).await
    }

    /// Changes this member's data, now and for every re-creation of its node.
    ///
    /// # Errors
    ///
    /// As [`PersistentNode::set_data`]: connection errors after retries (the data is kept and used
    /// by the next re-creation).
    ///
    /// # Cancel safety
    ///
    /// As [`PersistentNode::set_data`]: once the future is polled, the new data is kept for
    /// re-creations even if it is dropped, but the live node may not have it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// # use corral_recipes::group_member::GroupMember;
    ///
    /// let me = GroupMember::start(&fw, "/groups/workers", "w1", "idle");
    /// me.wait_for_membership(Duration::from_secs(10)).await?;
    /// me.set_data("busy").await?;
    /// assert_eq!(me.members().await?["w1"], "busy");
    /// # me.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn set_data(&self, data: impl Into<Bytes>) -> Result<()> {
        self.node.set_data(data).await
    }

    /// Every member of the group and its data, read from the server (members whose node is being
    /// re-created are missing); empty if the group's node does not exist.
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
    /// use corral_recipes::group_member::GroupMember;
    ///
    /// let w1 = GroupMember::start(&fw, "/groups/workers", "w1", "10.0.0.1:7000");
    /// let w2 = GroupMember::start(&fw, "/groups/workers", "w2", "10.0.0.2:7000");
    /// w1.wait_for_membership(Duration::from_secs(10)).await?;
    /// w2.wait_for_membership(Duration::from_secs(10)).await?;
    /// let members = w1.members().await?;
    /// assert_eq!(members.keys().collect::<Vec<_>>(), ["w1", "w2"]);
    /// assert_eq!(members["w2"], "10.0.0.2:7000");
    /// # w1.close().await; w2.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
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
            .map_err(Error::from)
    }

    /// Leaves the group: stops keeping this member's node and deletes it, waiting until that is
    /// done (see [`PersistentNode::close`]). Dropping the member does the same in the background.
    ///
    /// A member still waiting for another session's node with its id to go stops waiting and
    /// leaves that node alone. Every call, also concurrent or repeated ones, returns only once the
    /// member's task has ended.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`PersistentNode::close`]: dropping the future does not undo the stop, and
    /// a later or concurrent `close` still waits until the member has left.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// # use corral_recipes::group_member::GroupMember;
    ///
    /// let me = GroupMember::start(&fw, "/groups/workers", "w1", "");
    /// me.wait_for_membership(Duration::from_secs(10)).await?;
    /// me.close().await;
    /// assert!(!me.members().await?.contains_key("w1"));
    ///
    /// // A duplicate id waits for the first member's node; closing it ends the wait.
    /// let first = GroupMember::start(&fw, "/groups/workers", "w2", "first");
    /// first.wait_for_membership(Duration::from_secs(10)).await?;
    /// let other = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// let duplicate = GroupMember::start(&other, "/groups/workers", "w2", "second");
    /// tokio::time::timeout(Duration::from_secs(5), duplicate.close()).await?;
    /// assert_eq!(first.members().await?["w2"], "first");
    /// # first.close().await;
    /// # other.close().await;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn close(&self) {
        self.node.close().await;
    }
}
