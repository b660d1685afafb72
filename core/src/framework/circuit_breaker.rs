//! Circuit-breaking connection states, as Curator's `CircuitBreakingConnectionStateListener`:
//! while the connection flaps, the framework publishes the first bad state and then holds
//! still, with a retry policy as the breaker, instead of passing every SUSPENDED and
//! RECONNECTED on to recipes (each of which would give up and take back its locks and
//! leadership every time).
//!
//! Closed (the normal case), every state goes out at once. A state that is not connected
//! (SUSPENDED, LOST) goes out and opens the breaker. While it is open, states are recorded and
//! held, except LOST, which goes out once per session (a lost session must never be hidden: a
//! holder must learn it lost its lock). After each of the policy's delays the breaker looks at
//! the last state: connected closes it (and that state goes out, unless it is the one already
//! out); a policy that gives up closes it too, with the last state whatever it is.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Shared;
use super::state::{ConnectionState, ConnectionStateChange};
use crate::retry::RetryPolicy;

/// Runs the breaker until the manager ends (its sender drops); then the last state goes out.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut raw: mpsc::UnboundedReceiver<ConnectionStateChange>,
    policy: Arc<dyn RetryPolicy>,
) {
    loop {
        // Closed.
        let Some(change) = raw.recv().await else { return };
        shared.states.post(change);
        if change.state.is_connected() {
            continue;
        }
        // Open.
        tracing::debug!(state = ?change.state, "connection-state circuit breaker open");
        let opened = Instant::now();
        let mut last = change;
        let mut lost_epoch = (change.state == ConnectionState::Lost).then_some(change.epoch);
        let mut attempt = 0u32;
        let mut ended = false;
        loop {
            attempt += 1;
            let Some(delay) = policy.next_delay(attempt, opened.elapsed()) else { break };
            let until = tokio::time::sleep(delay);
            tokio::pin!(until);
            loop {
                tokio::select! {
                    () = &mut until => break,
                    next = raw.recv() => match next {
                        Some(c) => {
                            if c.state == ConnectionState::Lost && lost_epoch != Some(c.epoch) {
                                lost_epoch = Some(c.epoch);
                                shared.states.post(c);
                            }
                            last = c;
                        }
                        None => {
                            ended = true;
                            break;
                        }
                    },
                }
            }
            if ended || last.state.is_connected() {
                break;
            }
        }
        tracing::debug!(state = ?last.state, "connection-state circuit breaker closed");
        // The publisher drops a repeat of the state already out.
        shared.states.post(last);
        if ended {
            return;
        }
    }
}
