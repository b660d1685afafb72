//! The faults of a simulated run: what each kind does, and the schedule that applies them one
//! after another, waits for the workload to recover from each, and measures how long it took.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::net::{Direction, Rule};
use super::{FAULTS, World};

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// A client's connection is closed; the session lives on and the client reconnects.
    ConnectionDrop,
    /// A client's link to its member passes nothing either way, open, for a while
    /// (what was sent arrives once it heals, if the connection still lives).
    BlackHole,
    /// A client's link to its member passes nothing one way for a while.
    OneWayCut,
    /// The server expires a client's session (the holder's or leader's, more often than not).
    SessionExpiry,
    /// A client stalls (a long pause of its process) past its session timeout: its workload
    /// stops where it is and nothing it sends or is sent gets through; then it wakes up and
    /// carries on as if nothing happened — its next fenced write must be refused.
    Stall,
    /// A member delays the handling of every request.
    ServerDelay,
    /// A member dies for the clients (its connections close, new ones are refused) and comes
    /// back; the tree lives on, as on an ensemble that keeps its quorum.
    MemberKill,
    /// A simulated election, as after the ensemble's leader dies: every member at once closes
    /// its clients' connections and refuses new ones for a window, then all serve again, so
    /// every session must migrate (reconnect) at the same time.
    ///
    /// What it models and what it does not: the embedded cluster shares one tree, so every
    /// committed write survives the window (as ZAB promises), and a request in flight at the
    /// cut was either applied or not while its client sees a connection loss (on a real
    /// ensemble an uncommitted proposal can also be committed later by the new leader — not
    /// modelled). Sessions keep ageing through the window, where a real new leader restarts
    /// every session's timer: that is harsher, never kinder. No member serves stale reads
    /// during the window (the real-ensemble suite's peer partitions cover that).
    Election,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [Self; 8] = [
        Self::ConnectionDrop,
        Self::BlackHole,
        Self::OneWayCut,
        Self::SessionExpiry,
        Self::Stall,
        Self::ServerDelay,
        Self::MemberKill,
        Self::Election,
    ];

    /// The kind's name in traces and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::ConnectionDrop => "connection drop",
            Self::BlackHole => "black hole",
            Self::OneWayCut => "one-way cut",
            Self::SessionExpiry => "session expiry",
            Self::Stall => "client stall",
            Self::ServerDelay => "server delay",
            Self::MemberKill => "member kill",
            Self::Election => "election (every member)",
        }
    }
}

/// Picks the client a fault aims at: the holder (or leader) two times in three when there is
/// one, any workload client otherwise.
fn target(world: &World) -> usize {
    let holders = world.holders();
    if !holders.is_empty() && world.rand(FAULTS, 0..3) < 2 {
        holders[world.rand(FAULTS, 0..holders.len() as u64) as usize]
    } else {
        world.rand(FAULTS, 0..world.clients as u64) as usize
    }
}

/// Applies one fault of `kind`, waits for it to end (healing what it broke), and returns when it
/// ended.
async fn apply(world: &Arc<World>, kind: FaultKind) -> Instant {
    let session = world.session_timeout;
    let members = world.cluster.len() as u64;
    match kind {
        FaultKind::ConnectionDrop => {
            let c = target(world);
            let links = world.net.drop_client(c);
            world.event_of(c, format!("fault {} ({links} links)", kind.name()));
        }
        FaultKind::BlackHole | FaultKind::OneWayCut => {
            let c = target(world);
            let member = world.net.member_of(c).unwrap_or(0);
            let rule = match kind {
                FaultKind::BlackHole => Rule::BlackHole,
                _ if world.rand(FAULTS, 0..2) == 0 => Rule::Cut(Direction::ToServer),
                _ => Rule::Cut(Direction::ToClient),
            };
            let lasts = world.rand_duration(FAULTS, session / 4, session * 5 / 2);
            let what = match rule {
                Rule::BlackHole => "both ways",
                Rule::Cut(dir) => dir.name(),
            };
            world.event_of(c, format!("fault {} m{member} {what} for {} ms", kind.name(), lasts.as_millis()));
            world.net.set_rule(c, Some(member), rule);
            tokio::time::sleep(lasts).await;
            world.net.clear_rules(c);
            world.event_of(c, format!("healed {}", kind.name()));
        }
        FaultKind::SessionExpiry => {
            let c = target(world);
            let id = world.session_of(c);
            let expired = id != 0 && world.cluster.expire_session(id);
            world.event_of(c, format!("fault {} {id:#x} expired={expired}", kind.name()));
        }
        FaultKind::Stall => {
            let c = target(world);
            let lasts = world.rand_duration(FAULTS, session * 6 / 5, session * 2);
            world.event_of(c, format!("fault {} for {} ms", kind.name(), lasts.as_millis()));
            world.net.set_rule(c, None, Rule::BlackHole);
            world.set_stalled(c, true);
            tokio::time::sleep(lasts).await;
            world.net.clear_rules(c);
            world.set_stalled(c, false);
            world.event_of(c, format!("healed {}", kind.name()));
        }
        FaultKind::ServerDelay => {
            let member = world.rand(FAULTS, 0..members) as usize;
            let latency = world.rand_duration(FAULTS, Duration::from_millis(20), session * 3 / 8);
            let lasts = world.rand_duration(FAULTS, session / 4, session * 3 / 2);
            world.event(format!(
                "fault {} m{member} {} ms for {} ms",
                kind.name(),
                latency.as_millis(),
                lasts.as_millis()
            ));
            world.cluster.set_latency(member, latency);
            tokio::time::sleep(lasts).await;
            world.cluster.set_latency(member, Duration::ZERO);
            world.event(format!("healed {} m{member}", kind.name()));
        }
        FaultKind::MemberKill => {
            let member = world.rand(FAULTS, 0..members) as usize;
            let lasts = world.rand_duration(FAULTS, session / 4, session * 2);
            world.event(format!("fault {} m{member} for {} ms", kind.name(), lasts.as_millis()));
            world.net.kill_member(member);
            tokio::time::sleep(lasts).await;
            world.net.revive_member(member);
            world.event(format!("healed {} m{member}", kind.name()));
        }
        FaultKind::Election => {
            // ZooKeeper 3.8 elects in well under a second on a quiet loopback ensemble, and in a
            // few seconds on a loaded one; the window ends before the session timeout.
            let lasts = world.rand_duration(FAULTS, Duration::from_millis(100), session * 3 / 4);
            world.event(format!("fault {} for {} ms", kind.name(), lasts.as_millis()));
            for member in 0..world.cluster.len() {
                world.net.kill_member(member);
            }
            tokio::time::sleep(lasts).await;
            for member in 0..world.cluster.len() {
                world.net.revive_member(member);
            }
            world.event(format!("healed {}", kind.name()));
        }
    }
    world.report(|r| r.fault(kind.name()));
    Instant::now()
}

/// Applies `count` faults of the kinds in `kinds`, one after another with random gaps; after
/// each, waits (at most `bound`) for the workload to make progress again and records how long
/// that took. No progress within `bound` is a violation (the workload is stuck).
pub(crate) async fn run(world: &Arc<World>, count: usize, kinds: &[FaultKind], bound: Duration) {
    for _ in 0..count {
        tokio::time::sleep(world.rand_duration(FAULTS, Duration::from_millis(50), world.session_timeout / 2)).await;
        let kind = kinds[world.rand(FAULTS, 0..kinds.len() as u64) as usize];
        let ended = apply(world, kind).await;
        let from = world.progress_count();
        match world.progress_after(from, bound).await {
            Some(at) => {
                let took = at.duration_since(ended);
                world.report(|r| r.recovered(kind.name(), took));
                // As on a real ensemble: a new holder (or leader, or consumer) within twice the
                // session timeout of a session's loss.
                if kind == FaultKind::SessionExpiry && took > world.session_timeout * 2 {
                    world.violation(format!(
                        "progress took {} ms after a session expiry (more than twice the session timeout)",
                        took.as_millis()
                    ));
                }
            }
            None => {
                world.violation(format!("no progress within {} s after a {}", bound.as_secs(), kind.name()));
                return;
            }
        }
    }
}
