//! Simulation: the mutex workload over many seeds (see `corral_ensemble_tests::sim`).

mod sim_common;

use corral_ensemble_tests::sim::Workload;

#[test]
fn sim_mutex_fenced_counter_holds_under_every_fault() {
    sim_common::run_workload(Workload::Mutex, "sim_mutex sim_mutex_fenced_counter_holds_under_every_fault");
}
