//! Root-cause analysis from the command line: `query alerts|suspects|timeline|common-factors|
//! dora|cypher`, `report incident` and `topology apply`.
//!
//! Each command asks a server (`--server`, the HTTP API) or computes the answer straight from a
//! store (`--store`) with the engine the server uses ([`deploygraph_analysis::engine`]), and
//! prints the same views either way: JSON identical to the HTTP bodies, or the text renderings
//! of [`deploygraph_analysis::report`].

use crate::cli::{
    Output, QueryAlertsArgs, QueryCommonFactorsArgs, QueryCypherArgs, QueryDoraArgs,
    QuerySuspectsArgs, QueryTimelineArgs, RecordTarget, ReportFormat, ReportIncidentArgs,
    TopologyApplyArgs,
};
use crate::commands::{Failure, apply_topology, attribution_settings, open_migrated};
use anyhow::Context as _;
use chrono::{DateTime, Duration, Utc};
use deploygraph_analysis::views::{CommonFactors, Dora, IncidentReport, Suspects, Timeline};
use deploygraph_analysis::{engine, report};
use deploygraph_client::{Client, RetryPolicy, path_segment};
use deploygraph_model::topology::{Dependencies, TopologyInput};
use deploygraph_model::{Alert, Environment, ServiceName, ServiceRef, format_time, parse_time};
use deploygraph_store::{AlertFilter, MAX_PAGE_SIZE};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::path::Path;

type Outcome = Result<(), Failure>;

/// Default time limit of a Cypher query run straight on the store (the server has its own).
const CYPHER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Default row cap of a Cypher query run straight on the store.
const CYPHER_ROWS: usize = 1000;

// --- Value parsers (clap names the flag and exits 2 when they fail) ---

/// An RFC 3339 time.
pub fn time_arg(value: &str) -> Result<DateTime<Utc>, String> {
    parse_time(value).map_err(|e| e.message)
}

/// A service name (DNS-1123 label).
pub fn service_arg(value: &str) -> Result<ServiceName, String> {
    ServiceName::parse(value).map_err(|e| e.message)
}

/// An environment name.
pub fn environment_arg(value: &str) -> Result<Environment, String> {
    Environment::parse(value).map_err(|e| e.message)
}

/// An Alertmanager fingerprint: not empty, at most 128 characters (as stored).
pub fn fingerprint_arg(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > 128 {
        return Err("is longer than 128 characters".into());
    }
    Ok(value.to_owned())
}

/// A page size, 1..=[`MAX_PAGE_SIZE`].
pub fn limit_arg(value: &str) -> Result<usize, String> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
        .ok_or_else(|| format!("{value:?} is not a whole number from 1 to {MAX_PAGE_SIZE}"))
}

/// How many failed deployments to compare, 1..=100 (as the server allows).
pub fn last_arg(value: &str) -> Result<usize, String> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=100).contains(n))
        .ok_or_else(|| format!("{value:?} is not a whole number from 1 to 100"))
}

/// A positive duration (`10s`, `2m`).
pub fn duration_arg(value: &str) -> Result<std::time::Duration, String> {
    let d = deploygraph_probe::config::parse_duration(value)?;
    if d.is_zero() {
        return Err(format!("{value:?} must be longer than zero"));
    }
    Ok(d)
}

fn param_name(value: &str) -> Result<(&str, &str), String> {
    let (name, rest) = value
        .split_once('=')
        .ok_or_else(|| format!("{value:?} is not NAME=VALUE"))?;
    if name.is_empty() {
        return Err(format!("{value:?} has no parameter name before `=`"));
    }
    Ok((name, rest))
}

/// `NAME=VALUE`: a string parameter.
pub fn param_arg(value: &str) -> Result<(String, Value), String> {
    let (name, text) = param_name(value)?;
    Ok((name.to_owned(), Value::String(text.to_owned())))
}

/// `NAME=JSON`: a parameter of any JSON type.
pub fn param_json_arg(value: &str) -> Result<(String, Value), String> {
    let (name, text) = param_name(value)?;
    let json = serde_json::from_str(text)
        .map_err(|e| format!("the value of {name:?} is not JSON: {e}"))?;
    Ok((name.to_owned(), json))
}

// --- Plumbing shared by the commands ---

/// The client of `--server`, or `None` to work on `--store`.
fn client(target: &RecordTarget) -> Result<Option<Client>, Failure> {
    let Some(server) = &target.server else {
        return Ok(None);
    };
    let client = Client::new(
        server,
        target.token.clone().map(SecretString::from),
        RetryPolicy::default(),
    )
    .context("failed to build the client")?;
    Ok(Some(client))
}

/// A server's refusal as a failure: exit 2, whatever the server refused (a bad value, a
/// refused query, a missing token) and when it cannot be reached.
fn server_failure(what: &str, e: deploygraph_client::Error) -> Failure {
    match e {
        deploygraph_client::Error::Rejected {
            status,
            message,
            field,
            ..
        } => Failure::usage(format!(
            "{what}: the server refused the request ({status}): {}{message}",
            field.map_or(String::new(), |f| format!("{f}: "))
        )),
        e => Failure::from(anyhow::Error::new(e).context(format!("{what}: the request failed"))),
    }
}

/// As [`server_failure`], except that the server not knowing the alert asked about (404
/// `not_found`) is a failed check, exit 1, as on a store.
fn alert_failure(what: &str, e: deploygraph_client::Error) -> Failure {
    match e {
        deploygraph_client::Error::Rejected {
            status: 404,
            code,
            message,
            ..
        } if code == "not_found" => Failure::rejected(format!("{what}: {message}")),
        e => server_failure(what, e),
    }
}

/// The server's JSON answer as the view this CLI prints.
fn decode<T: DeserializeOwned>(what: &str, body: Value) -> Result<T, Failure> {
    serde_json::from_value(body).map_err(|e| {
        Failure::from(anyhow::anyhow!(
            "{what}: the server's answer is not what this version of deploygraph expects: {e}"
        ))
    })
}

pub(crate) fn print_json<T: Serialize>(value: &T) -> Outcome {
    let text = serde_json::to_string(value).context("failed to encode the answer")?;
    println!("{text}");
    Ok(())
}

/// Adds `name=value` to a query string when there is a value.
fn push<T: ToString>(query: &mut Vec<(&'static str, String)>, name: &'static str, v: Option<&T>) {
    if let Some(v) = v {
        query.push((name, v.to_string()));
    }
}

fn push_time(
    query: &mut Vec<(&'static str, String)>,
    name: &'static str,
    v: Option<&DateTime<Utc>>,
) {
    if let Some(v) = v {
        query.push((name, format_time(v)));
    }
}

/// `[since, until]` with the defaults filled in: until now, since `default_span` before until.
fn window(
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    default_span: Duration,
) -> Result<(DateTime<Utc>, DateTime<Utc>), Failure> {
    let until = until.unwrap_or_else(Utc::now);
    let since = since.unwrap_or(until - default_span);
    check_order(Some(&since), Some(&until))?;
    Ok((since, until))
}

fn check_order(since: Option<&DateTime<Utc>>, until: Option<&DateTime<Utc>>) -> Outcome {
    if let (Some(since), Some(until)) = (since, until)
        && since > until
    {
        return Err(Failure::usage(format!(
            "--since: {} is after --until {}",
            format_time(since),
            format_time(until)
        )));
    }
    Ok(())
}

fn no_such_alert(fingerprint: &str, starts_at: Option<&DateTime<Utc>>) -> Failure {
    Failure::rejected(match starts_at {
        Some(at) => format!(
            "no alert with fingerprint {fingerprint:?} started at {}",
            format_time(at)
        ),
        None => format!("no alert with fingerprint {fingerprint:?}"),
    })
}

/// A table with a header row, columns padded to their widest cell.
fn table(headers: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(headers);
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

// --- query alerts ---

/// `GET /v1/alerts`.
#[derive(Debug, Serialize, Deserialize)]
struct AlertPage {
    items: Vec<Alert>,
}

fn alerts_text(alerts: &[Alert]) -> String {
    let headers: Vec<String> = [
        "STARTS_AT",
        "STATUS",
        "SEVERITY",
        "NAME",
        "SERVICE",
        "ENVIRONMENT",
        "FINGERPRINT",
    ]
    .map(str::to_owned)
    .to_vec();
    let rows: Vec<Vec<String>> = alerts
        .iter()
        .map(|a| {
            vec![
                format_time(&a.starts_at),
                match a.status {
                    deploygraph_model::AlertStatus::Firing => "firing".to_owned(),
                    deploygraph_model::AlertStatus::Resolved => "resolved".to_owned(),
                },
                a.severity.clone().unwrap_or_else(|| "-".into()),
                a.name.clone(),
                a.service
                    .as_ref()
                    .map_or("-".to_owned(), ToString::to_string),
                a.environment
                    .as_ref()
                    .map_or("-".to_owned(), ToString::to_string),
                a.fingerprint.clone(),
            ]
        })
        .collect();
    table(&headers, &rows)
}

/// `query alerts`: alert occurrences, newest first.
pub async fn query_alerts(args: QueryAlertsArgs) -> Outcome {
    check_order(args.since.as_ref(), args.until.as_ref())?;
    let page: AlertPage = if let Some(client) = client(&args.target)? {
        let mut query = vec![("limit", args.limit.to_string())];
        push(&mut query, "service", args.service.as_ref());
        push(&mut query, "environment", args.environment.as_ref());
        push(&mut query, "fingerprint", args.fingerprint.as_ref());
        push_time(&mut query, "since", args.since.as_ref());
        push_time(&mut query, "until", args.until.as_ref());
        let what = "failed to list alerts";
        let answer = client
            .get("/v1/alerts", &query)
            .await
            .map_err(|e| server_failure(what, e))?;
        decode(what, answer.body)?
    } else {
        let store = open_migrated(&args.target.store).await?;
        let items = store
            .list_alerts(&AlertFilter {
                service: args.service,
                environment: args.environment,
                fingerprint: args.fingerprint,
                since: args.since,
                until: args.until,
                limit: args.limit,
            })
            .await
            .context("failed to list alerts")?;
        AlertPage { items }
    };
    match args.output {
        Output::Json => print_json(&page),
        Output::Text => {
            print!("{}", alerts_text(&page.items));
            Ok(())
        }
    }
}

// --- query suspects ---

/// `query suspects`: the deployments an alert is attributed to, recomputed first with
/// `--recompute`.
pub async fn query_suspects(args: QuerySuspectsArgs) -> Outcome {
    // Validated even for --server, where the server's own settings apply: a bad flag is a
    // usage error wherever the work happens.
    let settings = attribution_settings(&args.attribution)?;
    let suspects: Suspects = if let Some(client) = client(&args.target)? {
        let mut query = Vec::new();
        push_time(&mut query, "starts_at", args.starts_at.as_ref());
        let fingerprint = path_segment(&args.alert);
        let answer = if args.recompute {
            let what = "failed to recompute the attribution";
            client
                .post_json(
                    &format!("/v1/alerts/{fingerprint}/attribution"),
                    &query,
                    &json!({}),
                )
                .await
                .map_err(|e| alert_failure(what, e))?
        } else {
            client
                .get(&format!("/v1/alerts/{fingerprint}/suspects"), &query)
                .await
                .map_err(|e| alert_failure("failed to read the suspects", e))?
        };
        decode("failed to read the suspects", answer.body)?
    } else {
        let store = open_migrated(&args.target.store).await?;
        let alert = engine::find_alert(store.as_ref(), &args.alert, args.starts_at)
            .await
            .context("failed to read the alert")?
            .ok_or_else(|| no_such_alert(&args.alert, args.starts_at.as_ref()))?;
        if args.recompute {
            engine::attribute_alert(store.as_ref(), &alert, &settings, Utc::now())
                .await
                .context("failed to attribute the alert")?;
        }
        engine::suspects(store.as_ref(), alert)
            .await
            .context("failed to read the suspects")?
    };
    match args.output {
        Output::Json => print_json(&suspects),
        Output::Text => {
            print!("{}", report::suspects_text(&suspects));
            Ok(())
        }
    }
}

// --- query timeline ---

/// `query timeline`: a service's events in a window (the last 24 hours by default).
pub async fn query_timeline(args: QueryTimelineArgs) -> Outcome {
    let (since, until) = window(args.since, args.until, Duration::hours(24))?;
    let timeline: Timeline = if let Some(client) = client(&args.target)? {
        let mut query = vec![
            ("since", format_time(&since)),
            ("until", format_time(&until)),
        ];
        push(&mut query, "environment", args.environment.as_ref());
        let what = "failed to read the timeline";
        let answer = client
            .get(
                &format!(
                    "/v1/services/{}/timeline",
                    path_segment(args.service.as_str())
                ),
                &query,
            )
            .await
            .map_err(|e| server_failure(what, e))?;
        decode(what, answer.body)?
    } else {
        let store = open_migrated(&args.target.store).await?;
        engine::timeline(
            store.as_ref(),
            &args.service,
            args.environment.as_ref(),
            since,
            until,
        )
        .await
        .context("failed to read the timeline")?
    };
    match args.output {
        Output::Json => print_json(&timeline),
        Output::Text => {
            print!("{}", report::timeline_text(&timeline));
            Ok(())
        }
    }
}

// --- query common-factors ---

/// `query common-factors`: what the service's last failed deployments share.
pub async fn query_common_factors(args: QueryCommonFactorsArgs) -> Outcome {
    let settings = attribution_settings(&args.attribution)?;
    let factors: CommonFactors = if let Some(client) = client(&args.target)? {
        let mut query = vec![("last", args.last.to_string())];
        push(&mut query, "environment", args.environment.as_ref());
        let what = "failed to read the common factors";
        let answer = client
            .get(
                &format!(
                    "/v1/services/{}/common-factors",
                    path_segment(args.service.as_str())
                ),
                &query,
            )
            .await
            .map_err(|e| server_failure(what, e))?;
        decode(what, answer.body)?
    } else {
        let store = open_migrated(&args.target.store).await?;
        engine::common_factors_of(
            store.as_ref(),
            &args.service,
            args.environment.as_ref(),
            args.last,
            settings.window,
        )
        .await
        .context("failed to read the common factors")?
    };
    match args.output {
        Output::Json => print_json(&factors),
        Output::Text => {
            print!("{}", report::factors_text(&factors));
            Ok(())
        }
    }
}

// --- query dora ---

/// `query dora`: DORA metrics per service and environment (the last 30 days by default).
pub async fn query_dora(args: QueryDoraArgs) -> Outcome {
    let (since, until) = window(args.since, args.until, Duration::days(30))?;
    let dora: Dora = if let Some(client) = client(&args.target)? {
        let mut query = vec![
            ("since", format_time(&since)),
            ("until", format_time(&until)),
        ];
        push(&mut query, "service", args.service.as_ref());
        push(&mut query, "environment", args.environment.as_ref());
        let what = "failed to read the DORA metrics";
        let answer = client
            .get("/v1/dora", &query)
            .await
            .map_err(|e| server_failure(what, e))?;
        decode(what, answer.body)?
    } else {
        let store = open_migrated(&args.target.store).await?;
        engine::dora_metrics(
            store.as_ref(),
            args.service.as_ref(),
            args.environment.as_ref(),
            since,
            until,
        )
        .await
        .context("failed to compute the DORA metrics")?
    };
    match args.output {
        Output::Json => print_json(&dora),
        Output::Text => {
            print!("{}", report::dora_text(&dora));
            Ok(())
        }
    }
}

// --- query cypher ---

/// `POST /v1/cypher`'s answer.
#[derive(Debug, Serialize, Deserialize)]
struct CypherTable {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
    truncated: bool,
    /// `rows` or `bytes`: which cap cut the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    truncated_by: Option<deploygraph_store::cypher::TruncatedBy>,
}

fn cell(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn cypher_text(result: &CypherTable) -> String {
    if result.columns.is_empty() {
        return "(no rows)\n".to_owned();
    }
    let rows: Vec<Vec<String>> = result
        .rows
        .iter()
        .map(|row| row.iter().map(cell).collect())
        .collect();
    let mut out = table(&result.columns, &rows);
    out.push_str(&format!(
        "({} row{})\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    ));
    out
}

fn cypher_params(args: &QueryCypherArgs) -> Result<Map<String, Value>, Failure> {
    let mut params = Map::new();
    for (flag, list) in [
        ("--param", &args.params),
        ("--param-json", &args.params_json),
    ] {
        for (name, value) in list {
            if params.insert(name.clone(), value.clone()).is_some() {
                return Err(Failure::usage(format!(
                    "{flag}: parameter {name:?} is given more than once"
                )));
            }
        }
    }
    Ok(params)
}

/// `query cypher`: a read-only Cypher query (Neo4j only).
pub async fn query_cypher(args: QueryCypherArgs) -> Outcome {
    if args.query.trim().is_empty() {
        return Err(Failure::usage("QUERY: must not be empty"));
    }
    let params = cypher_params(&args)?;
    let what = "failed to run the query";
    let result: CypherTable = if let Some(client) = client(&args.target)? {
        let mut body = json!({"query": args.query, "params": params});
        if let Some(timeout) = args.timeout {
            body["timeout_ms"] = json!(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        }
        if let Some(limit) = args.limit {
            body["limit"] = json!(limit);
        }
        // The server bounds the query; the HTTP request waits a little longer than that.
        let client = client.with_request_timeout(
            args.timeout.unwrap_or(CYPHER_TIMEOUT) + std::time::Duration::from_secs(30),
        );
        let answer = client
            .post_json("/v1/cypher", &[], &body)
            .await
            .map_err(|e| server_failure(what, e))?;
        decode(what, answer.body)?
    } else {
        let store = open_migrated(&args.target.store).await?;
        let request = deploygraph_store::cypher::CypherRequest {
            query: args.query.clone(),
            params,
            timeout: args.timeout.unwrap_or(CYPHER_TIMEOUT),
            row_cap: args.limit.unwrap_or(CYPHER_ROWS),
            byte_cap: deploygraph_store::cypher::DEFAULT_BYTE_CAP,
        };
        let result = store.read_cypher(&request).await.map_err(|e| match e {
            // The database's own words: what the user has to change.
            deploygraph_store::Error::QueryRefused { reason, .. } => {
                Failure::usage(format!("{what}: {reason}"))
            }
            e @ deploygraph_store::Error::QueryTimedOut { .. } => {
                Failure::usage(format!("{what}: {e} (--timeout)"))
            }
            e @ deploygraph_store::Error::Unsupported { .. } => Failure::usage(format!(
                "{what}: {e}; Cypher needs a Neo4j --store (bolt://HOST:PORT or neo4j://HOST:PORT)"
            )),
            e => Failure::from(anyhow::Error::new(e).context(what)),
        })?;
        CypherTable {
            columns: result.columns,
            rows: result.rows,
            truncated: result.truncated,
            truncated_by: result.truncated_by,
        }
    };
    if result.truncated {
        let cap = match result.truncated_by {
            Some(deploygraph_store::cypher::TruncatedBy::Bytes) => "the byte cap",
            _ => "the row cap (--limit)",
        };
        eprintln!(
            "note: the result was cut at {} rows by {cap}",
            result.rows.len()
        );
    }
    match args.output {
        Output::Json => print_json(&result),
        Output::Text => {
            print!("{}", cypher_text(&result));
            Ok(())
        }
    }
}

// --- report incident ---

/// `report incident`: a post-incident review draft, in Markdown or JSON.
pub async fn report_incident(args: ReportIncidentArgs) -> Outcome {
    let settings = attribution_settings(&args.attribution)?;
    let what = "failed to build the incident report";
    if let Some(client) = client(&args.target)? {
        let mut query = vec![("alert", args.alert.clone())];
        push_time(&mut query, "starts_at", args.starts_at.as_ref());
        query.push((
            "format",
            match args.format {
                ReportFormat::Markdown => "markdown",
                ReportFormat::Json => "json",
            }
            .to_owned(),
        ));
        let answer = client
            .get("/v1/reports/incident", &query)
            .await
            .map_err(|e| alert_failure(what, e))?;
        return match (args.format, answer.body) {
            (ReportFormat::Markdown, Value::String(text)) => {
                print!("{text}");
                Ok(())
            }
            (ReportFormat::Markdown, other) => Err(Failure::from(anyhow::anyhow!(
                "{what}: the server answered JSON where Markdown was asked for: {other}"
            ))),
            (ReportFormat::Json, body) => print_json(&decode::<IncidentReport>(what, body)?),
        };
    }
    let store = open_migrated(&args.target.store).await?;
    let alert = engine::find_alert(store.as_ref(), &args.alert, args.starts_at)
        .await
        .context("failed to read the alert")?
        .ok_or_else(|| no_such_alert(&args.alert, args.starts_at.as_ref()))?;
    let report = engine::incident_report(store.as_ref(), alert, &settings, Utc::now())
        .await
        .context(what)?;
    match args.format {
        ReportFormat::Markdown => {
            print!("{}", report::markdown(&report));
            Ok(())
        }
        ReportFormat::Json => print_json(&report),
    }
}

// --- topology apply ---

/// One service's dependencies as recorded (`PUT /v1/services/{name}/dependencies` answers this).
#[derive(Debug, Serialize, Deserialize)]
struct Applied {
    service: ServiceRef,
    depends_on: Vec<ServiceRef>,
}

fn read_topology(path: &Path) -> Result<Vec<Dependencies>, Failure> {
    let fail = |e: &dyn std::fmt::Display| {
        Failure::usage(format!("topology file {}: {e}", path.display()))
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(&e))?;
    let input: TopologyInput = serde_norway::from_str(&text).map_err(|e| fail(&e))?;
    input.validate().map_err(|e| fail(&e))
}

/// `topology apply`: records every service's DEPENDS_ON edges from a topology file.
pub async fn topology_apply(args: TopologyApplyArgs) -> Outcome {
    // Validated here for both targets: a bad file never reaches the server.
    let services = read_topology(&args.file)?;
    let applied: Vec<Applied> = if let Some(client) = client(&args.target)? {
        let mut applied = Vec::with_capacity(services.len());
        for (service, depends_on) in services {
            let what = format!("failed to record the dependencies of {service}");
            // Dependencies go out fully qualified: the file's defaults were applied above.
            let body = json!({
                "namespace": service.namespace,
                "environment": service.environment,
                "depends_on": depends_on,
            });
            let answer = client
                .put_json(
                    &format!(
                        "/v1/services/{}/dependencies",
                        path_segment(service.name.as_str())
                    ),
                    &[],
                    &body,
                )
                .await
                .map_err(|e| server_failure(&what, e))?;
            tracing::info!(service = %service, dependencies = depends_on.len(), "dependencies recorded");
            applied.push(decode(&what, answer.body)?);
        }
        applied
    } else {
        let store = open_migrated(&args.target.store).await?;
        apply_topology(store.as_ref(), &args.file).await?;
        services
            .into_iter()
            .map(|(service, depends_on)| Applied {
                service,
                depends_on,
            })
            .collect()
    };
    match args.output {
        Output::Json => print_json(&json!({ "services": applied })),
        Output::Text => {
            for a in &applied {
                let deps: Vec<String> = a.depends_on.iter().map(ToString::to_string).collect();
                println!(
                    "{} depends on {}",
                    a.service,
                    if deps.is_empty() {
                        "nothing".to_owned()
                    } else {
                        deps.join(", ")
                    }
                );
            }
            println!("applied the topology of {} service(s)", applied.len());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parameters_split_at_the_first_equals_sign() {
        assert_eq!(
            param_arg("q=a=b").unwrap(),
            ("q".to_owned(), Value::String("a=b".into()))
        );
        assert_eq!(
            param_json_arg("ids=[1, 2]").unwrap(),
            ("ids".to_owned(), json!([1, 2]))
        );
        assert!(param_arg("novalue").is_err());
        assert!(param_arg("=x").is_err());
        assert!(param_json_arg("n={").unwrap_err().contains("\"n\""));
    }

    #[test]
    fn limits_outside_the_page_range_are_refused() {
        assert_eq!(limit_arg("1").unwrap(), 1);
        assert!(limit_arg("0").is_err());
        assert!(limit_arg("10001").is_err());
        assert!(limit_arg("ten").is_err());
    }

    #[test]
    fn tables_align_columns_on_the_widest_cell() {
        let text = table(
            &["A".into(), "LONGER".into(), "C".into()],
            &[
                vec!["wide-cell".into(), "x".into(), "end".into()],
                vec!["é".into(), "yy".into(), String::new()],
            ],
        );
        assert_eq!(
            text,
            "A          LONGER  C\nwide-cell  x       end\né          yy      \n"
        );
    }

    #[test]
    fn cypher_cells_print_strings_bare_and_other_values_as_json() {
        let result = CypherTable {
            columns: vec!["n".into(), "name".into()],
            rows: vec![
                vec![json!(1), json!("payments")],
                vec![json!({"a": null}), Value::Null],
            ],
            truncated: false,
            truncated_by: None,
        };
        assert_eq!(
            cypher_text(&result),
            "n           name\n1           payments\n{\"a\":null}  null\n(2 rows)\n"
        );
    }

    #[test]
    fn an_empty_window_end_before_its_start_is_a_usage_error() {
        let t = |s: &str| parse_time(s).unwrap();
        assert!(
            window(
                Some(t("2026-11-02T00:00:00Z")),
                Some(t("2026-11-01T00:00:00Z")),
                Duration::days(1)
            )
            .is_err()
        );
        let (since, until) = window(None, Some(t("2026-11-02T00:00:00Z")), Duration::days(1))
            .ok()
            .unwrap();
        assert_eq!(since, t("2026-11-01T00:00:00Z"));
        assert_eq!(until, t("2026-11-02T00:00:00Z"));
    }
}
