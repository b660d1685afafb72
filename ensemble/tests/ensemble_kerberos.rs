//! The fenced mutex on a real 3-member ensemble whose members accept Kerberos logins (SASL
//! GSSAPI against an MIT KDC on loopback, both started by the test; one service principal
//! `zookeeper/localhost` for all three). Three Corral contenders log in with Kerberos from
//! their own environment (`KRB5_CONFIG`, a client keytab, a ticket cache of their own) and
//! create their lock nodes for `sasl:client@REALM` alone. Through a leader kill and a follower
//! kill they log in again on every new connection: the write log shows 0 violations.
//!
//! Needs the `gssapi` feature (`cargo test -p corral-ensemble-tests --features gssapi --test
//! ensemble_kerberos`, as .ci/run runs it); skips (or fails under `CI=true`) without Java,
//! Debian's ZooKeeper or MIT Kerberos.

#![cfg(feature = "gssapi")]

mod common;

use corral_test_support::kdc;

use common::{PROGRESS_WAIT, Workload, blocking};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensemble_mutex_with_kerberos_logins_through_member_kills() {
    let Some(kdc) = blocking(kdc) else { return };
    let service_keytab = kdc.add_principal("zookeeper/localhost").expect("service principal");
    let client_keytab = kdc.add_principal("client").expect("client principal");
    let jaas = kdc.dir().join("jaas.conf");
    std::fs::write(&jaas, kdc.jaas_server("zookeeper/localhost", &service_keytab)).expect("JAAS file");
    let krb5_conf = kdc.krb5_conf();
    let kerberos = |builder: corral_test_support::EnsembleBuilder| builder.jaas(&jaas).krb5_conf(&krb5_conf);
    let Some(mut w) = Workload::start_with("kerberos", kerberos).await else { return };

    // The service principal is zookeeper/<host as the connect string names it>.
    let connect = w.connect().replace("127.0.0.1", "localhost");
    let extra = ["writes=3", "gap_ms=20", "sasl=gssapi", "acl=creator"];
    let mut contenders: Vec<_> = (1..=3)
        .map(|i| {
            let env = kdc.client_env("client", &client_keytab).expect("a Kerberos environment");
            w.contender_with_env(&format!("k{i}"), "mutex", &connect, &extra, &env)
        })
        .collect();
    w.progress(10, PROGRESS_WAIT, "the start").await;

    // One round of member kills; ten with CORRAL_ENSEMBLE_LONG.
    for _ in 0..if corral_ensemble_tests::long_mode() { 10 } else { 1 } {
        w.leader_kill().await;
        w.follower_kill().await;
    }

    // The contenders' lock nodes belong to the Kerberos principal.
    let principal = format!("client@{}", kdc.realm());
    common::assert_lock_nodes_owned(&w.fw.client(), "sasl", &principal).await;

    let history = w.finish(&mut contenders).await;
    assert!(history.entries.len() >= 16, "{} writes", history.entries.len());
}
