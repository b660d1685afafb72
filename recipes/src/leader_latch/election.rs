//! The latch's task: joins the election, checks its position, watches its predecessor, and
//! publishes leadership as the connection state allows (the module docs of
//! [`leader_latch`](super) tell the story).

use bytes::Bytes;
use corral_core::framework::{Create, Session};
use corral_core::{ConnectionState, CreateMode, EventType, Framework};
use futures::FutureExt;
use tokio::sync::watch;

use super::{LATCH_NAME, Stop};
use crate::hold::Hold;
use crate::sort::sort_children;
use crate::task;
use crate::{Error, Result};

/// Our node in one session: made through that session's handle, its owner from the create's
/// reply.
struct Membership {
    path: String,
    name: String,
    czxid: i64,
    session: Session,
}

/// What the latch's task publishes.
pub(super) struct Outputs {
    /// Whether we lead.
    pub(super) leader: watch::Sender<bool>,
    /// The hold of our leadership, while we lead.
    pub(super) hold: watch::Sender<Option<Hold>>,
    /// The node we lead with, for the holds' validity.
    pub(super) leading_node: watch::Sender<Option<String>>,
}

pub(super) async fn run(fw: Framework, path: String, id: String, outputs: Outputs, mut stop: watch::Receiver<Stop>) {
    let Outputs { leader, hold, leading_node } = outputs;
    let mut states = fw.connection_state();
    let mut member: Option<Membership> = None;
    // The epoch of the session we last joined in: a later session re-joins after the jittered
    // re-create pause, also when the old membership was already dropped.
    let mut joined_in = 0u64;
    let mut backoff = task::Backoff::new(&fw);
    // The last check's watch on our own node, kept until the next check has set its own, so
    // that the client does not remove the server-side watch only to add it again.
    let mut _held_own: Option<corral_core::OneshotWatcher> = None;
    // Set when our predecessor was deleted and nobody can be ahead of us any more (see
    // `Position::Behind::next_in_line`): leadership without listing the election again.
    let mut promoted: Option<corral_core::OneshotWatcher> = None;
    let set = |value: bool| {
        if !value {
            hold.send_replace(None);
            leading_node.send_replace(None);
        }
        // Counted before it is published, so whoever sees the leadership sees the term counted.
        if value && !*leader.borrow() {
            metrics::counter!(corral_core::metrics::LEADERSHIP_TERMS_TOTAL, "recipe" => "latch").increment(1);
        }
        leader.send_if_modified(|l| {
            let changed = *l != value;
            *l = value;
            changed
        });
    };
    loop {
        if *stop.borrow() != Stop::Running {
            break;
        }
        let state = *states.borrow_and_update();
        if !state.state.is_connected() {
            promoted = None;
            if fw.error_policy().is_error(state.state) {
                set(false);
            }
            if state.state == ConnectionState::Lost {
                member = None;
            }
            tokio::select! {
                _ = states.changed() => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        // A new session: the old node went with the old one. Join again after a jittered pause
        // so that a fleet whose sessions expired together does not rush the ensemble.
        if member.as_ref().is_some_and(|m| m.session.epoch() != state.epoch)
            || (member.is_none() && joined_in != 0 && joined_in != state.epoch)
        {
            set(false);
            member = None;
            promoted = None;
            metrics::counter!(corral_core::metrics::RECIPE_RECREATIONS_TOTAL, "recipe" => "latch").increment(1);
            if !task::pause_unless_stopped(task::recreate_pause(&fw), &mut stop).await {
                continue;
            }
        }
        if member.is_none() {
            match join(&fw, &path, &id).await {
                Ok(m) => {
                    joined_in = m.session.epoch();
                    backoff.reset();
                    member = Some(m);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "could not join the election yet");
                    backoff.wait(&mut states, &mut stop).await;
                    continue;
                }
            }
        }
        let Some(m) = member.as_ref() else { continue };
        let position = match promoted.take() {
            // CURATOR-696 still holds: only while our node is one of the current session.
            Some(own) if m.session.is_live() => Ok(Position::Leader(own)),
            _ => check(&path, m).await,
        };
        match position {
            Ok(Position::Leader(mut own)) => {
                // The hold names the connection we lead on (under the Standard policy a
                // SUSPENDED ends it), and is valid only while we lead with this node.
                let now = fw.current_state();
                if now.epoch == m.session.epoch() && !*leader.borrow() {
                    leading_node.send_replace(Some(m.path.clone()));
                    let held = Hold::new(&fw, m.path.clone(), now, m.czxid).while_leading(leading_node.subscribe());
                    hold.send_replace(Some(held));
                }
                set(true);
                // Watch our own node too: if it is deleted under us, leadership is gone.
                tokio::select! {
                    _ = &mut own => {}
                    _ = states.changed() => {}
                    _ = stop.changed() => {}
                }
                _held_own = Some(own);
            }
            Ok(Position::Behind { predecessor, mut own, next_in_line }) => {
                set(false);
                tokio::select! {
                    event = predecessor => {
                        // Our node is still there (its watch has not fired) and the only
                        // node ahead of us is gone: we are first.
                        if next_in_line
                            && event.event_type == EventType::NodeDeleted
                            && (&mut own).now_or_never().is_none()
                        {
                            promoted = Some(own);
                            continue;
                        }
                    }
                    _ = &mut own => {}
                    _ = states.changed() => {}
                    _ = stop.changed() => {}
                }
                _held_own = Some(own);
            }
            Ok(Position::Gone) => {
                set(false);
                member = None;
                _held_own = None;
            }
            Err(e) => {
                tracing::debug!(error = %e, "could not check the election");
                backoff.wait(&mut states, &mut stop).await;
            }
        }
    }
    // Step down before the node goes, so that no successor leads while we still say we do.
    let mode = *stop.borrow();
    if mode == Stop::Silent {
        leader.send_if_modified(|l| {
            *l = false;
            false
        });
    } else {
        set(false);
    }
    hold.send_replace(None);
    leading_node.send_replace(None);
    if let Some(m) = member {
        // On its own session only: if that session is gone, so is the node.
        task::delete_on_session(&m.session, &m.path).await;
    }
}

/// Joins the election in the current session: a protected create bound to that session, so the
/// node is never one of a later session's that we would not recognise (the create fails with
/// SessionLost instead, and its node, if made, goes with the old session).
async fn join(fw: &Framework, path: &str, id: &str) -> Result<Membership> {
    let session = fw.session().await?;
    let prefix = format!("{path}/{LATCH_NAME}");
    let spec = Create::new(CreateMode::EphemeralSequential).container_parents().protected();
    let created = session.create(&prefix, Bytes::from(id.to_owned()), spec).await?;
    let name = corral_core::proto::path::name(&created.path).to_owned();
    Ok(Membership { path: created.path, name, czxid: created.stat.czxid, session })
}

enum Position {
    /// First, with a watch on our own node: if it is deleted under us, leadership is gone.
    Leader(corral_core::OneshotWatcher),
    /// Behind: a watch on the predecessor, and one on our own node.
    Behind {
        predecessor: corral_core::OneshotWatcher,
        own: corral_core::OneshotWatcher,
        /// The predecessor was the only node ahead of us when we listed the election. Nodes
        /// created later get higher sequence numbers and sort after us, so once it is deleted
        /// we are first without listing again: failover costs no round trip.
        next_in_line: bool,
    },
    Gone,
}

async fn check(path: &str, m: &Membership) -> Result<Position> {
    let client = m.session.client();
    // Both requests are queued before either is awaited (the server answers them in order), so
    // a participant woken by its predecessor's deletion learns that it leads in one round trip.
    let listing = client.get_children(path);
    let own = client.exists_and_watch(&m.path);
    let (listing, own) = (listing.await, own.await);
    let mut children = listing?;
    let (stat, own) = own?;
    sort_children(&mut children, LATCH_NAME);
    let Some(index) = children.iter().position(|c| *c == m.name) else { return Ok(Position::Gone) };
    // CURATOR-696: only a node of the current session counts, as leader or as waiter.
    match stat {
        Some(stat) if stat.ephemeral_owner == m.session.id() && m.session.is_live() => {}
        _ => return Ok(Position::Gone),
    }
    if index == 0 {
        return Ok(Position::Leader(own));
    }
    let predecessor = format!("{path}/{}", children[index - 1]);
    match client.get_data_and_watch(&predecessor).await {
        Ok((_, _, predecessor)) => Ok(Position::Behind { predecessor, own, next_in_line: index == 1 }),
        // Gone between the listing and the watch: look again.
        Err(e) if e.is_no_node() => Box::pin(check(path, m)).await,
        Err(e) => Err(Error::from(e)),
    }
}
