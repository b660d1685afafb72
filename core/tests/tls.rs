//! The client over TLS against the embedded server's secure port: plain operations, mutual
//! TLS, refused certificates, hostname checks, a reconnect within the session, four-letter
//! words, and bad input on the secure port.

mod certs;

use std::time::Duration;

use certs::{Ca, Leaf};
use corral_core::{
    Acl, Client, ClientTls, CreateMode, CreateOptions, Error, Framework, Id, Perms, SessionEvent, SessionState,
};
use corral_server::testing::{TestingCluster, TestingServer};
use corral_server::{ClientAuth, Server, ServerTls};
use corral_test_support::FaultProxy;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a client that cannot get through tries before reporting.
const GIVE_UP: Duration = Duration::from_secs(1);

async fn tls_server(ca: &Ca, server: &Leaf, client_auth: Option<ClientAuth>) -> TestingServer {
    let mut tls = ServerTls::builder(&server.cert, &server.key);
    if let Some(auth) = client_auth {
        tls = tls.client_ca_pem(&ca.pem).client_auth(auth);
    }
    let tls = tls.build().expect("server TLS");
    TestingServer::with_builder(Server::builder().tls(tls)).await.expect("server")
}

fn secure(server: &TestingServer) -> String {
    server.secure_addr().expect("secure port").to_string()
}

#[tokio::test]
async fn plain_operations_over_tls() {
    let ca = Ca::new("test CA");
    let server = tls_server(&ca, &ca.server(&["127.0.0.1", "localhost"]), None).await;
    let tls = ClientTls::builder().ca_pem(&ca.pem).build().expect("client TLS");
    let client = Client::builder(secure(&server)).tls(tls).connect().await.expect("connect over TLS");
    client.create("/tls", "secret", CreateMode::Persistent).await.expect("create");
    let (data, _) = client.get_data("/tls").await.expect("get");
    assert_eq!(&data[..], b"secret");
    assert_eq!(server.sessions(), [client.session_id()]);
    client.close().await;
}

#[tokio::test]
async fn tls_from_pem_files_and_localhost_name() {
    let ca = Ca::new("test CA");
    let leaf = ca.server(&["localhost"]);
    let dir = certs::temp_dir("tls-files");
    let (cert, key) = (certs::write(&dir, "server.pem", &leaf.cert), certs::write(&dir, "server.key", &leaf.key));
    let ca_file = certs::write(&dir, "ca.pem", &ca.pem);
    let tls = ServerTls::builder_from_files(&cert, &key).build().expect("server TLS from files");
    let server = TestingServer::with_builder(Server::builder().tls(tls)).await.expect("server");
    let port = server.secure_addr().expect("secure").port();
    let tls = ClientTls::builder().ca_pem_file(&ca_file).build().expect("client TLS from files");
    let client = Client::builder(format!("localhost:{port}")).tls(tls).connect().await.expect("connect");
    assert!(client.exists("/").await.expect("exists").is_some());
    client.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn mutual_tls_gives_an_x509_id_and_refuses_a_client_without_a_certificate() {
    let ca = Ca::new("test CA");
    let server = tls_server(&ca, &ca.server(&["127.0.0.1"]), Some(ClientAuth::Need)).await;
    let alice = ca.client("alice");
    let tls = ClientTls::builder().ca_pem(&ca.pem).identity_pem(&alice.cert, &alice.key).build().expect("TLS");
    let client = Client::builder(secure(&server)).tls(tls).connect().await.expect("mutual TLS");
    let me = client.who_am_i().await.expect("whoami");
    assert!(
        me.iter().any(|id| id.auth_scheme == "x509" && id.user == "CN=alice,O=Corral Tests"),
        "x509 id missing: {me:?}"
    );
    // The certificate's subject owns a node through the x509 scheme.
    let only_alice = vec![Acl::new(Perms::ALL, Id::new("x509", "CN=alice,O=Corral Tests"))];
    let options = CreateOptions::new(CreateMode::Persistent).with_acl(only_alice);
    client.create("/alice", "", options).await.expect("create with x509 ACL");
    client.set_data("/alice", "mine", None).await.expect("alice may write");

    let bob = ca.client("bob");
    let tls = ClientTls::builder().ca_pem(&ca.pem).identity_pem(&bob.cert, &bob.key).build().expect("TLS");
    let other = Client::builder(secure(&server)).tls(tls).connect().await.expect("bob connects");
    let err = other.set_data("/alice", "no", None).await.unwrap_err();
    assert_eq!(err.code(), corral_core::ErrorCode::NoAuth);
    other.close().await;

    let anonymous = ClientTls::builder().ca_pem(&ca.pem).build().expect("TLS");
    let err = Client::builder(secure(&server)).tls(anonymous).connection_timeout(GIVE_UP).connect().await.unwrap_err();
    let Error::Tls(reason) = &err else { panic!("expected a TLS error, got {err:?}") };
    assert!(reason.contains("client certificate"), "unclear: {reason}");
    client.close().await;
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused() {
    let (ca, other) = (Ca::new("test CA"), Ca::new("another CA"));
    let server = tls_server(&ca, &ca.server(&["127.0.0.1"]), None).await;
    // Through a proxy that counts the connections: the client's retries are paced.
    let proxy = FaultProxy::start(server.secure_addr().expect("secure port")).expect("proxy");
    let tls = ClientTls::builder().ca_pem(&other.pem).build().expect("TLS");
    let err =
        Client::builder(proxy.addr().to_string()).tls(tls).connection_timeout(GIVE_UP).connect().await.unwrap_err();
    let Error::Tls(reason) = &err else { panic!("expected a TLS error, got {err:?}") };
    assert!(reason.contains("not signed by a trusted CA"), "unclear: {reason}");
    assert!(server.sessions().is_empty());
    // Backed off (50 ms, then doubling): a handful of handshakes in the second, not a storm.
    let attempts = proxy.accepted();
    assert!((1..=10).contains(&attempts), "{attempts} handshakes in {GIVE_UP:?}");
}

#[tokio::test]
async fn expired_and_self_signed_certificates_are_refused() {
    let ca = Ca::new("test CA");
    let server = tls_server(&ca, &ca.expired_server(&["127.0.0.1"]), None).await;
    let tls = ClientTls::builder().ca_pem(&ca.pem).build().expect("TLS");
    let err = Client::builder(secure(&server)).tls(tls).connection_timeout(GIVE_UP).connect().await.unwrap_err();
    assert!(matches!(&err, Error::Tls(r) if r.contains("expired")), "{err:?}");

    let server = tls_server(&ca, &certs::self_signed(&["127.0.0.1"]), None).await;
    let tls = ClientTls::builder().ca_pem(&ca.pem).build().expect("TLS");
    let err = Client::builder(secure(&server)).tls(tls).connection_timeout(GIVE_UP).connect().await.unwrap_err();
    assert!(matches!(&err, Error::Tls(r) if r.contains("not signed by a trusted CA")), "{err:?}");

    // A client certificate that expired, or that no trusted CA signed, is refused by the server.
    let server = tls_server(&ca, &ca.server(&["127.0.0.1"]), Some(ClientAuth::Need)).await;
    for leaf in [ca.expired_server(&["client.example"]), certs::self_signed(&["client.example"])] {
        let tls = ClientTls::builder().ca_pem(&ca.pem).identity_pem(&leaf.cert, &leaf.key).build().expect("TLS");
        let err = Client::builder(secure(&server)).tls(tls).connection_timeout(GIVE_UP).connect().await;
        assert!(matches!(err, Err(Error::Tls(_))), "{err:?}");
    }
    assert!(server.sessions().is_empty());
}

#[tokio::test]
async fn the_framework_runs_every_session_over_tls() {
    let ca = Ca::new("test CA");
    let server = tls_server(&ca, &ca.server(&["127.0.0.1"]), None).await;
    let tls = ClientTls::builder().ca_pem(&ca.pem).build().expect("TLS");
    let fw = Framework::builder(secure(&server)).tls(tls).start().expect("start");
    fw.wait_until_connected(Duration::from_secs(10)).await.expect("connected over TLS");
    let first = fw.current_state().session_id;
    server.expire_session(first);
    let mut states = fw.connection_state();
    tokio::time::timeout(Duration::from_secs(20), states.wait_for(|c| c.epoch == 2 && c.state.is_connected()))
        .await
        .expect("a new session in time")
        .expect("state");
    assert_ne!(fw.current_state().session_id, first);
    assert_eq!(server.sessions(), [fw.current_state().session_id]);
    fw.close().await;
}

#[tokio::test]
async fn a_certificate_for_another_host_is_refused_unless_verification_is_off() {
    let ca = Ca::new("test CA");
    let server = tls_server(&ca, &ca.server(&["zk.other.example"]), None).await;
    let tls = ClientTls::builder().ca_pem(&ca.pem).build().expect("TLS");
    let err = Client::builder(secure(&server)).tls(tls).connection_timeout(GIVE_UP).connect().await.unwrap_err();
    let Error::Tls(reason) = &err else { panic!("expected a TLS error, got {err:?}") };
    assert!(reason.contains("does not name the host"), "unclear: {reason}");

    let named = ClientTls::builder().ca_pem(&ca.pem).server_name("zk.other.example").build().expect("TLS");
    let client = Client::builder(secure(&server)).tls(named).connect().await.expect("with the right name");
    client.close().await;

    let unchecked = ClientTls::builder().ca_pem(&ca.pem).danger_disable_hostname_verification().build().expect("TLS");
    let client = Client::builder(secure(&server)).tls(unchecked).connect().await.expect("with the check off");
    assert!(client.exists("/").await.expect("exists").is_some());
    client.close().await;

    // The chain still counts with the hostname check off.
    let stranger = Ca::new("another CA");
    let unchecked =
        ClientTls::builder().ca_pem(&stranger.pem).danger_disable_hostname_verification().build().expect("TLS");
    let err = Client::builder(secure(&server)).tls(unchecked).connection_timeout(GIVE_UP).connect().await;
    assert!(matches!(err, Err(Error::Tls(_))), "{err:?}");
}

#[tokio::test]
async fn reconnects_within_the_session_over_tls() {
    let ca = Ca::new("test CA");
    let server = tls_server(&ca, &ca.server(&["127.0.0.1"]), None).await;
    let tls = ClientTls::builder().ca_pem(&ca.pem).build().expect("TLS");
    let client = Client::builder(secure(&server)).tls(tls).connect().await.expect("connect");
    let mut events = client.session_events();
    let id = client.session_id();
    let (_, watcher) = client.exists_and_watch("/later").await.expect("watch");
    assert!(server.drop_connection(id));
    loop {
        match events.next().await.expect("events") {
            SessionEvent::Connected { resumed, session_id, .. } => {
                assert!(resumed);
                assert_eq!(session_id, id);
                break;
            }
            SessionEvent::Disconnected { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    client.create("/later", "", CreateMode::Persistent).await.expect("create after the reconnect");
    let event = watcher.await;
    assert_eq!(event.path, "/later");
    client.close().await;
}

#[tokio::test]
async fn read_only_probes_go_over_tls_too() {
    let ca = Ca::new("test CA");
    let leaf = ca.server(&["127.0.0.1"]);
    let tls = ServerTls::builder(&leaf.cert, &leaf.key).build().expect("server TLS");
    let cluster = TestingCluster::with_builder(2, Server::builder().tls(tls).read_only(true)).await.expect("cluster");
    let hosts: Vec<String> = (0..2).map(|i| cluster.secure_addr(i).expect("secure").to_string()).collect();
    let tls = ClientTls::builder().ca_pem(&ca.pem).build().expect("client TLS");
    let client = Client::builder(hosts.join(",")).tls(tls).allow_read_only(true).connect().await.expect("connect");
    assert_eq!(*client.state().borrow(), SessionState::ConnectedReadOnly);
    let member = cluster.member_of_session(client.session_id()).expect("member");
    // Only an `isro` over TLS can tell the client that the other member is read/write now.
    cluster.set_read_only(1 - member, false);
    let mut state = client.state();
    tokio::time::timeout(Duration::from_secs(10), state.wait_for(|s| *s == SessionState::Connected))
        .await
        .expect("moved to the read/write member in time")
        .expect("state");
    assert_eq!(cluster.member_of_session(client.session_id()), Some(1 - member));
    client.close().await;
}

#[tokio::test]
async fn a_restarted_server_keeps_its_secure_port_and_the_session_survives() {
    let ca = Ca::new("test CA");
    let mut server = tls_server(&ca, &ca.server(&["127.0.0.1"]), None).await;
    let before = server.secure_addr();
    let tls = ClientTls::builder().ca_pem(&ca.pem).build().expect("TLS");
    let client = Client::builder(secure(&server)).tls(tls).connect().await.expect("connect");
    let session = client.session_id();
    server.restart().await.expect("restart");
    assert_eq!(server.secure_addr(), before);
    client.create("/after-restart", "", CreateMode::Persistent).await.expect("create after the restart");
    assert_eq!(client.session_id(), session);
    client.close().await;
}

#[tokio::test]
async fn wanted_client_certificates_are_optional() {
    let ca = Ca::new("test CA");
    let server = tls_server(&ca, &ca.server(&["127.0.0.1"]), Some(ClientAuth::Want)).await;
    let anonymous = ClientTls::builder().ca_pem(&ca.pem).build().expect("TLS");
    let client = Client::builder(secure(&server)).tls(anonymous).connect().await.expect("without a certificate");
    assert!(!client.who_am_i().await.expect("whoami").iter().any(|id| id.auth_scheme == "x509"));
    client.close().await;
    let carol = ca.client("carol");
    let tls = ClientTls::builder().ca_pem(&ca.pem).identity_pem(&carol.cert, &carol.key).build().expect("TLS");
    let client = Client::builder(secure(&server)).tls(tls).connect().await.expect("with a certificate");
    let me = client.who_am_i().await.expect("whoami");
    assert!(me.iter().any(|id| id.auth_scheme == "x509" && id.user == "CN=carol,O=Corral Tests"), "{me:?}");
    client.close().await;
}

#[tokio::test]
async fn four_letter_words_over_tls() {
    let ca = Ca::new("test CA");
    let server = tls_server(&ca, &ca.server(&["127.0.0.1"]), None).await;
    let tls = ClientTls::builder().ca_pem(&ca.pem).build().expect("TLS");
    let client = Client::builder(secure(&server)).tls(tls).connect().await.expect("connect");
    assert_eq!(client.four_letter_word("ruok").await.expect("ruok"), "imok");
    assert!(client.four_letter_word("srvr").await.expect("srvr").contains("Mode: standalone"));
    assert!(matches!(client.four_letter_word("x").await, Err(Error::BadArguments(_))));
    client.close().await;
}

#[tokio::test]
async fn garbage_and_plaintext_on_the_secure_port_do_not_hurt_the_server() {
    let ca = Ca::new("test CA");
    let server = tls_server(&ca, &ca.server(&["127.0.0.1"]), None).await;
    let addr = server.secure_addr().expect("secure");
    // Garbage, a plaintext four-letter word, and a plaintext client, all on the TLS port.
    for junk in [&b"\x16\x03\x01\xff\xffgarbage"[..], b"ruok", &[0u8; 64][..]] {
        let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
        socket.write_all(junk).await.expect("write");
        let mut sink = Vec::new();
        // The server closes the connection (an alert at most, never an answer).
        let _ = socket.read_to_end(&mut sink).await;
        assert!(!String::from_utf8_lossy(&sink).contains("imok"));
    }
    let plain = Client::builder(addr.to_string()).connection_timeout(GIVE_UP).connect().await;
    assert!(matches!(plain, Err(Error::Timeout)), "{plain:?}");

    // A TLS client on the plain port is told plainly.
    let tls = ClientTls::builder().ca_pem(&ca.pem).build().expect("TLS");
    let wrong_port =
        Client::builder(server.connect_string()).tls(tls.clone()).connection_timeout(GIVE_UP).connect().await;
    assert!(matches!(wrong_port, Err(Error::Tls(_))), "{wrong_port:?}");

    // The server still serves TLS and plain clients.
    let client = Client::builder(addr.to_string()).tls(tls).connect().await.expect("TLS after garbage");
    assert!(client.exists("/").await.expect("exists").is_some());
    let plain = Client::connect(&server.connect_string()).await.expect("plain");
    assert!(plain.exists("/").await.expect("exists").is_some());
    client.close().await;
    plain.close().await;
}

#[test]
fn bad_tls_settings_are_named() {
    let ca = Ca::new("test CA");
    let err = ClientTls::builder().ca_pem("not PEM").build().unwrap_err();
    assert!(matches!(&err, Error::Tls(r) if r.contains("CA bundle")), "{err:?}");
    let alice = ca.client("alice");
    let other = ca.client("other");
    let err = ClientTls::builder().ca_pem(&ca.pem).identity_pem(&alice.cert, &other.key).build().unwrap_err();
    assert!(matches!(&err, Error::Tls(r) if r.contains("do not fit")), "{err:?}");
    let err = ClientTls::builder().ca_pem(&ca.pem).identity_pem(&alice.cert, "no key").build().unwrap_err();
    assert!(matches!(&err, Error::Tls(r) if r.contains("private key")), "{err:?}");
    let err = ServerTls::builder(&alice.cert, &alice.key).client_auth(ClientAuth::Need).build().unwrap_err();
    assert!(matches!(err, corral_server::Error::Tls(_)));
}

#[tokio::test]
async fn a_zookeeper_zoo_cfg_with_pem_stores_drops_in() {
    let ca = Ca::new("test CA");
    let leaf = ca.server(&["127.0.0.1"]);
    let dir = certs::temp_dir("zoo-cfg");
    certs::write(&dir, "server.pem", &format!("{}{}", leaf.key, leaf.cert));
    certs::write(&dir, "ca.pem", &ca.pem);
    // dataDir is taken too (the server keeps its data there), relative to the file's directory.
    let cfg = "tickTime=2000\n\
               dataDir=data\n\
               clientPort=0\n\
               secureClientPort=0\n\
               serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
               ssl.keyStore.location=server.pem\n\
               ssl.keyStore.type=PEM\n\
               ssl.trustStore.location=ca.pem\n\
               ssl.trustStore.type=PEM\n\
               ssl.clientAuth=need\n";
    let (builder, ignored) = Server::builder().zoo_cfg(cfg, &dir).expect("zoo.cfg");
    assert_eq!(ignored, ["serverCnxnFactory"]);
    let server = TestingServer::with_builder(builder).await.expect("server");
    let alice = ca.client("alice");
    let tls = ClientTls::builder().ca_pem(&ca.pem).identity_pem(&alice.cert, &alice.key).build().expect("TLS");
    let client = Client::builder(secure(&server)).tls(tls).connect().await.expect("mutual TLS");
    assert!(client.exists("/").await.expect("exists").is_some());
    client.close().await;
    let _ = std::fs::remove_dir_all(dir);
}
