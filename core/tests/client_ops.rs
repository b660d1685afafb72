//! Every operation of the client against a real ZooKeeper (or `CORRAL_TEST_ZK`).

mod common;

use std::time::Duration;

use bytes::Bytes;
use corral_core::proto::{Acl, Id, Perms};
use corral_core::{
    AddWatchMode, CreateMode, CreateOptions, Error, ErrorCode, EventType, Op, OpResult, ReadOp, ReadResult, WatcherType,
};
use futures::StreamExt;

const T: Duration = Duration::from_secs(20);

#[tokio::test]
async fn create_get_set_delete_and_stat() {
    for env in common::envs("crud").await {
        eprintln!("-- against the {} server", env.kind);
        let c = env.client().await;
        let (path, stat) = c.create("/a", "one", CreateMode::Persistent).await.unwrap();
        assert_eq!(path, "/a");
        assert_eq!((stat.version, stat.data_length, stat.num_children), (0, 3, 0));
        assert_eq!(stat.czxid, stat.mzxid);

        let (data, s) = c.get_data("/a").await.unwrap();
        assert_eq!(&data[..], b"one");
        assert_eq!(s, stat);

        let s2 = c.set_data("/a", "two", Some(0)).await.unwrap();
        assert_eq!(s2.version, 1);
        assert!(s2.mzxid > s2.czxid);
        let err = c.set_data("/a", "three", Some(0)).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadVersion);

        assert_eq!(c.exists("/a").await.unwrap().map(|s| s.version), Some(1));
        assert_eq!(c.exists("/nope").await.unwrap(), None);

        c.create("/a/child", Bytes::new(), CreateMode::Persistent).await.unwrap();
        let err = c.delete("/a", None).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::NotEmpty);
        let (children, parent) = c.get_children_with_stat("/a").await.unwrap();
        assert_eq!(children, ["child"]);
        assert_eq!((parent.num_children, parent.cversion), (1, 1));
        c.delete("/a/child", Some(0)).await.unwrap();
        c.delete("/a", None).await.unwrap();
        assert!(c.get_data("/a").await.unwrap_err().is_no_node());
        assert!(c.delete("/a", None).await.unwrap_err().is_no_node());
        c.close().await;
    }
}

#[tokio::test]
async fn create_errors_and_modes() {
    for env in common::envs("modes").await {
        eprintln!("-- against the {} server", env.kind);
        let c = env.client().await;
        assert!(c.create("/missing/child", "", CreateMode::Persistent).await.unwrap_err().is_no_node());
        c.create("/p", "", CreateMode::Persistent).await.unwrap();
        assert!(c.create("/p", "", CreateMode::Persistent).await.unwrap_err().is_node_exists());

        let (e, stat) = c.create("/p/e", "", CreateMode::Ephemeral).await.unwrap();
        assert_eq!(e, "/p/e");
        assert_eq!(stat.ephemeral_owner, c.session_id());
        let err = c.create("/p/e/child", "", CreateMode::Persistent).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::NoChildrenForEphemerals);

        let (s1, _) = c.create("/p/q-", "", CreateMode::PersistentSequential).await.unwrap();
        let (s2, _) = c.create("/p/q-", "", CreateMode::EphemeralSequential).await.unwrap();
        assert!(s1.starts_with("/p/q-") && s1.len() == "/p/q-".len() + 10, "{s1}");
        assert!(s2 > s1);

        let (cont, stat) = c.create("/p/container", "", CreateMode::Container).await.unwrap();
        assert_eq!((cont.as_str(), stat.ephemeral_owner), ("/p/container", 0));
        let ttl = CreateOptions::new(CreateMode::PersistentWithTtl).with_ttl(Duration::from_secs(60));
        let (t, stat) = c.create("/p/ttl", "", ttl).await.unwrap();
        assert_eq!((t.as_str(), stat.ephemeral_owner), ("/p/ttl", 0));
        assert!(matches!(c.create("/p/bad", "", CreateMode::PersistentWithTtl).await, Err(Error::BadArguments(_))));

        assert_eq!(c.get_ephemerals("/p").await.unwrap().len(), 2);
        assert_eq!(c.get_all_children_number("/p").await.unwrap(), 5);
        c.close().await;
    }
}

#[tokio::test]
async fn invalid_paths_and_oversize_data_fail_before_sending() {
    for env in common::envs("badinput").await {
        eprintln!("-- against the {} server", env.kind);
        let c = env.client().await;
        for bad in ["", "relative", "/trailing/", "/a//b", "/a/./b", "/nul\0"] {
            assert!(matches!(c.get_data(bad).await, Err(Error::InvalidPath(_))), "{bad:?}");
        }
        let big = vec![7u8; 2 * 1024 * 1024];
        let err = c.create("/big", big, CreateMode::Persistent).await.unwrap_err();
        assert!(matches!(err, Error::RequestTooLarge { .. }), "{err:?}");
        // The session is unharmed.
        c.create("/after", "", CreateMode::Persistent).await.unwrap();
        // Just under the frame limit still works.
        let fits = vec![1u8; 1024 * 1000];
        c.set_data("/after", fits.clone(), None).await.unwrap();
        assert_eq!(c.get_data("/after").await.unwrap().0.len(), fits.len());
        c.close().await;
    }
}

#[tokio::test]
async fn multi_commits_atomically_and_reports_the_failing_op() {
    for env in common::envs("multi").await {
        eprintln!("-- against the {} server", env.kind);
        let c = env.client().await;
        let results = c
            .multi(vec![
                Op::create("/m", "x", CreateMode::Persistent),
                Op::create("/m/s-", "", CreateMode::PersistentSequential),
                Op::set_data("/m", "y", Some(0)),
                Op::check("/m", Some(1)),
            ])
            .await
            .unwrap();
        assert_eq!(results.len(), 4);
        assert!(matches!(&results[0], OpResult::Create { path, .. } if path == "/m"));
        assert!(matches!(&results[1], OpResult::Create { path, .. } if path.starts_with("/m/s-")));
        assert!(matches!(&results[2], OpResult::SetData(s) if s.version == 1));
        assert_eq!(results[3], OpResult::Check);

        let err = c
            .multi(vec![
                Op::create("/m2", "", CreateMode::Persistent),
                Op::delete("/missing", None),
                Op::set_data("/m", "z", None),
            ])
            .await
            .unwrap_err();
        assert_eq!(err, Error::MultiFailed { index: 1, code: ErrorCode::NoNode, path: "/missing".into() });
        assert_eq!(c.exists("/m2").await.unwrap(), None, "nothing applied");
        assert_eq!(&c.get_data("/m").await.unwrap().0[..], b"y");
        assert_eq!(c.multi(vec![]).await.unwrap(), vec![]);

        let reads = c
            .multi_read(vec![
                ReadOp::GetData("/m".into()),
                ReadOp::GetChildren("/m".into()),
                ReadOp::GetData("/nope".into()),
            ])
            .await
            .unwrap();
        assert!(matches!(&reads[0], Ok(ReadResult::Data(d, _)) if &d[..] == b"y"));
        assert!(matches!(&reads[1], Ok(ReadResult::Children(ch)) if ch.len() == 1));
        assert!(matches!(&reads[2], Err(e) if e.is_no_node()));
        c.close().await;
    }
}

#[tokio::test]
async fn one_shot_watches_fire_once() {
    for env in common::envs("oneshot").await {
        eprintln!("-- against the {} server", env.kind);
        let c = env.client().await;
        let other = env.client().await;

        let (stat, created) = c.exists_and_watch("/w").await.unwrap();
        assert_eq!(stat, None);
        other.create("/w", "1", CreateMode::Persistent).await.unwrap();
        let ev = tokio::time::timeout(T, created).await.unwrap();
        assert_eq!((ev.event_type, ev.path.as_str()), (EventType::NodeCreated, "/w"));

        let (_, _, changed) = c.get_data_and_watch("/w").await.unwrap();
        let (_, _, children) = c.get_children_and_watch("/w").await.unwrap();
        other.set_data("/w", "2", None).await.unwrap();
        let ev = tokio::time::timeout(T, changed).await.unwrap();
        assert_eq!(ev.event_type, EventType::NodeDataChanged);
        other.create("/w/c", "", CreateMode::Persistent).await.unwrap();
        let ev = tokio::time::timeout(T, children).await.unwrap();
        assert_eq!((ev.event_type, ev.path.as_str()), (EventType::NodeChildrenChanged, "/w"));

        let (_, _, deleted) = c.get_data_and_watch("/w/c").await.unwrap();
        other.delete("/w/c", None).await.unwrap();
        assert_eq!(tokio::time::timeout(T, deleted).await.unwrap().event_type, EventType::NodeDeleted);
        // Fired watchers are gone; a getData on a missing node leaves none.
        assert!(c.get_data_and_watch("/w/c").await.unwrap_err().is_no_node());
        assert_eq!(c.watcher_count().await, 0);
        c.close().await;
        other.close().await;
    }
}

#[tokio::test]
async fn persistent_and_recursive_watches_stream_events() {
    for env in common::envs("persistent").await {
        eprintln!("-- against the {} server", env.kind);
        let c = env.client().await;
        let other = env.client().await;
        c.create("/r", "", CreateMode::Persistent).await.unwrap();
        // ZooKeeper before 3.9 keeps one watch mode per path and connection (ZOOKEEPER-4466), so
        // the two kinds on the same path are held by two sessions here.
        let c2 = env.client().await;
        let mut persistent = c.add_watch("/r", AddWatchMode::Persistent).await.unwrap();
        let mut recursive = c2.add_watch("/r", AddWatchMode::PersistentRecursive).await.unwrap();

        other.create("/r/a", "", CreateMode::Persistent).await.unwrap();
        other.create("/r/a/b", "", CreateMode::Persistent).await.unwrap();
        other.set_data("/r/a/b", "x", None).await.unwrap();
        other.set_data("/r", "y", None).await.unwrap();

        let mut seen = Vec::new();
        for _ in 0..4 {
            let ev = tokio::time::timeout(T, recursive.next()).await.unwrap().unwrap();
            seen.push((ev.event_type, ev.path));
        }
        assert_eq!(
            seen,
            [
                (EventType::NodeCreated, "/r/a".to_string()),
                (EventType::NodeCreated, "/r/a/b".to_string()),
                (EventType::NodeDataChanged, "/r/a/b".to_string()),
                (EventType::NodeDataChanged, "/r".to_string()),
            ]
        );
        let first = tokio::time::timeout(T, persistent.next()).await.unwrap().unwrap();
        assert_eq!((first.event_type, first.path.as_str()), (EventType::NodeChildrenChanged, "/r"));
        let second = tokio::time::timeout(T, persistent.next()).await.unwrap().unwrap();
        assert_eq!(second.event_type, EventType::NodeDataChanged);

        c.check_watches("/r", WatcherType::Any).await.unwrap();
        drop(persistent);
        drop(recursive);
        // Dropping removes the watches on the server too.
        tokio::time::timeout(T, async {
            loop {
                let gone = |r: corral_core::Result<()>| matches!(r, Err(e) if e.code() == ErrorCode::NoWatcher);
                if gone(c.check_watches("/r", WatcherType::Any).await)
                    && gone(c2.check_watches("/r", WatcherType::Any).await)
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap();
        assert_eq!(c2.watcher_count().await, 0);
        assert_eq!(c.watcher_count().await, 0);
        c.close().await;
        c2.close().await;
        other.close().await;
    }
}

#[tokio::test]
async fn remove_watches_tells_local_watchers() {
    for env in common::envs("removewatch").await {
        eprintln!("-- against the {} server", env.kind);
        let c = env.client().await;
        c.create("/x", "", CreateMode::Persistent).await.unwrap();
        let (_, _, w) = c.get_data_and_watch("/x").await.unwrap();
        c.remove_watches("/x", WatcherType::Data).await.unwrap();
        let ev = tokio::time::timeout(T, w).await.unwrap();
        assert_eq!(ev.event_type, EventType::DataWatchRemoved);
        let err = c.remove_watches("/x", WatcherType::Data).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::NoWatcher);
        c.close().await;
    }
}

#[tokio::test]
async fn chroot_is_applied_and_stripped_everywhere() {
    for env in common::envs("chroot").await {
        eprintln!("-- against the {} server", env.kind);
        let root = corral_core::Client::connect(&env.hosts).await.unwrap();
        let c = env.client().await;
        let (path, _) = c.create("/n-", "", CreateMode::EphemeralSequential).await.unwrap();
        assert!(path.starts_with("/n-"), "{path}");
        assert!(root.exists(&format!("{}{path}", env.chroot)).await.unwrap().is_some());
        assert_eq!(c.get_children("/").await.unwrap(), [path.trim_start_matches('/')]);
        assert_eq!(c.get_ephemerals("/").await.unwrap(), vec![path.clone()]);
        let results = c.multi(vec![Op::create("/m", "", CreateMode::Persistent)]).await.unwrap();
        assert!(matches!(&results[0], OpResult::Create { path, .. } if path == "/m"));
        let mut rec = c.add_watch("/", AddWatchMode::PersistentRecursive).await.unwrap();
        root.set_data(&format!("{}/m", env.chroot), "x", None).await.unwrap();
        let ev = tokio::time::timeout(T, rec.next()).await.unwrap().unwrap();
        assert_eq!(ev.path, "/m");
        c.sync("/").await.unwrap();
        c.close().await;
        root.close().await;
    }
}

#[tokio::test]
async fn digest_auth_and_acls() {
    for env in common::envs("acl").await {
        eprintln!("-- against the {} server", env.kind);
        let owner =
            corral_core::Client::builder(env.connect_string()).digest_auth("alice", "secret").connect().await.unwrap();
        let stranger = env.client().await;
        let acl = vec![Acl::new(Perms::ALL, Id::authenticated()), Acl::new(Perms::READ, Id::anyone())];
        owner.create("/secret", "s", CreateOptions::new(CreateMode::Persistent).with_acl(acl)).await.unwrap();
        let (acl, _) = stranger.get_acl("/secret").await.unwrap();
        assert!(acl.iter().any(|a| a.id.scheme == "digest" && a.id.id.starts_with("alice:")), "{acl:?}");
        assert_eq!(&stranger.get_data("/secret").await.unwrap().0[..], b"s");
        let err = stranger.set_data("/secret", "x", None).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::NoAuth);
        owner.set_data("/secret", "x", None).await.unwrap();

        stranger.add_auth("digest", "alice:secret").await.unwrap();
        stranger.set_data("/secret", "y", None).await.unwrap();
        let ids = stranger.who_am_i().await.unwrap();
        assert!(ids.iter().any(|i| i.auth_scheme == "digest" && i.user == "alice"), "{ids:?}");

        let err = owner.set_acl("/secret", vec![], None).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidAcl);
        let stat = owner.set_acl("/secret", Acl::open_unsafe(), Some(0)).await.unwrap();
        assert_eq!(stat.aversion, 1);
        owner.close().await;
        stranger.close().await;
    }
}

#[tokio::test]
async fn requests_are_pipelined_in_order() {
    for env in common::envs("pipeline").await {
        eprintln!("-- against the {} server", env.kind);
        let c = env.client().await;
        c.create("/counter", "0", CreateMode::Persistent).await.unwrap();
        let mut futures = Vec::new();
        for i in 0..200 {
            futures.push(c.set_data("/counter", i.to_string(), Some(i)));
        }
        let last = c.get_data("/counter");
        for (i, f) in futures.into_iter().enumerate() {
            assert_eq!(f.await.unwrap().version, i as i32 + 1);
        }
        assert_eq!(&last.await.unwrap().0[..], b"199");
        c.close().await;
    }
}

#[tokio::test]
async fn get_config_reads_the_config_node() {
    for env in common::envs("config").await {
        eprintln!("-- against the {} server", env.kind);
        let c = env.client().await;
        // Standalone servers have an empty (or absent-membership) config node; it must be readable.
        c.get_config().await.unwrap();
        let err = c.reconfig(None, None, Some("server.1=127.0.0.1:2888:3888"), -1).await.unwrap_err();
        assert!(
            matches!(err.code(), ErrorCode::Unimplemented | ErrorCode::ReconfigDisabled | ErrorCode::NoAuth),
            "{err:?}"
        );
        c.close().await;
    }
}

/// A watcher dropped while another watching request on the same path is in flight must not
/// remove the server's watch that request is setting (found by the SharedCount tests: several
/// recipes on one session watching one node).
#[tokio::test]
async fn dropping_a_watcher_keeps_the_watch_of_a_request_in_flight() {
    for env in common::envs("watch-in-flight").await {
        eprintln!("-- against the {} server", env.kind);
        let c = env.client().await;
        c.create("/n", "0", CreateMode::Persistent).await.unwrap();
        for round in 1..=20 {
            let (_, _, first) = c.get_data_and_watch("/n").await.unwrap();
            // Queued now, before the drop below: in flight when the removal is handled.
            let second = c.get_data_and_watch("/n");
            drop(first);
            let (_, _, second) = second.await.unwrap();
            c.set_data("/n", round.to_string(), None).await.unwrap();
            let event = tokio::time::timeout(T, second).await.expect("the second watcher fires");
            assert_eq!(event.event_type, EventType::NodeDataChanged);
        }
        assert_eq!(c.watcher_count().await, 0);
        c.close().await;
    }
}

/// A watching request whose watcher is dropped before the reply arrives (the caller gave up on
/// it) leaves no watch behind: neither a local registration nobody listens to, nor the server's
/// watch.
#[tokio::test]
async fn a_watching_request_dropped_in_flight_leaves_no_watch() {
    for env in common::envs("watch-dropped-in-flight").await {
        eprintln!("-- against the {} server", env.kind);
        let c = env.client().await;
        c.create("/n", "0", CreateMode::Persistent).await.unwrap();
        // Queued now; the watcher goes with the future, before the reply can arrive.
        drop(c.get_data_and_watch("/n"));
        drop(c.exists_and_watch("/missing"));
        drop(c.get_children_and_watch("/n"));
        // Answered after the three above (a session's replies come in order).
        c.exists("/n").await.unwrap();
        assert_eq!(c.watcher_count().await, 0, "no local watch is left");
        if env.server.is_some() {
            // The removals are queued before this request, so they are done when it returns.
            c.exists("/n").await.unwrap();
            let wchs = raw_four_letter(&env.hosts, "wchs").await;
            assert!(wchs.contains("Total watches:0"), "the server still holds watches: {wchs}");
        }
        c.close().await;
    }
}

/// Sends a four-letter word to the first host of `hosts` and returns the answer.
async fn raw_four_letter(hosts: &str, word: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = hosts.split(',').next().unwrap();
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    s.write_all(word.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(T, s.read_to_string(&mut out)).await.unwrap().unwrap();
    out
}
