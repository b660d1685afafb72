//! How the client reaches a server: TCP by default, or any byte stream a [`Connector`] makes
//! (an in-memory pipe to an embedded server in tests, a TLS stream, a SOCKS tunnel).

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

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

/// The shortest a TCP handshake is given once the path's usual time is known.
const SYN_LIMIT_FLOOR: Duration = Duration::from_millis(50);
/// How many times the path's usual handshake time a TCP handshake is given.
const SYN_LIMIT_FACTOR: u32 = 8;
/// The kernel's first SYN retransmission timeout: a handshake that took this long or longer
/// had its SYN dropped and sent again, so its time says nothing about the path (Karn's rule).
const SYN_RETRANSMITTED: Duration = Duration::from_secs(1);
/// The most a path's limit doubles after TCP handshakes that were not answered in a row.
const MAX_SYN_DOUBLINGS: u32 = 5;

/// What the clients of one builder have learnt about opening TCP connections to each server
/// address: how long the kernel's handshake usually takes, and how many attempts in a row went
/// unanswered.
///
/// A server whose accept queue is full drops new SYNs; the kernel sends the SYN again only
/// after a second, then three. When a herd of clients reconnects at once (a server restart,
/// every session of a fleet expired), the dropped ones would all come back together a second
/// later, in waves, leaving the server idle in between. A client that knows its path answers a
/// handshake in well under a millisecond instead gives up on an unanswered SYN after a few
/// times that (never less than 50 ms), and the connect loop's jittered, growing pause spreads
/// the next attempts — the way Ethernet's backoff shares a busy medium. Each unanswered attempt
/// doubles the limit (up to 32×), so a path that merely became slower is not given up on; an
/// address never connected to gets the kernel's own schedule. Shared by every clone of a
/// builder, so a framework's next session starts with what the last one learnt.
#[derive(Debug, Default)]
pub(crate) struct ConnectPacing {
    paths: Mutex<HashMap<SocketAddr, Path>>,
}

#[derive(Debug, Clone, Copy)]
struct Path {
    /// The usual handshake time: the smallest seen, drifting up an eighth of the way towards
    /// longer ones.
    usual: Duration,
    /// Attempts in a row that got no answer within their limit.
    unanswered: u32,
}

impl ConnectPacing {
    /// How long a TCP handshake to `addr` is given; `None` before any handshake succeeded.
    fn limit(&self, addr: SocketAddr) -> Option<Duration> {
        let paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        let path = paths.get(&addr)?;
        let base = (path.usual * SYN_LIMIT_FACTOR).max(SYN_LIMIT_FLOOR);
        Some(base * (1 << path.unanswered.min(MAX_SYN_DOUBLINGS)))
    }

    /// Records a handshake to `addr` that took `took`.
    fn answered(&self, addr: SocketAddr, took: Duration) {
        let mut paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        match paths.get_mut(&addr) {
            Some(path) => {
                path.unanswered = 0;
                if took < path.usual {
                    path.usual = took;
                } else if took < SYN_RETRANSMITTED {
                    path.usual += (took - path.usual) / 8;
                }
            }
            None if took < SYN_RETRANSMITTED => {
                paths.insert(addr, Path { usual: took, unanswered: 0 });
            }
            None => {}
        }
    }

    /// Records a handshake to `addr` that got no answer within its limit.
    fn unanswered(&self, addr: SocketAddr) {
        let mut paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(path) = paths.get_mut(&addr) {
            path.unanswered = path.unanswered.saturating_add(1);
        }
    }
}

/// Resolves `host` now and connects over TCP to the first address that answers, giving each
/// address's handshake the limit `pacing` has learnt for it.
pub(crate) async fn connect_tcp(host: &HostPort, pacing: &ConnectPacing) -> Result<(Transport, SocketAddr), String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.host.as_str(), host.port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let mut last_err = format!("{host} resolved to no address");
    for addr in addrs {
        let started = Instant::now();
        let attempt = tokio::net::TcpStream::connect(addr);
        let result = match pacing.limit(addr) {
            None => attempt.await,
            Some(limit) => match tokio::time::timeout(limit, attempt).await {
                Ok(result) => result,
                Err(_) => {
                    pacing.unanswered(addr);
                    last_err = format!(
                        "no answer from {addr} to the TCP handshake within {limit:?} (its accept queue may be full)"
                    );
                    continue;
                }
            },
        };
        match result {
            Ok(stream) => {
                pacing.answered(addr, started.elapsed());
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
    pub(crate) pacing: Arc<ConnectPacing>,
}

impl Dialer {
    /// Opens a stream to `host`, TLS handshake included.
    pub(crate) async fn open(&self, host: &HostPort) -> Result<(Transport, SocketAddr), ConnectFailure> {
        let (stream, addr) = match &self.connector {
            None => connect_tcp(host, &self.pacing).await?,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn no_limit_until_a_handshake_was_answered() {
        let pacing = ConnectPacing::default();
        assert_eq!(pacing.limit(addr(1)), None);
        pacing.unanswered(addr(1));
        assert_eq!(pacing.limit(addr(1)), None);
        // A handshake whose SYN was sent again says nothing about the path.
        pacing.answered(addr(1), Duration::from_millis(1_000));
        assert_eq!(pacing.limit(addr(1)), None);
    }

    #[test]
    fn the_limit_is_a_multiple_of_the_usual_time_never_under_the_floor() {
        let pacing = ConnectPacing::default();
        pacing.answered(addr(1), Duration::from_micros(80));
        assert_eq!(pacing.limit(addr(1)), Some(SYN_LIMIT_FLOOR));
        pacing.answered(addr(2), Duration::from_millis(20));
        assert_eq!(pacing.limit(addr(2)), Some(Duration::from_millis(160)));
        // A faster handshake is taken at once; a slower one moves the usual time an eighth.
        pacing.answered(addr(2), Duration::from_millis(10));
        assert_eq!(pacing.limit(addr(2)), Some(Duration::from_millis(80)));
        pacing.answered(addr(2), Duration::from_millis(90));
        assert_eq!(pacing.limit(addr(2)), Some(Duration::from_millis(160)));
        // A retransmitted SYN does not move it.
        pacing.answered(addr(2), Duration::from_millis(3_000));
        assert_eq!(pacing.limit(addr(2)), Some(Duration::from_millis(160)));
    }

    #[test]
    fn unanswered_attempts_double_the_limit_up_to_a_bound_and_an_answer_resets_it() {
        let pacing = ConnectPacing::default();
        pacing.answered(addr(1), Duration::from_micros(50));
        for doublings in 1..=8u32 {
            pacing.unanswered(addr(1));
            let expected = SYN_LIMIT_FLOOR * (1 << doublings.min(MAX_SYN_DOUBLINGS));
            assert_eq!(pacing.limit(addr(1)), Some(expected));
        }
        pacing.answered(addr(1), Duration::from_micros(50));
        assert_eq!(pacing.limit(addr(1)), Some(SYN_LIMIT_FLOOR));
    }

    /// A listener whose accept queue is full drops SYNs: once the path is known, the attempt is
    /// given up after its limit instead of waiting for the kernel's retransmissions (which a
    /// queue that stays full would drop too, for minutes).
    #[tokio::test]
    async fn a_dropped_syn_is_given_up_after_the_paths_limit() {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(addr(0)).unwrap();
        let listener = socket.listen(1).unwrap();
        let port = listener.local_addr().unwrap().port();
        let host = HostPort { host: "127.0.0.1".into(), port };
        let pacing = ConnectPacing::default();
        // Never accepted: each connection the kernel completes stays in the accept queue.
        let mut queued = Vec::new();
        let refusal = loop {
            match connect_tcp(&host, &pacing).await {
                Ok(stream) => queued.push(stream),
                Err(e) => break e,
            }
            assert!(queued.len() < 64, "the accept queue never filled");
        };
        assert!(!queued.is_empty(), "the first handshake is answered and teaches the path");
        assert!(refusal.contains("no answer"), "{refusal}");
        assert!(pacing.limit(addr(port)).unwrap() > SYN_LIMIT_FLOOR, "the next attempt is given longer");
        drop(listener);
    }
}
