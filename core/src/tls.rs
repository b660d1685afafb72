//! TLS to a ZooKeeper `secureClientPort`, through `rustls` (with the `ring` provider).
//!
//! ZooKeeper's secure port speaks the same protocol inside TLS, so TLS is a layer under every
//! connection the client makes: the session's connections and reconnects, the `isro` probes of
//! a read-only session, and [`Client::four_letter_word`](crate::Client::four_letter_word).
//! [`ClientTls`] holds the settings; [`ClientBuilder::tls`](crate::ClientBuilder::tls) and
//! [`FrameworkBuilder::tls`](crate::FrameworkBuilder::tls) turn it on.
//!
//! What is checked, by default: the server's certificate chain against the CA certificates
//! given (and the operating system's with the `native-roots` feature), its validity dates, and
//! that it names the host of the connect string (a DNS name or an IP address, as written).
//! Mutual TLS adds a client certificate chain and key; the key may be an encrypted PKCS#8 PEM
//! block (`ENCRYPTED PRIVATE KEY`) with [`ClientTlsBuilder::key_password`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::connect_string::HostPort;
use crate::error::{Error, Result};
use crate::transport::{AsyncStream, BoxStream, Transport};

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
            // Never print key material.
            Self::Bytes(bytes) => write!(f, "Bytes({} bytes)", bytes.len()),
        }
    }
}

impl Pem {
    fn load(&self, what: &str) -> Result<Vec<u8>> {
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
}

/// Builds a [`ClientTls`]: trusted CAs, an optional client certificate, hostname checking.
/// Made by [`ClientTls::builder`].
///
/// Files are read, and PEM parsed, by [`ClientTlsBuilder::build`].
#[derive(Debug, Clone)]
pub struct ClientTlsBuilder {
    cas: Vec<Pem>,
    native_roots: bool,
    identity: Option<(Pem, Pem)>,
    key_password: Option<Password>,
    verify_hostname: bool,
    server_name: Option<String>,
}

/// A private key's password; never printed.
#[derive(Clone)]
struct Password(Arc<str>);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

impl ClientTlsBuilder {
    /// Trusts the CA certificates of a PEM bundle (one or more `CERTIFICATE` blocks).
    pub fn ca_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.cas.push(Pem::Bytes(pem.as_ref().into()));
        self
    }

    /// Trusts the CA certificates of a PEM bundle file (ZooKeeper's
    /// `zookeeper.ssl.trustStore.location` with `trustStore.type=PEM`).
    pub fn ca_pem_file(mut self, path: impl AsRef<Path>) -> Self {
        self.cas.push(Pem::File(path.as_ref().to_owned()));
        self
    }

    /// Trusts the operating system's CA certificates as well (`rustls-native-certs`).
    #[cfg(feature = "native-roots")]
    pub fn native_roots(mut self) -> Self {
        self.native_roots = true;
        self
    }

    /// Presents this client certificate chain (PEM, leaf first) and its private key (PEM:
    /// PKCS#8, PKCS#1 or SEC1) to servers that ask for one: mutual TLS (ZooKeeper's
    /// `ssl.clientAuth=need`), and the `x509` ACL scheme.
    pub fn identity_pem(mut self, cert_chain: impl AsRef<[u8]>, key: impl AsRef<[u8]>) -> Self {
        self.identity = Some((Pem::Bytes(cert_chain.as_ref().into()), Pem::Bytes(key.as_ref().into())));
        self
    }

    /// Like [`ClientTlsBuilder::identity_pem`], from files.
    pub fn identity_pem_files(mut self, cert_chain: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        self.identity = Some((Pem::File(cert_chain.as_ref().to_owned()), Pem::File(key.as_ref().to_owned())));
        self
    }

    /// The password of the client's private key when it is an encrypted PKCS#8 PEM block
    /// (`-----BEGIN ENCRYPTED PRIVATE KEY-----`, PBES2: PBKDF2 with HMAC-SHA-2 or scrypt, and
    /// AES-CBC, as `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes it): ZooKeeper's
    /// `zookeeper.ssl.keyStore.password` for a PEM key store. Ignored for an unencrypted key.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_core::{ClientTls, Error};
    ///
    /// # let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap().cert.pem();
    /// let encrypted_key = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n";
    /// let err = ClientTls::builder()
    ///     .ca_pem(&ca)
    ///     .identity_pem(&ca, encrypted_key)
    ///     .key_password("secret")
    ///     .build()
    ///     .unwrap_err();
    /// assert!(matches!(err, Error::Tls(ref m) if m.contains("encrypted private key")), "{err}");
    /// ```
    pub fn key_password(mut self, password: impl Into<String>) -> Self {
        self.key_password = Some(Password(password.into().into()));
        self
    }

    /// The name to check the server's certificate against (and to send as SNI), instead of the
    /// host of the connect string. Useful when the ensemble is reached through addresses its
    /// certificates do not name, but all carry one known name.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// **Dangerous**: accepts a server certificate that does not name the host connected to.
    ///
    /// The chain is still checked against the trusted CAs, so only a holder of a certificate
    /// from one of them can impersonate a server; with a public or company-wide CA that is a
    /// great many parties. Prefer [`ClientTlsBuilder::server_name`]. This exists for ensembles
    /// whose certificates name no host at all, as ZooKeeper's
    /// `zookeeper.ssl.hostnameVerification=false` does.
    pub fn danger_disable_hostname_verification(mut self) -> Self {
        self.verify_hostname = false;
        self
    }

    /// Reads the files and parses the PEM given, and builds the configuration.
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] naming the file or part at fault: a file that cannot be read, PEM with
    /// no certificate or no private key, a certificate that is not a valid CA, a key that does
    /// not match, an encrypted key without [`ClientTlsBuilder::key_password`] or with the wrong
    /// one, no trusted CA at all, or an invalid [`ClientTlsBuilder::server_name`].
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_core::{ClientTls, Error};
    ///
    /// let err = ClientTls::builder().ca_pem_file("/nonexistent/ca.pem").build().unwrap_err();
    /// assert!(matches!(err, Error::Tls(_)));
    /// assert!(ClientTls::builder().build().is_err()); // no trusted CA
    /// ```
    pub fn build(self) -> Result<ClientTls> {
        let mut roots = RootCertStore::empty();
        for ca in &self.cas {
            let pem = ca.load("CA bundle")?;
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| Error::Tls(format!("bad PEM in {}: {e}", ca.name("CA bundle"))))?;
                roots
                    .add(cert)
                    .map_err(|e| Error::Tls(format!("bad CA certificate in {}: {e}", ca.name("CA bundle"))))?;
                added += 1;
            }
            if added == 0 {
                return Err(Error::Tls(format!("no CERTIFICATE in {}", ca.name("CA bundle"))));
            }
        }
        if self.native_roots {
            add_native_roots(&mut roots)?;
        }
        if roots.is_empty() {
            return Err(Error::Tls("no trusted CA certificate: give a CA bundle (ca_pem or ca_pem_file)".into()));
        }
        let provider = Arc::new(ring_provider());
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| Error::Tls(format!("cannot build the certificate verifier: {e}")))?;
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?;
        let builder = if self.verify_hostname {
            builder.with_webpki_verifier(verifier)
        } else {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyHostname(verifier)))
        };
        let config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => {
                let chain_pem = chain.load("client certificate")?;
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain_pem)
                    .collect::<Result<_, _>>()
                    .map_err(|e| Error::Tls(format!("bad PEM in {}: {e}", chain.name("client certificate"))))?;
                if certs.is_empty() {
                    return Err(Error::Tls(format!("no CERTIFICATE in {}", chain.name("client certificate"))));
                }
                let key_pem = key.load("client key")?;
                let password = self.key_password.as_ref().map(|p| &*p.0);
                let key_der =
                    private_key(&key_pem, password, "key_password", &key.name("client key")).map_err(Error::Tls)?;
                builder
                    .with_client_auth_cert(certs, key_der)
                    .map_err(|e| Error::Tls(format!("client certificate and key do not fit: {e}")))?
            }
        };
        let server_name = match self.server_name {
            None => None,
            Some(name) => Some(
                ServerName::try_from(name.clone())
                    .map_err(|e| Error::Tls(format!("invalid server name {name:?}: {e}")))?,
            ),
        };
        Ok(ClientTls { config: Arc::new(config), server_name })
    }
}

const ENCRYPTED_BEGIN: &[u8] = b"-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &[u8] = b"-----END ENCRYPTED PRIVATE KEY-----";

/// The private key of a PEM file: its first unencrypted key (PKCS#8, PKCS#1 or SEC1), or, when
/// it holds an `ENCRYPTED PRIVATE KEY` block, that key decrypted with `password`. `setting`
/// names where the password is given, and `name` the file, for the messages.
///
/// # Errors
///
/// A message naming `name`: no key, an encrypted key without a password, a wrong password, an
/// encryption scheme that is not supported, or a block that does not parse.
pub(crate) fn private_key(
    pem: &[u8],
    password: Option<&str>,
    setting: &str,
    name: &str,
) -> std::result::Result<PrivateKeyDer<'static>, String> {
    let Some(start) = find(pem, ENCRYPTED_BEGIN) else {
        return PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("no usable private key in {name}: {e}"));
    };
    let Some(password) = password else {
        return Err(format!("the private key in {name} is encrypted: give its password ({setting})"));
    };
    let end = find(&pem[start..], ENCRYPTED_END)
        .map(|at| start + at + ENCRYPTED_END.len())
        .ok_or_else(|| format!("the encrypted private key in {name} has no END line"))?;
    let (_, der) = pkcs8::der::pem::decode_vec(&pem[start..end])
        .map_err(|e| format!("bad PEM in the encrypted private key in {name}: {e}"))?;
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
        .map_err(|e| format!("the encrypted private key in {name} does not parse: {e}"))?;
    let wrong = || format!("cannot decrypt the private key in {name}: wrong password ({setting})?");
    let plain = info.decrypt(password).map_err(|e| match e {
        // pkcs5 0.7 reports bad padding after decryption (a wrong password) as EncryptFailed.
        pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::DecryptFailed | pkcs8::pkcs5::Error::EncryptFailed) => {
            wrong()
        }
        // A wrong password can unpad cleanly (about once in 256): what comes out is no DER.
        pkcs8::Error::Asn1(_) | pkcs8::Error::KeyMalformed => wrong(),
        e => format!("cannot decrypt the private key in {name}: {e} (supported: PBES2 with PBKDF2-HMAC-SHA-2 or scrypt, and AES-CBC)"),
    })?;
    // Or DER that is no key.
    pkcs8::PrivateKeyInfo::try_from(plain.as_bytes()).map_err(|_| wrong())?;
    Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The `ring` provider (rust-deps.md §11: lighter to build than aws-lc-rs, no cmake).
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

/// Fills `buf` from the system's secure random source (through `ring`), for SASL nonces.
pub(crate) fn random_bytes(buf: &mut [u8]) {
    if ring_provider().secure_random.fill(buf).is_err() {
        // No system randomness at all: fall back rather than fail a login (a nonce need only be
        // unpredictable to a passive observer; this still is, if less so).
        buf.iter_mut().for_each(|b| *b = fastrand::u8(..));
    }
}

#[cfg(feature = "native-roots")]
fn add_native_roots(roots: &mut RootCertStore) -> Result<()> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "cannot load some of the system's CA certificates");
    }
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    tracing::debug!(added, ignored, "system CA certificates");
    Ok(())
}

#[cfg(not(feature = "native-roots"))]
fn add_native_roots(_roots: &mut RootCertStore) -> Result<()> {
    Ok(())
}

/// The TLS settings of a client: what to trust, what to present. Cheap to clone.
///
/// A `ClientTls` and its clones share one TLS session store: after the first full handshake
/// with a server, later connections to it (reconnects of the session, the other clients and
/// frameworks given a clone, four-letter words) resume the TLS session from the ticket or id
/// the server gave, where the server allows it (ZooKeeper on Java 17 does), and skip the
/// certificate signatures and chain checks on both sides. So build one `ClientTls` per
/// configuration and clone it for every client; each [`ClientTlsBuilder::build`] starts an empty
/// store. The store holds the sessions of up to 256 servers, in memory only.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use corral_core::{Client, ClientTls};
///
/// let tls = ClientTls::builder()
///     .ca_pem_file("/etc/zookeeper/ca.pem")
///     .identity_pem_files("/etc/app/client.pem", "/etc/app/client.key") // mutual TLS
///     .build()?;
/// let client = Client::builder("zk1.internal:2281,zk2.internal:2281").tls(tls).connect().await?;
/// # client.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("client_certificate", &self.config.client_auth_cert_resolver.has_certs())
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// A builder with nothing trusted, no client certificate and hostname verification on.
    pub fn builder() -> ClientTlsBuilder {
        ClientTlsBuilder {
            cas: Vec::new(),
            native_roots: false,
            identity: None,
            key_password: None,
            verify_hostname: true,
            server_name: None,
        }
    }

    /// Uses a `rustls` client configuration as it is, for what the builder does not offer
    /// (pinned keys, other providers, session resumption settings). Its ALPN protocols should
    /// be empty: ZooKeeper negotiates none.
    pub fn from_rustls(config: Arc<ClientConfig>) -> Self {
        Self { config, server_name: None }
    }

    /// Runs the TLS handshake over a stream you opened yourself, as the client does for its
    /// own connections: the certificate is checked against `host` (or the
    /// [configured server name](ClientTlsBuilder::server_name)). For what speaks to a
    /// ZooKeeper server outside a session: four-letter words to every member of an ensemble,
    /// a health probe, a proxy.
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] with the reason said plainly: an untrusted or expired certificate, a
    /// certificate that does not name `host`, a server that refused the handshake (for
    /// example for want of a client certificate), or a connection that ended during it.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the stream, half-way through the handshake or not.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use corral_core::{ClientTls, HostPort};
    /// use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    ///
    /// # async fn ask() -> Result<(), Box<dyn std::error::Error>> {
    /// let tls = ClientTls::builder().ca_pem_file("ca.pem").build()?;
    /// let host = HostPort { host: "zk1.internal".into(), port: 2281 };
    /// let tcp = tokio::net::TcpStream::connect(("zk1.internal", 2281)).await?;
    /// let mut stream = tls.handshake(tcp, &host).await?;
    /// stream.write_all(b"srvr").await?;
    /// let mut answer = String::new();
    /// stream.read_to_string(&mut answer).await?;
    /// # Ok(()) }
    /// ```
    pub async fn handshake(&self, stream: impl AsyncStream, host: &HostPort) -> Result<BoxStream> {
        match self.wrap(Transport::Custom(Box::new(stream)), host).await {
            Ok(Transport::Custom(stream)) => Ok(stream),
            Ok(Transport::Tcp(stream)) => Ok(Box::new(stream)),
            Err(TlsFailure(reason)) => Err(Error::Tls(reason)),
        }
    }

    /// Runs the TLS handshake over `stream`, checking the certificate against `host` (or the
    /// configured server name).
    pub(crate) async fn wrap(&self, stream: Transport, host: &HostPort) -> Result<Transport, TlsFailure> {
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => ServerName::try_from(host.host.clone())
                .map_err(|e| TlsFailure(format!("{host} is not a valid TLS server name: {e}")))?,
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.config));
        let started = tokio::time::Instant::now();
        let stream = connector.connect(name, stream).await.map_err(|e| TlsFailure(describe(&e)))?;
        // Resumed: the server took a session ticket or id from an earlier handshake of this
        // `ClientTls` (and its clones), and no certificate was sent or checked this time.
        let (_, session) = stream.get_ref();
        let resumed = session.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        metrics::counter!(crate::metrics::TLS_HANDSHAKES_TOTAL, "resumed" => if resumed { "true" } else { "false" })
            .increment(1);
        tracing::debug!(
            %host,
            resumed,
            version = ?session.protocol_version(),
            suite = ?session.negotiated_cipher_suite().map(|s| s.suite()),
            elapsed = ?started.elapsed(),
            "TLS handshake done"
        );
        Ok(Transport::Custom(Box::new(stream)))
    }
}

/// A TLS failure, said plainly.
#[derive(Debug)]
pub(crate) struct TlsFailure(pub(crate) String);

/// The message of an I/O error from a TLS stream, with the certificate problem spelled out.
pub(crate) fn describe(e: &std::io::Error) -> String {
    match tls_error(e) {
        Some(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
            "the server's certificate is not signed by a trusted CA (unknown issuer)".into()
        }
        Some(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => format!("the server's certificate does not name the host connected to ({e})"),
        Some(rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        )) => {
            format!("the server's certificate has expired ({e})")
        }
        Some(rustls::Error::AlertReceived(alert)) => {
            format!("the server refused the TLS handshake ({alert:?}); does it require a client certificate?")
        }
        Some(other) => format!("TLS: {other}"),
        None => format!("TLS handshake failed: {e}"),
    }
}

/// The `rustls` error inside an I/O error of a TLS stream, if that is what it is.
pub(crate) fn tls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// The verifier without the hostname check: the chain, dates and signatures still count.
#[derive(Debug)]
struct AnyHostname(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostname {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain and dates before the name, so a name error means all else passed.
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_exchange_prefers_x25519() {
        let groups: Vec<_> = super::ring_provider().kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(groups[0], rustls::NamedGroup::X25519, "{groups:?}");
    }
}
