//! Deployments and what hangs off them: commit, images, config changes, validation results.
//!
//! [`DeploymentInput`] is the wire format of `POST /v1/deployments`; [`DeploymentInput::validate`]
//! turns it into a [`Deployment`] or an error naming the offending field. [`reconcile`] decides,
//! purely, what recording a deployment means given what is already stored.

use crate::error::{Error, Result};
use crate::newtypes::{
    Cluster, CommitSha, Environment, ImageDigest, ServiceName, format_time, is_dns1123_label,
};
use crate::redact::redact_value;
use crate::schema::parse_input_time;
use crate::uid::{Uid, sha256_hex};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Lifecycle of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    /// Rolling out.
    InProgress,
    /// Rolled out and healthy.
    Succeeded,
    /// The rollout failed.
    Failed,
    /// Replaced by a rollback to an earlier release.
    RolledBack,
    /// The service was removed from the environment (a CDEvents `service.removed`): a change
    /// like a rollout, with nothing running afterwards.
    Removed,
}

impl DeploymentStatus {
    /// All statuses, in lifecycle order.
    pub const ALL: [Self; 5] = [
        Self::InProgress,
        Self::Succeeded,
        Self::Failed,
        Self::RolledBack,
        Self::Removed,
    ];

    /// The wire name (`in_progress`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
            Self::Removed => "removed",
        }
    }

    /// Parses a wire name.
    ///
    /// # Errors
    /// When `value` is not one of the five statuses.
    pub fn parse(value: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == value)
            .ok_or_else(|| {
                Error::new(
                    "",
                    format!(
                        "{value:?} is not one of in_progress, succeeded, failed, rolled_back, removed"
                    ),
                )
            })
    }

    /// Whether a later event may move a deployment from `self` to `next`. Statuses only move
    /// forward: a stale `in_progress` arriving after `succeeded` does not undo it. A removal
    /// is an event of its own and neither follows nor precedes another status.
    pub fn can_advance_to(self, next: Self) -> bool {
        use DeploymentStatus::*;
        matches!(
            (self, next),
            (InProgress, Succeeded | Failed | RolledBack)
                | (Succeeded, Failed | RolledBack)
                | (Failed, RolledBack)
        )
    }
}

/// Where a deployment event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `POST /v1/deployments` or `deploygraph record deployment`.
    Api,
    /// A CDEvent.
    Cdevents,
    /// The Kubernetes workload watcher.
    K8s,
    /// The Helm release watcher.
    Helm,
}

impl Source {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Cdevents => "cdevents",
            Self::K8s => "k8s",
            Self::Helm => "helm",
        }
    }
}

/// Where an event that was not written for deploygraph came from, and the names it used
/// before they were normalized (a CDEvent's `context.source`, `context.type`, `subject.id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The producer (`context.source`).
    pub source: String,
    /// The event type as sent (`dev.cdevents.service.deployed.0.3.0`).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The subject as sent (`subject.id`).
    pub subject: String,
    /// The service name as the producer spelled it (`myApp`), before it became a DNS label.
    pub source_name: String,
}

impl Origin {
    /// The facts that identify the event: the type without its version is kept, so that a
    /// producer upgrading its CDEvents SDK does not turn a retry into a conflict.
    fn fixed(&self) -> (&str, &str, &str, &str) {
        let kind = self
            .event_type
            .rsplitn(4, '.')
            .nth(3)
            .unwrap_or(&self.event_type);
        (&self.source, kind, &self.subject, &self.source_name)
    }
}

/// The commit a deployment was built from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    /// The SHA, lower-case.
    pub sha: CommitSha,
    /// Repository (`github.com/acme/payments`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Commit message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Commit time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed_at: Option<DateTime<Utc>>,
}

impl Commit {
    /// `Uid::derive("commit", [repo, sha])`.
    pub fn uid(&self) -> Uid {
        Uid::derive(
            "commit",
            &[self.repo.as_deref().unwrap_or(""), self.sha.as_str()],
        )
    }
}

/// A container image, identified by digest when it is known (the API requires it; a
/// Kubernetes workload may name a tag the kubelet has not resolved yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// Repository (`ghcr.io/acme/payments`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Tag (`v2.3.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Content digest, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<ImageDigest>,
}

impl Image {
    /// `Uid::derive("image", [digest])`: one node per content digest; without a digest, one
    /// per reference (`Uid::derive("image-ref", [repository, tag])`).
    pub fn uid(&self) -> Uid {
        match &self.digest {
            Some(digest) => Uid::derive("image", &[digest.as_str()]),
            None => Uid::derive(
                "image-ref",
                &[
                    self.repository.as_deref().unwrap_or(""),
                    self.tag.as_deref().unwrap_or(""),
                ],
            ),
        }
    }

    /// `repository:tag@digest`, with the parts that are known.
    pub fn reference(&self) -> String {
        let mut out = self.repository.clone().unwrap_or_default();
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest.as_str());
        }
        out
    }
}

/// Kind of a configuration change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A Helm value or configuration key.
    Value,
    /// A rendered manifest field.
    Manifest,
    /// A container image.
    Image,
    /// A replica count.
    Replicas,
    /// An environment variable.
    Env,
    /// Resource requests or limits.
    Resources,
    /// A resource or key that was added.
    Added,
    /// A resource or key that was removed.
    Removed,
}

impl ChangeKind {
    /// All kinds.
    pub const ALL: [Self; 8] = [
        Self::Value,
        Self::Manifest,
        Self::Image,
        Self::Replicas,
        Self::Env,
        Self::Resources,
        Self::Added,
        Self::Removed,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Value => "value",
            Self::Manifest => "manifest",
            Self::Image => "image",
            Self::Replicas => "replicas",
            Self::Env => "env",
            Self::Resources => "resources",
            Self::Added => "added",
            Self::Removed => "removed",
        }
    }

    /// Parses a wire name.
    ///
    /// # Errors
    /// When `value` is not a known kind.
    pub fn parse(value: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == value).ok_or_else(|| {
            Error::new(
                "",
                format!(
                    "{value:?} is not one of value, manifest, image, replicas, env, resources, added, removed"
                ),
            )
        })
    }
}

/// One changed key between a deployment and the one before it. Secret-looking values are
/// redacted on construction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigChange {
    /// Values key path or `Kind/name:field`.
    pub path: String,
    /// What changed.
    pub kind: ChangeKind,
    /// The value before, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The value after, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

impl ConfigChange {
    /// A change with secret-looking values redacted.
    pub fn new(
        path: String,
        kind: ChangeKind,
        before: Option<String>,
        after: Option<String>,
    ) -> Self {
        let before = redact_value(&path, before);
        let after = redact_value(&path, after);
        Self {
            path,
            kind,
            before,
            after,
        }
    }

    /// `Uid::derive("change", [deployment uid, kind, path])`.
    pub fn uid(&self, deployment: &Uid) -> Uid {
        Uid::derive(
            "change",
            &[deployment.as_str(), self.kind.as_str(), &self.path],
        )
    }
}

/// Test, coverage, SAST and chaos results that validated a deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationResult {
    /// Line coverage in percent, `0..=100`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 100)]
    pub coverage_pct: Option<f64>,
    /// Number of static-analysis findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 4294967295_u64)]
    pub sast_findings: Option<u32>,
    /// Tests that passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 4294967295_u64)]
    pub tests_passed: Option<u32>,
    /// Tests that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 4294967295_u64)]
    pub tests_failed: Option<u32>,
    /// Share of chaos experiments that passed, `0.0..=1.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1)]
    pub chaos_pass_rate: Option<f64>,
}

impl ValidationResult {
    /// `Uid::derive("validation", [deployment uid])`: one result per deployment.
    pub fn uid(deployment: &Uid) -> Uid {
        Uid::derive("validation", &[deployment.as_str()])
    }

    fn validate(&self) -> Result<()> {
        if let Some(c) = self.coverage_pct
            && !(0.0..=100.0).contains(&c)
        {
            return Err(Error::new("coverage_pct", "must be between 0 and 100"));
        }
        if let Some(r) = self.chaos_pass_rate
            && !(0.0..=1.0).contains(&r)
        {
            return Err(Error::new("chaos_pass_rate", "must be between 0 and 1"));
        }
        Ok(())
    }
}

/// The Kubernetes workload a rollout changed, and its pod template after the rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// `Deployment`, `StatefulSet` or `DaemonSet`.
    pub kind: String,
    /// The workload's name.
    pub name: String,
    /// SHA-256 of the normalized pod template: equal templates, equal hashes.
    pub template_hash: String,
    /// Desired replicas at the rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// The normalized pod template (lists of named things as maps by name), so the next
    /// rollout can be diffed against it, also after a restart.
    #[serde(default)]
    pub template: serde_json::Value,
}

/// The Helm release revision a deployment rolled out (`RELEASED_AS`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelmRevision {
    /// Release name.
    pub release: String,
    /// Release namespace.
    pub namespace: String,
    /// Revision number.
    pub revision: u32,
    /// Chart name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
    /// Chart version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart_version: Option<String>,
    /// The chart's app version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// Helm's status of the revision (`deployed`, `failed`, `superseded`, `pending-upgrade` …).
    pub status: String,
}

impl HelmRevision {
    /// `Uid::derive("helm-revision", [namespace, release, revision])` in the default cluster,
    /// with the cluster as a fourth part in any other.
    pub fn uid(&self, cluster: &Cluster) -> Uid {
        let revision = self.revision.to_string();
        let mut parts = vec![self.namespace.as_str(), self.release.as_str(), &revision];
        parts.extend(cluster.uid_part());
        Uid::derive("helm-revision", &parts)
    }
}

/// A recorded deployment: one rollout of a service into an environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// Deterministic identity: from the client's `id` when given, else from the event's facts.
    pub uid: Uid,
    /// The client's idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The service rolled out.
    pub service: ServiceName,
    /// Kubernetes namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Environment (`production`).
    pub environment: Environment,
    /// The cluster it rolled out in ([`Cluster::DEFAULT`] when its source names none).
    #[serde(default)]
    pub cluster: Cluster,
    /// Release version (`v2.3.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The commit built, when known (the API requires it; a Kubernetes rollout may not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<Commit>,
    /// The images run.
    pub images: Vec<Image>,
    /// Lifecycle status.
    pub status: DeploymentStatus,
    /// When the rollout started (the node's `timestamp`).
    pub started_at: DateTime<Utc>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Who or what rolled it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Where the event came from.
    pub source: Source,
    /// What changed against the previous deployment.
    #[serde(default)]
    pub changes: Vec<ConfigChange>,
    /// Validation results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationResult>,
    /// The Kubernetes workload, for rollouts seen in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<Workload>,
    /// The Helm release revision, for Helm releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmRevision>,
    /// The producer's own names, for events from other tools (CDEvents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

impl Deployment {
    /// The uid of the Service node this deployment rolls out to.
    pub fn service_uid(&self) -> Uid {
        service_uid(
            &self.service,
            self.namespace.as_deref(),
            &self.environment,
            &self.cluster,
        )
    }

    /// The Service node this deployment rolls out to.
    pub fn service_ref(&self) -> crate::ServiceRef {
        crate::ServiceRef {
            name: self.service.clone(),
            namespace: self.namespace.clone(),
            environment: self.environment.clone(),
            cluster: self.cluster.clone(),
        }
    }

    /// A fingerprint of the facts that may not change once recorded under a uid. Status,
    /// `finished_at` and validation results are excluded: later events may add them.
    pub fn content_fingerprint(&self) -> String {
        #[derive(Serialize)]
        struct Fixed<'a> {
            service: &'a ServiceName,
            namespace: &'a Option<String>,
            environment: &'a Environment,
            // Absent in the default cluster: fingerprints recorded before clusters stay valid.
            #[serde(skip_serializing_if = "Cluster::is_default")]
            cluster: &'a Cluster,
            version: &'a Option<String>,
            commit: &'a Option<Commit>,
            images: Vec<Image>,
            started_at: String,
            actor: &'a Option<String>,
            changes: &'a [ConfigChange],
            #[serde(skip_serializing_if = "Option::is_none")]
            workload: &'a Option<Workload>,
            #[serde(skip_serializing_if = "Option::is_none")]
            helm: Option<(&'a str, &'a str, u32)>,
            #[serde(skip_serializing_if = "Option::is_none")]
            origin: Option<(&'a str, &'a str, &'a str, &'a str)>,
        }
        // A rollout seen in the cluster learns its image digests as the kubelet resolves
        // them, so they are not fixed facts there; an event from CI names them up front.
        let observed = matches!(self.source, Source::K8s | Source::Helm);
        let images = self
            .images
            .iter()
            .map(|i| Image {
                digest: if observed { None } else { i.digest.clone() },
                ..i.clone()
            })
            .collect();
        let fixed = Fixed {
            service: &self.service,
            namespace: &self.namespace,
            environment: &self.environment,
            cluster: &self.cluster,
            version: &self.version,
            commit: &self.commit,
            images,
            started_at: format_time(&self.started_at),
            actor: &self.actor,
            changes: &self.changes,
            workload: &self.workload,
            // The revision's identity; its status moves with the release.
            helm: self
                .helm
                .as_ref()
                .map(|h| (h.namespace.as_str(), h.release.as_str(), h.revision)),
            origin: self.origin.as_ref().map(Origin::fixed),
        };
        // Serializing plain structs of strings cannot fail.
        sha256_hex(serde_json::to_string(&fixed).unwrap_or_default().as_bytes())
    }

    /// The commit SHA, when known.
    pub fn commit_sha(&self) -> Option<&str> {
        self.commit.as_ref().map(|c| c.sha.as_str())
    }

    /// The first 12 characters of the commit SHA, or `-` when unknown.
    pub fn short_commit(&self) -> &str {
        self.commit_sha()
            .map_or("-", |sha| &sha[..sha.len().min(12)])
    }

    /// Ordering key of the FOLLOWS chain and of listings: start time, then uid.
    pub fn order_key(&self) -> (i64, &str) {
        (self.started_at.timestamp_micros(), self.uid.as_str())
    }
}

/// `Uid::derive("service", [name, namespace, environment])` in the default cluster (the uid
/// every Service had before clusters were told apart), with the cluster as a fourth part in any
/// other.
pub fn service_uid(
    name: &ServiceName,
    namespace: Option<&str>,
    environment: &Environment,
    cluster: &Cluster,
) -> Uid {
    let mut parts = vec![name.as_str(), namespace.unwrap_or(""), environment.as_str()];
    parts.extend(cluster.uid_part());
    Uid::derive("service", &parts)
}

/// What recording a deployment means, given what is stored under its uid.
#[derive(Debug, Clone, PartialEq)]
pub enum Reconcile {
    /// Nothing stored: create it.
    Create(Deployment),
    /// The same facts are stored and nothing advances: a no-op.
    Unchanged(Deployment),
    /// The same facts, with a status that advances or new finish time or validation results.
    Update(Deployment),
    /// Other facts are stored under this uid (a reused idempotency key).
    Conflict {
        /// What is stored.
        stored: Deployment,
        /// Why the incoming event conflicts.
        reason: String,
    },
}

/// Decides what recording `incoming` means when `stored` is what the store holds under its uid.
pub fn reconcile(stored: Option<&Deployment>, incoming: Deployment) -> Reconcile {
    let Some(stored) = stored else {
        return Reconcile::Create(incoming);
    };
    if stored.content_fingerprint() != incoming.content_fingerprint() {
        let reason = match &incoming.id {
            Some(id) => format!(
                "id {id:?} was already used for a different deployment ({})",
                stored.uid
            ),
            None => format!(
                "deployment {} is already recorded with different content",
                stored.uid
            ),
        };
        return Reconcile::Conflict {
            stored: stored.clone(),
            reason,
        };
    }
    let mut merged = stored.clone();
    if stored.status.can_advance_to(incoming.status) {
        merged.status = incoming.status;
    }
    if incoming.finished_at.is_some() && merged.status != DeploymentStatus::InProgress {
        merged.finished_at = incoming.finished_at.or(merged.finished_at);
    }
    if incoming.validation.is_some() {
        merged.validation = incoming.validation;
    }
    if let (Some(stored_helm), Some(incoming_helm)) = (merged.helm.as_mut(), incoming.helm)
        && stored_helm.status != incoming_helm.status
    {
        stored_helm.status = incoming_helm.status;
    }
    // Digests learned since (same images, by the fingerprint).
    for (image, learned) in merged.images.iter_mut().zip(&incoming.images) {
        if image.digest.is_none() && learned.digest.is_some() {
            image.digest.clone_from(&learned.digest);
        }
    }
    if &merged == stored {
        Reconcile::Unchanged(merged)
    } else {
        Reconcile::Update(merged)
    }
}

// ---------------------------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------------------------

/// The JSON body of `POST /v1/deployments`. Unknown fields are rejected.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentInput {
    /// Optional client idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 256)]
    pub id: Option<String>,
    /// Service name (required).
    #[serde(default)]
    #[schema(value_type = ServiceName, required = true)]
    pub service: Option<String>,
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::schema::Namespace>)]
    pub namespace: Option<String>,
    /// Environment (required).
    #[serde(default)]
    #[schema(value_type = Environment, required = true)]
    pub environment: Option<String>,
    /// The Kubernetes cluster (`default` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Cluster>)]
    pub cluster: Option<String>,
    /// Version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 256)]
    pub version: Option<String>,
    /// Commit (`sha` required).
    #[serde(default)]
    #[schema(value_type = CommitInput, required = true)]
    pub commit: Option<CommitInput>,
    /// Images (at least one, each with a digest).
    #[serde(default)]
    #[schema(value_type = Vec<ImageInput>, required = true, min_items = 1, max_items = 64)]
    pub images: Option<Vec<ImageInput>>,
    /// Status (required).
    #[serde(default)]
    #[schema(value_type = DeploymentStatus, required = true)]
    pub status: Option<String>,
    /// Start time, RFC 3339 (required).
    #[serde(default)]
    #[schema(value_type = crate::schema::InputTime, required = true)]
    pub started_at: Option<String>,
    /// Finish time, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::schema::InputTime>)]
    pub finished_at: Option<String>,
    /// Actor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 256)]
    pub actor: Option<String>,
    /// Changes against the previous deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 2000)]
    pub changes: Option<Vec<ChangeInput>>,
    /// Validation results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationResult>,
}

/// `commit` in [`DeploymentInput`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitInput {
    /// SHA (required).
    #[serde(default)]
    #[schema(value_type = CommitSha, required = true)]
    pub sha: Option<String>,
    /// Repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 256)]
    pub repo: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 256)]
    pub author: Option<String>,
    /// Message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 4096)]
    pub message: Option<String>,
    /// Commit time, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::schema::InputTime>)]
    pub committed_at: Option<String>,
}

/// An entry of `images` in [`DeploymentInput`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageInput {
    /// Repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 256)]
    pub repository: Option<String>,
    /// Tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 256)]
    pub tag: Option<String>,
    /// Digest (required).
    #[serde(default)]
    #[schema(value_type = ImageDigest, required = true)]
    pub digest: Option<String>,
}

/// An entry of `changes` in [`DeploymentInput`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeInput {
    /// Key path (required).
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 4096)]
    pub path: Option<String>,
    /// Kind (required).
    #[serde(default)]
    #[schema(value_type = ChangeKind, required = true)]
    pub kind: Option<String>,
    /// Value before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 65536)]
    pub before: Option<String>,
    /// Value after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 65536)]
    pub after: Option<String>,
}

/// Upper bounds on free-text fields, so one event cannot bloat the graph.
mod limits {
    pub const SHORT: usize = 256;
    pub const LONG: usize = 4096;
    pub const VALUE: usize = 64 * 1024;
    pub const IMAGES: usize = 64;
    pub const CHANGES: usize = 2000;
}

fn required<'a>(value: &'a Option<String>, field: &str) -> Result<&'a str> {
    match value.as_deref() {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(Error::new(field, "is required")),
    }
}

fn bounded(value: &Option<String>, field: &str, max: usize) -> Result<Option<String>> {
    match value {
        Some(v) if v.chars().count() > max => Err(Error::new(
            field,
            format!("is longer than {max} characters"),
        )),
        Some(v) if v.is_empty() => Ok(None),
        other => Ok(other.clone()),
    }
}

fn at(field: &str) -> impl Fn(Error) -> Error + '_ {
    move |e| e.within(field)
}

impl DeploymentInput {
    /// Validates the input into a [`Deployment`] from `source`.
    ///
    /// The API requires a commit and at least one image with a digest. Events from other
    /// tools ([`Source::Cdevents`]) may lack both: CDEvents carry no commit, a removal names
    /// no artifact, and an artifact need not be an image pinned by digest.
    ///
    /// # Errors
    /// The first invalid field, by its path in the input.
    pub fn validate(&self, source: Source) -> Result<Deployment> {
        let relaxed = source == Source::Cdevents;
        let id = bounded(&self.id, "id", limits::SHORT)?;
        let service =
            ServiceName::parse(required(&self.service, "service")?).map_err(at("service"))?;
        let namespace = bounded(&self.namespace, "namespace", limits::SHORT)?;
        if let Some(ns) = &namespace
            && !is_dns1123_label(ns)
        {
            return Err(Error::new(
                "namespace",
                format!("{ns:?} is not a DNS-1123 label"),
            ));
        }
        let environment = Environment::parse(required(&self.environment, "environment")?)
            .map_err(at("environment"))?;
        let version = bounded(&self.version, "version", limits::SHORT)?;
        let commit = match &self.commit {
            Some(commit) => Some(commit.validate().map_err(at("commit"))?),
            None if relaxed => None,
            None => return Err(Error::new("commit.sha", "is required")),
        };
        let images = self.validate_images(relaxed)?;
        let status =
            DeploymentStatus::parse(required(&self.status, "status")?).map_err(at("status"))?;
        let started_at = parse_input_time("started_at", required(&self.started_at, "started_at")?)?;
        let finished_at = self
            .finished_at
            .as_deref()
            .map(|t| parse_input_time("finished_at", t))
            .transpose()?;
        if let Some(f) = finished_at
            && f < started_at
        {
            return Err(Error::new("finished_at", "is before started_at"));
        }
        let actor = bounded(&self.actor, "actor", limits::SHORT)?;
        let changes = self.validate_changes()?;
        if let Some(v) = &self.validation {
            v.validate().map_err(at("validation"))?;
        }
        let cluster = self
            .cluster
            .as_deref()
            .map(|c| Cluster::parse(c).map_err(at("cluster")))
            .transpose()?
            .unwrap_or_default();
        let service = crate::ServiceRef {
            name: service,
            namespace,
            environment,
            cluster,
        };
        let uid = deployment_uid(
            id.as_deref(),
            &service,
            commit.as_ref(),
            &images,
            &started_at,
        );
        Ok(Deployment {
            uid,
            id,
            service: service.name,
            namespace: service.namespace,
            environment: service.environment,
            cluster: service.cluster,
            version,
            commit,
            images,
            status,
            started_at,
            finished_at,
            actor,
            source,
            changes,
            validation: self.validation.clone(),
            workload: None,
            helm: None,
            origin: None,
        })
    }

    fn validate_images(&self, relaxed: bool) -> Result<Vec<Image>> {
        let inputs = self.images.as_deref().unwrap_or_default();
        if inputs.is_empty() && !relaxed {
            return Err(Error::new(
                "images",
                "at least one image with a digest is required",
            ));
        }
        if inputs.len() > limits::IMAGES {
            return Err(Error::new(
                "images",
                format!("more than {} images", limits::IMAGES),
            ));
        }
        inputs
            .iter()
            .enumerate()
            .map(|(i, image)| {
                image
                    .validate(relaxed)
                    .map_err(|e| e.within(&format!("images[{i}]")))
            })
            .collect()
    }

    fn validate_changes(&self) -> Result<Vec<ConfigChange>> {
        let inputs = self.changes.as_deref().unwrap_or_default();
        if inputs.len() > limits::CHANGES {
            return Err(Error::new(
                "changes",
                format!("more than {} changes", limits::CHANGES),
            ));
        }
        let mut seen = HashSet::new();
        let mut changes = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            let change = input
                .validate()
                .map_err(|e| e.within(&format!("changes[{i}]")))?;
            if !seen.insert((change.kind, change.path.clone())) {
                return Err(Error::new(
                    format!("changes[{i}].path"),
                    format!(
                        "{:?} of kind {} is listed twice",
                        change.path,
                        change.kind.as_str()
                    ),
                ));
            }
            changes.push(change);
        }
        Ok(changes)
    }
}

impl CommitInput {
    fn validate(&self) -> Result<Commit> {
        Ok(Commit {
            sha: CommitSha::parse(required(&self.sha, "sha")?).map_err(at("sha"))?,
            repo: bounded(&self.repo, "repo", limits::SHORT)?,
            author: bounded(&self.author, "author", limits::SHORT)?,
            message: bounded(&self.message, "message", limits::LONG)?,
            committed_at: self
                .committed_at
                .as_deref()
                .map(|t| parse_input_time("committed_at", t))
                .transpose()?,
        })
    }
}

impl ImageInput {
    fn validate(&self, relaxed: bool) -> Result<Image> {
        let digest = match &self.digest {
            None if relaxed => None,
            _ => Some(ImageDigest::parse(required(&self.digest, "digest")?).map_err(at("digest"))?),
        };
        let image = Image {
            repository: bounded(&self.repository, "repository", limits::SHORT)?,
            tag: bounded(&self.tag, "tag", limits::SHORT)?,
            digest,
        };
        if image.digest.is_none() && image.repository.is_none() {
            return Err(Error::new("repository", "is required without a digest"));
        }
        Ok(image)
    }
}

impl ChangeInput {
    fn validate(&self) -> Result<ConfigChange> {
        let path = required(&self.path, "path")?;
        if path.chars().count() > limits::LONG {
            return Err(Error::new(
                "path",
                format!("is longer than {} characters", limits::LONG),
            ));
        }
        let kind = ChangeKind::parse(required(&self.kind, "kind")?).map_err(at("kind"))?;
        let before = bounded(&self.before, "before", limits::VALUE)?;
        let after = bounded(&self.after, "after", limits::VALUE)?;
        Ok(ConfigChange::new(path.to_owned(), kind, before, after))
    }
}

/// The uid of a deployment: from the idempotency key when given, else from the service
/// (name, namespace, environment and, outside the default cluster, cluster), commit, images
/// and start time.
pub fn deployment_uid(
    id: Option<&str>,
    service: &crate::ServiceRef,
    commit: Option<&Commit>,
    images: &[Image],
    started_at: &DateTime<Utc>,
) -> Uid {
    match id {
        Some(id) => Uid::derive("deployment", &["id", id]),
        None => {
            // Digests as recorded since v1; an image without one counts by its reference.
            let mut digests: Vec<String> = images
                .iter()
                .map(|i| {
                    i.digest
                        .as_ref()
                        .map_or_else(|| i.reference(), |d| d.as_str().to_owned())
                })
                .collect();
            digests.sort_unstable();
            let digests = digests.join(",");
            let started_at = format_time(started_at);
            let mut parts = vec![
                "event",
                service.name.as_str(),
                service.namespace.as_deref().unwrap_or(""),
                service.environment.as_str(),
                commit.map_or("", |c| c.sha.as_str()),
                &digests,
                &started_at,
            ];
            parts.extend(service.cluster.uid_part());
            Uid::derive("deployment", &parts)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample_input() -> DeploymentInput {
        serde_json::from_value(serde_json::json!({
            "service": "payments", "namespace": "prod", "environment": "production", "version": "v2.3.0",
            "commit": {"sha": "9fceb02d0ae598e95dc970b74767f19372d61af8", "repo": "github.com/acme/payments",
                       "author": "dev@acme.io", "message": "raise pool", "committed_at": "2026-11-20T10:00:00Z"},
            "images": [{"repository": "ghcr.io/acme/payments", "tag": "v2.3.0",
                        "digest": format!("sha256:{}", "ab".repeat(32))}],
            "status": "in_progress", "started_at": "2026-11-20T10:05:00Z",
            "actor": "ci@acme.io",
            "changes": [{"path": "values.redis.pool.size", "kind": "value", "before": "50", "after": "10"}],
            "validation": {"coverage_pct": 81.5, "sast_findings": 0, "tests_passed": 412, "tests_failed": 0}
        }))
        .expect("sample parses")
    }

    fn deployment(input: &DeploymentInput) -> Deployment {
        input.validate(Source::Api).expect("valid")
    }

    #[test]
    fn a_valid_input_becomes_a_deployment_with_a_deterministic_uid() {
        let a = deployment(&sample_input());
        let b = deployment(&sample_input());
        assert_eq!(a.uid, b.uid);
        assert_eq!(a.service.as_str(), "payments");
        assert_eq!(a.changes.len(), 1);
    }

    #[test]
    fn the_idempotency_key_decides_the_uid() {
        let mut input = sample_input();
        input.id = Some("ci-run-42".into());
        let with_id = deployment(&input);
        input.version = Some("other".into());
        assert_eq!(deployment(&input).uid, with_id.uid);
        assert_ne!(deployment(&sample_input()).uid, with_id.uid);
    }

    #[test]
    fn events_from_other_tools_may_lack_commit_and_digest_the_api_may_not() {
        let mut input = sample_input();
        input.commit = None;
        input.images = Some(vec![ImageInput {
            repository: Some("ghcr.io/acme/payments".into()),
            tag: Some("v2".into()),
            digest: None,
        }]);
        let d = input.validate(Source::Cdevents).expect("relaxed");
        assert_eq!(d.commit, None);
        assert_eq!(d.images[0].digest, None);
        assert_eq!(
            input.validate(Source::Api).map_err(|e| e.field),
            Err("commit.sha".to_owned())
        );
        input.images = Some(vec![]);
        input.status = Some("removed".into());
        let removed = input
            .validate(Source::Cdevents)
            .expect("a removal has no image");
        assert_eq!(removed.status, DeploymentStatus::Removed);
        assert!(removed.images.is_empty());
        input.commit = sample_input().commit;
        assert_eq!(
            input.validate(Source::Api).map_err(|e| e.field),
            Err("images".to_owned())
        );
        input.images = Some(vec![ImageInput::default()]);
        assert_eq!(
            input.validate(Source::Cdevents).map_err(|e| e.field),
            Err("images[0].repository".to_owned())
        );
    }

    #[test]
    fn a_removal_is_an_event_of_its_own() {
        for status in DeploymentStatus::ALL {
            assert!(
                !status.can_advance_to(DeploymentStatus::Removed),
                "{status:?}"
            );
            assert!(
                !DeploymentStatus::Removed.can_advance_to(status),
                "{status:?}"
            );
        }
        assert_eq!(
            DeploymentStatus::parse("removed"),
            Ok(DeploymentStatus::Removed)
        );
    }

    #[test]
    fn errors_name_the_field() {
        type Mutation = Box<dyn Fn(&mut DeploymentInput)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|i| i.service = None), "service"),
            (Box::new(|i| i.service = Some("Payments".into())), "service"),
            (Box::new(|i| i.environment = None), "environment"),
            (Box::new(|i| i.commit = None), "commit.sha"),
            (
                Box::new(|i| i.commit.as_mut().expect("commit").sha = Some("xyz".into())),
                "commit.sha",
            ),
            (Box::new(|i| i.images = Some(vec![])), "images"),
            (
                Box::new(|i| {
                    i.images.as_mut().expect("images")[0].digest = Some("sha256:00".into())
                }),
                "images[0].digest",
            ),
            (Box::new(|i| i.status = Some("done".into())), "status"),
            (
                Box::new(|i| i.started_at = Some("yesterday".into())),
                "started_at",
            ),
            (
                Box::new(|i| i.finished_at = Some("2026-11-20T09:00:00Z".into())),
                "finished_at",
            ),
            (Box::new(|i| i.namespace = Some("Prod".into())), "namespace"),
            (
                Box::new(|i| i.changes.as_mut().expect("changes")[0].kind = Some("other".into())),
                "changes[0].kind",
            ),
            (
                Box::new(|i| i.validation.as_mut().expect("validation").coverage_pct = Some(101.0)),
                "validation.coverage_pct",
            ),
        ];
        for (mutate, field) in cases {
            let mut input = sample_input();
            mutate(&mut input);
            let err = input.validate(Source::Api).expect_err(field);
            assert_eq!(err.field, field, "{err}");
        }
    }

    #[test]
    fn secret_changes_are_redacted() {
        let mut input = sample_input();
        input.changes = Some(vec![ChangeInput {
            path: Some("env.DB_PASSWORD".into()),
            kind: Some("env".into()),
            before: Some("old".into()),
            after: Some("new".into()),
        }]);
        let d = deployment(&input);
        assert_eq!(d.changes[0].after.as_deref(), Some(crate::redact::REDACTED));
    }

    #[test]
    fn statuses_only_move_forward() {
        use DeploymentStatus::*;
        assert!(InProgress.can_advance_to(Succeeded));
        assert!(Succeeded.can_advance_to(RolledBack));
        assert!(!Succeeded.can_advance_to(InProgress));
        assert!(!RolledBack.can_advance_to(Failed));
        assert!(!Succeeded.can_advance_to(Succeeded));
    }

    #[test]
    fn an_observed_rollout_learns_its_digests_an_api_event_may_not_change_them() {
        let mut observed = Deployment::test().in_progress().build();
        observed.source = Source::K8s;
        observed.images[0].digest = None;
        let mut resolved = observed.clone();
        resolved.images[0].digest = Deployment::test().build().images[0].digest.clone();
        match reconcile(Some(&observed), resolved.clone()) {
            Reconcile::Update(merged) => assert_eq!(merged.images, resolved.images),
            other => panic!("{other:?}"),
        }
        // From CI the digest is a fixed fact: another one under the same uid conflicts.
        let api = Deployment::test().build();
        let mut other = api.clone();
        other.images[0].digest = Deployment::test().image_seed(9).build().images[0]
            .digest
            .clone();
        assert!(matches!(
            reconcile(Some(&api), other),
            Reconcile::Conflict { .. }
        ));
    }

    #[test]
    fn reconcile_creates_updates_ignores_and_conflicts() {
        let stored = deployment(&sample_input());
        assert!(matches!(
            reconcile(None, stored.clone()),
            Reconcile::Create(_)
        ));
        assert!(matches!(
            reconcile(Some(&stored), stored.clone()),
            Reconcile::Unchanged(_)
        ));

        let mut done = stored.clone();
        done.status = DeploymentStatus::Succeeded;
        done.finished_at = Some(stored.started_at + chrono::Duration::minutes(2));
        let Reconcile::Update(merged) = reconcile(Some(&stored), done.clone()) else {
            panic!("expected an update");
        };
        assert_eq!(merged.status, DeploymentStatus::Succeeded);
        assert_eq!(merged.finished_at, done.finished_at);

        // A stale in_progress after succeeded changes nothing.
        assert!(matches!(
            reconcile(Some(&merged), stored.clone()),
            Reconcile::Unchanged(_)
        ));

        let mut other = stored.clone();
        other.version = Some("v9".into());
        assert!(matches!(
            reconcile(Some(&stored), other),
            Reconcile::Conflict { .. }
        ));
    }
}
