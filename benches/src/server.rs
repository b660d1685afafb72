//! ZooKeeper four-letter words (`mntr`, `srvr`) on the server the benchmark talks to.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The first `host:port` of a connect string, without any chroot.
pub(crate) fn first_host(connect_string: &str) -> &str {
    let hosts = connect_string.split('/').next().unwrap_or(connect_string);
    hosts.split(',').next().unwrap_or(hosts)
}

/// Sends a four-letter word to `addr` and returns the whole answer (5 s limit).
pub(crate) async fn four_letter_word(addr: &str, word: &str) -> std::io::Result<String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(word.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "4lw timed out")))
}

/// The server's `zk_packets_received` (all clients) from `mntr`; `None`, with a note, if the
/// server does not answer (e.g. `mntr` not whitelisted).
pub(crate) async fn packets_received(addr: &str) -> Option<u64> {
    match four_letter_word(addr, "mntr").await {
        Ok(text) => {
            let value = text.lines().find_map(|line| {
                let (key, value) = line.split_once('\t')?;
                (key == "zk_packets_received").then(|| value.trim().parse().ok())?
            });
            if value.is_none() {
                crate::report::note(format_args!("mntr answer has no zk_packets_received: {text:?}"));
            }
            value
        }
        Err(e) => {
            crate::report::note(format_args!("mntr failed: {e}"));
            None
        }
    }
}

/// The first line of `srvr` (`Zookeeper version: ...`), for the context comments.
pub(crate) async fn version_line(addr: &str) -> String {
    match four_letter_word(addr, "srvr").await {
        Ok(text) => text.lines().next().unwrap_or("(empty srvr answer)").to_owned(),
        Err(e) => format!("srvr failed: {e}"),
    }
}

/// An embedded server on a thread and current-thread runtime of its own, so that its work does
/// not share the benchmark's runtime (a peer in another process does not either). Dropping it
/// stops the server and joins the thread.
#[derive(Debug)]
pub(crate) struct Embedded {
    addr: std::net::SocketAddr,
    secure: Option<std::net::SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Embedded {
    /// Starts the server with the default settings on a free loopback port.
    pub(crate) fn start() -> Result<Self, String> {
        Self::start_from(corral_server::Server::builder())
    }

    /// Starts the server `builder` describes (a TLS port, say).
    pub(crate) fn start_from(builder: corral_server::ServerBuilder) -> Result<Self, String> {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("embedded-server".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => return drop(addr_tx.send(Err(format!("server runtime: {e}")))),
                };
                runtime.block_on(async move {
                    match builder.start().await {
                        Ok(server) => {
                            let _ = addr_tx.send(Ok((server.addr(), server.secure_addr())));
                            let _ = stopped.await;
                            server.shutdown().await;
                        }
                        Err(e) => drop(addr_tx.send(Err(format!("cannot start the embedded server: {e}")))),
                    }
                });
            })
            .map_err(|e| format!("server thread: {e}"))?;
        let (addr, secure) = addr_rx.recv().map_err(|_| "the embedded server thread ended".to_owned())??;
        Ok(Self { addr, secure, stop: Some(stop), thread: Some(thread) })
    }

    /// `host:port`.
    pub(crate) fn connect_string(&self) -> String {
        self.addr.to_string()
    }

    /// `host:port` of the TLS port, when the builder gave it one.
    pub(crate) fn secure_connect_string(&self) -> Option<String> {
        self.secure.map(|a| a.to_string())
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_host_of_connect_string() {
        assert_eq!(first_host("127.0.0.1:21810"), "127.0.0.1:21810");
        assert_eq!(first_host("a:1,b:2/chroot"), "a:1");
        assert_eq!(first_host("a:1/x/y"), "a:1");
    }
}
