//! `serve`'s (and an agent's) canary analyses of the rollouts its Kubernetes watcher records,
//! for the workloads that opt in with annotations. `serve` records them in its store
//! ([`StoreRecords`]); `deploygraph agent --prometheus` on its central server through the API
//! ([`ServerRecords`]), a final round or a rollback whose rollout is still in the agent's spool
//! sent again for up to a minute.
//!
//! **Opting in.** A Deployment or StatefulSet annotated `deploygraph.io/canary-template: NAME`
//! (a template of `serve --canary-templates`, else a shipped one) has each new rollout the
//! watcher records analysed against Prometheus (`serve --prometheus`) until the verdict is
//! final, by the rule of `deploygraph canary analyze`
//! ([`deploygraph_canary::stop::decide_confirmed_or_decisive`], with the sequential test of the
//! critical ratio metrics since the rollout was recorded,
//! [`crate::canary_history::judge_round`]); every round is recorded as the
//! rollout's CanaryAnalysis, as `POST /v1/canary/analyses` records it. Further annotations,
//! all optional:
//!
//! | annotation | default | meaning |
//! |---|---|---|
//! | `deploygraph.io/canary-selector` | none | label matchers both sides add (`namespace="shop",job="web"`) |
//! | `deploygraph.io/canary-hash-label` | `pod_template_hash` (Deployment), `controller_revision_hash` (StatefulSet) | the Prometheus label that carries the Pods' version hash |
//! | `deploygraph.io/canary-baseline` | `auto` | `side-by-side`, `history` or `auto` |
//! | `deploygraph.io/canary-window` | `1m` | what each round looks back over |
//! | `deploygraph.io/canary-interval` | `30s` | time between rounds |
//! | `deploygraph.io/canary-max-duration` | `15m` | when the last verdict decides |
//! | `deploygraph.io/canary-rollback` | `false` | `true`: a Deployment whose canary fails is undone (with `serve --canary-rollback`); `dry-run`: only planned and recorded as a dry run |
//!
//! Any other `deploygraph.io/canary-*` annotation, or a value that cannot be used, is refused:
//! the rollout is not analysed and the log names the annotation.
//!
//! **The two sides.** The canary is the rollout's own Pods, the baseline the previous version's
//! Pods while they still run, each selected by its version hash: for a Deployment the
//! `pod-template-hash` of its ReplicaSet of the rollout's revision and of the newest earlier
//! ReplicaSet that still has Pods; for a StatefulSet its `updateRevision` and, while Pods run
//! it, its `currentRevision`. They are looked up on each round (a new ReplicaSet appears a
//! moment after the rollout starts; the old one empties as the rollout ends). Until the
//! canary's Pods exist, rounds wait. With `auto`, a round is judged side by side while the
//! previous version runs and its series exist, else against the service's earlier releases in
//! the graph (their summaries, `deploygraph canary summarize`); `history` always against them;
//! `side-by-side` never (a round without a running previous version waits).
//!
//! **Rollback.** With `deploygraph.io/canary-rollback: true` on a Deployment and
//! `serve --canary-rollback`, a final `Fail` undoes the Deployment at once, as `canary analyze
//! --rollback deployment/NAME` does ([`deploygraph_k8s::rollback`]: its previous ReplicaSet's
//! template, a paused Deployment refused), before the final round is recorded; the Rollback is
//! recorded (`by: deploygraph serve`) and the rollout becomes `rolled_back`. Without the flag
//! the annotation is honoured as `dry-run` and the log says so. The rollout that a rollback
//! starts (the restored version) is analysed but never rolled back in its turn, and neither is
//! a rollout the watcher records as a return to an earlier template: rolling back a rollback
//! would bring the failed version back. StatefulSets are analysed, not rolled back.
//!
//! **Bounds.** At most `serve --canary-max-analyses` analyses run at once (a rollout beyond
//! them is not analysed, with a warning); a newer rollout of the same workload ends the
//! analysis of the older; analyses end with the server. An analysis runs where the watcher
//! leads: one whose leader stops is not resumed elsewhere.

use crate::canary_history::{HISTORY_RELEASES, History};
use crate::cli::BaselineChoice;
use clap::ValueEnum as _;
use deploygraph_api::AppState;
use deploygraph_api::canary::{HooksConfig, analysis_input};
use deploygraph_canary::prometheus::Prometheus;
use deploygraph_canary::stop::{Decision, decide_confirmed_or_decisive, is_last};
use deploygraph_canary::{Selector, Template, Window};
use deploygraph_k8s::observe::CANARY_ANNOTATION_PREFIX;
use deploygraph_k8s::rollback::{Helm, Rollbacker, Target as RollbackTarget};
use deploygraph_k8s::watcher::RolloutStarted;
use deploygraph_model::{CanaryAnalysisInput, DeploymentStatus, RollbackInput, format_time};
use deploygraph_store::SummaryFilter;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use kube::api::{Api, ListParams};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The annotation that opts a workload in, naming the template.
pub const TEMPLATE: &str = "deploygraph.io/canary-template";
const SELECTOR: &str = "deploygraph.io/canary-selector";
const HASH_LABEL: &str = "deploygraph.io/canary-hash-label";
const BASELINE: &str = "deploygraph.io/canary-baseline";
const WINDOW: &str = "deploygraph.io/canary-window";
const INTERVAL: &str = "deploygraph.io/canary-interval";
const MAX_DURATION: &str = "deploygraph.io/canary-max-duration";
const ROLLBACK: &str = "deploygraph.io/canary-rollback";

/// Who the rollbacks `serve` does are recorded as done by.
pub const BY: &str = "deploygraph serve";
/// Who the rollbacks an agent does are recorded as done by.
pub const AGENT_BY: &str = "deploygraph agent";

/// What a final `Fail` does to the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackMode {
    /// Nothing.
    Off,
    /// The rollback is planned and recorded as a dry run.
    DryRun,
    /// The Deployment is undone.
    On,
}

/// The Deployment controller's revision annotation on a ReplicaSet.
const REVISION: &str = "deployment.kubernetes.io/revision";

/// How one workload's rollouts are analysed, from its annotations.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The template's name.
    pub template: String,
    /// Matchers both sides add.
    pub extra: Option<Selector>,
    /// The Prometheus label carrying the version hash.
    pub hash_label: String,
    /// What the canary is judged against.
    pub baseline: BaselineChoice,
    /// What each round looks back over.
    pub window: Window,
    /// Time between rounds.
    pub interval: Duration,
    /// When the last verdict decides.
    pub max_duration: Duration,
    /// What a final `Fail` does.
    pub rollback: RollbackMode,
}

/// Whether `label` can name a Prometheus label.
fn is_label_name(label: &str) -> bool {
    let mut chars = label.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !label.starts_with("__")
}

impl Plan {
    /// The plan of a workload of `kind` with these canary annotations.
    ///
    /// # Errors
    /// A sentence naming the annotation at fault.
    pub fn of(kind: &str, annotations: &BTreeMap<String, String>) -> Result<Self, String> {
        const KNOWN: [&str; 8] = [
            TEMPLATE,
            SELECTOR,
            HASH_LABEL,
            BASELINE,
            WINDOW,
            INTERVAL,
            MAX_DURATION,
            ROLLBACK,
        ];
        if let Some(unknown) = annotations
            .keys()
            .find(|k| k.starts_with(CANARY_ANNOTATION_PREFIX) && !KNOWN.contains(&k.as_str()))
        {
            return Err(format!(
                "{unknown}: not a canary annotation (known: {})",
                KNOWN.join(", ")
            ));
        }
        let value = |name: &str| annotations.get(name).map(|v| v.trim());
        let template = match value(TEMPLATE) {
            Some(t) if !t.is_empty() => t.to_owned(),
            _ => return Err(format!("{TEMPLATE}: names no template")),
        };
        let default_label = match kind {
            "Deployment" => "pod_template_hash",
            "StatefulSet" => "controller_revision_hash",
            other => {
                return Err(format!(
                    "{TEMPLATE}: a {other} has no version hash to tell its new Pods from its old \
                     ones; canary analysis of rollouts covers Deployments and StatefulSets"
                ));
            }
        };
        let extra = value(SELECTOR)
            .filter(|s| !s.is_empty())
            .map(|s| Selector::parse(s).map_err(|e| format!("{SELECTOR}: {e}")))
            .transpose()?;
        let hash_label = value(HASH_LABEL).unwrap_or(default_label).to_owned();
        if !is_label_name(&hash_label) {
            return Err(format!(
                "{HASH_LABEL}: {hash_label:?} is not a Prometheus label name"
            ));
        }
        let baseline = match value(BASELINE) {
            None => BaselineChoice::Auto,
            Some(v) => BaselineChoice::from_str(v, false)
                .map_err(|_| format!("{BASELINE}: {v:?} is not side-by-side, history or auto"))?,
        };
        let window = match value(WINDOW) {
            None => "1m".parse::<Window>().map_err(|e| e.to_string())?,
            Some(v) => v.parse::<Window>().map_err(|e| format!("{WINDOW}: {e}"))?,
        };
        let duration = |name: &str, default: Duration| -> Result<Duration, String> {
            match value(name) {
                None => Ok(default),
                Some(v) => crate::insight::duration_arg(v).map_err(|e| format!("{name}: {e}")),
            }
        };
        let interval = duration(INTERVAL, Duration::from_secs(30))?;
        let max_duration = duration(MAX_DURATION, Duration::from_secs(15 * 60))?;
        if max_duration > Duration::from_secs(24 * 3600) {
            return Err(format!("{MAX_DURATION}: at most 24h"));
        }
        let rollback = match value(ROLLBACK) {
            None | Some("false") => RollbackMode::Off,
            Some("dry-run") => RollbackMode::DryRun,
            Some("true") => RollbackMode::On,
            Some(v) => {
                return Err(format!("{ROLLBACK}: {v:?} is not true, false or dry-run"));
            }
        };
        if rollback != RollbackMode::Off && kind != "Deployment" {
            return Err(format!(
                "{ROLLBACK}: a {kind} cannot be rolled back by deploygraph (Deployments can); \
                 remove the annotation to have its rollouts analysed"
            ));
        }
        Ok(Self {
            template,
            extra,
            hash_label,
            baseline,
            window,
            interval,
            max_duration,
            rollback,
        })
    }

    /// The selector of the Pods whose version hash is `hash`.
    fn side(&self, hash: &str) -> Result<Selector, String> {
        let own = format!("{}=\"{hash}\"", self.hash_label);
        let text = match &self.extra {
            Some(extra) => format!("{extra},{own}"),
            None => own,
        };
        Selector::parse(&text).map_err(|e| format!("the version hash {hash:?}: {e}"))
    }
}

/// The version hashes of a rollout's two sides: the canary's (once its Pods exist) and the
/// previous version's while its Pods run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hashes {
    /// The rollout's own Pods.
    pub canary: Option<String>,
    /// The previous version's Pods, while they run.
    pub baseline: Option<String>,
}

/// The hashes of a Deployment's rollout from its ReplicaSets (those it owns): the canary is
/// the ReplicaSet of `revision` (the newest when the revision is not known yet), the baseline
/// the newest earlier one with Pods.
pub fn deployment_hashes(
    replica_sets: &[ReplicaSet],
    owner: &str,
    revision: Option<&str>,
) -> Hashes {
    let mut owned: Vec<(u64, &ReplicaSet)> = replica_sets
        .iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == owner)
        })
        .filter_map(|rs| {
            let n = rs
                .metadata
                .annotations
                .as_ref()?
                .get(REVISION)?
                .parse()
                .ok()?;
            Some((n, rs))
        })
        .collect();
    owned.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    let hash = |rs: &ReplicaSet| {
        rs.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("pod-template-hash"))
            .cloned()
    };
    let wanted = revision.and_then(|r| r.parse::<u64>().ok());
    let Some(at) = (match wanted {
        Some(r) => owned.iter().position(|(n, _)| *n == r),
        None => (!owned.is_empty()).then_some(0),
    }) else {
        return Hashes::default();
    };
    let runs = |rs: &ReplicaSet| {
        rs.status.as_ref().is_some_and(|s| s.replicas > 0)
            || rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0
    };
    Hashes {
        canary: hash(owned[at].1),
        baseline: owned[at + 1..]
            .iter()
            .find(|(_, rs)| runs(rs))
            .and_then(|(_, rs)| hash(rs)),
    }
}

/// The hashes of a StatefulSet's rollout: its update revision, and its current revision while
/// Pods run it.
pub fn statefulset_hashes(set: &StatefulSet) -> Hashes {
    let Some(status) = &set.status else {
        return Hashes::default();
    };
    let baseline = status
        .current_revision
        .clone()
        .filter(|c| Some(c) != status.update_revision.as_ref())
        .filter(|_| status.current_replicas.unwrap_or(0) > 0);
    Hashes {
        canary: status.update_revision.clone(),
        baseline,
    }
}

/// A workload: kind, namespace, name.
type Workload = (String, String, String);

/// The workload a rollout is of.
fn workload_of(rollout: &RolloutStarted) -> Workload {
    (
        rollout.kind.to_owned(),
        rollout.namespace.clone(),
        rollout.name.clone(),
    )
}

/// Where the analyses of rollouts are recorded and the service's earlier releases read:
/// `serve`'s own store ([`StoreRecords`]), or the central server an agent forwards to
/// ([`ServerRecords`]).
#[async_trait::async_trait]
pub trait Records: Send + Sync {
    /// The service's release summaries `filter` asks for, as JSON (the API's items).
    async fn release_summaries(
        &self,
        filter: &SummaryFilter,
    ) -> Result<Vec<serde_json::Value>, String>;
    /// Records one round of an analysis; the analysis' uid.
    async fn record_analysis(&self, input: CanaryAnalysisInput) -> Result<String, String>;
    /// Records a rollback.
    async fn record_rollback(&self, input: RollbackInput) -> Result<(), String>;
    /// Who a rollback is recorded as done by.
    fn by(&self) -> &'static str;
}

/// `serve`: its own store, through the API's handlers.
pub struct StoreRecords(pub AppState);

#[async_trait::async_trait]
impl Records for StoreRecords {
    async fn release_summaries(
        &self,
        filter: &SummaryFilter,
    ) -> Result<Vec<serde_json::Value>, String> {
        let summaries = self
            .0
            .store()
            .release_summaries(filter)
            .await
            .map_err(|e| e.to_string())?;
        Ok(summaries
            .iter()
            .filter_map(|s| serde_json::to_value(s).ok())
            .collect())
    }

    async fn record_analysis(&self, input: CanaryAnalysisInput) -> Result<String, String> {
        deploygraph_api::canary::record(&self.0, input)
            .await
            .map(|(_, analysis)| analysis.uid.to_string())
            .map_err(|e| e.message)
    }

    async fn record_rollback(&self, input: RollbackInput) -> Result<(), String> {
        deploygraph_api::rollback::record(&self.0, input)
            .await
            .map(|_| ())
            .map_err(|e| e.message)
    }

    fn by(&self) -> &'static str {
        BY
    }
}

/// How long an agent keeps trying to record a final round or a rollback the central server does
/// not take yet: the rollout it names may still be in the agent's spool (404), or the server
/// unavailable. Earlier rounds are sent once (the next round records again).
const RECORD_PATIENCE: Duration = Duration::from_secs(60);

/// `agent`: the central server, over its API with the agent's token.
pub struct ServerRecords {
    client: deploygraph_client::Client,
    stop: CancellationToken,
}

impl ServerRecords {
    /// Records through `client`; waiting for the server ends at `stop`.
    pub fn new(client: deploygraph_client::Client, stop: CancellationToken) -> Self {
        Self { client, stop }
    }

    /// `send` until it is taken, refused for good, or [`RECORD_PATIENCE`] has passed: a 404
    /// (the deployment not delivered yet from the spool) and an unavailable server are tried
    /// again every 2 s.
    async fn patiently<T, F, Fut>(&self, send: F) -> Result<T, String>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: std::future::Future<Output = Result<T, deploygraph_client::Error>> + Send,
        T: Send,
    {
        let deadline = Instant::now() + RECORD_PATIENCE;
        loop {
            let error = match send().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let again = matches!(
                &error,
                deploygraph_client::Error::Rejected { status: 404, .. }
                    | deploygraph_client::Error::Unavailable { .. }
            );
            if !again || Instant::now() >= deadline {
                return Err(error.to_string());
            }
            tokio::select! {
                () = self.stop.cancelled() => return Err(error.to_string()),
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }
}

#[async_trait::async_trait]
impl Records for ServerRecords {
    async fn release_summaries(
        &self,
        filter: &SummaryFilter,
    ) -> Result<Vec<serde_json::Value>, String> {
        let page = self
            .client
            .release_summaries(
                &filter.service,
                &filter.environment,
                &filter.template,
                Some(&filter.before),
                Some(filter.limit),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(page.body["items"].as_array().cloned().unwrap_or_default())
    }

    async fn record_analysis(&self, input: CanaryAnalysisInput) -> Result<String, String> {
        // A round before the final one is recorded again by the next; only the final one is
        // worth waiting for.
        let accepted = if input.final_round {
            self.patiently(|| self.client.record_canary_analysis(&input))
                .await?
        } else {
            self.client
                .record_canary_analysis(&input)
                .await
                .map_err(|e| e.to_string())?
        };
        Ok(accepted.body["uid"].as_str().unwrap_or_default().to_owned())
    }

    async fn record_rollback(&self, input: RollbackInput) -> Result<(), String> {
        self.patiently(|| self.client.record_rollback(&input))
            .await
            .map(|_| ())
    }

    fn by(&self) -> &'static str {
        AGENT_BY
    }
}

/// The analyses `serve` (or an agent) runs for the rollouts its watcher records.
pub struct RolloutAnalyses {
    records: Arc<dyn Records>,
    hooks: HooksConfig,
    client: kube::Client,
    stop: CancellationToken,
    slots: Arc<Semaphore>,
    /// The running analysis of each workload (kind, namespace, name), to end it on a newer
    /// rollout.
    running: Mutex<HashMap<Workload, (u64, CancellationToken)>>,
    next_id: std::sync::atomic::AtomicU64,
    /// `serve --canary-rollback`: annotations may ask for real rollbacks.
    rollbacks_allowed: bool,
    /// Workloads this server rolled back: their next rollout (the restored version) is not
    /// rolled back in its turn.
    rolled_back: Mutex<std::collections::HashSet<Workload>>,
}

impl RolloutAnalyses {
    /// Analyses recorded through `records`, querying the hooks' Prometheus with their
    /// templates; at most `max` at once; all end at `stop`. With `rollbacks_allowed`, a
    /// `deploygraph.io/canary-rollback: true` annotation undoes a failing Deployment
    /// (`serve --canary-rollback`, `agent --canary-rollback`).
    pub fn new(
        records: Arc<dyn Records>,
        hooks: HooksConfig,
        client: kube::Client,
        max: usize,
        rollbacks_allowed: bool,
        stop: CancellationToken,
    ) -> Self {
        Self {
            records,
            hooks,
            client,
            stop,
            slots: Arc::new(Semaphore::new(max)),
            running: Mutex::new(HashMap::new()),
            next_id: std::sync::atomic::AtomicU64::new(0),
            rollbacks_allowed,
            rolled_back: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// Starts analysing a rollout the watcher recorded (the watcher's `on_rollout`).
    pub fn start(self: &Arc<Self>, rollout: RolloutStarted) {
        let workload = format!("{}/{}/{}", rollout.namespace, rollout.kind, rollout.name);
        let deployment = rollout.deployment.uid.to_string();
        let mut plan = match Plan::of(rollout.kind, &rollout.annotations) {
            Ok(plan) => plan,
            Err(reason) => {
                tracing::warn!(%workload, deployment.uid = %deployment, reason, "rollout not analysed: its canary annotations cannot be used");
                return;
            }
        };
        let key = workload_of(&rollout);
        let restored = self
            .rolled_back
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
        if plan.rollback != RollbackMode::Off
            && (restored || rollout.deployment.status == DeploymentStatus::RolledBack)
        {
            tracing::info!(%workload, deployment.uid = %deployment, "the rollout returns to an earlier version: analysed, never rolled back");
            plan.rollback = RollbackMode::Off;
        }
        if plan.rollback == RollbackMode::On && !self.rollbacks_allowed {
            tracing::warn!(%workload, deployment.uid = %deployment, "{ROLLBACK}: true, but this process runs without --canary-rollback: a failing canary's rollback is only planned (dry run)");
            plan.rollback = RollbackMode::DryRun;
        }
        let Some(prometheus) = self.hooks.prometheus.clone() else {
            tracing::warn!(%workload, deployment.uid = %deployment, "rollout not analysed: the server has no --prometheus");
            return;
        };
        let template = match self.hooks.template(&plan.template) {
            Ok(t) => t,
            Err(reason) => {
                tracing::warn!(%workload, deployment.uid = %deployment, reason, "rollout not analysed: {TEMPLATE} names no usable template");
                return;
            }
        };
        let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() else {
            tracing::warn!(%workload, deployment.uid = %deployment, "rollout not analysed: --canary-max-analyses analyses are running");
            return;
        };
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = self.stop.child_token();
        if let Some((_, older)) = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone(), (id, token.clone()))
        {
            older.cancel();
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let run = Run {
                rollout: &rollout,
                plan: &plan,
                template: &template,
                prometheus: &prometheus,
                workload: &workload,
            };
            this.analyse(run, &token).await;
            let mut running = this.running.lock().unwrap_or_else(PoisonError::into_inner);
            if running.get(&key).is_some_and(|(i, _)| *i == id) {
                running.remove(&key);
            }
            drop(permit);
        });
    }

    /// The current version hashes of the rollout's two sides.
    async fn hashes(&self, rollout: &RolloutStarted) -> Result<Hashes, kube::Error> {
        match rollout.kind {
            "StatefulSet" => {
                let api: Api<StatefulSet> =
                    Api::namespaced(self.client.clone(), &rollout.namespace);
                Ok(api
                    .get_opt(&rollout.name)
                    .await?
                    .map(|s| statefulset_hashes(&s))
                    .unwrap_or_default())
            }
            _ => {
                let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &rollout.namespace);
                let mut params = ListParams::default();
                if let Some(selector) = &rollout.selector {
                    params = params.labels(selector);
                }
                let list = api.list(&params).await?;
                Ok(deployment_hashes(
                    &list.items,
                    &rollout.object_uid,
                    rollout.revision.as_deref(),
                ))
            }
        }
    }

    /// The service's earlier releases summarized on the template, for `history`/`auto`.
    async fn history(&self, run: &Run<'_>) -> Option<Vec<deploygraph_canary::ReleaseSummary>> {
        if run.plan.baseline == BaselineChoice::SideBySide {
            return None;
        }
        let d = &run.rollout.deployment;
        let filter = SummaryFilter {
            service: d.service.clone(),
            environment: d.environment.clone(),
            template: run.template.name.clone(),
            before: d.started_at,
            limit: HISTORY_RELEASES,
        };
        let items = match self.records.release_summaries(&filter).await {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(workload = %run.workload, error.message = %e, "the service's release summaries could not be read; judged side by side only");
                Vec::new()
            }
        };
        Some(crate::canary_history::releases_of(&items))
    }

    /// Runs the analysis of one rollout to its final verdict, or until `stop` (a newer rollout
    /// of the workload, or the server stopping) while it waits or queries. Once a round is
    /// final its rollback and its record are done whatever comes: the rollback's own patch
    /// makes the watcher record the restored rollout, which must not cut them short.
    async fn analyse(&self, run: Run<'_>, stop: &CancellationToken) {
        let ended = || {
            tracing::info!(workload = %run.workload, deployment.uid = %run.rollout.deployment.uid, "canary analysis ended: a newer rollout or the server stopped");
        };
        let (plan, deployment) = (run.plan, run.rollout.deployment.uid.to_string());
        let releases = self.history(&run).await;
        tracing::info!(workload = %run.workload, deployment.uid = %deployment, template = %plan.template, baseline = ?plan.baseline, "canary analysis of the rollout started");
        let start = Instant::now();
        let started_at = format_time(&chrono::Utc::now());
        let mut earlier = Vec::new();
        let mut rounds = 0_u32;
        for n in 1_u32.. {
            let scheduled = start + plan.interval.saturating_mul(n - 1);
            tokio::select! {
                () = stop.cancelled() => return ended(),
                () = tokio::time::sleep_until(scheduled.max(Instant::now()).into()) => {}
            }
            let began = Instant::now();
            let last = is_last(n, plan.interval, plan.max_duration);
            let hashes = match self.hashes(run.rollout).await {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(workload = %run.workload, error.message = %e, "the rollout's versions could not be read; the next round tries again");
                    Hashes::default()
                }
            };
            let sides = Self::sides(&run, &hashes, releases.as_deref());
            let Some((canary, baseline, history)) = sides else {
                if last {
                    tracing::warn!(workload = %run.workload, deployment.uid = %deployment, canary = ?hashes.canary, baseline = ?hashes.baseline, "canary analysis ended without a verdict: no Pods of the rollout (or, side by side, of the previous version) to judge by --max-duration");
                    return;
                }
                continue;
            };
            let judged = tokio::select! {
                () = stop.cancelled() => return ended(),
                v = crate::canary_history::judge_round(
                    run.prometheus,
                    history.as_ref(),
                    run.template,
                    &canary,
                    &baseline,
                    plan.window,
                    began - start,
                ) => v,
            };
            let verdict = match judged {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(workload = %run.workload, deployment.uid = %deployment, error.message = %format!("{:#}", anyhow::Error::new(e)), "a canary round's queries failed; the next round tries again");
                    if last {
                        return;
                    }
                    continue;
                }
            };
            rounds += 1;
            let started = began - start;
            let decision =
                decide_confirmed_or_decisive(&earlier, &verdict, started, plan.window, last);
            earlier.push((started, verdict.outcome));
            if decision == Decision::Fail && plan.rollback != RollbackMode::Off {
                self.roll_back(&run, &verdict.rule).await;
            }
            let input = analysis_input(
                &deployment,
                &plan.template,
                &started_at,
                &verdict,
                rounds,
                decision != Decision::Continue,
            );
            match self.records.record_analysis(input).await {
                Ok(uid) => {
                    tracing::info!(workload = %run.workload, canary.uid = %uid, round = rounds, outcome = crate::canary::outcome_str(verdict.outcome), decision = decision.as_str(), "canary round recorded")
                }
                Err(e) => {
                    tracing::warn!(workload = %run.workload, deployment.uid = %deployment, round = rounds, error.message = %e, "a canary round could not be recorded; the next round records again")
                }
            }
            if decision != Decision::Continue {
                tracing::info!(workload = %run.workload, deployment.uid = %deployment, decision = decision.as_str(), rule = %verdict.rule, "canary analysis of the rollout decided");
                return;
            }
        }
    }

    /// Rolls the rollout's Deployment back (or plans it, in a dry run) and records the
    /// Rollback; a failure is logged (the analysis is recorded all the same).
    async fn roll_back(&self, run: &Run<'_>, reason: &str) {
        let dry_run = run.plan.rollback == RollbackMode::DryRun;
        let rollbacker =
            Rollbacker::new(self.client.clone(), &run.rollout.namespace, Helm::default());
        let target = RollbackTarget::Deployment(run.rollout.name.clone());
        let key = workload_of(run.rollout);
        if !dry_run {
            // Before the patch: the watcher may see the restored template before it returns.
            self.rolled_back
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key.clone());
        }
        let at = chrono::Utc::now();
        let decided = Instant::now();
        let done = if dry_run {
            rollbacker.plan(&target).await
        } else {
            rollbacker.execute(&target).await
        };
        let action = match done {
            Ok(action) => action,
            Err(e) => {
                self.rolled_back
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&key);
                tracing::error!(workload = %run.workload, deployment.uid = %run.rollout.deployment.uid, error.message = %format!("{:#}", anyhow::Error::new(e)), "the failing canary's rollback failed; the rollout is left as it is");
                return;
            }
        };
        tracing::warn!(workload = %run.workload, deployment.uid = %run.rollout.deployment.uid, dry_run, elapsed_ms = decided.elapsed().as_millis(), action = %action.describe(&target, &run.rollout.namespace), "rolled the failing canary back");
        let input = RollbackInput {
            deployment: run.rollout.deployment.uid.to_string(),
            restored: None,
            reason: reason
                .chars()
                .take(deploygraph_model::rollback::limits::REASON)
                .collect(),
            by: self.records.by().to_owned(),
            at: format_time(&at),
            target: target.to_string(),
            namespace: Some(run.rollout.namespace.clone()),
            dry_run,
        };
        if let Err(e) = self.records.record_rollback(input).await {
            tracing::warn!(workload = %run.workload, deployment.uid = %run.rollout.deployment.uid, error.message = %e, "the rollback was done but could not be recorded");
        }
    }

    /// The selectors of a round and the history baseline it uses; `None` while there is
    /// nothing to judge (no canary Pods yet; side by side, no previous version running).
    fn sides(
        run: &Run<'_>,
        hashes: &Hashes,
        releases: Option<&[deploygraph_canary::ReleaseSummary]>,
    ) -> Option<(Selector, Selector, Option<History>)> {
        let canary = run.plan.side(hashes.canary.as_deref()?).ok()?;
        match (&hashes.baseline, run.plan.baseline, releases) {
            (Some(b), BaselineChoice::SideBySide, _) => {
                Some((canary, run.plan.side(b).ok()?, None))
            }
            (Some(b), _, releases) => {
                // `auto`: side by side while the previous version's series exist.
                let fallback = releases.map(|r| History::new(r.to_vec(), true));
                Some((canary, run.plan.side(b).ok()?, fallback))
            }
            (None, BaselineChoice::SideBySide, _) | (None, _, None) => None,
            (None, _, Some(releases)) => {
                // Against the history alone: the baseline selector is not queried.
                let unused = canary.clone();
                Some((canary, unused, Some(History::new(releases.to_vec(), false))))
            }
        }
    }
}

/// One rollout under analysis.
struct Run<'a> {
    rollout: &'a RolloutStarted,
    plan: &'a Plan,
    template: &'a Template,
    prometheus: &'a Prometheus,
    workload: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{ReplicaSetSpec, ReplicaSetStatus, StatefulSetStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_plan_comes_from_the_annotations_with_defaults() {
        let plan = Plan::of(
            "Deployment",
            &annotations(&[(TEMPLATE, "http-error-ratio")]),
        )
        .expect("plan");
        assert_eq!(plan.hash_label, "pod_template_hash");
        assert_eq!(plan.baseline, BaselineChoice::Auto);
        assert_eq!(plan.interval, Duration::from_secs(30));
        assert_eq!(plan.max_duration, Duration::from_secs(900));
        assert_eq!(plan.window.to_string(), "1m");
        assert_eq!(plan.rollback, RollbackMode::Off);
        assert_eq!(
            plan.side("5d9f").expect("side").to_string(),
            "pod_template_hash=\"5d9f\""
        );
        let plan = Plan::of(
            "StatefulSet",
            &annotations(&[
                (TEMPLATE, "mine"),
                (SELECTOR, "namespace=\"shop\""),
                (BASELINE, "history"),
                (WINDOW, "5s"),
                (INTERVAL, "1s"),
                (MAX_DURATION, "2m"),
                (ROLLBACK, "false"),
            ]),
        )
        .expect("plan");
        assert_eq!(plan.hash_label, "controller_revision_hash");
        assert_eq!(plan.baseline, BaselineChoice::History);
        assert_eq!(
            plan.side("web-7f").expect("side").to_string(),
            "namespace=\"shop\",controller_revision_hash=\"web-7f\""
        );
    }

    #[test]
    fn unusable_annotations_are_refused_naming_them() {
        for (pairs, named) in [
            (vec![(SELECTOR, "x=\"1\"")], TEMPLATE),
            (
                vec![(TEMPLATE, "t"), ("deploygraph.io/canary-windw", "1m")],
                "canary-windw",
            ),
            (
                vec![(TEMPLATE, "t"), (SELECTOR, "not a selector")],
                SELECTOR,
            ),
            (
                vec![(TEMPLATE, "t"), (HASH_LABEL, "pod-template-hash")],
                HASH_LABEL,
            ),
            (vec![(TEMPLATE, "t"), (BASELINE, "yesterday")], BASELINE),
            (vec![(TEMPLATE, "t"), (WINDOW, "1 minute")], WINDOW),
            (vec![(TEMPLATE, "t"), (INTERVAL, "0s")], INTERVAL),
            (vec![(TEMPLATE, "t"), (MAX_DURATION, "48h")], MAX_DURATION),
            (vec![(TEMPLATE, "t"), (ROLLBACK, "yes")], ROLLBACK),
        ] {
            let e = Plan::of("Deployment", &annotations(&pairs)).expect_err("refused");
            assert!(e.contains(named), "{e} should name {named}");
        }
        let e = Plan::of("DaemonSet", &annotations(&[(TEMPLATE, "t")])).expect_err("daemonset");
        assert!(e.contains("DaemonSet"), "{e}");
        let e = Plan::of(
            "StatefulSet",
            &annotations(&[(TEMPLATE, "t"), (ROLLBACK, "true")]),
        )
        .expect_err("a StatefulSet is not rolled back");
        assert!(e.contains(ROLLBACK), "{e}");
    }

    fn replica_set(owner: &str, revision: u64, hash: &str, replicas: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                annotations: Some(
                    [(REVISION.to_owned(), revision.to_string())]
                        .into_iter()
                        .collect(),
                ),
                labels: Some(
                    [("pod-template-hash".to_owned(), hash.to_owned())]
                        .into_iter()
                        .collect(),
                ),
                owner_references: Some(vec![OwnerReference {
                    uid: owner.to_owned(),
                    ..OwnerReference::default()
                }]),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                ..ReplicaSetSpec::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas,
                ..ReplicaSetStatus::default()
            }),
        }
    }

    #[test]
    fn a_deployments_sides_are_its_revisions_replica_set_and_the_newest_earlier_with_pods() {
        let sets = vec![
            replica_set("d", 1, "aaa", 2),
            replica_set("d", 2, "bbb", 0),
            replica_set("d", 3, "ccc", 1),
            replica_set("other", 4, "zzz", 3),
        ];
        let h = deployment_hashes(&sets, "d", Some("3"));
        assert_eq!(h.canary.as_deref(), Some("ccc"));
        assert_eq!(
            h.baseline.as_deref(),
            Some("aaa"),
            "revision 2 runs no Pods"
        );
        let newest = deployment_hashes(&sets, "d", None);
        assert_eq!(newest.canary.as_deref(), Some("ccc"));
        assert_eq!(
            deployment_hashes(&sets, "d", Some("5")),
            Hashes::default(),
            "its ReplicaSet does not exist yet"
        );
        let first = deployment_hashes(&sets[..1], "d", Some("1"));
        assert_eq!(first.canary.as_deref(), Some("aaa"));
        assert_eq!(first.baseline, None);
    }

    #[test]
    fn a_statefulsets_sides_are_its_update_and_current_revisions() {
        let set = |current: &str, update: &str, replicas: i32| StatefulSet {
            status: Some(StatefulSetStatus {
                current_revision: Some(current.to_owned()),
                update_revision: Some(update.to_owned()),
                current_replicas: Some(replicas),
                ..StatefulSetStatus::default()
            }),
            ..StatefulSet::default()
        };
        let h = statefulset_hashes(&set("web-1", "web-2", 2));
        assert_eq!(
            (h.canary.as_deref(), h.baseline.as_deref()),
            (Some("web-2"), Some("web-1"))
        );
        assert_eq!(statefulset_hashes(&set("web-2", "web-2", 3)).baseline, None);
        assert_eq!(statefulset_hashes(&set("web-1", "web-2", 0)).baseline, None);
    }
}
