//! `corral-bench`: Corral's side of the performance anchors in `../shared/anchors`.
//!
//! ```text
//! cargo run --release -p corral-bench -- --zk 127.0.0.1:21810 latency throughput startup
//! cargo run --release -p corral-bench -- --zk 127.0.0.1:21810 --client zkclient latency
//! ```
//!
//! Prints one `metric=value unit` line per figure, with the anchors' metric names
//! (`raw_get_p50`, `raw_async_get_ops`, `startup_first`, ...); with `--client zkclient` every
//! name is prefixed `zkc_`. Lines starting with `#` are context. See `benches/README.md`.

mod clients;
mod expiry;
mod herd;
mod herd_zk;
mod kazoo_bench;
mod recipes;
mod report;
mod server;
mod server_bench;
mod tls_bench;
mod workloads;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

use crate::clients::{BenchClient, Corral, ZkClient};
use crate::report::{Reporter, note};
use crate::workloads::Config;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(version, about = "Corral's benchmarks, in the format of ../shared/anchors")]
struct Args {
    /// ZooKeeper connect string (`host:port[,host:port][/chroot]`); `mntr` goes to the first host.
    #[arg(long, default_value = "127.0.0.1:21810")]
    zk: String,
    /// The client under test: corral (metrics unprefixed) or the zookeeper-client crate
    /// (metrics prefixed `zkc_`).
    #[arg(long, value_enum, default_value_t = ClientKind::Corral)]
    client: ClientKind,
    /// Tokio runtime flavour.
    #[arg(long, value_enum, default_value_t = Flavor::Multi)]
    runtime: Flavor,
    /// Worker threads of the multi-thread runtime (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Where the benchmark's own code runs: in a task spawned on the runtime (as request
    /// handlers in a server do) or on the thread that called `block_on` (as the body of
    /// `#[tokio::main]` does). On the multi-thread runtime `main` makes every reply cross
    /// threads; see README.
    #[arg(long, value_enum, default_value_t = Driver::Worker)]
    driver: Driver,
    /// Requested session timeout, ms (Curator's anchors use 30 000).
    #[arg(long, default_value_t = 30_000)]
    session_timeout_ms: u64,
    /// Znode data size, bytes.
    #[arg(long, default_value_t = 128)]
    data_size: usize,
    /// latency: unmeasured gets first.
    #[arg(long, default_value_t = 3_000)]
    get_warmup: usize,
    /// latency: measured sequential gets (at most).
    #[arg(long, default_value_t = 20_000)]
    gets: usize,
    /// latency: time limit of the measured gets, s.
    #[arg(long, default_value_t = 10.0)]
    get_secs: f64,
    /// latency: unmeasured create+delete pairs first.
    #[arg(long, default_value_t = 200)]
    pair_warmup: usize,
    /// latency: measured create+delete pairs (at most).
    #[arg(long, default_value_t = 3_000)]
    pairs: usize,
    /// latency: time limit of the measured pairs, s.
    #[arg(long, default_value_t = 20.0)]
    pair_secs: f64,
    /// throughput: requests in flight.
    #[arg(long, default_value_t = 1_000)]
    outstanding: usize,
    /// throughput: znodes cycled over.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// throughput: unmeasured pass before each window, s.
    #[arg(long, default_value_t = 2.0)]
    warmup_secs: f64,
    /// throughput: measured window per operation, s.
    #[arg(long, default_value_t = 10.0)]
    window_secs: f64,
    /// startup: connects measured after the first one.
    #[arg(long, default_value_t = 30)]
    warm_connects: usize,
    /// The server-* benchmarks' flags.
    #[command(flatten)]
    server: server_bench::ServerArgs,
    /// The recipe benchmarks' and the herd's flags.
    #[command(flatten)]
    recipes: recipes::RecipeArgs,
    /// The tls benchmark's flags.
    #[command(flatten)]
    tls: tls_bench::TlsArgs,
    /// The kazoo benchmark's flags.
    #[command(flatten)]
    kazoo: kazoo_bench::KazooArgs,
    /// Benchmarks to run, in order.
    #[arg(required = true, value_enum)]
    benches: Vec<Bench>,
}

/// The client under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ClientKind {
    /// corral-core.
    Corral,
    /// The `zookeeper-client` crate.
    #[value(alias = "zkc", alias = "zookeeper-client")]
    Zkclient,
}

/// Tokio runtime flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Flavor {
    /// `Builder::new_multi_thread` (what `#[tokio::main]` gives).
    Multi,
    /// `Builder::new_current_thread`: everything on the main thread.
    Current,
}

/// Where the workload's own future runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Driver {
    /// `runtime.spawn`: a task on the runtime's workers.
    Worker,
    /// `runtime.block_on`: the main thread.
    Main,
}

/// A benchmark of the anchors' harness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Bench {
    /// a: sequential getData / create / delete latency.
    Latency,
    /// b: pipelined setData / getData throughput.
    Throughput,
    /// h: connect time (first in process, from exec, warm).
    Startup,
    /// startup, latency, throughput.
    All,
    /// The embedded server vs ZooKeeper: latency and throughput (see server_bench/ops.rs).
    ServerOps,
    /// The embedded server vs ZooKeeper: exec → accepting connections.
    ServerStartup,
    /// The embedded server vs ZooKeeper: resident memory with 100k znodes.
    ServerRss,
    /// The embedded server vs ZooKeeper: CPU with 10k idle sessions.
    ServerIdle,
    /// server-startup, server-ops, server-rss, server-idle.
    Server,
    /// Issue 4: 200 frameworks expired at once on an embedded server; connection rate (recipes.rs, herd.rs).
    Herd,
    /// Issue 12: the herd against a real ZooKeeper, clients in processes of their own (herd_zk.rs).
    HerdZk,
    /// One process of herd-zk's clients (started by herd-zk).
    #[value(hide = true)]
    HerdZkChild,
    /// c: uncontended Mutex acquire + release.
    Mutex,
    /// d: 8 clients contending for one Mutex.
    MutexContended,
    /// e: LeaderLatch failover.
    Leader,
    /// f: service discovery with 1,000 instances.
    Discovery,
    /// g: session expiry → LOST, ephemeral node and registration back (expiry.rs).
    Expiry,
    /// Issue 6: Cache initial load of 10,000 nodes and change → event latency.
    Cache,
    /// mutex, mutex-contended, leader, discovery, expiry, cache.
    Recipes,
    /// Issue 13: plain vs TLS on one real ZooKeeper it starts (connect, get latency, pipelined
    /// gets), Corral and Curator (tls_bench.rs).
    Tls,
    /// Issue 16: the kazoo-layout lock, lease and set partitioner beside kazoo 2.11's own on one
    /// server (kazoo_bench.rs).
    Kazoo,
}

impl Bench {
    fn name(self) -> &'static str {
        match self {
            Bench::Latency => "latency",
            Bench::Throughput => "throughput",
            Bench::Startup => "startup",
            Bench::All => "all",
            Bench::ServerOps => "server-ops",
            Bench::ServerStartup => "server-startup",
            Bench::ServerRss => "server-rss",
            Bench::ServerIdle => "server-idle",
            Bench::Server => "server",
            Bench::Herd => "herd",
            Bench::HerdZk => "herd-zk",
            Bench::HerdZkChild => "herd-zk-child",
            Bench::Mutex => "mutex",
            Bench::MutexContended => "mutex-contended",
            Bench::Leader => "leader",
            Bench::Discovery => "discovery",
            Bench::Expiry => "expiry",
            Bench::Cache => "cache",
            Bench::Recipes => "recipes",
            Bench::Tls => "tls",
            Bench::Kazoo => "kazoo",
        }
    }

    /// Whether this benchmark talks to the server of `--zk` (the others start their own).
    fn uses_zk_flag(self, args: &Args) -> bool {
        match self {
            Bench::Herd | Bench::HerdZk | Bench::Tls => false,
            Bench::Mutex | Bench::MutexContended | Bench::Leader | Bench::Discovery | Bench::Expiry | Bench::Cache => {
                !args.recipes.embedded
            }
            Bench::Kazoo => args.kazoo.kazoo_server == kazoo_bench::KazooServer::Zk,
            _ => true,
        }
    }
}

fn secs(s: f64, flag: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|e| format!("--{flag} {s}: {e}"))
}

fn main() -> ExitCode {
    let main_started = Instant::now();
    let args = Args::parse();
    match run(args, main_started) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corral-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args, main_started: Instant) -> Result<(), String> {
    let (prefix, root) = match args.client {
        ClientKind::Corral => ("", "/anchors-corral"),
        ClientKind::Zkclient => ("zkc_", "/anchors-zkc"),
    };
    let cfg = Config {
        zk: args.zk.clone(),
        root: root.to_owned(),
        session_timeout: Duration::from_millis(args.session_timeout_ms),
        data_size: args.data_size,
        get_warmup: args.get_warmup,
        gets: args.gets,
        get_limit: secs(args.get_secs, "get-secs")?,
        pair_warmup: args.pair_warmup,
        pairs: args.pairs,
        pair_limit: secs(args.pair_secs, "pair-secs")?,
        outstanding: args.outstanding,
        nodes: args.nodes,
        tp_warmup: secs(args.warmup_secs, "warmup-secs")?,
        tp_window: secs(args.window_secs, "window-secs")?,
        warm_connects: args.warm_connects,
        main_started,
    };
    let mut benches = Vec::new();
    for b in &args.benches {
        match b {
            Bench::All => benches.extend([Bench::Startup, Bench::Latency, Bench::Throughput]),
            Bench::Server => {
                benches.extend([Bench::ServerStartup, Bench::ServerOps, Bench::ServerRss, Bench::ServerIdle])
            }
            Bench::Recipes => benches.extend([
                Bench::Mutex,
                Bench::MutexContended,
                Bench::Leader,
                Bench::Discovery,
                Bench::Expiry,
                Bench::Cache,
            ]),
            b => benches.push(*b),
        }
    }
    if args.client != ClientKind::Corral && benches.contains(&Bench::Kazoo) {
        return Err("kazoo measures Corral (and kazoo) only; drop --client".to_owned());
    }
    if args.client != ClientKind::Corral && benches.contains(&Bench::Tls) {
        return Err("tls measures Corral (and Curator) only; drop --client".to_owned());
    }
    if args.client != ClientKind::Corral && benches.iter().any(|b| recipes::is_recipe_bench(b.name())) {
        return Err("the recipe benchmarks and herd measure Corral only; drop --client".to_owned());
    }

    let mut builder = match args.runtime {
        Flavor::Multi => tokio::runtime::Builder::new_multi_thread(),
        Flavor::Current => tokio::runtime::Builder::new_current_thread(),
    };
    if let (Flavor::Multi, Some(n)) = (args.runtime, args.workers) {
        builder.worker_threads(n.max(1));
    }
    let runtime = builder.enable_all().build().map_err(|e| format!("cannot build the Tokio runtime: {e}"))?;
    let reporter = Reporter::new(prefix);
    let driver = args.driver;
    let task = async move {
        let result = match args.client {
            ClientKind::Corral => run_benches::<Corral>(&benches, &cfg, &args, &reporter).await,
            ClientKind::Zkclient => run_benches::<ZkClient>(&benches, &cfg, &args, &reporter).await,
        };
        // Context last: nothing may delay the startup benchmark's first connect.
        let uses_zk = benches.iter().any(|b| b.uses_zk_flag(&args));
        print_context(&args, &cfg, uses_zk).await;
        result
    };
    match driver {
        Driver::Main => runtime.block_on(task),
        Driver::Worker => {
            runtime.block_on(runtime.spawn(task)).map_err(|e| format!("the benchmark task failed: {e}"))?
        }
    }
}

async fn run_benches<C: BenchClient>(benches: &[Bench], cfg: &Config, args: &Args, r: &Reporter) -> Result<(), String> {
    let (server, recipe_args) = (&args.server, &args.recipes);
    for &bench in benches {
        let t0 = Instant::now();
        note(format_args!("bench {} ({}, zk {})", bench.name(), C::describe(), cfg.zk));
        let result = match bench {
            Bench::Latency => workloads::latency::<C>(cfg, r).await,
            Bench::Throughput => workloads::throughput::<C>(cfg, r).await,
            Bench::Startup => workloads::startup::<C>(cfg, r).await,
            Bench::ServerOps => server_bench::ops(cfg, server).await,
            Bench::ServerStartup => server_bench::startup(cfg, server).await,
            Bench::ServerRss => server_bench::rss(cfg, server).await,
            Bench::ServerIdle => server_bench::idle(cfg, server).await,
            Bench::Herd
            | Bench::HerdZk
            | Bench::HerdZkChild
            | Bench::Mutex
            | Bench::MutexContended
            | Bench::Leader
            | Bench::Discovery
            | Bench::Expiry
            | Bench::Cache => recipes::run(bench.name(), cfg, recipe_args, r).await.map_err(clients::OpError::Other),
            Bench::Tls => tls_bench::run(cfg, &args.tls).await,
            Bench::Kazoo => kazoo_bench::run(cfg, recipe_args, &args.kazoo, r).await.map_err(clients::OpError::Other),
            Bench::All | Bench::Server | Bench::Recipes => Ok(()),
        };
        result.map_err(|e| format!("bench {} failed: {e}", bench.name()))?;
        note(format_args!("bench {} took {:.1} s", bench.name(), t0.elapsed().as_secs_f64()));
    }
    Ok(())
}

/// Prints `#` lines: versions, date, machine, runtime, and the `--zk` server's version when a
/// benchmark of the run used it (the others name the servers they start in their own notes).
async fn print_context(args: &Args, cfg: &Config, uses_zk: bool) {
    let client = match args.client {
        ClientKind::Corral => Corral::describe(),
        ClientKind::Zkclient => ZkClient::describe(),
    };
    note(format_args!(
        "corral-bench {} ({client}); {}; {}",
        env!("CARGO_PKG_VERSION"),
        env!("BENCH_RUSTC_VERSION"),
        if cfg!(debug_assertions) { "DEBUG build: numbers are meaningless" } else { "release build" }
    ));
    let workers = match args.runtime {
        Flavor::Current => "current-thread".to_owned(),
        Flavor::Multi => format!(
            "multi-thread, {} workers",
            args.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        ),
    };
    note(format_args!("tokio runtime: {workers}; benchmark driver: {:?}", args.driver));
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned()))
        })
        .unwrap_or_else(|| "unknown".to_owned());
    note(format_args!(
        "date {}; {} cores, cpu {cpu}",
        report::utc_now(),
        std::thread::available_parallelism().map_or(0, usize::from)
    ));
    if uses_zk {
        note(format_args!(
            "server {}: {}",
            server::first_host(&cfg.zk),
            server::version_line(server::first_host(&cfg.zk)).await
        ));
    } else {
        note("server: started by the benchmarks themselves (see their notes above); --zk not used");
    }
}
