//! The client side of DIGEST-MD5 (RFC 2831), as ZooKeeper's `DigestLoginModule` users log in:
//! `qop=auth` (authentication only, no integrity or privacy layer), digest-uri
//! `zookeeper/zk-sasl-md5`, the realm the server offers. MD5 comes from the `md-5` crate.
//!
//! ```text
//! client → server   (empty token)
//! server → client   realm="zk-sasl-md5",nonce="…",qop="auth",charset=utf-8,algorithm=md5-sess
//! client → server   charset=utf-8,username="bob",realm="zk-sasl-md5",nonce="…",nc=00000001,
//!                   cnonce="…",digest-uri="zookeeper/zk-sasl-md5",maxbuf=65536,response=<hex>,qop=auth
//! server → client   rspauth=<hex>         (the server proves it knows the password too)
//! ```

use md5::{Digest, Md5};

use super::{Mechanism, Step};

/// The largest challenge accepted (RFC 2831 says 2048 bytes).
const MAX_CHALLENGE: usize = 4096;
/// The nonce count: one authentication per nonce.
const NC: &str = "00000001";

#[derive(Debug)]
enum State {
    /// Waiting for the challenge.
    Challenge,
    /// Waiting for `rspauth`, which must be this.
    Rspauth(String),
    Done,
}

/// The DIGEST-MD5 client of one connection.
pub(crate) struct DigestMd5 {
    username: String,
    password: String,
    digest_uri: String,
    state: State,
}

impl DigestMd5 {
    pub(crate) fn new(username: &str, password: &str, digest_uri: &str) -> Self {
        Self {
            username: username.to_owned(),
            password: password.to_owned(),
            digest_uri: digest_uri.to_owned(),
            state: State::Challenge,
        }
    }

    /// The response to `challenge` with client nonce `cnonce`, and the `rspauth` to expect.
    fn respond(&self, challenge: &[u8], cnonce: &str) -> Result<(String, String), String> {
        if challenge.len() > MAX_CHALLENGE {
            return Err(format!("DIGEST-MD5 challenge of {} bytes is too long", challenge.len()));
        }
        let text = std::str::from_utf8(challenge).map_err(|_| "DIGEST-MD5 challenge is not UTF-8".to_owned())?;
        let directives = parse_directives(text)?;
        let get = |key: &str| directives.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str());
        let nonce = get("nonce").ok_or("DIGEST-MD5 challenge without a nonce")?;
        if let Some(qop) = get("qop")
            && !qop.split(',').any(|q| q.trim() == "auth")
        {
            return Err(format!("the server offers qop {qop:?}, not \"auth\""));
        }
        if let Some(algorithm) = get("algorithm")
            && algorithm != "md5-sess"
        {
            return Err(format!("DIGEST-MD5 algorithm {algorithm:?} is not md5-sess"));
        }
        let utf8 = get("charset").is_some_and(|c| c.eq_ignore_ascii_case("utf-8"));
        let realm = get("realm").unwrap_or("");
        let response = response_value(
            &self.username,
            realm,
            &self.password,
            nonce,
            cnonce,
            &self.digest_uri,
            "AUTHENTICATE",
            utf8,
        );
        let rspauth = response_value(&self.username, realm, &self.password, nonce, cnonce, &self.digest_uri, "", utf8);
        let mut out = String::new();
        if utf8 {
            out.push_str("charset=utf-8,");
        }
        out.push_str(&format!(
            "username={},realm={},nonce={},nc={NC},cnonce={},digest-uri={},maxbuf=65536,response={response},qop=auth",
            quote(&self.username),
            quote(realm),
            quote(nonce),
            quote(cnonce),
            quote(&self.digest_uri),
        ));
        Ok((out, rspauth))
    }
}

impl Mechanism for DigestMd5 {
    fn initial(&mut self) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }

    fn step(&mut self, token: &[u8]) -> Result<Step, String> {
        match &self.state {
            State::Challenge => {
                let mut raw = [0u8; 16];
                crate::tls::random_bytes(&mut raw);
                let cnonce = hex(&raw);
                let (response, rspauth) = self.respond(token, &cnonce)?;
                self.state = State::Rspauth(rspauth);
                Ok(Step::Send(response.into_bytes()))
            }
            State::Rspauth(expected) => {
                let text = std::str::from_utf8(token).map_err(|_| "DIGEST-MD5 rspauth is not UTF-8".to_owned())?;
                let directives = parse_directives(text)?;
                let got = directives.iter().find(|(k, _)| k.eq_ignore_ascii_case("rspauth")).map(|(_, v)| v);
                match got {
                    Some(got) if got == expected => {
                        self.state = State::Done;
                        Ok(Step::Done)
                    }
                    Some(_) => Err("the server's rspauth is wrong: it does not know the password".into()),
                    None => Err(format!("expected rspauth from the server, got {:?}", truncate(text))),
                }
            }
            State::Done => Err("the server sent a token after DIGEST-MD5 completed".into()),
        }
    }
}

/// `response-value` of RFC 2831 §2.1.2.1, with `a2_prefix` "AUTHENTICATE" for the client's
/// response and "" for the server's `rspauth`.
#[allow(clippy::too_many_arguments, reason = "the RFC's inputs, named as there")]
fn response_value(
    username: &str,
    realm: &str,
    password: &str,
    nonce: &str,
    cnonce: &str,
    digest_uri: &str,
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
    let ha1 = hex(&a1.finalize());
    let ha2 = hex(&Md5::digest(format!("{a2_prefix}:{digest_uri}").as_bytes()));
    hex(&Md5::digest(format!("{ha1}:{nonce}:{NC}:{cnonce}:auth:{ha2}").as_bytes()))
}

/// RFC 2831 §2.1.2.1: with `charset=utf-8`, strings all of whose characters are in ISO 8859-1
/// are hashed as ISO 8859-1, the others as UTF-8.
fn encode(s: &str, utf8: bool) -> Vec<u8> {
    if !utf8 || s.chars().all(|c| (c as u32) < 0x100) {
        s.chars().map(|c| u8::try_from(c as u32).unwrap_or(b'?')).collect()
    } else {
        s.as_bytes().to_vec()
    }
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Parses `key=value, key="quoted, \"value\""` directives.
pub(crate) fn parse_directives(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') || key.is_empty() {
            return Err(format!("malformed DIGEST-MD5 directives: {:?}", truncate(text)));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated quoted value in {:?}", truncate(text))),
                    Some('"') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim_end().to_owned();
        }
        out.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2831 §4's example (IMAP, chris / secret), with qop=auth.
    #[test]
    fn rfc_2831_example() {
        let response = response_value(
            "chris",
            "elwood.innosoft.com",
            "secret",
            "OA6MG9tEQGm2hh",
            "OA6MHXh6VqTrRk",
            "imap/elwood.innosoft.com",
            "AUTHENTICATE",
            false,
        );
        assert_eq!(response, "d388dad90d4bbd760a152321f2143af7");
        let rspauth = response_value(
            "chris",
            "elwood.innosoft.com",
            "secret",
            "OA6MG9tEQGm2hh",
            "OA6MHXh6VqTrRk",
            "imap/elwood.innosoft.com",
            "",
            false,
        );
        assert_eq!(rspauth, "ea40f60335c427b5527b84dbabcdfffd");
    }

    #[test]
    fn directives_parse_and_garbage_is_an_error() {
        let d = parse_directives(r#"realm="zk-sasl-md5",nonce="a\"b,c", qop="auth",charset=utf-8"#).expect("parse");
        assert_eq!(d[1], ("nonce".to_owned(), "a\"b,c".to_owned()));
        assert_eq!(d[3], ("charset".to_owned(), "utf-8".to_owned()));
        for bad in ["=x", "a", "a=\"open", "\u{0}\u{1}"] {
            assert!(parse_directives(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn garbage_challenges_are_errors_not_panics() {
        for token in
            [&b""[..], b"\xff\xfe", b"nonce", b"realm=\"x\"", &[b'a'; 10_000][..], b"nonce=\"n\",qop=\"auth-conf\""]
        {
            let mut m = DigestMd5::new("bob", "secret", "zookeeper/zk-sasl-md5");
            assert!(m.step(token).is_err(), "{token:?}");
        }
        let mut m = DigestMd5::new("bob", "secret", "zookeeper/zk-sasl-md5");
        assert!(matches!(m.step(b"nonce=\"n\",qop=\"auth\",charset=utf-8"), Ok(Step::Send(_))));
        assert!(m.step(b"rspauth=0000").is_err());
    }
}
