//! Access control: permission checks, ACL fix-up on create and setACL, and the auth schemes
//! (`world`, `digest`, `ip`, `auth`, plus the `super` digest), as ZooKeeper applies them.

use std::net::IpAddr;

use base64::Engine;
use corral_proto::records::ClientInfo;
use corral_proto::{Acl, ErrorCode, Id, Perms};
use sha1::{Digest, Sha1};

/// The digest id ZooKeeper derives from `"user:password"`: `user:` + Base64(SHA-1 of the whole
/// string).
///
/// Use it to build `digest` ACL entries, or a super digest for
/// [`crate::ServerBuilder::super_digest`].
///
/// # Examples
///
/// ```
/// assert_eq!(corral_server::digest("super:secret").split(':').next(), Some("super"));
/// ```
pub fn digest(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or_default();
    let hash = Sha1::digest(user_password.as_bytes());
    format!("{user}:{}", base64::engine::general_purpose::STANDARD.encode(hash))
}

/// The identities of one connection, checked against node ACLs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Authz<'a> {
    ids: &'a [Id],
    server: bool,
}

impl<'a> Authz<'a> {
    /// A checker for a connection holding `ids`.
    pub(crate) fn new(ids: &'a [Id]) -> Self {
        Self { ids, server: false }
    }

    /// The server acting on its own behalf: every check passes.
    #[cfg(test)]
    pub(crate) fn server() -> Authz<'static> {
        Authz { ids: &[], server: true }
    }

    fn is_super(&self) -> bool {
        self.server || self.ids.iter().any(|id| id.scheme == "super")
    }

    /// Whether `perm` is granted by `acl` (ZooKeeper's `checkACL`).
    pub(crate) fn allows(&self, acl: &[Acl], perm: Perms) -> bool {
        if acl.is_empty() || self.is_super() {
            return true;
        }
        acl.iter().any(|entry| {
            entry.perms.contains(perm)
                && ((entry.id.scheme == "world" && entry.id.id == "anyone")
                    || self
                        .ids
                        .iter()
                        .any(|id| id.scheme == entry.id.scheme && matches(&entry.id.scheme, &id.id, &entry.id.id)))
        })
    }

    /// `Ok` if `perm` is granted, otherwise NoAuth.
    pub(crate) fn check(&self, acl: &[Acl], perm: Perms) -> Result<(), ErrorCode> {
        if self.allows(acl, perm) { Ok(()) } else { Err(ErrorCode::NoAuth) }
    }

    /// The connection's authenticated ids (those that `auth:` expands to).
    fn authenticated(&self) -> impl Iterator<Item = &Id> {
        self.ids.iter().filter(|id| matches!(id.scheme.as_str(), "digest" | "sasl" | "x509"))
    }
}

/// Whether the connection id `have` matches the ACL id `want` under `scheme`.
fn matches(scheme: &str, have: &str, want: &str) -> bool {
    match scheme {
        "ip" => ip_matches(have, want),
        _ => have == want,
    }
}

/// Whether the address `addr` is inside `pattern` (`a.b.c.d`, `a.b.c.d/bits`, or IPv6 forms).
pub(crate) fn ip_matches(addr: &str, pattern: &str) -> bool {
    let Some((net, bits)) = parse_ip_pattern(pattern) else {
        return false;
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return false;
    };
    match (net, addr) {
        (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), bits),
        (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), bits),
        _ => false,
    }
}

fn parse_ip_pattern(pattern: &str) -> Option<(IpAddr, u32)> {
    let (addr, bits) = match pattern.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u32>().ok()?)),
        None => (pattern, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((addr, bits))
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u32) -> bool {
    let whole = (bits / 8) as usize;
    let rest = bits % 8;
    if a.get(..whole) != b.get(..whole) {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    match (a.get(whole), b.get(whole)) {
        (Some(x), Some(y)) => x & mask == y & mask,
        _ => false,
    }
}

/// Whether an ACL id is acceptable for its scheme (ZooKeeper's providers' `isValid`).
fn valid_id(id: &Id) -> bool {
    match id.scheme.as_str() {
        "world" => id.id == "anyone",
        "digest" => {
            // Java's `split(":")` drops trailing empty strings; two parts are required.
            let mut parts: Vec<&str> = id.id.split(':').collect();
            while parts.last() == Some(&"") {
                parts.pop();
            }
            parts.len() == 2
        }
        "ip" => parse_ip_pattern(&id.id).is_some(),
        // ZooKeeper's X509AuthenticationProvider and SASLAuthenticationProvider accept any id.
        "x509" | "sasl" => !id.id.is_empty(),
        _ => false,
    }
}

/// ZooKeeper's `fixupACL`: removes duplicates, expands `auth` entries into the connection's
/// authenticated ids, and validates every other entry.
///
/// # Errors
///
/// InvalidACL for an empty list, an `auth` entry on a connection with no authenticated id, or
/// an entry whose scheme or id is not valid.
pub(crate) fn fixup(acl: &[Acl], authz: &Authz<'_>) -> Result<Vec<Acl>, ErrorCode> {
    if acl.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut unique: Vec<&Acl> = Vec::with_capacity(acl.len());
    for entry in acl {
        if !unique.contains(&entry) {
            unique.push(entry);
        }
    }
    let mut out = Vec::with_capacity(unique.len());
    for entry in unique {
        if entry.id.scheme == "auth" {
            let before = out.len();
            out.extend(authz.authenticated().map(|id| Acl::new(entry.perms, id.clone())));
            if out.len() == before {
                return Err(ErrorCode::InvalidAcl);
            }
        } else if valid_id(&entry.id) {
            out.push(entry.clone());
        } else {
            return Err(ErrorCode::InvalidAcl);
        }
    }
    Ok(out)
}

/// The ids an auth packet adds to a connection, or `None` if authentication failed.
///
/// `digest` adds `digest:user:hash` (and `super:` if the hash is the configured super digest);
/// `ip` adds the connection's address; every other scheme fails.
pub(crate) fn authenticate(scheme: &str, auth: &[u8], peer_ip: &str, super_digest: Option<&str>) -> Option<Vec<Id>> {
    match scheme {
        "digest" => {
            let credentials = std::str::from_utf8(auth).ok()?;
            let id = digest(credentials);
            let mut ids = Vec::with_capacity(2);
            if super_digest == Some(id.as_str()) {
                ids.push(Id::new("super", ""));
            }
            ids.push(Id::new("digest", id));
            Some(ids)
        }
        "ip" => Some(vec![Id::new("ip", peer_ip)]),
        _ => None,
    }
}

/// The ACL as a caller without ADMIN sees it: digest hashes replaced by `x`.
pub(crate) fn mask_digests(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|entry| {
            if entry.id.scheme == "digest" {
                let user = entry.id.id.split(':').next().unwrap_or_default();
                Acl::new(entry.perms, Id::new("digest", format!("{user}:x")))
            } else {
                entry.clone()
            }
        })
        .collect()
}

/// The whoAmI answer for a connection's ids: digest ids give their user name only.
pub(crate) fn who_am_i(ids: &[Id]) -> Vec<ClientInfo> {
    ids.iter()
        .map(|id| ClientInfo {
            auth_scheme: id.scheme.clone(),
            user: match id.scheme.as_str() {
                "digest" => id.id.split(':').next().unwrap_or_default().to_owned(),
                _ => id.id.clone(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha1_base64_of_the_whole_credentials() {
        // ZooKeeper's own documentation example: super:test.
        assert_eq!(digest("super:test"), "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
    }

    #[test]
    fn checks_follow_the_acl() {
        let user = Id::new("digest", digest("u:p"));
        let ids = [Id::new("ip", "10.1.2.3"), user.clone()];
        let authz = Authz::new(&ids);
        let acl = vec![Acl::new(Perms::READ, user), Acl::new(Perms::WRITE, Id::new("ip", "10.0.0.0/8"))];
        assert!(authz.allows(&acl, Perms::READ));
        assert!(authz.allows(&acl, Perms::WRITE));
        assert!(!authz.allows(&acl, Perms::ADMIN));
        assert!(!Authz::new(&[]).allows(&acl, Perms::READ));
        assert!(Authz::new(&[]).allows(&[], Perms::ADMIN));
        assert!(Authz::server().allows(&acl, Perms::ADMIN));
        assert!(Authz::new(&[Id::new("super", "")]).allows(&acl, Perms::ADMIN));
    }

    #[test]
    fn ip_cidr() {
        assert!(ip_matches("10.1.2.3", "10.0.0.0/8"));
        assert!(!ip_matches("11.1.2.3", "10.0.0.0/8"));
        assert!(ip_matches("192.168.1.130", "192.168.1.128/25"));
        assert!(!ip_matches("192.168.1.127", "192.168.1.128/25"));
        assert!(ip_matches("127.0.0.1", "127.0.0.1"));
        assert!(ip_matches("1.2.3.4", "0.0.0.0/0"));
        assert!(!ip_matches("1.2.3.4", "1.2.3.4/33"));
        assert!(ip_matches("::1", "::1/128"));
        assert!(!ip_matches("::1", "127.0.0.1"));
    }

    #[test]
    fn fixup_rules() {
        let none = Authz::new(&[]);
        assert_eq!(fixup(&[], &none), Err(ErrorCode::InvalidAcl));
        assert_eq!(fixup(&Acl::creator_all(), &none), Err(ErrorCode::InvalidAcl));
        let open = Acl::open_unsafe();
        let doubled = [open.clone(), open.clone()].concat();
        assert_eq!(fixup(&doubled, &none), Ok(open));
        let ids = [Id::new("ip", "127.0.0.1"), Id::new("digest", "u:h")];
        assert_eq!(
            fixup(&Acl::creator_all(), &Authz::new(&ids)),
            Ok(vec![Acl::new(Perms::ALL, Id::new("digest", "u:h"))])
        );
        for bad in [
            ("world", "someone"),
            ("digest", "nohash"),
            ("ip", "300.0.0.1"),
            ("sasl", ""),
            ("kerberos", "x"),
            ("super", ""),
        ] {
            assert_eq!(
                fixup(&[Acl::new(Perms::ALL, Id::new(bad.0, bad.1))], &none),
                Err(ErrorCode::InvalidAcl),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn auth_schemes() {
        let ids = authenticate("digest", b"u:p", "127.0.0.1", None).unwrap_or_default();
        assert_eq!(ids, vec![Id::new("digest", digest("u:p"))]);
        let sup = digest("super:s");
        let ids = authenticate("digest", b"super:s", "127.0.0.1", Some(&sup)).unwrap_or_default();
        assert_eq!(ids.first(), Some(&Id::new("super", "")));
        assert_eq!(authenticate("world", b"anyone", "127.0.0.1", None), None);
        assert_eq!(who_am_i(&[Id::new("digest", "u:h")])[0].user, "u");
        assert_eq!(mask_digests(&[Acl::new(Perms::READ, Id::new("digest", "u:h"))])[0].id.id, "u:x");
    }
}
