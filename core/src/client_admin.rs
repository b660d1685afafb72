//! Watch management, credentials and server-level operations of [`Client`].

use std::future::Future;

use bytes::Bytes;
use corral_proto::records::{AddWatchRequest, ClientInfo, PathAndWatch, PathRequest, ReconfigRequest, WatchesRequest};
use corral_proto::{AddWatchMode, Request, Response, Stat, WatcherType};

use crate::client::Client;
use crate::client_ops::{Ready, fail, unexpected};
use crate::error::{Error, Result};
use crate::session::AfterReply;
use crate::watcher::{PersistentWatcher, WatchKind};

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
    ) -> impl Future<Output = Result<()>> + Send + use<> {
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
    ) -> impl Future<Output = Result<()>> + Send + use<> {
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
    pub fn get_ephemerals(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>>> + Send + use<> {
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
    pub fn get_config(&self) -> impl Future<Output = Result<(Bytes, Stat)>> + Send + use<> {
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
}
