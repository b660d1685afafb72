//! multi and multiRead over the raw protocol.

mod common;

use bytes::Bytes;
use common::Raw;
use corral_proto::records::{CheckVersionRequest, CreateRequest, DeleteRequest, PathAndWatch, SetDataRequest};
use corral_proto::{Acl, ErrorCode, MultiOp, MultiRequest, MultiResult, Request, Response};
use corral_server::Server;

fn create(path: &str) -> MultiOp {
    MultiOp::Create2(CreateRequest {
        path: path.into(),
        data: Some(Bytes::from_static(b"d")),
        acl: Acl::open_unsafe(),
        flags: 0,
    })
}

fn set(path: &str, version: i32) -> MultiOp {
    MultiOp::SetData(SetDataRequest { path: path.into(), data: None, version })
}

async fn multi(c: &mut Raw<tokio::net::TcpStream>, ops: Vec<MultiOp>) -> (i64, Vec<MultiResult>) {
    let (header, response) = c.request(Request::Multi(MultiRequest { ops })).await;
    assert_eq!(header.err, ErrorCode::Ok, "a multi's header is OK even when it fails");
    match response {
        Some(Response::Multi(r)) => (header.zxid, r.results),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn successful_multi_is_one_transaction() {
    let server = Server::start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    c.create("/m", b"", 0).await.expect("create");
    let ops = vec![
        create("/m/a"),
        create("/m/b"),
        set("/m/a", 0),
        MultiOp::Check(CheckVersionRequest { path: "/m/a".into(), version: 1 }),
        MultiOp::Delete(DeleteRequest { path: "/m/b".into(), version: -1 }),
    ];
    let (zxid, results) = multi(&mut c, ops).await;
    assert_eq!(results.len(), 5);
    assert!(
        matches!(&results[0], MultiResult::Create(r) if r.path == "/m/a"),
        "create2 inside multi answers a type-1 result, as 3.8 does: {:?}",
        results[0]
    );
    assert!(matches!(&results[2], MultiResult::SetData(s) if s.version == 1 && s.mzxid == zxid));
    assert_eq!(results[3], MultiResult::Check);
    assert_eq!(results[4], MultiResult::Delete);
    let a = c.exists("/m/a", false).await.expect("exists");
    assert_eq!((a.czxid, a.mzxid), (zxid, zxid), "every op shares the multi's zxid");
    assert_eq!(c.exists("/m/b", false).await, Err(ErrorCode::NoNode));
    server.shutdown().await;
}

#[tokio::test]
async fn failed_multi_rolls_back_with_per_op_codes() {
    let server = Server::start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    c.create("/r", b"", 0).await.expect("create");
    let before = c.exists("/r", false).await.expect("exists");
    let ops = vec![
        create("/r/new"),
        set("/r", 0),
        MultiOp::Delete(DeleteRequest { path: "/r/missing".into(), version: -1 }),
        set("/r", -1),
    ];
    let (_, results) = multi(&mut c, ops).await;
    assert_eq!(
        results,
        vec![
            MultiResult::Error(ErrorCode::Ok),
            MultiResult::Error(ErrorCode::Ok),
            MultiResult::Error(ErrorCode::NoNode),
            MultiResult::Error(ErrorCode::RuntimeInconsistency),
        ]
    );
    assert_eq!(c.exists("/r/new", false).await, Err(ErrorCode::NoNode));
    let after = c.exists("/r", false).await.expect("exists");
    assert_eq!((after.version, after.cversion, after.pzxid), (before.version, before.cversion, before.pzxid));
    // The rolled-back create did not consume a sequence number.
    assert_eq!(c.create("/r/s-", b"", 2).await.as_deref(), Ok("/r/s-0000000000"));

    let (_, results) =
        multi(&mut c, vec![MultiOp::Check(CheckVersionRequest { path: "/r".into(), version: 42 })]).await;
    assert_eq!(results, vec![MultiResult::Error(ErrorCode::BadVersion)]);
    let (_, results) = multi(&mut c, Vec::new()).await;
    assert!(results.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn multi_read_is_not_atomic() {
    let server = Server::start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    c.create("/r", b"v", 0).await.expect("create");
    let read = |path: &str| PathAndWatch { path: path.into(), watch: false };
    let ops =
        vec![MultiOp::GetData(read("/r")), MultiOp::GetChildren(read("/missing")), MultiOp::GetChildren(read("/"))];
    let Ok(Response::Multi(r)) = c.call(Request::MultiRead(MultiRequest { ops })).await else {
        panic!("multiRead");
    };
    assert!(matches!(&r.results[0], MultiResult::GetData(d) if d.data.as_deref() == Some(&b"v"[..])));
    assert_eq!(r.results[1], MultiResult::Error(ErrorCode::NoNode));
    assert!(matches!(&r.results[2], MultiResult::GetChildren(ch) if ch.children.len() == 2));
    server.shutdown().await;
}
