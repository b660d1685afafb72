//! The fenced mutex on a secured 3-member ensemble: every member has a Netty TLS port beside
//! its plain one and SASL DIGEST-MD5 users from a JAAS file. Three Corral contenders connect
//! to the TLS ports only, log in with SASL and create every node for their user alone
//! (`world:anyone` may read). Through a leader kill and a follower kill the contenders move to
//! other members (a TLS handshake and a SASL login on each new connection) and the write log
//! shows 0 violations; every node of the workload carries the provider's ACL, and a client
//! without the login can neither touch the counter nor queue for the lock.

#[path = "../../core/tests/certs/mod.rs"]
mod certs;
mod common;

use common::{PROGRESS_WAIT, ROOT, Workload};
use corral_ensemble_tests::fenced::{COUNTER, LOCK};
use corral_recipes::{Acl, AclProvider, Client, CreateMode, ErrorCode, FrameworkBuilder, Id, Perms, Sasl};
use corral_test_support::ZkTls;

const JAAS: &str = r#"
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_app="app-secret";
};
"#;

/// Everything for the logged-in user, and reading for anyone.
#[derive(Debug)]
struct CreatorWritesWorldReads;

impl AclProvider for CreatorWritesWorldReads {
    fn default_acl(&self) -> Vec<Acl> {
        vec![Acl::new(Perms::ALL, Id::authenticated()), Acl::new(Perms::READ, Id::anyone())]
    }
}

fn login(builder: FrameworkBuilder) -> FrameworkBuilder {
    builder.sasl(Sasl::digest_md5("app", "app-secret")).acl_provider(CreatorWritesWorldReads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensemble_mutex_over_tls_and_sasl_with_acls() {
    let ca = certs::Ca::new("ensemble CA");
    let leaf = ca.server(&["127.0.0.1", "localhost"]);
    let dir = certs::temp_dir("ensemble-secured");
    let key_and_cert = certs::write(&dir, "server.pem", &format!("{}{}", leaf.key, leaf.cert));
    let trust = certs::write(&dir, "ca.pem", &ca.pem);
    let jaas = certs::write(&dir, "jaas.conf", JAAS);
    let tls = ZkTls { key_and_cert, trust: trust.clone(), client_auth: "none".to_owned() };
    let secured = |builder: corral_test_support::EnsembleBuilder| builder.tls(tls).jaas(&jaas);
    let Some(mut w) = Workload::start_secured("secured", secured, login).await else { return };

    let connect = w.secure_connect().expect("the members' TLS ports");
    let ca_arg = format!("tls_ca={}", trust.display());
    let extra = ["writes=3", "gap_ms=20", &ca_arg, "sasl=app:app-secret", "acl=creator"];
    let mut contenders: Vec<_> = (1..=3).map(|i| w.contender(&format!("s{i}"), "mutex", &connect, &extra)).collect();
    w.progress(10, PROGRESS_WAIT, "the start").await;

    // The leader dies: the contenders on it reconnect elsewhere, over TLS, with their login.
    // One round of member kills; ten with CORRAL_ENSEMBLE_LONG.
    for _ in 0..if corral_ensemble_tests::long_mode() { 10 } else { 1 } {
        w.leader_kill().await;
        w.follower_kill().await;
    }

    // A stranger (no login, a plain port) reads, but writes nothing of the workload's.
    let stranger = Client::connect(&format!("{}{ROOT}", w.zk.connect_string())).await.expect("a plain client");
    for path in ["/", COUNTER, LOCK] {
        let (acl, _) = stranger.get_acl(path).await.expect("the ACL");
        common::assert_owned(&format!("{ROOT}{path}"), &acl, "sasl", "app");
    }
    // The contenders' lock nodes too.
    common::assert_lock_nodes_owned(&stranger, "sasl", "app").await;
    stranger.get_data(COUNTER).await.expect("anyone reads");
    let refused = stranger.set_data(COUNTER, "0", None).await.expect_err("a stranger's write");
    assert_eq!(refused.code(), ErrorCode::NoAuth);
    let refused = stranger
        .create(&format!("{LOCK}/_c_jump-lock-"), "", CreateMode::EphemeralSequential)
        .await
        .expect_err("a stranger in the lock's line");
    assert_eq!(refused.code(), ErrorCode::NoAuth);
    stranger.close().await;

    let history = w.finish(&mut contenders).await;
    assert!(history.entries.len() >= 16, "{} writes", history.entries.len());
    let _ = std::fs::remove_dir_all(dir);
}
