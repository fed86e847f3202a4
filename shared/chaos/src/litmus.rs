//! The LitmusChaos driver: builds a `ChaosEngine` (`litmuschaos.io/v1alpha1`) for one experiment
//! against one application, creates it, follows it to its `ChaosResult` and stops it on abort.
//!
//! The objects are handled as [`DynamicObject`]s: deploygraph only needs a handful of fields, and
//! typing Litmus' whole API would tie us to one operator release. The fields used, and what they
//! mean, are those of chaos-operator and litmus-go 3.x:
//!
//! - a run is requested with a `ChaosEngine` whose `spec.engineState` is `active`; the operator
//!   sets `status.engineStatus: initialized`, and on completion `completed`, flipping
//!   `spec.engineState` to `stop` itself;
//! - patching `spec.engineState: stop` aborts a running experiment; the operator acknowledges with
//!   `status.engineStatus: stopped` and the experiment marks its result `Stopped`;
//! - the experiment writes its outcome to the `ChaosResult` `<engine>-<experiment>`, labelled
//!   `chaosUID=<engine uid>`; the result is final when its phase is terminal and its verdict is
//!   not `Awaited`.
//!
//! [`follow`] polls rather than watches: a run lasts seconds to minutes, and two GETs every
//! [`POLL_INTERVAL`] are cheaper to reason about than a watch that must survive reconnects.

use chrono::{DateTime, Utc};
use deploygraph_model::{ChaosProbe, ChaosVerdict};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Litmus' API group.
pub const GROUP: &str = "litmuschaos.io";
/// Litmus' API version.
pub const VERSION: &str = "v1alpha1";
/// How often [`follow`] reads the engine and its result.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How often [`follow`] looks for the operator's acknowledgement of a stop.
const ACK_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Phases after which a `ChaosResult` no longer changes (until the engine is re-run).
pub const TERMINAL_PHASES: [&str; 5] = [
    "Completed",
    "Completed_With_Error",
    "Completed_With_Probe_Failure",
    "Stopped",
    "Error",
];

/// Errors of the Litmus driver. Each names the object and namespace involved.
#[derive(Debug, thiserror::Error)]
pub enum LitmusError {
    /// A Litmus CRD is not installed at all.
    #[error(
        "the LitmusChaos CRD {crd} is not installed in the cluster (needed for experiment {experiment} in namespace {namespace}); install Litmus first"
    )]
    CrdMissing {
        /// `chaosexperiments.litmuschaos.io`.
        crd: String,
        /// The experiment that was asked for.
        experiment: String,
        /// Where it was asked for.
        namespace: String,
    },
    /// The `ChaosExperiment` CR the engine would run is not in the namespace.
    #[error(
        "ChaosExperiment {experiment} not found in namespace {namespace} (installed there: {installed}); install it (e.g. from ChaosHub) before running it"
    )]
    ExperimentMissing {
        /// The experiment that was asked for.
        experiment: String,
        /// Where it was looked for.
        namespace: String,
        /// The experiments that are installed there, for the message (`none` when none).
        installed: String,
    },
    /// Reading the `ChaosExperiment` failed for another reason.
    #[error("failed to look up ChaosExperiment {experiment} in namespace {namespace}")]
    LookUpExperiment {
        /// The experiment.
        experiment: String,
        /// Its namespace.
        namespace: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// An engine of that name exists already (a previous run that was not cleaned up).
    #[error("ChaosEngine {engine} already exists in namespace {namespace}")]
    EngineExists {
        /// The engine's name.
        engine: String,
        /// Its namespace.
        namespace: String,
    },
    /// Creating the engine failed.
    #[error("failed to create ChaosEngine {engine} in namespace {namespace}")]
    CreateEngine {
        /// The engine's name.
        engine: String,
        /// Its namespace.
        namespace: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Patching `engineState: stop` failed.
    #[error("failed to stop ChaosEngine {engine} in namespace {namespace}")]
    StopEngine {
        /// The engine's name.
        engine: String,
        /// Its namespace.
        namespace: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The engine was deleted while being followed.
    #[error("ChaosEngine {engine} in namespace {namespace} no longer exists")]
    EngineGone {
        /// The engine's name.
        engine: String,
        /// Its namespace.
        namespace: String,
    },
    /// Reading the engine or its result failed.
    #[error("failed to read {kind} {name} in namespace {namespace}")]
    Read {
        /// `ChaosEngine` or `ChaosResult`.
        kind: &'static str,
        /// The object's name.
        name: String,
        /// Its namespace.
        namespace: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The result carries a verdict Litmus does not define.
    #[error("ChaosResult {name} in namespace {namespace} has an unknown verdict {verdict:?}")]
    UnknownVerdict {
        /// The result's name.
        name: String,
        /// Its namespace.
        namespace: String,
        /// The verdict as written.
        verdict: String,
    },
}

/// The driver's result type.
pub type Result<T, E = LitmusError> = std::result::Result<T, E>;

/// The `ChaosEngine` resource.
pub fn engine_resource() -> ApiResource {
    resource("ChaosEngine", "chaosengines")
}

/// The `ChaosExperiment` resource.
pub fn experiment_resource() -> ApiResource {
    resource("ChaosExperiment", "chaosexperiments")
}

/// The `ChaosResult` resource.
pub fn result_resource() -> ApiResource {
    resource("ChaosResult", "chaosresults")
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, kind), plural)
}

/// The name of the `ChaosResult` an engine's experiment writes: `<engine>-<experiment>`.
pub fn result_name(engine: &str, experiment: &str) -> String {
    format!("{engine}-{experiment}")
}

/// The application under test (`spec.appinfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppInfo {
    /// `appns`.
    pub namespace: String,
    /// `applabel`, a label selector such as `app=web`.
    pub label: String,
    /// `appkind`: `deployment`, `statefulset`, `daemonset` (or `deploymentconfig`, `rollout`).
    pub kind: String,
}

/// One experiment to run through Litmus.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineRequest {
    /// Where the engine, the `ChaosExperiment` and the result live.
    pub namespace: String,
    /// The engine's name.
    pub engine: String,
    /// The experiment (`pod-delete`); a `ChaosExperiment` of that name must exist in `namespace`.
    pub experiment: String,
    /// The target.
    pub app: AppInfo,
    /// `chaosServiceAccount`.
    pub service_account: String,
    /// Experiment tunables (`TOTAL_CHAOS_DURATION`, `CHAOS_INTERVAL`, `PODS_AFFECTED_PERC`, …).
    pub env: BTreeMap<String, String>,
    /// Litmus probe specs, passed through unchanged as `spec.experiments[0].spec.probe`.
    pub probes: Vec<Value>,
}

/// The `ChaosEngine` for `req`, as created by [`create_engine`] (and shown by `--dry-run`).
pub fn engine_manifest(req: &EngineRequest) -> Value {
    let env: Vec<Value> = req
        .env
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    let mut experiment_spec = Map::new();
    experiment_spec.insert("components".into(), json!({ "env": env }));
    if !req.probes.is_empty() {
        experiment_spec.insert("probe".into(), Value::Array(req.probes.clone()));
    }
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "ChaosEngine",
        "metadata": {
            "name": req.engine,
            "namespace": req.namespace,
            "labels": {"app.kubernetes.io/managed-by": "deploygraph"},
        },
        "spec": {
            "engineState": "active",
            "appinfo": {
                "appns": req.app.namespace,
                "applabel": req.app.label,
                "appkind": req.app.kind,
            },
            "chaosServiceAccount": req.service_account,
            "jobCleanUpPolicy": "delete",
            "experiments": [{"name": req.experiment, "spec": experiment_spec}],
        },
    })
}

/// Checks that the `ChaosExperiment` `experiment` exists in `namespace`.
///
/// # Errors
/// [`LitmusError::ExperimentMissing`] when it does not, [`LitmusError::CrdMissing`] when the
/// cluster has no `chaosexperiments` CRD at all, [`LitmusError::LookUpExperiment`] otherwise.
pub async fn ensure_experiment(
    client: &kube::Client,
    namespace: &str,
    experiment: &str,
) -> Result<()> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &experiment_resource());
    let look_up = |source| LitmusError::LookUpExperiment {
        experiment: experiment.to_owned(),
        namespace: namespace.to_owned(),
        source,
    };
    match api.get(experiment).await {
        Ok(_) => Ok(()),
        // A GET of a resource type the server does not serve is a 404 too (with a plain-text
        // body, not a Status). Listing tells the two apart: a served type lists, maybe empty,
        // in any namespace.
        Err(e) if is_404(&e) => match api.list_metadata(&ListParams::default()).await {
            Ok(list) => Err(LitmusError::ExperimentMissing {
                experiment: experiment.to_owned(),
                namespace: namespace.to_owned(),
                installed: installed(list.items.into_iter().filter_map(|o| o.metadata.name)),
            }),
            Err(e) if is_404(&e) => Err(LitmusError::CrdMissing {
                crd: format!("chaosexperiments.{GROUP}"),
                experiment: experiment.to_owned(),
                namespace: namespace.to_owned(),
            }),
            Err(e) => Err(look_up(e)),
        },
        Err(e) => Err(look_up(e)),
    }
}

/// A 404, whatever its body. (kube's `Status::is_not_found` looks at the reason only, and the
/// 404 of an unserved API group has no `Status` body, hence no reason.)
fn is_404(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// A short, sorted list of names for an error message.
fn installed(names: impl Iterator<Item = String>) -> String {
    const SHOWN: usize = 10;
    let mut names: Vec<String> = names.collect();
    if names.is_empty() {
        return "none".to_owned();
    }
    names.sort();
    let more = names.len().saturating_sub(SHOWN);
    names.truncate(SHOWN);
    let mut list = names.join(", ");
    if more > 0 {
        list.push_str(&format!(" and {more} more"));
    }
    list
}

/// Creates the engine for `req`, after checking that its `ChaosExperiment` exists (so a missing
/// experiment never leaves an engine behind).
///
/// # Errors
/// Those of [`ensure_experiment`]; [`LitmusError::EngineExists`] when an engine of that name is
/// already there; [`LitmusError::CreateEngine`] otherwise.
pub async fn create_engine(client: &kube::Client, req: &EngineRequest) -> Result<()> {
    ensure_experiment(client, &req.namespace, &req.experiment).await?;
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &req.namespace, &engine_resource());
    let create_error = |source| LitmusError::CreateEngine {
        engine: req.engine.clone(),
        namespace: req.namespace.clone(),
        source,
    };
    let object: DynamicObject = serde_json::from_value(engine_manifest(req))
        .map_err(|e| create_error(kube::Error::SerdeError(e)))?;
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => {
            tracing::info!(chaos.engine = %req.engine, chaos.experiment = %req.experiment,
                k8s.namespace = %req.namespace, "created chaos engine");
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.is_already_exists() => {
            Err(LitmusError::EngineExists {
                engine: req.engine.clone(),
                namespace: req.namespace.clone(),
            })
        }
        Err(e) => Err(create_error(e)),
    }
}

/// Asks the operator to abort the engine's experiment (`spec.engineState: stop`).
///
/// # Errors
/// [`LitmusError::EngineGone`] when the engine does not exist, [`LitmusError::StopEngine`]
/// otherwise.
pub async fn stop_engine(client: &kube::Client, namespace: &str, engine: &str) -> Result<()> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &engine_resource());
    match api
        .patch(
            engine,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"engineState": "stop"}})),
        )
        .await
    {
        Ok(_) => {
            tracing::info!(chaos.engine = %engine, k8s.namespace = %namespace, "stopping chaos engine");
            Ok(())
        }
        Err(e) if is_404(&e) => Err(LitmusError::EngineGone {
            engine: engine.to_owned(),
            namespace: namespace.to_owned(),
        }),
        Err(source) => Err(LitmusError::StopEngine {
            engine: engine.to_owned(),
            namespace: namespace.to_owned(),
            source,
        }),
    }
}

/// How a Litmus run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// `Pass`, `Fail`, `Error`, or `Stopped` (aborted, by us or by someone else).
    pub verdict: ChaosVerdict,
    /// The result's phase (`Completed`, `Completed_With_Probe_Failure`, `Stopped`, `Error` …);
    /// for an aborted run whose stop was not acknowledged, `Stopped`; for an engine that ended
    /// without a result, the engine's experiment status (e.g. `ChaosExperiment Not Found`).
    pub phase: String,
    /// `probeSuccessPercentage`, when it is a number.
    pub probe_success_pct: Option<f64>,
    /// `probeStatuses`.
    pub probes: Vec<ChaosProbe>,
    /// Why the run failed or stopped: the abort reason; else the experiment's
    /// `errorOutput.reason` (unwrapped when litmus-go wrote it as JSON); else, as litmus-go
    /// writes no `errorOutput` for probe failures, the failed probes' descriptions.
    pub error_reason: Option<String>,
    /// When the experiment started: the creation of its `ChaosResult` when that was created for
    /// this engine, else when [`follow`] first saw the result (or was called, if it never did).
    pub started_at: DateTime<Utc>,
    /// When [`follow`] saw the run end.
    pub ended_at: DateTime<Utc>,
}

/// What a `ChaosResult`'s `status` says.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultStatus {
    /// `experimentStatus.phase` (empty when not written yet).
    pub phase: String,
    /// `experimentStatus.verdict` (`Awaited` when not written yet).
    pub verdict: ChaosVerdict,
    /// `experimentStatus.probeSuccessPercentage` as a number; `None` for `"Awaited"`.
    pub probe_success_pct: Option<f64>,
    /// `probeStatuses`.
    pub probes: Vec<ChaosProbe>,
    /// `experimentStatus.errorOutput.reason`, else the failed probes' descriptions; see
    /// [`Outcome::error_reason`].
    pub error_reason: Option<String>,
}

impl ResultStatus {
    /// Reads a `ChaosResult`'s `status` object.
    ///
    /// # Errors
    /// The verdict as written, when it is not one Litmus defines.
    pub fn parse(status: &Value) -> std::result::Result<Self, String> {
        let experiment = &status["experimentStatus"];
        let verdict = match experiment["verdict"].as_str().unwrap_or_default() {
            "" => ChaosVerdict::Awaited,
            other => ChaosVerdict::parse(other).map_err(|_| other.to_owned())?,
        };
        let probe_success_pct = match &experiment["probeSuccessPercentage"] {
            Value::String(s) => s.trim().trim_end_matches('%').parse::<f64>().ok(),
            // Pre-2.0 results wrote a number.
            Value::Number(n) => n.as_f64(),
            _ => None,
        };
        let probes = status["probeStatuses"]
            .as_array()
            .map(|probes| {
                probes
                    .iter()
                    .map(|p| ChaosProbe {
                        name: p["name"].as_str().unwrap_or_default().to_owned(),
                        probe_type: p["type"]
                            .as_str()
                            .filter(|t| !t.is_empty())
                            .map(str::to_owned),
                        verdict: p["status"]["verdict"]
                            .as_str()
                            .unwrap_or("Awaited")
                            .to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            phase: experiment["phase"].as_str().unwrap_or_default().to_owned(),
            verdict,
            probe_success_pct,
            probes,
            error_reason: error_reason(&experiment["errorOutput"])
                .or_else(|| failed_probes(&status["probeStatuses"])),
        })
    }

    /// Whether the result will not change any more: terminal phase and a verdict other than
    /// `Awaited`.
    pub fn is_final(&self) -> bool {
        TERMINAL_PHASES.contains(&self.phase.as_str()) && self.verdict != ChaosVerdict::Awaited
    }
}

/// `errorOutput.reason`. litmus-go writes its errors as JSON
/// (`{"errorCode":…,"phase":…,"reason":…,"target":…}`); the inner reason (and target) is what
/// a reader wants.
fn error_reason(output: &Value) -> Option<String> {
    let raw = output["reason"].as_str().map(str::trim).unwrap_or_default();
    if raw.is_empty() {
        return output["errorCode"]
            .as_str()
            .filter(|code| !code.is_empty())
            .map(str::to_owned);
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(inner) if inner["reason"].is_string() => {
            let reason = inner["reason"].as_str().unwrap_or_default();
            Some(match inner["target"].as_str().filter(|t| !t.is_empty()) {
                Some(target) => format!("{reason} (target {target})"),
                None => reason.to_owned(),
            })
        }
        _ => Some(raw.to_owned()),
    }
}

/// For a result without `errorOutput` (litmus-go writes none for probe failures): the failed
/// probes and what they said.
fn failed_probes(statuses: &Value) -> Option<String> {
    let failed: Vec<String> = statuses
        .as_array()?
        .iter()
        .filter(|p| p["status"]["verdict"].as_str() == Some("Failed"))
        .map(|p| {
            let name = p["name"].as_str().unwrap_or("unnamed");
            match p["status"]["description"]
                .as_str()
                .filter(|d| !d.is_empty())
            {
                Some(description) => format!("probe {name} failed: {description}"),
                None => format!("probe {name} failed"),
            }
        })
        .collect();
    (!failed.is_empty()).then(|| failed.join("; "))
}

/// One look at the engine and its result.
struct Observation {
    /// `status.engineStatus` (empty before the operator saw the engine).
    engine_status: String,
    /// `status.experiments[name=experiment].status`.
    experiment_status: Option<String>,
    /// The result, when there is one for this engine (by `chaosUID`).
    result: Option<ResultStatus>,
    /// When that result was created, if after the engine (i.e. for this run).
    result_created_for_engine: Option<DateTime<Utc>>,
}

impl Observation {
    fn engine_ended(&self) -> bool {
        matches!(self.engine_status.as_str(), "completed" | "stopped")
    }
}

struct Target<'a> {
    engines: Api<DynamicObject>,
    results: Api<DynamicObject>,
    namespace: &'a str,
    engine: &'a str,
    experiment: &'a str,
    result_name: String,
}

impl Target<'_> {
    async fn observe(&self) -> Result<Observation> {
        let engine = self
            .engines
            .get_opt(self.engine)
            .await
            .map_err(|source| LitmusError::Read {
                kind: "ChaosEngine",
                name: self.engine.to_owned(),
                namespace: self.namespace.to_owned(),
                source,
            })?
            .ok_or_else(|| LitmusError::EngineGone {
                engine: self.engine.to_owned(),
                namespace: self.namespace.to_owned(),
            })?;
        let status = &engine.data["status"];
        let engine_status = status["engineStatus"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let experiment_status = status["experiments"].as_array().and_then(|experiments| {
            experiments
                .iter()
                .find(|e| e["name"].as_str() == Some(self.experiment))
                .and_then(|e| e["status"].as_str())
                .map(str::to_owned)
        });
        let result = self
            .results
            .get_opt(&self.result_name)
            .await
            .map_err(|source| LitmusError::Read {
                kind: "ChaosResult",
                name: self.result_name.clone(),
                namespace: self.namespace.to_owned(),
                source,
            })?;
        // A result left by an earlier engine of the same name (results are kept and reused
        // across re-runs) is not this run's until the experiment relabels it.
        let result = result.filter(|r| {
            let uid = r.metadata.labels.as_ref().and_then(|l| l.get("chaosUID"));
            uid.is_none() || uid == engine.metadata.uid.as_ref()
        });
        let Some(result) = result else {
            return Ok(Observation {
                engine_status,
                experiment_status,
                result: None,
                result_created_for_engine: None,
            });
        };
        let parsed = ResultStatus::parse(&result.data["status"]).map_err(|verdict| {
            LitmusError::UnknownVerdict {
                name: self.result_name.clone(),
                namespace: self.namespace.to_owned(),
                verdict,
            }
        })?;
        let created = |o: &DynamicObject| {
            o.metadata.creation_timestamp.as_ref().and_then(|t| {
                DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().unsigned_abs())
            })
        };
        let result_created_for_engine = match (created(&result), created(&engine)) {
            (Some(r), Some(e)) if r >= e => Some(r),
            _ => None,
        };
        Ok(Observation {
            engine_status,
            experiment_status,
            result: Some(parsed),
            result_created_for_engine,
        })
    }
}

/// Follows the engine until its experiment's result is final, or until `abort` carries a
/// reason.
///
/// Every [`POLL_INTERVAL`] it reads the engine and the `ChaosResult` `<engine>-<experiment>`
/// (ignoring one labelled with another engine's `chaosUID`). A final result is returned as it
/// is. An engine that ends (`completed` or `stopped`) without a final result for `ack_timeout`
/// gives verdict `Error` (or `Stopped`, when someone else stopped it) with the engine's
/// experiment status as the reason.
///
/// When `abort` changes to `Some(reason)` (or holds one already), it patches
/// `engineState: stop` and waits at most `ack_timeout` for the operator to acknowledge
/// (`engineStatus` `stopped`/`completed`, or a final result). Either way the outcome is
/// `Stopped` with `reason` as its error reason; an unacknowledged stop says so in the reason. A
/// closed `abort` channel is never an abort. `follow` never gives up on its own: bound it with
/// the abort signal.
///
/// # Errors
/// [`LitmusError::EngineGone`] if the engine is deleted, [`LitmusError::Read`] when the API
/// fails, [`LitmusError::UnknownVerdict`], and [`LitmusError::StopEngine`] when the stop patch
/// fails.
#[tracing::instrument(skip_all, fields(chaos.engine = %engine, chaos.experiment = %experiment, k8s.namespace = %namespace))]
pub async fn follow(
    client: &kube::Client,
    namespace: &str,
    engine: &str,
    experiment: &str,
    mut abort: watch::Receiver<Option<String>>,
    ack_timeout: Duration,
) -> Result<Outcome> {
    let target = Target {
        engines: Api::namespaced_with(client.clone(), namespace, &engine_resource()),
        results: Api::namespaced_with(client.clone(), namespace, &result_resource()),
        namespace,
        engine,
        experiment,
        result_name: result_name(engine, experiment),
    };
    let called_at = Utc::now();
    let mut started_at: Option<DateTime<Utc>> = None;
    let mut last: Option<ResultStatus> = None;
    let mut ended_since: Option<Instant> = None;
    let mut abort_open = true;
    loop {
        let reason = abort.borrow_and_update().clone();
        if let Some(reason) = reason {
            let started_at = started_at.unwrap_or(called_at);
            return abort_run(client, &target, reason, ack_timeout, started_at, last).await;
        }
        let seen = target.observe().await?;
        if let Some(result) = seen.result.clone() {
            let started = *started_at
                .get_or_insert_with(|| seen.result_created_for_engine.unwrap_or_else(Utc::now));
            if result.is_final() {
                tracing::info!(chaos.verdict = result.verdict.as_str(), chaos.phase = %result.phase,
                    "chaos result final");
                return Ok(outcome(result, started, None));
            }
            last = Some(result);
        }
        if seen.engine_ended() {
            // The operator marks the engine ended after the experiment wrote its result; give
            // a late result `ack_timeout` to arrive before calling the run broken.
            let since = *ended_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= ack_timeout {
                let stopped = seen.engine_status == "stopped";
                let phase = seen
                    .experiment_status
                    .clone()
                    .or_else(|| last.as_ref().map(|r| r.phase.clone()))
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| seen.engine_status.clone());
                let probes = last.map(|r| r.probes).unwrap_or_default();
                tracing::warn!(chaos.engine_status = %seen.engine_status, chaos.phase = %phase,
                    "chaos engine ended without a final result");
                return Ok(Outcome {
                    verdict: if stopped {
                        ChaosVerdict::Stopped
                    } else {
                        ChaosVerdict::Error
                    },
                    error_reason: Some(format!(
                        "ChaosEngine {engine} {} without a final ChaosResult {} (experiment status: {})",
                        seen.engine_status,
                        target.result_name,
                        seen.experiment_status.as_deref().unwrap_or("none"),
                    )),
                    phase,
                    probe_success_pct: None,
                    probes,
                    started_at: started_at.unwrap_or(called_at),
                    ended_at: Utc::now(),
                });
            }
        }
        tokio::select! {
            () = tokio::time::sleep(POLL_INTERVAL) => {}
            changed = abort.changed(), if abort_open => {
                if changed.is_err() {
                    abort_open = false;
                }
            }
        }
    }
}

fn outcome(result: ResultStatus, started_at: DateTime<Utc>, reason: Option<String>) -> Outcome {
    Outcome {
        verdict: result.verdict,
        phase: result.phase,
        probe_success_pct: result.probe_success_pct,
        probes: result.probes,
        error_reason: reason.or(result.error_reason),
        started_at,
        ended_at: Utc::now(),
    }
}

async fn abort_run(
    client: &kube::Client,
    target: &Target<'_>,
    reason: String,
    ack_timeout: Duration,
    started_at: DateTime<Utc>,
    last: Option<ResultStatus>,
) -> Result<Outcome> {
    tracing::info!(chaos.abort_reason = %reason, "aborting chaos run");
    stop_engine(client, target.namespace, target.engine).await?;
    let deadline = Instant::now() + ack_timeout;
    let mut last = last;
    loop {
        match target.observe().await {
            Ok(seen) => {
                let result_final = seen.result.as_ref().is_some_and(ResultStatus::is_final);
                let engine_ended = seen.engine_ended();
                if let Some(result) = seen.result {
                    last = Some(result);
                }
                if result_final || engine_ended {
                    let mut result = last.unwrap_or_else(stopped_status);
                    if !result_final {
                        result.phase = "Stopped".to_owned();
                    }
                    result.verdict = ChaosVerdict::Stopped;
                    return Ok(outcome(result, started_at, Some(reason)));
                }
            }
            // Deleting the engine stops its experiment too.
            Err(LitmusError::EngineGone { .. }) => {
                let result = stopped_status();
                return Ok(outcome(result, started_at, Some(reason)));
            }
            Err(e) => {
                tracing::warn!(error.message = %e, error.cause_chain = ?e,
                    "reading chaos engine while waiting for stop");
            }
        }
        let now = Instant::now();
        if now >= deadline {
            tracing::warn!(ack_timeout = ?ack_timeout, "litmus did not acknowledge the stop");
            let mut result = last.unwrap_or_else(stopped_status);
            result.phase = "Stopped".to_owned();
            result.verdict = ChaosVerdict::Stopped;
            let reason = format!(
                "{reason} (stop not acknowledged by the Litmus operator within {:.1}s; the experiment may still be running)",
                ack_timeout.as_secs_f64()
            );
            return Ok(outcome(result, started_at, Some(reason)));
        }
        tokio::time::sleep(ACK_POLL_INTERVAL.min(deadline - now)).await;
    }
}

fn stopped_status() -> ResultStatus {
    ResultStatus {
        phase: "Stopped".to_owned(),
        verdict: ChaosVerdict::Stopped,
        probe_success_pct: None,
        probes: Vec::new(),
        error_reason: None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn request() -> EngineRequest {
        EngineRequest {
            namespace: "shop".into(),
            engine: "web-pod-delete-1".into(),
            experiment: "pod-delete".into(),
            app: AppInfo {
                namespace: "shop".into(),
                label: "app=web".into(),
                kind: "deployment".into(),
            },
            service_account: "pod-delete-sa".into(),
            env: BTreeMap::from([
                ("TOTAL_CHAOS_DURATION".into(), "30".into()),
                ("CHAOS_INTERVAL".into(), "10".into()),
            ]),
            probes: vec![
                json!({"name": "web-up", "type": "httpProbe", "mode": "Continuous",
                "httpProbe/inputs": {"url": "http://web", "method": {"get": {"criteria": "==", "responseCode": "200"}}},
                "runProperties": {"probeTimeout": "5s", "interval": "2s"}}),
            ],
        }
    }

    #[test]
    fn engine_manifest_has_the_fields_litmus_reads() {
        let manifest = engine_manifest(&request());
        assert_eq!(manifest["apiVersion"], "litmuschaos.io/v1alpha1");
        assert_eq!(manifest["kind"], "ChaosEngine");
        assert_eq!(manifest["metadata"]["name"], "web-pod-delete-1");
        let spec = &manifest["spec"];
        assert_eq!(spec["engineState"], "active");
        assert_eq!(
            spec["appinfo"],
            json!({"appns": "shop", "applabel": "app=web", "appkind": "deployment"})
        );
        assert_eq!(spec["chaosServiceAccount"], "pod-delete-sa");
        assert_eq!(spec["experiments"][0]["name"], "pod-delete");
        // Sorted by name: the manifest is stable for --dry-run output.
        assert_eq!(
            spec["experiments"][0]["spec"]["components"]["env"],
            json!([{"name": "CHAOS_INTERVAL", "value": "10"},
                   {"name": "TOTAL_CHAOS_DURATION", "value": "30"}])
        );
        assert_eq!(spec["experiments"][0]["spec"]["probe"][0]["name"], "web-up");
    }

    #[test]
    fn engine_manifest_without_probes_has_no_probe_key() {
        let manifest = engine_manifest(&EngineRequest {
            probes: vec![],
            ..request()
        });
        assert!(
            manifest["spec"]["experiments"][0]["spec"]
                .get("probe")
                .is_none()
        );
    }

    #[test]
    fn a_running_result_is_awaited_and_not_final() {
        let status = ResultStatus::parse(&json!({
            "experimentStatus": {"phase": "Running", "verdict": "Awaited", "probeSuccessPercentage": "Awaited"},
            "probeStatuses": [{"name": "web-up", "type": "httpProbe", "mode": "Continuous",
                               "status": {"verdict": "Awaited"}}]
        }))
        .unwrap();
        assert_eq!(status.verdict, ChaosVerdict::Awaited);
        assert_eq!(status.probe_success_pct, None);
        assert_eq!(status.probes[0].verdict, "Awaited");
        assert!(!status.is_final());
    }

    #[test]
    fn a_completed_result_with_a_verdict_is_final() {
        let status = ResultStatus::parse(&json!({
            "experimentStatus": {"phase": "Completed", "verdict": "Pass", "probeSuccessPercentage": "100"},
            "probeStatuses": [{"name": "web-up", "type": "httpProbe", "status": {"verdict": "Passed"}}]
        }))
        .unwrap();
        assert!(status.is_final());
        assert_eq!(status.probe_success_pct, Some(100.0));
        assert_eq!(
            status.probes,
            vec![ChaosProbe {
                name: "web-up".into(),
                probe_type: Some("httpProbe".into()),
                verdict: "Passed".into()
            }]
        );
    }

    #[test]
    fn a_terminal_phase_with_an_awaited_verdict_is_not_final() {
        let status = ResultStatus::parse(
            &json!({"experimentStatus": {"phase": "Completed", "verdict": "Awaited"}}),
        )
        .unwrap();
        assert!(!status.is_final());
    }

    #[test]
    fn a_missing_status_is_awaited() {
        let status = ResultStatus::parse(&Value::Null).unwrap();
        assert_eq!(status.verdict, ChaosVerdict::Awaited);
        assert_eq!(status.phase, "");
        assert!(!status.is_final());
    }

    #[test]
    fn litmus_go_json_error_reasons_are_unwrapped() {
        let status = ResultStatus::parse(&json!({"experimentStatus": {
            "phase": "Error", "verdict": "Error", "probeSuccessPercentage": "0",
            "errorOutput": {"errorCode": "STATUS_CHECKS_ERROR",
                "reason": "{\"errorCode\":\"STATUS_CHECKS_ERROR\",\"phase\":\"PreChaos\",\"reason\":\"no pod found\",\"target\":\"{appLabel: app=web}\"}"}}}))
        .unwrap();
        assert_eq!(status.verdict, ChaosVerdict::Error);
        assert_eq!(
            status.error_reason.as_deref(),
            Some("no pod found (target {appLabel: app=web})")
        );
        assert_eq!(status.probe_success_pct, Some(0.0));
    }

    #[test]
    fn plain_error_reasons_and_bare_codes_are_kept() {
        let plain = error_reason(&json!({"errorCode": "GENERIC_ERROR", "reason": "boom"}));
        assert_eq!(plain.as_deref(), Some("boom"));
        let code = error_reason(&json!({"errorCode": "TIMEOUT"}));
        assert_eq!(code.as_deref(), Some("TIMEOUT"));
        assert_eq!(error_reason(&Value::Null), None);
    }

    #[test]
    fn a_probe_failure_is_explained_by_the_failed_probes() {
        let status = ResultStatus::parse(&json!({
            "experimentStatus": {"phase": "Completed_With_Probe_Failure", "verdict": "Fail", "probeSuccessPercentage": "50"},
            "probeStatuses": [
                {"name": "web-up", "type": "httpProbe", "status": {"verdict": "Failed", "description": "Actual value: 503, Expected: 200"}},
                {"name": "db-up", "type": "cmdProbe", "status": {"verdict": "Passed"}}]}))
        .unwrap();
        assert_eq!(status.verdict, ChaosVerdict::Fail);
        assert_eq!(status.probe_success_pct, Some(50.0));
        assert_eq!(
            status.error_reason.as_deref(),
            Some("probe web-up failed: Actual value: 503, Expected: 200")
        );
    }

    #[test]
    fn numeric_percentages_from_old_results_are_read() {
        let status = ResultStatus::parse(&json!({"experimentStatus": {
            "phase": "Completed_With_Probe_Failure", "verdict": "Fail", "probeSuccessPercentage": 50}}))
        .unwrap();
        assert_eq!(status.probe_success_pct, Some(50.0));
        assert!(status.is_final());
    }

    #[test]
    fn an_unknown_verdict_is_an_error() {
        let err = ResultStatus::parse(
            &json!({"experimentStatus": {"phase": "Completed", "verdict": "Maybe"}}),
        )
        .unwrap_err();
        assert_eq!(err, "Maybe");
    }
}
