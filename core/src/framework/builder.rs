//! [`FrameworkBuilder`]: the settings of a [`Framework`] and starting it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::manager::{self, ManagerConfig};
use super::state::{ErrorPolicy, StatePublisher};
use super::{Framework, Inner, Shared};
use crate::client::ClientBuilder;
use crate::error::{Error, Result};
use crate::retry::{ExponentialBackoffRetry, RetryPolicy};

/// Builds a [`Framework`]: connect string, namespace, session settings, retry and error
/// policies.
///
/// The defaults are Curator's: a 60 s session timeout, a 15 s connection timeout,
/// [`ExponentialBackoffRetry`] with a 1 s base and 3 retries, [`ErrorPolicy::Standard`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use std::time::Duration;
/// use corral_core::{ErrorPolicy, Framework, RetryNTimes};
///
/// let fw = Framework::builder(server.connect_string())
///     .namespace("my-app")
///     .session_timeout(Duration::from_secs(10))
///     .retry_policy(RetryNTimes::new(5, Duration::from_millis(100)))
///     .error_policy(ErrorPolicy::SessionOnly)
///     .start()?;
/// fw.wait_until_connected(Duration::from_secs(5)).await?;
/// assert_eq!(fw.client().session().timeout, Duration::from_secs(10));
/// fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct FrameworkBuilder {
    client: ClientBuilder,
    connect_string: String,
    namespace: Option<String>,
    retry: Arc<dyn RetryPolicy>,
    error_policy: ErrorPolicy,
    connection_timeout: Duration,
    lost_after_percent: u32,
    resession_jitter: Duration,
    recreate_jitter: Duration,
    acl: Arc<dyn super::AclProvider>,
    compression: Arc<dyn super::CompressionProvider>,
    seed: Option<u64>,
    ensemble_tracker: bool,
    circuit_breaker: Option<Arc<dyn RetryPolicy>>,
}

impl FrameworkBuilder {
    pub(super) fn new(connect_string: String) -> Self {
        Self {
            client: ClientBuilder::new(connect_string.clone()).session_timeout(Duration::from_secs(60)),
            connect_string,
            namespace: None,
            retry: Arc::new(ExponentialBackoffRetry::new(Duration::from_millis(1000), 3)),
            error_policy: ErrorPolicy::Standard,
            connection_timeout: Duration::from_secs(15),
            lost_after_percent: 100,
            resession_jitter: Duration::from_millis(100),
            recreate_jitter: Duration::from_millis(20),
            acl: Arc::new(super::DefaultAclProvider),
            compression: Arc::new(super::GzipCompressionProvider::new()),
            seed: None,
            ensemble_tracker: false,
            circuit_breaker: None,
        }
    }

    /// Builds every session's client from `client`: all of [`ClientBuilder`]'s settings —
    /// connect string, session timeout, per-host connect timeout, frame size limit, read-only
    /// servers, credentials, TLS, SASL, transport — instead of the copies of some of them on
    /// this builder. The framework's own settings (namespace, retry and error policies,
    /// connection timeout for operations, jitters, ACL provider) stay this builder's; a setter
    /// of this builder called afterwards changes the client's settings as before.
    ///
    /// A session to resume set with [`ClientBuilder::session`] is ignored: the framework opens
    /// its own sessions. The framework's default session timeout (60 s) does not apply: the
    /// client builder's (30 s unless set) does.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::{ClientBuilder, Framework};
    ///
    /// let client = ClientBuilder::new(server.connect_string())
    ///     .session_timeout(Duration::from_secs(10))
    ///     .connect_timeout(Duration::from_secs(2))
    ///     .max_frame_size(256 * 1024);
    /// let fw = Framework::builder("unused:2181").client(client).start()?;
    /// fw.wait_until_connected(Duration::from_secs(10)).await?;
    /// assert_eq!(fw.client().session().timeout, Duration::from_secs(10));
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn client(mut self, client: ClientBuilder) -> Self {
        self.connect_string = client.connect_string().to_owned();
        self.client = client.without_session();
        self
    }

    /// Every path is relative to `/<namespace>`, which the framework creates (with its
    /// parents) at the start of every session, before posting CONNECTED or RECONNECTED.
    /// Combines with a chroot in the connect string.
    ///
    /// Leading and trailing slashes are ignored; an empty namespace means none. A namespace that
    /// is not a valid path makes [`FrameworkBuilder::start`] fail.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::{Client, CreateMode, Framework, framework::Create};
    ///
    /// let fw = Framework::builder(server.connect_string()).namespace("my-app").start()?;
    /// fw.wait_until_connected(Duration::from_secs(5)).await?;
    /// fw.create("/config", "v1", Create::new(CreateMode::Persistent)).await?;
    ///
    /// let root = Client::connect(&server.connect_string()).await?;
    /// assert!(root.exists("/my-app/config").await?.is_some());
    /// # root.close().await;
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        let ns = namespace.into();
        let ns = ns.trim_matches('/').to_owned();
        self.namespace = (!ns.is_empty()).then_some(ns);
        self
    }

    /// The session timeout to ask for (default 60 s, Curator's default).
    ///
    /// The server clamps it (see [`ClientBuilder::session_timeout`]); it also decides when a
    /// suspension becomes LOST ([`FrameworkBuilder::lost_after_percent`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::Framework;
    ///
    /// let fw = Framework::builder(server.connect_string()).session_timeout(Duration::from_secs(6)).start()?;
    /// fw.wait_until_connected(Duration::from_secs(5)).await?;
    /// // Every session of the framework asks for it: here, the negotiated timeout.
    /// assert_eq!(fw.client().session().timeout, Duration::from_secs(6));
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.client = self.client.session_timeout(timeout);
        self
    }

    /// How long operations wait for the connection to come back before failing (default 15 s,
    /// Curator's default), and how long [`ClientBuilder::connection_timeout`] is.
    ///
    /// An operation that cannot get a connection fails after about twice this long: once for
    /// the request waiting for a connection, once for the retry loop waiting for one.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::Framework;
    ///
    /// server.stop().await;
    /// let fw = Framework::builder(server.connect_string()).connection_timeout(Duration::from_millis(200)).start()?;
    /// assert_eq!(fw.connection_timeout(), Duration::from_millis(200));
    /// let err = fw.ensure_path("/app").await.unwrap_err();
    /// assert!(err.is_retryable(), "{err}"); // a connection problem, not a server verdict
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self.client = self.client.connection_timeout(timeout);
        self
    }

    /// The retry policy for operations (default: [`ExponentialBackoffRetry`] with 1 s base and
    /// 3 retries, Curator's usual choice).
    ///
    /// The policy applies to the framework's own operations ([`Framework::create`],
    /// [`Framework::delete`], …), not to the [`Client`](crate::Client) it hands out.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::{Framework, RetryOneTime};
    ///
    /// let fw = Framework::builder(server.connect_string())
    ///     .retry_policy(RetryOneTime::new(Duration::from_millis(10)))
    ///     .connection_timeout(Duration::from_millis(200))
    ///     .start()?;
    /// fw.wait_until_connected(Duration::from_secs(5)).await?;
    /// server.stop().await;
    /// // A retry first waits for the connection (up to the connection timeout): with the server
    /// // gone, the call gives up after about two connection timeouts.
    /// let started = tokio::time::Instant::now();
    /// let err = fw.ensure_path("/app").await.unwrap_err();
    /// assert!(err.is_retryable(), "{err}");
    /// assert!(started.elapsed() < Duration::from_secs(5));
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn retry_policy(mut self, policy: impl RetryPolicy + 'static) -> Self {
        self.retry = Arc::new(policy);
        self
    }

    /// Which states recipes treat as errors (default [`ErrorPolicy::Standard`]).
    ///
    /// The framework itself only stores it; recipes read it with [`Framework::error_policy`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_core::{ConnectionState, ErrorPolicy, Framework};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// assert_eq!(fw.error_policy(), ErrorPolicy::Standard); // the default
    /// assert!(fw.error_policy().is_error(ConnectionState::Suspended));
    /// fw.close().await;
    ///
    /// let tolerant = Framework::builder(server.connect_string()).error_policy(ErrorPolicy::SessionOnly).start()?;
    /// assert!(!tolerant.error_policy().is_error(ConnectionState::Suspended));
    /// tolerant.close().await;
    /// # Ok(()) }
    /// ```
    pub fn error_policy(mut self, policy: ErrorPolicy) -> Self {
        self.error_policy = policy;
        self
    }

    /// LOST is posted when SUSPENDED has lasted this percentage of the negotiated session
    /// timeout (default 100: the client cannot know whether the server expired the session, so
    /// it assumes so once it could have).
    ///
    /// Values below 1 count as 1. Lower values give up on a session sooner, trading false LOSTs
    /// for faster recovery; the session may in fact still be alive on the server (its
    /// ephemeral nodes too) until it expires there.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::{ConnectionState, Framework};
    /// use futures::StreamExt;
    ///
    /// let fw = Framework::builder(server.connect_string())
    ///     .session_timeout(Duration::from_secs(4))
    ///     .lost_after_percent(10) // LOST after 400 ms of SUSPENDED
    ///     .resession_jitter(Duration::ZERO)
    ///     .start()?;
    /// fw.wait_until_connected(Duration::from_secs(5)).await?;
    /// let mut changes = fw.state_changes();
    /// server.stop().await;
    /// assert_eq!(changes.next().await.unwrap().state, ConnectionState::Suspended);
    /// assert_eq!(changes.next().await.unwrap().state, ConnectionState::Lost);
    /// server.restart().await?;
    /// let back = changes.next().await.unwrap();
    /// assert_eq!((back.state, back.epoch), (ConnectionState::Reconnected, 2)); // a new session
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn lost_after_percent(mut self, percent: u32) -> Self {
        self.lost_after_percent = percent.max(1);
        self
    }

    /// After LOST, the new session starts after a uniform random pause in `[0, max]`
    /// (default 100 ms), so that clients expired together do not reconnect together.
    /// `Duration::ZERO` turns the pause off.
    ///
    /// The pause comes after LOST and before the new session's connection attempts; it does
    /// not delay reconnections within a session.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::Framework;
    ///
    /// let fw = Framework::builder(server.connect_string()).resession_jitter(Duration::from_millis(300)).start()?;
    /// fw.wait_until_connected(Duration::from_secs(5)).await?;
    /// server.expire_session(fw.current_state().session_id);
    /// // LOST, a pause of up to 300 ms, then the new session.
    /// let mut states = fw.connection_state();
    /// let next = *states.wait_for(|c| c.epoch == 2 && c.state.is_connected()).await?;
    /// assert_eq!(next.session_id, fw.client().session_id());
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn resession_jitter(mut self, max: Duration) -> Self {
        self.resession_jitter = max;
        self
    }

    /// The most a recipe waits, uniformly at random, before it re-creates what a lost session
    /// took with it (a lock contender's node, a latch membership, a registration); 20 ms by
    /// default, zero for none.
    ///
    /// It comes on top of [`FrameworkBuilder::resession_jitter`] (100 ms by default): that one
    /// spreads a fleet's new sessions, this one the recipes' writes once each session is there.
    /// The default is small because the re-session pause already spreads a fleet, and every
    /// millisecond here is a millisecond without the node after an expiry; raise it for large
    /// fleets on one ensemble.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::Framework;
    ///
    /// let fw = Framework::builder(server.connect_string()).recreate_jitter(Duration::from_millis(200)).start()?;
    /// assert_eq!(fw.recreate_jitter(), Duration::from_millis(200));
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn recreate_jitter(mut self, max: Duration) -> Self {
        self.recreate_jitter = max;
        self
    }

    /// The ACL of every node the framework and the recipes create without an explicit ACL:
    /// nodes, their parents and containers, protected and recipe nodes (Curator's
    /// `ACLProvider`; the open ACL by default). See [`AclProvider`](super::AclProvider).
    ///
    /// The namespace itself (see [`FrameworkBuilder::namespace`]) is created with the provider's
    /// ACL too; its nodes are asked for with their full paths (the chroot of the connect string
    /// included), as Curator does.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_core::{Acl, CreateMode, Framework, framework::FixedAclProvider};
    ///
    /// let fw = Framework::builder(server.connect_string())
    ///     .digest_auth("app", "secret")
    ///     .acl_provider(FixedAclProvider::new(Acl::creator_all()))
    ///     .start()?;
    /// fw.create("/mine", "", CreateMode::Persistent).await?;
    /// let (acl, _) = fw.client().get_acl("/mine").await?;
    /// assert_eq!(acl[0].id.scheme, "digest");
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn acl_provider(mut self, provider: impl super::AclProvider + 'static) -> Self {
        self.acl = Arc::new(provider);
        self
    }

    /// The provider that compresses node data for [`Create::compressed`](super::Create::compressed),
    /// [`Framework::set_data_compressed`] and [`Framework::get_data_decompressed`] (Curator's
    /// `compressionProvider`); [`GzipCompressionProvider`](super::GzipCompressionProvider), in
    /// Curator's format, by default.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_core::Framework;
    /// use corral_core::framework::GzipCompressionProvider;
    ///
    /// let gzip = GzipCompressionProvider::new().with_max_decompressed_len(1 << 20);
    /// let fw = Framework::builder(server.connect_string()).compression_provider(gzip).start()?;
    /// assert!(fw.compression_provider().decompress("/x", &[0u8; 20]).is_err());
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn compression_provider(mut self, provider: impl super::CompressionProvider) -> Self {
        self.compression = Arc::new(provider);
        self
    }

    /// Seeds the framework's randomness (re-session pauses), for reproducible tests.
    ///
    /// The retry policy has its own seed (for example [`ExponentialBackoffRetry::with_seed`]).
    /// Do not seed in production: frameworks with one seed pause in lockstep.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::{ExponentialBackoffRetry, Framework};
    ///
    /// // A test that wants the same pauses on every run.
    /// let fw = Framework::builder(server.connect_string())
    ///     .seed(42)
    ///     .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(10), 3).with_seed(42))
    ///     .start()?;
    /// fw.wait_until_connected(Duration::from_secs(5)).await?;
    /// server.expire_session(fw.current_state().session_id);
    /// let mut states = fw.connection_state();
    /// states.wait_for(|c| c.epoch == 2 && c.state.is_connected()).await?;
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Circuit-breaking connection states (Curator's `CircuitBreakingConnectionStateListener`,
    /// here for the whole framework): while the connection flaps, the first SUSPENDED (or
    /// LOST) is published and then the states hold still until the connection has been back
    /// at one of `policy`'s checks (after each of its delays), instead of a SUSPENDED and a
    /// RECONNECTED every time — so recipes do not give up and take back their locks and
    /// leadership on every flap. A lost session is never hidden: LOST is published at once,
    /// once per session. When the policy gives up, the breaker closes with the last state.
    ///
    /// Off by default: every transition is published as it happens.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::{ConnectionState, Framework, RetryForever};
    ///
    /// let fw = Framework::builder(server.connect_string())
    ///     .circuit_breaking(RetryForever::new(Duration::from_secs(1)))
    ///     .start()?;
    /// fw.wait_until_connected(Duration::from_secs(5)).await?;
    /// assert_eq!(fw.current_state().state, ConnectionState::Connected);
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn circuit_breaking(mut self, policy: impl RetryPolicy + 'static) -> Self {
        self.circuit_breaker = Some(Arc::new(policy));
        self
    }

    /// Follows the ensemble's configuration (Curator's `EnsembleTracker`): on every connection
    /// the framework reads `/zookeeper/config` with a watch, and when a reconfiguration changes
    /// the servers clients should use, it moves to them
    /// ([`Framework::update_server_list`]) — the current session only if its server left, every
    /// later session from the start. Off by default here (Curator turns it on): it costs a read
    /// and a watch per session, and only ensembles reconfigured while clients run need it. A
    /// standalone server's empty configuration changes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::Framework;
    ///
    /// let fw = Framework::builder(server.connect_string()).ensemble_tracker(true).start()?;
    /// fw.wait_until_connected(Duration::from_secs(5)).await?;
    /// // A standalone server has no dynamic configuration: the servers stay as given.
    /// assert_eq!(fw.current_connection_string(), server.connect_string());
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn ensemble_tracker(mut self, on: bool) -> Self {
        self.ensemble_tracker = on;
        self
    }

    /// Adds `digest` credentials (`user:password`), sent on every connection of every session.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::Framework;
    ///
    /// let fw = Framework::builder(server.connect_string()).digest_auth("app", "secret").start()?;
    /// fw.wait_until_connected(Duration::from_secs(5)).await?;
    /// let me = fw.client().who_am_i().await?;
    /// assert!(me.iter().any(|id| id.auth_scheme == "digest" && id.user == "app"));
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn digest_auth(mut self, user: &str, password: &str) -> Self {
        self.client = self.client.digest_auth(user, password);
        self
    }

    /// Adds credentials of any scheme, sent on every connection of every session.
    ///
    /// `auth("digest", "user:password")` is [`FrameworkBuilder::digest_auth`]. If the server
    /// refuses the credentials the framework posts LOST and stops.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::{Acl, CreateMode, Framework, framework::Create};
    ///
    /// let fw = Framework::builder(server.connect_string()).auth("digest", "ops:s3cret").start()?;
    /// fw.wait_until_connected(Duration::from_secs(5)).await?;
    /// // A node only its creator's identities may touch.
    /// fw.create("/private", "key", Create::new(CreateMode::Persistent).with_acl(Acl::creator_all())).await?;
    /// let (acl, _) = fw.client().get_acl("/private").await?;
    /// assert_eq!(acl[0].id.scheme, "digest");
    /// assert!(acl[0].id.id.starts_with("ops:"));
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn auth(mut self, scheme: impl Into<String>, auth: impl Into<bytes::Bytes>) -> Self {
        self.client = self.client.auth(scheme, auth);
        self
    }

    /// Accepts read-only servers: posts READ_ONLY when connected to one, then, once the
    /// client has found a read/write server and moved there, LOST (the read-only server's
    /// session is not resumed elsewhere) and CONNECTED or RECONNECTED on a new epoch. See
    /// [`ClientBuilder::allow_read_only`](crate::ClientBuilder::allow_read_only) for the
    /// client's side and [`ConnectionState`](crate::ConnectionState) for the sequence.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use corral_core::{ConnectionState, Framework};
    /// use corral_server::{Server, testing::TestingServer};
    ///
    /// let server = TestingServer::with_builder(Server::builder().read_only(true)).await?;
    /// let fw = Framework::builder(server.connect_string()).allow_read_only(true).start()?;
    /// fw.wait_until_connected(Duration::from_secs(5)).await?;
    /// assert_eq!(fw.current_state().state, ConnectionState::ReadOnly);
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn allow_read_only(mut self, allow: bool) -> Self {
        self.client = self.client.allow_read_only(allow);
        self
    }

    /// Connects through a custom transport (see [`crate::Connector`]); every session's client
    /// uses it.
    ///
    /// See [`ClientBuilder::connector`] for an in-memory connector.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::net::SocketAddr;
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::time::Duration;
    /// use corral_core::{BoxStream, ConnectFuture, Connector, Framework, HostPort};
    ///
    /// /// TCP to one fixed address, counting connections.
    /// #[derive(Debug)]
    /// struct Counting(SocketAddr, Arc<AtomicUsize>);
    ///
    /// impl Connector for Counting {
    ///     fn connect(&self, _host: &HostPort) -> ConnectFuture {
    ///         self.1.fetch_add(1, Ordering::SeqCst);
    ///         let addr = self.0;
    ///         Box::pin(async move { Ok((Box::new(tokio::net::TcpStream::connect(addr).await?) as BoxStream, addr)) })
    ///     }
    /// }
    ///
    /// let count = Arc::new(AtomicUsize::new(0));
    /// let fw = Framework::builder("zk.internal:2181").connector(Counting(server.addr(), count.clone())).start()?;
    /// fw.wait_until_connected(Duration::from_secs(5)).await?;
    /// server.expire_session(fw.current_state().session_id);
    /// fw.connection_state().wait_for(|c| c.epoch == 2 && c.state.is_connected()).await?;
    /// assert!(count.load(Ordering::SeqCst) >= 2); // the new session's client used it too
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn connector(mut self, connector: impl crate::Connector) -> Self {
        self.client = self.client.connector(connector);
        self
    }

    /// Connects with TLS; every session's client uses it. See [`ClientBuilder::tls`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_core::{ClientTls, Framework};
    ///
    /// let tls = ClientTls::builder().ca_pem_file("/etc/zookeeper/ca.pem").build()?;
    /// let fw = Framework::builder("zk1.internal:2281").tls(tls).start()?;
    /// # drop(fw);
    /// # Ok(()) }
    /// ```
    pub fn tls(mut self, tls: crate::ClientTls) -> Self {
        self.client = self.client.tls(tls);
        self
    }

    /// Logs in with SASL on every connection of every session. See [`ClientBuilder::sasl`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use corral_core::{Framework, Sasl};
    ///
    /// let fw = Framework::builder("zk1.internal:2181").sasl(Sasl::digest_md5("app", "secret")).start()?;
    /// # drop(fw);
    /// # Ok(()) }
    /// ```
    pub fn sasl(mut self, sasl: crate::Sasl) -> Self {
        self.client = self.client.sasl(sasl);
        self
    }

    /// Starts the framework: the first session is being established when this returns. Use
    /// [`Framework::wait_until_connected`] to wait for it.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (the framework's tasks are spawned on the current one).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConnectString`] for a bad connect string or namespace.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_core::{Error, Framework};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// fw.wait_until_connected(Duration::from_secs(5)).await?;
    /// assert!(fw.current_state().state.is_connected());
    ///
    /// let bad = Framework::builder(server.connect_string()).namespace("a//b").start();
    /// assert!(matches!(bad, Err(Error::InvalidConnectString { .. })));
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn start(self) -> Result<Framework> {
        let mut template = self.client.clone();
        if let Some(ns) = &self.namespace {
            // The namespace becomes part of the chroot.
            let cs: crate::ConnectString = self.connect_string.parse()?;
            let chroot = format!("{}/{ns}", cs.chroot.unwrap_or_default());
            corral_proto::validate_path(&chroot).map_err(|e| Error::InvalidConnectString {
                input: self.connect_string.clone(),
                reason: e.to_string(),
            })?;
            let hosts: Vec<String> = cs.hosts.iter().map(ToString::to_string).collect();
            template = rebuild_with(&template, format!("{}{chroot}", hosts.join(",")));
        }
        // Validate the connect string now rather than in the background.
        let _: crate::ConnectString = self.connect_string.parse()?;
        let initial: crate::ConnectString = template.connect_string().parse()?;
        // The first session's client exists before `start` returns, so `client()` always has one.
        let (first, events) = template.clone().build_with_events()?;
        let shared = Arc::new(Shared {
            client: std::sync::Mutex::new(first.clone()),
            states: StatePublisher::new(),
            guaranteed_deletes: std::sync::atomic::AtomicUsize::new(0),
            hosts: std::sync::Mutex::new(None),
            initial,
            features: Default::default(),
        });
        let (close_tx, close_rx) = watch::channel(false);
        if self.ensemble_tracker {
            tokio::spawn(super::ensemble_tracker::run(shared.clone(), close_rx.clone()));
        }
        let config = ManagerConfig {
            template,
            lost_after_percent: self.lost_after_percent,
            resession_jitter: self.resession_jitter,
            seed: self.seed,
            ensure_namespace: self.namespace.is_some(),
            acl: self.acl.clone(),
            breaker: None,
        };
        let (config, breaker) = match self.circuit_breaker {
            None => (config, None),
            Some(policy) => {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                let breaker = tokio::spawn(super::circuit_breaker::run(shared.clone(), rx, policy));
                (ManagerConfig { breaker: Some(tx), ..config }, Some(breaker))
            }
        };
        let manager = manager::run(shared.clone(), config, close_rx, (first, Box::pin(events)));
        let manager = tokio::spawn(async move {
            manager.await;
            // The breaker ends once the manager has dropped its sender, with the last state out.
            if let Some(breaker) = breaker {
                let _ = breaker.await;
            }
        });
        Ok(Framework {
            inner: Arc::new(Inner {
                shared,
                retry: self.retry,
                error_policy: self.error_policy,
                connection_timeout: self.connection_timeout,
                recreate_jitter: self.recreate_jitter,
                acl: self.acl,
                compression: self.compression,
                close: close_tx,
                manager: std::sync::Mutex::new(Some(manager)),
                namespaced: self.namespace.is_some(),
            }),
        })
    }
}

fn rebuild_with(template: &ClientBuilder, connect_string: String) -> ClientBuilder {
    template.clone().with_connect_string(connect_string)
}
