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
