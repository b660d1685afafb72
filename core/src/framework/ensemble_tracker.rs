//! Ensemble tracking, as Curator's `EnsembleTracker`: the framework reads the ensemble's
//! configuration (`/zookeeper/config`) with a watch on every connection and, when the servers
//! clients should use change (a `reconfig` added, removed or moved one), gives the new list to
//! the client ([`Client::update_server_list`](crate::Client::update_server_list)) and to every
//! later session's client.
//!
//! A configuration lists each server as `server.<id>=<address>:<quorum port>:<election
//! port>[:<role>][;[<client address>:]<client port>]`, then `version=<hex>`. A server's client
//! address is the one after `;`; a wildcard (`0.0.0.0`, `::`) or a bare port means the
//! server's own address. Servers without a client port are not for clients; a configuration
//! with none (a standalone server's is empty) changes nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Shared;
use crate::connect_string::HostPort;

/// The pause before reading the configuration again after a failed read.
const RETRY: Duration = Duration::from_secs(1);

/// The servers a client should use, from an ensemble configuration, in the configuration's
/// order; empty when it names none.
pub(crate) fn client_hosts(config: &str) -> Vec<HostPort> {
    let mut hosts = Vec::new();
    for line in config.lines() {
        let Some((key, value)) = line.trim().split_once('=') else { continue };
        if !key.trim().starts_with("server.") {
            continue;
        }
        let Some((server, client)) = value.split_once(';') else { continue };
        // A server may list several addresses (`a:1:2|b:1:2`); the first one names it.
        let server_host = server.split('|').next().and_then(|first| split_host(first.trim()).map(|(h, _)| h));
        let client = client.trim();
        let (host, port) = match split_host(client) {
            Some((host, rest)) if !rest.is_empty() => (Some(host), rest),
            _ => (None, client),
        };
        let Ok(port) = port.parse::<u16>() else { continue };
        let host = match host {
            Some(h) if !is_wildcard(&h) => h,
            _ => match &server_host {
                Some(h) => h.clone(),
                None => continue,
            },
        };
        let entry = HostPort { host, port };
        if !hosts.contains(&entry) {
            hosts.push(entry);
        }
    }
    hosts
}

/// `host` and what follows its `:` in `host:rest` (`[v6]:rest` for IPv6); `None` without a
/// host part.
fn split_host(s: &str) -> Option<(String, &str)> {
    if let Some(inner) = s.strip_prefix('[') {
        let (host, rest) = inner.split_once(']')?;
        return Some((host.to_owned(), rest.strip_prefix(':').unwrap_or(rest)));
    }
    let (host, rest) = s.split_once(':')?;
    Some((host.to_owned(), rest))
}

fn is_wildcard(host: &str) -> bool {
    matches!(host, "0.0.0.0" | "::" | "0:0:0:0:0:0:0:0")
}

/// Follows the configuration until the framework closes.
pub(crate) async fn run(shared: Arc<Shared>, mut closing: watch::Receiver<bool>) {
    let mut states = shared.states.subscribe();
    let mut applied: Option<Vec<HostPort>> = None;
    loop {
        let now = tokio::select! {
            now = states.wait_for(|s| s.state.is_connected()) => match now {
                Ok(now) => *now,
                Err(_) => return,
            },
            _ = closing.wait_for(|c| *c) => return,
        };
        let client = shared.client();
        match client.get_config_and_watch().await {
            Ok((data, _, watcher)) => {
                apply(&shared, &String::from_utf8_lossy(&data), &mut applied);
                // Read again when it changes, or on the next session (whose client has no watch).
                tokio::select! {
                    _ = watcher => {}
                    _ = states.wait_for(|s| s.epoch != now.epoch) => {}
                    _ = closing.wait_for(|c| *c) => return,
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the ensemble configuration yet");
                tokio::select! {
                    _ = tokio::time::sleep(RETRY) => {}
                    _ = closing.wait_for(|c| *c) => return,
                }
            }
        }
    }
}

/// Gives the framework the configuration's servers when they differ from the last ones given.
fn apply(shared: &Shared, config: &str, applied: &mut Option<Vec<HostPort>>) {
    let hosts = client_hosts(config);
    if hosts.is_empty() {
        return;
    }
    let mut sorted = hosts.clone();
    sorted.sort_by(|a, b| (&a.host, a.port).cmp(&(&b.host, b.port)));
    if applied.as_ref() == Some(&sorted) {
        return;
    }
    tracing::info!(
        servers = %hosts.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
        "the ensemble's configuration changed; using its servers"
    );
    shared.use_hosts(hosts);
    *applied = Some(sorted);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort { host: host.into(), port }
    }

    #[test]
    fn reads_the_client_addresses_of_a_configuration() {
        let config = "server.1=10.0.0.1:2888:3888:participant;0.0.0.0:2181\n\
                      server.2=zk2.example:2888:3888:participant;10.0.1.2:2182\n\
                      server.3=zk3.example:2888:3888:observer;2183\n\
                      server.4=zk4.example:2888:3888:participant\n\
                      server.5=[fe80::5]:2888:3888;[::]:2185\n\
                      server.6=a6:2888:3888|b6:2888:3888;2186\n\
                      version=100000002\n";
        assert_eq!(
            client_hosts(config),
            vec![
                hp("10.0.0.1", 2181),
                hp("10.0.1.2", 2182),
                hp("zk3.example", 2183),
                hp("fe80::5", 2185),
                hp("a6", 2186)
            ]
        );
    }

    #[test]
    fn an_empty_or_garbled_configuration_names_no_server() {
        assert!(client_hosts("").is_empty());
        assert!(client_hosts("version=0\n").is_empty());
        assert!(client_hosts("server.1=h:1:2;notaport\nserver.2=;\nserver.3\n=\n").is_empty());
        assert_eq!(client_hosts("server.1=h:1:2;7\nserver.1=h:1:2;7\n"), vec![hp("h", 7)]);
    }
}
