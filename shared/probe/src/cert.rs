//! Certificates: parsing (x509-parser) and the pure judgements made on them.

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// What deploygraph records of a certificate (the graph's `Certificate` node).
pub use deploygraph_model::CertificateRecord as CertificateInfo;

/// Parses one DER certificate.
///
/// # Errors
/// A message when the bytes are not an X.509 certificate.
pub fn parse_der(der: &[u8]) -> Result<CertificateInfo, String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let time = |t: x509_parser::time::ASN1Time| {
        DateTime::from_timestamp(t.timestamp(), 0).unwrap_or_default()
    };
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(dns) => sans.push((*dns).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        sans.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(CertificateInfo {
        sha256: hex::encode(Sha256::digest(der)),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        sans,
        not_before: time(cert.validity().not_before),
        not_after: time(cert.validity().not_after),
        is_ca: cert.is_ca(),
    })
}

fn ip_from_bytes(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}

/// Every certificate in a PEM bundle (any number) or a DER file (one), as DER.
///
/// # Errors
/// A message when nothing in the bytes is a certificate.
pub fn parse_bundle(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        let mut ders = Vec::new();
        for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
            let pem = pem.map_err(|e| format!("invalid PEM: {e}"))?;
            if pem.label == "CERTIFICATE" || pem.label == "TRUSTED CERTIFICATE" {
                ders.push(pem.contents);
            }
        }
        if ders.is_empty() {
            return Err("the PEM file holds no CERTIFICATE block".into());
        }
        return Ok(ders);
    }
    parse_der(bytes)?;
    Ok(vec![bytes.to_vec()])
}

/// A certificate's validity at a moment, against a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Valid beyond the threshold.
    Valid {
        /// Time left.
        remaining: Duration,
    },
    /// Valid now, but it expires within the threshold.
    ExpiresSoon {
        /// Time left.
        remaining: Duration,
    },
    /// Expired.
    Expired {
        /// Since when.
        since: Duration,
    },
    /// Not valid yet.
    NotYetValid {
        /// Until when.
        starts_in: Duration,
    },
}

/// Judges `cert` at `now` against `checkend` (like `openssl x509 -checkend`).
pub fn expiry(cert: &CertificateInfo, now: DateTime<Utc>, checkend: Duration) -> Expiry {
    if now < cert.not_before {
        Expiry::NotYetValid {
            starts_in: cert.not_before - now,
        }
    } else if now > cert.not_after {
        Expiry::Expired {
            since: now - cert.not_after,
        }
    } else if cert.not_after - now <= checkend {
        Expiry::ExpiresSoon {
            remaining: cert.not_after - now,
        }
    } else {
        Expiry::Valid {
            remaining: cert.not_after - now,
        }
    }
}

/// Human form of a duration: `3d 4h`, `5h 2m`, `40s`.
pub fn human(d: Duration) -> String {
    let secs = d.num_seconds().abs();
    let (days, hours, minutes) = (secs / 86_400, (secs % 86_400) / 3600, (secs % 3600) / 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m {}s", secs % 60)
    } else {
        format!("{secs}s")
    }
}

/// Whether `host` is covered by the SANs (one-label `*.` wildcards; IP SANs match literally).
pub fn host_matches(sans: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    sans.iter().any(|san| {
        let san = san.trim_end_matches('.').to_ascii_lowercase();
        match san.strip_prefix("*.") {
            Some(suffix) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
            None => san == host,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(not_before: i64, not_after: i64) -> CertificateInfo {
        CertificateInfo {
            sha256: String::new(),
            subject: String::new(),
            issuer: String::new(),
            sans: vec![],
            not_before: DateTime::from_timestamp(not_before, 0).unwrap_or_default(),
            not_after: DateTime::from_timestamp(not_after, 0).unwrap_or_default(),
            is_ca: false,
        }
    }

    #[test]
    fn expiry_follows_openssl_checkend() {
        let now = DateTime::from_timestamp(1_000_000, 0).unwrap_or_default();
        let day = Duration::days(1);
        assert!(matches!(
            expiry(&cert(0, 1_000_000 + 2 * 86_400), now, day),
            Expiry::Valid { .. }
        ));
        assert!(matches!(
            expiry(&cert(0, 1_000_000 + 3600), now, day),
            Expiry::ExpiresSoon { .. }
        ));
        assert!(matches!(
            expiry(&cert(0, 999_000), now, day),
            Expiry::Expired { .. }
        ));
        assert!(matches!(
            expiry(&cert(1_000_100, 2_000_000), now, day),
            Expiry::NotYetValid { .. }
        ));
    }

    #[test]
    fn host_names_match_sans_and_single_label_wildcards() {
        let sans = vec![
            "api.example.test".to_owned(),
            "*.apps.example.test".to_owned(),
            "127.0.0.1".to_owned(),
        ];
        assert!(host_matches(&sans, "api.example.test"));
        assert!(host_matches(&sans, "API.example.test."));
        assert!(host_matches(&sans, "web.apps.example.test"));
        assert!(!host_matches(&sans, "a.b.apps.example.test"));
        assert!(!host_matches(&sans, "apps.example.test"));
        assert!(host_matches(&sans, "127.0.0.1"));
        assert!(!host_matches(&sans, "other.example.test"));
    }

    #[test]
    fn durations_read_like_a_human_wrote_them() {
        assert_eq!(human(Duration::seconds(40)), "40s");
        assert_eq!(human(Duration::seconds(3 * 86_400 + 4 * 3600)), "3d 4h");
        assert_eq!(human(Duration::seconds(-7200)), "2h 0m");
    }
}
