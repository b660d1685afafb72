//! Ports for servers a test starts in another process (ZooKeeper members and standalone
//! servers): free when chosen, never handed out twice by this process, and below the kernel's
//! ephemeral range, so that no outgoing connection on the machine takes one as its source port
//! in the time between the choice and the server's bind. (A ZooKeeper member binds its quorum
//! port only once it leads, seconds after it starts; asking the kernel for port 0 and releasing
//! it gave a port that was soon another member's, or a connection's.)

use std::collections::HashSet;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Lowest port handed out.
const LOWEST: u16 = 12_000;
/// Candidates tried before giving up.
const ATTEMPTS: usize = 1_000;

/// A free port of `127.0.0.1` for a server another process will bind.
///
/// # Errors
///
/// When no candidate could be bound (the machine is out of ports).
pub(crate) fn free_port() -> io::Result<u16> {
    static GIVEN: OnceLock<Mutex<Given>> = OnceLock::new();
    let given = GIVEN.get_or_init(|| Mutex::new(Given::new()));
    let mut given = given.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (low, high) = given.range;
    if high <= low {
        // No room below the ephemeral range on this machine: let the kernel choose.
        return Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port());
    }
    for _ in 0..ATTEMPTS {
        let port = low + u16::try_from(given.next() % u64::from(high - low)).unwrap_or(0);
        if given.ports.contains(&port) {
            continue;
        }
        // Free for TCP and UDP (a KDC listens on both).
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
            && UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
        {
            given.ports.insert(port);
            return Ok(port);
        }
    }
    Err(io::Error::new(io::ErrorKind::AddrInUse, format!("no free port in {low}..{high} after {ATTEMPTS} tries")))
}

struct Given {
    /// Ports are chosen from `low..high`.
    range: (u16, u16),
    ports: HashSet<u16>,
    /// xorshift state: processes that start together choose different ports.
    state: u64,
}

impl Given {
    fn new() -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let state = (nanos ^ (u64::from(std::process::id()) << 32)) | 1;
        Self { range: (LOWEST, ephemeral_low()), ports: HashSet::new(), state }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }
}

/// The first port of the kernel's ephemeral range (Linux's default when it cannot be read).
fn ephemeral_low() -> u16 {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_free_distinct_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..64).map(|_| free_port().unwrap()).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        let low = ephemeral_low();
        if low > LOWEST {
            assert!(ports.iter().all(|&p| (LOWEST..low).contains(&p)), "{ports:?}");
        }
        for port in ports {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
        }
    }
}
