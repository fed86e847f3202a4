//! What a workload object says about its rollout, and what to record for it: a new
//! DeploymentEvent when the pod template changed, an update when its status advanced or a
//! digest was resolved, nothing otherwise. Pure: the watcher feeds objects in and writes out
//! what this decides.

use crate::rollout::{actor_of, commit_of, normalized, status_from};
use chrono::{DateTime, Utc};
use deploygraph_helm::diff::diff_trees;
use deploygraph_model::{
    Cluster, Commit, CommitSha, ConfigChange, Deployment, DeploymentStatus, Environment, Image,
    ImageDigest, ServiceName, Source, Uid, Workload,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment as K8sDeployment, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// The Deployment controller's revision annotation (a rollback gets a new revision).
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// Labels that name a workload's service, in order; else the workload's name.
pub const SERVICE_LABELS: [&str; 2] = ["app.kubernetes.io/name", "app"];

/// One container's image in a pod template.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerImage {
    /// Container name.
    pub container: String,
    /// The image reference as written.
    pub reference: String,
    /// Parsed; the digest when the reference pins one or a Pod reported it.
    pub image: Image,
}

/// A workload object as a rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// `Deployment`, `StatefulSet`, `DaemonSet`.
    pub kind: &'static str,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The object's uid (a deleted and re-created workload is another one).
    pub object_uid: String,
    /// `metadata.generation`.
    pub generation: i64,
    /// The controller's revision, when it sets one.
    pub revision: Option<String>,
    /// The service the workload runs.
    pub service: ServiceName,
    /// Normalized pod template.
    pub template: Value,
    /// Its hash.
    pub template_hash: String,
    /// Desired replicas.
    pub replicas: Option<i32>,
    /// Rollout status from the controller's status.
    pub status: DeploymentStatus,
    /// When the spec was last written (the newest non-status managed-fields entry).
    pub changed_at: Option<DateTime<Utc>>,
    /// Commit from annotations or labels.
    pub commit: Option<String>,
    /// Who rolled it out.
    pub actor: Option<String>,
    /// `app.kubernetes.io/version` of the template or the workload.
    pub version: Option<String>,
    /// Container images.
    pub images: Vec<ContainerImage>,
    /// The selector of its Pods, as a label-selector string.
    pub selector: Option<String>,
    /// The Helm release that manages it (`meta.helm.sh/release-name`), if any.
    pub helm_release: Option<String>,
    /// The workload's annotations that start with [`CANARY_ANNOTATION_PREFIX`]: how `serve`
    /// analyses its rollouts (none when it does not opt in).
    pub canary: std::collections::BTreeMap<String, String>,
}

/// The prefix of the annotations a workload opts in to canary analysis with.
pub const CANARY_ANNOTATION_PREFIX: &str = "deploygraph.io/canary-";

/// Parses `registry/repo[:tag][@sha256:…]`.
pub fn parse_image(reference: &str) -> Image {
    let (name, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, ImageDigest::parse(digest).ok()),
        None => (reference, None),
    };
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repository, tag) = match name[slash..].rfind(':') {
        Some(colon) => (
            &name[..slash + colon],
            Some(name[slash + colon + 1..].to_owned()),
        ),
        None => (name, None),
    };
    Image {
        repository: (!repository.is_empty()).then(|| repository.to_owned()),
        tag,
        digest,
    }
}

/// The digest in a container status' `imageID` (`docker-pullable://repo@sha256:…`,
/// `sha256:…`).
pub fn digest_of_image_id(image_id: &str) -> Option<ImageDigest> {
    let at = image_id.rfind("sha256:")?;
    ImageDigest::parse(&image_id[at..]).ok()
}

fn template_images(template: &PodTemplateSpec) -> Vec<ContainerImage> {
    template
        .spec
        .iter()
        .flat_map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
        })
        .filter_map(|c| {
            let reference = c.image.clone()?;
            Some(ContainerImage {
                container: c.name.clone(),
                image: parse_image(&reference),
                reference,
            })
        })
        .collect()
}

/// Fills digests from Pods that run the same image in the same container and report an
/// `imageID`.
pub fn resolve_digests<P: std::borrow::Borrow<Pod>>(images: &mut [ContainerImage], pods: &[P]) {
    for image in images.iter_mut().filter(|i| i.image.digest.is_none()) {
        let found = pods.iter().map(P::borrow).find_map(|pod| {
            let runs_it = pod.spec.as_ref().is_some_and(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
                    .any(|c| {
                        c.name == image.container && c.image.as_deref() == Some(&image.reference)
                    })
            });
            if !runs_it {
                return None;
            }
            let status = pod.status.as_ref()?;
            status
                .container_statuses
                .iter()
                .flatten()
                .chain(status.init_container_statuses.iter().flatten())
                .filter(|s| s.name == image.container)
                .find_map(|s| digest_of_image_id(&s.image_id))
        });
        if found.is_some() {
            image.image.digest = found;
        }
    }
}

/// The template as stored: literal values of secret-looking env vars (`DB_PASSWORD`) are
/// replaced by `<redacted>`, secrets recognised by their shape in any string (a password in
/// a `DATABASE_URL`, a token in an argument) are redacted; values from Secrets are references
/// already.
fn redacted(mut template: Value) -> Value {
    fn walk(value: &mut Value) {
        match value {
            Value::String(s) => {
                let redacted = match deploygraph_model::redact::redact_secrets(s) {
                    std::borrow::Cow::Owned(r) => Some(r),
                    std::borrow::Cow::Borrowed(_) => None,
                };
                if let Some(r) = redacted {
                    *s = r;
                }
            }
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    if key == "env"
                        && let Value::Object(vars) = child
                    {
                        for (name, var) in vars.iter_mut() {
                            if deploygraph_model::redact::is_secret_path(name)
                                && let Some(v) = var.get_mut("value")
                            {
                                *v = Value::String(deploygraph_model::redact::REDACTED.to_owned());
                            }
                        }
                    }
                    walk(child);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut template);
    template
}

fn hash(template: &Value) -> String {
    hex::encode(Sha256::digest(template.to_string().as_bytes()))
}

/// The `template_hash` the watcher records for a workload whose `spec.template` is `template`
/// (as the API server holds it); `None` when it is not a pod template.
pub fn template_hash_of(template: &Value) -> Option<String> {
    let template: PodTemplateSpec = serde_json::from_value(template.clone()).ok()?;
    Some(hash(&normalized(&template)))
}

pub(crate) fn service_of(
    meta: &ObjectMeta,
    template: Option<&ObjectMeta>,
    name: &str,
) -> Option<ServiceName> {
    SERVICE_LABELS
        .iter()
        .find_map(|key| {
            [Some(meta), template]
                .into_iter()
                .flatten()
                .find_map(|m| m.labels.as_ref()?.get(*key))
                .and_then(|v| ServiceName::parse(v).ok())
        })
        .or_else(|| ServiceName::parse(name).ok())
}

pub(crate) fn changed_at(meta: &ObjectMeta) -> Option<DateTime<Utc>> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter(|f| f.subresource.is_none())
        .filter_map(|f| f.time.as_ref())
        .map(|t| t.0)
        .max()
        .and_then(|t| {
            DateTime::from_timestamp(
                t.as_second(),
                u32::try_from(t.subsec_nanosecond()).unwrap_or(0),
            )
        })
}

fn selector_string(selector: Option<&LabelSelector>) -> Option<String> {
    let labels = selector?.match_labels.as_ref()?;
    (!labels.is_empty()).then(|| {
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// Why an object is not observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip(pub String);

#[allow(clippy::too_many_arguments)]
fn observation(
    kind: &'static str,
    meta: &ObjectMeta,
    template: &PodTemplateSpec,
    replicas: Option<i32>,
    status: DeploymentStatus,
    selector: Option<&LabelSelector>,
) -> Result<Observation, Skip> {
    let name = meta.name.clone().ok_or_else(|| Skip("no name".into()))?;
    let service = service_of(meta, template.metadata.as_ref(), &name).ok_or_else(|| {
        Skip(format!(
            "{kind} {name}: no app.kubernetes.io/name or app label, and the name is not a DNS-1123 label"
        ))
    })?;
    let normalized = normalized(template);
    let version = ["app.kubernetes.io/version"].iter().find_map(|key| {
        [template.metadata.as_ref(), Some(meta)]
            .into_iter()
            .flatten()
            .find_map(|m| m.labels.as_ref()?.get(*key).cloned())
    });
    Ok(Observation {
        kind,
        namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
        object_uid: meta.uid.clone().unwrap_or_default(),
        generation: meta.generation.unwrap_or(0),
        revision: meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION_ANNOTATION).cloned()),
        service,
        // The hash sees the real values, so a changed password is a rollout; what is stored
        // does not.
        template_hash: hash(&normalized),
        template: redacted(normalized),
        replicas,
        status,
        changed_at: changed_at(meta),
        commit: commit_of(meta, template.metadata.as_ref()),
        actor: actor_of(meta),
        version,
        images: template_images(template),
        selector: selector_string(selector),
        helm_release: meta
            .annotations
            .as_ref()
            .and_then(|a| a.get("meta.helm.sh/release-name").cloned()),
        canary: meta
            .annotations
            .iter()
            .flatten()
            .filter(|(k, _)| k.starts_with(CANARY_ANNOTATION_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        name,
    })
}

/// A Deployment as a rollout.
///
/// # Errors
/// [`Skip`] when it has no name or no usable service name.
pub fn observe_deployment(d: &K8sDeployment) -> Result<Observation, Skip> {
    let spec = d.spec.as_ref().ok_or_else(|| Skip("no spec".into()))?;
    let desired = spec.replicas.unwrap_or(1);
    let status = d.status.as_ref().map_or(DeploymentStatus::InProgress, |s| {
        status_from(s, desired, d.metadata.generation.unwrap_or(0))
    });
    observation(
        "Deployment",
        &d.metadata,
        &spec.template,
        spec.replicas,
        status,
        Some(&spec.selector),
    )
}

/// A StatefulSet's status: every replica updated to the current revision and ready.
fn statefulset_status(s: &StatefulSet) -> DeploymentStatus {
    let desired = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &s.status else {
        return DeploymentStatus::InProgress;
    };
    let observed = status.observed_generation.unwrap_or(0) >= s.metadata.generation.unwrap_or(0);
    let current =
        status.update_revision.is_some() && status.update_revision == status.current_revision;
    if observed
        && (current || status.updated_replicas.unwrap_or(0) >= desired)
        && status.ready_replicas.unwrap_or(0) >= desired
    {
        DeploymentStatus::Succeeded
    } else {
        DeploymentStatus::InProgress
    }
}

/// A StatefulSet as a rollout.
///
/// # Errors
/// [`Skip`] when it has no name or no usable service name.
pub fn observe_statefulset(s: &StatefulSet) -> Result<Observation, Skip> {
    let spec = s.spec.as_ref().ok_or_else(|| Skip("no spec".into()))?;
    observation(
        "StatefulSet",
        &s.metadata,
        &spec.template,
        spec.replicas,
        statefulset_status(s),
        Some(&spec.selector),
    )
}

/// A DaemonSet's status: every scheduled node runs the updated pod and it is available.
fn daemonset_status(d: &DaemonSet) -> DeploymentStatus {
    let Some(status) = &d.status else {
        return DeploymentStatus::InProgress;
    };
    let observed = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    let desired = status.desired_number_scheduled;
    if observed
        && status.updated_number_scheduled.unwrap_or(0) >= desired
        && status.number_available.unwrap_or(0) >= desired
    {
        DeploymentStatus::Succeeded
    } else {
        DeploymentStatus::InProgress
    }
}

/// A DaemonSet as a rollout.
///
/// # Errors
/// [`Skip`] when it has no name or no usable service name.
pub fn observe_daemonset(d: &DaemonSet) -> Result<Observation, Skip> {
    let spec = d.spec.as_ref().ok_or_else(|| Skip("no spec".into()))?;
    observation(
        "DaemonSet",
        &d.metadata,
        &spec.template,
        None,
        daemonset_status(d),
        Some(&spec.selector),
    )
}

/// What the watcher knows of a workload: its last recorded rollout and the templates of the
/// ones before (to tell a rollback).
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    /// The last recorded rollout.
    pub last: Deployment,
    /// Replicas at the last rollout.
    pub replicas: Option<i32>,
    /// Template hashes of earlier rollouts, newest first.
    pub earlier: Vec<String>,
}

impl Known {
    /// What a workload's recorded rollouts (newest first) tell.
    pub fn from_history(history: &[Deployment]) -> Option<Self> {
        let last = history.first()?.clone();
        Some(Self {
            replicas: last.workload.as_ref().and_then(|w| w.replicas),
            earlier: history
                .iter()
                .skip(1)
                .filter_map(|d| Some(d.workload.as_ref()?.template_hash.clone()))
                .collect(),
            last,
        })
    }
}

/// The rollout's identity: the workload object, and the controller's revision or the
/// generation that changed the template; outside the default cluster, the cluster too.
pub fn rollout_uid(o: &Observation, cluster: &Cluster) -> Uid {
    let key = o
        .revision
        .clone()
        .unwrap_or_else(|| format!("g{}", o.generation));
    let mut parts = vec![o.namespace.as_str(), o.kind, &o.name, &o.object_uid, &key];
    parts.extend(cluster.uid_part());
    Uid::derive(deploygraph_model::uid::K8S_ROLLOUT_PREFIX, &parts)
}

fn terminal(status: DeploymentStatus) -> bool {
    status != DeploymentStatus::InProgress
}

/// Fills the digests `seen` (the images of the rollout's template, in order) resolved where
/// `deployment` has none yet.
pub fn fill_digests(deployment: &mut Deployment, seen: &[Image]) {
    for (image, seen) in deployment.images.iter_mut().zip(seen) {
        if image.digest.is_none() && seen.digest.is_some() && image.repository == seen.repository {
            image.digest.clone_from(&seen.digest);
        }
    }
}

/// Whether a rollout still waits for digests its Pods will report.
pub fn awaits_digests(deployment: &Deployment) -> bool {
    deployment.images.iter().any(|i| i.digest.is_none())
}

/// Whether labels match a selector as [`Observation::selector`] writes it (`k=v,k2=v2`); an
/// empty selector matches nothing, as for a workload.
pub fn selector_matches(
    selector: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    !selector.is_empty()
        && selector.split(',').all(|term| {
            term.split_once('=')
                .is_some_and(|(k, v)| labels.get(k).is_some_and(|l| l == v))
        })
}

/// What to record for observation `o` of a workload known as `known`, seen at `now`:
/// `None` when nothing changed.
pub fn decide(
    known: Option<&Known>,
    o: &Observation,
    environment: &Environment,
    cluster: &Cluster,
    now: DateTime<Utc>,
) -> Option<Deployment> {
    let images: Vec<Image> = o.images.iter().map(|i| i.image.clone()).collect();
    if let Some(k) = known
        && k.last
            .workload
            .as_ref()
            .is_some_and(|w| w.template_hash == o.template_hash)
    {
        // The same rollout: its status may advance, digests may have been resolved.
        let mut next = k.last.clone();
        if next.status.can_advance_to(o.status) && next.status != DeploymentStatus::RolledBack {
            next.status = o.status;
        }
        if terminal(next.status) && next.finished_at.is_none() {
            next.finished_at = Some(now.max(next.started_at));
        }
        fill_digests(&mut next, &images);
        return (next != k.last).then_some(next);
    }
    let mut changes: Vec<ConfigChange> = match known.and_then(|k| k.last.workload.as_ref()) {
        Some(previous) => {
            let prefix = format!("{}/{}:spec.template.", o.kind, o.name);
            diff_trees(
                &previous.template,
                &o.template,
                |leaf| format!("{prefix}{leaf}"),
                crate::rollout::classify,
            )
        }
        None => Vec::new(),
    };
    if let Some(change) =
        crate::rollout::replicas_change(o.kind, &o.name, known.and_then(|k| k.replicas), o.replicas)
            .filter(|_| known.is_some())
    {
        changes.push(change);
    }
    let rolled_back = known.is_some_and(|k| k.earlier.contains(&o.template_hash));
    let status = if rolled_back {
        DeploymentStatus::RolledBack
    } else {
        o.status
    };
    // The spec's write time has second precision: a rollout starts strictly after the one it
    // follows, so the chain keeps their order.
    let started_at =
        o.changed_at
            .unwrap_or(now)
            .min(now)
            .max(known.map_or(DateTime::<Utc>::MIN_UTC, |k| {
                k.last.started_at + chrono::Duration::microseconds(1)
            }));
    Some(Deployment {
        uid: rollout_uid(o, cluster),
        id: None,
        service: o.service.clone(),
        namespace: Some(o.namespace.clone()),
        environment: environment.clone(),
        cluster: cluster.clone(),
        version: o.version.clone(),
        commit: o.commit.as_deref().and_then(|sha| {
            Some(Commit {
                sha: CommitSha::parse(sha).ok()?,
                repo: None,
                author: None,
                message: None,
                committed_at: None,
            })
        }),
        images,
        status,
        started_at,
        finished_at: terminal(status).then_some(now.max(started_at)),
        actor: o.actor.clone(),
        source: Source::K8s,
        changes,
        validation: None,
        workload: Some(Workload {
            kind: o.kind.to_owned(),
            name: o.name.clone(),
            template_hash: o.template_hash.clone(),
            replicas: o.replicas,
            template: o.template.clone(),
        }),
        helm: None,
        origin: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(image: &str, replicas: i32, generation: i64, available: bool) -> K8sDeployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "prod", "uid": "u-1", "generation": generation,
                         "labels": {"app.kubernetes.io/name": "payments"},
                         "annotations": {"deploygraph.io/commit": "9fceb02d0ae598e95dc970b74767f19372d61af8"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": image,
                                           "env": [{"name": "DB_PASSWORD", "value": "hunter2"},
                                                   {"name": "DATABASE_URL", "value": "postgres://app:s3cret@db/orders"}]}]}}},
            "status": {"observedGeneration": generation, "updatedReplicas": replicas,
                       "conditions": [{"type": "Available", "status": if available { "True" } else { "False" }}]}
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn env() -> Environment {
        Environment::parse("production").unwrap_or_else(|e| panic!("{e}"))
    }

    fn at(minute: i64) -> DateTime<Utc> {
        deploygraph_model::fixture::minute(minute)
    }

    #[test]
    fn image_references_and_image_ids() {
        let cases = [
            ("nginx", (Some("nginx"), None, false)),
            ("nginx:1.25", (Some("nginx"), Some("1.25"), false)),
            (
                "localhost:5000/acme/web:v2",
                (Some("localhost:5000/acme/web"), Some("v2"), false),
            ),
            (
                "localhost:5000/acme/web",
                (Some("localhost:5000/acme/web"), None, false),
            ),
            (
                "ghcr.io/acme/web:v2@sha256:0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db93427",
                (Some("ghcr.io/acme/web"), Some("v2"), true),
            ),
        ];
        for (reference, (repo, tag, digest)) in cases {
            let i = parse_image(reference);
            assert_eq!(
                (
                    i.repository.as_deref(),
                    i.tag.as_deref(),
                    i.digest.is_some()
                ),
                (repo, tag, digest),
                "{reference}"
            );
        }
        let id = "docker-pullable://ghcr.io/acme/web@sha256:0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db93427";
        assert!(digest_of_image_id(id).is_some());
        assert!(digest_of_image_id("sha256:0b31").is_none());
    }

    #[test]
    fn rollouts_updates_and_a_rollback() {
        let environment = env();
        let first = observe_deployment(&deployment("web:v1", 2, 1, false))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(first.service.as_str(), "payments");
        let d1 = decide(None, &first, &environment, &Cluster::default(), at(0))
            .unwrap_or_else(|| panic!("first rollout"));
        assert_eq!(d1.status, DeploymentStatus::InProgress);
        assert_eq!(
            d1.commit_sha(),
            Some("9fceb02d0ae598e95dc970b74767f19372d61af8")
        );
        assert!(d1.changes.is_empty(), "nothing to diff against");
        let stored = d1
            .workload
            .as_ref()
            .map(|w| w.template.to_string())
            .unwrap_or_default();
        assert!(
            !stored.contains("hunter2") && stored.contains("<redacted>"),
            "{stored}"
        );
        assert!(
            !stored.contains("s3cret") && stored.contains("postgres://app:<redacted>@db/orders"),
            "a password in a URL is redacted by its shape: {stored}"
        );
        let known = Known::from_history(std::slice::from_ref(&d1));
        // Seen again unchanged: nothing.
        assert_eq!(
            decide(
                known.as_ref(),
                &first,
                &environment,
                &Cluster::default(),
                at(1)
            ),
            None
        );
        // Available: the same rollout succeeded.
        let done = observe_deployment(&deployment("web:v1", 2, 1, true))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let d1b = decide(
            known.as_ref(),
            &done,
            &environment,
            &Cluster::default(),
            at(2),
        )
        .unwrap_or_else(|| panic!("update"));
        assert_eq!(
            (d1b.uid.clone(), d1b.status),
            (d1.uid.clone(), DeploymentStatus::Succeeded)
        );
        assert_eq!(d1b.finished_at, Some(at(2)));
        // Scaling alone is not a rollout.
        let scaled = observe_deployment(&deployment("web:v1", 3, 2, true))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let known = Known::from_history(std::slice::from_ref(&d1b));
        assert_eq!(
            decide(
                known.as_ref(),
                &scaled,
                &environment,
                &Cluster::default(),
                at(3)
            ),
            None
        );
        // A new image (and the replicas since the last rollout): a new rollout with its diff.
        let v2 = observe_deployment(&deployment("web:v2", 3, 3, false))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let d2 = decide(
            known.as_ref(),
            &v2,
            &environment,
            &Cluster::default(),
            at(4),
        )
        .unwrap_or_else(|| panic!("rollout"));
        assert_ne!(d2.uid, d1.uid);
        let paths: Vec<(&str, Option<&str>)> = d2
            .changes
            .iter()
            .map(|c| (c.path.as_str(), c.after.as_deref()))
            .collect();
        assert_eq!(
            paths,
            vec![
                (
                    "Deployment/web:spec.template.spec.containers.web.image",
                    Some("web:v2")
                ),
                ("Deployment/web:spec.replicas", Some("3")),
            ]
        );
        // Back to v1's template: rolled back.
        let history = [d2.clone(), d1b.clone()];
        let known = Known::from_history(&history);
        let back = observe_deployment(&deployment("web:v1", 3, 4, false))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let d3 = decide(
            known.as_ref(),
            &back,
            &environment,
            &Cluster::default(),
            at(5),
        )
        .unwrap_or_else(|| panic!("rollback"));
        assert_eq!(d3.status, DeploymentStatus::RolledBack);
        assert!(d3.finished_at.is_some());
    }

    #[test]
    fn pods_resolve_digests_of_the_containers_running_the_image() {
        let o = observe_deployment(&deployment("web:v1", 1, 1, true))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let pod = |image: &str| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": "web-1", "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
                "status": {"containerStatuses": [{"name": "web", "image": image, "ready": true, "restartCount": 0,
                    "imageID": "docker-pullable://web@sha256:0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db93427"}]}
            }))
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let mut images = o.images.clone();
        resolve_digests(&mut images, &[pod("web:v0")]);
        assert!(images[0].image.digest.is_none(), "an old pod says nothing");
        resolve_digests(&mut images, &[pod("web:v0"), pod("web:v1")]);
        assert!(images[0].image.digest.is_some());
        assert_eq!(o.selector.as_deref(), Some("app=web"));
    }

    #[test]
    fn selectors_match_labels_like_match_labels() {
        let labels: std::collections::BTreeMap<String, String> =
            [("app", "web"), ("tier", "front")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        assert!(selector_matches("app=web", &labels));
        assert!(selector_matches("app=web,tier=front", &labels));
        assert!(!selector_matches("app=web,tier=back", &labels));
        assert!(!selector_matches("app=api", &labels));
        assert!(
            !selector_matches("", &labels),
            "an empty selector selects nothing"
        );
    }
}
