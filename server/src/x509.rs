//! The `x509` auth scheme's id: a client certificate's subject as Java's
//! `X500Principal.getName()` writes it (RFC 2253), which is what ZooKeeper's
//! `X509AuthenticationProvider` adds to the connection — `CN=client,O=Example,C=US`, the
//! relative names in reverse order of the certificate's encoding, no spaces.

use x509_parser::prelude::{FromDer, X509Certificate};

/// The subject DN of a DER certificate, in RFC 2253 form; `None` if it does not parse.
pub(crate) fn subject_dn(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let rdns: Vec<String> = cert
        .subject()
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let oid = attr.attr_type().to_id_string();
                    let key = keyword(&oid).map_or(oid, str::to_owned);
                    let value = match attr.as_str() {
                        Ok(text) => escape(text),
                        // RFC 2253: values of other types as '#' and the hex of their encoding.
                        Err(_) => format!("#{}", hex(attr.attr_value().data)),
                    };
                    format!("{key}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Some(rdns.into_iter().rev().collect::<Vec<_>>().join(","))
}

/// The keywords `X500Principal.getName()` (RFC 2253) uses; every other type is its OID.
fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        _ => return None,
    })
}

/// RFC 2253 §2.4 escaping.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_rfc_2253() {
        assert_eq!(escape("a,b"), "a\\,b");
        assert_eq!(escape(" x "), "\\ x\\ ");
        assert_eq!(escape("#1"), "\\#1");
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn garbage_is_no_subject() {
        assert_eq!(subject_dn(b"not a certificate"), None);
        assert_eq!(subject_dn(&[]), None);
    }
}
