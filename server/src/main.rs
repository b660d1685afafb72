//! `corral-server`: runs the embedded ZooKeeper-compatible server from a shell.
//!
//! ```text
//! corral-server --port PORT [--host ADDR] [--tick-time MS] [--min-session-timeout MS] [--max-session-timeout MS]
//!               [--secure-port PORT --tls-cert FILE --tls-key FILE [--tls-key-password-file FILE] [--tls-ca FILE]]
//!               [--jaas FILE] [--data-dir DIR] [--config zoo.cfg]
//! ```
//!
//! `--data-dir` makes the server durable: a transaction log fsynced before every reply and
//! snapshots in DIR (ZooKeeper's `dataDir`, in its format); started again on DIR, it restores
//! the tree and the sessions. Without it everything is kept in memory.
//!
//! `--config` applies the keys of a ZooKeeper `zoo.cfg` that the server supports (see
//! `ServerBuilder::zoo_cfg`) and names every key it ignores on stderr; options after it
//! override it. `--tls-cert` and `--tls-key` open a secure (TLS) client port (`--secure-port`,
//! 0 by default); `--tls-key-password-file` names a file holding the password of an encrypted
//! PKCS#8 key (never the password itself: the command line is visible to every local user);
//! `--tls-ca` requires client certificates signed by that CA. `--jaas` reads
//! SASL DIGEST-MD5 users from the `Server` section of a ZooKeeper JAAS file.
//!
//! It prints `listening on HOST:PORT` (and `secure port on HOST:PORT`) once it accepts
//! connections, then serves until killed.
//!
//! The server runs on a current-thread Tokio runtime: every request takes the one state mutex
//! anyway, so a second worker adds nothing but cross-thread wake-ups and futex parking. Leaving
//! them out cut the CPU of 10,000 idle sessions by about 30 % (benches/README.md).

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use corral_server::{SaslUsers, Server, ServerBuilder, ServerTls};

const USAGE: &str = "usage: corral-server [--port PORT] [--host ADDR] [--tick-time MS] \
                     [--min-session-timeout MS] [--max-session-timeout MS] \
                     [--secure-port PORT --tls-cert FILE --tls-key FILE [--tls-key-password-file FILE] \
                     [--tls-ca FILE]] [--jaas FILE] [--data-dir DIR] [--config zoo.cfg]";

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<ServerBuilder, String> {
    let mut builder = Server::builder();
    let (mut cert, mut key, mut ca, mut password) = (None, None, None, None);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let millis = || value.parse::<u64>().map(Duration::from_millis).map_err(|e| format!("{flag} {value}: {e}"));
        builder = match flag.as_str() {
            "--port" => builder.port(value.parse().map_err(|e| format!("--port {value}: {e}"))?),
            "--host" => builder.host(value.parse::<IpAddr>().map_err(|e| format!("--host {value}: {e}"))?),
            "--tick-time" => builder.tick_time(millis()?),
            "--min-session-timeout" => builder.min_session_timeout(millis()?),
            "--max-session-timeout" => builder.max_session_timeout(millis()?),
            "--secure-port" => builder.secure_port(value.parse().map_err(|e| format!("--secure-port {value}: {e}"))?),
            "--tls-cert" => {
                cert = Some(value);
                builder
            }
            "--tls-key" => {
                key = Some(value);
                builder
            }
            "--tls-ca" => {
                ca = Some(value);
                builder
            }
            "--tls-key-password-file" => {
                let text =
                    std::fs::read_to_string(&value).map_err(|e| format!("--tls-key-password-file {value}: {e}"))?;
                password = Some(text.trim_end_matches(['\r', '\n']).to_owned());
                builder
            }
            "--data-dir" => builder.data_dir(value),
            "--jaas" => builder.sasl_users(SaslUsers::from_jaas_file(&value, "Server").map_err(|e| e.to_string())?),
            "--config" => {
                let text = std::fs::read_to_string(&value).map_err(|e| format!("--config {value}: {e}"))?;
                let base = std::path::Path::new(&value).parent().unwrap_or(std::path::Path::new("."));
                let (next, ignored) = builder.zoo_cfg(&text, base).map_err(|e| e.to_string())?;
                if !ignored.is_empty() {
                    eprintln!("corral-server: {value}: keys ignored: {}", ignored.join(", "));
                }
                next
            }
            other => return Err(format!("unknown option {other}")),
        };
    }
    match (cert, key) {
        (Some(cert), Some(key)) => {
            let mut tls = ServerTls::builder_from_files(cert, key);
            if let Some(ca) = ca {
                tls = tls.client_ca_pem_file(ca);
            }
            if let Some(password) = password {
                tls = tls.key_password(password);
            }
            builder = builder.tls(tls.build().map_err(|e| e.to_string())?);
        }
        (None, None) if ca.is_none() && password.is_none() => {}
        _ => {
            return Err(
                "--tls-cert and --tls-key go together (and --tls-ca and --tls-key-password-file need them)".into()
            );
        }
    }
    Ok(builder)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // Warnings (a truncated log tail, a failed fsync) on stderr; RUST_LOG for more.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let builder = match parse_args(std::env::args().skip(1)) {
        Ok(builder) => builder,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("corral-server: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match builder.start().await {
        Ok(server) => {
            println!("listening on {}", server.addr());
            if let Some(secure) = server.secure_addr() {
                println!("secure port on {secure}");
            }
            std::future::pending::<()>().await;
            server.shutdown().await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("corral-server: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> impl Iterator<Item = String> {
        s.split_whitespace().map(str::to_owned).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn parses_flags() {
        assert!(
            parse_args(args("--port 2181 --tick-time 100 --min-session-timeout 200 --max-session-timeout 900")).is_ok()
        );
        assert!(parse_args(args("--port 0 --data-dir /tmp/zk")).is_ok());
        assert!(parse_args(args("--port")).is_err());
        assert!(parse_args(args("--port x")).is_err());
        assert!(parse_args(args("--bogus 1")).is_err());
        assert!(parse_args(args("--tls-cert a.pem")).is_err());
        assert!(parse_args(args("--tls-cert /nonexistent/a.pem --tls-key /nonexistent/a.key")).is_err());
        assert!(parse_args(args("--jaas /nonexistent/jaas.conf")).is_err());
        let missing = parse_args(args("--tls-key-password-file /nonexistent/password")).err().unwrap_or_default();
        assert!(missing.contains("/nonexistent/password"), "{missing}");
        let alone = std::env::temp_dir().join(format!("corral-server-password-{}", std::process::id()));
        std::fs::write(&alone, "secret\n").expect("write");
        let err = parse_args(args(&format!("--tls-key-password-file {}", alone.display()))).err().unwrap_or_default();
        assert!(err.contains("need them"), "a password without a key is an error: {err}");
        let _ = std::fs::remove_file(alone);
        assert!(parse_args(args("--config /nonexistent/zoo.cfg")).is_err());
    }
}
