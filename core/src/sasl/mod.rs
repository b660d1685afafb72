//! SASL authentication in ZooKeeper's SASL packets (opcode 102, `GetSASLRequest` /
//! `SetSASLResponse` with normal xids), run on every connection before any other request.
//!
//! The exchange, as ZooKeeper's Java client runs it: the client sends its initial token (empty
//! for DIGEST-MD5), the server answers with a challenge, the client answers that, and so on
//! until the mechanism is complete. Nothing else is sent meanwhile, so the first request
//! already runs with the SASL identity (`sasl:<user>` in ACLs). A server that refuses the
//! credentials answers AUTH_FAILED: the session ends in
//! [`SessionState::AuthFailed`](crate::SessionState::AuthFailed).
//!
//! GSSAPI (Kerberos), behind the `gssapi` cargo feature, runs on MIT krb5's GSS-API library
//! (the `libgssapi` crate): the client token first, then the server's, and at the end the
//! security layer the server offers answered with "none" (see the `gssapi` module).

mod digest_md5;
#[cfg(feature = "gssapi")]
mod gssapi;

use std::fmt;
use std::sync::Arc;

pub(crate) use digest_md5::DigestMd5;

/// The SASL login of a client: the mechanism and its credentials.
///
/// Give it to [`ClientBuilder::sasl`](crate::ClientBuilder::sasl) or
/// [`FrameworkBuilder::sasl`](crate::FrameworkBuilder::sasl). Two mechanisms:
/// [`Sasl::digest_md5`], the mechanism of ZooKeeper's `DigestLoginModule` JAAS logins, and with
/// the `gssapi` cargo feature `Sasl::gssapi`, Kerberos (the `Krb5LoginModule` logins most
/// secured ensembles run).
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
    DigestMd5 {
        username: String,
        password: Arc<str>,
        protocol: String,
        server_name: String,
    },
    /// Kerberos: the service principal is `service/host`, `host` being the server's host from
    /// the connect string unless one is given.
    #[cfg(feature = "gssapi")]
    Gssapi {
        service: String,
        host: Option<String>,
        principal: Option<String>,
    },
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
            #[cfg(feature = "gssapi")]
            Kind::Gssapi { service, host, principal } => f
                .debug_struct("Sasl")
                .field("mechanism", &"GSSAPI")
                .field("service", &format_args!("{service}/{}", host.as_deref().unwrap_or("<server host>")))
                .field("principal", principal)
                .finish(),
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

    /// Kerberos V5 through GSSAPI, as ZooKeeper's `Krb5LoginModule` logins (`sasl:<principal>`
    /// in ACLs, e.g. `sasl:app@EXAMPLE.COM`). Needs the `gssapi` cargo feature, which links MIT
    /// krb5's GSS-API library (`libgssapi_krb5`).
    ///
    /// The service principal is `zookeeper/<host>@<realm>`, `<host>` being the host of the
    /// server connected to as the connect string names it (so name servers by the host names
    /// of their principals, not by address), the realm Kerberos' own mapping of that host
    /// (`[domain_realm]`, else `default_realm`). Change it with [`Sasl::service_name`] or
    /// [`Sasl::service`].
    ///
    /// The client's identity is the process's Kerberos credentials, found as by every MIT
    /// krb5 program: a ticket in the ticket cache (`KRB5CCNAME`, e.g. from `kinit`), and
    /// when the cache holds none, a key in the client keytab (`KRB5_CLIENT_KTNAME`, e.g.
    /// `FILE:/etc/app/app.keytab`), from which the library obtains and renews the ticket
    /// itself. `KRB5_CONFIG` names the Kerberos configuration (default `/etc/krb5.conf`).
    /// The login runs on every connection, before any request, on Tokio's blocking pool (it
    /// may talk to the KDC).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // KRB5_CLIENT_KTNAME=/etc/app/app.keytab in the environment, principal app@EXAMPLE.COM.
    /// use corral_core::{Client, Sasl};
    ///
    /// let client = Client::builder("zk1.example.com:2181,zk2.example.com:2181")
    ///     .sasl(Sasl::gssapi())
    ///     .connect()
    ///     .await?;
    /// let me = client.who_am_i().await?;
    /// assert!(me.iter().any(|id| id.auth_scheme == "sasl" && id.user == "app@EXAMPLE.COM"));
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "gssapi")]
    pub fn gssapi() -> Self {
        Self { kind: Kind::Gssapi { service: "zookeeper".into(), host: None, principal: None } }
    }

    /// Kerberos as [`Sasl::gssapi`], as the client principal `principal` (e.g.
    /// `app@EXAMPLE.COM`) rather than the default one: its ticket from the ticket cache (or
    /// cache collection), else its key from the client keytab, which may hold several
    /// principals' keys (as the `principal` of a Java client's JAAS `Krb5LoginModule`).
    ///
    /// A principal with neither ends the session in
    /// [`SessionState::AuthFailed`](crate::SessionState::AuthFailed), and
    /// [`ClientBuilder::connect`](crate::ClientBuilder::connect) says so with
    /// [`Error::Sasl`](crate::Error::Sasl).
    #[cfg(feature = "gssapi")]
    pub fn gssapi_principal(principal: impl Into<String>) -> Self {
        Self { kind: Kind::Gssapi { service: "zookeeper".into(), host: None, principal: Some(principal.into()) } }
    }

    /// The primary of the server's Kerberos principal, `zookeeper` by default (the Java
    /// client's `zookeeper.sasl.client.username`); the instance stays each server's host. For
    /// DIGEST-MD5, the `protocol` of the `digest-uri`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        match &mut self.kind {
            Kind::DigestMd5 { protocol, .. } => *protocol = name.into(),
            #[cfg(feature = "gssapi")]
            Kind::Gssapi { service, .. } => *service = name.into(),
        }
        self
    }

    /// The service the server authenticates as, the same for every server: the Kerberos
    /// principal `protocol/server_name` (for servers reached through an alias or a load
    /// balancer), or the DIGEST-MD5 `digest-uri` `protocol/server_name`. ZooKeeper's
    /// DIGEST-MD5 server is always `zookeeper/zk-sasl-md5` (the default), so there it is for
    /// other servers only.
    pub fn service(mut self, protocol: impl Into<String>, server_name: impl Into<String>) -> Self {
        match &mut self.kind {
            Kind::DigestMd5 { protocol: p, server_name: s, .. } => {
                *p = protocol.into();
                *s = server_name.into();
            }
            #[cfg(feature = "gssapi")]
            Kind::Gssapi { service, host, .. } => {
                *service = protocol.into();
                *host = Some(server_name.into());
            }
        }
        self
    }

    /// A fresh client side of the mechanism, for one connection to `host`.
    ///
    /// # Errors
    ///
    /// When the mechanism cannot be set up, said plainly.
    #[cfg_attr(not(feature = "gssapi"), allow(unused_variables, reason = "only GSSAPI names the server"))]
    pub(crate) fn start(&self, host: &str) -> Result<Box<dyn Mechanism>, String> {
        match &self.kind {
            Kind::DigestMd5 { username, password, protocol, server_name } => {
                Ok(Box::new(DigestMd5::new(username, password, &format!("{protocol}/{server_name}"))))
            }
            #[cfg(feature = "gssapi")]
            Kind::Gssapi { service, host: fixed, principal } => {
                Ok(Box::new(gssapi::Gssapi::new(service, fixed.as_deref().unwrap_or(host), principal.as_deref())))
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
    ///
    /// # Errors
    ///
    /// When the mechanism cannot start (no credentials, say), said plainly.
    fn initial(&mut self) -> Result<Vec<u8>, String>;
    /// Answers the server's `token`.
    ///
    /// # Errors
    ///
    /// A token that cannot be understood or verified, said plainly.
    fn step(&mut self, token: &[u8]) -> Result<Step, String>;
    /// Whether the steps may block (on the network, or on a library that does), so the
    /// session runs them on the blocking pool.
    fn blocking(&self) -> bool {
        false
    }
}
