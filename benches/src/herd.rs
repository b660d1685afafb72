//! Benchmark `herd` (issue 4): `--herd-clients` framework clients, each keeping an ephemeral
//! [`PersistentNode`], on an embedded server in this process; the server expires every session
//! at once; the server's log of handshakes (ConnectRequests) is cut into 100 ms windows.
//!
//! Run twice: with the framework's default jittered re-session pause, and with it off
//! (`resession_jitter(Duration::ZERO)`).
//!
//! Definitions (also in `benches/README.md`):
//! - windows: 100 ms windows from the first handshake after the expiry to the last one
//!   (`floor((last - first) / 100 ms) + 1` of them);
//! - peak: the most handshakes in one window; mean: handshakes ÷ windows;
//! - all back: from the first `expire_session` call until every client is connected on a new
//!   session (epoch 2) and every node has been created again (seen by an observer's persistent
//!   recursive watch), whichever is later.

use std::collections::HashSet;
use std::time::Duration;

use corral_recipes::persistent_node::PersistentNode;
use corral_recipes::{AddWatchMode, Client, ConnectionState, CreateMode, EventType, Framework};
use corral_server::testing::TestingServer;
use futures::StreamExt as _;
use tokio::time::Instant;

use crate::recipes::{RecipeArgs, ctx};
use crate::report::{Reporter, note};

/// Width of a counting window.
const WINDOW: Duration = Duration::from_millis(100);

/// What one herd run measured.
#[derive(Debug)]
struct HerdRun {
    /// Handshakes per window, from the first handshake on.
    counts: Vec<usize>,
    /// Handshakes in all.
    handshakes: usize,
    /// The most handshakes in one 10 ms window (how sharp the burst inside a 100 ms window is).
    peak_10ms: usize,
    /// From the expiry to every client back.
    all_back: Duration,
    /// From the expiry to the first handshake.
    first_handshake: Duration,
    /// The negotiated session timeout.
    timeout: Duration,
    /// How long expiring every session took.
    expiring: Duration,
    /// Per window from the first handshake: clients told their session is lost (the first
    /// wave's answers), clients on a new session, nodes created again — where the time goes.
    phases: [Vec<usize>; 3],
}

/// Handshakes per `width` window from the first one on: the counts (empty for no handshake).
fn windows(times: &[Instant], width: Duration) -> Vec<usize> {
    let (Some(first), Some(last)) = (times.iter().min(), times.iter().max()) else { return Vec::new() };
    let index = |t: &Instant| (t.duration_since(*first).as_micros() / width.as_micros().max(1)) as usize;
    let mut counts = vec![0usize; index(last) + 1];
    for t in times {
        counts[index(t)] += 1;
    }
    counts
}

/// Moments per `width` window from `origin` on (moments before it count in the first).
fn windows_from(origin: Instant, times: &[Instant], width: Duration) -> Vec<usize> {
    let mut counts = Vec::new();
    for t in times {
        let index = (t.saturating_duration_since(origin).as_micros() / width.as_micros().max(1)) as usize;
        if counts.len() <= index {
            counts.resize(index + 1, 0);
        }
        counts[index] += 1;
    }
    counts
}

/// Runs the herd benchmark with and without the re-session jitter.
///
/// With `RUST_LOG` set (for example `RUST_LOG=corral_core=debug`), the frameworks' logs go to
/// stderr, to see why a client comes back late.
pub(crate) async fn herd(a: &RecipeArgs, r: &Reporter) -> Result<(), String> {
    if std::env::var_os("RUST_LOG").is_some() {
        let filter = tracing_subscriber::EnvFilter::from_default_env();
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    }
    let session = Duration::from_millis(a.herd_session_ms);
    note(format_args!(
        "herd: {} frameworks, session timeout {} ms requested, each with an ephemeral PersistentNode, embedded server in this process",
        a.herd_clients,
        session.as_millis()
    ));
    let threads = a.herd_server_threads;
    if threads > 0 {
        note(format_args!("herd: the server runs on a runtime of its own with {threads} worker threads"));
    }
    let jittered = herd_once(a.herd_clients, session, None, threads).await?;
    report(r, "", &jittered);
    let flat = herd_once(a.herd_clients, session, Some(Duration::ZERO), threads).await?;
    report(r, "_nojitter", &flat);
    Ok(())
}

fn report(r: &Reporter, suffix: &str, run: &HerdRun) {
    let peak = run.counts.iter().copied().max().unwrap_or(0);
    let n_windows = run.counts.len();
    let mean = if n_windows == 0 { 0.0 } else { run.handshakes as f64 / n_windows as f64 };
    let ratio = if mean > 0.0 { peak as f64 / mean } else { 0.0 };
    r.out(&format!("herd_peak_to_mean{suffix}"), format!("{ratio:.2}"), "ratio");
    r.out(
        &format!("herd_all_back_ratio_to_timeout{suffix}"),
        format!("{:.3}", run.all_back.as_secs_f64() / run.timeout.as_secs_f64()),
        "ratio",
    );
    r.out(&format!("herd_peak{suffix}"), peak, "handshakes/100ms");
    r.out(&format!("herd_mean{suffix}"), format!("{mean:.1}"), "handshakes/100ms");
    r.out(&format!("herd_windows{suffix}"), n_windows, "windows");
    r.out(&format!("herd_handshakes{suffix}"), run.handshakes, "handshakes");
    let share = if run.handshakes == 0 { 0.0 } else { peak as f64 / run.handshakes as f64 };
    r.out(&format!("herd_peak_share{suffix}"), format!("{share:.2}"), "ratio");
    r.out(&format!("herd_peak_10ms{suffix}"), run.peak_10ms, "handshakes/10ms");
    r.out(&format!("herd_all_back{suffix}"), format!("{:.1}", run.all_back.as_secs_f64() * 1e3), "ms");
    r.out(&format!("herd_session_timeout{suffix}"), run.timeout.as_millis(), "ms");
    note(format_args!(
        "herd{suffix}: expiring took {:.1} ms; first handshake {:.1} ms after; handshakes per 100 ms: {:?}",
        run.expiring.as_secs_f64() * 1e3,
        run.first_handshake.as_secs_f64() * 1e3,
        run.counts
    ));
    note(format_args!(
        "herd{suffix} per 100 ms from the first handshake: lost {:?}; new sessions {:?}; nodes back {:?}",
        run.phases[0], run.phases[1], run.phases[2]
    ));
}

async fn herd_once(
    clients: usize,
    session: Duration,
    jitter: Option<Duration>,
    server_threads: usize,
) -> Result<HerdRun, String> {
    // The server's tasks live on the runtime that started it.
    let server_rt = match server_threads {
        0 => None,
        n => Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(n)
                .thread_name("herd-server")
                .enable_all()
                .build()
                .map_err(ctx("build the server's runtime"))?,
        ),
    };
    let server = match &server_rt {
        None => TestingServer::start().await,
        Some(rt) => rt.spawn(TestingServer::start()).await.map_err(ctx("start the embedded server"))?,
    }
    .map_err(ctx("start the embedded server"))?;
    let zk = server.connect_string();
    let observer = Client::connect(&zk).await.map_err(ctx("observer"))?;
    observer.create("/herd", "", CreateMode::Persistent).await.map_err(ctx("create /herd"))?;
    let mut fws = Vec::with_capacity(clients);
    let mut nodes = Vec::with_capacity(clients);
    for i in 0..clients {
        let mut builder = Framework::builder(&zk).session_timeout(session);
        if let Some(jitter) = jitter {
            builder = builder.resession_jitter(jitter);
        }
        let fw = builder.start().map_err(ctx("start a framework"))?;
        nodes.push(PersistentNode::start(&fw, format!("/herd/n{i:04}"), CreateMode::Ephemeral, ""));
        fws.push(fw);
    }
    for node in &nodes {
        node.wait_for_initial_create(Duration::from_secs(30)).await.map_err(ctx("initial create"))?;
    }
    let timeout = fws.first().map_or(session, |fw| fw.client().session().timeout);
    // Long-lived connections, as in production: the client pauses 0–20 ms before reconnecting
    // when a connection drops less than 500 ms after it was made (its "quick drop" rule).
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Every re-creation, seen by the observer; every client's new session.
    let mut watch =
        observer.add_watch("/herd", AddWatchMode::PersistentRecursive).await.map_err(ctx("observer's watch"))?;
    let created = tokio::spawn(async move {
        let mut seen = HashSet::new();
        let mut times = Vec::with_capacity(clients);
        while seen.len() < clients {
            match watch.next().await {
                Some(event) if event.event_type == EventType::NodeCreated => {
                    if seen.insert(event.path) {
                        times.push(Instant::now());
                    }
                }
                Some(event) if event.is_session_end() => break,
                Some(_) => {}
                None => break,
            }
        }
        (seen.len(), times)
    });
    let reconnected: Vec<_> = fws
        .iter()
        .map(|fw| {
            let mut states = fw.connection_state();
            tokio::spawn(async move {
                // A watch channel keeps the latest state only: LOST may be overtaken already.
                let lost = match states.wait_for(|s| s.state == ConnectionState::Lost || s.epoch >= 2).await {
                    Ok(s) if s.state == ConnectionState::Lost => Some(Instant::now()),
                    _ => None,
                };
                let back =
                    states.wait_for(|s| s.epoch >= 2 && s.state.is_connected()).await.ok().map(|_| Instant::now());
                (lost, back)
            })
        })
        .collect();

    let sessions: Vec<i64> = fws.iter().map(|fw| fw.client().session_id()).collect();
    server.handshake_times(true);
    let start = Instant::now();
    for id in sessions {
        server.expire_session(id);
    }
    let expiring = start.elapsed();

    let limit = (timeout * 10).max(Duration::from_secs(30));
    let back = tokio::time::timeout(limit, async {
        let (count, created) = created.await.unwrap_or_default();
        let mut last = created.iter().max().copied();
        let mut missing = clients.saturating_sub(count);
        let (mut lost, mut renewed) = (Vec::with_capacity(clients), Vec::with_capacity(clients));
        for task in reconnected {
            let (lost_at, back_at) = task.await.unwrap_or_default();
            lost.extend(lost_at);
            match back_at {
                Some(at) => {
                    last = last.max(Some(at));
                    renewed.push(at);
                }
                None => missing += 1,
            }
        }
        (missing, last, [lost, renewed, created])
    })
    .await;
    let (all_back, phase_times) = match back {
        Ok((0, Some(last), phase_times)) => (last - start, phase_times),
        Ok((missing, ..)) => return Err(format!("herd: {missing} clients or nodes did not come back")),
        Err(_) => return Err(format!("herd: not every client came back within {limit:?}")),
    };
    let times = server.handshake_times(false);
    let first_handshake = times.iter().min().map_or(Duration::ZERO, |t| t.saturating_duration_since(start));
    let origin = times.iter().min().copied().unwrap_or(start);
    let phases = phase_times.map(|ts| windows_from(origin, &ts, WINDOW));
    let run = HerdRun {
        counts: windows(&times, WINDOW),
        handshakes: times.len(),
        peak_10ms: windows(&times, Duration::from_millis(10)).into_iter().max().unwrap_or(0),
        all_back,
        first_handshake,
        timeout,
        expiring,
        phases,
    };

    for node in &nodes {
        node.close().await;
    }
    for fw in &fws {
        fw.close().await;
    }
    observer.close().await;
    server.close().await;
    if let Some(rt) = server_rt {
        rt.shutdown_background();
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_window() {
        let t = Instant::now();
        let ms = |m: u64| t + Duration::from_millis(m);
        assert_eq!(windows(&[], WINDOW), Vec::<usize>::new());
        assert_eq!(windows(&[ms(5), ms(7), ms(104), ms(350)], WINDOW), vec![3, 0, 0, 1]);
        assert_eq!(windows(&[ms(0), ms(99)], WINDOW), vec![2]);
        assert_eq!(windows(&[ms(0), ms(9), ms(10)], Duration::from_millis(10)), vec![2, 1]);
    }
}
