//! Root-cause analysis from the command line: `query alerts|suspects|timeline|common-factors|
//! dora|cypher|resilience` and `report incident`.
//!
//! Each command is one request of the HTTP API ([`deploygraph_client`]), sent to a server
//! (`--server`) or to the same router in this process over `--store` ([`crate::api`]); it
//! prints the answer as JSON identical to the HTTP body, or as the text renderings of
//! [`deploygraph_analysis::report`].

use crate::api::{Local, connect};
use crate::cli::{
    AskArgs, Output, QueryAlertsArgs, QueryCommonFactorsArgs, QueryCypherArgs, QueryDoraArgs,
    QueryResilienceArgs, QuerySuspectsArgs, QueryTimelineArgs, ReportFormat, ReportIncidentArgs,
};
use crate::commands::Failure;
use anyhow::Context as _;
use chrono::{DateTime, Duration, Utc};
use deploygraph_analysis::report;
use deploygraph_analysis::views::{CommonFactors, Dora, IncidentReport, Suspects, Timeline};
use deploygraph_client::{AlertsQuery, CypherQuery, Occurrence};
use deploygraph_model::{
    Alert, SuspectVerdict, VerdictInput, VerdictKind, format_time, parse_time,
};
use deploygraph_model::{Environment, ServiceName};
use deploygraph_store::MAX_PAGE_SIZE;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

type Outcome = Result<(), Failure>;

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

/// A cluster name.
pub fn cluster_arg(value: &str) -> Result<deploygraph_model::Cluster, String> {
    deploygraph_model::Cluster::parse(value).map_err(|e| e.message)
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

/// A deployment's or a change's uid, as deploygraph prints them.
pub fn uid_arg(value: &str) -> Result<String, String> {
    deploygraph_model::Uid::parse(value)
        .map(|u| u.as_str().to_owned())
        .map_err(|e| e.message)
}

/// Who gives a verdict: not empty, at most 256 characters (as the server takes it).
pub fn reviewer_arg(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.chars().count() > deploygraph_model::verdict::limits::BY {
        return Err(format!(
            "is longer than {} characters",
            deploygraph_model::verdict::limits::BY
        ));
    }
    Ok(value.to_owned())
}

/// A verdict's note: at most 4096 characters (as the server takes it).
pub fn note_arg(value: &str) -> Result<String, String> {
    if value.chars().count() > deploygraph_model::verdict::limits::NOTE {
        return Err(format!(
            "is longer than {} characters",
            deploygraph_model::verdict::limits::NOTE
        ));
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

/// The API's JSON answer as the view this CLI prints.
pub(crate) fn decode<T: DeserializeOwned>(what: &str, body: Value) -> Result<T, Failure> {
    serde_json::from_value(body).map_err(|e| {
        Failure::from(anyhow::anyhow!(
            "{what}: the answer is not what this version of deploygraph expects: {e}"
        ))
    })
}

pub(crate) fn print_json<T: Serialize>(value: &T) -> Outcome {
    let text = serde_json::to_string(value).context("failed to encode the answer")?;
    crate::outln!("{text}")
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
    #[serde(default)]
    truncated: bool,
    #[serde(default)]
    next_cursor: Option<String>,
}

/// Says on standard error that an answer was cut at its page size, and how to go on.
pub(crate) fn note_truncated(what: &str, next_cursor: Option<&str>) {
    match next_cursor {
        Some(cursor) => eprintln!("note: more {what} than shown; more: --cursor {cursor}"),
        None => eprintln!("note: more {what} than shown"),
    }
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
    let client = connect(&args.target, Local::default()).await?;
    let what = "failed to list alerts";
    let answer = client
        .list_alerts(&AlertsQuery {
            service: args.service,
            environment: args.environment,
            fingerprint: args.fingerprint,
            since: args.since,
            until: args.until,
            limit: Some(args.limit),
            cursor: args.cursor,
        })
        .await
        .map_err(|e| Failure::from_api(what, e))?;
    let page: AlertPage = decode(what, answer.body)?;
    match args.output {
        Output::Json => print_json(&page),
        Output::Text => {
            crate::out!("{}", alerts_text(&page.items))?;
            if page.truncated {
                note_truncated("alerts", page.next_cursor.as_deref());
            }
            Ok(())
        }
    }
}

// --- query suspects ---

/// Parses `--wait` (`10s`, `2m`, `0s`; at most an hour).
///
/// # Errors
/// When it is not a duration.
pub fn wait_arg(value: &str) -> Result<std::time::Duration, String> {
    let wait = deploygraph_probe::config::parse_duration(value)?;
    if wait > std::time::Duration::from_secs(3600) {
        return Err("at most 1h".into());
    }
    Ok(wait)
}

/// `query suspects`: the deployments an alert is attributed to, recomputed first with
/// `--recompute`.
pub async fn query_suspects(args: QuerySuspectsArgs) -> Outcome {
    // Validated with --server too, where the server's own settings apply: a bad flag is a
    // usage error wherever the work happens.
    let local = Local::attribution(&args.attribution)?;
    let client = connect(&args.target, local).await?;
    let alert = Occurrence {
        fingerprint: &args.alert,
        starts_at: args.starts_at.as_ref(),
    };
    let verdict = match (&args.confirm, &args.reject) {
        (Some(uid), _) => Some((VerdictKind::Confirmed, uid)),
        (None, Some(uid)) => Some((VerdictKind::Rejected, uid)),
        (None, None) => None,
    };
    if let Some((kind, uid)) = verdict {
        return record_verdict(&client, alert, kind, uid, &args).await;
    }
    let what = if args.recompute {
        "failed to recompute the attribution"
    } else {
        "failed to read the suspects"
    };
    let deadline = tokio::time::Instant::now() + args.wait;
    let mut recompute = args.recompute;
    let suspects = loop {
        let answer = client
            .suspects(alert, recompute)
            .await
            .map_err(|e| Failure::from_api(what, e))?;
        let suspects: Suspects = decode(what, answer.body)?;
        recompute = false;
        if !suspects.attribution_pending || tokio::time::Instant::now() >= deadline {
            break suspects;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    match args.output {
        Output::Json => print_json(&suspects),
        Output::Text => crate::out!("{}", report::suspects_text(&suspects)),
    }
}

/// `query suspects --confirm UID | --reject UID`: a reviewer's verdict on a subject of the
/// alert, printed as stored.
async fn record_verdict(
    client: &deploygraph_client::Client,
    alert: Occurrence<'_>,
    kind: VerdictKind,
    uid: &str,
    args: &QuerySuspectsArgs,
) -> Outcome {
    let what = match kind {
        VerdictKind::Confirmed => "failed to confirm the suspect",
        VerdictKind::Rejected => "failed to reject the suspect",
    };
    let input = VerdictInput {
        verdict: Some(kind.as_str().to_owned()),
        by: args.by.clone(),
        note: args.note.clone(),
    };
    let answer = client
        .verdict(alert, uid, &input)
        .await
        .map_err(|e| Failure::from_api(what, e))?;
    let stored: SuspectVerdict = decode(what, answer.body)?;
    match args.output {
        Output::Json => print_json(&stored),
        Output::Text => crate::out!(
            "{} {} of alert {} ({}) {}\n",
            stored.subject.as_str(),
            stored.subject_uid,
            args.alert,
            stored.alert_uid,
            report::verdict_text(&deploygraph_analysis::views::VerdictView::from(&stored))
        ),
    }
}

// --- query timeline ---

/// `query timeline`: a service's events in a window (the last 24 hours by default).
pub async fn query_timeline(args: QueryTimelineArgs) -> Outcome {
    let (since, until) = window(args.since, args.until, Duration::hours(24))?;
    let client = connect(&args.target, Local::default()).await?;
    let what = "failed to read the timeline";
    let answer = client
        .timeline(
            &args.service,
            (args.environment.as_ref(), args.cluster.as_ref()),
            &since,
            &until,
            args.limit,
            args.cursor.as_deref(),
        )
        .await
        .map_err(|e| Failure::from_api(what, e))?;
    let timeline: Timeline = decode(what, answer.body)?;
    match args.output {
        Output::Json => print_json(&timeline),
        Output::Text => {
            crate::out!("{}", report::timeline_text(&timeline))?;
            if timeline.truncated {
                note_truncated(
                    "items in the window (older ones)",
                    timeline.next_cursor.as_deref(),
                );
            }
            Ok(())
        }
    }
}

// --- query common-factors ---

/// `query common-factors`: what the service's last failed deployments share.
pub async fn query_common_factors(args: QueryCommonFactorsArgs) -> Outcome {
    let local = Local::attribution(&args.attribution)?;
    let client = connect(&args.target, local).await?;
    let what = "failed to read the common factors";
    let answer = client
        .common_factors(
            &args.service,
            (args.environment.as_ref(), args.cluster.as_ref()),
            args.last,
        )
        .await
        .map_err(|e| Failure::from_api(what, e))?;
    let factors: CommonFactors = decode(what, answer.body)?;
    match args.output {
        Output::Json => print_json(&factors),
        Output::Text => crate::out!("{}", report::factors_text(&factors)),
    }
}

// --- query dora ---

/// `query dora`: DORA metrics per service and environment (the last 30 days by default).
pub async fn query_dora(args: QueryDoraArgs) -> Outcome {
    let (since, until) = window(args.since, args.until, Duration::days(30))?;
    let client = connect(&args.target, Local::default()).await?;
    let what = "failed to read the DORA metrics";
    let answer = client
        .dora(
            args.service.as_ref(),
            (args.environment.as_ref(), args.cluster.as_ref()),
            &since,
            &until,
        )
        .await
        .map_err(|e| Failure::from_api(what, e))?;
    let dora: Dora = decode(what, answer.body)?;
    match args.output {
        Output::Json => print_json(&dora),
        Output::Text => crate::out!("{}", report::dora_text(&dora)),
    }
}

// --- query resilience ---

/// `GET /v1/services/{name}/resilience`.
#[derive(Debug, Serialize, Deserialize)]
struct Resilience {
    service: ServiceName,
    runs: Vec<deploygraph_chaos::resilience::TrendRow>,
    #[serde(default)]
    truncated: bool,
}

/// `query resilience`: chaos verdicts per scenario across releases, regressions flagged.
pub async fn query_resilience(args: QueryResilienceArgs) -> Outcome {
    let client = connect(&args.target, Local::default()).await?;
    let what = "failed to read the resilience";
    let answer = client
        .resilience(&args.service, args.environment.as_ref())
        .await
        .map_err(|e| Failure::from_api(what, e))?;
    let resilience: Resilience = decode(what, answer.body)?;
    match args.output {
        Output::Json => print_json(&resilience),
        Output::Text => {
            crate::out!(
                "{}",
                deploygraph_chaos::resilience::trend_text(
                    resilience.service.as_str(),
                    &resilience.runs
                )
            )?;
            if resilience.truncated {
                eprintln!(
                    "note: only the newest chaos runs were considered; older ones were left out"
                );
            }
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
    // Over --store, the flags are the limits (a server has its own, which they may lower).
    let local = Local {
        cypher_timeout: args.timeout,
        cypher_max_rows: args.limit,
        ..Local::default()
    };
    let client = connect(&args.target, local).await?;
    let what = "failed to run the query";
    let answer = client
        .cypher(&CypherQuery {
            query: args.query.clone(),
            params,
            timeout: args.timeout,
            limit: args.limit,
        })
        .await
        .map_err(|e| Failure::from_api(what, e))?;
    let result: CypherTable = decode(what, answer.body)?;
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
        Output::Text => crate::out!("{}", cypher_text(&result)),
    }
}

// --- report incident ---

/// `report incident`: a post-incident review draft, in Markdown or JSON.
pub async fn report_incident(args: ReportIncidentArgs) -> Outcome {
    let local = Local::attribution(&args.attribution)?;
    let client = connect(&args.target, local).await?;
    let what = "failed to build the incident report";
    let alert = Occurrence {
        fingerprint: &args.alert,
        starts_at: args.starts_at.as_ref(),
    };
    let format = match args.format {
        ReportFormat::Markdown => deploygraph_client::ReportFormat::Markdown,
        ReportFormat::Json => deploygraph_client::ReportFormat::Json,
    };
    let answer = client
        .incident_report(alert, format)
        .await
        .map_err(|e| Failure::from_api(what, e))?;
    match (args.format, answer.body) {
        (ReportFormat::Markdown, Value::String(text)) => crate::out!("{text}"),
        (ReportFormat::Markdown, other) => Err(Failure::from(anyhow::anyhow!(
            "{what}: the answer is JSON where Markdown was asked for: {other}"
        ))),
        (ReportFormat::Json, body) => print_json(&decode::<IncidentReport>(what, body)?),
    }
}

// --- ask ---

/// `ask`: a question answered by the query it maps to (`GET /v1/ask`). Text output says how
/// it was understood, renders the answer as the query's own command does, and gives the
/// equivalent Cypher; a question that cannot be mapped exits 2 with the forms understood.
pub async fn ask(args: AskArgs) -> Outcome {
    let question = args.question.trim();
    if question.is_empty() {
        return Err(Failure::usage("QUESTION: must not be empty"));
    }
    let client = connect(&args.target, Local::default()).await?;
    let what = "failed to answer the question";
    let answer = match client.ask(question).await {
        Ok(a) => a,
        Err(e) => {
            let not_understood = matches!(
                &e,
                deploygraph_client::Error::Rejected { code, .. } if code == "not_understood"
            );
            let failure = Failure::from_api(what, e);
            if not_understood && args.output == Output::Text {
                eprintln!("questions understood:");
                for form in deploygraph_analysis::ask::FORMS {
                    eprintln!("  {form}");
                }
            }
            return Err(failure);
        }
    };
    let body = answer.body;
    if args.output == Output::Json {
        return crate::outln!("{body}");
    }
    crate::outln!(
        "understood as: {}",
        body["understood_as"].as_str().unwrap_or("?")
    )?;
    crate::outln!(
        "same as:       GET {}",
        body["endpoint"].as_str().unwrap_or("?")
    )?;
    crate::outln!()?;
    let what = "failed to read the answer";
    let answer = body["answer"].clone();
    match body["understood"]["intent"].as_str().unwrap_or_default() {
        _ if answer.is_null() => crate::outln!(
            "{}",
            body["note"]
                .as_str()
                .unwrap_or("nothing matches the question")
        )?,
        "suspects" => crate::out!(
            "{}",
            report::suspects_text(&decode::<Suspects>(what, answer)?)
        )?,
        "common_factors" => crate::out!(
            "{}",
            report::factors_text(&decode::<CommonFactors>(what, answer)?)
        )?,
        "timeline" => crate::out!(
            "{}",
            report::timeline_text(&decode::<Timeline>(what, answer)?)
        )?,
        "dora" => crate::out!("{}", report::dora_text(&decode::<Dora>(what, answer)?))?,
        "resilience" => {
            let r: Resilience = decode(what, answer)?;
            crate::out!(
                "{}",
                deploygraph_chaos::resilience::trend_text(r.service.as_str(), &r.runs)
            )?;
        }
        "alerts" => {
            let alerts: Vec<Alert> = decode(what, answer["items"].clone())?;
            crate::out!("{}", alerts_text(&alerts))?;
        }
        "deployments" => crate::commands::print_page(Output::Text, &answer)?,
        _ => crate::outln!(
            "{}",
            serde_json::to_string_pretty(&answer).unwrap_or_default()
        )?,
    }
    crate::outln!()?;
    crate::outln!("cypher (read-only; `deploygraph query cypher` on Neo4j, or POST /v1/cypher):")?;
    crate::outln!("  {}", body["cypher"]["query"].as_str().unwrap_or("?"))?;
    crate::outln!("  params: {}", body["cypher"]["params"])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

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
