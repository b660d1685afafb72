//! Finding the JDK and Debian's jars for the Java peers (Curator and ZooKeeper clients the
//! interop tests and benchmarks compile and run), and compiling the peers once
//! ([`compiled_classes`]).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long `javac` may take before [`compiled_classes`] gives up on it.
const JAVAC_LIMIT: Duration = Duration::from_secs(120);

/// Where Debian installs Java libraries (`libcurator-*-java`, `zookeeper`, `libnetty-java`…).
pub const JAR_DIR: &str = "/usr/share/java";

/// A JDK tool (`java`, `javac`): `$JAVA_HOME/bin/NAME` if it exists, else `NAME` from `PATH`.
///
/// # Errors
///
/// A message naming the tool when neither has it.
///
/// # Examples
///
/// ```
/// match corral_test_support::java::jdk_tool("java") {
///     Ok(java) => assert!(java.is_file()),
///     Err(why) => assert!(why.contains("`java`")),
/// }
/// ```
pub fn jdk_tool(name: &str) -> Result<PathBuf, String> {
    let from_home = std::env::var_os("JAVA_HOME").map(|home| Path::new(&home).join("bin").join(name));
    from_home
        .into_iter()
        .chain(std::env::var_os("PATH").iter().flat_map(std::env::split_paths).map(|dir| dir.join(name)))
        .find(|path| path.is_file())
        .ok_or_else(|| format!("no `{name}` in JAVA_HOME or PATH"))
}

/// The classpath of `jars` (file names in [`JAR_DIR`]), joined with `:`.
///
/// # Errors
///
/// The first jar that is missing, with `install` (what provides it) in the message.
///
/// # Examples
///
/// ```
/// use corral_test_support::java::classpath;
///
/// let err = classpath(&["no-such.jar"], "apt-get install nothing").unwrap_err();
/// assert!(err.contains("no-such.jar is missing (apt-get install nothing)"));
/// ```
pub fn classpath(jars: &[&str], install: &str) -> Result<String, String> {
    let paths = jars
        .iter()
        .map(|jar| {
            let path = Path::new(JAR_DIR).join(jar);
            if path.is_file() {
                Ok(path.display().to_string())
            } else {
                Err(format!("{} is missing ({install})", path.display()))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(paths.join(":"))
}

/// Why [`compiled_classes`] has no classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileError {
    /// Something the compilation needs is missing: no `javac`, a source that cannot be read, a
    /// cache directory that cannot be written. A reason to skip (outside CI).
    Unavailable(String),
    /// `javac` refused the sources (its output is in the message) or did not finish within two
    /// minutes: a bug in the peer, never a reason to skip.
    Failed(String),
}

impl CompileError {
    /// The reason to skip, for a test: the message of [`CompileError::Unavailable`].
    ///
    /// # Panics
    ///
    /// On [`CompileError::Failed`], with `javac`'s output: a compile error fails the test, CI
    /// or not.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_test_support::java::CompileError;
    ///
    /// let missing = CompileError::Unavailable("no `javac` in JAVA_HOME or PATH".into());
    /// assert_eq!(missing.skip_reason(), "no `javac` in JAVA_HOME or PATH");
    /// ```
    pub fn skip_reason(self) -> String {
        match self {
            Self::Unavailable(reason) => reason,
            Self::Failed(why) => panic!("{why}"),
        }
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(why) | Self::Failed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for CompileError {}

/// The classes of `sources` compiled with `javac` against `classpath`, in a directory of the
/// target dir (`target/tmp/java-classes/<name>-<hash>`) named by a hash of the sources' names
/// and contents and of the classpath, so they are compiled once and again only when one of
/// them changes. Put the returned directory first on the `java` classpath.
///
/// Safe when several test processes (or threads) ask for the same classes at once: each
/// compiles into a scratch directory of its own and renames it into place, so none ever sees
/// half-written classes; whoever loses the race keeps the winner's. The directory counts as
/// there when it holds `<stem>.class` for every source (the peers have no `package`). `javac`
/// runs with `-implicit:none -sourcepath ""` (nothing but the sources given is compiled) and is
/// killed after two minutes.
///
/// # Errors
///
/// [`CompileError::Unavailable`] without `javac` ([`jdk_tool`]), with a source that cannot be
/// read or a cache that cannot be written; [`CompileError::Failed`] with `javac`'s output when
/// it refuses the sources or times out (then nothing is left behind).
///
/// # Examples
///
/// ```no_run
/// use std::path::Path;
/// use corral_test_support::java::{classpath, compiled_classes, jdk_tool};
///
/// let jars = classpath(&["zookeeper.jar"], "apt-get install zookeeper")?;
/// let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java/Peer.java");
/// let classes = compiled_classes("peer", &[source], &jars).map_err(|e| e.skip_reason())?;
/// let java = jdk_tool("java")?;
/// std::process::Command::new(java).args(["-cp", &format!("{}:{jars}", classes.display()), "Peer"]);
/// # Ok::<(), String>(())
/// ```
pub fn compiled_classes(name: &str, sources: &[PathBuf], classpath: &str) -> Result<PathBuf, CompileError> {
    let javac = jdk_tool("javac")
        .map_err(|why| CompileError::Unavailable(format!("{why} (install openjdk-17-jdk-headless)")))?;
    compile_into(&crate::target_dir().join("tmp").join("java-classes"), &javac, name, sources, classpath)
}

/// [`compiled_classes`] under `root`, with this `javac`.
fn compile_into(
    root: &Path,
    javac: &Path,
    name: &str,
    sources: &[PathBuf],
    classpath: &str,
) -> Result<PathBuf, CompileError> {
    let unavailable = |what: &Path, e: std::io::Error| CompileError::Unavailable(format!("{}: {e}", what.display()));
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for source in sources {
        source.file_name().hash(&mut hasher);
        std::fs::read(source).map_err(|e| unavailable(source, e))?.hash(&mut hasher);
    }
    classpath.hash(&mut hasher);
    let classes = root.join(format!("{name}-{:016x}", hasher.finish()));
    let complete = |dir: &Path| {
        sources.iter().all(|source| {
            source.file_stem().is_some_and(|stem| dir.join(Path::new(stem).with_extension("class")).is_file())
        })
    };
    if complete(&classes) {
        return Ok(classes);
    }

    // A scratch directory of this process and call, next to the final place (same file system,
    // so the rename is atomic).
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let scratch = root.join(format!("{name}.tmp-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| unavailable(&scratch, e))?;
    let compiled = run_javac(javac, &scratch, sources, classpath);
    if let Err(e) = compiled {
        let _ = std::fs::remove_dir_all(&scratch);
        return Err(e);
    }
    if std::fs::rename(&scratch, &classes).is_err() {
        // Another process or thread got there first (a directory is not renamed onto a
        // non-empty one); theirs is as good as ours.
        let _ = std::fs::remove_dir_all(&scratch);
        if !complete(&classes) {
            return Err(CompileError::Unavailable(format!("cannot move the classes into {}", classes.display())));
        }
    }
    Ok(classes)
}

/// Compiles `sources` into `out`, its output in `out/javac.log` (removed on success).
fn run_javac(javac: &Path, out: &Path, sources: &[PathBuf], classpath: &str) -> Result<(), CompileError> {
    let log = out.join("javac.log");
    let log_file =
        std::fs::File::create(&log).map_err(|e| CompileError::Unavailable(format!("{}: {e}", log.display())))?;
    let mut command = Command::new(javac);
    command.args(["-implicit:none", "-sourcepath", "", "-d"]).arg(out).args(["-cp", classpath]).args(sources);
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| CompileError::Unavailable(format!("cannot start {}: {e}", javac.display())))?;
    let first = sources.first().map_or_else(String::new, |s| s.display().to_string());
    let deadline = Instant::now() + JAVAC_LIMIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CompileError::Failed(format!("javac {first} did not finish within {JAVAC_LIMIT:?}")));
            }
            Err(e) => return Err(CompileError::Failed(format!("waiting for javac {first}: {e}"))),
        }
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    if !status.success() {
        return Err(CompileError::Failed(format!("javac {first} failed ({status}):\n{output}")));
    }
    let _ = std::fs::remove_file(&log);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh cache root and `javac`, or `None` (a skip outside CI) without a JDK.
    fn setup(test: &str) -> Option<(PathBuf, PathBuf)> {
        let javac = match jdk_tool("javac") {
            Ok(javac) => javac,
            Err(why) if crate::running_in_ci() => panic!("CI is set, but {why}"),
            Err(why) => {
                crate::skip_notice(&why);
                return None;
            }
        };
        Some((crate::guard::fresh_dir(test).expect("a temp dir"), javac))
    }

    fn write(dir: &Path, class: &str, body: &str) -> PathBuf {
        let path = dir.join(format!("{class}.java"));
        std::fs::write(&path, format!("public class {class} {{ {body} }}")).expect("write source");
        path
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn compiles_once_per_content_and_concurrently_into_one_directory() {
        let Some((root, javac)) = setup("corral-javac-cache") else { return };
        let src = root.join("src");
        std::fs::create_dir(&src).unwrap();
        let sources =
            vec![write(&src, "Hello", "static int x = Helper.y;"), write(&src, "Helper", "static int y = 1;")];
        let cache = root.join("cache");

        // Eight threads at once: one directory, the same for all, no scratch left.
        let dirs: Vec<PathBuf> = std::thread::scope(|scope| {
            let tasks: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| compile_into(&cache, &javac, "hello", &sources, "/nowhere.jar")))
                .collect();
            tasks.into_iter().map(|t| t.join().expect("thread").expect("compiled")).collect()
        });
        assert!(dirs.iter().all(|d| d == &dirs[0]), "{dirs:?}");
        assert_eq!(entries(&cache), [dirs[0].file_name().unwrap().to_string_lossy()]);
        assert!(entries(&cache)[0].starts_with("hello-"));
        assert_eq!(entries(&dirs[0]), ["Hello.class", "Helper.class"], "the classes and nothing else");

        // Cached: no javac is run (this one does not exist) for the same sources and classpath.
        let missing = root.join("no-javac");
        assert_eq!(compile_into(&cache, &missing, "hello", &sources, "/nowhere.jar").as_ref(), Ok(&dirs[0]));
        // Another classpath or a changed source is compiled anew, beside it.
        let other_cp = compile_into(&cache, &javac, "hello", &sources, "/elsewhere.jar").expect("compiled");
        write(&src, "Helper", "static int y = 2;");
        let changed = compile_into(&cache, &javac, "hello", &sources, "/nowhere.jar").expect("compiled");
        assert_eq!(entries(&cache).len(), 3, "{other_cp:?} {changed:?}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_refused_source_fails_with_the_output_and_leaves_nothing() {
        let Some((root, javac)) = setup("corral-javac-refused") else { return };
        let source = write(&root, "Broken", "int x = ;");
        let cache = root.join("cache");
        let err = compile_into(&cache, &javac, "broken", std::slice::from_ref(&source), "").unwrap_err();
        let CompileError::Failed(message) = &err else { panic!("{err:?}") };
        assert!(message.contains("Broken.java") && message.contains("error"), "{message}");
        assert!(entries(&cache).is_empty(), "no scratch left behind");
        let missing = compile_into(&cache, &javac, "gone", &[root.join("Gone.java")], "").unwrap_err();
        assert!(matches!(&missing, CompileError::Unavailable(why) if why.contains("Gone.java")), "{missing:?}");
        assert!(std::panic::catch_unwind(|| err.skip_reason()).is_err(), "a compile error is never a skip");
        let _ = std::fs::remove_dir_all(&root);
    }
}
