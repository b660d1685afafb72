//! Watches over the raw protocol: one-shot, persistent, recursive, setWatches, removal.

mod common;

use bytes::{Bytes, BytesMut};
use common::{Raw, frame};
use corral_proto::records::{AddWatchRequest, CreateRequest, PathAndWatch, SetWatches, SetWatches2, WatchesRequest};
use corral_proto::{
    Acl, AddWatchMode, ErrorCode, EventType, Jute, ReplyHeader, Request, RequestHeader, WatcherType, xid,
};
use corral_server::Server;

#[tokio::test]
async fn one_shot_watches_fire_once_and_before_later_replies() {
    let server = Server::start().await.expect("start");
    let mut w = Raw::connect(server.addr()).await;
    let mut c = Raw::connect(server.addr()).await;
    assert_eq!(w.exists("/n", true).await, Err(ErrorCode::NoNode), "exists watches a missing node");
    c.create("/n", b"", 0).await.expect("create");
    w.sync_events().await;
    let e = w.event().await;
    assert_eq!((e.event_type, e.path.as_str()), (EventType::NodeCreated, "/n"));
    assert_eq!(e.state.code(), 3);

    w.get("/n", true).await.expect("get");
    w.exists("/n", true).await.expect("exists");
    c.set("/n", b"1", -1).await.expect("set");
    c.set("/n", b"2", -1).await.expect("set");
    w.sync_events().await;
    assert_eq!(w.event().await.event_type, EventType::NodeDataChanged);
    assert!(w.events.is_empty(), "one event per connection per trigger, and one-shot");

    w.children("/n", true).await.expect("children");
    w.exists("/n", true).await.expect("exists");
    c.create("/n/kid", b"", 0).await.expect("create");
    w.sync_events().await;
    let e = w.event().await;
    assert_eq!((e.event_type, e.path.as_str()), (EventType::NodeChildrenChanged, "/n"));
    c.delete("/n/kid", -1).await.expect("delete");
    w.children("/n", true).await.expect("children");
    c.delete("/n", -1).await.expect("delete");
    w.sync_events().await;
    let e = w.event().await;
    assert_eq!((e.event_type, e.path.as_str()), (EventType::NodeDeleted, "/n"));
    assert!(w.events.is_empty(), "data and child watch on the deleted node: one event");
    server.shutdown().await;
}

#[tokio::test]
async fn get_data_on_missing_node_leaves_no_watch() {
    let server = Server::start().await.expect("start");
    let mut w = Raw::connect(server.addr()).await;
    assert_eq!(w.get("/late", true).await, Err(ErrorCode::NoNode));
    w.create("/late", b"", 0).await.expect("create");
    w.sync_events().await;
    assert!(w.events.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn persistent_and_recursive_watches() {
    let server = Server::start().await.expect("start");
    let mut w = Raw::connect(server.addr()).await;
    let mut c = Raw::connect(server.addr()).await;
    c.create("/p", b"", 0).await.expect("create");
    let add = |path: &str, mode| Request::AddWatch(AddWatchRequest { path: path.into(), mode });
    w.call(add("/p", AddWatchMode::Persistent)).await.expect("addWatch");
    w.call(add("/p", AddWatchMode::PersistentRecursive)).await.expect("addWatch");
    c.create("/p/a", b"", 0).await.expect("create");
    c.create("/p/a/b", b"", 0).await.expect("create");
    c.set("/p", b"x", -1).await.expect("set");
    c.set("/p", b"y", -1).await.expect("set");
    w.sync_events().await;
    let got: Vec<(EventType, String)> = w.events.drain(..).map(|e| (e.event_type, e.path)).collect();
    assert_eq!(
        got,
        vec![
            (EventType::NodeCreated, "/p/a".to_owned()),
            (EventType::NodeChildrenChanged, "/p".to_owned()),
            (EventType::NodeCreated, "/p/a/b".to_owned()),
            (EventType::NodeDataChanged, "/p".to_owned()),
            (EventType::NodeDataChanged, "/p".to_owned()),
        ],
        "recursive: creates below; persistent: children of /p only; both stay; one event per trigger"
    );
    let remove = |ty| Request::RemoveWatches(WatchesRequest { path: "/p".into(), watcher_type: ty });
    let check = |ty| Request::CheckWatches(WatchesRequest { path: "/p".into(), watcher_type: ty });
    w.call(check(WatcherType::PersistentRecursive)).await.expect("present");
    w.call(remove(WatcherType::PersistentRecursive)).await.expect("removed");
    assert_eq!(w.call(remove(WatcherType::PersistentRecursive)).await, Err(ErrorCode::NoWatcher));
    assert_eq!(w.call(check(WatcherType::PersistentRecursive)).await, Err(ErrorCode::NoWatcher));
    c.create("/p/c", b"", 0).await.expect("create");
    w.sync_events().await;
    let e = w.event().await;
    assert_eq!((e.event_type, e.path.as_str()), (EventType::NodeChildrenChanged, "/p"));
    w.call(remove(WatcherType::Any)).await.expect("removed");
    assert_eq!(w.call(remove(WatcherType::Any)).await, Err(ErrorCode::NoWatcher));
    server.shutdown().await;
}

#[tokio::test]
async fn set_watches_fires_what_was_missed() {
    let server = Server::start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    c.create("/same", b"", 0).await.expect("create");
    c.create("/changed", b"", 0).await.expect("create");
    c.create("/gone", b"", 0).await.expect("create");
    c.create("/kids", b"", 0).await.expect("create");
    let rel = c.last_zxid;
    c.set("/changed", b"new", -1).await.expect("set");
    c.delete("/gone", -1).await.expect("delete");
    c.create("/kids/k", b"", 0).await.expect("create");
    c.create("/born", b"", 0).await.expect("create");

    let mut w = Raw::connect(server.addr()).await;
    let req = Request::SetWatches2(SetWatches2 {
        relative_zxid: rel,
        data_watches: vec!["/same".into(), "/changed".into(), "/gone".into()],
        exist_watches: vec!["/born".into(), "/unborn".into()],
        child_watches: vec!["/kids".into()],
        persistent_watches: vec!["/same".into()],
        persistent_recursive_watches: vec![],
    });
    let (header, _) = w.request(req).await;
    assert_eq!((header.xid, header.err), (-8, ErrorCode::Ok));
    let mut got: Vec<(i32, String)> = w.events.drain(..).map(|e| (e.event_type.code(), e.path)).collect();
    got.sort();
    assert_eq!(
        got,
        vec![(1, "/born".to_owned()), (2, "/gone".to_owned()), (3, "/changed".to_owned()), (4, "/kids".to_owned()),],
        "events come before the setWatches reply"
    );
    c.create("/unborn", b"", 0).await.expect("create");
    c.set("/same", b"x", -1).await.expect("set");
    w.sync_events().await;
    let got: Vec<(EventType, String)> = w.events.drain(..).map(|e| (e.event_type, e.path)).collect();
    assert_eq!(
        got,
        vec![(EventType::NodeCreated, "/unborn".to_owned()), (EventType::NodeDataChanged, "/same".to_owned())]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn watches_go_with_their_connection() {
    let server = Server::start().await.expect("start");
    let mut w = Raw::connect(server.addr()).await;
    let mut c = Raw::connect(server.addr()).await;
    c.create("/x", b"", 0).await.expect("create");
    w.get("/x", true).await.expect("watch");
    let (mut w2, _) = w.resume(server.addr()).await;
    w.expect_closed().await;
    c.set("/x", b"1", -1).await.expect("set");
    w2.sync_events().await;
    assert!(w2.events.is_empty(), "the new connection did not inherit the old one's watches");
    server.shutdown().await;
}

#[tokio::test]
async fn pipelined_replies_and_own_notifications_keep_their_order() {
    // One write carrying exists(watch), create, ping and getData: the create fires this very
    // connection's watch, so the notification must come between the exists and create replies,
    // and everything after it must follow it, whether a reply skipped the connection's queue or
    // waited in it.
    let server = Server::start().await.expect("start");
    let mut w = Raw::connect(server.addr()).await;
    let requests = [
        (1, Request::Exists(PathAndWatch { path: "/o".into(), watch: true })),
        (
            2,
            Request::Create(CreateRequest {
                path: "/o".into(),
                data: Some(Bytes::new()),
                acl: Acl::open_unsafe(),
                flags: 0,
            }),
        ),
        (xid::PING, Request::Ping),
        (3, Request::GetData(PathAndWatch { path: "/o".into(), watch: false })),
    ];
    let mut input = BytesMut::new();
    for (xid, request) in &requests {
        input.extend_from_slice(&frame(|b| {
            RequestHeader { xid: *xid, op: request.op_code() }.write(b);
            request.write_body(b);
        }));
    }
    w.send_raw(&input).await;
    let mut order = Vec::new();
    for _ in 0..5 {
        let payload = w.read_frame().await.expect("a frame");
        let header = ReplyHeader::read(&mut &payload[..]).expect("reply header");
        order.push((header.xid, header.err));
    }
    assert_eq!(
        order,
        [
            (1, ErrorCode::NoNode),
            (xid::NOTIFICATION, ErrorCode::Ok),
            (2, ErrorCode::Ok),
            (xid::PING, ErrorCode::Ok),
            (3, ErrorCode::Ok)
        ]
    );
    // Now nothing is queued: a plain ping is answered straight away, after the earlier frames.
    w.sync_events().await;
    server.shutdown().await;
}

/// `persistent_watches(false)`: the server answers as ZooKeeper 3.5 (which has no persistent
/// watches) does — addWatch and setWatches2 are unknown opcodes (Unimplemented with zxid −1,
/// then the connection closes, the session stays), the persistent watcher types in
/// checkWatches/removeWatches are a MarshallingError — and serves one-shot watches and
/// setWatches as usual.
#[tokio::test]
async fn without_persistent_watches_the_server_answers_as_zookeeper_3_5() {
    let server = Server::builder().persistent_watches(false).start().await.expect("start");
    let mut c = Raw::connect(server.addr()).await;
    let mut writer = Raw::connect(server.addr()).await;
    writer.create("/p", b"", 0).await.expect("create");
    let watches = |ty| WatchesRequest { path: "/p".into(), watcher_type: ty };
    for ty in [WatcherType::Persistent, WatcherType::PersistentRecursive] {
        assert_eq!(c.call(Request::CheckWatches(watches(ty))).await, Err(ErrorCode::MarshallingError));
        assert_eq!(c.call(Request::RemoveWatches(watches(ty))).await, Err(ErrorCode::MarshallingError));
    }
    // One-shot watches work, and removing them too.
    c.get("/p", true).await.expect("get and watch");
    c.call(Request::CheckWatches(watches(WatcherType::Data))).await.expect("a data watch");
    writer.set("/p", b"x", -1).await.expect("set");
    let e = c.event().await;
    assert_eq!((e.event_type, e.path.as_str()), (EventType::NodeDataChanged, "/p"));
    c.sync_events().await;
    let seen = c.last_zxid;

    // addWatch: refused as an unknown opcode, then the connection closes.
    let add = Request::AddWatch(AddWatchRequest { path: "/p".into(), mode: AddWatchMode::PersistentRecursive });
    let (header, body) = c.request(add).await;
    assert_eq!((header.err, header.zxid, body), (ErrorCode::Unimplemented, -1, None));
    c.expect_closed().await;

    // The session is still there; setWatches (v1) restores a watch, setWatches2 is refused.
    let (mut c, resumed) = c.resume(server.addr()).await;
    assert_ne!(resumed.timeout, 0, "the session survived the refusal");
    let set1 = Request::SetWatches(SetWatches {
        relative_zxid: seen,
        data_watches: vec!["/p".into()],
        exist_watches: vec![],
        child_watches: vec![],
    });
    let (header, _) = c.request(set1).await;
    assert_eq!((header.xid, header.err), (-8, ErrorCode::Ok));
    c.call(Request::CheckWatches(watches(WatcherType::Data))).await.expect("the restored data watch");
    let set2 = Request::SetWatches2(SetWatches2 {
        relative_zxid: seen,
        data_watches: vec![],
        exist_watches: vec![],
        child_watches: vec![],
        persistent_watches: vec!["/p".into()],
        persistent_recursive_watches: vec![],
    });
    let (header, _) = c.request(set2).await;
    assert_eq!((header.xid, header.err, header.zxid), (-8, ErrorCode::Unimplemented, -1));
    c.expect_closed().await;
    server.shutdown().await;
}
