//! Node operations over the raw protocol: success and error paths, Stat fields, cversion,
//! sequential suffixes, node kinds.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::Raw;
use corral_proto::records::{
    CheckVersionRequest, CreateRequest, CreateTtlRequest, PathAndWatch, PathRequest, ReconfigRequest,
};
use corral_proto::{Acl, ErrorCode, OpCode, Request, RequestHeader, Response};
use corral_server::testing::TestingServer;
use corral_server::{Clock, Server};

#[tokio::test]
async fn create_get_set_delete_with_exact_stats() {
    let server = Server::start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    let (path, stat) = c.create2("/a", Some(b"hello"), 0).await.expect("create2");
    assert_eq!(path, "/a");
    assert_eq!(stat.czxid, stat.mzxid);
    assert_eq!(stat.czxid, stat.pzxid);
    assert_eq!(stat.ctime, stat.mtime);
    assert_eq!((stat.version, stat.cversion, stat.aversion), (0, 0, 0));
    assert_eq!((stat.ephemeral_owner, stat.data_length, stat.num_children), (0, 5, 0));
    let created = stat;

    let (data, stat) = c.get("/a", false).await.expect("get");
    assert_eq!(data.as_deref(), Some(&b"hello"[..]));
    assert_eq!(stat, created);

    assert_eq!(c.set("/a", b"x", 5).await, Err(ErrorCode::BadVersion));
    let stat = c.set("/a", b"bye", 0).await.expect("set");
    assert_eq!(stat.version, 1);
    assert!(stat.mzxid > created.mzxid);
    assert_eq!(stat.czxid, created.czxid);
    assert_eq!(stat.pzxid, created.pzxid, "setData does not touch pzxid");
    assert_eq!(stat.data_length, 3);
    let stat = c.set("/a", b"", -1).await.expect("set any version");
    assert_eq!(stat.version, 2);

    assert_eq!(c.create("/a", b"", 0).await, Err(ErrorCode::NodeExists));
    assert_eq!(c.delete("/a", 1).await, Err(ErrorCode::BadVersion));
    c.delete("/a", 2).await.expect("delete");
    assert_eq!(c.delete("/a", -1).await, Err(ErrorCode::NoNode));
    assert_eq!(c.get("/a", false).await, Err(ErrorCode::NoNode));
    assert_eq!(c.exists("/a", false).await, Err(ErrorCode::NoNode));
    assert_eq!(c.set("/a", b"", -1).await, Err(ErrorCode::NoNode));
    server.shutdown().await;
}

#[tokio::test]
async fn create_error_precedence_on_the_wire() {
    let server = Server::start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    assert_eq!(c.create("/x/y", b"", 0).await, Err(ErrorCode::NoNode));
    assert_eq!(c.create("/bad/", b"", 0).await, Err(ErrorCode::NoNode), "parent lookup before validation");
    assert_eq!(c.create("/a/", b"", 0).await, Err(ErrorCode::NoNode));
    assert_eq!(c.create("/ok/", b"", 0).await, Err(ErrorCode::NoNode));
    c.create("/ok", b"", 0).await.expect("create");
    assert_eq!(c.create("/ok/", b"", 0).await, Err(ErrorCode::BadArguments));
    assert_eq!(c.create("relative", b"", 0).await, Err(ErrorCode::BadArguments));
    assert_eq!(c.create("/f", b"", 7).await, Err(ErrorCode::BadArguments));
    assert_eq!(c.create_acl("/n", b"", 0, Vec::new()).await, Err(ErrorCode::InvalidAcl));
    c.create("/e", b"", 1).await.expect("ephemeral");
    assert_eq!(c.create("/e/child", b"", 0).await, Err(ErrorCode::NoChildrenForEphemerals));
    for special in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
        assert_eq!(c.delete(special, -1).await, Err(ErrorCode::BadArguments), "{special}");
    }
    c.create("/p", b"", 0).await.expect("create");
    c.create("/p/c", b"", 0).await.expect("create");
    assert_eq!(c.delete("/p", -1).await, Err(ErrorCode::NotEmpty));
    server.shutdown().await;
}

#[tokio::test]
async fn null_and_empty_data_differ() {
    let server = Server::start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    c.create2("/null", None, 0).await.expect("create");
    c.create2("/empty", Some(b""), 0).await.expect("create");
    let (data, stat) = c.get("/null", false).await.expect("get");
    assert_eq!((data, stat.data_length), (None, 0));
    let (data, stat) = c.get("/empty", false).await.expect("get");
    assert_eq!((data, stat.data_length), (Some(Bytes::new()), 0));
    server.shutdown().await;
}

#[tokio::test]
async fn cversion_counts_creates_and_deletes_and_suffixes_never_repeat() {
    let server = Server::start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    c.create("/q", b"", 0).await.expect("create");
    let mut names = Vec::new();
    for _ in 0..3 {
        names.push(c.create("/q/n-", b"", 2).await.expect("sequential"));
    }
    assert_eq!(names, ["/q/n-0000000000", "/q/n-0000000001", "/q/n-0000000002"]);
    c.delete("/q/n-0000000000", -1).await.expect("delete");
    let stat = c.exists("/q", false).await.expect("exists");
    assert_eq!((stat.cversion, stat.num_children), (4, 2));
    assert_eq!(c.create("/q/n-", b"", 3).await.as_deref(), Ok("/q/n-0000000003"));
    let stat = c.exists("/q", false).await.expect("exists");
    assert_eq!(stat.cversion, 5);
    let last = c.exists("/q/n-0000000003", false).await.expect("exists");
    assert_eq!(stat.pzxid, last.czxid, "pzxid follows the last child change");
    // A sequential create whose prefix ends with '/'.
    assert_eq!(c.create("/q/", b"", 2).await.as_deref(), Ok("/q/0000000004"));
    // The root as a fresh ZooKeeper reports it: 0 creates, 1 child (zookeeper).
    let root = c.exists("/zookeeper", false).await.expect("exists");
    assert_eq!(root.num_children, 2);
    server.shutdown().await;
}

#[tokio::test]
async fn children_and_counts() {
    let server = Server::start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    assert_eq!(c.children("/", false).await, Ok(vec!["zookeeper".to_owned()]));
    c.create("/a", b"", 0).await.expect("create");
    c.create("/a/b", b"", 0).await.expect("create");
    c.create("/a/b/c", b"", 0).await.expect("create");
    c.create("/a/d", b"", 0).await.expect("create");
    assert_eq!(c.children("/a", false).await, Ok(vec!["b".to_owned(), "d".to_owned()]));
    assert_eq!(c.children("/nope", false).await, Err(ErrorCode::NoNode));
    let Ok(Response::Children2(r)) =
        c.call(Request::GetChildren2(PathAndWatch { path: "/a".into(), watch: false })).await
    else {
        panic!("getChildren2");
    };
    assert_eq!((r.children.len(), r.stat.num_children), (2, 2));
    let count = |path: &str| Request::GetAllChildrenNumber(PathRequest { path: path.into() });
    let Ok(Response::AllChildrenNumber(n)) = c.call(count("/a")).await else {
        panic!("count");
    };
    assert_eq!(n.total_number, 3);
    let Ok(Response::AllChildrenNumber(n)) = c.call(count("/")).await else {
        panic!("count");
    };
    assert_eq!(n.total_number, 7, "/zookeeper, quota and config included");
    assert_eq!(c.call(count("/missing")).await, Err(ErrorCode::NoNode));
    server.shutdown().await;
}

#[tokio::test]
async fn ephemerals_of_the_calling_session() {
    let server = Server::start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    let mut other = Raw::connect(server.addr()).await;
    c.create("/app", b"", 0).await.expect("create");
    c.create("/app/e1", b"", 1).await.expect("create");
    c.create("/e2", b"", 1).await.expect("create");
    other.create("/app/theirs", b"", 1).await.expect("create");
    let eph = |prefix: &str| Request::GetEphemerals(PathRequest { path: prefix.into() });
    let Ok(Response::Children(all)) = c.call(eph("/")).await else {
        panic!("getEphemerals");
    };
    assert_eq!(all.children, ["/app/e1", "/e2"]);
    let Ok(Response::Children(app)) = c.call(eph("/app")).await else {
        panic!("getEphemerals");
    };
    assert_eq!(app.children, ["/app/e1"]);
    let stat = c.exists("/e2", false).await.expect("exists");
    assert_eq!(stat.ephemeral_owner, c.session_id);
    server.shutdown().await;
}

#[tokio::test]
async fn misc_ops_sync_config_reconfig_whoami() {
    let server = Server::start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    let Ok(Response::Sync(r)) = c.call(Request::Sync(PathRequest { path: "/x".into() })).await else {
        panic!("sync");
    };
    assert_eq!(r.path, "/x");
    let (data, _) = c.get("/zookeeper/config", false).await.expect("getConfig");
    assert_eq!(data.as_deref(), Some(&b""[..]));
    let reconfig = Request::Reconfig(ReconfigRequest {
        joining_servers: None,
        leaving_servers: None,
        new_members: None,
        cur_config_id: -1,
    });
    assert_eq!(c.call(reconfig).await, Err(ErrorCode::ReconfigDisabled));
    let Ok(Response::WhoAmI(who)) = c.call(Request::WhoAmI).await else {
        panic!("whoAmI");
    };
    assert_eq!(who.client_info.len(), 1);
    assert_eq!(who.client_info[0].auth_scheme, "ip");
    assert_eq!(who.client_info[0].user, "127.0.0.1");
    server.shutdown().await;
}

#[tokio::test]
async fn standalone_check_is_unimplemented_and_closes() {
    let server = Server::start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    let check = Request::Check(CheckVersionRequest { path: "/".into(), version: -1 });
    assert_eq!(c.call(check).await, Err(ErrorCode::Unimplemented));
    c.expect_closed().await;
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_opcode_is_unimplemented_and_closes() {
    let server = Server::start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    let bytes = common::frame(|b| {
        use corral_proto::Jute;
        RequestHeader { xid: 9, op: OpCode::Unknown(999) }.write(b);
    });
    c.send_raw(&bytes).await;
    let (header, _) = c.reply(9, OpCode::Ping).await;
    assert_eq!(header.err, ErrorCode::Unimplemented);
    c.expect_closed().await;
    server.shutdown().await;
}

#[tokio::test]
async fn truncated_body_is_a_marshalling_error_and_keeps_the_connection() {
    let server = Server::start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    let bytes = common::frame(|b| {
        use corral_proto::Jute;
        RequestHeader { xid: 1, op: OpCode::GetData }.write(b);
        b.extend_from_slice(&[0, 0, 0, 50, b'/']);
    });
    c.send_raw(&bytes).await;
    let (header, _) = c.reply(1, OpCode::GetData).await;
    assert_eq!(header.err, ErrorCode::MarshallingError);
    c.sync_events().await;
    server.shutdown().await;
}

fn ttl_request(path: &str, flags: i32, ttl: i64) -> Request {
    Request::CreateTtl(CreateTtlRequest { path: path.into(), data: None, acl: Acl::open_unsafe(), flags, ttl })
}

#[tokio::test]
async fn containers_and_ttl_nodes_are_swept() {
    let clock_ms = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(1_700_000_000_000));
    let now = std::sync::Arc::clone(&clock_ms);
    let builder = Server::builder()
        .container_check_interval(Duration::from_secs(3600))
        .clock(Clock::from_fn(move || now.load(std::sync::atomic::Ordering::SeqCst)));
    let server = TestingServer::with_builder(builder).await.expect("start");
    let mut c = Raw::connect(server.addr()).await;

    let container =
        Request::CreateContainer(CreateRequest { path: "/box".into(), data: None, acl: Acl::open_unsafe(), flags: 4 });
    let Ok(Response::Create2(r)) = c.call(container).await else {
        panic!("createContainer");
    };
    assert_eq!(r.stat.ephemeral_owner, 0, "containers report no owner");
    assert_eq!(server.sweep_now(), 0, "a never-used container stays");
    c.create("/box/item", b"", 0).await.expect("child");
    assert_eq!(server.sweep_now(), 0, "a container with children stays");
    c.exists("/box", true).await.expect("watch");
    c.delete("/box/item", -1).await.expect("delete child");
    assert_eq!(server.sweep_now(), 1);
    assert_eq!(c.event().await.path, "/box");
    assert_eq!(c.exists("/box", false).await, Err(ErrorCode::NoNode));

    let Ok(Response::Create2(r)) = c.call(ttl_request("/ttl", 5, 1000)).await else {
        panic!("createTTL");
    };
    assert_eq!(r.stat.ephemeral_owner, 0, "TTL nodes report no owner");
    assert_eq!(server.sweep_now(), 0);
    clock_ms.fetch_add(1001, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(server.sweep_now(), 1);
    assert_eq!(c.exists("/ttl", false).await, Err(ErrorCode::NoNode));

    let Ok(Response::Create2(r)) = c.call(ttl_request("/seq-", 6, 10)).await else {
        panic!("sequential TTL");
    };
    assert!(r.path.starts_with("/seq-"));
    assert_eq!(c.call(ttl_request("/t", 5, 0)).await, Err(ErrorCode::BadArguments));
    assert_eq!(c.call(ttl_request("/t", 5, 1 << 40)).await, Err(ErrorCode::BadArguments));
    assert_eq!(c.call(ttl_request("/t", 0, 100)).await, Err(ErrorCode::BadArguments));
    assert_eq!(c.create("/t", b"", 5).await, Err(ErrorCode::BadArguments), "TTL mode without a TTL");
    server.close().await;
}

#[tokio::test]
async fn ttl_disabled_is_unimplemented() {
    let server = Server::builder().extended_types(false).start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    assert_eq!(c.call(ttl_request("/t", 5, 100)).await, Err(ErrorCode::Unimplemented));
    server.shutdown().await;
}
