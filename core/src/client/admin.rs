//! Watch management, credentials and server-level operations of [`Client`].

use std::future::Future;

use bytes::Bytes;
use corral_proto::records::{AddWatchRequest, ClientInfo, PathAndWatch, PathRequest, ReconfigRequest, WatchesRequest};
use corral_proto::{AddWatchMode, Request, Response, Stat, WatcherType};

use crate::client::Client;
use crate::client::ops::{Ready, fail, unexpected};
use crate::error::{Error, Result};
use crate::session::AfterReply;
use crate::session::watch::WatchKind;
use crate::watcher::PersistentWatcher;

impl Client {
    /// Adds a persistent watch (ZooKeeper ≥ 3.6) and returns the stream of its events.
    ///
    /// With [`AddWatchMode::Persistent`] the stream gets data changes, creates, deletes and child
    /// changes of `path` itself; with [`AddWatchMode::PersistentRecursive`] it gets creates,
    /// deletes and data changes of `path` and every descendant (never child-list changes). The
    /// watch stays across reconnects (it is restored with setWatches2) until the stream is
    /// dropped.
    ///
    /// ZooKeeper before 3.9 keeps one watch mode per path and connection (ZOOKEEPER-4466): a
    /// persistent and a recursive watch on the *same* path from one client interfere there. Use
    /// one kind per path, or two clients.
    ///
    /// # Errors
    ///
    /// NoAuth as [`Error::Server`]; Unimplemented on servers older than 3.6;
    /// [`Error::InvalidPath`]; connection and session errors.
    ///
    /// # Cancel safety
    ///
    /// The request is queued when this method returns; dropping the future loses the reply and
    /// the stream (which then removes its watch).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::{AddWatchMode, CreateMode, EventType};
    /// use futures::StreamExt;
    ///
    /// client.create("/app", "", CreateMode::Persistent).await?;
    /// let mut events = client.add_watch("/app", AddWatchMode::PersistentRecursive).await?;
    /// client.create("/app/job", "", CreateMode::Persistent).await?;
    /// client.set_data("/app/job", "done", None).await?;
    /// let event = events.next().await.unwrap();
    /// assert_eq!((event.event_type, event.path.as_str()), (EventType::NodeCreated, "/app/job"));
    /// assert_eq!(events.next().await.unwrap().event_type, EventType::NodeDataChanged);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn add_watch(
        &self,
        path: &str,
        mode: AddWatchMode,
    ) -> impl Future<Output = Result<PersistentWatcher>> + Send + use<> {
        let fut: Ready<PersistentWatcher> = match self.server_path(path) {
            Err(e) => fail(e),
            Ok(sp) => {
                let kind = match mode {
                    AddWatchMode::PersistentRecursive => WatchKind::PersistentRecursive,
                    _ => WatchKind::Persistent,
                };
                let (watcher, registration) = self.watch(path, kind, PersistentWatcher::new);
                let reply = self.submit(
                    Request::AddWatch(AddWatchRequest { path: sp, mode }),
                    path,
                    Some(registration),
                    AfterReply::Nothing,
                );
                Box::pin(async move {
                    match reply.await? {
                        Response::AddWatch(r) if r.err != corral_proto::ErrorCode::Ok => Err(Error::server(r.err, "")),
                        _ => Ok(watcher),
                    }
                })
            }
        };
        fut
    }

    /// Removes this client's watches of `watcher_type` on `path`, on the server and locally;
    /// each local watcher removed gets a `*WatchRemoved` event.
    ///
    /// # Errors
    ///
    /// NoWatcher as [`Error::Server`] if there was no such watch; [`Error::InvalidPath`];
    /// connection and session errors. ZooKeeper 3.6–3.8 answer MarshallingError to the
    /// `Persistent` and `PersistentRecursive` types: use [`WatcherType::Any`] there.
    ///
    /// # Cancel safety
    ///
    /// The request is queued when this method returns; dropping the future loses only the reply.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::{AddWatchMode, EventType, WatcherType};
    /// use futures::StreamExt;
    ///
    /// let mut events = client.add_watch("/app", AddWatchMode::Persistent).await?;
    /// client.remove_watches("/app", WatcherType::Any).await?;
    /// assert_eq!(events.next().await.unwrap().event_type, EventType::PersistentWatchRemoved);
    /// assert!(events.next().await.is_none());
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn remove_watches(
        &self,
        path: &str,
        watcher_type: WatcherType,
    ) -> impl Future<Output = Result<()>> + Send + use<> {
        let after = AfterReply::RemoveLocal { path: path.to_owned(), watcher_type };
        self.watches_request(path, watcher_type, Request::RemoveWatches, after)
    }

    /// Asks the server whether this connection holds a watch of `watcher_type` on `path`.
    ///
    /// # Errors
    ///
    /// NoWatcher as [`Error::Server`] if it does not; [`Error::InvalidPath`]; connection and
    /// session errors.
    ///
    /// # Cancel safety
    ///
    /// The request is queued when this method returns; dropping the future loses only the reply.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::{CreateMode, ErrorCode, WatcherType};
    ///
    /// client.create("/node", "", CreateMode::Persistent).await?;
    /// let (_, _, _watcher) = client.get_data_and_watch("/node").await?;
    /// client.check_watches("/node", WatcherType::Data).await?;
    /// let err = client.check_watches("/node", WatcherType::Children).await.unwrap_err();
    /// assert_eq!(err.code(), ErrorCode::NoWatcher);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn check_watches(
        &self,
        path: &str,
        watcher_type: WatcherType,
    ) -> impl Future<Output = Result<()>> + Send + use<> {
        self.watches_request(path, watcher_type, Request::CheckWatches, AfterReply::Nothing)
    }

    /// The paths of this session's ephemeral nodes under `prefix` (ZooKeeper ≥ 3.6).
    ///
    /// Unlike the Java client, the prefix is taken relative to the chroot and the returned
    /// paths have the chroot stripped, like every other path here. `"/"` lists them all.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`]; connection and session errors.
    ///
    /// # Cancel safety
    ///
    /// The request is queued when this method returns; dropping the future loses only the reply.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::CreateMode;
    ///
    /// client.create("/workers", "", CreateMode::Persistent).await?;
    /// client.create("/workers/w-1", "", CreateMode::Ephemeral).await?;
    /// client.create("/lock", "", CreateMode::Ephemeral).await?;
    /// let mut mine = client.get_ephemerals("/").await?;
    /// mine.sort();
    /// assert_eq!(mine, ["/lock", "/workers/w-1"]);
    /// assert_eq!(client.get_ephemerals("/workers").await?, ["/workers/w-1"]);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn get_ephemerals(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>>> + Send + use<> {
        let fut: Ready<Vec<String>> = match self.server_path(prefix) {
            Err(e) => fail(e),
            Ok(sp) => {
                let reply =
                    self.submit(Request::GetEphemerals(PathRequest { path: sp }), prefix, None, AfterReply::Nothing);
                let this = self.clone();
                Box::pin(async move {
                    match reply.await? {
                        Response::Children(r) => Ok(r.children.iter().map(|p| this.strip(p)).collect()),
                        other => Err(unexpected("getEphemerals", &other)),
                    }
                })
            }
        };
        fut
    }

    /// The number of descendants of `path`, the node itself excluded (ZooKeeper ≥ 3.6).
    ///
    /// # Errors
    ///
    /// NoNode, NoAuth as [`Error::Server`]; [`Error::InvalidPath`]; connection and session
    /// errors.
    ///
    /// # Cancel safety
    ///
    /// The request is queued when this method returns; dropping the future loses only the reply.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::CreateMode;
    ///
    /// for path in ["/a", "/a/b", "/a/b/c", "/a/d"] {
    ///     client.create(path, "", CreateMode::Persistent).await?;
    /// }
    /// assert_eq!(client.get_all_children_number("/a").await?, 3);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn get_all_children_number(&self, path: &str) -> impl Future<Output = Result<i32>> + Send + use<> {
        let fut: Ready<i32> = match self.server_path(path) {
            Err(e) => fail(e),
            Ok(sp) => {
                let request = Request::GetAllChildrenNumber(PathRequest { path: sp });
                let reply = self.submit(request, path, None, AfterReply::Nothing);
                Box::pin(async move {
                    match reply.await? {
                        Response::AllChildrenNumber(r) => Ok(r.total_number),
                        other => Err(unexpected("getAllChildrenNumber", &other)),
                    }
                })
            }
        };
        fut
    }

    /// The identities this connection is authenticated as (ZooKeeper ≥ 3.7).
    ///
    /// # Errors
    ///
    /// Connection and session errors; Unimplemented on older servers.
    ///
    /// # Cancel safety
    ///
    /// The request is queued when this method returns; dropping the future loses only the reply.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// let before = client.who_am_i().await?;
    /// assert!(before.iter().all(|id| id.auth_scheme != "digest"));
    /// client.add_auth("digest", "ops:secret").await?;
    /// let after = client.who_am_i().await?;
    /// assert!(after.iter().any(|id| id.auth_scheme == "digest" && id.user == "ops"));
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn who_am_i(&self) -> impl Future<Output = Result<Vec<ClientInfo>>> + Send + use<> {
        let reply = self.submit(Request::WhoAmI, "", None, AfterReply::Nothing);
        async move {
            match reply.await? {
                Response::WhoAmI(r) => Ok(r.client_info),
                other => Err(unexpected("whoAmI", &other)),
            }
        }
    }

    /// Adds credentials to the session; they are sent again on every reconnect.
    ///
    /// # Errors
    ///
    /// [`Error::AuthFailed`] if the server refuses them — the server then closes the
    /// connection and this client ends in [`crate::SessionState::AuthFailed`].
    ///
    /// # Cancel safety
    ///
    /// The credentials are queued when this method returns; dropping the future loses only the
    /// answer.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::{Acl, CreateMode, CreateOptions};
    ///
    /// client.add_auth("digest", "app:secret").await?;
    /// // `creator_all` gives every permission to the identities the session is authenticated as.
    /// let options = CreateOptions::new(CreateMode::Persistent).with_acl(Acl::creator_all());
    /// client.create("/mine", "", options).await?;
    /// let (acl, _) = client.get_acl("/mine").await?;
    /// assert_eq!(acl[0].id.scheme, "digest");
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn add_auth<A: Into<Bytes>>(&self, scheme: &str, auth: A) -> impl Future<Output = Result<()>> + Send + use<A> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let sent = self.send_auth(scheme.to_owned(), auth.into(), reply);
        async move {
            sent?;
            rx.await.unwrap_or(Err(Error::Closed))
        }
    }

    /// The ensemble configuration (the data of `/zookeeper/config`, outside any chroot).
    ///
    /// # Errors
    ///
    /// NoAuth as [`Error::Server`]; connection and session errors.
    ///
    /// # Cancel safety
    ///
    /// The request is queued when this method returns; dropping the future loses only the reply.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// let (config, _) = client.get_config().await?;
    /// // Standalone: no dynamic configuration. An ensemble lists its members, one per line
    /// // ("server.1=zk1:2888:3888:participant;0.0.0.0:2181", ...), then "version=<hex>".
    /// assert!(config.is_empty());
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn get_config(&self) -> impl Future<Output = Result<(Bytes, Stat)>> + Send + use<> {
        let request = Request::GetData(PathAndWatch { path: "/zookeeper/config".into(), watch: false });
        let reply = self.submit(request, "/zookeeper/config", None, AfterReply::Nothing);
        async move {
            match reply.await? {
                Response::GetData(r) => Ok((r.data.unwrap_or_default(), r.stat)),
                other => Err(unexpected("getConfig", &other)),
            }
        }
    }

    /// [`get_config`](Self::get_config) and a one-shot watch on the configuration: it fires
    /// (`NodeDataChanged`, path `/zookeeper/config`) when the ensemble is reconfigured, and
    /// survives reconnections like any watch. A chroot does not apply: the configuration is
    /// always the ensemble's.
    ///
    /// # Errors
    ///
    /// NoAuth as [`Error::Server`]; connection and session errors.
    ///
    /// # Cancel safety
    ///
    /// The request is queued when this method returns; dropping the future loses only the
    /// reply, and the watch with it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// let (config, stat, watcher) = client.get_config_and_watch().await?;
    /// // `watcher` resolves when a reconfiguration changes `config`.
    /// # let _ = (config, stat, watcher);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn get_config_and_watch(
        &self,
    ) -> impl Future<Output = Result<(Bytes, Stat, crate::OneshotWatcher)>> + Send + use<> {
        let (watcher, registration) =
            self.watch(crate::session::watch::CONFIG_KEY, WatchKind::Data, crate::OneshotWatcher::new);
        let request = Request::GetData(PathAndWatch { path: crate::session::watch::CONFIG_NODE.into(), watch: true });
        let reply = self.submit(request, crate::session::watch::CONFIG_NODE, Some(registration), AfterReply::Nothing);
        async move {
            match reply.await? {
                Response::GetData(r) => Ok((r.data.unwrap_or_default(), r.stat, watcher)),
                other => Err(unexpected("getConfig", &other)),
            }
        }
    }

    /// Changes the ensemble membership (incremental with `joining`/`leaving`, or a whole
    /// `new_members` list) if the current config version is `from_config` (−1 for any).
    ///
    /// # Errors
    ///
    /// Unimplemented on a standalone server, ReconfigDisabled, NewConfigNoQuorum,
    /// ReconfigInProgress, BadVersion as [`Error::Server`]; connection and session errors.
    ///
    /// # Cancel safety
    ///
    /// The request is queued when this method returns; dropping the future loses only the reply.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::{Error, ErrorCode};
    ///
    /// // Add server 4 to the ensemble, whatever the current config version.
    /// let result = client.reconfig(Some("server.4=zk4:2888:3888;2181"), None, None, -1).await;
    /// // The embedded server, like ZooKeeper by default, has reconfig disabled.
    /// assert!(matches!(result, Err(Error::Server { code: ErrorCode::ReconfigDisabled, .. })));
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn reconfig(
        &self,
        joining: Option<&str>,
        leaving: Option<&str>,
        new_members: Option<&str>,
        from_config: i64,
    ) -> impl Future<Output = Result<(Bytes, Stat)>> + Send + use<> {
        let request = Request::Reconfig(ReconfigRequest {
            joining_servers: joining.map(str::to_owned),
            leaving_servers: leaving.map(str::to_owned),
            new_members: new_members.map(str::to_owned),
            cur_config_id: from_config,
        });
        let reply = self.submit(request, "", None, AfterReply::Nothing);
        async move {
            match reply.await? {
                Response::GetData(r) => Ok((r.data.unwrap_or_default(), r.stat)),
                other => Err(unexpected("reconfig", &other)),
            }
        }
    }

    /// removeWatches and checkWatches: the same record, a reply with no body.
    /// Sends a four-letter word (`ruok`, `srvr`, `mntr`, `isro`, ...) to the server of the
    /// current connection — the first host of the connect string before any — and returns its
    /// answer.
    ///
    /// It goes on a connection of its own, opened as the session's are: through the
    /// [`ClientBuilder::connector`](crate::ClientBuilder::connector) and over
    /// [TLS](crate::ClientBuilder::tls) when configured. ZooKeeper answers only the words its
    /// `4lw.commands.whitelist` allows, and closes the connection without a word otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::BadArguments`] unless `word` is four ASCII letters; [`Error::ConnectionLoss`]
    /// when the server cannot be reached or does not answer within 10 s (the reason is logged).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes its connection.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// assert_eq!(client.four_letter_word("ruok").await?, "imok");
    /// assert!(client.four_letter_word("srvr").await?.contains("Mode: standalone"));
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn four_letter_word(&self, word: &str) -> impl Future<Output = Result<String>> + Send + use<> {
        const LIMIT: u64 = 1 << 20;
        const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
        let word = word.to_owned();
        let shared = std::sync::Arc::clone(&self.inner.shared);
        async move {
            if word.len() != 4 || !word.bytes().all(|b| b.is_ascii_lowercase()) {
                return Err(Error::BadArguments(format!("{word:?} is not a four-letter word")));
            }
            let host = shared.host.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let asked = crate::session::probe::four_letter_word(&host, &shared.dialer, &word, LIMIT);
            match tokio::time::timeout(TIMEOUT, asked).await {
                Ok(Ok(answer)) => Ok(answer),
                Ok(Err(reason)) => {
                    tracing::info!(%host, %word, %reason, "four-letter word failed");
                    Err(Error::ConnectionLoss)
                }
                Err(_) => {
                    tracing::info!(%host, %word, "four-letter word timed out");
                    Err(Error::ConnectionLoss)
                }
            }
        }
    }

    fn watches_request(
        &self,
        path: &str,
        watcher_type: WatcherType,
        request: fn(WatchesRequest) -> Request,
        after: AfterReply,
    ) -> Ready<()> {
        match self.server_path(path) {
            Err(e) => fail(e),
            Ok(sp) => {
                let reply = self.submit(request(WatchesRequest { path: sp, watcher_type }), path, None, after);
                Box::pin(async move { reply.await.map(|_| ()) })
            }
        }
    }
}
