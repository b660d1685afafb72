//! The `corral` command logging in with Kerberos (`--sasl-gssapi`) to a real ZooKeeper 3.8 that
//! requires SASL from every session (`enforce.auth.enabled`), next to an MIT KDC on loopback,
//! both started by the test. Needs the `gssapi` feature (`cargo test -p corral-cli --features
//! gssapi --test kerberos`); skips (or fails under `CI=true`) without Java, Debian's ZooKeeper
//! or MIT Kerberos.
//!
//! The command runs as a child process, so each run gets its Kerberos identity from its own
//! environment (`KRB5_CONFIG`, `KRB5_CLIENT_KTNAME`, `KRB5CCNAME`).

#![cfg(feature = "gssapi")]

mod common;

use std::ffi::OsString;
use std::process::Stdio;

use common::{Run, command};
use corral_test_support::{SecuredConfig, kdc, secured_zookeeper};

/// Runs `corral --zk ZK ARGS…` with `env` on top of the clean environment.
fn corral_as(zk: &str, env: &[(OsString, OsString)], args: &[&str]) -> Run {
    let output =
        command(zk, args).envs(env.iter().map(|(k, v)| (k, v))).stdin(Stdio::null()).output().expect("run corral");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn kerberos_logins_on_a_server_that_requires_them() {
    let Some(kdc) = kdc() else { return };
    let service_keytab = kdc.add_principal("zookeeper/localhost").expect("service principal");
    let client_keytab = kdc.add_principal("client").expect("client principal");
    let jaas = kdc.dir().join("jaas.conf");
    std::fs::write(&jaas, kdc.jaas_server("zookeeper/localhost", &service_keytab)).expect("JAAS file");
    let config = SecuredConfig {
        jaas: Some(jaas),
        krb5_conf: Some(kdc.krb5_conf()),
        extra_cfg: vec!["enforce.auth.enabled=true".into(), "enforce.auth.schemes=sasl".into()],
        ..SecuredConfig::default()
    };
    let Some(zk) = secured_zookeeper(&config) else { return };
    // The service principal is zookeeper/<host as the connect string names it>.
    let hosts = format!("localhost:{}", zk.addr().port());
    let client = kdc.client_env("client", &client_keytab).expect("environment");

    let created = corral_as(&hosts, &client, &["--sasl-gssapi", "create", "/kerberos", "logged in"]);
    assert_eq!(created.code, 0, "{created:?}");
    let got = corral_as(&hosts, &client, &["--sasl-gssapi", "--json", "get", "/kerberos"]).json();
    assert_eq!(got["data"], "logged in", "{got}");
    // The principal named explicitly, and the service's primary too.
    let named = corral_as(
        &hosts,
        &client,
        &[
            "--sasl-gssapi",
            "--sasl-principal",
            "client@CORRAL.TEST",
            "--sasl-service",
            "zookeeper",
            "stat",
            "/kerberos",
        ],
    );
    assert_eq!(named.code, 0, "{named:?}");

    // The server requires SASL: without the login the same command is refused.
    let anonymous = corral_as(&hosts, &client, &["get", "/kerberos"]);
    assert_ne!(anonymous.code, 0, "{anonymous:?}");
    // A principal with no key: a clear refusal, exit 4 (no connection), not a hang.
    let unknown = corral_as(&hosts, &client, &["--sasl-gssapi", "--sasl-principal", "nobody@CORRAL.TEST", "get", "/"]);
    assert_eq!(unknown.code, 4, "{unknown:?}");
    assert!(!unknown.stderr.is_empty(), "{unknown:?}");
    // A service principal the KDC does not know.
    let wrong_service = corral_as(&hosts, &client, &["--sasl-gssapi", "--sasl-service", "nosuch", "get", "/"]);
    assert_eq!(wrong_service.code, 4, "{wrong_service:?}");
}

#[test]
fn the_kerberos_options_need_each_other() {
    let run = corral_as("127.0.0.1:1", &[], &["--sasl-principal", "client@CORRAL.TEST", "get", "/"]);
    assert_eq!(run.code, 2, "{run:?}");
    let run = corral_as("127.0.0.1:1", &[], &["--sasl-gssapi", "--sasl-user", "bob", "get", "/"]);
    assert_eq!(run.code, 2, "{run:?}");
}
