//! Encrypted PKCS#8 private keys (`-----BEGIN ENCRYPTED PRIVATE KEY-----`, as `openssl pkcs8
//! -topk8 -v2 aes-256-cbc` or `-scrypt` writes them) with a password: the client's key for
//! mutual TLS, and the embedded server's key, from the builders, from a `zoo.cfg`
//! (`ssl.keyStore.password`, `ssl.keyStore.passwordPath`). A missing or wrong password and a
//! damaged block are clear errors.
//!
//! The keys are encrypted by the `openssl` command; without it the tests skip, except under
//! `CI=true`, where they fail.

mod certs;

use std::io::Write as _;
use std::process::{Command, Stdio};

use certs::Ca;
use corral_core::{Client, ClientTls, Error};
use corral_server::testing::TestingServer;
use corral_server::{ClientAuth, Server, ServerTls};

const PASSWORD: &str = "correct horse";

/// `key` (PEM) encrypted by `openssl pkcs8 -topk8 <scheme...>` with `password`, or `None` (after
/// a `skipping:` line) without openssl.
fn encrypt(key: &str, scheme: &[&str], password: &str) -> Option<String> {
    let child = Command::new("openssl")
        .args(["pkcs8", "-topk8", "-passout", "stdin"])
        .args(scheme)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
            assert!(!ci, "CI is set, but openssl cannot run: {e}");
            let _ = std::io::stderr().write_all(format!("skipping: no openssl to encrypt keys ({e})\n").as_bytes());
            return None;
        }
    };
    // The password line first (-passout stdin), then the key.
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(format!("{password}\n{key}").as_bytes()).expect("write to openssl");
    drop(stdin);
    let out = child.wait_with_output().expect("openssl");
    assert!(out.status.success(), "openssl pkcs8 failed: {}", String::from_utf8_lossy(&out.stderr));
    let pem = String::from_utf8(out.stdout).expect("PEM");
    assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"), "{pem}");
    Some(pem)
}

const AES: &[&str] = &["-v2", "aes-256-cbc"];

fn tls_error(err: Error) -> String {
    match err {
        Error::Tls(message) => message,
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

fn server_tls_error(err: corral_server::Error) -> String {
    match err {
        corral_server::Error::Tls(message) => message,
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[tokio::test]
async fn client_key_encrypted_with_aes_256_cbc_logs_in_by_certificate() {
    let ca = Ca::new("test CA");
    let alice = ca.client("alice");
    let Some(encrypted) = encrypt(&alice.key, AES, PASSWORD) else { return };
    let leaf = ca.server(&["127.0.0.1"]);
    let tls = ServerTls::builder(&leaf.cert, &leaf.key).client_ca_pem(&ca.pem).client_auth(ClientAuth::Need);
    let server =
        TestingServer::with_builder(Server::builder().tls(tls.build().expect("server TLS"))).await.expect("server");
    let secure = server.secure_addr().expect("secure port").to_string();

    let tls = ClientTls::builder()
        .ca_pem(&ca.pem)
        .identity_pem(&alice.cert, &encrypted)
        .key_password(PASSWORD)
        .build()
        .expect("the encrypted key, decrypted");
    let client = Client::builder(&secure).tls(tls).connect().await.expect("connect with mutual TLS");
    let me = client.who_am_i().await.expect("whoami");
    assert!(me.iter().any(|id| id.auth_scheme == "x509" && id.user == "CN=alice,O=Corral Tests"), "{me:?}");
    client.close().await;
}

#[tokio::test]
async fn client_key_encrypted_with_scrypt_from_files() {
    let ca = Ca::new("test CA");
    let alice = ca.client("alice");
    let Some(encrypted) = encrypt(&alice.key, &["-scrypt"], PASSWORD) else { return };
    let dir = certs::temp_dir("encrypted-key");
    let cert = certs::write(&dir, "alice.pem", &alice.cert);
    let key = certs::write(&dir, "alice.key", &encrypted);
    let built = ClientTls::builder().ca_pem(&ca.pem).identity_pem_files(&cert, &key).key_password(PASSWORD).build();
    built.expect("a scrypt-encrypted key");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn client_key_without_or_with_a_wrong_password_is_a_clear_error() {
    let ca = Ca::new("test CA");
    let alice = ca.client("alice");
    let Some(encrypted) = encrypt(&alice.key, AES, PASSWORD) else { return };
    let builder = ClientTls::builder().ca_pem(&ca.pem).identity_pem(&alice.cert, &encrypted);

    let message = tls_error(builder.clone().build().expect_err("no password"));
    assert!(message.contains("is encrypted: give its password (key_password)"), "{message}");
    let message = tls_error(builder.clone().key_password("wrong horse").build().expect_err("wrong password"));
    assert!(message.contains("wrong password"), "{message}");
    // More wrong passwords (one in about 256 unpads cleanly, and is refused when what comes
    // out is no key).
    for i in 0..8 {
        let err = builder.clone().key_password(format!("guess {i}")).build().expect_err("wrong password");
        assert!(tls_error(err).contains("wrong password"));
    }
    // A password on an unencrypted key is ignored, as ZooKeeper does.
    ClientTls::builder()
        .ca_pem(&ca.pem)
        .identity_pem(&alice.cert, &alice.key)
        .key_password("x")
        .build()
        .expect("plain key");
}

#[test]
fn damaged_encrypted_blocks_are_clear_errors() {
    let ca = Ca::new("test CA");
    let alice = ca.client("alice");
    let begin = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    let end = "-----END ENCRYPTED PRIVATE KEY-----";
    let cases = [
        (format!("{begin}\nMIIB\n"), "no END line"),
        (format!("{begin}\n!!!not base64!!!\n{end}\n"), "bad PEM"),
        (format!("{begin}\nMAA=\n{end}\n"), "does not parse"),
        // A PBES1 (MD5/DES) key: parsed, not supported.
        (format!("{begin}\nMCkwGwYJKoZIhvcNAQUDMA4ECAECAwQFBgcIAgIIAAQKAAAAAAAAAAAAAA==\n{end}\n"), "cannot decrypt"),
    ];
    for (pem, expected) in cases {
        let err = ClientTls::builder().ca_pem(&ca.pem).identity_pem(&alice.cert, &pem).key_password("x").build();
        let message = tls_error(err.expect_err("a damaged key"));
        assert!(message.contains(expected), "{pem:?}: {message}");
        let err = ServerTls::builder(&alice.cert, &pem).key_password("x").build();
        let message = server_tls_error(err.expect_err("a damaged key"));
        assert!(message.contains(expected), "{pem:?}: {message}");
    }
}

#[tokio::test]
async fn server_key_encrypted_serves_tls() {
    let ca = Ca::new("test CA");
    let leaf = ca.server(&["127.0.0.1"]);
    let Some(encrypted) = encrypt(&leaf.key, AES, PASSWORD) else { return };

    let message = server_tls_error(ServerTls::builder(&leaf.cert, &encrypted).build().expect_err("no password"));
    assert!(message.contains("is encrypted"), "{message}");
    let wrong = ServerTls::builder(&leaf.cert, &encrypted).key_password("wrong").build();
    assert!(server_tls_error(wrong.expect_err("wrong password")).contains("wrong password"));

    let tls = ServerTls::builder(&leaf.cert, &encrypted).key_password(PASSWORD).build().expect("server TLS");
    let server = TestingServer::with_builder(Server::builder().tls(tls)).await.expect("server");
    let secure = server.secure_addr().expect("secure port").to_string();
    let tls = ClientTls::builder().ca_pem(&ca.pem).build().expect("client TLS");
    let client = Client::builder(&secure).tls(tls).connect().await.expect("connect over TLS");
    assert!(client.exists("/").await.expect("exists").is_some());
    client.close().await;
}

#[tokio::test]
async fn zoo_cfg_key_store_password_and_password_path() {
    let ca = Ca::new("test CA");
    let leaf = ca.server(&["127.0.0.1"]);
    let Some(encrypted) = encrypt(&leaf.key, AES, PASSWORD) else { return };
    let dir = certs::temp_dir("zoo-cfg-password");
    // ZooKeeper's single-file PEM key store: the (encrypted) key, then the certificate.
    certs::write(&dir, "server.pem", &format!("{encrypted}{}", leaf.cert));
    certs::write(&dir, "password.txt", &format!("{PASSWORD}\n"));
    let base = "clientPort=0\nsecureClientPort=0\nssl.keyStore.location=server.pem\nssl.keyStore.type=PEM\n";
    let tls = ClientTls::builder().ca_pem(&ca.pem).build().expect("client TLS");

    for password in [format!("ssl.keyStore.password={PASSWORD}"), "ssl.keyStore.passwordPath=password.txt".to_owned()] {
        let (builder, ignored) = Server::builder().zoo_cfg(&format!("{base}{password}\n"), &dir).expect("zoo.cfg");
        assert!(ignored.is_empty(), "{ignored:?}");
        let server = TestingServer::with_builder(builder).await.expect("server");
        let secure = server.secure_addr().expect("secure port").to_string();
        let client = Client::builder(&secure).tls(tls.clone()).connect().await.expect("connect over TLS");
        client.close().await;
    }
    let wrong = Server::builder().zoo_cfg(&format!("{base}ssl.keyStore.password=nope\n"), &dir);
    let Err(corral_server::Error::Tls(message)) = wrong else { panic!("a wrong password in zoo.cfg was accepted") };
    assert!(message.contains("wrong password"), "{message}");
    let missing = Server::builder().zoo_cfg(&format!("{base}ssl.keyStore.passwordPath=nope.txt\n"), &dir);
    let Err(corral_server::Error::Config(message)) = missing else { panic!("a missing password file was accepted") };
    assert!(message.contains("nope.txt"), "{message}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A wrong password whose decryption happens to unpad cleanly (about one key in 256) yields
/// bytes that are not DER. Made on purpose here: garbage encrypted under the password given,
/// so that decrypting it "succeeds" into no key. Both sides must still say "wrong password"
/// (the random salt of `openssl pkcs8` made `server_key_encrypted_serves_tls` meet this case
/// once in a CI-equivalent run).
#[test]
fn a_wrong_password_that_unpads_cleanly_is_still_a_wrong_password() {
    use pkcs8::der::Encode as _;
    use pkcs8::der::pem::{LineEnding, PemLabel as _};
    let ca = Ca::new("test CA");
    let leaf = ca.server(&["127.0.0.1"]);
    let (salt, iv) = ([7u8; 16], [9u8; 16]);
    let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(1, &salt, &iv).expect("PBES2 parameters");
    let scheme = pkcs8::pkcs5::EncryptionScheme::from(params);
    let garbage = scheme.encrypt(PASSWORD, &[0xFF; 40]).expect("encrypt");
    let info = pkcs8::EncryptedPrivateKeyInfo { encryption_algorithm: scheme, encrypted_data: &garbage };
    let der = info.to_der().expect("DER");
    let pem =
        pkcs8::der::pem::encode_string(pkcs8::EncryptedPrivateKeyInfo::PEM_LABEL, LineEnding::LF, &der).expect("PEM");

    let client = ClientTls::builder().ca_pem(&ca.pem).identity_pem(&leaf.cert, &pem).key_password(PASSWORD).build();
    let message = tls_error(client.expect_err("no key in the block"));
    assert!(message.contains("wrong password"), "{message}");
    let server = ServerTls::builder(&leaf.cert, &pem).key_password(PASSWORD).build();
    let message = server_tls_error(server.expect_err("no key in the block"));
    assert!(message.contains("wrong password"), "{message}");
}
