//! How the client reaches a server: TCP by default, or any byte stream a [`Connector`] makes
//! (an in-memory pipe to an embedded server in tests, a TLS stream, a SOCKS tunnel).

use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::connect_string::HostPort;

/// A bidirectional byte stream the client can speak ZooKeeper over.
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncStream for T {}

/// A boxed [`AsyncStream`].
pub type BoxStream = Box<dyn AsyncStream>;

/// The future a [`Connector`] returns: the stream and the peer address to report.
pub type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<(BoxStream, SocketAddr)>> + Send + 'static>>;

/// Opens a byte stream to one host of the connect string.
///
/// The client calls it for every connection attempt, within the per-host connect timeout; the
/// handshake follows on the returned stream. Implement it to run the client over something
/// other than plain TCP.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// use corral_core::{BoxStream, Client, ConnectFuture, Connector, HostPort};
///
/// /// Connects every host name to one fixed address (say, a port forward).
/// #[derive(Debug)]
/// struct Fixed(std::net::SocketAddr);
///
/// impl Connector for Fixed {
///     fn connect(&self, _host: &HostPort) -> ConnectFuture {
///         let addr = self.0;
///         Box::pin(async move {
///             let stream = tokio::net::TcpStream::connect(addr).await?;
///             Ok((Box::new(stream) as BoxStream, addr))
///         })
///     }
/// }
///
/// let client = Client::builder("zk.internal:2181").connector(Fixed(server.addr())).connect().await?;
/// assert!(client.state().borrow().is_connected());
/// # client.close().await;
/// # Ok(()) }
/// ```
pub trait Connector: Debug + Send + Sync + 'static {
    /// Opens a stream to `host`, and returns it with the peer address to report in
    /// [`SessionEvent::Connected`](crate::SessionEvent::Connected).
    ///
    /// # Errors
    ///
    /// Any I/O error: the client logs it and tries the next host.
    ///
    /// # Cancel safety
    ///
    /// The client drops the future when the connect timeout runs out; it must then leave
    /// nothing behind.
    fn connect(&self, host: &HostPort) -> ConnectFuture;
}

/// The stream of one connection: TCP (split without locking) or a boxed stream.
pub(crate) enum Transport {
    Tcp(tokio::net::TcpStream),
    Custom(BoxStream),
}

impl Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(s) => f.debug_tuple("Tcp").field(s).finish(),
            Self::Custom(_) => f.write_str("Custom"),
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Custom(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Custom(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Custom(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Custom(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Resolves `host` now and connects over TCP to the first address that answers.
pub(crate) async fn connect_tcp(host: &HostPort) -> Result<(Transport, SocketAddr), String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.host.as_str(), host.port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let mut last_err = format!("{host} resolved to no address");
    for addr in addrs {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok((Transport::Tcp(stream), addr));
            }
            Err(e) => last_err = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(last_err)
}

/// Why one connection attempt failed, and whether TLS was the reason (a certificate the client
/// does not trust, a server that wants a client certificate): that is a configuration problem
/// worth reporting plainly, where a refused TCP connection is not.
#[derive(Debug)]
pub(crate) struct ConnectFailure {
    pub(crate) reason: String,
    pub(crate) tls: bool,
}

impl ConnectFailure {
    /// A failed read or write: a TLS failure if the stream's TLS layer said so.
    pub(crate) fn io(what: impl std::fmt::Display, e: &io::Error) -> Self {
        match crate::tls::tls_error(e) {
            Some(_) => Self { reason: format!("{what}: {}", crate::tls::describe(e)), tls: true },
            None => Self { reason: format!("{what}: {e}"), tls: false },
        }
    }
}

impl From<String> for ConnectFailure {
    fn from(reason: String) -> Self {
        Self { reason, tls: false }
    }
}

impl std::fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// How every connection of a client is opened: the session's, the `isro` probes' and the
/// four-letter words'. TCP or the custom connector, then TLS if configured.
#[derive(Debug, Clone, Default)]
pub(crate) struct Dialer {
    pub(crate) connector: Option<Arc<dyn Connector>>,
    pub(crate) tls: Option<crate::tls::ClientTls>,
}

impl Dialer {
    /// Opens a stream to `host`, TLS handshake included.
    pub(crate) async fn open(&self, host: &HostPort) -> Result<(Transport, SocketAddr), ConnectFailure> {
        let (stream, addr) = match &self.connector {
            None => connect_tcp(host).await?,
            Some(c) => {
                let (stream, addr) = c.connect(host).await.map_err(|e| format!("cannot connect to {host}: {e}"))?;
                (Transport::Custom(stream), addr)
            }
        };
        match &self.tls {
            None => Ok((stream, addr)),
            Some(tls) => match tls.wrap(stream, host).await {
                Ok(stream) => Ok((stream, addr)),
                Err(e) => {
                    Err(ConnectFailure { reason: format!("TLS with {host} ({addr}) failed: {}", e.0), tls: true })
                }
            },
        }
    }
}
