//! Service registry: register instances of two services, discover them through a provider,
//! survive a session expiry, and print the timeline.
//!
//! ```text
//! cargo run --example service_registry                      # on an embedded server, no JVM
//! cargo run --example service_registry -- --zk HOST:PORT    # on a real ZooKeeper (or CORRAL_ZK)
//! cargo run --example service_registry -- --zk HOST:PORT --list   # list what is registered
//! ```
//!
//! Copy this file into your crate to start: depend on `corral` (or `corral-recipes`) and
//! `tokio`, and on `corral-server` if you want the embedded server.

use std::time::{Duration, Instant};

use corral::discovery::{ProviderStrategy, ServiceDiscovery, ServiceInstance};
use corral::{Client, ConnectionState, Framework};
use futures::StreamExt;

const BASE: &str = "/services";
const TIMEOUT: Duration = Duration::from_secs(20);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    zk: Option<String>,
    list: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { zk: std::env::var("CORRAL_ZK").ok().filter(|s| !s.is_empty()), list: false };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--zk" => args.zk = Some(it.next().ok_or("--zk needs HOST:PORT")?),
            "--list" => args.list = true,
            "-h" | "--help" => {
                println!("usage: service_registry [--zk HOST:PORT[,HOST:PORT...]] [--list]");
                println!("  without --zk (or CORRAL_ZK) an embedded ZooKeeper-compatible server is started");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

/// Prints lines prefixed with the time since the start.
struct Timeline(Instant);

impl Timeline {
    fn say(&self, what: impl std::fmt::Display) {
        println!("[{:>6} ms] {what}", self.0.elapsed().as_millis());
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let t = Timeline(Instant::now());

    // No address: run our own ZooKeeper-compatible server in this process.
    let embedded = match &args.zk {
        Some(_) => None,
        None => Some(corral_server::testing::TestingServer::start().await?),
    };
    let connect_string = match (&args.zk, &embedded) {
        (Some(zk), _) => zk.clone(),
        (None, Some(server)) => server.connect_string(),
        (None, None) => unreachable!("an address or an embedded server"),
    };
    match &embedded {
        Some(_) => t.say(format!("embedded server listening on {connect_string}")),
        None => t.say(format!("using ZooKeeper at {connect_string}")),
    }

    if args.list {
        return list(&connect_string).await;
    }

    let fw = Framework::builder(&connect_string).session_timeout(Duration::from_secs(10)).start()?;
    let mut states = fw.state_changes();
    fw.wait_until_connected(TIMEOUT).await?;
    let first = fw.current_state();
    t.say(format!("{} (session {:#x}, epoch {})", first.state, first.session_id, first.epoch));

    // Register three instances of "api" and two of "worker".
    let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, BASE);
    for port in 8080..8083 {
        let instance = ServiceInstance::builder("api")
            .address("127.0.0.1")
            .port(port)
            .uri_spec("{scheme}://{address}:{port}/v1")
            .payload(serde_json::json!({ "zone": if port % 2 == 0 { "a" } else { "b" } }))
            .build();
        discovery.register(instance).await?;
    }
    for port in 9090..9092 {
        discovery.register(ServiceInstance::builder("worker").address("127.0.0.1").port(port).build()).await?;
    }
    t.say(format!(
        "registered {} instances of {:?}",
        discovery.registrations().len(),
        discovery.query_for_names().await?
    ));

    // Discover them through a provider.
    let provider = discovery.provider("api", ProviderStrategy::RoundRobin);
    provider.wait_ready(TIMEOUT, 3).await?;
    let picks: Vec<String> = (0..4).filter_map(|_| provider.get_instance()).filter_map(|i| i.build_uri()).collect();
    t.say(format!("provider (round robin) picks: {}", picks.join(", ")));

    // Force a session expiry, as a failure would.
    let info = fw.client().session();
    let expired_at = Instant::now();
    match &embedded {
        Some(server) => {
            server.expire_session(info.id);
        }
        None => {
            // On a real ensemble: take the session over with its id and password, and close it.
            let thief = Client::builder(&connect_string).session(info.id, info.password.clone()).connect().await?;
            thief.close().await;
        }
    }
    t.say(format!("session {:#x} expired on the server", info.id));

    // Follow the states until the framework is back on a new session.
    let back = tokio::time::timeout(TIMEOUT, async {
        while let Some(change) = states.next().await {
            if change.epoch == first.epoch && change.state == ConnectionState::Connected {
                continue;
            }
            t.say(format!("{} (session {:#x}, epoch {})", change.state, change.session_id, change.epoch));
            if change.state == ConnectionState::Reconnected && change.epoch > first.epoch {
                return Some(change);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .ok_or("the framework did not come back on a new session in time")?;

    // Every instance is re-registered by the new session.
    let cache = provider.cache();
    let observer = Client::connect(&connect_string).await?;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut owned = 0;
        for name in ["api", "worker"] {
            for id in observer.get_children(&format!("{BASE}/{name}")).await.unwrap_or_default() {
                if let Ok(Some(stat)) = observer.exists(&format!("{BASE}/{name}/{id}")).await
                    && stat.ephemeral_owner == back.session_id
                {
                    owned += 1;
                }
            }
        }
        if owned == 5 && cache.instances().len() == 3 {
            break;
        }
        if Instant::now() > deadline {
            return Err("instances did not come back in time".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    t.say(format!(
        "all 5 instances re-registered by session {:#x}, {} ms after the expiry",
        back.session_id,
        expired_at.elapsed().as_millis()
    ));
    let picks: Vec<String> = (0..3).filter_map(|_| provider.get_instance()).filter_map(|i| i.build_uri()).collect();
    t.say(format!("provider still picks: {}", picks.join(", ")));

    provider.close().await;
    discovery.close().await;
    observer.close().await;
    fw.close().await;
    t.say("closed; bye");
    if let Some(server) = embedded {
        server.close().await;
    }
    Ok(())
}

/// Prints every service and instance registered under the base path (by Corral or by Java
/// Curator: the layout and the JSON are the same).
async fn list(connect_string: &str) -> Result<(), BoxError> {
    let fw = Framework::builder(connect_string).start()?;
    fw.wait_until_connected(TIMEOUT).await?;
    let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, BASE);
    let names = discovery.query_for_names().await?;
    if names.is_empty() {
        println!("no services under {BASE}");
    }
    for name in names {
        println!("{name}");
        for instance in discovery.query_for_instances(&name).await? {
            let address = format!(
                "{}:{}",
                instance.address.clone().unwrap_or_default(),
                instance.port.map_or_else(String::new, |p| p.to_string())
            );
            let payload = instance.payload.as_ref().map_or_else(String::new, ToString::to_string);
            println!("  {}  {address}  {:?}  {payload}", instance.id, instance.service_type);
        }
    }
    fw.close().await;
    Ok(())
}
