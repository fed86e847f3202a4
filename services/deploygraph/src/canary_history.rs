//! History baselines: `deploygraph canary summarize` records what a settled deployment measured
//! on a template's metrics (`POST /v1/deployments/{uid}/summaries`), and `canary analyze
//! --baseline history|auto` judges a canary against the summaries of the service's earlier
//! releases (`GET /v1/services/{name}/summaries`), through `--server` or `--store`.
//!
//! **Which releases.** The summaries on the template (by its name) of the deployments of the
//! analysed deployment's service in its environment that started before it, leaving out
//! deployments that failed or were rolled back: at most [`HISTORY_RELEASES`], the most recent
//! first. They are read once, before the first analysis. Each is named in the evidence by its
//! deployment's uid (and version). With fewer than three usable releases a metric is
//! inconclusive, never failed.
//!
//! **`auto`** judges side by side while `--baseline-selector` finds a series for some metric of
//! the template, and against the history in any analysis where it finds none.
//!
//! **Exit codes of `summarize`.** 0 recorded; 2 usage (a bad flag, an unknown deployment, no
//! `--server`/`--store`, a query Prometheus refuses as invalid); 3 the server, store or
//! Prometheus cannot be reached; 1 refused by the server (401, …) or another failed query;
//! 4 no metric of the template has a series for the release over the window (nothing
//! recorded).

use crate::canary::{default_selector, load_template, query_failure};
use crate::canary_record::{Recorder, client_of};
use crate::cli::{BaselineChoice, CanaryAnalyzeArgs, CanarySummarizeArgs, Output};
use crate::commands::Failure;
use deploygraph_canary::prometheus::{Collected, Prometheus, PrometheusConfig};
use deploygraph_canary::sequential;
use deploygraph_canary::{MetricData, Selector, Side, Template, Verdict, Window};
use deploygraph_client::Client;
use deploygraph_model::{Environment, ServiceName, Uid, format_time, parse_time};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// Most earlier releases a history baseline reads.
pub const HISTORY_RELEASES: usize = 10;

/// A deployment as the API returns it: what a history needs of it.
struct DeploymentFacts {
    uid: String,
    service: ServiceName,
    environment: Environment,
    started_at: chrono::DateTime<chrono::Utc>,
}

/// Reads the deployment `uid`; an unknown one is a usage error naming `flag`.
async fn deployment_facts(
    client: &Client,
    uid: &str,
    flag: &str,
) -> Result<DeploymentFacts, Failure> {
    let body = match client.deployment(uid).await {
        Ok(accepted) => accepted.body,
        Err(deploygraph_client::Error::Rejected { status: 404, .. }) => {
            return Err(Failure::usage(format!(
                "{flag} {uid}: no such deployment is recorded"
            )));
        }
        Err(e) => return Err(Failure::from_api("failed to read the deployment", e)),
    };
    let text = |field: &str| body[field].as_str().unwrap_or_default().to_owned();
    let unreadable = |field: &str| {
        Failure::from(anyhow::anyhow!(
            "the deployment {uid} as returned has no usable `{field}`: {body}"
        ))
    };
    Ok(DeploymentFacts {
        uid: uid.to_owned(),
        service: ServiceName::parse(&text("service")).map_err(|_| unreadable("service"))?,
        environment: Environment::parse(&text("environment"))
            .map_err(|_| unreadable("environment"))?,
        started_at: parse_time(&text("started_at")).map_err(|_| unreadable("started_at"))?,
    })
}

/// The history baseline of one analysis.
pub struct History {
    releases: Vec<deploygraph_canary::ReleaseSummary>,
    /// `auto`: only where the side-by-side baseline has no series.
    fallback: bool,
}

impl History {
    /// A baseline of `releases`; with `fallback`, used only where the side-by-side baseline
    /// has no series.
    pub fn new(releases: Vec<deploygraph_canary::ReleaseSummary>, fallback: bool) -> Self {
        Self { releases, fallback }
    }
}

/// The release's name in the evidence: its deployment's uid, and version when it has one.
fn release_name(item: &Value) -> String {
    let uid = item["deployment"].as_str().unwrap_or_default();
    match item["version"].as_str() {
        Some(version) => format!("{uid} ({version})"),
        None => uid.to_owned(),
    }
}

/// The judge's form of the summaries the API returned; a metric it cannot read is left out
/// with a warning.
pub(crate) fn releases_of(items: &[Value]) -> Vec<deploygraph_canary::ReleaseSummary> {
    items
        .iter()
        .map(|item| {
            let release = release_name(item);
            let mut metrics = BTreeMap::new();
            for (name, data) in item["metrics"].as_object().into_iter().flatten() {
                match serde_json::from_value::<MetricData>(data.clone()) {
                    Ok(d) => {
                        metrics.insert(name.clone(), d);
                    }
                    Err(e) => eprintln!(
                        "warning: history baseline: metric {name} of release {release} is left out: {e}"
                    ),
                }
            }
            deploygraph_canary::ReleaseSummary { release, metrics }
        })
        .collect()
}

/// The history baseline `args` ask for: `None` for `--baseline side-by-side`.
///
/// # Errors
/// Exit 2 when no deployment is named or nothing records (the history is read through the
/// recorder's server or store); the API's failures with their codes.
pub async fn load(
    args: &CanaryAnalyzeArgs,
    recorder: Option<&Recorder>,
    template: &Template,
) -> Result<Option<History>, Failure> {
    if args.baseline == BaselineChoice::SideBySide {
        return Ok(None);
    }
    let Some(recorder) = recorder else {
        return Err(Failure::usage(
            "--baseline history/auto: the service's earlier releases are read for the deployment \
             under analysis; give --deployment UID (or --environment ENV) and --server URL or \
             --store URI",
        ));
    };
    let client = recorder.client();
    let d = deployment_facts(client, recorder.deployment(), "--deployment").await?;
    let page = client
        .release_summaries(
            &d.service,
            &d.environment,
            &template.name,
            Some(&d.started_at),
            Some(HISTORY_RELEASES),
        )
        .await
        .map_err(|e| Failure::from_api("failed to read the service's release summaries", e))?;
    let items = page.body["items"].as_array().cloned().unwrap_or_default();
    let releases = releases_of(&items);
    eprintln!(
        "history baseline: {} earlier release(s) of {} in {} summarized on {}{}",
        releases.len(),
        d.service,
        d.environment,
        template.name,
        if releases.is_empty() {
            " (record them with `deploygraph canary summarize`; too few releases is inconclusive)"
        } else {
            ""
        }
    );
    Ok(Some(History {
        releases,
        fallback: args.baseline == BaselineChoice::Auto,
    }))
}

/// Collects one analysis: side by side without a history; the canary against the history with
/// `--baseline history`; with `auto` side by side unless the baseline has no series.
///
/// # Errors
/// [`deploygraph_canary::Error::Query`] for the first query that failed.
pub async fn collect(
    prometheus: &Prometheus,
    history: Option<&History>,
    template: &Template,
    canary: &Selector,
    baseline: &Selector,
    window: Window,
    at: SystemTime,
) -> deploygraph_canary::Result<Collected> {
    let Some(history) = history else {
        return prometheus
            .collect(template, canary, baseline, window, at)
            .await;
    };
    if history.fallback {
        let collected = prometheus
            .collect(template, canary, baseline, window, at)
            .await?;
        if collected.has_side_by_side_baseline() {
            return Ok(collected);
        }
        let measured = deploygraph_canary::prometheus::Measured {
            data: collected.inputs.canary,
            queries: collected.queries,
        };
        return Ok(Collected::against_history(
            measured,
            window,
            history.releases.clone(),
        ));
    }
    let measured = prometheus
        .measure(template, canary, Side::Canary, window, at)
        .await?;
    Ok(Collected::against_history(
        measured,
        window,
        history.releases.clone(),
    ))
}

/// One analysis of a run, judged: [`collect`] over `window` ending now, the judge, and, when
/// the baseline is side by side, the sequential test of each critical ratio metric on
/// everything since the run started `elapsed` ago
/// ([`deploygraph_canary::sequential`]; none at the run's first analysis), whose failure fails
/// the verdict at once. What `canary analyze` and `serve`'s analyses of rollouts run each round.
///
/// # Errors
/// [`deploygraph_canary::Error::Query`] for the first query that failed.
pub async fn judge_round(
    prometheus: &Prometheus,
    history: Option<&History>,
    template: &Template,
    canary: &Selector,
    baseline: &Selector,
    window: Window,
    elapsed: Duration,
) -> deploygraph_canary::Result<Verdict> {
    let at = SystemTime::now();
    let collected = collect(prometheus, history, template, canary, baseline, window, at).await?;
    prometheus
        .judge_run(
            &collected,
            template,
            (canary, baseline),
            sequential::span(elapsed),
            at,
        )
        .await
}

/// A short account of one metric's data, for people.
fn describe(data: &MetricData) -> String {
    match data {
        MetricData::Ratio(c) => format!("{} of {}", c.numerator, c.denominator),
        MetricData::Distribution(d) => {
            let n: u64 = match d {
                deploygraph_canary::Distribution::Samples(v) => v.len() as u64,
                deploygraph_canary::Distribution::Weighted(points) => {
                    points.iter().map(|p| p.count).sum()
                }
                deploygraph_canary::Distribution::Histogram(h) => h.count,
            };
            format!("{n} observations")
        }
    }
}

/// `canary summarize`.
pub async fn summarize(args: CanarySummarizeArgs) -> Result<(), Failure> {
    let template = load_template(&args.template)?;
    Uid::parse_deployment(&args.deployment)
        .map_err(|e| Failure::usage(format!("--deployment: {}", e.message)))?;
    let config = PrometheusConfig::new(&args.prometheus)
        .map_err(|e| Failure::usage(format!("--prometheus: {e}")))?;
    let prometheus = Prometheus::new(config).map_err(|e| Failure::from(anyhow::Error::new(e)))?;
    let client = client_of(
        &args.record,
        "--deployment: the summary is recorded through --server URL or --store URI; give one",
    )
    .await?;
    let d = deployment_facts(&client, &args.deployment, "--deployment").await?;
    let selector = match args.selector.clone() {
        Some(s) => s,
        None => default_selector(d.service.as_str(), "stable")?,
    };
    let at = SystemTime::now();
    let measured = prometheus
        .measure(&template, &selector, Side::Baseline, args.window, at)
        .await
        .map_err(query_failure)?;
    let mut metrics = Map::new();
    let mut kept = Vec::new();
    for (name, data) in &measured.data {
        // Counts rounded one by one can put a handful of errors above the requests.
        if let Err(reason) = data.check() {
            eprintln!("warning: metric {name} is left out of the summary: {reason}");
            continue;
        }
        let summary = data.summary();
        metrics.insert(
            name.clone(),
            serde_json::to_value(&summary).map_err(|e| Failure::from(anyhow::Error::new(e)))?,
        );
        kept.push(format!("{name}: {}", describe(data)));
    }
    if metrics.is_empty() {
        return Err(Failure::inconclusive(format!(
            "no data: no metric of {} has a series for {selector} over {}; nothing recorded",
            template.name, args.window
        )));
    }
    let settled_at = chrono::DateTime::<chrono::Utc>::from(at);
    let body = json!({
        "template": template.name,
        "window": args.window.to_string(),
        "settled_at": format_time(&settled_at),
        "metrics": metrics,
    });
    let accepted = client
        .record_release_summary(&d.uid, &body)
        .await
        .map_err(|e| Failure::from_api("failed to record the release summary", e))?;
    let status = if accepted.status == 201 {
        "created"
    } else {
        "updated"
    };
    match args.format {
        Output::Json => {
            let mut line = accepted.body.clone();
            if let Some(object) = line.as_object_mut() {
                object.insert("status".into(), json!(status));
            }
            crate::insight::print_json(&line)
        }
        Output::Text => crate::outln!(
            "{status} release summary {} of deployment {} ({} in {}) on {} over {}: {}",
            accepted.body["uid"].as_str().unwrap_or_default(),
            d.uid,
            d.service,
            d.environment,
            template.name,
            args.window,
            kept.join("; ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_are_named_by_deployment_and_version_and_unreadable_metrics_left_out() {
        let items = vec![
            json!({"deployment": "deployment-1", "version": "v3", "metrics": {
                "errors": {"kind": "ratio", "data": {"numerator": 1, "denominator": 100}},
                "broken": {"kind": "sideways"}
            }}),
            json!({"deployment": "deployment-2", "metrics": {}}),
        ];
        let releases = releases_of(&items);
        assert_eq!(releases[0].release, "deployment-1 (v3)");
        assert_eq!(releases[1].release, "deployment-2");
        assert_eq!(
            releases[0].metrics.keys().collect::<Vec<_>>(),
            vec!["errors"]
        );
    }
}
