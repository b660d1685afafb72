//! What every ensemble test does: start the ensemble, prepare the workload's nodes, start
//! contenders, wait (bounded) for progress, and check the write log at the end.

#![allow(dead_code, unreachable_pub)]

pub mod java;

use std::path::PathBuf;
use std::time::Duration;

use corral_ensemble_tests::SESSION_TIMEOUT;
use corral_ensemble_tests::fenced::{self, COUNTER, Entry, LOCK};
use corral_ensemble_tests::history::History;
use corral_ensemble_tests::process::Contender;
use corral_ensemble_tests::report::{FaultsReport, Tally};
use corral_recipes::{CoreError as Error, CreateMode, ErrorCode, Framework, FrameworkBuilder};
use corral_test_support::{Ensemble, EnsembleBuilder, Fault, FaultProxy, MemberId};
use tokio::time::Instant;

/// The bound on waiting for the ensemble to (re)form.
pub const QUORUM_WAIT: Duration = Duration::from_secs(60);
/// The bound on waiting for the workload to make progress after a fault: a new session, a new
/// holder, and some slack for a loaded 2-core machine.
pub const PROGRESS_WAIT: Duration = Duration::from_secs(45);
/// The workload's chroot.
pub const ROOT: &str = "/workload";

/// Runs blocking harness work (ensemble starts, kills, waits) off the async workers' backs.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Waits until at least `n` connections are open through `proxy`.
pub async fn connections(proxy: &FaultProxy, n: usize, what: &str) {
    let started = Instant::now();
    while proxy.open_connections() < n {
        assert!(
            started.elapsed() < PROGRESS_WAIT,
            "{what}: {} connections through {} after {PROGRESS_WAIT:?}, wanted {n}",
            proxy.open_connections(),
            proxy.addr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Applies `faults` (member id → fault); members not named pass.
pub fn apply(proxies: &[(MemberId, FaultProxy)], faults: &[(MemberId, Fault)]) {
    for (id, proxy) in proxies {
        let fault = faults.iter().find(|(f, _)| f == id).map_or(Fault::Pass, |(_, fault)| *fault);
        if proxy.fault() != fault {
            proxy.set(fault);
        }
    }
}

/// The contender that holds the lock now: its last `acquired` line is later than its last
/// `released` line.
pub async fn holding(contenders: &[Contender], bound: Duration) -> usize {
    let started = Instant::now();
    loop {
        for (i, c) in contenders.iter().enumerate() {
            let last = c.seen().into_iter().rev().find(|l| l.starts_with("acquired") || l.starts_with("released"));
            if last.is_some_and(|l| l.starts_with("acquired")) {
                return i;
            }
        }
        assert!(started.elapsed() < bound, "no contender held the lock within {bound:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Asserts that the contenders' nodes in the lock's line belong to `scheme:id` alone, world
/// read only. Each node lives for one hold: one that went away meanwhile is passed over, and
/// the check ends once one was seen (within [`PROGRESS_WAIT`]).
pub async fn assert_lock_nodes_owned(client: &corral_recipes::Client, scheme: &str, id: &str) {
    let deadline = Instant::now() + PROGRESS_WAIT;
    loop {
        for child in client.get_children(LOCK).await.expect("the lock's line") {
            let Ok((acl, _)) = client.get_acl(&format!("{LOCK}/{child}")).await else { continue };
            assert_owned(&format!("{LOCK}/{child}"), &acl, scheme, id);
            return;
        }
        assert!(Instant::now() < deadline, "no lock node was seen within {PROGRESS_WAIT:?}");
    }
}

/// Asserts that `acl` (of `path`) gives `scheme:id` a say and anyone else reading at most.
pub fn assert_owned(path: &str, acl: &[corral_recipes::Acl], scheme: &str, id: &str) {
    assert!(
        acl.iter().all(|a| a.id != corral_recipes::Id::anyone() || a.perms == corral_recipes::Perms::READ)
            && acl.iter().any(|a| a.id.scheme == scheme && a.id.id == id),
        "{path}: {acl:?}"
    );
}

/// A started ensemble with the workload's nodes, and a framework of the test's own.
pub struct Workload {
    pub zk: Ensemble,
    pub fw: Framework,
    pub logs: PathBuf,
    pub report: Report,
}

impl Workload {
    /// Starts a 3-member ensemble and prepares [`ROOT`]; `None` when the test must skip.
    pub async fn start(name: &str) -> Option<Self> {
        Self::start_with(name, |builder| builder).await
    }

    /// Like [`Workload::start`], with the ensemble built by `configure`.
    pub async fn start_with(name: &str, configure: impl FnOnce(EnsembleBuilder) -> EnsembleBuilder) -> Option<Self> {
        Self::start_secured(name, configure, |builder| builder).await
    }

    /// Like [`Workload::start_with`], with the test's own frameworks (the one that makes
    /// [`ROOT`], and [`Workload::fw`]) built by `login` too: a login and an ACL provider, say.
    pub async fn start_secured(
        name: &str,
        configure: impl FnOnce(EnsembleBuilder) -> EnsembleBuilder,
        login: impl Fn(FrameworkBuilder) -> FrameworkBuilder,
    ) -> Option<Self> {
        let zk = blocking(|| configure(Ensemble::builder()).start_or_skip())?;
        let logs = zk.dir().join("contenders");
        std::fs::create_dir_all(&logs).expect("contenders' log dir");
        let root = login(Framework::builder(zk.connect_string())).start().expect("framework");
        root.wait_until_connected(QUORUM_WAIT).await.expect("the test's client connects");
        root.create(ROOT, "", CreateMode::Persistent).await.expect("create the workload root");
        root.close().await;
        let fw = login(Framework::builder(format!("{}{ROOT}", zk.connect_string())))
            .session_timeout(Duration::from_secs(20))
            .start()
            .expect("framework");
        fenced::prepare(&fw).await.expect("create the counter and the log");
        match fw.create(LOCK, "", CreateMode::Persistent).await {
            Ok(_) | Err(Error::Server { code: ErrorCode::NodeExists, .. }) => {}
            Err(err) => panic!("create {LOCK}: {err}"),
        }
        Some(Self { zk, fw, logs, report: Report::new(name) })
    }

    /// Kills the ensemble's leader: a new one is elected and the workload makes three more
    /// writes (the recovery, reported); the old leader is restarted and serves again.
    pub async fn leader_kill(&mut self) {
        let leader = blocking(|| self.zk.kill_leader()).expect("a leader to kill");
        self.report.count("leader kills");
        let started = Instant::now();
        blocking(|| self.zk.wait_for_quorum(QUORUM_WAIT)).expect("a new leader");
        self.progress(3, PROGRESS_WAIT, "a leader kill").await;
        self.report.recovered("a leader kill", started.elapsed());
        blocking(|| self.zk.restart(leader)).expect("restart the old leader");
        blocking(|| self.zk.wait_serving(leader, QUORUM_WAIT)).expect("the old leader serves again");
        self.report.count("member restarts");
    }

    /// Kills a follower: the workload makes three more writes (reported); the follower is
    /// restarted and the ensemble is whole again.
    pub async fn follower_kill(&mut self) {
        let follower = self.zk.ids().into_iter().find(|&id| Some(id) != self.zk.leader()).expect("a follower");
        blocking(|| self.zk.kill(follower));
        self.report.count("follower kills");
        let started = Instant::now();
        self.progress(3, PROGRESS_WAIT, "a follower kill").await;
        self.report.recovered("a follower kill", started.elapsed());
        blocking(|| self.zk.restart(follower)).expect("restart the follower");
        blocking(|| self.zk.wait_for_quorum(QUORUM_WAIT)).expect("the ensemble whole again");
        self.report.count("member restarts");
    }

    /// The connect string a contender gets for direct connections to every member.
    pub fn connect(&self) -> String {
        format!("{}{ROOT}", self.zk.connect_string())
    }

    /// The same through every member's TLS port, when the ensemble has them.
    pub fn secure_connect(&self) -> Option<String> {
        self.zk.secure_connect_string().map(|hosts| format!("{hosts}{ROOT}"))
    }

    /// One [`FaultProxy`] per member, and the connect string that reaches the ensemble only
    /// through them (with [`ROOT`]).
    pub fn client_proxies(&self) -> (Vec<(MemberId, FaultProxy)>, String) {
        let proxies: Vec<(MemberId, FaultProxy)> = self
            .zk
            .ids()
            .into_iter()
            .map(|id| (id, FaultProxy::start(self.zk.client_addr(id)).expect("start a proxy")))
            .collect();
        let hosts: Vec<String> = proxies.iter().map(|(_, p)| p.addr().to_string()).collect();
        let connect = format!("{}{ROOT}", hosts.join(","));
        (proxies, connect)
    }

    /// Starts contender `name` in `mode` on `connect`.
    pub fn contender(&self, name: &str, mode: &str, connect: &str, extra: &[&str]) -> Contender {
        self.contender_with_env(name, mode, connect, extra, &[])
    }

    /// Like [`Workload::contender`], with `env` added to the contender's environment (a
    /// Kerberos identity, say: `KRB5_CONFIG` and the rest are read when the process starts).
    pub fn contender_with_env(
        &self,
        name: &str,
        mode: &str,
        connect: &str,
        extra: &[&str],
        env: &[(std::ffi::OsString, std::ffi::OsString)],
    ) -> Contender {
        let mut args = vec![
            format!("mode={mode}"),
            format!("connect={connect}"),
            format!("session_ms={}", SESSION_TIMEOUT.as_millis()),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_contender"));
        command.envs(env.iter().map(|(k, v)| (k, v)));
        Contender::spawn_command(command, name, &args, &self.logs)
    }

    /// Starts a kazoo contender `name` (`tests/python/kazoo_contender.py`: kazoo 2.11's own
    /// `Lock` on the same lock, the same fenced writes), or `None` when kazoo's venv cannot be
    /// made here (a `skipping:` line; a failure under `CI=true`).
    pub fn kazoo_contender(&self, name: &str, connect: &str, extra: &[&str]) -> Option<Contender> {
        let python = corral_test_support::python::kazoo_python()?;
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/kazoo_contender.py");
        let mut command = std::process::Command::new(python);
        command.arg("-u").arg(script);
        let mut args = vec![format!("connect={connect}"), format!("session_ms={}", SESSION_TIMEOUT.as_millis())];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        Some(Contender::spawn_command(command, name, &args, &self.logs))
    }

    /// Starts a Curator contender `name` (Curator's `InterProcessMutex` on the same lock, the
    /// same fenced writes), or `None` when Java cannot run here (see [`java::curator`]).
    pub fn curator_contender(&self, name: &str, connect: &str, extra: &[&str]) -> Option<Contender> {
        let java = java::curator()?;
        let mut args = vec![format!("connect={connect}"), format!("session_ms={}", SESSION_TIMEOUT.as_millis())];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        Some(Contender::spawn_command(java.command(), name, &args, &self.logs))
    }

    /// The counter's value now (retrying through faults).
    pub async fn counter(&self) -> u64 {
        let read = self.fw.with_retry(|client| async move { client.get_data(COUNTER).await }).await;
        read.ok().and_then(|(data, _)| Entry::parse(&data)).map_or(0, |e| e.value)
    }

    /// Waits until the counter has gone `more` past its value now; returns how long it took.
    ///
    /// # Panics
    ///
    /// After `bound`, saying `what` the workload was recovering from.
    pub async fn progress(&self, more: u64, bound: Duration, what: &str) -> Duration {
        let started = Instant::now();
        let from = self.counter().await;
        loop {
            let now = self.counter().await;
            if now >= from + more {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < bound,
                "no progress after {what}: the counter went from {from} to {now} in {bound:?} (ensemble in {})",
                self.zk.dir().display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until no node under [`LOCK`] belongs to `session` any more (its session expired,
    /// or it holds and waits for nothing); `Err` with the owners seen after `bound`.
    pub async fn session_gone(&self, session: i64, bound: Duration) -> Result<Duration, String> {
        let started = Instant::now();
        loop {
            let mut owners = Vec::new();
            if let Ok(children) = self.fw.client().get_children(LOCK).await {
                for child in children {
                    if let Ok(Some(stat)) = self.fw.client().exists(&format!("{LOCK}/{child}")).await {
                        owners.push(stat.ephemeral_owner);
                    }
                }
                if !owners.contains(&session) {
                    return Ok(started.elapsed());
                }
            }
            if started.elapsed() >= bound {
                return Err(format!(
                    "session {session:#x} still owns a node under {LOCK} after {bound:?}: {owners:x?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The session that owns the first node of the lock or election at [`LOCK`] (Curator's sort
    /// rule: by the sequence number at the end of the name), if any: the holder or the leader.
    pub async fn lock_owner(&self) -> Option<i64> {
        let client = self.fw.client();
        let mut children = client.get_children(LOCK).await.ok()?;
        // Lock (`…lock-<seq>`) and latch (`…latch-<seq>`) nodes end with a 10-digit sequence.
        children.sort_by_key(|name| name[name.len().saturating_sub(10)..].to_owned());
        let first = children.first()?;
        client.exists(&format!("{LOCK}/{first}")).await.ok()?.map(|stat| stat.ephemeral_owner)
    }

    /// Stops every contender (bounded), reads the history, prints the report, and asserts 0
    /// violations.
    pub async fn finish(mut self, contenders: &mut [Contender]) -> History {
        for contender in contenders.iter_mut() {
            let exited = contender.stop(Duration::from_secs(20));
            assert!(exited, "{} did not stop within 20 s\n{}", contender.name(), contender.report());
        }
        let history = History::read(&self.fw).await.expect("read the write log");
        let violations: Vec<String> = contenders
            .iter()
            .flat_map(|c| {
                c.seen().into_iter().filter(|l| l.starts_with("violation")).map(|l| format!("{}: {l}", c.name()))
            })
            .collect();
        self.report.set("acquisitions / terms", history.terms() as u64);
        self.report.set("fenced writes", history.entries.len() as u64);
        let stale: usize = contenders.iter().map(|c| c.count("write rejected")).sum();
        self.report.set("stale writes rejected", stale as u64);
        let unknown: usize = contenders.iter().map(|c| c.count("write unknown")).sum();
        self.report.set("writes of unknown outcome", unknown as u64);
        self.report.set("violations", (history.violations.len() + violations.len()) as u64);
        self.report.print(&history);
        assert!(
            history.violations.is_empty() && violations.is_empty(),
            "violations in the history: {:#?}\nreported by contenders: {violations:#?}",
            history.violations
        );
        self.fw.close().await;
        history
    }
}

/// The table a run prints: the faults report of [`corral_ensemble_tests::report`] (faults by
/// kind, workload counts, recoveries), shared with the simulation.
pub struct Report(FaultsReport);

impl Report {
    fn new(name: &str) -> Self {
        Self(FaultsReport::new(format!("ensemble, {name}")))
    }

    /// Counts one fault of kind `what`.
    pub fn count(&mut self, what: &str) {
        self.0.fault(what);
    }

    /// Sets the value of `what`.
    pub fn set(&mut self, what: &str, value: u64) {
        self.0.set(what, value);
    }

    /// Records one time of `measure` for `side`, printed side by side with the other sides'.
    pub fn compare(&mut self, measure: &str, side: &str, took: Duration) {
        self.0.compare(measure, side, took);
    }

    /// The table so far.
    pub fn table(&self) -> &FaultsReport {
        &self.0
    }

    /// Records how long the workload took to make progress after a fault of kind `what`.
    pub fn recovered(&mut self, what: &str, took: Duration) {
        self.0.recovered(what, took);
    }

    fn print(&self, history: &History) {
        let mut tally = Tally::default();
        tally.record(self.0.violations() == 0);
        // Captured by libtest: shown with --nocapture, and with the output of a failed test.
        eprint!("{}", self.0);
        eprintln!("  writes by contender: {:?}\n{tally}", history.writes_by());
    }
}
