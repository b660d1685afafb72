//! A private MIT Kerberos KDC on loopback for tests: its own realm, configuration, database,
//! principals and keytabs, all in a fresh directory, made by the test.
//!
//! [`kdc()`] runs Debian's `kdb5_util` to create the database, then `krb5kdc` in the
//! foreground on a free port of `127.0.0.1` (TCP and UDP; clients are told to use TCP), and
//! [`Kdc::add_principal`] runs `kadmin.local` to add a principal with a random key and export it
//! to a keytab. Clients use it through [`Kdc::krb5_conf`] (`KRB5_CONFIG` for MIT krb5 programs,
//! `-Djava.security.krb5.conf` for Java) and [`Kdc::client_env`].
//!
//! `krb5kdc` runs under the `guard` module's `sh` guard, as ZooKeeper does: when the test process
//! exits, however it exits, the guard stops `krb5kdc` by its PID (only while `/proc/<pid>/cmdline`
//! still names this KDC's directory) and removes the directory. Dropping the [`Kdc`] does the same at once. Every command run here
//! has a time limit, after which it is killed by its PID.
//!
//! Needs `apt-get install krb5-kdc krb5-admin-server` (`krb5kdc`, `kdb5_util`,
//! `kadmin.local`); `krb5-user` brings `kinit` for [`Kdc::kinit`].

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use std::{env, fs, io, thread};

use crate::guard::{Guarded, Spec, fresh_dir};

/// The realm of every KDC started here.
pub const REALM: &str = "CORRAL.TEST";

/// How long the KDC's process must stay gone before it counts as exited.
const GONE_FOR: Duration = Duration::from_secs(1);
/// How long the KDC may take to open its port.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one `kdb5_util`, `kadmin.local` or `kinit` may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Ports tried when the chosen one was taken meanwhile.
const BIND_ATTEMPTS: usize = 5;
const INSTALL_HINT: &str = "apt-get install krb5-kdc krb5-admin-server krb5-user";

/// How long `krb5kdc` has between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A KDC started for one test; dropping it stops `krb5kdc` and removes its directory (the
/// keytabs and ticket caches in it too).
#[derive(Debug)]
pub struct Kdc {
    addr: SocketAddr,
    kadmin: PathBuf,
    /// `krb5kdc` under its guard; dropping it stops the KDC and removes its directory.
    process: Guarded,
}

/// Starts a KDC for realm [`REALM`], or skips as [`crate::zookeeper()`] does: `None` with a
/// `skipping:` line when the Kerberos programs are missing, a panic instead under `CI=true`.
///
/// # Panics
///
/// When no KDC can be started and `CI` is set.
pub fn kdc() -> Option<Kdc> {
    match Kdc::start() {
        Ok(kdc) => Some(kdc),
        Err(reason) => {
            if crate::running_in_ci() {
                panic!("CI is set, so tests may not skip, but the Kerberos KDC did not start: {reason}");
            }
            crate::skip_notice(&format!("tests that need a Kerberos KDC: {reason}"));
            None
        }
    }
}

impl Kdc {
    /// Starts a KDC in a fresh directory.
    ///
    /// # Errors
    ///
    /// When a program is missing (with the packages to install), or the KDC does not start.
    pub fn start() -> Result<Kdc, String> {
        let krb5kdc = find_program("krb5kdc")?;
        let kdb5_util = find_program("kdb5_util")?;
        let kadmin = find_program("kadmin.local")?;
        let mut last = String::new();
        for _ in 0..BIND_ATTEMPTS {
            let port = crate::ports::free_port().map_err(|e| format!("no free port for the KDC: {e}"))?;
            let dir = fresh_dir("corral-kdc")?;
            // From here on the directory is removed on every path: by the wrapper once it runs.
            match launch(&dir, port, &krb5kdc, &kdb5_util, &kadmin) {
                Ok(kdc) => return Ok(kdc),
                Err((reason, retry)) => {
                    let _ = fs::remove_dir_all(&dir);
                    if !retry {
                        return Err(reason);
                    }
                    last = reason;
                }
            }
        }
        Err(format!("the KDC could not bind a port in {BIND_ATTEMPTS} attempts; the last: {last}"))
    }

    /// The realm, [`REALM`].
    pub fn realm(&self) -> &str {
        REALM
    }

    /// The KDC's address (TCP and UDP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The KDC's directory: configuration, database, keytabs, ticket caches, `kdc.log`.
    pub fn dir(&self) -> &Path {
        self.process.dir()
    }

    /// The client configuration (`krb5.conf`) for this realm: the KDC on loopback over TCP, no
    /// DNS, host names not canonicalized (`zookeeper/localhost` stays that), the default
    /// ticket cache in the KDC's directory, and forwardable tickets (as many sites have them),
    /// so that a client that delegates its ticket-granting ticket shows in the server's log.
    pub fn krb5_conf(&self) -> PathBuf {
        self.dir().join("krb5.conf")
    }

    /// Adds `principal` (`name` or `name/instance`, in [`REALM`]) with a random key, and
    /// writes its key to a new keytab, whose path is returned.
    ///
    /// # Errors
    ///
    /// When `kadmin.local` fails, with its output.
    pub fn add_principal(&self, principal: &str) -> Result<PathBuf, String> {
        let keytab = self.dir().join(format!("{}.keytab", file_name(principal)));
        self.kadmin(&format!("addprinc -randkey {principal}@{REALM}"))?;
        self.export(principal, &keytab)?;
        Ok(keytab)
    }

    /// Writes `principal`'s current key to `keytab` too (added to what it holds).
    ///
    /// # Errors
    ///
    /// When `kadmin.local` fails, with its output.
    pub fn export(&self, principal: &str, keytab: &Path) -> Result<(), String> {
        self.kadmin(&format!("ktadd -k {} -norandkey {principal}@{REALM}", keytab.display()))
    }

    /// Gives `principal` a new random key, so that keytabs written before hold a stale one.
    ///
    /// # Errors
    ///
    /// When `kadmin.local` fails, with its output.
    pub fn change_key(&self, principal: &str) -> Result<(), String> {
        self.kadmin(&format!("cpw -randkey {principal}@{REALM}"))
    }

    /// Obtains a ticket for `principal` with the key in `keytab` into a new ticket cache (a
    /// file in the KDC's directory), as `kinit -k -t` does; returns the cache's path.
    ///
    /// # Errors
    ///
    /// When `kinit` is missing or fails, with its output.
    pub fn kinit(&self, principal: &str, keytab: &Path) -> Result<PathBuf, String> {
        let kinit = find_program("kinit")?;
        let cache = self.dir().join(format!("krb5cc_{}", file_name(principal)));
        let mut command = Command::new(kinit);
        command
            .arg("-k")
            .arg("-t")
            .arg(keytab)
            .arg("-c")
            .arg(format!("FILE:{}", cache.display()))
            .arg(format!("{principal}@{REALM}"))
            .env("KRB5_CONFIG", self.krb5_conf());
        run(command, "kinit")?;
        Ok(cache)
    }

    /// The environment of a process whose Kerberos identity is `principal`, from `keytab`: the
    /// configuration (`KRB5_CONFIG`), the client keytab (`KRB5_CLIENT_KTNAME`) and a ticket
    /// cache collection of its own, empty at first (`KRB5CCNAME=DIR:…`), where MIT krb5 keeps
    /// the tickets it obtains with the keys (one cache per principal, when the keytab holds
    /// several).
    ///
    /// # Errors
    ///
    /// When the collection's directory cannot be made.
    pub fn client_env(&self, principal: &str, keytab: &Path) -> Result<Vec<(OsString, OsString)>, String> {
        let n = NEXT_CACHE.fetch_add(1, Ordering::Relaxed);
        let caches = self.dir().join(format!("ccaches_{}_{n}", file_name(principal)));
        fs::create_dir(&caches).map_err(|e| format!("could not create {}: {e}", caches.display()))?;
        Ok(vec![
            ("KRB5_CONFIG".into(), self.krb5_conf().into()),
            ("KRB5_CLIENT_KTNAME".into(), format!("FILE:{}", keytab.display()).into()),
            ("KRB5CCNAME".into(), format!("DIR:{}", caches.display()).into()),
        ])
    }

    /// A JAAS `Server` section with which ZooKeeper accepts Kerberos logins as `principal`
    /// (e.g. `zookeeper/localhost`) with the key in `keytab`.
    pub fn jaas_server(&self, principal: &str, keytab: &Path) -> String {
        format!(
            "Server {{\n  com.sun.security.auth.module.Krb5LoginModule required\n  useKeyTab=true\n  \
             keyTab=\"{}\"\n  storeKey=true\n  useTicketCache=false\n  principal=\"{principal}@{REALM}\";\n}};\n",
            keytab.display()
        )
    }

    fn kadmin(&self, query: &str) -> Result<(), String> {
        let mut command = Command::new(&self.kadmin);
        command.arg("-r").arg(REALM).arg("-q").arg(query);
        self.configure(&mut command);
        let out = run(command, "kadmin.local")?;
        // kadmin.local exits 0 even when the query fails; it says so on stderr.
        if out.contains("error") || out.contains("while ") {
            return Err(format!("kadmin.local -q {query:?}: {out}"));
        }
        Ok(())
    }

    fn configure(&self, command: &mut Command) {
        configure(command, self.dir());
    }
}

static NEXT_CACHE: AtomicU64 = AtomicU64::new(0);

fn configure(command: &mut Command, dir: &Path) {
    command.env("KRB5_CONFIG", dir.join("krb5.conf")).env("KRB5_KDC_PROFILE", dir.join("kdc.conf"));
}

/// Writes the configuration, creates the database and starts `krb5kdc` on `port`. The error
/// says whether another port is worth a try.
fn launch(dir: &Path, port: u16, krb5kdc: &Path, kdb5_util: &Path, kadmin: &Path) -> Result<Kdc, (String, bool)> {
    write_config(dir, port).map_err(|e| (format!("could not write the KDC's configuration: {e}"), false))?;
    let mut create = Command::new(kdb5_util);
    create.args(["-r", REALM, "create", "-s", "-P", "corral-master-key"]);
    configure(&mut create, dir);
    run(create, "kdb5_util create").map_err(|e| (e, false))?;

    let marker = format!("{}/", dir.display());
    let spec = Spec { name: "corral-kdc", dir, marker: marker.as_ref(), log: "krb5kdc.out", grace: STOP_GRACE };
    let pid_file = dir.join("krb5kdc.pid");
    let args = ["-n".as_ref(), "-r".as_ref(), REALM.as_ref(), "-P".as_ref(), pid_file.as_os_str()];
    let process = Guarded::spawn(&spec, krb5kdc, args, |command| configure(command, dir)).map_err(|e| (e, false))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let kdc = Kdc { addr, kadmin: kadmin.to_owned(), process };
    let deadline = Instant::now() + START_TIMEOUT;
    // A process in the middle of its exec can show an empty command line for a moment (CI saw
    // "exited at start" with nothing logged): it counts as gone only when it stays so.
    let mut gone_since: Option<Instant> = None;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
            return Ok(kdc);
        }
        if kdc.process.alive() {
            gone_since = None;
        } else if gone_since.get_or_insert_with(Instant::now).elapsed() >= GONE_FOR {
            let out = fs::read_to_string(dir.join("krb5kdc.out")).unwrap_or_default();
            let log = fs::read_to_string(dir.join("kdc.log")).unwrap_or_default();
            let taken = out.contains("in use") || log.contains("in use");
            return Err((format!("krb5kdc exited at start: {out}{log}"), taken));
        }
        if Instant::now() >= deadline {
            return Err((format!("krb5kdc did not open {addr} within {} s", START_TIMEOUT.as_secs()), false));
        }
        thread::sleep(POLL_INTERVAL);
    }
}

fn write_config(dir: &Path, port: u16) -> io::Result<()> {
    let d = dir.display();
    fs::write(
        dir.join("kdc.conf"),
        format!(
            "[kdcdefaults]\n kdc_listen = 127.0.0.1:{port}\n kdc_tcp_listen = 127.0.0.1:{port}\n\
             [realms]\n {REALM} = {{\n  database_name = {d}/principal\n  key_stash_file = {d}/stash\n  \
             acl_file = {d}/kadm5.acl\n  kdc_listen = 127.0.0.1:{port}\n  kdc_tcp_listen = 127.0.0.1:{port}\n  \
             max_life = 2h\n  max_renewable_life = 1d\n  \
             supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal\n }}\n\
             [logging]\n kdc = FILE:{d}/kdc.log\n admin_server = FILE:{d}/kadmin.log\n default = FILE:{d}/krb5.log\n"
        ),
    )?;
    fs::write(dir.join("kadm5.acl"), "")?;
    fs::write(
        dir.join("krb5.conf"),
        format!(
            "[libdefaults]\n default_realm = {REALM}\n dns_lookup_realm = false\n dns_lookup_kdc = false\n \
             dns_canonicalize_hostname = false\n rdns = false\n udp_preference_limit = 1\n \
             ticket_lifetime = 2h\n forwardable = true\n kdc_timeout = 5s\n max_retries = 2\n \
             default_ccache_name = FILE:{d}/krb5cc_default\n \
             default_tkt_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96\n \
             default_tgs_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96\n \
             permitted_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96\n\
             [realms]\n {REALM} = {{\n  kdc = 127.0.0.1:{port}\n }}\n\
             [domain_realm]\n localhost = {REALM}\n .localhost = {REALM}\n"
        ),
    )
}

/// Runs `command` to its end within [`COMMAND_TIMEOUT`] (killed by its PID past that);
/// returns its stdout and stderr, or says why it failed.
fn run(mut command: Command, what: &str) -> Result<String, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not run {what}: {e}"))?;
    // Read both pipes on threads, so a chatty command cannot block on a full pipe.
    let readers: Vec<_> =
        [child.stdout.take().map(drain), child.stderr.take().map(drain)].into_iter().flatten().collect();
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} did not finish within {} s", COMMAND_TIMEOUT.as_secs()));
            }
            Err(e) => return Err(format!("waiting for {what}: {e}")),
        }
    };
    let output: String = readers.into_iter().map(|r| r.join().unwrap_or_default()).collect();
    if status.success() { Ok(output) } else { Err(format!("{what} failed ({status}): {}", output.trim())) }
}

/// Reads `pipe` to its end on a thread of its own.
fn drain(mut pipe: impl io::Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    })
}

/// `program` from `PATH`, else `/usr/sbin` (where Debian puts the KDC's programs, often not in a
/// user's `PATH`).
fn find_program(program: &str) -> Result<PathBuf, String> {
    env::var_os("PATH")
        .iter()
        .flat_map(env::split_paths)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .ok_or_else(|| format!("no `{program}` in PATH or /usr/sbin (MIT Kerberos: `{INSTALL_HINT}`)"))
}

/// `principal` as a file name: `zookeeper/localhost` → `zookeeper_localhost`.
fn file_name(principal: &str) -> String {
    principal.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_become_file_names() {
        assert_eq!(file_name("zookeeper/localhost"), "zookeeper_localhost");
        assert_eq!(file_name("client"), "client");
    }

    #[test]
    fn a_kdc_issues_tickets_and_stops_with_its_directory() {
        let Some(kdc) = kdc() else { return };
        let keytab = kdc.add_principal("alice").expect("principal");
        assert!(keytab.is_file());
        assert!(kdc.add_principal("alice").is_err(), "a principal that exists already is an error");
        let cache = kdc.kinit("alice", &keytab).expect("a ticket from the keytab");
        assert!(cache.is_file());
        kdc.change_key("alice").expect("new key");
        let stale = kdc.kinit("alice", &keytab).expect_err("the keytab is stale");
        assert!(stale.contains("kinit failed"), "{stale}");

        let (dir, pid) = (kdc.dir().to_owned(), kdc.process.pid());
        assert!(fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty()), "krb5kdc runs");
        drop(kdc);
        // The wrapper is reaped in drop, after it has stopped krb5kdc and removed the directory.
        assert!(!dir.exists(), "{} is left", dir.display());
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&cmdline).contains(&dir.display().to_string()), "krb5kdc {pid} still runs");
    }
}
