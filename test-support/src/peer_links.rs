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

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use crate::ensemble::MemberId;
use crate::fault_proxy::{Fault, FaultProxy};

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
