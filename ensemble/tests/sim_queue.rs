//! Simulation: the lock-safe queue workload over many seeds (see `corral_ensemble_tests::sim`):
//! every item acknowledged exactly once, none lost.

mod sim_common;

use corral_ensemble_tests::sim::Workload;

#[test]
fn sim_queue_every_item_acknowledged_exactly_once_under_every_fault() {
    sim_common::run_workload(
        Workload::Queue,
        "sim_queue sim_queue_every_item_acknowledged_exactly_once_under_every_fault",
    );
}
