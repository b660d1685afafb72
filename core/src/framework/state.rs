//! Connection states as applications and recipes reason about them: Curator's five states,
//! each stamped with the session id and a session epoch, delivered without ever dropping LOST.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::watch;

/// The connection state of a [`crate::Framework`], Curator's vocabulary.
///
/// ```text
/// CONNECTED → SUSPENDED → RECONNECTED (same session) → SUSPENDED → …
///                  ↓
///                LOST → RECONNECTED (new session, next epoch)
/// ```
///
/// READ_ONLY takes the place of CONNECTED or RECONNECTED on a read-only server (only with
/// [`FrameworkBuilder::allow_read_only`](crate::FrameworkBuilder::allow_read_only)). The client
/// then looks for a read/write server by itself and moves there:
///
/// ```text
/// READ_ONLY → SUSPENDED → LOST → CONNECTED or RECONNECTED (new session, next epoch)
/// ```
///
/// LOST comes first because a session first granted by a read-only server is known to that
/// server alone and is not resumed elsewhere (ZooKeeper's Java client does the same): the
/// read/write server grants a new one. As in Curator, READ_ONLY does not count as the first
/// connection: the first read/write one posts CONNECTED, later ones RECONNECTED. See
/// [`Framework::state_changes`](crate::Framework::state_changes) and
/// [`FrameworkBuilder::lost_after_percent`](crate::FrameworkBuilder::lost_after_percent) for
/// examples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// The first session is established.
    Connected,
    /// The connection dropped; the session may still be alive on the server. Recipes under
    /// [`ErrorPolicy::Standard`] treat this as losing locks and leadership.
    Suspended,
    /// A connection is back: the same session (same epoch) or a new one after
    /// [`ConnectionState::Lost`] (next epoch).
    Reconnected,
    /// The session is gone: the server said it expired, or the connection stayed suspended for
    /// the session timeout (the client cannot know, so it assumes the worst), or the framework
    /// was closed. Ephemeral nodes and watches of the session are gone.
    Lost,
    /// Connected to a read-only server (a ZooKeeper server that lost its quorum): reads and
    /// watches work, writes fail with [`ErrorCode::NotReadOnly`](crate::ErrorCode::NotReadOnly).
    /// Not an error under either [`ErrorPolicy`]. The client keeps looking for a read/write
    /// server and moves there by itself.
    ReadOnly,
}

/// Curator's names: `CONNECTED`, `SUSPENDED`, `RECONNECTED`, `LOST`, `READ_ONLY`.
impl std::fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Connected => "CONNECTED",
            Self::Suspended => "SUSPENDED",
            Self::Reconnected => "RECONNECTED",
            Self::Lost => "LOST",
            Self::ReadOnly => "READ_ONLY",
        })
    }
}

impl ConnectionState {
    /// Whether the framework is connected (Connected, Reconnected or ReadOnly).
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_core::ConnectionState;
    ///
    /// assert!(ConnectionState::Reconnected.is_connected());
    /// assert!(!ConnectionState::Suspended.is_connected());
    /// ```
    pub fn is_connected(self) -> bool {
        matches!(self, Self::Connected | Self::Reconnected | Self::ReadOnly)
    }
}

/// A connection state with the session it belongs to.
///
/// `epoch` counts sessions: 1 for the first session, +1 for every new session after LOST, so
/// "RECONNECTED, same session" (same epoch as the SUSPENDED before it) and "RECONNECTED, new
/// session" (higher epoch) are told apart — which Curator cannot do.
///
/// See [`Framework::state_changes`](crate::Framework::state_changes) for an example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionStateChange {
    /// The state.
    pub state: ConnectionState,
    /// The session id the state is about (0 before the first session).
    pub session_id: i64,
    /// The session epoch (0 before the first session).
    pub epoch: u64,
    /// Counts connections established since the framework started (0 before the first): a
    /// reconnect within the same session bumps it and keeps `epoch`. A holder of a lock or of
    /// leadership taken at connection `c` knows the connection dropped since if it differs.
    pub connection: u64,
}

/// Which connection states count as errors for recipes (Curator's `ConnectionStateErrorPolicy`).
///
/// READ_ONLY is an error under neither policy, as in Curator: a read-only session can create
/// no node, so it holds no lock or leadership to give up, and leaving it for a read/write
/// server posts LOST (the session changes), which every policy counts.
///
/// Set with [`FrameworkBuilder::error_policy`](crate::FrameworkBuilder::error_policy); see
/// [`ErrorPolicy::is_error`] for an example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ErrorPolicy {
    /// SUSPENDED and LOST are errors: a lock holder or leader gives up as soon as the
    /// connection drops. The safe default.
    #[default]
    Standard,
    /// Only LOST is an error: leadership and locks survive a short disconnection within the
    /// session.
    SessionOnly,
}

impl ErrorPolicy {
    /// Whether `state` is an error under this policy.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_core::{ConnectionState, ErrorPolicy};
    ///
    /// assert!(ErrorPolicy::Standard.is_error(ConnectionState::Suspended));
    /// assert!(!ErrorPolicy::SessionOnly.is_error(ConnectionState::Suspended));
    /// assert!(ErrorPolicy::SessionOnly.is_error(ConnectionState::Lost));
    /// assert!(!ErrorPolicy::Standard.is_error(ConnectionState::ReadOnly));
    /// ```
    pub fn is_error(self, state: ConnectionState) -> bool {
        match self {
            Self::Standard => matches!(state, ConnectionState::Suspended | ConnectionState::Lost),
            Self::SessionOnly => state == ConnectionState::Lost,
        }
    }
}

/// What the publisher keeps: the latest change, and the latest LOST (so it is never dropped).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StateCell {
    latest: ConnectionStateChange,
    seq: u64,
    lost: Option<(u64, ConnectionStateChange)>,
}

/// Posts connection states. Memory is constant whatever the consumers do: one cell, shared.
#[derive(Debug)]
pub(crate) struct StatePublisher {
    latest: watch::Sender<ConnectionStateChange>,
    cell: watch::Sender<StateCell>,
}

impl StatePublisher {
    pub(crate) fn new() -> Self {
        let initial =
            ConnectionStateChange { state: ConnectionState::Suspended, session_id: 0, epoch: 0, connection: 0 };
        let (latest, _) = watch::channel(initial);
        let (cell, _) = watch::channel(StateCell { latest: initial, seq: 0, lost: None });
        Self { latest, cell }
    }

    /// Posts `change` unless it repeats the current state of the same epoch.
    pub(crate) fn post(&self, change: ConnectionStateChange) {
        let current = *self.latest.borrow();
        if current.seq_key() == change.seq_key() && self.cell.borrow().seq > 0 {
            return;
        }
        tracing::info!(state = ?change.state, session_id = format_args!("{:#x}", change.session_id), epoch = change.epoch, "connection state");
        let label = match change.state {
            ConnectionState::Connected => "connected",
            ConnectionState::Suspended => "suspended",
            ConnectionState::Reconnected => "reconnected",
            ConnectionState::Lost => "lost",
            ConnectionState::ReadOnly => "read_only",
        };
        metrics::counter!(crate::metrics::CONNECTION_STATES_TOTAL, "state" => label).increment(1);
        self.cell.send_modify(|cell| {
            cell.seq += 1;
            cell.latest = change;
            if change.state == ConnectionState::Lost {
                cell.lost = Some((cell.seq, change));
            }
        });
        self.latest.send_replace(change);
    }

    pub(crate) fn current(&self) -> ConnectionStateChange {
        *self.latest.borrow()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<ConnectionStateChange> {
        self.latest.subscribe()
    }

    pub(crate) fn stream(&self) -> StateChanges {
        let rx = self.cell.subscribe();
        let (seq, lost_seq) = {
            let cell = rx.borrow();
            (cell.seq, cell.lost.map_or(0, |(s, _)| s))
        };
        StateChanges { rx: Box::pin(changes(rx, seq, lost_seq)) }
    }
}

impl ConnectionStateChange {
    fn seq_key(&self) -> (ConnectionState, u64, u64) {
        (self.state, self.epoch, self.connection)
    }
}

/// The stream of connection-state transitions from the moment it was created.
///
/// A consumer that falls behind sees the latest state, never a backlog: memory does not grow
/// however slowly it reads. LOST is never skipped: if a LOST happened since the last item
/// read, it comes first, then the latest state.
///
/// See [`Framework::state_changes`](crate::Framework::state_changes) and
/// [`FrameworkBuilder::lost_after_percent`](crate::FrameworkBuilder::lost_after_percent) for
/// examples.
///
/// # Cancel safety
///
/// Dropping a `next()` future loses no transition.
pub struct StateChanges {
    rx: Pin<Box<dyn Stream<Item = ConnectionStateChange> + Send>>,
}

impl std::fmt::Debug for StateChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateChanges").finish_non_exhaustive()
    }
}

impl Stream for StateChanges {
    type Item = ConnectionStateChange;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.as_mut().poll_next(cx)
    }
}

fn changes(
    rx: watch::Receiver<StateCell>,
    seen_seq: u64,
    seen_lost: u64,
) -> impl Stream<Item = ConnectionStateChange> + Send {
    struct S {
        rx: watch::Receiver<StateCell>,
        seen_seq: u64,
        seen_lost: u64,
        pending: Option<ConnectionStateChange>,
    }
    futures::stream::unfold(S { rx, seen_seq, seen_lost, pending: None }, |mut s| async move {
        if let Some(p) = s.pending.take() {
            return Some((p, s));
        }
        loop {
            let cell = *s.rx.borrow_and_update();
            if cell.seq > s.seen_seq {
                s.seen_seq = cell.seq;
                if let Some((lost_seq, lost)) = cell.lost
                    && lost_seq > s.seen_lost
                {
                    s.seen_lost = lost_seq;
                    if lost_seq != cell.seq {
                        s.pending = Some(cell.latest);
                        return Some((lost, s));
                    }
                }
                return Some((cell.latest, s));
            }
            if s.rx.changed().await.is_err() {
                return None;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn change(state: ConnectionState, epoch: u64) -> ConnectionStateChange {
        ConnectionStateChange { state, session_id: epoch as i64, epoch, connection: epoch }
    }

    #[tokio::test]
    async fn a_consumer_that_never_reads_sees_lost_then_the_latest() {
        let publisher = StatePublisher::new();
        let mut stream = publisher.stream();
        let states = [ConnectionState::Suspended, ConnectionState::Reconnected];
        // 1,000 transitions, one LOST in the middle; the consumer reads nothing meanwhile.
        for i in 0..1000u64 {
            let state = if i == 500 { ConnectionState::Lost } else { states[(i % 2) as usize] };
            publisher.post(change(state, i / 500 + 1));
        }
        assert_eq!(stream.next().await.map(|c| c.state), Some(ConnectionState::Lost));
        assert_eq!(stream.next().await, Some(change(ConnectionState::Reconnected, 2)));
        // Nothing else is pending: memory stayed constant.
        assert!(tokio::time::timeout(std::time::Duration::from_millis(10), stream.next()).await.is_err());
    }

    #[tokio::test]
    async fn repeats_are_ignored_and_every_reader_sees_each_change() {
        let publisher = StatePublisher::new();
        let mut stream = publisher.stream();
        publisher.post(change(ConnectionState::Connected, 1));
        assert_eq!(stream.next().await, Some(change(ConnectionState::Connected, 1)));
        publisher.post(change(ConnectionState::Connected, 1));
        publisher.post(change(ConnectionState::Suspended, 1));
        assert_eq!(stream.next().await, Some(change(ConnectionState::Suspended, 1)));
        publisher.post(change(ConnectionState::Lost, 1));
        assert_eq!(stream.next().await, Some(change(ConnectionState::Lost, 1)));
        assert_eq!(publisher.current(), change(ConnectionState::Lost, 1));
    }

    #[test]
    fn error_policies() {
        assert!(ErrorPolicy::Standard.is_error(ConnectionState::Suspended));
        assert!(ErrorPolicy::Standard.is_error(ConnectionState::Lost));
        assert!(!ErrorPolicy::SessionOnly.is_error(ConnectionState::Suspended));
        assert!(ErrorPolicy::SessionOnly.is_error(ConnectionState::Lost));
        assert!(!ErrorPolicy::Standard.is_error(ConnectionState::Reconnected));
        assert!(!ErrorPolicy::Standard.is_error(ConnectionState::ReadOnly));
        assert!(!ErrorPolicy::SessionOnly.is_error(ConnectionState::ReadOnly));
    }
}
