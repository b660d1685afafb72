//! Finding the JDK and Debian's jars for the Java peers (Curator and ZooKeeper clients the
//! interop tests and benchmarks compile and run).

use std::path::{Path, PathBuf};

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
