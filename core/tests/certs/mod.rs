//! Certificates made at test time with `rcgen`: a CA, server and client certificates.

#![allow(dead_code, reason = "each test binary uses a part")]

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A test CA that signs server and client certificates.
pub(crate) struct Ca {
    pub(crate) pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate chain (leaf only) and its key, in PEM.
pub(crate) struct Leaf {
    pub(crate) cert: String,
    pub(crate) key: String,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca { pem: cert.pem(), issuer: Issuer::new(params, key) }
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub(crate) fn server(&self, names: &[&str]) -> Leaf {
        self.leaf(names, "server", rcgen::ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A server certificate for `names` that expired in 2020.
    pub(crate) fn expired_server(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        Leaf { cert: cert.pem(), key: key.serialize_pem() }
    }

    /// A client certificate with subject `CN=<cn>,O=Corral Tests`.
    pub(crate) fn client(&self, cn: &str) -> Leaf {
        self.leaf(&[], cn, rcgen::ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(&self, names: &[&str], cn: &str, usage: rcgen::ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        // Encoded most significant first, so the RFC 2253 form reads `CN=<cn>,O=Corral Tests`.
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::OrganizationName, "Corral Tests");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        Leaf { cert: cert.pem(), key: key.serialize_pem() }
    }
}

/// A self-signed server certificate for `names`, signed by no CA.
pub(crate) fn self_signed(names: &[&str]) -> Leaf {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(names).expect("certificate");
    Leaf { cert: cert.pem(), key: signing_key.serialize_pem() }
}

/// A fresh directory for certificate files, under the system temp dir.
pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("corral-{name}-{}-{}", std::process::id(), fastrand::u64(..)));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Writes `text` to `dir/file` and returns the path.
pub(crate) fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, text).expect("write");
    path
}

/// A real ZooKeeper 3.8 with a Netty `secureClientPort` serving a certificate of `ca` for
/// `127.0.0.1` and `localhost`, `ssl.clientAuth` as given, and the directory of its PEM files
/// (to remove after). `None` when it is skipped (no Java or ZooKeeper, never under `CI=true`).
pub(crate) fn zookeeper_with_tls(
    ca: &Ca,
    name: &str,
    client_auth: &str,
) -> Option<(corral_test_support::SecuredZookeeper, PathBuf)> {
    let leaf = ca.server(&["127.0.0.1", "localhost"]);
    let dir = temp_dir(name);
    let key_and_cert = write(&dir, "server.pem", &format!("{}{}", leaf.key, leaf.cert));
    let trust = write(&dir, "ca.pem", &ca.pem);
    let tls = corral_test_support::ZkTls { key_and_cert, trust, client_auth: client_auth.to_owned() };
    let config = corral_test_support::SecuredConfig { tls: Some(tls), ..Default::default() };
    corral_test_support::secured_zookeeper(&config).map(|zk| (zk, dir))
}

/// An embedded server whose TLS port serves a certificate of `ca` for `127.0.0.1` and
/// `localhost` and requires a client certificate of `ca` (mutual TLS).
pub(crate) async fn mutual_tls_server(ca: &Ca) -> corral_server::testing::TestingServer {
    let leaf = ca.server(&["127.0.0.1", "localhost"]);
    let tls = corral_server::ServerTls::builder(&leaf.cert, &leaf.key)
        .client_ca_pem(&ca.pem)
        .client_auth(corral_server::ClientAuth::Need)
        .build()
        .expect("server TLS");
    corral_server::testing::TestingServer::with_builder(corral_server::Server::builder().tls(tls))
        .await
        .expect("server")
}
