//! A thousand registered clients expired at once: every instance comes back, and the clients
//! do not all reconnect in the same instant (the jittered re-session pause spreads them).

mod common;

use std::time::Duration;

use corral_recipes::discovery::{ServiceDiscovery, ServiceInstance};
use corral_recipes::{Framework, RetryNTimes};

/// Connection requests per 100 ms window: (peak, mean over the windows from first to last).
fn peak_and_mean(times: &[tokio::time::Instant]) -> (usize, f64) {
    let (Some(first), Some(last)) = (times.iter().min(), times.iter().max()) else { return (0, 0.0) };
    let windows = (last.duration_since(*first).as_millis() / 100) as usize + 1;
    let mut counts = vec![0usize; windows];
    for t in times {
        counts[(t.duration_since(*first).as_millis() / 100) as usize] += 1;
    }
    let peak = counts.iter().copied().max().unwrap_or(0);
    (peak, times.len() as f64 / windows as f64)
}

/// The re-session pause's upper bound.
const JITTER: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_expired_registrations_all_come_back_spread_out() {
    let clients = std::env::var("CORRAL_HERD_CLIENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000usize);
    let env = common::embedded("herd").await;
    let server = env.server.clone().unwrap();
    let mut fws = Vec::with_capacity(clients);
    let mut registries = Vec::with_capacity(clients);
    for i in 0..clients {
        let fw = Framework::builder(env.connect_string())
            .session_timeout(Duration::from_secs(20))
            .retry_policy(RetryNTimes::new(50, Duration::from_millis(50)))
            .resession_jitter(JITTER)
            .start()
            .unwrap();
        let discovery: ServiceDiscovery = ServiceDiscovery::new(&fw, "/services");
        discovery.register(ServiceInstance::builder("api").id(format!("i{i:04}")).port(8000).build()).await.unwrap();
        fws.push(fw);
        registries.push(discovery);
    }
    let observer = env.client().await;
    assert_eq!(observer.get_children("/services/api").await.unwrap().len(), clients);

    server.handshake_times(true);
    let start = tokio::time::Instant::now();
    for fw in &fws {
        server.expire_session(fw.client().session_id());
    }
    common::eventually("every instance back on a new session", || async {
        observer.get_children("/services/api").await.map(|c| c.len() == clients).unwrap_or(false)
            && fws.iter().all(|fw| fw.current_state().epoch == 2 && fw.current_state().state.is_connected())
    })
    .await;
    let took = start.elapsed();
    let times = server.handshake_times(false);
    let (peak, mean) = peak_and_mean(&times);
    eprintln!(
        "herd: {clients} clients back in {took:?}; {} handshakes, peak {peak} per 100 ms, mean {mean:.1}, peak/mean {:.2}",
        times.len(),
        peak as f64 / mean
    );
    // Every client made at least one new connection. Each client's first handshake resumes the
    // old session and is told it expired, at once and by design (that is how it learns of the
    // expiry); only the new sessions wait the jittered pause (0–500 ms here). So the handshakes
    // must span most of that pause: a thousand uniform pauses leave the last one within a
    // millisecond of 500 ms. Without the pause they span only the time the server takes for
    // 2,000 handshakes (about 340 ms in a debug build on a quiet 2-core machine). How peaked the
    // arrivals are is measured, with the pause on and off, by `corral-bench herd`: a peak per
    // 100 ms window is no test here, since the wave of resumes alone fills one window.
    assert!(times.len() >= clients);
    let spread = times.iter().max().unwrap().duration_since(*times.iter().min().unwrap());
    assert!(spread >= JITTER * 4 / 5, "the reconnections were not spread over the jittered pause: {spread:?}");
    for (fw, registry) in fws.iter().zip(&registries) {
        registry.close().await;
        fw.close().await;
    }
    observer.close().await;
}

/// The re-create pause's upper bound in the latch and selector herd.
const RECREATE: Duration = Duration::from_millis(1000);

/// The creation times (server ms) of the children of `dir` whose owner is not in `old`.
async fn new_ctimes(observer: &corral_recipes::Client, dir: &str, old: &[i64]) -> Vec<i64> {
    let mut out = Vec::new();
    for child in observer.get_children(dir).await.unwrap_or_default() {
        if let Ok(Some(stat)) = observer.exists(&format!("{dir}/{child}")).await
            && !old.contains(&stat.ephemeral_owner)
        {
            out.push(stat.ctime);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_latches_and_selectors_rejoin_spread_over_the_recreate_jitter() {
    use corral_recipes::leader_latch::LeaderLatch;
    use corral_recipes::leader_selector::LeaderSelector;
    const FLEET: usize = 200;
    let env = common::embedded("herd-elections").await;
    let server = env.server.clone().unwrap();
    let mut fws = Vec::with_capacity(FLEET);
    let mut latches = Vec::with_capacity(FLEET);
    let mut selectors = Vec::with_capacity(FLEET);
    for i in 0..FLEET {
        let fw = Framework::builder(env.connect_string())
            .session_timeout(Duration::from_secs(20))
            .retry_policy(RetryNTimes::new(50, Duration::from_millis(50)))
            // New sessions at once: what spreads the recipes' writes is the re-create pause.
            .resession_jitter(Duration::ZERO)
            .recreate_jitter(RECREATE)
            .start()
            .unwrap();
        latches.push(LeaderLatch::start(&fw, "/herd/latch", format!("p{i}")));
        // A leader that serves until its leadership ends.
        selectors.push(LeaderSelector::start(&fw, "/herd/selector", format!("s{i}"), true, |l| async move {
            l.invalidated().await
        }));
        fws.push(fw);
    }
    let observer = env.client().await;
    common::eventually("every participant joined", || async {
        observer.get_children("/herd/latch").await.map(|c| c.len() == FLEET).unwrap_or(false)
            && observer.get_children("/herd/selector").await.map(|c| c.len() == FLEET).unwrap_or(false)
    })
    .await;

    let old: Vec<i64> = fws.iter().map(|fw| fw.client().session_id()).collect();
    for session in &old {
        server.expire_session(*session);
    }
    common::eventually("every participant back on a new session", || async {
        new_ctimes(&observer, "/herd/latch", &old).await.len() == FLEET
            && new_ctimes(&observer, "/herd/selector", &old).await.len() == FLEET
    })
    .await;
    assert_eq!(latches.iter().filter(|l| l.has_leadership()).count(), 1, "one latch leader");
    for dir in ["/herd/latch", "/herd/selector"] {
        let times = new_ctimes(&observer, dir, &old).await;
        let spread = times.iter().max().unwrap() - times.iter().min().unwrap();
        eprintln!("{dir}: {FLEET} nodes re-created over {spread} ms");
        // 200 uniform pauses in [0, 1 s] leave the first and the last within a few ms of the
        // bounds; without the pause they all land within the time the server takes for 200
        // creates (about 260 ms in a debug build on a loaded 2-core machine).
        assert!(
            spread as u128 >= RECREATE.as_millis() * 3 / 4,
            "{dir}: the re-creations were not spread over the re-create jitter: {spread} ms"
        );
    }
    for l in &latches {
        l.close().await;
    }
    for s in &selectors {
        s.close().await;
    }
    for fw in &fws {
        fw.close().await;
    }
    observer.close().await;
}
