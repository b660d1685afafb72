//! The `http_service` example as a process: it serves HTTP with its real port registered in
//! discovery, exports Corral's metrics on `/metrics`, and on SIGTERM unregisters before it exits.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use corral::Client;
use corral_server::testing::TestingServer;

/// `target/<profile>/examples/http_service`, which `cargo test` builds with the examples.
fn example() -> PathBuf {
    let deps = std::env::current_exe().expect("test path").parent().expect("deps dir").to_path_buf();
    deps.parent().expect("profile dir").join("examples").join("http_service")
}

fn http_get(addr: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the service");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read the response");
    assert!(response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_service_registers_serves_metrics_and_unregisters_on_sigterm() {
    let binary = example();
    assert!(binary.exists(), "{} not built (cargo test builds the examples)", binary.display());
    let server = TestingServer::start().await.unwrap();
    let mut child = Command::new(&binary)
        .args(["--zk", &server.connect_string(), "--name", "api"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start http_service");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = move || lines.next().expect("a line from http_service").expect("stdout");
    let listening = next_line();
    let addr = listening.strip_prefix("listening on http://").expect("the listening line").to_owned();
    let registered = next_line();
    assert!(registered.starts_with("registered api/"), "{registered}");

    // Registered with its real port, in Curator's layout.
    let observer = Client::connect(&server.connect_string()).await.unwrap();
    let ids = observer.get_children("/services/api").await.unwrap();
    assert_eq!(ids.len(), 1);
    let (json, _) = observer.get_data(&format!("/services/api/{}", ids[0])).await.unwrap();
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    assert!(String::from_utf8_lossy(&json).contains(&format!("\"port\":{port}")), "{}", String::from_utf8_lossy(&json));

    let addr2 = addr.clone();
    let (hello, peer, metrics) = tokio::task::spawn_blocking(move || {
        (http_get(&addr2, "/hello"), http_get(&addr2, "/peer"), http_get(&addr2, "/metrics"))
    })
    .await
    .unwrap();
    assert!(hello.contains(&format!("hello from {}", ids[0])), "{hello}");
    assert!(peer.contains("answered: hello from"), "the provider found an instance and called it: {peer}");
    assert!(metrics.contains("corral_requests_total"), "{metrics}");
    assert!(metrics.contains("http_service_hello_total"), "{metrics}");

    // SIGTERM: unregistered before the process ends.
    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    let unregistered = next_line();
    assert!(unregistered.starts_with("unregistered "), "{unregistered}");
    let exit = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(observer.get_children("/services/api").await.unwrap().is_empty());
    observer.close().await;
    server.close().await;
}
