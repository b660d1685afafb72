//! Reading ZooKeeper's own `zoo.cfg`, so that an existing configuration drops in: the keys the
//! embedded server supports are applied, every other key is named back to the caller.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::server::{Error, ServerBuilder};
use crate::tls::{ClientAuth, ServerTls};

/// Keys that mean nothing to an in-process, single-member server, accepted without effect
/// (and still named in the ignored list, so nothing is silently dropped).
const NO_EFFECT: &[&str] =
    &["serverCnxnFactory", "dataLogDir", "initLimit", "syncLimit", "autopurge.purgeInterval", "preAllocSize"];

impl ServerBuilder {
    /// Applies the keys of a ZooKeeper `zoo.cfg` (Java properties: `key=value` lines, `#` and
    /// `!` comments) that the embedded server supports, and returns the builder with the keys
    /// it ignored, in file order.
    ///
    /// Supported: `clientPort`, `clientPortAddress`, `secureClientPort`, `tickTime`,
    /// `minSessionTimeout`, `maxSessionTimeout`, `4lw.commands.whitelist`,
    /// `extendedTypesEnabled` (also as `zookeeper.extendedTypesEnabled`), `reconfigEnabled`,
    /// `jute.maxbuffer`, `dataDir` (see [`ServerBuilder::data_dir`]; relative to `base_dir`),
    /// `forceSync` (`yes`/`no`, see [`ServerBuilder::force_sync`]), `snapCount`,
    /// `autopurge.snapRetainCount` (the purge runs after every snapshot, so
    /// `autopurge.purgeInterval` is ignored; logs always live in `dataDir`, so is
    /// `dataLogDir`), and TLS in PEM form: `ssl.keyStore.location` (the private key and the
    /// certificate chain in one file, as ZooKeeper reads it with `ssl.keyStore.type=PEM`),
    /// `ssl.trustStore.location`, `ssl.clientAuth` (`none`, `want`, `need`),
    /// `ssl.keyStore.password` or `ssl.keyStore.passwordPath` (a file holding it) for an
    /// encrypted PKCS#8 key (see [`crate::ServerTlsBuilder::key_password`]), and both `type`
    /// keys when they say `PEM`. `authProvider.N` naming ZooKeeper's SASL or X509 provider is
    /// accepted (the embedded server always has both; SASL users come from a JAAS file, see
    /// [`crate::SaslUsers`]). Relative file names are taken from `base_dir`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a value that does not parse, a key store that is not PEM, or a
    /// trust store without a key store; [`Error::Tls`] for certificates that do not load.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_server::Server;
    ///
    /// let cfg = "tickTime=500\nclientPort=0\ninitLimit=5\n4lw.commands.whitelist=ruok, srvr\n";
    /// let (builder, ignored) = Server::builder().zoo_cfg(cfg, ".")?;
    /// assert_eq!(ignored, ["initLimit"]);
    /// # drop(builder);
    /// # Ok::<(), corral_server::Error>(())
    /// ```
    pub fn zoo_cfg(mut self, text: &str, base_dir: impl AsRef<Path>) -> Result<(Self, Vec<String>), Error> {
        let base = base_dir.as_ref();
        let mut ignored = Vec::new();
        let mut key_store: Option<PathBuf> = None;
        let mut trust_store: Option<PathBuf> = None;
        let mut client_auth: Option<ClientAuth> = None;
        let mut key_password: Option<String> = None;
        for (key, value) in properties(text) {
            let bad = |why: &str| Error::Config(format!("zoo.cfg {key}={value}: {why}"));
            let millis = || value.parse::<u64>().map(Duration::from_millis).map_err(|_| bad("not a number"));
            let flag = || match value.as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(bad("not true or false")),
            };
            self = match key.as_str() {
                "clientPort" => self.port(value.parse().map_err(|_| bad("not a port"))?),
                "secureClientPort" => self.secure_port(value.parse().map_err(|_| bad("not a port"))?),
                "clientPortAddress" => self.host(value.parse().map_err(|_| bad("not an IP address"))?),
                "tickTime" => self.tick_time(millis()?),
                "minSessionTimeout" => self.min_session_timeout(millis()?),
                "maxSessionTimeout" => self.max_session_timeout(millis()?),
                "4lw.commands.whitelist" => self.four_letter_words(value.split(',').map(str::trim)),
                "extendedTypesEnabled" | "zookeeper.extendedTypesEnabled" => self.extended_types(flag()?),
                "reconfigEnabled" => self.reconfig_enabled(flag()?),
                "jute.maxbuffer" => self.max_frame_size(value.parse().map_err(|_| bad("not a number"))?),
                "dataDir" => self.data_dir(base.join(&value)),
                "forceSync" => match value.as_str() {
                    "yes" => self.force_sync(true),
                    "no" => self.force_sync(false),
                    _ => return Err(bad("not yes or no")),
                },
                "snapCount" => self.snap_count(value.parse().map_err(|_| bad("not a number"))?),
                "autopurge.snapRetainCount" => self.snap_retain_count(value.parse().map_err(|_| bad("not a number"))?),
                "ssl.keyStore.location" => {
                    key_store = Some(base.join(&value));
                    self
                }
                "ssl.trustStore.location" => {
                    trust_store = Some(base.join(&value));
                    self
                }
                "ssl.keyStore.password" => {
                    key_password = Some(value.clone());
                    self
                }
                "ssl.keyStore.passwordPath" => {
                    let path = base.join(&value);
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| bad(&format!("cannot read {}: {e}", path.display())))?;
                    // As ZooKeeper's FileKeyReader: the file's text without its line end.
                    key_password = Some(text.trim_end_matches(['\r', '\n']).to_owned());
                    self
                }
                "ssl.keyStore.type" | "ssl.trustStore.type" if value.eq_ignore_ascii_case("PEM") => self,
                "ssl.keyStore.type" | "ssl.trustStore.type" => return Err(bad("only PEM stores are supported")),
                "ssl.clientAuth" => {
                    client_auth = Some(match value.to_ascii_lowercase().as_str() {
                        "none" => ClientAuth::None,
                        "want" => ClientAuth::Want,
                        "need" => ClientAuth::Need,
                        _ => return Err(bad("not none, want or need")),
                    });
                    self
                }
                k if k.starts_with("authProvider.")
                    && (value.ends_with(".SASLAuthenticationProvider")
                        || value.ends_with(".X509AuthenticationProvider")) =>
                {
                    self
                }
                _ => {
                    if !NO_EFFECT.contains(&key.as_str()) {
                        tracing::debug!(%key, "zoo.cfg key not supported");
                    }
                    ignored.push(key.clone());
                    self
                }
            };
        }
        match (key_store, trust_store) {
            (Some(keys), trust) => {
                let mut tls = ServerTls::builder_from_files(&keys, &keys);
                if let Some(trust) = trust {
                    tls = tls.client_ca_pem_file(trust);
                }
                if let Some(auth) = client_auth {
                    tls = tls.client_auth(auth);
                }
                if let Some(password) = key_password {
                    tls = tls.key_password(password);
                }
                self = self.tls(tls.build()?);
            }
            (None, Some(_)) => {
                return Err(Error::Config("ssl.trustStore.location without ssl.keyStore.location".into()));
            }
            (None, None) => {}
        }
        Ok((self, ignored))
    }
}

/// The `key=value` (or `key: value`, `key value`) pairs of Java properties text. Line
/// continuations are not supported; ZooKeeper's sample configurations use none.
fn properties(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('!'))
        .map(|line| {
            let split = line.find(['=', ':']).or_else(|| line.find(char::is_whitespace));
            match split {
                Some(i) => (line[..i].trim().to_owned(), line[i + 1..].trim().to_owned()),
                None => (line.to_owned(), String::new()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_are_read_as_java_does() {
        let props = properties("# c\n! c\n a = 1 \nb:2\nc 3\nd\n\n");
        let expected = [("a", "1"), ("b", "2"), ("c", "3"), ("d", "")];
        assert_eq!(props, expected.map(|(k, v)| (k.to_owned(), v.to_owned())));
    }

    #[test]
    fn supported_keys_apply_and_the_rest_are_named() {
        let cfg = "tickTime=100\nclientPort=0\ninitLimit=5\nauthProvider.1=org.apache.zookeeper.server.auth.\
                   SASLAuthenticationProvider\nmaxClientCnxns=60\nssl.keyStore.type=PEM\n";
        let (_, ignored) = ServerBuilder::default().zoo_cfg(cfg, ".").expect("zoo.cfg");
        assert_eq!(ignored, ["initLimit", "maxClientCnxns"]);
        let durable =
            "dataDir=data\nforceSync=no\nsnapCount=10\nautopurge.snapRetainCount=5\nautopurge.purgeInterval=1\n";
        let (builder, ignored) = ServerBuilder::default().zoo_cfg(durable, "/srv/zk").expect("zoo.cfg");
        assert_eq!(ignored, ["autopurge.purgeInterval"]);
        let config = builder.into_config();
        assert_eq!(config.data_dir.as_deref(), Some(Path::new("/srv/zk/data")));
        assert_eq!((config.force_sync, config.snap_count, config.snap_retain_count), (false, 10, 5));
        for bad in [
            "tickTime=soon",
            "clientPort=99999",
            "ssl.keyStore.type=JKS",
            "ssl.trustStore.location=ca.pem",
            "forceSync=maybe",
            "snapCount=-1",
        ] {
            assert!(ServerBuilder::default().zoo_cfg(bad, ".").is_err(), "{bad}");
        }
        let missing = "ssl.keyStore.location=/nonexistent/key.pem";
        assert!(matches!(ServerBuilder::default().zoo_cfg(missing, "."), Err(Error::Tls(_))));
    }
}
