//! Bad input closes only the offending connection.

mod common;

use bytes::Bytes;
use common::{Raw, frame};
use corral_proto::records::CreateRequest;
use corral_proto::{Acl, ErrorCode, Jute, OpCode, RequestHeader};
use corral_server::Server;

#[tokio::test]
async fn oversize_frame_closes_only_that_connection() {
    let server = Server::start().await.expect("start");
    let mut bystander = Raw::connect(server.addr()).await;
    bystander.create("/still", b"", 0).await.expect("create");

    let mut big = Raw::connect(server.addr()).await;
    big.send_raw(&0x10_0000i32.to_be_bytes()).await;
    big.expect_closed().await;

    let mut negative = Raw::connect(server.addr()).await;
    negative.send_raw(&(-5i32).to_be_bytes()).await;
    negative.expect_closed().await;

    let mut short = Raw::connect(server.addr()).await;
    short.send_raw(&[0, 0, 0, 3, 1, 2, 3]).await;
    short.expect_closed().await;

    let stream = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
    let mut garbage = Raw::new(stream);
    garbage.send_raw(&[0, 0, 0, 2, 0xde, 0xad]).await;
    garbage.expect_closed().await;

    bystander.sync_events().await;
    bystander.exists("/still", false).await.expect("the bystander is unaffected");
    server.shutdown().await;
}

#[tokio::test]
async fn a_frame_of_exactly_the_limit_is_accepted() {
    let server = Server::start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    let header_and_fields = 8 + (4 + 2) + 4 + 4 + 4;
    let data = vec![7u8; 0xFFFFF - header_and_fields];
    let bytes = frame(|b| {
        RequestHeader { xid: 1, op: OpCode::Create }.write(b);
        CreateRequest { path: "/x".into(), data: Some(Bytes::from(data)), acl: Vec::new(), flags: 0 }.write(b);
    });
    assert_eq!(bytes.len(), 4 + 0xFFFFF);
    c.send_raw(&bytes).await;
    let (header, _) = c.reply(1, OpCode::Create).await;
    assert_eq!(header.err, ErrorCode::InvalidAcl, "decoded and answered, not dropped");
    c.create_acl("/y", b"", 0, Acl::open_unsafe()).await.expect("still connected");
    server.shutdown().await;
}
