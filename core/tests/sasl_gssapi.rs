//! SASL GSSAPI (Kerberos) against a real ZooKeeper 3.8 and an MIT KDC on loopback, both
//! started by the test: realm `CORRAL.TEST`, principals `zookeeper/localhost`, `client` and
//! `other` with keytabs made here. Skips (or fails under `CI=true`) without Java, Debian's
//! ZooKeeper or MIT Kerberos (`krb5-kdc`, `krb5-admin-server`, `krb5-user`).
//!
//! A process has one Kerberos identity, from its environment (`KRB5_CONFIG`,
//! `KRB5_CLIENT_KTNAME`, `KRB5CCNAME`), and tests may not change their own environment. So
//! [`kerberos_against_a_real_zookeeper`] sets up the KDC and the server and runs each client
//! as a child process of this test binary with the identity's environment: the `#[ignore]`d
//! tests in `client`, which only run that way.

#![cfg(feature = "gssapi")]

use std::ffi::OsString;
use std::process::Command;
use std::time::{Duration, Instant};

use corral_test_support::{SecuredConfig, kdc, secured_zookeeper};

/// The environment variable telling a child the connect string of the server to use.
const HOSTS_ENV: &str = "CORRAL_TEST_KRB_HOSTS";
/// How long one child may run.
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn kerberos_against_a_real_zookeeper() {
    let Some(kdc) = kdc() else { return };
    let service_keytab = kdc.add_principal("zookeeper/localhost").expect("service principal");
    let client_keytab = kdc.add_principal("client").expect("client principal");
    let other_keytab = kdc.add_principal("other").expect("other principal");
    let jaas = kdc.dir().join("jaas.conf");
    std::fs::write(&jaas, kdc.jaas_server("zookeeper/localhost", &service_keytab)).expect("JAAS file");
    let config = SecuredConfig { jaas: Some(jaas), krb5_conf: Some(kdc.krb5_conf()), ..SecuredConfig::default() };
    let Some(zk) = secured_zookeeper(&config) else { return };
    // By name: the service principal is zookeeper/<host as the connect string names it>.
    let hosts = format!("localhost:{}", zk.addr().port());

    // Keytab login; an ACL for the principal; the login again after a dropped connection.
    child(
        "client::keytab_login_acl_and_reconnect",
        &hosts,
        kdc.client_env("client", &client_keytab).expect("environment"),
    );
    // Another principal is refused by that ACL.
    child("client::another_principal_is_refused", &hosts, kdc.client_env("other", &other_keytab).expect("environment"));
    // A keytab of two principals: the client chooses.
    let shared_keytab = kdc.dir().join("shared.keytab");
    kdc.export("client", &shared_keytab).expect("client key");
    kdc.export("other", &shared_keytab).expect("other key");
    child(
        "client::a_principal_chosen_from_a_shared_keytab",
        &hosts,
        kdc.client_env("client", &shared_keytab).expect("environment"),
    );
    // A ticket cache from `kinit`, no keytab.
    let cache = kdc.kinit("client", &client_keytab).expect("kinit");
    let ticket_only = vec![
        ("KRB5_CONFIG".into(), kdc.krb5_conf().into()),
        ("KRB5CCNAME".into(), format!("FILE:{}", cache.display()).into()),
        ("KRB5_CLIENT_KTNAME".into(), format!("FILE:{}", kdc.dir().join("none.keytab").display()).into()),
    ];
    child("client::ticket_cache_login", &hosts, ticket_only);
    // No credentials at all, and a service principal the KDC does not know.
    let nothing = vec![
        ("KRB5_CONFIG".into(), kdc.krb5_conf().into()),
        ("KRB5CCNAME".into(), format!("FILE:{}", kdc.dir().join("empty.ccache").display()).into()),
        ("KRB5_CLIENT_KTNAME".into(), format!("FILE:{}", kdc.dir().join("none.keytab").display()).into()),
    ];
    child("client::no_credentials_fail_once_with_a_clear_error", &hosts, nothing);
    child(
        "client::an_unknown_service_principal_fails_with_a_clear_error",
        &hosts,
        kdc.client_env("client", &client_keytab).expect("environment"),
    );
    // The client's key changes: its keytab is stale.
    kdc.change_key("client").expect("new client key");
    child(
        "client::a_stale_keytab_fails_with_a_clear_error",
        &hosts,
        kdc.client_env("client", &client_keytab).expect("environment"),
    );
    // The service's key changes under the running server: the KDC issues tickets the server
    // cannot read, and the server answers AUTH_FAILED.
    kdc.change_key("zookeeper/localhost").expect("new service key");
    child(
        "client::a_server_that_refuses_the_ticket_is_auth_failed",
        &hosts,
        kdc.client_env("other", &other_keytab).expect("environment"),
    );
    // The server's side of it: logins by principal, and the refusal.
    let log = std::fs::read_to_string(zk.dir().join("zookeeper.log")).expect("zookeeper.log");
    for said in [
        "Successfully authenticated client: authenticationID=client@CORRAL.TEST",
        "Successfully authenticated client: authenticationID=other@CORRAL.TEST",
        "failed to SASL authenticate",
    ] {
        assert!(log.contains(said), "zookeeper.log does not say {said:?}");
    }
    // The client's tickets are forwardable, but it never hands its TGT to the server.
    assert!(!log.contains("Delegated Creds"), "the client delegated its credentials to the server");
    drop(zk);
}

/// Runs the ignored test `name` of this binary in a child process with `env`, and fails with
/// its output unless it passes.
fn child(name: &str, hosts: &str, env: Vec<(OsString, OsString)>) {
    let exe = std::env::current_exe().expect("this test binary");
    let mut command = Command::new(exe);
    command
        .args(["--exact", name, "--ignored", "--nocapture", "--test-threads=1"])
        .env(HOSTS_ENV, hosts)
        .env_remove("RUST_BACKTRACE")
        .envs(env)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut process = command.spawn().expect("run a child test");
    let deadline = Instant::now() + CHILD_TIMEOUT;
    while process.try_wait().expect("wait").is_none() {
        if Instant::now() >= deadline {
            let _ = process.kill();
            let _ = process.wait();
            panic!("{name} did not finish within {CHILD_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = process.wait_with_output().expect("output");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && text.contains("1 passed"), "{name} failed:\n{text}");
    // Visible with --nocapture.
    eprintln!("{name}:\n{text}");
}

/// What is only run by [`kerberos_against_a_real_zookeeper`], with a Kerberos identity.
mod client {
    use std::time::Duration;

    use corral_core::{
        Acl, Client, ConnectionState, CreateMode, CreateOptions, Error, ErrorCode, Framework, Id, Perms, Sasl,
        SessionState,
    };
    use corral_test_support::FaultProxy;

    use super::HOSTS_ENV;

    const CLIENT: &str = "client@CORRAL.TEST";
    const NODE: &str = "/kerberos";
    const WHY: &str = "run by kerberos_against_a_real_zookeeper with a Kerberos identity";

    fn hosts() -> String {
        std::env::var(HOSTS_ENV).unwrap_or_else(|_| panic!("{HOSTS_ENV} is not set: this test is {WHY}"))
    }

    async fn login(hosts: &str) -> Client {
        Client::builder(hosts).sasl(Sasl::gssapi()).connect().await.expect("Kerberos login")
    }

    async fn sasl_ids(client: &Client) -> Vec<String> {
        let me = client.who_am_i().await.expect("whoami");
        me.into_iter().filter(|id| id.auth_scheme == "sasl").map(|id| id.user).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "run by kerberos_against_a_real_zookeeper with a Kerberos identity"]
    async fn keytab_login_acl_and_reconnect() {
        let hosts = hosts();
        let port: u16 = hosts.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
        let proxy = FaultProxy::start(([127, 0, 0, 1], port).into()).expect("proxy");
        let through_proxy = format!("localhost:{}", proxy.addr().port());

        let client = login(&through_proxy).await;
        assert_eq!(sasl_ids(&client).await, [CLIENT]);
        let only_client =
            CreateOptions::new(CreateMode::Persistent).with_acl(vec![Acl::new(Perms::ALL, Id::new("sasl", CLIENT))]);
        client.create(NODE, "mine", only_client).await.expect("create with a sasl ACL");

        let stranger = Client::connect(&hosts).await.expect("plain client");
        assert_eq!(stranger.get_data(NODE).await.unwrap_err().code(), ErrorCode::NoAuth);
        stranger.close().await;

        // A new connection logs in again before the next request, in the same session.
        let session = client.session_id();
        let accepted = proxy.accepted();
        proxy.drop_connections();
        // A write racing the drop fails with ConnectionLoss; the next goes over the new one.
        let mut tries = 0;
        loop {
            match client.set_data(NODE, "still mine", None).await {
                Ok(_) => break,
                Err(Error::ConnectionLoss) if tries < 10 => tries += 1,
                Err(e) => panic!("write after the reconnect: {e:?}"),
            }
        }
        assert_eq!(client.session_id(), session);
        assert!(proxy.accepted() > accepted, "the write went over a new connection");
        assert_eq!(sasl_ids(&client).await, [CLIENT]);
        assert_eq!(&client.get_data(NODE).await.expect("read").0[..], b"still mine");
        client.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "run by kerberos_against_a_real_zookeeper with a Kerberos identity"]
    async fn another_principal_is_refused() {
        let other = login(&hosts()).await;
        assert_eq!(sasl_ids(&other).await, ["other@CORRAL.TEST"]);
        assert_eq!(other.get_data(NODE).await.unwrap_err().code(), ErrorCode::NoAuth);
        assert_eq!(other.set_data(NODE, "theirs", None).await.unwrap_err().code(), ErrorCode::NoAuth);
        assert!(other.exists(NODE).await.expect("exists").is_some(), "the node is there, only not theirs");
        other.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "run by kerberos_against_a_real_zookeeper with a Kerberos identity"]
    async fn a_principal_chosen_from_a_shared_keytab() {
        for principal in ["other@CORRAL.TEST", CLIENT] {
            let client =
                Client::builder(hosts()).sasl(Sasl::gssapi_principal(principal)).connect().await.expect("login");
            assert_eq!(sasl_ids(&client).await, [principal]);
            client.close().await;
        }
        let nobody = Refusal::Client(&["nobody@CORRAL.TEST"]);
        refused(Sasl::gssapi_principal("nobody@CORRAL.TEST"), nobody).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "run by kerberos_against_a_real_zookeeper with a Kerberos identity"]
    async fn ticket_cache_login() {
        // By address, with the service principal named.
        let by_address = hosts().replace("localhost", "127.0.0.1");
        let client = Client::builder(&by_address)
            .sasl(Sasl::gssapi().service("zookeeper", "localhost"))
            .connect()
            .await
            .expect("Kerberos login");
        assert_eq!(sasl_ids(&client).await, [CLIENT]);
        assert_eq!(&client.get_data(NODE).await.expect("read as the owner").0[..], b"still mine");
        client.close().await;

        // The framework's sessions log in the same way.
        let fw = Framework::builder(&by_address)
            .sasl(Sasl::gssapi().service("zookeeper", "localhost"))
            .start()
            .expect("start");
        fw.wait_until_connected(Duration::from_secs(30)).await.expect("connected");
        assert_eq!(&fw.client().get_data(NODE).await.expect("read as the owner").0[..], b"still mine");
        fw.close().await;
    }

    /// Who refuses a login.
    enum Refusal {
        /// The client's Kerberos library: `Error::Sasl` saying one of these.
        Client(&'static [&'static str]),
        /// The server: AUTH_FAILED.
        Server,
    }

    /// A login `refusal` refuses: the session ends in `AuthFailed` at the first connection
    /// and never connects again, `connect` says why, and the framework sees the session LOST.
    async fn refused(sasl: Sasl, refusal: Refusal) {
        let hosts = hosts();
        let port: u16 = hosts.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
        let proxy = FaultProxy::start(([127, 0, 0, 1], port).into()).expect("proxy");
        let through_proxy = format!("localhost:{}", proxy.addr().port());

        let client = Client::builder(&through_proxy).sasl(sasl.clone()).build().expect("build");
        let mut state = client.state();
        let end = tokio::time::timeout(Duration::from_secs(30), state.wait_for(|s| s.is_terminal()))
            .await
            .expect("an end in time")
            .map(|s| *s)
            .expect("state");
        assert_eq!(end, SessionState::AuthFailed);
        client.close().await;

        let result = Client::builder(&through_proxy).sasl(sasl.clone()).connect().await;
        match (refusal, result) {
            (Refusal::Client(expect), Err(Error::Sasl(reason))) => {
                assert!(expect.iter().any(|e| reason.contains(e)), "{reason:?} says none of {expect:?}");
                eprintln!("the error: {reason}");
            }
            (Refusal::Server, Err(Error::AuthFailed)) => {}
            (_, other) => panic!("expected the login to be refused, got {other:?}"),
        }
        // One connection each, no retries: the sessions ended at the first refusal.
        assert_eq!(proxy.accepted(), 2);

        let fw = Framework::builder(&through_proxy).sasl(sasl).start().expect("start");
        let mut states = fw.connection_state();
        tokio::time::timeout(Duration::from_secs(30), states.wait_for(|c| c.state == ConnectionState::Lost))
            .await
            .expect("LOST in time")
            .expect("state");
        fw.close().await;
        assert_eq!(proxy.accepted(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "run by kerberos_against_a_real_zookeeper with a Kerberos identity"]
    async fn no_credentials_fail_once_with_a_clear_error() {
        refused(Sasl::gssapi(), Refusal::Client(&["No Kerberos credentials available"])).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "run by kerberos_against_a_real_zookeeper with a Kerberos identity"]
    async fn an_unknown_service_principal_fails_with_a_clear_error() {
        let refusal = Refusal::Client(&["kafka/localhost@CORRAL.TEST not found in Kerberos database"]);
        refused(Sasl::gssapi().service_name("kafka"), refusal).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "run by kerberos_against_a_real_zookeeper with a Kerberos identity"]
    async fn a_stale_keytab_fails_with_a_clear_error() {
        refused(Sasl::gssapi(), Refusal::Client(&["Decrypt integrity check failed", "Preauthentication failed"])).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "run by kerberos_against_a_real_zookeeper with a Kerberos identity"]
    async fn a_server_that_refuses_the_ticket_is_auth_failed() {
        refused(Sasl::gssapi(), Refusal::Server).await;
    }
}
