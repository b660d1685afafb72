//! kazoo's `Party` and `ShallowParty`: members of a group as ephemeral nodes.

use crate::Result;
use corral_core::{CreateMode, Framework};

use crate::persistent_node::PersistentNode;

/// kazoo's party node name (after the uuid hex).
pub const PARTY_NODE_NAME: &str = "__party__";

/// A member of a kazoo `Party` (`<path>/<uuid hex>__party__`, the identifier as data) or
/// `ShallowParty` (`<path>/<uuid hex>-<identifier>`, the identifier as data too).
///
/// Unlike kazoo's, the membership outlives a session: the node is an ephemeral
/// [`PersistentNode`], created again in every new session (and after a delete) until
/// [`Party::leave`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use std::time::Duration;
/// use corral_recipes::kazoo::{self, Party};
///
/// let me = Party::join(&fw, "/parties/workers", "rust-1");
/// me.wait_joined(Duration::from_secs(10)).await?;
/// assert_eq!(kazoo::party_members(&fw, "/parties/workers").await?, ["rust-1"]);
/// me.leave().await;
/// assert!(kazoo::party_members(&fw, "/parties/workers").await?.is_empty());
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Party {
    node: PersistentNode,
}

impl Party {
    /// Joins the kazoo `Party` at `path` as `identifier` and returns at once (the node is made
    /// in the background; see [`Party::wait_joined`]). Missing parents are created.
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
    /// use corral_recipes::kazoo::Party;
    ///
    /// let me = Party::join(&fw, "/parties/workers", "rust-1");
    /// me.wait_joined(Duration::from_secs(10)).await?;
    /// assert!(me.path().unwrap().ends_with("__party__"));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn join(fw: &Framework, path: &str, identifier: &str) -> Self {
        let name = format!("{}{PARTY_NODE_NAME}", uuid::Uuid::new_v4().simple());
        Self::start(fw, path, &name, identifier.as_bytes().to_vec())
    }

    /// Joins the kazoo `ShallowParty` at `path`: the identifier is part of the node's name
    /// (`<uuid hex>-<identifier>`), so it must be a valid node name.
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
    /// use corral_recipes::kazoo::{self, Party};
    ///
    /// let me = Party::join_shallow(&fw, "/parties/shallow", "rust-1");
    /// me.wait_joined(Duration::from_secs(10)).await?;
    /// assert_eq!(kazoo::shallow_party_members(&fw, "/parties/shallow").await?, ["rust-1"]);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn join_shallow(fw: &Framework, path: &str, identifier: &str) -> Self {
        let name = format!("{}-{identifier}", uuid::Uuid::new_v4().simple());
        // kazoo's ShallowParty writes the identifier as data too (BaseParty's `data`).
        Self::start(fw, path, &name, identifier.as_bytes().to_vec())
    }

    fn start(fw: &Framework, path: &str, name: &str, data: Vec<u8>) -> Self {
        let path = format!("{}/{name}", path.trim_end_matches('/'));
        Self { node: PersistentNode::start(fw, path, CreateMode::Ephemeral, data) }
    }

    /// Waits until the member's node exists (the first time).
    ///
    /// # Errors
    ///
    /// As [`PersistentNode::wait_for_initial_create`].
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
    /// use std::time::Duration;
    /// use corral_recipes::kazoo::Party;
    ///
    /// Party::join(&fw, "/parties/a", "x").wait_joined(Duration::from_secs(10)).await?;
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn wait_joined(&self, timeout: std::time::Duration) -> Result<()> {
        self.node.wait_for_initial_create(timeout).await
    }

    /// The member's node, while it exists.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::kazoo::Party;
    ///
    /// let me = Party::join_shallow(&fw, "/parties/b", "y");
    /// me.wait_joined(Duration::from_secs(10)).await?;
    /// assert!(me.path().unwrap().ends_with("-y"));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> Option<String> {
        self.node.actual_path()
    }

    /// Leaves the party: deletes the node (on its own session) and stops re-creating it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the leave goes on once started.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::kazoo::{self, Party};
    ///
    /// let me = Party::join(&fw, "/parties/c", "z");
    /// me.wait_joined(Duration::from_secs(10)).await?;
    /// me.leave().await;
    /// assert!(kazoo::party_members(&fw, "/parties/c").await?.is_empty());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn leave(&self) {
        self.node.close().await;
    }
}

/// kazoo's `iter(Party(path))`: the identifiers (node data) of every `__party__` member.
///
/// # Errors
///
/// Connection errors once the framework's retries give up.
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
/// use corral_recipes::kazoo;
///
/// assert!(kazoo::party_members(&fw, "/parties/none").await?.is_empty());
/// # fw.close().await;
/// # Ok(()) }
/// ```
pub async fn party_members(fw: &Framework, path: &str) -> Result<Vec<String>> {
    let children = crate::sort::children_or_empty(fw, path).await?;
    let mut out = Vec::new();
    for child in children.into_iter().filter(|c| c.contains(PARTY_NODE_NAME)) {
        let node = format!("{}/{child}", path.trim_end_matches('/'));
        let data = fw
            .with_retry(|c| {
                let node = node.clone();
                async move {
                    match c.get_data(&node).await {
                        Ok((data, _)) => Ok(Some(data)),
                        Err(e) if e.is_no_node() => Ok(None),
                        Err(e) => Err(e),
                    }
                }
            })
            .await?;
        out.extend(data.map(|d| String::from_utf8_lossy(&d).into_owned()));
    }
    Ok(out)
}

/// kazoo's `iter(ShallowParty(path))`: every member's identifier, from the node names (what
/// follows the first `-`).
///
/// # Errors
///
/// Connection errors once the framework's retries give up.
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
/// use corral_recipes::{CreateMode, framework::Create, kazoo};
///
/// let spec = Create::new(CreateMode::Persistent).parents();
/// fw.create("/parties/s/0123456789abcdef0123456789abcdef-py-7", "", spec).await?;
/// assert_eq!(kazoo::shallow_party_members(&fw, "/parties/s").await?, ["py-7"]);
/// # fw.close().await;
/// # Ok(()) }
/// ```
pub async fn shallow_party_members(fw: &Framework, path: &str) -> Result<Vec<String>> {
    let children = crate::sort::children_or_empty(fw, path).await?;
    Ok(children.iter().map(|c| c.split_once('-').map_or("", |(_, id)| id).to_owned()).collect())
}
