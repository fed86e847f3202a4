//! Infrastructure snapshots: the state of certificates, DNS and API servers before a rollout.
//!
//! `(InfraSnapshot)-[:INCLUDES]->(Check)-[:OBSERVED]->(Certificate)`, and
//! `(InfraSnapshot)-[:TAKEN_FOR]->(DeploymentEvent)` when it was taken for a deployment. A
//! snapshot is often taken before its deployment is recorded, so the snapshot keeps the
//! deployment's uid and the link is made as soon as both exist.

use crate::newtypes::format_time;
use crate::uid::Uid;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Pass, fail or unknown: of a check, and of a whole snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Passed.
    Pass,
    /// Failed.
    Fail,
    /// Could not tell.
    Unknown,
}

impl Verdict {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Unknown => "unknown",
        }
    }
}

/// A certificate observed by a check, identified by its SHA-256 fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRecord {
    /// SHA-256 of the DER, hex.
    pub sha256: String,
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// DNS and IP SANs.
    pub sans: Vec<String>,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// Whether it is a CA certificate.
    #[serde(default)]
    pub is_ca: bool,
}

impl CertificateRecord {
    /// `Uid::derive("certificate", [sha256])`: one node per certificate.
    pub fn uid(&self) -> Uid {
        Uid::derive("certificate", &[&self.sha256])
    }
}

/// One check of a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckRecord {
    /// `tls`, `file-cert`, `dns`, `apiserver`, `coredns`, `k8s-secret-cert`.
    pub kind: String,
    /// What was checked.
    pub target: String,
    /// Outcome.
    pub status: Verdict,
    /// Why.
    pub detail: String,
    /// How long it took.
    pub latency_ms: u64,
    /// Certificates observed, leaf first.
    #[serde(default)]
    pub certificates: Vec<CertificateRecord>,
}

impl CheckRecord {
    /// `Uid::derive("check", [snapshot uid, kind, target])`.
    pub fn uid(&self, snapshot: &Uid) -> Uid {
        Uid::derive("check", &[snapshot.as_str(), &self.kind, &self.target])
    }
}

/// The infrastructure's state at one moment, optionally taken for a deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfraSnapshot {
    /// `Uid::derive("snapshot", [cluster, taken_at, deployment])`.
    pub uid: Uid,
    /// When the checks ran.
    pub taken_at: DateTime<Utc>,
    /// Pass when every check passed, fail when any failed, else unknown.
    pub verdict: Verdict,
    /// Cluster or environment name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The deployment it was taken for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_uid: Option<Uid>,
    /// The checks.
    pub checks: Vec<CheckRecord>,
}

impl InfraSnapshot {
    /// A snapshot of `checks` taken at `taken_at`; its verdict is derived from the checks.
    pub fn new(
        taken_at: DateTime<Utc>,
        cluster: Option<String>,
        deployment_uid: Option<Uid>,
        checks: Vec<CheckRecord>,
    ) -> Self {
        let uid = Uid::derive(
            "snapshot",
            &[
                cluster.as_deref().unwrap_or(""),
                &format_time(&taken_at),
                deployment_uid.as_ref().map_or("", Uid::as_str),
            ],
        );
        let verdict = if checks.iter().any(|c| c.status == Verdict::Fail) {
            Verdict::Fail
        } else if checks.iter().any(|c| c.status == Verdict::Unknown) {
            Verdict::Unknown
        } else {
            Verdict::Pass
        };
        Self {
            uid,
            taken_at,
            verdict,
            cluster,
            deployment_uid,
            checks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: Verdict) -> CheckRecord {
        CheckRecord {
            kind: "tls".into(),
            target: "a:443".into(),
            status,
            detail: String::new(),
            latency_ms: 1,
            certificates: vec![],
        }
    }

    #[test]
    fn the_snapshot_verdict_is_the_worst_check() {
        let now = Utc::now();
        assert_eq!(
            InfraSnapshot::new(now, None, None, vec![check(Verdict::Pass)]).verdict,
            Verdict::Pass
        );
        assert_eq!(
            InfraSnapshot::new(
                now,
                None,
                None,
                vec![check(Verdict::Unknown), check(Verdict::Pass)]
            )
            .verdict,
            Verdict::Unknown
        );
        assert_eq!(
            InfraSnapshot::new(
                now,
                None,
                None,
                vec![check(Verdict::Unknown), check(Verdict::Fail)]
            )
            .verdict,
            Verdict::Fail
        );
    }
}
