//! The ZooKeeper operations of [`Client`], one async method each, with typed results.
//!
//! Each method validates its arguments and queues its request *before* returning the future,
//! so the order of calls is the order on the wire. Paths are relative to the chroot.

use std::future::Future;

use bytes::Bytes;
use corral_proto::records::{
    CreateRequest, CreateTtlRequest, DeleteRequest, PathAndWatch, PathRequest, SetAclRequest, SetDataRequest,
};
use corral_proto::{
    Acl, CreateMode, MAX_TTL_MS, MultiOp, Request, Response, Stat, validate_path, validate_sequential_path,
};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::ops::CreateOptions;
use crate::session::AfterReply;
use crate::session::watch::WatchKind;
use crate::watcher::OneshotWatcher;

/// A future that fails at once (argument errors found before sending).
pub(crate) type Ready<T> = std::pin::Pin<Box<dyn Future<Output = Result<T>> + Send + 'static>>;

pub(crate) fn fail<T: Send + 'static>(e: Error) -> Ready<T> {
    Box::pin(std::future::ready(Err(e)))
}

pub(crate) fn unexpected(op: &str, response: &Response) -> Error {
    tracing::error!(op, ?response, "reply of an unexpected shape");
    Error::ConnectionLoss
}

pub(crate) fn version(v: Option<i32>) -> i32 {
    v.unwrap_or(-1)
}

/// The create request for `options`, with the opcode ZooKeeper expects for the mode.
pub(crate) fn create_request(
    server_path: String,
    data: Bytes,
    options: &CreateOptions,
    in_multi: bool,
) -> Result<(Request, MultiOp)> {
    let mode = options.mode;
    let flags = mode.flags();
    match (mode.is_ttl(), options.ttl) {
        (true, None) => return Err(Error::BadArguments("a TTL mode needs a TTL".into())),
        (false, Some(_)) => return Err(Error::BadArguments("a TTL was given for a mode without TTL".into())),
        _ => {}
    }
    let data = Some(data);
    if let Some(ttl) = options.ttl {
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        if ttl <= 0 || ttl > MAX_TTL_MS {
            return Err(Error::BadArguments(format!("TTL must be in (0, {MAX_TTL_MS}] ms")));
        }
        let r = CreateTtlRequest { path: server_path, data, acl: options.acl.clone(), flags, ttl };
        return Ok((Request::CreateTtl(r.clone()), MultiOp::CreateTtl(r)));
    }
    let r = CreateRequest { path: server_path, data, acl: options.acl.clone(), flags };
    Ok(match mode {
        CreateMode::Container => (Request::CreateContainer(r.clone()), MultiOp::CreateContainer(r)),
        // Inside a multi, plain create: ZooKeeper ≤ 3.8 answers create2 with the path only anyway.
        _ if in_multi => (Request::Create(r.clone()), MultiOp::Create(r)),
        _ => (Request::Create2(r.clone()), MultiOp::Create2(r)),
    })
}

impl Client {
    pub(crate) fn server_path(&self, path: &str) -> Result<String> {
        validate_path(path)?;
        Ok(self.chroot().prepend(path))
    }

    pub(crate) fn strip(&self, server_path: &str) -> String {
        self.chroot().strip(server_path)
    }

    /// Creates every node of the chroot itself (outside it), so that a chroot given in the
    /// connect string or by a framework namespace exists, each node with the ACL `acl` gives its
    /// (full) path. Nothing to do without a chroot.
    pub(crate) async fn ensure_chroot_with(&self, acl: &(dyn Fn(&str) -> Vec<Acl> + Sync)) -> Result<()> {
        let Some(root) = self.chroot().root() else {
            return Ok(());
        };
        let mut current = String::new();
        for segment in root.split('/').filter(|s| !s.is_empty()) {
            current.push('/');
            current.push_str(segment);
            let request = Request::Create(CreateRequest {
                path: current.clone(),
                data: Some(Bytes::new()),
                acl: acl(&current),
                flags: CreateMode::Persistent.flags(),
            });
            match self.submit(request, &current, None, AfterReply::Nothing).await {
                Ok(_) => {}
                Err(e) if e.is_node_exists() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Creates a node and returns its actual path (with any sequence suffix) and its stat.
    ///
    /// `options` is a [`CreateMode`] or a [`CreateOptions`] (ACL, TTL). Containers are created
    /// with createContainer, TTL nodes with createTTL (the server must have extended types
    /// enabled), everything else with create2.
    ///
    /// # Errors
    ///
    /// NodeExists, NoNode (no parent), NoChildrenForEphemerals, InvalidACL, NoAuth as
    /// [`Error::Server`]; [`Error::InvalidPath`] and [`Error::BadArguments`] before sending;
    /// [`Error::RequestTooLarge`] for data that does not fit in a frame; connection and session
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
    /// use corral_core::{CreateMode, ErrorCode};
    ///
    /// client.create("/jobs", "", CreateMode::Persistent).await?;
    /// let (path, stat) = client.create("/jobs/job-", "payload", CreateMode::PersistentSequential).await?;
    /// assert_eq!(path, "/jobs/job-0000000000");
    /// assert_eq!(stat.data_length, 7);
    ///
    /// let err = client.create("/jobs", "", CreateMode::Persistent).await.unwrap_err();
    /// assert_eq!(err.code(), ErrorCode::NodeExists);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn create<D: Into<Bytes>, O: Into<CreateOptions>>(
        &self,
        path: &str,
        data: D,
        options: O,
    ) -> impl Future<Output = Result<(String, Stat)>> + Send + use<D, O> {
        let options = options.into();
        let checked = if options.mode.is_sequential() { validate_sequential_path(path) } else { validate_path(path) };
        let prepared = checked
            .map_err(Error::from)
            .and_then(|()| create_request(self.chroot().prepend(path), data.into(), &options, false));
        let fut: Ready<(String, Stat)> = match prepared {
            Err(e) => fail(e),
            Ok((request, _)) => {
                let reply = self.submit(request, path, None, AfterReply::Nothing);
                let this = self.clone();
                Box::pin(async move {
                    match reply.await? {
                        Response::Create2(r) => Ok((this.strip(&r.path), r.stat)),
                        Response::Create(r) => Ok((this.strip(&r.path), Stat::default())),
                        other => Err(unexpected("create", &other)),
                    }
                })
            }
        };
        fut
    }

    /// Deletes a node; `version` `None` deletes whatever the version.
    ///
    /// # Errors
    ///
    /// NoNode, BadVersion, NotEmpty, NoAuth as [`Error::Server`]; BadArguments for the special
    /// nodes (`/`, `/zookeeper`); connection and session errors.
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
    /// use corral_core::{CreateMode, ErrorCode};
    ///
    /// let (_, stat) = client.create("/task", "", CreateMode::Persistent).await?;
    /// client.set_data("/task", "claimed", Some(stat.version)).await?;
    /// // Version 0 is gone: the delete is refused.
    /// let err = client.delete("/task", Some(stat.version)).await.unwrap_err();
    /// assert_eq!(err.code(), ErrorCode::BadVersion);
    /// client.delete("/task", None).await?;
    /// assert_eq!(client.exists("/task").await?, None);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn delete(&self, path: &str, version: Option<i32>) -> impl Future<Output = Result<()>> + Send + use<> {
        let fut: Ready<()> = match self.server_path(path) {
            Err(e) => fail(e),
            Ok(sp) => {
                let reply = self.submit(
                    Request::Delete(DeleteRequest { path: sp, version: self::version(version) }),
                    path,
                    None,
                    AfterReply::Nothing,
                );
                Box::pin(async move { reply.await.map(|_| ()) })
            }
        };
        fut
    }

    /// A one-shot watch on `path` when `watch` is set: the watcher and its registration.
    fn oneshot_if(
        &self,
        watch: bool,
        path: &str,
        kind: WatchKind,
    ) -> (Option<OneshotWatcher>, Option<crate::session::watch::WatchRegistration>) {
        if !watch {
            return (None, None);
        }
        let (watcher, registration) = self.watch(path, kind, OneshotWatcher::new);
        (Some(watcher), Some(registration))
    }

    fn exists_inner(&self, path: &str, watch: bool) -> Ready<(Option<Stat>, Option<OneshotWatcher>)> {
        let sp = match self.server_path(path) {
            Err(e) => return fail(e),
            Ok(sp) => sp,
        };
        let (watcher, registration) = self.oneshot_if(watch, path, WatchKind::Exist);
        let reply =
            self.submit(Request::Exists(PathAndWatch { path: sp, watch }), path, registration, AfterReply::Nothing);
        Box::pin(async move {
            match reply.await {
                Ok(Response::Stat(stat)) => Ok((Some(stat), watcher)),
                Ok(other) => Err(unexpected("exists", &other)),
                Err(e) if e.is_no_node() => Ok((None, watcher)),
                Err(e) => Err(e),
            }
        })
    }

    /// The node's stat, or `None` if it does not exist.
    ///
    /// ZooKeeper's `exists`: a missing node is an answer, not an error.
    ///
    /// # Errors
    ///
    /// NoAuth as [`Error::Server`]; [`Error::InvalidPath`]; connection and session errors.
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
    /// assert_eq!(client.exists("/service").await?, None);
    /// client.create("/service", "up", CreateMode::Persistent).await?;
    /// let stat = client.exists("/service").await?.expect("just created");
    /// assert_eq!(stat.data_length, 2);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn exists(&self, path: &str) -> impl Future<Output = Result<Option<Stat>>> + Send + use<> {
        let fut = self.exists_inner(path, false);
        async move { fut.await.map(|(stat, _)| stat) }
    }

    /// Like [`Client::exists`], and leaves a one-shot watch that fires when the node is
    /// created, changed or deleted (it is left even when the node does not exist).
    ///
    /// # Errors
    ///
    /// As [`Client::exists`].
    ///
    /// # Cancel safety
    ///
    /// The request is queued when this method returns; dropping the future loses the reply and
    /// the watcher (which then removes its watch).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::{CreateMode, EventType};
    ///
    /// // Wait for a node that does not exist yet.
    /// let (stat, watcher) = client.exists_and_watch("/ready").await?;
    /// assert_eq!(stat, None);
    /// client.create("/ready", "", CreateMode::Persistent).await?;
    /// let event = watcher.await;
    /// assert_eq!((event.event_type, event.path.as_str()), (EventType::NodeCreated, "/ready"));
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn exists_and_watch(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Option<Stat>, OneshotWatcher)>> + Send + use<> {
        let fut = self.exists_inner(path, true);
        async move {
            let (stat, watcher) = fut.await?;
            watcher.map(|w| (stat, w)).ok_or(Error::ConnectionLoss)
        }
    }

    fn get_data_inner(&self, path: &str, watch: bool) -> Ready<(Bytes, Stat, Option<OneshotWatcher>)> {
        let sp = match self.server_path(path) {
            Err(e) => return fail(e),
            Ok(sp) => sp,
        };
        let (watcher, registration) = self.oneshot_if(watch, path, WatchKind::Data);
        let reply =
            self.submit(Request::GetData(PathAndWatch { path: sp, watch }), path, registration, AfterReply::Nothing);
        Box::pin(async move {
            match reply.await? {
                Response::GetData(r) => Ok((r.data.unwrap_or_default(), r.stat, watcher)),
                other => Err(unexpected("getData", &other)),
            }
        })
    }

    /// The node's data and stat. Null data reads as empty (the stat's `data_length` is 0 either
    /// way).
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
    /// use corral_core::{CreateMode, Error, ErrorCode};
    ///
    /// client.create("/config", "v1", CreateMode::Persistent).await?;
    /// let (data, stat) = client.get_data("/config").await?;
    /// assert_eq!((&data[..], stat.version), (&b"v1"[..], 0));
    ///
    /// let missing = client.get_data("/nope").await;
    /// assert!(matches!(missing, Err(Error::Server { code: ErrorCode::NoNode, .. })));
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn get_data(&self, path: &str) -> impl Future<Output = Result<(Bytes, Stat)>> + Send + use<> {
        let fut = self.get_data_inner(path, false);
        async move { fut.await.map(|(data, stat, _)| (data, stat)) }
    }

    /// Like [`Client::get_data`], and leaves a one-shot watch that fires when the node's data
    /// changes or the node is deleted.
    ///
    /// # Errors
    ///
    /// As [`Client::get_data`] (no watch is left on a missing node).
    ///
    /// # Cancel safety
    ///
    /// The request is queued when this method returns; dropping the future loses the reply and
    /// the watcher (which then removes its watch).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::{CreateMode, EventType};
    ///
    /// client.create("/config", "v1", CreateMode::Persistent).await?;
    /// let (data, _, watcher) = client.get_data_and_watch("/config").await?;
    /// assert_eq!(&data[..], b"v1");
    /// client.set_data("/config", "v2", None).await?;
    /// // The event says that something changed; read again to see what.
    /// assert_eq!(watcher.await.event_type, EventType::NodeDataChanged);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn get_data_and_watch(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Bytes, Stat, OneshotWatcher)>> + Send + use<> {
        let fut = self.get_data_inner(path, true);
        async move {
            let (data, stat, watcher) = fut.await?;
            watcher.map(|w| (data, stat, w)).ok_or(Error::ConnectionLoss)
        }
    }

    /// Sets the node's data if its version matches (`None` for any) and returns the new stat.
    ///
    /// Passing the version read with the data makes a compare-and-set: the write fails with
    /// BadVersion if someone else wrote in between.
    ///
    /// # Errors
    ///
    /// NoNode, BadVersion, NoAuth as [`Error::Server`]; [`Error::RequestTooLarge`];
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
    /// use corral_core::{CreateMode, ErrorCode};
    ///
    /// client.create("/counter", "0", CreateMode::Persistent).await?;
    /// let (_, stat) = client.get_data("/counter").await?;
    /// let stat = client.set_data("/counter", "1", Some(stat.version)).await?;
    /// assert_eq!(stat.version, 1);
    /// // A writer still holding version 0 loses.
    /// let stale = client.set_data("/counter", "1", Some(0)).await.unwrap_err();
    /// assert_eq!(stale.code(), ErrorCode::BadVersion);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn set_data<D: Into<Bytes>>(
        &self,
        path: &str,
        data: D,
        version: Option<i32>,
    ) -> impl Future<Output = Result<Stat>> + Send + use<D> {
        let fut: Ready<Stat> = match self.server_path(path) {
            Err(e) => fail(e),
            Ok(sp) => {
                let request = Request::SetData(SetDataRequest {
                    path: sp,
                    data: Some(data.into()),
                    version: self::version(version),
                });
                let reply = self.submit(request, path, None, AfterReply::Nothing);
                Box::pin(async move {
                    match reply.await? {
                        Response::Stat(stat) => Ok(stat),
                        other => Err(unexpected("setData", &other)),
                    }
                })
            }
        };
        fut
    }

    /// The node's ACL and stat.
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
    /// use corral_core::{Acl, CreateMode};
    ///
    /// client.create("/open", "", CreateMode::Persistent).await?;
    /// let (acl, stat) = client.get_acl("/open").await?;
    /// assert_eq!(acl, Acl::open_unsafe()); // world:anyone, every permission
    /// assert_eq!(stat.aversion, 0);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn get_acl(&self, path: &str) -> impl Future<Output = Result<(Vec<Acl>, Stat)>> + Send + use<> {
        let fut: Ready<(Vec<Acl>, Stat)> = match self.server_path(path) {
            Err(e) => fail(e),
            Ok(sp) => {
                let reply = self.submit(Request::GetAcl(PathRequest { path: sp }), path, None, AfterReply::Nothing);
                Box::pin(async move {
                    match reply.await? {
                        Response::GetAcl(r) => Ok((r.acl, r.stat)),
                        other => Err(unexpected("getACL", &other)),
                    }
                })
            }
        };
        fut
    }

    /// Sets the node's ACL if its ACL version (aversion) matches (`None` for any).
    ///
    /// # Errors
    ///
    /// NoNode, BadVersion, InvalidACL, NoAuth as [`Error::Server`]; [`Error::InvalidPath`];
    /// connection and session errors.
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
    /// use corral_core::{Acl, CreateMode, ErrorCode};
    ///
    /// client.create("/frozen", "v1", CreateMode::Persistent).await?;
    /// let stat = client.set_acl("/frozen", Acl::read_unsafe(), Some(0)).await?;
    /// assert_eq!(stat.aversion, 1);
    /// let err = client.set_data("/frozen", "v2", None).await.unwrap_err();
    /// assert_eq!(err.code(), ErrorCode::NoAuth);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn set_acl(
        &self,
        path: &str,
        acl: Vec<Acl>,
        version: Option<i32>,
    ) -> impl Future<Output = Result<Stat>> + Send + use<> {
        let fut: Ready<Stat> = match self.server_path(path) {
            Err(e) => fail(e),
            Ok(sp) => {
                let request = Request::SetAcl(SetAclRequest { path: sp, acl, version: self::version(version) });
                let reply = self.submit(request, path, None, AfterReply::Nothing);
                Box::pin(async move {
                    match reply.await? {
                        Response::Stat(stat) => Ok(stat),
                        other => Err(unexpected("setACL", &other)),
                    }
                })
            }
        };
        fut
    }

    fn children_inner(&self, path: &str, watch: bool) -> Ready<(Vec<String>, Stat, Option<OneshotWatcher>)> {
        let sp = match self.server_path(path) {
            Err(e) => return fail(e),
            Ok(sp) => sp,
        };
        let (watcher, registration) = self.oneshot_if(watch, path, WatchKind::Child);
        let request = Request::GetChildren2(PathAndWatch { path: sp, watch });
        let reply = self.submit(request, path, registration, AfterReply::Nothing);
        Box::pin(async move {
            match reply.await? {
                Response::Children2(r) => Ok((r.children, r.stat, watcher)),
                other => Err(unexpected("getChildren2", &other)),
            }
        })
    }

    /// The names of the node's children, in no particular order.
    ///
    /// Names, not paths: join them to `path` to address a child.
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
    /// client.create("/app", "", CreateMode::Persistent).await?;
    /// client.create("/app/b", "", CreateMode::Persistent).await?;
    /// client.create("/app/a", "", CreateMode::Persistent).await?;
    /// let mut children = client.get_children("/app").await?;
    /// children.sort();
    /// assert_eq!(children, ["a", "b"]);
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn get_children(&self, path: &str) -> impl Future<Output = Result<Vec<String>>> + Send + use<> {
        let fut: Ready<Vec<String>> = match self.server_path(path) {
            Err(e) => fail(e),
            Ok(sp) => {
                let request = Request::GetChildren(PathAndWatch { path: sp, watch: false });
                let reply = self.submit(request, path, None, AfterReply::Nothing);
                Box::pin(async move {
                    match reply.await? {
                        Response::Children(r) => Ok(r.children),
                        other => Err(unexpected("getChildren", &other)),
                    }
                })
            }
        };
        fut
    }

    /// The names of the node's children and the node's stat (getChildren2).
    ///
    /// # Errors
    ///
    /// As [`Client::get_children`].
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
    /// client.create("/app", "", CreateMode::Persistent).await?;
    /// client.create("/app/a", "", CreateMode::Persistent).await?;
    /// let (children, stat) = client.get_children_with_stat("/app").await?;
    /// assert_eq!(children, ["a"]);
    /// assert_eq!((stat.num_children, stat.cversion), (1, 1));
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn get_children_with_stat(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Vec<String>, Stat)>> + Send + use<> {
        let fut = self.children_inner(path, false);
        async move { fut.await.map(|(c, s, _)| (c, s)) }
    }

    /// Like [`Client::get_children_with_stat`], and leaves a one-shot watch that fires when a
    /// child is created or deleted, or the node itself is deleted.
    ///
    /// # Errors
    ///
    /// As [`Client::get_children`] (no watch is left on a missing node).
    ///
    /// # Cancel safety
    ///
    /// The request is queued when this method returns; dropping the future loses the reply and
    /// the watcher (which then removes its watch).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::{CreateMode, EventType};
    ///
    /// client.create("/members", "", CreateMode::Persistent).await?;
    /// let (children, _, watcher) = client.get_children_and_watch("/members").await?;
    /// assert!(children.is_empty());
    /// client.create("/members/m-1", "", CreateMode::Ephemeral).await?;
    /// let event = watcher.await;
    /// assert_eq!((event.event_type, event.path.as_str()), (EventType::NodeChildrenChanged, "/members"));
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn get_children_and_watch(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Vec<String>, Stat, OneshotWatcher)>> + Send + use<> {
        let fut = self.children_inner(path, true);
        async move {
            let (children, stat, watcher) = fut.await?;
            watcher.map(|w| (children, stat, w)).ok_or(Error::ConnectionLoss)
        }
    }

    /// Waits until the server this client is connected to has caught up with the leader, so a
    /// following read sees every write committed before the sync.
    ///
    /// ZooKeeper reads are served by the server a client is connected to, which may lag behind
    /// the leader; a client always sees its own writes, but not necessarily another client's.
    /// Sync before a read that must see them.
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
    /// use corral_core::{Client, CreateMode};
    ///
    /// let writer = Client::connect(&server.connect_string()).await?;
    /// writer.create("/epoch", "7", CreateMode::Persistent).await?;
    /// client.sync("/epoch").await?;
    /// let (data, _) = client.get_data("/epoch").await?;
    /// assert_eq!(&data[..], b"7");
    /// # writer.close().await;
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn sync(&self, path: &str) -> impl Future<Output = Result<()>> + Send + use<> {
        let fut: Ready<()> = match self.server_path(path) {
            Err(e) => fail(e),
            Ok(sp) => {
                let reply = self.submit(Request::Sync(PathRequest { path: sp }), path, None, AfterReply::Nothing);
                Box::pin(async move { reply.await.map(|_| ()) })
            }
        };
        fut
    }
}
