//! The one rule that tells what a fresh read of a node means next to what the cache holds.
//!
//! Both ways the cache learns about a node — the full read after every (re)connection and the
//! re-read after a watch event — go through [`events`], so they cannot disagree:
//!
//! - **czxid is the node's identity.** A different czxid at the same path is another node:
//!   the one held was deleted and this one created, even if nothing in between was seen (a
//!   node deleted and re-created while disconnected, or between two resyncs). It is compared
//!   with `!=`, not `>`: it names a node, it does not order data.
//! - **mzxid orders the data of one node.** Only a *larger* mzxid is a change. An equal one is
//!   the same data read again (an event and a resync that overlap); a smaller one is a read
//!   older than what the cache already holds — a new session starts with no last-seen zxid,
//!   so a lagging ZooKeeper follower may serve it — and must not roll the view back.

use corral_core::Stat;

use super::{CacheEvent, CachedNode};

/// What a fresh read of a node is, next to the node held at the same path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Diff {
    /// Another node stands at the path: the held one was deleted, this one created.
    Replaced,
    /// The same node with newer data.
    Changed,
    /// Nothing newer: the same data, or a read older than what is held.
    Unchanged,
}

/// Compares the stat the cache holds for a path with the stat just read for it.
pub(super) fn diff(held: &Stat, fresh: &Stat) -> Diff {
    if fresh.czxid != held.czxid {
        Diff::Replaced
    } else if fresh.mzxid > held.mzxid {
        Diff::Changed
    } else {
        Diff::Unchanged
    }
}

/// The events that a fresh read `fresh` of `path` makes, given what is held there (`None` if
/// nothing); empty when the view must keep what it holds. Otherwise `fresh` replaces the held
/// node.
pub(super) fn events(path: &str, held: Option<&CachedNode>, fresh: &CachedNode) -> Vec<CacheEvent> {
    let Some(old) = held else {
        return vec![CacheEvent::Created { path: path.to_owned(), node: fresh.clone() }];
    };
    match diff(&old.stat, &fresh.stat) {
        Diff::Replaced => vec![
            CacheEvent::Deleted { path: path.to_owned(), old: old.clone() },
            CacheEvent::Created { path: path.to_owned(), node: fresh.clone() },
        ],
        Diff::Changed => vec![CacheEvent::Changed { path: path.to_owned(), old: old.clone(), new: fresh.clone() }],
        Diff::Unchanged => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;

    fn stat(czxid: i64, mzxid: i64) -> Stat {
        Stat { czxid, mzxid, ..Stat::default() }
    }

    fn node(czxid: i64, mzxid: i64) -> CachedNode {
        CachedNode { stat: stat(czxid, mzxid), data: Bytes::from(format!("{czxid}/{mzxid}")) }
    }

    /// One node's life: created at `czxid`, its data changed at each of `changes` (increasing,
    /// all after `czxid`). Returns the stats the node has had, oldest first.
    fn history() -> impl Strategy<Value = Vec<Stat>> {
        (1i64..1 << 40, prop::collection::btree_set(1i64..1 << 20, 0..12)).prop_map(|(czxid, steps)| {
            std::iter::once(stat(czxid, czxid)).chain(steps.into_iter().map(|s| stat(czxid, czxid + s))).collect()
        })
    }

    proptest! {
        /// Reading what is held again is never an event.
        #[test]
        fn the_same_read_twice_is_unchanged(czxid in any::<i64>(), mzxid in any::<i64>()) {
            prop_assert_eq!(diff(&stat(czxid, mzxid), &stat(czxid, mzxid)), Diff::Unchanged);
            prop_assert!(events("/a", Some(&node(czxid, mzxid)), &node(czxid, mzxid)).is_empty());
        }

        /// Within one node's life a later read is a change and an earlier one is nothing new:
        /// the view never goes back to older data.
        #[test]
        fn newer_data_is_a_change_and_older_data_is_ignored(h in history(), i in any::<prop::sample::Index>(), j in any::<prop::sample::Index>()) {
            let (a, b) = (&h[i.index(h.len())], &h[j.index(h.len())]);
            let expected = if b.mzxid > a.mzxid { Diff::Changed } else { Diff::Unchanged };
            prop_assert_eq!(diff(a, b), expected);
        }

        /// A node deleted and created again between two reads — whatever its data did before
        /// and after — is the old node deleted and a new one created, never a change (its
        /// larger mzxid alone would say "changed").
        #[test]
        fn a_re_created_node_is_replaced(first in history(), gap in 1i64..1 << 20, second in history(), i in any::<prop::sample::Index>(), j in any::<prop::sample::Index>()) {
            let last = first.iter().map(|s| s.mzxid).max().unwrap_or_default();
            // The second life starts after the first one's deletion.
            let shift = last + gap - second[0].czxid;
            let second: Vec<Stat> = second.iter().map(|s| stat(s.czxid + shift, s.mzxid + shift)).collect();
            let (old, new) = (first[i.index(first.len())].clone(), second[j.index(second.len())].clone());
            prop_assert_eq!(diff(&old, &new), Diff::Replaced);
            prop_assert_eq!(diff(&new, &old), Diff::Replaced);
            let held = CachedNode { stat: old, data: Bytes::from_static(b"old") };
            let fresh = CachedNode { stat: new, data: Bytes::from_static(b"new") };
            prop_assert_eq!(
                events("/a", Some(&held), &fresh),
                vec![
                    CacheEvent::Deleted { path: "/a".into(), old: held.clone() },
                    CacheEvent::Created { path: "/a".into(), node: fresh.clone() },
                ]
            );
        }

        /// Whatever order events and resyncs deliver the reads of one node in, applying them
        /// through `events` ends on the newest read, and reports each change going forward.
        #[test]
        fn any_order_of_reads_converges_on_the_newest(h in history().prop_shuffle()) {
            let mut held: Option<CachedNode> = None;
            for s in &h {
                let fresh = node(s.czxid, s.mzxid);
                let events = events("/a", held.as_ref(), &fresh);
                match (&held, events.as_slice()) {
                    (None, [CacheEvent::Created { node, .. }]) => prop_assert_eq!(node, &fresh),
                    (Some(old), [CacheEvent::Changed { old: o, new, .. }]) => {
                        prop_assert_eq!(o, old);
                        prop_assert_eq!(new, &fresh);
                        prop_assert!(new.stat.mzxid > o.stat.mzxid);
                    }
                    (Some(_), []) => {}
                    (held, events) => prop_assert!(false, "held {held:?} and read {fresh:?} gave {events:?}"),
                }
                if !events.is_empty() {
                    held = Some(fresh);
                }
            }
            let newest = h.iter().map(|s| s.mzxid).max();
            prop_assert_eq!(held.map(|n| n.stat.mzxid), newest);
        }

        /// A path the cache does not hold yet is always created, with exactly the read.
        #[test]
        fn an_unknown_path_is_created(czxid in any::<i64>(), mzxid in any::<i64>()) {
            let fresh = node(czxid, mzxid);
            prop_assert_eq!(events("/a", None, &fresh), vec![CacheEvent::Created { path: "/a".into(), node: fresh.clone() }]);
        }
    }
}
