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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateRecord {
    /// SHA-256 of the DER, hex.
    pub sha256: String,
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// DNS and IP SANs.
    pub sans: Vec<String>,
    /// Start of validity (any RFC 3339 time: certificates are dated by their issuer).
    #[schema(value_type = String, format = DateTime)]
    pub not_before: DateTime<Utc>,
    /// End of validity.
    #[schema(value_type = String, format = DateTime)]
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

/// The kinds of check a snapshot may hold.
pub const CHECK_KINDS: [&str; 6] = [
    "tls",
    "file-cert",
    "dns",
    "apiserver",
    "coredns",
    "k8s-secret-cert",
];

/// Longest check target.
pub const CHECK_TARGET_MAX_LEN: usize = 1024;

/// A check's kind, one of [`CHECK_KINDS`].
pub struct CheckKind;

impl utoipa::PartialSchema for CheckKind {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::String)
                .enum_values(Some(CHECK_KINDS))
                .build(),
        ))
    }
}

impl utoipa::ToSchema for CheckKind {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("CheckKind")
    }
}

/// A check's target, 1 to [`CHECK_TARGET_MAX_LEN`] characters.
pub fn check_target_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(1))
        .max_length(Some(CHECK_TARGET_MAX_LEN))
        .build()
}

/// One check of a snapshot.
/// Where a checked certificate is served: an Ingress (or Gateway) whose TLS names its Secret,
/// and the Services it routes to, in its namespace (`(Certificate)-[:SECURES]->(Service)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateUse {
    /// `ingress` or `gateway`.
    pub kind: String,
    /// Its namespace (the Services' too).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The Services it routes to, sorted.
    pub services: Vec<String>,
}

impl CertificateUse {
    /// The Services it routes to as (namespace, name): a Gateway's route in another namespace
    /// names its Service `namespace/name`.
    pub fn service_refs(&self) -> Vec<(String, String)> {
        self.services
            .iter()
            .map(|s| match s.split_once('/') {
                Some((namespace, name)) => (namespace.to_owned(), name.to_owned()),
                None => (self.namespace.clone(), s.clone()),
            })
            .collect()
    }

    /// `ingress payments/api (service payments)`.
    pub fn describe(&self) -> String {
        let services = match self.services.as_slice() {
            [] => String::new(),
            [one] => format!(" (service {one})"),
            many => format!(" (services {})", many.join(", ")),
        };
        format!("{} {}/{}{services}", self.kind, self.namespace, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRecord {
    /// `tls`, `file-cert`, `dns`, `apiserver`, `coredns`, `k8s-secret-cert`.
    #[schema(value_type = CheckKind)]
    pub kind: String,
    /// What was checked.
    #[schema(schema_with = check_target_schema)]
    pub target: String,
    /// Outcome.
    pub status: Verdict,
    /// Why.
    pub detail: String,
    /// How long it took.
    #[schema(maximum = 18446744073709551615_u64)]
    pub latency_ms: u64,
    /// Certificates observed, leaf first.
    #[serde(default)]
    #[schema(nullable = false)]
    pub certificates: Vec<CertificateRecord>,
    /// Where the certificate is served (Ingresses and Gateways naming the Secret checked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(nullable = false)]
    pub uses: Vec<CertificateUse>,
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
    /// What its checks' certificates secure: `(certificate uid, namespace, service, via)`, the
    /// leaf of each check whose certificate is served by an Ingress or Gateway.
    pub fn secures(&self) -> Vec<(Uid, String, String, String)> {
        let mut out = Vec::new();
        for check in &self.checks {
            let Some(leaf) = check.certificates.first() else {
                continue;
            };
            for usage in &check.uses {
                let via = format!("{} {}/{}", usage.kind, usage.namespace, usage.name);
                for (namespace, service) in usage.service_refs() {
                    out.push((leaf.uid(), namespace, service, via.clone()));
                }
            }
        }
        out
    }

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
            uses: Vec::new(),
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
