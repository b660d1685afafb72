//! [`ServiceInstance`]: one registered instance of a service, in Curator's JSON.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

/// How an instance's node lives (Curator's `ServiceType`).
///
/// Serialized as Curator's names: `DYNAMIC`, `STATIC`, `PERMANENT`, `DYNAMIC_SEQUENTIAL`.
///
/// # Examples
///
/// ```
/// use corral_recipes::discovery::ServiceType;
///
/// assert_eq!(serde_json::to_string(&ServiceType::DynamicSequential)?, r#""DYNAMIC_SEQUENTIAL""#);
/// assert_eq!(serde_json::from_str::<ServiceType>(r#""PERMANENT""#)?, ServiceType::Permanent);
/// assert_eq!(ServiceType::default(), ServiceType::Dynamic);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceType {
    /// An ephemeral node: gone with the session (and re-registered by this process).
    #[default]
    Dynamic,
    /// A persistent node. While registered, this process re-creates it if someone deletes it.
    Static,
    /// A persistent node, as [`ServiceType::Static`]. It outlives its session, but
    /// [`ServiceDiscovery`](super::ServiceDiscovery) deletes it on
    /// [`close`](super::ServiceDiscovery::close) and on drop like every registration (as
    /// Curator does, CURATOR-94), so only a crash leaves it behind.
    Permanent,
    /// An ephemeral sequential node: the node's name is the id with a sequence suffix, while
    /// the instance's JSON keeps the id without it.
    DynamicSequential,
}

impl ServiceType {
    /// The name Curator writes (`DYNAMIC`, `STATIC`, `PERMANENT`, `DYNAMIC_SEQUENTIAL`).
    fn curator_name(self) -> &'static str {
        match self {
            Self::Dynamic => "DYNAMIC",
            Self::Static => "STATIC",
            Self::Permanent => "PERMANENT",
            Self::DynamicSequential => "DYNAMIC_SEQUENTIAL",
        }
    }
}

/// One part of a [`UriSpec`]: a literal, or a `{variable}`.
///
/// # Examples
///
/// ```
/// use corral_recipes::discovery::{UriPart, UriSpec};
///
/// let spec = UriSpec::parse("{address}/api");
/// assert_eq!(spec.parts[0], UriPart { value: "address".into(), variable: true });
/// assert_eq!(spec.parts[1], UriPart { value: "/api".into(), variable: false });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UriPart {
    /// The literal text, or the variable's name.
    pub value: String,
    /// Whether `value` names a variable.
    pub variable: bool,
}

/// A URI template like `{scheme}://{address}:{port}/api` (Curator's `UriSpec`).
///
/// Variables: `scheme` (`https` when the instance has an SSL port, else `http`), `name`, `id`,
/// `address`, `port`, `ssl-port`, `registration-time-utc`, `service-type` (lower case), `[` and
/// `]` (a literal `{` and `}`), as Curator's; and any name found in an object payload.
///
/// # Examples
///
/// ```
/// use corral_recipes::discovery::{ServiceInstance, UriSpec};
///
/// let spec = UriSpec::parse("{scheme}://{address}:{port}/api");
/// let instance = ServiceInstance::<()>::builder("api").address("10.0.0.5").port(8080).build();
/// assert_eq!(spec.build(&instance), "http://10.0.0.5:8080/api");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UriSpec {
    /// The parts, in order.
    pub parts: Vec<UriPart>,
}

impl UriSpec {
    /// Parses a template: `{name}` is a variable, everything else is literal.
    ///
    /// Parsing never fails: a `{` without a closing `}` is literal text.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_recipes::discovery::UriSpec;
    ///
    /// let spec = UriSpec::parse("{scheme}://{address}:{port}");
    /// assert_eq!(spec.parts.len(), 5);
    /// assert_eq!(spec.parts.iter().filter(|p| p.variable).count(), 3);
    /// assert!(!UriSpec::parse("{unclosed").parts[0].variable);
    /// ```
    pub fn parse(template: &str) -> Self {
        let mut parts = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            match (rest.find('{'), rest.find('}')) {
                (Some(0), Some(close)) => {
                    parts.push(UriPart { value: rest[1..close].to_owned(), variable: true });
                    rest = &rest[close + 1..];
                }
                (Some(open), _) if open > 0 => {
                    parts.push(UriPart { value: rest[..open].to_owned(), variable: false });
                    rest = &rest[open..];
                }
                _ => {
                    parts.push(UriPart { value: rest.to_owned(), variable: false });
                    rest = "";
                }
            }
        }
        Self { parts }
    }

    /// Builds the URI for `instance` (unknown variables become empty).
    ///
    /// A variable that names no built-in is looked up in the payload, when the payload
    /// serializes to a JSON object: strings as they are, other values as JSON.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_recipes::discovery::{ServiceInstance, UriSpec};
    ///
    /// let instance = ServiceInstance::builder("api")
    ///     .address("10.0.0.5")
    ///     .ssl_port(8443)
    ///     .payload(serde_json::json!({ "version": "v2" }))
    ///     .build();
    /// let spec = UriSpec::parse("{scheme}://{address}:{ssl-port}/{version}/{nope}");
    /// assert_eq!(spec.build(&instance), "https://10.0.0.5:8443/v2/");
    /// ```
    pub fn build<T: Serialize>(&self, instance: &ServiceInstance<T>) -> String {
        let payload: HashMap<String, String> = match serde_json::to_value(&instance.payload) {
            Ok(serde_json::Value::Object(map)) => {
                map.into_iter().map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect()
            }
            _ => HashMap::new(),
        };
        let mut out = String::new();
        for part in &self.parts {
            if !part.variable {
                out.push_str(&part.value);
                continue;
            }
            let value = match part.value.as_str() {
                "scheme" => (if instance.ssl_port.is_some() { "https" } else { "http" }).to_owned(),
                "name" => instance.name.clone(),
                "id" => instance.id.clone(),
                "address" => instance.address.clone().unwrap_or_default(),
                "port" => instance.port.map(|p| p.to_string()).unwrap_or_default(),
                "ssl-port" => instance.ssl_port.map(|p| p.to_string()).unwrap_or_default(),
                "registration-time-utc" => instance.registration_time_utc.to_string(),
                "service-type" => instance.service_type.curator_name().to_ascii_lowercase(),
                "[" => "{".to_owned(),
                "]" => "}".to_owned(),
                other => payload.get(other).cloned().unwrap_or_default(),
            };
            out.push_str(&value);
        }
        out
    }
}

/// One instance of a service (Curator's `ServiceInstance`), serialized as Curator's
/// `JsonInstanceSerializer` does in its default compatible mode: the same fields in the same
/// order, `null` for unset values, no `enabled` unless set, and no `@class` on the payload
/// (a `@class` written by Java is accepted and ignored on read, as are unknown fields).
///
/// `T` is the payload type: anything serde can handle; `serde_json::Value` (the default) reads
/// any payload.
///
/// # Examples
///
/// ```
/// use corral_recipes::discovery::{ServiceInstance, ServiceType};
///
/// let java = r#"{"name":"api","id":"i1","address":"10.0.0.5","port":8080,"sslPort":null,
///   "payload":{"@class":"java.util.HashMap","zone":"a"},"registrationTimeUTC":1700000000000,
///   "serviceType":"DYNAMIC","uriSpec":null}"#;
/// let instance: ServiceInstance = serde_json::from_str(java)?;
/// assert_eq!(instance.payload.unwrap()["zone"], "a");
/// assert_eq!(instance.service_type, ServiceType::Dynamic);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "T: DeserializeOwned"))]
pub struct ServiceInstance<T = serde_json::Value> {
    /// The service name.
    pub name: String,
    /// The instance id (unique within the service).
    pub id: String,
    /// The address clients connect to.
    #[serde(default)]
    pub address: Option<String>,
    /// The plain port.
    #[serde(default)]
    pub port: Option<u16>,
    /// The TLS port.
    #[serde(default)]
    pub ssl_port: Option<u16>,
    /// Application data.
    #[serde(default = "none", deserialize_with = "payload_without_class")]
    pub payload: Option<T>,
    /// When the instance was registered, ms since the epoch.
    #[serde(rename = "registrationTimeUTC", default)]
    pub registration_time_utc: i64,
    /// How the node lives.
    #[serde(default)]
    pub service_type: ServiceType,
    /// A URI template for this instance.
    #[serde(default)]
    pub uri_spec: Option<UriSpec>,
    /// Whether the instance takes traffic; omitted when `None` (Curator's compatible mode reads
    /// a missing value as enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

fn none<T>() -> Option<T> {
    None
}

/// Reads a payload, dropping Jackson's `@class` type tag first.
fn payload_without_class<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let mut value = serde_json::Value::deserialize(deserializer)?;
    if value.is_null() {
        return Ok(None);
    }
    if let serde_json::Value::Object(map) = &mut value {
        map.remove("@class");
    }
    serde_json::from_value(value).map(Some).map_err(serde::de::Error::custom)
}

impl<T> ServiceInstance<T> {
    /// A builder with Curator's defaults: a random UUID id, registration time now, DYNAMIC.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_recipes::discovery::{ServiceInstance, ServiceType};
    ///
    /// let instance: ServiceInstance = ServiceInstance::builder("api").build();
    /// assert_eq!(instance.name, "api");
    /// assert_eq!(instance.id.len(), 36); // a UUID
    /// assert_eq!(instance.service_type, ServiceType::Dynamic);
    /// assert!(instance.registration_time_utc > 0);
    /// ```
    pub fn builder(name: impl Into<String>) -> ServiceInstanceBuilder<T> {
        ServiceInstanceBuilder {
            instance: ServiceInstance {
                name: name.into(),
                id: uuid::Uuid::new_v4().to_string(),
                address: None,
                port: None,
                ssl_port: None,
                payload: None,
                registration_time_utc: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64),
                service_type: ServiceType::Dynamic,
                uri_spec: None,
                enabled: None,
            },
        }
    }

    /// Whether the instance takes traffic (a missing `enabled` means yes).
    ///
    /// [`ServiceProvider`](super::ServiceProvider) never picks a disabled instance.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_recipes::discovery::ServiceInstance;
    ///
    /// assert!(ServiceInstance::<()>::builder("api").build().is_enabled());
    /// assert!(!ServiceInstance::<()>::builder("api").enabled(false).build().is_enabled());
    /// ```
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}

impl<T: Serialize> ServiceInstance<T> {
    /// The instance's URI from its [`UriSpec`], if it has one.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_recipes::discovery::ServiceInstance;
    ///
    /// let instance =
    ///     ServiceInstance::<()>::builder("api").address("h").port(80).uri_spec("{scheme}://{address}:{port}").build();
    /// assert_eq!(instance.build_uri().as_deref(), Some("http://h:80"));
    /// assert_eq!(ServiceInstance::<()>::builder("api").build().build_uri(), None);
    /// ```
    pub fn build_uri(&self) -> Option<String> {
        self.uri_spec.as_ref().map(|spec| spec.build(self))
    }

    /// The JSON Curator writes for this instance.
    ///
    /// # Errors
    ///
    /// The payload's serialization error.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_recipes::discovery::ServiceInstance;
    ///
    /// let instance = ServiceInstance::<()>::builder("api").id("i1").port(8080).build();
    /// let json = String::from_utf8(instance.to_json()?).unwrap();
    /// let fields = r#"{"name":"api","id":"i1","address":null,"port":8080,"sslPort":null,"payload":null,"#;
    /// assert!(json.starts_with(fields));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }
}

impl<T: DeserializeOwned> ServiceInstance<T> {
    /// Reads an instance from Curator's JSON.
    ///
    /// # Errors
    ///
    /// The JSON is not an instance (name and id are required; everything else is optional), or
    /// the payload does not deserialize as `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_recipes::discovery::ServiceInstance;
    ///
    /// let instance: ServiceInstance = ServiceInstance::from_json(br#"{"name":"api","id":"i1","port":8080}"#)?;
    /// assert_eq!((instance.id.as_str(), instance.port), ("i1", Some(8080)));
    /// assert!(ServiceInstance::<serde_json::Value>::from_json(br#"{"name":"api"}"#).is_err());
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn from_json(json: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(json)
    }
}

/// Builds a [`ServiceInstance`].
///
/// # Examples
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use corral_recipes::discovery::{ServiceInstance, ServiceType};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// struct Meta {
///     zone: String,
/// }
///
/// let instance = ServiceInstance::builder("api")
///     .id("api-1")
///     .address("10.0.0.5")
///     .port(8080)
///     .service_type(ServiceType::Static)
///     .payload(Meta { zone: "eu-1".into() })
///     .build();
/// let back: ServiceInstance<Meta> = ServiceInstance::from_json(&instance.to_json()?)?;
/// assert_eq!(back, instance);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ServiceInstanceBuilder<T> {
    instance: ServiceInstance<T>,
}

impl<T> ServiceInstanceBuilder<T> {
    /// Sets the id (default: a random UUID).
    ///
    /// The id names the instance's node, `/<base>/<name>/<id>`; it must be a valid node name.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_recipes::discovery::ServiceInstance;
    ///
    /// assert_eq!(ServiceInstance::<()>::builder("api").id("api-1").build().id, "api-1");
    /// ```
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.instance.id = id.into();
        self
    }

    /// Sets the address.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_recipes::discovery::ServiceInstance;
    ///
    /// let instance = ServiceInstance::<()>::builder("api").address("api.internal").build();
    /// assert_eq!(instance.address.as_deref(), Some("api.internal"));
    /// ```
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.instance.address = Some(address.into());
        self
    }

    /// Sets the plain port.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_recipes::discovery::ServiceInstance;
    ///
    /// assert_eq!(ServiceInstance::<()>::builder("api").port(8080).build().port, Some(8080));
    /// ```
    pub fn port(mut self, port: u16) -> Self {
        self.instance.port = Some(port);
        self
    }

    /// Sets the TLS port. With one, a [`UriSpec`]'s `{scheme}` is `https`.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_recipes::discovery::ServiceInstance;
    ///
    /// let instance = ServiceInstance::<()>::builder("api").ssl_port(8443).uri_spec("{scheme}").build();
    /// assert_eq!(instance.ssl_port, Some(8443));
    /// assert_eq!(instance.build_uri().as_deref(), Some("https"));
    /// ```
    pub fn ssl_port(mut self, port: u16) -> Self {
        self.instance.ssl_port = Some(port);
        self
    }

    /// Sets the payload.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_recipes::discovery::ServiceInstance;
    ///
    /// let instance = ServiceInstance::builder("api").payload(serde_json::json!({ "zone": "eu-1" })).build();
    /// assert_eq!(instance.payload.unwrap()["zone"], "eu-1");
    /// ```
    pub fn payload(mut self, payload: T) -> Self {
        self.instance.payload = Some(payload);
        self
    }

    /// Sets the service type (default DYNAMIC).
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_recipes::discovery::{ServiceInstance, ServiceType};
    ///
    /// let instance = ServiceInstance::<()>::builder("db").service_type(ServiceType::Static).build();
    /// assert_eq!(instance.service_type, ServiceType::Static);
    /// ```
    pub fn service_type(mut self, service_type: ServiceType) -> Self {
        self.instance.service_type = service_type;
        self
    }

    /// Sets the URI template, e.g. `{scheme}://{address}:{port}`.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_recipes::discovery::ServiceInstance;
    ///
    /// let instance = ServiceInstance::<()>::builder("api").address("h").uri_spec("{scheme}://{address}/v1").build();
    /// assert_eq!(instance.build_uri().as_deref(), Some("http://h/v1"));
    /// ```
    pub fn uri_spec(mut self, template: &str) -> Self {
        self.instance.uri_spec = Some(UriSpec::parse(template));
        self
    }

    /// Writes `enabled` explicitly (Curator's non-compatible mode).
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_recipes::discovery::ServiceInstance;
    ///
    /// let draining = ServiceInstance::<()>::builder("api").enabled(false).build();
    /// assert!(!draining.is_enabled());
    /// assert!(String::from_utf8(draining.to_json()?).unwrap().ends_with(r#","enabled":false}"#));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.instance.enabled = Some(enabled);
        self
    }

    /// The instance.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_recipes::discovery::ServiceInstance;
    ///
    /// let instance = ServiceInstance::<()>::builder("api").id("i1").build();
    /// assert_eq!((instance.name.as_str(), instance.id.as_str()), ("api", "i1"));
    /// ```
    pub fn build(self) -> ServiceInstance<T> {
        self.instance
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_curators_compatible_json_field_for_field() {
        let instance: ServiceInstance =
            ServiceInstance::builder("anchor-svc").id("inst-0000").address("127.0.0.1").port(20000).build();
        let instance = ServiceInstance { registration_time_utc: 1795299429331, ..instance };
        // Captured from Curator 5.4 (shared/anchors summary).
        let curator = r#"{"name":"anchor-svc","id":"inst-0000","address":"127.0.0.1","port":20000,"sslPort":null,"payload":null,"registrationTimeUTC":1795299429331,"serviceType":"DYNAMIC","uriSpec":null}"#;
        assert_eq!(String::from_utf8(instance.to_json().unwrap()).unwrap(), curator);
    }

    #[test]
    fn reads_curators_rich_json_and_ignores_class_and_unknown_fields() {
        let rich = r#"{"name":"anchor-svc","id":"rich-1","address":"127.0.0.1","port":8080,"sslPort":8443,"payload":{"@class":"java.util.HashMap","zone":"a"},"registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC","uriSpec":{"parts":[{"value":"scheme","variable":true},{"value":"://","variable":false},{"value":"address","variable":true},{"value":":","variable":false},{"value":"port","variable":true}]},"futureField":1}"#;
        let instance: ServiceInstance = ServiceInstance::from_json(rich.as_bytes()).unwrap();
        assert_eq!(instance.ssl_port, Some(8443));
        assert_eq!(instance.payload, Some(serde_json::json!({"zone": "a"})));
        assert_eq!(instance.build_uri().as_deref(), Some("https://127.0.0.1:8080"));
        assert!(instance.is_enabled());
        let minimal: ServiceInstance = ServiceInstance::from_json(br#"{"name":"x","id":"y"}"#).unwrap();
        assert_eq!((minimal.name.as_str(), minimal.port), ("x", None));
    }

    #[test]
    fn uri_spec_round_trips_and_uses_payload_variables() {
        let spec = UriSpec::parse("{scheme}://{address}:{port}/{zone}/x");
        assert_eq!(spec.parts.len(), 8);
        let instance =
            ServiceInstance::builder("s").address("h").port(1).payload(serde_json::json!({"zone": "eu"})).build();
        assert_eq!(spec.build(&instance), "http://h:1/eu/x");
    }

    #[test]
    fn uri_spec_knows_curators_other_variables() {
        let spec = UriSpec::parse("{service-type}/{registration-time-utc}/{[}{port}{]}");
        let instance: ServiceInstance =
            ServiceInstance::builder("s").port(1).service_type(ServiceType::DynamicSequential).build();
        let instance = ServiceInstance { registration_time_utc: 1700000000000, ..instance };
        // What Curator 5.4's UriSpec.build gives.
        assert_eq!(spec.build(&instance), "dynamic_sequential/1700000000000/{1}");
    }
}
