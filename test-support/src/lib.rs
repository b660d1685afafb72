//! Test support for Corral: a real Apache ZooKeeper to run integration tests against.
//!
//! Besides the shared standalone server below, the crate starts real replicated ensembles
//! ([`Ensemble`]: ZooKeeper 3.8 quorum peers on loopback that a test can kill, restart, stall
//! and cut off from their peers) and injects network faults between a client and a server
//! ([`FaultProxy`]). The ensemble fault suite in `corral-ensemble-tests` is built on them.
//! With the `env` feature, its `env` module gives the client and recipe suites their test
//! environments: the embedded server and this real ZooKeeper, a chroot per test.
//!
//! [`zookeeper()`] hands every test in a test binary the same server. It is either an external
//! server named by the `CORRAL_TEST_ZK` environment variable, or Debian's ZooKeeper 3.8
//! (`/usr/share/java/zookeeper.jar`) started on a free loopback port the first time a test asks.
//! Tests share the server, so each one works below its own chroot from [`unique_chroot`].
//!
//! # Writing a test
//!
//! ```no_run
//! #[test]
//! fn lock_is_exclusive() {
//!     let Some(zk) = corral_test_support::zookeeper() else { return };
//!     let chroot = corral_test_support::unique_chroot("lock");
//!     // Create `chroot` (its parent, `/corral-test`, already exists), then connect the client
//!     // under test to `format!("{}{chroot}", zk.connect_string())`.
//!     # let _ = (zk, chroot);
//! }
//! ```
//!
//! When no server is available the `let … else { return }` makes the test pass without doing
//! anything; one `skipping: <reason>` line per test binary on stderr says why. With `CI=true`
//! (or `CI=1`) an unavailable server is a failure instead: [`zookeeper()`] panics with the reason,
//! so CI cannot go green by skipping.
//!
//! # Environment
//!
//! | Variable | Effect |
//! |---|---|
//! | `CORRAL_TEST_ZK=host:port[,host:port…]` | Use this server or ensemble; start nothing. |
//! | `CORRAL_TEST_ZK_TICK_TIME=<ms>` | `tickTime` of the server started here (default 2000, so session timeouts are clamped to 4–40 s). |
//! | `JAVA_HOME` | The JVM to use (`$JAVA_HOME/bin/java`); otherwise `java` from `PATH`. |
//! | `CI=true` | Panic instead of skipping when no server is available. |
//!
//! # The server started here
//!
//! Standalone ZooKeeper on `127.0.0.1:<free port>` with `-Xmx512m`,
//! `-Dzookeeper.extendedTypesEnabled=true` (TTL nodes), `4lw.commands.whitelist=*`,
//! `admin.enableServer=false` and `maxClientCnxns=0`, its data in a fresh
//! `corral-zookeeper-<pid>-<n>` directory under [`std::env::temp_dir`]. Its log is the
//! `zookeeper.log` file in that directory. The JVM and the directory go away when the test
//! process exits, however it exits (see the `local` module). It needs Linux, `sh`, a JRE and
//! Debian's `zookeeper` package (`apt-get install zookeeper libslf4j-java`).
//!
//! # Layout
//!
//! `local` the standalone server above (with `guard`, which ties a child program's life to the
//! test process's, and `ports`); [`ensemble`] replicated ensembles (`member.rs`: one member's
//! files and JVM), [`peer_links`] the proxies between their members; [`fault_proxy`] the fault
//! proxy (`frames.rs` reads requests for its holds, `pump.rs` copies the bytes); `secured` (TLS
//! and SASL) and `reconfig` (reconfigurable) ZooKeepers, [`kerberos`] a KDC; [`python`] the kazoo
//! peer; `wire` just enough protocol to probe a server; [`env`] (feature `env`) the test
//! environments of the client and recipe suites.

pub mod ensemble;
#[cfg(feature = "env")]
pub mod env;
pub mod fault_proxy;
mod guard;
pub mod java;
pub mod kerberos;
mod local;
pub mod peer_links;
mod ports;
pub mod python;
mod reconfig;
mod secured;
mod wire;

use std::env::VarError;
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Once, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::local::LocalServer;
pub use crate::reconfig::{ReconfigurableZookeeper, reconfigurable_zookeeper};
pub use crate::secured::{SecuredConfig, SecuredZookeeper, ZkTls, secured_zookeeper};

pub use crate::ensemble::{Ensemble, EnsembleBuilder, MemberId, Mode};
pub use crate::fault_proxy::{Fault, FaultProxy, FirstMessage};
pub use crate::kerberos::{Kdc, kdc};
pub use crate::peer_links::PeerLink;

/// The environment variable naming an external server or ensemble: `host:port[,host:port…]`.
pub const ZK_ENV: &str = "CORRAL_TEST_ZK";

/// The environment variable overriding the `tickTime` (in ms) of the server started by this crate.
pub const TICK_TIME_ENV: &str = "CORRAL_TEST_ZK_TICK_TIME";

/// The node under which [`unique_chroot`] places every test's chroot. [`zookeeper()`] creates it.
pub const CHROOT_BASE: &str = "/corral-test";

/// The `tickTime` of the server started by this crate unless [`TICK_TIME_ENV`] says otherwise.
pub const DEFAULT_TICK_TIME_MS: u32 = 2000;

/// Timeout for one four-letter word or one probe request.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A real ZooKeeper server (or ensemble) that tests can connect to.
///
/// Obtained from [`zookeeper()`]; it lives as long as the test process.
#[derive(Debug)]
pub struct ZkServer {
    /// `host:port[,host:port…]`, without a chroot.
    connect: String,
    /// The address of the first host.
    addr: SocketAddr,
    /// The process behind the server when this crate started it; kept alive for the whole test run.
    _local: Option<LocalServer>,
}

impl ZkServer {
    /// The connect string, `host:port[,host:port…]`, without a chroot.
    ///
    /// Append a chroot from [`unique_chroot`] to confine a client to its test's subtree.
    pub fn connect_string(&self) -> String {
        self.connect.clone()
    }

    /// The socket address of the first host in the connect string.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends a four-letter word (`ruok`, `srvr`, `stat`, `mntr`, `cons`, `dump`, `wchs`, …) to the
    /// first host and returns its plain-text answer.
    ///
    /// The server started by this crate allows every word; an external one may answer
    /// `"<word> is not executed because it is not in the whitelist."`.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] if `word` is not four lower-case ASCII letters; otherwise
    /// the error of connecting, writing or reading (each bounded by a 5 s timeout).
    pub fn four_letter(&self, word: &str) -> io::Result<String> {
        wire::four_letter(self.addr(), word, IO_TIMEOUT)
    }

    /// Finds or starts the server the environment asks for (see the crate docs).
    fn from_env() -> Result<Self, String> {
        let server = match std::env::var(ZK_ENV) {
            Ok(spec) if !spec.trim().is_empty() => Self::external(&spec)?,
            Ok(_) | Err(VarError::NotPresent) => {
                let local = local::start(tick_time_from_env()?)?;
                let addr = local.addr();
                Self { connect: addr.to_string(), addr, _local: Some(local) }
            }
            Err(VarError::NotUnicode(_)) => return Err(format!("{ZK_ENV} is not valid UTF-8")),
        };
        match wire::create_persistent(server.addr(), CHROOT_BASE, IO_TIMEOUT) {
            Ok(0 | wire::NODE_EXISTS) => Ok(server),
            Ok(code) => Err(format!("creating {CHROOT_BASE} on {} failed with error code {code}", server.connect)),
            Err(err) => Err(format!("creating {CHROOT_BASE} on {} failed: {err}", server.connect)),
        }
    }

    /// An external server from a `host:port[,host:port…]` list; waits until its first host serves.
    fn external(spec: &str) -> Result<Self, String> {
        let hosts = parse_hosts(spec).map_err(|err| format!("{ZK_ENV}={spec:?}: {err}"))?;
        // Every host must resolve; the four-letter words and probes go to the first one.
        let mut first = None;
        for host in &hosts {
            let addr = host
                .to_socket_addrs()
                .map_err(|err| format!("{ZK_ENV}: cannot resolve {host}: {err}"))?
                .next()
                .ok_or_else(|| format!("{ZK_ENV}: {host} resolves to no address"))?;
            first.get_or_insert(addr);
        }
        let addr = first.ok_or_else(|| format!("{ZK_ENV} names no host"))?;
        let deadline = Instant::now() + local::START_TIMEOUT;
        while !local::is_serving(addr) {
            if Instant::now() >= deadline {
                return Err(format!(
                    "{ZK_ENV}: {addr} did not report a `Mode:` in `srvr` within {} s",
                    local::START_TIMEOUT.as_secs()
                ));
            }
            thread::sleep(Duration::from_millis(200));
        }
        Ok(Self { connect: hosts.join(","), addr, _local: None })
    }
}

/// Returns the ZooKeeper server shared by all tests in this test binary, or `None` if there is none.
///
/// The first call finds the server: the one named by `CORRAL_TEST_ZK`, if set, or else Debian's
/// ZooKeeper started on a free loopback port (waiting up to 30 s for it to serve). It also makes
/// sure [`CHROOT_BASE`] exists. Later calls, from any thread, return the same server at once.
///
/// Use it as `let Some(zk) = corral_test_support::zookeeper() else { return };`.
///
/// # Panics
///
/// If no server is available and the environment variable `CI` is `true` or `1`: the message
/// says why (no Java, no ZooKeeper jar, the server did not start, `CORRAL_TEST_ZK` unreachable…).
/// Without `CI`, the reason is printed once to stderr as `skipping: <reason>` and `None` is returned.
pub fn zookeeper() -> Option<&'static ZkServer> {
    static SERVER: OnceLock<Result<ZkServer, String>> = OnceLock::new();
    static SKIP_NOTICE: Once = Once::new();

    match SERVER.get_or_init(ZkServer::from_env) {
        Ok(server) => Some(server),
        Err(reason) => {
            if running_in_ci() {
                panic!("CI is set, so tests may not skip, but there is no ZooKeeper to test against: {reason}");
            }
            SKIP_NOTICE.call_once(|| skip_notice(&format!("tests that need a real ZooKeeper: {reason}")));
            None
        }
    }
}

/// Returns a fresh chroot path for one test, `/corral-test/<prefix>-<pid>-<run>-<n>`.
///
/// `<pid>` is this process's id, `<run>` the process's first call time (seconds since the epoch, in
/// hex, so that a reused pid on a long-lived external server does not collide with an old run) and
/// `<n>` a per-process counter. Characters of `prefix` other than ASCII letters, digits, `-`, `_`
/// and `.` become `_`; an empty prefix becomes `test`. The node itself does not exist yet: the test
/// creates it (its parent [`CHROOT_BASE`] exists once [`zookeeper()`] has returned a server).
pub fn unique_chroot(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static RUN: OnceLock<u64> = OnceLock::new();

    let run = RUN.get_or_init(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let prefix: String = if prefix.is_empty() {
        "test".to_owned()
    } else {
        prefix
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
            .collect()
    };
    format!("{CHROOT_BASE}/{prefix}-{}-{run:x}-{n}", std::process::id())
}

/// Prints `skipping: <reason>` on stderr, visibly: straight to the stderr handle, because libtest
/// captures `eprintln!` of passing tests, and in one write, so it does not interleave with libtest's output.
/// Cargo's target directory: `CARGO_TARGET_DIR` when set, else the workspace's `target/`.
fn target_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return dir.into();
    }
    // test-support/ is one level below the workspace root.
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map_or_else(|| "target".into(), |root| root.join("target"))
}

fn skip_notice(reason: &str) {
    let _ = io::stderr().lock().write_all(format!("skipping: {reason}\n").as_bytes());
}

fn running_in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true") || value == "1")
}

fn tick_time_from_env() -> Result<u32, String> {
    match std::env::var(TICK_TIME_ENV) {
        Ok(value) => parse_tick_time(&value).map_err(|err| format!("{TICK_TIME_ENV}={value:?}: {err}")),
        Err(VarError::NotPresent) => Ok(DEFAULT_TICK_TIME_MS),
        Err(VarError::NotUnicode(_)) => Err(format!("{TICK_TIME_ENV} is not valid UTF-8")),
    }
}

fn parse_tick_time(value: &str) -> Result<u32, String> {
    match value.trim().parse::<u32>() {
        Ok(0) | Err(_) => Err("expected a positive number of milliseconds".to_owned()),
        Ok(ms) => Ok(ms),
    }
}

/// Splits `host:port[,host:port…]` into its hosts, checking each has a port. IPv6 hosts are written `[::1]:2181`.
fn parse_hosts(spec: &str) -> Result<Vec<String>, String> {
    if spec.contains('/') {
        return Err("a chroot is not allowed here (tests pick their own with unique_chroot)".to_owned());
    }
    spec.split(',')
        .map(str::trim)
        .map(|host| match host.rsplit_once(':') {
            Some((name, port)) if !name.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0) => Ok(host.to_owned()),
            _ => Err(format!("{host:?} is not host:port")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, TcpListener, TcpStream};
    use std::path::Path;

    use super::*;

    /// Like `zookeeper()`'s rule for a server this test starts itself: panic in CI, skip otherwise.
    fn start_or_skip(started: Result<LocalServer, String>) -> Option<LocalServer> {
        match started {
            Ok(server) => Some(server),
            Err(reason) if running_in_ci() => panic!("CI is set but ZooKeeper did not start: {reason}"),
            Err(reason) => {
                skip_notice(&reason);
                None
            }
        }
    }

    #[test]
    fn shared_server_answers_four_letter_words() {
        let Some(zk) = zookeeper() else { return };
        assert_eq!(zk.four_letter("ruok").unwrap(), "imok");
        let srvr = zk.four_letter("srvr").unwrap();
        assert!(srvr.lines().any(|line| line.starts_with("Mode:")), "{srvr}");
        assert!(srvr.starts_with("Zookeeper version: "), "{srvr}");
        assert!(zk.four_letter("RUOK").is_err());
        let first_host = zk.connect_string().split(',').next().unwrap().to_owned();
        assert!(first_host.to_socket_addrs().unwrap().any(|addr| addr == zk.addr()), "{first_host}");
    }

    #[test]
    fn shared_server_is_the_same_for_every_caller() {
        let Some(first) = zookeeper() else { return };
        let others: Vec<_> =
            (0..4).map(|_| thread::spawn(|| zookeeper().map(|zk| zk as *const ZkServer as usize))).collect();
        for other in others {
            assert_eq!(other.join().unwrap(), Some(first as *const ZkServer as usize));
        }
    }

    #[test]
    fn shared_server_has_the_chroot_base() {
        let Some(zk) = zookeeper() else { return };
        // `zookeeper()` created it, so creating it again must say NodeExists.
        assert_eq!(wire::create_persistent(zk.addr(), CHROOT_BASE, IO_TIMEOUT).unwrap(), wire::NODE_EXISTS);
        let chroot = unique_chroot("chroot-base");
        assert_eq!(wire::create_persistent(zk.addr(), &chroot, IO_TIMEOUT).unwrap(), 0);
    }

    #[test]
    fn private_server_survives_a_taken_port_and_dies_with_its_owner() {
        // The first port offered is held by us, so ZooKeeper's bind fails and another port is tried.
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let taken_port = taken.local_addr().unwrap().port();
        let mut offered = Vec::new();
        let started = local::start_with_ports(DEFAULT_TICK_TIME_MS, || {
            let port = if offered.is_empty() {
                taken_port
            } else {
                TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port()
            };
            offered.push(port);
            Ok(port)
        });
        let Some(server) = start_or_skip(started) else { return };
        // The taken port was refused; the server runs on the last port offered. (More than two
        // may be offered when another process grabs a freed port first, as a busy machine does.)
        assert!(offered.len() >= 2 && offered[0] == taken_port, "{offered:?}");
        assert_eq!(Some(&server.addr().port()), offered.last());
        assert!(local::is_serving(server.addr()));

        let (addr, dir, pid) = (server.addr(), server.dir().to_owned(), server.java_pid());
        assert!(dir.join("data").is_dir());
        // Dropping the server closes the wrapper's stdin, exactly as the exit of the test process does.
        drop(server);
        assert!(!dir.exists(), "{} was not removed", dir.display());
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "java (pid {pid}) is still there");
        assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn unique_chroots_differ_and_are_valid_paths() {
        let a = unique_chroot("lock");
        let b = unique_chroot("lock");
        assert_ne!(a, b);
        let pid = std::process::id();
        assert!(a.starts_with(&format!("/corral-test/lock-{pid}-")), "{a}");
        assert!(unique_chroot("").starts_with(&format!("/corral-test/test-{pid}-")));
        let odd = unique_chroot("a/b c:é");
        assert!(odd.starts_with(&format!("/corral-test/a_b_c__-{pid}-")), "{odd}");
        assert_eq!(odd.matches('/').count(), 2, "{odd}");
    }

    #[test]
    fn hosts_are_parsed() {
        assert_eq!(parse_hosts("127.0.0.1:2181").unwrap(), ["127.0.0.1:2181"]);
        assert_eq!(parse_hosts("a:1, b:2,[::1]:3").unwrap(), ["a:1", "b:2", "[::1]:3"]);
        for bad in ["", "a", "a:", ":1", "a:0", "a:65536", "a:1,", "a:1/chroot"] {
            assert!(parse_hosts(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tick_time_is_parsed() {
        assert_eq!(parse_tick_time("500"), Ok(500));
        assert_eq!(parse_tick_time(" 2000 "), Ok(2000));
        for bad in ["", "0", "-1", "2s"] {
            assert!(parse_tick_time(bad).is_err(), "{bad:?}");
        }
    }
}
