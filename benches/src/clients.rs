//! The clients under test behind one small trait: Corral (`corral-core`) and the
//! `zookeeper-client` crate.
//!
//! Every operation method calls the client's own method *before* returning, so the request is
//! queued at call time (both clients order requests when the future is created); the returned
//! future only waits for the reply. Pipelining is therefore "create many futures, then await
//! them", with nothing spawned per request.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

/// Why an operation failed, as far as the workloads care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OpError {
    /// The node does not exist.
    NoNode,
    /// The node exists already.
    NodeExists,
    /// Anything else, described.
    Other(String),
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::NoNode => f.write_str("no node"),
            OpError::NodeExists => f.write_str("node exists"),
            OpError::Other(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for OpError {}

/// The result of one benchmark operation.
pub(crate) type OpResult<T = ()> = Result<T, OpError>;

/// A ZooKeeper client as the workloads see it.
pub(crate) trait BenchClient: Sized + Send + Sync + 'static {
    /// A human-readable name and version, for the `#` context lines.
    fn describe() -> String;

    /// Builds a client and waits until its session is established (this is what
    /// `startup_*` times).
    fn connect(connect_string: &str, session_timeout: Duration) -> impl Future<Output = OpResult<Self>> + Send;

    /// `getData` without a watch; the data is read and dropped.
    fn get(&self, path: &str) -> impl Future<Output = OpResult> + Send;

    /// `setData` with any version.
    fn set(&self, path: &str, data: &Bytes) -> impl Future<Output = OpResult> + Send;

    /// Creates a persistent node with the open ACL. (One lifetime for all arguments:
    /// zookeeper-client's create future borrows both the client and the path.)
    fn create<'a>(&'a self, path: &'a str, data: &'a Bytes) -> impl Future<Output = OpResult> + Send + 'a;

    /// Deletes a node whatever its version.
    fn delete(&self, path: &str) -> impl Future<Output = OpResult> + Send;

    /// The names of a node's children.
    fn children(&self, path: &str) -> impl Future<Output = OpResult<Vec<String>>> + Send;

    /// Closes the session (and waits for the server's answer where the client allows it).
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// Corral's client, `corral_core::Client`.
#[derive(Debug)]
pub(crate) struct Corral(corral_core::Client);

pub(crate) fn corral_error(e: corral_core::Error) -> OpError {
    if e.is_no_node() {
        OpError::NoNode
    } else if e.is_node_exists() {
        OpError::NodeExists
    } else {
        OpError::Other(e.to_string())
    }
}

impl BenchClient for Corral {
    fn describe() -> String {
        format!("corral-core {}", env!("CARGO_PKG_VERSION"))
    }

    async fn connect(connect_string: &str, session_timeout: Duration) -> OpResult<Self> {
        corral_core::Client::builder(connect_string)
            .session_timeout(session_timeout)
            .connect()
            .await
            .map(Corral)
            .map_err(|e| OpError::Other(format!("connect to {connect_string}: {e}")))
    }

    fn get(&self, path: &str) -> impl Future<Output = OpResult> + Send {
        let reply = self.0.get_data(path);
        async move { reply.await.map(|_| ()).map_err(corral_error) }
    }

    fn set(&self, path: &str, data: &Bytes) -> impl Future<Output = OpResult> + Send {
        let reply = self.0.set_data(path, data.clone(), None);
        async move { reply.await.map(|_| ()).map_err(corral_error) }
    }

    fn create<'a>(&'a self, path: &'a str, data: &'a Bytes) -> impl Future<Output = OpResult> + Send + 'a {
        let reply = self.0.create(path, data.clone(), corral_core::CreateMode::Persistent);
        async move { reply.await.map(|_| ()).map_err(corral_error) }
    }

    fn delete(&self, path: &str) -> impl Future<Output = OpResult> + Send {
        let reply = self.0.delete(path, None);
        async move { reply.await.map_err(corral_error) }
    }

    fn children(&self, path: &str) -> impl Future<Output = OpResult<Vec<String>>> + Send {
        let reply = self.0.get_children(path);
        async move { reply.await.map_err(corral_error) }
    }

    async fn close(self) {
        self.0.close().await;
    }
}

/// The `zookeeper-client` crate's client.
#[derive(Debug)]
pub(crate) struct ZkClient {
    client: zookeeper_client::Client,
    options: zookeeper_client::CreateOptions<'static>,
}

fn zkc_error(e: zookeeper_client::Error) -> OpError {
    match e {
        zookeeper_client::Error::NoNode => OpError::NoNode,
        zookeeper_client::Error::NodeExists => OpError::NodeExists,
        e => OpError::Other(e.to_string()),
    }
}

impl BenchClient for ZkClient {
    fn describe() -> String {
        format!("zookeeper-client {}", env!("BENCH_ZKC_VERSION"))
    }

    async fn connect(connect_string: &str, session_timeout: Duration) -> OpResult<Self> {
        let client = zookeeper_client::Client::connector()
            .with_session_timeout(session_timeout)
            .with_connection_timeout(Duration::from_secs(15))
            .connect(connect_string)
            .await
            .map_err(|e| OpError::Other(format!("connect to {connect_string}: {e}")))?;
        let options = zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
        Ok(ZkClient { client, options })
    }

    fn get(&self, path: &str) -> impl Future<Output = OpResult> + Send {
        let reply = self.client.get_data(path);
        async move { reply.await.map(|_| ()).map_err(zkc_error) }
    }

    fn set(&self, path: &str, data: &Bytes) -> impl Future<Output = OpResult> + Send {
        let reply = self.client.set_data(path, data, None);
        async move { reply.await.map(|_| ()).map_err(zkc_error) }
    }

    fn create<'a>(&'a self, path: &'a str, data: &'a Bytes) -> impl Future<Output = OpResult> + Send + 'a {
        let reply = self.client.create(path, data, &self.options);
        async move { reply.await.map(|_| ()).map_err(zkc_error) }
    }

    fn delete(&self, path: &str) -> impl Future<Output = OpResult> + Send {
        let reply = self.client.delete(path, None);
        async move { reply.await.map_err(zkc_error) }
    }

    fn children(&self, path: &str) -> impl Future<Output = OpResult<Vec<String>>> + Send {
        let reply = self.client.list_children(path);
        async move { reply.await.map_err(zkc_error) }
    }

    async fn close(self) {
        // zookeeper-client has no explicit close: dropping the last handle closes the session
        // in the background.
        drop(self);
    }
}
