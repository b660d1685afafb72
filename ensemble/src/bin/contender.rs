//! A contender for the ensemble fault tests: one Corral framework on one lock or election,
//! making fenced writes while it holds it.
//!
//! Arguments are `key=value` words: `id=<writer>`, `connect=<hosts/chroot>`,
//! `mode=mutex|hold|selector`, `session_ms=<ms>` (default 4000), `writes=<n>` per hold or term
//! (default 3), `gap_ms=<ms>` between two writes of one hold or term (default 0 for `mutex`, 50
//! for `selector`). On a secured ensemble: `tls_ca=<PEM file>` connects over TLS (`connect` then
//! names the TLS ports), `sasl=<user>:<password>` logs in with SASL DIGEST-MD5 (`sasl=gssapi`:
//! Kerberos, from the environment's `KRB5_*`, with the `gssapi` feature), and
//! `acl=creator` creates every node for the logged-in user alone, readable by anyone.
//!
//! - `mutex`: acquire the lock, make `writes` fenced increments, release; again until `stop`.
//!   With `layout=kazoo` the lock is kazoo's (`corral_recipes::kazoo::lock`, sharing the lock
//!   with kazoo's own `Lock`), otherwise Curator's `InterProcessMutex`.
//! - `hold`: acquire the lock once and print `acquired`; make one fenced increment on `write`;
//!   exit on `stop`. The test stalls it in between (SIGSTOP) to make a stale holder.
//! - `selector`: a `LeaderSelector` with auto-requeue; each term makes `writes` fenced increments.
//! - `latch`: a `LeaderLatch`; while leading, makes `writes` fenced increments with the latch's
//!   fencing check (`gap_ms` apart, default 50), then closes the latch and joins again.
//! - `queue`: a lock-safe `DistributedQueue` consumer of [`QUEUE`] (locks in [`QUEUE_LOCKS`]):
//!   takes each message, waits `gap_ms` (the processing), acknowledges it.
//! - `discovery`: registers instance `<id>` of service [`SERVICE`] under [`SERVICES`] and keeps a
//!   service cache of it, printing the cache's ids after every change.
//! - `compare` (the side-by-side measures against Curator): joins the `LeaderLatch` at
//!   `election=<path>` and holds it, printing every leadership change; registers instance `<id>`
//!   of service `service=<name>` under [`SERVICES`]; after every CONNECTED or RECONNECTED it reads
//!   its own instance back and prints `instance-back` once it is there; contends in a
//!   `LeaderSelector` at `selector=<path>` (auto-requeue), printing each term's start and end.
//!
//! Commands, one per line on stdin: `write`, `stop` (end of input is `stop`). Events, one per
//! line on stdout:
//!
//! ```text
//! state <STATE> <session id> <epoch>
//! acquired <token> <session id>           (mutex, hold)
//! leader <round> <token> <session id>     (selector, latch)
//! write ok <value> <token>
//! write rejected <token> <reason>
//! write unknown <token> <reason>
//! violation <token> <what>
//! released <token>
//! took <item>                             (queue)
//! acked <item>
//! ack-failed <item> <why>
//! registered                              (discovery, compare)
//! leader | not-leader                     (compare)
//! selector-leader | selector-not-leader   (compare)
//! instance-back                           (compare)
//! cache <id>,<id>,…
//! error <what>
//! stopped
//! ```

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

use corral_ensemble_tests::fenced::{LOCK, Outcome, QUEUE, QUEUE_LOCKS, SERVICE, SERVICES, fenced_increment};
use corral_recipes::discovery::{ServiceDiscovery, ServiceInstance};
use corral_recipes::leader_latch::LeaderLatch;
use corral_recipes::leader_selector::LeaderSelector;
use corral_recipes::lock::Mutex;
use corral_recipes::queue::DistributedQueue;
use corral_recipes::{Acl, AclProvider, ClientTls, ConnectionState, Error, Framework, Id, Op, Perms, Sasl};
use futures::StreamExt;
use tokio::sync::mpsc;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let args: HashMap<String, String> =
        std::env::args().skip(1).filter_map(|a| a.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned()))).collect();
    let arg = |key: &str| args.get(key).cloned();
    let id = arg("id").unwrap_or_else(|| format!("c{}", std::process::id()));
    let connect = arg("connect").expect("connect=<hosts/chroot>");
    let mode = arg("mode").unwrap_or_else(|| "mutex".to_owned());
    let session = Duration::from_millis(arg("session_ms").and_then(|v| v.parse().ok()).unwrap_or(4000));
    let writes: usize = arg("writes").and_then(|v| v.parse().ok()).unwrap_or(3);
    let gap = |default: u64| Duration::from_millis(arg("gap_ms").and_then(|v| v.parse().ok()).unwrap_or(default));

    let mut builder = Framework::builder(connect).session_timeout(session).connection_timeout(session * 2);
    if let Some(ca) = arg("tls_ca") {
        builder = builder.tls(ClientTls::builder().ca_pem_file(ca).build().expect("the TLS settings"));
    }
    match arg("sasl").as_deref() {
        #[cfg(feature = "gssapi")]
        Some("gssapi") => builder = builder.sasl(Sasl::gssapi()),
        Some(login) => {
            let (user, password) = login.split_once(':').expect("sasl=<user>:<password> (or gssapi)");
            builder = builder.sasl(Sasl::digest_md5(user, password));
        }
        None => {}
    }
    if arg("acl").as_deref() == Some("creator") {
        builder = builder.acl_provider(CreatorWritesWorldReads);
    }
    let fw = builder.start().expect("start the framework");
    let mut changes = fw.state_changes();
    tokio::spawn(async move {
        while let Some(change) = changes.next().await {
            println!("state {} {} {}", change.state, change.session_id, change.epoch);
        }
    });
    let commands = commands();
    match mode.as_str() {
        "mutex" => {
            let lock = match arg("layout").as_deref() {
                Some("kazoo") => corral_recipes::kazoo::lock(&fw, LOCK, id.as_str()),
                _ => Mutex::new(&fw, LOCK),
            };
            mutex(&fw, &lock, &id, writes, gap(0), commands).await;
        }
        "hold" => hold(&fw, &id, commands).await,
        "selector" => selector(&fw, &id, writes, gap(50), commands).await,
        "queue" => queue(&fw, gap(0), commands).await,
        "latch" => latch(&fw, &id, writes, gap(50), commands).await,
        "discovery" => discovery(&fw, &id, commands).await,
        "compare" => {
            let election = arg("election").unwrap_or_else(|| "/election".to_owned());
            let service = arg("service").unwrap_or_else(|| "compared".to_owned());
            let selector = arg("selector").unwrap_or_else(|| "/selector".to_owned());
            compare(&fw, &id, &election, &service, &selector, commands).await;
        }
        other => println!("error unknown mode {other}"),
    }
    let _ = tokio::time::timeout(session, fw.close()).await;
    println!("stopped");
}

/// `acl=creator`: every node for the logged-in user alone, readable by anyone.
#[derive(Debug)]
struct CreatorWritesWorldReads;

impl AclProvider for CreatorWritesWorldReads {
    fn default_acl(&self) -> Vec<Acl> {
        vec![Acl::new(Perms::ALL, Id::authenticated()), Acl::new(Perms::READ, Id::anyone())]
    }
}

/// Lines from stdin; `stop` at its end.
fn commands() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line.trim().to_owned()).is_err() {
                return;
            }
        }
        let _ = tx.send("stop".to_owned());
    });
    rx
}

/// Makes one fenced write and prints its outcome; whether it was applied.
async fn write(fw: &Framework, check: Op, id: &str, token: i64) -> bool {
    match fenced_increment(fw, check, id, token).await {
        Outcome::Written(value) => {
            println!("write ok {value} {token}");
            true
        }
        Outcome::Rejected(why) => {
            println!("write rejected {token} {why}");
            false
        }
        Outcome::Unknown(why) => {
            println!("write unknown {token} {why}");
            false
        }
        Outcome::Violation(what) => {
            println!("violation {token} {what}");
            false
        }
    }
}

async fn mutex(
    fw: &Framework,
    mutex: &Mutex,
    id: &str,
    writes: usize,
    gap: Duration,
    mut commands: mpsc::UnboundedReceiver<String>,
) {
    loop {
        if let Ok(command) = commands.try_recv()
            && command == "stop"
        {
            return;
        }
        let acquired = tokio::select! {
            acquired = mutex.acquire_timeout(Duration::from_secs(5)) => acquired,
            _ = commands.recv() => return,
        };
        match acquired {
            Ok(guard) => {
                let token = guard.fencing_token();
                println!("acquired {token} {}", guard.session_id());
                for n in 0..writes {
                    if n > 0 && !gap.is_zero() {
                        tokio::time::sleep(gap).await;
                    }
                    if !write(fw, guard.fencing_check(), id, token).await {
                        break;
                    }
                }
                println!("released {token}");
                if let Err(err) = guard.release().await {
                    println!("error release {err}");
                }
            }
            Err(Error::TimedOut { .. }) => {}
            Err(err) => {
                println!("error acquire {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn hold(fw: &Framework, id: &str, mut commands: mpsc::UnboundedReceiver<String>) {
    let guard = loop {
        match Mutex::new(fw, LOCK).acquire_timeout(Duration::from_secs(60)).await {
            Ok(guard) => break guard,
            Err(Error::TimedOut { .. }) => println!("error acquire: not within 60 s"),
            Err(err) => println!("error acquire {err}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let token = guard.fencing_token();
    println!("acquired {token} {}", guard.session_id());
    while let Some(command) = commands.recv().await {
        match command.as_str() {
            // Deliberately no `guard.is_valid()` first: the fence alone must refuse a stale write.
            "write" => {
                write(fw, guard.fencing_check(), id, token).await;
            }
            "stop" => break,
            other => println!("error unknown command {other}"),
        }
    }
    drop(guard);
}

async fn selector(
    fw: &Framework,
    id: &str,
    writes: usize,
    gap: Duration,
    mut commands: mpsc::UnboundedReceiver<String>,
) {
    let writer = fw.clone();
    let me: Arc<str> = id.into();
    let selector = LeaderSelector::start(fw, LOCK, id, true, move |leadership| {
        let (fw, me) = (writer.clone(), me.clone());
        async move {
            let token = leadership.fencing_token();
            println!("leader {} {token} {}", leadership.round(), fw.current_state().session_id);
            for _ in 0..writes {
                if !write(&fw, leadership.fencing_check(), &me, token).await {
                    break;
                }
                tokio::time::sleep(gap).await;
            }
            println!("released {token}");
        }
    });
    while let Some(command) = commands.recv().await {
        if command == "stop" {
            break;
        }
    }
    selector.close().await;
}

async fn queue(fw: &Framework, gap: Duration, mut commands: mpsc::UnboundedReceiver<String>) {
    let mut consumer = DistributedQueue::new(fw, QUEUE).lock_path(QUEUE_LOCKS).consumer();
    loop {
        let next = tokio::select! {
            next = consumer.next_message_timeout(Duration::from_secs(1)) => next,
            _ = commands.recv() => return,
        };
        match next {
            Ok(message) => {
                let items: Vec<String> =
                    message.items().iter().map(|item| String::from_utf8_lossy(item).into_owned()).collect();
                for item in &items {
                    println!("took {item}");
                }
                if !gap.is_zero() {
                    tokio::time::sleep(gap).await;
                }
                match message.ack().await {
                    Ok(()) => items.iter().for_each(|item| println!("acked {item}")),
                    Err(err) => items.iter().for_each(|item| println!("ack-failed {item} {err}")),
                }
            }
            Err(Error::TimedOut { .. }) => {}
            Err(err) => {
                println!("error consume {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Registers `me`, trying again until it is done, and prints `registered`.
async fn register(discovery: &ServiceDiscovery, me: &ServiceInstance) {
    while let Err(err) = discovery.register(me.clone()).await {
        println!("error register {err}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("registered");
}

async fn discovery(fw: &Framework, id: &str, mut commands: mpsc::UnboundedReceiver<String>) {
    let discovery: ServiceDiscovery = ServiceDiscovery::new(fw, SERVICES);
    let cache = Arc::new(discovery.service_cache(SERVICE));
    let mut events = cache.events();
    let watching = cache.clone();
    let printer = tokio::spawn(async move {
        while events.next().await.is_some() {
            let ids: Vec<String> = watching.instances().into_keys().collect();
            println!("cache {}", ids.join(","));
        }
    });
    let me = ServiceInstance::builder(SERVICE).id(id).port(8080).build();
    register(&discovery, &me).await;
    while let Some(command) = commands.recv().await {
        if command == "stop" {
            break;
        }
    }
    printer.abort();
    cache.close().await;
    discovery.close().await;
}

async fn latch(fw: &Framework, id: &str, writes: usize, gap: Duration, mut commands: mpsc::UnboundedReceiver<String>) {
    let mut round = 0;
    loop {
        let latch = LeaderLatch::start(fw, LOCK, id);
        let mut leading = latch.leadership();
        let led = tokio::select! {
            led = leading.wait_for(|leads| *leads) => led.is_ok(),
            _ = commands.recv() => {
                latch.close().await;
                return;
            }
        };
        drop(leading);
        if let Some(hold) = latch.hold().filter(|_| led) {
            round += 1;
            let token = hold.fencing_token();
            println!("leader {round} {token} {}", hold.session_id());
            for n in 0..writes {
                if n > 0 {
                    tokio::time::sleep(gap).await;
                }
                if !write(fw, hold.fencing_check(), id, token).await {
                    break;
                }
            }
            println!("released {token}");
        }
        latch.close().await;
    }
}

async fn compare(
    fw: &Framework,
    id: &str,
    election: &str,
    service: &str,
    selector: &str,
    mut commands: mpsc::UnboundedReceiver<String>,
) {
    // Subscribed first, so that no reconnection after the registration goes unseen.
    let mut states = fw.state_changes();
    let latch = LeaderLatch::start(fw, election, id);
    // A selector too, re-queued after every term: each term prints its start and its end.
    let selector = LeaderSelector::start(fw, selector, id, true, |leadership| async move {
        println!("selector-leader");
        leadership.lost().await;
        println!("selector-not-leader");
    });
    let mut changes = Box::pin(latch.leadership_changes());
    let printer = tokio::spawn(async move {
        while let Some(leads) = changes.next().await {
            println!("{}", if leads { "leader" } else { "not-leader" });
        }
    });
    let discovery: ServiceDiscovery = ServiceDiscovery::new(fw, SERVICES);
    let me = ServiceInstance::builder(service).id(id).port(8080).build();
    register(&discovery, &me).await;
    loop {
        tokio::select! {
            change = states.next() => match change {
                Some(change) if matches!(change.state, ConnectionState::Connected | ConnectionState::Reconnected) => {
                    // Read back until the instance is there (re-registered after a new session).
                    loop {
                        match discovery.query_for_instance(service, id).await {
                            Ok(Some(_)) => break,
                            Ok(None) => {}
                            Err(err) => println!("error query {err}"),
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    println!("instance-back");
                }
                Some(_) => {}
                None => break,
            },
            command = commands.recv() => if command.is_none_or(|c| c == "stop") {
                break;
            },
        }
    }
    printer.abort();
    discovery.close().await;
    selector.close().await;
    latch.close().await;
}
