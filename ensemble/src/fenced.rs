//! The fenced write every lock holder and leader makes: read the counter, then, in one multi,
//! the holder's fencing check, the counter's compare-and-set and an entry in the write log.
//!
//! The counter's data and each log entry are `"<value> <writer> <token>"`. The log entries are
//! persistent sequential nodes `w-<seq>` under [`LOG`], so their order is the order in which
//! ZooKeeper applied the writes.

use corral_recipes::{CoreError as Error, CreateMode, ErrorCode, Framework, Op};

/// The counter node (relative to the workload's chroot).
pub const COUNTER: &str = "/counter";
/// The parent of the write log.
pub const LOG: &str = "/log";
/// The prefix of a log entry's name.
pub const ENTRY_PREFIX: &str = "w-";
/// The lock or election node.
pub const LOCK: &str = "/lock";
/// The queue of the queue workload.
pub const QUEUE: &str = "/queue";
/// The lock-safe queue's lock directory.
pub const QUEUE_LOCKS: &str = "/queue-locks";
/// The discovery base path of the discovery workload.
pub const SERVICES: &str = "/services";
/// The service the discovery contenders register.
pub const SERVICE: &str = "svc";

/// What came of one fenced write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied: the counter went to this value.
    Written(u64),
    /// Refused by the fencing check: the lock (or leadership) was no longer held.
    Rejected(String),
    /// Not known: the connection or the session went away before the reply.
    Unknown(String),
    /// The fencing check passed but the counter had changed since it was read: another writer
    /// wrote while this one held the lock.
    Violation(String),
}

/// A counter or log entry's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The counter's value after the write.
    pub value: u64,
    /// Who wrote it.
    pub writer: String,
    /// The writer's fencing token.
    pub token: i64,
}

impl Entry {
    /// Parses `"<value> <writer> <token>"`.
    pub fn parse(data: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(data).ok()?;
        let mut parts = text.split(' ');
        let value = parts.next()?.parse().ok()?;
        let writer = parts.next()?.to_owned();
        let token = parts.next()?.parse().ok()?;
        Some(Self { value, writer, token })
    }

    /// The data written for this entry.
    pub fn encode(&self) -> String {
        format!("{} {} {}", self.value, self.writer, self.token)
    }
}

/// The counter's initial data.
pub fn initial_counter() -> String {
    Entry { value: 0, writer: "-".to_owned(), token: 0 }.encode()
}

/// Creates [`COUNTER`] (at 0) and [`LOG`] if they do not exist yet.
///
/// # Errors
///
/// Any error but NodeExists.
pub async fn prepare(fw: &Framework) -> Result<(), Error> {
    for (path, data) in [(COUNTER, initial_counter()), (LOG, String::new())] {
        match fw.create(path, data, CreateMode::Persistent).await {
            Ok(_) => {}
            Err(Error::Server { code: ErrorCode::NodeExists, .. }) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Increments the counter as `writer` holding the lock whose fencing check is `check`.
///
/// The counter is read first, then set with its version in the same multi as `check` and the
/// log entry. A multi that the framework retried after a lost reply fails on the version it
/// already bumped; then the counter is read again and a write that carries exactly this
/// writer's data counts as applied.
pub async fn fenced_increment(fw: &Framework, check: Op, writer: &str, token: i64) -> Outcome {
    let (data, stat) = match fw.with_retry(|client| async move { client.get_data(COUNTER).await }).await {
        Ok(read) => read,
        Err(err) => return Outcome::Unknown(format!("reading the counter: {err}")),
    };
    let Some(before) = Entry::parse(&data) else {
        return Outcome::Violation(format!("the counter holds {:?}", String::from_utf8_lossy(&data)));
    };
    let entry = Entry { value: before.value + 1, writer: writer.to_owned(), token };
    let payload = entry.encode();
    let ops = vec![
        check,
        Op::set_data(COUNTER, payload.clone(), Some(stat.version)),
        Op::create(format!("{LOG}/{ENTRY_PREFIX}"), payload.clone(), CreateMode::PersistentSequential),
    ];
    match fw.transaction(ops).await {
        Ok(_) => Outcome::Written(entry.value),
        Err(Error::MultiFailed { index: 0, code, .. }) => Outcome::Rejected(format!("fencing check: {code}")),
        Err(Error::MultiFailed { index: 1, code: ErrorCode::BadVersion, .. }) => {
            match fw.with_retry(|client| async move { client.get_data(COUNTER).await }).await {
                Ok((now, _)) if now[..] == *payload.as_bytes() => Outcome::Written(entry.value),
                Ok((now, _)) => Outcome::Violation(format!(
                    "the counter changed while {writer} held token {token}: read {}, now {}",
                    before.encode(),
                    String::from_utf8_lossy(&now)
                )),
                Err(err) => Outcome::Unknown(format!("re-reading the counter after BadVersion: {err}")),
            }
        }
        Err(err) => Outcome::Unknown(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let entry = Entry { value: 7, writer: "c1".into(), token: 0x1_0000_0005 };
        assert_eq!(Entry::parse(entry.encode().as_bytes()), Some(entry));
        assert_eq!(Entry::parse(initial_counter().as_bytes()).map(|e| e.value), Some(0));
        assert_eq!(Entry::parse(b"x y z"), None);
    }
}
