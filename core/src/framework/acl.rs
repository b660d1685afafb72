//! [`AclProvider`]: the ACL of every node the framework and the recipes create (Curator's
//! `ACLProvider`).

use std::fmt;
use std::sync::Arc;

use corral_proto::Acl;

/// Chooses the ACL of every node the framework creates on the application's behalf: nodes made
/// with [`Framework::create`](super::Framework::create) or [`Session::create`](super::Session::create)
/// without an explicit [`Create::with_acl`](super::Create::with_acl), their missing parents and
/// containers, [`Framework::ensure_path`](super::Framework::ensure_path), protected creates, and
/// so every node of every recipe (lock and latch nodes, leases, queue items, registrations,
/// counters, barriers). Curator's `ACLProvider`.
///
/// `path` is the node's path as the application names it (relative to the namespace; for a
/// protected or sequential create, the path asked for, before the prefix and the sequence);
/// the namespace's own nodes are asked for with their full paths.
///
/// # Examples
///
/// A fleet on an ensemble where the world may only read: every node is the creator's, and
/// readable by anyone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use corral_core::{Acl, AclProvider, Client, CreateMode, ErrorCode, Framework, Id, Perms};
///
/// #[derive(Debug)]
/// struct OwnerWritesWorldReads;
///
/// impl AclProvider for OwnerWritesWorldReads {
///     fn default_acl(&self) -> Vec<Acl> {
///         vec![Acl::new(Perms::ALL, Id::authenticated()), Acl::new(Perms::READ, Id::anyone())]
///     }
/// }
///
/// let fw = Framework::builder(server.connect_string())
///     .digest_auth("app", "secret")
///     .acl_provider(OwnerWritesWorldReads)
///     .start()?;
/// fw.create("/app/config", "v1", corral_core::framework::Create::new(CreateMode::Persistent).parents()).await?;
///
/// let stranger = Client::connect(&server.connect_string()).await?;
/// assert_eq!(&stranger.get_data("/app/config").await?.0[..], b"v1");
/// let err = stranger.set_data("/app/config", "v2", None).await.unwrap_err();
/// assert_eq!(err.code(), ErrorCode::NoAuth); // the parent too: it was made with the same ACL
/// assert_eq!(stranger.create("/app/x", "", CreateMode::Persistent).await.unwrap_err().code(), ErrorCode::NoAuth);
/// # stranger.close().await;
/// # fw.close().await;
/// # Ok(()) }
/// ```
pub trait AclProvider: fmt::Debug + Send + Sync {
    /// The ACL of a node no [`AclProvider::acl_for_path`] rule names.
    fn default_acl(&self) -> Vec<Acl>;

    /// The ACL for a node at `path`; [`AclProvider::default_acl`] unless overridden.
    fn acl_for_path(&self, path: &str) -> Vec<Acl> {
        let _ = path;
        self.default_acl()
    }
}

impl<P: AclProvider + ?Sized> AclProvider for Arc<P> {
    fn default_acl(&self) -> Vec<Acl> {
        (**self).default_acl()
    }

    fn acl_for_path(&self, path: &str) -> Vec<Acl> {
        (**self).acl_for_path(path)
    }
}

/// The provider a framework has unless told otherwise: the open ACL (`world:anyone`, all
/// permissions) everywhere, as Curator's `DefaultACLProvider`.
///
/// # Examples
///
/// ```
/// use corral_core::{Acl, AclProvider, framework::DefaultAclProvider};
///
/// assert_eq!(DefaultAclProvider.acl_for_path("/any"), Acl::open_unsafe());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultAclProvider;

impl AclProvider for DefaultAclProvider {
    fn default_acl(&self) -> Vec<Acl> {
        Acl::open_unsafe()
    }
}

/// One ACL for every node.
///
/// # Examples
///
/// ```
/// use corral_core::{Acl, AclProvider, framework::FixedAclProvider};
///
/// let provider = FixedAclProvider::new(Acl::creator_all());
/// assert_eq!(provider.acl_for_path("/locks/a"), Acl::creator_all());
/// ```
#[derive(Debug, Clone)]
pub struct FixedAclProvider(Vec<Acl>);

impl FixedAclProvider {
    /// A provider that answers `acl` for every path.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_core::{Acl, AclProvider, framework::FixedAclProvider};
    ///
    /// assert_eq!(FixedAclProvider::new(Acl::read_unsafe()).default_acl(), Acl::read_unsafe());
    /// ```
    pub fn new(acl: Vec<Acl>) -> Self {
        Self(acl)
    }
}

impl AclProvider for FixedAclProvider {
    fn default_acl(&self) -> Vec<Acl> {
        self.0.clone()
    }
}
