//! The ZooKeeper operations of [`Client`], one async method each, with typed results.
//!
//! Each method validates its arguments and queues its request *before* returning the future,
//! so the order of calls is the order on the wire. Paths are relative to the chroot.

use std::future::Future;

use bytes::Bytes;
use corral_proto::records::{
    AddWatchRequest, CheckVersionRequest, ClientInfo, CreateRequest, CreateTtlRequest, DeleteRequest, PathAndWatch,
    PathRequest, ReconfigRequest, SetAclRequest, SetDataRequest, WatchesRequest,
};
use corral_proto::{
    Acl, AddWatchMode, CreateMode, MAX_TTL_MS, MultiOp, MultiRequest, MultiResult, Request, Response, Stat,
    WatcherType, validate_path, validate_sequential_path,
};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::ops::{CreateOptions, Op, OpResult, ReadOp, ReadResult};
use crate::session::AfterReply;
use crate::watcher::{OneshotWatcher, PersistentWatcher, WatchKind};

/// A future that fails at once (argument errors found before sending).
type Ready<T> = std::pin::Pin<Box<dyn Future<Output = Result<T>> + Send + 'static>>;

fn fail<T: Send + 'static>(e: Error) -> Ready<T> {
    Box::pin(std::future::ready(Err(e)))
}

fn unexpected(op: &str, response: &Response) -> Error {
    tracing::error!(op, ?response, "reply of an unexpected shape");
    Error::ConnectionLoss
}

fn version(v: Option<i32>) -> i32 {
    v.unwrap_or(-1)
}

/// The create request for `options`, with the opcode ZooKeeper expects for the mode.
fn create_request(
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
        let r = CreateTtlRequest {
            path: server_path,
            data,
            acl: options.acl.clone(),
            flags,
            ttl,
        };
        return Ok((Request::CreateTtl(r.clone()), MultiOp::CreateTtl(r)));
    }
    let r = CreateRequest {
        path: server_path,
        data,
        acl: options.acl.clone(),
        flags,
    };
    Ok(match mode {
        CreateMode::Container => (Request::CreateContainer(r.clone()), MultiOp::CreateContainer(r)),
        // Inside a multi, plain create: ZooKeeper ≤ 3.8 answers create2 with the path only anyway.
        _ if in_multi => (Request::Create(r.clone()), MultiOp::Create(r)),
        _ => (Request::Create2(r.clone()), MultiOp::Create2(r)),
    })
}

impl Client {
    fn server_path(&self, path: &str) -> Result<String> {
        validate_path(path)?;
        Ok(self.chroot().prepend(path))
    }

    fn strip(&self, server_path: &str) -> String {
        self.chroot().strip(server_path)
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
    /// ```no_run
    /// # async fn demo(client: corral_core::Client) -> corral_core::Result<()> {
    /// use corral_core::CreateMode;
    /// let (path, stat) = client.create("/jobs/job-", "payload", CreateMode::PersistentSequential).await?;
    /// assert!(path.starts_with("/jobs/job-"));
    /// # Ok(()) }
    /// ```
    pub fn create(
        &self,
        path: &str,
        data: impl Into<Bytes>,
        options: impl Into<CreateOptions>,
    ) -> impl Future<Output = Result<(String, Stat)>> + Send + 'static {
        let options = options.into();
        let checked = if options.mode.is_sequential() {
            validate_sequential_path(path)
        } else {
            validate_path(path)
        };
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
    pub fn delete(&self, path: &str, version: Option<i32>) -> impl Future<Output = Result<()>> + Send + 'static {
        let fut: Ready<()> = match self.server_path(path) {
            Err(e) => fail(e),
            Ok(sp) => {
                let reply = self.submit(
                    Request::Delete(DeleteRequest {
                        path: sp,
                        version: self::version(version),
                    }),
                    path,
                    None,
                    AfterReply::Nothing,
                );
                Box::pin(async move { reply.await.map(|_| ()) })
            }
        };
        fut
    }

    fn exists_inner(&self, path: &str, watch: bool) -> Ready<(Option<Stat>, Option<OneshotWatcher>)> {
        let sp = match self.server_path(path) {
            Err(e) => return fail(e),
            Ok(sp) => sp,
        };
        let (watcher, registration) = if watch {
            let (w, r) = self.oneshot_watch(path, WatchKind::Exist);
            (Some(w), Some(r))
        } else {
            (None, None)
        };
        let reply = self.submit(
            Request::Exists(PathAndWatch { path: sp, watch }),
            path,
            registration,
            AfterReply::Nothing,
        );
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
    /// # Errors
    ///
    /// NoAuth as [`Error::Server`]; [`Error::InvalidPath`]; connection and session errors.
    ///
    /// # Cancel safety
    ///
    /// The request is queued when this method returns; dropping the future loses only the reply.
    pub fn exists(&self, path: &str) -> impl Future<Output = Result<Option<Stat>>> + Send + 'static {
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
    pub fn exists_and_watch(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Option<Stat>, OneshotWatcher)>> + Send + 'static {
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
        let (watcher, registration) = if watch {
            let (w, r) = self.oneshot_watch(path, WatchKind::Data);
            (Some(w), Some(r))
        } else {
            (None, None)
        };
        let reply = self.submit(
            Request::GetData(PathAndWatch { path: sp, watch }),
            path,
            registration,
            AfterReply::Nothing,
        );
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
    pub fn get_data(&self, path: &str) -> impl Future<Output = Result<(Bytes, Stat)>> + Send + 'static {
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
    pub fn get_data_and_watch(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Bytes, Stat, OneshotWatcher)>> + Send + 'static {
        let fut = self.get_data_inner(path, true);
        async move {
            let (data, stat, watcher) = fut.await?;
            watcher.map(|w| (data, stat, w)).ok_or(Error::ConnectionLoss)
        }
    }

    /// Sets the node's data if its version matches (`None` for any) and returns the new stat.
    ///
    /// # Errors
    ///
    /// NoNode, BadVersion, NoAuth as [`Error::Server`]; [`Error::RequestTooLarge`];
    /// [`Error::InvalidPath`]; connection and session errors.
    ///
    /// # Cancel safety
    ///
    /// The request is queued when this method returns; dropping the future loses only the reply.
    pub fn set_data(
        &self,
        path: &str,
        data: impl Into<Bytes>,
        version: Option<i32>,
    ) -> impl Future<Output = Result<Stat>> + Send + 'static {
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
    pub fn get_acl(&self, path: &str) -> impl Future<Output = Result<(Vec<Acl>, Stat)>> + Send + 'static {
        let fut: Ready<(Vec<Acl>, Stat)> = match self.server_path(path) {
            Err(e) => fail(e),
            Ok(sp) => {
                let reply = self.submit(
                    Request::GetAcl(PathRequest { path: sp }),
                    path,
                    None,
                    AfterReply::Nothing,
                );
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
    pub fn set_acl(
        &self,
        path: &str,
        acl: Vec<Acl>,
        version: Option<i32>,
    ) -> impl Future<Output = Result<Stat>> + Send + 'static {
        let fut: Ready<Stat> = match self.server_path(path) {
            Err(e) => fail(e),
            Ok(sp) => {
                let request = Request::SetAcl(SetAclRequest {
                    path: sp,
                    acl,
                    version: self::version(version),
                });
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
        let (watcher, registration) = if watch {
            let (w, r) = self.oneshot_watch(path, WatchKind::Child);
            (Some(w), Some(r))
        } else {
            (None, None)
        };
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
    /// # Errors
    ///
    /// NoNode, NoAuth as [`Error::Server`]; [`Error::InvalidPath`]; connection and session
    /// errors.
    ///
    /// # Cancel safety
    ///
    /// The request is queued when this method returns; dropping the future loses only the reply.
    pub fn get_children(&self, path: &str) -> impl Future<Output = Result<Vec<String>>> + Send + 'static {
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
    pub fn get_children_with_stat(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Vec<String>, Stat)>> + Send + 'static {
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
    pub fn get_children_and_watch(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Vec<String>, Stat, OneshotWatcher)>> + Send + 'static {
        let fut = self.children_inner(path, true);
        async move {
            let (children, stat, watcher) = fut.await?;
            watcher.map(|w| (children, stat, w)).ok_or(Error::ConnectionLoss)
        }
    }

    /// Waits until the server this client is connected to has caught up with the leader, so a
    /// following read sees every write committed before the sync.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`]; connection and session errors.
    ///
    /// # Cancel safety
    ///
    /// The request is queued when this method returns; dropping the future loses only the reply.
    pub fn sync(&self, path: &str) -> impl Future<Output = Result<()>> + Send + 'static {
        let fut: Ready<()> = match self.server_path(path) {
            Err(e) => fail(e),
            Ok(sp) => {
                let reply = self.submit(Request::Sync(PathRequest { path: sp }), path, None, AfterReply::Nothing);
                Box::pin(async move { reply.await.map(|_| ()) })
            }
        };
        fut
    }

    /// Applies `ops` atomically: all of them or none.
    ///
    /// An empty list succeeds at once without a request (as the Java client does).
    ///
    /// # Errors
    ///
    /// [`Error::MultiFailed`] with the index, code and path of the operation that failed
    /// (nothing was applied); argument errors before sending; connection and session errors
    /// (after ConnectionLoss the transaction may or may not have been applied).
    ///
    /// # Cancel safety
    ///
    /// The request is queued when this method returns; dropping the future loses only the reply.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(client: corral_core::Client) -> corral_core::Result<()> {
    /// use corral_core::{CreateMode, Op};
    /// client.multi(vec![
    ///     Op::check("/config", Some(3)),
    ///     Op::set_data("/config", "v4", Some(3)),
    ///     Op::create("/config/history-", "v3", CreateMode::PersistentSequential),
    /// ]).await?;
    /// # Ok(()) }
    /// ```
    pub fn multi(&self, ops: Vec<Op>) -> impl Future<Output = Result<Vec<OpResult>>> + Send + 'static {
        let mut wire = Vec::with_capacity(ops.len());
        let mut paths = Vec::with_capacity(ops.len());
        for op in ops {
            let path = op.path().to_owned();
            let checked = match &op {
                Op::Create { options, .. } if options.mode.is_sequential() => validate_sequential_path(&path),
                _ => validate_path(&path),
            };
            if let Err(e) = checked {
                return fail(e.into());
            }
            let sp = self.chroot().prepend(&path);
            let m = match op {
                Op::Create { data, options, .. } => match create_request(sp, data, &options, true) {
                    Ok((_, m)) => m,
                    Err(e) => return fail(e),
                },
                Op::Delete { version, .. } => MultiOp::Delete(DeleteRequest {
                    path: sp,
                    version: self::version(version),
                }),
                Op::SetData { data, version, .. } => MultiOp::SetData(SetDataRequest {
                    path: sp,
                    data: Some(data),
                    version: self::version(version),
                }),
                Op::Check { version, .. } => MultiOp::Check(CheckVersionRequest {
                    path: sp,
                    version: self::version(version),
                }),
            };
            wire.push(m);
            paths.push(path);
        }
        if wire.is_empty() {
            return Box::pin(std::future::ready(Ok(Vec::new())));
        }
        let first = paths.first().cloned().unwrap_or_default();
        let reply = self.submit(
            Request::Multi(MultiRequest { ops: wire }),
            &first,
            None,
            AfterReply::Nothing,
        );
        let this = self.clone();
        Box::pin(async move {
            let response = match reply.await? {
                Response::Multi(r) => r,
                other => return Err(unexpected("multi", &other)),
            };
            if let Some((index, code)) = response.failure() {
                return Err(Error::MultiFailed {
                    index,
                    code,
                    path: paths.get(index).cloned().unwrap_or_default(),
                });
            }
            if response.results.len() != paths.len() {
                tracing::error!(
                    expected = paths.len(),
                    got = response.results.len(),
                    "multi result count mismatch"
                );
                return Err(Error::ConnectionLoss);
            }
            response
                .results
                .into_iter()
                .map(|r| match r {
                    MultiResult::Create(c) => Ok(OpResult::Create {
                        path: this.strip(&c.path),
                        stat: None,
                    }),
                    MultiResult::Create2(c) => Ok(OpResult::Create {
                        path: this.strip(&c.path),
                        stat: Some(c.stat),
                    }),
                    MultiResult::Delete => Ok(OpResult::Delete),
                    MultiResult::SetData(stat) => Ok(OpResult::SetData(stat)),
                    MultiResult::Check => Ok(OpResult::Check),
                    MultiResult::GetData(_) | MultiResult::GetChildren(_) | MultiResult::Error(_) => {
                        tracing::error!(?r, "unexpected multi result");
                        Err(Error::ConnectionLoss)
                    }
                })
                .collect()
        })
    }

    /// Runs several reads in one request (ZooKeeper ≥ 3.6). Not atomic: each read gets its own
    /// result.
    ///
    /// # Errors
    ///
    /// The outer error for argument, connection and session errors; per-read NoNode/NoAuth as
    /// [`Error::Server`] in the inner results.
    ///
    /// # Cancel safety
    ///
    /// The request is queued when this method returns; dropping the future loses only the reply.
    pub fn multi_read(
        &self,
        ops: Vec<ReadOp>,
    ) -> impl Future<Output = Result<Vec<Result<ReadResult>>>> + Send + 'static {
        let mut wire = Vec::with_capacity(ops.len());
        let mut paths = Vec::with_capacity(ops.len());
        for op in ops {
            let (path, get_data) = match op {
                ReadOp::GetData(p) => (p, true),
                ReadOp::GetChildren(p) => (p, false),
            };
            let sp = match self.server_path(&path) {
                Ok(sp) => sp,
                Err(e) => return fail(e),
            };
            let record = PathAndWatch { path: sp, watch: false };
            wire.push(if get_data {
                MultiOp::GetData(record)
            } else {
                MultiOp::GetChildren(record)
            });
            paths.push(path);
        }
        if wire.is_empty() {
            return Box::pin(std::future::ready(Ok(Vec::new())));
        }
        let first = paths.first().cloned().unwrap_or_default();
        let reply = self.submit(
            Request::MultiRead(MultiRequest { ops: wire }),
            &first,
            None,
            AfterReply::Nothing,
        );
        Box::pin(async move {
            let response = match reply.await? {
                Response::Multi(r) => r,
                other => return Err(unexpected("multiRead", &other)),
            };
            Ok(response
                .results
                .into_iter()
                .zip(paths)
                .map(|(r, path)| match r {
                    MultiResult::GetData(d) => Ok(ReadResult::Data(d.data.unwrap_or_default(), d.stat)),
                    MultiResult::GetChildren(c) => Ok(ReadResult::Children(c.children)),
                    MultiResult::Error(code) => Err(Error::server(code, path)),
                    other => Err(unexpected(
                        "multiRead result",
                        &Response::Multi(corral_proto::MultiResponse { results: vec![other] }),
                    )),
                })
                .collect())
        })
    }

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
    pub fn add_watch(
        &self,
        path: &str,
        mode: AddWatchMode,
    ) -> impl Future<Output = Result<PersistentWatcher>> + Send + 'static {
        let fut: Ready<PersistentWatcher> = match self.server_path(path) {
            Err(e) => fail(e),
            Ok(sp) => {
                let kind = match mode {
                    AddWatchMode::PersistentRecursive => WatchKind::PersistentRecursive,
                    _ => WatchKind::Persistent,
                };
                let (watcher, registration) = self.persistent_watch(path, kind);
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
    pub fn remove_watches(
        &self,
        path: &str,
        watcher_type: WatcherType,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let fut: Ready<()> = match self.server_path(path) {
            Err(e) => fail(e),
            Ok(sp) => {
                let request = Request::RemoveWatches(WatchesRequest { path: sp, watcher_type });
                let after = AfterReply::RemoveLocal {
                    path: path.to_owned(),
                    watcher_type,
                };
                let reply = self.submit(request, path, None, after);
                Box::pin(async move { reply.await.map(|_| ()) })
            }
        };
        fut
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
    pub fn check_watches(
        &self,
        path: &str,
        watcher_type: WatcherType,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let fut: Ready<()> = match self.server_path(path) {
            Err(e) => fail(e),
            Ok(sp) => {
                let request = Request::CheckWatches(WatchesRequest { path: sp, watcher_type });
                let reply = self.submit(request, path, None, AfterReply::Nothing);
                Box::pin(async move { reply.await.map(|_| ()) })
            }
        };
        fut
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
    pub fn get_ephemerals(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>>> + Send + 'static {
        let fut: Ready<Vec<String>> = match self.server_path(prefix) {
            Err(e) => fail(e),
            Ok(sp) => {
                let reply = self.submit(
                    Request::GetEphemerals(PathRequest { path: sp }),
                    prefix,
                    None,
                    AfterReply::Nothing,
                );
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
    pub fn get_all_children_number(&self, path: &str) -> impl Future<Output = Result<i32>> + Send + 'static {
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
    pub fn who_am_i(&self) -> impl Future<Output = Result<Vec<ClientInfo>>> + Send + 'static {
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
    pub fn add_auth(&self, scheme: &str, auth: impl Into<Bytes>) -> impl Future<Output = Result<()>> + Send + 'static {
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
    pub fn get_config(&self) -> impl Future<Output = Result<(Bytes, Stat)>> + Send + 'static {
        let request = Request::GetData(PathAndWatch {
            path: "/zookeeper/config".into(),
            watch: false,
        });
        let reply = self.submit(request, "/zookeeper/config", None, AfterReply::Nothing);
        async move {
            match reply.await? {
                Response::GetData(r) => Ok((r.data.unwrap_or_default(), r.stat)),
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
    pub fn reconfig(
        &self,
        joining: Option<&str>,
        leaving: Option<&str>,
        new_members: Option<&str>,
        from_config: i64,
    ) -> impl Future<Output = Result<(Bytes, Stat)>> + Send + 'static {
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
}
