//! The admission gate: a Kubernetes ValidatingWebhook (`POST /v1/admission/validate`,
//! `admission.k8s.io/v1` AdmissionReview) that refuses a pod-template change of a Deployment,
//! StatefulSet or DaemonSet while the cluster's newest infra snapshot fails, is older than a
//! configured age, or is missing.
//!
//! - Only a change that rolls pods out is judged: a CREATE, or an UPDATE whose
//!   `spec.template` differs from the old object's. Scaling, labels, annotations and status
//!   are admitted without reading the store.
//! - `--admission-mode warn` admits what it would refuse, with a warning the client prints.
//! - The break-glass annotation `deploygraph.io/gate-override: <reason>` admits it, with a
//!   warning, and records who and why (a [`GateOverride`], linked to the deployment the change
//!   becomes) before answering; dry runs record nothing.
//! - The answer is bounded by `timeout`: a store that does not answer in time gets a 503 and
//!   the webhook's `failurePolicy` decides (`Fail`: refused, `Ignore`: admitted). In warn
//!   mode it is admitted with a warning instead.
//!
//! The gate listens with TLS on its own port ([`TlsListener`]); the rest of the API is not
//! served there.

use crate::AppState;
use crate::error::ApiError;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use deploygraph_model::admission::{GATE_OVERRIDE_ANNOTATION, GATE_OVERRIDE_REASON_MAX_CHARS};
use deploygraph_model::{GateOverride, InfraSnapshot, Verdict};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Largest AdmissionReview accepted: the API server sends the new and the old object, each up
/// to its own 3 MiB limit.
pub const MAX_REVIEW_BYTES: usize = 8 * 1024 * 1024;

/// What the gate does with a change it would refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Refuse it (HTTP 200, `allowed: false`, code 403, the failed checks named).
    Deny,
    /// Admit it with a warning.
    Warn,
}

impl Mode {
    /// `deny` or `warn`.
    ///
    /// # Errors
    /// Any other word.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "deny" => Ok(Self::Deny),
            "warn" => Ok(Self::Warn),
            other => Err(format!("{other:?}: expected deny or warn")),
        }
    }
}

/// The gate's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Refuse or warn.
    pub mode: Mode,
    /// A snapshot older than this does not count.
    pub max_snapshot_age: Duration,
    /// Only snapshots of this cluster count (all when `None`).
    pub cluster: Option<String>,
    /// Longest the store may take to answer a review; far below the webhook's timeout.
    pub timeout: Duration,
    /// The watcher's hash of a pod template (`spec.template` as JSON), recorded on overrides
    /// so each is linked to the deployment of exactly the template it admitted.
    pub template_hash: Option<fn(&Value) -> Option<String>>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Deny,
            max_snapshot_age: Duration::from_secs(3600),
            cluster: None,
            timeout: Duration::from_secs(2),
            template_hash: None,
        }
    }
}

#[derive(Clone)]
struct Gate {
    state: AppState,
    config: Arc<Config>,
}

/// The gate's router: `POST /v1/admission/validate` and `GET /healthz`.
pub fn router(state: AppState, config: Config) -> Router {
    Router::new()
        .route("/v1/admission/validate", post(validate))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_REVIEW_BYTES))
        .with_state(Gate {
            state,
            config: Arc::new(config),
        })
}

/// The parts of an AdmissionReview's request the gate reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    /// `request.uid`, echoed in the response.
    pub uid: String,
    /// `request.kind.kind` when its group is `apps`.
    pub kind: Option<String>,
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: String,
    /// `request.namespace`.
    pub namespace: String,
    /// `request.name`, else the object's name.
    pub name: String,
    /// `request.userInfo.username`.
    pub user: String,
    /// `request.dryRun`.
    pub dry_run: bool,
    /// The object's `deploygraph.io/gate-override` annotation, trimmed, when not empty.
    pub override_reason: Option<String>,
    /// Whether the change rolls pods out: a CREATE, or a changed `spec.template`.
    pub template_changed: bool,
    /// The object's pod template's hash (`hash` of [`parse_review`]), taken only when an
    /// override is asked for (it is recorded with it).
    pub template_hash: Option<String>,
}

const WORKLOAD_KINDS: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];

/// Reads an AdmissionReview; the error names the field that is missing or wrong.
///
/// # Errors
/// `(field, message)` for a body that is not an `admission.k8s.io/v1` AdmissionReview with a
/// request.
pub fn parse_review(
    body: &[u8],
    hash: Option<fn(&Value) -> Option<String>>,
) -> Result<Review, (String, String)> {
    let bad = |field: &str, message: &str| (field.to_owned(), message.to_owned());
    let review: Value =
        serde_json::from_slice(body).map_err(|e| bad("body", &format!("not JSON: {e}")))?;
    if !review.is_object() {
        return Err(bad("body", "must be a JSON object (an AdmissionReview)"));
    }
    if review["apiVersion"] != "admission.k8s.io/v1" {
        return Err(bad("apiVersion", "must be admission.k8s.io/v1"));
    }
    if review["kind"] != "AdmissionReview" {
        return Err(bad("kind", "must be AdmissionReview"));
    }
    let request = &review["request"];
    if !request.is_object() {
        return Err(bad("request", "is required (an object)"));
    }
    let text = |field: &str| -> Result<String, (String, String)> {
        match &request[field] {
            Value::String(s) => Ok(s.clone()),
            Value::Null => Ok(String::new()),
            _ => Err(bad(&format!("request.{field}"), "must be a string")),
        }
    };
    let uid = text("uid")?;
    if uid.is_empty() {
        return Err(bad("request.uid", "is required"));
    }
    let operation = text("operation")?;
    if !["CREATE", "UPDATE", "DELETE", "CONNECT"].contains(&operation.as_str()) {
        return Err(bad(
            "request.operation",
            "must be CREATE, UPDATE, DELETE or CONNECT",
        ));
    }
    let kind = &request["kind"];
    if !kind.is_object() {
        return Err(bad("request.kind", "is required (group, version, kind)"));
    }
    let object = &request["object"];
    let old = &request["oldObject"];
    for (field, value) in [("request.object", object), ("request.oldObject", old)] {
        if !(value.is_null() || value.is_object()) {
            return Err(bad(field, "must be an object"));
        }
    }
    let workload = (kind["group"] == "apps")
        .then(|| kind["kind"].as_str())
        .flatten()
        .filter(|k| WORKLOAD_KINDS.contains(k))
        .map(str::to_owned);
    if workload.is_some() && matches!(operation.as_str(), "CREATE" | "UPDATE") {
        if !object.is_object() {
            return Err(bad("request.object", "is required for CREATE and UPDATE"));
        }
        if operation == "UPDATE" && !old.is_object() {
            return Err(bad("request.oldObject", "is required for UPDATE"));
        }
    }
    let annotations = &object["metadata"]["annotations"];
    let override_reason = match &annotations[GATE_OVERRIDE_ANNOTATION] {
        Value::String(s) if !s.trim().is_empty() => Some(
            s.trim()
                .chars()
                .take(GATE_OVERRIDE_REASON_MAX_CHARS)
                .collect(),
        ),
        _ => None,
    };
    let template = &object["spec"]["template"];
    let template_hash = hash
        .filter(|_| override_reason.is_some())
        .and_then(|hash| hash(template));
    let template_changed = match operation.as_str() {
        "CREATE" => true,
        "UPDATE" => *template != old["spec"]["template"],
        _ => false,
    };
    let name = match text("name")? {
        n if n.is_empty() => object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        n => n,
    };
    let user = match &request["userInfo"]["username"] {
        Value::String(s) => s.clone(),
        _ => String::new(),
    };
    Ok(Review {
        uid,
        kind: workload,
        operation,
        namespace: text("namespace")?,
        name,
        user,
        dry_run: request["dryRun"].as_bool().unwrap_or(false),
        override_reason,
        template_changed,
        template_hash,
    })
}

/// Why the snapshot does not let a change through, or `None` when it does; with the warnings
/// (checks whose outcome is unknown).
pub fn judge(
    snapshot: Option<&InfraSnapshot>,
    config: &Config,
    now: DateTime<Utc>,
) -> (Option<String>, Vec<String>) {
    let of_cluster = config
        .cluster
        .as_deref()
        .map(|c| format!(" of cluster {c}"))
        .unwrap_or_default();
    let Some(snapshot) = snapshot else {
        return (
            Some(format!(
                "no infra snapshot{of_cluster} recorded in the last {}",
                human(config.max_snapshot_age)
            )),
            Vec::new(),
        );
    };
    let age = (now - snapshot.taken_at).to_std().unwrap_or_default();
    if age > config.max_snapshot_age {
        return (
            Some(format!(
                "the newest infra snapshot{of_cluster} ({}) was taken {} ago, more than {}",
                snapshot.uid,
                human(age),
                human(config.max_snapshot_age)
            )),
            Vec::new(),
        );
    }
    let named = |status: Verdict| -> Vec<String> {
        snapshot
            .checks
            .iter()
            .filter(|c| c.status == status)
            .map(|c| format!("{} {}: {}", c.kind, c.target, c.detail))
            .collect()
    };
    let unknown = named(Verdict::Unknown)
        .into_iter()
        .map(|c| {
            format!(
                "deploygraph gate: check unknown in snapshot {}: {c}",
                snapshot.uid
            )
        })
        .collect();
    match snapshot.verdict {
        Verdict::Fail => (
            Some(format!(
                "infra snapshot{of_cluster} {} taken {} ago failed: {}",
                snapshot.uid,
                human(age),
                named(Verdict::Fail).join("; ")
            )),
            unknown,
        ),
        Verdict::Pass | Verdict::Unknown => (None, unknown),
    }
}

fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

/// `work` within `limit`; the reason when the store failed or did not answer in time.
async fn bounded<T>(
    limit: Duration,
    work: impl std::future::Future<Output = deploygraph_store::Result<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("the store did not answer within {}", human(limit))),
    }
}

/// The AdmissionReview answering `uid`.
fn answer(uid: &str, allowed: bool, refusal: Option<&str>, warnings: &[String]) -> Response {
    let mut response = json!({"uid": uid, "allowed": allowed});
    if let Some(message) = refusal {
        response["status"] = json!({"code": 403, "reason": "Forbidden", "message": message});
    }
    if !warnings.is_empty() {
        // kubectl and client-go print each warning (long ones may be truncated by the API
        // server).
        response["warnings"] = json!(warnings);
    }
    Json(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response
    }))
    .into_response()
}

async fn validate(State(gate): State<Gate>, body: Bytes) -> Response {
    let metrics = gate.state.metrics.clone();
    let review = match parse_review(&body, gate.config.template_hash) {
        Ok(review) => review,
        Err((field, message)) => {
            metrics.admission_review("invalid");
            // 400, as the API server expects of a webhook that cannot read what it was sent.
            return ApiError {
                status: axum::http::StatusCode::BAD_REQUEST,
                code: "invalid_review",
                message,
                field: Some(field),
                retry_after: None,
            }
            .into_response();
        }
    };
    let config = gate.config.as_ref();
    let gated = review.kind.is_some() && review.template_changed;
    if !gated {
        metrics.admission_review("allowed");
        return answer(&review.uid, true, None, &[]);
    }
    let now = Utc::now();
    let retry_after = gate.state.config.retry_after_secs;
    // The newest snapshot that counts: the configured cluster's (read by index), else the
    // newest of all.
    let newest = gate.state.store.latest_snapshot(config.cluster.as_deref());
    let snapshot = match bounded(config.timeout, newest).await {
        Ok(snapshot) => snapshot,
        Err(why) => {
            tracing::warn!(review.uid = %review.uid, error.message = %why, "admission review: no snapshot to judge by");
            if config.mode == Mode::Warn {
                metrics.admission_review("warned");
                return answer(
                    &review.uid,
                    true,
                    None,
                    &[format!(
                        "deploygraph gate: could not read infra snapshots ({why}); admitted (warn mode)"
                    )],
                );
            }
            metrics.admission_review("error");
            return ApiError::unavailable(
                format!("infra snapshots could not be read: {why}"),
                retry_after,
            )
            .into_response();
        }
    };
    let (refusal, mut warnings) = judge(snapshot.as_ref(), config, now);
    let Some(refusal) = refusal else {
        metrics.admission_review("allowed");
        return answer(&review.uid, true, None, &warnings);
    };
    let kind = review.kind.clone().unwrap_or_default();
    let workload = format!("{kind} {}/{}", review.namespace, review.name);
    if let Some(reason) = &review.override_reason {
        let record = GateOverride {
            uid: GateOverride::uid_for(&review.uid),
            at: now,
            cluster: config.cluster.clone(),
            kind: kind.clone(),
            namespace: review.namespace.clone(),
            name: review.name.clone(),
            operation: review.operation.clone(),
            user: review.user.clone(),
            reason: reason.clone(),
            refusal: refusal.clone(),
            template_hash: review.template_hash.clone(),
            snapshot_uid: snapshot.as_ref().map(|s| s.uid.clone()),
            deployment_uid: None,
        };
        if !review.dry_run {
            let stored = bounded(
                config.timeout,
                gate.state.store.record_gate_override(&record),
            )
            .await;
            match stored {
                Ok(_) => {}
                Err(why) => {
                    tracing::warn!(review.uid = %review.uid, error.message = %why, "admission review: the override could not be recorded");
                    metrics.admission_review("error");
                    return ApiError::unavailable(
                        format!("the gate override could not be recorded: {why}"),
                        retry_after,
                    )
                    .into_response();
                }
            }
        }
        tracing::warn!(review.uid = %review.uid, workload = %workload, user = %review.user, reason = %reason, refusal = %refusal, dry_run = review.dry_run, "admission gate overridden");
        metrics.admission_review("overridden");
        warnings.insert(
            0,
            format!(
                "deploygraph gate overridden by {} ({reason}): {refusal}",
                review.user
            ),
        );
        return answer(&review.uid, true, None, &warnings);
    }
    if config.mode == Mode::Warn {
        tracing::info!(review.uid = %review.uid, workload = %workload, refusal = %refusal, "admission gate: admitted in warn mode");
        metrics.admission_review("warned");
        warnings.insert(
            0,
            format!("deploygraph gate would refuse this change: {refusal}"),
        );
        return answer(&review.uid, true, None, &warnings);
    }
    tracing::info!(review.uid = %review.uid, workload = %workload, user = %review.user, refusal = %refusal, "admission gate: refused");
    metrics.admission_review("denied");
    answer(
        &review.uid,
        false,
        Some(&format!(
            "deploygraph gate refused the rollout of {workload}: {refusal}. Fix the infrastructure or take a new snapshot; to roll out anyway, annotate the {kind} with {GATE_OVERRIDE_ANNOTATION}=<reason> (recorded)."
        )),
        &warnings,
    )
}
