//! SASL on the embedded server: DIGEST-MD5 users read from ZooKeeper's own JAAS file, and the
//! server side of the DIGEST-MD5 exchange (RFC 2831) carried in ZooKeeper's SASL packets.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use corral_proto::records::SaslToken;
use corral_proto::{ErrorCode, Id, Jute, Response};
use md5::{Digest, Md5};

use crate::ops::Reply;
use crate::server::Error;

/// ZooKeeper's DIGEST-MD5 service: `Sasl.createSaslServer("DIGEST-MD5", "zookeeper",
/// "zk-sasl-md5", …)`, so the realm offered is `zk-sasl-md5` and clients must use the digest-uri
/// `zookeeper/zk-sasl-md5`.
const REALM: &str = "zk-sasl-md5";
const DIGEST_URI: &str = "zookeeper/zk-sasl-md5";
/// The largest client response accepted (RFC 2831 says 4096 bytes).
const MAX_RESPONSE: usize = 4096;

/// The JAAS login module whose `user_NAME="password"` options ZooKeeper reads.
const DIGEST_LOGIN_MODULE: &str = "org.apache.zookeeper.server.auth.DigestLoginModule";

/// The SASL DIGEST-MD5 users of a server: name → password, as ZooKeeper's `DigestLoginModule`
/// reads them from the `Server` section of a JAAS file.
///
/// Give them to [`crate::ServerBuilder::sasl_users`]. A client that logs in as one of them gets
/// the id `sasl:<name>` on its connection, for ACLs.
///
/// # Examples
///
/// ```
/// use corral_server::SaslUsers;
///
/// let jaas = r#"
///     Server {
///         org.apache.zookeeper.server.auth.DigestLoginModule required
///         user_super="adminsecret"
///         user_bob="bobsecret";
///     };
/// "#;
/// let users = SaslUsers::from_jaas(jaas, "Server")?;
/// assert_eq!(users.len(), 2);
/// # Ok::<(), corral_server::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct SaslUsers {
    users: HashMap<String, String>,
}

impl fmt::Debug for SaslUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: never print passwords.
        let mut names: Vec<&String> = self.users.keys().collect();
        names.sort();
        f.debug_struct("SaslUsers").field("users", &names).finish()
    }
}

impl SaslUsers {
    /// No users.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a user.
    pub fn user(mut self, name: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.insert(name.into(), password.into());
        self
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The password of `name`.
    pub(crate) fn password(&self, name: &str) -> Option<&str> {
        self.users.get(name).map(String::as_str)
    }

    /// The users of the `section` section (ZooKeeper's is `Server`, its
    /// `zookeeper.sasl.serverconfig`) of a JAAS configuration: the `user_NAME="password"`
    /// options of its `DigestLoginModule` entry. Other login modules are ignored.
    ///
    /// # Errors
    ///
    /// [`Error::Sasl`] if the text is not JAAS syntax, or has no such section, or the section
    /// has no `DigestLoginModule` entry.
    pub fn from_jaas(text: &str, section: &str) -> Result<Self, Error> {
        let sections = parse_jaas(text).map_err(Error::Sasl)?;
        let entries = sections
            .into_iter()
            .find(|(name, _)| name == section)
            .map(|(_, entries)| entries)
            .ok_or_else(|| Error::Sasl(format!("no {section} section in the JAAS configuration")))?;
        let options = entries
            .into_iter()
            .find(|(module, _)| module == DIGEST_LOGIN_MODULE)
            .map(|(_, options)| options)
            .ok_or_else(|| Error::Sasl(format!("no {DIGEST_LOGIN_MODULE} in the {section} section")))?;
        let users = options
            .into_iter()
            .filter_map(|(key, value)| key.strip_prefix("user_").map(|name| (name.to_owned(), value)))
            .collect();
        Ok(Self { users })
    }

    /// [`SaslUsers::from_jaas`] on a file (what `-Djava.security.auth.login.config` names).
    ///
    /// # Errors
    ///
    /// [`Error::Sasl`] if the file cannot be read, and the errors of [`SaslUsers::from_jaas`].
    pub fn from_jaas_file(path: impl AsRef<Path>, section: &str) -> Result<Self, Error> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::Sasl(format!("cannot read {}: {e}", path.display())))?;
        Self::from_jaas(&text, section)
    }
}

/// The server side of one connection's DIGEST-MD5 exchange (RFC 2831, `qop=auth`).
#[derive(Debug)]
pub(crate) enum DigestServer {
    /// Waiting for the client's empty initial token.
    Start,
    /// The challenge went out with this nonce.
    Challenged(String),
    /// Authenticated, or failed: any further token is refused.
    Finished,
}

/// What a step of the exchange produced.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Send this token and wait for the next.
    Continue(Vec<u8>),
    /// Authenticated as this user; send the token (`rspauth`).
    Done(Vec<u8>, String),
    Failed(String),
}

impl DigestServer {
    fn step(&mut self, users: &SaslUsers, token: &[u8]) -> Outcome {
        match std::mem::replace(self, Self::Finished) {
            Self::Start if token.is_empty() => {
                let mut raw = [0u8; 16];
                crate::tls::random_bytes(&mut raw);
                let nonce = hex(&raw);
                let challenge =
                    format!("realm=\"{REALM}\",nonce=\"{nonce}\",qop=\"auth\",charset=utf-8,algorithm=md5-sess");
                *self = Self::Challenged(nonce);
                Outcome::Continue(challenge.into_bytes())
            }
            Self::Start => Outcome::Failed("the initial DIGEST-MD5 token must be empty".into()),
            Self::Challenged(nonce) => verify(users, &nonce, token),
            Self::Finished => Outcome::Failed("a SASL token after the exchange ended".into()),
        }
    }
}

/// Checks the client's digest-response against the challenge `nonce`.
fn verify(users: &SaslUsers, nonce: &str, token: &[u8]) -> Outcome {
    if token.len() > MAX_RESPONSE {
        return Outcome::Failed(format!("a DIGEST-MD5 response of {} bytes", token.len()));
    }
    let Ok(text) = std::str::from_utf8(token) else {
        return Outcome::Failed("the DIGEST-MD5 response is not UTF-8".into());
    };
    let directives = match parse_directives(text) {
        Ok(d) => d,
        Err(e) => return Outcome::Failed(e),
    };
    let get = |key: &str| directives.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str());
    let (Some(username), Some(cnonce), Some(response)) = (get("username"), get("cnonce"), get("response")) else {
        return Outcome::Failed("the DIGEST-MD5 response lacks username, cnonce or response".into());
    };
    let checks = [
        (get("nonce") == Some(nonce), "nonce"),
        (get("nc") == Some("00000001"), "nc"),
        (get("qop").is_none_or(|q| q == "auth"), "qop"),
        (get("realm").is_none_or(|r| r == REALM), "realm"),
        (get("digest-uri") == Some(DIGEST_URI), "digest-uri"),
        (get("authzid").is_none_or(|a| a == username), "authzid"),
    ];
    if let Some((_, what)) = checks.iter().find(|(ok, _)| !ok) {
        return Outcome::Failed(format!("the DIGEST-MD5 response has a wrong {what}"));
    }
    let Some(password) = users.password(username) else {
        return Outcome::Failed(format!("no SASL user {username:?}"));
    };
    let utf8 = get("charset").is_some_and(|c| c.eq_ignore_ascii_case("utf-8"));
    let realm = get("realm").unwrap_or("");
    // Java's client sends its user name as the authzid too, and then it is part of A1.
    let authzid = get("authzid");
    let expected = response_value(username, realm, password, nonce, cnonce, authzid, "AUTHENTICATE", utf8);
    if !response.eq_ignore_ascii_case(&expected) {
        return Outcome::Failed(format!("wrong password for SASL user {username:?}"));
    }
    let rspauth = response_value(username, realm, password, nonce, cnonce, authzid, "", utf8);
    Outcome::Done(format!("rspauth={rspauth}").into_bytes(), username.to_owned())
}

/// Answers one SASL request (opcode 102) of a connection whose ids are `auth`: the next token,
/// or — on any failure, garbage included — AUTH_FAILED and the connection closed, as ZooKeeper
/// does. Replies carry zxid 0, as ZooKeeper's do.
pub(crate) fn answer(
    exchange: &mut Option<DigestServer>,
    users: &SaslUsers,
    mut body: &[u8],
    auth: &mut Arc<Vec<Id>>,
) -> Reply {
    let outcome = match SaslToken::read(&mut body) {
        Ok(request) => exchange.get_or_insert(DigestServer::Start).step(users, &request.token),
        Err(e) => Outcome::Failed(format!("undecodable SASL request: {e}")),
    };
    let token = |t: Vec<u8>| Response::Sasl(SaslToken { token: Bytes::from(t) });
    match outcome {
        Outcome::Continue(t) => Reply::ok(0, token(t)),
        Outcome::Done(t, user) => {
            tracing::info!(%user, "SASL DIGEST-MD5 login");
            Arc::make_mut(auth).push(Id::new("sasl", user));
            Reply::ok(0, token(t))
        }
        Outcome::Failed(reason) => {
            tracing::info!(%reason, "SASL authentication failed; closing");
            Reply::err(0, ErrorCode::AuthFailed).then_close()
        }
    }
}

/// `response-value` of RFC 2831 §2.1.2.1 for `qop=auth` and `nc=00000001`; `a2_prefix` is
/// "AUTHENTICATE" for the client's response, "" for `rspauth`.
#[allow(clippy::too_many_arguments, reason = "the RFC's inputs, named as there")]
fn response_value(
    username: &str,
    realm: &str,
    password: &str,
    nonce: &str,
    cnonce: &str,
    authzid: Option<&str>,
    a2_prefix: &str,
    utf8: bool,
) -> String {
    let mut secret = Md5::new();
    secret.update(encode(username, utf8));
    secret.update(b":");
    secret.update(encode(realm, utf8));
    secret.update(b":");
    secret.update(encode(password, utf8));
    let mut a1 = Md5::new();
    a1.update(secret.finalize());
    a1.update(format!(":{nonce}:{cnonce}").as_bytes());
    if let Some(authzid) = authzid {
        a1.update(b":");
        a1.update(authzid.as_bytes());
    }
    let ha1 = hex(&a1.finalize());
    let ha2 = hex(&Md5::digest(format!("{a2_prefix}:{DIGEST_URI}").as_bytes()));
    hex(&Md5::digest(format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}").as_bytes()))
}

/// With `charset=utf-8`, strings within ISO 8859-1 are hashed as ISO 8859-1 (RFC 2831).
fn encode(s: &str, utf8: bool) -> Vec<u8> {
    if !utf8 || s.chars().all(|c| (c as u32) < 0x100) {
        s.chars().map(|c| u8::try_from(c as u32).unwrap_or(b'?')).collect()
    } else {
        s.as_bytes().to_vec()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses `key=value, key="quoted, \"value\""` directives.
fn parse_directives(text: &str) -> Result<Vec<(String, String)>, String> {
    let bad = || "malformed DIGEST-MD5 directives".to_owned();
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        if rest.is_empty() {
            return Ok(out);
        }
        let (key, after) = rest.split_once('=').ok_or_else(bad)?;
        let key = key.trim();
        if key.is_empty() || key.contains([',', '"']) {
            return Err(bad());
        }
        let after = after.trim_start();
        if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err(bad()),
                    Some((i, '"')) => break i + 1,
                    Some((_, '\\')) => value.extend(chars.next().map(|(_, c)| c)),
                    Some((_, c)) => value.push(c),
                }
            };
            out.push((key.to_owned(), value));
            rest = quoted.get(end..).unwrap_or("");
        } else {
            let (value, next) = after.split_once(',').unwrap_or((after, ""));
            out.push((key.to_owned(), value.trim().to_owned()));
            rest = next;
        }
    }
}

/// One login module entry: its class and options.
type Entry = (String, Vec<(String, String)>);

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Punct(char),
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                loop {
                    match chars.next() {
                        None => return Err("unterminated /* comment".into()),
                        Some('/') if prev == '*' => break,
                        Some(c) => prev = c,
                    }
                }
            }
            '{' | '}' | ';' | '=' => tokens.push(Token::Punct(c)),
            '"' => {
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated quoted string".into()),
                        Some('"') => break,
                        Some('\\') => value.extend(chars.next()),
                        Some(c) => value.push(c),
                    }
                }
                tokens.push(Token::Quoted(value));
            }
            c => {
                let mut word = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, '{' | '}' | ';' | '=' | '"') {
                        break;
                    }
                    word.push(n);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

/// `Name { Module Flag key=value ... ; ... };` sections.
fn parse_jaas(text: &str) -> Result<Vec<(String, Vec<Entry>)>, String> {
    let tokens = tokenize(text)?;
    let mut it = tokens.into_iter().peekable();
    let mut sections = Vec::new();
    while let Some(token) = it.next() {
        let Token::Word(name) = token else { return Err(format!("expected a section name, found {token:?}")) };
        if it.next() != Some(Token::Punct('{')) {
            return Err(format!("expected '{{' after {name}"));
        }
        let mut entries = Vec::new();
        loop {
            match it.next() {
                Some(Token::Punct('}')) => break,
                Some(Token::Word(module)) => {
                    let Some(Token::Word(_flag)) = it.next() else {
                        return Err(format!("expected a control flag after {module}"));
                    };
                    let mut options = Vec::new();
                    loop {
                        match it.next() {
                            Some(Token::Punct(';')) => break,
                            Some(Token::Word(key)) => {
                                if it.next() != Some(Token::Punct('=')) {
                                    return Err(format!("expected '=' after {key}"));
                                }
                                match it.next() {
                                    Some(Token::Word(v) | Token::Quoted(v)) => options.push((key, v)),
                                    other => return Err(format!("expected a value for {key}, found {other:?}")),
                                }
                            }
                            other => return Err(format!("unexpected {other:?} in {module}'s options")),
                        }
                    }
                    entries.push((module, options));
                }
                other => return Err(format!("unexpected {other:?} in section {name}")),
            }
        }
        if it.peek() == Some(&Token::Punct(';')) {
            it.next();
        }
        sections.push((name, entries));
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_zookeepers_jaas_file() {
        let jaas = r#"
            // the server's users
            Server {
                org.apache.zookeeper.server.auth.DigestLoginModule required
                user_super="adminsecret"
                user_bob="bob;secret";
            };
            /* the client's login, ignored here */
            Client {
                org.apache.zookeeper.server.auth.DigestLoginModule required
                username="bob"
                password="bobsecret";
            };
        "#;
        let users = SaslUsers::from_jaas(jaas, "Server").expect("parse");
        assert_eq!(users.password("super"), Some("adminsecret"));
        assert_eq!(users.password("bob"), Some("bob;secret"));
        assert_eq!(users.len(), 2);
        assert!(!format!("{users:?}").contains("adminsecret"));
    }

    /// A client response made with the client side's formula (RFC 2831 §4's numbers).
    #[test]
    fn digest_md5_exchange_and_garbage() {
        let users = SaslUsers::new().user("bob", "secret");
        let mut server = DigestServer::Start;
        let Outcome::Continue(challenge) = server.step(&users, b"") else { panic!("no challenge") };
        let challenge = String::from_utf8(challenge).expect("utf-8");
        let nonce = parse_directives(&challenge).expect("parse")[1].1.clone();
        let response = response_value("bob", REALM, "secret", &nonce, "cn", None, "AUTHENTICATE", true);
        let token = format!(
            "charset=utf-8,username=\"bob\",realm=\"{REALM}\",nonce=\"{nonce}\",nc=00000001,cnonce=\"cn\",\
             digest-uri=\"{DIGEST_URI}\",maxbuf=65536,response={response},qop=auth"
        );
        let outcome = server.step(&users, token.as_bytes());
        assert!(matches!(&outcome, Outcome::Done(_, user) if user == "bob"), "{outcome:?}");
        assert!(matches!(server.step(&users, b""), Outcome::Failed(_)));

        let wrong = response_value("bob", REALM, "guess", &nonce, "cn", None, "AUTHENTICATE", true);
        assert!(matches!(verify(&users, &nonce, token.replace(&response, &wrong).as_bytes()), Outcome::Failed(_)));
        for garbage in [&b"\xff"[..], b"x", b"a=\"", b"username=bob", &[b','; 5000][..]] {
            assert!(matches!(verify(&users, &nonce, garbage), Outcome::Failed(_)), "{garbage:?}");
        }
        assert!(matches!(DigestServer::Start.step(&users, b"not empty"), Outcome::Failed(_)));
        let mut auth = Arc::new(Vec::new());
        let reply = answer(&mut None, &users, b"\x00\x00", &mut auth);
        assert!(reply.close && reply.err == ErrorCode::AuthFailed);
        assert!(auth.is_empty());
    }

    #[test]
    fn bad_jaas_is_an_error_not_a_panic() {
        for text in
            ["Server {", "Server { x required a= ; };", "{}", "Server { m }", "\"x", "/*", "Other { m required; };"]
        {
            assert!(SaslUsers::from_jaas(text, "Server").is_err(), "{text}");
        }
    }
}
