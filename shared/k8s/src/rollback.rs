//! Rolling a release back when its canary fails: the three targets `deploygraph canary analyze
//! --rollback` can undo.
//!
//! - **Deployment** — as `kubectl rollout undo` does it: the ReplicaSets the Deployment
//!   controls (owner reference with `controller: true` and the Deployment's uid), the current
//!   revision (the highest `deployment.kubernetes.io/revision`) and the previous one (the
//!   highest below it); the previous ReplicaSet's pod template, without its `pod-template-hash`
//!   label, replaces the Deployment's `spec.template` in one JSON patch that also sets the
//!   Deployment's annotations to the ReplicaSet's (except the ones kubectl keeps from the
//!   Deployment: the revision annotations, desired/max replicas, last-applied-configuration and
//!   the deprecated rollback annotation). A paused Deployment is refused, as kubectl refuses it;
//!   a template that already matches the previous revision is left alone (`skipped`). The
//!   patch starts with a `test` of the `resourceVersion` it was computed from, so a Deployment
//!   changed in between (paused, say) fails the patch instead of being overwritten.
//! - **Argo Rollout** — aborted as `kubectl argo rollouts abort` does it: the merge patch
//!   `{"status":{"abort":true}}` on the `status` subresource, or on the Rollout itself when the
//!   CRD has no status subresource (the API server answers 404 for the subresource).
//! - **Helm release** — `helm rollback RELEASE [REVISION] -n NAMESPACE` with the real binary
//!   (the previous revision when none is given).
//!
//! [`Rollbacker::plan`] says what a rollback would do without changing anything (`--dry-run`);
//! [`Rollbacker::execute`] does it.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// The annotation holding a ReplicaSet's (and a Deployment's) revision.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// The label the deployment controller adds to its ReplicaSets' pod templates.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// Annotations a rollback keeps from the Deployment instead of copying them from the
/// ReplicaSet (kubectl's `annotationsToSkip`).
pub const ANNOTATIONS_KEPT: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION_ANNOTATION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];
/// The merge patch that aborts an Argo Rollout.
pub const ABORT_PATCH: &str = r#"{"status":{"abort":true}}"#;
/// Longest a `helm rollback` may run before it is stopped.
pub const HELM_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a rollback could not be planned or done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `--rollback` value that names no target.
    #[error("{value:?} is not a rollback target: {reason}")]
    InvalidTarget {
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The Deployment is paused: kubectl refuses to roll it back, and so do we.
    #[error(
        "deployment {namespace}/{name} is paused: a paused Deployment is not rolled back; resume \
         it first (kubectl rollout resume deployment/{name} -n {namespace}) and try again"
    )]
    Paused {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// No revision before the current one.
    #[error(
        "deployment {namespace}/{name} has no previous revision to roll back to (no ReplicaSet \
         it controls has a revision below {current:?})"
    )]
    NoPreviousRevision {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The current revision, when one was found.
        current: Option<i64>,
    },
    /// A request to the API server failed.
    #[error("failed to {operation} {kind} {namespace}/{name}")]
    Kube {
        /// What was being done (`read`, `patch`).
        operation: &'static str,
        /// What it was done to (`deployment`, `rollout`).
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API server's answer.
        #[source]
        source: Box<kube::Error>,
    },
    /// A patch could not be built from what the API server returned.
    #[error("failed to build the rollback patch of deployment {namespace}/{name}")]
    Patch {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The helm binary could not be started, or did not finish in time.
    #[error("failed to run {bin} rollback {release}")]
    HelmSpawn {
        /// The binary.
        bin: String,
        /// The release.
        release: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `helm rollback` exited non-zero.
    #[error("helm rollback {release} -n {namespace} failed ({status}): {stderr}")]
    Helm {
        /// The release.
        release: String,
        /// Its namespace.
        namespace: String,
        /// Its exit status.
        status: String,
        /// What it printed on standard error (trimmed, at most 4 KiB).
        stderr: String,
    },
}

/// `pub type Result` of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What to roll back: `deployment/NAME` (also `deploy/`, `deployments/`), `rollout/NAME` (an
/// Argo Rollout; also `rollouts/`, `ro/`) or `helm/RELEASE[:REVISION]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Deployment, undone to its previous ReplicaSet's template.
    Deployment(String),
    /// An Argo Rollout, aborted.
    Rollout(String),
    /// A Helm release, rolled back to `revision` (the previous one when `None`).
    Helm {
        /// The release's name.
        release: String,
        /// The revision to roll back to.
        revision: Option<u32>,
    },
}

impl Target {
    /// The kind's word: `deployment`, `rollout`, `helm`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Deployment(_) => "deployment",
            Self::Rollout(_) => "rollout",
            Self::Helm { .. } => "helm",
        }
    }

    /// The name of the object or release.
    pub fn name(&self) -> &str {
        match self {
            Self::Deployment(n) | Self::Rollout(n) => n,
            Self::Helm { release, .. } => release,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Helm {
                release,
                revision: Some(r),
            } => write!(f, "helm/{release}:{r}"),
            _ => write!(f, "{}/{}", self.kind(), self.name()),
        }
    }
}

/// A DNS-1123 subdomain (Deployments, Rollouts) or a Helm release name: lower-case
/// alphanumerics, `-` and `.`, starting and ending alphanumeric, at most 253 characters.
fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 253
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'.')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

impl FromStr for Target {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self> {
        let invalid = |reason| Error::InvalidTarget {
            value: value.to_owned(),
            reason,
        };
        let (kind, rest) = value
            .split_once('/')
            .ok_or_else(|| invalid("expected deployment/NAME, rollout/NAME or helm/RELEASE"))?;
        let name_of = |name: &str| {
            if valid_name(name) {
                Ok(name.to_owned())
            } else {
                Err(invalid(
                    "the name must be lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
                ))
            }
        };
        match kind {
            "deployment" | "deployments" | "deploy" => Ok(Self::Deployment(name_of(rest)?)),
            "rollout" | "rollouts" | "ro" => Ok(Self::Rollout(name_of(rest)?)),
            "helm" => {
                let (release, revision) = match rest.split_once(':') {
                    Some((release, revision)) => {
                        let revision = revision
                            .parse::<u32>()
                            .ok()
                            .filter(|r| *r > 0)
                            .ok_or_else(|| invalid("the revision must be a positive integer"))?;
                        (release, Some(revision))
                    }
                    None => (rest, None),
                };
                Ok(Self::Helm {
                    release: name_of(release)?,
                    revision,
                })
            }
            _ => Err(invalid(
                "the kind must be deployment, rollout or helm (deployment/NAME, rollout/NAME, helm/RELEASE)",
            )),
        }
    }
}

/// What a rollback does (planned) or did.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A Deployment's template restored to its previous ReplicaSet's.
    DeploymentUndo {
        /// The revision it runs.
        from_revision: i64,
        /// The revision restored.
        to_revision: i64,
        /// The ReplicaSet whose template is restored.
        replica_set: String,
        /// The template already matches: nothing is patched.
        skipped: bool,
        /// The JSON patch (sent unless `skipped`).
        patch: Value,
    },
    /// An Argo Rollout aborted.
    RolloutAbort {
        /// The merge patch.
        patch: Value,
        /// `status` when patched through the status subresource, empty when on the Rollout
        /// (no status subresource) or when only planned.
        subresource: &'static str,
    },
    /// `helm rollback` run (or to run).
    HelmRollback {
        /// The command's arguments after the binary.
        args: Vec<String>,
        /// What it printed on standard output (empty when planned).
        output: String,
    },
}

impl Action {
    /// One sentence for people.
    pub fn describe(&self, target: &Target, namespace: &str) -> String {
        match self {
            Self::DeploymentUndo {
                from_revision,
                to_revision,
                replica_set,
                skipped,
                ..
            } => {
                if *skipped {
                    format!(
                        "deployment {namespace}/{}: template already matches revision {to_revision} (ReplicaSet {replica_set}); nothing to undo",
                        target.name()
                    )
                } else {
                    format!(
                        "deployment {namespace}/{}: revision {from_revision} -> {to_revision} (the pod template of ReplicaSet {replica_set})",
                        target.name()
                    )
                }
            }
            Self::RolloutAbort { .. } => format!(
                "rollout {namespace}/{}: abort (merge patch {ABORT_PATCH} on its status)",
                target.name()
            ),
            Self::HelmRollback { args, .. } => format!("helm {}", args.join(" ")),
        }
    }

    /// As JSON, for `--format json`.
    pub fn to_json(&self) -> Value {
        match self {
            Self::DeploymentUndo {
                from_revision,
                to_revision,
                replica_set,
                skipped,
                patch,
            } => json!({
                "action": "deployment_undo",
                "from_revision": from_revision,
                "to_revision": to_revision,
                "replica_set": replica_set,
                "skipped": skipped,
                "patch": patch,
            }),
            Self::RolloutAbort { patch, subresource } => json!({
                "action": "rollout_abort",
                "patch": patch,
                "subresource": subresource,
            }),
            Self::HelmRollback { args, output } => json!({
                "action": "helm_rollback",
                "args": args,
                "output": output,
            }),
        }
    }
}

/// The `helm` binary a Helm rollback runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helm {
    /// The binary (a path, or a name looked up in `PATH`).
    pub bin: PathBuf,
    /// Passed as `--kubeconfig` when set (else helm's own default: `$KUBECONFIG`, then
    /// `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
}

impl Default for Helm {
    fn default() -> Self {
        Self {
            bin: PathBuf::from("helm"),
            kubeconfig: None,
        }
    }
}

/// Rolls targets back in one namespace.
#[derive(Clone)]
pub struct Rollbacker {
    client: kube::Client,
    namespace: String,
    helm: Helm,
}

/// A ReplicaSet the Deployment controls, with its revision.
struct Revision {
    number: i64,
    replica_set: ReplicaSet,
}

fn revision_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<i64> {
    meta.annotations
        .as_ref()?
        .get(REVISION_ANNOTATION)?
        .parse()
        .ok()
}

/// The current (highest) and previous (highest below it) revisions among `replica_sets`,
/// keeping only the ones `controller_uid` controls; ReplicaSets without a parseable revision
/// are ignored, as kubectl ignores them.
fn current_and_previous(
    replica_sets: Vec<ReplicaSet>,
    controller_uid: &str,
) -> (Option<i64>, Option<Revision>) {
    let mut latest: Option<Revision> = None;
    let mut previous: Option<Revision> = None;
    for rs in replica_sets {
        let controlled = rs
            .metadata
            .owner_references
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|o| o.controller == Some(true) && o.uid == controller_uid);
        if !controlled {
            continue;
        }
        let Some(number) = revision_of(&rs.metadata) else {
            continue;
        };
        let candidate = Revision {
            number,
            replica_set: rs,
        };
        let latest_number = latest.as_ref().map(|l| l.number);
        if latest_number.is_none_or(|l| l < number) {
            previous = latest.take();
            latest = Some(candidate);
        } else if latest_number != Some(number)
            && previous.as_ref().is_none_or(|p| p.number < number)
        {
            previous = Some(candidate);
        }
    }
    (latest.map(|l| l.number), previous)
}

/// `template` without the pod-template-hash label, as JSON (the label map dropped when it
/// becomes empty).
fn without_hash(template: &PodTemplateSpec) -> Result<Value, serde_json::Error> {
    let mut value = serde_json::to_value(template)?;
    if let Some(labels) = value
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
        if labels.is_empty()
            && let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut)
        {
            meta.remove("labels");
        }
    }
    Ok(value)
}

/// The annotations a rollback gives the Deployment: the kept ones from the Deployment, every
/// other from the ReplicaSet.
fn rollback_annotations(
    deployment: &BTreeMap<String, String>,
    replica_set: &BTreeMap<String, String>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for key in ANNOTATIONS_KEPT {
        if let Some(v) = deployment.get(key) {
            out.insert(key.to_owned(), Value::String(v.clone()));
        }
    }
    for (k, v) in replica_set {
        if !ANNOTATIONS_KEPT.contains(&k.as_str()) {
            out.insert(k.clone(), Value::String(v.clone()));
        }
    }
    out
}

/// The undo of `deployment` given the ReplicaSets of its namespace: kubectl's checks and
/// patch. Pure, so the table of cases is tested without a server.
///
/// # Errors
/// [`Error::Paused`], [`Error::NoPreviousRevision`], [`Error::Patch`].
pub fn deployment_undo(deployment: &Deployment, replica_sets: Vec<ReplicaSet>) -> Result<Action> {
    let name = deployment.metadata.name.clone().unwrap_or_default();
    let namespace = deployment.metadata.namespace.clone().unwrap_or_default();
    let spec = deployment.spec.as_ref();
    if spec.and_then(|s| s.paused).unwrap_or(false) {
        return Err(Error::Paused { namespace, name });
    }
    let uid = deployment.metadata.uid.clone().unwrap_or_default();
    let (current, previous) = current_and_previous(replica_sets, &uid);
    let Some(previous) = previous else {
        return Err(Error::NoPreviousRevision {
            namespace,
            name,
            current,
        });
    };
    let patch_error = |source| Error::Patch {
        namespace: namespace.clone(),
        name: name.clone(),
        source,
    };
    let restored = previous
        .replica_set
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let restored = without_hash(&restored).map_err(patch_error)?;
    let running = spec.map(|s| s.template.clone()).unwrap_or_default();
    let running = without_hash(&running).map_err(patch_error)?;
    let annotations = rollback_annotations(
        deployment
            .metadata
            .annotations
            .as_ref()
            .unwrap_or(&BTreeMap::new()),
        previous
            .replica_set
            .metadata
            .annotations
            .as_ref()
            .unwrap_or(&BTreeMap::new()),
    );
    // JSON patch `replace` needs the member to exist; `add` sets it either way.
    let annotations_op = if deployment.metadata.annotations.is_some() {
        "replace"
    } else {
        "add"
    };
    let patch = json!([
        {"op": "test", "path": "/metadata/resourceVersion",
         "value": deployment.metadata.resource_version.clone().unwrap_or_default()},
        {"op": "replace", "path": "/spec/template", "value": restored},
        {"op": annotations_op, "path": "/metadata/annotations", "value": annotations},
    ]);
    Ok(Action::DeploymentUndo {
        from_revision: current.unwrap_or_default(),
        to_revision: previous.number,
        replica_set: previous
            .replica_set
            .metadata
            .name
            .clone()
            .unwrap_or_default(),
        skipped: restored == running,
        patch,
    })
}

/// The Argo Rollouts `Rollout` resource (argoproj.io/v1alpha1).
pub fn rollout_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout"),
        "rollouts",
    )
}

impl Rollbacker {
    /// Rolls back in `namespace` through `client`, running `helm` for Helm releases.
    pub fn new(client: kube::Client, namespace: impl Into<String>, helm: Helm) -> Self {
        Self {
            client,
            namespace: namespace.into(),
            helm,
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn kube_error(
        &self,
        operation: &'static str,
        kind: &'static str,
        name: &str,
    ) -> impl Fn(kube::Error) -> Error {
        let namespace = self.namespace.clone();
        let name = name.to_owned();
        move |source| Error::Kube {
            operation,
            kind,
            namespace: namespace.clone(),
            name: name.clone(),
            source: Box::new(source),
        }
    }

    async fn plan_deployment(&self, name: &str) -> Result<(Api<Deployment>, Action)> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        let deployment =
            api.get(name)
                .await
                .map_err(self.kube_error("read", "deployment", name))?;
        let replica_sets: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &self.namespace);
        let listed = replica_sets
            .list(&ListParams::default())
            .await
            .map_err(self.kube_error("list the replica sets of", "deployment", name))?;
        Ok((api, deployment_undo(&deployment, listed.items)?))
    }

    fn helm_args(&self, release: &str, revision: Option<u32>) -> Vec<String> {
        let mut args = vec!["rollback".to_owned(), release.to_owned()];
        if let Some(r) = revision {
            args.push(r.to_string());
        }
        args.extend(["--namespace".to_owned(), self.namespace.clone()]);
        if let Some(k) = &self.helm.kubeconfig {
            args.extend(["--kubeconfig".to_owned(), k.display().to_string()]);
        }
        args
    }

    /// What rolling `target` back would do, changing nothing (`--dry-run`): a Deployment's
    /// revisions and patch are computed from the cluster (a paused Deployment or one without a
    /// previous revision is an error here too); a Rollout is read (it must exist); a release's
    /// rollback is simulated with `helm rollback --dry-run`.
    ///
    /// # Errors
    /// As [`Self::execute`], except that nothing was changed.
    pub async fn plan(&self, target: &Target) -> Result<Action> {
        match target {
            Target::Deployment(name) => Ok(self.plan_deployment(name).await?.1),
            Target::Rollout(name) => {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), &self.namespace, &rollout_resource());
                api.get(name)
                    .await
                    .map_err(self.kube_error("read", "rollout", name))?;
                Ok(Action::RolloutAbort {
                    patch: abort_patch(),
                    subresource: "",
                })
            }
            Target::Helm { release, revision } => self.run_helm(release, *revision, true).await,
        }
    }

    /// Rolls `target` back; returns once the API server (or helm) has accepted it.
    ///
    /// # Errors
    /// [`Error::Paused`] and [`Error::NoPreviousRevision`] for a Deployment that cannot be
    /// undone (nothing changed); [`Error::Kube`] when the API server refuses a read or the
    /// patch (a Deployment changed since it was read fails its `resourceVersion` test);
    /// [`Error::HelmSpawn`] and [`Error::Helm`] when helm cannot run or fails.
    pub async fn execute(&self, target: &Target) -> Result<Action> {
        match target {
            Target::Deployment(name) => {
                let (api, action) = self.plan_deployment(name).await?;
                if let Action::DeploymentUndo {
                    skipped: false,
                    patch,
                    ..
                } = &action
                {
                    let namespace = self.namespace.clone();
                    let patch: json_patch::Patch =
                        serde_json::from_value(patch.clone()).map_err(|source| Error::Patch {
                            namespace,
                            name: name.clone(),
                            source,
                        })?;
                    api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
                        .await
                        .map_err(self.kube_error("patch", "deployment", name))?;
                }
                Ok(action)
            }
            Target::Rollout(name) => {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), &self.namespace, &rollout_resource());
                let patch = Patch::Merge(abort_patch());
                let params = PatchParams::default();
                match api.patch_status(name, &params, &patch).await {
                    Ok(_) => Ok(Action::RolloutAbort {
                        patch: abort_patch(),
                        subresource: "status",
                    }),
                    // No status subresource: the plugin patches the Rollout itself.
                    Err(kube::Error::Api(status)) if status.code == 404 => {
                        api.patch(name, &params, &patch)
                            .await
                            .map_err(self.kube_error("abort", "rollout", name))?;
                        Ok(Action::RolloutAbort {
                            patch: abort_patch(),
                            subresource: "",
                        })
                    }
                    Err(e) => Err(self.kube_error("abort", "rollout", name)(e)),
                }
            }
            Target::Helm { release, revision } => self.run_helm(release, *revision, false).await,
        }
    }

    /// `helm rollback`, with `--dry-run` (helm's simulation: the release and revision are
    /// checked, nothing is changed) when `dry_run`.
    async fn run_helm(
        &self,
        release: &str,
        revision: Option<u32>,
        dry_run: bool,
    ) -> Result<Action> {
        let mut args = self.helm_args(release, revision);
        if dry_run {
            args.push("--dry-run".to_owned());
        }
        let spawn_error = |source| Error::HelmSpawn {
            bin: self.helm.bin.display().to_string(),
            release: release.to_owned(),
            source,
        };
        let child = tokio::process::Command::new(&self.helm.bin)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(HELM_TIMEOUT, child)
            .await
            .map_err(|_| {
                spawn_error(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("did not finish within {}s", HELM_TIMEOUT.as_secs()),
                ))
            })?
            .map_err(spawn_error)?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let stderr: String = stderr.trim().chars().take(4096).collect();
            return Err(Error::Helm {
                release: release.to_owned(),
                namespace: self.namespace.clone(),
                status: output.status.to_string(),
                stderr,
            });
        }
        Ok(Action::HelmRollback {
            args,
            output: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        })
    }
}

fn abort_patch() -> Value {
    json!({"status": {"abort": true}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(name: &str, owner: &str, revision: Option<&str>, image: &str) -> ReplicaSet {
        let mut annotations = serde_json::Map::new();
        if let Some(r) = revision {
            annotations.insert(REVISION_ANNOTATION.into(), json!(r));
        }
        annotations.insert("team".into(), json!(format!("rs-{name}")));
        serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "annotations": annotations,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                      "uid": owner, "controller": true}],
            },
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web", "pod-template-hash": format!("h-{name}")}},
                    "spec": {"containers": [{"name": "web", "image": image}]},
                },
            },
        }))
        .expect("replica set")
    }

    fn deployment(paused: bool, image: &str) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1", "resourceVersion": "42",
                          "annotations": {REVISION_ANNOTATION: "3", "team": "deployment"}},
            "spec": {
                "paused": paused,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": image}]},
                },
            },
        }))
        .expect("deployment")
    }

    #[test]
    fn targets_parse_by_kind() {
        assert_eq!(
            "deployment/web".parse::<Target>().expect("ok"),
            Target::Deployment("web".into())
        );
        assert_eq!(
            "deploy/web".parse::<Target>().expect("ok"),
            Target::Deployment("web".into())
        );
        assert_eq!(
            "rollout/web".parse::<Target>().expect("ok"),
            Target::Rollout("web".into())
        );
        assert_eq!(
            "helm/shop:2".parse::<Target>().expect("ok"),
            Target::Helm {
                release: "shop".into(),
                revision: Some(2)
            }
        );
        assert_eq!(
            "helm/shop:2".parse::<Target>().expect("ok").to_string(),
            "helm/shop:2"
        );
        for bad in [
            "web",
            "pod/web",
            "deployment/",
            "deployment/Web",
            "helm/shop:0",
            "helm/shop:x",
            "rollout/-a",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_previous_revision_is_the_highest_below_the_current() {
        let sets = vec![
            rs("a", "u1", Some("1"), "web:1"),
            rs("c", "u1", Some("3"), "web:3"),
            rs("b", "u1", Some("2"), "web:2"),
            rs("x", "other", Some("9"), "web:9"),
            rs("n", "u1", None, "web:none"),
            rs("bad", "u1", Some("two"), "web:bad"),
        ];
        let action = deployment_undo(&deployment(false, "web:3"), sets).expect("undo");
        let Action::DeploymentUndo {
            from_revision,
            to_revision,
            replica_set,
            skipped,
            patch,
        } = action
        else {
            panic!("not an undo");
        };
        assert_eq!((from_revision, to_revision), (3, 2));
        assert_eq!(replica_set, "b");
        assert!(!skipped);
        assert_eq!(
            patch[0],
            json!({"op": "test", "path": "/metadata/resourceVersion", "value": "42"})
        );
        assert_eq!(patch[1]["value"]["spec"]["containers"][0]["image"], "web:2");
        assert_eq!(
            patch[1]["value"]["metadata"]["labels"],
            json!({"app": "web"})
        );
        // The revision is the Deployment's; every other annotation the ReplicaSet's.
        assert_eq!(
            patch[2]["value"],
            json!({REVISION_ANNOTATION: "3", "team": "rs-b"})
        );
    }

    #[test]
    fn paused_and_historyless_deployments_are_refused() {
        let sets = vec![
            rs("a", "u1", Some("1"), "web:1"),
            rs("b", "u1", Some("2"), "web:2"),
        ];
        let e = deployment_undo(&deployment(true, "web:2"), sets).expect_err("paused");
        assert!(matches!(e, Error::Paused { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("kubectl rollout resume deployment/web"),
            "{e}"
        );
        let e = deployment_undo(
            &deployment(false, "web:1"),
            vec![
                rs("a", "u1", Some("1"), "web:1"),
                rs("x", "other", Some("1"), "web:0"),
            ],
        )
        .expect_err("no history");
        assert!(
            matches!(
                e,
                Error::NoPreviousRevision {
                    current: Some(1),
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn a_template_that_already_matches_is_skipped() {
        let sets = vec![
            rs("a", "u1", Some("1"), "web:1"),
            rs("b", "u1", Some("2"), "web:2"),
        ];
        let action = deployment_undo(&deployment(false, "web:1"), sets).expect("undo");
        assert!(matches!(
            action,
            Action::DeploymentUndo { skipped: true, .. }
        ));
    }
}
