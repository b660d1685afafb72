//! SASL DIGEST-MD5 between the client and the embedded server: login, `sasl:` ACLs, the login
//! again on every reconnect, refused credentials, and garbage tokens both ways.

mod certs;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use corral_core::proto::records::SaslToken;
use corral_core::proto::{
    ConnectRequest, ConnectResponse, ErrorCode, FrameDecoder, Jute, OpCode, ReplyHeader, RequestHeader, encode_frame,
};
use corral_core::{
    Acl, Client, ClientTls, ConnectionState, CreateMode, CreateOptions, Error, Framework, Id, Perms, Sasl, SessionState,
};
use corral_server::testing::TestingServer;
use corral_server::{ClientAuth, SaslUsers, Server, ServerTls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const JAAS: &str = r#"
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="adminsecret"
    user_bob="bobsecret";
};
"#;

async fn sasl_server() -> TestingServer {
    let users = SaslUsers::from_jaas(JAAS, "Server").expect("JAAS");
    TestingServer::with_builder(Server::builder().sasl_users(users)).await.expect("server")
}

/// A client logged in as `bob`, a bystander of the bad-input tests.
async fn bob(server: &TestingServer) -> Client {
    Client::builder(server.connect_string()).sasl(Sasl::digest_md5("bob", "bobsecret")).connect().await.expect("login")
}

fn bob_only() -> CreateOptions {
    CreateOptions::new(CreateMode::Persistent).with_acl(vec![Acl::new(Perms::ALL, Id::new("sasl", "bob"))])
}

#[tokio::test]
async fn login_acls_and_the_login_again_after_a_reconnect() {
    let server = sasl_server().await;
    let bob = Client::builder(server.connect_string())
        .sasl(Sasl::digest_md5("bob", "bobsecret"))
        .connect()
        .await
        .expect("SASL login");
    let me = bob.who_am_i().await.expect("whoami");
    assert!(me.iter().any(|id| id.auth_scheme == "sasl" && id.user == "bob"), "{me:?}");
    bob.create("/bob", "mine", bob_only()).await.expect("create with a sasl ACL");

    let stranger = Client::connect(&server.connect_string()).await.expect("plain client");
    let err = stranger.get_data("/bob").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NoAuth);
    stranger.close().await;

    // The login runs again on the new connection, before the request that follows.
    let session = bob.session_id();
    bob.drop_connection();
    bob.set_data("/bob", "still mine", None).await.expect("write after the reconnect");
    assert_eq!(bob.session_id(), session);
    assert_eq!(&bob.get_data("/bob").await.expect("get").0[..], b"still mine");
    bob.close().await;
}

#[tokio::test]
async fn refused_credentials_end_the_session_in_auth_failed() {
    let server = sasl_server().await;
    for (user, password) in [("bob", "guess"), ("nobody", "bobsecret")] {
        let result = Client::builder(server.connect_string()).sasl(Sasl::digest_md5(user, password)).connect().await;
        assert_eq!(result.err(), Some(Error::AuthFailed), "{user}");
    }
    let client =
        Client::builder(server.connect_string()).sasl(Sasl::digest_md5("bob", "guess")).build().expect("build");
    let mut state = client.state();
    let end = state.wait_for(|s| s.is_terminal()).await.expect("terminal state");
    assert_eq!(*end, SessionState::AuthFailed);

    // A server with no SASL users refuses every login the same way.
    let plain = TestingServer::start().await.expect("server");
    let result = Client::builder(plain.connect_string()).sasl(Sasl::digest_md5("bob", "bobsecret")).connect().await;
    assert_eq!(result.err(), Some(Error::AuthFailed));
}

/// Opens a session by hand and returns the stream.
async fn raw_session(addr: std::net::SocketAddr) -> TcpStream {
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    let request = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout: 10_000,
        session_id: 0,
        passwd: Bytes::from_static(&[0; 16]),
        read_only: Some(false),
    };
    let mut out = BytesMut::new();
    encode_frame(&mut out, |b| request.write(b));
    socket.write_all(&out).await.expect("write");
    read_frame(&mut socket).await.expect("ConnectResponse");
    socket
}

async fn read_frame(socket: &mut TcpStream) -> Option<Bytes> {
    let mut decoder = FrameDecoder::default();
    let mut buf = BytesMut::new();
    loop {
        if let Ok(Some(frame)) = decoder.decode(&mut buf) {
            return Some(frame.freeze());
        }
        if socket.read_buf(&mut buf).await.ok()? == 0 {
            return None;
        }
    }
}

#[tokio::test]
async fn garbage_sasl_tokens_are_refused_without_harm() {
    let server = sasl_server().await;
    let bob = bob(&server).await;
    let garbage: [&[u8]; 4] = [b"\xff\xfe\xfd", b"username=", &[b'"'; 3000], b"rspauth=1"];
    for token in garbage {
        let mut socket = raw_session(server.addr()).await;
        let mut out = BytesMut::new();
        encode_frame(&mut out, |b| {
            RequestHeader { xid: 1, op: OpCode::Sasl }.write(b);
            SaslToken { token: Bytes::copy_from_slice(token) }.write(b);
        });
        // The first token must be empty: anything else is refused at once. Then the second.
        socket.write_all(&out).await.expect("write");
        let mut reply = read_frame(&mut socket).await.expect("reply");
        let header = ReplyHeader::read(&mut reply).expect("header");
        assert_eq!(header.err, ErrorCode::AuthFailed);
        assert!(read_frame(&mut socket).await.is_none(), "the connection is closed");
    }
    // A body that is no SASL record at all.
    let mut socket = raw_session(server.addr()).await;
    let mut out = BytesMut::new();
    encode_frame(&mut out, |b| {
        RequestHeader { xid: 1, op: OpCode::Sasl }.write(b);
        b.extend_from_slice(&[0xff, 0xff, 0xff, 0x7f]);
    });
    socket.write_all(&out).await.expect("write");
    let mut reply = read_frame(&mut socket).await.expect("reply");
    assert_eq!(ReplyHeader::read(&mut reply).expect("header").err, ErrorCode::AuthFailed);

    // The logged-in session is unaffected.
    assert!(bob.exists("/").await.expect("exists").is_some());
    bob.close().await;
}

#[tokio::test]
async fn oversize_sasl_packets_are_refused_without_harm() {
    let server = sasl_server().await;
    let bob = bob(&server).await;

    // A SASL packet past the frame limit (1 MiB): the connection is closed unanswered.
    let mut socket = raw_session(server.addr()).await;
    let mut out = BytesMut::new();
    out.extend_from_slice(&(2i32 << 20).to_be_bytes());
    RequestHeader { xid: 1, op: OpCode::Sasl }.write(&mut out);
    out.extend_from_slice(&(2i32 << 20).to_be_bytes());
    out.extend_from_slice(&[b'x'; 4096]);
    socket.write_all(&out).await.expect("write");
    assert!(read_frame(&mut socket).await.is_none(), "the connection is closed");

    // A token just inside the limit, as the answer to the server's challenge: refused.
    let mut socket = raw_session(server.addr()).await;
    let sasl = |token: Bytes| {
        let mut out = BytesMut::new();
        encode_frame(&mut out, |b| {
            RequestHeader { xid: 1, op: OpCode::Sasl }.write(b);
            SaslToken { token }.write(b);
        });
        out
    };
    socket.write_all(&sasl(Bytes::new())).await.expect("write");
    let mut challenge = read_frame(&mut socket).await.expect("challenge");
    assert_eq!(ReplyHeader::read(&mut challenge).expect("header").err, ErrorCode::Ok);
    socket.write_all(&sasl(Bytes::from(vec![b'a'; 1_000_000]))).await.expect("write");
    let mut reply = read_frame(&mut socket).await.expect("reply");
    assert_eq!(ReplyHeader::read(&mut reply).expect("header").err, ErrorCode::AuthFailed);
    assert!(read_frame(&mut socket).await.is_none(), "the connection is closed");

    // The other way: a server whose SASL answer is past the client's frame limit.
    let huge: &'static [u8] = Box::leak(vec![b'n'; 2 << 20].into_boxed_slice());
    let addr = lying_server(huge).await;
    let result = Client::builder(addr.to_string())
        .sasl(Sasl::digest_md5("bob", "bobsecret"))
        .connection_timeout(Duration::from_secs(2))
        .connect()
        .await;
    assert!(result.is_err(), "{result:?}");

    // The logged-in session is unaffected.
    assert!(bob.exists("/").await.expect("exists").is_some());
    bob.close().await;
}

/// A fake server that grants a session and answers the SASL login with `token`.
async fn lying_server(token: &'static [u8]) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = read_frame(&mut socket).await;
                let response = ConnectResponse {
                    protocol_version: 0,
                    timeout: 10_000,
                    session_id: 0x1234,
                    passwd: Bytes::from_static(&[1; 16]),
                    read_only: Some(false),
                };
                let mut out = BytesMut::new();
                encode_frame(&mut out, |b| response.write(b));
                let _ = socket.write_all(&out).await;
                while let Some(mut frame) = read_frame(&mut socket).await {
                    let Ok(header) = RequestHeader::read(&mut frame) else { return };
                    let mut out = BytesMut::new();
                    encode_frame(&mut out, |b| {
                        ReplyHeader { xid: header.xid, zxid: 0, err: ErrorCode::Ok }.write(b);
                        SaslToken { token: Bytes::from_static(token) }.write(b);
                    });
                    let _ = socket.write_all(&out).await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn garbage_from_the_server_is_a_clear_client_error() {
    for token in [&b"\x00\xffnot a challenge"[..], b"nonce=\"n\",qop=\"auth-int\"", b"realm=\"x\""] {
        let addr = lying_server(token).await;
        let result = Client::builder(addr.to_string())
            .sasl(Sasl::digest_md5("bob", "bobsecret"))
            .connection_timeout(Duration::from_secs(5))
            .connect()
            .await;
        assert!(matches!(&result, Err(Error::Sasl(_))), "{token:?}: {result:?}");
    }
    // A server that does not know the password cannot fake the final rspauth.
    let addr = lying_server(b"nonce=\"abc\",realm=\"zk-sasl-md5\",qop=\"auth\",charset=utf-8,algorithm=md5-sess").await;
    let result = Client::builder(addr.to_string()).sasl(Sasl::digest_md5("bob", "bobsecret")).connect().await;
    assert!(matches!(&result, Err(Error::Sasl(reason)) if reason.contains("rspauth")), "{result:?}");
}

#[tokio::test]
async fn sasl_inside_mutual_tls_gives_both_ids() {
    let ca = certs::Ca::new("test CA");
    let leaf = ca.server(&["127.0.0.1"]);
    let tls = ServerTls::builder(&leaf.cert, &leaf.key)
        .client_ca_pem(&ca.pem)
        .client_auth(ClientAuth::Need)
        .build()
        .expect("server TLS");
    let users = SaslUsers::from_jaas(JAAS, "Server").expect("JAAS");
    let server = TestingServer::with_builder(Server::builder().tls(tls).sasl_users(users)).await.expect("server");
    let alice = ca.client("alice");
    let tls = ClientTls::builder().ca_pem(&ca.pem).identity_pem(&alice.cert, &alice.key).build().expect("TLS");
    let client = Client::builder(server.secure_addr().expect("secure").to_string())
        .tls(tls)
        .sasl(Sasl::digest_md5("bob", "bobsecret"))
        .connect()
        .await
        .expect("TLS and SASL");
    let me = client.who_am_i().await.expect("whoami");
    assert!(me.iter().any(|id| id.auth_scheme == "sasl" && id.user == "bob"), "{me:?}");
    assert!(me.iter().any(|id| id.auth_scheme == "x509" && id.user == "CN=alice,O=Corral Tests"), "{me:?}");
    client.close().await;
}

#[tokio::test]
async fn the_framework_logs_in_again_on_a_new_session() {
    let server = sasl_server().await;
    let fw =
        Framework::builder(server.connect_string()).sasl(Sasl::digest_md5("bob", "bobsecret")).start().expect("start");
    fw.wait_until_connected(Duration::from_secs(10)).await.expect("connected");
    server.expire_session(fw.current_state().session_id);
    let mut states = fw.connection_state();
    tokio::time::timeout(Duration::from_secs(20), states.wait_for(|c| c.epoch == 2 && c.state.is_connected()))
        .await
        .expect("a new session in time")
        .expect("state");
    let client = Client::builder(server.connect_string())
        .sasl(Sasl::digest_md5("bob", "bobsecret"))
        .connect()
        .await
        .expect("login");
    client.create("/bob", "", bob_only()).await.expect("create");
    client.close().await;
    // The new session's client is bob too: it may write bob's node.
    let session_client = fw.client();
    session_client.set_data("/bob", "from the framework", None).await.expect("write as bob");
    fw.close().await;
}

#[tokio::test]
async fn a_refused_login_reaches_the_framework_as_lost_and_it_stops() {
    let server = sasl_server().await;
    let fw = Framework::builder(server.connect_string()).sasl(Sasl::digest_md5("bob", "guess")).start().expect("start");
    let mut states = fw.connection_state();
    tokio::time::timeout(Duration::from_secs(10), states.wait_for(|c| c.state == ConnectionState::Lost))
        .await
        .expect("LOST in time")
        .expect("state");
    fw.close().await;
}
