//! A deterministic simulation of Corral's recipes, beside the real-ensemble tests: the
//! embedded server (a 3-member [`TestingCluster`]) and several [`Framework`]s in one
//! single-threaded Tokio runtime on paused time, connected over in-memory links that the
//! simulation controls ([`net`]). Every random choice — which fault, when, for how long, which
//! client, every message's delay — comes from one seed, and so do the libraries' own random
//! draws (the session's host order, retry and re-create jitter: they use `fastrand`'s
//! thread-local generator, which [`run_seed`] seeds on the simulation's thread). Tokio's paused
//! clock advances only when every task waits, so hours of session timeouts cost no wall time,
//! and one seed is one interleaving.
//!
//! The workloads ([`Workload`]) check the same invariants as the real-ensemble tests, with the
//! same [fenced counter](crate::fenced) and [history check](crate::history): a mutex (no lost
//! or duplicated update, fencing tokens never go backwards, and every write a holder starts
//! after the server ended its session is refused), a leader selector and a leader latch (never
//! two leaders whose fenced writes succeed), and a lock-safe queue (every item acknowledged
//! exactly once, none lost). The faults ([`FaultKind`]) are dropped connections, black holes,
//! one-way cuts, session expiries, client stalls past the session timeout, server-side delays,
//! member kills and simulated elections (every member cuts its clients at once, see
//! [`FaultKind::Election`] for what that models and what not); after each one the workload must
//! make progress again within a bound.
//!
//! Environment: [`SEED_ENV`] (`CORRAL_SIM_SEED=N`) runs exactly seed `N` and keeps its trace;
//! [`LONG_ENV`] (`CORRAL_SIM_LONG=1`) runs many more seeds; [`SEEDS_ENV`] sets the count.

mod faults;
pub mod net;
mod workloads;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use corral_recipes::{Framework, Op};
use corral_server::testing::TestingCluster;
use corral_server::{Clock, Server};
use futures::StreamExt;
use tokio::sync::watch;
use tokio::time::Instant;

pub use faults::FaultKind;
use net::Net;

use crate::fenced::{Outcome, fenced_increment};
use crate::report::{FaultsReport, Tally, VIOLATIONS};

/// Set to a seed to run only that seed (and keep its whole trace).
pub const SEED_ENV: &str = "CORRAL_SIM_SEED";
/// Set to `1` to run many more seeds.
pub const LONG_ENV: &str = "CORRAL_SIM_LONG";
/// Set to a number to run that many seeds (overrides the default and the long count).
pub const SEEDS_ENV: &str = "CORRAL_SIM_SEEDS";
/// Set to a number: the first seed of a run (default 1), to explore seeds not run before.
pub const FIRST_ENV: &str = "CORRAL_SIM_FIRST";

/// The session timeout every simulated client asks for.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(2);

/// The random stream of the fault schedule.
pub(crate) const FAULTS: usize = usize::MAX;

/// The longest a simulated run may take in virtual time before it counts as stuck.
const RUN_CAP: Duration = Duration::from_secs(3600);

/// The bound on waiting for progress after a fault, and at the start and the end of a run.
const PROGRESS_BOUND: Duration = Duration::from_secs(60);

/// A simulated workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Contenders on one [`Mutex`](corral_recipes::lock::Mutex), each hold making fenced writes.
    Mutex,
    /// [`LeaderSelector`](corral_recipes::leader_selector::LeaderSelector)s with auto-requeue,
    /// each term making fenced writes.
    Selector,
    /// [`LeaderLatch`](corral_recipes::leader_latch::LeaderLatch)es, each term making fenced
    /// writes, then closing the latch and joining again.
    Latch,
    /// Consumers of a lock-safe [`DistributedQueue`](corral_recipes::queue::DistributedQueue),
    /// fed by a producer on a link without faults.
    Queue,
}

impl Workload {
    /// Every workload.
    pub const ALL: [Self; 4] = [Self::Mutex, Self::Selector, Self::Latch, Self::Queue];

    /// The workload's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mutex => "mutex",
            Self::Selector => "selector",
            Self::Latch => "latch",
            Self::Queue => "queue",
        }
    }

    /// How many clients the faults aim at.
    fn clients(self) -> usize {
        match self {
            Self::Mutex => 4,
            Self::Selector | Self::Latch | Self::Queue => 3,
        }
    }
}

/// What one seed did.
#[derive(Debug, Clone)]
pub struct SeedRun {
    /// The workload.
    pub workload: Workload,
    /// The seed.
    pub seed: u64,
    /// Every event in order, `"<virtual ms> <who> <what>"`: faults, session states, holds and
    /// terms, writes and their outcomes, items taken and acknowledged.
    pub trace: Vec<String>,
    /// The run's faults report.
    pub report: FaultsReport,
    /// Every broken invariant, described; empty when the seed passed.
    pub violations: Vec<String>,
    /// How long the run took in virtual time.
    pub virtual_time: Duration,
}

impl SeedRun {
    /// Whether no invariant was broken.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// A hash of the whole trace: two runs of one seed have the same one.
    pub fn trace_hash(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        self.trace.hash(&mut hasher);
        hasher.finish()
    }

    /// The command that runs this seed again; `test` is the test's file and name.
    pub fn rerun_command(&self, test: &str) -> String {
        format!("{SEED_ENV}={} cargo test -p corral-ensemble-tests --test {test} -- --nocapture", self.seed)
    }
}

/// Whether Tokio's own random choices are seeded too: only when built with
/// `--cfg tokio_unstable` (which the repository's `.cargo/config.toml` sets), the one way Tokio
/// offers (`Builder::rng_seed`). Without it, a `select!` with two branches ready at once picks
/// one at random, and a seed's interleaving can vary from run to run where that happens.
pub fn tokio_seeded() -> bool {
    cfg!(tokio_unstable)
}

/// Runs `workload` with `seed` in a new single-threaded runtime on paused time.
///
/// # Panics
///
/// If the runtime cannot be built.
pub fn run_seed(workload: Workload, seed: u64) -> SeedRun {
    // The libraries draw from fastrand's thread-local generator; the runtime runs every task on
    // this thread.
    fastrand::seed(seed);
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all().start_paused(true);
    #[cfg(tokio_unstable)]
    builder.rng_seed(tokio::runtime::RngSeed::from_bytes(&seed.to_le_bytes()));
    let runtime = builder.build().expect("a current-thread runtime");
    runtime.block_on(run(workload, seed))
}

/// The outcome of many seeds of one workload.
#[derive(Debug)]
pub struct Batch {
    /// The faults report over every seed.
    pub report: FaultsReport,
    /// Seeds passed and failed.
    pub tally: Tally,
    /// The failed seeds' runs (the first few, with their traces).
    pub failed: Vec<SeedRun>,
    /// Every seed's trace hash, in seed order.
    pub hashes: Vec<(u64, u64)>,
}

impl Batch {
    /// Runs `workload` for every seed of `seeds`, on `threads` threads (each seed on one
    /// thread, in a runtime of its own: the threads change how fast, never what, a seed runs).
    pub fn run(workload: Workload, seeds: impl IntoIterator<Item = u64>, threads: usize) -> Self {
        let seeds: Vec<u64> = seeds.into_iter().collect();
        let threads = threads.clamp(1, seeds.len().max(1));
        let mut runs: Vec<SeedRun> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|k| {
                    let mine: Vec<u64> = seeds.iter().copied().skip(k).step_by(threads).collect();
                    scope.spawn(move || mine.into_iter().map(|seed| run_seed(workload, seed)).collect::<Vec<_>>())
                })
                .collect();
            workers.into_iter().flat_map(|w| w.join().expect("a simulation thread panicked")).collect()
        });
        runs.sort_by_key(|run| run.seed);
        let mut batch = Self {
            report: FaultsReport::new(format!("simulation, {}", workload.name())),
            tally: Tally::default(),
            failed: Vec::new(),
            hashes: Vec::new(),
        };
        batch.report.set("seeds", 0);
        for run in runs {
            batch.report.merge(&run.report);
            batch.report.add("seeds", 1);
            batch.report.add("virtual seconds", run.virtual_time.as_secs());
            batch.tally.record(run.passed());
            batch.hashes.push((run.seed, run.trace_hash()));
            if !run.passed() && batch.failed.len() < 5 {
                batch.failed.push(run);
            }
        }
        batch
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Whether the long mode is on (`CORRAL_SIM_LONG=1`).
pub fn long_mode() -> bool {
    std::env::var(LONG_ENV).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// The seed `CORRAL_SIM_SEED` asks for, if any.
pub fn chosen_seed() -> Option<u64> {
    env_u64(SEED_ENV)
}

/// The seeds to run: the one of [`SEED_ENV`] if set; else [`SEEDS_ENV`] of them, or `long`
/// in the long mode, or `default`, starting at [`FIRST_ENV`] (1).
pub fn seeds(default: u64, long: u64) -> Range<u64> {
    if let Some(seed) = chosen_seed() {
        return seed..seed + 1;
    }
    let count = env_u64(SEEDS_ENV).unwrap_or(if long_mode() { long } else { default });
    let first = env_u64(FIRST_ENV).unwrap_or(1);
    first..first + count
}

/// The shared state of one simulated run.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) cluster: Arc<TestingCluster>,
    pub(crate) net: Net,
    pub(crate) session_timeout: Duration,
    /// The clients the faults aim at are `0..clients`; client `clients` is the observer (the
    /// queue's producer, the history's reader), whose link never fails.
    pub(crate) clients: usize,
    seed: u64,
    start: Instant,
    /// One random stream per client, the observer's, and the fault schedule's (the last).
    rng: Mutex<Vec<fastrand::Rng>>,
    trace: Mutex<Vec<String>>,
    report: Mutex<FaultsReport>,
    violations: Mutex<Vec<String>>,
    progress: watch::Sender<u64>,
    stop: watch::Sender<bool>,
    stalls: Vec<watch::Sender<bool>>,
    /// The session of what each client holds or leads now, if anything.
    holding: Mutex<Vec<Option<i64>>>,
    frameworks: Mutex<Vec<Option<Framework>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl World {
    /// The name of client `c` in traces and fenced writes.
    pub(crate) fn name(&self, c: usize) -> String {
        if c == self.clients { "obs".to_owned() } else { format!("c{c}") }
    }

    /// A uniform draw from `range` (not empty) from the random stream of `who` (a client, or
    /// [`FAULTS`]): each client and the fault schedule draw from their own stream, so that
    /// the values do not depend on how their tasks interleave.
    pub(crate) fn rand(&self, who: usize, range: Range<u64>) -> u64 {
        let mut streams = lock(&self.rng);
        let last = streams.len() - 1;
        streams[who.min(last)].u64(range)
    }

    /// A uniform duration in `[low, high]`, in whole milliseconds, from `who`'s stream.
    pub(crate) fn rand_duration(&self, who: usize, low: Duration, high: Duration) -> Duration {
        let (low, high) = (low.as_millis() as u64, high.as_millis() as u64);
        Duration::from_millis(self.rand(who, low..high.max(low) + 1))
    }

    /// The pause of client `c` between two holds (or terms, or takes).
    pub(crate) fn think_time(&self, c: usize) -> Duration {
        self.rand_duration(c, Duration::from_millis(100), Duration::from_millis(1000))
    }

    fn stamp(&self) -> u128 {
        self.start.elapsed().as_millis()
    }

    /// Records an event of the simulation itself.
    pub(crate) fn event(&self, what: String) {
        let line = format!("{:>8} sim {what}", self.stamp());
        lock(&self.trace).push(line);
    }

    /// Records an event of client `c`.
    pub(crate) fn event_of(&self, c: usize, what: String) {
        let line = format!("{:>8} {} {what}", self.stamp(), self.name(c));
        lock(&self.trace).push(line);
    }

    /// The trace so far.
    pub(crate) fn trace_lines(&self) -> Vec<String> {
        lock(&self.trace).clone()
    }

    /// Records a broken invariant (and the event).
    pub(crate) fn violation(&self, what: String) {
        self.event(format!("VIOLATION {what}"));
        lock(&self.violations).push(what);
    }

    /// Changes the report.
    pub(crate) fn report(&self, f: impl FnOnce(&mut FaultsReport)) {
        f(&mut lock(&self.report));
    }

    /// Counts one unit of progress (a fenced write applied, an item acknowledged).
    pub(crate) fn progressed(&self) {
        self.progress.send_modify(|n| *n += 1);
    }

    pub(crate) fn progress_count(&self) -> u64 {
        *self.progress.borrow()
    }

    /// Waits until the progress count passes `from`; when it did, or `None` after `bound`.
    pub(crate) async fn progress_after(&self, from: u64, bound: Duration) -> Option<Instant> {
        let mut progress = self.progress.subscribe();
        tokio::time::timeout(bound, progress.wait_for(|n| *n > from)).await.ok()?.ok()?;
        Some(Instant::now())
    }

    /// Whether the workload was told to stop.
    pub(crate) fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves when the workload is told to stop.
    pub(crate) async fn stopped(&self) {
        let mut stop = self.stop.subscribe();
        let _ = stop.wait_for(|s| *s).await;
    }

    /// Tells the workload to stop.
    pub(crate) fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Stalls or wakes client `c`.
    pub(crate) fn set_stalled(&self, c: usize, stalled: bool) {
        if let Some(s) = self.stalls.get(c) {
            s.send_replace(stalled);
        }
    }

    /// Where client `c`'s workload stops while it is stalled.
    pub(crate) async fn stall_point(&self, c: usize) {
        if let Some(s) = self.stalls.get(c) {
            let mut stalled = s.subscribe();
            let _ = stalled.wait_for(|s| !*s).await;
        }
    }

    /// Records that client `c` holds (or leads, or has a message in hand) in `session` until
    /// the returned guard is dropped — also when the recipe cancels the work (a leader's task
    /// ends when its leadership is lost).
    pub(crate) fn holding(&self, c: usize, session: i64) -> Holding<'_> {
        if let Some(slot) = lock(&self.holding).get_mut(c) {
            *slot = Some(session);
        }
        Holding { world: self, c }
    }

    /// The clients that hold or lead now.
    pub(crate) fn holders(&self) -> Vec<usize> {
        lock(&self.holding).iter().enumerate().filter(|(_, h)| h.is_some()).map(|(c, _)| c).collect()
    }

    /// The session client `c` is on now (0 if none).
    pub(crate) fn session_of(&self, c: usize) -> i64 {
        lock(&self.frameworks).get(c).and_then(Option::as_ref).map_or(0, |fw| fw.current_state().session_id)
    }

    /// Starts client `c`'s framework (and a task tracing its connection states).
    ///
    /// # Panics
    ///
    /// If the framework cannot be built (a bug in the simulation).
    pub(crate) fn framework(self: &Arc<Self>, c: usize) -> Framework {
        let fw = Framework::builder(self.net.connect_string())
            .session_timeout(self.session_timeout)
            .connection_timeout(self.session_timeout * 2)
            .seed(self.seed ^ (c as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .connector(self.net.connector(c))
            .start()
            .expect("start a simulated framework");
        let mut changes = fw.state_changes();
        let world = Arc::clone(self);
        tokio::spawn(async move {
            while let Some(change) = changes.next().await {
                world.event_of(c, format!("state {} {:#x} {}", change.state, change.session_id, change.epoch));
            }
        });
        if let Some(slot) = lock(&self.frameworks).get_mut(c) {
            *slot = Some(fw.clone());
        }
        fw
    }

    /// Makes one fenced write as client `c` holding `token` (fencing check `check`) in session
    /// `session`; returns whether it was applied. A write started after the server ended
    /// `session` must be refused: if it is applied, that is a violation.
    pub(crate) async fn fenced_write(&self, c: usize, fw: &Framework, check: Op, token: i64, session: i64) -> bool {
        let stale = !self.cluster.sessions().contains(&session);
        match fenced_increment(fw, check, &self.name(c), token).await {
            Outcome::Written(value) => {
                self.event_of(c, format!("write ok {value} {token}"));
                if stale {
                    self.violation(format!(
                        "{} wrote {value} with token {token} after its session {session:#x} had ended",
                        self.name(c)
                    ));
                }
                self.report(|r| r.add("fenced writes", 1));
                self.progressed();
                true
            }
            Outcome::Rejected(_) => {
                self.event_of(c, format!("write rejected {token} stale={stale}"));
                self.report(|r| r.add("writes refused (holder lost its hold)", 1));
                if stale {
                    self.report(|r| r.add("stale holders' writes refused", 1));
                }
                false
            }
            Outcome::Unknown(_) => {
                self.event_of(c, format!("write unknown {token}"));
                self.report(|r| r.add("writes of unknown outcome", 1));
                false
            }
            Outcome::Violation(what) => {
                self.violation(format!("{}: {what}", self.name(c)));
                false
            }
        }
    }
}

/// See [`World::holding`].
#[derive(Debug)]
pub(crate) struct Holding<'a> {
    world: &'a World,
    c: usize,
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        if let Some(slot) = lock(&self.world.holding).get_mut(self.c) {
            *slot = None;
        }
    }
}

/// A short, stable description of an error for the trace: its variant (paths can hold random
/// protection prefixes).
pub(crate) fn error_kind(err: &corral_recipes::Error) -> String {
    // The client's error inside, if that is what it is: `ConnectionLoss`, not `Core`.
    let debug = match err.core() {
        Some(core) => format!("{core:?}"),
        None => format!("{err:?}"),
    };
    let end = debug.find(['(', '{', ' ']).unwrap_or(debug.len());
    debug[..end].to_owned()
}

async fn run(workload: Workload, seed: u64) -> SeedRun {
    let start = Instant::now();
    // The servers' wall clock (ctime, mtime, the first session id) follows virtual time from a
    // fixed instant, so that session ids are the same on every run of a seed.
    let clock = Clock::from_fn(move || 1_700_000_000_000 + i64::try_from(start.elapsed().as_millis()).unwrap_or(0));
    let builder = Server::builder().tick_time(Duration::from_millis(100)).clock(clock);
    let cluster = Arc::new(TestingCluster::with_builder(3, builder).await.expect("start the simulated cluster"));
    let clients = workload.clients();
    let net = Net::new(Arc::clone(&cluster), clients + 1, seed);
    let world = Arc::new(World {
        cluster,
        net,
        session_timeout: SESSION_TIMEOUT,
        clients,
        seed,
        start,
        rng: Mutex::new(
            (0..clients as u64 + 2).map(|n| fastrand::Rng::with_seed(net::mix(seed, 1 << 32 | n))).collect(),
        ),
        trace: Mutex::new(Vec::new()),
        report: Mutex::new(FaultsReport::new(format!("simulation, {}, seed {seed}", workload.name()))),
        violations: Mutex::new(Vec::new()),
        progress: watch::channel(0).0,
        stop: watch::channel(false).0,
        stalls: (0..clients).map(|_| watch::channel(false).0).collect(),
        holding: Mutex::new(vec![None; clients]),
        frameworks: Mutex::new(vec![None; clients + 1]),
    });
    world.event(format!("start {} seed {seed}", workload.name()));
    if tokio::time::timeout(RUN_CAP, workloads::run(workload, &world)).await.is_err() {
        world.violation(format!("the run did not finish within {} virtual seconds", RUN_CAP.as_secs()));
    }
    let frameworks: Vec<Framework> = lock(&world.frameworks).iter().flatten().cloned().collect();
    for fw in frameworks {
        let _ = tokio::time::timeout(SESSION_TIMEOUT, fw.close()).await;
    }
    let violations = lock(&world.violations).clone();
    let mut report = lock(&world.report).clone();
    report.set(VIOLATIONS, violations.len() as u64);
    let trace = std::mem::take(&mut *lock(&world.trace));
    SeedRun { workload, seed, trace, report, violations, virtual_time: start.elapsed() }
}
