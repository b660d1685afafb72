//! Curator's default node data: what Curator writes into a node its recipes create without data
//! (barrier nodes, double-barrier members and the `ready` node, lock nodes).
//!
//! Curator uses `InetAddress.getLocalHost().getHostAddress()`: the host name resolved to an
//! address, as text. Here: the host name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`)
//! resolved by the system resolver, its first IPv4 address (else its first address), and
//! `127.0.0.1` when there is no host name or it does not resolve — Java's answer on the same
//! machine, as long as the host name resolves to an IPv4 address.

use std::net::{IpAddr, ToSocketAddrs};

use bytes::Bytes;
use tokio::sync::OnceCell;

const LOOPBACK: &str = "127.0.0.1";

/// The local address as text, resolved once per process (on a blocking thread: name resolution
/// may block).
pub(crate) async fn local_address() -> Bytes {
    static DATA: OnceCell<Bytes> = OnceCell::const_new();
    DATA.get_or_init(|| async {
        match tokio::task::spawn_blocking(resolve).await {
            Ok(address) => Bytes::from(address),
            Err(_) => Bytes::from_static(LOOPBACK.as_bytes()),
        }
    })
    .await
    .clone()
}

fn host_name() -> Option<String> {
    let from_kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    from_kernel.or_else(|| std::env::var("HOSTNAME").ok()).map(|h| h.trim().to_owned()).filter(|h| !h.is_empty())
}

fn resolve() -> String {
    let Some(host) = host_name() else { return LOOPBACK.to_owned() };
    let addresses: Vec<IpAddr> = match (host.as_str(), 0).to_socket_addrs() {
        Ok(addrs) => addrs.map(|a| a.ip()).collect(),
        Err(e) => {
            tracing::debug!(%host, error = %e, "host name does not resolve; default data is the loopback address");
            return LOOPBACK.to_owned();
        }
    };
    addresses.iter().find(|a| a.is_ipv4()).or(addresses.first()).map_or_else(|| LOOPBACK.to_owned(), |a| a.to_string())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn an_address_as_text() {
        let data = super::local_address().await;
        let text = std::str::from_utf8(&data).expect("UTF-8");
        assert!(text.parse::<std::net::IpAddr>().is_ok(), "{text:?} is not an address");
    }
}
