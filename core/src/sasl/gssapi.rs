//! The client side of GSSAPI (Kerberos V5, RFC 4752) on MIT krb5's GSS-API library
//! (`libgssapi_krb5`), through the `libgssapi` crate.
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
//! The context asks for mutual authentication, integrity and confidentiality (what the Java
//! client asks for) and never for credential delegation: the client's ticket-granting ticket
//! stays with the client. (`rsasl`'s GSSAPI client asks for every flag, delegation included,
//! which forwards a forwardable TGT to every ZooKeeper server; that is why it is not used.)
//!
//! The client's credentials are the process's Kerberos credentials, found as every MIT krb5
//! program finds them: the ticket cache (`KRB5CCNAME`, else the default cache), and when it
//! holds no ticket, the client keytab (`KRB5_CLIENT_KTNAME`, else the default client keytab),
//! from which the library obtains a ticket itself. `KRB5_CONFIG` names the configuration.
//! Steps may talk to the KDC, so the session runs them on the blocking pool.

use libgssapi::context::{ClientCtx, CtxFlags, SecurityContext};
use libgssapi::credential::{Cred, CredUsage};
use libgssapi::name::Name;
use libgssapi::oid::{GSS_MECH_KRB5, GSS_NT_HOSTBASED_SERVICE, GSS_NT_KRB5_PRINCIPAL, OidSet};

use super::{Mechanism, Step};

/// RFC 4752 §3.3: the security-layer bit for "no security layer".
const NO_SECURITY_LAYER: u8 = 1;

enum State {
    /// Nothing sent yet.
    Start,
    /// The context is being established.
    Context(ClientCtx),
    /// The context is established; the server's security-layer offer comes next.
    SecurityLayer(ClientCtx),
    /// The security-layer answer is sent; the server's reply to it ends the exchange.
    LastSent,
    Done,
}

/// The GSSAPI client of one connection.
pub(crate) struct Gssapi {
    /// `service/host`, for messages.
    target: String,
    /// `service@host`, a GSS host-based service name.
    service_name: String,
    /// The client principal to use, else the default one.
    principal: Option<String>,
    state: State,
}

impl std::fmt::Debug for Gssapi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gssapi").field("target", &self.target).field("principal", &self.principal).finish()
    }
}

impl Gssapi {
    /// A client of the service principal `service/host`, as `principal` or the default one.
    pub(crate) fn new(service: &str, host: &str, principal: Option<&str>) -> Self {
        Self {
            target: format!("{service}/{host}"),
            service_name: format!("{service}@{host}"),
            principal: principal.map(str::to_owned),
            state: State::Start,
        }
    }

    fn failed(&self, what: &str, e: &libgssapi::error::Error) -> String {
        format!("Kerberos (GSSAPI) login to {}: {what}: {e}", self.target)
    }

    /// Acquires the client's credentials and makes the first token.
    fn start(&mut self) -> Result<Vec<u8>, String> {
        let hint =
            "(the client's credentials: a ticket in KRB5CCNAME's cache, or a key in KRB5_CLIENT_KTNAME's keytab)";
        let mut krb5 = OidSet::new();
        krb5.add(GSS_MECH_KRB5).map_err(|e| self.failed("no Kerberos mechanism", &e))?;
        let name = match &self.principal {
            Some(p) => Some(
                Name::new(p.as_bytes(), Some(GSS_NT_KRB5_PRINCIPAL))
                    .map_err(|e| self.failed(&format!("bad client principal {p:?}"), &e))?,
            ),
            None => None,
        };
        let cred = Cred::acquire(name.as_ref(), None, CredUsage::Initiate, Some(&krb5))
            .map_err(|e| format!("{} {hint}", self.failed("no credentials", &e)))?;
        let target = Name::new(self.service_name.as_bytes(), Some(GSS_NT_HOSTBASED_SERVICE))
            .map_err(|e| self.failed("bad service name", &e))?;
        let flags = CtxFlags::GSS_C_MUTUAL_FLAG | CtxFlags::GSS_C_INTEG_FLAG | CtxFlags::GSS_C_CONF_FLAG;
        let mut ctx = ClientCtx::new(Some(cred), target, flags, Some(GSS_MECH_KRB5));
        // Gets the tickets: from the cache, else with the keytab's key from the KDC.
        let token = ctx.step(None, None).map_err(|e| format!("{} {hint}", self.failed("getting a ticket", &e)))?;
        let token = token.map(|t| t.to_vec()).unwrap_or_default();
        self.state = if ctx.is_complete() { State::SecurityLayer(ctx) } else { State::Context(ctx) };
        Ok(token)
    }
}

impl Mechanism for Gssapi {
    fn initial(&mut self) -> Result<Vec<u8>, String> {
        match self.state {
            State::Start => {
                let result = self.start();
                if result.is_err() {
                    self.state = State::Done;
                }
                result
            }
            _ => Err("GSSAPI already started".into()),
        }
    }

    fn step(&mut self, token: &[u8]) -> Result<Step, String> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Context(mut ctx) => {
                let out = ctx.step(Some(token), None).map_err(|e| self.failed("the server's answer", &e))?;
                let out = out.map(|t| t.to_vec()).unwrap_or_default();
                // Once established, the server expects an (empty) token before it makes its
                // security-layer offer.
                self.state = if ctx.is_complete() { State::SecurityLayer(ctx) } else { State::Context(ctx) };
                Ok(Step::Send(out))
            }
            State::SecurityLayer(mut ctx) => {
                let offer = ctx.unwrap(token).map_err(|e| self.failed("the security-layer offer", &e))?;
                if offer.len() != 4 {
                    return Err(format!(
                        "Kerberos (GSSAPI) login to {}: the security-layer offer has {} bytes, not 4",
                        self.target,
                        offer.len()
                    ));
                }
                if offer[0] & NO_SECURITY_LAYER == 0 {
                    return Err(format!(
                        "Kerberos (GSSAPI) login to {}: the server insists on a security layer (offer {:#04x}), \
                         which ZooKeeper's protocol has no room for",
                        self.target, offer[0]
                    ));
                }
                // No security layer, no receive buffer, no authorization id (the server takes
                // the authenticated principal).
                let answer = ctx
                    .wrap(false, &[NO_SECURITY_LAYER, 0, 0, 0])
                    .map_err(|e| self.failed("the security-layer answer", &e))?;
                self.state = State::LastSent;
                Ok(Step::Send(answer.to_vec()))
            }
            // What the server says after the security-layer answer carries nothing: it has
            // accepted the principal (a refusal comes as AUTH_FAILED instead).
            State::LastSent if token.is_empty() => Ok(Step::Done),
            State::LastSent => Err(format!("the server sent a {}-byte token after GSSAPI completed", token.len())),
            State::Start => Err("GSSAPI has not started".into()),
            State::Done => Err("the server sent a token after GSSAPI completed".into()),
        }
    }

    fn blocking(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_out_of_turn_are_errors() {
        let mut m = Gssapi::new("zookeeper", "localhost", None);
        assert!(m.step(b"").is_err(), "before the start");
        let mut m = Gssapi::new("zookeeper", "localhost", None);
        m.state = State::LastSent;
        assert!(m.step(b"unexpected").is_err());
        let mut m = Gssapi::new("zookeeper", "localhost", None);
        m.state = State::LastSent;
        assert_eq!(m.step(b"").expect("done"), Step::Done);
        assert!(m.step(b"").is_err(), "after the end");
    }
}
