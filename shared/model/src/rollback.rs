//! Rollbacks: `(Rollback)-[:UNDID]->(DeploymentEvent)` and, when the deployment it went back
//! to is known, `(Rollback)-[:RESTORED]->(DeploymentEvent)`.
//!
//! A rollback is recorded by `deploygraph canary analyze --rollback` once its request was
//! accepted (or, with `dry_run`, to say what would have been done), or by anyone through
//! `POST /v1/rollbacks`. Its uid is derived from the deployment it undid, the time and the
//! target, so the same rollback recorded twice is one node. A rollback that is not a dry run
//! makes the undone deployment's status `rolled_back`.
//!
//! The restored deployment is the one the request names, else the undone deployment's
//! previous deployment of the same service in the same environment (`FOLLOWS`), when the
//! store has one.

use crate::alert::ServiceRef;
use crate::uid::{ROLLBACK_PREFIX, Uid};
use chrono::{DateTime, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// Upper bounds on a rollback's text.
pub mod limits {
    /// The reason.
    pub const REASON: usize = 4096;
    /// Who rolled back.
    pub const BY: usize = 256;
    /// The target's name (a Kubernetes object name or a Helm release).
    pub const NAME: usize = 253;
    /// A namespace (a DNS label).
    pub const NAMESPACE: usize = 63;
}

/// The pattern of a target: `deployment/NAME`, `rollout/NAME` or `helm/RELEASE[:REVISION]`.
pub const TARGET_PATTERN: &str = r"^((deployment|rollout)/[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?|helm/[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?(:[1-9][0-9]{0,8})?)$";
/// The pattern of a namespace (a DNS label).
pub const NAMESPACE_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";

/// A rollback as a client records it: everything but the undone deployment's service, which
/// the store reads from the deployment, and the restored deployment when none is named.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRollback {
    /// Derived from `deployment`, `at`, `target` and `namespace` ([`Rollback::uid_for`]).
    pub uid: Uid,
    /// The deployment undone (`UNDID`).
    pub deployment: Uid,
    /// The deployment gone back to (`RESTORED`), when the client knows it.
    pub restored: Option<Uid>,
    /// Why (the canary verdict's rule, say).
    pub reason: String,
    /// Who or what rolled back.
    pub by: String,
    /// When the rollback was requested.
    pub at: DateTime<Utc>,
    /// What was rolled back: `deployment/NAME`, `rollout/NAME` or `helm/RELEASE[:REVISION]`.
    pub target: String,
    /// The target's namespace.
    pub namespace: Option<String>,
    /// Only planned: nothing was changed, and the deployment keeps its status.
    pub dry_run: bool,
}

impl NewRollback {
    /// The stored rollback, with the service of the undone deployment and the restored one.
    pub fn of(self, service: ServiceRef, restored: Option<Uid>) -> Rollback {
        Rollback {
            uid: self.uid,
            deployment: self.deployment,
            restored,
            service,
            reason: self.reason,
            by: self.by,
            at: self.at,
            target: self.target,
            namespace: self.namespace,
            dry_run: self.dry_run,
        }
    }
}

/// A rollback, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollback {
    /// Derived from `deployment`, `at`, `target` and `namespace`.
    pub uid: Uid,
    /// The deployment undone (`UNDID`).
    pub deployment: Uid,
    /// The deployment gone back to (`RESTORED`), when known.
    pub restored: Option<Uid>,
    /// The undone deployment's service.
    pub service: ServiceRef,
    /// Why.
    pub reason: String,
    /// Who or what rolled back.
    pub by: String,
    /// When it was requested.
    pub at: DateTime<Utc>,
    /// What was rolled back.
    pub target: String,
    /// The target's namespace.
    pub namespace: Option<String>,
    /// Only planned: nothing was changed.
    pub dry_run: bool,
}

impl Rollback {
    /// The uid of the rollback of `deployment` at `at` through `target` in `namespace`.
    pub fn uid_for(
        deployment: &Uid,
        at: &DateTime<Utc>,
        target: &str,
        namespace: Option<&str>,
    ) -> Uid {
        Uid::derive(
            ROLLBACK_PREFIX,
            &[
                deployment.as_str(),
                &crate::newtypes::format_time(at),
                target,
                namespace.unwrap_or_default(),
            ],
        )
    }
}

/// The body of `POST /v1/rollbacks`: a rollback of a stored deployment. Unknown fields are
/// rejected. Its uid is derived from `deployment`, `at`, `target` and `namespace`, so the same
/// rollback posted twice is stored once.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackInput {
    /// The deployment undone.
    #[schema(value_type = crate::schema::DeploymentUid)]
    pub deployment: String,
    /// The deployment gone back to; by default the undone deployment's previous deployment of
    /// the same service in the same environment, when one is stored.
    #[serde(default)]
    #[schema(value_type = Option<crate::schema::DeploymentUid>, nullable = false)]
    pub restored: Option<String>,
    /// Why it was rolled back.
    #[schema(min_length = 1, max_length = 4096)]
    pub reason: String,
    /// Who or what rolled back (`deploygraph canary analyze`, a person).
    #[schema(min_length = 1, max_length = 256)]
    pub by: String,
    /// When the rollback was requested.
    #[schema(value_type = crate::schema::InputTime)]
    pub at: String,
    /// What was rolled back: `deployment/NAME`, `rollout/NAME` (an Argo Rollout) or
    /// `helm/RELEASE[:REVISION]`.
    #[schema(
        max_length = 270,
        pattern = r"^((deployment|rollout)/[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?|helm/[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?(:[1-9][0-9]{0,8})?)$"
    )]
    pub target: String,
    /// The target's namespace.
    #[serde(default)]
    #[schema(
        nullable = false,
        max_length = 63,
        pattern = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
    )]
    pub namespace: Option<String>,
    /// Only planned (`--dry-run`): nothing was changed, and the deployment keeps its status.
    #[serde(default)]
    pub dry_run: bool,
}

fn required_text(field: &str, value: &str, max: usize) -> crate::Result<()> {
    if value.is_empty() {
        return Err(crate::Error::new(field, "is required"));
    }
    if value.chars().count() > max {
        return Err(crate::Error::new(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    Ok(())
}

static TARGET: LazyLock<Regex> = LazyLock::new(|| compile(TARGET_PATTERN));
static NAMESPACE: LazyLock<Regex> = LazyLock::new(|| compile(NAMESPACE_PATTERN));

#[allow(clippy::expect_used)] // The patterns are constants, covered by the tests below.
fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("rollback patterns are valid")
}

impl RollbackInput {
    /// Validates the request into a rollback to record.
    ///
    /// # Errors
    /// The first invalid field, by name.
    pub fn validate(self) -> crate::Result<NewRollback> {
        use crate::schema::parse_input_time;
        let deployment = Uid::parse_deployment(&self.deployment)
            .map_err(|e| crate::Error::new("deployment", e.message))?;
        let restored = self
            .restored
            .as_deref()
            .map(|r| Uid::parse_deployment(r).map_err(|e| crate::Error::new("restored", e.message)))
            .transpose()?;
        if restored.as_ref() == Some(&deployment) {
            return Err(crate::Error::new(
                "restored",
                "is the deployment undone; a rollback restores another deployment",
            ));
        }
        required_text("reason", &self.reason, limits::REASON)?;
        required_text("by", &self.by, limits::BY)?;
        let at = parse_input_time("at", &self.at)?;
        if !TARGET.is_match(&self.target) {
            return Err(crate::Error::new(
                "target",
                format!(
                    "{:?} is not deployment/NAME, rollout/NAME or helm/RELEASE[:REVISION] (names: lower-case letters, digits, '-' and '.')",
                    self.target
                ),
            ));
        }
        if let Some(ns) = &self.namespace
            && !NAMESPACE.is_match(ns)
        {
            return Err(crate::Error::new(
                "namespace",
                format!("{ns:?} is not a namespace (a DNS label)"),
            ));
        }
        Ok(NewRollback {
            uid: Rollback::uid_for(&deployment, &at, &self.target, self.namespace.as_deref()),
            deployment,
            restored,
            reason: self.reason,
            by: self.by,
            at,
            target: self.target,
            namespace: self.namespace,
            dry_run: self.dry_run,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> RollbackInput {
        RollbackInput {
            deployment: Uid::derive(crate::uid::DEPLOYMENT_PREFIX, &["x"]).to_string(),
            restored: None,
            reason: "canary failed: http-error-ratio".into(),
            by: "deploygraph canary analyze".into(),
            at: "2026-11-20T10:05:00Z".into(),
            target: "deployment/web".into(),
            namespace: Some("shop".into()),
            dry_run: false,
        }
    }

    #[test]
    fn the_uid_is_derived_from_deployment_time_and_target() {
        let a = input().validate().expect("valid");
        assert_eq!(input().validate().expect("valid").uid, a.uid);
        let mut other = input();
        other.target = "rollout/web".into();
        assert_ne!(other.validate().expect("valid").uid, a.uid);
        let mut reason = input();
        reason.reason = "another reason".into();
        assert_eq!(reason.validate().expect("valid").uid, a.uid);
        assert!(a.uid.as_str().starts_with("rollback-"));
    }

    #[test]
    fn invalid_fields_are_named() {
        type Edit = fn(&mut RollbackInput);
        let cases: Vec<(Edit, &str)> = vec![
            (|i| i.deployment = "chaos-run-00".into(), "deployment"),
            (|i| i.restored = Some("nope".into()), "restored"),
            (|i| i.restored = Some(i.deployment.clone()), "restored"),
            (|i| i.reason = String::new(), "reason"),
            (|i| i.reason = "x".repeat(5000), "reason"),
            (|i| i.by = String::new(), "by"),
            (|i| i.at = "yesterday".into(), "at"),
            (|i| i.target = "pod/web".into(), "target"),
            (|i| i.target = "deployment/Web".into(), "target"),
            (|i| i.target = "deployment/web:2".into(), "target"),
            (|i| i.target = "helm/web:0".into(), "target"),
            (|i| i.target = "helm/".into(), "target"),
            (|i| i.namespace = Some("a.b".into()), "namespace"),
            (|i| i.namespace = Some("x".repeat(64)), "namespace"),
        ];
        for (change, field) in cases {
            let mut i = input();
            change(&mut i);
            let e = i.validate().expect_err(field);
            assert_eq!(e.field, field, "{e}");
        }
        for target in ["helm/shop:12", "rollout/a", "deployment/web.v2"] {
            let mut i = input();
            i.target = target.into();
            assert!(i.validate().is_ok(), "{target}");
        }
    }

    #[test]
    fn deployments_recorded_by_the_watchers_can_be_undone_and_restored() {
        use crate::uid::{HELM_RELEASE_PREFIX, K8S_ROLLOUT_PREFIX};
        let mut i = input();
        i.deployment = Uid::derive(K8S_ROLLOUT_PREFIX, &["x"]).to_string();
        i.restored = Some(Uid::derive(HELM_RELEASE_PREFIX, &["y"]).to_string());
        let valid = i.clone().validate().expect("valid");
        assert_eq!(valid.deployment.as_str(), i.deployment);
        assert_eq!(valid.restored.map(|r| r.to_string()), i.restored);
    }

    #[test]
    fn the_schema_spells_the_patterns_the_check_uses() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_string(&RollbackInput::schema()).expect("schema");
        let escaped = |p: &str| serde_json::to_string(p).expect("json");
        for p in [TARGET_PATTERN, NAMESPACE_PATTERN] {
            let quoted = escaped(p);
            assert!(schema.contains(&quoted), "{p} not in {schema}");
        }
    }
}
