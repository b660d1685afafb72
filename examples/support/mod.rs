//! What every recipe example shares: `--zk` (or `CORRAL_ZK`) or an embedded server, `--hold`
//! to keep the recipe's nodes in place for `corral` to look at, and a timeline on stdout.

#![allow(dead_code)]

use std::fmt::Display;
use std::time::{Duration, Instant};

use corral::Framework;
use corral_server::testing::TestingServer;

/// The longest any step of an example may take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(20);

/// Any error, for `main`.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where an example runs, and how.
pub(crate) struct Setup {
    /// The connect string (the embedded server's when no `--zk` was given).
    pub(crate) connect_string: String,
    /// `--hold`: keep the recipe's state until Enter, and print the `corral` command to see it.
    pub(crate) hold: bool,
    embedded: Option<TestingServer>,
    started: Instant,
}

impl Setup {
    /// Reads the arguments and starts an embedded server when no ZooKeeper is given.
    pub(crate) async fn start(example: &str) -> Result<Self, BoxError> {
        let mut zk = std::env::var("CORRAL_ZK").ok().filter(|s| !s.is_empty());
        let mut hold = false;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--zk" => zk = Some(args.next().ok_or("--zk needs HOST:PORT")?),
                "--hold" => hold = true,
                "-h" | "--help" => {
                    println!("usage: {example} [--zk HOST:PORT[,HOST:PORT...][/chroot]] [--hold]");
                    println!("  without --zk (or CORRAL_ZK) an embedded ZooKeeper-compatible server is started");
                    println!("  --hold keeps the recipe's nodes until Enter, to look at them with `corral`");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other:?} (try --help)").into()),
            }
        }
        let embedded = match zk {
            Some(_) => None,
            None => Some(TestingServer::start().await?),
        };
        let connect_string = match (zk, &embedded) {
            (Some(zk), _) => zk,
            (None, Some(server)) => server.connect_string(),
            (None, None) => return Err("no server".into()),
        };
        let setup = Self { connect_string, hold, embedded, started: Instant::now() };
        match &setup.embedded {
            Some(_) => setup.say(format!("embedded server listening on {}", setup.connect_string)),
            None => setup.say(format!("using ZooKeeper at {}", setup.connect_string)),
        }
        Ok(setup)
    }

    /// A framework (a session) on the ensemble, connected.
    pub(crate) async fn framework(&self) -> Result<Framework, BoxError> {
        let fw = Framework::builder(&self.connect_string).session_timeout(Duration::from_secs(10)).start()?;
        fw.wait_until_connected(TIMEOUT).await?;
        Ok(fw)
    }

    /// Prints a line of the timeline.
    pub(crate) fn say(&self, what: impl Display) {
        println!("[{:>6} ms] {what}", self.started.elapsed().as_millis());
    }

    /// With `--hold`: prints the `corral` command that shows the state, and waits for Enter.
    pub(crate) async fn hold_for(&self, corral_args: &str) -> Result<(), BoxError> {
        if !self.hold {
            return Ok(());
        }
        println!("holding; in another terminal:");
        println!("    corral --zk {} {corral_args}", self.connect_string);
        println!("press Enter to go on");
        tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new())).await??;
        Ok(())
    }

    /// Stops the embedded server, if any.
    pub(crate) async fn close(self) {
        if let Some(server) = self.embedded {
            server.close().await;
        }
    }
}

/// Waits until `path` has `n` children (the recipe's nodes are in place).
pub(crate) async fn until_children(fw: &Framework, path: &str, n: usize) -> Result<(), BoxError> {
    let client = fw.client();
    tokio::time::timeout(TIMEOUT, async {
        while client.get_children(path).await.map(|c| c.len()).unwrap_or(0) < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .map_err(|_| format!("{path} never had {n} children").into())
}
