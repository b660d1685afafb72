//! `corral-server`: runs the embedded ZooKeeper-compatible server from a shell.
//!
//! ```text
//! corral-server --port PORT [--host ADDR] [--tick-time MS] [--min-session-timeout MS] [--max-session-timeout MS]
//! ```
//!
//! It prints `listening on HOST:PORT` once it accepts connections, then serves until killed.
//!
//! The server runs on a current-thread Tokio runtime: every request takes the one state mutex
//! anyway, so a second worker adds nothing but cross-thread wake-ups and futex parking. Leaving
//! them out cut the CPU of 10,000 idle sessions by about 30 % (benches/README.md).

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use corral_server::{Server, ServerBuilder};

const USAGE: &str = "usage: corral-server [--port PORT] [--host ADDR] [--tick-time MS] \
                     [--min-session-timeout MS] [--max-session-timeout MS]";

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<ServerBuilder, String> {
    let mut builder = Server::builder();
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
            other => return Err(format!("unknown option {other}")),
        };
    }
    Ok(builder)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
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
        assert!(parse_args(args("--port")).is_err());
        assert!(parse_args(args("--port x")).is_err());
        assert!(parse_args(args("--bogus 1")).is_err());
    }
}
