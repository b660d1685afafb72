//! `tls` (issue 13): what TLS costs, on one real ZooKeeper 3.8 with a Netty `secureClientPort`
//! beside its plain port, started by this mode (`corral-test-support`), with certificates made
//! here (`rcgen`).
//!
//! In each of `--tls-rounds` rounds, plain then TLS (the order alternating between rounds):
//! warm connects (builder → session established, each closed after timing), sequential
//! `getData` of a 128 B znode, and pipelined `getData` (the `throughput` benchmark's loop, 1 000
//! in flight over 100 znodes), after `--tls-server-warmup` unmeasured connects on each port.
//! Latencies are pooled over the rounds; throughput is the median round. Then the parts of a
//! TLS connect, timed on their own and interleaved (`tls_phase_*`: TCP, full and resumed
//! handshakes, the ConnectRequest exchange on TLS and on plain, a whole client connect). Then
//! Curator 5.4 does the same in one JVM (`benches/java/CuratorTlsBench.java`, compiled with
//! `javac` once per source, `corral_test_support::java::compiled_classes`), its lines prefixed
//! `curator_`. The ratios the targets
//! are about come last. See `benches/README.md`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corral_core::{Client, ClientTls, CreateMode};
use corral_test_support::{SecuredConfig, ZkTls};

use crate::clients::{OpError, OpResult};
use crate::report::{Reporter, Unit, note};
use crate::workloads::{self, Config};
use corral_test_support::java::{CompileError, JAR_DIR, classpath, compiled_classes, jdk_tool};

/// The `tls` benchmark's flags.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct TlsArgs {
    /// tls: rounds of plain + TLS measurements (their order alternates).
    #[arg(long, default_value_t = 3)]
    pub(crate) tls_rounds: usize,
    /// tls: skip Curator's side (no JVM client).
    #[arg(long)]
    pub(crate) tls_no_curator: bool,
    /// tls: unmeasured connects on each transport before the rounds (the server's JIT warms
    /// its TLS code, as the anchors warm the server first).
    #[arg(long, default_value_t = 200)]
    pub(crate) tls_server_warmup: usize,
    /// tls: bare TLS handshakes timed on their own (TCP connect, then the handshake), full
    /// and resumed, after the rounds.
    #[arg(long, default_value_t = 200)]
    pub(crate) tls_handshakes: usize,
    /// tls: build a new `ClientTls` for every measured connect (as an application that builds
    /// one per client would), so that no TLS session is resumed: the cost of full handshakes.
    #[arg(long)]
    pub(crate) tls_fresh_config: bool,
    /// tls: also measure against the embedded server (rustls on both ends), whose metrics are
    /// prefixed `embedded_`: what TLS costs Corral's client itself.
    #[arg(long)]
    pub(crate) tls_embedded: bool,
    /// tls: one more `zoo.cfg` line for the ZooKeeper it starts (repeatable), for example
    /// `ssl.protocol=TLSv1.3` or `ssl.ciphersuites=...`: what the server's TLS settings cost.
    #[arg(long = "tls-server-cfg", value_name = "KEY=VALUE")]
    pub(crate) tls_server_cfg: Vec<String>,
    /// tls: give the servers an RSA-2048 key (made with `openssl genpkey`, which must be on the
    /// PATH) instead of an ECDSA P-256 one: what a full handshake costs with the keys many
    /// internal PKIs still issue.
    #[arg(long)]
    pub(crate) tls_rsa: bool,
}

/// One transport's samples over all rounds.
#[derive(Default)]
struct Samples {
    connects: Vec<Duration>,
    gets: Vec<Duration>,
    get_rates: Vec<f64>,
    /// Per pipelined window, when the server is a process of its own: its busiest thread's
    /// share of one CPU and name, and the server's and this process's CPU time per get.
    server: Vec<ServerLoad>,
}

/// Where the CPU went during one pipelined window (see [`Samples::server`]).
struct ServerLoad {
    busiest_share: f64,
    busiest_name: String,
    server_us_per_op: f64,
    client_us_per_op: f64,
    /// Gets per read and per write system call of the server (a JVM's socket I/O is `read`
    /// and `write`, which `/proc/PID/io` counts; this process's `recv` and `send` are not).
    server_gets_per_read: f64,
    server_gets_per_write: f64,
}

const ROOT: &str = "/corral-tls-bench";

/// Runs the `tls` benchmark (see the module documentation).
///
/// With `RUST_LOG` set (for example `RUST_LOG=corral_core::tls=debug`, which logs every
/// handshake, resumed or not), the client's logs go to stderr.
pub(crate) async fn run(cfg: &Config, args: &TlsArgs) -> OpResult {
    if std::env::var_os("RUST_LOG").is_some() {
        let filter = tracing_subscriber::EnvFilter::from_default_env();
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    }
    let dir = scratch_dir()?;
    let result = run_in(cfg, args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(cfg: &Config, args: &TlsArgs, dir: &Path) -> OpResult {
    let certs = Certs::make(dir, args.tls_rsa)?;
    let config = SecuredConfig {
        tls: Some(ZkTls {
            key_and_cert: certs.server.clone(),
            trust: certs.ca.clone(),
            client_auth: "none".to_owned(),
        }),
        extra_cfg: args.tls_server_cfg.clone(),
        ..SecuredConfig::default()
    };
    let zk = tokio::task::spawn_blocking(move || corral_test_support::secured_zookeeper(&config))
        .await
        .map_err(|e| OpError::Other(format!("starting ZooKeeper: {e}")))?
        .ok_or_else(|| OpError::Other("tls needs Java and Debian's zookeeper package".to_owned()))?;
    let plain = zk.addr().to_string();
    let secure = zk.secure_addr().map(|a| a.to_string()).ok_or_else(|| OpError::Other("no secure port".into()))?;
    note(format_args!("tls: ZooKeeper with plain port {plain} and Netty secureClientPort {secure}"));
    let ca_pem = std::fs::read(&certs.ca).map_err(|e| OpError::Other(format!("{}: {e}", certs.ca.display())))?;
    let tls = ClientTls::builder().ca_pem(&ca_pem).build().map_err(|e| OpError::Other(e.to_string()))?;

    let server_pid = Some(zk.java_pid());
    let (mut plain_samples, mut tls_samples) = rounds(cfg, args, &plain, &secure, &tls, &ca_pem, server_pid).await?;
    let interleaved_connect = handshakes(&plain, &secure, &tls, &ca_pem, args.tls_handshakes).await?;
    let r = Reporter::new("");
    report(&r, "plain", &mut plain_samples);
    report(&r, "tls", &mut tls_samples);

    if args.tls_no_curator {
        note("tls: Curator skipped (--tls-no-curator)");
    } else {
        let (plain, secure, certs, cfg) = (plain.clone(), secure.clone(), certs.clone(), cfg.clone());
        let rounds = args.tls_rounds.max(1);
        tokio::task::spawn_blocking(move || curator(&cfg, rounds, &plain, &secure, &certs))
            .await
            .map_err(|e| OpError::Other(format!("the Curator run: {e}")))??;
    }

    let ratio = |a: f64, b: f64| if b > 0.0 { format!("{:.2}", a / b) } else { "-1".to_owned() };
    r.out(
        "tls_vs_plain_async_get_ops",
        ratio(median(&mut tls_samples.get_rates), median(&mut plain_samples.get_rates)),
        "x (target >= 0.8)",
    );
    r.out(
        "tls_vs_plain_get_p50",
        ratio(p50(&tls_samples.gets).as_secs_f64(), p50(&plain_samples.gets).as_secs_f64()),
        "x (target <= 1.2)",
    );
    // The target is read from the interleaved connects: in the rounds, the connects of each
    // transport come right after the other's five seconds of pipelined load, and the server's
    // first session creations after such a burst take tens of milliseconds, TLS or not.
    let connect_p50 = interleaved_connect.unwrap_or_else(|| p50(&tls_samples.connects));
    r.out("tls_connect_p50_target", format!("{:.2}", connect_p50.as_secs_f64() * 1e3), "ms (target <= 5)");
    r.out(
        "tls_connect_p50_rounds",
        format!("{:.2}", p50(&tls_samples.connects).as_secs_f64() * 1e3),
        "ms (after the other transport's pipelined burst)",
    );

    let c = Wrap(connect(&plain, None, cfg.session_timeout).await?);
    workloads::delete_tree(&c, ROOT).await?;
    c.0.close().await;
    drop(zk);
    if args.tls_embedded {
        embedded(cfg, args, &certs, &tls, &ca_pem).await?;
    }
    Ok(())
}

fn report(r: &Reporter, name: &str, s: &mut Samples) {
    r.stats(&format!("{name}_connect"), &mut s.connects, Unit::Millis);
    r.stats(&format!("{name}_get"), &mut s.gets, Unit::Micros);
    r.out(&format!("{name}_async_get_ops"), format!("{:.0}", median(&mut s.get_rates)), "ops/s");
    if s.server.is_empty() {
        return;
    }
    let mut busiest: Vec<f64> = s.server.iter().map(|l| l.busiest_share).collect();
    let mut server: Vec<f64> = s.server.iter().map(|l| l.server_us_per_op).collect();
    let mut client: Vec<f64> = s.server.iter().map(|l| l.client_us_per_op).collect();
    let mut names: Vec<&str> = s.server.iter().map(|l| l.busiest_name.as_str()).collect();
    names.dedup();
    r.out(
        &format!("{name}_pipelined_server_busiest_thread"),
        format!("{:.2}", median(&mut busiest)),
        &format!("of a CPU, median window ({})", names.join(", ")),
    );
    r.out(&format!("{name}_pipelined_server_cpu_per_get"), format!("{:.1}", median(&mut server)), "us");
    r.out(&format!("{name}_pipelined_client_cpu_per_get"), format!("{:.1}", median(&mut client)), "us");
    let mut reads: Vec<f64> = s.server.iter().map(|l| l.server_gets_per_read).collect();
    let mut writes: Vec<f64> = s.server.iter().map(|l| l.server_gets_per_write).collect();
    r.out(&format!("{name}_pipelined_server_gets_per_read"), format!("{:.1}", median(&mut reads)), "gets per read(2)");
    r.out(
        &format!("{name}_pipelined_server_gets_per_write"),
        format!("{:.1}", median(&mut writes)),
        "gets per write(2)",
    );
}

/// The server warm-up, then the rounds, plain and TLS alternating.
async fn rounds(
    cfg: &Config,
    args: &TlsArgs,
    plain: &str,
    secure: &str,
    tls: &ClientTls,
    ca_pem: &[u8],
    server_pid: Option<u32>,
) -> OpResult<(Samples, Samples)> {
    let fresh = args.tls_fresh_config.then_some(ca_pem);
    let paths = setup(plain, cfg).await?;
    for _ in 0..args.tls_server_warmup {
        connect(plain, None, cfg.session_timeout).await?.close().await;
        connect(secure, Some(tls), cfg.session_timeout).await?.close().await;
    }
    let (mut plain_samples, mut tls_samples) = (Samples::default(), Samples::default());
    for round in 0..args.tls_rounds.max(1) {
        let order = if round % 2 == 0 { [false, true] } else { [true, false] };
        for use_tls in order {
            let (addr, tls, samples) =
                if use_tls { (secure, Some(tls), &mut tls_samples) } else { (plain, None, &mut plain_samples) };
            measure(cfg, addr, tls, fresh, &paths, samples, server_pid).await?;
        }
    }
    Ok((plain_samples, tls_samples))
}

/// Where a TLS connect's time goes, on the ZooKeeper TLS port: the TCP connect alone, the TLS
/// handshake alone (`ClientTls::handshake`), full (a fresh `ClientTls` each time, so nothing to
/// resume) and resumed (one `ClientTls`, whose session store the server's tickets fill), and
/// then the ConnectRequest → ConnectResponse exchange on the resumed connection, beside the
/// same exchange on the plain port; then a whole client connect (builder → session) on each
/// port; `n` of each, interleaved. Every session made is closed. Returns the p50 of the TLS
/// client connects, or `None` when `n` is 0.
async fn handshakes(plain: &str, secure: &str, tls: &ClientTls, ca_pem: &[u8], n: usize) -> OpResult<Option<Duration>> {
    let fail = |e: &dyn std::fmt::Display| OpError::Other(format!("handshake to {secure}: {e}"));
    let addr: std::net::SocketAddr = secure.parse().map_err(|e| fail(&e))?;
    let plain_addr: std::net::SocketAddr = plain.parse().map_err(|e| fail(&e))?;
    let host = corral_core::HostPort { host: addr.ip().to_string(), port: addr.port() };
    let tcp_connect = || async {
        let socket = tokio::net::TcpStream::connect(addr).await.map_err(|e| fail(&e))?;
        socket.set_nodelay(true).map_err(|e| fail(&e))?;
        Ok::<_, OpError>(socket)
    };
    let (mut tcp, mut full, mut resumed, mut exchange, mut plain_exchange, mut whole) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut full_p256, mut plain_whole) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let fresh = ClientTls::builder().ca_pem(ca_pem).build().map_err(|e| fail(&e))?;
        let socket = tcp_connect().await?;
        let t0 = Instant::now();
        drop(fresh.handshake(socket, &host).await.map_err(|e| fail(&e))?);
        full.push(t0.elapsed());

        let fresh = p256_first(ca_pem).map_err(|e| fail(&e))?;
        let socket = tcp_connect().await?;
        let t0 = Instant::now();
        drop(fresh.handshake(socket, &host).await.map_err(|e| fail(&e))?);
        full_p256.push(t0.elapsed());

        let t0 = Instant::now();
        let socket = tcp_connect().await?;
        let t1 = Instant::now();
        let mut stream = tls.handshake(socket, &host).await.map_err(|e| fail(&e))?;
        resumed.push(t1.elapsed());
        tcp.push(t1 - t0);
        exchange.push(session_exchange(&mut stream).await.map_err(|e| fail(&e))?);

        let mut socket = tokio::net::TcpStream::connect(plain_addr).await.map_err(|e| fail(&e))?;
        socket.set_nodelay(true).map_err(|e| fail(&e))?;
        plain_exchange.push(session_exchange(&mut socket).await.map_err(|e| fail(&e))?);

        let t0 = Instant::now();
        let client = connect(secure, Some(tls), Duration::from_secs(30)).await?;
        whole.push(t0.elapsed());
        client.close().await;
        let t0 = Instant::now();
        let client = connect(plain, None, Duration::from_secs(30)).await?;
        plain_whole.push(t0.elapsed());
        client.close().await;
    }
    let r = Reporter::new("");
    r.stats("tls_phase_tcp_connect", &mut tcp, Unit::Millis);
    r.stats("tls_phase_handshake_full", &mut full, Unit::Millis);
    r.stats("tls_phase_handshake_full_p256_first", &mut full_p256, Unit::Millis);
    r.stats("tls_phase_handshake_resumed", &mut resumed, Unit::Millis);
    r.stats("tls_phase_session_exchange", &mut exchange, Unit::Millis);
    r.stats("plain_phase_session_exchange", &mut plain_exchange, Unit::Millis);
    r.stats("tls_phase_client_connect", &mut whole, Unit::Millis);
    r.stats("plain_phase_client_connect", &mut plain_whole, Unit::Millis);
    Ok((n > 0).then(|| p50(&whole)))
}

/// Corral's TLS settings, but with the key exchange offering P-256 before X25519: a TLS 1.2 server
/// on the JDK takes the first group of the client's list that it supports.
fn p256_first(ca_pem: &[u8]) -> Result<ClientTls, String> {
    use corral_core::rustls;
    use rustls::crypto::ring::kx_group;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    #[allow(deprecated, reason = "the ring provider, as corral-core uses it")]
    let mut provider = rustls::crypto::ring::default_provider();
    let (p256, p384, x25519) = (kx_group::SECP256R1, kx_group::SECP384R1, kx_group::X25519);
    provider.kx_groups = vec![p256, x25519, p384];
    let config = rustls::ClientConfig::builder_with_provider(provider.into())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(ClientTls::from_rustls(config.into()))
}

/// Sends a ConnectRequest for a new session and reads its ConnectResponse, which is the time
/// returned; then closes the session (CloseSession and its reply, untimed).
async fn session_exchange<S>(stream: &mut S) -> std::io::Result<Duration>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use corral_proto::{ConnectRequest, FrameDecoder, Jute, OpCode, RequestHeader, encode_frame};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    async fn send<S: tokio::io::AsyncWrite + Unpin>(stream: &mut S, frame: &[u8]) -> std::io::Result<()> {
        stream.write_all(frame).await?;
        stream.flush().await
    }
    async fn reply<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, buf: &mut bytes::BytesMut) -> std::io::Result<()> {
        let mut decoder = FrameDecoder::default();
        loop {
            if decoder.decode(buf).map_err(std::io::Error::other)?.is_some() {
                return Ok(());
            }
            if stream.read_buf(buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
    let request = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout: 30_000,
        session_id: 0,
        passwd: Bytes::from_static(&[0; 16]),
        read_only: Some(false),
    };
    let (mut connect, mut close, mut buf) = (bytes::BytesMut::new(), bytes::BytesMut::new(), bytes::BytesMut::new());
    encode_frame(&mut connect, |b| request.write(b));
    encode_frame(&mut close, |b| RequestHeader { xid: 1, op: OpCode::CloseSession }.write(b));
    let t0 = Instant::now();
    send(stream, &connect).await?;
    reply(stream, &mut buf).await?;
    let took = t0.elapsed();
    send(stream, &close).await?;
    reply(stream, &mut buf).await?;
    Ok(took)
}

/// The same rounds against the embedded server (rustls on its side too), on a thread and
/// runtime of its own; metrics prefixed `embedded_`.
async fn embedded(cfg: &Config, args: &TlsArgs, certs: &Certs, tls: &ClientTls, ca_pem: &[u8]) -> OpResult {
    let server_tls = corral_server::ServerTls::builder_from_files(&certs.server, &certs.server)
        .build()
        .map_err(|e| OpError::Other(format!("embedded server TLS: {e}")))?;
    let server = crate::server::Embedded::start_from(corral_server::Server::builder().tls(server_tls))
        .map_err(OpError::Other)?;
    let (plain, secure) = match server.secure_connect_string() {
        Some(secure) => (server.connect_string(), secure),
        None => return Err(OpError::Other("the embedded server has no TLS port".into())),
    };
    note(format_args!("tls: embedded server, plain {plain}, TLS {secure}"));
    let result = rounds(cfg, args, &plain, &secure, tls, ca_pem, None).await;
    drop(server);
    let (mut plain_samples, mut tls_samples) = result?;
    let r = Reporter::new("embedded_");
    report(&r, "plain", &mut plain_samples);
    report(&r, "tls", &mut tls_samples);
    Ok(())
}

/// Sorted samples' nearest-rank median (the samples were sorted by `Reporter::stats`).
fn p50(sorted: &[Duration]) -> Duration {
    if sorted.is_empty() { Duration::ZERO } else { sorted[(sorted.len() - 1) / 2] }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() { 0.0 } else { values[(values.len() - 1) / 2] }
}

async fn connect(addr: &str, tls: Option<&ClientTls>, session_timeout: Duration) -> OpResult<Client> {
    let builder = Client::builder(addr).session_timeout(session_timeout);
    let builder = match tls {
        Some(tls) => builder.tls(tls.clone()),
        None => builder,
    };
    builder.connect().await.map_err(|e| OpError::Other(format!("connect to {addr}: {e}")))
}

/// The znodes every measurement reads: `ROOT/n<i>`, `cfg.nodes` of them with `cfg.data_size` B.
async fn setup(plain: &str, cfg: &Config) -> OpResult<Vec<String>> {
    let c = Wrap(connect(plain, None, cfg.session_timeout).await?);
    let data = Bytes::from(vec![0u8; cfg.data_size]);
    workloads::delete_tree(&c, ROOT).await?;
    c.0.create(ROOT, Bytes::new(), CreateMode::Persistent).await.map_err(|e| OpError::Other(e.to_string()))?;
    let paths: Vec<String> = (0..cfg.nodes.max(1)).map(|i| format!("{ROOT}/n{i}")).collect();
    for p in &paths {
        c.0.create(p, data.clone(), CreateMode::Persistent).await.map_err(|e| OpError::Other(e.to_string()))?;
    }
    c.0.close().await;
    Ok(paths)
}

/// One round on one transport: warm connects, sequential gets, pipelined gets.
async fn measure(
    cfg: &Config,
    addr: &str,
    tls: Option<&ClientTls>,
    fresh: Option<&[u8]>,
    paths: &[String],
    s: &mut Samples,
    server_pid: Option<u32>,
) -> OpResult {
    for _ in 0..cfg.warm_connects {
        // The settings as a new builder makes them, outside the timing: a session store of its own.
        let own = match fresh.filter(|_| tls.is_some()) {
            Some(ca) => Some(ClientTls::builder().ca_pem(ca).build().map_err(|e| OpError::Other(e.to_string()))?),
            None => None,
        };
        let t0 = Instant::now();
        let c = connect(addr, own.as_ref().or(tls), cfg.session_timeout).await?;
        s.connects.push(t0.elapsed());
        c.close().await;
    }
    let c = connect(addr, tls, cfg.session_timeout).await?;
    let p = &paths[0];
    let get = |p: &str| {
        let reply = c.get_data(p);
        async move { reply.await.map(|_| ()).map_err(|e| OpError::Other(e.to_string())) }
    };
    for _ in 0..cfg.get_warmup {
        get(p).await?;
    }
    let deadline = Instant::now() + cfg.get_limit;
    let mut n = 0;
    while n < cfg.gets && Instant::now() < deadline {
        let t0 = Instant::now();
        get(p).await?;
        s.gets.push(t0.elapsed());
        n += 1;
    }
    workloads::pipelined(get, paths, cfg.outstanding, cfg.tp_warmup).await;
    let before = server_pid.map(|pid| (workloads::thread_cpu(pid), workloads::process_cpu()));
    let calls_before = server_pid.and_then(|pid| workloads::syscalls(Some(pid)));
    let pass = workloads::pipelined(get, paths, cfg.outstanding, cfg.tp_window).await;
    if pass.errors > 0 {
        return Err(OpError::Other(format!("{} pipelined gets failed", pass.errors)));
    }
    s.get_rates.push(pass.done as f64 / pass.elapsed.as_secs_f64());
    if let (Some(pid), Some((threads, Some(client))), Some(after_client)) =
        (server_pid, before, workloads::process_cpu())
    {
        let after = workloads::thread_cpu(pid);
        if let Some((name, used)) = workloads::busiest_thread(&threads, &after) {
            let per_op = |d: Duration| d.as_secs_f64() * 1e6 / pass.done.max(1) as f64;
            let per_call = |n: u64| pass.done as f64 / n.max(1) as f64;
            let (server_gets_per_read, server_gets_per_write) = match calls_before.zip(workloads::syscalls(Some(pid))) {
                Some(((r0, w0), (r1, w1))) => (per_call(r1.saturating_sub(r0)), per_call(w1.saturating_sub(w0))),
                None => (f64::NAN, f64::NAN),
            };
            s.server.push(ServerLoad {
                busiest_share: used.as_secs_f64() / pass.elapsed.as_secs_f64(),
                busiest_name: name,
                server_us_per_op: per_op(workloads::total_cpu(&threads, &after)),
                client_us_per_op: per_op(after_client.saturating_sub(client)),
                server_gets_per_read,
                server_gets_per_write,
            });
        }
    }
    c.close().await;
    Ok(())
}

/// `corral_core::Client` as the workloads' client, for their tree helpers.
struct Wrap(Client);

impl crate::clients::BenchClient for Wrap {
    fn describe() -> String {
        String::new()
    }

    async fn connect(connect_string: &str, session_timeout: Duration) -> OpResult<Self> {
        connect(connect_string, None, session_timeout).await.map(Wrap)
    }

    fn get(&self, path: &str) -> impl Future<Output = OpResult> + Send {
        let reply = self.0.get_data(path);
        async move { reply.await.map(|_| ()).map_err(crate::clients::corral_error) }
    }

    fn set(&self, path: &str, data: &Bytes) -> impl Future<Output = OpResult> + Send {
        let reply = self.0.set_data(path, data.clone(), None);
        async move { reply.await.map(|_| ()).map_err(crate::clients::corral_error) }
    }

    fn create<'a>(&'a self, path: &'a str, data: &'a Bytes) -> impl Future<Output = OpResult> + Send + 'a {
        let reply = self.0.create(path, data.clone(), CreateMode::Persistent);
        async move { reply.await.map(|_| ()).map_err(crate::clients::corral_error) }
    }

    fn delete(&self, path: &str) -> impl Future<Output = OpResult> + Send {
        let reply = self.0.delete(path, None);
        async move { reply.await.map_err(crate::clients::corral_error) }
    }

    fn children(&self, path: &str) -> impl Future<Output = OpResult<Vec<String>>> + Send {
        let reply = self.0.get_children(path);
        async move { reply.await.map_err(crate::clients::corral_error) }
    }

    async fn close(self) {
        self.0.close().await;
    }
}

/// The files of the test PKI: the CA bundle, and the server's key + certificate in one PEM file
/// (ZooKeeper's `ssl.keyStore.type=PEM`).
#[derive(Debug, Clone)]
struct Certs {
    ca: PathBuf,
    server: PathBuf,
}

impl Certs {
    fn make(dir: &Path, rsa: bool) -> OpResult<Certs> {
        let fail = |e: rcgen::Error| OpError::Other(format!("making the test certificates: {e}"));
        let ca_key = rcgen::KeyPair::generate().map_err(fail)?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "corral-bench CA");
        let ca_cert = ca_params.self_signed(&ca_key).map_err(fail)?;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = if rsa { rsa_2048(dir)? } else { rcgen::KeyPair::generate().map_err(fail)? };
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).map_err(fail)?;
        let cert = params.signed_by(&key, &issuer).map_err(fail)?;
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).map(|()| path).map_err(|e| OpError::Other(format!("{name}: {e}")))
        };
        Ok(Certs {
            ca: write("ca.pem", ca_cert.pem())?,
            server: write("server.pem", format!("{}{}", key.serialize_pem(), cert.pem()))?,
        })
    }
}

/// A new RSA-2048 key from `openssl genpkey` (ring, rcgen's backend here, signs with RSA keys
/// but does not make them).
fn rsa_2048(dir: &Path) -> OpResult<rcgen::KeyPair> {
    let path = dir.join("rsa-key.pem");
    let made = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
        .arg(&path)
        .output()
        .map_err(|e| OpError::Other(format!("--tls-rsa needs the openssl command: {e}")))?;
    if !made.status.success() {
        return Err(OpError::Other(format!(
            "openssl genpkey failed: {}",
            String::from_utf8_lossy(&made.stderr).trim()
        )));
    }
    let pem = std::fs::read_to_string(&path).map_err(|e| OpError::Other(format!("{}: {e}", path.display())))?;
    rcgen::KeyPair::from_pem(&pem).map_err(|e| OpError::Other(format!("the RSA key: {e}")))
}

fn scratch_dir() -> OpResult<PathBuf> {
    let dir = std::env::temp_dir().join(format!("corral-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| OpError::Other(format!("{}: {e}", dir.display())))?;
    Ok(dir)
}

const CURATOR_JARS: &[&str] = &[
    "curator-framework.jar",
    "curator-client.jar",
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "guava.jar",
    "slf4j-api.jar",
    "netty-codec.jar",
    "netty-resolver.jar",
];

/// Compiles and runs `benches/java/CuratorTlsBench.java` against the same server, and prints
/// its `metric=value unit` lines prefixed `curator_`.
fn curator(cfg: &Config, rounds: usize, plain: &str, secure: &str, certs: &Certs) -> OpResult {
    let skip = |why: String| {
        note(format_args!("tls: Curator skipped: {why}"));
        Ok(())
    };
    let Ok(java) = jdk_tool("java") else {
        return skip("no java (openjdk-17-jdk-headless)".to_owned());
    };
    let cp = match classpath(CURATOR_JARS, "libcurator-framework-java zookeeper libnetty-java") {
        Ok(cp) => cp,
        Err(why) => return skip(why),
    };
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("java/CuratorTlsBench.java");
    let classes = match compiled_classes("curator-tls-bench", &[source], &cp) {
        Ok(classes) => classes,
        Err(CompileError::Unavailable(why)) => return skip(why),
        Err(failed) => return Err(OpError::Other(failed.to_string())),
    };
    let simple = Path::new(JAR_DIR).join("slf4j-simple.jar");
    let runtime_cp = format!("{}:{cp}:{}", classes.display(), simple.display());
    let out = Command::new(java)
        .args(["-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"])
        .arg(format!("-Dzk={plain}"))
        .arg(format!("-DzkTls={secure}"))
        .arg(format!("-Dtrust={}", certs.ca.display()))
        .arg(format!("-Drounds={rounds}"))
        .arg(format!("-Dconnects={}", cfg.warm_connects))
        .arg(format!("-DgetWarmup={}", cfg.get_warmup))
        .arg(format!("-Dgets={}", cfg.gets))
        .arg(format!("-DgetSecs={}", cfg.get_limit.as_secs_f64()))
        .arg(format!("-Doutstanding={}", cfg.outstanding))
        .arg(format!("-DtpWarmupSecs={}", cfg.tp_warmup.as_secs_f64()))
        .arg(format!("-DtpSecs={}", cfg.tp_window.as_secs_f64()))
        .arg(format!("-Droot={ROOT}"))
        .arg(format!("-Dnodes={}", cfg.nodes.max(1)))
        .args(["-cp", &runtime_cp, "CuratorTlsBench"])
        .output()
        .map_err(|e| OpError::Other(format!("java: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let r = Reporter::new("curator_");
    for line in stdout.lines() {
        match line.split_once('=') {
            Some((metric, rest)) if !line.starts_with('#') => {
                let (value, unit) = rest.split_once(' ').unwrap_or((rest, ""));
                r.out(metric, value, unit);
            }
            _ => note(line.trim_start_matches("# ")),
        }
    }
    if !out.status.success() {
        return Err(OpError::Other(format!(
            "CuratorTlsBench exited with {}:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}
