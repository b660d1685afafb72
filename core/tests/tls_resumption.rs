//! TLS session resumption: a `ClientTls` and its clones share one session store, so a reconnect
//! and a second client given a clone resume the TLS session, where a `ClientTls` built anew does
//! not; against the embedded server (rustls) and a real ZooKeeper 3.8 (the JDK's `SSLEngine`
//! behind Netty). Counted by `corral_tls_handshakes_total{resumed}`, through a recorder local to
//! the test's thread (a current-thread runtime runs the clients' tasks there too).

mod certs;

use certs::Ca;
use corral_core::metrics::TLS_HANDSHAKES_TOTAL;
use corral_core::{Client, ClientTls};
use corral_server::testing::TestingServer;
use corral_server::{Server, ServerTls};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// Handshakes counted since the last call: (full, resumed).
fn handshakes(snapshotter: &Snapshotter) -> (u64, u64) {
    let (mut full, mut resumed) = (0, 0);
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let (key, DebugValue::Counter(n)) = (key.key(), value) else { continue };
        if key.name() != TLS_HANDSHAKES_TOTAL {
            continue;
        }
        match key.labels().find(|l| l.key() == "resumed").map(|l| l.value()) {
            Some("true") => resumed += n,
            Some("false") => full += n,
            other => panic!("unexpected label {other:?}"),
        }
    }
    (full, resumed)
}

/// One client, its reconnect, a client given a clone, and a client with its own `ClientTls`.
async fn resumes(secure: &str, ca: &Ca, snapshotter: &Snapshotter) {
    let tls = ClientTls::builder().ca_pem(&ca.pem).build().expect("TLS");
    let first = Client::builder(secure).tls(tls.clone()).connect().await.expect("connect");
    assert_eq!(handshakes(snapshotter), (1, 0), "the first connection is a full handshake");

    first.drop_connection();
    first.sync("/").await.expect("sync after the reconnect");
    assert_eq!(handshakes(snapshotter), (0, 1), "the reconnect resumes");

    let second = Client::builder(secure).tls(tls.clone()).connect().await.expect("connect");
    assert_eq!(handshakes(snapshotter), (0, 1), "a client given a clone resumes");

    let own = ClientTls::builder().ca_pem(&ca.pem).build().expect("TLS");
    let third = Client::builder(secure).tls(own).connect().await.expect("connect");
    assert_eq!(handshakes(snapshotter), (1, 0), "a ClientTls built anew has nothing to resume");

    for client in [first, second, third] {
        client.close().await;
    }
}

#[tokio::test]
async fn clones_resume_against_the_embedded_server() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let ca = Ca::new("test CA");
    let leaf = ca.server(&["127.0.0.1"]);
    let server_tls = ServerTls::builder(&leaf.cert, &leaf.key).build().expect("server TLS");
    let server = TestingServer::with_builder(Server::builder().tls(server_tls)).await.expect("server");
    resumes(&server.secure_addr().expect("secure port").to_string(), &ca, &snapshotter).await;
}

#[tokio::test]
async fn clones_resume_against_a_real_zookeeper() {
    let ca = Ca::new("test CA");
    let Some((zk, dir)) = certs::zookeeper_with_tls(&ca, "zk-tls-resumption", "none") else { return };

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    resumes(&zk.secure_addr().expect("secure port").to_string(), &ca, &snapshotter).await;
    let _ = std::fs::remove_dir_all(dir);
}
