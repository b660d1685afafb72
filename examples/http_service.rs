//! A real HTTP service on Corral — the template to copy into production.
//!
//! It serves HTTP (axum) on a real port, registers itself in service discovery with that port,
//! finds its peers through a provider and calls one, exports Corral's metrics (and its own) in
//! Prometheus text on `/metrics`, and on SIGTERM or Ctrl-C unregisters *before* it stops serving,
//! so no client is sent to an instance that is going away.
//!
//! ```text
//! cargo run --example http_service                      # embedded ZooKeeper, port chosen by the OS
//! cargo run --example http_service -- --zk zk1:2181 --port 8080 --name api
//! curl localhost:8080/hello; curl localhost:8080/peer; curl localhost:8080/metrics
//! ```
//!
//! Endpoints: `/hello` (this instance), `/peer` (calls `/hello` on an instance the provider
//! picks, round robin — itself when alone), `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use corral::Framework;
use corral::discovery::{ProviderStrategy, ServiceDiscovery, ServiceInstance, ServiceProvider};
use corral_server::testing::TestingServer;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where the service's instances register.
const BASE: &str = "/services";

struct App {
    id: String,
    provider: ServiceProvider,
    metrics: PrometheusHandle,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (mut zk, mut port, mut name) =
        (std::env::var("CORRAL_ZK").ok().filter(|s| !s.is_empty()), 0u16, "api".to_owned());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--zk" => zk = Some(args.next().ok_or("--zk needs HOST:PORT")?),
            "--port" => port = args.next().ok_or("--port needs a number")?.parse()?,
            "--name" => name = args.next().ok_or("--name needs a service name")?,
            "-h" | "--help" => {
                println!("usage: http_service [--zk HOST:PORT[,…][/chroot]] [--port PORT] [--name SERVICE]");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    // Metrics first, so that every number from the start is recorded.
    let metrics = PrometheusBuilder::new().install_recorder()?;
    let _embedded = match &zk {
        Some(_) => None,
        None => {
            let server = TestingServer::start().await?;
            zk = Some(server.connect_string());
            Some(server)
        }
    };
    let zk = zk.ok_or("no ZooKeeper")?;

    // Bind first: the registration carries the port the OS really gave.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr: SocketAddr = listener.local_addr()?;
    println!("listening on http://{addr}");

    let fw = Framework::builder(zk.clone()).start()?;
    fw.wait_until_connected(Duration::from_secs(15)).await?;
    let discovery: Arc<ServiceDiscovery> = Arc::new(ServiceDiscovery::new(&fw, BASE));
    let instance = ServiceInstance::builder(&name).address(addr.ip().to_string()).port(addr.port()).build();
    let id = instance.id.clone();
    discovery.register(instance).await?;
    println!("registered {name}/{id} at {addr} in {zk}");

    let provider = discovery.provider(&name, ProviderStrategy::RoundRobin);
    let app = Arc::new(App { id: id.clone(), provider, metrics });
    let router = Router::new()
        .route("/hello", get(hello))
        .route("/peer", get(peer))
        .route("/metrics", get(render_metrics))
        .with_state(app.clone());

    // On SIGTERM or Ctrl-C: leave discovery first, then stop serving (in-flight requests finish).
    let (leave_tx, leave_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = {
        let (discovery, id) = (discovery.clone(), id.clone());
        async move {
            stop_signal().await;
            match discovery.unregister(&id).await {
                Ok(()) => println!("unregistered {id}"),
                Err(e) => eprintln!("could not unregister {id}: {e} (the node goes with the session)"),
            }
            let _ = leave_tx.send(());
        }
    };
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await?;
    let _ = leave_rx.await;
    app.provider.close().await;
    discovery.close().await;
    fw.close().await;
    println!("stopped");
    Ok(())
}

async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn hello(State(app): State<Arc<App>>) -> String {
    metrics::counter!("http_service_hello_total").increment(1);
    format!("hello from {}\n", app.id)
}

/// Calls `/hello` on an instance the provider picks (plain HTTP/1.0 over TCP, to keep the
/// template free of an HTTP client dependency; use yours).
async fn peer(State(app): State<Arc<App>>) -> String {
    let Some(instance) = app.provider.get_instance() else { return "no instance registered\n".into() };
    let host = instance.address.clone().unwrap_or_else(|| "127.0.0.1".into());
    let target = format!("{host}:{}", instance.port.unwrap_or(80));
    match get_body(&target, "/hello").await {
        Ok(body) => format!("{} answered: {body}", instance.id),
        Err(e) => {
            app.provider.note_error(&instance);
            format!("{} failed: {e}\n", instance.id)
        }
    }
}

async fn render_metrics(State(app): State<Arc<App>>) -> String {
    app.metrics.render()
}

async fn get_body(target: &str, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(target)).await??;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {target}\r\n\r\n").as_bytes()).await?;
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_string(&mut response)).await??;
    Ok(response.split_once("\r\n\r\n").map_or(response.clone(), |(_, body)| body.to_owned()))
}
