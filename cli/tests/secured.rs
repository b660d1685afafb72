//! The `corral` command on a secured server: TLS (with and without a client certificate) and a
//! SASL DIGEST-MD5 login, and clear errors when the settings do not fit.

mod common;

#[path = "../../core/tests/certs/mod.rs"]
mod certs;

use std::process::Stdio;

use common::{command, corral};
use corral_server::testing::TestingServer;
use corral_server::{SaslUsers, Server};

fn write(dir: &std::path::Path, name: &str, pem: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, pem).expect("write PEM");
    path.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_over_mutual_tls() {
    let ca = certs::Ca::new("cli test CA");
    let alice = ca.client("alice");
    let server = certs::mutual_tls_server(&ca).await;
    let secure = server.secure_addr().expect("secure port").to_string();
    let dir = certs::temp_dir("cli-tls");
    let ca_file = write(&dir, "ca.pem", &ca.pem);
    let (cert, key) = (write(&dir, "alice.pem", &alice.cert), write(&dir, "alice.key", &alice.key));

    let tls = ["--tls-ca", &ca_file, "--tls-cert", &cert, "--tls-key", &key];
    let created = corral(&secure, &[&tls[..], &["create", "/secured", "over TLS"]].concat());
    assert_eq!(created.code, 0, "{created:?}");
    let got = corral(&secure, &[&tls[..], &["--json", "get", "/secured"]].concat()).json();
    assert_eq!(got["data"], "over TLS", "{got}");

    // Without the client certificate the server refuses: a connection error, not a hang.
    let refused = corral(&secure, &["--tls-ca", &ca_file, "get", "/secured"]);
    assert_eq!(refused.code, 4, "{refused:?}");
    // Four-letter words go over TLS too: the secure port answers `health` and `sessions`.
    let health = corral(&secure, &[&tls[..], &["--json", "health"]].concat()).json();
    let host = &health["hosts"][0];
    assert_eq!(host["status"], "ok", "{health}");
    assert_eq!(host["ruok"], true, "{health}");
    assert_eq!(host["mode"], "standalone", "{health}");
    let sessions = corral(&secure, &[&tls[..], &["--json", "sessions"]].concat());
    assert_eq!(sessions.code, 0, "{sessions:?}");
    // Without the client certificate the words are refused like everything else, per host.
    let refused = corral(&secure, &["--tls-ca", &ca_file, "--json", "health"]);
    assert_ne!(refused.code, 0, "{refused:?}");
    let doc: serde_json::Value = serde_json::from_str(&refused.stdout).expect("one JSON document");
    assert_eq!(doc["hosts"][0]["status"], "unreachable", "{refused:?}");
    // A plain client on the TLS port: no garbage, a clear per-host error.
    let plain = corral(&secure, &["--json", "health"]);
    assert_ne!(plain.code, 0, "{plain:?}");
    // A key without its certificate is refused by the argument parser.
    let partial = corral(&secure, &["--tls-ca", &ca_file, "--tls-key", &key, "get", "/secured"]);
    assert_eq!(partial.code, 2, "{partial:?}");
    let _ = std::fs::remove_dir_all(&dir);
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sasl_login_with_the_password_from_the_environment() {
    let users = SaslUsers::from_jaas(
        r#"Server { org.apache.zookeeper.server.auth.DigestLoginModule required user_bob="s3cret"; };"#,
        "Server",
    )
    .expect("JAAS");
    let server = TestingServer::with_builder(Server::builder().sasl_users(users)).await.expect("server");
    let zk = server.connect_string();

    let run = |password: Option<&str>, args: &[&str]| {
        let mut cmd = command(&zk, args);
        cmd.env_remove("CORRAL_SASL_PASSWORD");
        if let Some(p) = password {
            cmd.env("CORRAL_SASL_PASSWORD", p);
        }
        let output = cmd.stdin(Stdio::null()).output().expect("run corral");
        (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (code, stderr) = run(Some("s3cret"), &["--sasl-user", "bob", "create", "/bob", "hi"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = run(Some("wrong"), &["--sasl-user", "bob", "get", "/bob"]);
    assert_ne!(code, 0, "a wrong password is refused: {stderr}");
    let (code, stderr) = run(None, &["--sasl-user", "bob", "get", "/bob"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("CORRAL_SASL_PASSWORD"), "{stderr}");
    server.close().await;
}

/// Built without the `gssapi` feature, `--sasl-gssapi` says how to get Kerberos.
#[cfg(not(feature = "gssapi"))]
#[test]
fn kerberos_needs_the_gssapi_feature() {
    let run = corral("127.0.0.1:1", &["--sasl-gssapi", "get", "/"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--features gssapi"), "{run:?}");
}
