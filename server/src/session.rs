//! The session tracker: ids, passwords, timeouts and ZooKeeper's expiry buckets.
//!
//! Like ZooKeeper's `ExpiryQueue`, every session sits in the bucket of its expiry time rounded
//! up to the next multiple of the tick. Touching a session (any request, pings included) moves
//! it to a later bucket; one timer, armed for the earliest bucket boundary, expires the whole
//! bucket at once. There are no per-session timers, so idle sessions cost nothing between
//! ticks. Times here are milliseconds on the server's monotonic [`tokio::time`] clock.

use std::collections::BTreeMap;

use crate::state::{ConnId, IdMap, IdSet};

/// The length of a session password.
pub(crate) const PASSWORD_LEN: usize = 16;

/// ZooKeeper's container marker, which no session id may equal.
const CONTAINER_MARKER: i64 = i64::MIN;

/// One session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) id: i64,
    pub(crate) password: [u8; PASSWORD_LEN],
    pub(crate) timeout_ms: i32,
    /// The bucket (ms on the monotonic clock) in which the session expires.
    pub(crate) expires_at: u64,
    /// Set once expiry or closeSession has begun; later touches fail.
    pub(crate) closing: bool,
    /// The connection the session is attached to, if any.
    pub(crate) conn: Option<ConnId>,
    /// The member whose read-only mode granted the session, if it is a read-only (local)
    /// session: only that member knows it, it owns no ephemerals, and it is forgotten when the
    /// member leaves read-only mode or stops (ZooKeeper's local sessions on a
    /// `ReadOnlyZooKeeperServer`).
    pub(crate) local_to: Option<usize>,
}

/// Every live session and its expiry bucket.
#[derive(Debug)]
pub(crate) struct SessionTracker {
    sessions: IdMap<i64, Session>,
    buckets: BTreeMap<u64, IdSet<i64>>,
    next_id: i64,
    tick_ms: u64,
    /// Passwords derive from it and the session id, so that a server restored from its data
    /// directory (which keeps the secret) gives a session back its password.
    secret: [u8; crate::persist::SECRET_LEN],
}

/// The first session id: the server id in the top byte, then the low 40 bits of the clock in
/// milliseconds, then 16 zero bits (ZooKeeper's `initializeNextSessionId`).
pub(crate) fn initial_session_id(server_id: u8, now_ms: i64) -> i64 {
    let time_bits = ((now_ms as u64) << 24) >> 8;
    ((u64::from(server_id) << 56) | time_bits) as i64
}

impl SessionTracker {
    /// A tracker with buckets `tick_ms` wide, whose first id derives from `server_id` and the
    /// wall clock `wall_ms`.
    pub(crate) fn new(server_id: u8, wall_ms: i64, tick_ms: u64) -> Self {
        Self {
            sessions: IdMap::default(),
            buckets: BTreeMap::new(),
            next_id: initial_session_id(server_id, wall_ms),
            tick_ms: tick_ms.max(1),
            secret: std::array::from_fn(|_| fastrand::u8(..)),
        }
    }

    /// Uses `secret` for passwords (a data directory's): call before any session exists.
    pub(crate) fn set_secret(&mut self, secret: [u8; crate::persist::SECRET_LEN]) {
        self.secret = secret;
    }

    /// The password of session `id`: the first bytes of SHA-1(secret ‖ id).
    fn password_of(&self, id: i64) -> [u8; PASSWORD_LEN] {
        use sha1::Digest;
        let mut hasher = sha1::Sha1::new();
        hasher.update(self.secret);
        hasher.update(id.to_be_bytes());
        let digest = hasher.finalize();
        let mut password = [0u8; PASSWORD_LEN];
        password.copy_from_slice(&digest[..PASSWORD_LEN]);
        password
    }

    /// Brings back a session read from the data directory, with its whole timeout from `now`
    /// (its client could not reach the stopped server). Later new ids come after it.
    pub(crate) fn restore(&mut self, id: i64, timeout_ms: i32, now: u64) {
        let expires_at = self.bucket_for(now, timeout_ms);
        self.buckets.entry(expires_at).or_default().insert(id);
        let password = self.password_of(id);
        self.sessions
            .insert(id, Session { id, password, timeout_ms, expires_at, closing: false, conn: None, local_to: None });
        if id >= self.next_id && (id ^ self.next_id) >> 56 == 0 {
            self.next_id = id.wrapping_add(1);
        }
    }

    /// `(id, timeout)` of every read/write session, sorted (what a snapshot keeps).
    pub(crate) fn global_timeouts(&self) -> Vec<(i64, i32)> {
        let mut all: Vec<(i64, i32)> =
            self.sessions.values().filter(|s| s.local_to.is_none()).map(|s| (s.id, s.timeout_ms)).collect();
        all.sort_unstable();
        all
    }

    /// The bucket of a session touched at `now` with timeout `timeout_ms`: the next multiple of
    /// the tick strictly greater than `now + timeout`.
    pub(crate) fn bucket_for(&self, now: u64, timeout_ms: i32) -> u64 {
        bucket_for(self.tick_ms, now, timeout_ms)
    }

    /// Creates a session with a random password, in its first bucket; `local_to` is the
    /// read-only member that grants it, if any.
    pub(crate) fn create(&mut self, timeout_ms: i32, now: u64, local_to: Option<usize>) -> &Session {
        let mut id = self.next_id;
        if id == CONTAINER_MARKER {
            id = id.wrapping_add(1);
        }
        self.next_id = id.wrapping_add(1);
        let password = self.password_of(id);
        let expires_at = self.bucket_for(now, timeout_ms);
        self.buckets.entry(expires_at).or_default().insert(id);
        self.sessions.entry(id).or_insert(Session {
            id,
            password,
            timeout_ms,
            expires_at,
            closing: false,
            conn: None,
            local_to,
        })
    }

    /// Moves a live session to the bucket for `now`. Returns `false` if the session is unknown
    /// or closing.
    pub(crate) fn touch(&mut self, id: i64, now: u64) -> bool {
        let tick_ms = self.tick_ms;
        let Some(session) = self.sessions.get_mut(&id).filter(|s| !s.closing) else {
            return false;
        };
        let bucket = bucket_for(tick_ms, now, session.timeout_ms);
        let old = session.expires_at;
        if bucket > old {
            session.expires_at = bucket;
            remove_from(&mut self.buckets, old, id);
            self.buckets.entry(bucket).or_default().insert(id);
        }
        true
    }

    /// Changes a session's timeout (on reattach) and touches it.
    pub(crate) fn set_timeout(&mut self, id: i64, timeout_ms: i32, now: u64) {
        if let Some(session) = self.sessions.get_mut(&id) {
            session.timeout_ms = timeout_ms;
        }
        self.touch(id, now);
    }

    /// The earliest bucket boundary, if any session is tracked.
    pub(crate) fn next_expiration(&self) -> Option<u64> {
        self.buckets.keys().next().copied()
    }

    /// Takes every session whose bucket is at or before `now`, marking each closing.
    pub(crate) fn take_expired(&mut self, now: u64) -> Vec<i64> {
        let mut expired = Vec::new();
        while let Some(entry) = self.buckets.first_entry() {
            if *entry.key() > now {
                break;
            }
            let mut ids: Vec<i64> = entry.remove().into_iter().collect();
            ids.sort_unstable();
            for id in &ids {
                if let Some(s) = self.sessions.get_mut(id) {
                    s.closing = true;
                }
            }
            expired.extend(ids);
        }
        expired
    }

    /// Marks a session closing (closeSession). Returns `false` if it is unknown or already
    /// closing.
    pub(crate) fn set_closing(&mut self, id: i64) -> bool {
        match self.sessions.get_mut(&id) {
            Some(s) if !s.closing => {
                s.closing = true;
                true
            }
            _ => false,
        }
    }

    /// Forgets a session.
    pub(crate) fn remove(&mut self, id: i64) -> Option<Session> {
        let session = self.sessions.remove(&id)?;
        remove_from(&mut self.buckets, session.expires_at, id);
        Some(session)
    }

    /// The session `id`.
    pub(crate) fn get(&self, id: i64) -> Option<&Session> {
        self.sessions.get(&id)
    }

    /// The session `id`, mutably.
    pub(crate) fn get_mut(&mut self, id: i64) -> Option<&mut Session> {
        self.sessions.get_mut(&id)
    }

    /// The ids of every live session, sorted.
    pub(crate) fn ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.sessions.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The ids of the read-only sessions granted by member `member`, sorted.
    pub(crate) fn local_to(&self, member: usize) -> Vec<i64> {
        let mut ids: Vec<i64> = self.sessions.values().filter(|s| s.local_to == Some(member)).map(|s| s.id).collect();
        ids.sort_unstable();
        ids
    }

    /// The number of sessions.
    pub(crate) fn len(&self) -> usize {
        self.sessions.len()
    }

    /// The buckets, earliest first, each with its sorted session ids (for `dump`).
    pub(crate) fn buckets(&self) -> Vec<(u64, Vec<i64>)> {
        self.buckets
            .iter()
            .map(|(t, ids)| {
                let mut ids: Vec<i64> = ids.iter().copied().collect();
                ids.sort_unstable();
                (*t, ids)
            })
            .collect()
    }

    /// Touches every session at `now` (after a restart, as ZooKeeper does when it reloads
    /// sessions).
    pub(crate) fn touch_all(&mut self, now: u64) {
        for id in self.ids() {
            self.touch(id, now);
        }
    }
}

/// [`SessionTracker::bucket_for`] with buckets `tick_ms` wide.
fn bucket_for(tick_ms: u64, now: u64, timeout_ms: i32) -> u64 {
    let deadline = now.saturating_add(u64::try_from(timeout_ms.max(0)).unwrap_or(0));
    (deadline / tick_ms + 1).saturating_mul(tick_ms)
}

fn remove_from(buckets: &mut BTreeMap<u64, IdSet<i64>>, at: u64, id: i64) {
    if let Some(set) = buckets.get_mut(&at) {
        set.remove(&id);
        if set.is_empty() {
            buckets.remove(&at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_server_id_and_time() {
        let id = initial_session_id(1, 0x5a4_6400);
        assert_eq!(id as u64 >> 56, 1);
        assert_eq!(id & 0xffff, 0);
        let mut tracker = SessionTracker::new(1, 1_700_000_000_000, 2000);
        let first = tracker.create(4000, 0, None).id;
        let second = tracker.create(4000, 0, None).id;
        assert_eq!(second, first + 1);
        assert_eq!(first as u64 >> 56, 1);
        assert_ne!(tracker.get(first).map(|s| s.password), Some([0; 16]));
    }

    #[test]
    fn buckets_round_up_to_the_next_tick() {
        let tracker = SessionTracker::new(1, 0, 2000);
        assert_eq!(tracker.bucket_for(0, 4000), 6000);
        assert_eq!(tracker.bucket_for(1999, 4000), 6000);
        assert_eq!(tracker.bucket_for(2000, 4000), 8000);
    }

    #[test]
    fn touch_moves_to_later_bucket_and_expiry_takes_whole_buckets() {
        let mut tracker = SessionTracker::new(1, 0, 2000);
        let a = tracker.create(4000, 0, None).id;
        let b = tracker.create(4000, 500, None).id;
        let c = tracker.create(4000, 0, None).id;
        assert_eq!(tracker.next_expiration(), Some(6000));
        assert!(tracker.touch(c, 2500));
        assert_eq!(tracker.get(c).map(|s| s.expires_at), Some(8000));
        assert!(tracker.take_expired(5999).is_empty());
        assert_eq!(tracker.take_expired(6000), vec![a, b]);
        assert!(!tracker.touch(a, 6000), "closing sessions cannot be touched");
        assert_eq!(tracker.next_expiration(), Some(8000));
        tracker.remove(a);
        tracker.remove(b);
        assert_eq!(tracker.ids(), vec![c]);
        assert!(!tracker.touch(a, 6000));
    }
}
