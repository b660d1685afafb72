//! Retry policies and the retry loop, under paused time with seeded jitter: every delay is
//! checked against Curator's formulas, and every wait against the virtual clock.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ConstantBuilder, ExponentialBuilder};
use corral_core::{
    BackoffPolicy, BoundedExponentialBackoffRetry, Error, ErrorCode, ExponentialBackoffRetry, MAX_EXPONENTIAL_RETRIES,
    RetryForever, RetryNTimes, RetryOneTime, RetryPolicy, RetryUntilElapsed, SessionFailedRetryPolicy, retry,
};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

fn server(code: ErrorCode) -> Error {
    Error::Server { code, path: "/a".into() }
}

/// The first `n` answers of `policy` with no time elapsed.
fn delays(policy: &dyn RetryPolicy, n: u32) -> Vec<Option<Duration>> {
    (1..=n).map(|attempt| policy.next_delay(attempt, Duration::ZERO)).collect()
}

/// Curator's formula, computed independently: `base * max(1, nextInt(1 << (retryCount + 1)))`.
fn curator_exponential(seed: u64, base: Duration, retries: u32, max_sleep: Option<Duration>) -> Vec<Duration> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..retries)
        .map(|retry_count| {
            let sleep = base * rng.u32(..1u32 << (retry_count + 1)).max(1);
            max_sleep.map_or(sleep, |max| sleep.min(max))
        })
        .collect()
}

/// What the retry loop did: when each try started (relative to the start), and how it ended.
#[derive(Debug)]
struct Run {
    tries: Vec<Duration>,
    waits: u32,
    result: Result<u32, Error>,
    total: Duration,
}

impl Run {
    /// The sleeps between consecutive tries.
    fn gaps(&self) -> Vec<Duration> {
        self.tries.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

/// Runs `retry` with an op that fails with `error` for its first `failures` tries (each try
/// taking `op_time`) and a wait-for-connection that resolves at once.
async fn run(policy: &dyn RetryPolicy, error: Error, failures: u32, op_time: Duration) -> Run {
    let start = Instant::now();
    let tries = Mutex::new(Vec::new());
    let waits = AtomicU32::new(0);
    let result = retry(
        policy,
        || {
            let mut tries = tries.lock().unwrap();
            tries.push(start.elapsed());
            let n = tries.len() as u32;
            let error = error.clone();
            async move {
                tokio::time::sleep(op_time).await;
                if n <= failures { Err(error) } else { Ok(n) }
            }
        },
        || {
            waits.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok(false))
        },
    )
    .await;
    Run { tries: tries.into_inner().unwrap(), waits: waits.into_inner(), result, total: start.elapsed() }
}

/// Runs `policy` against an op that always fails with ConnectionLoss and checks that the loop
/// slept exactly `expected` (one entry per retry), then gave up. Tokio's timer counts whole
/// milliseconds, so sub-millisecond delays (backon's jitter) may take up to 1 ms longer.
async fn assert_loop_sleeps(policy: &dyn RetryPolicy, expected: &[Duration]) {
    let run = run(policy, Error::ConnectionLoss, u32::MAX, Duration::ZERO).await;
    assert_eq!(run.result, Err(Error::ConnectionLoss));
    assert_eq!(run.waits as usize, expected.len());
    if expected.iter().all(|d| d.subsec_nanos() % 1_000_000 == 0) {
        assert_eq!(run.gaps(), expected);
        assert_eq!(run.total, expected.iter().sum::<Duration>());
    } else {
        let gaps = run.gaps();
        assert_eq!(gaps.len(), expected.len());
        assert!(gaps.iter().zip(expected).all(|(g, d)| *g >= *d && *g <= *d + MS), "{gaps:?} {expected:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn exponential_matches_curator_formula_exactly() {
    let base = 10 * MS;
    let expected = curator_exponential(42, base, 8, None);
    let policy = ExponentialBackoffRetry::new(base, 8).with_seed(42);
    let got = delays(&policy, 9);
    assert_eq!(got[..8], expected.iter().copied().map(Some).collect::<Vec<_>>()[..]);
    assert_eq!(got[8], None);
    // A regression pin of the seeded sequence (fastrand 2.x, seed 42), in units of `base`.
    let units: Vec<u32> = expected.iter().map(|d| (d.as_millis() / 10) as u32).collect();
    assert_eq!(units, EXPECTED_SEED_42_UNITS);
    assert_loop_sleeps(&ExponentialBackoffRetry::new(base, 8).with_seed(42), &expected).await;
}

const EXPECTED_SEED_42_UNITS: [u32; 8] = [1, 1, 5, 7, 11, 20, 81, 1];

#[tokio::test(start_paused = true)]
async fn exponential_bounds_and_full_jitter() {
    let base = 7 * MS;
    let policy = ExponentialBackoffRetry::new(base, MAX_EXPONENTIAL_RETRIES);
    for _ in 0..200 {
        for attempt in 1..=MAX_EXPONENTIAL_RETRIES {
            let delay = policy.next_delay(attempt, Duration::ZERO).unwrap();
            assert_eq!(delay.as_nanos() % base.as_nanos(), 0, "multiple of base");
            assert!(delay >= base && delay <= base * ((1 << attempt) - 1), "{attempt}: {delay:?}");
        }
    }
    // The first retry always sleeps the base (nextInt(2) is 0 or 1); the third draws all of 1..=7.
    let seeded = ExponentialBackoffRetry::new(base, 3).with_seed(9);
    let mut seen = [false; 8];
    for _ in 0..500 {
        assert_eq!(seeded.next_delay(1, Duration::ZERO), Some(base));
        seen[(seeded.next_delay(3, Duration::ZERO).unwrap().as_millis() / 7) as usize] = true;
    }
    assert_eq!(seen, [false, true, true, true, true, true, true, true]);
    // Attempt 0 is read as attempt 1.
    assert_eq!(seeded.next_delay(0, Duration::ZERO), Some(base));
}

/// A writer that keeps what tracing prints, to check the clamp warning.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn exponential_clamps_max_retries_to_29_with_a_warning() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let policy = tracing::subscriber::with_default(subscriber, || ExponentialBackoffRetry::new(MS, 100));
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("WARN") && log.contains("clamped"), "{log}");
    assert_eq!(policy.max_retries(), 29);
    assert!(policy.next_delay(29, Duration::ZERO).unwrap() <= MS * ((1 << 29) - 1));
    assert_eq!(policy.next_delay(30, Duration::ZERO), None);
    assert_eq!(ExponentialBackoffRetry::new(MS, 29).max_retries(), 29);
    assert_eq!(ExponentialBackoffRetry::new(MS, 3).max_retries(), 3);
    // No overflow even with a huge base at the last attempt.
    assert!(ExponentialBackoffRetry::new(Duration::MAX, 29).next_delay(29, Duration::ZERO).is_some());
}

#[tokio::test(start_paused = true)]
async fn max_sleep_caps_each_delay() {
    let (base, cap) = (100 * MS, 250 * MS);
    let policy = ExponentialBackoffRetry::new(base, 12).with_max_sleep(cap).with_seed(5);
    assert_eq!(policy.max_sleep(), Some(cap));
    let expected = curator_exponential(5, base, 12, Some(cap));
    assert!(expected.iter().all(|d| *d >= base && *d <= cap));
    assert!(expected.contains(&cap), "late attempts hit the cap: {expected:?}");
    assert_eq!(delays(&policy, 12), expected.iter().copied().map(Some).collect::<Vec<_>>());
    assert_loop_sleeps(&ExponentialBackoffRetry::new(base, 12).with_max_sleep(cap).with_seed(5), &expected).await;
}

#[tokio::test(start_paused = true)]
async fn bounded_exponential_is_exponential_with_a_cap() {
    let (base, cap) = (50 * MS, 400 * MS);
    let policy = BoundedExponentialBackoffRetry::new(base, cap, 10).with_seed(11);
    assert_eq!(policy.max_sleep(), cap);
    let expected = curator_exponential(11, base, 10, Some(cap));
    assert_eq!(delays(&policy, 11)[10], None);
    assert_loop_sleeps(&BoundedExponentialBackoffRetry::new(base, cap, 10).with_seed(11), &expected).await;
    // Clamped like its parent.
    assert_eq!(BoundedExponentialBackoffRetry::new(base, cap, 40).next_delay(30, Duration::ZERO), None);
}

#[tokio::test(start_paused = true)]
async fn retry_n_times_and_one_time() {
    let sleep = 300 * MS;
    assert_loop_sleeps(&RetryNTimes::new(4, sleep), &[sleep; 4]).await;
    assert_loop_sleeps(&RetryNTimes::new(0, sleep), &[]).await;
    assert_loop_sleeps(&RetryOneTime::new(sleep), &[sleep]).await;
    assert_eq!(delays(&RetryOneTime::new(sleep), 2), [Some(sleep), None]);
}

#[tokio::test(start_paused = true)]
async fn retry_forever_never_gives_up() {
    let interval = 250 * MS;
    let policy = RetryForever::new(interval);
    let run = run(&policy, Error::ConnectionLoss, 100, Duration::ZERO).await;
    assert_eq!(run.result, Ok(101));
    assert_eq!(run.gaps(), vec![interval; 100]);
    assert_eq!(run.total, interval * 100);
    assert_eq!(policy.next_delay(u32::MAX, Duration::MAX), Some(interval));
}

#[tokio::test(start_paused = true)]
async fn retry_until_elapsed_cuts_off_without_curators_extra_sleep() {
    let policy = RetryUntilElapsed::new(3500 * MS, 1000 * MS);
    // Instant failures at 0, 1, 2, 3 s are retried (elapsed < 3.5 s); the one at 4 s is not.
    assert_loop_sleeps(&policy, &[1000 * MS; 4]).await;

    // Tries of 500 ms: failures at 0.5, 2.0 and 3.5 s. The last one gives up at once, at 3.5 s;
    // Curator would sleep once more and give up at 4.5 s.
    let run = run(&policy, Error::ConnectionLoss, u32::MAX, 500 * MS).await;
    assert_eq!(run.tries, [Duration::ZERO, 1500 * MS, 3000 * MS]);
    assert_eq!(run.total, 3500 * MS);
    assert_eq!(run.result, Err(Error::ConnectionLoss));
}

/// A policy that would retry every error, once.
#[derive(Debug)]
struct AllowAll;

impl RetryPolicy for AllowAll {
    fn next_delay(&self, attempt: u32, _elapsed: Duration) -> Option<Duration> {
        (attempt <= 1).then_some(10 * MS)
    }

    fn allows(&self, _error: &Error) -> bool {
        true
    }
}

#[tokio::test(start_paused = true)]
async fn session_failed_policy_refuses_session_expiry_even_if_inner_allows_it() {
    let policy = SessionFailedRetryPolicy::new(Arc::new(AllowAll));
    for refused in [Error::SessionExpired, Error::Closed, server(ErrorCode::SessionExpired)] {
        assert!(AllowAll.allows(&refused));
        assert!(!policy.allows(&refused), "{refused:?}");
        let run = run(&policy, refused.clone(), u32::MAX, Duration::ZERO).await;
        assert_eq!((run.tries.len(), run.result), (1, Err(refused)));
    }
    // The inner policy alone retries SessionExpired; everything else is delegated.
    assert_eq!(run(&AllowAll, Error::SessionExpired, u32::MAX, Duration::ZERO).await.tries.len(), 2);
    assert!(policy.allows(&server(ErrorCode::NoNode)));
    assert_eq!(delays(&policy, 2), [Some(10 * MS), None]);
    assert_loop_sleeps(&policy, &[10 * MS]).await;
    // Over a default `allows`, it refuses what the inner one refuses.
    let strict = SessionFailedRetryPolicy::new(Arc::new(RetryForever::new(MS)));
    assert!(!strict.allows(&server(ErrorCode::NoNode)));
    assert!(strict.allows(&server(ErrorCode::ThrottledOp)));
}

#[tokio::test(start_paused = true)]
async fn backoff_policy_replays_backon_sequences() {
    let constant = BackoffPolicy::new(ConstantBuilder::default().with_delay(300 * MS).with_max_times(2));
    assert_eq!(delays(&constant, 3), [Some(300 * MS), Some(300 * MS), None]);
    assert_loop_sleeps(&constant, &[300 * MS; 2]).await;

    let total = ExponentialBuilder::default()
        .with_min_delay(400 * MS)
        .with_factor(1.0)
        .without_max_times()
        .with_total_delay(Some(1000 * MS));
    // backon multiplies in f32, so the second delay is a few ns over 400 ms; the third would
    // exceed the total of 1 s.
    let expected: Vec<Duration> = total.build().collect();
    assert_eq!(expected.len(), 2);
    assert!(expected.iter().all(|d| d.abs_diff(400 * MS) < MS), "{expected:?}");
    assert_loop_sleeps(&BackoffPolicy::new(total), &expected).await;

    let listed = BackoffPolicy::new(vec![MS, 2 * MS, 3 * MS].into_iter());
    let shared: Arc<dyn RetryPolicy> = Arc::new(listed);
    assert_loop_sleeps(&shared, &[MS, 2 * MS, 3 * MS]).await;
}

#[tokio::test(start_paused = true)]
async fn backoff_policy_with_seeded_jitter_answers_the_iterators_sequence() {
    let builder =
        ExponentialBuilder::default().with_min_delay(100 * MS).with_max_times(5).with_jitter().with_jitter_seed(3);
    let expected: Vec<Duration> = builder.build().collect();
    assert_eq!(expected.len(), 5);
    let policy = BackoffPolicy::new(builder);
    // Asked out of order and twice: each answer is the iterator's element, independent of calls.
    for attempt in [3, 1, 5, 3, 2, 4] {
        assert_eq!(policy.next_delay(attempt, Duration::ZERO), Some(expected[attempt as usize - 1]));
    }
    assert_eq!(policy.next_delay(6, Duration::ZERO), None);
    assert_loop_sleeps(&policy, &expected).await;
}

#[tokio::test(start_paused = true)]
async fn loop_waits_for_connection_before_retrying() {
    let (connected_tx, connected_rx) = tokio::sync::watch::channel(false);
    let connected_at = Arc::new(Mutex::new(None));
    let reconnect = {
        let connected_at = connected_at.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            *connected_at.lock().unwrap() = Some(Instant::now());
            connected_tx.send_replace(true);
            connected_tx
        })
    };
    let start = Instant::now();
    let tries = Mutex::new(Vec::new());
    let waits = AtomicU32::new(0);
    let policy = RetryNTimes::new(5, 100 * MS);
    let result = retry(
        &policy,
        || {
            let mut tries = tries.lock().unwrap();
            tries.push(Instant::now());
            let n = tries.len();
            async move { if n <= 2 { Err(Error::ConnectionLoss) } else { Ok(n) } }
        },
        || {
            waits.fetch_add(1, Ordering::SeqCst);
            let mut rx = connected_rx.clone();
            async move {
                // A new connection if it had to wait for one.
                let was_connected = *rx.borrow();
                rx.wait_for(|connected| *connected).await.map_err(|_| Error::Closed)?;
                Ok(!was_connected)
            }
        },
    )
    .await;
    let _tx = reconnect.await.unwrap();
    let connected_at = connected_at.lock().unwrap().unwrap();
    let tries = tries.into_inner().unwrap();
    assert_eq!(result, Ok(3));
    assert_eq!(waits.into_inner(), 2);
    assert_eq!(connected_at - start, Duration::from_secs(5));
    // No retry before the connection came back; then at once (the reconnection was the wait);
    // the next failure finds the connection up, so the policy's sleep applies.
    assert_eq!(tries[0], start);
    assert_eq!(tries[1], connected_at);
    assert_eq!(tries[2], tries[1] + 100 * MS);
}

#[tokio::test(start_paused = true)]
async fn loop_gives_up_when_the_policy_says_no() {
    let run = run(&RetryNTimes::new(3, 20 * MS), Error::ConnectionLoss, u32::MAX, 5 * MS).await;
    assert_eq!(run.result, Err(Error::ConnectionLoss));
    assert_eq!(run.tries.len(), 4);
    assert_eq!(run.waits, 3);
    assert_eq!(run.total, 4 * 5 * MS + 3 * 20 * MS);
}

#[tokio::test(start_paused = true)]
async fn loop_never_retries_final_errors() {
    let policy = RetryForever::new(MS);
    for error in [
        server(ErrorCode::NoNode),
        server(ErrorCode::NodeExists),
        Error::SessionExpired,
        Error::Closed,
        Error::AuthFailed,
    ] {
        let run = run(&policy, error.clone(), u32::MAX, Duration::ZERO).await;
        assert_eq!(run.result, Err(error));
        assert_eq!((run.tries.len(), run.waits, run.total), (1, 0, Duration::ZERO));
    }
}

#[tokio::test(start_paused = true)]
async fn loop_waits_only_for_connection_type_errors() {
    let policy = RetryNTimes::new(1, 30 * MS);
    let throttled = run(&policy, server(ErrorCode::ThrottledOp), 1, Duration::ZERO).await;
    assert_eq!((throttled.result, throttled.waits, throttled.total), (Ok(2), 0, 30 * MS));
    for error in [Error::Timeout, server(ErrorCode::OperationTimeout), server(ErrorCode::SessionMoved)] {
        let run = run(&policy, error, 1, Duration::ZERO).await;
        assert_eq!((run.result, run.waits, run.total), (Ok(2), 1, 30 * MS));
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_wait_ends_the_loop_with_its_error() {
    let tries = AtomicU32::new(0);
    let result: Result<(), _> = retry(
        &RetryForever::new(MS),
        || {
            tries.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Err(Error::ConnectionLoss))
        },
        || std::future::ready(Err(Error::SessionExpired)),
    )
    .await;
    assert_eq!(result, Err(Error::SessionExpired));
    assert_eq!(tries.into_inner(), 1);
}

#[tokio::test(start_paused = true)]
async fn loop_is_send_and_cancel_safe() {
    fn assert_send<T: Send>(t: T) -> T {
        t
    }
    let policy: Arc<dyn RetryPolicy> = Arc::new(RetryForever::new(Duration::from_secs(1)));
    let tries = Arc::new(AtomicU32::new(0));
    let counted = tries.clone();
    let task = tokio::spawn(assert_send(async move {
        retry::<(), _, _, _, _>(
            &*policy,
            || {
                counted.fetch_add(1, Ordering::SeqCst);
                std::future::ready(Err(Error::ConnectionLoss))
            },
            || std::future::ready(Ok(false)),
        )
        .await
    }));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(tries.load(Ordering::SeqCst), 3);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(tries.load(Ordering::SeqCst), 3, "nothing is tried after the loop is dropped");
}
