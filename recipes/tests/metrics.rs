//! The documented metrics move as they should through requests, a reconnect, an expiry and the
//! recipes' work, seen by a test recorder installed for this test binary.

use std::collections::HashMap;
use std::time::Duration;

use corral_recipes::leader_latch::LeaderLatch;
use corral_recipes::lock::Mutex;
use corral_recipes::{CreateMode, Framework, RetryNTimes};
use corral_server::testing::TestingServer;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// Every metric by name and sorted labels, accumulated over the snapshots taken so far (a
/// snapshot drains counters and histograms): counter totals, gauge values, histogram sample
/// counts.
fn read(snapshotter: &Snapshotter) -> HashMap<String, f64> {
    static TOTALS: std::sync::Mutex<Option<HashMap<String, f64>>> = std::sync::Mutex::new(None);
    let mut totals = TOTALS.lock().unwrap();
    let out = totals.get_or_insert_with(HashMap::new);
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let mut labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        labels.sort();
        let name =
            if labels.is_empty() { key.name().to_owned() } else { format!("{}{{{}}}", key.name(), labels.join(",")) };
        let slot = out.entry(name).or_insert(0.0);
        match value {
            DebugValue::Counter(c) => *slot += c as f64,
            DebugValue::Gauge(g) => *slot = g.into_inner(),
            DebugValue::Histogram(h) => *slot += h.len() as f64,
        }
    }
    out.clone()
}

fn get(metrics: &HashMap<String, f64>, name: &str) -> f64 {
    metrics.get(name).copied().unwrap_or(0.0)
}

async fn eventually(what: &str, snapshotter: &Snapshotter, check: impl Fn(&HashMap<String, f64>) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = read(snapshotter);
        if check(&now) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}: {now:#?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_metrics_move_through_a_reconnect_an_expiry_and_the_recipes() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("the only recorder of this test binary");

    let server = TestingServer::start().await.unwrap();
    let fw = Framework::builder(server.connect_string())
        .session_timeout(Duration::from_secs(4))
        .retry_policy(RetryNTimes::new(20, Duration::from_millis(20)))
        .start()
        .unwrap();
    fw.wait_until_connected(Duration::from_secs(10)).await.unwrap();
    fw.create("/m", "", CreateMode::Persistent).await.unwrap();
    let (_, _, watcher) = fw.client().get_data_and_watch("/m").await.unwrap();

    let before = read(&snapshotter);
    assert!(get(&before, "corral_requests_total{op=create}") >= 1.0, "{before:#?}");
    assert!(get(&before, "corral_request_duration_seconds{op=create}") >= 1.0);
    assert!(get(&before, "corral_bytes_sent_total") > 0.0 && get(&before, "corral_bytes_received_total") > 0.0);
    assert_eq!(get(&before, "corral_connections_total{resumed=false}"), 1.0);
    assert_eq!(get(&before, "corral_connection_states_total{state=connected}"), 1.0);
    assert_eq!(get(&before, "corral_watches_registered"), 1.0);

    // A dropped connection: the same session comes back, its watch restored.
    server.drop_connection(fw.client().session_id());
    eventually("a resumed connection", &snapshotter, |now| {
        get(now, "corral_connections_total{resumed=true}") == 1.0
            && get(now, "corral_disconnects_total") >= 1.0
            && get(now, "corral_connection_states_total{state=reconnected}") == 1.0
    })
    .await;

    // Recipes: a lock held and released, a latch's leadership.
    let guard = Mutex::new(&fw, "/locks/m").acquire().await.unwrap();
    guard.release().await.unwrap();
    let latch = LeaderLatch::start(&fw, "/latch", "me");
    latch.await_leadership_timeout(Duration::from_secs(10)).await.unwrap();
    let now = read(&snapshotter);
    assert_eq!(get(&now, "corral_lock_acquisitions_total{kind=mutex}"), 1.0);
    assert_eq!(get(&now, "corral_lock_wait_seconds{kind=mutex}"), 1.0);
    assert_eq!(get(&now, "corral_lock_hold_seconds{kind=mutex}"), 1.0);
    assert_eq!(get(&now, "corral_leadership_terms_total{recipe=latch}"), 1.0);

    // An expiry: LOST, a new session, the latch starting over in it; the old watch ends.
    server.expire_session(fw.client().session_id());
    drop(watcher);
    eventually("the expiry and the new session", &snapshotter, |now| {
        get(now, "corral_session_expiries_total") == 1.0
            && get(now, "corral_connection_states_total{state=lost}") == 1.0
            && get(now, "corral_connections_total{resumed=false}") == 2.0
            && get(now, "corral_recipe_recreations_total{recipe=latch}") == 1.0
            && get(now, "corral_leadership_terms_total{recipe=latch}") == 2.0
    })
    .await;

    // A cache: its resync and its nodes, which leave the gauge with the cache.
    let cache = corral_recipes::cache::Cache::builder(&fw, "/m").start();
    cache.wait_initialized(Duration::from_secs(10)).await.unwrap();
    let now = read(&snapshotter);
    assert!(get(&now, "corral_cache_resyncs_total") >= 1.0, "{now:#?}");
    assert_eq!(get(&now, "corral_cache_nodes"), 1.0, "the cache holds /m: {now:#?}");
    cache.close().await;
    drop(cache);

    latch.close().await;
    fw.close().await;
    // Nothing is left in flight, no watch is held, no cache counts.
    eventually("the gauges back at zero", &snapshotter, |now| {
        get(now, "corral_requests_in_flight") == 0.0
            && get(now, "corral_watches_registered") == 0.0
            && get(now, "corral_cache_nodes") == 0.0
    })
    .await;
    server.close().await;
}
