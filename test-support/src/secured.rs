//! A private ZooKeeper 3.8 for security tests: TLS on a Netty `secureClientPort` with PEM key
//! and trust stores, and SASL from a JAAS file: DIGEST-MD5, or Kerberos against a KDC of the
//! `kerberos` module ([`SecuredConfig::krb5_conf`]).
//!
//! Unlike [`crate::zookeeper()`], every call starts a server of its own (its configuration is
//! the test's), which stops when the returned [`SecuredZookeeper`] is dropped.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::local::{self, Extra, LocalServer};

/// Jars the Netty connection factory needs beyond the Class-Path of Debian's `zookeeper.jar`.
const NETTY_JARS: &[&str] = &["/usr/share/java/netty-codec.jar", "/usr/share/java/netty-resolver.jar"];

/// TLS settings of the secure client port, as ZooKeeper reads them with `type=PEM`.
#[derive(Debug, Clone)]
pub struct ZkTls {
    /// One PEM file: the server's private key followed by its certificate
    /// (`ssl.keyStore.location`).
    pub key_and_cert: PathBuf,
    /// The CA bundle client certificates are checked against (`ssl.trustStore.location`).
    pub trust: PathBuf,
    /// `ssl.clientAuth`: `none`, `want` or `need`.
    pub client_auth: String,
}

/// What a [`SecuredZookeeper`] adds to the standard test configuration.
#[derive(Debug, Clone, Default)]
pub struct SecuredConfig {
    /// A secure client port with these settings (and the Netty connection factory).
    pub tls: Option<ZkTls>,
    /// A JAAS file for SASL (`-Djava.security.auth.login.config`), with ZooKeeper's
    /// `SASLAuthenticationProvider` registered.
    pub jaas: Option<PathBuf>,
    /// The Kerberos configuration the JVM uses (`-Djava.security.krb5.conf`), for a JAAS
    /// `Server` section with `Krb5LoginModule` (see [`crate::Kdc::krb5_conf`] and
    /// [`crate::Kdc::jaas_server`]).
    pub krb5_conf: Option<PathBuf>,
    /// More `zoo.cfg` lines.
    pub extra_cfg: Vec<String>,
}

/// A ZooKeeper started for one test; dropping it stops the JVM and removes its directory.
#[derive(Debug)]
pub struct SecuredZookeeper {
    server: LocalServer,
    secure: Option<SocketAddr>,
}

impl SecuredZookeeper {
    /// The plain client port's address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The secure client port's address, with [`SecuredConfig::tls`].
    pub fn secure_addr(&self) -> Option<SocketAddr> {
        self.secure
    }

    /// The server JVM's process id (for sampling its threads' CPU in `/proc`).
    pub fn java_pid(&self) -> u32 {
        self.server.java_pid()
    }

    /// The server's directory (configuration, data, `zookeeper.log`).
    pub fn dir(&self) -> &Path {
        self.server.dir()
    }
}

/// Starts a private ZooKeeper with `config`, or skips as [`crate::zookeeper()`] does: `None`
/// with a `skipping:` line when Java or ZooKeeper is missing, a panic instead under `CI=true`.
///
/// # Panics
///
/// When no server can be started and `CI` is set.
pub fn secured_zookeeper(config: &SecuredConfig) -> Option<SecuredZookeeper> {
    match start(config) {
        Ok(server) => Some(server),
        Err(reason) => {
            if crate::running_in_ci() {
                panic!("CI is set, so tests may not skip, but a secured ZooKeeper did not start: {reason}");
            }
            crate::skip_notice(&format!("tests that need a secured ZooKeeper: {reason}"));
            None
        }
    }
}

/// The `zoo.cfg` lines of a Netty secure client port on `port` with `tls` (shared with the
/// ensemble's members).
pub(crate) fn tls_cfg(tls: &ZkTls, port: u16) -> String {
    let mut cfg = String::new();
    let _ = write!(
        cfg,
        "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
         secureClientPort={port}\n\
         secureClientPortAddress=127.0.0.1\n\
         ssl.keyStore.location={}\n\
         ssl.keyStore.type=PEM\n\
         ssl.trustStore.location={}\n\
         ssl.trustStore.type=PEM\n\
         ssl.clientAuth={}\n",
        tls.key_and_cert.display(),
        tls.trust.display(),
        tls.client_auth
    );
    cfg
}

/// The jars the Netty connection factory needs on the class path: Netty's codec and resolver
/// are not in the Class-Path of Debian's zookeeper.jar.
///
/// # Errors
///
/// A jar is missing (Debian's libnetty-java).
pub(crate) fn netty_jars() -> Result<Vec<String>, String> {
    NETTY_JARS
        .iter()
        .map(|jar| {
            if Path::new(jar).is_file() {
                Ok((*jar).to_owned())
            } else {
                Err(format!("{jar} not found (Debian's libnetty-java)"))
            }
        })
        .collect()
}

/// SASL from the JAAS file `jaas`: the `zoo.cfg` line that registers ZooKeeper's
/// `SASLAuthenticationProvider`, and the JVM flag that reads the file.
pub(crate) fn jaas_settings(jaas: &Path) -> (&'static str, String) {
    (
        "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n",
        format!("-Djava.security.auth.login.config={}", jaas.display()),
    )
}

fn start(config: &SecuredConfig) -> Result<SecuredZookeeper, String> {
    let mut extra = Extra::default();
    let mut secure = None;
    if let Some(tls) = &config.tls {
        let port = crate::ports::free_port().map_err(|e| format!("no free port for TLS: {e}"))?;
        extra.cfg.push_str(&tls_cfg(tls, port));
        secure = Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        extra.classpath.extend(netty_jars()?);
    }
    if let Some(jaas) = &config.jaas {
        let (cfg, jvm) = jaas_settings(jaas);
        extra.cfg.push_str(cfg);
        extra.jvm.push(jvm);
    }
    if let Some(krb5_conf) = &config.krb5_conf {
        extra.jvm.push(format!("-Djava.security.krb5.conf={}", krb5_conf.display()));
        // The KDC's answers and the logins, in zookeeper.log, for when a test fails.
        extra.jvm.push("-Dsun.security.krb5.debug=true".to_owned());
    }
    for line in &config.extra_cfg {
        extra.cfg.push_str(line);
        extra.cfg.push('\n');
    }
    let server = local::start_with_extra(crate::DEFAULT_TICK_TIME_MS, &extra)?;
    if let Some(addr) = secure {
        // The secure port opens with the plain one; make sure before a test uses it.
        let deadline = std::time::Instant::now() + local::START_TIMEOUT;
        while std::net::TcpStream::connect(addr).is_err() {
            if std::time::Instant::now() >= deadline {
                return Err(format!("the secure port {addr} did not open"));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    Ok(SecuredZookeeper { server, secure })
}
