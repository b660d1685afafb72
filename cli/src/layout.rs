//! Curator's node layouts, read back: lock ordering, protected names, queue item names,
//! counter encodings and discovery JSON.
//!
//! The names and Curator's ordering rule come from `corral-recipes`; the parsing of names
//! (protected UUIDs, sequences, queue items), of counters and of discovery JSON for display is
//! written here.

use serde_json::Value;

pub(crate) use corral_recipes::leader_latch::LATCH_NAME;
pub(crate) use corral_recipes::lock::{LOCK_NAME, READ_LOCK_NAME, WRITE_LOCK_NAME};
pub(crate) use corral_recipes::queue::{QUEUE_ITEM_NAME, SIMPLE_QUEUE_PREFIX, decode_message};
pub(crate) use corral_recipes::semaphore::LEASE_NAME;
pub(crate) use corral_recipes::sort::{sort_children, sort_key};

/// The child of a semaphore's path holding one node per lease (Curator's SemaphoreV2).
pub(crate) const LEASES_DIR: &str = "leases";
/// The child of a semaphore's path holding the mutex acquirers queue on.
pub(crate) const LOCKS_DIR: &str = "locks";
/// The node a double barrier's last member creates to let everyone in.
pub(crate) const READY_NODE: &str = "ready";

/// kazoo's `Lock` (and `Election`) node marker: `<uuid hex>__lock__<seq>`.
pub(crate) use corral_recipes::kazoo::LOCK_NODE_NAME as KAZOO_LOCK_NAME;
/// kazoo's `ReadLock` node marker: `<uuid hex>__rlock__<seq>`.
pub(crate) use corral_recipes::kazoo::READ_LOCK_NODE_NAME as KAZOO_READ_LOCK_NAME;

/// Whose read-write (or plain) lock layout a directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockFlavor {
    /// Curator's `InterProcessReadWriteLock`: `__READ__` and `__WRIT__`.
    Curator,
    /// kazoo's `Lock` / `ReadLock`: `__lock__` and `__rlock__`.
    Kazoo,
}

impl LockFlavor {
    /// The shared (read) marker.
    pub(crate) fn read_name(self) -> &'static str {
        match self {
            LockFlavor::Curator => READ_LOCK_NAME,
            LockFlavor::Kazoo => KAZOO_READ_LOCK_NAME,
        }
    }

    /// The exclusive (write) marker.
    pub(crate) fn write_name(self) -> &'static str {
        match self {
            LockFlavor::Curator => WRITE_LOCK_NAME,
            LockFlavor::Kazoo => KAZOO_LOCK_NAME,
        }
    }

    /// The sort key: Curator strips the read name then the write name and compares what is
    /// left (foreign names whole); kazoo compares the sequence after its marker and sorts
    /// foreign names last.
    pub(crate) fn sort_key(self, child: &str) -> &str {
        match self {
            LockFlavor::Curator => sort_key(sort_key(child, READ_LOCK_NAME), WRITE_LOCK_NAME),
            LockFlavor::Kazoo => [KAZOO_LOCK_NAME, KAZOO_READ_LOCK_NAME]
                .into_iter()
                .find_map(|name| child.find(name).map(|i| &child[i + name.len()..]))
                .unwrap_or("~"),
        }
    }
}

/// The UUID of a protected name (`_c_<uuid>-…`), as Curator's `isProtectedZNode` checks it.
pub(crate) fn protected_uuid(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("_c_")?;
    if rest.len() <= 37 || rest.as_bytes()[36] != b'-' {
        return None;
    }
    let uuid = &rest[..36];
    let canonical = uuid.char_indices().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => c == '-',
        _ => c.is_ascii_hexdigit(),
    });
    canonical.then_some(uuid)
}

/// The ten-digit sequence suffix ZooKeeper appended (signed once the counter wrapped).
pub(crate) fn sequence(name: &str) -> Option<i64> {
    // `%010d`: ten digits, or a minus sign and nine digits.
    let digits = name.get(name.len().checked_sub(10)?..)?;
    let unsigned = digits.strip_prefix('-').unwrap_or(digits);
    if !unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What a queue node's name says about its item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum QueueName {
    /// `qn-<seq>`: SimpleDistributedQueue.
    Simple,
    /// `queue-<seq>`: DistributedQueue.
    Plain,
    /// `queue-<sign><%08X><seq>`: DistributedPriorityQueue.
    Priority(i32),
    /// `queue-|<%08X epoch ms>|<seq>`: DistributedDelayQueue.
    Delay(i64),
    /// `queue-|<id>|<seq>`: DistributedIdQueue.
    Id(String),
}

impl QueueName {
    /// Reads a child name of a queue; `None` for a node that is not an item.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        if let Some(rest) = name.strip_prefix(SIMPLE_QUEUE_PREFIX) {
            return sequence(rest).map(|_| QueueName::Simple);
        }
        let rest = name.strip_prefix(QUEUE_ITEM_NAME)?;
        sequence(rest)?;
        let head = &rest[..rest.len() - 10];
        if head.is_empty() {
            return Some(QueueName::Plain);
        }
        if let Some(inner) = head.strip_prefix('|').and_then(|h| h.strip_suffix('|')) {
            let is_time = inner.len() >= 8 && inner.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
            return Some(match i64::from_str_radix(inner, 16) {
                Ok(ms) if is_time => QueueName::Delay(ms),
                _ => QueueName::Id(inner.to_owned()),
            });
        }
        if head.len() == 9 && (head.starts_with('0') || head.starts_with('1')) {
            return u32::from_str_radix(&head[1..], 16).ok().map(|v| QueueName::Priority(v as i32));
        }
        None
    }

    /// The kind of queue this item belongs to, for JSON.
    pub(crate) fn queue_kind(&self) -> &'static str {
        match self {
            QueueName::Simple => "simple_queue",
            QueueName::Plain => "distributed_queue",
            QueueName::Priority(_) => "priority_queue",
            QueueName::Delay(_) => "delay_queue",
            QueueName::Id(_) => "id_queue",
        }
    }
}

/// A counter node's value, read from its encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counter {
    /// 4 bytes, big-endian: Curator's SharedCount (and kazoo's Counter with `support_curator`).
    SharedCount(i32),
    /// 8 bytes, big-endian: Curator's DistributedAtomicLong.
    AtomicLong(i64),
    /// No data.
    Empty,
    /// Neither.
    Unknown,
}

impl Counter {
    /// Reads a counter's data.
    pub(crate) fn decode(data: &[u8]) -> Self {
        match data.len() {
            0 => Counter::Empty,
            4 => Counter::SharedCount(i32::from_be_bytes([data[0], data[1], data[2], data[3]])),
            8 => {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(data);
                Counter::AtomicLong(i64::from_be_bytes(bytes))
            }
            _ => Counter::Unknown,
        }
    }
}

/// A service instance as curator-x-discovery writes it, read leniently (unknown fields
/// ignored, `@class` dropped from the payload, wrong types read as missing).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Instance {
    /// The service name.
    pub(crate) name: Option<String>,
    /// The instance id.
    pub(crate) id: Option<String>,
    /// The address clients connect to.
    pub(crate) address: Option<String>,
    /// The plain port.
    pub(crate) port: Option<i64>,
    /// The TLS port.
    pub(crate) ssl_port: Option<i64>,
    /// Application data, without Jackson's `@class`.
    pub(crate) payload: Value,
    /// Registration time, ms since the epoch.
    pub(crate) registration_time_ms: Option<i64>,
    /// `DYNAMIC`, `STATIC`, `PERMANENT` or `DYNAMIC_SEQUENTIAL`.
    pub(crate) service_type: Option<String>,
    /// `false` if the instance takes no traffic; missing means enabled.
    pub(crate) enabled: bool,
    /// The URI template, as stored.
    pub(crate) uri_spec: Value,
}

impl Instance {
    /// Reads an instance node's data.
    pub(crate) fn parse(data: &[u8]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(data).map_err(|e| format!("not JSON: {e}"))?;
        let Value::Object(map) = value else {
            return Err("not a JSON object".to_owned());
        };
        let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_owned);
        let number = |key: &str| map.get(key).and_then(Value::as_i64);
        let mut payload = map.get("payload").cloned().unwrap_or(Value::Null);
        if let Value::Object(p) = &mut payload {
            p.remove("@class");
        }
        Ok(Self {
            name: text("name"),
            id: text("id"),
            address: text("address"),
            port: number("port"),
            ssl_port: number("sslPort"),
            payload,
            registration_time_ms: number("registrationTimeUTC"),
            service_type: text("serviceType"),
            enabled: map.get("enabled").and_then(Value::as_bool).unwrap_or(true),
            uri_spec: map.get("uriSpec").cloned().unwrap_or(Value::Null),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "e9bb5fbf-b733-46cf-ab11-a33cedd318b9";

    #[test]
    fn curator_order_whatever_the_prefix() {
        let mut children = vec![
            format!("_c_{UUID}-lock-0000000003"),
            "lock-0000000001".to_owned(),
            format!("_c_{UUID}-lock-0000000002"),
        ];
        sort_children(&mut children, LOCK_NAME);
        let keys: Vec<&str> = children.iter().map(|c| sort_key(c, LOCK_NAME)).collect();
        assert_eq!(keys, ["0000000001", "0000000002", "0000000003"]);
        let curator = LockFlavor::Curator;
        assert_eq!(curator.sort_key(&format!("_c_{UUID}-__READ__0000000004")), "0000000004");
        assert_eq!(curator.sort_key(&format!("_c_{UUID}-__WRIT__0000000005")), "0000000005");
        let kazoo = LockFlavor::Kazoo;
        assert_eq!(kazoo.sort_key("514e5a83b0c94c4fa0a4c83b1d3c1e12__lock__0000000032"), "0000000032");
        assert_eq!(kazoo.sort_key("514e5a83b0c94c4fa0a4c83b1d3c1e12__rlock__0000000033"), "0000000033");
        assert_eq!(kazoo.sort_key("lease_holder"), "~");
    }

    #[test]
    fn protected_names_and_sequences() {
        assert_eq!(protected_uuid(&format!("_c_{UUID}-lock-0000000003")), Some(UUID));
        assert_eq!(protected_uuid("_c_0123-lock-0000000003"), None);
        assert_eq!(protected_uuid("lock-0000000003"), None);
        assert_eq!(sequence("lock-0000000042"), Some(42));
        assert_eq!(sequence("lock--000000042"), Some(-42));
        assert_eq!(sequence("ready"), None);
    }

    #[test]
    fn queue_names() {
        assert_eq!(QueueName::parse("qn-0000000000"), Some(QueueName::Simple));
        assert_eq!(QueueName::parse("queue-0000000007"), Some(QueueName::Plain));
        assert_eq!(QueueName::parse("queue-1000000050000000000"), Some(QueueName::Priority(5)));
        assert_eq!(QueueName::parse("queue-0FFFFFFFD0000000001"), Some(QueueName::Priority(-3)));
        assert_eq!(QueueName::parse("queue-|1A2002211BC|0000000000"), Some(QueueName::Delay(0x1A2002211BC)));
        assert_eq!(QueueName::parse("queue-|my-id|0000000000"), Some(QueueName::Id("my-id".into())));
        assert_eq!(QueueName::parse("queue-|abc|0000000000"), Some(QueueName::Id("abc".into())));
        assert_eq!(QueueName::parse("foreign"), None);
        assert_eq!(QueueName::parse("queue-abc"), None);
    }

    #[test]
    fn odd_names_never_panic() {
        for name in
            ["", "-", "_c_", "_c_é", "queue-", "queue-|", "queue-||0000000001", "qn-é000000001", "ééééééééééé", "lock-"]
        {
            let _ = (protected_uuid(name), sequence(name), QueueName::parse(name));
            let _ = (LockFlavor::Curator.sort_key(name), LockFlavor::Kazoo.sort_key(name));
        }
        let multibyte = format!("_c_{}-lock-0000000001", "é".repeat(18));
        assert_eq!(protected_uuid(&multibyte), None);
        assert_eq!(QueueName::parse("queue-||0000000001"), Some(QueueName::Id(String::new())));
    }

    #[test]
    fn counters() {
        assert_eq!(Counter::decode(&[0, 0, 0, 42]), Counter::SharedCount(42));
        assert_eq!(Counter::decode(&[0xff, 0xff, 0xff, 0xff]), Counter::SharedCount(-1));
        assert_eq!(Counter::decode(&[0, 0, 0, 0, 0, 0, 1, 0]), Counter::AtomicLong(256));
        assert_eq!(Counter::decode(b""), Counter::Empty);
        assert_eq!(Counter::decode(b"abc"), Counter::Unknown);
    }

    #[test]
    fn discovery_json_from_curator() {
        let java = br#"{"name":"my-service","id":"b6c1","address":"10.0.0.5","port":8080,"sslPort":8443,
            "payload":{"@class":"Probe$Payload","zone":"us-east-1a"},"registrationTimeUTC":1795297962824,
            "serviceType":"DYNAMIC","uriSpec":null}"#;
        let instance = Instance::parse(java).unwrap();
        assert_eq!(instance.address.as_deref(), Some("10.0.0.5"));
        assert_eq!((instance.port, instance.ssl_port), (Some(8080), Some(8443)));
        assert_eq!(instance.payload, serde_json::json!({"zone": "us-east-1a"}));
        assert_eq!(instance.registration_time_ms, Some(1_795_297_962_824));
        assert!(instance.enabled);
        let minimal = Instance::parse(br#"{"name":"x","id":"y","enabled":false}"#).unwrap();
        assert_eq!((minimal.port, minimal.enabled), (None, false));
        assert!(Instance::parse(b"garbage").is_err());
    }
}
