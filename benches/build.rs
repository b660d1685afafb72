//! Records the compiler version and the resolved `zookeeper-client` version for the `# ...`
//! context lines the benchmark prints.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc_version = Command::new(rustc)
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=BENCH_RUSTC_VERSION={rustc_version}");

    let lock = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    println!("cargo:rerun-if-changed=build.rs");
    let zkc = std::fs::read_to_string(&lock)
        .ok()
        .and_then(|text| locked_version(&text, "zookeeper-client"))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=BENCH_ZKC_VERSION={zkc}");
}

/// The `version` of the `[[package]]` called `name` in a Cargo.lock.
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let needle = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == needle {
            let next = lines.next()?.trim();
            return next.strip_prefix("version = \"").and_then(|v| v.strip_suffix('"')).map(str::to_owned);
        }
    }
    None
}
