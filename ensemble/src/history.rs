//! Reads the write log back from ZooKeeper and checks it.
//!
//! The invariants, for the log entries in the order ZooKeeper applied them:
//! - the values are 1, 2, 3, … with no gap and no repeat (no lost or duplicated update: two
//!   holders at once would both write the same next value, or one would overwrite the other);
//! - the fencing tokens never go down (once a newer holder wrote, no older one does);
//! - the counter's value is the last entry's.

use std::collections::BTreeMap;

use corral_recipes::Framework;
use futures::future::join_all;

use crate::fenced::{COUNTER, ENTRY_PREFIX, Entry, LOG};

/// The write log as read from the ensemble, with every violation found in it.
#[derive(Debug, Default)]
pub struct History {
    /// The entries in the order they were applied.
    pub entries: Vec<Entry>,
    /// The counter's value.
    pub counter: u64,
    /// Every broken invariant, described.
    pub violations: Vec<String>,
}

impl History {
    /// Reads [`LOG`] and [`COUNTER`] through `fw` and checks them.
    ///
    /// # Errors
    ///
    /// A ZooKeeper error while reading.
    pub async fn read(fw: &Framework) -> corral_recipes::Result<Self> {
        let client = fw.client();
        let mut names = client.get_children(LOG).await?;
        names.retain(|name| name.starts_with(ENTRY_PREFIX));
        names.sort_by_key(|name| name[ENTRY_PREFIX.len()..].parse::<u64>().unwrap_or(u64::MAX));
        // Pipelined: every read is sent before the first reply is awaited.
        let reads = join_all(names.iter().map(|name| client.get_data(&format!("{LOG}/{name}")))).await;
        let (counter, _) = client.get_data(COUNTER).await?;
        let mut history = Self::default();
        for (name, read) in names.iter().zip(reads) {
            let (data, _) = read?;
            match Entry::parse(&data) {
                Some(entry) => history.entries.push(entry),
                None => history.violations.push(format!("{name} holds {:?}", String::from_utf8_lossy(&data))),
            }
        }
        match Entry::parse(&counter) {
            Some(entry) => history.counter = entry.value,
            None => history.violations.push(format!("the counter holds {:?}", String::from_utf8_lossy(&counter))),
        }
        history.check();
        Ok(history)
    }

    /// Finds the violations among [`History::entries`] and [`History::counter`].
    pub fn check(&mut self) {
        let mut last_token = i64::MIN;
        for (i, entry) in self.entries.iter().enumerate() {
            let expected = i as u64 + 1;
            if entry.value != expected {
                self.violations.push(format!("write #{expected} set the counter to {}: {entry:?}", entry.value));
            }
            if entry.token < last_token {
                self.violations.push(format!(
                    "write #{expected} carries token {} after token {last_token} had written: {entry:?}",
                    entry.token
                ));
            }
            last_token = last_token.max(entry.token);
        }
        let last = self.entries.last().map_or(0, |e| e.value);
        if self.counter != last {
            self.violations.push(format!("the counter is {} but the last logged write set {last}", self.counter));
        }
    }

    /// How many writes each writer made.
    pub fn writes_by(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for entry in &self.entries {
            *counts.entry(entry.writer.clone()).or_default() += 1;
        }
        counts
    }

    /// How many distinct fencing tokens wrote (lock acquisitions or leadership terms).
    pub fn terms(&self) -> usize {
        let mut tokens: Vec<i64> = self.entries.iter().map(|e| e.token).collect();
        tokens.dedup();
        tokens.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(value: u64, writer: &str, token: i64) -> Entry {
        Entry { value, writer: writer.into(), token }
    }

    #[test]
    fn a_clean_history_has_no_violation() {
        let mut h = History {
            entries: vec![entry(1, "a", 5), entry(2, "a", 5), entry(3, "b", 9)],
            counter: 3,
            ..Default::default()
        };
        h.check();
        assert!(h.violations.is_empty(), "{:?}", h.violations);
        assert_eq!(h.terms(), 2);
        assert_eq!(h.writes_by().get("a"), Some(&2));
    }

    #[test]
    fn lost_updates_and_stale_tokens_are_found() {
        // Two holders read 1 and both wrote 2; then an old token wrote after a new one.
        let mut h = History {
            entries: vec![entry(1, "a", 5), entry(2, "a", 5), entry(2, "b", 9), entry(4, "a", 5)],
            counter: 4,
            ..Default::default()
        };
        h.check();
        assert_eq!(h.violations.len(), 2, "{:?}", h.violations);
        let mut short = History { entries: vec![entry(1, "a", 5)], counter: 2, ..Default::default() };
        short.check();
        assert_eq!(short.violations.len(), 1, "{:?}", short.violations);
    }
}
