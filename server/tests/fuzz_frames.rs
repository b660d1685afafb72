//! Random and mutated input never panics the server, and never disturbs other sessions.
//!
//! Each case opens a connection, optionally completes the handshake, sends the input, then
//! half-closes: the server reads everything, handles it, sees end of stream and closes. So by
//! the time the connection is closed, every byte has been through the server. A panic hook
//! counts panics anywhere in the process (this file is its own test binary).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use common::{Raw, connect_request, frame};
use corral_proto::records::{AuthPacket, CreateRequest, PathAndWatch, SetWatches2};
use corral_proto::{Acl, Jute, MultiOp, MultiRequest, OpCode, Request, RequestHeader};
use corral_server::testing::TestingServer;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn samples() -> Vec<Bytes> {
    let create = CreateRequest {
        path: "/fz".into(),
        data: Some(Bytes::from_static(b"data")),
        acl: Acl::open_unsafe(),
        flags: 3,
    };
    let requests = vec![
        Request::Create(create.clone()),
        Request::GetData(PathAndWatch { path: "/fz".into(), watch: true }),
        Request::Multi(MultiRequest { ops: vec![MultiOp::Create(create.clone()), MultiOp::Create2(create)] }),
        Request::SetWatches2(SetWatches2 {
            relative_zxid: 0,
            data_watches: vec!["/a".into()],
            exist_watches: vec!["/b".into()],
            child_watches: vec![],
            persistent_watches: vec!["/".into()],
            persistent_recursive_watches: vec!["/".into()],
        }),
        Request::Auth(AuthPacket { auth_type: 0, scheme: "digest".into(), auth: Bytes::from_static(b"u:p") }),
    ];
    requests
        .into_iter()
        .map(|r| {
            frame(|b| {
                RequestHeader { xid: 1, op: r.op_code() }.write(b);
                r.write_body(b);
            })
        })
        .collect()
}

/// Framed requests with any opcode and any body.
fn framed() -> impl Strategy<Value = Vec<u8>> {
    let ops = prop_oneof![
        prop::sample::select(vec![
            1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 100, 101, 102, 103, 104, 105,
            106, 107, -11, -10, -1, 0
        ]),
        any::<i32>(),
    ];
    (any::<i32>(), ops, prop::collection::vec(any::<u8>(), 0..96)).prop_map(|(xid, op, body)| {
        frame(|b| {
            RequestHeader { xid, op: OpCode::from(op) }.write(b);
            b.extend_from_slice(&body);
        })
        .to_vec()
    })
}

/// Valid requests with bytes overwritten and the tail cut.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let samples = samples();
    (
        prop::sample::select(samples),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(sample, edits, cut)| {
            let mut bytes = sample.to_vec();
            for (at, value) in edits {
                let i = at.index(bytes.len());
                if let Some(b) = bytes.get_mut(i) {
                    *b = value;
                }
            }
            bytes.truncate(cut.index(bytes.len() + 1).max(1));
            bytes
        })
}

fn input() -> impl Strategy<Value = (bool, Vec<Vec<u8>>)> {
    let piece = prop_oneof![prop::collection::vec(any::<u8>(), 0..64), framed(), mutated()];
    (any::<bool>(), prop::collection::vec(piece, 1..4))
}

#[test]
fn random_frames_never_panic_nor_disturb_others() {
    std::panic::set_hook(Box::new(|info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        eprintln!("panic: {info}");
    }));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (server, sentinel) = runtime.block_on(async {
        let server = TestingServer::start().await.expect("start");
        let sentinel = Raw::connect(server.addr()).await;
        (server, tokio::sync::Mutex::new(sentinel))
    });
    let addr = server.addr();
    let mut runner = TestRunner::new(Config { cases: 256, failure_persistence: None, ..Config::default() });
    let result = runner.run(&input(), |(handshake, pieces)| {
        runtime.block_on(async {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let mut stream = if handshake {
                let (raw, _) =
                    Raw::handshake_over(stream, connect_request(30_000, 0, Bytes::from_static(&[0; 16]))).await;
                raw.stream
            } else {
                stream
            };
            for piece in &pieces {
                if stream.write_all(piece).await.is_err() {
                    break;
                }
            }
            let _ = stream.shutdown().await;
            let mut sink = Vec::new();
            let closed = tokio::time::timeout(common::WAIT, stream.read_to_end(&mut sink)).await;
            assert!(closed.is_ok(), "the server closes a connection whose input ended");
            sentinel.lock().await.sync_events().await;
        });
        prop_assert_eq!(PANICS.load(Ordering::SeqCst), 0);
        Ok(())
    });
    runtime.block_on(async {
        sentinel.lock().await.sync_events().await;
        server.close().await;
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
