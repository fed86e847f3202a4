//! Rollouts of Deployments, StatefulSets and DaemonSets.

use deploygraph_helm::diff::{classify_field, diff_trees};
use deploygraph_model::{ChangeKind, ConfigChange, DeploymentStatus};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus as K8sDeploymentStatus};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value};

/// Annotations and labels that carry the commit, in order of preference.
pub const COMMIT_KEYS: [&str; 3] = [
    "deploygraph.io/commit",
    "org.opencontainers.image.revision",
    "app.kubernetes.io/version",
];

/// The commit a workload or its pod template names, when it looks like a SHA (7–40 hex).
pub fn commit_of(workload: &ObjectMeta, template: Option<&ObjectMeta>) -> Option<String> {
    let metas = [Some(workload), template];
    COMMIT_KEYS.iter().find_map(|key| {
        metas.iter().flatten().find_map(|meta| {
            meta.annotations
                .as_ref()
                .and_then(|a| a.get(*key))
                .or_else(|| meta.labels.as_ref().and_then(|l| l.get(*key)))
                .filter(|v| (7..=40).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(|v| v.to_ascii_lowercase())
        })
    })
}

/// Who rolled it out: `kubernetes.io/change-cause`, else the manager of the newest update
/// recorded in the managed fields.
pub fn actor_of(workload: &ObjectMeta) -> Option<String> {
    if let Some(cause) = workload
        .annotations
        .as_ref()
        .and_then(|a| a.get("kubernetes.io/change-cause"))
    {
        return Some(cause.clone());
    }
    workload
        .managed_fields
        .as_ref()?
        .iter()
        .filter(|f| f.subresource.is_none())
        .max_by_key(|f| f.time.as_ref().map(|t| t.0))
        .and_then(|f| f.manager.clone())
}

/// A Deployment's rollout status from its conditions, as the controller reports them:
/// progress deadline exceeded → failed; the new template fully rolled out and available →
/// succeeded; otherwise in progress.
pub fn deployment_status(deployment: &Deployment) -> DeploymentStatus {
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let generation = deployment.metadata.generation.unwrap_or(0);
    let Some(status) = &deployment.status else {
        return DeploymentStatus::InProgress;
    };
    status_from(status, desired, generation)
}

pub(crate) fn status_from(
    status: &K8sDeploymentStatus,
    desired: i32,
    generation: i64,
) -> DeploymentStatus {
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let condition = |kind: &str| conditions.iter().find(|c| c.type_ == kind);
    // Conditions describe the generation the controller observed; until it has seen the
    // newest spec, they are about the previous rollout.
    let observed = status.observed_generation.unwrap_or(0) >= generation;
    if !observed {
        return DeploymentStatus::InProgress;
    }
    if condition("Progressing")
        .is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
    {
        return DeploymentStatus::Failed;
    }
    let updated = status.updated_replicas.unwrap_or(0) >= desired;
    let available = condition("Available").is_some_and(|c| c.status == "True");
    if observed && updated && available {
        DeploymentStatus::Succeeded
    } else {
        DeploymentStatus::InProgress
    }
}

/// A pod template as a tree whose lists of named things (containers, env, volumes, ports) are
/// maps by name, so that diffs read `containers.web.image` and `env.DB_PASSWORD` and do not
/// depend on order. Env values taken from Secrets are references, not values, and stay so.
pub fn normalized(template: &PodTemplateSpec) -> Value {
    let mut value = serde_json::to_value(template).unwrap_or(Value::Null);
    keyed(&mut value);
    value
}

fn keyed(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if matches!(
                    key.as_str(),
                    "containers" | "initContainers" | "env" | "volumes" | "volumeMounts" | "ports"
                ) && let Value::Array(items) = child
                    && items
                        .iter()
                        .all(|i| i.get("name").and_then(Value::as_str).is_some())
                {
                    let mut by_name = Map::new();
                    for item in items.drain(..) {
                        let name = item
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned();
                        by_name.insert(name, item);
                    }
                    *child = Value::Object(by_name);
                }
                keyed(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(keyed),
        _ => {}
    }
}

/// What kind of change a template path is; probes and everything else are `manifest`.
pub(crate) fn classify(path: &str) -> ChangeKind {
    if path.ends_with(".image") {
        ChangeKind::Image
    } else if path.contains(".env.") || path.contains(".envFrom") {
        ChangeKind::Env
    } else {
        classify_field(path)
    }
}

/// The changes between two pod templates of `kind/name`, as `Kind/name:path` ConfigChanges;
/// values of secret-looking keys (an env var named `DB_PASSWORD`) are redacted.
pub fn template_changes(
    kind: &str,
    name: &str,
    old: &PodTemplateSpec,
    new: &PodTemplateSpec,
) -> Vec<ConfigChange> {
    let prefix = format!("{kind}/{name}:spec.template.");
    diff_trees(
        &normalized(old),
        &normalized(new),
        |leaf| format!("{prefix}{leaf}"),
        classify,
    )
}

/// The replica change between two specs, when there is one.
pub fn replicas_change(
    kind: &str,
    name: &str,
    old: Option<i32>,
    new: Option<i32>,
) -> Option<ConfigChange> {
    (old != new).then(|| {
        ConfigChange::new(
            format!("{kind}/{name}:spec.replicas"),
            ChangeKind::Replicas,
            old.map(|r| r.to_string()),
            new.map(|r| r.to_string()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(value: Value) -> Deployment {
        serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"))
    }

    fn template(image: &str, env: Value, memory: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [
                {"name": "web", "image": image, "env": env,
                 "resources": {"limits": {"memory": memory}},
                 "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}}},
                {"name": "sidecar", "image": "envoy:1.30"}
            ]}
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_commit_comes_from_annotations_or_labels_in_order() {
        let d = deployment(json!({"metadata": {
            "annotations": {"app.kubernetes.io/version": "2.3.0", "org.opencontainers.image.revision": "ABCDEF1234"},
            "labels": {"deploygraph.io/commit": "9fceb02d0ae598e95dc970b74767f19372d61af8"}}}));
        assert_eq!(
            commit_of(&d.metadata, None).as_deref(),
            Some("9fceb02d0ae598e95dc970b74767f19372d61af8")
        );
        let d = deployment(
            json!({"metadata": {"annotations": {"app.kubernetes.io/version": "2.3.0"}}}),
        );
        assert_eq!(
            commit_of(&d.metadata, None),
            None,
            "a version that is not a SHA is not a commit"
        );
        let d = deployment(
            json!({"metadata": {"annotations": {"org.opencontainers.image.revision": "ABCDEF1234"}}}),
        );
        assert_eq!(commit_of(&d.metadata, None).as_deref(), Some("abcdef1234"));
    }

    #[test]
    fn the_actor_is_the_change_cause_or_the_latest_field_manager() {
        let d = deployment(json!({"metadata": {"managedFields": [
            {"manager": "kubectl-client-side-apply", "operation": "Update", "time": "2026-11-20T10:00:00Z"},
            {"manager": "argocd-controller", "operation": "Apply", "time": "2026-11-20T11:00:00Z"},
            {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status", "time": "2026-11-20T12:00:00Z"}
        ]}}));
        assert_eq!(actor_of(&d.metadata).as_deref(), Some("argocd-controller"));
        let d = deployment(
            json!({"metadata": {"annotations": {"kubernetes.io/change-cause": "ci: release 42"}}}),
        );
        assert_eq!(actor_of(&d.metadata).as_deref(), Some("ci: release 42"));
    }

    #[test]
    fn status_follows_the_rollout_conditions() {
        let cases = [
            (
                json!({"observedGeneration": 3, "updatedReplicas": 3,
                    "conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}),
                DeploymentStatus::Succeeded,
            ),
            (
                json!({"observedGeneration": 3, "updatedReplicas": 1,
                    "conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]}),
                DeploymentStatus::InProgress,
            ),
            (
                json!({"observedGeneration": 3, "updatedReplicas": 1,
                    "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
                DeploymentStatus::Failed,
            ),
            (
                json!({"observedGeneration": 2, "updatedReplicas": 3,
                    "conditions": [{"type": "Available", "status": "True"}]}),
                DeploymentStatus::InProgress,
            ),
        ];
        for (status, expected) in cases {
            let d = deployment(
                json!({"metadata": {"generation": 3}, "spec": {"replicas": 3, "selector": {}, "template": {}}, "status": status}),
            );
            assert_eq!(deployment_status(&d), expected, "{status}");
        }
    }

    #[test]
    fn template_diffs_read_by_name_and_redact_secret_env() {
        let old = template(
            "ghcr.io/acme/web:1.0",
            json!([{"name": "LOG_LEVEL", "value": "info"}, {"name": "DB_PASSWORD", "value": "hunter2"}]),
            "256Mi",
        );
        let new = template(
            "ghcr.io/acme/web:1.1",
            json!([{"name": "DB_PASSWORD", "value": "correct-horse"}, {"name": "LOG_LEVEL", "value": "debug"},
                                                          {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}]),
            "512Mi",
        );
        let changes = template_changes("Deployment", "web", &old, &new);
        let find = |suffix: &str| {
            changes
                .iter()
                .find(|c| c.path.ends_with(suffix))
                .unwrap_or_else(|| panic!("{suffix} in {changes:#?}"))
        };
        assert_eq!(find("containers.web.image").kind, ChangeKind::Image);
        assert_eq!(
            find("containers.web.image").path,
            "Deployment/web:spec.template.spec.containers.web.image"
        );
        assert_eq!(find("env.LOG_LEVEL.value").kind, ChangeKind::Env);
        let password = find("env.DB_PASSWORD.value");
        assert_eq!(
            password.after.as_deref(),
            Some(deploygraph_model::redact::REDACTED)
        );
        assert_eq!(find("resources.limits.memory").kind, ChangeKind::Resources);
        assert_eq!(
            find("env.API_TOKEN.valueFrom.secretKeyRef.name").kind,
            ChangeKind::Added
        );
        assert!(
            !changes.iter().any(|c| c.path.contains("sidecar")),
            "order and unchanged containers do not matter"
        );
        assert!(template_changes("Deployment", "web", &old, &old).is_empty());
        assert_eq!(
            replicas_change("Deployment", "web", Some(2), Some(4)).map(|c| (c.kind, c.after)),
            Some((ChangeKind::Replicas, Some("4".to_owned())))
        );
        assert!(replicas_change("Deployment", "web", Some(2), Some(2)).is_none());
    }
}
