//! Server settings and the injectable wall clock.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use corral_proto::DEFAULT_MAX_FRAME;

/// A source of wall-clock time in milliseconds since the Unix epoch.
///
/// ZooKeeper stamps `ctime` and `mtime` with the server's wall clock and compares TTL nodes
/// against it. Everything else in the server (session expiry, sweeps, timeouts) runs on
/// [`tokio::time`], so tests with paused time are exact; this clock is the one place where
/// wall time enters, and tests may replace it.
///
/// # Examples
///
/// ```
/// use corral_server::Clock;
///
/// let fixed = Clock::from_fn(|| 1_700_000_000_000);
/// assert_eq!(fixed.now_ms(), 1_700_000_000_000);
/// assert!(Clock::system().now_ms() > 1_600_000_000_000);
/// ```
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// The system clock ([`SystemTime::now`]). The default.
    pub fn system() -> Self {
        Self::from_fn(|| {
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        })
    }

    /// A clock that starts at the system time when it is made and then advances with
    /// [`tokio::time::Instant`], so that it follows paused and advanced time in tests.
    pub fn tokio_anchored() -> Self {
        let wall = Self::system().now_ms();
        let base = tokio::time::Instant::now();
        Self::from_fn(move || {
            let elapsed = i64::try_from(base.elapsed().as_millis()).unwrap_or(i64::MAX);
            wall.saturating_add(elapsed)
        })
    }

    /// A clock that calls `f` for the current time in milliseconds since the epoch.
    pub fn from_fn(f: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// The current time in milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Clock").field(&self.now_ms()).finish()
    }
}

/// Every setting of a server; built by [`crate::ServerBuilder`].
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) host: IpAddr,
    pub(crate) port: u16,
    pub(crate) server_id: u8,
    pub(crate) tick: Duration,
    pub(crate) min_session_timeout: Option<Duration>,
    pub(crate) max_session_timeout: Option<Duration>,
    pub(crate) extended_types: bool,
    pub(crate) reconfig_enabled: bool,
    /// Whether addWatch and setWatches2 are served (ZooKeeper ≥ 3.6); when false they are
    /// answered as ZooKeeper 3.5 answers opcodes it does not know.
    pub(crate) persistent_watches: bool,
    pub(crate) container_check_interval: Duration,
    pub(crate) container_max_never_used: Duration,
    pub(crate) super_digest: Option<String>,
    pub(crate) four_letter_words: Option<Vec<String>>,
    pub(crate) max_frame: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) clock: Clock,
    /// Whether members start read-only.
    pub(crate) read_only: bool,
    /// TLS for the secure client port, which is opened only with it.
    pub(crate) tls: Option<crate::tls::ServerTls>,
    /// The secure client port; 0 lets the system choose.
    pub(crate) secure_port: u16,
    /// SASL DIGEST-MD5 users (from a JAAS file's `Server` section).
    pub(crate) sasl: Option<std::sync::Arc<crate::sasl::SaslUsers>>,
    /// The data directory; `None` keeps everything in memory.
    pub(crate) data_dir: Option<std::path::PathBuf>,
    /// Whether the log is fsynced before replies (`forceSync`).
    pub(crate) force_sync: bool,
    /// Transactions between snapshots (`snapCount`).
    pub(crate) snap_count: u64,
    /// Snapshots kept by the purge (`autopurge.snapRetainCount`, at least 3).
    pub(crate) snap_retain_count: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            server_id: 1,
            tick: Duration::from_millis(2000),
            min_session_timeout: None,
            max_session_timeout: None,
            extended_types: true,
            reconfig_enabled: false,
            persistent_watches: true,
            container_check_interval: Duration::from_secs(60),
            container_max_never_used: Duration::from_secs(300),
            super_digest: None,
            four_letter_words: None,
            max_frame: DEFAULT_MAX_FRAME,
            handshake_timeout: Duration::from_secs(10),
            clock: Clock::system(),
            read_only: false,
            tls: None,
            secure_port: 0,
            sasl: None,
            data_dir: None,
            force_sync: true,
            snap_count: 100_000,
            snap_retain_count: 3,
        }
    }
}

impl Config {
    /// The persistence settings, with a data directory.
    pub(crate) fn persistence(&self) -> Option<crate::persist::Settings> {
        self.data_dir.as_ref().map(|dir| crate::persist::Settings {
            dir: dir.clone(),
            force_sync: self.force_sync,
            snap_count: self.snap_count,
            retain: self.snap_retain_count,
        })
    }

    pub(crate) fn tick_ms(&self) -> u64 {
        u64::try_from(self.tick.as_millis()).unwrap_or(u64::MAX).max(1)
    }

    /// The smallest session timeout granted, in ms (2 × tick unless configured).
    pub(crate) fn min_timeout_ms(&self) -> i32 {
        let d = self.min_session_timeout.unwrap_or(self.tick * 2);
        i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
    }

    /// The largest session timeout granted, in ms (20 × tick unless configured).
    pub(crate) fn max_timeout_ms(&self) -> i32 {
        let d = self.max_session_timeout.unwrap_or(self.tick * 20);
        i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
    }

    /// Clamps a requested timeout to `[min, max]`, as ZooKeeper negotiates it.
    pub(crate) fn negotiate_timeout(&self, requested: i32) -> i32 {
        let (min, max) = (self.min_timeout_ms(), self.max_timeout_ms());
        requested.max(min).min(max.max(min))
    }

    /// Whether the four-letter word `cmd` may run.
    pub(crate) fn four_letter_word_allowed(&self, cmd: &str) -> bool {
        match &self.four_letter_words {
            None => true,
            Some(list) => list.iter().any(|w| w == "*" || w == cmd),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_clamp_to_two_and_twenty_ticks() {
        let config = Config::default();
        assert_eq!(config.negotiate_timeout(1000), 4000);
        assert_eq!(config.negotiate_timeout(10_000_000), 40_000);
        assert_eq!(config.negotiate_timeout(30_000), 30_000);
        let custom = Config {
            min_session_timeout: Some(Duration::from_millis(100)),
            max_session_timeout: Some(Duration::from_millis(500)),
            ..Config::default()
        };
        assert_eq!(custom.negotiate_timeout(50), 100);
        assert_eq!(custom.negotiate_timeout(5000), 500);
    }

    #[test]
    fn whitelist() {
        let mut config = Config::default();
        assert!(config.four_letter_word_allowed("stat"));
        config.four_letter_words = Some(vec!["srvr".into()]);
        assert!(config.four_letter_word_allowed("srvr"));
        assert!(!config.four_letter_word_allowed("stat"));
    }
}
