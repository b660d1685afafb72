//! Every recipe example runs to its end on the embedded server (no arguments) and exits 0.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().expect("test path").parent().expect("deps dir").to_path_buf();
    deps.parent().expect("profile dir").join("examples").join(name)
}

/// Runs `name` with a bounded wait; its output on failure.
fn run(name: &str) {
    let binary = example(name);
    assert!(binary.exists(), "{} not built (cargo test builds the examples)", binary.display());
    let mut child = Command::new(&binary)
        .env_remove("CORRAL_ZK")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let output = child.wait_with_output().expect("output");
            assert!(
                status.success(),
                "{name} failed ({status}):\n{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{name} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_recipe_example_runs_to_its_end() {
    for name in
        ["service_registry", "distributed_lock", "leader_election", "work_queue", "barrier", "counters", "config_watch"]
    {
        run(name);
    }
}
