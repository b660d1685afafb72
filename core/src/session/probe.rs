//! Looking for a read/write server while connected to a read-only one, as the Java client's
//! `ClientCnxn.pingRwServer` does: the other hosts of the connect string are asked `isro` at
//! intervals that double from 100 ms to 60 s, and the first that answers `rw` is where the
//! session goes next.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::connect_string::HostPort;
use crate::transport::Dialer;

/// The first pause before probing, and the pause after a round that found nothing starts
/// here too (Java's `minPingRwTimeout`).
pub(crate) const MIN_PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// The longest pause between rounds (Java's `maxPingRwTimeout`).
pub(crate) const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(60);
/// How long one `isro` may take, connection included (Java's four-letter-word timeout).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The most of an answer read: `rw`, `ro` or an error line.
const ANSWER_LIMIT: u64 = 256;

/// The pause after `interval`: twice as long, at most [`MAX_PROBE_INTERVAL`].
pub(crate) fn next_interval(interval: Duration) -> Duration {
    (interval * 2).min(MAX_PROBE_INTERVAL)
}

/// The search, boxed so that the connection loop can hold it across turns.
pub(crate) type Seek = Pin<Box<dyn Future<Output = usize> + Send>>;

/// Asks every host of `hosts` but `current` whether it is read/write, in rounds separated by
/// pauses that double from [`MIN_PROBE_INTERVAL`] to [`MAX_PROBE_INTERVAL`]; returns the index
/// of the first host that answers `rw`. With no other host it never completes.
///
/// Each round is bounded (one [`PROBE_TIMEOUT`] per host), every round starts with a pause, and
/// the caller drops the search with its connection, so it never spins and never outlives the
/// connection it serves. All time is [`tokio::time`].
pub(crate) fn seek_read_write(hosts: Vec<HostPort>, current: usize, dialer: Dialer) -> Seek {
    let span = tracing::debug_span!("seek_read_write");
    Box::pin(tracing::Instrument::instrument(
        async move {
            if hosts.len() < 2 {
                return std::future::pending().await;
            }
            let mut interval = MIN_PROBE_INTERVAL;
            loop {
                tokio::time::sleep(interval).await;
                interval = next_interval(interval);
                for (index, host) in hosts.iter().enumerate().filter(|(i, _)| *i != current) {
                    match tokio::time::timeout(PROBE_TIMEOUT, isro(host, &dialer)).await {
                        Ok(Ok(answer)) if answer.trim() == "rw" => {
                            tracing::info!(%host, "read/write server found");
                            return index;
                        }
                        Ok(Ok(answer)) => tracing::debug!(%host, answer = answer.trim(), "not read/write"),
                        Ok(Err(e)) => tracing::debug!(%host, error = %e, "isro failed"),
                        Err(_) => tracing::debug!(%host, "isro timed out"),
                    }
                }
                tracing::debug!(next = ?interval, "no read/write server yet");
            }
        },
        span,
    ))
}

/// Completes with the search's result; never without a search.
pub(crate) async fn found(seek: Option<&mut Seek>) -> usize {
    match seek {
        Some(seek) => seek.await,
        None => std::future::pending().await,
    }
}

/// Sends `isro` to `host` (through the client's connector and TLS) and returns the answer.
async fn isro(host: &HostPort, dialer: &Dialer) -> Result<String, String> {
    four_letter_word(host, dialer, "isro", ANSWER_LIMIT).await
}

/// Sends the four-letter word `word` to `host` and reads the answer, up to `limit` bytes, until
/// the server closes the connection.
pub(crate) async fn four_letter_word(
    host: &HostPort,
    dialer: &Dialer,
    word: &str,
    limit: u64,
) -> Result<String, String> {
    let mut stream = dialer.open(host).await.map_err(|e| e.reason)?.0;
    stream.write_all(word.as_bytes()).await.map_err(|e| format!("write failed: {e}"))?;
    stream.flush().await.map_err(|e| format!("write failed: {e}"))?;
    let mut answer = Vec::new();
    match (&mut stream).take(limit).read_to_end(&mut answer).await {
        Ok(_) => {}
        // A server that closes without TLS close_notify (ZooKeeper's Netty does, after a
        // four-letter word) ends the answer all the same.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => {}
        Err(e) => return Err(format!("read failed: {e}")),
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_double_from_100_ms_to_60_s() {
        let mut interval = MIN_PROBE_INTERVAL;
        let mut seen = vec![interval];
        while interval < MAX_PROBE_INTERVAL {
            interval = next_interval(interval);
            seen.push(interval);
        }
        assert_eq!(seen[..4], [100, 200, 400, 800].map(Duration::from_millis));
        assert_eq!(seen.last(), Some(&MAX_PROBE_INTERVAL));
        assert_eq!(next_interval(MAX_PROBE_INTERVAL), MAX_PROBE_INTERVAL);
    }
}
