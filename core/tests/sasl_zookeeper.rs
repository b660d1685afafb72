//! SASL DIGEST-MD5 against a real ZooKeeper 3.8 configured with a JAAS file and
//! `SASLAuthenticationProvider`: login, `sasl:` ACLs enforced, a reconnect, and a wrong
//! password ending the session in AuthFailed. Skips (or fails under `CI=true`) without Java and
//! Debian's ZooKeeper.

mod certs;

use corral_core::{Acl, Client, CreateMode, CreateOptions, Error, ErrorCode, Id, Perms, Sasl, SessionState};
use corral_test_support::{SecuredConfig, secured_zookeeper};

const JAAS: &str = r#"
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="adminsecret"
    user_bob="bobsecret";
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_md5_with_a_real_zookeeper() {
    let dir = certs::temp_dir("zk-jaas");
    let jaas = certs::write(&dir, "jaas.conf", JAAS);
    let config = SecuredConfig { jaas: Some(jaas), ..SecuredConfig::default() };
    let Some(zk) = secured_zookeeper(&config) else { return };
    let hosts = zk.addr().to_string();

    let bob = Client::builder(&hosts).sasl(Sasl::digest_md5("bob", "bobsecret")).connect().await.expect("login");
    let me = bob.who_am_i().await.expect("whoami");
    assert!(me.iter().any(|id| id.auth_scheme == "sasl" && id.user == "bob"), "{me:?}");
    let only_bob =
        CreateOptions::new(CreateMode::Persistent).with_acl(vec![Acl::new(Perms::ALL, Id::new("sasl", "bob"))]);
    bob.create("/bob", "mine", only_bob).await.expect("create with a sasl ACL");

    let stranger = Client::connect(&hosts).await.expect("plain client");
    assert_eq!(stranger.get_data("/bob").await.unwrap_err().code(), ErrorCode::NoAuth);
    stranger.close().await;

    // The login again on a new connection, before the next request.
    bob.drop_connection();
    bob.set_data("/bob", "still mine", None).await.expect("write after the reconnect");

    let wrong = Client::builder(&hosts).sasl(Sasl::digest_md5("bob", "guess")).build().expect("build");
    let mut state = wrong.state();
    assert_eq!(*state.wait_for(|s| s.is_terminal()).await.expect("end"), SessionState::AuthFailed);
    let result = Client::builder(&hosts).sasl(Sasl::digest_md5("nobody", "x")).connect().await;
    assert_eq!(result.err(), Some(Error::AuthFailed));

    bob.close().await;
    let _ = std::fs::remove_dir_all(dir);
}
