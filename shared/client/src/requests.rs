//! The API's requests, typed: each endpoint's method, path and parameters are written here
//! once, and every command of the CLI goes through them, whichever transport carries them.

use crate::transport::Method;
use crate::{Accepted, Client, Result, encode};
use chrono::{DateTime, Utc};
use deploygraph_model::backstage::CatalogFile;
use deploygraph_model::deployment::DeploymentInput;
use deploygraph_model::topology::ServiceTopology;
use deploygraph_model::{CanaryAnalysisInput, ChangeEventInput, RollbackInput, VerdictInput};
use deploygraph_model::{Environment, ServiceName, ServiceRef, format_time};
use serde::Serialize;
use serde_json::{Map, Value};
use std::time::Duration;

/// A query string under construction: parameters without a value are left out.
#[derive(Debug, Default)]
pub struct Query(Vec<(&'static str, String)>);

impl Query {
    /// Adds `name=value`.
    #[must_use]
    pub fn with(mut self, name: &'static str, value: impl ToString) -> Self {
        self.0.push((name, value.to_string()));
        self
    }

    /// Adds `name=value` when there is a value and it is not empty: the API refuses an empty
    /// parameter (`?service=`, 422) where it means "none", so none is sent.
    #[must_use]
    pub fn opt<T: ToString>(self, name: &'static str, value: Option<T>) -> Self {
        match value.map(|v| v.to_string()) {
            Some(v) if !v.is_empty() => self.with(name, v),
            _ => self,
        }
    }

    /// Adds `name=TIME` (RFC 3339) when there is a time.
    #[must_use]
    pub fn time(self, name: &'static str, value: Option<&DateTime<Utc>>) -> Self {
        self.opt(name, value.map(format_time))
    }

    /// `path`, with `?` and the encoded parameters when there are any.
    pub fn on(&self, path: &str) -> String {
        if self.0.is_empty() {
            return path.to_owned();
        }
        let mut encoder = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in &self.0 {
            encoder.append_pair(name, value);
        }
        format!("{path}?{}", encoder.finish())
    }
}

/// `value` percent-encoded as one URL path segment: everything but unreserved characters
/// (RFC 3986 `ALPHA / DIGIT / "-" / "." / "_" / "~"`) is escaped, `/` included.
pub fn path_segment(value: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `GET /v1/deployments` parameters, as the user gave them (the server validates them).
#[derive(Debug, Default, Clone)]
pub struct DeploymentsQuery {
    /// Only this service.
    pub service: Option<String>,
    /// Only this environment.
    pub environment: Option<String>,
    /// Only this cluster.
    pub cluster: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Started at or after (RFC 3339).
    pub since: Option<String>,
    /// Started at or before (RFC 3339).
    pub until: Option<String>,
    /// Page size.
    pub limit: Option<usize>,
    /// Continue after this cursor.
    pub cursor: Option<String>,
}

/// `GET /v1/alerts` parameters.
#[derive(Debug, Default, Clone)]
pub struct AlertsQuery {
    /// Only alerts on this service.
    pub service: Option<ServiceName>,
    /// Only this environment.
    pub environment: Option<Environment>,
    /// Only this fingerprint.
    pub fingerprint: Option<String>,
    /// Started at or after.
    pub since: Option<DateTime<Utc>>,
    /// Started at or before.
    pub until: Option<DateTime<Utc>>,
    /// Page size.
    pub limit: Option<usize>,
    /// Continue after this cursor (a previous page's `next_cursor`).
    pub cursor: Option<String>,
}

/// One occurrence of an alert: its fingerprint, and its start when not the newest.
#[derive(Debug, Clone, Copy)]
pub struct Occurrence<'a> {
    /// The Alertmanager fingerprint.
    pub fingerprint: &'a str,
    /// The occurrence that started then (default: the newest).
    pub starts_at: Option<&'a DateTime<Utc>>,
}

/// The body of `POST /v1/cypher`.
#[derive(Debug, Clone, Serialize)]
pub struct CypherQuery {
    /// The Cypher text.
    pub query: String,
    /// Its parameters.
    pub params: Map<String, Value>,
    /// A time limit below the server's.
    #[serde(rename = "timeout_ms", serialize_with = "millis")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// A row cap below the server's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

fn millis<S: serde::Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(d) => s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        None => s.serialize_none(),
    }
}

/// The format of `GET /v1/reports/incident`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// Markdown text.
    Markdown,
    /// The report's JSON.
    Json,
}

/// A time limit on a Cypher query when the request gives none.
const CYPHER_DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl Client {
    /// `POST /v1/deployments`.
    ///
    /// # Errors
    /// [`Error::Rejected`](crate::Error::Rejected) for 4xx;
    /// [`Error::Unavailable`](crate::Error::Unavailable) when retries are exhausted.
    pub async fn record_deployment(&self, input: &DeploymentInput) -> Result<Accepted> {
        self.send(Method::Post, "/v1/deployments".into(), Some(encode(input)?))
            .await
    }

    /// `POST /v1/changes` with one change that is not a rollout.
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn record_change(&self, input: &ChangeEventInput) -> Result<Accepted> {
        self.send(Method::Post, "/v1/changes".into(), Some(encode(input)?))
            .await
    }

    /// `GET /v1/changes/{uid}`.
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn change(&self, uid: &str) -> Result<Accepted> {
        self.get(format!("/v1/changes/{}", path_segment(uid))).await
    }

    /// `GET /v1/deployments`.
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn list_deployments(&self, q: &DeploymentsQuery) -> Result<Accepted> {
        let query = Query::default()
            .opt("service", q.service.as_ref())
            .opt("environment", q.environment.as_ref())
            .opt("cluster", q.cluster.as_ref())
            .opt("status", q.status.as_ref())
            .opt("since", q.since.as_ref())
            .opt("until", q.until.as_ref())
            .opt("limit", q.limit)
            .opt("cursor", q.cursor.as_ref());
        self.get(query.on("/v1/deployments")).await
    }

    /// `POST /v1/snapshots` with checks that ran here.
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn record_snapshot(&self, body: &Value) -> Result<Accepted> {
        self.send(Method::Post, "/v1/snapshots".into(), Some(encode(body)?))
            .await
    }

    /// `POST /v1/alerts/alertmanager`: an Alertmanager webhook notification.
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn post_alertmanager(&self, body: &Value) -> Result<Accepted> {
        self.send(
            Method::Post,
            "/v1/alerts/alertmanager".into(),
            Some(encode(body)?),
        )
        .await
    }

    /// `GET /v1/alerts`.
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn list_alerts(&self, q: &AlertsQuery) -> Result<Accepted> {
        let query = Query::default()
            .opt("limit", q.limit)
            .opt("service", q.service.as_ref())
            .opt("environment", q.environment.as_ref())
            .opt("fingerprint", q.fingerprint.as_ref())
            .time("since", q.since.as_ref())
            .time("until", q.until.as_ref())
            .opt("cursor", q.cursor.as_ref());
        self.get(query.on("/v1/alerts")).await
    }

    /// `GET /v1/alerts/{fingerprint}/suspects`, or with `recompute`
    /// `POST /v1/alerts/{fingerprint}/attribution` (a write) first.
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn suspects(&self, alert: Occurrence<'_>, recompute: bool) -> Result<Accepted> {
        let query = Query::default().time("starts_at", alert.starts_at);
        let fingerprint = path_segment(alert.fingerprint);
        if recompute {
            let path = query.on(&format!("/v1/alerts/{fingerprint}/attribution"));
            self.send(Method::Post, path, Some(b"{}".to_vec())).await
        } else {
            self.get(query.on(&format!("/v1/alerts/{fingerprint}/suspects")))
                .await
        }
    }

    /// `POST /v1/alerts/{fingerprint}/suspects/{uid}/verdict`: confirm or reject the
    /// deployment or change `uid` as the cause of the alert (retried on 503 like every write:
    /// repeating a verdict answers the stored one).
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn verdict(
        &self,
        alert: Occurrence<'_>,
        uid: &str,
        input: &VerdictInput,
    ) -> Result<Accepted> {
        let query = Query::default().time("starts_at", alert.starts_at);
        let path = query.on(&format!(
            "/v1/alerts/{}/suspects/{}/verdict",
            path_segment(alert.fingerprint),
            path_segment(uid)
        ));
        self.send(Method::Post, path, Some(encode(input)?)).await
    }

    /// `GET /v1/services/{name}/timeline`: at most `limit` items (the server's default when
    /// `None`), before `cursor` (a previous page's `next_cursor`).
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn timeline(
        &self,
        service: &ServiceName,
        (environment, cluster): (Option<&Environment>, Option<&deploygraph_model::Cluster>),
        since: &DateTime<Utc>,
        until: &DateTime<Utc>,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Accepted> {
        let query = Query::default()
            .time("since", Some(since))
            .time("until", Some(until))
            .opt("environment", environment)
            .opt("cluster", cluster)
            .opt("limit", limit)
            .opt("cursor", cursor);
        let path = format!("/v1/services/{}/timeline", path_segment(service.as_str()));
        self.get(query.on(&path)).await
    }

    /// `GET /v1/services/{name}/common-factors`.
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn common_factors(
        &self,
        service: &ServiceName,
        (environment, cluster): (Option<&Environment>, Option<&deploygraph_model::Cluster>),
        last: usize,
    ) -> Result<Accepted> {
        let query = Query::default()
            .with("last", last)
            .opt("environment", environment)
            .opt("cluster", cluster);
        let path = format!(
            "/v1/services/{}/common-factors",
            path_segment(service.as_str())
        );
        self.get(query.on(&path)).await
    }

    /// `GET /v1/dora`.
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn dora(
        &self,
        service: Option<&ServiceName>,
        (environment, cluster): (Option<&Environment>, Option<&deploygraph_model::Cluster>),
        since: &DateTime<Utc>,
        until: &DateTime<Utc>,
    ) -> Result<Accepted> {
        let query = Query::default()
            .time("since", Some(since))
            .time("until", Some(until))
            .opt("service", service)
            .opt("environment", environment)
            .opt("cluster", cluster);
        self.get(query.on("/v1/dora")).await
    }

    /// `GET /v1/ask?q=`: a question in English or Chinese.
    ///
    /// # Errors
    /// As [`Client::record_deployment`]; a question the server cannot map is refused with code
    /// `not_understood` (field `q`).
    pub async fn ask(&self, question: &str) -> Result<Accepted> {
        self.get(Query::default().with("q", question).on("/v1/ask"))
            .await
    }

    /// `POST /v1/cypher`. The request waits 30 s longer than the query's time limit.
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn cypher(&self, q: &CypherQuery) -> Result<Accepted> {
        let limit = q.timeout.unwrap_or(CYPHER_DEFAULT_TIMEOUT) + Duration::from_secs(30);
        self.clone()
            .with_request_timeout(limit)
            .send(Method::Post, "/v1/cypher".into(), Some(encode(q)?))
            .await
    }

    /// `GET /v1/reports/incident`; a Markdown report comes back as a JSON string.
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn incident_report(
        &self,
        alert: Occurrence<'_>,
        format: ReportFormat,
    ) -> Result<Accepted> {
        let query = Query::default()
            .with("alert", alert.fingerprint)
            .time("starts_at", alert.starts_at)
            .with(
                "format",
                match format {
                    ReportFormat::Markdown => "markdown",
                    ReportFormat::Json => "json",
                },
            );
        self.get(query.on("/v1/reports/incident")).await
    }

    /// `PUT /v1/services/{name}/dependencies`: replaces what the service depends on (its
    /// `manual` edges), and sets its owner and tier when given.
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn put_dependencies(&self, topology: &ServiceTopology) -> Result<Accepted> {
        let mut body = serde_json::json!({
            "namespace": topology.service.namespace,
            "environment": topology.service.environment,
            "depends_on": topology.depends_on,
        });
        if let Some(owner) = &topology.owner {
            body["owner"] = owner.as_str().into();
        }
        if let Some(tier) = &topology.tier {
            body["tier"] = tier.as_str().into();
        }
        let path = format!(
            "/v1/services/{}/dependencies",
            path_segment(topology.service.name.as_str())
        );
        self.send(Method::Put, path, Some(encode(&body)?)).await
    }

    /// `POST /v1/topology/backstage`: imports Backstage catalog files.
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn import_backstage(
        &self,
        environment: &Environment,
        namespace: Option<&str>,
        cluster: &deploygraph_model::Cluster,
        files: &[CatalogFile],
    ) -> Result<Accepted> {
        let body = serde_json::json!({
            "environment": environment,
            "namespace": namespace,
            "cluster": cluster,
            "files": files,
        });
        self.send(
            Method::Post,
            "/v1/topology/backstage".into(),
            Some(encode(&body)?),
        )
        .await
    }

    /// `POST /v1/topology/mesh`: records observed calls (caller, called) as `mesh` edges.
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn import_mesh(&self, edges: &[(ServiceRef, ServiceRef)]) -> Result<Accepted> {
        let edges: Vec<serde_json::Value> = edges
            .iter()
            .map(|(from, to)| serde_json::json!({"service": from, "depends_on": to}))
            .collect();
        self.send(
            Method::Post,
            "/v1/topology/mesh".into(),
            Some(encode(&serde_json::json!({ "edges": edges }))?),
        )
        .await
    }

    /// `GET /v1/services/{name}/resilience`.
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn resilience(
        &self,
        service: &ServiceName,
        environment: Option<&Environment>,
    ) -> Result<Accepted> {
        let query = Query::default().opt("environment", environment);
        let path = format!("/v1/services/{}/resilience", path_segment(service.as_str()));
        self.get(query.on(&path)).await
    }

    /// `GET /v1/chaos/runs`, after `cursor` (a previous page's `next_cursor`).
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn list_chaos_runs(
        &self,
        service: Option<&ServiceName>,
        (environment, cluster): (Option<&Environment>, Option<&deploygraph_model::Cluster>),
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Accepted> {
        let query = Query::default()
            .opt("service", service)
            .opt("environment", environment)
            .opt("cluster", cluster)
            .with("limit", limit)
            .opt("cursor", cursor);
        self.get(query.on("/v1/chaos/runs")).await
    }

    /// `GET /v1/chaos/runs/{uid}`.
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn chaos_run(&self, uid: &str) -> Result<Accepted> {
        self.get(format!("/v1/chaos/runs/{}", path_segment(uid)))
            .await
    }

    /// `POST /v1/canary/analyses`: records (or replaces) a canary analysis of a deployment.
    ///
    /// # Errors
    /// As [`Client::record_deployment`]; an unknown deployment is refused with 404.
    pub async fn record_canary_analysis(&self, input: &CanaryAnalysisInput) -> Result<Accepted> {
        self.send(
            Method::Post,
            "/v1/canary/analyses".into(),
            Some(encode(input)?),
        )
        .await
    }

    /// `POST /v1/rollbacks`: records a rollback of a deployment (201; 200 when the same one
    /// is stored).
    ///
    /// # Errors
    /// As [`Client::record_deployment`]; an unknown deployment is refused with 404, other facts
    /// under the rollback's uid with 409.
    pub async fn record_rollback(&self, input: &RollbackInput) -> Result<Accepted> {
        self.send(Method::Post, "/v1/rollbacks".into(), Some(encode(input)?))
            .await
    }

    /// `GET /v1/deployments/{uid}/canary`: the deployment's canary analyses and the rollbacks
    /// that undid it, newest first.
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn deployment_canary(&self, deployment: &str) -> Result<Accepted> {
        self.get(format!(
            "/v1/deployments/{}/canary",
            path_segment(deployment)
        ))
        .await
    }

    /// `GET /v1/deployments/{uid}`: the stored deployment.
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn deployment(&self, uid: &str) -> Result<Accepted> {
        self.get(format!("/v1/deployments/{}", path_segment(uid)))
            .await
    }

    /// `POST /v1/deployments/{uid}/summaries`: records the deployment's settled metric summary
    /// on a template (`body`: `template`, `window`, `settled_at`, `metrics`).
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn record_release_summary(&self, deployment: &str, body: &Value) -> Result<Accepted> {
        self.send(
            Method::Post,
            format!("/v1/deployments/{}/summaries", path_segment(deployment)),
            Some(encode(body)?),
        )
        .await
    }

    /// `GET /v1/services/{name}/summaries`: the summaries on `template` of the service's
    /// deployments in `environment` that started before `before`, most recent first.
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn release_summaries(
        &self,
        service: &ServiceName,
        environment: &Environment,
        template: &str,
        before: Option<&DateTime<Utc>>,
        limit: Option<usize>,
    ) -> Result<Accepted> {
        let query = Query::default()
            .with("environment", environment)
            .with("template", template)
            .time("before", before)
            .opt("limit", limit);
        self.get(query.on(&format!(
            "/v1/services/{}/summaries",
            path_segment(service.as_str())
        )))
        .await
    }

    async fn get(&self, path_and_query: String) -> Result<Accepted> {
        self.send(Method::Get, path_and_query, None).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn empty_and_absent_parameters_are_left_out_of_the_query() {
        let query = Query::default()
            .opt("service", Some(""))
            .opt("environment", None::<&str>)
            .opt("namespace", Some(String::new()))
            .opt("limit", Some(5));
        assert_eq!(query.on("/v1/alerts"), "/v1/alerts?limit=5");
        assert_eq!(
            Query::default().opt("service", Some("")).on("/v1/dora"),
            "/v1/dora"
        );
    }

    #[test]
    fn path_segments_escape_everything_but_unreserved_characters() {
        assert_eq!(path_segment("a1b2-C3.d_e~f"), "a1b2-C3.d_e~f");
        assert_eq!(path_segment("a/b c?d#é"), "a%2Fb%20c%3Fd%23%C3%A9");
    }

    #[test]
    fn query_strings_leave_out_absent_values_and_encode_the_rest() {
        let at = deploygraph_model::parse_time("2026-11-20T10:05:00+01:00").unwrap();
        let q = Query::default()
            .with("limit", 5)
            .opt("service", None::<&str>)
            .opt("fingerprint", Some("a&b c"))
            .time("since", Some(&at));
        assert_eq!(
            q.on("/v1/alerts"),
            "/v1/alerts?limit=5&fingerprint=a%26b+c&since=2026-11-20T09%3A05%3A00Z"
        );
        assert_eq!(Query::default().on("/v1/dora"), "/v1/dora");
    }

    #[test]
    fn cypher_bodies_carry_the_time_limit_in_milliseconds_and_leave_out_what_is_absent() {
        let mut q = CypherQuery {
            query: "RETURN 1".into(),
            params: Map::new(),
            timeout: Some(Duration::from_millis(1500)),
            limit: None,
        };
        assert_eq!(
            serde_json::to_value(&q).unwrap(),
            serde_json::json!({"query": "RETURN 1", "params": {}, "timeout_ms": 1500})
        );
        q.timeout = None;
        q.limit = Some(3);
        assert_eq!(
            serde_json::to_value(&q).unwrap(),
            serde_json::json!({"query": "RETURN 1", "params": {}, "limit": 3})
        );
    }
}
