//! Builder-style deployments and changes for tests and benchmarks:
//! `Deployment::test().service("payments").started_at_minute(5).failed().build()`.

use crate::deployment::{
    Commit, ConfigChange, Deployment, DeploymentStatus, Image, Source, deployment_uid,
};
use crate::newtypes::{CommitSha, Environment, ImageDigest, ServiceName};
use crate::{ChangeKind, ValidationResult};
use chrono::{DateTime, Duration, TimeZone, Utc};

/// Builds a valid [`Deployment`]; every setter keeps it valid.
#[derive(Debug, Clone)]
pub struct DeploymentBuilder {
    id: Option<String>,
    service: String,
    namespace: Option<String>,
    environment: String,
    cluster: String,
    version: Option<String>,
    commit: String,
    digest_seed: u64,
    status: DeploymentStatus,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    changes: Vec<ConfigChange>,
    validation: Option<ValidationResult>,
}

impl Deployment {
    /// A builder for a valid test deployment of `payments` to `production`.
    pub fn test() -> DeploymentBuilder {
        DeploymentBuilder {
            id: None,
            service: "payments".into(),
            namespace: Some("prod".into()),
            environment: "production".into(),
            cluster: crate::Cluster::DEFAULT.into(),
            version: Some("v1.0.0".into()),
            commit: "9fceb02d0ae598e95dc970b74767f19372d61af8".into(),
            digest_seed: 1,
            status: DeploymentStatus::Succeeded,
            started_at: Utc
                .with_ymd_and_hms(2026, 11, 20, 10, 0, 0)
                .single()
                .unwrap_or_default(),
            finished_at: None,
            changes: Vec::new(),
            validation: None,
        }
    }
}

impl DeploymentBuilder {
    /// Sets the service name (must be a DNS-1123 label).
    #[must_use]
    pub fn service(mut self, name: &str) -> Self {
        self.service = name.into();
        self
    }

    /// Sets the environment.
    #[must_use]
    pub fn environment(mut self, name: &str) -> Self {
        self.environment = name.into();
        self
    }

    /// Sets the cluster.
    #[must_use]
    pub fn cluster(mut self, name: &str) -> Self {
        self.cluster = name.into();
        self
    }

    /// Sets the idempotency key.
    #[must_use]
    pub fn id(mut self, id: &str) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the version.
    #[must_use]
    pub fn version(mut self, version: &str) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Sets the commit SHA (7–40 hex).
    #[must_use]
    pub fn commit(mut self, sha: &str) -> Self {
        self.commit = sha.into();
        self
    }

    /// Uses the image digest derived from `seed`.
    #[must_use]
    pub fn image_seed(mut self, seed: u64) -> Self {
        self.digest_seed = seed;
        self
    }

    /// Sets the start time.
    #[must_use]
    pub fn started_at(mut self, t: DateTime<Utc>) -> Self {
        self.started_at = t;
        self
    }

    /// Starts `minutes` after 2026-11-20T10:00:00Z.
    #[must_use]
    pub fn started_at_minute(self, minutes: i64) -> Self {
        let base = Utc
            .with_ymd_and_hms(2026, 11, 20, 10, 0, 0)
            .single()
            .unwrap_or_default();
        self.started_at(base + Duration::minutes(minutes))
    }

    /// Sets the status.
    #[must_use]
    pub fn status(mut self, status: DeploymentStatus) -> Self {
        self.status = status;
        self
    }

    /// Marks it failed.
    #[must_use]
    pub fn failed(self) -> Self {
        self.status(DeploymentStatus::Failed)
    }

    /// Marks it in progress.
    #[must_use]
    pub fn in_progress(self) -> Self {
        self.status(DeploymentStatus::InProgress)
    }

    /// Sets the finish time.
    #[must_use]
    pub fn finished_at(mut self, t: DateTime<Utc>) -> Self {
        self.finished_at = Some(t);
        self
    }

    /// Adds a value change.
    #[must_use]
    pub fn change(mut self, path: &str, before: &str, after: &str) -> Self {
        self.changes.push(ConfigChange::new(
            path.into(),
            ChangeKind::Value,
            Some(before.into()),
            Some(after.into()),
        ));
        self
    }

    /// Sets validation results.
    #[must_use]
    pub fn validation(mut self, v: ValidationResult) -> Self {
        self.validation = Some(v);
        self
    }

    /// The deployment.
    ///
    /// # Panics
    /// When a setter was given an invalid service, environment or commit (a bug in the test).
    #[allow(clippy::expect_used)]
    pub fn build(self) -> Deployment {
        let service = ServiceName::parse(&self.service).expect("fixture service name");
        let environment = Environment::parse(&self.environment).expect("fixture environment");
        let cluster = crate::Cluster::parse(&self.cluster).expect("fixture cluster");
        let commit = Commit {
            sha: CommitSha::parse(&self.commit).expect("fixture commit"),
            repo: Some("github.com/acme/payments".into()),
            author: Some("dev@acme.io".into()),
            message: Some("change".into()),
            committed_at: Some(self.started_at - Duration::minutes(10)),
        };
        let digest = format!("sha256:{:064x}", self.digest_seed);
        let images = vec![Image {
            repository: Some(format!("ghcr.io/acme/{}", self.service)),
            tag: self.version.clone(),
            digest: Some(ImageDigest::parse(&digest).expect("fixture digest")),
        }];
        let service = crate::ServiceRef {
            name: service,
            namespace: self.namespace,
            environment,
            cluster,
        };
        let uid = deployment_uid(
            self.id.as_deref(),
            &service,
            Some(&commit),
            &images,
            &self.started_at,
        );
        Deployment {
            uid,
            id: self.id,
            service: service.name,
            namespace: service.namespace,
            environment: service.environment,
            cluster: service.cluster,
            version: self.version,
            commit: Some(commit),
            images,
            status: self.status,
            started_at: self.started_at,
            finished_at: self.finished_at,
            actor: Some("ci@acme.io".into()),
            source: Source::Api,
            changes: self.changes,
            validation: self.validation,
            workload: None,
            helm: None,
            origin: None,
        }
    }
}

/// 2026-11-20T10:00:00Z plus `minutes`: the fixtures' clock.
pub fn minute(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0)
        .single()
        .unwrap_or_default()
        + Duration::minutes(minutes)
}

impl crate::Alert {
    /// A firing `HighErrors` alert on `service` (namespace `prod`, environment `production`)
    /// that started `starts_minute` after the fixtures' epoch.
    ///
    /// # Panics
    /// When `service` is not a valid service name (a bug in the test).
    #[allow(clippy::expect_used)]
    pub fn test(fingerprint: &str, service: &str, starts_minute: i64) -> Self {
        let starts_at = minute(starts_minute);
        let labels = [
            ("alertname", "HighErrors"),
            ("service", service),
            ("namespace", "prod"),
            ("environment", "production"),
            ("severity", "critical"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Self {
            uid: Self::uid_for(fingerprint, &starts_at),
            fingerprint: fingerprint.to_owned(),
            name: "HighErrors".into(),
            alert_type: "HighErrors".into(),
            severity: Some("critical".into()),
            status: crate::AlertStatus::Firing,
            starts_at,
            ends_at: None,
            labels,
            summary: Some("error rate above 5%".into()),
            generator_url: None,
            service: Some(ServiceName::parse(service).expect("fixture service name")),
            namespace: Some("prod".into()),
            environment: Some(Environment::parse("production").expect("fixture environment")),
            cluster: None,
            onset: None,
            service_metrics: None,
        }
    }

    /// The same alert, resolved `ends_minute` after the fixtures' epoch.
    #[must_use]
    pub fn resolved_at(mut self, ends_minute: i64) -> Self {
        self.status = crate::AlertStatus::Resolved;
        self.ends_at = Some(minute(ends_minute));
        self
    }
}

impl crate::ServiceRef {
    /// `service` in namespace `prod`, environment `production` (the deployment fixture's).
    ///
    /// # Panics
    /// When `service` is not a valid service name (a bug in the test).
    #[allow(clippy::expect_used)]
    pub fn test(service: &str) -> Self {
        Self {
            name: ServiceName::parse(service).expect("fixture service name"),
            namespace: Some("prod".into()),
            environment: Environment::parse("production").expect("fixture environment"),
            cluster: crate::Cluster::default(),
        }
    }
}

impl crate::ChaosRun {
    /// A pod-delete run against `service` from `start_minute` to `end_minute`.
    pub fn test(run: &str, service: &str, start_minute: i64, end_minute: Option<i64>) -> Self {
        Self {
            uid: crate::Uid::derive("chaos-run", &[run]),
            scenario: "pod-delete".into(),
            experiment: "pod-delete".into(),
            engine: Some(format!("{service}-pod-delete")),
            target: crate::ServiceRef::test(service),
            verdict: if end_minute.is_some() {
                crate::ChaosVerdict::Pass
            } else {
                crate::ChaosVerdict::Awaited
            },
            phase: if end_minute.is_some() {
                "Completed".into()
            } else {
                "Running".into()
            },
            probe_success_pct: end_minute.map(|_| 100.0),
            probes: Vec::new(),
            started_at: minute(start_minute),
            ended_at: end_minute.map(minute),
            recovery_seconds: None,
            error_reason: None,
            against: None,
        }
    }
}

/// Builds a valid [`crate::Change`]: `Change::test().service("payments").at_minute(5).build()`.
#[derive(Debug, Clone)]
pub struct ChangeBuilder {
    id: Option<String>,
    kind: crate::ChangeType,
    services: Vec<String>,
    actor: String,
    at: DateTime<Utc>,
    diff: Vec<(String, Option<String>, Option<String>)>,
    link: Option<String>,
    summary: Option<String>,
}

impl crate::Change {
    /// A builder for a valid test change: a feature flag of `payments` (namespace `prod`,
    /// environment `production`, as the deployment fixture's) flipped at the fixtures' epoch.
    pub fn test() -> ChangeBuilder {
        ChangeBuilder {
            id: None,
            kind: crate::ChangeType::FeatureFlag,
            services: vec!["payments".into()],
            actor: "alice@acme.io".into(),
            at: minute(0),
            diff: vec![(
                "checkout.new_flow".into(),
                Some("false".into()),
                Some("true".into()),
            )],
            link: None,
            summary: None,
        }
    }
}

impl ChangeBuilder {
    /// Changes this one service instead.
    #[must_use]
    pub fn service(mut self, name: &str) -> Self {
        self.services = vec![name.into()];
        self
    }

    /// Changes this service too.
    #[must_use]
    pub fn also_service(mut self, name: &str) -> Self {
        self.services.push(name.into());
        self
    }

    /// Sets the kind.
    #[must_use]
    pub fn kind(mut self, kind: crate::ChangeType) -> Self {
        self.kind = kind;
        self
    }

    /// Sets the idempotency key.
    #[must_use]
    pub fn id(mut self, id: &str) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the actor.
    #[must_use]
    pub fn actor(mut self, actor: &str) -> Self {
        self.actor = actor.into();
        self
    }

    /// Takes effect at `t`.
    #[must_use]
    pub fn at(mut self, t: DateTime<Utc>) -> Self {
        self.at = t;
        self
    }

    /// Takes effect `minutes` after 2026-11-20T10:00:00Z.
    #[must_use]
    pub fn at_minute(self, minutes: i64) -> Self {
        self.at(minute(minutes))
    }

    /// Replaces the diff with this one key.
    #[must_use]
    pub fn key(mut self, key: &str, before: &str, after: &str) -> Self {
        self.diff = vec![(key.into(), Some(before.into()), Some(after.into()))];
        self
    }

    /// Sets the summary.
    #[must_use]
    pub fn summary(mut self, summary: &str) -> Self {
        self.summary = Some(summary.into());
        self
    }

    /// Sets the link.
    #[must_use]
    pub fn link(mut self, link: &str) -> Self {
        self.link = Some(link.into());
        self
    }

    /// The change.
    ///
    /// # Panics
    /// When a setter was given an invalid service name (a bug in the test).
    #[allow(clippy::expect_used)]
    pub fn build(self) -> crate::Change {
        let environment = Environment::parse("production").expect("fixture environment");
        let mut services: Vec<crate::ServiceRef> = self
            .services
            .iter()
            .map(|name| crate::ServiceRef {
                name: ServiceName::parse(name).expect("fixture service name"),
                namespace: Some("prod".into()),
                environment: environment.clone(),
                cluster: crate::Cluster::default(),
            })
            .collect();
        services.sort_by_key(crate::ServiceRef::uid);
        services.dedup();
        let secret = self.kind == crate::ChangeType::Secret;
        let mut diff: Vec<crate::KeyChange> = self
            .diff
            .into_iter()
            .map(|(key, before, after)| crate::KeyChange::new(key, before, after, secret))
            .collect();
        diff.sort_by(|a, b| a.key.cmp(&b.key));
        let uid = crate::change::change_uid(
            self.id.as_deref(),
            self.kind,
            &services,
            &self.actor,
            &self.at,
            &diff,
        );
        crate::Change {
            uid,
            id: self.id,
            kind: self.kind,
            services,
            actor: self.actor,
            at: self.at,
            diff,
            link: self.link,
            summary: self.summary,
            source: Source::Api,
        }
    }
}

impl crate::canary::NewCanaryAnalysis {
    /// A test analysis of `deployment` that started at `minute(start)` and was decided five
    /// minutes later after three rounds: `http-error-ratio` (critical) with `verdict`, and
    /// `http-latency-p99` passing.
    pub fn test(deployment: &crate::Uid, start: i64, verdict: crate::CanaryVerdict) -> Self {
        use crate::canary::{CanaryAnalysis, CanaryBaselineKind, CanaryMetricKind, MetricVerdict};
        let started_at = minute(start);
        Self {
            uid: CanaryAnalysis::uid_for(deployment, &started_at),
            deployment: deployment.clone(),
            template: "http".into(),
            verdict,
            baseline_kind: CanaryBaselineKind::SideBySide,
            started_at,
            decided_at: minute(start + 5),
            analyses: 3,
            rule: format!("http-error-ratio: {}", verdict.as_str()),
            metrics: vec![
                MetricVerdict {
                    name: "http-error-ratio".into(),
                    kind: CanaryMetricKind::Ratio,
                    outcome: verdict,
                    critical: true,
                    rule: format!(
                        "the canary's error ratio 0.05 against the baseline's 0.001: {}",
                        verdict.as_str()
                    ),
                    evidence: serde_json::json!({
                        "metric": "http-error-ratio",
                        "outcome": verdict.as_str(),
                        "canary": {"samples": 2000, "events": 100, "ratio": 0.05},
                        "baseline": {"samples": 2000, "events": 2, "ratio": 0.001},
                        "p_value": 1.5e-12,
                    }),
                },
                MetricVerdict {
                    name: "http-latency-p99".into(),
                    kind: CanaryMetricKind::Distribution,
                    outcome: crate::CanaryVerdict::Pass,
                    critical: false,
                    rule: "no significant shift of the p99 latency".into(),
                    evidence: serde_json::json!({"metric": "http-latency-p99", "shift": 0.001}),
                },
            ],
            final_round: true,
        }
    }
}

impl crate::rollback::NewRollback {
    /// A test rollback of `deployment` at `minute(at)` by `deploygraph canary analyze`,
    /// through `deployment/web` in `shop`.
    pub fn test(deployment: &crate::Uid, at: i64) -> Self {
        let at = minute(at);
        let target = "deployment/web".to_owned();
        let namespace = Some("shop".to_owned());
        Self {
            uid: crate::Rollback::uid_for(deployment, &at, &target, namespace.as_deref()),
            deployment: deployment.clone(),
            restored: None,
            reason: "canary failed: http-error-ratio".into(),
            by: "deploygraph canary analyze".into(),
            at,
            target,
            namespace,
            dry_run: false,
        }
    }
}
