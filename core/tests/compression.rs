//! Compressed node data against Curator 5.4's own `GzipCompressionProvider`: the same framing
//! byte for byte, each side decompressing what the other compressed (offline and through nodes
//! on the embedded server and a real ZooKeeper), and the same refusals.
//!
//! The Java side is `tests/java/CuratorCompressionPeer.java`, compiled with `javac` once per
//! source and classpath under Cargo's target tmp dir and run in batches (commands on stdin,
//! answers on stdout). Without Java, javac or the jars the Curator tests skip with a
//! `skipping:` line on stderr, except under `CI=true` (or `1`), where they fail.

mod common;

use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use corral_core::framework::{CompressionProvider, Create, GzipCompressionProvider};
use corral_core::{CreateMode, Error, Framework, RetryNTimes};

const JAR_DIR: &str = "/usr/share/java";
const JARS: &[&str] = &[
    "curator-framework.jar",
    "curator-client.jar",
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "guava.jar",
    "slf4j-api.jar",
    "slf4j-simple.jar",
];
const PACKAGES: &str = "openjdk-17-jdk-headless libcurator-framework-java zookeeper libslf4j-java";
const CLASS: &str = "CuratorCompressionPeer";

struct Java {
    java: PathBuf,
    classpath: String,
}

fn tool(name: &str) -> Result<PathBuf, String> {
    let from_home = std::env::var_os("JAVA_HOME").map(|home| Path::new(&home).join("bin").join(name));
    from_home
        .filter(|p| p.is_file())
        .or_else(|| {
            std::env::var_os("PATH").iter().flat_map(std::env::split_paths).map(|d| d.join(name)).find(|p| p.is_file())
        })
        .ok_or_else(|| format!("no `{name}` in JAVA_HOME or PATH (apt-get install {PACKAGES})"))
}

fn prepare() -> Result<Java, String> {
    let java = tool("java")?;
    let javac = tool("javac")?;
    let jars = JARS
        .iter()
        .map(|name| {
            let path = Path::new(JAR_DIR).join(name);
            if path.is_file() {
                Ok(path.display().to_string())
            } else {
                Err(format!("{} is missing (apt-get install {PACKAGES})", path.display()))
            }
        })
        .collect::<Result<Vec<_>, _>>()?
        .join(":");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/java/{CLASS}.java"));
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::fs::read(&source).map_err(|e| format!("{}: {e}", source.display()))?.hash(&mut hasher);
    jars.hash(&mut hasher);
    let classes = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("curator-compression-{:016x}", hasher.finish()));
    if !classes.join(format!("{CLASS}.class")).is_file() {
        // Compile beside the final place and rename, so a concurrent run never sees half of it.
        let scratch = classes.with_extension(format!("tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
        let out = Command::new(&javac)
            .args(["-implicit:none", "-d"])
            .arg(&scratch)
            .args(["-cp", &jars])
            .arg(&source)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run javac: {e}"))?;
        // A compile error is a bug in the peer, not a missing prerequisite: fail, CI or not.
        assert!(out.status.success(), "javac {} failed:\n{}", source.display(), String::from_utf8_lossy(&out.stderr));
        if std::fs::rename(&scratch, &classes).is_err() {
            let _ = std::fs::remove_dir_all(&scratch);
        }
    }
    Ok(Java { java, classpath: format!("{}:{jars}", classes.display()) })
}

/// The compiled peer, or `None` after a `skipping:` line (a failure under `CI`).
fn java() -> Option<&'static Java> {
    static JAVA: OnceLock<Result<Java, String>> = OnceLock::new();
    match JAVA.get_or_init(prepare) {
        Ok(java) => Some(java),
        Err(reason) => {
            let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
            assert!(!ci, "CI is set, so tests may not skip, but the Curator peer cannot run: {reason}");
            let _ = std::io::stderr().write_all(format!("skipping: Curator compression tests: {reason}\n").as_bytes());
            None
        }
    }
}

/// Runs the peer on `commands` (connected to `connect` when given) and returns its answers,
/// one per command. Any `ERROR` line fails the test.
async fn run(java: &Java, connect: Option<String>, commands: Vec<String>) -> Vec<String> {
    let mut command = Command::new(&java.java);
    command
        .args(["-Xshare:auto", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx128m"])
        .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .args(["-cp", &java.classpath, CLASS])
        .args(connect)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let expected = commands.len();
    let (stdout, stderr) = tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("start the Java peer");
        let mut stdin = child.stdin.take().expect("stdin");
        let mut out = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let writer = std::thread::spawn(move || {
            for line in commands {
                writeln!(stdin, "{line}").expect("write to the peer");
            }
        });
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            out.read_to_string(&mut s).map(|_| s)
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            err.read_to_string(&mut s).map(|_| s)
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        while child.try_wait().expect("wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the Java peer did not finish within 120 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        writer.join().expect("writer");
        (reader.join().expect("reader").expect("stdout"), err_reader.join().expect("reader").expect("stderr"))
    })
    .await
    .expect("peer task");
    let lines: Vec<String> = stdout.lines().map(str::to_owned).collect();
    assert!(
        lines.len() == expected && !lines.iter().any(|l| l.starts_with("ERROR")),
        "the Java peer answered {lines:?}\nits stderr:\n{stderr}"
    );
    lines
}

fn hex(data: &[u8]) -> String {
    if data.is_empty() { "-".to_owned() } else { data.iter().map(|b| format!("{b:02x}")).collect() }
}

fn unhex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex")).collect()
}

/// The part of an answer after its head word.
fn payload<'a>(line: &'a str, head: &str) -> &'a str {
    line.strip_prefix(head)
        .and_then(|r| r.strip_prefix(' '))
        .unwrap_or_else(|| panic!("expected `{head} …`, got {line:?}"))
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
    let gzip = GzipCompressionProvider::new();
    let samples = samples();
    let ours: Vec<Vec<u8>> = samples.iter().map(|s| gzip.compress("/p", s).expect("compress").to_vec()).collect();
    let mut commands: Vec<String> = samples.iter().map(|s| format!("compress {}", hex(s))).collect();
    commands.extend(ours.iter().map(|c| format!("decompress {}", hex(c))));
    let answers = run(java, None, commands).await;
    let (theirs, their_reading) = answers.split_at(samples.len());

    let mut identical = 0;
    for (i, sample) in samples.iter().enumerate() {
        let theirs = unhex(payload(&theirs[i], "COMPRESSED"));
        let ours = &ours[i];
        // Curator reads ours, we read Curator's.
        assert_eq!(unhex(payload(&their_reading[i], "DECOMPRESSED")), *sample, "Curator reads sample {i}");
        assert_eq!(&gzip.decompress("/p", &theirs).expect("decompress Curator's")[..], &sample[..], "sample {i}");
        // The same header and trailer, byte for byte.
        assert_eq!(ours[..10], theirs[..10], "header of sample {i}");
        assert_eq!(ours[ours.len() - 8..], theirs[theirs.len() - 8..], "trailer of sample {i}");
        identical += usize::from(*ours == theirs);
    }
    // Curator's constant for empty data, and the one-byte case, are the same bytes whole.
    assert_eq!(unhex(payload(&theirs[0], "COMPRESSED")), ours[0]);
    assert_eq!(unhex(payload(&theirs[1], "COMPRESSED")), ours[1]);
    eprintln!("{identical} of {} samples compressed to identical bytes on both sides", samples.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_refuse_the_same_bad_data() {
    let Some(java) = java() else { return };
    let gzip = GzipCompressionProvider::new();
    let good = gzip.compress("/p", b"some data worth checking").expect("compress").to_vec();
    let n = good.len();
    let mut bad_crc = good.clone();
    bad_crc[n - 8] ^= 1;
    let mut bad_len = good.clone();
    bad_len[n - 4] ^= 1;
    let mut trailing = good.clone();
    trailing.push(0);
    let mut not_gzip = good.clone();
    not_gzip[0] = 0;
    let cases = [
        ("bad crc", bad_crc),
        ("bad length", bad_len),
        ("trailing byte", trailing),
        ("not gzip", not_gzip),
        ("truncated", good[..n - 3].to_vec()),
        ("uncompressed", b"plain text data".to_vec()),
    ];
    let commands = cases.iter().map(|(_, data)| format!("decompress {}", hex(data))).collect();
    let answers = run(java, None, commands).await;
    for ((what, data), answer) in cases.iter().zip(&answers) {
        assert!(answer.starts_with("REFUSED"), "Curator accepted the {what} case: {answer}");
        let err = gzip.decompress("/p", data).expect_err(what);
        assert!(matches!(err, Error::Compression { .. }), "{what}: {err}");
    }
}

fn framework(env: &common::Env) -> Framework {
    Framework::builder(env.connect_string())
        .session_timeout(Duration::from_secs(10))
        .retry_policy(RetryNTimes::new(10, Duration::from_millis(50)))
        .start()
        .expect("start framework")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_reads_our_compressed_nodes_and_we_read_its() {
    let Some(java) = java() else { return };
    for env in common::envs("compression-interop").await {
        eprintln!("-- against the {} server", env.kind);
        let fw = framework(&env);
        fw.wait_until_connected(Duration::from_secs(30)).await.expect("connected");
        let report = "line of a report\n".repeat(200);
        fw.create("/rust-created", report.clone(), Create::new(CreateMode::Persistent).compressed())
            .await
            .expect("create");
        fw.create("/rust-set", "", CreateMode::Persistent).await.expect("create");
        fw.set_data_compressed("/rust-set", "set by Rust", Some(0)).await.expect("set");
        let session = fw.session().await.expect("session");
        let spec = Create::new(CreateMode::Ephemeral).compressed();
        session.create("/rust-ephemeral", "ephemeral and compressed", spec).await.expect("create");
        let spec = Create::new(CreateMode::PersistentSequential).protected().compressed();
        let protected = fw.create("/rust-protected-", "protected and compressed", spec).await.expect("create");
        fw.create("/java-set", "plain", CreateMode::Persistent).await.expect("create");

        let answers = run(
            java,
            Some(env.connect_string()),
            vec![
                "read /rust-created".into(),
                "read /rust-set".into(),
                "read /rust-ephemeral".into(),
                format!("read {protected}"),
                format!("write /java-created {}", hex(report.as_bytes())),
                format!("set /java-set {}", hex(b"set by Curator")),
                "write /java-empty -".into(),
            ],
        )
        .await;
        assert_eq!(unhex(payload(&answers[0], "READ")), report.as_bytes());
        assert_eq!(unhex(payload(&answers[1], "READ")), b"set by Rust");
        assert_eq!(unhex(payload(&answers[2], "READ")), b"ephemeral and compressed");
        assert_eq!(unhex(payload(&answers[3], "READ")), b"protected and compressed");

        let (data, _) = fw.get_data_decompressed("/java-created").await.expect("read");
        assert_eq!(data, report.as_bytes());
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
        assert!(matches!(fw.get_data_decompressed("/plain").await, Err(Error::Compression { .. })));
        fw.close().await;
    }
}
