//! Curator 5.4 (on ZooKeeper's Java client) and Corral side by side on the embedded server's
//! secured doors: its TLS port (Java's Netty client socket, `zookeeper.client.secure=true`,
//! `zookeeper.ssl.*` PEM stores made by the test), with mutual TLS (`x509` ids) or with SASL
//! DIGEST-MD5 (a JAAS `Client` section) on top. Both libraries share one mutex on the same
//! nodes, and each one's ACL (`x509:` or `sasl:`) holds against the other.
//!
//! The Java side is `tests/java/CuratorSecuredPeer.java`, run as the other Curator peers
//! (`common::java_peer`): without Java or the jars the tests skip, except under `CI=true`.

#[path = "../../core/tests/certs/mod.rs"]
mod certs;
mod common;
#[path = "common/settle.rs"]
mod settle;

use std::path::Path;
use std::time::Duration;

use corral_recipes::framework::Create;
use corral_recipes::lock::Mutex;
use corral_recipes::{
    Acl, AclProvider, Client, ClientTls, CreateMode, ErrorCode, Framework, Id, Perms, RetryNTimes, Sasl,
};
use corral_server::testing::TestingServer;
use corral_server::{SaslUsers, Server, ServerTls};

use certs::Ca;
use common::java_peer::{self, Java, PeerSpec, name_of, unhex, within};

const SPEC: PeerSpec = PeerSpec {
    class: "CuratorSecuredPeer",
    jars: &[
        java_peer::CURATOR_RECIPES_JARS,
        // The Netty client socket: codec and resolver are not in zookeeper.jar's Class-Path.
        &["netty-codec.jar", "netty-resolver.jar"],
    ],
    packages: "libcurator-recipes-java zookeeper libslf4j-java libnetty-java",
    tests: "Curator secured interop tests",
    cache: "curator-secured-peer",
};

const X509_RUST: &str = "CN=rust,O=Corral Tests";
const X509_JAVA: &str = "CN=java,O=Corral Tests";

fn java() -> Option<&'static Java> {
    java_peer::java(&SPEC)
}

/// The creator may do anything, everyone else may only read (Curator's `ACLProvider` shape).
#[derive(Debug)]
struct OwnerWritesWorldReads;

impl AclProvider for OwnerWritesWorldReads {
    fn default_acl(&self) -> Vec<Acl> {
        vec![Acl::new(Perms::ALL, Id::authenticated()), Acl::new(Perms::READ, Id::anyone())]
    }
}

/// Sets a system property of the Java peer (before its `connect`).
async fn prop(peer: &mut java_peer::Peer, key: &str, value: &str) {
    assert!(!value.contains(' '), "{value:?}: the peer's commands are split at spaces");
    peer.send(&format!("prop {key} {value}"));
    peer.expect(&format!("PROP {key}")).await;
}

/// The Java client's TLS settings: the Netty socket, the CA bundle, and (for mutual TLS) a
/// single-file PEM key store, key then certificate, as ZooKeeper reads it.
async fn java_tls(peer: &mut java_peer::Peer, trust: &Path, key_store: Option<&Path>) {
    prop(peer, "zookeeper.clientCnxnSocket", "org.apache.zookeeper.ClientCnxnSocketNetty").await;
    prop(peer, "zookeeper.client.secure", "true").await;
    prop(peer, "zookeeper.ssl.trustStore.location", &trust.display().to_string()).await;
    prop(peer, "zookeeper.ssl.trustStore.type", "PEM").await;
    if let Some(key_store) = key_store {
        prop(peer, "zookeeper.ssl.keyStore.location", &key_store.display().to_string()).await;
        prop(peer, "zookeeper.ssl.keyStore.type", "PEM").await;
    }
}

/// Sends a node command to the peer and returns its outcome: `OK[ <hex>]` or an error code
/// name (`NOAUTH`, ...).
async fn java_op(peer: &mut java_peer::Peer, op: &str, path: &str, rest: &str) -> String {
    let command = if rest.is_empty() { format!("{op} {path}") } else { format!("{op} {path} {rest}") };
    peer.send(&command);
    let line = peer.expect(&format!("RESULT {op} {path}")).await;
    line.splitn(4, ' ').nth(3).unwrap_or_default().to_owned()
}

async fn java_connect(peer: &mut java_peer::Peer, hosts: &str) {
    peer.send(&format!("connect {hosts}"));
    peer.expect("CONNECTED").await;
}

async fn java_whoami(peer: &mut java_peer::Peer) -> String {
    peer.send("whoami");
    peer.expect("WHOAMI").await
}

fn framework(hosts: &str, tls: ClientTls, sasl: Option<Sasl>) -> Framework {
    let builder = Framework::builder(hosts)
        .session_timeout(Duration::from_secs(10))
        .connection_timeout(Duration::from_secs(10))
        .retry_policy(RetryNTimes::new(20, Duration::from_millis(50)))
        .tls(tls)
        .acl_provider(OwnerWritesWorldReads);
    let builder = match sasl {
        Some(sasl) => builder.sasl(sasl),
        None => builder,
    };
    builder.start().expect("framework")
}

/// Rust holds the mutex at `lock`, Curator queues behind it, a second Rust contender behind
/// Curator: one queue in one order for both libraries, the lock passes Rust → Curator → Rust,
/// and Curator may read, but not change, the nodes Corral's ACL provider made (`owner` has all
/// rights on them, the world may read).
async fn mutex_handoff(fw: &Framework, peer: &mut java_peer::Peer, lock: &str, owner: &Id) {
    let a = Mutex::new(fw, lock).with_data("rust-a");
    let guard_a = within("rust-a acquires", a.acquire()).await.expect("acquire");
    peer.send(&format!("acquire java {lock}"));
    common::eventually("Curator queued", || async { a.participant_nodes().await.unwrap().len() == 2 }).await;
    let b = Mutex::new(fw, lock).with_data("rust-b");
    let waiter = tokio::spawn(async move { b.acquire().await });
    common::eventually("rust-b queued", || async { a.participant_nodes().await.unwrap().len() == 3 }).await;

    let rust_order = a.participant_nodes().await.unwrap();
    peer.send(&format!("nodes {lock} lock-"));
    let line = peer.expect(&format!("NODES {lock}")).await;
    let java_order: Vec<&str> = line.split(' ').skip(2).filter_map(|e| e.split(':').next()).collect();
    assert_eq!(java_order, rust_order, "Curator and Corral order the lock queue alike");
    assert_eq!(rust_order[0], name_of(guard_a.path()));

    // Corral's lock node: readable by Curator, not writable, with the provider's ACL.
    let held = guard_a.path().to_owned();
    let read = java_op(peer, "get", &held, "").await;
    assert_eq!(read.strip_prefix("OK ").map(unhex), Some(b"rust-a".to_vec()), "{read}");
    assert_eq!(java_op(peer, "set", &held, "stolen").await, "NOAUTH", "Curator overwrote Corral's lock node");
    peer.send(&format!("acl {held}"));
    let acl = peer.expect(&format!("ACL {held}")).await;
    let mut entries: Vec<&str> = acl.splitn(3, ' ').nth(2).unwrap_or_default().split(';').collect();
    entries.sort_unstable();
    let mine = format!("{}:{}:31", owner.scheme, owner.id);
    let mut expected = [mine.as_str(), "world:anyone:1"];
    expected.sort_unstable();
    assert_eq!(entries, expected, "the ACL Curator sees on Corral's lock node");

    guard_a.release().await.expect("release");
    let acquired = peer.expect("ACQUIRED java").await;
    assert_eq!(acquired.split(' ').nth(2), Some(rust_order[1].as_str()), "Curator got the lock next");
    settle::settled(&fw.client(), 1).await;
    assert!(!waiter.is_finished(), "rust-b acquired while Curator held the lock");
    peer.send("release java");
    peer.expect("RELEASED java").await;
    let guard_b = within("rust-b acquires after Curator", waiter).await.expect("task").expect("acquire");
    assert_eq!(name_of(guard_b.path()), rust_order[2]);
    guard_b.release().await.expect("release");
    common::eventually("every lock node gone", || async { a.participant_nodes().await.unwrap().is_empty() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn curator_and_corral_share_a_mutex_over_mutual_tls() {
    let Some(java) = java() else { return };
    let ca = Ca::new("test CA");
    let server = certs::mutual_tls_server(&ca).await;
    let secure = server.secure_addr().expect("secure port").to_string();
    let dir = certs::temp_dir("curator-tls");
    let java_leaf = ca.client("java");
    let key_store = certs::write(&dir, "java.pem", &format!("{}{}", java_leaf.key, java_leaf.cert));
    let trust = certs::write(&dir, "ca.pem", &ca.pem);

    // The lock's parent, open to both (made on the plain port, by nobody in particular).
    let root = Client::connect(&server.connect_string()).await.expect("plain client");
    root.create("/tls", "", CreateMode::Persistent).await.expect("create");
    root.create("/tls/lock", "", CreateMode::Persistent).await.expect("create");

    let mut peer = java_peer::Peer::start(java).await;
    java_tls(&mut peer, &trust, Some(&key_store)).await;
    java_connect(&mut peer, &secure).await;
    let java_ids = java_whoami(&mut peer).await;
    let expected = format!("x509:{X509_JAVA}");
    assert!(java_ids.trim_start_matches("WHOAMI ").split(';').any(|id| id == expected), "{java_ids}");

    let rust_leaf = ca.client("rust");
    let client_tls = ClientTls::builder().ca_pem(&ca.pem).identity_pem(&rust_leaf.cert, &rust_leaf.key).build();
    let fw = framework(&secure, client_tls.expect("client TLS"), None);
    fw.wait_until_connected(Duration::from_secs(10)).await.expect("connected over TLS");
    let me = fw.client().who_am_i().await.expect("whoami");
    assert!(me.iter().any(|id| id.auth_scheme == "x509" && id.user == X509_RUST), "{me:?}");

    mutex_handoff(&fw, &mut peer, "/tls/lock", &Id::new("x509", X509_RUST)).await;

    // x509 ACLs both ways: each side's private node is closed to the other.
    let rust_only =
        Create::new(CreateMode::Persistent).with_acl(vec![Acl::new(Perms::ALL, Id::new("x509", X509_RUST))]);
    fw.create("/tls/rust-only", "r", rust_only).await.expect("create");
    assert_eq!(java_op(&mut peer, "get", "/tls/rust-only", "").await, "NOAUTH");
    let java_acl = format!("x509:{}:cdrwa;world:anyone:r", X509_JAVA.replace(' ', "+"));
    assert_eq!(java_op(&mut peer, "create", "/tls/java-only", &format!("{java_acl} j")).await, "OK");
    assert_eq!(&fw.client().get_data("/tls/java-only").await.expect("world may read").0[..], b"j");
    let err = fw.set_data("/tls/java-only", "r", None).await.expect_err("Corral may not write Java's node");
    assert_eq!(err.code(), ErrorCode::NoAuth);
    assert_eq!(java_op(&mut peer, "set", "/tls/java-only", "j2").await, "OK");

    peer.disconnect().await;
    peer.quit().await;
    fw.close().await;
    root.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn curator_and_corral_share_a_mutex_with_sasl_digest_over_tls() {
    let Some(java) = java() else { return };
    let ca = Ca::new("test CA");
    let leaf = ca.server(&["127.0.0.1", "localhost"]);
    let tls = ServerTls::builder(&leaf.cert, &leaf.key).build().expect("server TLS");
    let users = SaslUsers::new().user("alice", "alicesecret").user("bob", "bobsecret");
    let server = TestingServer::with_builder(Server::builder().tls(tls).sasl_users(users)).await.expect("server");
    let secure = server.secure_addr().expect("secure port").to_string();
    let dir = certs::temp_dir("curator-sasl");
    let trust = certs::write(&dir, "ca.pem", &ca.pem);
    let jaas = certs::write(
        &dir,
        "jaas.conf",
        "Client {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  \
         username=\"bob\"\n  password=\"bobsecret\";\n};\n",
    );

    // The lock's parent: alice may do anything, bob may queue (create, delete his own node,
    // read); the world, nothing.
    let root = Client::connect(&server.connect_string()).await.expect("plain client");
    root.create("/sasl", "", CreateMode::Persistent).await.expect("create");
    let lock_acl = vec![
        Acl::new(Perms::ALL, Id::new("sasl", "alice")),
        Acl::new(Perms::CREATE | Perms::DELETE | Perms::READ, Id::new("sasl", "bob")),
    ];
    root.create("/sasl/lock", "", corral_recipes::CreateOptions::from(CreateMode::Persistent).with_acl(lock_acl))
        .await
        .expect("create");
    let err = root.create("/sasl/lock/x", "", CreateMode::Ephemeral).await.expect_err("the world may not queue");
    assert_eq!(err.code(), ErrorCode::NoAuth);

    let mut peer = java_peer::Peer::start(java).await;
    java_tls(&mut peer, &trust, None).await;
    prop(&mut peer, "java.security.auth.login.config", &jaas.display().to_string()).await;
    java_connect(&mut peer, &secure).await;
    let java_ids = java_whoami(&mut peer).await;
    assert!(java_ids.trim_start_matches("WHOAMI ").split(';').any(|id| id == "sasl:bob"), "{java_ids}");

    let client_tls = ClientTls::builder().ca_pem(&ca.pem).build().expect("client TLS");
    let fw = framework(&secure, client_tls, Some(Sasl::digest_md5("alice", "alicesecret")));
    fw.wait_until_connected(Duration::from_secs(10)).await.expect("connected over TLS with SASL");
    let me = fw.client().who_am_i().await.expect("whoami");
    assert!(me.iter().any(|id| id.auth_scheme == "sasl" && id.user == "alice"), "{me:?}");

    mutex_handoff(&fw, &mut peer, "/sasl/lock", &Id::new("sasl", "alice")).await;

    // sasl ACLs both ways.
    let alice_only = Create::new(CreateMode::Persistent).with_acl(vec![Acl::new(Perms::ALL, Id::new("sasl", "alice"))]);
    fw.create("/sasl/alice-only", "a", alice_only).await.expect("create");
    assert_eq!(java_op(&mut peer, "get", "/sasl/alice-only", "").await, "NOAUTH");
    assert_eq!(java_op(&mut peer, "create", "/sasl/bob-only", "sasl:bob:cdrwa b").await, "OK");
    let err = fw.client().get_data("/sasl/bob-only").await.expect_err("alice may not read bob's node");
    assert_eq!(err.code(), ErrorCode::NoAuth);
    assert_eq!(java_op(&mut peer, "get", "/sasl/bob-only", "").await, format!("OK {}", java_peer::hex(b"b")));

    peer.disconnect().await;
    peer.quit().await;
    fw.close().await;
    root.close().await;
    let _ = std::fs::remove_dir_all(dir);
}
