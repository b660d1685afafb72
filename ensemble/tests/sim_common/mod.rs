//! What every simulation test does: run the seeds, print the faults report and the failed
//! seeds (with the command that re-runs each), and fail if any seed failed.

#![allow(dead_code, unreachable_pub)]

use std::time::Instant;

use corral_ensemble_tests::sim::{self, Batch, FaultKind, Workload};

/// Seeds per workload in the default run, and in the long mode (`CORRAL_SIM_LONG=1`).
pub const DEFAULT_SEEDS: u64 = 75;
pub const LONG_SEEDS: u64 = 25_000;

/// The threads a batch runs on: `CORRAL_SIM_THREADS`, or the machine's cores, at most 4.
pub fn threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    std::env::var("CORRAL_SIM_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(cores)
}

/// Runs `workload` over the seeds of this run and checks them; `test` is the test's file and
/// name (`sim_leader sim_latch_…`), for the command that re-runs a seed.
pub fn run_workload(workload: Workload, test: &str) {
    if let Some(seed) = sim::chosen_seed() {
        let run = sim::run_seed(workload, seed);
        for line in &run.trace {
            eprintln!("{line}");
        }
        eprint!("{}", run.report);
        eprintln!("  trace of seed {seed}: {} events, hash {:#018x}", run.trace.len(), run.trace_hash());
        eprintln!("{} passed, {} failed", u8::from(run.passed()), u8::from(!run.passed()));
        assert!(run.passed(), "seed {seed} of {}: {:#?}", workload.name(), run.violations);
        return;
    }
    let seeds = sim::seeds(DEFAULT_SEEDS, LONG_SEEDS);
    let count = seeds.end - seeds.start;
    let started = Instant::now();
    let batch = Batch::run(workload, seeds.clone(), threads());
    let wall = started.elapsed();
    let per_minute = count as f64 / wall.as_secs_f64().max(1e-9) * 60.0;
    eprint!("{}", batch.report);
    eprintln!(
        "  seeds {}..{} in {:.1} s of wall clock on {} threads: {per_minute:.0} seeds per minute{}",
        seeds.start,
        seeds.end,
        wall.as_secs_f64(),
        threads(),
        if sim::tokio_seeded() { "" } else { " (Tokio unseeded: built without --cfg tokio_unstable)" }
    );
    for run in &batch.failed {
        eprintln!("FAILED seed {} of {}: {:#?}", run.seed, workload.name(), run.violations);
        let from = run.trace.len().saturating_sub(60);
        eprintln!("  its last events:\n{}", run.trace[from..].join("\n"));
        eprintln!("  re-run it: {}", run.rerun_command(test));
    }
    eprintln!("{}", batch.tally);
    assert_eq!(batch.tally.failed, 0, "{} of {count} seeds failed (see above)", batch.tally.failed);
    if count >= 20 {
        for kind in FaultKind::ALL {
            assert!(batch.report.faults_of(kind.name()) > 0, "no {} in {count} seeds", kind.name());
        }
    }
}
