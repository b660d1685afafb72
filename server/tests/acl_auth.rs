//! ACLs and authentication over the raw protocol.

mod common;

use bytes::Bytes;
use common::Raw;
use corral_proto::records::{AuthPacket, PathRequest, SetAclRequest};
use corral_proto::{Acl, ErrorCode, Id, Perms, Request, Response};
use corral_server::{Server, digest};

fn auth(scheme: &str, credentials: &str) -> Request {
    Request::Auth(AuthPacket {
        auth_type: 0,
        scheme: scheme.into(),
        auth: Bytes::copy_from_slice(credentials.as_bytes()),
    })
}

#[tokio::test]
async fn digest_acl_guards_the_node() {
    let server = Server::start().await.expect("start");
    let mut owner = Raw::connect(server.addr()).await;
    let mut other = Raw::connect(server.addr()).await;
    let (header, _) = owner.request(auth("digest", "alice:secret")).await;
    assert_eq!((header.xid, header.err, header.zxid), (-4, ErrorCode::Ok, 0));
    owner.create_acl("/private", b"s", 0, Acl::creator_all()).await.expect("create with auth:");
    let Ok(Response::GetAcl(acl)) = owner.call(Request::GetAcl(PathRequest { path: "/private".into() })).await else {
        panic!("getACL");
    };
    let alice = Id::new("digest", digest("alice:secret"));
    assert_eq!(acl.acl, vec![Acl::new(Perms::ALL, alice.clone())]);

    assert_eq!(other.get("/private", false).await, Err(ErrorCode::NoAuth));
    assert_eq!(other.set("/private", b"x", -1).await, Err(ErrorCode::NoAuth));
    assert_eq!(other.create("/private/c", b"", 0).await, Err(ErrorCode::NoAuth));
    assert_eq!(other.call(Request::GetAcl(PathRequest { path: "/private".into() })).await, Err(ErrorCode::NoAuth));
    other.call(auth("digest", "alice:secret")).await.expect("auth");
    other.get("/private", false).await.expect("now allowed");
    let Ok(Response::WhoAmI(who)) = other.call(Request::WhoAmI).await else {
        panic!("whoAmI");
    };
    let schemes: Vec<(String, String)> = who.client_info.into_iter().map(|c| (c.auth_scheme, c.user)).collect();
    assert_eq!(schemes, vec![("ip".into(), "127.0.0.1".into()), ("digest".into(), "alice".into())]);
    server.shutdown().await;
}

#[tokio::test]
async fn read_only_callers_see_masked_digests() {
    let server = Server::start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    let acl = vec![Acl::new(Perms::ALL, Id::new("digest", digest("bob:pw"))), Acl::new(Perms::READ, Id::anyone())];
    c.create_acl("/ro", b"", 0, acl).await.expect("create");
    let Ok(Response::GetAcl(r)) = c.call(Request::GetAcl(PathRequest { path: "/ro".into() })).await else {
        panic!("getACL");
    };
    assert_eq!(r.acl[0].id.id, "bob:x");
    assert_eq!(r.stat.aversion, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn set_acl_checks_admin_and_aversion() {
    let server = Server::start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    c.create("/n", b"", 0).await.expect("create");
    let set = |acl: Vec<Acl>, version| Request::SetAcl(SetAclRequest { path: "/n".into(), acl, version });
    assert_eq!(c.call(set(Acl::open_unsafe(), 3)).await, Err(ErrorCode::BadVersion));
    assert_eq!(c.call(set(Vec::new(), -1)).await, Err(ErrorCode::InvalidAcl));
    assert_eq!(c.call(set(Acl::creator_all(), -1)).await, Err(ErrorCode::InvalidAcl));
    let bad_ip = vec![Acl::new(Perms::ALL, Id::new("ip", "1.2.3.4/40"))];
    assert_eq!(c.call(set(bad_ip, -1)).await, Err(ErrorCode::InvalidAcl));
    let Ok(Response::Stat(stat)) = c.call(set(Acl::read_unsafe(), 0)).await else {
        panic!("setACL");
    };
    assert_eq!((stat.aversion, stat.version), (1, 0));
    assert_eq!(c.call(set(Acl::open_unsafe(), -1)).await, Err(ErrorCode::NoAuth), "ADMIN is gone");
    assert_eq!(c.set("/n", b"x", -1).await, Err(ErrorCode::NoAuth));
    c.get("/n", false).await.expect("READ remains");
    server.shutdown().await;
}

#[tokio::test]
async fn ip_acl_with_cidr() {
    let server = Server::start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    let acl = vec![Acl::new(Perms::ALL, Id::new("ip", "127.0.0.0/8"))];
    c.create_acl("/local", b"", 0, acl).await.expect("create");
    c.get("/local", false).await.expect("loopback matches");
    let acl = vec![Acl::new(Perms::ALL, Id::new("ip", "10.0.0.0/8"))];
    c.create_acl("/remote", b"", 0, acl).await.expect("create");
    assert_eq!(c.get("/remote", false).await, Err(ErrorCode::NoAuth));
    server.shutdown().await;
}

#[tokio::test]
async fn super_digest_passes_every_check() {
    let server = Server::builder().super_digest(digest("super:root")).start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    let acl = vec![Acl::new(Perms::ALL, Id::new("ip", "10.0.0.0/8"))];
    c.create_acl("/locked", b"", 0, acl).await.expect("create");
    assert_eq!(c.get("/locked", false).await, Err(ErrorCode::NoAuth));
    c.call(auth("digest", "super:root")).await.expect("auth");
    c.get("/locked", false).await.expect("super reads anything");
    c.delete("/locked", -1).await.expect("super deletes anything");
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_auth_scheme_fails_and_closes() {
    let server = Server::start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    let (header, _) = c.request(auth("kerberos", "x")).await;
    assert_eq!(header.err, ErrorCode::AuthFailed);
    c.expect_closed().await;
    server.shutdown().await;
}

#[tokio::test]
async fn watch_events_are_filtered_by_read_permission() {
    let server = Server::start().await.expect("start");
    let mut w = Raw::connect(server.addr()).await;
    let mut owner = Raw::connect(server.addr()).await;
    owner.call(auth("digest", "o:p")).await.expect("auth");
    assert_eq!(w.exists("/secret", true).await, Err(ErrorCode::NoNode));
    owner.create_acl("/secret", b"", 0, Acl::creator_all()).await.expect("create");
    w.sync_events().await;
    assert!(w.events.is_empty(), "no READ on the node: no NodeCreated");
    server.shutdown().await;
}
