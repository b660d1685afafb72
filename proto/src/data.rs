//! Node metadata and access control: [`Stat`], [`Acl`], [`Id`], [`Perms`] and [`CreateMode`].

use bytes::{Buf, BufMut};

use crate::jute::{DecodeError, Jute, record};

record! {
    /// A node's metadata, 68 bytes on the wire.
    ///
    /// `cversion` counts child creates *and* deletes as clients see it; `ephemeral_owner` is the
    /// owning session for an ephemeral node and 0 otherwise (containers and TTL nodes too).
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::{Jute, Stat};
    ///
    /// let stat = Stat { czxid: 7, mzxid: 9, version: 2, data_length: 5, ..Stat::default() };
    /// let bytes = stat.to_bytes();
    /// assert_eq!(bytes.len(), Stat::ENCODED_LEN);
    /// assert_eq!(Stat::from_bytes(&bytes)?, stat);
    /// # Ok::<(), corral_proto::DecodeError>(())
    /// ```
    pub struct Stat {
        /// zxid of the transaction that created the node.
        pub czxid: i64,
        /// zxid of the last data change (equals `czxid` at creation).
        pub mzxid: i64,
        /// Wall-clock creation time, ms since the epoch.
        pub ctime: i64,
        /// Wall-clock time of the last data change, ms since the epoch.
        pub mtime: i64,
        /// Data version: +1 per setData.
        pub version: i32,
        /// Child version: +1 per child create or delete.
        pub cversion: i32,
        /// ACL version: +1 per setACL.
        pub aversion: i32,
        /// Owning session id of an ephemeral node, otherwise 0.
        pub ephemeral_owner: i64,
        /// Length of the node's data (0 for null data).
        pub data_length: i32,
        /// Number of children.
        pub num_children: i32,
        /// zxid of the last child create or delete (equals `czxid` at creation).
        pub pzxid: i64,
    }
}

impl Stat {
    /// The size of a Stat on the wire.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::{Jute, Stat};
    ///
    /// assert_eq!(Stat::default().to_bytes().len(), Stat::ENCODED_LEN);
    /// ```
    pub const ENCODED_LEN: usize = 68;
}

record! {
    /// An identity: a scheme (`world`, `auth`, `digest`, `ip`, `sasl`, `x509`, `super`) and an id.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::Id;
    ///
    /// let office = Id::new("ip", "10.0.0.0/8");
    /// assert_eq!((office.scheme.as_str(), office.id.as_str()), ("ip", "10.0.0.0/8"));
    /// ```
    pub struct Id {
        /// The scheme.
        pub scheme: String,
        /// The id within the scheme, e.g. `anyone`, `user:base64(sha1)`, `10.0.0.0/8`.
        pub id: String,
    }
}

impl Id {
    /// An id from its scheme and value.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::Id;
    ///
    /// // A digest id is `user:base64(sha1("user:password"))`, here for admin:secret.
    /// let admin = Id::new("digest", "admin:fvr2cB/fjGeAiX8g1aGhUm3ZICk=");
    /// assert_eq!(admin.scheme, "digest");
    /// ```
    pub fn new(scheme: impl Into<String>, id: impl Into<String>) -> Self {
        Self { scheme: scheme.into(), id: id.into() }
    }

    /// `world:anyone`, the identity everybody has.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::Id;
    ///
    /// assert_eq!(Id::anyone(), Id::new("world", "anyone"));
    /// ```
    pub fn anyone() -> Self {
        Self::new("world", "anyone")
    }

    /// `auth:`, replaced by the server with the connection's authenticated identities.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::Id;
    ///
    /// assert_eq!(Id::authenticated(), Id::new("auth", ""));
    /// ```
    pub fn authenticated() -> Self {
        Self::new("auth", "")
    }
}

/// Permission bits of an ACL entry.
///
/// Combine them with `|`; the raw bits are the tuple field, as on the wire.
///
/// # Examples
///
/// ```
/// use corral_proto::Perms;
///
/// let read_write = Perms::READ | Perms::WRITE;
/// assert_eq!(read_write.0, 0b11);
/// assert!(Perms::ALL.contains(read_write));
/// assert!(!read_write.contains(Perms::ADMIN));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Perms(pub i32);

impl Perms {
    /// Read data and list children (`r`, bit 0).
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::Perms;
    ///
    /// assert_eq!(Perms::READ.0, 1);
    /// ```
    pub const READ: Perms = Perms(1);
    /// Set data (`w`, bit 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::Perms;
    ///
    /// assert_eq!(Perms::WRITE.0, 2);
    /// ```
    pub const WRITE: Perms = Perms(1 << 1);
    /// Create children (`c`, bit 2).
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::Perms;
    ///
    /// assert_eq!(Perms::CREATE.0, 4);
    /// ```
    pub const CREATE: Perms = Perms(1 << 2);
    /// Delete children (`d`, bit 3).
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::Perms;
    ///
    /// assert_eq!(Perms::DELETE.0, 8);
    /// ```
    pub const DELETE: Perms = Perms(1 << 3);
    /// Set the ACL (`a`, bit 4).
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::Perms;
    ///
    /// assert_eq!(Perms::ADMIN.0, 16);
    /// ```
    pub const ADMIN: Perms = Perms(1 << 4);
    /// Every permission (`cdrwa`).
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::Perms;
    ///
    /// assert_eq!(Perms::ALL, Perms::READ | Perms::WRITE | Perms::CREATE | Perms::DELETE | Perms::ADMIN);
    /// ```
    pub const ALL: Perms = Perms(31);

    /// Whether every bit of `other` is set in `self`.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::Perms;
    ///
    /// let perms = Perms::READ | Perms::CREATE;
    /// assert!(perms.contains(Perms::CREATE));
    /// assert!(!perms.contains(Perms::CREATE | Perms::DELETE)); // every bit, not any bit
    /// ```
    pub const fn contains(self, other: Perms) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Perms {
    type Output = Perms;
    fn bitor(self, rhs: Perms) -> Perms {
        Perms(self.0 | rhs.0)
    }
}

impl Jute for Perms {
    fn write<B: BufMut>(&self, buf: &mut B) {
        buf.put_i32(self.0);
    }
    fn read<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        Ok(Perms(i32::read(buf)?))
    }
}

record! {
    /// One ACL entry: what `id` may do.
    ///
    /// A node's ACL is a `Vec<Acl>`; an identity may do what any entry matching it grants.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::{Acl, Id, Jute, Perms};
    ///
    /// let acl = vec![Acl::new(Perms::READ, Id::anyone()), Acl::new(Perms::ALL, Id::new("ip", "127.0.0.1"))];
    /// let bytes = acl.to_bytes();
    /// assert_eq!(Vec::<Acl>::from_bytes(&bytes)?, acl);
    /// # Ok::<(), corral_proto::DecodeError>(())
    /// ```
    pub struct Acl {
        /// The permissions granted.
        pub perms: Perms,
        /// To whom.
        pub id: Id,
    }
}

impl Acl {
    /// An entry granting `perms` to `id`.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::{Acl, Id, Perms};
    ///
    /// let entry = Acl::new(Perms::READ | Perms::WRITE, Id::new("ip", "10.0.0.0/8"));
    /// assert!(entry.perms.contains(Perms::WRITE));
    /// ```
    pub fn new(perms: Perms, id: Id) -> Self {
        Self { perms, id }
    }

    /// `OPEN_ACL_UNSAFE`: everyone may do everything.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::{Acl, Id, Perms};
    ///
    /// assert_eq!(Acl::open_unsafe(), [Acl::new(Perms::ALL, Id::anyone())]);
    /// ```
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl::new(Perms::ALL, Id::anyone())]
    }

    /// `CREATOR_ALL_ACL`: the creator's authenticated identities may do everything.
    ///
    /// The server refuses it (InvalidAcl) from a connection with no authenticated identity.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::{Acl, Id, Perms};
    ///
    /// assert_eq!(Acl::creator_all(), [Acl::new(Perms::ALL, Id::authenticated())]);
    /// ```
    pub fn creator_all() -> Vec<Acl> {
        vec![Acl::new(Perms::ALL, Id::authenticated())]
    }

    /// `READ_ACL_UNSAFE`: everyone may read.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::{Acl, Perms};
    ///
    /// let acl = Acl::read_unsafe();
    /// assert!(acl.iter().all(|entry| entry.perms == Perms::READ));
    /// ```
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl::new(Perms::READ, Id::anyone())]
    }
}

/// How a node is created: its lifetime and whether a sequence suffix is appended.
///
/// # Examples
///
/// ```
/// use corral_proto::CreateMode;
///
/// let mode = CreateMode::EphemeralSequential;
/// assert!(mode.is_ephemeral() && mode.is_sequential());
/// assert_eq!(mode.flags(), 3);
/// assert_eq!(CreateMode::default(), CreateMode::Persistent);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CreateMode {
    /// Lives until deleted.
    #[default]
    Persistent,
    /// Deleted when the creating session ends.
    Ephemeral,
    /// Persistent, with a 10-digit sequence suffix.
    PersistentSequential,
    /// Ephemeral, with a 10-digit sequence suffix.
    EphemeralSequential,
    /// Deleted by the server once it has had children and has none left.
    Container,
    /// Deleted by the server when it has no children and was not modified within its TTL.
    PersistentWithTtl,
    /// [`CreateMode::PersistentWithTtl`] with a sequence suffix.
    PersistentSequentialWithTtl,
}

impl CreateMode {
    /// The `flags` value on the wire.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::CreateMode;
    ///
    /// assert_eq!(CreateMode::Container.flags(), 4);
    /// assert_eq!(CreateMode::PersistentSequentialWithTtl.flags(), 6);
    /// ```
    pub const fn flags(self) -> i32 {
        match self {
            Self::Persistent => 0,
            Self::Ephemeral => 1,
            Self::PersistentSequential => 2,
            Self::EphemeralSequential => 3,
            Self::Container => 4,
            Self::PersistentWithTtl => 5,
            Self::PersistentSequentialWithTtl => 6,
        }
    }

    /// The mode for a `flags` value, or `None` if the value is not a mode (the server answers
    /// BadArguments).
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::CreateMode;
    ///
    /// assert_eq!(CreateMode::from_flags(1), Some(CreateMode::Ephemeral));
    /// assert_eq!(CreateMode::from_flags(7), None);
    /// ```
    pub const fn from_flags(flags: i32) -> Option<Self> {
        Some(match flags {
            0 => Self::Persistent,
            1 => Self::Ephemeral,
            2 => Self::PersistentSequential,
            3 => Self::EphemeralSequential,
            4 => Self::Container,
            5 => Self::PersistentWithTtl,
            6 => Self::PersistentSequentialWithTtl,
            _ => return None,
        })
    }

    /// Whether the node is deleted with its session.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::CreateMode;
    ///
    /// assert!(CreateMode::Ephemeral.is_ephemeral());
    /// assert!(!CreateMode::Container.is_ephemeral());
    /// ```
    pub const fn is_ephemeral(self) -> bool {
        matches!(self, Self::Ephemeral | Self::EphemeralSequential)
    }

    /// Whether a sequence suffix is appended to the name.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::CreateMode;
    ///
    /// assert!(CreateMode::PersistentSequentialWithTtl.is_sequential());
    /// assert!(!CreateMode::PersistentWithTtl.is_sequential());
    /// ```
    pub const fn is_sequential(self) -> bool {
        matches!(self, Self::PersistentSequential | Self::EphemeralSequential | Self::PersistentSequentialWithTtl)
    }

    /// Whether the node is a container.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::CreateMode;
    ///
    /// assert!(CreateMode::Container.is_container());
    /// assert!(!CreateMode::Persistent.is_container());
    /// ```
    pub const fn is_container(self) -> bool {
        matches!(self, Self::Container)
    }

    /// Whether the node has a time to live.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_proto::CreateMode;
    ///
    /// assert!(CreateMode::PersistentWithTtl.is_ttl());
    /// assert!(!CreateMode::Ephemeral.is_ttl());
    /// ```
    pub const fn is_ttl(self) -> bool {
        matches!(self, Self::PersistentWithTtl | Self::PersistentSequentialWithTtl)
    }
}

/// The largest TTL ZooKeeper accepts, in milliseconds (2⁴⁰ − 1).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use corral_proto::MAX_TTL_MS;
///
/// // About 34.8 years.
/// assert_eq!(Duration::from_millis(MAX_TTL_MS as u64).as_secs() / (365 * 24 * 3600), 34);
/// ```
pub const MAX_TTL_MS: i64 = (1 << 40) - 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_68_bytes() {
        assert_eq!(Stat::default().to_bytes().len(), Stat::ENCODED_LEN);
    }

    #[test]
    fn create_mode_flags_round_trip() {
        for flags in 0..7 {
            assert_eq!(CreateMode::from_flags(flags).map(CreateMode::flags), Some(flags));
        }
        assert_eq!(CreateMode::from_flags(7), None);
        assert_eq!(CreateMode::from_flags(-1), None);
    }
}
