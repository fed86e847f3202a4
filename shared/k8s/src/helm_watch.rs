//! The Helm watcher: every revision of every release (Secrets of type `helm.sh/release.v1`
//! labelled `owner=helm`) becomes a DeploymentEvent `RELEASED_AS` its HelmRevision, with the
//! values diff and the per-resource manifest diff against the previous revision as
//! ConfigChanges. A corrupt release Secret is logged by name, counted and skipped.

use crate::retry::until_ok;
use crate::rollout::COMMIT_KEYS;
use deploygraph_helm::cluster::revisions;
use deploygraph_helm::decode::decode_release_field;
use deploygraph_helm::diff::{diff_manifests, diff_values};
use deploygraph_helm::release::Release;
use deploygraph_model::{
    Commit, CommitSha, ConfigChange, Deployment, DeploymentStatus, Environment, HelmRevision,
    Image, ServiceName, Source, Uid,
};
use deploygraph_store::{GraphStore, RecordKind};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The DeploymentEvent status of a Helm revision; `None` for an uninstall.
pub fn status_of(release: &Release) -> Option<DeploymentStatus> {
    let rollback = release
        .info
        .description
        .as_deref()
        .is_some_and(|d| d.starts_with("Rollback to"));
    Some(match release.info.status.as_str() {
        "deployed" | "superseded" if rollback => DeploymentStatus::RolledBack,
        "deployed" | "superseded" => DeploymentStatus::Succeeded,
        "failed" => DeploymentStatus::Failed,
        "pending-install" | "pending-upgrade" | "pending-rollback" => DeploymentStatus::InProgress,
        _ => return None,
    })
}

fn each_container_image(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if matches!(key.as_str(), "containers" | "initContainers")
                    && let Value::Array(items) = child
                {
                    out.extend(
                        items
                            .iter()
                            .filter_map(|c| c.get("image")?.as_str().map(str::to_owned)),
                    );
                }
                each_container_image(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| each_container_image(i, out)),
        _ => {}
    }
}

fn manifest_documents(manifest: &str) -> Vec<Value> {
    deploygraph_helm::diff::split_manifest(manifest)
        .into_iter()
        .filter_map(|doc| serde_norway::from_str::<Value>(doc).ok())
        .filter(|v| v.is_object())
        .collect()
}

/// The images the rendered manifest runs, in order, without repeats.
pub fn manifest_images(manifest: &str) -> Vec<Image> {
    let mut refs = Vec::new();
    for doc in manifest_documents(manifest) {
        each_container_image(&doc, &mut refs);
    }
    let mut seen = std::collections::BTreeSet::new();
    refs.retain(|r| seen.insert(r.clone()));
    refs.iter()
        .map(|r| crate::observe::parse_image(r))
        .collect()
}

/// The commit the rendered workloads name in their annotations or labels.
pub fn manifest_commit(manifest: &str) -> Option<String> {
    let docs = manifest_documents(manifest);
    COMMIT_KEYS.iter().find_map(|key| {
        docs.iter().find_map(|doc| {
            ["/metadata", "/spec/template/metadata"]
                .iter()
                .find_map(|at| {
                    let meta = doc.pointer(at)?;
                    ["annotations", "labels"].iter().find_map(|field| {
                        let v = meta.get(field)?.get(*key)?.as_str()?;
                        ((7..=40).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_hexdigit()))
                            .then(|| v.to_ascii_lowercase())
                    })
                })
        })
    })
}

/// The DeploymentEvent of Helm revision `release`, diffed against `previous`; `None` for a
/// revision that is no deployment (an uninstall) or has no deploy time or usable name.
pub fn release_to_deployment(
    release: &Release,
    previous: Option<&Release>,
    environment: &Environment,
) -> Option<Deployment> {
    let status = status_of(release)?;
    let started_at = release.info.last_deployed.or(release.info.first_deployed)?;
    let chart = release.chart_metadata();
    let service = ServiceName::parse(&release.name)
        .ok()
        .or_else(|| chart.and_then(|c| ServiceName::parse(&c.name).ok()))?;
    let mut changes: Vec<ConfigChange> = Vec::new();
    if let Some(previous) = previous {
        let empty = Value::Object(serde_json::Map::new());
        changes.extend(diff_values(
            previous.config.as_ref().unwrap_or(&empty),
            release.config.as_ref().unwrap_or(&empty),
            "values",
        ));
        if let Ok(resources) =
            diff_manifests(&previous.manifest, &release.manifest, &release.namespace)
        {
            changes.extend(resources.iter().flat_map(|r| r.config_changes()));
        }
    }
    let helm = HelmRevision {
        release: release.name.clone(),
        namespace: release.namespace.clone(),
        revision: release.version,
        chart: chart.map(|c| c.name.clone()),
        chart_version: chart.map(|c| c.version.clone()),
        app_version: chart.and_then(|c| c.app_version.clone()),
        status: release.info.status.clone(),
    };
    Some(Deployment {
        uid: Uid::derive(
            "helm-release",
            &[
                &release.namespace,
                &release.name,
                &release.version.to_string(),
            ],
        ),
        id: None,
        service,
        namespace: Some(release.namespace.clone()),
        environment: environment.clone(),
        version: helm
            .app_version
            .clone()
            .or_else(|| helm.chart_version.clone()),
        commit: manifest_commit(&release.manifest).and_then(|sha| {
            Some(Commit {
                sha: CommitSha::parse(&sha).ok()?,
                repo: None,
                author: None,
                message: None,
                committed_at: None,
            })
        }),
        images: manifest_images(&release.manifest),
        status,
        started_at,
        finished_at: None,
        actor: None,
        source: Source::Helm,
        changes,
        validation: None,
        workload: None,
        helm: Some(helm),
        origin: None,
    })
}

/// Called for every release Secret skipped as corrupt, with its name and why.
pub type OnCorrupt = Box<dyn Fn(&str, &str) + Send + Sync>;

/// Watches Helm release Secrets and records their revisions.
pub struct HelmWatcher {
    client: kube::Client,
    store: Arc<dyn GraphStore>,
    namespaces: Vec<String>,
    environment: Environment,
    on_corrupt: Option<OnCorrupt>,
}

impl HelmWatcher {
    /// A watcher of `namespaces` (all when empty) recording into `store`.
    pub fn new(
        client: kube::Client,
        store: Arc<dyn GraphStore>,
        namespaces: Vec<String>,
        environment: Environment,
    ) -> Self {
        Self {
            client,
            store,
            namespaces,
            environment,
            on_corrupt: None,
        }
    }

    /// Calls `f` for every corrupt release Secret (metrics).
    #[must_use]
    pub fn on_corrupt(mut self, f: impl Fn(&str, &str) + Send + Sync + 'static) -> Self {
        self.on_corrupt = Some(Box::new(f));
        self
    }

    /// Watches until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let config = watcher::Config::default()
            .labels("owner=helm")
            .fields("type=helm.sh/release.v1");
        let apis: Vec<Api<Secret>> = if self.namespaces.is_empty() {
            vec![Api::all(self.client.clone())]
        } else {
            self.namespaces
                .iter()
                .map(|ns| Api::namespaced(self.client.clone(), ns))
                .collect()
        };
        let mut secrets = futures::stream::select_all(apis.into_iter().map(|api| {
            watcher::watcher(api, config.clone())
                .default_backoff()
                .boxed()
        }));
        tracing::info!(namespaces = ?self.namespaces, "watching Helm releases");
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => break,
                next = secrets.next() => next,
            };
            match next {
                Some(Ok(Event::Apply(secret) | Event::InitApply(secret))) => {
                    self.handle(&secret, &stop).await;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(error.message = %e, "Helm release watch failed; retrying")
                }
                None => break,
            }
        }
        tracing::info!("stopped watching Helm releases");
    }

    fn corrupt(&self, secret: &str, reason: &str) {
        tracing::warn!(secret, reason, "skipping a corrupt Helm release Secret");
        if let Some(f) = &self.on_corrupt {
            f(secret, reason);
        }
    }

    async fn handle(&self, secret: &Secret, stop: &CancellationToken) {
        let name = format!(
            "{}/{}",
            secret.metadata.namespace.as_deref().unwrap_or_default(),
            secret.metadata.name.as_deref().unwrap_or_default()
        );
        let Some(payload) = secret.data.as_ref().and_then(|d| d.get("release")) else {
            self.corrupt(&name, "no data.release");
            return;
        };
        let release = match decode_release_field(&payload.0) {
            Ok(r) => r,
            Err(e) => {
                let reason =
                    std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(": ");
                self.corrupt(&name, &reason);
                return;
            }
        };
        let namespace = secret.metadata.namespace.clone().unwrap_or_default();
        let mut release = release;
        if release.namespace.is_empty() {
            release.namespace.clone_from(&namespace);
        }
        // The previous revision, by number (a listing comes back sorted by name).
        let previous = if release.version > 1 {
            match revisions(&self.client, &namespace, &release.name).await {
                Ok(all) => all
                    .into_iter()
                    .filter(|r| r.revision < release.version)
                    .filter_map(|r| r.release.ok())
                    .max_by_key(|r| r.version),
                Err(e) => {
                    tracing::warn!(error.message = %e, secret = %name, "cannot list the release's revisions; recording without a diff");
                    None
                }
            }
        } else {
            None
        };
        let Some(deployment) =
            release_to_deployment(&release, previous.as_ref(), &self.environment)
        else {
            tracing::debug!(secret = %name, status = %release.info.status, "Helm revision is not a deployment");
            return;
        };
        let Some(outcomes) = until_ok(stop, "record a Helm revision", || {
            self.store.record_deployments(vec![deployment.clone()])
        })
        .await
        else {
            return;
        };
        let kind = outcomes.first().map(|o| o.kind);
        if kind == Some(RecordKind::Conflict) {
            tracing::warn!(deployment.uid = %deployment.uid, "Helm revision conflicts with what is recorded");
        } else {
            tracing::info!(deployment.uid = %deployment.uid, release = %release.name, revision = release.version, status = %release.info.status, outcome = ?kind, "recorded Helm revision");
        }
    }
}
