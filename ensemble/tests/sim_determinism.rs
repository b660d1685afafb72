//! Simulation: one seed is one interleaving. Each seed runs twice in this process — with fresh
//! random state everywhere the simulation does not control (hash map keys, Tokio's own seeds,
//! UUIDs) — and the two traces (every event of every client and fault, with its virtual time)
//! must be equal, event for event.

use corral_ensemble_tests::sim::{self, Workload};

#[test]
fn sim_same_seed_same_interleaving() {
    let seeds = sim::seeds(4, 50);
    let mut compared = 0;
    for workload in Workload::ALL {
        for seed in seeds.clone() {
            let first = sim::run_seed(workload, seed);
            let second = sim::run_seed(workload, seed);
            assert!(first.trace.len() > 20, "{} seed {seed}: a trace of {} events", workload.name(), first.trace.len());
            if first.trace != second.trace {
                let at = first.trace.iter().zip(&second.trace).position(|(a, b)| a != b).unwrap_or(0);
                let from = at.saturating_sub(3);
                panic!(
                    "{} seed {seed}: the runs diverged at event {at} of {}/{}:\nfirst run:\n{}\nsecond run:\n{}",
                    workload.name(),
                    first.trace.len(),
                    second.trace.len(),
                    first.trace[from..(at + 10).min(first.trace.len())].join("\n"),
                    second.trace[from..(at + 10).min(second.trace.len())].join("\n"),
                );
            }
            assert_eq!(first.trace_hash(), second.trace_hash());
            assert_eq!(first.violations, second.violations);
            compared += 1;
        }
    }
    eprintln!("{compared} seeds ran twice with identical traces");
}
