//! Benchmark g `expiry`: how long a framework takes to notice a server-side session expiry and
//! to put back its ephemeral node (a [`PersistentNode`]) and its service registration, as seen
//! by an observer's exists-watch.
//!
//! The expiry is the anchors' real one: a second client attaches to the victim's session (id
//! and password) and closes it. Attaching makes the server close the victim's connection, and
//! Corral reconnects at once — it would take the session back before the second client could
//! close it (the Java client sleeps 1–2 s before reconnecting, so the anchors need no such
//! care). So the victim connects through a [`Gate`]: a connector that holds new connections
//! while closed. The gate is closed just before the second client attaches and opened as soon
//! as its close returns, which is when the clock starts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_recipes::discovery::{ServiceDiscovery, ServiceInstance};
use corral_recipes::persistent_node::PersistentNode;
use corral_recipes::{
    BoxStream, Client, ConnectFuture, ConnectionState, Connector, CreateMode, EventType, Framework, HostPort,
};
use futures::StreamExt as _;
use tokio::sync::{oneshot, watch};

use crate::recipes::{ROOT, RecipeArgs, Target, ctx, delete_tree, framework};
use crate::report::{Reporter, note, percentile};
use crate::workloads::Config;

/// A TCP connector that holds every new connection while closed, and connects it once opened.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    open: Arc<watch::Sender<bool>>,
}

impl Gate {
    /// An open gate.
    pub(crate) fn new() -> Self {
        Self { open: Arc::new(watch::Sender::new(true)) }
    }

    /// Holds new connections from now on.
    pub(crate) fn close(&self) {
        self.open.send_replace(false);
    }

    /// Lets held and new connections through.
    pub(crate) fn open(&self) {
        self.open.send_replace(true);
    }
}

impl Connector for Gate {
    fn connect(&self, host: &HostPort) -> ConnectFuture {
        let mut open = self.open.subscribe();
        let addr = host.to_string();
        Box::pin(async move {
            // The sender lives as long as the gate; an error cannot happen while it is in use.
            let _ = open.wait_for(|o| *o).await;
            let stream = tokio::net::TcpStream::connect(&addr).await?;
            let _ = stream.set_nodelay(true);
            let peer = stream.peer_addr()?;
            Ok((Box::new(stream) as BoxStream, peer))
        })
    }
}

/// Follows `path` from the observer's session with exists-watches: reports on `armed` once the
/// node is seen, then resolves with the time it exists again after having been deleted
/// (`None` if the observer's session ends first).
async fn presence(observer: Client, path: String, armed: oneshot::Sender<Result<(), String>>) -> Option<Instant> {
    let mut armed = Some(armed);
    let mut deleted = false;
    loop {
        let (stat, watcher) = match observer.exists_and_watch(&path).await {
            Ok(x) => x,
            Err(e) => {
                if let Some(armed) = armed.take() {
                    let _ = armed.send(Err(format!("watch {path}: {e}")));
                }
                return None;
            }
        };
        if let Some(armed) = armed.take() {
            if stat.is_none() {
                let _ = armed.send(Err(format!("{path} is missing before the expiry")));
                return None;
            }
            let _ = armed.send(Ok(()));
        } else if stat.is_some() && deleted {
            return Some(Instant::now());
        } else if stat.is_none() {
            deleted = true;
        }
        let event = watcher.await;
        match event.event_type {
            EventType::NodeDeleted => deleted = true,
            EventType::NodeCreated if deleted => return Some(Instant::now()),
            EventType::None => return None,
            _ => {}
        }
    }
}

/// When the victim's framework posted LOST and when it was connected on a new session.
async fn follow_states(
    mut changes: corral_recipes::framework::StateChanges,
    start_epoch: u64,
) -> (Option<Instant>, Option<Instant>) {
    let mut lost = None;
    while let Some(change) = changes.next().await {
        if change.state == ConnectionState::Lost && lost.is_none() {
            lost = Some(Instant::now());
        }
        if change.epoch > start_epoch && change.state.is_connected() {
            return (lost, Some(Instant::now()));
        }
    }
    (lost, None)
}

/// Signed milliseconds from `from` to `to`.
fn signed_ms(from: Instant, to: Instant) -> f64 {
    if to >= from { (to - from).as_secs_f64() * 1e3 } else { -((from - to).as_secs_f64() * 1e3) }
}

/// `p50`, `p99`, `mean`, `max`, `n` of signed millisecond samples (the anchors' `stats`, whose
/// "recreate after reconnected" figure can be negative).
fn stats_ms(r: &Reporter, name: &str, samples: &mut [f64]) {
    samples.sort_by(f64::total_cmp);
    let show = |v: Option<f64>| v.map_or_else(|| "-1".to_owned(), |v| format!("{v:.2}"));
    r.out(&format!("{name}_p50"), show(percentile(samples, 50.0)), "ms");
    r.out(&format!("{name}_p99"), show(percentile(samples, 99.0)), "ms");
    let mean = (!samples.is_empty()).then(|| samples.iter().sum::<f64>() / samples.len() as f64);
    r.out(&format!("{name}_mean"), show(mean), "ms");
    r.out(&format!("{name}_max"), show(samples.last().copied()), "ms");
    r.out(&format!("{name}_n"), samples.len(), "samples");
}

/// One expiry's timings, ms after the expiry.
#[derive(Debug, Default)]
struct Samples {
    detect: Vec<f64>,
    node: Vec<f64>,
    instance: Vec<f64>,
    after_detect: Vec<f64>,
    after_reconnected: Vec<f64>,
}

/// Benchmark g: `--expiry-reps` server-side expiries of a framework (session
/// `--expiry-session-ms`) that keeps an ephemeral [`PersistentNode`] and one registered service
/// instance.
pub(crate) async fn expiry(t: &Target, cfg: &Config, a: &RecipeArgs, r: &Reporter) -> Result<(), String> {
    let session = Duration::from_millis(a.expiry_session_ms);
    let base = format!("{ROOT}/exp");
    let admin = framework(&t.zk, cfg.session_timeout, a).await?;
    delete_tree(&admin.client(), &base).await?;
    admin.ensure_path(&format!("{base}/nodes")).await.map_err(ctx("create the base path"))?;

    let gate = Gate::new();
    let mut builder = Framework::builder(&t.zk).session_timeout(session).connector(gate.clone());
    if let Some(ms) = a.resession_jitter_ms {
        builder = builder.resession_jitter(Duration::from_millis(ms));
    }
    let fw = builder.start().map_err(ctx("start the framework"))?;
    fw.wait_until_connected(Duration::from_secs(15)).await.map_err(ctx("connect"))?;
    let node_path = format!("{base}/nodes/eph");
    let node = PersistentNode::start(&fw, node_path.clone(), CreateMode::Ephemeral, "hello");
    node.wait_for_initial_create(Duration::from_secs(10)).await.map_err(ctx("PersistentNode not created"))?;
    let sd: ServiceDiscovery = ServiceDiscovery::new(&fw, format!("{base}/sd"));
    let instance = ServiceInstance::builder("exp-svc").id("exp-1").address("127.0.0.1").port(9999).build();
    sd.register(instance).await.map_err(ctx("register"))?;
    let instance_path = format!("{base}/sd/exp-svc/exp-1");
    let observer =
        Client::builder(&t.zk).session_timeout(cfg.session_timeout).connect().await.map_err(ctx("observer"))?;

    note(format_args!(
        "expiry: session {} ms requested; negotiated {} ms; resession jitter {}; {} ms pause before each expiry",
        session.as_millis(),
        fw.client().session().timeout.as_millis(),
        a.resession_jitter_ms.map_or_else(|| "default (100 ms)".to_owned(), |ms| format!("{ms} ms")),
        a.expiry_pause_ms
    ));
    note(
        "expiry method: server-side close of the same session from a 2nd client (session id + password); the victim's reconnection is held at a gate until that close returns",
    );

    let mut s = Samples::default();
    let deadline = Instant::now() + Duration::from_secs(120);
    for rep in 0..a.expiry_reps {
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(a.expiry_pause_ms)).await;
        let (node_armed, node_ready) = oneshot::channel();
        let (inst_armed, inst_ready) = oneshot::channel();
        let node_seen = tokio::spawn(presence(observer.clone(), node_path.clone(), node_armed));
        let inst_seen = tokio::spawn(presence(observer.clone(), instance_path.clone(), inst_armed));
        node_ready.await.map_err(ctx("node watch"))??;
        inst_ready.await.map_err(ctx("instance watch"))??;
        let states = tokio::spawn(follow_states(fw.state_changes(), fw.current_state().epoch));

        let info = fw.client().session();
        gate.close();
        let killer =
            Client::builder(&t.zk).session(info.id, info.password.clone()).session_timeout(session).connect().await;
        let killer = match killer {
            Ok(k) => k,
            Err(e) => {
                gate.open();
                return Err(format!("the second client could not attach to session {:#x}: {e}", info.id));
            }
        };
        // closeSession: the server deletes the session's ephemerals before it answers.
        killer.close().await;
        let expired = Instant::now();
        gate.open();

        let all =
            tokio::time::timeout(Duration::from_secs(30), async { (node_seen.await, inst_seen.await, states.await) });
        let (node_at, inst_at, (lost_at, reconnected_at)) = match all.await {
            Ok((Ok(Some(n)), Ok(Some(i)), Ok((lost, Some(rc))))) => (n, i, (lost, rc)),
            Ok(other) => {
                note(format_args!("rep {rep}: not recovered: {other:?}"));
                break;
            }
            Err(_) => {
                note(format_args!("rep {rep}: not recovered within 30 s"));
                break;
            }
        };
        let detected = lost_at.unwrap_or(reconnected_at);
        s.detect.push(signed_ms(expired, detected));
        s.node.push(signed_ms(expired, node_at));
        s.instance.push(signed_ms(expired, inst_at));
        s.after_detect.push(signed_ms(detected, node_at));
        s.after_reconnected.push(signed_ms(reconnected_at, node_at));
    }
    stats_ms(r, "expiry_detect", &mut s.detect);
    stats_ms(r, "expiry_ephemeral_recreate", &mut s.node);
    stats_ms(r, "expiry_service_reregister", &mut s.instance);
    stats_ms(r, "expiry_recreate_after_detect", &mut s.after_detect);
    stats_ms(r, "expiry_recreate_after_reconnected", &mut s.after_reconnected);

    sd.close().await;
    node.close().await;
    fw.close().await;
    observer.close().await;
    delete_tree(&admin.client(), &base).await?;
    admin.close().await;
    Ok(())
}
