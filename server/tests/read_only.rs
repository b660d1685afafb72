//! Read-only mode, as ZooKeeper's `ReadOnlyZooKeeperServer` (with local sessions) behaves:
//! which clients and sessions it accepts, the readOnly flag in the ConnectResponse, every write
//! refused with NotReadOnly while reads work, the four-letter words, and switching modes.

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::{Raw, connect_request};
use corral_proto::records::{
    CheckVersionRequest, CreateRequest, CreateTtlRequest, DeleteRequest, PathAndWatch, PathRequest, ReconfigRequest,
    SetAclRequest, SetDataRequest,
};
use corral_proto::{Acl, ConnectRequest, ConnectResponse, ErrorCode, Jute, MultiOp, MultiRequest, Request, Response};
use corral_server::Server;
use corral_server::testing::TestingCluster;
use tokio::net::TcpStream;

fn read_only_request(session_id: i64, passwd: Bytes) -> ConnectRequest {
    ConnectRequest { read_only: Some(true), ..connect_request(30_000, session_id, passwd) }
}

fn zero_password() -> Bytes {
    Bytes::from_static(&[0; 16])
}

/// Sends `req` and returns the ConnectResponse, or `None` if the server closed the connection
/// without answering.
async fn try_handshake(addr: SocketAddr, req: &ConnectRequest) -> Option<(Raw<TcpStream>, ConnectResponse)> {
    let mut raw = Raw::new(TcpStream::connect(addr).await.expect("connect"));
    raw.send_raw(&common::frame(|b| req.write(b))).await;
    let payload = raw.read_frame().await?;
    let resp = ConnectResponse::from_bytes(&payload).expect("decodable ConnectResponse");
    raw.session_id = resp.session_id;
    raw.passwd = resp.passwd.clone();
    raw.timeout = resp.timeout;
    Some((raw, resp))
}

/// The last zxid the server has processed, as a ping's reply reports it.
async fn last_zxid(raw: &mut Raw<TcpStream>) -> i64 {
    let (header, _) = raw.request(Request::Ping).await;
    assert_eq!(header.err, ErrorCode::Ok);
    header.zxid
}

#[tokio::test]
async fn a_read_only_server_closes_clients_that_do_not_accept_it() {
    let server = Server::builder().read_only(true).start().await.expect("start");
    let refused = connect_request(30_000, 0, zero_password());
    assert!(try_handshake(server.addr(), &refused).await.is_none(), "readOnly=false is closed unanswered");
    let legacy = ConnectRequest { read_only: None, ..refused };
    assert!(try_handshake(server.addr(), &legacy).await.is_none(), "a request without the byte is closed too");
    let (mut raw, resp) =
        try_handshake(server.addr(), &read_only_request(0, zero_password())).await.expect("read-only client granted");
    assert_eq!(resp.read_only, Some(true));
    assert_ne!(resp.timeout, 0);
    assert_ne!(resp.session_id, 0);
    assert!(raw.exists("/zookeeper", false).await.is_ok());
    raw.close_session().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_read_write_member_answers_read_only_false_to_a_client_that_accepts_both() {
    let cluster = TestingCluster::start(2).await.expect("start");
    cluster.set_read_only(0, true);
    let (_, resp) =
        try_handshake(cluster.addr(1), &read_only_request(0, zero_password())).await.expect("read/write member");
    assert_eq!(resp.read_only, Some(false));
    let (_, resp) = try_handshake(cluster.addr(0), &read_only_request(0, zero_password())).await.expect("ro member");
    assert_eq!(resp.read_only, Some(true));
    cluster.close().await;
}

#[tokio::test]
async fn every_write_is_refused_with_not_read_only_and_reads_work() {
    let cluster = TestingCluster::start(2).await.expect("start");
    let mut writer = Raw::connect(cluster.addr(1)).await;
    writer.create("/a", b"data", 0).await.expect("create /a");
    writer.create("/a/child", b"", 0).await.expect("create /a/child");
    assert!(cluster.set_read_only(0, true));
    let before = last_zxid(&mut writer).await;

    let (mut ro, _) = try_handshake(cluster.addr(0), &read_only_request(0, zero_password())).await.expect("granted");
    assert_eq!(last_zxid(&mut writer).await, before, "a read-only session is not a transaction");
    let create = CreateRequest { path: "/b".into(), data: None, acl: Acl::open_unsafe(), flags: 0 };
    let ttl = CreateTtlRequest { path: "/t".into(), data: None, acl: Acl::open_unsafe(), flags: 5, ttl: 1000 };
    let writes = [
        Request::Create(create.clone()),
        Request::Create2(create.clone()),
        Request::CreateContainer(CreateRequest { flags: 4, ..create.clone() }),
        Request::CreateTtl(ttl),
        Request::Delete(DeleteRequest { path: "/a/child".into(), version: -1 }),
        Request::DeleteContainer(Bytes::from_static(b"/a/child")),
        Request::SetData(SetDataRequest { path: "/a".into(), data: None, version: -1 }),
        Request::SetAcl(SetAclRequest { path: "/a".into(), acl: Acl::read_unsafe(), version: -1 }),
        Request::Reconfig(ReconfigRequest {
            joining_servers: None,
            leaving_servers: None,
            new_members: None,
            cur_config_id: -1,
        }),
        Request::Multi(MultiRequest { ops: vec![MultiOp::Create(create.clone())] }),
        // Even a multi of checks only, which writes nothing, is refused by opcode.
        Request::Multi(MultiRequest {
            ops: vec![MultiOp::Check(CheckVersionRequest { path: "/a".into(), version: -1 })],
        }),
        Request::Check(CheckVersionRequest { path: "/a".into(), version: -1 }),
        Request::Sync(PathRequest { path: "/a".into() }),
    ];
    for request in writes {
        let op = request.op_code();
        let (header, response) = ro.request(request).await;
        assert_eq!(header.err, ErrorCode::NotReadOnly, "{op:?}");
        assert_eq!(header.zxid, before, "{op:?} answers with the last zxid");
        assert!(response.is_none());
    }
    assert_eq!(last_zxid(&mut writer).await, before, "no refused write consumed a zxid");
    assert_eq!(writer.children("/a", false).await, Ok(vec!["child".to_owned()]), "nothing was deleted");

    // Reads work on the same connection, which stayed open.
    let (data, _) = ro.get("/a", true).await.expect("getData");
    assert_eq!(data.as_deref(), Some(&b"data"[..]));
    assert!(ro.exists("/a/child", false).await.is_ok());
    assert_eq!(ro.children("/a", false).await, Ok(vec!["child".to_owned()]));
    assert!(ro.call(Request::GetChildren2(PathAndWatch { path: "/a".into(), watch: false })).await.is_ok());
    assert!(matches!(ro.call(Request::GetAcl(PathRequest { path: "/a".into() })).await, Ok(Response::GetAcl(_))));
    assert!(ro.call(Request::GetAllChildrenNumber(PathRequest { path: "/a".into() })).await.is_ok());
    assert!(ro.call(Request::GetEphemerals(PathRequest { path: "/".into() })).await.is_ok());
    let read = MultiRequest { ops: vec![MultiOp::GetData(PathAndWatch { path: "/a".into(), watch: false })] };
    assert!(matches!(ro.call(Request::MultiRead(read)).await, Ok(Response::Multi(_))));

    // A watch set on the read-only member fires when a read/write member writes.
    writer.set("/a", b"new", -1).await.expect("setData through the read/write member");
    let event = ro.event().await;
    assert_eq!((event.event_type, event.path.as_str()), (corral_proto::EventType::NodeDataChanged, "/a"));
    cluster.close().await;
}

#[tokio::test]
async fn sessions_a_read_only_member_resumes_and_refuses() {
    let cluster = TestingCluster::start(3).await.expect("start");
    cluster.set_read_only(0, true);
    cluster.set_read_only(2, true);
    // A read/write session is refused on a read-only member (closed, no answer) and its own
    // connection is left alone.
    let mut global = Raw::connect(cluster.addr(1)).await;
    let resume_global = read_only_request(global.session_id, global.passwd.clone());
    assert!(try_handshake(cluster.addr(0), &resume_global).await.is_none(), "global session refused in r-o mode");
    assert!(global.exists("/", false).await.is_ok(), "the session's connection was not closed");

    // A read-only session resumes on its own member only: elsewhere it is unknown (expired).
    let (ro, _) = try_handshake(cluster.addr(0), &read_only_request(0, zero_password())).await.expect("granted");
    let resume_local = read_only_request(ro.session_id, ro.passwd.clone());
    let (_, resp) = try_handshake(cluster.addr(1), &resume_local).await.expect("answered");
    assert_eq!((resp.timeout, resp.session_id), (0, 0), "a read/write member does not know it");
    let (_, resp) = try_handshake(cluster.addr(2), &resume_local).await.expect("answered");
    assert_eq!((resp.timeout, resp.session_id), (0, 0), "another read-only member does not know it");
    let (mut resumed, resp) = try_handshake(cluster.addr(0), &resume_local).await.expect("answered");
    assert_eq!((resp.session_id, resp.read_only), (ro.session_id, Some(true)));
    assert!(resumed.exists("/", false).await.is_ok());
    let wrong = read_only_request(ro.session_id, zero_password());
    let (_, resp) = try_handshake(cluster.addr(0), &wrong).await.expect("answered");
    assert_eq!(resp.timeout, 0, "a wrong password is answered as expired");
    cluster.close().await;
}

#[tokio::test]
async fn switching_modes_closes_the_members_connections_and_forgets_its_read_only_sessions() {
    let cluster = TestingCluster::start(2).await.expect("start");
    let mut global = Raw::connect(cluster.addr(0)).await;
    assert!(cluster.set_read_only(0, true));
    assert!(!cluster.set_read_only(0, true), "no change, nothing closed");
    global.expect_closed().await;
    assert!(cluster.sessions().contains(&global.session_id), "the session lives on");
    let (mut elsewhere, resp) = global.resume(cluster.addr(1)).await;
    assert_eq!(resp.session_id, global.session_id, "resumed on the read/write member");
    assert!(elsewhere.exists("/", false).await.is_ok());

    let (mut ro, _) = try_handshake(cluster.addr(0), &read_only_request(0, zero_password())).await.expect("granted");
    assert!(cluster.sessions().contains(&ro.session_id));
    assert!(cluster.set_read_only(0, false));
    ro.expect_closed().await;
    assert!(!cluster.sessions().contains(&ro.session_id), "leaving read-only mode forgets its sessions");
    let (_, resp) =
        try_handshake(cluster.addr(0), &read_only_request(ro.session_id, ro.passwd.clone())).await.expect("answered");
    assert_eq!(resp.timeout, 0, "the read-only session is gone");
    let (_, resp) = try_handshake(cluster.addr(0), &connect_request(30_000, 0, zero_password()))
        .await
        .expect("a read/write member takes every client again");
    assert_eq!(resp.read_only, Some(false));
    cluster.close().await;
}

#[tokio::test]
async fn four_letter_words_report_the_mode() {
    let cluster = TestingCluster::start(2).await.expect("start");
    cluster.set_read_only(0, true);
    assert_eq!(common::word(cluster.addr(0), b"isro").await, "ro");
    assert_eq!(common::word(cluster.addr(1), b"isro").await, "rw");
    let srvr = common::word(cluster.addr(0), b"srvr").await;
    let lines: Vec<&str> = srvr.lines().collect();
    assert!(lines[0].starts_with("Zookeeper version: "), "{srvr}");
    assert_eq!(lines[1], "READ-ONLY mode; serving only read-only clients", "{srvr}");
    assert!(lines.contains(&"Mode: read-only"), "{srvr}");
    let stat = common::word(cluster.addr(0), b"stat").await;
    assert!(stat.contains("READ-ONLY mode; serving only read-only clients\nClients:\n"), "{stat}");
    assert!(stat.contains("Mode: read-only\n"), "{stat}");
    assert!(common::word(cluster.addr(0), b"mntr").await.contains("zk_server_state\tread-only\n"));
    let rw = common::word(cluster.addr(1), b"srvr").await;
    assert!(rw.contains("Mode: standalone\n") && !rw.contains("READ-ONLY"), "{rw}");
    assert!(common::word(cluster.addr(1), b"mntr").await.contains("zk_server_state\tstandalone\n"));
    cluster.close().await;
}
