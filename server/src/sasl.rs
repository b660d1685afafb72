//! SASL on the embedded server: DIGEST-MD5 users read from ZooKeeper's own JAAS file, and the
//! server side of the DIGEST-MD5 exchange (RFC 2831) carried in ZooKeeper's SASL packets.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use crate::server::Error;

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
    #[allow(dead_code, reason = "the DIGEST-MD5 exchange that uses it lands in the next commit")]
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

    #[test]
    fn bad_jaas_is_an_error_not_a_panic() {
        for text in
            ["Server {", "Server { x required a= ; };", "{}", "Server { m }", "\"x", "/*", "Other { m required; };"]
        {
            assert!(SaslUsers::from_jaas(text, "Server").is_err(), "{text}");
        }
    }
}
