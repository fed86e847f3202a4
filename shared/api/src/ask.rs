//! `GET /v1/ask?q=`: a question in English or Chinese, read by
//! [`deploygraph_analysis::ask::parse`] against the graph's services, environments and recent
//! alert names, and answered by the query it maps to — the same engine call as that query's own
//! endpoint. The answer says how the question was understood, the endpoint that gives the same
//! answer, and the equivalent read-only Cypher with its parameters (for `POST /v1/cypher` on
//! Neo4j). A question it cannot map is a 422 naming `q`, with the forms it understands and the
//! closest services: never a guess.

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::query_params;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use deploygraph_analysis::ask::{self, Intent, Known, MAX_QUESTION_CHARS, Understood};
use deploygraph_analysis::engine;
use deploygraph_analysis::timeline::TimelinePage;
use deploygraph_model::{Alert, Cluster, Environment, ServiceName};
use deploygraph_store::{AlertFilter, DeploymentFilter, MAX_PAGE_SIZE};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Instant;

/// Recent alerts read for their names and to find the alert a question means.
const ALERTS_READ: usize = 500;

/// Items a listing answer holds unless the question says how many.
const DEFAULT_ITEMS: usize = 20;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AskParams {
    /// The question, in English or Chinese (at most 500 characters).
    #[param(value_type = String, required = true, min_length = 1, max_length = 500)]
    q: Option<String>,
}

/// `GET /v1/ask?q=…`.
#[utoipa::path(get, path = "/v1/ask", tag = "query",
    params(AskParams),
    responses(
        (status = 200, description = "`{question, understood, understood_as, endpoint, answer, cypher: {query, params}}`: how the question was read, the endpoint giving the same `answer`, and the equivalent read-only Cypher. `answer` is null with a `note` when nothing matches (no such alert).", body = crate::openapi::JsonObject),
        (status = 422, description = "`q` is missing, empty or too long (`invalid_field`), or the question maps to no query (`not_understood`, field `q`): then `forms` lists the question forms understood and `closest_services` the services nearest to its words", body = crate::openapi::JsonObject),
    ))]
pub(crate) async fn ask(
    State(state): State<AppState>,
    query: Result<Query<AskParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = query_params(query)?;
    let question = p.q.unwrap_or_default();
    if question.is_empty() {
        return Err(ApiError::invalid("q", "is required: a question"));
    }
    // Blank is not a question it can map (below), as any other string.
    let question = question.trim();
    if question.chars().count() > MAX_QUESTION_CHARS {
        return Err(ApiError::invalid(
            "q",
            format!("is longer than {MAX_QUESTION_CHARS} characters"),
        ));
    }
    let store_error =
        |e: deploygraph_store::Error| ApiError::from_store(&e, state.config.retry_after_secs);
    let started = Instant::now();
    let recent = AlertFilter {
        limit: ALERTS_READ,
        ..AlertFilter::default()
    };
    let (services, alerts) = tokio::try_join!(
        state.store.list_services(),
        state.store.list_alerts(&recent),
    )
    .map_err(store_error)?;
    state.metrics.store_call("ask_known", started);
    let names = distinct(services.iter().map(|s| s.name.clone()));
    let environments = distinct(
        services.iter().map(|s| s.environment.clone()).chain(
            alerts
                .iter()
                .filter_map(|a| a.environment.as_ref().map(|e| e.as_str().to_owned())),
        ),
    );
    let clusters = distinct(
        services.iter().map(|s| s.cluster.clone()).chain(
            alerts
                .iter()
                .filter_map(|a| a.cluster.as_ref().map(|c| c.as_str().to_owned())),
        ),
    );
    let alert_names = distinct(alerts.iter().map(|a| a.name.clone()));
    let known = Known {
        services: &names,
        environments: &environments,
        clusters: &clusters,
        alert_names: &alert_names,
    };
    // Whole seconds, as the endpoint the answer names writes its times.
    let now = Utc::now().trunc_subsecs(0);
    let understood = match ask::parse(question, &known, now) {
        Ok(u) => u,
        Err(e) => {
            let message = if e.closest_services.is_empty() {
                e.reason.clone()
            } else {
                format!(
                    "{}; the closest services: {}",
                    e.reason,
                    e.closest_services.join(", ")
                )
            };
            return Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({
                    "error": {"code": "not_understood", "message": message, "field": "q"},
                    "question": question,
                    "forms": e.forms,
                    "closest_services": e.closest_services,
                })),
            )
                .into_response());
        }
    };
    let answer = answer(&state, &understood, now).await?;
    let mut body = json!({
        "question": question,
        "understood": understood,
        "understood_as": describe(&understood),
        "endpoint": answer.endpoint,
        "answer": answer.body,
        "cypher": {"query": answer.cypher, "params": answer.params},
    });
    if let Some(note) = answer.note {
        body["note"] = json!(note);
    }
    Ok(Json(body).into_response())
}

/// What a question was answered with.
struct Answer {
    endpoint: String,
    body: Value,
    note: Option<String>,
    cypher: &'static str,
    params: Value,
}

fn service_name(u: &Understood) -> Result<Option<ServiceName>, ApiError> {
    u.service
        .as_ref()
        .map(|s| ServiceName::parse(&s.name).map_err(|e| ApiError::invalid("q", e.message)))
        .transpose()
}

fn environment(u: &Understood) -> Result<Option<Environment>, ApiError> {
    u.environment
        .as_deref()
        .map(|e| Environment::parse(e).map_err(|e| ApiError::invalid("q", e.message)))
        .transpose()
}

/// `names` sorted, each once.
fn distinct(names: impl Iterator<Item = String>) -> Vec<String> {
    names.collect::<BTreeSet<_>>().into_iter().collect()
}

fn cluster(u: &Understood) -> Result<Option<Cluster>, ApiError> {
    u.cluster
        .as_deref()
        .map(|c| Cluster::parse(c).map_err(|e| ApiError::invalid("q", e.message)))
        .transpose()
}

/// The range of the question, else the last `default` before `now`.
fn span(u: &Understood, default: Duration, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    u.range
        .as_ref()
        .map_or((now - default, now), |r| (r.since, r.until))
}

/// `?k=v&…` of the pairs that are set, form-encoded.
fn query_string(pairs: &[(&str, Option<String>)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            query.append_pair(k, v);
        }
    }
    let query = query.finish();
    if query.is_empty() {
        query
    } else {
        format!("?{query}")
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

const SUSPECTS_CYPHER: &str = "MATCH (x)-[r:TRIGGERS]->(a:Alert {uid: $alert}) \
RETURN x.uid AS suspect, labels(x)[0] AS kind, r.confidence_score AS confidence, r.reasons AS reasons \
ORDER BY confidence DESC";

const COMMON_FACTORS_CYPHER: &str = "MATCH (d:DeploymentEvent {service: $service}) \
WHERE d.status IN ['failed', 'rolled_back'] AND ($environment IS NULL OR d.environment = $environment) \
AND ($cluster IS NULL OR d.cluster = $cluster) \
WITH d ORDER BY d.started_at_us DESC LIMIT $last \
OPTIONAL MATCH (d)-[:CHANGED]->(c:ConfigChange) \
OPTIONAL MATCH (d)-[:RUNS]->(i:Image) \
RETURN d.uid AS deployment, d.status AS status, d.version AS version, d.actor AS actor, \
collect(DISTINCT c.path) AS changed_keys, collect(DISTINCT i.repository) AS images \
ORDER BY deployment";

const TIMELINE_CYPHER: &str = "CALL () { \
MATCH (d:DeploymentEvent {service: $service}) \
WHERE d.started_at_us >= $since AND d.started_at_us <= $until AND ($environment IS NULL OR d.environment = $environment) \
AND ($cluster IS NULL OR d.cluster = $cluster) \
RETURN 'deployment' AS kind, d.uid AS uid, d.status AS what, d.started_at_us AS at \
UNION ALL \
MATCH (a:Alert {service: $service}) \
WHERE a.starts_at_us >= $since AND a.starts_at_us <= $until AND ($environment IS NULL OR a.environment = $environment) \
AND ($cluster IS NULL OR a.cluster = $cluster OR (a.cluster IS NULL AND EXISTS { (a)-[:FIRED_ON]->(:Service {cluster: $cluster}) })) \
RETURN 'alert' AS kind, a.uid AS uid, a.name AS what, a.starts_at_us AS at \
UNION ALL \
MATCH (c:ChaosRun {service: $service}) \
WHERE c.started_at_us >= $since AND c.started_at_us <= $until AND ($environment IS NULL OR c.environment = $environment) \
AND ($cluster IS NULL OR c.cluster = $cluster) \
RETURN 'chaos_run' AS kind, c.uid AS uid, c.verdict AS what, c.started_at_us AS at \
} RETURN kind, uid, what, at ORDER BY at LIMIT 10000";

const DORA_CYPHER: &str = "MATCH (d:DeploymentEvent) \
WHERE d.started_at_us >= $since AND d.started_at_us <= $until \
AND ($service IS NULL OR d.service = $service) AND ($environment IS NULL OR d.environment = $environment) \
AND ($cluster IS NULL OR d.cluster = $cluster) \
RETURN d.service AS service, d.environment AS environment, d.cluster AS cluster, count(d) AS deployments, \
count(CASE WHEN d.status IN ['failed', 'rolled_back'] THEN 1 END) AS failed_or_rolled_back \
ORDER BY service, environment, cluster";

const RESILIENCE_CYPHER: &str = "MATCH (c:ChaosRun {service: $service}) \
WHERE ($environment IS NULL OR c.environment = $environment) AND ($cluster IS NULL OR c.cluster = $cluster) \
OPTIONAL MATCH (c)-[:AGAINST]->(d:DeploymentEvent) \
RETURN c.scenario AS scenario, c.verdict AS verdict, d.version AS release, d.uid AS deployment, \
c.started_at_us AS started_at_us ORDER BY scenario, started_at_us";

const DEPLOYMENTS_CYPHER: &str = "MATCH (d:DeploymentEvent) \
WHERE ($service IS NULL OR d.service = $service) AND ($environment IS NULL OR d.environment = $environment) \
AND ($cluster IS NULL OR d.cluster = $cluster) AND ($status IS NULL OR d.status = $status) \
AND ($since IS NULL OR d.started_at_us >= $since) AND ($until IS NULL OR d.started_at_us <= $until) \
RETURN d.uid AS uid, d.service AS service, d.environment AS environment, d.status AS status, \
d.version AS version, d.started_at_us AS started_at_us ORDER BY d.started_at_us DESC LIMIT $limit";

const ALERTS_CYPHER: &str = "MATCH (a:Alert) \
WHERE ($service IS NULL OR a.service = $service) AND ($environment IS NULL OR a.environment = $environment) \
AND ($cluster IS NULL OR a.cluster = $cluster OR (a.cluster IS NULL AND EXISTS { (a)-[:FIRED_ON]->(:Service {cluster: $cluster}) })) \
AND ($since IS NULL OR a.starts_at_us >= $since) AND ($until IS NULL OR a.starts_at_us <= $until) \
RETURN a.uid AS uid, a.name AS name, a.service AS service, a.environment AS environment, \
a.status AS status, a.starts_at_us AS starts_at_us ORDER BY a.starts_at_us DESC LIMIT $limit";

/// The alert a suspects question means: among its alerts as the store filters them (by
/// fingerprint, service, environment, cluster and range; the newest [`ALERTS_READ`]) those of its alert
/// name, the one nearest its instant, else the newest.
async fn the_alert(
    store: &dyn deploygraph_store::GraphStore,
    u: &Understood,
    service: Option<&ServiceName>,
    (environment, cluster): (Option<&Environment>, Option<&Cluster>),
) -> deploygraph_store::Result<Option<Alert>> {
    let alerts = store
        .list_alerts(&AlertFilter {
            service: service.cloned(),
            environment: environment.cloned(),
            cluster: cluster.cloned(),
            fingerprint: u.fingerprint.clone(),
            since: u.range.as_ref().map(|r| r.since),
            until: u.range.as_ref().map(|r| r.until),
            limit: ALERTS_READ,
            ..AlertFilter::default()
        })
        .await?;
    let candidates = alerts
        .into_iter()
        .filter(|a| u.alert_name.as_ref().is_none_or(|n| &a.name == n));
    Ok(match u.at {
        Some(at) => candidates.min_by_key(|a| (a.starts_at - at).num_seconds().abs()),
        None => candidates.max_by_key(|a| a.starts_at),
    })
}

#[allow(clippy::too_many_lines)] // one arm per intent
async fn answer(state: &AppState, u: &Understood, now: DateTime<Utc>) -> Result<Answer, ApiError> {
    let store = state.store.as_ref();
    let store_error =
        |e: deploygraph_store::Error| ApiError::from_store(&e, state.config.retry_after_secs);
    let service = service_name(u)?;
    let env = environment(u)?;
    let env_param = env.as_ref().map(|e| e.as_str().to_owned());
    let cluster = cluster(u)?;
    let cluster_param = cluster.as_ref().map(|c| c.as_str().to_owned());
    let service_param = service.as_ref().map(|s| s.as_str().to_owned());
    let micros = |t: DateTime<Utc>| t.timestamp_micros();
    let started = Instant::now();
    let answer = match u.intent {
        Intent::Suspects => {
            let found = the_alert(store, u, service.as_ref(), (env.as_ref(), cluster.as_ref()))
                .await
                .map_err(store_error)?;
            let Some(alert) = found else {
                return Ok(Answer {
                    endpoint: format!(
                        "/v1/alerts{}",
                        query_string(&[
                            ("service", service_param.clone()),
                            ("environment", env_param.clone()),
                            ("cluster", cluster_param.clone()),
                        ])
                    ),
                    body: Value::Null,
                    note: Some(format!(
                        "no alert among the newest {ALERTS_READ} matches the question{}",
                        u.service
                            .as_ref()
                            .map(|s| format!(" (service {})", s.name))
                            .unwrap_or_default()
                    )),
                    cypher: ALERTS_CYPHER,
                    params: json!({"service": service_param, "environment": env_param,
                                   "cluster": cluster_param, "since": null, "until": null,
                                   "limit": DEFAULT_ITEMS}),
                });
            };
            let endpoint = format!(
                "/v1/alerts/{}/suspects{}",
                alert.fingerprint,
                query_string(&[("starts_at", Some(rfc3339(alert.starts_at)))])
            );
            let uid = alert.uid.as_str().to_owned();
            let view = engine::suspects(store, alert).await.map_err(store_error)?;
            Answer {
                endpoint,
                body: json!(view),
                note: None,
                cypher: SUSPECTS_CYPHER,
                params: json!({"alert": uid}),
            }
        }
        Intent::CommonFactors => {
            let name = service.ok_or_else(|| ApiError::invalid("q", "names no service"))?;
            let last = u.count.unwrap_or(3);
            let view = engine::common_factors_of(
                store,
                &name,
                (env.as_ref(), cluster.as_ref()),
                last,
                state.config.attribution.window,
            )
            .await
            .map_err(store_error)?;
            Answer {
                endpoint: format!(
                    "/v1/services/{name}/common-factors{}",
                    query_string(&[
                        ("environment", env_param.clone()),
                        ("cluster", cluster_param.clone()),
                        ("last", Some(last.to_string())),
                    ])
                ),
                body: json!(view),
                note: None,
                cypher: COMMON_FACTORS_CYPHER,
                params: json!({"service": name.as_str(), "environment": env_param,
                               "cluster": cluster_param, "last": last}),
            }
        }
        Intent::Timeline => {
            let name = service.ok_or_else(|| ApiError::invalid("q", "names no service"))?;
            let (since, until) = span(u, Duration::hours(24), now);
            let view = engine::timeline(
                store,
                &name,
                env.as_ref(),
                cluster.as_ref(),
                since,
                until,
                &TimelinePage {
                    limit: MAX_PAGE_SIZE,
                    cursor: None,
                },
            )
            .await
            .map_err(store_error)?;
            Answer {
                endpoint: format!(
                    "/v1/services/{name}/timeline{}",
                    query_string(&[
                        ("environment", env_param.clone()),
                        ("cluster", cluster_param.clone()),
                        ("since", Some(rfc3339(since))),
                        ("until", Some(rfc3339(until))),
                    ])
                ),
                body: json!(view),
                note: None,
                cypher: TIMELINE_CYPHER,
                params: json!({"service": name.as_str(), "environment": env_param,
                               "cluster": cluster_param, "since": micros(since), "until": micros(until)}),
            }
        }
        Intent::Dora => {
            let (since, until) = span(u, Duration::days(30), now);
            let view = engine::dora_metrics(
                store,
                service.as_ref(),
                (env.as_ref(), cluster.as_ref()),
                since,
                until,
            )
            .await
            .map_err(store_error)?;
            Answer {
                endpoint: format!(
                    "/v1/dora{}",
                    query_string(&[
                        ("service", service_param.clone()),
                        ("environment", env_param.clone()),
                        ("cluster", cluster_param.clone()),
                        ("since", Some(rfc3339(since))),
                        ("until", Some(rfc3339(until))),
                    ])
                ),
                body: json!(view),
                note: None,
                cypher: DORA_CYPHER,
                params: json!({"service": service_param, "environment": env_param,
                               "cluster": cluster_param, "since": micros(since), "until": micros(until)}),
            }
        }
        Intent::Resilience => {
            let name = service.ok_or_else(|| ApiError::invalid("q", "names no service"))?;
            let (rows, truncated) = deploygraph_chaos::resilience::of_service(
                store,
                &name,
                env.as_ref(),
                cluster.as_ref(),
            )
            .await
            .map_err(store_error)?;
            Answer {
                endpoint: format!(
                    "/v1/services/{name}/resilience{}",
                    query_string(&[
                        ("environment", env_param.clone()),
                        ("cluster", cluster_param.clone()),
                    ])
                ),
                body: json!({ "service": name, "runs": rows, "truncated": truncated }),
                note: None,
                cypher: RESILIENCE_CYPHER,
                params: json!({"service": name.as_str(), "environment": env_param,
                               "cluster": cluster_param}),
            }
        }
        Intent::Deployments => {
            let limit = u.count.unwrap_or(DEFAULT_ITEMS).min(MAX_PAGE_SIZE);
            let (since, until) = (
                u.range.as_ref().map(|r| r.since),
                u.range.as_ref().map(|r| r.until),
            );
            let page = store
                .list_deployments(&DeploymentFilter {
                    service: service.clone(),
                    environment: env.clone(),
                    cluster: cluster.clone(),
                    status: u.status,
                    since,
                    until,
                    limit,
                    cursor: None,
                })
                .await
                .map_err(store_error)?;
            Answer {
                endpoint: format!(
                    "/v1/deployments{}",
                    query_string(&[
                        ("service", service_param.clone()),
                        ("environment", env_param.clone()),
                        ("cluster", cluster_param.clone()),
                        ("status", u.status.map(|s| s.as_str().to_owned())),
                        ("since", since.map(rfc3339)),
                        ("until", until.map(rfc3339)),
                        ("limit", Some(limit.to_string())),
                    ])
                ),
                body: json!(page),
                note: None,
                cypher: DEPLOYMENTS_CYPHER,
                params: json!({"service": service_param, "environment": env_param,
                               "cluster": cluster_param, "status": u.status.map(|s| s.as_str()),
                               "since": since.map(micros), "until": until.map(micros), "limit": limit}),
            }
        }
        Intent::Alerts => {
            let limit = u.count.unwrap_or(DEFAULT_ITEMS).min(MAX_PAGE_SIZE);
            let (since, until) = (
                u.range.as_ref().map(|r| r.since),
                u.range.as_ref().map(|r| r.until),
            );
            let items = store
                .list_alerts(&AlertFilter {
                    service: service.clone(),
                    environment: env.clone(),
                    cluster: cluster.clone(),
                    since,
                    until,
                    limit: limit + 1,
                    ..AlertFilter::default()
                })
                .await
                .map_err(store_error)?;

            Answer {
                endpoint: format!(
                    "/v1/alerts{}",
                    query_string(&[
                        ("service", service_param.clone()),
                        ("environment", env_param.clone()),
                        ("cluster", cluster_param.clone()),
                        ("since", since.map(rfc3339)),
                        ("until", until.map(rfc3339)),
                        ("limit", Some(limit.to_string())),
                    ])
                ),
                body: crate::rca::page_body(items, limit, |a: &Alert| {
                    deploygraph_store::Cursor::at(a.starts_at, &a.uid)
                }),
                note: None,
                cypher: ALERTS_CYPHER,
                params: json!({"service": service_param, "environment": env_param,
                               "cluster": cluster_param, "since": since.map(micros), "until": until.map(micros), "limit": limit}),
            }
        }
    };
    state.metrics.store_call("ask", started);
    Ok(answer)
}

/// How the question was understood, in one sentence.
fn describe(u: &Understood) -> String {
    let service = u.service.as_ref().map(|s| {
        let how = match s.how {
            ask::MatchKind::Exact => String::new(),
            ask::MatchKind::Spelling => format!(" (read from {:?})", s.said),
            ask::MatchKind::Glossary => format!(" (from {:?})", s.said),
        };
        format!("{}{how}", s.name)
    });
    let mut out = match u.intent {
        Intent::Suspects => {
            let which = match (&u.fingerprint, &u.alert_name) {
                (Some(f), _) => format!("alert {f}"),
                (None, Some(n)) => format!("{n} alert"),
                (None, None) => "alert".to_owned(),
            };
            let on = service.map(|s| format!(" on {s}")).unwrap_or_default();
            match u.at {
                Some(at) => format!(
                    "the suspects of the {which}{on} nearest {} UTC",
                    at.format("%Y-%m-%d %H:%M")
                ),
                None => format!("the suspects of the newest {which}{on}"),
            }
        }
        Intent::CommonFactors => format!(
            "what the last {} failed or rolled-back deployments of {} have in common",
            u.count.unwrap_or(3),
            service.unwrap_or_default()
        ),
        Intent::Timeline => format!("the timeline of {}", service.unwrap_or_default()),
        Intent::Dora => format!(
            "DORA metrics{}",
            service.map(|s| format!(" of {s}")).unwrap_or_default()
        ),
        Intent::Resilience => format!(
            "chaos verdicts across the releases of {}",
            service.unwrap_or_default()
        ),
        Intent::Deployments | Intent::Alerts => {
            let what = if u.intent == Intent::Deployments {
                "deployments"
            } else {
                "alerts"
            };
            let status = u
                .status
                .map(|s| format!("{} ", s.as_str().replace('_', " ")))
                .unwrap_or_default();
            let count = u
                .count
                .map(|n| format!("the last {n} "))
                .unwrap_or_default();
            format!(
                "{count}{status}{what}{}",
                service.map(|s| format!(" of {s}")).unwrap_or_default()
            )
        }
    };
    if let Some(e) = &u.environment {
        out.push_str(&format!(" in {e}"));
    }
    if let Some(c) = &u.cluster {
        out.push_str(&format!(" in cluster {c}"));
    }
    match (&u.range, u.intent) {
        (Some(r), _) => out.push_str(&format!(
            ", {} ({} to {})",
            r.said,
            r.since.format("%Y-%m-%d %H:%M"),
            r.until.format("%Y-%m-%d %H:%M")
        )),
        (None, Intent::Timeline) => out.push_str(", the last 24 hours"),
        (None, Intent::Dora) => out.push_str(", the last 30 days"),
        _ => {}
    }
    out
}
