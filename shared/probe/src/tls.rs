//! TLS endpoint check: read the whole chain even when it is expired or untrusted, then judge
//! expiry, validity start, host name and trust separately.

use crate::cert::{self, CertificateInfo, Expiry, expiry, host_matches, human};
use crate::check::{CheckKind, CheckResult, Status};
use chrono::{DateTime, Duration, Utc};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// `host:port`, optionally `@sni` for the name to present and check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsTarget {
    /// Host to connect to.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Name to send as SNI and to check against the SANs (default: host).
    pub server_name: Option<String>,
}

impl TlsTarget {
    /// The name the certificate must cover.
    pub fn name(&self) -> &str {
        self.server_name.as_deref().unwrap_or(&self.host)
    }
}

impl std::fmt::Display for TlsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{}:{}", self.host, self.port)?;
        }
        match &self.server_name {
            Some(name) => write!(f, "@{name}"),
            None => Ok(()),
        }
    }
}

impl FromStr for TlsTarget {
    type Err = String;

    /// `HOST:PORT`, `[IPv6]:PORT`, each optionally followed by `@SNI`.
    fn from_str(value: &str) -> Result<Self, String> {
        let (address, server_name) = match value.rsplit_once('@') {
            Some((a, sni)) if !sni.is_empty() => (a, Some(sni.to_owned())),
            Some(_) => return Err(format!("{value:?}: empty name after @")),
            None => (value, None),
        };
        let (host, port) = if let Some(rest) = address.strip_prefix('[') {
            let (host, port) = rest
                .split_once("]:")
                .ok_or_else(|| format!("{value:?}: expected [IPv6]:PORT"))?;
            (host, port)
        } else {
            address
                .rsplit_once(':')
                .ok_or_else(|| format!("{value:?}: expected HOST:PORT"))?
        };
        if host.is_empty() {
            return Err(format!("{value:?}: empty host"));
        }
        // Brackets only wrap an IPv6 address; a host with them (or with control characters or
        // spaces) is no host, and would not print back as the target it was read from.
        if host.contains(|c: char| c.is_control() || c.is_whitespace() || c == '[' || c == ']') {
            return Err(format!("{value:?}: {host:?} is not a host name or address"));
        }
        let port = port
            .parse()
            .map_err(|_| format!("{value:?}: {port:?} is not a port"))?;
        Ok(Self {
            host: host.to_owned(),
            port,
            server_name,
        })
    }
}

/// How every check judges and how long it may take: certificate expiry against `checkend`
/// (TLS endpoints, files, Kubernetes Secrets), trust for TLS chains, and the per-check timeout.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Fail when a certificate expires within this (`--checkend`).
    pub checkend: Duration,
    /// Trust anchors of TLS endpoints: system roots or a given CA bundle.
    pub roots: Arc<RootCertStore>,
    /// Whether an untrusted chain fails the check (else it passes with a note).
    pub untrusted_fails: bool,
    /// Bound on each single check (connect plus handshake, a DNS answer, an HTTP request).
    pub timeout: std::time::Duration,
}

/// The system's trust anchors.
pub fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        let _ = roots.add(cert);
    }
    roots
}

/// Trust anchors from PEM or DER bundle bytes.
///
/// # Errors
/// When the bytes hold no certificate or one that cannot be a trust anchor.
pub fn roots_from_bundle(bytes: &[u8]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for der in cert::parse_bundle(bytes)? {
        roots
            .add(CertificateDer::from(der))
            .map_err(|e| format!("not usable as a trust anchor: {e}"))?;
    }
    Ok(roots)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts any chain so that expired and untrusted ones can be read and judged; the handshake
/// signature is still verified, so the server holds the leaf's key.
#[derive(Debug)]
struct ReadAnyChain(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for ReadAnyChain {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Connects, completes the handshake and returns the peer's chain, leaf first.
async fn read_chain(target: &TlsTarget) -> Result<Vec<CertificateDer<'static>>, String> {
    let provider = provider();
    let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ReadAnyChain(
            provider.signature_verification_algorithms,
        )))
        .with_no_client_auth();
    let server_name = ServerName::try_from(target.name().to_owned())
        .map_err(|e| format!("invalid server name: {e}"))?;
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("connect failed: {e}"))?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    let chain = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    Ok(chain)
}

/// Whether the chain leads to a trust anchor, judged at a moment the leaf is valid so that an
/// expired certificate is not reported as untrusted, and ignoring the name (checked separately).
fn verify_trust(
    chain: &[CertificateDer<'static>],
    leaf: &CertificateInfo,
    roots: &Arc<RootCertStore>,
    name: &str,
) -> Result<(), String> {
    let Some((end_entity, intermediates)) = chain.split_first() else {
        return Err("no certificate presented".into());
    };
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::clone(roots), provider())
        .build()
        .map_err(|e| format!("no trust anchors: {e}"))?;
    let midpoint = leaf.not_before + (leaf.not_after - leaf.not_before) / 2;
    let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(midpoint.timestamp()).unwrap_or(0),
    ));
    let server_name = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    match verifier.verify_server_cert(end_entity, intermediates, &server_name, &[], at) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
        | Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForNameContext { .. },
        )) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// The verdict on a chain: pure, so every case is unit-tested without a server.
pub fn judge(
    chain: &[CertificateInfo],
    name: &str,
    now: DateTime<Utc>,
    checkend: Duration,
    trust: &Result<(), String>,
    untrusted_fails: bool,
) -> (Status, String) {
    let Some(leaf) = chain.first() else {
        return (Status::Fail, "the server presented no certificate".into());
    };
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    match expiry(leaf, now, checkend) {
        Expiry::Valid { remaining } => notes.push(format!("expires in {}", human(remaining))),
        Expiry::ExpiresSoon { remaining } => problems.push(format!(
            "expires in {} (within the {} threshold)",
            human(remaining),
            human(checkend)
        )),
        Expiry::Expired { since } => problems.push(format!("expired {} ago", human(since))),
        Expiry::NotYetValid { starts_in } => {
            problems.push(format!("not valid for another {}", human(starts_in)))
        }
    }
    if !host_matches(&leaf.sans, name) {
        problems.push(format!(
            "{name} is not in the certificate's names ({})",
            leaf.sans.join(", ")
        ));
    }
    match trust {
        Ok(()) => notes.push("trusted".into()),
        Err(reason) if untrusted_fails => problems.push(format!("untrusted: {reason}")),
        Err(reason) => notes.push(format!("untrusted ({reason}), allowed")),
    }
    if problems.is_empty() {
        (Status::Pass, notes.join("; "))
    } else {
        (Status::Fail, problems.join("; "))
    }
}

/// Checks one TLS endpoint. Unreachable endpoints and handshakes that do not finish within
/// `options.timeout` are `unknown`.
pub async fn check(target: &TlsTarget, options: &CheckOptions) -> CheckResult {
    let started = Instant::now();
    let mut result = match tokio::time::timeout(options.timeout, read_chain(target)).await {
        Err(_) => CheckResult::new(
            CheckKind::Tls,
            target.to_string(),
            Status::Unknown,
            format!("no TLS handshake within {:?}", options.timeout),
        ),
        Ok(Err(reason)) => {
            CheckResult::new(CheckKind::Tls, target.to_string(), Status::Unknown, reason)
        }
        Ok(Ok(chain)) => {
            let infos: Result<Vec<CertificateInfo>, String> =
                chain.iter().map(|c| cert::parse_der(c)).collect();
            match infos {
                Err(reason) => {
                    CheckResult::new(CheckKind::Tls, target.to_string(), Status::Fail, reason)
                }
                Ok(infos) => {
                    let trust = infos
                        .first()
                        .map_or(Err("no certificate presented".to_owned()), |leaf| {
                            verify_trust(&chain, leaf, &options.roots, target.name())
                        });
                    let (status, detail) = judge(
                        &infos,
                        target.name(),
                        Utc::now(),
                        options.checkend,
                        &trust,
                        options.untrusted_fails,
                    );
                    CheckResult {
                        certificates: infos,
                        ..CheckResult::new(CheckKind::Tls, target.to_string(), status, detail)
                    }
                }
            }
        }
    };
    result.latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_with_brackets_or_control_characters_are_refused() {
        // Found by fuzzing (gate_targets, libFuzzer): accepted as host "\0]:", printed as
        // "[\0]:]:0", which does not read back.
        for target in ["\0]::0", "x]:1:443", "[a]]:443", "a b:443", "a\tb:443"] {
            assert!(target.parse::<TlsTarget>().is_err(), "{target:?} accepted");
        }
        let t: TlsTarget = "a:b:443".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.to_string().parse::<TlsTarget>(), Ok(t));
    }

    #[test]
    fn targets_parse_with_ipv6_and_sni() {
        let t: TlsTarget = "api.example.test:6443"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (t.host.as_str(), t.port, t.server_name),
            ("api.example.test", 6443, None)
        );
        let t: TlsTarget = "[::1]:443@kubernetes.default"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((t.host.as_str(), t.name()), ("::1", "kubernetes.default"));
        assert_eq!(t.to_string(), "[::1]:443@kubernetes.default");
        for bad in ["nohost", ":443", "host:port", "host:99999", "host:443@"] {
            assert!(bad.parse::<TlsTarget>().is_err(), "{bad}");
        }
    }

    fn leaf(hours_left: i64, sans: &[&str]) -> CertificateInfo {
        let now = Utc::now();
        CertificateInfo {
            sha256: String::new(),
            subject: "CN=leaf".into(),
            issuer: "CN=ca".into(),
            sans: sans.iter().map(|s| (*s).to_owned()).collect(),
            not_before: now - Duration::days(30),
            not_after: now + Duration::hours(hours_left),
            is_ca: false,
        }
    }

    #[test]
    fn the_verdict_names_every_problem() {
        let day = Duration::days(1);
        let ok: Result<(), String> = Ok(());
        let untrusted: Result<(), String> = Err("unknown issuer".into());
        assert_eq!(
            judge(
                &[leaf(24 * 90, &["a.test"])],
                "a.test",
                Utc::now(),
                day,
                &ok,
                true
            )
            .0,
            Status::Pass
        );
        let (status, detail) = judge(
            &[leaf(2, &["a.test"])],
            "b.test",
            Utc::now(),
            day,
            &untrusted,
            true,
        );
        assert_eq!(status, Status::Fail);
        assert!(detail.contains("within the 1d 0h threshold"), "{detail}");
        assert!(detail.contains("b.test is not in"), "{detail}");
        assert!(detail.contains("untrusted"), "{detail}");
        assert_eq!(
            judge(
                &[leaf(24 * 90, &["a.test"])],
                "a.test",
                Utc::now(),
                day,
                &untrusted,
                false
            )
            .0,
            Status::Pass
        );
        assert_eq!(
            judge(&[], "a.test", Utc::now(), day, &ok, true).0,
            Status::Fail
        );
    }
}
