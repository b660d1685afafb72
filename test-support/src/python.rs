//! Python peers: kazoo 2.11.0 in a virtual environment the tests make themselves, and a peer
//! process that runs kazoo recipes on command.
//!
//! The venv lives in `target/kazoo-venv` (made once, by whichever test binary gets there first:
//! it is built in a temporary directory and renamed into place, so concurrent binaries never see
//! half of one). `pip` fetches kazoo from PyPI. As with ZooKeeper, a venv that cannot be made is
//! a skip outside CI and a failure with `CI` set.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

/// The kazoo version the peers run.
pub const KAZOO_VERSION: &str = "2.11.0";

/// The Python interpreter of a venv with kazoo installed, or `None` (after one `skipping:` line
/// on stderr) when it cannot be made and `CI` is not set.
///
/// # Panics
///
/// With `CI` set, when the venv cannot be made.
pub fn kazoo_python() -> Option<&'static Path> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PYTHON.get_or_init(make_venv) {
        Ok(path) => Some(path),
        Err(reason) if crate::running_in_ci() => panic!("CI is set, but there is no kazoo to test against: {reason}"),
        Err(reason) => {
            static SAID: OnceLock<()> = OnceLock::new();
            SAID.get_or_init(|| eprintln!("skipping: {reason}"));
            None
        }
    }
}

fn make_venv() -> Result<PathBuf, String> {
    let venv = crate::target_dir().join("kazoo-venv");
    let python = venv.join("bin").join("python");
    if has_kazoo(&python) {
        return Ok(python);
    }
    let building = crate::target_dir().join(format!("kazoo-venv.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    std::fs::create_dir_all(crate::target_dir())
        .map_err(|e| format!("cannot create {}: {e}", crate::target_dir().display()))?;
    run(Command::new("python3").args(["-m", "venv"]).arg(&building), "python3 -m venv")?;
    let pip = building.join("bin").join("pip");
    run(
        Command::new(&pip).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("kazoo=={KAZOO_VERSION}"),
        ]),
        "pip install kazoo",
    )?;
    // A venv's scripts name its own directory: move it into place only as a whole, then check.
    match std::fs::rename(&building, &venv) {
        Ok(()) => {}
        Err(_) if has_kazoo(&python) => {
            // Another test binary was first.
            let _ = std::fs::remove_dir_all(&building);
        }
        Err(e) => return Err(format!("cannot move the venv into {}: {e}", venv.display())),
    }
    if has_kazoo(&python) { Ok(python) } else { Err(format!("{} cannot import kazoo", python.display())) }
}

fn has_kazoo(python: &Path) -> bool {
    python.exists()
        && Command::new(python)
            .args(["-c", "import kazoo, sys; sys.exit(0 if kazoo.__version__ == '2.11.0' else 1)"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{what}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim()))
    }
}

/// The peer's program: one JSON command per line on stdin, one JSON answer per line on stdout.
const PEER: &str = r#"
import json, sys, logging, warnings
warnings.simplefilter("ignore", DeprecationWarning)
from kazoo.client import KazooClient
from kazoo.exceptions import LockTimeout
logging.basicConfig(level=logging.WARNING)
zk = KazooClient(hosts=sys.argv[1])
zk.start(timeout=15)
print(json.dumps({"session_id": zk.client_id[0]}), flush=True)
held = {}
kinds = {"Lock": zk.Lock, "ReadLock": zk.ReadLock, "WriteLock": zk.WriteLock}
for line in sys.stdin:
    c = json.loads(line)
    op = c["op"]
    try:
        if op == "lock":
            lock = kinds[c["kind"]](c["path"], c["id"])
            try:
                got = lock.acquire(timeout=c.get("timeout"))
            except LockTimeout:
                got = False
            if got:
                held[c["name"]] = lock
            out = {"acquired": bool(got), "node": lock.node}
        elif op == "release":
            held.pop(c["name"]).release()
            out = {"released": True}
        elif op == "contenders":
            out = {"contenders": kinds[c.get("kind", "Lock")](c["path"]).contenders()}
        elif op == "election_contenders":
            out = {"contenders": zk.Election(c["path"]).contenders()}
        elif op in ("counter_add", "counter_value"):
            default = 0.0 if c.get("float") else 0
            counter = zk.Counter(c["path"], default=default, support_curator=bool(c.get("curator")))
            if op == "counter_add":
                counter += (float(c["delta"]) if c.get("float") else int(c["delta"]))
                out = {"pre": counter.pre_value, "post": counter.post_value}
            else:
                out = {"value": counter.value}
        elif op == "party_join":
            party = (zk.ShallowParty if c.get("shallow") else zk.Party)(c["path"], c["id"])
            party.join()
            held[c["name"]] = party
            out = {"joined": True}
        elif op == "party_leave":
            held.pop(c["name"]).leave()
            out = {"left": True}
        elif op == "party_members":
            party = (zk.ShallowParty if c.get("shallow") else zk.Party)(c["path"])
            out = {"members": sorted(party), "len": len(party)}
        elif op == "sem_acquire":
            sem = zk.Semaphore(c["path"], c["id"], max_leases=c.get("max", 1))
            try:
                got = sem.acquire(blocking=c.get("blocking", True), timeout=c.get("timeout"))
            except LockTimeout:
                got = False
            if got:
                held[c["name"]] = sem
            out = {"acquired": bool(got)}
        elif op == "sem_release":
            out = {"released": held.pop(c["name"]).release()}
        elif op == "sem_holders":
            out = {"holders": sorted(zk.Semaphore(c["path"], max_leases=c.get("max", 1)).lease_holders())}
        elif op == "barrier_create":
            zk.Barrier(c["path"]).create()
            out = {"created": True}
        elif op == "barrier_remove":
            out = {"removed": zk.Barrier(c["path"]).remove()}
        elif op == "barrier_wait":
            out = {"cleared": zk.Barrier(c["path"]).wait(c.get("timeout"))}
        elif op == "dbarrier_enter":
            barrier = zk.DoubleBarrier(c["path"], c["num"], identifier=c["id"])
            held[c["name"]] = barrier
            barrier.enter()
            out = {"entered": barrier.participating, "node": barrier.node_name}
        elif op == "dbarrier_leave":
            held.pop(c["name"]).leave()
            out = {"left": True}
        elif op == "queue_put":
            queue = (zk.LockingQueue if c.get("locking") else zk.Queue)(c["path"])
            if "values" in c:
                queue.put_all([v.encode() for v in c["values"]], priority=c.get("priority", 100))
            else:
                queue.put(c["value"].encode(), priority=c.get("priority", 100))
            out = {"put": True}
        elif op == "queue_get":
            value = zk.Queue(c["path"]).get()
            out = {"value": None if value is None else value.decode()}
        elif op == "queue_len":
            out = {"len": len((zk.LockingQueue if c.get("locking") else zk.Queue)(c["path"]))}
        elif op == "lqueue_get":
            queue = held.setdefault(c["name"], zk.LockingQueue(c["path"]))
            value = queue.get(c.get("timeout"))
            out = {"value": None if value is None else value.decode()}
        elif op == "lqueue_consume":
            out = {"consumed": held.pop(c["name"]).consume()}
        elif op == "lqueue_release":
            out = {"released": held.pop(c["name"]).release()}
        elif op == "lqueue_holds":
            out = {"holds": held[c["name"]].holds_lock()}
        elif op == "lease":
            import datetime
            offset = datetime.timedelta(seconds=c.get("clock_offset", 0))
            utcnow = lambda: datetime.datetime.utcnow() + offset
            duration = datetime.timedelta(seconds=c["seconds"])
            if "count" in c:
                lease = zk.MultiNonBlockingLease(c["count"], c["path"], duration, identifier=c["id"], utcnow=utcnow)
            else:
                lease = zk.NonBlockingLease(c["path"], duration, identifier=c["id"], utcnow=utcnow)
            out = {"obtained": bool(lease)}
        elif op == "lease_holder":
            raw, _ = zk.get(c["path"] + "/lease_holder")
            out = {"raw": raw.decode(), "redumped": json.dumps(json.loads(raw.decode()))}
        elif op == "part_start":
            held[c["name"]] = zk.SetPartitioner(
                c["path"], set=c["set"], identifier=c["id"],
                time_boundary=c.get("time_boundary", 30), max_reaction_time=c.get("max_reaction_time", 1))
            out = {"state": held[c["name"]].state}
        elif op == "part_poll":
            qp = held[c["name"]]
            if qp.release:
                qp.release_set()
            if qp.allocating:
                qp.wait_for_acquire(c.get("timeout", 30))
            out = {"state": qp.state, "set": sorted(qp) if qp.acquired else []}
        elif op == "part_finish":
            held.pop(c["name"]).finish()
            out = {"finished": True}
        elif op == "queue_drain":
            values = []
            if c.get("locking"):
                queue = zk.LockingQueue(c["path"])
                while True:
                    value = queue.get(c.get("timeout", 1))
                    if value is None:
                        break
                    if queue.consume():
                        values.append(value.decode())
            else:
                queue = zk.Queue(c["path"])
                while True:
                    value = queue.get()
                    if value is None:
                        break
                    values.append(value.decode())
            out = {"values": values}
        elif op == "create":
            made = zk.create(c["path"], c.get("data", "").encode(), ephemeral=c.get("ephemeral", False),
                             makepath=True)
            out = {"path": made}
        elif op == "get":
            data, stat = zk.get(c["path"])
            out = {"data": data.decode(), "version": stat.version, "czxid": stat.czxid,
                   "mzxid": stat.mzxid, "ephemeral_owner": stat.ephemeralOwner}
        elif op == "session":
            out = {"session_id": zk.client_id[0], "state": zk.state}
        elif op == "tree_start":
            from kazoo.recipe.cache import TreeCache, TreeEvent
            names = {getattr(TreeEvent, n): n for n in ("NODE_ADDED", "NODE_UPDATED", "NODE_REMOVED",
                     "CONNECTION_SUSPENDED", "CONNECTION_RECONNECTED", "CONNECTION_LOST", "INITIALIZED")}
            events = []
            tree = TreeCache(zk, c["path"])
            tree.listen(lambda e, names=names, events=events: events.append(
                [names.get(e.event_type, str(e.event_type)), e.event_data.path if e.event_data is not None else None]))
            tree.start()
            held[c["name"]] = (tree, events)
            out = {"started": True}
        elif op == "tree_events":
            out = {"events": list(held[c["name"]][1])}
        elif op == "tree_close":
            held.pop(c["name"])[0].close()
            out = {"closed": True}
        elif op == "exit":
            break
        else:
            out = {"error": "unknown op " + op}
    except Exception as e:
        out = {"error": repr(e)}
    print(json.dumps(out), flush=True)
zk.stop()
zk.close()
"#;

/// A Python process running kazoo against one connect string, answering commands in order.
/// Dropping it ends the process (its session goes with it).
#[derive(Debug)]
pub struct KazooPeer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The peer's session id.
    pub session_id: i64,
}

impl KazooPeer {
    /// Starts a peer connected to `hosts` (`host:port[,…][/chroot]`) and waits for its session.
    ///
    /// # Errors
    ///
    /// A message if the process cannot start or does not connect.
    pub fn start(python: &Path, hosts: &str) -> Result<Self, String> {
        let mut child = Command::new(python)
            .args(["-u", "-c", PEER, hosts])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the kazoo peer: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut peer = Self { child, stdin, stdout, session_id: 0 };
        let hello = peer.read_line()?;
        peer.session_id = json_i64(&hello, "session_id").ok_or_else(|| format!("the peer did not connect: {hello}"))?;
        Ok(peer)
    }

    /// Sends one command (a JSON object, see the peer's program) and returns its answer line.
    /// Blocks until the peer answers (a lock acquisition waits for the lock).
    ///
    /// # Errors
    ///
    /// A message if the peer is gone.
    pub fn request(&mut self, command: &str) -> Result<String, String> {
        writeln!(self.stdin, "{command}").and_then(|()| self.stdin.flush()).map_err(|e| format!("peer gone: {e}"))?;
        self.read_line()
    }

    fn read_line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) => Err("the kazoo peer exited".into()),
            Ok(_) => Ok(line.trim_end().to_owned()),
            Err(e) => Err(format!("reading the peer: {e}")),
        }
    }
}

impl Drop for KazooPeer {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{{\"op\":\"exit\"}}");
        let _ = self.stdin.flush();
        // Give it a moment to close its session cleanly, then end it by its PID.
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The integer field `key` of a flat JSON object line (enough for the peer's answers).
pub fn json_i64(line: &str, key: &str) -> Option<i64> {
    let rest = &line[line.find(&format!("\"{key}\":"))? + key.len() + 3..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}
