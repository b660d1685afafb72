//! The connection-state manager: turns one client's session events into connection states,
//! assumes the worst when a suspension outlasts the session timeout, and opens a new session
//! (after a jittered pause) when the old one is lost.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Shared;
use super::state::{ConnectionState, ConnectionStateChange};
use crate::client::{Client, ClientBuilder};
use crate::state::SessionEvent;

/// How the manager was configured.
#[derive(Debug, Clone)]
pub(crate) struct ManagerConfig {
    pub(crate) template: ClientBuilder,
    /// LOST is assumed after SUSPENDED lasted this percentage of the negotiated timeout.
    pub(crate) lost_after_percent: u32,
    /// New sessions start after a uniform random pause in `[0, resession_jitter]`.
    pub(crate) resession_jitter: Duration,
    pub(crate) seed: Option<u64>,
    /// Create the namespace (the chroot) at the start of every session.
    pub(crate) ensure_namespace: bool,
    /// The ACL of the namespace's nodes (asked with their full paths).
    pub(crate) acl: Arc<dyn super::AclProvider>,
    /// With circuit breaking, states go to the breaker's task instead of straight out.
    pub(crate) breaker: Option<tokio::sync::mpsc::UnboundedSender<ConnectionStateChange>>,
}

/// Where the manager's states go: out, or to the circuit breaker (which ends when this drops).
struct Poster {
    shared: Arc<Shared>,
    breaker: Option<tokio::sync::mpsc::UnboundedSender<ConnectionStateChange>>,
}

impl Poster {
    fn post(&self, change: ConnectionStateChange) {
        match &self.breaker {
            Some(tx) if tx.send(change).is_ok() => {}
            _ => self.shared.states.post(change),
        }
    }
}

/// Why one client's life ended.
enum SessionEnd {
    /// Expired on the server, or assumed lost after a long suspension: open a new session.
    Lost,
    /// Closed, or credentials refused: stop.
    Stop,
}

/// The session events of one client.
pub(crate) type Events = std::pin::Pin<Box<dyn futures::Stream<Item = SessionEvent> + Send>>;

pub(crate) async fn run(
    shared: Arc<Shared>,
    config: ManagerConfig,
    mut closing: watch::Receiver<bool>,
    first: (Client, Events),
) {
    let mut rng = config.seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
    let poster = Poster { shared: Arc::clone(&shared), breaker: config.breaker.clone() };
    let mut epoch = 0u64;
    let mut connection = 0u64;
    // Whether CONNECTED was posted: as in Curator, the first read/write connection posts it
    // and every later one RECONNECTED; READ_ONLY does not count.
    let mut ever_connected = false;
    let mut next = Some(first);
    loop {
        let (client, mut events) = match next.take() {
            Some(pair) => pair,
            None => match with_updated_hosts(&shared, config.template.clone()).build_with_events() {
                Ok((client, events)) => (client, Box::pin(events) as Events),
                Err(e) => {
                    tracing::error!(error = %e, "cannot build a client; the framework stops");
                    return;
                }
            },
        };
        *shared.client.lock().unwrap_or_else(|e| e.into_inner()) = client.clone();
        epoch += 1;
        let mut session_id = 0i64;
        let mut namespace_ready = false;
        let mut suspended_since: Option<(Instant, Duration)> = None;
        let end = loop {
            let lost_at = suspended_since.map(|(since, timeout)| since + timeout * config.lost_after_percent / 100);
            tokio::select! {
                event = events.next() => match event {
                    Some(SessionEvent::Connected { session_id: id, read_only, .. }) => {
                        if session_id != 0 && id != session_id {
                            // The client left a read-only server's session for a new one (a
                            // session only read-only servers have seen is not resumed
                            // elsewhere): the old session is gone with its watches' server
                            // side, so it is LOST and the new one is a new epoch, as after an
                            // expiry. Curator cannot tell this case (the same ZooKeeper handle
                            // changes its session id underneath).
                            tracing::info!(old = format_args!("{session_id:#x}"), new = format_args!("{id:#x}"), "the session changed");
                            poster.post(ConnectionStateChange { state: ConnectionState::Lost, session_id, epoch, connection });
                            epoch += 1;
                            namespace_ready = false;
                        }
                        session_id = id;
                        if !namespace_ready && config.ensure_namespace && !read_only {
                            namespace_ready = true;
                            // Curator creates the namespace on first use; here it exists before
                            // CONNECTED is posted, so every operation after it finds it.
                            match tokio::time::timeout(Duration::from_secs(5), client.ensure_chroot_with(&|p| config.acl.acl_for_path(p))).await {
                                Ok(Ok(())) => {}
                                Ok(Err(e)) => tracing::warn!(error = %e, "cannot create the namespace yet"),
                                Err(_) => tracing::warn!("creating the namespace timed out"),
                            }
                        }
                        suspended_since = None;
                        let state = if read_only {
                            ConnectionState::ReadOnly
                        } else if ever_connected {
                            ConnectionState::Reconnected
                        } else {
                            ever_connected = true;
                            ConnectionState::Connected
                        };
                        connection += 1;
                        poster.post(ConnectionStateChange { state, session_id, epoch, connection });
                    }
                    Some(SessionEvent::Disconnected { .. }) => {
                        if suspended_since.is_none() {
                            let timeout = client.session().timeout;
                            let timeout = if timeout.is_zero() { client.requested_timeout() } else { timeout };
                            suspended_since = Some((Instant::now(), timeout));
                        }
                        poster.post(ConnectionStateChange { state: ConnectionState::Suspended, session_id, epoch, connection });
                    }
                    Some(SessionEvent::Expired) => {
                        poster.post(ConnectionStateChange { state: ConnectionState::Lost, session_id, epoch, connection });
                        break SessionEnd::Lost;
                    }
                    Some(SessionEvent::AuthFailed) => {
                        tracing::error!("credentials refused; the framework stops");
                        poster.post(ConnectionStateChange { state: ConnectionState::Lost, session_id, epoch, connection });
                        break SessionEnd::Stop;
                    }
                    Some(SessionEvent::Closed) | None => {
                        poster.post(ConnectionStateChange { state: ConnectionState::Lost, session_id, epoch, connection });
                        break SessionEnd::Stop;
                    }
                },
                _ = sleep_until_opt(lost_at) => {
                    tracing::warn!(session_id = format_args!("{session_id:#x}"), "session timeout elapsed while suspended; assuming the session is lost");
                    poster.post(ConnectionStateChange { state: ConnectionState::Lost, session_id, epoch, connection });
                    // Abandon the old session: its client stops trying; the server expires it.
                    client.close().await;
                    break SessionEnd::Lost;
                }
                _ = wait_closed(&mut closing) => {
                    client.close().await;
                    poster.post(ConnectionStateChange { state: ConnectionState::Lost, session_id, epoch, connection });
                    break SessionEnd::Stop;
                }
            }
        };
        match end {
            SessionEnd::Stop => return,
            SessionEnd::Lost => {
                // A thousand clients whose sessions the same failure expired must not all
                // come back in the same millisecond.
                let max = config.resession_jitter.as_micros() as u64;
                let pause = Duration::from_micros(if max == 0 { 0 } else { rng.u64(0..=max) });
                tracing::debug!(?pause, "opening a new session after a jittered pause");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = wait_closed(&mut closing) => return,
                }
            }
        }
    }
}

/// The template with the servers of the last [`Framework::update_server_list`](crate::Framework::update_server_list), if any.
fn with_updated_hosts(shared: &Shared, template: ClientBuilder) -> ClientBuilder {
    match shared.hosts.lock().unwrap_or_else(|e| e.into_inner()).as_deref() {
        Some(hosts) => template.with_hosts(hosts),
        None => template,
    }
}

async fn wait_closed(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|c| *c).await;
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
