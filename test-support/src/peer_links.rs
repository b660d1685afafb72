//! Fault proxies on the links between the members of an [`Ensemble`](crate::Ensemble), so that a
//! test can cut a member off from its peers (not from its clients), or cut one link one way.
//!
//! With [`EnsembleBuilder::peer_proxies`](crate::EnsembleBuilder::peer_proxies), member `i`'s
//! configuration names every other member `j` by the addresses of two [`FaultProxy`]s of the
//! link `i → j` (one for the quorum port, one for the election port), whose targets are `j`'s real
//! ports; its own line keeps its real ports, which it binds. Every connection member `i` opens
//! to member `j` goes through the link `i → j`. (ZooKeeper keeps one election connection per
//! pair, opened by the member with the larger id, and followers open the quorum connection to
//! the leader; cutting both links of a pair cuts the pair whoever opened it.)
//!
//! One detail keeps a cut member cut: ZooKeeper's election handshake names the sender's own
//! election address, and a member that receives a connection from a smaller id closes it and
//! connects back *to that address* — its real port, past every proxy. So the election proxy of
//! the link `i → j` rewrites that address to the one of the link `j → i`, and the connection
//! back goes through a proxy too. [`Ensemble::direct_peer_connections`] checks that none ever
//! bypasses them.
//!
//! [`Ensemble::direct_peer_connections`]: crate::Ensemble::direct_peer_connections

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use crate::ensemble::MemberId;
use crate::fault_proxy::{Fault, FaultProxy, FirstMessage};

/// The two proxies of the link from one member to another.
#[derive(Debug)]
pub struct PeerLink {
    /// In front of the target's quorum port (followers to the leader: proposals, acks, pings).
    pub quorum: FaultProxy,
    /// In front of the target's election port (leader election notifications).
    pub election: FaultProxy,
}

impl PeerLink {
    /// Applies `fault` to both proxies of the link.
    pub fn set(&self, fault: Fault) {
        self.quorum.set(fault);
        self.election.set(fault);
    }
}

/// Every link of the ensemble, by `(from, to)`.
#[derive(Debug, Default)]
pub(crate) struct PeerLinks {
    links: BTreeMap<(MemberId, MemberId), PeerLink>,
}

impl PeerLinks {
    /// Starts the proxies of every ordered pair of members; `ports` are each member's
    /// `[client, quorum, election]` ports.
    pub(crate) fn start(ports: &[(MemberId, [u16; 3])]) -> io::Result<Self> {
        let mut links = BTreeMap::new();
        for &(from, _) in ports {
            for &(to, [_, quorum, election]) in ports {
                if from != to {
                    let target = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                    let link = PeerLink {
                        quorum: FaultProxy::start(target(quorum))?,
                        election: FaultProxy::start(target(election))?,
                    };
                    links.insert((from, to), link);
                }
            }
        }
        // The handshake of `from → to` names `from`'s real election port; `to` must call back
        // through the link `to → from`.
        for (&(from, to), link) in &links {
            let own = ports.iter().find(|(id, _)| *id == from).map(|(_, [_, _, election])| *election);
            if let (Some(own), Some(back)) = (own, links.get(&(to, from))) {
                let real = format!("127.0.0.1:{own}");
                let proxied = format!("127.0.0.1:{}", back.election.addr().port());
                link.election.set_first_message(Some(FirstMessage::new(move |bytes: &[u8]| {
                    rewrite_election_address(bytes, &real, &proxied)
                })));
            }
        }
        Ok(Self { links })
    }

    /// The `server.N` lines of member `me`: its own real ports, every other member through a link.
    pub(crate) fn servers_for(&self, me: MemberId, ports: &[(MemberId, [u16; 3])]) -> String {
        ports
            .iter()
            .map(|&(id, [_, quorum, election])| match self.links.get(&(me, id)) {
                Some(link) => {
                    format!("server.{id}=127.0.0.1:{}:{}\n", link.quorum.addr().port(), link.election.addr().port())
                }
                None => format!("server.{id}=127.0.0.1:{quorum}:{election}\n"),
            })
            .collect()
    }

    pub(crate) fn get(&self, from: MemberId, to: MemberId) -> Option<&PeerLink> {
        self.links.get(&(from, to))
    }

    /// Applies `fault` to every link from or to `id`.
    pub(crate) fn set_around(&self, id: MemberId, fault: Fault) {
        for ((from, to), link) in &self.links {
            if *from == id || *to == id {
                link.set(fault);
            }
        }
    }

    /// Puts every link back to [`Fault::Pass`].
    pub(crate) fn heal(&self) {
        for link in self.links.values() {
            link.set(Fault::Pass);
        }
    }
}

/// The pairs of members (smaller id first) joined by a TCP connection of their own, with no
/// proxy between them, read from `/proc`: both ends of an established loopback connection
/// belong to the processes `pids` name. Empty where `/proc` cannot be read.
pub(crate) fn direct_connections(pids: &[(MemberId, u32)]) -> Vec<(MemberId, MemberId)> {
    let mut owner = HashMap::new();
    for &(id, pid) in pids {
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        for fd in fds.flatten() {
            let Ok(target) = fs::read_link(fd.path()) else { continue };
            let target = target.to_string_lossy();
            let inode = target.strip_prefix("socket:[").and_then(|t| t.strip_suffix(']'));
            if let Some(Ok(inode)) = inode.map(str::parse::<u64>) {
                owner.insert(inode, id);
            }
        }
    }
    // (local port, remote port, inode) of every established connection.
    let established: Vec<(u16, u16, u64)> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| fs::read_to_string(table).ok())
        .flat_map(|table| table.lines().skip(1).filter_map(parse_tcp_line).collect::<Vec<_>>())
        .collect();
    let by_local: HashMap<u16, (u16, u64)> =
        established.iter().map(|&(local, remote, inode)| (local, (remote, inode))).collect();
    let mut pairs = BTreeSet::new();
    for &(local, remote, inode) in &established {
        let Some(&a) = owner.get(&inode) else { continue };
        let Some(&(back, peer_inode)) = by_local.get(&remote) else { continue };
        match owner.get(&peer_inode) {
            Some(&b) if back == local && b != a => {
                pairs.insert((a.min(b), a.max(b)));
            }
            _ => {}
        }
    }
    pairs.into_iter().collect()
}

/// `(local port, remote port, inode)` of one established line of `/proc/net/tcp{,6}`.
fn parse_tcp_line(line: &str) -> Option<(u16, u16, u64)> {
    const ESTABLISHED: &str = "01";
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 10 || fields[3] != ESTABLISHED {
        return None;
    }
    let port = |address: &str| u16::from_str_radix(address.rsplit(':').next()?, 16).ok();
    Some((port(fields[1])?, port(fields[2])?, fields[9].parse().ok()?))
}

/// ZooKeeper's election handshake versions that carry the sender's address (3.5 and later).
const HANDSHAKE_VERSIONS: [i64; 2] = [-65536, -65535];
/// Longest address list a handshake may carry (as ZooKeeper's own limit).
const MAX_HANDSHAKE_ADDRESS: usize = 4096;

/// Rewrites `real` to `proxied` in the address list of a ZooKeeper election handshake
/// (`version: i64, sid: i64, length: i32, addresses: "host:port|host:port"`), keeping whatever
/// follows it. `None` while the handshake is incomplete; anything that is not a handshake
/// carrying an address is returned as it is.
fn rewrite_election_address(bytes: &[u8], real: &str, proxied: &str) -> Option<Vec<u8>> {
    const HEADER: usize = 8 + 8 + 4;
    if bytes.len() < HEADER {
        return None;
    }
    let version = i64::from_be_bytes(bytes[..8].try_into().ok()?);
    let length = i32::from_be_bytes(bytes[16..20].try_into().ok()?);
    if !HANDSHAKE_VERSIONS.contains(&version) {
        return Some(bytes.to_vec());
    }
    let Some(length) = usize::try_from(length).ok().filter(|&l| l <= MAX_HANDSHAKE_ADDRESS) else {
        return Some(bytes.to_vec());
    };
    if bytes.len() < HEADER + length {
        return None;
    }
    let Ok(addresses) = std::str::from_utf8(&bytes[HEADER..HEADER + length]) else {
        return Some(bytes.to_vec());
    };
    let rewritten: Vec<&str> = addresses.split('|').map(|a| if a == real { proxied } else { a }).collect();
    let rewritten = rewritten.join("|");
    let mut out = Vec::with_capacity(bytes.len() + rewritten.len());
    out.extend_from_slice(&bytes[..16]);
    out.extend_from_slice(&i32::try_from(rewritten.len()).unwrap_or(i32::MAX).to_be_bytes());
    out.extend_from_slice(rewritten.as_bytes());
    out.extend_from_slice(&bytes[HEADER + length..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(version: i64, sid: i64, address: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&version.to_be_bytes());
        bytes.extend_from_slice(&sid.to_be_bytes());
        bytes.extend_from_slice(&i32::try_from(address.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(address.as_bytes());
        bytes
    }

    #[test]
    fn the_handshake_names_the_proxy_instead_of_the_real_port_and_keeps_what_follows() {
        let mut sent = handshake(-65536, 2, "127.0.0.1:3888");
        sent.extend_from_slice(b"notification");
        let rewritten = rewrite_election_address(&sent, "127.0.0.1:3888", "127.0.0.1:40001").unwrap();
        let mut expected = handshake(-65536, 2, "127.0.0.1:40001");
        expected.extend_from_slice(b"notification");
        assert_eq!(rewritten, expected);
    }

    #[test]
    fn a_multi_address_handshake_has_only_the_matching_address_rewritten() {
        let sent = handshake(-65535, 3, "127.0.0.2:5|127.0.0.1:3888");
        let rewritten = rewrite_election_address(&sent, "127.0.0.1:3888", "127.0.0.1:7").unwrap();
        assert_eq!(rewritten, handshake(-65535, 3, "127.0.0.2:5|127.0.0.1:7"));
    }

    #[test]
    fn an_incomplete_handshake_waits_for_more_and_anything_else_passes_unchanged() {
        let sent = handshake(-65536, 2, "127.0.0.1:3888");
        for cut in [0, 10, 19, sent.len() - 1] {
            assert_eq!(rewrite_election_address(&sent[..cut], "127.0.0.1:3888", "x"), None, "cut at {cut}");
        }
        // Before 3.5 the first long was the sid itself, with no address.
        let old = [&7i64.to_be_bytes()[..], &[0; 12]].concat();
        assert_eq!(rewrite_election_address(&old, "a", "b"), Some(old.clone()));
        let negative = [&(-65536i64).to_be_bytes()[..], &2i64.to_be_bytes(), &(-1i32).to_be_bytes()].concat();
        assert_eq!(rewrite_election_address(&negative, "a", "b"), Some(negative.clone()));
    }

    #[test]
    fn a_tcp_table_line_gives_its_ports_and_inode_when_established() {
        let line = "   3: 0100007F:1F90 0100007F:A2C4 01 00000000:00000000 00:00000000 00000000  1000        0 123456 1 0000000000000000 20 4 30 10 -1";
        assert_eq!(parse_tcp_line(line), Some((0x1F90, 0xA2C4, 123_456)));
        let listening = line.replace(" 01 ", " 0A ");
        assert_eq!(parse_tcp_line(&listening), None);
    }
}
