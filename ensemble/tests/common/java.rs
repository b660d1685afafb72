//! The Curator contender (`tests/java/CuratorContender.java`): compiled with `javac` once per
//! source and classpath, cached under Cargo's target tmp dir. Without a JDK or Curator's jars
//! the Curator part of a test is skipped with a `skipping:` line, except under `CI=true` (or
//! `1`), where the test fails.

use corral_test_support::java::{classpath, jdk_tool};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Compile and run time: Curator's recipes and what they need.
const JARS: &[&str] = &[
    "curator-recipes.jar",
    "curator-x-discovery.jar",
    "jackson-databind.jar",
    "jackson-core.jar",
    "jackson-annotations.jar",
    "curator-framework.jar",
    "curator-client.jar",
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "guava.jar",
    "slf4j-api.jar",
    "slf4j-simple.jar",
];
const PACKAGES: &str = "openjdk-17-jdk-headless libcurator-recipes-java libcurator-discovery-java libjackson2-databind-java zookeeper libslf4j-java";
const CLASS: &str = "CuratorContender";

/// How to start the compiled Curator contender.
#[derive(Debug)]
pub struct CuratorJava {
    java: PathBuf,
    classpath: String,
}

impl CuratorJava {
    /// The command that runs one Curator contender (light JVM settings).
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.java);
        command
            .args(["-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData"])
            .args(["-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-Dorg.slf4j.simpleLogger.showDateTime=true"])
            .args(["-cp", &self.classpath, CLASS]);
        command
    }
}

/// The compiled Curator contender, or `None` after a `skipping:` line.
///
/// # Panics
///
/// Under `CI=true` when it cannot be prepared; always when `javac` refuses the source.
pub fn curator() -> Option<&'static CuratorJava> {
    static JAVA: OnceLock<Result<CuratorJava, String>> = OnceLock::new();
    match JAVA.get_or_init(prepare) {
        Ok(java) => Some(java),
        Err(reason) => {
            let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
            assert!(!ci, "CI is set, so tests may not skip, but the Curator contender cannot run: {reason}");
            let line = format!("skipping: the Curator contenders: {reason}\n");
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
            None
        }
    }
}

fn prepare() -> Result<CuratorJava, String> {
    let jdk = |name| jdk_tool(name).map_err(|why| format!("{why} (apt-get install {PACKAGES})"));
    let (java, javac) = (jdk("java")?, jdk("javac")?);
    let jars = classpath(JARS, &format!("apt-get install {PACKAGES}"))?;
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java").join(format!("{CLASS}.java"));
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::fs::read(&source).map_err(|e| format!("{}: {e}", source.display()))?.hash(&mut hasher);
    jars.hash(&mut hasher);
    let classes = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("curator-contender-{:016x}", hasher.finish()));
    if !classes.join(format!("{CLASS}.class")).is_file() {
        // Compile next to the final place and rename, so that concurrent test binaries never
        // see half-written classes.
        let scratch = classes.with_extension(format!("tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
        let log = scratch.join("javac.log");
        let log_file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = Command::new(&javac)
            .args(["-implicit:none", "-d"])
            .arg(&scratch)
            .args(["-cp", &jars])
            .arg(&source)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot start javac: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("javac {} did not finish within 120 s", source.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // A compile error is a bug in the contender, not a missing prerequisite: fail, CI or not.
        assert!(
            status.success(),
            "javac {} failed ({status}):\n{}",
            source.display(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        if std::fs::rename(&scratch, &classes).is_err() {
            // Another test binary got there first.
            let _ = std::fs::remove_dir_all(&scratch);
        }
    }
    Ok(CuratorJava { java, classpath: format!("{}:{jars}", classes.display()) })
}
