//! SASL authentication in ZooKeeper's SASL packets (opcode 102, `GetSASLRequest` /
//! `SetSASLResponse` with normal xids), run on every connection before any other request.
//!
//! The exchange, as ZooKeeper's Java client runs it: the client sends its initial token (empty
//! for DIGEST-MD5), the server answers with a challenge, the client answers that, and so on
//! until the mechanism is complete. Nothing else is sent meanwhile, so the first request
//! already runs with the SASL identity (`sasl:<user>` in ACLs). A server that refuses the
//! credentials answers AUTH_FAILED: the session ends in
//! [`SessionState::AuthFailed`](crate::SessionState::AuthFailed).

mod digest_md5;

use std::fmt;
use std::sync::Arc;

pub(crate) use digest_md5::DigestMd5;

/// The SASL login of a client: the mechanism and its credentials.
///
/// Give it to [`ClientBuilder::sasl`](crate::ClientBuilder::sasl). Only DIGEST-MD5 exists so
/// far (the mechanism of ZooKeeper's `DigestLoginModule` JAAS logins); Kerberos (GSSAPI) is not
/// supported yet.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use corral_core::{Client, Sasl};
/// use corral_server::{SaslUsers, Server, testing::TestingServer};
///
/// let users = SaslUsers::new().user("bob", "bobsecret");
/// let server = TestingServer::with_builder(Server::builder().sasl_users(users)).await?;
/// let client =
///     Client::builder(server.connect_string()).sasl(Sasl::digest_md5("bob", "bobsecret")).connect().await?;
/// let me = client.who_am_i().await?;
/// assert!(me.iter().any(|id| id.auth_scheme == "sasl" && id.user == "bob"));
/// # client.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Sasl {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    DigestMd5 { username: String, password: Arc<str>, protocol: String, server_name: String },
}

impl fmt::Debug for Sasl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            // Never print the password.
            Kind::DigestMd5 { username, protocol, server_name, .. } => f
                .debug_struct("Sasl")
                .field("mechanism", &"DIGEST-MD5")
                .field("username", username)
                .field("digest_uri", &format_args!("{protocol}/{server_name}"))
                .finish_non_exhaustive(),
        }
    }
}

impl Sasl {
    /// DIGEST-MD5 (RFC 2831) as `username` with `password`: a user of the server's JAAS
    /// `Server` section (`user_<username>="<password>"`).
    pub fn digest_md5(username: impl Into<String>, password: impl AsRef<str>) -> Self {
        Self {
            kind: Kind::DigestMd5 {
                username: username.into(),
                password: password.as_ref().into(),
                protocol: "zookeeper".into(),
                server_name: "zk-sasl-md5".into(),
            },
        }
    }

    /// The service the server authenticates as: the `digest-uri` `protocol/server_name`.
    /// ZooKeeper's server is always `zookeeper/zk-sasl-md5` (the default), so this is for
    /// other servers only.
    pub fn service(mut self, protocol: impl Into<String>, server_name: impl Into<String>) -> Self {
        match &mut self.kind {
            Kind::DigestMd5 { protocol: p, server_name: s, .. } => {
                *p = protocol.into();
                *s = server_name.into();
            }
        }
        self
    }

    /// A fresh client side of the mechanism, for one connection.
    pub(crate) fn start(&self) -> Box<dyn Mechanism> {
        match &self.kind {
            Kind::DigestMd5 { username, password, protocol, server_name } => {
                Box::new(DigestMd5::new(username, password, &format!("{protocol}/{server_name}")))
            }
        }
    }
}

/// What the client does next in an exchange.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send this token to the server.
    Send(Vec<u8>),
    /// The exchange is complete; nothing more to send.
    Done,
}

/// The client side of a SASL mechanism.
pub(crate) trait Mechanism: Send {
    /// The first token, sent before the server has said anything.
    fn initial(&mut self) -> Vec<u8>;
    /// Answers the server's `token`.
    ///
    /// # Errors
    ///
    /// A token that cannot be understood or verified, said plainly.
    fn step(&mut self, token: &[u8]) -> Result<Step, String>;
}
