//! The framework's compressed node data (corral-core's `GzipCompressionProvider`) against Curator
//! 5.4's own `GzipCompressionProvider`: the same framing byte for byte, each side decompressing
//! what the other compressed (offline and through nodes on the embedded server and a real
//! ZooKeeper), and the same refusals.
//!
//! The Java side is `tests/java/CuratorCompressionPeer.java`, compiled and driven by
//! `common::java_peer` as in `curator_interop.rs`: without Java, javac or the jars the tests skip
//! with a `skipping:` line on stderr, except under `CI=true` (or `1`), where they fail.

mod common;

use std::time::Duration;

use corral_recipes::framework::{CompressionProvider, Create, GzipCompressionProvider};
use corral_recipes::{CoreError, CreateMode};

use common::java_peer::{self, Java, Peer, PeerSpec, T};

const SPEC: PeerSpec = PeerSpec {
    class: "CuratorCompressionPeer",
    jars: &[java_peer::CURATOR_RECIPES_JARS],
    packages: java_peer::CURATOR_RECIPES_PACKAGES,
    tests: "Curator compression interop tests",
    cache: "curator-compression-peer",
};

fn java() -> Option<&'static Java> {
    java_peer::java(&SPEC)
}

/// The peer's hex: `-` for empty.
fn hex(data: &[u8]) -> String {
    if data.is_empty() { "-".to_owned() } else { java_peer::hex(data) }
}

fn unhex(s: &str) -> Vec<u8> {
    if s == "-" { Vec::new() } else { java_peer::unhex(s) }
}

/// Sends `command` and returns what follows `head ` in the answer.
async fn ask(peer: &mut Peer, command: &str, head: &str) -> String {
    peer.send(command);
    let line = peer.expect(head).await;
    line[head.len()..].trim_start().to_owned()
}

/// Inputs of every shape: empty, one byte, text, repetitive JSON, random bytes (incompressible:
/// stored blocks), and a run long enough for several deflate blocks.
fn samples() -> Vec<Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(16);
    let json: String = (0..300).map(|i| format!("{{\"id\":{i},\"name\":\"worker-{i}\",\"up\":true}},")).collect();
    vec![
        Vec::new(),
        b"x".to_vec(),
        b"hello, compressed world".to_vec(),
        json.into_bytes(),
        (0..5000).map(|_| rng.u8(..)).collect(),
        (0..300_000u32).map(|i| (i % 251) as u8 ^ (i / 4096) as u8).collect(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_is_curators_and_each_side_reads_the_other() {
    let Some(java) = java() else { return };
    let mut peer = Peer::start(java).await;
    let gzip = GzipCompressionProvider::new();
    let mut identical = 0;
    for (i, sample) in samples().iter().enumerate() {
        let ours = gzip.compress("/p", sample).expect("compress");
        let theirs = unhex(&ask(&mut peer, &format!("compress {}", hex(sample)), "COMPRESSED").await);
        // Curator reads ours, we read Curator's.
        let read = unhex(&ask(&mut peer, &format!("decompress {}", hex(&ours)), "DECOMPRESSED").await);
        assert_eq!(read, *sample, "Curator reads sample {i}");
        assert_eq!(&gzip.decompress("/p", &theirs).expect("decompress Curator's")[..], &sample[..], "sample {i}");
        // The same header and trailer, byte for byte.
        assert_eq!(ours[..10], theirs[..10], "header of sample {i}");
        assert_eq!(ours[ours.len() - 8..], theirs[theirs.len() - 8..], "trailer of sample {i}");
        // Curator's constant for empty data, and the one-byte case, are the same bytes whole.
        if i < 2 {
            assert_eq!(ours, theirs, "sample {i}");
        }
        identical += usize::from(ours == theirs);
    }
    eprintln!("{identical} of {} samples compressed to identical bytes on both sides", samples().len());
    peer.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_refuse_the_same_bad_data() {
    let Some(java) = java() else { return };
    let mut peer = Peer::start(java).await;
    let gzip = GzipCompressionProvider::new();
    let good = gzip.compress("/p", b"some data worth checking").expect("compress").to_vec();
    let n = good.len();
    let flip = |i: usize| {
        let mut bad = good.clone();
        bad[i] ^= 1;
        bad
    };
    let mut trailing = good.clone();
    trailing.push(0);
    let cases = [
        ("bad crc", flip(n - 8)),
        ("bad length", flip(n - 4)),
        ("not gzip", flip(0)),
        ("trailing byte", trailing),
        ("truncated", good[..n - 3].to_vec()),
        ("uncompressed", b"plain text data".to_vec()),
    ];
    for (what, data) in &cases {
        let answer = ask(&mut peer, &format!("decompress {}", hex(data)), "DECOMPRESSED").await;
        assert!(answer.starts_with("REFUSED"), "Curator accepted the {what} case: {answer}");
        let err = gzip.decompress("/p", data).expect_err(what);
        assert!(matches!(err, CoreError::Compression { .. }), "{what}: {err}");
    }
    peer.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_reads_our_compressed_nodes_and_we_read_its() {
    let Some(java) = java() else { return };
    let mut peer = Peer::start(java).await;
    for env in common::envs("interop-compression").await {
        eprintln!("-- against the {} server", env.kind);
        peer.connect(&env).await;
        let fw = env.framework();
        fw.wait_until_connected(Duration::from_secs(30)).await.expect("connected");
        let report = "line of a report\n".repeat(200);
        let spec = Create::new(CreateMode::Persistent).compressed();
        fw.create("/rust-created", report.clone(), spec).await.expect("create");
        fw.create("/rust-set", "", CreateMode::Persistent).await.expect("create");
        fw.set_data_compressed("/rust-set", "set by Rust", Some(0)).await.expect("set");
        let session = fw.session().await.expect("session");
        let spec = Create::new(CreateMode::Ephemeral).compressed();
        session.create("/rust-ephemeral", "ephemeral and compressed", spec).await.expect("create");
        let spec = Create::new(CreateMode::PersistentSequential).protected().compressed();
        let protected = fw.create("/rust-protected-", "protected and compressed", spec).await.expect("create");

        for (path, data) in [
            ("/rust-created", report.as_bytes()),
            ("/rust-set", b"set by Rust"),
            ("/rust-ephemeral", b"ephemeral and compressed"),
            (protected.as_str(), b"protected and compressed"),
        ] {
            let read = ask(&mut peer, &format!("read {path}"), &format!("READ {path}")).await;
            assert_eq!(unhex(&read), data, "Curator reads {path}");
        }

        peer.send(&format!("write /java-created {}", hex(report.as_bytes())));
        peer.expect("WROTE /java-created").await;
        fw.create("/java-set", "plain", CreateMode::Persistent).await.expect("create");
        peer.send(&format!("set /java-set {}", hex(b"set by Curator")));
        peer.expect("SET /java-set").await;
        peer.send("write /java-empty -");
        peer.expect("WROTE /java-empty").await;

        assert_eq!(fw.get_data_decompressed("/java-created").await.expect("read").0, report.as_bytes());
        assert_eq!(&fw.get_data_decompressed("/java-set").await.expect("read").0[..], b"set by Curator");
        let (raw, _) = fw.client().get_data("/java-empty").await.expect("read");
        assert_eq!(
            raw,
            GzipCompressionProvider::new().compress("/", b"").expect("compress"),
            "Curator's empty constant"
        );
        assert!(fw.get_data_decompressed("/java-empty").await.expect("read").0.is_empty());
        // Plain data is not gzip: an error, not garbage.
        fw.create("/plain", "not compressed", CreateMode::Persistent).await.expect("create");
        let err = tokio::time::timeout(T, fw.get_data_decompressed("/plain")).await.expect("in time");
        assert!(matches!(err, Err(CoreError::Compression { .. })), "{err:?}");
        fw.close().await;
        peer.disconnect().await;
    }
    peer.quit().await;
}
