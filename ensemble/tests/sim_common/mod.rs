//! What every simulation test does: run the seeds, print the faults report and the failed
//! seeds (with the command that re-runs each), and fail if any seed failed.

#![allow(dead_code, unreachable_pub)]

use std::time::Instant;

use corral_ensemble_tests::sim::{self, Batch, FaultKind, Workload};

/// Seeds per workload in the default run, and in the long mode (`CORRAL_SIM_LONG=1`).
pub const DEFAULT_SEEDS: u64 = 60;
pub const LONG_SEEDS: u64 = 25_000;

/// Runs `workload` over the seeds of this run and checks them; `test` is the test file's name
/// (for the re-run command).
pub fn run_workload(workload: Workload, test: &str) {
    let seeds = sim::seeds(DEFAULT_SEEDS, LONG_SEEDS);
    let count = seeds.end - seeds.start;
    let started = Instant::now();
    let batch = Batch::run(workload, seeds.clone());
    let wall = started.elapsed();
    let per_minute = count as f64 / wall.as_secs_f64().max(1e-9) * 60.0;
    eprint!("{}", batch.report);
    eprintln!(
        "  seeds {}..{} in {:.1} s of wall clock: {per_minute:.0} seeds per minute",
        seeds.start,
        seeds.end,
        wall.as_secs_f64()
    );
    if let Some(seed) = sim::chosen_seed() {
        let run = sim::run_seed(workload, seed);
        eprintln!("trace of seed {seed} (hash {:#018x}):", run.trace_hash());
        for line in &run.trace {
            eprintln!("{line}");
        }
    }
    for run in &batch.failed {
        eprintln!("FAILED seed {} of {}: {:#?}", run.seed, workload.name(), run.violations);
        eprintln!("  re-run it: {}", run.rerun_command(test));
        let from = run.trace.len().saturating_sub(60);
        eprintln!("  last events:\n{}", run.trace[from..].join("\n"));
    }
    eprintln!("{}", batch.tally);
    assert_eq!(batch.tally.failed, 0, "{} of {count} seeds failed (see above)", batch.tally.failed);
    if sim::chosen_seed().is_none() && count >= 20 {
        for kind in FaultKind::ALL {
            assert!(batch.report.faults_of(kind.name()) > 0, "no {} in {count} seeds", kind.name());
        }
    }
}
