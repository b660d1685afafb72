//! TLS on a secure client port, as ZooKeeper's `secureClientPort`: the same protocol (and the
//! same four-letter words) inside TLS, through `rustls` with the `ring` provider.
//!
//! [`ServerTls`] holds the server's certificate and key and, for mutual TLS, the CA that client
//! certificates must chain to; [`crate::ServerBuilder::tls`] opens the port beside the plain one.
//! A client certificate, when presented and verified, gives its connection the id
//! `x509:<subject DN>` (ZooKeeper's `X509AuthenticationProvider`). The server's key may be an
//! encrypted PKCS#8 PEM block (`ENCRYPTED PRIVATE KEY`) with [`ServerTlsBuilder::key_password`].

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::server::Error;

/// Whether the secure port asks clients for a certificate (ZooKeeper's `ssl.clientAuth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// Ask for none.
    None,
    /// Ask, and verify one if presented; a client without one is served too.
    Want,
    /// Require one that chains to the client CA (ZooKeeper's default once a trust store is set).
    Need,
}

/// PEM bytes, or the file to read them from when the configuration is built.
#[derive(Clone)]
enum Pem {
    File(PathBuf),
    Bytes(Arc<[u8]>),
}

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
            Self::Bytes(bytes) => write!(f, "Bytes({} bytes)", bytes.len()),
        }
    }
}

impl Pem {
    fn load(&self, what: &str) -> Result<Vec<u8>, Error> {
        match self {
            Self::Bytes(bytes) => Ok(bytes.to_vec()),
            Self::File(path) => {
                std::fs::read(path).map_err(|e| Error::Tls(format!("cannot read the {what} {}: {e}", path.display())))
            }
        }
    }

    fn name(&self, what: &str) -> String {
        match self {
            Self::File(path) => format!("{what} {}", path.display()),
            Self::Bytes(_) => format!("{what} (in memory)"),
        }
    }

    fn certs(&self, what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
        let pem = self.load(what)?;
        let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| Error::Tls(format!("bad PEM in {}: {e}", self.name(what))))?;
        if certs.is_empty() {
            return Err(Error::Tls(format!("no CERTIFICATE in {}", self.name(what))));
        }
        Ok(certs)
    }
}

/// Builds a [`ServerTls`]. Made by [`ServerTls::builder`]; files are read by
/// [`ServerTlsBuilder::build`].
#[derive(Debug, Clone)]
pub struct ServerTlsBuilder {
    chain: Pem,
    key: Pem,
    client_ca: Option<Pem>,
    client_auth: Option<ClientAuth>,
    key_password: Option<Password>,
}

/// A private key's password; never printed.
#[derive(Clone)]
struct Password(Arc<str>);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

impl ServerTlsBuilder {
    /// The password of the server's private key when it is an encrypted PKCS#8 PEM block
    /// (`-----BEGIN ENCRYPTED PRIVATE KEY-----`, PBES2: PBKDF2 with HMAC-SHA-2 or scrypt, and
    /// AES-CBC, as `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes it): ZooKeeper's
    /// `ssl.keyStore.password` for a PEM key store. Ignored for an unencrypted key.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_server::{Error, ServerTls};
    ///
    /// # let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap().cert.pem();
    /// let encrypted_key = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n";
    /// let err = ServerTls::builder(&cert, encrypted_key).build().unwrap_err();
    /// assert!(matches!(err, Error::Tls(ref m) if m.contains("is encrypted")), "{err}");
    /// ```
    pub fn key_password(mut self, password: impl Into<String>) -> Self {
        self.key_password = Some(Password(password.into().into()));
        self
    }

    /// Verifies client certificates against the CA certificates of this PEM bundle (ZooKeeper's
    /// `ssl.trustStore.location`). Client certificates are then required unless
    /// [`ServerTlsBuilder::client_auth`] says otherwise, as in ZooKeeper.
    pub fn client_ca_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.client_ca = Some(Pem::Bytes(pem.as_ref().into()));
        self
    }

    /// Like [`ServerTlsBuilder::client_ca_pem`], from a file.
    pub fn client_ca_pem_file(mut self, path: impl AsRef<Path>) -> Self {
        self.client_ca = Some(Pem::File(path.as_ref().to_owned()));
        self
    }

    /// Whether client certificates are asked for: [`ClientAuth::Need`] by default with a
    /// client CA, [`ClientAuth::None`] without one.
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.client_auth = Some(auth);
        self
    }

    /// Reads the files, parses the PEM and builds the configuration.
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] naming the part at fault: an unreadable file, no certificate, no usable
    /// private key, an encrypted key without [`ServerTlsBuilder::key_password`] or with the
    /// wrong one, a key that does not match the certificate, or [`ClientAuth::Want`] /
    /// [`ClientAuth::Need`] without a client CA.
    pub fn build(self) -> Result<ServerTls, Error> {
        let chain = self.chain.certs("certificate chain")?;
        let key_pem = self.key.load("private key")?;
        let password = self.key_password.as_ref().map(|p| &*p.0);
        let key = private_key(&key_pem, password, &self.key.name("private key")).map_err(Error::Tls)?;
        let provider = Arc::new(ring_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?;
        let auth =
            self.client_auth.unwrap_or(if self.client_ca.is_some() { ClientAuth::Need } else { ClientAuth::None });
        let builder = match (auth, &self.client_ca) {
            (ClientAuth::None, _) => builder.with_no_client_auth(),
            (_, None) => return Err(Error::Tls("client certificates asked for, but no client CA given".into())),
            (auth, Some(ca)) => {
                let mut roots = RootCertStore::empty();
                for cert in ca.certs("client CA bundle")? {
                    roots.add(cert).map_err(|e| {
                        Error::Tls(format!("bad CA certificate in {}: {e}", ca.name("client CA bundle")))
                    })?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if auth == ClientAuth::Want { verifier.allow_unauthenticated() } else { verifier };
                let verifier =
                    verifier.build().map_err(|e| Error::Tls(format!("cannot build the client verifier: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|e| Error::Tls(format!("certificate and key do not fit: {e}")))?;
        Ok(ServerTls { config: Arc::new(config), client_auth: auth })
    }
}

/// The TLS settings of a secure client port. Cheap to clone.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), corral_server::Error> {
/// use corral_server::{ClientAuth, Server, ServerTls};
///
/// let tls = ServerTls::builder_from_files("/etc/zk/server.pem", "/etc/zk/server.key")
///     .client_ca_pem_file("/etc/zk/ca.pem")
///     .client_auth(ClientAuth::Need)
///     .build()?;
/// let server = Server::builder().tls(tls).secure_port(2281).start().await?;
/// println!("TLS on {:?}", server.secure_addr());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    client_auth: ClientAuth,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls").field("client_auth", &self.client_auth).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// A builder for a server presenting `cert_chain` (PEM, leaf first) with `key` (PEM:
    /// PKCS#8, PKCS#1 or SEC1), asking clients for no certificate.
    pub fn builder(cert_chain: impl AsRef<[u8]>, key: impl AsRef<[u8]>) -> ServerTlsBuilder {
        ServerTlsBuilder {
            chain: Pem::Bytes(cert_chain.as_ref().into()),
            key: Pem::Bytes(key.as_ref().into()),
            client_ca: None,
            client_auth: None,
            key_password: None,
        }
    }

    /// Like [`ServerTls::builder`], from files. ZooKeeper's single-file PEM key store (key and
    /// certificate in one file) works too: pass the file twice.
    pub fn builder_from_files(cert_chain: impl AsRef<Path>, key: impl AsRef<Path>) -> ServerTlsBuilder {
        ServerTlsBuilder {
            chain: Pem::File(cert_chain.as_ref().to_owned()),
            key: Pem::File(key.as_ref().to_owned()),
            client_ca: None,
            client_auth: None,
            key_password: None,
        }
    }

    /// Uses a `rustls` server configuration as it is.
    pub fn from_rustls(config: Arc<ServerConfig>) -> Self {
        Self { config, client_auth: ClientAuth::Want }
    }

    /// Runs the server side of the handshake within `limit`, and returns the stream with the
    /// ids the client certificate gives (`x509:<subject>`).
    pub(crate) async fn accept(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        limit: Duration,
    ) -> Option<(TlsStream<TcpStream>, Vec<corral_proto::Id>)> {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&self.config));
        match tokio::time::timeout(limit, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => {
                let ids = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|leaf| crate::x509::subject_dn(leaf))
                    .map(|dn| vec![corral_proto::Id::new("x509", dn)])
                    .unwrap_or_default();
                Some((stream, ids))
            }
            Ok(Err(e)) => {
                tracing::info!(%peer, error = %e, "TLS handshake failed; closing");
                None
            }
            Err(_) => {
                tracing::info!(%peer, "no TLS handshake in time; closing");
                None
            }
        }
    }
}

const ENCRYPTED_BEGIN: &[u8] = b"-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &[u8] = b"-----END ENCRYPTED PRIVATE KEY-----";

/// The private key of a PEM file: its first unencrypted key (PKCS#8, PKCS#1 or SEC1), or its
/// `ENCRYPTED PRIVATE KEY` block decrypted with `password`. (The client's twin is in
/// corral-core's `tls.rs`; the server does not depend on the client.)
fn private_key(pem: &[u8], password: Option<&str>, name: &str) -> Result<PrivateKeyDer<'static>, String> {
    let Some(start) = pem.windows(ENCRYPTED_BEGIN.len()).position(|w| w == ENCRYPTED_BEGIN) else {
        return PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("no usable private key in {name}: {e}"));
    };
    let password =
        password.ok_or_else(|| format!("the private key in {name} is encrypted: give its password (key_password)"))?;
    let block = &pem[start..];
    let end = block
        .windows(ENCRYPTED_END.len())
        .position(|w| w == ENCRYPTED_END)
        .ok_or_else(|| format!("the encrypted private key in {name} has no END line"))?;
    let (_, der) = pkcs8::der::pem::decode_vec(&block[..end + ENCRYPTED_END.len()])
        .map_err(|e| format!("bad PEM in the encrypted private key in {name}: {e}"))?;
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
        .map_err(|e| format!("the encrypted private key in {name} does not parse: {e}"))?;
    let wrong = || format!("cannot decrypt the private key in {name}: wrong password?");
    let plain = info.decrypt(password).map_err(|e| match e {
        // pkcs5 0.7 reports bad padding after decryption (a wrong password) as EncryptFailed.
        pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::DecryptFailed | pkcs8::pkcs5::Error::EncryptFailed) => {
            wrong()
        }
        // A wrong password can unpad cleanly (about once in 256): what comes out is no DER.
        pkcs8::Error::Asn1(_) | pkcs8::Error::KeyMalformed => wrong(),
        e => format!(
            "cannot decrypt the private key in {name}: {e} (supported: PBES2, PBKDF2-HMAC-SHA-2 or scrypt, AES-CBC)"
        ),
    })?;
    // Or DER that is no key.
    pkcs8::PrivateKeyInfo::try_from(plain.as_bytes()).map_err(|_| wrong())?;
    Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()))
}

/// Fills `buf` from the system's secure random source (through `ring`), for SASL nonces.
pub(crate) fn random_bytes(buf: &mut [u8]) {
    if ring_provider().secure_random.fill(buf).is_err() {
        buf.iter_mut().for_each(|b| *b = fastrand::u8(..));
    }
}

/// The `ring` provider (rust-deps.md §11).
#[allow(deprecated, reason = "rustls 0.23.48 deprecates ring's provider for lacking post-quantum key exchange")]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::kx_group;
    let mut provider = rustls::crypto::ring::default_provider();
    // rustls 0.23.48 puts P-384 first for ring, whose P-384 is generic big-number code: its key
    // share cost about 1 ms per handshake here, against some 50 µs for X25519, and made TLS
    // connects several times slower (benches/README.md, "TLS"). X25519 first, then P-256, as
    // OpenSSL and Java order them; the key share sent is the first, and a TLS 1.2 server (ZooKeeper
    // 3.8's default) picks the first it supports.
    provider.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
    provider
}
