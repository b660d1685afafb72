//! Durability: the data directory, the transaction log, snapshots, and recovery on start.
//!
//! With [`crate::ServerBuilder::data_dir`] every transaction — every write, failed ones
//! included (they consume a zxid), session creation and closing — is appended to a
//! transaction log under the state lock, in zxid order, and a reply (or notification) that
//! reflects it leaves the server only once the log is fsynced up to it. One writer task takes
//! whatever is queued, writes it and fsyncs once (group commit): pipelined writes share their
//! fsyncs. Every `snapCount` transactions the log rolls to a new file and a fuzzy snapshot is
//! taken without stopping writes; then old snapshots and logs are purged, keeping
//! `autopurge.snapRetainCount` snapshots (at least 3) and the logs they need.
//!
//! # On-disk format
//!
//! ZooKeeper's own, so that its tools (`zkTxnLogToolkit.sh`, `zkSnapShotToolkit.sh`) read
//! what the embedded server writes, and an operator can inspect both servers the same way.
//!
//! ```text
//! <dataDir>/corral.secret             16 random bytes; session passwords derive from them,
//!                                     so a restored session keeps its password
//! <dataDir>/corral.lock               empty; locked while a server runs on the directory
//! <dataDir>/version-2/log.<zxid>      transaction log; <zxid> (hex) is its first entry's
//! <dataDir>/version-2/snapshot.<zxid> snapshot; <zxid> (hex) is the last transaction
//!                                     applied when it began
//! ```
//!
//! A **log** starts with the header `"ZKLG"` (int), version 2 (int), dbid 0 (long); then each
//! entry is the Adler-32 of its payload (long), the payload (int length + bytes) and the byte
//! `'B'`. The payload is ZooKeeper's `TxnHeader` (clientId long, cxid int, zxid long, time
//! long, type int) then the txn record of the type: `CreateTxn`, `CreateContainerTxn`,
//! `CreateTTLTxn`, `DeleteTxn`, `SetDataTxn`, `SetACLTxn`, `CreateSessionTxn`,
//! `CloseSessionTxn` (with the ephemerals to delete), `ErrorTxn` or `MultiTxn`. Files are
//! preallocated with zeros in 64 MiB steps; a zero length ends the entries.
//!
//! A **snapshot** starts with `"ZKSN"`, version 2, dbid −1; then the sessions (count, then
//! id and timeout), the ACL lists (count, then id and list), every node (path — the root as
//! `""` — data, ACL id, `StatPersisted`) parents first, the path `"/"`; then the Adler-32 of
//! all of that (long) and `"/"`. It is written to `tmp.snapshot.<zxid>`, fsynced and renamed,
//! so a snapshot file is always whole.
//!
//! # Recovery
//!
//! On start the newest snapshot is loaded, then every log entry after its zxid is replayed
//! (ZooKeeper's rules, see `replay`). A snapshot that does not read back exactly (bad magic,
//! checksum, a node before its parent) stops the start with an error naming the file; it is
//! never skipped in silence. A torn or corrupt entry at the end of the last log (a crash
//! mid-write: nothing from it was acknowledged) is cut off with a warning naming the file and
//! offset; a bad entry followed by more transactions, or a gap in the zxids, stops the start.
//! Sessions come back with their timeouts, each starting afresh (the clients could not reach
//! a stopped server), so a client that reconnects in time keeps its session and ephemerals;
//! the others expire as usual, their ephemerals deleted with watches fired.
//!
//! `forceSync=no` ([`crate::ServerBuilder::force_sync`]) skips the fsyncs: replies no longer
//! wait for the disk, and a crash of the machine (not only of the process) can lose
//! acknowledged writes. For CI speed only.

mod log;
mod record;
mod replay;
mod snapshot;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{Notify, mpsc, watch};

pub(crate) use log::LogMsg;
pub(crate) use record::{TxnBody, TxnHeader, TxnOp, op};

use crate::server::Error;
use crate::state::Shared;
use crate::tree::DataTree;

/// The length of the data directory's secret.
pub(crate) const SECRET_LEN: usize = 16;
const SECRET_FILE: &str = "corral.secret";
/// The file a running server holds an exclusive lock on, so that a second server refuses the
/// same directory instead of interleaving its log with the first one's.
const LOCK_FILE: &str = "corral.lock";
const VERSION_DIR: &str = "version-2";

/// The persistence settings of a server with a data directory.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) dir: PathBuf,
    pub(crate) force_sync: bool,
    pub(crate) snap_count: u64,
    pub(crate) retain: usize,
}

/// What start found in the data directory.
#[derive(Debug)]
pub(crate) struct Restored {
    pub(crate) tree: DataTree,
    /// `(id, timeout)` of every session.
    pub(crate) sessions: Vec<(i64, i32)>,
    pub(crate) zxid: i64,
    pub(crate) secret: [u8; SECRET_LEN],
    /// Transactions replayed from the log (they count towards the next snapshot).
    pub(crate) replayed: u64,
    /// The directory's lock, held until the log writer ends.
    pub(crate) lock: std::fs::File,
}

fn data_error(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::DataDir { path: path.to_owned(), message: message.to_string() }
}

/// A file of the version directory whose name is `<prefix>.<hex zxid>`.
fn zxid_of(name: &str, prefix: &str) -> Option<i64> {
    let hex = name.strip_prefix(prefix)?.strip_prefix('.')?;
    i64::from_str_radix(hex, 16).ok().filter(|z| *z >= 0)
}

/// The `(zxid, path)` of every file named `<prefix>.<hex zxid>` in `dir`, oldest first.
fn listed(dir: &Path, prefix: &str) -> std::io::Result<Vec<(i64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(zxid) = entry.file_name().to_str().and_then(|n| zxid_of(n, prefix)) {
            files.push((zxid, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// Takes the data directory's lock: an exclusive advisory lock on [`LOCK_FILE`], held by the
/// open file (the kernel drops it when the process ends, crash or not).
fn lock(root: &Path) -> Result<std::fs::File, Error> {
    let path = root.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| data_error(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(data_error(
            root,
            format!(
                "is in use by another server (it holds the lock on {LOCK_FILE}); two servers on one data directory would corrupt it"
            ),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(data_error(&path, format!("cannot lock it: {e}"))),
    }
}

/// Reads (or makes) the data directory's secret.
fn secret(dir: &Path) -> Result<[u8; SECRET_LEN], Error> {
    let path = dir.join(SECRET_FILE);
    let mut secret = [0u8; SECRET_LEN];
    match std::fs::File::open(&path) {
        Ok(mut file) => {
            file.read_exact(&mut secret).map_err(|e| data_error(&path, e))?;
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            secret.iter_mut().for_each(|b| *b = fastrand::u8(..));
            let tmp = dir.join(format!("tmp.{SECRET_FILE}"));
            let write = || -> std::io::Result<()> {
                std::fs::write(&tmp, secret)?;
                std::fs::File::open(&tmp)?.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                std::fs::File::open(dir)?.sync_all()
            };
            write().map_err(|e| data_error(&path, e))?;
            Ok(secret)
        }
        Err(e) => Err(data_error(&path, e)),
    }
}

/// Opens a data directory (made if missing) and restores what it holds: the newest snapshot,
/// then the log after it. Blocking; call it off the runtime's threads.
///
/// # Errors
///
/// [`Error::DataDir`] naming the file, for a snapshot that does not read back, a log that is
/// not a log, a bad entry that is not at the end, a gap in the zxids, or an I/O error.
pub(crate) fn open(settings: &Settings) -> Result<Restored, Error> {
    let root = &settings.dir;
    let dir = root.join(VERSION_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| data_error(&dir, e))?;
    let lock = lock(root)?;
    let secret = secret(root)?;
    for (_, leftover) in listed(&dir, "tmp.snapshot").map_err(|e| data_error(&dir, e))? {
        tracing::info!(file = %leftover.display(), "removing an unfinished snapshot");
        std::fs::remove_file(&leftover).map_err(|e| data_error(&leftover, e))?;
    }
    let snapshots = listed(&dir, "snapshot").map_err(|e| data_error(&dir, e))?;
    let (mut tree, mut sessions, mut zxid, had_snapshot) = match snapshots.last() {
        Some((zxid, path)) => {
            let bytes = std::fs::read(path).map_err(|e| data_error(path, e))?;
            let snap = snapshot::read(&bytes).map_err(|m| data_error(path, format!("corrupt snapshot: {m}")))?;
            tracing::info!(file = %path.display(), nodes = snap.tree.len(), "snapshot loaded");
            (snap.tree, snap.sessions, *zxid, true)
        }
        None => (DataTree::new(), HashMap::new(), 0, false),
    };
    let logs = listed(&dir, "log").map_err(|e| data_error(&dir, e))?;
    // The newest log that starts at or before the first transaction needed, and all after it.
    let first = logs.iter().rposition(|(start, _)| *start <= zxid + 1).unwrap_or(0);
    let logs = &logs[first.min(logs.len())..];
    let mut replayed = 0u64;
    let mut contents = Vec::with_capacity(logs.len());
    for (_, path) in logs {
        let bytes = std::fs::read(path).map_err(|e| data_error(path, e))?;
        contents.push(log::read(&bytes).map_err(|m| data_error(path, m))?);
    }
    for (i, ((_, path), log)) in logs.iter().zip(&contents).enumerate() {
        for (header, body) in &log.txns {
            if header.zxid <= zxid {
                continue;
            }
            if header.zxid != zxid + 1 {
                let message = format!("transactions {:#x} to {:#x} are missing", zxid + 1, header.zxid - 1);
                return Err(data_error(path, message));
            }
            replay::apply(&mut tree, &mut sessions, header, body);
            zxid = header.zxid;
            replayed += 1;
        }
        if let Some(why) = &log.bad_tail {
            let later = contents[i + 1..].iter().any(|c| !c.txns.is_empty());
            if later {
                return Err(data_error(
                    path,
                    format!("bad entry at offset {} ({why}) with transactions after it", log.end),
                ));
            }
            tracing::warn!(
                file = %path.display(),
                offset = log.end,
                reason = %why,
                "transaction log has a torn or corrupt tail (a crash mid-write); truncating it at the last good entry"
            );
            log::truncate(path, log.end).map_err(|e| data_error(path, e))?;
        }
    }
    let orphans = replay::drop_orphan_ephemerals(&mut tree, &sessions, zxid);
    if orphans > 0 {
        tracing::info!(orphans, "deleted ephemerals of sessions that no longer exist");
    }
    let sessions: Vec<(i64, i32)> = sessions.into_iter().collect();
    if !had_snapshot {
        snapshot::write_whole(&dir, zxid, &tree, &sessions).map_err(|e| data_error(&dir, e))?;
    }
    tracing::info!(dir = %root.display(), zxid = format_args!("{zxid:#x}"), replayed, "data directory restored");
    Ok(Restored { tree, sessions, zxid, secret, replayed, lock })
}

/// The log side of the state: what the state lock's holder appends to.
#[derive(Debug)]
pub(crate) struct Journal {
    tx: mpsc::UnboundedSender<LogMsg>,
    since_snapshot: u64,
    snap_count: u64,
    snapshot_wake: Arc<Notify>,
}

impl Journal {
    /// Queues a transaction for the log. Called under the state lock, in zxid order.
    pub(crate) fn append(&mut self, header: &TxnHeader, body: &TxnBody) {
        let entry = log::frame(&record::encode(header, body));
        let _ = self.tx.send(LogMsg::Append { zxid: header.zxid, entry });
        self.since_snapshot += 1;
        if self.since_snapshot >= self.snap_count {
            self.since_snapshot = 0;
            let _ = self.tx.send(LogMsg::Roll);
            self.snapshot_wake.notify_one();
        }
    }
}

/// The pieces a durable server runs: the journal (into the state), the durable zxid (for the
/// connections), and the two background tasks to spawn once the shared state exists.
#[derive(Debug)]
pub(crate) struct Durability {
    pub(crate) journal: Journal,
    pub(crate) durable: watch::Receiver<i64>,
    pub(crate) writer: Writer,
    pub(crate) snapshotter: Snapshotter,
}

/// The group-commit writer, to run as a task.
#[derive(Debug)]
pub(crate) struct Writer {
    rx: mpsc::UnboundedReceiver<LogMsg>,
    log: log::LogWriter,
    durable: watch::Sender<i64>,
    /// The data directory's lock, released when the writer has written everything and ends.
    _lock: std::fs::File,
}

/// The snapshot taker, to run as a task.
#[derive(Debug)]
pub(crate) struct Snapshotter {
    wake: Arc<Notify>,
    dir: PathBuf,
    retain: usize,
    durable: watch::Receiver<i64>,
}

/// Sets up the log and snapshot machinery after [`open`] restored `zxid`.
pub(crate) fn durability(settings: &Settings, zxid: i64, replayed: u64, lock: std::fs::File) -> Durability {
    let dir = settings.dir.join(VERSION_DIR);
    let (tx, rx) = mpsc::unbounded_channel();
    let (durable_tx, durable) = watch::channel(zxid);
    let wake = Arc::new(Notify::new());
    let snapshotter = Snapshotter {
        wake: Arc::clone(&wake),
        dir: dir.clone(),
        retain: settings.retain.max(3),
        durable: durable.clone(),
    };
    let snap_count = settings.snap_count.max(1);
    Durability {
        journal: Journal { tx, since_snapshot: replayed % snap_count, snap_count, snapshot_wake: Arc::clone(&wake) },
        durable,
        writer: Writer { rx, log: log::LogWriter::new(dir, settings.force_sync), durable: durable_tx, _lock: lock },
        snapshotter,
    }
}

/// The most entries written under one fsync.
const MAX_BATCH: usize = 16_384;

impl Writer {
    /// Writes what is queued, one fsync per batch, and publishes the durable zxid after each,
    /// until the journal is dropped. A failed write or fsync ends it: nothing after is
    /// acknowledged (ZooKeeper exits then).
    pub(crate) async fn run(mut self) {
        while let Some(first) = self.rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(msg) => batch.push(msg),
                    Err(_) => break,
                }
            }
            let mut log = self.log;
            // The blocking pool, so that paused test time does not jump while the disk works.
            let job = tokio::task::spawn_blocking(move || {
                let result = log.write_batch(&batch);
                (log, result)
            });
            match job.await {
                Ok((log, Ok(last))) => {
                    self.log = log;
                    if let Some(zxid) = last {
                        self.durable.send_replace(zxid);
                    }
                }
                Ok((_, Err(e))) => {
                    tracing::error!(error = %e, "transaction log write failed; no further write is acknowledged");
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "transaction log writer failed");
                    return;
                }
            }
        }
    }
}

impl Snapshotter {
    /// Takes a fuzzy snapshot each time the journal asks, publishes it once the log is
    /// durable past everything it may hold, then purges.
    pub(crate) async fn run(mut self, shared: Arc<Shared>) {
        loop {
            self.wake.notified().await;
            let (dir, walked) = (self.dir.clone(), Arc::clone(&shared));
            let Ok(Some(taken)) = tokio::task::spawn_blocking(move || snapshot::take_fuzzy(&dir, &walked)).await else {
                continue;
            };
            if self.durable.wait_for(|d| *d >= taken.last_seen).await.is_err() {
                tracing::error!("the transaction log stopped; snapshot abandoned");
                return;
            }
            let (dir, retain) = (self.dir.clone(), self.retain);
            let job = tokio::task::spawn_blocking(move || {
                let path = snapshot::publish(&dir, &taken)?;
                purge(&dir, retain)?;
                Ok::<_, std::io::Error>((taken.zxid, path))
            });
            match job.await {
                Ok(Ok((zxid, path))) => {
                    tracing::info!(file = %path.display(), zxid = format_args!("{zxid:#x}"), "snapshot taken");
                }
                Ok(Err(e)) => tracing::error!(error = %e, "snapshot failed"),
                Err(e) => tracing::error!(error = %e, "snapshot task failed"),
            }
        }
    }
}

/// Deletes all but the newest `retain` snapshots, and the logs only older snapshots need.
fn purge(dir: &Path, retain: usize) -> std::io::Result<()> {
    let snapshots = listed(dir, "snapshot")?;
    if snapshots.len() <= retain {
        return Ok(());
    }
    let (old, kept) = snapshots.split_at(snapshots.len() - retain);
    let oldest_kept = kept.first().map_or(0, |(zxid, _)| *zxid);
    let logs = listed(dir, "log")?;
    let needed = logs.iter().rposition(|(start, _)| *start <= oldest_kept + 1).unwrap_or(0);
    for (_, path) in old.iter().chain(&logs[..needed]) {
        tracing::debug!(file = %path.display(), "purged");
        std::fs::remove_file(path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_zookeepers() {
        assert_eq!(zxid_of("log.1a", "log"), Some(26));
        assert_eq!(zxid_of("snapshot.0", "snapshot"), Some(0));
        assert_eq!(zxid_of("tmp.snapshot.5", "snapshot"), None);
        assert_eq!(zxid_of("snapshot.5", "tmp.snapshot"), None);
        assert_eq!(zxid_of("log.zz", "log"), None);
        assert_eq!(snapshot::file_name(255), "snapshot.ff");
        assert_eq!(log::file_name(256), "log.100");
    }

    #[test]
    fn purge_keeps_the_newest_snapshots_and_the_logs_they_need() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["snapshot.0", "snapshot.10", "snapshot.20", "snapshot.30", "log.1", "log.11", "log.1a", "log.2b"] {
            std::fs::write(dir.path().join(name), b"").expect("write");
        }
        purge(dir.path(), 3).expect("purge");
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
            .collect();
        left.sort();
        // snapshot.10 (0x10) is the oldest kept: it needs 0x11 on, which log.11 starts with.
        assert_eq!(left, ["log.11", "log.1a", "log.2b", "snapshot.10", "snapshot.20", "snapshot.30"]);
    }
}
