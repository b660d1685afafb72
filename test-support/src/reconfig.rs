//! A ZooKeeper 3.8 that can be reconfigured: one quorum member (`standaloneEnabled=false`,
//! `reconfigEnabled=true`, `skipACL=yes`) whose dynamic configuration lists its client
//! address, so that `reconfig` works and `/zookeeper/config` reads as an ensemble's does.
//! Observers that do not run can be added and removed (they count in no quorum), which is
//! enough to change the list of servers clients are told about.

use std::net::SocketAddr;
use std::path::Path;

use crate::local::{self, Extra, LocalServer};

/// A reconfigurable single-member ZooKeeper; dropping it stops the JVM (by its PID) and removes
/// its directory.
#[derive(Debug)]
pub struct ReconfigurableZookeeper {
    server: LocalServer,
}

impl ReconfigurableZookeeper {
    /// The client port's address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `127.0.0.1:<client port>`.
    pub fn connect_string(&self) -> String {
        self.server.addr().to_string()
    }

    /// The server's directory (configuration, data, `zookeeper.log`).
    pub fn dir(&self) -> &Path {
        self.server.dir()
    }
}

/// Starts a reconfigurable ZooKeeper (member 1, its quorum and election ports free loopback
/// ports), or skips as [`crate::zookeeper()`] does: `None` with a `skipping:` line when Java or
/// ZooKeeper is missing, a panic instead under `CI=true`.
///
/// # Panics
///
/// When no server can be started and `CI` is set.
pub fn reconfigurable_zookeeper() -> Option<ReconfigurableZookeeper> {
    match start() {
        Ok(server) => Some(ReconfigurableZookeeper { server }),
        Err(reason) => {
            if crate::running_in_ci() {
                panic!("CI is set, so tests may not skip, but a reconfigurable ZooKeeper did not start: {reason}");
            }
            crate::skip_notice(&format!("tests that need a reconfigurable ZooKeeper: {reason}"));
            None
        }
    }
}

fn start() -> Result<LocalServer, String> {
    let quorum = crate::ports::free_port().map_err(|e| format!("no free port: {e}"))?;
    let election = crate::ports::free_port().map_err(|e| format!("no free port: {e}"))?;
    let extra = Extra {
        cfg: format!(
            "initLimit=10\nsyncLimit=5\nstandaloneEnabled=false\nreconfigEnabled=true\nskipACL=yes\n\
             server.1=127.0.0.1:{quorum}:{election};127.0.0.1:{{client_port}}\n"
        ),
        myid: Some(1),
        ..Extra::default()
    };
    local::start_with_extra(crate::DEFAULT_TICK_TIME_MS, &extra)
}
