//! Simulation: the leader selector and leader latch workloads over many seeds (see
//! `corral_ensemble_tests::sim`): never two leaders whose fenced writes succeed.

mod sim_common;

use corral_ensemble_tests::sim::Workload;

#[test]
fn sim_selector_one_leader_at_a_time_under_every_fault() {
    sim_common::run_workload(Workload::Selector, "sim_leader sim_selector_one_leader_at_a_time_under_every_fault");
}

#[test]
fn sim_latch_one_leader_at_a_time_under_every_fault() {
    sim_common::run_workload(Workload::Latch, "sim_leader sim_latch_one_leader_at_a_time_under_every_fault");
}
