//! The client over TLS against a real ZooKeeper 3.8: Netty `secureClientPort` with PEM key and
//! trust stores made here, mutual TLS required. Skips (or fails under `CI=true`) without Java
//! and Debian's ZooKeeper, as every real-server test does.

mod certs;

use std::time::Duration;

use certs::Ca;
use corral_core::{Client, ClientTls, CreateMode, Error, SessionEvent, SessionState};
use corral_test_support::{FaultProxy, SecuredConfig, ZkTls, secured_zookeeper};
use futures::StreamExt;

const GIVE_UP: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_a_real_zookeeper() {
    let ca = Ca::new("test CA");
    let server_leaf = ca.server(&["127.0.0.1", "localhost"]);
    let dir = certs::temp_dir("zk-tls");
    let key_and_cert = certs::write(&dir, "server.pem", &format!("{}{}", server_leaf.key, server_leaf.cert));
    let trust = certs::write(&dir, "ca.pem", &ca.pem);
    let config = SecuredConfig {
        tls: Some(ZkTls { key_and_cert, trust, client_auth: "need".into() }),
        ..SecuredConfig::default()
    };
    let Some(zk) = secured_zookeeper(&config) else { return };
    let secure = zk.secure_addr().expect("secure port").to_string();

    let alice = ca.client("alice");
    let tls = ClientTls::builder().ca_pem(&ca.pem).identity_pem(&alice.cert, &alice.key).build().expect("TLS");

    // Plain operations, a watch across a dropped connection, four-letter words.
    let client = Client::builder(&secure).tls(tls.clone()).connect().await.expect("mutual TLS to ZooKeeper");
    client.create("/tls", "over tls", CreateMode::Persistent).await.expect("create");
    // ZooKeeper's X509AuthenticationProvider names the client by its certificate's subject,
    // exactly as the embedded server does.
    let me = client.who_am_i().await.expect("whoami");
    assert!(me.iter().any(|id| id.auth_scheme == "x509" && id.user == "CN=alice,O=Corral Tests"), "{me:?}");
    assert_eq!(&client.get_data("/tls").await.expect("get").0[..], b"over tls");
    let (_, watcher) = client.exists_and_watch("/tls/child").await.expect("watch");
    let session = client.session_id();
    client.drop_connection();
    client.create("/tls/child", "", CreateMode::Persistent).await.expect("create after the reconnect");
    assert_eq!(watcher.await.path, "/tls/child");
    assert_eq!(client.session_id(), session);
    let srvr = client.four_letter_word("srvr").await.expect("srvr over TLS");
    assert!(srvr.contains("Mode: standalone"), "{srvr}");

    // An expiry over TLS: another connection takes the session over and closes it.
    let mut events = client.session_events();
    let info = client.session();
    let thief = Client::builder(&secure).tls(tls.clone()).session(info.id, info.password).connect().await;
    let thief = thief.expect("resume the session over TLS");
    thief.close().await;
    loop {
        match tokio::time::timeout(Duration::from_secs(30), events.next()).await.expect("expiry in time") {
            Some(SessionEvent::Expired) | None => break,
            Some(_) => {}
        }
    }
    assert_eq!(*client.state().borrow(), SessionState::Expired);

    // No client certificate: refused, and said so.
    let anonymous = ClientTls::builder().ca_pem(&ca.pem).build().expect("TLS");
    let err = Client::builder(&secure).tls(anonymous).connection_timeout(GIVE_UP).connect().await.unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");

    // A server certificate from a CA the client does not trust.
    let other = Ca::new("another CA");
    let mine = other.client("mallory");
    let wrong_ca = ClientTls::builder().ca_pem(&other.pem).identity_pem(&mine.cert, &mine.key).build().expect("TLS");
    // Through a proxy that counts the connections: the client's retries are paced.
    let proxy = FaultProxy::start(zk.secure_addr().expect("secure port")).expect("proxy");
    let err = Client::builder(proxy.addr().to_string())
        .tls(wrong_ca)
        .connection_timeout(GIVE_UP)
        .connect()
        .await
        .unwrap_err();
    let Error::Tls(reason) = &err else { panic!("expected a TLS error, got {err:?}") };
    assert!(reason.contains("not signed by a trusted CA"), "{reason}");
    // Backed off (50 ms, then doubling): a handful of handshakes in two seconds, not a storm.
    let attempts = proxy.accepted();
    assert!((1..=12).contains(&attempts), "{attempts} handshakes in {GIVE_UP:?}");

    // A name the certificate does not carry.
    let port = zk.secure_addr().expect("secure").port();
    let tls_named = ClientTls::builder()
        .ca_pem(&ca.pem)
        .identity_pem(&alice.cert, &alice.key)
        .server_name("zk.elsewhere.example")
        .build()
        .expect("TLS");
    let err = Client::builder(format!("127.0.0.1:{port}"))
        .tls(tls_named)
        .connection_timeout(GIVE_UP)
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::Tls(r) if r.contains("does not name")), "{err:?}");
    let _ = std::fs::remove_dir_all(dir);
}
