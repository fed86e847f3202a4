//! Recording `canary analyze`'s decisions in the graph: each analysis round's verdict is posted
//! to `POST /v1/canary/analyses` (a server's with `--server`, or the router in this process
//! over `--store`) as the CanaryAnalysis of the deployment named by `--deployment` (or the
//! newest deployment of `--service` in `--environment`). The analysis' uid comes from the
//! deployment and the command's start, so every round replaces the record of the one before.
//!
//! **Exit codes.** Problems found before the first analysis — a malformed or unknown
//! `--deployment`, no deployment in `--environment`, a deployment without `--server` or
//! `--store`, a server or store that cannot be reached — end the command at once with the
//! table's code (2 usage, 3 unreachable). Once the analysis runs, a failed recording never
//! changes the exit code, which is the verdict's (0/1/4): it is reported on standard error
//! (`warning:` for a round, `error:` for the final verdict) and, with `--format json`, as
//! `record_error` on the analysis' line; the next round records again.

use crate::cli::{CanaryAnalyzeArgs, RecordTarget, StoreOptions};
use crate::commands::Failure;
use deploygraph_canary::{BaselineKind, MetricEvidence, MetricKind, Outcome, Verdict};
use deploygraph_client::Client;
use deploygraph_client::requests::DeploymentsQuery;
use deploygraph_model::canary::limits;
use deploygraph_model::uid::DEPLOYMENT_PREFIX;
use deploygraph_model::{
    CanaryAnalysisInput, CanaryBaselineKind, CanaryMetricKind, CanaryVerdict, MetricVerdictInput,
    Uid, format_time,
};
use serde_json::{Value, json};

/// What recording one round gave: the analysis' uid and `created`/`updated`, or why it failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// Stored.
    Stored {
        /// The analysis' uid.
        uid: String,
        /// `created` or `updated`.
        status: &'static str,
    },
    /// Not stored; the message says why.
    Failed(String),
}

impl Recorded {
    /// The fields it adds to a JSON line.
    pub fn json(&self) -> Value {
        match self {
            Self::Stored { uid, status } => json!({"recorded": {"uid": uid, "status": status}}),
            Self::Failed(message) => json!({"record_error": message}),
        }
    }
}

/// Records the rounds of one analysis.
pub struct Recorder {
    client: Client,
    deployment: String,
    template: String,
    started_at: String,
}

fn verdict_of(o: Outcome) -> CanaryVerdict {
    match o {
        Outcome::Pass => CanaryVerdict::Pass,
        Outcome::Fail => CanaryVerdict::Fail,
        Outcome::Inconclusive => CanaryVerdict::Inconclusive,
        Outcome::NoData => CanaryVerdict::NoData,
    }
}

fn baseline_of(b: BaselineKind) -> CanaryBaselineKind {
    match b {
        BaselineKind::SideBySide => CanaryBaselineKind::SideBySide,
        BaselineKind::History => CanaryBaselineKind::History,
    }
}

fn kind_of(k: MetricKind) -> CanaryMetricKind {
    match k {
        MetricKind::Ratio => CanaryMetricKind::Ratio,
        MetricKind::Distribution => CanaryMetricKind::Distribution,
    }
}

/// The evidence of a metric within [`limits::EVIDENCE_BYTES`]: whole when it fits; else
/// without its queries (their count kept); else only what identifies it and its rule.
fn bounded_evidence(m: &MetricEvidence) -> Value {
    let size = |v: &Value| serde_json::to_vec(v).map_or(usize::MAX, |b| b.len());
    let mut value = serde_json::to_value(m).unwrap_or_else(|_| json!({}));
    if size(&value) <= limits::EVIDENCE_BYTES {
        return value;
    }
    if let Some(object) = value.as_object_mut() {
        object.remove("queries");
        object.insert("queries_omitted".into(), json!(m.queries.len()));
    }
    if size(&value) <= limits::EVIDENCE_BYTES {
        return value;
    }
    let rule: String = m.rule.chars().take(limits::RULE).collect();
    json!({"metric": m.metric, "outcome": verdict_of(m.outcome), "rule": rule, "truncated": true})
}

/// The request body of one round.
pub fn analysis_input(
    deployment: &str,
    template: &str,
    started_at: &str,
    verdict: &Verdict,
    rounds: u32,
) -> CanaryAnalysisInput {
    let text = |s: &str, max: usize| -> String { s.chars().take(max).collect() };
    CanaryAnalysisInput {
        deployment: deployment.to_owned(),
        template: text(template, limits::NAME),
        verdict: verdict_of(verdict.outcome),
        baseline_kind: baseline_of(verdict.baseline_kind),
        started_at: started_at.to_owned(),
        decided_at: format_time(&chrono::Utc::now()),
        analyses: rounds.clamp(1, limits::ANALYSES),
        rule: text(&verdict.rule, limits::RULE),
        metrics: verdict
            .metrics
            .iter()
            .take(limits::METRICS)
            .map(|m| MetricVerdictInput {
                name: text(&m.metric, limits::NAME),
                kind: kind_of(m.kind),
                outcome: verdict_of(m.outcome),
                critical: m.critical,
                rule: if m.rule.is_empty() {
                    verdict_of(m.outcome).as_str().to_owned()
                } else {
                    text(&m.rule, limits::RULE)
                },
                evidence: bounded_evidence(m),
            })
            .collect(),
    }
}

impl Recorder {
    /// The recorder `args` ask for: `None` when no deployment is named (nothing is recorded).
    ///
    /// # Errors
    /// Exit 2 for a malformed or unknown deployment, no deployment in `--environment`, or no
    /// `--server`/`--store`; exit 3 when the server or store cannot be reached.
    pub async fn connect(
        args: &CanaryAnalyzeArgs,
        template: &str,
    ) -> Result<Option<Self>, Failure> {
        if args.deployment.is_none() && args.environment.is_none() {
            return Ok(None);
        }
        let r = &args.record;
        let Some(store) = r
            .store
            .clone()
            .or_else(|| r.server.is_some().then(String::new))
        else {
            return Err(Failure::usage(
                "--deployment/--environment: the analysis is recorded through --server URL or \
                 --store URI; give one (or leave the deployment out to record nothing)",
            ));
        };
        let target = RecordTarget {
            server: r.server.clone(),
            token: r.token.clone(),
            attempts: r.attempts,
            store: StoreOptions {
                store,
                neo4j_user: r.neo4j_user.clone(),
                neo4j_password: r.neo4j_password.clone(),
                migrations_dir: r.migrations_dir.clone(),
            },
        };
        let client = crate::api::connect(&target, crate::api::Local::default()).await?;
        let deployment = match (&args.deployment, &args.environment) {
            (Some(uid), _) => {
                Uid::parse_derived(DEPLOYMENT_PREFIX, uid)
                    .map_err(|e| Failure::usage(format!("--deployment: {}", e.message)))?;
                match client.deployment_canary(uid).await {
                    Ok(_) => uid.clone(),
                    Err(deploygraph_client::Error::Rejected { status: 404, .. }) => {
                        return Err(Failure::usage(format!(
                            "--deployment {uid}: no such deployment is recorded"
                        )));
                    }
                    Err(e) => return Err(Failure::from_api("failed to look up --deployment", e)),
                }
            }
            (None, Some(environment)) => {
                let page = client
                    .list_deployments(&DeploymentsQuery {
                        service: Some(args.service.to_string()),
                        environment: Some(environment.to_string()),
                        limit: Some(1),
                        ..DeploymentsQuery::default()
                    })
                    .await
                    .map_err(|e| Failure::from_api("failed to look up the newest deployment", e))?;
                page.body["items"][0]["uid"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        Failure::usage(format!(
                            "--environment {environment}: no deployment of {} is recorded there",
                            args.service
                        ))
                    })?
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(Self {
            client,
            deployment,
            template: template.to_owned(),
            started_at: format_time(&chrono::Utc::now()),
        }))
    }

    /// The deployment the analysis is recorded for.
    pub fn deployment(&self) -> &str {
        &self.deployment
    }

    /// Records round `rounds` with its verdict; a failure is reported on standard error
    /// (`last`: the final verdict) and returned, never raised.
    pub async fn record(&self, verdict: &Verdict, rounds: u32, last: bool) -> Recorded {
        let input = analysis_input(
            &self.deployment,
            &self.template,
            &self.started_at,
            verdict,
            rounds,
        );
        match self.client.record_canary_analysis(&input).await {
            Ok(accepted) => Recorded::Stored {
                uid: accepted.body["uid"].as_str().unwrap_or_default().to_owned(),
                status: if accepted.status == 201 {
                    "created"
                } else {
                    "updated"
                },
            },
            Err(e) => {
                let failure = Failure::from_api("failed to record the canary analysis", e);
                if last {
                    eprintln!(
                        "error: {} (the final verdict is not in the graph; the exit code is the verdict's)",
                        failure.message()
                    );
                } else {
                    eprintln!(
                        "warning: {} (analysis {rounds}; the next analysis records again)",
                        failure.message()
                    );
                }
                Recorded::Failed(failure.message().to_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deploygraph_canary::{Direction, RenderedQuery, Side, SideSummary, Window};

    fn evidence(queries: usize, rule: &str) -> MetricEvidence {
        let window: Window = "5m".parse().expect("window");
        MetricEvidence {
            metric: "http-error-ratio".into(),
            kind: MetricKind::Ratio,
            direction: Direction::Increase,
            critical: true,
            baseline_kind: BaselineKind::SideBySide,
            releases: Vec::new(),
            window,
            outcome: Outcome::Fail,
            canary: SideSummary::default(),
            baseline: SideSummary::default(),
            test: None,
            statistic: None,
            p_value: Some(1e-9),
            p_adjusted: None,
            interval: None,
            shift: None,
            effect: None,
            rule: rule.into(),
            queries: (0..queries)
                .map(|i| RenderedQuery {
                    side: Side::Canary,
                    role: "numerator".into(),
                    promql: format!(
                        "sum(rate(http_requests_total{{code=~\"5..\",n=\"{i}\"}}[5m]))"
                    ),
                })
                .collect(),
        }
    }

    #[test]
    fn evidence_is_kept_whole_when_it_fits_and_bounded_when_not() {
        let small = bounded_evidence(&evidence(2, "failed"));
        assert_eq!(small["queries"].as_array().map(Vec::len), Some(2));
        let many = bounded_evidence(&evidence(1000, "failed"));
        assert!(many.get("queries").is_none(), "{many}");
        assert_eq!(many["queries_omitted"], 1000);
        let long = bounded_evidence(&evidence(0, &"x".repeat(40_000)));
        assert_eq!(long["truncated"], true);
        for v in [small, many, long] {
            assert!(serde_json::to_vec(&v).expect("json").len() <= limits::EVIDENCE_BYTES);
        }
    }

    #[test]
    fn a_round_becomes_a_valid_request() {
        let window: Window = "5m".parse().expect("window");
        let verdict = Verdict {
            outcome: Outcome::Fail,
            baseline_kind: BaselineKind::SideBySide,
            alpha: 0.02,
            window,
            metrics: vec![evidence(2, "the canary's error ratio is higher")],
            rule: "http-error-ratio failed".into(),
        };
        let deployment = Uid::derive(DEPLOYMENT_PREFIX, &["x"]);
        let started = format_time(&chrono::Utc::now());
        let input = analysis_input(deployment.as_str(), "http", &started, &verdict, 3);
        let valid = input.validate().expect("valid");
        assert_eq!(valid.verdict, CanaryVerdict::Fail);
        assert_eq!(valid.analyses, 3);
        assert_eq!(valid.metrics[0].kind, CanaryMetricKind::Ratio);
        assert!(valid.metrics[0].critical);
        assert_eq!(valid.metrics[0].evidence["p_value"], 1e-9);
    }
}
