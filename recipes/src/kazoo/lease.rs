//! kazoo's `NonBlockingLease` and `MultiNonBlockingLease`: a lease on a task for a stretch of
//! wall-clock time, taken or renewed without waiting for it.
//!
//! # Layout (kazoo 2.11's `kazoo/recipe/lease.py`, byte for byte)
//!
//! | node | kind | data |
//! |---|---|---|
//! | `<path>` | persistent | empty |
//! | `<path>/<uuid hex>__lock__<seq>` | a kazoo [`lock`](super::lock) contender, held while the lease is looked at | the identifier |
//! | `<path>/lease_holder` | persistent | `{"version": 1, "holder": "<identifier>", "end": "<UTC, %Y-%m-%dT%H:%M:%S>"}` as Python's `json.dumps` writes it (ASCII, `\uXXXX` escapes) |
//!
//! Under the lock, a process takes the lease when there is no holder, when the holder is
//! itself (a renewal), or when the holder's end has passed on the process's clock; it then
//! writes itself as the holder until now plus the duration. A holder of another `version` is
//! left alone. A `MultiNonBlockingLease` of `count` tries the leases `<path>/0` to
//! `<path>/<count - 1>` in turn and takes the first it can.
//!
//! # Clocks
//!
//! As in kazoo, the end is wall-clock time in UTC, compared with the clock of whoever looks:
//! clocks must roughly agree. The lease is not bound to a session (the holder node is
//! persistent): it lasts its duration even if its holder is gone. The clock is injectable
//! ([`NonBlockingLease::with_clock`], kazoo's `utcnow`).
//!
//! Here the holder is written in one transaction with a check that the lock is still held (and
//! the old holder's version), so a process whose lock went with its session while it looked
//! cannot write over someone else's lease.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Error, Result};
use bytes::Bytes;
use corral_core::Error as CoreError;
use corral_core::{CreateMode, CreateOptions, Framework, Op};

use super::{child_path, data_or_none, errors};

/// The name of the node holding a lease's holder and end.
pub const LEASE_HOLDER_NODE_NAME: &str = "lease_holder";

/// The storage format version kazoo writes (and the only one it takes over).
pub const LEASE_VERSION: i64 = 1;

/// A wall clock: kazoo's `utcnow`.
type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Who holds a lease, and until when, as stored in `<path>/lease_holder`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseHolder {
    /// The holder's identifier.
    pub holder: String,
    /// When the lease ends (whole seconds, UTC).
    pub end: SystemTime,
    /// The storage format version.
    pub version: i64,
}

/// kazoo's `NonBlockingLease(path, duration, identifier)`: takes or renews a lease without
/// waiting for it; see the [module docs](crate::kazoo).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use std::time::Duration;
/// use corral_recipes::kazoo::NonBlockingLease;
///
/// let hour = Duration::from_secs(3600);
/// // The same lease as `zk.NonBlockingLease("/leases/cleanup", timedelta(hours=1), "host-a")`.
/// assert!(NonBlockingLease::new(&fw, "/leases/cleanup", hour, "host-a").obtain().await?);
/// assert!(!NonBlockingLease::new(&fw, "/leases/cleanup", hour, "host-b").obtain().await?);
/// assert!(NonBlockingLease::new(&fw, "/leases/cleanup", hour, "host-a").obtain().await?); // renewed
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct NonBlockingLease {
    fw: Framework,
    path: String,
    duration: Duration,
    identifier: String,
    clock: Clock,
}

impl std::fmt::Debug for NonBlockingLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonBlockingLease")
            .field("path", &self.path)
            .field("duration", &self.duration)
            .field("identifier", &self.identifier)
            .finish_non_exhaustive()
    }
}

impl NonBlockingLease {
    /// A lease at `path` for `duration`, taken as `identifier` (kazoo's default is the host
    /// name; reuse it to renew). Nothing is sent yet.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::kazoo::NonBlockingLease;
    ///
    /// let lease = NonBlockingLease::new(&fw, "/leases/cleanup", Duration::from_secs(60), "host-a");
    /// assert!(lease.obtain().await?);
    /// assert_eq!(lease.holder().await?.unwrap().holder, "host-a");
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(fw: &Framework, path: impl Into<String>, duration: Duration, identifier: impl Into<String>) -> Self {
        let clock: Clock = Arc::new(SystemTime::now);
        Self { fw: fw.clone(), path: path.into(), duration, identifier: identifier.into(), clock }
    }

    /// Reads the wall clock from `clock` instead of [`SystemTime::now`] (kazoo's `utcnow`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::{Duration, SystemTime};
    /// use corral_recipes::kazoo::NonBlockingLease;
    ///
    /// let minute = Duration::from_secs(60);
    /// assert!(NonBlockingLease::new(&fw, "/leases/job", minute, "a").obtain().await?);
    /// // Two minutes later, a's lease has run out.
    /// let later = || SystemTime::now() + Duration::from_secs(120);
    /// assert!(NonBlockingLease::new(&fw, "/leases/job", minute, "b").with_clock(later).obtain().await?);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn with_clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Takes the lease if it is free, expired or already this identifier's, and then holds it
    /// until now plus the duration; `false` if someone else holds it (kazoo's
    /// `bool(NonBlockingLease(...))`). It waits only for the lease's lock, which is held for a
    /// few round trips at a time.
    ///
    /// # Errors
    ///
    /// [`corral_core::Error::BadArguments`] if the holder node holds what kazoo cannot read either, or the
    /// end would pass the year 9999; server errors such as NoAuth; connection errors once the
    /// framework's retries give up; as [`Mutex::acquire`](crate::lock::Mutex::acquire) while
    /// taking the lock ([`Error::SessionLost`](crate::Error::SessionLost) if the session is lost
    /// while waiting for it). A lock lost with its session after it was taken is `Ok(false)`,
    /// as kazoo answers: the lease is not bound to a session.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the lease may have been written when the future is dropped (the lock is
    /// released in the background).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::kazoo::NonBlockingLease;
    ///
    /// let lease = NonBlockingLease::new(&fw, "/leases/report", Duration::from_secs(60), "host-a");
    /// if lease.obtain().await? {
    ///     // run the task only this host may run this minute
    /// }
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn obtain(&self) -> Result<bool> {
        self.fw.ensure_path(&self.path).await?;
        let guard = super::lock(&self.fw, self.path.clone(), self.identifier.clone()).acquire().await?;
        let result = self.obtain_locked(guard.hold().fencing_check()).await;
        let _ = guard.release().await;
        result
    }

    async fn obtain_locked(&self, still_locked: Op) -> Result<bool> {
        let holder_path = child_path(&self.path, LEASE_HOLDER_NODE_NAME);
        let now = (self.clock)();
        let mut ops = vec![still_locked];
        if let Some((raw, stat)) = data_or_none(&self.fw, &holder_path).await? {
            let current = decode(&holder_path, &raw)?;
            if current.version != Some(LEASE_VERSION) {
                // kazoo: "We need an upgrade, let someone else take the lease".
                return Ok(false);
            }
            if current.holder.as_deref() != Some(self.identifier.as_str()) && unix_seconds(now) < current.end {
                return Ok(false);
            }
            ops.push(Op::delete(holder_path.clone(), Some(stat.version)));
        }
        let end = now.checked_add(self.duration).map(unix_seconds).filter(|s| *s <= MAX_SECONDS).ok_or_else(|| {
            errors::bad_argument(format!("{}: a lease of {:?} ends past 9999", self.path, self.duration))
        })?;
        let data = encode(&self.identifier, end);
        // The framework's ACL provider chooses the node's ACL, as for every recipe node.
        let options =
            CreateOptions::new(CreateMode::Persistent).with_acl(self.fw.acl_provider().acl_for_path(&holder_path));
        ops.push(Op::create(holder_path.clone(), data.clone(), options));
        match self.fw.transaction(ops).await {
            Ok(_) => Ok(true),
            // The lock went (its session ended) while we looked: not ours to write.
            Err(CoreError::MultiFailed { index: 0, .. }) => Ok(false),
            // A try whose reply was lost may have been applied: then the holder is our data.
            Err(e @ CoreError::MultiFailed { .. }) => match data_or_none(&self.fw, &holder_path).await? {
                Some((raw, _)) if raw == data => Ok(true),
                _ => Err(Error::from(e)),
            },
            Err(e) => Err(Error::from(e)),
        }
    }

    /// Who holds the lease now, as stored (whether or not it has ended); `None` if no one ever
    /// took it.
    ///
    /// # Errors
    ///
    /// [`corral_core::Error::BadArguments`] if the holder node holds what kazoo cannot read either;
    /// connection errors once the framework's retries give up.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::{Duration, SystemTime};
    /// use corral_recipes::kazoo::NonBlockingLease;
    ///
    /// let lease = NonBlockingLease::new(&fw, "/leases/report", Duration::from_secs(60), "host-a");
    /// assert_eq!(lease.holder().await?, None);
    /// lease.obtain().await?;
    /// let holder = lease.holder().await?.unwrap();
    /// assert_eq!((holder.holder.as_str(), holder.version), ("host-a", 1));
    /// assert!(holder.end > SystemTime::now());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn holder(&self) -> Result<Option<LeaseHolder>> {
        let holder_path = child_path(&self.path, LEASE_HOLDER_NODE_NAME);
        let Some((raw, _)) = data_or_none(&self.fw, &holder_path).await? else { return Ok(None) };
        let stored = decode(&holder_path, &raw)?;
        let end = u64::try_from(stored.end).map_or(UNIX_EPOCH, |s| UNIX_EPOCH + Duration::from_secs(s));
        Ok(Some(LeaseHolder { holder: stored.holder.unwrap_or_default(), end, version: stored.version.unwrap_or(0) }))
    }
}

/// kazoo's `MultiNonBlockingLease(count, path, duration, identifier)`: one of `count` leases
/// (`<path>/0` to `<path>/<count - 1>`), the first that can be taken.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use std::time::Duration;
/// use corral_recipes::kazoo::MultiNonBlockingLease;
///
/// let minute = Duration::from_secs(60);
/// let lease = |id| MultiNonBlockingLease::new(&fw, 2, "/leases/crawlers", minute, id);
/// assert_eq!(lease("a").obtain().await?, Some(0));
/// assert_eq!(lease("b").obtain().await?, Some(1));
/// assert_eq!(lease("c").obtain().await?, None); // two hosts at most
/// assert_eq!(lease("b").obtain().await?, Some(1)); // renewed
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MultiNonBlockingLease {
    leases: Vec<NonBlockingLease>,
}

impl MultiNonBlockingLease {
    /// `count` leases under `path` for `duration`, taken as `identifier`. Nothing is sent yet.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::kazoo::MultiNonBlockingLease;
    ///
    /// let lease = MultiNonBlockingLease::new(&fw, 3, "/leases/x", Duration::from_secs(60), "a");
    /// assert_eq!(lease.obtain().await?, Some(0));
    /// assert!(fw.client().exists("/leases/x/0/lease_holder").await?.is_some());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(
        fw: &Framework,
        count: usize,
        path: impl Into<String>,
        duration: Duration,
        identifier: impl Into<String>,
    ) -> Self {
        let (path, identifier) = (path.into(), identifier.into());
        let leases = (0..count)
            .map(|n| NonBlockingLease::new(fw, child_path(&path, &n.to_string()), duration, &identifier))
            .collect();
        Self { leases }
    }

    /// Reads the wall clock from `clock` (see [`NonBlockingLease::with_clock`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::{Duration, SystemTime};
    /// use corral_recipes::kazoo::MultiNonBlockingLease;
    ///
    /// let minute = Duration::from_secs(60);
    /// assert_eq!(MultiNonBlockingLease::new(&fw, 1, "/l", minute, "a").obtain().await?, Some(0));
    /// let later = || SystemTime::now() + Duration::from_secs(120);
    /// let b = MultiNonBlockingLease::new(&fw, 1, "/l", minute, "b").with_clock(later);
    /// assert_eq!(b.obtain().await?, Some(0)); // a's ran out
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn with_clock(self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        let clock: Clock = Arc::new(clock);
        let leases = self.leases.into_iter().map(|l| NonBlockingLease { clock: clock.clone(), ..l }).collect();
        Self { leases }
    }

    /// Tries the leases in turn; the number of the one obtained, or `None` if all are held by
    /// others (kazoo's `bool(MultiNonBlockingLease(...))`).
    ///
    /// # Errors
    ///
    /// As [`NonBlockingLease::obtain`].
    ///
    /// # Cancel safety
    ///
    /// As [`NonBlockingLease::obtain`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use std::time::Duration;
    /// use corral_recipes::kazoo::MultiNonBlockingLease;
    ///
    /// let none = MultiNonBlockingLease::new(&fw, 0, "/leases/none", Duration::from_secs(60), "a");
    /// assert_eq!(none.obtain().await?, None);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn obtain(&self) -> Result<Option<usize>> {
        for (n, lease) in self.leases.iter().enumerate() {
            if lease.obtain().await? {
                return Ok(Some(n));
            }
        }
        Ok(None)
    }
}

/// A holder node as kazoo reads it: `version` and `holder` compared, `end` parsed.
struct Stored {
    version: Option<i64>,
    holder: Option<String>,
    /// Seconds since the epoch.
    end: i64,
}

fn decode(path: &str, raw: &[u8]) -> Result<Stored> {
    let bad = |why: &str| errors::corrupt(path, format!("{raw:?}, which kazoo's lease cannot read: {why}"));
    let value: serde_json::Value = serde_json::from_slice(raw).map_err(|e| bad(&e.to_string()))?;
    let version = match &value["version"] {
        serde_json::Value::Number(n) => {
            n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
        }
        serde_json::Value::Null => return Err(bad("no version")),
        _ => None,
    };
    let holder = value["holder"].as_str().map(str::to_owned);
    if version != Some(LEASE_VERSION) {
        // kazoo looks no further.
        return Ok(Stored { version, holder, end: 0 });
    }
    let end = value["end"].as_str().and_then(parse_end).ok_or_else(|| bad("no end in %Y-%m-%dT%H:%M:%S"))?;
    Ok(Stored { version, holder, end })
}

/// The holder node's data, as Python's `json.dumps` writes kazoo's dict.
fn encode(identifier: &str, end: i64) -> Bytes {
    Bytes::from(format!(
        r#"{{"version": {LEASE_VERSION}, "holder": {}, "end": "{}"}}"#,
        python_json_string(identifier),
        format_end(end)
    ))
}

/// A JSON string as Python's `json.dumps` writes it (`ensure_ascii=True`): `\"`, `\\`, `\n`,
/// `\r`, `\t`, `\b`, `\f`, and `\uXXXX` (lowercase, surrogate pairs past the BMP) for every other
/// character outside printable ASCII.
fn python_json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

/// 9999-12-31T23:59:59, the last second Python's `datetime` has.
const MAX_SECONDS: i64 = 253_402_300_799;

/// Whole seconds since the epoch (negative before it), rounded down.
fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let before = e.duration();
            let secs = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            if before.subsec_nanos() > 0 { -secs - 1 } else { -secs }
        }
    }
}

/// `strftime("%Y-%m-%dT%H:%M:%S")` of a UTC time.
fn format_end(seconds: i64) -> String {
    let (days, secs) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// `strptime(text, "%Y-%m-%dT%H:%M:%S")` as seconds since the epoch (UTC): a four-digit year,
/// the other fields one or two digits, as Python accepts them.
fn parse_end(text: &str) -> Option<i64> {
    let (date, time) = text.split_once('T')?;
    let mut date = date.splitn(3, '-');
    let mut time = time.splitn(3, ':');
    let field = |s: Option<&str>, max_len: usize| -> Option<i64> {
        let s = s?;
        (!s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let (y, m, d) = (field(date.next(), 4)?, field(date.next(), 2)?, field(date.next(), 2)?);
    let (hh, mm, ss) = (field(time.next(), 2)?, field(time.next(), 2)?, field(time.next(), 2)?);
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        _ => return None,
    };
    if y < 1 || d < 1 || d > days_in_month || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_as_python_writes_and_reads_them() {
        assert_eq!(format_end(0), "1970-01-01T00:00:00");
        assert_eq!(format_end(1_796_556_225), "2026-12-06T11:23:45");
        assert_eq!(format_end(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(format_end(MAX_SECONDS), "9999-12-31T23:59:59");
        assert_eq!(format_end(-1), "1969-12-31T23:59:59");
        for s in [0, 1, 59, 86_399, 86_400, 951_782_400, 1_796_556_225, MAX_SECONDS, -86_401] {
            assert_eq!(parse_end(&format_end(s)), Some(s), "{s}");
        }
        assert_eq!(parse_end("2026-1-5T1:2:3"), parse_end("2026-01-05T01:02:03"));
        for bad in ["2026-02-30T00:00:00", "2026-13-01T00:00:00", "2026-01-01 00:00:00", "x", "2026-01-01T24:00:00"] {
            assert_eq!(parse_end(bad), None, "{bad}");
        }
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_millis(1)), -1);
        assert_eq!(unix_seconds(UNIX_EPOCH + Duration::from_millis(1999)), 1);
    }

    #[test]
    fn json_as_python_dumps_it() {
        assert_eq!(&encode("host-a", 0)[..], br#"{"version": 1, "holder": "host-a", "end": "1970-01-01T00:00:00"}"#);
        assert_eq!(python_json_string("a\"b\\c\n\t\u{8}\u{c}\r"), r#""a\"b\\c\n\t\b\f\r""#);
        assert_eq!(python_json_string("ü\u{7f}\u{1}😀"), r#""\u00fc\u007f\u0001\ud83d\ude00""#);
    }

    #[test]
    fn holders_are_read_as_kazoo_reads_them() {
        let stored = decode("/l", br#"{"version": 1, "holder": "a", "end": "2026-12-06T11:23:45"}"#).unwrap();
        assert_eq!((stored.version, stored.holder.as_deref(), stored.end), (Some(1), Some("a"), 1_796_556_225));
        assert_eq!(decode("/l", br#"{"version": 2, "holder": "a"}"#).unwrap().version, Some(2));
        assert!(decode("/l", b"not json").is_err());
        assert!(decode("/l", br#"{"version": 1, "holder": "a", "end": "soon"}"#).is_err());
    }
}
