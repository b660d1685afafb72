//! A real, replicated ZooKeeper ensemble on loopback: Debian's ZooKeeper 3.8 quorum peers,
//! started, killed and restarted by the test.
//!
//! Each member is a `QuorumPeerMain` JVM with its own directory (`conf/zoo.cfg`, `data/myid`,
//! `zookeeper.log`) under one `corral-ensemble-<pid>-<n>` directory in [`std::env::temp_dir`],
//! listening on three free loopback ports (client, quorum, election). As with the standalone
//! server (see the `local` module), each JVM is started by a small `sh` wrapper holding a pipe
//! from the test process as its stdin: when the test process goes away, however it goes, every
//! member is killed by its PID. Dropping the [`Ensemble`] does the same at once.
//!
//! Every member's log is kept on disk, and its path printed on stderr, when the ensemble is
//! dropped while the thread is panicking (a failed test), or always with
//! `CORRAL_ENSEMBLE_KEEP=1`; otherwise the directory is removed.
//!
//! The JVMs are kept light for small machines: `-Xmx128m`, the serial collector, C1 only.
//!
//! `mod.rs` holds the public [`Ensemble`], its builder and what it tells about its members;
//! `member.rs` one member on disk and as a process (configuration, the JVM's wrapper, `/proc`).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use std::{env, fs, thread};

use crate::fault_proxy::Fault;
use crate::local::{INSTALL_HINT, ZOOKEEPER_JAR, find_java};
use crate::peer_links::{PeerLink, PeerLinks};
use crate::ports::free_port;
use crate::wire;

use self::member::{Member, WRAPPER, Wrapper, append_line, fresh_dir, prepare, signal, spawn_cleanup};

mod member;

/// Set to `1` to keep every ensemble's directory (configuration, data, logs) after the test.
pub const KEEP_ENV: &str = "CORRAL_ENSEMBLE_KEEP";

const LOG_FILE: &str = "zookeeper.log";
const LOG_TAIL_LINES: usize = 30;
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Whole-ensemble start attempts (a port chosen free may be taken by another process before
/// ZooKeeper binds it; then every port is chosen again).
const START_ATTEMPTS: usize = 3;

/// How long a member must look gone before [`Ensemble::wait_serving`] says it is not running.
const NOT_RUNNING_GRACE: Duration = Duration::from_secs(3);

/// A member's id: its `myid`, 1 to the ensemble's size.
pub type MemberId = u32;

/// What a member says it is in `srvr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// It leads the quorum.
    Leader,
    /// It follows the leader.
    Follower,
    /// A non-voting observer.
    Observer,
    /// A standalone server (not part of an ensemble).
    Standalone,
    /// A read-only server (it lost its quorum and serves reads only).
    ReadOnly,
}

impl Mode {
    /// Parses the `Mode:` line of a `srvr` answer; `None` without one (not serving).
    pub fn from_srvr(srvr: &str) -> Option<Self> {
        let mode = srvr.lines().find_map(|line| line.strip_prefix("Mode:"))?.trim();
        Some(match mode {
            "leader" => Self::Leader,
            "follower" => Self::Follower,
            "observer" => Self::Observer,
            "standalone" => Self::Standalone,
            "read-only" => Self::ReadOnly,
            _ => return None,
        })
    }
}

/// How to build an [`Ensemble`]; from [`Ensemble::builder`].
#[derive(Debug, Clone)]
pub struct EnsembleBuilder {
    size: u32,
    tick_time: Duration,
    max_session_timeout: Option<Duration>,
    heap_mb: u32,
    start_timeout: Duration,
    peer_proxies: bool,
    tls: Option<crate::ZkTls>,
    jaas: Option<PathBuf>,
    krb5_conf: Option<PathBuf>,
    extra_cfg: Vec<String>,
}

impl Default for EnsembleBuilder {
    fn default() -> Self {
        Self {
            size: 3,
            tick_time: Duration::from_millis(300),
            max_session_timeout: None,
            heap_mb: 128,
            start_timeout: Duration::from_secs(90),
            peer_proxies: false,
            tls: None,
            jaas: None,
            krb5_conf: None,
            extra_cfg: Vec::new(),
        }
    }
}

impl EnsembleBuilder {
    /// The number of members (default 3; an odd number of at least 3 makes a useful quorum).
    pub fn size(mut self, size: u32) -> Self {
        self.size = size.max(1);
        self
    }

    /// ZooKeeper's `tickTime` (default 300 ms). Sessions are clamped to 2–20 ticks unless
    /// [`EnsembleBuilder::max_session_timeout`] raises the upper bound; `initLimit` is 20 ticks
    /// and `syncLimit` 10.
    pub fn tick_time(mut self, tick_time: Duration) -> Self {
        self.tick_time = tick_time.max(Duration::from_millis(10));
        self
    }

    /// `maxSessionTimeout` (default 20 ticks).
    pub fn max_session_timeout(mut self, timeout: Duration) -> Self {
        self.max_session_timeout = Some(timeout);
        self
    }

    /// The heap of each member's JVM in MiB (default 128).
    pub fn heap_mb(mut self, heap_mb: u32) -> Self {
        self.heap_mb = heap_mb.max(32);
        self
    }

    /// How long [`EnsembleBuilder::start`] waits for every member to serve (default 90 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Routes every connection between members through a [`FaultProxy`](crate::FaultProxy) per
    /// link (default off), so that [`Ensemble::isolate`] and [`Ensemble::peer_link`] can cut
    /// members off from their peers.
    pub fn peer_proxies(mut self, on: bool) -> Self {
        self.peer_proxies = on;
        self
    }

    /// Gives every member a Netty `secureClientPort` beside its plain one, with these TLS
    /// settings (the same certificate for all: name `127.0.0.1` in it). Clients reach them
    /// through [`Ensemble::secure_connect_string`]; the harness keeps using the plain ports.
    pub fn tls(mut self, tls: crate::ZkTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// SASL on every member from this JAAS file (its `Server` section: DIGEST-MD5 users, or
    /// Kerberos), with ZooKeeper's `SASLAuthenticationProvider` registered.
    pub fn jaas(mut self, jaas: impl Into<PathBuf>) -> Self {
        self.jaas = Some(jaas.into());
        self
    }

    /// The Kerberos configuration every member's JVM uses (`-Djava.security.krb5.conf`), for a
    /// JAAS `Server` section with `Krb5LoginModule` (see [`crate::Kdc::krb5_conf`] and
    /// [`crate::Kdc::jaas_server`]).
    pub fn krb5_conf(mut self, krb5_conf: impl Into<PathBuf>) -> Self {
        self.krb5_conf = Some(krb5_conf.into());
        self
    }

    /// One more `zoo.cfg` line for every member (e.g. `enforce.auth.enabled=true`).
    pub fn cfg_line(mut self, line: impl Into<String>) -> Self {
        self.extra_cfg.push(line.into());
        self
    }

    /// Starts every member and waits until each serves and one leads.
    ///
    /// # Errors
    ///
    /// No Java, no ZooKeeper jar, or the ensemble did not form within the start timeout; the
    /// message carries the end of every member's log.
    pub fn start(self) -> Result<Ensemble, String> {
        let java = find_java()?;
        if !Path::new(ZOOKEEPER_JAR).is_file() {
            return Err(format!("{ZOOKEEPER_JAR} not found (install Debian's ZooKeeper: `{INSTALL_HINT}`)"));
        }
        let mut last = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let mut ensemble = Ensemble::launch(&self, &java)?;
            match ensemble.wait_all_serving(self.start_timeout) {
                Ok(_) => return Ok(ensemble),
                Err(reason) => {
                    tracing::warn!(attempt, %reason, "ensemble did not form; trying fresh ports");
                    last = format!("{reason}\n{}", ensemble.log_tails());
                    ensemble.kill_all();
                }
            }
        }
        Err(format!("the ZooKeeper ensemble did not form in {START_ATTEMPTS} attempts; the last: {last}"))
    }

    /// [`EnsembleBuilder::start`], or `None` after a `skipping: <reason>` line on stderr when
    /// no ensemble can run here (no Java, no ZooKeeper).
    ///
    /// # Panics
    ///
    /// With `CI=true` (or `1`) instead of returning `None`, so that CI cannot go green by skipping.
    pub fn start_or_skip(self) -> Option<Ensemble> {
        match self.start() {
            Ok(ensemble) => Some(ensemble),
            Err(reason) if crate::running_in_ci() => {
                panic!("CI is set, so tests may not skip, but the ZooKeeper ensemble did not start: {reason}")
            }
            Err(reason) => {
                crate::skip_notice(&format!("tests that need a ZooKeeper ensemble: {reason}"));
                None
            }
        }
    }
}

/// A running ZooKeeper ensemble of real quorum peers on loopback.
///
/// Members are numbered from 1. Every method that waits takes a bound and says what it waited
/// for when it gives up.
///
/// # Examples
///
/// This runs as a doctest where Java and Debian's ZooKeeper are installed (three JVMs, a few
/// seconds); elsewhere [`EnsembleBuilder::start_or_skip`] skips it with a `skipping:` line, or
/// fails it under `CI=true`.
///
/// ```
/// use std::time::Duration;
/// use corral_test_support::ensemble::Ensemble;
///
/// let Some(mut zk) = Ensemble::builder().start_or_skip() else { return };
/// let leader = zk.leader().expect("a leader");
/// zk.kill(leader);
/// let new_leader = zk.wait_for_quorum(Duration::from_secs(30)).unwrap();
/// assert_ne!(new_leader, leader);
/// zk.restart(leader).unwrap();
/// zk.wait_serving(leader, Duration::from_secs(30)).unwrap();
/// ```
#[derive(Debug)]
pub struct Ensemble {
    dir: PathBuf,
    java: PathBuf,
    members: BTreeMap<MemberId, Member>,
    /// Removes `dir` when the test process exits without dropping the ensemble.
    cleanup: Option<Wrapper>,
    keep: bool,
    /// The proxies between members, with [`EnsembleBuilder::peer_proxies`].
    links: Option<PeerLinks>,
}

impl Ensemble {
    /// A builder with the defaults: 3 members, `tickTime` 300 ms, 128 MiB heaps.
    pub fn builder() -> EnsembleBuilder {
        EnsembleBuilder::default()
    }

    fn launch(builder: &EnsembleBuilder, java: &Path) -> Result<Self, String> {
        let dir = fresh_dir()?;
        let cleanup = spawn_cleanup(&dir)?;
        let mut ensemble = Self {
            dir,
            java: java.to_owned(),
            members: BTreeMap::new(),
            cleanup: Some(cleanup),
            keep: false,
            links: None,
        };
        let ids = 1..=builder.size;
        let ports: Vec<(MemberId, [u16; 3])> = ids
            .clone()
            .map(|id| Ok((id, [free_port()?, free_port()?, free_port()?])))
            .collect::<io::Result<_>>()
            .map_err(|err| format!("could not find free ports on 127.0.0.1: {err}"))?;
        if builder.peer_proxies {
            let links = PeerLinks::start(&ports).map_err(|err| format!("could not start the peer proxies: {err}"))?;
            ensemble.links = Some(links);
        }
        let direct = PeerLinks::default();
        let netty_jars = match builder.tls {
            Some(_) => crate::secured::netty_jars()?,
            None => Vec::new(),
        };
        for &(id, [client, _, _]) in &ports {
            let servers = ensemble.links.as_ref().unwrap_or(&direct).servers_for(id, &ports);
            let member_dir = ensemble.dir.join(format!("member-{id}"));
            let secure = match builder.tls {
                Some(_) => Some(free_port().map_err(|err| format!("no free port for TLS: {err}"))?),
                None => None,
            };
            let args = prepare(builder, &member_dir, id, [client, secure.unwrap_or(0)], &servers, &netty_jars)
                .map_err(|err| format!("could not write member {id}'s configuration: {err}"))?;
            let secure = secure.map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
            let client = SocketAddr::from((Ipv4Addr::LOCALHOST, client));
            ensemble.members.insert(id, Member { client, secure, dir: member_dir, process: None, args });
        }
        for id in ids {
            ensemble.restart(id)?;
        }
        Ok(ensemble)
    }

    /// The ensemble's directory (one `member-<id>` directory per member).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The member ids, 1 to the size.
    pub fn ids(&self) -> Vec<MemberId> {
        self.members.keys().copied().collect()
    }

    /// The connect string naming every member, `127.0.0.1:p1,127.0.0.1:p2,…`, without a chroot.
    pub fn connect_string(&self) -> String {
        self.members.values().map(|m| m.client.to_string()).collect::<Vec<_>>().join(",")
    }

    /// The connect string of every member's TLS port, with [`EnsembleBuilder::tls`].
    pub fn secure_connect_string(&self) -> Option<String> {
        let hosts: Option<Vec<String>> = self.members.values().map(|m| m.secure.map(|a| a.to_string())).collect();
        hosts.map(|hosts| hosts.join(","))
    }

    /// The client address of one member.
    ///
    /// # Panics
    ///
    /// If there is no member `id`.
    pub fn client_addr(&self, id: MemberId) -> SocketAddr {
        self.member(id).client
    }

    /// The path of one member's log file (every run of the member appends to it).
    pub fn log_path(&self, id: MemberId) -> PathBuf {
        self.member(id).log()
    }

    /// The PID of a member's JVM while it runs.
    pub fn pid(&self, id: MemberId) -> Option<u32> {
        let member = self.member(id);
        member.alive().then(|| member.process.as_ref().map(|p| p.java_pid)).flatten()
    }

    /// Whether a member's JVM is running (it may not be serving yet).
    pub fn is_running(&self, id: MemberId) -> bool {
        self.member(id).alive()
    }

    /// Sends a four-letter word to one member and returns its answer.
    ///
    /// # Errors
    ///
    /// The error of connecting, writing or reading, each bounded by one second.
    pub fn four_letter(&self, id: MemberId, word: &str) -> io::Result<String> {
        wire::four_letter(self.member(id).client, word, PROBE_TIMEOUT)
    }

    /// What a member says it is (`srvr`'s `Mode:`), or `None` when it does not serve.
    pub fn mode(&self, id: MemberId) -> Option<Mode> {
        self.four_letter(id, "srvr").ok().as_deref().and_then(Mode::from_srvr)
    }

    /// The member that says it leads, if one does now.
    pub fn leader(&self) -> Option<MemberId> {
        self.ids().into_iter().find(|&id| self.mode(id) == Some(Mode::Leader))
    }

    /// The running members that say they serve as leader or follower.
    pub fn serving(&self) -> Vec<MemberId> {
        self.ids().into_iter().filter(|&id| matches!(self.mode(id), Some(Mode::Leader | Mode::Follower))).collect()
    }

    /// Waits until every running member serves (as leader or follower) and exactly one leads;
    /// returns the leader.
    ///
    /// # Errors
    ///
    /// The modes seen last, when that did not happen within `timeout`.
    pub fn wait_for_quorum(&self, timeout: Duration) -> Result<MemberId, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let running: Vec<MemberId> = self.ids().into_iter().filter(|&id| self.is_running(id)).collect();
            let modes: Vec<(MemberId, Option<Mode>)> = running.iter().map(|&id| (id, self.mode(id))).collect();
            let leaders: Vec<MemberId> =
                modes.iter().filter(|(_, mode)| *mode == Some(Mode::Leader)).map(|(id, _)| *id).collect();
            let all_serving = modes.iter().all(|(_, mode)| matches!(mode, Some(Mode::Leader | Mode::Follower)));
            if all_serving && leaders.len() == 1 && running.len() * 2 > self.members.len() {
                return Ok(leaders[0]);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no quorum with one leader among running members within {timeout:?}: modes {modes:?} (dir {})",
                    self.dir.display()
                ));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until every member runs and serves, one of them as leader; fails at once when a
    /// member's JVM died (say, a port taken by another process before ZooKeeper bound it).
    fn wait_all_serving(&self, timeout: Duration) -> Result<MemberId, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(dead) = self.ids().into_iter().find(|&id| !self.is_running(id)) {
                return Err(format!("member {dead} exited during startup; {}", self.log_tail(dead)));
            }
            let modes: Vec<(MemberId, Option<Mode>)> = self.ids().into_iter().map(|id| (id, self.mode(id))).collect();
            let leaders = modes.iter().filter(|(_, mode)| *mode == Some(Mode::Leader)).count();
            if leaders == 1 && modes.iter().all(|(_, mode)| matches!(mode, Some(Mode::Leader | Mode::Follower))) {
                return self.leader().ok_or_else(|| "the leader went away at once".to_owned());
            }
            if Instant::now() >= deadline {
                return Err(format!("not every member served within {timeout:?}: modes {modes:?}"));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until one of `among` says it leads and every other member of `among` follows it
    /// (the rest of the ensemble may be dead, isolated or lagging); returns the leader.
    ///
    /// # Errors
    ///
    /// The modes seen last, when that did not happen within `timeout`.
    pub fn wait_for_leader_among(&self, among: &[MemberId], timeout: Duration) -> Result<MemberId, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let modes: Vec<(MemberId, Option<Mode>)> = among.iter().map(|&id| (id, self.mode(id))).collect();
            let leaders: Vec<MemberId> =
                modes.iter().filter(|(_, mode)| *mode == Some(Mode::Leader)).map(|(id, _)| *id).collect();
            let others_follow = modes.iter().all(|(_, mode)| matches!(mode, Some(Mode::Leader | Mode::Follower)));
            if leaders.len() == 1 && others_follow {
                return Ok(leaders[0]);
            }
            if Instant::now() >= deadline {
                return Err(format!("no leader among {among:?} within {timeout:?}: modes {modes:?}"));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until member `id` serves as leader or follower.
    ///
    /// # Errors
    ///
    /// When it did not within `timeout` (or its JVM died), with the end of its log.
    pub fn wait_serving(&self, id: MemberId, timeout: Duration) -> Result<Mode, String> {
        let deadline = Instant::now() + timeout;
        // A JVM that is being exec'd (the launcher may exec itself again) can look gone for a
        // moment in /proc: only a member that stays gone for a while counts as not running.
        let mut gone_since: Option<Instant> = None;
        loop {
            let running = self.is_running(id);
            if running {
                gone_since = None;
            } else if gone_since.is_none() {
                gone_since = Some(Instant::now());
            }
            match self.mode(id) {
                Some(mode @ (Mode::Leader | Mode::Follower)) => return Ok(mode),
                _ if gone_since.is_some_and(|t| t.elapsed() >= NOT_RUNNING_GRACE) => {
                    return Err(format!("member {id} is not running; {}", self.log_tail(id)));
                }
                _ if Instant::now() >= deadline => {
                    return Err(format!("member {id} did not serve within {timeout:?}; {}", self.log_tail(id)));
                }
                _ => thread::sleep(POLL_INTERVAL),
            }
        }
    }

    /// Kills member `id` with SIGKILL (a crash: no goodbye to its peers or clients). Does nothing
    /// if it is not running.
    pub fn kill(&mut self, id: MemberId) {
        let member = self.members.get_mut(&id).unwrap_or_else(|| panic!("no member {id}"));
        if member.alive()
            && let Some(process) = &member.process
        {
            signal(process.java_pid, "KILL");
            tracing::info!(member = id, pid = process.java_pid, "killed ZooKeeper member");
        }
        // Reaps the JVM (the wrapper waits for it) and the wrapper.
        member.process = None;
    }

    /// Kills the member that leads now and returns it.
    ///
    /// # Errors
    ///
    /// When no member says it leads.
    pub fn kill_leader(&mut self) -> Result<MemberId, String> {
        let leader = self.leader().ok_or_else(|| "no member says it leads".to_owned())?;
        self.kill(leader);
        Ok(leader)
    }

    /// Kills a majority of the members (the leader among them, if there is one) and returns them.
    pub fn kill_majority(&mut self) -> Vec<MemberId> {
        let mut victims: Vec<MemberId> = self.leader().into_iter().collect();
        for id in self.ids() {
            if victims.len() * 2 > self.members.len() {
                break;
            }
            if !victims.contains(&id) {
                victims.push(id);
            }
        }
        for &id in &victims {
            self.kill(id);
        }
        victims
    }

    /// Stops member `id` with SIGSTOP (a stalled server: its sockets stay open, nothing answers).
    pub fn pause(&self, id: MemberId) {
        if let Some(pid) = self.pid(id) {
            signal(pid, "STOP");
        }
    }

    /// Resumes a member stopped by [`Ensemble::pause`].
    pub fn resume(&self, id: MemberId) {
        if let Some(pid) = self.pid(id) {
            signal(pid, "CONT");
        }
    }

    /// Starts member `id` again (killing it first if it runs), with the same ports and data. It
    /// returns once the JVM is started; wait with [`Ensemble::wait_serving`] or
    /// [`Ensemble::wait_for_quorum`].
    ///
    /// # Errors
    ///
    /// When the wrapper could not be started.
    pub fn restart(&mut self, id: MemberId) -> Result<(), String> {
        self.kill(id);
        let java = self.java.clone();
        let member = self.members.get_mut(&id).unwrap_or_else(|| panic!("no member {id}"));
        let _ = append_line(&member.log(), "==== corral-test-support: member (re)started ====");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WRAPPER)
            .arg("corral-zk-member")
            .arg(member.cfg())
            .arg(member.log())
            .arg(&java)
            .args(&member.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| format!("could not run `sh` to start member {id}: {err}"))?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        let read = child.stdout.take().map(|out| BufReader::new(out).read_line(&mut line));
        let mut process = Wrapper { child, stdin, java_pid: 0 };
        process.java_pid = match read {
            Some(Ok(_)) => line.trim().parse().map_err(|_| format!("member {id}'s wrapper printed {line:?}"))?,
            _ => return Err(format!("member {id}'s wrapper did not report java's PID")),
        };
        tracing::info!(member = id, pid = process.java_pid, client = %member.client, "started ZooKeeper member");
        member.process = Some(process);
        Ok(())
    }

    /// The link from member `from` to member `to`, with [`EnsembleBuilder::peer_proxies`].
    pub fn peer_link(&self, from: MemberId, to: MemberId) -> Option<&PeerLink> {
        self.links.as_ref()?.get(from, to)
    }

    /// Cuts member `id` off from every peer (its links refuse connections both ways); its
    /// clients still reach it. Returns `false` without [`EnsembleBuilder::peer_proxies`].
    pub fn isolate(&self, id: MemberId) -> bool {
        self.links.as_ref().map(|links| links.set_around(id, Fault::Refuse)).is_some()
    }

    /// The pairs of members (smaller id first) that talk over a TCP connection of their own,
    /// past the peer proxies — always empty when the harness works: with
    /// [`EnsembleBuilder::peer_proxies`] every member-to-member connection goes through a
    /// [`PeerLink`], so a cut member is cut.
    pub fn direct_peer_connections(&self) -> Vec<(MemberId, MemberId)> {
        let pids: Vec<(MemberId, u32)> = self.ids().into_iter().filter_map(|id| Some((id, self.pid(id)?))).collect();
        crate::peer_links::direct_connections(&pids)
    }

    /// Puts every link between members back to [`Fault::Pass`].
    pub fn heal_peers(&self) {
        if let Some(links) = &self.links {
            links.heal();
        }
    }

    /// Keeps the ensemble's directory after drop, and prints where it is.
    pub fn keep_logs(&mut self) {
        self.keep = true;
    }

    /// The last lines of every member's log, for a failure message.
    pub fn log_tails(&self) -> String {
        self.ids().into_iter().map(|id| self.log_tail(id)).collect::<Vec<_>>().join("\n")
    }

    fn log_tail(&self, id: MemberId) -> String {
        crate::guard::log_tail(&self.member(id).log(), &format!("member {id}'s log "), LOG_TAIL_LINES)
    }

    fn member(&self, id: MemberId) -> &Member {
        self.members.get(&id).unwrap_or_else(|| panic!("no member {id}"))
    }

    fn kill_all(&mut self) {
        for id in self.ids() {
            self.kill(id);
        }
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        self.kill_all();
        let keep = self.keep || thread::panicking() || env::var(KEEP_ENV).is_ok_and(|v| v == "1");
        if keep {
            let _ = fs::write(self.dir.join("KEEP"), b"");
            let logs: Vec<String> = self.members.values().map(|m| format!("  {}", m.log().display())).collect();
            // Straight to the handle, in one write: libtest captures eprintln! of a test thread.
            let notice = format!("ZooKeeper ensemble logs kept in:\n{}\n", logs.join("\n"));
            let _ = io::stderr().lock().write_all(notice.as_bytes());
        }
        self.links = None;
        // Closing the guard's pipe removes the directory (unless KEEP exists).
        self.cleanup = None;
    }
}

impl fmt::Display for Ensemble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ensemble {} in {}", self.connect_string(), self.dir.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_parsed() {
        assert_eq!(Mode::from_srvr("Zookeeper version: 3.8.0\nMode: leader\nNode count: 5\n"), Some(Mode::Leader));
        assert_eq!(Mode::from_srvr("Mode: follower"), Some(Mode::Follower));
        assert_eq!(Mode::from_srvr("This ZooKeeper instance is not currently serving requests"), None);
    }
}
