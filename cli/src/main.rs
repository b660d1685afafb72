//! `corral`: plain and recipe-aware views of a live ZooKeeper ensemble.
//!
//! Plain commands read and write znodes (`ls`, `tree`, `get`, `stat`, `set`, `create`,
//! `delete`, `watch`, `acl`); recipe-aware commands read the node layouts Curator and
//! `corral-recipes` write (`locks`, `leader`, `services`, `queue`, `barrier`, `counter`); server
//! commands ask each host of the connect string with four-letter words (`health`, `sessions`).
//!
//! `--json` prints one JSON document per command (one per event for `watch`), with snake_case
//! field names; session ids are `0x…` strings, times are ms since the epoch (`*_ms`). Errors go
//! to stderr; the exit codes are listed in [`error`].
//!
//! # Layout
//!
//! `main.rs` parses the command line and dispatches; `connect` makes the client; `plain`,
//! `locks` (`locks`, `leader`), `recipes` (`services`, `queue`, `barrier`, `counter`) and
//! `server` (`health`, `sessions`) are the commands; `layout` reads Curator's node names,
//! `nodes` what every command knows about a node, `fourlw` the four-letter words, `output` the
//! tables and JSON, and `error` the exit codes.

mod connect;
mod error;
mod fourlw;
mod layout;
mod locks;
mod nodes;
mod output;
mod plain;
mod recipes;
mod server;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::connect::{DEFAULT_ZK, Target, parse_timeout};
use crate::error::{CliError, CliResult};
use crate::output::{Out, Style};

/// Plain and recipe-aware views of a live ZooKeeper ensemble.
#[derive(Debug, Parser)]
#[command(name = "corral", version, about, after_help = EXIT_CODES, args_override_self = true)]
struct Cli {
    /// The ensemble: `HOST:PORT[,HOST:PORT...][/chroot]` [env: CORRAL_ZK] [default: 127.0.0.1:2181]
    #[arg(long, global = true, value_name = "CONNECT_STRING")]
    zk: Option<String>,
    /// Print one JSON document per command (one per event for `watch`)
    #[arg(long, global = true)]
    json: bool,
    /// How long to wait for a connection or a four-letter word: 10, 500ms, 2s, 1m
    #[arg(long, global = true, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    timeout: Duration,
    /// Credentials sent before any request, e.g. digest:user:password (repeatable) [env: CORRAL_AUTH]
    #[arg(long, global = true, value_name = "SCHEME:CREDENTIALS")]
    auth: Vec<String>,
    /// Connect over TLS, trusting the CAs in this PEM file (a secureClientPort)
    #[arg(long, global = true, value_name = "PEM_FILE")]
    tls_ca: Option<std::path::PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS; needs --tls-key
    #[arg(long, global = true, value_name = "PEM_FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// Client private key (PEM) for mutual TLS; needs --tls-cert
    #[arg(long, global = true, value_name = "PEM_FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Check the server certificate against this name instead of the host's
    #[arg(long, global = true, value_name = "NAME")]
    tls_server_name: Option<String>,
    /// Log in with SASL DIGEST-MD5 as this user; the password from CORRAL_SASL_PASSWORD
    #[arg(long, global = true, value_name = "USER")]
    sasl_user: Option<String>,
    /// Log in with Kerberos (SASL GSSAPI) with this process's credentials (ticket cache
    /// KRB5CCNAME or keytab KRB5_CLIENT_KTNAME); needs a corral built with `--features gssapi`
    #[arg(long, global = true, conflicts_with = "sasl_user")]
    sasl_gssapi: bool,
    /// The Kerberos principal to log in as, instead of the credentials' default one
    #[arg(long, global = true, value_name = "PRINCIPAL", requires = "sasl_gssapi")]
    sasl_principal: Option<String>,
    /// The primary of the servers' Kerberos principal, `<NAME>/<host>` (default: zookeeper)
    #[arg(long, global = true, value_name = "NAME", requires = "sasl_gssapi")]
    sasl_service: Option<String>,
    #[command(subcommand)]
    command: Command,
}

const EXIT_CODES: &str = "Exit codes: 0 success, 1 failed (refused by the server, unhealthy host), 2 bad usage or \
path, 3 no such node, 4 no connection, 5 four-letter word not in the server's 4lw.commands.whitelist.";

#[derive(Debug, Subcommand)]
enum Command {
    /// List the children of a node (every descendant with -R)
    Ls {
        /// The node
        path: String,
        /// List every descendant, as full paths
        #[arg(short = 'R', long)]
        recursive: bool,
    },
    /// Show a subtree with ephemeral markers and their owner sessions
    Tree {
        /// The root of the subtree
        #[arg(default_value = "/")]
        path: String,
        /// Go at most this many levels below PATH
        #[arg(long, value_name = "N")]
        max_depth: Option<usize>,
    },
    /// Print a node's data (raw bytes; a newline is added on a terminal)
    Get {
        /// The node
        path: String,
    },
    /// Show a node's stat
    Stat {
        /// The node
        path: String,
    },
    /// Set a node's data
    Set {
        /// The node
        path: String,
        /// The new data (`-` reads standard input)
        data: String,
        /// Only if the node is at this version
        #[arg(long, value_name = "V")]
        version: Option<i32>,
    },
    /// Create a node (an ephemeral one is held until Ctrl-C)
    Create {
        /// The node (with --sequential, the prefix of its name)
        path: String,
        /// Its data (`-` reads standard input)
        data: Option<String>,
        /// Ephemeral: deleted when this command ends its session
        #[arg(short, long)]
        ephemeral: bool,
        /// Sequential: a 10-digit sequence number is appended to the name
        #[arg(short, long)]
        sequential: bool,
        /// Container: deleted by the server once its last child is gone
        #[arg(short, long, conflicts_with_all = ["ephemeral", "sequential", "ttl"])]
        container: bool,
        /// TTL node: deleted once it has no children and was not modified for MS milliseconds
        #[arg(long, value_name = "MS", conflicts_with = "ephemeral")]
        ttl: Option<u64>,
        /// Create missing parents as empty persistent nodes
        #[arg(short, long)]
        parents: bool,
    },
    /// Delete a node (with everything below it with -R)
    Delete {
        /// The node
        path: String,
        /// Delete every descendant first
        #[arg(short = 'R', long)]
        recursive: bool,
        /// Only if the node is at this version
        #[arg(long, value_name = "V")]
        version: Option<i32>,
    },
    /// Print the changes of a node (of a subtree with --recursive) until Ctrl-C
    Watch {
        /// The node
        path: String,
        /// Every node below PATH too
        #[arg(short, long)]
        recursive: bool,
    },
    /// Show a node's ACL
    Acl {
        /// The node
        path: String,
    },
    /// Who holds a lock and who waits, in order (Curator mutex, read-write lock, semaphore; kazoo locks)
    Locks {
        /// The lock's path (a semaphore's path holds `leases/` and `locks/`)
        path: String,
        /// For a semaphore: how many leases it grants (the first N leases hold)
        #[arg(long, value_name = "N")]
        max_leases: Option<usize>,
    },
    /// The leader and the participants of a leader latch or selector (or kazoo election), in order
    Leader {
        /// The election's path
        path: String,
    },
    /// Service instances registered with Curator's service discovery
    Services {
        /// The discovery base path, e.g. /services
        base_path: String,
        /// Only this service
        name: Option<String>,
    },
    /// Depth, oldest item and items in flight of a distributed queue
    Queue {
        /// The queue's path
        path: String,
        /// The lock path of a lock-safe queue: its nodes are the items being processed
        #[arg(long, value_name = "PATH")]
        lock_path: Option<String>,
    },
    /// State of a barrier or double barrier
    Barrier {
        /// The barrier's path
        path: String,
    },
    /// Value of a shared count (4-byte int) or distributed atomic long (8-byte long)
    Counter {
        /// The counter's path
        path: String,
    },
    /// Health of every host of the connect string (ruok, srvr, mntr)
    Health,
    /// Client sessions connected to each host (cons)
    Sessions,
}

impl Command {
    /// Whether the command needs a ZooKeeper session (server commands use four-letter words).
    fn needs_session(&self) -> bool {
        !matches!(self, Command::Health | Command::Sessions)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Out::new(cli.json);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return report(&CliError::failed(format!("cannot start the runtime: {e}"))),
    };
    match runtime.block_on(run(cli, out)) {
        Ok(code) => code,
        Err(e) => report(&e),
    }
}

/// Prints `error` to stderr and returns its exit code.
fn report(error: &CliError) -> ExitCode {
    let color = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let stderr_out = Out { json: false, color };
    eprintln!("{} {}", stderr_out.paint("error:", Style::Bad), error.message);
    if let Some(hint) = &error.hint {
        eprintln!("{} {hint}", stderr_out.paint("hint:", Style::Dim));
    }
    ExitCode::from(error.kind.exit_code())
}

async fn run(cli: Cli, out: Out) -> CliResult<ExitCode> {
    let zk = cli.zk.or_else(|| std::env::var("CORRAL_ZK").ok().filter(|s| !s.trim().is_empty()));
    let mut target = Target::new(zk.as_deref().unwrap_or(DEFAULT_ZK), cli.timeout)?;
    let env_auth = std::env::var("CORRAL_AUTH").ok().filter(|s| !s.is_empty());
    for spec in cli.auth.iter().chain(env_auth.iter()) {
        target = target.with_auth(spec)?;
    }
    let tls =
        connect::TlsOptions { ca: cli.tls_ca, cert: cli.tls_cert, key: cli.tls_key, server_name: cli.tls_server_name };
    let sasl = connect::SaslOptions {
        user: cli.sasl_user,
        gssapi: cli.sasl_gssapi,
        principal: cli.sasl_principal,
        service: cli.sasl_service,
    };
    target = target.with_security(tls, sasl)?;
    if !cli.command.needs_session() {
        // Four-letter words go over TLS too when it is configured, as ZooKeeper's
        // secureClientPort answers them.
        return match cli.command {
            Command::Health => server::health(&target, &out).await,
            _ => server::sessions(&target, &out).await.map(|()| ExitCode::SUCCESS),
        };
    }
    let client = target.connect().await?;
    let result = match cli.command {
        Command::Ls { path, recursive } => plain::ls(&client, &out, &path, recursive).await,
        Command::Tree { path, max_depth } => plain::tree(&client, &out, &path, max_depth).await,
        Command::Get { path } => plain::get(&client, &out, &path).await,
        Command::Stat { path } => plain::stat(&client, &out, &path).await,
        Command::Set { path, data, version } => plain::set(&client, &out, &path, &data, version).await,
        Command::Create { path, data, ephemeral, sequential, container, ttl, parents } => {
            let flags = plain::CreateFlags { ephemeral, sequential, container, ttl_ms: ttl, parents };
            plain::create(&client, &out, &path, data.as_deref(), flags).await
        }
        Command::Delete { path, recursive, version } => plain::delete(&client, &out, &path, recursive, version).await,
        Command::Watch { path, recursive } => plain::watch(&client, &out, &path, recursive).await,
        Command::Acl { path } => plain::acl(&client, &out, &path).await,
        Command::Locks { path, max_leases } => locks::locks(&client, &target, &out, &path, max_leases).await,
        Command::Leader { path } => locks::leader(&client, &target, &out, &path).await,
        Command::Services { base_path, name } => recipes::services(&client, &out, &base_path, name.as_deref()).await,
        Command::Queue { path, lock_path } => recipes::queue(&client, &out, &path, lock_path.as_deref()).await,
        Command::Barrier { path } => recipes::barrier(&client, &out, &path).await,
        Command::Counter { path } => recipes::counter(&client, &out, &path).await,
        // Answered above, without a session.
        Command::Health | Command::Sessions => Ok(()),
    };
    client.close().await;
    result.map(|()| ExitCode::SUCCESS)
}
