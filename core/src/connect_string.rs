//! Connect strings (`host1:port1,host2:port2/optional/chroot`) and the chroot mapping.

use corral_proto::validate_path;

use crate::error::{Error, Result};

/// ZooKeeper's default client port.
pub const DEFAULT_PORT: u16 = 2181;

/// One server address from a connect string; the name is resolved at every connection attempt.
///
/// It displays as `host:port`, with brackets around an IPv6 address.
///
/// # Examples
///
/// ```
/// use corral_core::ConnectString;
///
/// let cs: ConnectString = "zk1,[::1]:2182".parse()?;
/// assert_eq!(cs.hosts[0].to_string(), "zk1:2181");
/// assert_eq!(cs.hosts[1].to_string(), "[::1]:2182");
/// # Ok::<(), corral_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A parsed connect string: `host1:port1,host2:port2/optional/chroot`.
///
/// A missing port is [`DEFAULT_PORT`]; IPv6 addresses go in brackets; the chroot, if any,
/// starts at the first `/` and must be a valid path. [`Client::connect`](crate::Client::connect)
/// and the builders parse it for you; parse it yourself to check configuration early.
///
/// # Errors
///
/// Parsing fails with [`Error::InvalidConnectString`] for no hosts, an empty host name, a
/// port that is not a number in `0..=65535`, an unclosed `[`, or an invalid chroot.
///
/// # Examples
///
/// ```
/// use corral_core::{ConnectString, Error};
///
/// let cs: ConnectString = "zk1:2181,zk2,[::1]:2182/apps/web".parse()?;
/// assert_eq!(cs.hosts.len(), 3);
/// assert_eq!(cs.hosts[1].port, 2181);
/// assert_eq!(cs.chroot.as_deref(), Some("/apps/web"));
///
/// let bad = "zk1:99999".parse::<ConnectString>();
/// assert!(matches!(bad, Err(Error::InvalidConnectString { .. })));
/// # Ok::<(), corral_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectString {
    /// The servers, in the order given.
    pub hosts: Vec<HostPort>,
    /// The chroot every path is relative to, or `None` for the real root.
    pub chroot: Option<String>,
}

impl std::str::FromStr for ConnectString {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidConnectString { input: input.to_owned(), reason: reason.to_owned() };
        let input_trimmed = input.trim();
        let (hosts_part, chroot) = match input_trimmed.find('/') {
            Some(i) => (&input_trimmed[..i], Some(&input_trimmed[i..])),
            None => (input_trimmed, None),
        };
        let chroot = match chroot {
            None | Some("/") => None,
            Some(c) => {
                validate_path(c).map_err(|e| bad(&format!("invalid chroot: {}", e.reason)))?;
                Some(c.to_owned())
            }
        };
        let mut hosts = Vec::new();
        for entry in hosts_part.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
                let end = rest.find(']').ok_or_else(|| bad("unclosed [ in IPv6 address"))?;
                let host = &rest[..end];
                let port = match &rest[end + 1..] {
                    "" => None,
                    p => Some(p.strip_prefix(':').ok_or_else(|| bad("expected :port after ]"))?),
                };
                (host, port)
            } else {
                match entry.rsplit_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (entry, None),
                }
            };
            if host.is_empty() {
                return Err(bad("empty host name"));
            }
            let port = match port {
                None => DEFAULT_PORT,
                Some(p) => p.parse::<u16>().map_err(|_| bad(&format!("invalid port {p:?}")))?,
            };
            hosts.push(HostPort { host: host.to_owned(), port });
        }
        if hosts.is_empty() {
            return Err(bad("no hosts"));
        }
        Ok(Self { hosts, chroot })
    }
}

/// Maps client paths to server paths and back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Chroot(Option<String>);

impl Chroot {
    pub(crate) fn new(chroot: Option<String>) -> Self {
        Self(chroot)
    }

    /// The chroot path, if any.
    pub(crate) fn root(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The server path for a client path: `/` maps to the chroot itself.
    pub(crate) fn prepend(&self, path: &str) -> String {
        match &self.0 {
            None => path.to_owned(),
            Some(root) if path == "/" => root.clone(),
            Some(root) => format!("{root}{path}"),
        }
    }

    /// The client path for a server path. A path outside the chroot is returned unchanged
    /// (and logged): it cannot happen with a conforming server.
    pub(crate) fn strip(&self, path: &str) -> String {
        match &self.0 {
            None => path.to_owned(),
            Some(root) => match path.strip_prefix(root.as_str()) {
                Some("") => "/".to_owned(),
                Some(rest) if rest.starts_with('/') => rest.to_owned(),
                _ => {
                    tracing::warn!(path, chroot = %root, "server path outside the chroot");
                    path.to_owned()
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ports_and_chroot() {
        let cs: ConnectString = "a:1, b ,[::1]:3,[fe80::1]/x/y".parse().unwrap();
        let hosts: Vec<String> = cs.hosts.iter().map(ToString::to_string).collect();
        assert_eq!(hosts, ["a:1", "b:2181", "[::1]:3", "[fe80::1]:2181"]);
        assert_eq!(cs.chroot.as_deref(), Some("/x/y"));
        assert_eq!("a:1/".parse::<ConnectString>().unwrap().chroot, None);
    }

    #[test]
    fn rejects_bad_strings() {
        for bad in ["", "/chroot", "a:notaport", "a:70000", "a/bad/", "a/b//c", "[::1", ":2181"] {
            assert!(bad.parse::<ConnectString>().is_err(), "{bad}");
        }
    }

    #[test]
    fn chroot_maps_both_ways() {
        let c = Chroot::new(Some("/app".into()));
        assert_eq!(c.prepend("/"), "/app");
        assert_eq!(c.prepend("/x"), "/app/x");
        assert_eq!(c.strip("/app"), "/");
        assert_eq!(c.strip("/app/x"), "/x");
        assert_eq!(c.strip("/apple"), "/apple");
        let none = Chroot::default();
        assert_eq!(none.prepend("/x"), "/x");
        assert_eq!(none.strip("/x"), "/x");
    }
}
