//! The connection to the ensemble: the connect string of `--zk` / `CORRAL_ZK`, a client with
//! the `--timeout`, and an operator's explanation when no host could be reached.

use std::time::Duration;

use corral_recipes::{Client, ConnectString, CoreError as ZkError, HostPort};
use tokio::net::TcpStream;

use crate::error::{CliError, CliResult, Kind};

/// The connect string used when neither `--zk` nor `CORRAL_ZK` is given.
pub(crate) const DEFAULT_ZK: &str = "127.0.0.1:2181";

/// Where to connect, and how long to wait.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The connect string as given.
    pub(crate) raw: String,
    /// The parsed hosts and chroot.
    pub(crate) parsed: ConnectString,
    /// The limit for connecting, and for each four-letter word.
    pub(crate) timeout: Duration,
    /// Credentials sent before any request: `(scheme, credentials)`, e.g. `("digest", "app:secret")`.
    pub(crate) auths: Vec<(String, String)>,
    /// TLS for the session's connections.
    pub(crate) tls: Option<corral_recipes::ClientTls>,
    /// A SASL login on every connection.
    pub(crate) sasl: Option<corral_recipes::Sasl>,
}

/// The TLS options of the command line.
#[derive(Debug, Default)]
pub(crate) struct TlsOptions {
    pub(crate) ca: Option<std::path::PathBuf>,
    pub(crate) cert: Option<std::path::PathBuf>,
    pub(crate) key: Option<std::path::PathBuf>,
    pub(crate) server_name: Option<String>,
}

/// The SASL options of the command line.
#[derive(Debug, Default)]
pub(crate) struct SaslOptions {
    /// DIGEST-MD5 as this user, the password from `CORRAL_SASL_PASSWORD`.
    pub(crate) user: Option<String>,
    /// Kerberos (GSSAPI) with the process's credentials.
    pub(crate) gssapi: bool,
    /// The Kerberos client principal, instead of the credentials' default one.
    pub(crate) principal: Option<String>,
    /// The primary of the servers' principal (`zookeeper` by default).
    pub(crate) service: Option<String>,
}

impl Target {
    /// Parses `raw`.
    pub(crate) fn new(raw: &str, timeout: Duration) -> CliResult<Self> {
        let parsed: ConnectString = raw.parse().map_err(|e| match e {
            ZkError::InvalidConnectString { input, reason } => {
                CliError::usage(format!("invalid connect string {input:?}: {reason}"))
                    .with_hint("expected HOST:PORT[,HOST:PORT...][/chroot], e.g. zk1:2181,zk2:2181/app")
            }
            other => CliError::usage(other.to_string()),
        })?;
        Ok(Self { raw: raw.trim().to_owned(), parsed, timeout, auths: Vec::new(), tls: None, sasl: None })
    }

    /// Adds TLS (when a CA or a client certificate is given) and a SASL login: DIGEST-MD5 when a
    /// user is given (the password comes from `CORRAL_SASL_PASSWORD`, never the command line),
    /// Kerberos with `--sasl-gssapi`.
    pub(crate) fn with_security(mut self, tls: TlsOptions, sasl: SaslOptions) -> CliResult<Self> {
        if tls.ca.is_some() || tls.cert.is_some() {
            let mut builder = corral_recipes::ClientTls::builder();
            if let Some(ca) = &tls.ca {
                builder = builder.ca_pem_file(ca);
            }
            if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
                builder = builder.identity_pem_files(cert, key);
            }
            if let Some(name) = &tls.server_name {
                builder = builder.server_name(name.clone());
            }
            let built = builder.build().map_err(|e| {
                CliError::usage(format!("TLS settings refused: {e}"))
                    .with_hint("--tls-ca, --tls-cert and --tls-key take PEM files")
            })?;
            self.tls = Some(built);
        } else if tls.server_name.is_some() {
            return Err(CliError::usage("--tls-server-name needs --tls-ca (or --tls-cert and --tls-key)"));
        }
        if let Some(user) = sasl.user {
            let password = std::env::var("CORRAL_SASL_PASSWORD").map_err(|_| {
                CliError::usage("--sasl-user needs the password in CORRAL_SASL_PASSWORD")
                    .with_hint("the password is never taken from the command line, where `ps` would show it")
            })?;
            self.sasl = Some(corral_recipes::Sasl::digest_md5(user, password));
        } else if sasl.gssapi {
            self.sasl = Some(kerberos(sasl.principal, sasl.service)?);
        }
        Ok(self)
    }

    /// Adds credentials given as `SCHEME:CREDENTIALS` (`digest:app:secret`).
    pub(crate) fn with_auth(mut self, spec: &str) -> CliResult<Self> {
        let (scheme, credentials) = spec.split_once(':').filter(|(scheme, _)| !scheme.is_empty()).ok_or_else(|| {
            CliError::usage(format!("--auth {spec:?}: expected SCHEME:CREDENTIALS, e.g. digest:user:password"))
        })?;
        self.auths.push((scheme.to_owned(), credentials.to_owned()));
        Ok(self)
    }

    /// The hosts of the connect string.
    pub(crate) fn hosts(&self) -> &[HostPort] {
        &self.parsed.hosts
    }

    /// A connected client, or an error that says why no host could be reached.
    pub(crate) async fn connect(&self) -> CliResult<Client> {
        let mut builder = Client::builder(self.raw.clone())
            .connection_timeout(self.timeout)
            .session_timeout(self.timeout.max(Duration::from_secs(4)));
        for (scheme, credentials) in &self.auths {
            builder = builder.auth(scheme.clone(), credentials.clone().into_bytes());
        }
        if let Some(tls) = &self.tls {
            builder = builder.tls(tls.clone());
        }
        if let Some(sasl) = &self.sasl {
            builder = builder.sasl(sasl.clone());
        }
        let connect = builder.connect();
        tokio::select! {
            connected = connect => match connected {
                Ok(client) => Ok(client),
                Err(ZkError::Timeout) => Err(self.diagnose(true).await),
                // Refused credentials or a refused TLS handshake: no session, and why.
                Err(e @ (ZkError::Tls(_) | ZkError::Sasl(_) | ZkError::AuthFailed)) => Err(CliError::new(
                    Kind::Connection,
                    format!("cannot open a session on {}: {e}", self.raw),
                )
                .with_hint("check --tls-ca/--tls-cert/--tls-key, --sasl-user and CORRAL_SASL_PASSWORD, --auth")),
                Err(e) => Err(CliError::zk(e, "/")),
            },
            // Every host refusing outright will not change within a command's patience.
            () = self.all_refuse() => Err(self.diagnose(false).await),
        }
    }

    /// Resolves if every host refuses TCP connections; never resolves otherwise.
    async fn all_refuse(&self) {
        let probes = self.hosts().iter().map(|h| async move {
            TcpStream::connect((h.host.as_str(), h.port))
                .await
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
        });
        if !futures::future::join_all(probes).await.into_iter().all(|refused| refused) {
            std::future::pending::<()>().await;
        }
    }

    /// Why connecting failed: each host probed with a plain TCP connect.
    async fn diagnose(&self, timed_out: bool) -> CliError {
        let probes = self.hosts().iter().map(|h| async move { (h.to_string(), probe(h, self.timeout).await) });
        let results = futures::future::join_all(probes).await;
        let single = results.len() == 1;
        let reasons: Vec<String> = results
            .into_iter()
            .map(|(host, reason)| {
                let reason = reason.unwrap_or_else(|| "accepts connections but granted no session".to_owned());
                if single { reason } else { format!("{host}: {reason}") }
            })
            .collect();
        CliError::new(
            Kind::Connection,
            if timed_out {
                format!("cannot connect to {} within {}: {}", self.raw, humanize(self.timeout), reasons.join("; "))
            } else {
                format!("cannot connect to {}: {}", self.raw, reasons.join("; "))
            },
        )
        .with_hint("check --zk (or CORRAL_ZK) and that ZooKeeper is running; raise --timeout for slow networks")
    }
}

/// Why a TCP connection to `host` fails, or `None` if it succeeds.
pub(crate) async fn probe(host: &HostPort, timeout: Duration) -> Option<String> {
    match tokio::time::timeout(timeout, TcpStream::connect((host.host.as_str(), host.port))).await {
        Err(_) => Some("no answer (timed out)".to_owned()),
        Ok(Err(e)) => Some(io_reason(&e)),
        Ok(Ok(_)) => None,
    }
}

/// An I/O error as an operator reads it.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        std::io::ErrorKind::ConnectionReset => "connection reset by the server".to_owned(),
        std::io::ErrorKind::TimedOut => "timed out".to_owned(),
        _ => e.to_string(),
    }
}

/// `--timeout` values: `10` (seconds), `500ms`, `2s`, `1m`.
pub(crate) fn parse_timeout(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, "s"),
    };
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration (e.g. 10, 500ms, 2s, 1m)"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        other => return Err(format!("unknown unit {other:?} (use ms, s or m)")),
    };
    if !(secs > 0.0 && secs <= 3600.0) {
        return Err("the timeout must be between 1ms and 1 hour".to_owned());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A duration as given on the command line.
pub(crate) fn humanize(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("abc").is_err());
        assert!(parse_timeout("5h").is_err());
        assert_eq!(humanize(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn connect_strings() {
        let target = Target::new("a:1,b/app", Duration::from_secs(1)).unwrap();
        assert_eq!(target.hosts().len(), 2);
        assert_eq!(target.parsed.chroot.as_deref(), Some("/app"));
        let bad = Target::new("a:notaport", Duration::from_secs(1)).unwrap_err();
        assert_eq!(bad.kind, Kind::Usage);
        let with_auth = target.with_auth("digest:app:secret").unwrap();
        assert_eq!(with_auth.auths, [("digest".to_owned(), "app:secret".to_owned())]);
        assert_eq!(with_auth.with_auth("nocolon").unwrap_err().kind, Kind::Usage);
    }
}

/// A Kerberos login with the process's credentials (`KRB5CCNAME`, `KRB5_CLIENT_KTNAME`,
/// `KRB5_CONFIG`).
#[cfg(feature = "gssapi")]
fn kerberos(principal: Option<String>, service: Option<String>) -> CliResult<corral_recipes::Sasl> {
    let sasl = match principal {
        Some(principal) => corral_recipes::Sasl::gssapi_principal(principal),
        None => corral_recipes::Sasl::gssapi(),
    };
    Ok(match service {
        Some(service) => sasl.service_name(service),
        None => sasl,
    })
}

/// Without the `gssapi` feature there is no Kerberos: say how to get it.
#[cfg(not(feature = "gssapi"))]
fn kerberos(_principal: Option<String>, _service: Option<String>) -> CliResult<corral_recipes::Sasl> {
    Err(CliError::usage("this corral was built without Kerberos (SASL GSSAPI)").with_hint(
        "install it with `cargo install --path cli --features gssapi` (needs MIT krb5: libkrb5-dev, libclang-dev, pkg-config)",
    ))
}
