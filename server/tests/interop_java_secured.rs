//! ZooKeeper's own Java CLI (Debian's `zookeeper` package) against the embedded server's
//! secured doors: mutual TLS on the secure port (Netty client socket, PEM stores), where the
//! client certificate becomes an `x509` id, and SASL DIGEST-MD5 from a JAAS `Client` section.
//! Skips without Java or the jar (fails under `CI=true`), like the other Java interop tests.

#[path = "../../core/tests/certs/mod.rs"]
mod certs;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use certs::Ca;
use corral_server::testing::TestingServer;
use corral_server::{SaslUsers, Server};

const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
const EXTRA_JARS: &[&str] =
    &["/usr/share/java/slf4j-nop.jar", "/usr/share/java/netty-codec.jar", "/usr/share/java/netty-resolver.jar"];
const CLI_DEADLINE: Duration = Duration::from_secs(60);

fn java() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("java"))
        .find(|java| java.is_file())
        .filter(|_| Path::new(ZOOKEEPER_JAR).is_file());
    if found.is_none() {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1"),
            "CI is set, but ZooKeeper's Java CLI cannot run (no java or {ZOOKEEPER_JAR})"
        );
        let _ = std::io::stderr().write_all(b"skipping: ZooKeeper's Java CLI is not installed\n");
    }
    found
}

/// Runs the CLI with `props` against `server`, feeding it `script`; returns what it printed.
fn run_cli(java: &Path, props: &[String], server: &str, script: &str) -> String {
    let mut classpath = ZOOKEEPER_JAR.to_owned();
    for jar in EXTRA_JARS.iter().filter(|j| Path::new(j).is_file()) {
        classpath.push(':');
        classpath.push_str(jar);
    }
    let mut child = Command::new(java)
        .args(["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Djava.net.preferIPv4Stack=true"])
        .args(props)
        .args(["-cp", &classpath, "org.apache.zookeeper.ZooKeeperMain", "-server", server])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the Java CLI");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(format!("{script}\nquit\n").as_bytes()).expect("script");
    drop(stdin);
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + CLI_DEADLINE;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the CLI did not finish within {CLI_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    reader.join().expect("reader")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_cli_over_mutual_tls_is_identified_by_its_certificate() {
    let Some(java) = java() else { return };
    let ca = Ca::new("test CA");
    let server = certs::mutual_tls_server(&ca).await;
    let dir = certs::temp_dir("java-tls");
    let alice = ca.client("alice");
    let key_store = certs::write(&dir, "client.pem", &format!("{}{}", alice.key, alice.cert));
    let trust_store = certs::write(&dir, "ca.pem", &ca.pem);
    let props = vec![
        "-Dzookeeper.sasl.client=false".to_owned(),
        "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty".to_owned(),
        "-Dzookeeper.client.secure=true".to_owned(),
        format!("-Dzookeeper.ssl.keyStore.location={}", key_store.display()),
        "-Dzookeeper.ssl.keyStore.type=PEM".to_owned(),
        format!("-Dzookeeper.ssl.trustStore.location={}", trust_store.display()),
        "-Dzookeeper.ssl.trustStore.type=PEM".to_owned(),
    ];
    let secure = server.secure_addr().expect("secure").to_string();
    let java2 = java.clone();
    let out = tokio::task::spawn_blocking(move || {
        run_cli(&java2, &props, &secure, "create /from-java tls\nget /from-java\nwhoami")
    })
    .await
    .expect("cli");
    assert!(out.lines().any(|line| line == "tls"), "{out}");
    assert!(out.contains("x509: CN=alice,O=Corral Tests"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_cli_logs_in_with_sasl_digest_md5() {
    let Some(java) = java() else { return };
    let users = SaslUsers::new().user("bob", "bobsecret");
    let server = TestingServer::with_builder(Server::builder().sasl_users(users)).await.expect("server");
    let dir = certs::temp_dir("java-sasl");
    let jaas = certs::write(
        &dir,
        "jaas.conf",
        "Client {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  \
         username=\"bob\"\n  password=\"bobsecret\";\n};\n",
    );
    let props = vec![format!("-Djava.security.auth.login.config={}", jaas.display())];
    let addr = server.connect_string();
    let out = tokio::task::spawn_blocking(move || {
        run_cli(&java, &props, &addr, "create /bob x sasl:bob:cdrwa\ngetAcl /bob\nget /bob\nwhoami")
    })
    .await
    .expect("cli");
    assert!(out.contains("state:SaslAuthenticated"), "{out}");
    assert!(out.contains("'sasl,'bob"), "{out}");
    assert!(out.contains("sasl: bob"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}
