//! `kazoo` (issue 16): Corral's kazoo-compatible recipes beside kazoo 2.11's own, on one server
//! in one run, so that the ratios the targets are about come from the same conditions.
//!
//! Each figure is measured on Corral's side (`corral_recipes::kazoo`) and then on kazoo's, by
//! `benches/python/kazoo_bench.py` run in the venv `corral-test-support` makes (kazoo 2.11.0
//! from PyPI, as the interop tests use):
//!
//! - **lock**: `--kazoo-cycles` sequential acquire+release cycles of one `Lock` on one client,
//!   then, for each count in `--kazoo-contenders`, that many clients (kazoo: processes) sharing
//!   `--kazoo-contended-total` cycles of one lock;
//! - **lease**: `--kazoo-leases` `NonBlockingLease` obtains (renewals by one identifier);
//! - **partition**: three `SetPartitioner` workers on clients of their own split
//!   `--kazoo-items` items; the third leaves (`finish`) and the time until both others are
//!   `ACQUIRED` with the two-way split is measured, `--kazoo-rebalance-reps` times (the third
//!   joins again in between). Both sides use the same `time_boundary`.
//!
//! The server is the embedded one, started here on a thread and runtime of its own
//! (`--kazoo-server embedded`, the default), `--zk` (`--kazoo-server zk`) or Debian's ZooKeeper
//! started through `corral-test-support` (`--kazoo-server test-zk`). See `benches/README.md`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use corral_recipes::Framework;
use corral_recipes::kazoo::{self, NonBlockingLease, PartitionState, SetPartitioner};
use futures::StreamExt as _;
use tokio::sync::mpsc;

use crate::recipes::{RecipeArgs, ctx, delete_tree, framework};
use crate::report::{Reporter, Unit, note};
use crate::workloads::Config;

/// kazoo's side, run with `python -c`.
const SCRIPT: &str = include_str!("../python/kazoo_bench.py");
/// The root znode of both sides' nodes.
const ROOT: &str = "/anchors-kazoo-bench";

/// The server the `kazoo` benchmark talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum KazooServer {
    /// An embedded server started in this process, on a thread of its own.
    Embedded,
    /// `--zk`.
    Zk,
    /// Debian's ZooKeeper, started through corral-test-support (or `CORRAL_TEST_ZK`).
    TestZk,
}

/// The `kazoo` benchmark's flags.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct KazooArgs {
    /// kazoo: the server both sides use.
    #[arg(long, value_enum, default_value_t = KazooServer::Embedded)]
    pub(crate) kazoo_server: KazooServer,
    /// kazoo: measured uncontended acquire+release cycles per side.
    #[arg(long, default_value_t = 2_000)]
    pub(crate) kazoo_cycles: usize,
    /// kazoo: unmeasured cycles first.
    #[arg(long, default_value_t = 200)]
    pub(crate) kazoo_warmup: usize,
    /// kazoo: contender counts of the contended lock runs.
    #[arg(long, value_delimiter = ',', default_value = "2,4")]
    pub(crate) kazoo_contenders: Vec<usize>,
    /// kazoo: acquire+release cycles shared by the contenders of one run.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) kazoo_contended_total: usize,
    /// kazoo: measured lease obtains per side.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) kazoo_leases: usize,
    /// kazoo: measured rebalances after a member leaves, per side.
    #[arg(long, default_value_t = 5)]
    pub(crate) kazoo_rebalance_reps: usize,
    /// kazoo: items the partitioners split.
    #[arg(long, default_value_t = 12)]
    pub(crate) kazoo_items: usize,
    /// kazoo: the partitioners' `time_boundary` (both sides), ms.
    #[arg(long, default_value_t = 100)]
    pub(crate) kazoo_time_boundary_ms: u64,
    /// kazoo: Corral's side only.
    #[arg(long)]
    pub(crate) kazoo_no_python: bool,
}

/// Runs the `kazoo` benchmark (see the module documentation).
pub(crate) async fn run(cfg: &Config, recipes: &RecipeArgs, args: &KazooArgs, r: &Reporter) -> Result<(), String> {
    let (zk, server) = match args.kazoo_server {
        KazooServer::Zk => (cfg.zk.clone(), None),
        KazooServer::TestZk => {
            let zk = tokio::task::spawn_blocking(corral_test_support::zookeeper)
                .await
                .map_err(ctx("starting ZooKeeper"))?
                .ok_or("--kazoo-server test-zk needs Java and Debian's zookeeper package")?;
            (zk.connect_string(), None)
        }
        KazooServer::Embedded => {
            let server = crate::server::Embedded::start()?;
            (server.connect_string(), Some(server))
        }
    };
    note(format_args!(
        "kazoo: server {zk} ({}); {}",
        crate::server::version_line(crate::server::first_host(&zk)).await,
        load()
    ));
    let python = if args.kazoo_no_python {
        None
    } else {
        let found = tokio::task::spawn_blocking(corral_test_support::python::kazoo_python)
            .await
            .map_err(ctx("making the kazoo venv"))?;
        if found.is_none() {
            note("kazoo: no kazoo venv; Corral's side only");
        }
        found
    };
    let bench = Bench { zk, cfg, recipes, args, r, python, kazoo: HashMap::new(), corral: HashMap::new() };
    let result = bench.all().await;
    drop(server);
    result
}

/// The 1-minute load average and the core count, from `/proc`.
fn load() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!("loadavg {} on {cores} cores", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// One run's state: where to connect, and both sides' figures so far.
struct Bench<'a> {
    zk: String,
    cfg: &'a Config,
    recipes: &'a RecipeArgs,
    args: &'a KazooArgs,
    r: &'a Reporter,
    python: Option<&'static std::path::Path>,
    /// kazoo's figures by metric name (without `kazoo_`).
    kazoo: HashMap<String, f64>,
    /// Corral's rates and medians by metric name.
    corral: HashMap<String, f64>,
}

impl Bench<'_> {
    async fn all(mut self) -> Result<(), String> {
        let admin = self.framework().await?;
        delete_tree(&admin.client(), ROOT).await?;

        self.lock_uncontended().await?;
        self.python(&["lock", &self.args.kazoo_cycles.to_string(), &self.args.kazoo_warmup.to_string()]).await?;
        self.ratio("lock_uncontended_rate", "lock_uncontended_vs_kazoo", "x (target >= 3)");
        for &clients in &self.args.kazoo_contenders.clone() {
            let metric = format!("lock_contended{clients}_rate");
            self.lock_contended(clients).await?;
            self.python(&["lock-contended", &clients.to_string(), &self.args.kazoo_contended_total.to_string()])
                .await?;
            self.ratio(&metric, &format!("lock_contended{clients}_vs_kazoo"), "x (target >= 3)");
        }
        self.lease().await?;
        self.python(&["lease", &self.args.kazoo_leases.to_string()]).await?;
        self.ratio("lease_rate", "lease_vs_kazoo", "x (target >= 3)");
        self.partition().await?;
        let boundary = format!("{}", Duration::from_millis(self.args.kazoo_time_boundary_ms).as_secs_f64());
        self.python(&[
            "partition",
            &self.args.kazoo_rebalance_reps.to_string(),
            &self.args.kazoo_items.to_string(),
            &boundary,
        ])
        .await?;
        self.ratio("partition_rebalance_p50", "partition_rebalance_vs_kazoo", "x (target <= 2)");

        delete_tree(&admin.client(), ROOT).await?;
        admin.close().await;
        Ok(())
    }

    async fn framework(&self) -> Result<Framework, String> {
        framework(&self.zk, self.cfg.session_timeout, self.recipes).await
    }

    /// Prints `metric` (a rate) and remembers it for the ratio.
    fn rate(&mut self, metric: &str, count: usize, elapsed: Duration, unit: &str) {
        let rate = count as f64 / elapsed.as_secs_f64();
        self.r.out(metric, format!("{rate:.0}"), unit);
        self.corral.insert(metric.to_owned(), rate);
    }

    /// Prints Corral's `metric` over kazoo's as `name` (the unit says which way the target
    /// points).
    fn ratio(&self, metric: &str, name: &str, unit: &str) {
        match (self.corral.get(metric), self.kazoo.get(metric)) {
            (Some(ours), Some(theirs)) if *theirs > 0.0 => self.r.out(name, format!("{:.2}", ours / theirs), unit),
            _ => note(format_args!("kazoo: no ratio for {metric} (one side missing)")),
        }
    }

    /// Runs kazoo's side of one figure and records its `kazoo_` lines.
    async fn python(&mut self, bench: &[&str]) -> Result<(), String> {
        let Some(python) = self.python else { return Ok(()) };
        let mut command = std::process::Command::new(python);
        command.arg("-c").arg(SCRIPT).arg(&self.zk).arg(format!("{ROOT}/kazoo")).args(bench);
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .map_err(ctx("the kazoo process"))?
            .map_err(ctx("starting python"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        for line in stdout.lines() {
            println!("{line}");
            let Some((metric, rest)) = line.strip_prefix("kazoo_").and_then(|l| l.split_once('=')) else { continue };
            if let Some(Ok(value)) = rest.split_whitespace().next().map(str::parse::<f64>) {
                self.kazoo.insert(metric.to_owned(), value);
            }
        }
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "kazoo {bench:?} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    async fn lock_uncontended(&mut self) -> Result<(), String> {
        let fw = self.framework().await?;
        let path = format!("{ROOT}/corral/lock-u");
        let lock = kazoo::lock(&fw, path.clone(), "solo");
        for _ in 0..self.args.kazoo_warmup {
            lock.acquire().await.map_err(ctx("warm-up acquire"))?.release().await.map_err(ctx("warm-up release"))?;
        }
        let host = crate::server::first_host(&self.zk).to_owned();
        let packets_before = crate::server::packets_received(&host).await;
        let mut cycles = Vec::with_capacity(self.args.kazoo_cycles);
        let start = Instant::now();
        for _ in 0..self.args.kazoo_cycles {
            let t0 = Instant::now();
            lock.acquire().await.map_err(ctx("acquire"))?.release().await.map_err(ctx("release"))?;
            cycles.push(t0.elapsed());
        }
        let elapsed = start.elapsed();
        let packets_after = crate::server::packets_received(&host).await;
        self.rate("lock_uncontended_rate", cycles.len(), elapsed, "acq/s");
        self.r.per_op("lock_uncontended_requests_per_cycle", packets_before, packets_after, cycles.len());
        self.r.stats("lock_uncontended_cycle", &mut cycles, Unit::Micros);
        fw.close().await;
        Ok(())
    }

    async fn lock_contended(&mut self, clients: usize) -> Result<(), String> {
        let path = format!("{ROOT}/corral/lock-c{clients}");
        let mut fws = Vec::with_capacity(clients);
        for _ in 0..clients.max(1) {
            fws.push(self.framework().await?);
        }
        let tickets = Arc::new(AtomicI64::new(i64::try_from(self.args.kazoo_contended_total).unwrap_or(i64::MAX)));
        let barrier = Arc::new(tokio::sync::Barrier::new(fws.len() + 1));
        let mut tasks = Vec::with_capacity(fws.len());
        for (i, fw) in fws.iter().enumerate() {
            let (lock, tickets, barrier) =
                (kazoo::lock(fw, path.clone(), format!("c{i}")), tickets.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let mut done = 0usize;
                while tickets.fetch_sub(1, Ordering::SeqCst) > 0 {
                    lock.acquire().await.map_err(ctx("contended acquire"))?.release().await.map_err(ctx("release"))?;
                    done += 1;
                }
                Ok::<_, String>(done)
            }));
        }
        let host = crate::server::first_host(&self.zk).to_owned();
        let packets_before = crate::server::packets_received(&host).await;
        barrier.wait().await;
        let start = Instant::now();
        let mut counts = Vec::with_capacity(tasks.len());
        for task in tasks {
            counts.push(task.await.map_err(ctx("contender task"))??);
        }
        let elapsed = start.elapsed();
        let packets_after = crate::server::packets_received(&host).await;
        let total = counts.iter().sum();
        self.rate(&format!("lock_contended{clients}_rate"), total, elapsed, "acq/s");
        self.r.per_op(&format!("lock_contended{clients}_requests_per_cycle"), packets_before, packets_after, total);
        counts.sort_unstable();
        note(format_args!("lock-contended {clients}: acquisitions per client {counts:?}"));
        for fw in fws {
            fw.close().await;
        }
        Ok(())
    }

    async fn lease(&mut self) -> Result<(), String> {
        let fw = self.framework().await?;
        let lease = NonBlockingLease::new(&fw, format!("{ROOT}/corral/lease"), Duration::from_secs(60), "solo");
        for _ in 0..20 {
            lease.obtain().await.map_err(ctx("warm-up lease"))?;
        }
        let mut obtains = Vec::with_capacity(self.args.kazoo_leases);
        let start = Instant::now();
        for _ in 0..self.args.kazoo_leases {
            let t0 = Instant::now();
            if !lease.obtain().await.map_err(ctx("lease"))? {
                return Err("the lease was not obtained".to_owned());
            }
            obtains.push(t0.elapsed());
        }
        let elapsed = start.elapsed();
        self.rate("lease_rate", obtains.len(), elapsed, "leases/s");
        self.r.stats("lease_obtain", &mut obtains, Unit::Micros);
        fw.close().await;
        Ok(())
    }

    async fn partition(&mut self) -> Result<(), String> {
        let path = format!("{ROOT}/corral/partition");
        let items: Vec<String> = (0..self.args.kazoo_items).map(|i| format!("item-{i:03}")).collect();
        let boundary = Duration::from_millis(self.args.kazoo_time_boundary_ms);
        let share = |i: usize, n: usize| items.iter().skip(i).step_by(n).count();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut fws = Vec::with_capacity(3);
        for _ in 0..3 {
            fws.push(self.framework().await?);
        }
        let start_worker = |i: usize| {
            let p = Arc::new(
                SetPartitioner::builder(&fws[i], path.clone(), items.clone(), format!("w{i}"))
                    .time_boundary(boundary)
                    .start(),
            );
            tokio::spawn(follow(i, p.clone(), tx.clone()));
            p
        };
        let begun = Instant::now();
        let mut workers: Vec<_> = (0..3).map(start_worker).collect();
        let limit = Duration::from_secs(60);
        all_acquired(&mut rx, begun, &[share(0, 3), share(1, 3), share(2, 3)], limit).await?;
        let mut rebalances = Vec::with_capacity(self.args.kazoo_rebalance_reps);
        for _ in 0..self.args.kazoo_rebalance_reps {
            let t0 = Instant::now();
            workers[2].finish().await;
            let done = all_acquired(&mut rx, t0, &[share(0, 2), share(1, 2)], limit).await?;
            rebalances.push(done - t0);
            let rejoined = Instant::now();
            workers[2] = start_worker(2);
            all_acquired(&mut rx, rejoined, &[share(0, 3), share(1, 3), share(2, 3)], limit).await?;
        }
        self.r.stats("partition_rebalance", &mut rebalances, Unit::Millis); // sorts
        let median = crate::report::percentile(&rebalances, 50.0).unwrap_or_default();
        self.corral.insert("partition_rebalance_p50".to_owned(), median.as_secs_f64() * 1e3);
        for w in &workers {
            w.finish().await;
        }
        for fw in fws {
            fw.close().await;
        }
        Ok(())
    }
}

/// A worker's follower: answers `Release` with `release_set` (as the application must) and
/// reports every state it sees, with when.
async fn follow(i: usize, p: Arc<SetPartitioner>, tx: mpsc::UnboundedSender<(usize, Instant, PartitionState)>) {
    let mut states = p.states();
    while let Some(state) = states.next().await {
        if state == PartitionState::Release {
            p.release_set();
        }
        if tx.send((i, Instant::now(), state)).is_err() {
            return;
        }
    }
}

/// Waits until worker `i` has reported `Acquired` with `shares[i]` items at or after `since`,
/// for every `i < shares.len()`; returns when the last of them did.
async fn all_acquired(
    rx: &mut mpsc::UnboundedReceiver<(usize, Instant, PartitionState)>,
    since: Instant,
    shares: &[usize],
    limit: Duration,
) -> Result<Instant, String> {
    let mut acquired: Vec<Option<Instant>> = vec![None; shares.len()];
    let wait = async {
        while acquired.iter().any(Option::is_none) {
            let Some((i, at, state)) = rx.recv().await else { return Err("the followers ended".to_owned()) };
            if i >= shares.len() || at < since {
                continue;
            }
            acquired[i] = match state {
                PartitionState::Acquired(items) if items.len() == shares[i] => Some(at),
                _ => None,
            };
        }
        Ok(acquired.iter().flatten().max().copied().unwrap_or(since))
    };
    tokio::time::timeout(limit, wait).await.map_err(|_| format!("the partitioners did not settle in {limit:?}"))?
}
