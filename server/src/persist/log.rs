//! The transaction log in ZooKeeper's `FileTxnLog` format: the group-commit writer and the
//! reader that finds (and cuts) a torn tail.
//!
//! A log file `log.<zxid>` (the zxid of its first transaction, in hex) starts with the file
//! header (`"ZKLG"`, version 2, dbid 0); then each entry is the Adler-32 of the payload (a
//! long), the payload as a buffer (an int length, then the bytes: a `TxnHeader` and its txn
//! record, see `record`), and the end-of-record byte `'B'`. The file is preallocated in
//! blocks of [`PREALLOC`] bytes of zeros, so an entry whose length is 0 marks the end.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::persist::record::{self, TxnBody, TxnHeader};

/// `"ZKLG"`.
const LOG_MAGIC: i32 = 0x5a4b_4c47;
const VERSION: i32 = 2;
const HEADER_LEN: u64 = 16;
/// The end-of-record marker.
const EOR: u8 = b'B';
/// Log files grow in steps of this much (sparse zeros), as ZooKeeper's `preAllocSize`.
pub(crate) const PREALLOC: u64 = 64 * 1024 * 1024;

/// The log file name for a file whose first transaction is `zxid`.
pub(crate) fn file_name(zxid: i64) -> String {
    format!("log.{zxid:x}")
}

/// One entry, framed: checksum, length, payload, end marker.
pub(crate) fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 13);
    out.extend_from_slice(&i64::from(adler2::adler32_slice(payload)).to_be_bytes());
    out.extend_from_slice(&(payload.len() as i32).to_be_bytes());
    out.extend_from_slice(payload);
    out.push(EOR);
    out
}

/// What one log file holds.
#[derive(Debug)]
pub(crate) struct LogContents {
    /// Every good entry, in order.
    pub(crate) txns: Vec<(TxnHeader, TxnBody)>,
    /// Where the good entries end.
    pub(crate) end: u64,
    /// Why reading stopped before the zeros (or the end of the file), if it did: a torn or
    /// corrupt entry at `end`.
    pub(crate) bad_tail: Option<String>,
}

/// Reads a log file's bytes. A file shorter than its header, or with a zeroed header, holds
/// nothing (a crash right after it was made); any other bad header is an error.
pub(crate) fn read(bytes: &[u8]) -> Result<LogContents, String> {
    let empty = |why: Option<String>| LogContents { txns: Vec::new(), end: 0, bad_tail: why };
    let Some(header) = bytes.get(..HEADER_LEN as usize) else {
        let torn = bytes.iter().any(|b| *b != 0).then(|| "torn file header".to_owned());
        return Ok(empty(torn));
    };
    if header.iter().all(|b| *b == 0) {
        return Ok(empty(None));
    }
    let magic = i32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let version = i32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if magic != LOG_MAGIC || version != VERSION {
        return Err(format!("not a version-2 ZooKeeper transaction log (magic {magic:#x}, version {version})"));
    }
    let mut txns = Vec::new();
    let mut at = HEADER_LEN as usize;
    let mut last_zxid = None;
    let bad_tail = loop {
        let rest = &bytes[at..];
        if rest.len() < 12 {
            break rest.iter().any(|b| *b != 0).then(|| "torn entry header".to_owned());
        }
        let crc = i64::from_be_bytes(rest[..8].try_into().unwrap_or_default());
        let len = i32::from_be_bytes(rest[8..12].try_into().unwrap_or_default());
        if len == 0 && crc == 0 {
            // The preallocated zeros: the end, if nothing but zeros follows.
            break rest.iter().any(|b| *b != 0).then(|| "bytes after the last entry".to_owned());
        }
        let Ok(len) = usize::try_from(len) else {
            break Some(format!("negative entry length {len}"));
        };
        let Some(payload) = rest.get(12..12 + len) else {
            break Some("entry cut short".to_owned());
        };
        if rest.get(12 + len) != Some(&EOR) {
            break Some("entry without its end marker".to_owned());
        }
        if i64::from(adler2::adler32_slice(payload)) != crc {
            break Some("entry checksum mismatch".to_owned());
        }
        let (header, body) = match record::decode(payload) {
            Ok(txn) => txn,
            Err(e) => break Some(format!("undecodable entry: {e}")),
        };
        if last_zxid.is_some_and(|last| header.zxid <= last) {
            break Some(format!("zxid {:#x} out of order", header.zxid));
        }
        last_zxid = Some(header.zxid);
        txns.push((header, body));
        at += 12 + len + 1;
    };
    Ok(LogContents { txns, end: at as u64, bad_tail })
}

/// The open log file the writer appends to.
#[derive(Debug)]
pub(crate) struct LogWriter {
    dir: PathBuf,
    file: Option<(File, u64, u64)>,
    force_sync: bool,
}

/// What the writer is asked to do, in zxid order.
#[derive(Debug)]
pub(crate) enum LogMsg {
    /// Append one entry (already framed) of transaction `zxid`.
    Append { zxid: i64, entry: Vec<u8> },
    /// Start a new file with the next entry (a snapshot is being taken).
    Roll,
}

impl LogWriter {
    pub(crate) fn new(dir: PathBuf, force_sync: bool) -> Self {
        Self { dir, file: None, force_sync }
    }

    /// Appends a batch and makes it durable with one fsync (unless `forceSync=no`). Returns the
    /// zxid of the last entry written, if any.
    ///
    /// # Errors
    ///
    /// Any I/O error; the log cannot be trusted after one.
    pub(crate) fn write_batch(&mut self, batch: &[LogMsg]) -> std::io::Result<Option<i64>> {
        let mut last = None;
        let mut pending: Vec<u8> = Vec::new();
        for msg in batch {
            match msg {
                LogMsg::Roll => {
                    self.flush(&mut pending)?;
                    self.sync()?;
                    self.file = None;
                }
                LogMsg::Append { zxid, entry } => {
                    if self.file.is_none() {
                        self.open(*zxid)?;
                    }
                    pending.extend_from_slice(entry);
                    last = Some(*zxid);
                }
            }
        }
        self.flush(&mut pending)?;
        self.sync()?;
        Ok(last)
    }

    fn open(&mut self, zxid: i64) -> std::io::Result<()> {
        let path = self.dir.join(file_name(zxid));
        // A file of this name can only be one a crash left before any entry in it was
        // acknowledged (its zxid would be past the last one otherwise): start it afresh.
        let mut file = OpenOptions::new().create(true).write(true).truncate(true).open(&path)?;
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(&LOG_MAGIC.to_be_bytes());
        header.extend_from_slice(&VERSION.to_be_bytes());
        header.extend_from_slice(&0i64.to_be_bytes());
        file.write_all(&header)?;
        file.set_len(PREALLOC)?;
        file.sync_all()?;
        File::open(&self.dir)?.sync_all()?;
        tracing::debug!(file = %path.display(), "transaction log started");
        self.file = Some((file, HEADER_LEN, PREALLOC));
        Ok(())
    }

    fn flush(&mut self, pending: &mut Vec<u8>) -> std::io::Result<()> {
        let Some((file, pos, size)) = &mut self.file else {
            return Ok(());
        };
        if pending.is_empty() {
            return Ok(());
        }
        file.seek(SeekFrom::Start(*pos))?;
        file.write_all(pending)?;
        *pos += pending.len() as u64;
        pending.clear();
        if *pos + 4096 > *size {
            *size = (*pos / PREALLOC + 1) * PREALLOC + PREALLOC;
            file.set_len(*size)?;
        }
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        match &self.file {
            Some((file, _, _)) if self.force_sync => file.sync_data(),
            _ => Ok(()),
        }
    }
}

/// Cuts a log file at `end`, dropping a torn or corrupt tail, and makes the cut durable.
pub(crate) fn truncate(path: &Path, end: u64) -> std::io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(end)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::record::{TxnOp, op};

    fn entry(zxid: i64) -> LogMsg {
        let header = TxnHeader { client_id: 1, cxid: 2, zxid, time: 3, kind: op::DELETE };
        let body = TxnBody::Op(TxnOp::Delete { path: format!("/n{zxid}"), container: false });
        LogMsg::Append { zxid, entry: frame(&record::encode(&header, &body)) }
    }

    fn written(n: i64) -> (tempfile::TempDir, Vec<u8>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = LogWriter::new(dir.path().to_owned(), true);
        let batch: Vec<LogMsg> = (1..=n).map(entry).collect();
        assert_eq!(writer.write_batch(&batch).expect("write"), Some(n));
        let bytes = std::fs::read(dir.path().join("log.1")).expect("read");
        (dir, bytes)
    }

    fn zxids(contents: &LogContents) -> Vec<i64> {
        contents.txns.iter().map(|(h, _)| h.zxid).collect()
    }

    #[test]
    fn a_clean_preallocated_log_reads_to_its_last_entry() {
        let (_dir, bytes) = written(3);
        assert_eq!(bytes.len() as u64, PREALLOC);
        let contents = read(&bytes).expect("read");
        assert_eq!(zxids(&contents), [1, 2, 3]);
        assert_eq!(contents.bad_tail, None);
    }

    #[test]
    fn a_torn_tail_ends_at_the_last_whole_entry() {
        let (_dir, bytes) = written(3);
        let end = read(&bytes).expect("read").end as usize;
        let last_len = match entry(3) {
            LogMsg::Append { entry, .. } => entry.len(),
            LogMsg::Roll => 0,
        };
        // Every cut inside the last entry leaves the first two.
        for cut in (end - last_len + 1)..end {
            let contents = read(&bytes[..cut]).expect("read");
            assert_eq!(zxids(&contents), [1, 2], "cut at {cut}");
            assert_eq!(contents.end as usize, end - last_len);
            // (The checksum's first four bytes are zeros: a cut there leaves nothing to see.)
            let torn = bytes[end - last_len..cut].iter().any(|b| *b != 0);
            assert_eq!(contents.bad_tail.is_some(), torn, "cut at {cut}");
        }
        // A half-written entry followed by zeros (a torn write into the preallocated space).
        let mut torn = bytes[..end - 5].to_vec();
        torn.resize(end + 100, 0);
        let contents = read(&torn).expect("read");
        assert_eq!(zxids(&contents), [1, 2]);
        assert!(contents.bad_tail.is_some());
    }

    #[test]
    fn a_corrupt_entry_ends_the_log_before_it() {
        let (_dir, bytes) = written(3);
        let end = read(&bytes).expect("read").end as usize;
        let mut corrupt = bytes.clone();
        corrupt[end - 4] ^= 0xff;
        let contents = read(&corrupt).expect("read");
        assert_eq!(zxids(&contents), [1, 2]);
        assert_eq!(contents.bad_tail.as_deref(), Some("entry checksum mismatch"));
        let mut garbage = bytes.clone();
        garbage[end + 20] = 7;
        let contents = read(&garbage).expect("read");
        assert_eq!(zxids(&contents), [1, 2, 3]);
        assert_eq!(contents.bad_tail.as_deref(), Some("bytes after the last entry"));
    }

    #[test]
    fn headers() {
        assert_eq!(read(&[]).expect("empty").txns.len(), 0);
        assert_eq!(read(&[0; 40]).expect("zeros").bad_tail, None);
        assert!(read(&[0x5a, 0x4b]).expect("torn").bad_tail.is_some());
        assert!(read(&[1; 40]).is_err());
    }

    #[test]
    fn roll_starts_a_new_file_at_the_next_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = LogWriter::new(dir.path().to_owned(), false);
        writer.write_batch(&[entry(1), entry(2), LogMsg::Roll, entry(3)]).expect("write");
        let read_file = |name: &str| read(&std::fs::read(dir.path().join(name)).expect("file")).expect("log");
        assert_eq!(zxids(&read_file("log.1")), [1, 2]);
        assert_eq!(zxids(&read_file("log.3")), [3]);
    }
}
