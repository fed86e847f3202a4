//! Writes a world through the public HTTP API (the router in-process, as the CLI's local mode
//! does) in the order its facts are recorded, then reads what deploygraph answers for each
//! scored alert: `GET /v1/alerts/{fingerprint}/suspects`.

use crate::generator::{CanaryVerdict, Cause, ChangeSource, Deploy, World, Write};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const NAMESPACE: &str = "prod";
const ENVIRONMENT: &str = "production";
/// Who makes the changes that are not rollouts.
const OPERATOR: &str = "ops@acme.io";

/// deploygraph's answer for one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Suspects' uids (deployments and changes) with their `confidence_score`, most likely
    /// first.
    pub suspects: Vec<(String, f64)>,
    /// The chaos run the alert is attributed to (`chaos.run_uid`).
    pub chaos: Option<String>,
    /// The stored alert's uid.
    pub alert_uid: String,
    /// The probability that no recorded change caused it.
    pub unexplained: f64,
}

/// What the API stored for a world, and its answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// Stored uid of each of the world's deployments.
    pub deployments: Vec<String>,
    /// Stored uid of each change that is not a rollout.
    pub changes: Vec<String>,
    /// Stored uid of each chaos run.
    pub chaos: Vec<String>,
    /// Per scored alert (index into `World::alerts`), the answer.
    pub answers: Vec<(usize, Answer)>,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// FNV-1a: stable digests and commit shas from names (no dependency on std's hasher).
fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn hex(parts: &[&str], digits: usize) -> String {
    let mut out = String::new();
    let mut k = 0u32;
    while out.len() < digits {
        let salt = k.to_string();
        let mut all: Vec<&str> = parts.to_vec();
        all.push(&salt);
        out.push_str(&format!("{:016x}", fnv(&all)));
        k += 1;
    }
    out.truncate(digits);
    out
}

/// The `POST /v1/deployments` body of deployment `i`.
pub fn deployment_body(world: &World, i: usize) -> Value {
    let d: &Deploy = &world.deployments[i];
    let service = &world.services[d.service];
    let tag = format!("v1.{}.0", d.version);
    let commit = d.commit.to_string();
    let mut body = json!({
        "id": format!("{service}-run-{i}"),
        "service": service, "namespace": NAMESPACE, "environment": ENVIRONMENT,
        "version": tag,
        "commit": {"sha": hex(&[service, &commit], 40),
                   "author": format!("dev{}@acme.io", d.commit % 5),
                   "committed_at": time(d.started_at - chrono::Duration::minutes(40))},
        "images": [{"repository": format!("ghcr.io/acme/{service}"), "tag": tag,
                    "digest": format!("sha256:{}", hex(&[service, &tag], 64))}],
        "status": d.status.as_str(),
        "started_at": time(d.started_at),
        "changes": d.changes.iter().map(|c| json!({
            "path": c.path, "kind": c.kind, "before": c.before, "after": c.after
        })).collect::<Vec<_>>(),
    });
    if let Some(end) = d.finished_at {
        body["finished_at"] = json!(time(end));
    }
    body
}

/// The `POST /v1/changes` body of change `i`.
pub fn change_body(world: &World, i: usize) -> Value {
    let c = &world.changes[i];
    let kind = match c.source {
        ChangeSource::ConfigMap => "config_map",
        ChangeSource::FeatureFlag => "feature_flag",
    };
    json!({
        "kind": kind,
        "services": [{"name": world.services[c.service], "namespace": NAMESPACE,
                      "environment": ENVIRONMENT}],
        "actor": OPERATOR,
        "at": time(c.at),
        "diff": [{"key": c.key.path, "before": c.key.before, "after": c.key.after}],
    })
}

/// The `POST /v1/canary/analyses` body of canary analysis `i` of deployment `uid`.
fn canary_body(world: &World, i: usize, uid: &str) -> Value {
    let c = &world.canaries[i];
    let verdict = c.verdict.as_str();
    let rule = match c.verdict {
        CanaryVerdict::Fail => format!("{} is significantly worse than the baseline", c.metric),
        CanaryVerdict::Pass => "every metric within its tolerance".to_owned(),
        CanaryVerdict::Inconclusive => "too few requests to judge".to_owned(),
        CanaryVerdict::NoData => "no series for the canary".to_owned(),
    };
    json!({
        "deployment": uid, "template": "http-canary", "verdict": verdict,
        "baseline_kind": "side_by_side", "started_at": time(c.started_at),
        "decided_at": time(c.decided_at),
        "analyses": ((c.decided_at - c.started_at).num_seconds() / 30).max(1),
        "rule": rule,
        "metrics": [{"name": c.metric, "kind": if c.ratio { "ratio" } else { "distribution" },
                     "outcome": verdict, "critical": c.ratio, "rule": rule}],
    })
}

fn chaos_body(world: &World, i: usize, ended: bool) -> Value {
    let run = &world.chaos[i];
    let mut body = json!({
        "scenario": format!("{}-{}", world.services[run.service], run.experiment),
        "experiment": run.experiment,
        "target": {"name": world.services[run.service], "namespace": NAMESPACE, "environment": ENVIRONMENT},
        "verdict": "Awaited", "phase": "Running", "started_at": time(run.started_at),
    });
    if ended && let Some(end) = run.ended_at {
        body["verdict"] = json!("Pass");
        body["phase"] = json!("Completed");
        body["ended_at"] = json!(time(end));
    }
    body
}

fn webhook(world: &World, alerts: &[usize]) -> Value {
    let items: Vec<Value> = alerts
        .iter()
        .map(|i| {
            let a = &world.alerts[*i];
            let service = &world.services[a.service];
            json!({
                "status": "firing",
                "labels": {"alertname": a.name, "service": service, "namespace": NAMESPACE,
                           "environment": ENVIRONMENT, "severity": "critical"},
                "annotations": {"summary": format!("{} on {service}", a.name)},
                "startsAt": time(a.starts_at), "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": crate::metrics::generator_url(world, *i), "fingerprint": a.fingerprint
            })
        })
        .collect();
    json!({"version": "4", "groupKey": format!("{{}}:{{alertname=\"{}\"}}", world.alerts[alerts[0]].name),
           "truncatedAlerts": 0, "status": "firing", "receiver": "deploygraph", "groupLabels": {},
           "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
           "alerts": items})
}

async fn send(
    app: &Router,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(StatusCode, Value), String> {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let response = app
        .clone()
        .oneshot(request)
        .await
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{method} {path}: {e}"))?
        .to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok((status, value))
}

async fn write(app: &Router, method: &str, path: &str, body: &Value) -> Result<Value, String> {
    let (status, out) = send(app, method, path, Some(body)).await?;
    if status.is_success() {
        Ok(out)
    } else {
        Err(format!("{method} {path}: {status} {out}\nbody: {body}"))
    }
}

/// Who reviews the earlier alerts.
const REVIEWER: &str = "sre@acme.io";

/// Writes `world` through `app` (its reviews too when `reviews`) and reads the suspects of
/// its scored alerts.
///
/// # Errors
/// A write refused, or a read failed.
pub async fn record(app: &Router, world: &World, reviews: bool) -> Result<Recorded, String> {
    let mut deployments = vec![String::new(); world.deployments.len()];
    let mut changes = vec![String::new(); world.changes.len()];
    let mut chaos = vec![String::new(); world.chaos.len()];
    for w in world.writes() {
        match w {
            Write::Topology => {
                for (s, deps) in world.depends_on.iter().enumerate() {
                    if deps.is_empty() {
                        continue;
                    }
                    let names: Vec<&String> = deps.iter().map(|d| &world.services[*d]).collect();
                    write(
                        app,
                        "PUT",
                        &format!("/v1/services/{}/dependencies", world.services[s]),
                        &json!({"namespace": NAMESPACE, "environment": ENVIRONMENT, "depends_on": names}),
                    )
                    .await?;
                }
            }
            Write::Deployment(i) => {
                let out = write(app, "POST", "/v1/deployments", &deployment_body(world, i)).await?;
                deployments[i] = out["uid"]
                    .as_str()
                    .ok_or_else(|| format!("no uid in {out}"))?
                    .to_owned();
            }
            Write::ChaosStarted(i) | Write::ChaosEnded(i) => {
                let ended = matches!(w, Write::ChaosEnded(_));
                let out =
                    write(app, "POST", "/v1/chaos/runs", &chaos_body(world, i, ended)).await?;
                chaos[i] = out["uid"]
                    .as_str()
                    .ok_or_else(|| format!("no uid in {out}"))?
                    .to_owned();
            }
            Write::Alerts(alerts) => {
                write(
                    app,
                    "POST",
                    "/v1/alerts/alertmanager",
                    &webhook(world, &alerts),
                )
                .await?;
            }
            Write::Review(i) => {
                if !reviews {
                    continue;
                }
                let review = &world.reviews[i];
                let alert = &world.alerts[review.alert];
                let subject = match review.cause {
                    Cause::Deployment(d) => &deployments[d],
                    Cause::Change(c) => &changes[c],
                    Cause::Chaos(_) | Cause::None => continue,
                };
                write(
                    app,
                    "POST",
                    &format!(
                        "/v1/alerts/{}/suspects/{subject}/verdict",
                        alert.fingerprint
                    ),
                    &json!({"verdict": "confirmed", "by": REVIEWER,
                            "note": "post-incident review"}),
                )
                .await?;
            }
            Write::Canary(i) => {
                let uid = &deployments[world.canaries[i].deployment];
                write(
                    app,
                    "POST",
                    "/v1/canary/analyses",
                    &canary_body(world, i, uid),
                )
                .await?;
            }
            Write::Change(i) => {
                let out = write(app, "POST", "/v1/changes", &change_body(world, i)).await?;
                changes[i] = out["uid"]
                    .as_str()
                    .ok_or_else(|| format!("no uid in {out}"))?
                    .to_owned();
            }
        }
    }
    let mut answers = Vec::new();
    for a in world.scored_alerts() {
        let alert = &world.alerts[a];
        let path = format!(
            "/v1/alerts/{}/suspects?starts_at={}",
            alert.fingerprint,
            time(alert.starts_at)
        );
        let (status, view) = send(app, "GET", &path, None).await?;
        if status != StatusCode::OK {
            return Err(format!("GET {path}: {status} {view}"));
        }
        if view["attribution_pending"] == true {
            return Err(format!("GET {path}: the attribution is still pending"));
        }
        let suspects = view["suspects"]
            .as_array()
            .ok_or_else(|| format!("GET {path}: no suspects list in {view}"))?
            .iter()
            .map(|s| {
                (
                    s["uid"].as_str().unwrap_or_default().to_owned(),
                    s["confidence_score"].as_f64().unwrap_or(0.0),
                )
            })
            .collect();
        let chaos = view["chaos"]["run_uid"].as_str().map(str::to_owned);
        let alert_uid = view["alert"]["uid"]
            .as_str()
            .ok_or_else(|| format!("GET {path}: no alert uid in {view}"))?
            .to_owned();
        let unexplained = view["unexplained"]
            .as_f64()
            .ok_or_else(|| format!("GET {path}: no unexplained in {view}"))?;
        answers.push((
            a,
            Answer {
                suspects,
                chaos,
                alert_uid,
                unexplained,
            },
        ));
    }
    Ok(Recorded {
        deployments,
        changes,
        chaos,
        answers,
    })
}
