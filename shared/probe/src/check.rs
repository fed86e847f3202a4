//! The result every check returns.

use crate::cert::CertificateInfo;
use serde::Serialize;

/// What was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    /// A TLS endpoint's certificate chain.
    Tls,
    /// Certificates in a PEM or DER file.
    FileCert,
    /// A DNS name through a name server.
    Dns,
    /// A Kubernetes API server's health.
    Apiserver,
    /// CoreDNS's cache, from its metrics.
    Coredns,
    /// Certificates in a Kubernetes TLS Secret.
    K8sSecretCert,
}

impl CheckKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tls => "tls",
            Self::FileCert => "file-cert",
            Self::Dns => "dns",
            Self::Apiserver => "apiserver",
            Self::Coredns => "coredns",
            Self::K8sSecretCert => "k8s-secret-cert",
        }
    }
}

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Failed: the gate fails.
    Fail,
    /// Could not tell (timeout, unreachable, unreadable): fails the gate unless allowed.
    Unknown,
    /// Passed.
    Pass,
}

impl Status {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Unknown => "unknown",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// What was checked.
    pub kind: CheckKind,
    /// Which target (`host:port`, a path).
    pub target: String,
    /// Outcome.
    pub status: Status,
    /// Why, for humans.
    pub detail: String,
    /// How long the check took.
    pub latency_ms: u64,
    /// Certificates observed, leaf first.
    pub certificates: Vec<CertificateInfo>,
    /// Sub-checks the target reported (an API server's `/readyz` checks).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
    /// Where the certificate is served (a TLS Secret's Ingresses and Gateways).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uses: Vec<deploygraph_model::CertificateUse>,
}

/// One sub-check a target reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Part {
    /// Its name (`etcd`, `poststarthook/start-informers`).
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// `ok` or the failure reason.
    pub detail: String,
}

impl CheckResult {
    /// A result without certificates.
    pub fn new(
        kind: CheckKind,
        target: impl Into<String>,
        status: Status,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            target: target.into(),
            status,
            detail: detail.into(),
            latency_ms: 0,
            certificates: Vec::new(),
            parts: Vec::new(),
            uses: Vec::new(),
        }
    }
}
