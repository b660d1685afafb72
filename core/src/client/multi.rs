//! Transactions: [`Client::multi`] (atomic writes) and [`Client::multi_read`].

use std::future::Future;

use corral_proto::records::{CheckVersionRequest, DeleteRequest, PathAndWatch, SetDataRequest};
use corral_proto::{MultiOp, MultiRequest, MultiResult, Request, Response, validate_path, validate_sequential_path};

use crate::client::Client;
use crate::client::ops::{create_request, fail, unexpected, version};
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
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::{CreateMode, Error, ErrorCode, Op, OpResult};
    ///
    /// client.create("/config", "v1", CreateMode::Persistent).await?;
    /// let results = client.multi(vec![
    ///     Op::check("/config", Some(0)),
    ///     Op::set_data("/config", "v2", Some(0)),
    ///     Op::create("/config/history-", "v1", CreateMode::PersistentSequential),
    /// ]).await?;
    /// assert!(matches!(&results[2], OpResult::Create { path, .. } if path == "/config/history-0000000000"));
    ///
    /// // Replayed, the version check fails, and nothing is applied.
    /// let err = client.multi(vec![Op::check("/config", Some(0)), Op::delete("/config", None)]).await.unwrap_err();
    /// assert!(matches!(err, Error::MultiFailed { index: 0, code: ErrorCode::BadVersion, .. }));
    /// assert!(client.exists("/config").await?.is_some());
    /// # client.close().await;
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
                Op::Delete { version, .. } => {
                    MultiOp::Delete(DeleteRequest { path: sp, version: self::version(version) })
                }
                Op::SetData { data, version, .. } => {
                    MultiOp::SetData(SetDataRequest { path: sp, data: Some(data), version: self::version(version) })
                }
                Op::Check { version, .. } => {
                    MultiOp::Check(CheckVersionRequest { path: sp, version: self::version(version) })
                }
            };
            wire.push(m);
            paths.push(path);
        }
        if wire.is_empty() {
            return Box::pin(std::future::ready(Ok(Vec::new())));
        }
        let first = paths.first().cloned().unwrap_or_default();
        let reply = self.submit(Request::Multi(MultiRequest { ops: wire }), &first, None, AfterReply::Nothing);
        let this = self.clone();
        Box::pin(async move {
            let response = match reply.await? {
                Response::Multi(r) => r,
                other => return Err(unexpected("multi", &other)),
            };
            if let Some((index, code)) = response.failure() {
                return Err(Error::MultiFailed { index, code, path: paths.get(index).cloned().unwrap_or_default() });
            }
            if response.results.len() != paths.len() {
                tracing::error!(expected = paths.len(), got = response.results.len(), "multi result count mismatch");
                return Err(Error::ConnectionLoss);
            }
            response
                .results
                .into_iter()
                .map(|r| match r {
                    MultiResult::Create(c) => Ok(OpResult::Create { path: this.strip(&c.path), stat: None }),
                    MultiResult::Create2(c) => Ok(OpResult::Create { path: this.strip(&c.path), stat: Some(c.stat) }),
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
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let client = corral_core::Client::connect(&server.connect_string()).await?;
    /// use corral_core::{CreateMode, ReadOp, ReadResult};
    ///
    /// client.create("/a", "data", CreateMode::Persistent).await?;
    /// let reads = vec![
    ///     ReadOp::GetData("/a".into()),
    ///     ReadOp::GetChildren("/a".into()),
    ///     ReadOp::GetData("/b".into()),
    /// ];
    /// let results = client.multi_read(reads).await?;
    /// assert!(matches!(&results[0], Ok(ReadResult::Data(data, _)) if &data[..] == b"data"));
    /// assert_eq!(results[1], Ok(ReadResult::Children(vec![])));
    /// assert!(results[2].as_ref().is_err_and(|e| e.is_no_node()));
    /// # client.close().await;
    /// # Ok(()) }
    /// ```
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
            wire.push(if get_data { MultiOp::GetData(record) } else { MultiOp::GetChildren(record) });
            paths.push(path);
        }
        if wire.is_empty() {
            return Box::pin(std::future::ready(Ok(Vec::new())));
        }
        let first = paths.first().cloned().unwrap_or_default();
        let reply = self.submit(Request::MultiRead(MultiRequest { ops: wire }), &first, None, AfterReply::Nothing);
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
