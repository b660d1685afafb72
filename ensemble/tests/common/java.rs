//! The Curator contender (`tests/java/CuratorContender.java`): compiled with `javac` once per
//! source and classpath (`corral_test_support::java::compiled_classes`). Without a JDK or
//! Curator's jars the Curator part of a test is skipped with a `skipping:` line, except under
//! `CI=true` (or `1`), where the test fails.

use corral_test_support::java::{CompileError, classpath, compiled_classes, jdk_tool};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

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
    let java = jdk_tool("java").map_err(|why| format!("{why} (apt-get install {PACKAGES})"))?;
    let jars = classpath(JARS, &format!("apt-get install {PACKAGES}"))?;
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java").join(format!("{CLASS}.java"));
    let classes = compiled_classes("curator-contender", &[source], &jars).map_err(CompileError::skip_reason)?;
    Ok(CuratorJava { java, classpath: format!("{}:{jars}", classes.display()) })
}
