//! The Helm watcher: every revision of every release (Secrets of type `helm.sh/release.v1`
//! labelled `owner=helm`) becomes a DeploymentEvent `RELEASED_AS` its HelmRevision, with the
//! values diff and the per-resource manifest diff against the previous revision as
//! ConfigChanges. A corrupt release Secret, or one over a decoder size cap
//! ([`deploygraph_helm::Limits`]: a gzip bomb stops at the cap), is logged by name, counted
//! and skipped.
//!
//! It remembers the `resourceVersion` of every release Secret it has handled, so a relist
//! does not decode and write every revision again, and forgets a Secret when it is deleted.
//! Store calls follow [`crate::retry`]: a revision the store rejects is logged, counted and
//! skipped; one the store could not take for a while is set aside and read again later.

use crate::progress::{OnSkipped, Progress, SkipReason};
use crate::retry::{Failure, Outage, Requeue, RetryPolicy, bounded};
use crate::rollout::COMMIT_KEYS;
use crate::sink::{RecordSink, StoreSink};
use deploygraph_helm::Limits;
use deploygraph_helm::cluster::previous_release;
use deploygraph_helm::decode::decode_release_field_with;
use deploygraph_helm::diff::{diff_manifests, diff_values};
use deploygraph_helm::release::Release;
use deploygraph_model::{
    Cluster, Commit, CommitSha, ConfigChange, Deployment, DeploymentStatus, Environment,
    HelmRevision, Image, ServiceName, Source, Uid,
};
use deploygraph_store::{GraphStore, RecordKind};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
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
    cluster: &Cluster,
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
    let revision = release.version.to_string();
    let mut uid_parts = vec![release.namespace.as_str(), release.name.as_str(), &revision];
    uid_parts.extend(cluster.uid_part());
    Some(Deployment {
        uid: Uid::derive(deploygraph_model::uid::HELM_RELEASE_PREFIX, &uid_parts),
        id: None,
        service,
        namespace: Some(release.namespace.clone()),
        environment: environment.clone(),
        cluster: cluster.clone(),
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

/// A release Secret's namespace and name.
type SecretKey = (String, String);

fn secret_key(secret: &Secret) -> SecretKey {
    (
        secret.metadata.namespace.clone().unwrap_or_default(),
        secret.metadata.name.clone().unwrap_or_default(),
    )
}

/// One event of a watch stream, with the namespaces it covers (`None`: all).
struct Scoped {
    scope: Option<String>,
    event: Result<Event<Secret>, watcher::Error>,
}

/// How one Secret went.
enum Handled {
    /// Recorded, or skipped for good (until it changes).
    Done,
    /// The store stayed unavailable: read it again later.
    Unavailable,
    /// The watcher is stopping.
    Stopped,
}

/// Watches Helm release Secrets and records their revisions.
pub struct HelmWatcher {
    client: kube::Client,
    store: Arc<dyn RecordSink>,
    namespaces: Vec<String>,
    environment: Environment,
    cluster: Cluster,
    limits: Limits,
    retry: RetryPolicy,
    outage: Outage,
    /// The `resourceVersion` handled of each Secret.
    seen: HashMap<SecretKey, String>,
    requeue: Requeue<SecretKey, ()>,
    relisting: HashMap<Option<String>, HashSet<SecretKey>>,
    progress: Progress,
    on_skipped: Option<OnSkipped>,
}

impl HelmWatcher {
    /// A watcher of `namespaces` (all when empty) recording into `store`.
    pub fn new(
        client: kube::Client,
        store: Arc<dyn GraphStore>,
        namespaces: Vec<String>,
        environment: Environment,
    ) -> Self {
        Self::with_sink(client, Arc::new(StoreSink(store)), namespaces, environment)
    }

    /// A watcher of `namespaces` (all when empty) recording into `sink` (the agent's spool).
    pub fn with_sink(
        client: kube::Client,
        store: Arc<dyn RecordSink>,
        namespaces: Vec<String>,
        environment: Environment,
    ) -> Self {
        Self {
            client,
            store,
            namespaces,
            environment,
            cluster: Cluster::default(),
            limits: Limits::default(),
            retry: RetryPolicy::default(),
            outage: Outage::default(),
            seen: HashMap::new(),
            requeue: Requeue::new(),
            relisting: HashMap::new(),
            progress: Progress::default(),
            on_skipped: None,
        }
    }

    /// Records the releases as rolled out in `cluster`.
    #[must_use]
    pub fn cluster(mut self, cluster: Cluster) -> Self {
        self.cluster = cluster;
        self
    }

    /// Calls `f` for every release Secret skipped: corrupt, too large, refused by the store
    /// or set aside while it is unavailable (metrics).
    #[must_use]
    pub fn on_skipped(mut self, f: impl Fn(&str, SkipReason) + Send + Sync + 'static) -> Self {
        self.on_skipped = Some(Box::new(f));
        self
    }

    /// Decodes release Secrets with the caps `limits` instead of [`Limits::default`].
    #[must_use]
    pub fn decode_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Retries store calls by `policy` instead of [`RetryPolicy::default`].
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How much the watcher holds, readable while it runs.
    pub fn progress(&self) -> Progress {
        self.progress.clone()
    }

    /// Watches until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        let config = watcher::Config::default()
            .labels("owner=helm")
            .fields("type=helm.sh/release.v1");
        let scopes: Vec<Option<String>> = if self.namespaces.is_empty() {
            vec![None]
        } else {
            self.namespaces.iter().cloned().map(Some).collect()
        };
        let client = self.client.clone();
        let mut secrets = futures::stream::select_all(scopes.into_iter().map(|scope| {
            let api: Api<Secret> = match &scope {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            };
            watcher::watcher(api, config.clone())
                .default_backoff()
                .map(move |event| {
                    Box::new(Scoped {
                        scope: scope.clone(),
                        event,
                    })
                })
                .boxed()
        }));
        tracing::info!(namespaces = ?self.namespaces, "watching Helm releases");
        enum Next {
            Stop,
            Due,
            Event(Option<Box<Scoped>>),
        }
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => Next::Stop,
                () = self.requeue.next_due() => Next::Due,
                next = secrets.next() => Next::Event(next),
            };
            let running = match next {
                Next::Stop | Next::Event(None) => false,
                Next::Due => self.retry_due(&stop).await,
                Next::Event(Some(scoped)) => match scoped.event {
                    Ok(event) => self.apply(scoped.scope, event, &stop).await,
                    Err(e) => {
                        tracing::warn!(error.message = %e, "Helm release watch failed; retrying");
                        true
                    }
                },
            };
            self.progress.set(self.seen.len(), self.requeue.len());
            if !running {
                break;
            }
        }
        tracing::info!("stopped watching Helm releases");
    }

    /// Applies one watch event; `false` when stopping.
    async fn apply(
        &mut self,
        scope: Option<String>,
        event: Event<Secret>,
        stop: &CancellationToken,
    ) -> bool {
        match event {
            Event::Apply(secret) => self.work(&secret, stop).await,
            Event::InitApply(secret) => {
                if let Some(listed) = self.relisting.get_mut(&scope) {
                    listed.insert(secret_key(&secret));
                }
                self.work(&secret, stop).await
            }
            Event::Delete(secret) => {
                let key = secret_key(&secret);
                self.seen.remove(&key);
                self.requeue.remove(&key);
                true
            }
            Event::Init => {
                self.relisting.insert(scope, HashSet::new());
                true
            }
            Event::InitDone => {
                // Deleted while the watch was down: gone from the list, so from memory.
                if let Some(listed) = self.relisting.remove(&scope) {
                    let gone = |k: &SecretKey| {
                        scope.as_ref().is_none_or(|ns| *ns == k.0) && !listed.contains(k)
                    };
                    self.seen.retain(|k, _| !gone(k));
                    self.requeue.retain(|k| !gone(k));
                }
                true
            }
        }
    }

    /// Reads a Secret set aside again and handles it; `false` when stopping.
    async fn retry_due(&mut self, stop: &CancellationToken) -> bool {
        let Some((key, ())) = self.requeue.due(tokio::time::Instant::now()) else {
            return true;
        };
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &key.0);
        match api.get_opt(&key.1).await {
            Ok(Some(secret)) => self.work(&secret, stop).await,
            Ok(None) => {
                self.requeue.remove(&key);
                true
            }
            Err(e) => {
                tracing::warn!(secret = %format!("{}/{}", key.0, key.1), error.message = %e, "cannot read a Helm release Secret set aside; trying again later");
                self.requeue.push(key, (), &self.retry);
                true
            }
        }
    }

    /// Handles `secret` unless this version was handled already, and books how it went.
    async fn work(&mut self, secret: &Secret, stop: &CancellationToken) -> bool {
        let key = secret_key(secret);
        let version = secret.metadata.resource_version.clone().unwrap_or_default();
        if self.seen.get(&key) == Some(&version) && !version.is_empty() {
            return true;
        }
        match self.handle(secret, stop).await {
            Handled::Done => {
                self.seen.insert(key.clone(), version);
                self.requeue.remove(&key);
                true
            }
            Handled::Unavailable => {
                self.requeue.push(key, (), &self.retry);
                true
            }
            Handled::Stopped => false,
        }
    }

    fn skipped(&self, secret: &str, reason: SkipReason) {
        if let Some(f) = &self.on_skipped {
            f(secret, reason);
        }
    }

    async fn handle(&self, secret: &Secret, stop: &CancellationToken) -> Handled {
        let name = format!(
            "{}/{}",
            secret.metadata.namespace.as_deref().unwrap_or_default(),
            secret.metadata.name.as_deref().unwrap_or_default()
        );
        let Some(payload) = secret.data.as_ref().and_then(|d| d.get("release")) else {
            tracing::warn!(secret = %name, reason = "no data.release", "skipping a corrupt Helm release Secret");
            self.skipped(&name, SkipReason::HelmReleaseCorrupt);
            return Handled::Done;
        };
        let release = match decode_release_field_with(&payload.0, &self.limits) {
            Ok(r) => r,
            Err(e) => {
                let reason =
                    std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(": ");
                let skip = if e.is_too_large() {
                    SkipReason::HelmReleaseTooLarge
                } else {
                    SkipReason::HelmReleaseCorrupt
                };
                tracing::warn!(secret = %name, reason, "skipping a corrupt Helm release Secret");
                self.skipped(&name, skip);
                return Handled::Done;
            }
        };
        let namespace = secret.metadata.namespace.clone().unwrap_or_default();
        let mut release = release;
        if release.namespace.is_empty() {
            release.namespace.clone_from(&namespace);
        }
        // The previous revision, by number (a listing comes back sorted by name).
        let previous = if release.version > 1 {
            match previous_release(
                &self.client,
                &namespace,
                &release.name,
                release.version,
                &self.limits,
            )
            .await
            {
                Ok(previous) => previous,
                Err(e) => {
                    tracing::warn!(error.message = %e, secret = %name, "cannot list the release's revisions; recording without a diff");
                    None
                }
            }
        } else {
            None
        };
        let Some(deployment) = release_to_deployment(
            &release,
            previous.as_ref(),
            &self.environment,
            &self.cluster,
        ) else {
            tracing::debug!(secret = %name, status = %release.info.status, "Helm revision is not a deployment");
            return Handled::Done;
        };
        let outcomes = match bounded(
            stop,
            &self.retry,
            &self.outage,
            "record a Helm revision",
            || self.store.record_deployments(vec![deployment.clone()]),
        )
        .await
        {
            Ok(outcomes) => outcomes,
            Err(Failure::Stopped) => return Handled::Stopped,
            Err(Failure::Rejected(e)) => {
                tracing::error!(secret = %name, deployment.uid = %deployment.uid, error.message = %e, error.cause_chain = ?e, "the store refused a Helm revision; skipping it until its Secret changes");
                self.skipped(&name, SkipReason::StoreRejected);
                return Handled::Done;
            }
            Err(Failure::Unavailable(e)) => {
                tracing::warn!(secret = %name, deployment.uid = %deployment.uid, error.message = %e, "cannot record a Helm revision: the store is still unavailable; the Secret is read again later");
                self.skipped(&name, SkipReason::StoreUnavailable);
                return Handled::Unavailable;
            }
        };
        let kind = outcomes.first().map(|o| o.kind);
        if kind == Some(RecordKind::Conflict) {
            tracing::warn!(deployment.uid = %deployment.uid, "Helm revision conflicts with what is recorded");
        } else {
            tracing::info!(deployment.uid = %deployment.uid, release = %release.name, revision = release.version, status = %release.info.status, outcome = ?kind, "recorded Helm revision");
        }
        Handled::Done
    }
}
