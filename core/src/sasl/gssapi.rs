//! The client side of GSSAPI (Kerberos V5, RFC 4752) through `rsasl`'s mechanism, which drives
//! MIT krb5's GSS-API library (`libgssapi_krb5`).
//!
//! ZooKeeper's server runs the JDK's `GssKrb5Server`; the exchange in its SASL packets:
//!
//! ```text
//! client → server   AP-REQ for zookeeper/<host> (mutual authentication asked for)
//! server → client   AP-REP                  (the server proves it holds the service key)
//! client → server   (empty token)           (the context is established)
//! server → client   wrap([layers, maxbuf])  (the security layers the server offers)
//! client → server   wrap([1, 0, 0, 0])      (no security layer: ZooKeeper has none)
//! server → client   (empty or null token)   (the server has authorized the principal)
//! ```
//!
//! The client's credentials are the process's Kerberos credentials, found as every MIT krb5
//! program finds them: the ticket cache (`KRB5CCNAME`, else the default cache), and when it
//! holds no ticket, the client keytab (`KRB5_CLIENT_KTNAME`, else the default client keytab),
//! from which the library obtains a ticket itself. `KRB5_CONFIG` names the configuration.
//! Every step may talk to the KDC, so the session runs them on the blocking pool.

use std::borrow::Cow;
use std::error::Error as _;
use std::sync::Arc;

use rsasl::callback::{Context, Request, SessionCallback, SessionData};
use rsasl::mechanisms::gssapi::GSSAPI;
use rsasl::mechanisms::gssapi::properties::{GssSecurityLayer, GssService, SecurityLayer};
use rsasl::prelude::{Mechname, Registry, SASLClient, SASLConfig, Session, SessionError, State};
use rsasl::property::Hostname;

use super::{Mechanism, Step};

/// The mechanisms this client offers `rsasl`: GSSAPI only.
static MECHANISMS: &[rsasl::prelude::Mechanism] = &[GSSAPI];

/// Answers the mechanism's questions: the service principal's parts, and which security layers
/// are acceptable (none but "no security layer": ZooKeeper does not wrap its traffic).
struct Target {
    service: String,
    host: String,
}

impl SessionCallback for Target {
    fn callback(
        &self,
        _session_data: &SessionData,
        _context: &Context<'_>,
        request: &mut Request<'_>,
    ) -> Result<(), SessionError> {
        if request.is::<GssService>() {
            request.satisfy::<GssService>(self.service.as_str())?;
        } else if request.is::<Hostname>() {
            request.satisfy::<Hostname>(self.host.as_str())?;
        } else if request.is::<GssSecurityLayer>() {
            request.satisfy::<GssSecurityLayer>(&SecurityLayer::NO_SECURITY_LAYER)?;
        }
        Ok(())
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    /// The mechanism runs.
    Running,
    /// The mechanism has produced its last token; the server's answer to it ends the exchange.
    LastSent,
    Done,
}

/// The GSSAPI client of one connection.
pub(crate) struct Gssapi {
    session: Session,
    principal: String,
    phase: Phase,
}

impl std::fmt::Debug for Gssapi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gssapi").field("principal", &self.principal).field("phase", &self.phase).finish()
    }
}

impl Gssapi {
    /// A client for the service principal `service/host`.
    pub(crate) fn new(service: &str, host: &str) -> Result<Self, String> {
        let principal = format!("{service}/{host}");
        let target = Target { service: service.to_owned(), host: host.to_owned() };
        let config: Arc<SASLConfig> = SASLConfig::builder()
            .with_registry(Registry::with_mechanisms(MECHANISMS))
            .with_callback(target)
            .map_err(|e| format!("GSSAPI for {principal}: {e}"))?;
        let name = Mechname::parse(b"GSSAPI").map_err(|e| format!("GSSAPI: {e}"))?;
        let session =
            SASLClient::new(config).start_suggested(&[name]).map_err(|e| format!("GSSAPI for {principal}: {e}"))?;
        Ok(Self { session, principal, phase: Phase::Running })
    }

    fn run(&mut self, input: Option<&[u8]>) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        match self.session.step(input, &mut out) {
            Ok(State::Running) => {}
            // rsasl's GSSAPI always sends its last token (the security-layer answer).
            Ok(State::Finished(_)) => self.phase = Phase::LastSent,
            Err(e) => {
                self.phase = Phase::Done;
                return Err(format!("Kerberos (GSSAPI) login to {} failed: {}", self.principal, chain(&e)));
            }
        }
        Ok(out)
    }
}

impl Mechanism for Gssapi {
    fn initial(&mut self) -> Result<Vec<u8>, String> {
        // The first step gets the client's ticket: say where it comes from.
        self.run(None).map_err(|e| {
            format!("{e} (the client's credentials: a ticket in KRB5CCNAME's cache, or a key in KRB5_CLIENT_KTNAME's keytab)")
        })
    }

    fn step(&mut self, token: &[u8]) -> Result<Step, String> {
        match self.phase {
            Phase::Running => self.run(Some(token)).map(Step::Send),
            // What the server says after the security-layer answer carries nothing: the server
            // has accepted the principal (a refusal comes as AUTH_FAILED instead).
            Phase::LastSent => {
                self.phase = Phase::Done;
                if token.is_empty() {
                    Ok(Step::Done)
                } else {
                    Err(format!("the server sent a {}-byte token after GSSAPI completed", token.len()))
                }
            }
            Phase::Done => Err("the server sent a token after GSSAPI completed".into()),
        }
    }

    fn blocking(&self) -> bool {
        true
    }
}

/// `e` and its sources, joined: the GSS-API major and minor messages are in the sources.
fn chain(e: &SessionError) -> String {
    let mut parts: Vec<Cow<'_, str>> = vec![Cow::Owned(e.to_string())];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(Cow::Owned(text));
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_after_completion_is_an_error() {
        let mut m = Gssapi::new("zookeeper", "localhost").expect("session");
        m.phase = Phase::LastSent;
        assert!(m.step(b"unexpected").is_err());
        let mut m = Gssapi::new("zookeeper", "localhost").expect("session");
        m.phase = Phase::LastSent;
        assert_eq!(m.step(b"").expect("done"), Step::Done);
        assert!(m.step(b"").is_err());
    }
}
