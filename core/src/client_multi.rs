//! Transactions: [`Client::multi`] (atomic writes) and [`Client::multi_read`].

use std::future::Future;

use corral_proto::records::{CheckVersionRequest, DeleteRequest, PathAndWatch, SetDataRequest};
use corral_proto::{MultiOp, MultiRequest, MultiResult, Request, Response, validate_path, validate_sequential_path};

use crate::client::Client;
use crate::client_ops::{create_request, fail, unexpected, version};
use crate::error::{Error, Result};
use crate::ops::{Op, OpResult, ReadOp, ReadResult};
use crate::session::AfterReply;

impl Client {
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
    pub fn multi(&self, ops: Vec<Op>) -> impl Future<Output = Result<Vec<OpResult>>> + Send + use<> {
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
    pub fn multi_read(&self, ops: Vec<ReadOp>) -> impl Future<Output = Result<Vec<Result<ReadResult>>>> + Send + use<> {
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
}
