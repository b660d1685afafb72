//! The simulated network: every client connection is an in-memory pipe to a member of the
//! embedded [`TestingCluster`], carried by a link that the simulation controls.
//!
//! A link is two pump tasks (client to server, server to client). Each pump reads what one side
//! wrote, holds it for a delay drawn from the link's own random generator, and writes it to the
//! other side. While a rule cuts that direction (a one-way cut, or both ways: a black hole) the
//! pump holds what it read and reads nothing more, as TCP does when its segments are lost: the
//! bytes arrive, in order, once the rule is lifted — if the connection still lives by then. A link can be closed (a dropped connection: both sides see the end of the
//! stream), and a member can be killed: its links close and new connections to it are refused
//! until it is revived. Rules apply per client and member, so a client that fails over to
//! another member gets through; a rule for every member catches the client wherever it goes.
//!
//! Every random draw of a link comes from a generator seeded with the run's seed, the client and
//! the link's number among that client's links, so the draws do not depend on how the links'
//! tasks interleave.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use corral_recipes::{BoxStream, ConnectFuture, Connector, HostPort};
use corral_server::testing::TestingCluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;

/// The buffer of each in-memory pipe, as a socket buffer would be.
const PIPE_BUFFER: usize = 256 * 1024;

/// Which way bytes travel on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client to the server (requests, pings).
    ToServer,
    /// From the server to the client (replies, notifications).
    ToClient,
}

impl Direction {
    /// A short name for traces and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::ToServer => "to-server",
            Self::ToClient => "to-client",
        }
    }
}

/// A rule on the links of one client to one member (or to every member).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Nothing gets through either way (held until the rule is lifted); the connection stays
    /// open.
    BlackHole,
    /// Nothing gets through in this direction (held until the rule is lifted).
    Cut(Direction),
}

impl Rule {
    fn holds(self, dir: Direction) -> bool {
        match self {
            Self::BlackHole => true,
            Self::Cut(d) => d == dir,
        }
    }
}

/// One open link.
#[derive(Debug)]
struct Link {
    id: u64,
    client: usize,
    member: usize,
    close: watch::Sender<bool>,
}

#[derive(Debug)]
struct State {
    seed: u64,
    next_link: u64,
    links: Vec<Link>,
    /// `(client, member or None for every member, rule)`.
    rules: Vec<(usize, Option<usize>, Rule)>,
    member_down: Vec<bool>,
    /// Bumped whenever the rules change, to wake the pumps they hold.
    rules_changed: watch::Sender<u64>,
    /// The member each client connected to last.
    last_member: Vec<Option<usize>>,
    /// How many links each client opened.
    opened: Vec<u64>,
    /// The largest one-way delay of a message, in ms, and the odds (in 1/1000) of a spike.
    max_delay_ms: u64,
    spike_per_mille: u64,
}

/// The network of one simulated run. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Net {
    cluster: Arc<TestingCluster>,
    state: Arc<Mutex<State>>,
}

impl Net {
    /// A network to `cluster` for `clients` clients, every draw derived from `seed`.
    pub fn new(cluster: Arc<TestingCluster>, clients: usize, seed: u64) -> Self {
        let members = cluster.len();
        let state = State {
            seed,
            next_link: 0,
            links: Vec::new(),
            rules: Vec::new(),
            member_down: vec![false; members],
            rules_changed: watch::channel(0).0,
            last_member: vec![None; clients],
            opened: vec![0; clients],
            max_delay_ms: 2,
            spike_per_mille: 20,
        };
        Self { cluster, state: Arc::new(Mutex::new(state)) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connect string every client gets: one host per member, `m<i>:<i + 1>`.
    pub fn connect_string(&self) -> String {
        (0..self.cluster.len()).map(|i| format!("m{i}:{}", i + 1)).collect::<Vec<_>>().join(",")
    }

    /// The connector for client `client`.
    pub fn connector(&self, client: usize) -> SimConnector {
        SimConnector { net: self.clone(), client }
    }

    /// The member client `client` connected to last.
    pub fn member_of(&self, client: usize) -> Option<usize> {
        self.state().last_member.get(client).copied().flatten()
    }

    /// Sets `rule` on the links of `client` to `member` (every member with `None`), the open
    /// ones and the ones opened later, until [`Net::clear_rules`].
    pub fn set_rule(&self, client: usize, member: Option<usize>, rule: Rule) {
        let mut state = self.state();
        state.rules.push((client, member, rule));
        state.rules_changed.send_modify(|n| *n += 1);
    }

    /// Lifts every rule on `client`'s links.
    pub fn clear_rules(&self, client: usize) {
        let mut state = self.state();
        state.rules.retain(|(c, _, _)| *c != client);
        state.rules_changed.send_modify(|n| *n += 1);
    }

    /// Closes every open link of `client`; returns how many.
    pub fn drop_client(&self, client: usize) -> usize {
        let state = self.state();
        let mut n = 0;
        for link in state.links.iter().filter(|l| l.client == client) {
            link.close.send_replace(true);
            n += 1;
        }
        n
    }

    /// Kills member `member` for the clients: its links close and new connections are refused
    /// until [`Net::revive_member`]. (The shared tree and sessions live on, as on a replicated
    /// ensemble that lost one member.)
    pub fn kill_member(&self, member: usize) {
        let mut state = self.state();
        state.member_down[member] = true;
        for link in state.links.iter().filter(|l| l.member == member) {
            link.close.send_replace(true);
        }
    }

    /// Lets clients connect to `member` again.
    pub fn revive_member(&self, member: usize) {
        self.state().member_down[member] = false;
    }

    /// Sets the delays of messages: uniform in `[0, max_delay]` ms, with a spike of up to 50 ms
    /// `spike_per_mille` times in 1000.
    pub fn set_delays(&self, max_delay: Duration, spike_per_mille: u64) {
        let mut state = self.state();
        state.max_delay_ms = u64::try_from(max_delay.as_millis()).unwrap_or(u64::MAX);
        state.spike_per_mille = spike_per_mille;
    }

    /// Opens a link from `client` to `member`: the client's end of the pipe.
    fn open(&self, client: usize, member: usize) -> io::Result<DuplexStream> {
        if self.state().member_down[member] {
            return Err(io::Error::new(io::ErrorKind::ConnectionRefused, format!("member {member} is down")));
        }
        let server = self
            .cluster
            .connect_in_memory(member)
            .ok_or_else(|| io::Error::new(io::ErrorKind::ConnectionRefused, format!("member {member} is stopped")))?;
        let (id, rng, close) = {
            let mut state = self.state();
            let id = state.next_link;
            state.next_link += 1;
            if let Some(slot) = state.last_member.get_mut(client) {
                *slot = Some(member);
            }
            let (close, _) = watch::channel(false);
            state.links.push(Link { id, client, member, close: close.clone() });
            // Seeded by the client and its own count of links: the clients' connections can
            // interleave in any order without changing any link's draws.
            let nth = state.opened.get(client).copied().unwrap_or(0);
            if let Some(n) = state.opened.get_mut(client) {
                *n += 1;
            }
            let rng = fastrand::Rng::with_seed(mix(state.seed, (client as u64) << 32 | nth));
            (id, rng, close)
        };
        let (client_end, link_end) = tokio::io::duplex(PIPE_BUFFER);
        let (client_read, client_write) = tokio::io::split(link_end);
        let (server_read, server_write) = tokio::io::split(server);
        let mut rng = rng;
        let up = Pump { net: self.clone(), link: id, client, member, dir: Direction::ToServer, rng: rng.fork() };
        let down = Pump { net: self.clone(), link: id, client, member, dir: Direction::ToClient, rng };
        tokio::spawn(up.run(client_read, server_write, close.subscribe()));
        tokio::spawn(down.run(server_read, client_write, close.subscribe()));
        Ok(client_end)
    }

    /// The delay of the next message of a pump.
    fn delay(&self, rng: &mut fastrand::Rng) -> Duration {
        let state = self.state();
        let spike = rng.u64(0..1000) < state.spike_per_mille;
        Duration::from_millis(if spike { rng.u64(5..=50) } else { rng.u64(0..=state.max_delay_ms) })
    }

    /// Whether a rule holds `dir` of `client`'s link to `member` now; with a receiver that
    /// changes when the rules do.
    fn held(&self, client: usize, member: usize, dir: Direction) -> Option<watch::Receiver<u64>> {
        let state = self.state();
        let held =
            state.rules.iter().any(|(c, m, rule)| *c == client && m.is_none_or(|m| m == member) && rule.holds(dir));
        held.then(|| state.rules_changed.subscribe())
    }

    /// Forgets a link one of whose pumps ended; the other one sees the close and ends too.
    fn closed(&self, link: u64) {
        let mut state = self.state();
        if let Some(l) = state.links.iter().find(|l| l.id == link) {
            l.close.send_replace(true);
        }
        state.links.retain(|l| l.id != link);
    }
}

/// A 64-bit mix of the run's seed and a link's number (splitmix64's finaliser).
pub(crate) fn mix(seed: u64, n: u64) -> u64 {
    let mut z = seed ^ n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One direction of a link.
struct Pump {
    net: Net,
    link: u64,
    client: usize,
    member: usize,
    dir: Direction,
    rng: fastrand::Rng,
}

impl Pump {
    async fn run(
        mut self,
        mut from: impl tokio::io::AsyncRead + Unpin,
        mut to: impl tokio::io::AsyncWrite + Unpin,
        mut close: watch::Receiver<bool>,
    ) {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = tokio::select! {
                biased;
                _ = close.wait_for(|c| *c) => break,
                read = from.read(&mut buf) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                },
            };
            let delay = self.net.delay(&mut self.rng);
            let mut closed = false;
            while let Some(mut changed) = self.net.held(self.client, self.member, self.dir) {
                closed = tokio::select! {
                    biased;
                    _ = close.wait_for(|c| *c) => true,
                    _ = changed.changed() => false,
                };
                if closed {
                    break;
                }
            }
            if closed {
                break;
            }
            if !delay.is_zero() {
                tokio::select! {
                    biased;
                    _ = close.wait_for(|c| *c) => break,
                    () = tokio::time::sleep(delay) => {}
                }
            }
            let written = tokio::select! {
                biased;
                _ = close.wait_for(|c| *c) => break,
                written = to.write_all(&buf[..n]) => written,
            };
            if written.is_err() {
                break;
            }
        }
        self.end(to).await;
    }

    /// Either side's end (or a drop) ends the whole link: both pumps stop and drop their halves,
    /// so both ends see the end of the stream.
    async fn end(self, mut to: impl tokio::io::AsyncWrite + Unpin) {
        let _ = to.shutdown().await;
        self.net.closed(self.link);
    }
}

/// Connects one simulated client through the [`Net`]: host `m<i>:<port>` is member `port - 1`.
#[derive(Debug, Clone)]
pub struct SimConnector {
    net: Net,
    client: usize,
}

impl Connector for SimConnector {
    fn connect(&self, host: &HostPort) -> ConnectFuture {
        let (net, client) = (self.net.clone(), self.client);
        let member = usize::from(host.port).wrapping_sub(1);
        Box::pin(async move {
            if member >= net.cluster.len() {
                return Err(io::Error::new(io::ErrorKind::NotFound, format!("no member for port {}", member + 1)));
            }
            let stream = net.open(client, member)?;
            let addr = SocketAddr::from(([127, 0, 0, 1], u16::try_from(member + 1).unwrap_or(u16::MAX)));
            Ok((Box::new(stream) as BoxStream, addr))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_pick_their_client_member_and_direction() {
        assert!(Rule::BlackHole.holds(Direction::ToServer) && Rule::BlackHole.holds(Direction::ToClient));
        assert!(Rule::Cut(Direction::ToClient).holds(Direction::ToClient));
        assert!(!Rule::Cut(Direction::ToClient).holds(Direction::ToServer));
        assert_ne!(mix(1, 0), mix(1, 1));
        assert_ne!(mix(1, 0), mix(2, 0));
        assert_eq!(mix(7, 3), mix(7, 3));
    }
}
