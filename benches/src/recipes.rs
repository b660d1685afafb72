//! The recipe benchmarks: Corral's side of the anchors' c `mutex`, d `mutex-contended`,
//! e `leader` and f `discovery` (g `expiry` is in `expiry.rs`, the herd in `herd.rs`), plus
//! `cache` (issue 6; its Curator side is `benches/java/CuratorCacheBench.java`).
//!
//! They run against `--zk` (a real ZooKeeper, the same one Curator's anchors use), or with
//! `--embedded` against an embedded server started in this process. Every recipe runs on a
//! [`Framework`] built like Curator's `newClient()` in `CuratorAnchors.java`: the requested
//! session timeout (`--session-timeout-ms`, 30 s), a 15 s connection timeout and
//! `ExponentialBackoffRetry(1000, 3)` (the framework's defaults).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use corral_recipes::cache::{Cache, CacheEvent};
use corral_recipes::discovery::{ProviderStrategy, ServiceDiscovery, ServiceInstance};
use corral_recipes::leader_latch::{self, LeaderLatch};
use corral_recipes::lock::Mutex;
use corral_recipes::{Client, CreateMode, EventType, Framework};
use corral_server::testing::TestingServer;
use futures::StreamExt as _;
use tokio::sync::mpsc;

use crate::report::{Reporter, Unit, note};
use crate::workloads::Config;

/// The root znode of Corral's recipe benchmarks (Curator's anchors use `/anchors-curator`).
pub(crate) const ROOT: &str = "/anchors-corral";

/// Options of the recipe benchmarks and the herd (flattened into the command line).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RecipeArgs {
    /// Recipe benchmarks (mutex, mutex-contended, leader, discovery, expiry, cache) against an
    /// embedded server started in this process instead of `--zk`. `herd` always is.
    #[arg(long)]
    pub(crate) embedded: bool,
    /// Maximum re-session pause after LOST (`FrameworkBuilder::resession_jitter`), ms, for the
    /// recipe benchmarks' frameworks. Default: the framework's (100 ms).
    #[arg(long)]
    pub(crate) resession_jitter_ms: Option<u64>,
    /// mutex: measured acquire+release cycles (at most).
    #[arg(long, default_value_t = 5_000)]
    pub(crate) mutex_cycles: usize,
    /// mutex: time limit of the measured cycles, s.
    #[arg(long, default_value_t = 20.0)]
    pub(crate) mutex_secs: f64,
    /// mutex-contended: clients (one framework each).
    #[arg(long, default_value_t = 8)]
    pub(crate) contended_clients: usize,
    /// mutex-contended: acquisitions in total.
    #[arg(long, default_value_t = 4_000)]
    pub(crate) contended_total: usize,
    /// leader: failovers measured.
    #[arg(long, default_value_t = 20)]
    pub(crate) leader_reps: usize,
    /// expiry: session expiries measured.
    #[arg(long, default_value_t = 10)]
    pub(crate) expiry_reps: usize,
    /// expiry: the expired client's requested session timeout, ms (the anchors use 10 000).
    #[arg(long, default_value_t = 10_000)]
    pub(crate) expiry_session_ms: u64,
    /// expiry: pause before each expiry, ms. The anchors pause 100 ms; Corral's client treats
    /// a connection dropped less than 500 ms after it was made as a "quick drop" and waits
    /// 0–20 ms before reconnecting, so the default keeps each expiry on a connection older
    /// than that, as a real one would be.
    #[arg(long, default_value_t = 600)]
    pub(crate) expiry_pause_ms: u64,
    /// discovery: service instances registered.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) instances: usize,
    /// cache: nodes in the cached subtree.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) cache_nodes: usize,
    /// cache: measured changes (after 200 unmeasured ones).
    #[arg(long, default_value_t = 2_000)]
    pub(crate) cache_changes: usize,
    /// herd: framework clients expired at once.
    #[arg(long, default_value_t = 200)]
    pub(crate) herd_clients: usize,
    /// herd: their requested session timeout, ms.
    #[arg(long, default_value_t = 4_000)]
    pub(crate) herd_session_ms: u64,
    /// herd: worker threads of a runtime of the embedded server's own, as if it ran in its own
    /// process (0: the server shares the clients' runtime).
    #[arg(long, default_value_t = 0)]
    pub(crate) herd_server_threads: usize,
    /// herd-zk: processes the frameworks are spread over.
    #[arg(long, default_value_t = 4)]
    pub(crate) herd_processes: usize,
    /// herd-zk-child: the number of this child's first node.
    #[arg(long, default_value_t = 0, hide = true)]
    pub(crate) herd_offset: usize,
}

/// The recipe benchmarks, by their command-line names.
pub(crate) const BENCHES: [&str; 9] =
    ["herd", "herd-zk", "herd-zk-child", "mutex", "mutex-contended", "leader", "discovery", "expiry", "cache"];

/// Whether `name` is one of this module's benchmarks.
pub(crate) fn is_recipe_bench(name: &str) -> bool {
    BENCHES.contains(&name)
}

/// Runs the recipe benchmark `name` (one of [`BENCHES`]).
pub(crate) async fn run(name: &str, cfg: &Config, args: &RecipeArgs, r: &Reporter) -> Result<(), String> {
    match name {
        "herd" => return crate::herd::herd(args, r).await,
        "herd-zk" => return crate::herd_zk::herd_zk(args, r).await,
        "herd-zk-child" => return crate::herd_zk::child(&cfg.zk, args).await,
        _ => {}
    }
    let target = Target::new(cfg, args).await?;
    let result = match name {
        "mutex" => mutex(&target, cfg, args, r).await,
        "mutex-contended" => mutex_contended(&target, cfg, args, r).await,
        "leader" => leader(&target, cfg, args, r).await,
        "discovery" => discovery(&target, cfg, args, r).await,
        "expiry" => crate::expiry::expiry(&target, cfg, args, r).await,
        "cache" => cache(&target, cfg, args, r).await,
        other => Err(format!("unknown recipe benchmark {other}")),
    };
    target.close().await;
    result
}

/// The server a recipe benchmark talks to: `--zk`, or an embedded one it owns.
#[derive(Debug)]
pub(crate) struct Target {
    /// The connect string.
    pub(crate) zk: String,
    server: Option<TestingServer>,
}

impl Target {
    async fn new(cfg: &Config, args: &RecipeArgs) -> Result<Self, String> {
        if args.embedded {
            let server = TestingServer::start().await.map_err(|e| format!("cannot start the embedded server: {e}"))?;
            note(format_args!("embedded server on {}", server.connect_string()));
            Ok(Self { zk: server.connect_string(), server: Some(server) })
        } else {
            Ok(Self { zk: cfg.zk.clone(), server: None })
        }
    }

    /// The server's `zk_packets_received` (`mntr`), for requests-per-operation figures.
    pub(crate) async fn packets(&self) -> Option<u64> {
        crate::server::packets_received(crate::server::first_host(&self.zk)).await
    }

    /// [`Target::packets`] once the server has gone quiet (requests still trailing the
    /// operation, such as a recipe's watches, are counted): readings 50 ms apart until only the
    /// reading itself came in between, at most 2 s. The extra readings are subtracted, so the
    /// value pairs with [`Reporter::per_op`] as one reading does.
    pub(crate) async fn settled_packets(&self) -> Option<u64> {
        let mut last = self.packets().await?;
        let mut extra = 0u64;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = self.packets().await?;
            extra += 1;
            let quiet = now.saturating_sub(last) <= 1;
            last = now;
            if quiet {
                break;
            }
        }
        Some(last.saturating_sub(extra))
    }

    async fn close(self) {
        if let Some(server) = self.server {
            server.close().await;
        }
    }
}

/// Starts a framework as the anchors' `newClient(sessionMs)` does and waits (15 s) until it is
/// connected.
pub(crate) async fn framework(zk: &str, session: Duration, args: &RecipeArgs) -> Result<Framework, String> {
    let mut builder = Framework::builder(zk).session_timeout(session);
    if let Some(ms) = args.resession_jitter_ms {
        builder = builder.resession_jitter(Duration::from_millis(ms));
    }
    let fw = builder.start().map_err(|e| format!("framework for {zk}: {e}"))?;
    if let Err(e) = fw.wait_until_connected(Duration::from_secs(15)).await {
        fw.close().await;
        return Err(format!("could not connect to {zk}: {e}"));
    }
    Ok(fw)
}

/// Prefixes an error with what was being done.
pub(crate) fn ctx<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Milliseconds with one decimal, the anchors' `%.1f` of a duration in ms.
pub(crate) fn ms1(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

/// Deletes `root` and everything below it (missing nodes are fine). Each level is listed, and
/// the deletes sent, pipelined; deepest level first.
pub(crate) async fn delete_tree(c: &Client, root: &str) -> Result<(), String> {
    let mut levels = vec![vec![root.to_owned()]];
    while let Some(last) = levels.last() {
        let lists: Vec<_> = last.iter().map(|p| c.get_children(p)).collect();
        let mut next = Vec::new();
        for (parent, list) in last.iter().zip(lists) {
            match list.await {
                Ok(children) => next.extend(children.into_iter().map(|child| format!("{parent}/{child}"))),
                Err(e) if e.is_no_node() => {}
                Err(e) => return Err(format!("list {parent}: {e}")),
            }
        }
        if next.is_empty() {
            break;
        }
        levels.push(next);
    }
    for level in levels.iter().rev() {
        let deletes: Vec<_> = level.iter().map(|p| c.delete(p, None)).collect();
        for (path, delete) in level.iter().zip(deletes) {
            match delete.await {
                Ok(()) => {}
                Err(e) if e.is_no_node() => {}
                Err(e) => return Err(format!("delete {path}: {e}")),
            }
        }
    }
    Ok(())
}

/// Benchmark c: one client, acquire + release of an uncontended [`Mutex`] in a loop (200
/// unmeasured cycles, then at most `--mutex-cycles` within `--mutex-secs`).
async fn mutex(t: &Target, cfg: &Config, a: &RecipeArgs, r: &Reporter) -> Result<(), String> {
    let fw = framework(&t.zk, cfg.session_timeout, a).await?;
    let path = format!("{ROOT}/mutex-u");
    delete_tree(&fw.client(), &path).await?;
    let m = Mutex::new(&fw, path.clone());
    for _ in 0..200 {
        m.acquire().await.map_err(ctx("warm-up acquire"))?.release().await.map_err(ctx("warm-up release"))?;
    }
    let limit = Duration::try_from_secs_f64(a.mutex_secs).map_err(ctx("--mutex-secs"))?;
    let mut acquires = Vec::with_capacity(a.mutex_cycles);
    let mut releases = Vec::with_capacity(a.mutex_cycles);
    let deadline = Instant::now() + limit;
    let packets_before = t.packets().await;
    let start = Instant::now();
    while acquires.len() < a.mutex_cycles && Instant::now() < deadline {
        let t0 = Instant::now();
        let guard = m.acquire().await.map_err(ctx("acquire"))?;
        let t1 = Instant::now();
        guard.release().await.map_err(ctx("release"))?;
        let t2 = Instant::now();
        acquires.push(t1 - t0);
        releases.push(t2 - t1);
    }
    let elapsed = start.elapsed();
    let packets_after = t.packets().await;
    let n = acquires.len();
    r.out("mutex_uncontended_rate", format!("{:.0}", n as f64 / elapsed.as_secs_f64()), "acq/s");
    r.per_op("mutex_uncontended_requests_per_cycle", packets_before, packets_after, n);
    r.stats("mutex_uncontended_acquire", &mut acquires, Unit::Micros);
    r.stats("mutex_uncontended_release", &mut releases, Unit::Micros);
    delete_tree(&fw.client(), &path).await?;
    fw.close().await;
    Ok(())
}

/// What the contenders of `mutex-contended` share.
#[derive(Debug, Default)]
struct Contention {
    /// Acquisitions still to hand out.
    tickets: AtomicI64,
    /// Contenders inside the critical section now (must never exceed 1).
    holders: AtomicUsize,
    /// Times a contender entered while another was inside.
    violations: AtomicUsize,
    /// Acquisitions completed.
    acquired: AtomicUsize,
    /// Acquisitions that timed out or failed.
    failures: AtomicUsize,
    /// Deliberately unprotected read-yield-write counter: only the lock keeps updates.
    unsafe_counter: AtomicU64,
}

/// Benchmark d: `--contended-clients` clients (one framework each) take one lock path
/// `--contended-total` times in all, each task on the multi-thread runtime. An in-process
/// holder counter counts violations; an unprotected load–yield–store counter counts lost
/// updates.
async fn mutex_contended(t: &Target, cfg: &Config, a: &RecipeArgs, r: &Reporter) -> Result<(), String> {
    let clients = a.contended_clients.max(1);
    let path = format!("{ROOT}/mutex-c");
    let admin = framework(&t.zk, cfg.session_timeout, a).await?;
    delete_tree(&admin.client(), &path).await?;
    let mut fws = Vec::with_capacity(clients);
    for _ in 0..clients {
        fws.push(framework(&t.zk, cfg.session_timeout, a).await?);
    }
    let shared = Arc::new(Contention {
        tickets: AtomicI64::new(i64::try_from(a.contended_total).unwrap_or(i64::MAX)),
        ..Contention::default()
    });
    let barrier = Arc::new(tokio::sync::Barrier::new(clients + 1));
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut tasks = Vec::with_capacity(clients);
    for fw in &fws {
        let (m, shared, barrier) = (Mutex::new(fw, path.clone()), shared.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut waits = Vec::new();
            barrier.wait().await;
            while shared.tickets.fetch_sub(1, Ordering::SeqCst) > 0 && Instant::now() < deadline {
                let t0 = Instant::now();
                let guard = match m.acquire_timeout(Duration::from_secs(30)).await {
                    Ok(guard) => guard,
                    Err(corral_recipes::Error::TimedOut { .. }) => {
                        shared.failures.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    Err(e) => {
                        note(format_args!("contended acquire failed: {e}"));
                        shared.failures.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                };
                waits.push(t0.elapsed());
                if shared.holders.fetch_add(1, Ordering::SeqCst) != 0 {
                    shared.violations.fetch_add(1, Ordering::SeqCst);
                }
                let v = shared.unsafe_counter.load(Ordering::SeqCst);
                tokio::task::yield_now().await;
                shared.unsafe_counter.store(v + 1, Ordering::SeqCst);
                shared.acquired.fetch_add(1, Ordering::SeqCst);
                shared.holders.fetch_sub(1, Ordering::SeqCst);
                if let Err(e) = guard.release().await {
                    note(format_args!("contended release failed: {e}"));
                    shared.failures.fetch_add(1, Ordering::SeqCst);
                }
            }
            waits
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut waits = Vec::new();
    let (mut min_c, mut max_c) = (usize::MAX, 0);
    for task in tasks {
        let w = task.await.map_err(ctx("a contender task failed"))?;
        min_c = min_c.min(w.len());
        max_c = max_c.max(w.len());
        waits.extend(w);
    }
    let elapsed = start.elapsed();
    let total = shared.acquired.load(Ordering::SeqCst);
    r.out("mutex_contended_clients", clients, "clients");
    r.out("mutex_contended_acquisitions", total, "count");
    r.out("mutex_contended_rate", format!("{:.0}", total as f64 / elapsed.as_secs_f64()), "acq/s");
    r.out("mutex_contended_violations", shared.violations.load(Ordering::SeqCst), "count");
    let lost = (total as u64).saturating_sub(shared.unsafe_counter.load(Ordering::SeqCst));
    r.out("mutex_contended_lost_updates", lost, "count");
    r.out("mutex_contended_failures", shared.failures.load(Ordering::SeqCst), "count");
    r.stats("mutex_contended_wait", &mut waits, Unit::Millis);
    note(format_args!("per-client acquisitions min={min_c} max={max_c}"));
    for fw in &fws {
        fw.close().await;
    }
    delete_tree(&admin.client(), &path).await?;
    admin.close().await;
    Ok(())
}

/// Starts a latch for participant `idx` (generation `generation`) and a task that reports every time
/// it gains leadership: `(idx, when)`.
fn start_latch(
    fw: &Framework,
    path: &str,
    idx: usize,
    generation: usize,
    events: &mpsc::UnboundedSender<(usize, Instant)>,
) -> LeaderLatch {
    let latch = LeaderLatch::start(fw, path, format!("p{idx}-g{generation}"));
    let mut leadership = latch.leadership();
    let events = events.clone();
    tokio::spawn(async move {
        let mut was_leader = false;
        loop {
            let leader = *leadership.borrow_and_update();
            if leader && !was_leader {
                let _ = events.send((idx, Instant::now()));
            }
            was_leader = leader;
            if leadership.changed().await.is_err() {
                break;
            }
        }
    });
    latch
}

/// Benchmark e: 5 participants on 5 frameworks; close the leader's latch and time until another
/// gains leadership; the closed one joins again; 20 repetitions.
async fn leader(t: &Target, cfg: &Config, a: &RecipeArgs, r: &Reporter) -> Result<(), String> {
    const N: usize = 5;
    let path = format!("{ROOT}/leader");
    let admin = framework(&t.zk, cfg.session_timeout, a).await?;
    delete_tree(&admin.client(), &path).await?;
    let mut fws = Vec::with_capacity(N);
    for _ in 0..N {
        fws.push(framework(&t.zk, cfg.session_timeout, a).await?);
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut latches: Vec<LeaderLatch> =
        fws.iter().enumerate().map(|(i, fw)| start_latch(fw, &path, i, 0, &tx)).collect();
    let first = tokio::time::timeout(Duration::from_secs(15), rx.recv()).await.ok().flatten();
    let Some((mut leader_idx, _)) = first else {
        return Err("no initial leader within 15 s".to_owned());
    };
    let mut failovers = Vec::with_capacity(a.leader_reps);
    let deadline = Instant::now() + Duration::from_secs(45);
    for rep in 0..a.leader_reps {
        if Instant::now() >= deadline {
            break;
        }
        // Wait until all N participants are registered.
        let wait_until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < wait_until {
            match leader_latch::participants(&fws[0], &path).await {
                Ok(p) if p.len() >= N => break,
                _ => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        while rx.try_recv().is_ok() {}
        let t0 = Instant::now();
        latches[leader_idx].close().await;
        let Some((next, at)) = tokio::time::timeout(Duration::from_secs(15), rx.recv()).await.ok().flatten() else {
            note("failover timed out");
            break;
        };
        failovers.push(at.saturating_duration_since(t0));
        let old = leader_idx;
        leader_idx = next;
        latches[old] = start_latch(&fws[old], &path, old, rep + 1, &tx);
    }
    r.stats("leader_failover", &mut failovers, Unit::Millis);
    for latch in &latches {
        latch.close().await;
    }
    let mut floor = failover_floor(&fws[0], &fws[1], &path, failovers.len().max(1)).await?;
    r.stats("leader_failover_floor", &mut floor, Unit::Millis);
    for fw in &fws {
        fw.close().await;
    }
    delete_tree(&admin.client(), &path).await?;
    admin.close().await;
    Ok(())
}

/// What any client's failover contains, measured the same way: a participant's ephemeral node
/// under `path`, 20 ms of quiet, then the time from the delete being sent by `owner` to the
/// NodeDeleted event at `watcher` (an exists watch). On a durable server this is the fsync'd
/// delete; a latch whose successor sends nothing more cannot fail over faster.
async fn failover_floor(
    owner: &Framework,
    watcher: &Framework,
    path: &str,
    reps: usize,
) -> Result<Vec<Duration>, String> {
    let node = format!("{path}/floor");
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        owner.client().create(&node, "p", CreateMode::Ephemeral).await.map_err(|e| format!("floor create: {e}"))?;
        let (stat, watch) = watcher.client().exists_and_watch(&node).await.map_err(|e| format!("floor exists: {e}"))?;
        if stat.is_none() {
            return Err("floor: the node vanished".to_owned());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t0 = Instant::now();
        let deleted = owner.client().delete(&node, None);
        let event =
            tokio::time::timeout(Duration::from_secs(15), watch).await.map_err(|_| "floor: no event".to_owned())?;
        samples.push(t0.elapsed());
        deleted.await.map_err(|e| format!("floor delete: {e}"))?;
        if event.event_type != EventType::NodeDeleted {
            return Err(format!("floor: unexpected event {:?}", event.event_type));
        }
    }
    Ok(samples)
}

/// Benchmark f: register `--instances` service instances (all at once: every `register` future
/// is started before any is awaited), query them, start a provider over them, unregister them.
async fn discovery(t: &Target, cfg: &Config, a: &RecipeArgs, r: &Reporter) -> Result<(), String> {
    let n = a.instances;
    let fw = framework(&t.zk, cfg.session_timeout, a).await?;
    let base = format!("{ROOT}/sd");
    delete_tree(&fw.client(), &base).await?;
    let sd: ServiceDiscovery = ServiceDiscovery::new(&fw, base.clone());
    let instances = || -> Vec<ServiceInstance> {
        (0..n)
            .map(|i| {
                ServiceInstance::builder("anchor-svc")
                    .id(format!("inst-{i:04}"))
                    .address("127.0.0.1")
                    .port(20_000u16.wrapping_add(i as u16))
                    .build()
            })
            .collect()
    };

    let packets_before = t.packets().await;
    let t0 = Instant::now();
    futures::future::try_join_all(instances().into_iter().map(|i| sd.register(i))).await.map_err(ctx("register"))?;
    let took = t0.elapsed();
    r.per_op("discovery_register_requests_per_instance", packets_before, t.settled_packets().await, n);
    r.out("discovery_register_all", ms1(took), "ms");
    r.out("discovery_register_count", n, "instances");

    let packets_before = t.packets().await;
    let t0 = Instant::now();
    let all = sd.query_for_instances("anchor-svc").await.map_err(ctx("query"))?;
    let took = t0.elapsed();
    r.per_op("discovery_query_requests_per_instance", packets_before, t.settled_packets().await, n);
    r.out("discovery_query_all", ms1(took), "ms");
    r.out("discovery_query_count", all.len(), "instances");
    let t0 = Instant::now();
    sd.query_for_instances("anchor-svc").await.map_err(ctx("query (warm)"))?;
    r.out("discovery_query_all_warm", ms1(t0.elapsed()), "ms");

    let packets_before = t.packets().await;
    let t0 = Instant::now();
    let provider = sd.provider("anchor-svc", ProviderStrategy::RoundRobin);
    let ready = provider.wait_ready(Duration::from_secs(30), n).await;
    let took = t0.elapsed();
    r.per_op("discovery_provider_requests_per_instance", packets_before, t.settled_packets().await, n);
    if let Err(e) = ready {
        note(format_args!("provider not ready with {n} instances within 30 s: {e}"));
    }
    r.out("discovery_provider_ready", ms1(took), "ms");
    r.out("discovery_provider_count", provider.get_all_instances().len(), "instances");
    // Extra (not in the anchors): what one pick costs with n instances in the cache.
    let mut picks = Vec::with_capacity(200);
    for _ in 0..200 {
        let t0 = Instant::now();
        let picked = provider.get_instance();
        picks.push(t0.elapsed());
        if picked.is_none() {
            return Err("the provider has no instance".to_owned());
        }
    }
    r.stats("discovery_provider_get_instance", &mut picks, Unit::Micros);

    let one = format!("{base}/anchor-svc/inst-0000");
    let (raw, _) = fw.client().get_data(&one).await.map_err(ctx("read one instance"))?;
    r.out("discovery_instance_json", String::from_utf8_lossy(&raw), "json");
    r.out("discovery_instance_bytes", raw.len(), "bytes");

    provider.close().await;
    let t0 = Instant::now();
    sd.close().await;
    r.out("discovery_close_unregister_all", ms1(t0.elapsed()), "ms");

    // Extra (not in the anchors): the same registrations again, now that the service's parent
    // nodes exist. They are containers, which the server removes only at its next sweep (every
    // 60 s by default), so this shows registration without the parents' creation.
    let again: ServiceDiscovery = ServiceDiscovery::new(&fw, base.clone());
    let packets_before = t.packets().await;
    let t0 = Instant::now();
    futures::future::try_join_all(instances().into_iter().map(|i| again.register(i)))
        .await
        .map_err(ctx("register again"))?;
    let took = t0.elapsed();
    r.per_op("discovery_reregister_requests_per_instance", packets_before, t.settled_packets().await, n);
    r.out("discovery_reregister_all", ms1(took), "ms");
    again.close().await;
    delete_tree(&fw.client(), &base).await?;
    fw.close().await;
    Ok(())
}

/// Benchmark `cache` (issue 6): a [`Cache`] of a subtree of `--cache-nodes` children (data
/// `--data-size` bytes), written beforehand by another framework: time from start to
/// initialized; then `--cache-changes` sequential `setData`s by the writer, each timed from the
/// request to the cache's `Changed` event carrying the new data.
async fn cache(t: &Target, cfg: &Config, a: &RecipeArgs, r: &Reporter) -> Result<(), String> {
    let n = a.cache_nodes.max(1);
    let writer = framework(&t.zk, cfg.session_timeout, a).await?;
    let reader = framework(&t.zk, cfg.session_timeout, a).await?;
    let root = format!("{ROOT}/cache");
    let w = writer.client();
    delete_tree(&w, &root).await?;
    writer.ensure_path(&root).await.map_err(ctx("create the cache root"))?;
    let data = Bytes::from(vec![0u8; cfg.data_size]);
    let paths: Vec<String> = (0..n).map(|i| format!("{root}/n{i}")).collect();
    for chunk in paths.chunks(1_000) {
        let creates: Vec<_> = chunk.iter().map(|p| w.create(p, data.clone(), CreateMode::Persistent)).collect();
        for (p, create) in chunk.iter().zip(creates) {
            create.await.map_err(ctx(&format!("create {p}")))?;
        }
    }

    let packets_before = t.packets().await;
    let t0 = Instant::now();
    let cache = Cache::builder(&reader, root.clone()).start();
    cache.wait_initialized(Duration::from_secs(120)).await.map_err(ctx("cache initial load"))?;
    let took = t0.elapsed();
    let packets_after = t.packets().await;
    r.out("cache_initial_load", ms1(took), "ms");
    r.out("cache_initial_load_count", cache.snapshot().len().saturating_sub(1), "nodes");
    r.per_op("cache_initial_load_requests_per_node", packets_before, packets_after, n);

    let mut events = cache.events();
    let mut latencies = Vec::with_capacity(a.cache_changes);
    let mut missed = 0usize;
    for i in 0..(200 + a.cache_changes) {
        let path = &paths[i % n];
        let value = Bytes::from(format!("change-{i}"));
        let t0 = Instant::now();
        // Queued now; awaited after the event.
        let set = w.set_data(path, value.clone(), None);
        let seen = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(event) = events.next().await {
                if let CacheEvent::Changed { path: p, new, .. } = &event
                    && p == path
                    && new.data == value
                {
                    return Some(Instant::now());
                }
            }
            None
        })
        .await;
        set.await.map_err(ctx(&format!("set {path}")))?;
        match seen {
            Ok(Some(at)) if i >= 200 => latencies.push(at - t0),
            Ok(Some(_)) => {}
            _ => missed += 1,
        }
    }
    r.stats("cache_event_latency", &mut latencies, Unit::Micros);
    r.out("cache_event_missed", missed, "count");

    cache.close().await;
    delete_tree(&w, &root).await?;
    reader.close().await;
    writer.close().await;
    Ok(())
}
