//! What one analysis round records: the judge's [`Verdict`] as the body of
//! `POST /v1/canary/analyses` ([`CanaryAnalysisInput`]). Written once, for every client that
//! records an analysis: `deploygraph canary analyze` (through the API) and the hooks of this
//! crate that run an analysis and record it (`GET /v1/canary/judge`, `POST /v1/canary/flagger`).

use deploygraph_canary::{BaselineKind, MetricEvidence, MetricKind, Outcome, Verdict};
use deploygraph_model::canary::limits;
use deploygraph_model::{
    CanaryAnalysisInput, CanaryBaselineKind, CanaryMetricKind, CanaryVerdict, MetricVerdictInput,
    format_time,
};
use serde_json::{Value, json};

/// The stored verdict of a judge's outcome.
#[must_use]
pub fn verdict_of(o: Outcome) -> CanaryVerdict {
    match o {
        Outcome::Pass => CanaryVerdict::Pass,
        Outcome::Fail => CanaryVerdict::Fail,
        Outcome::Inconclusive => CanaryVerdict::Inconclusive,
        Outcome::NoData => CanaryVerdict::NoData,
    }
}

/// The stored baseline kind of the judge's.
#[must_use]
pub fn baseline_of(b: BaselineKind) -> CanaryBaselineKind {
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
        if let Some(sequential) = object.get_mut("sequential").and_then(Value::as_object_mut)
            && let Some(queries) = sequential.remove("queries")
        {
            let count = queries.as_array().map_or(0, Vec::len);
            sequential.insert("queries_omitted".into(), json!(count));
        }
    }
    if size(&value) <= limits::EVIDENCE_BYTES {
        return value;
    }
    let rule: String = m.rule.chars().take(limits::RULE).collect();
    json!({"metric": m.metric, "outcome": verdict_of(m.outcome), "rule": rule, "truncated": true})
}

/// The request body of `POST /v1/canary/analyses` for round `rounds` of an analysis of
/// `deployment` that started at `started_at` (RFC 3339), decided now (`last`: the round ended
/// the analysis, its verdict is the final one): texts cut to the model's limits, at most
/// [`limits::METRICS`] metrics, each one's evidence within [`limits::EVIDENCE_BYTES`].
#[must_use]
pub fn analysis_input(
    deployment: &str,
    template: &str,
    started_at: &str,
    verdict: &Verdict,
    rounds: u32,
    last: bool,
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
        final_round: last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deploygraph_canary::{Direction, RenderedQuery, Side, SideSummary, Window};
    use deploygraph_model::Uid;
    use deploygraph_model::uid::DEPLOYMENT_PREFIX;

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
            sequential: None,
            dispersion: None,
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
        // The sequential test's queries go the same way as the window's.
        let mut sequential = evidence(1000, "failed");
        let template = deploygraph_canary::template::SHIPPED
            .iter()
            .find(|(f, _)| *f == "http-error-ratio.yaml")
            .map(|(_, yaml)| deploygraph_canary::Template::parse(yaml).expect("template"))
            .expect("shipped");
        let counts = |numerator, denominator| {
            deploygraph_canary::MetricData::Ratio(deploygraph_canary::Counts {
                numerator,
                denominator,
            })
        };
        let mut test = deploygraph_canary::sequential::test(
            &template.metrics[0],
            "10m".parse().expect("window"),
            Some(&counts(300, 2_000)),
            Some(&counts(0, 2_000)),
            None,
            deploygraph_canary::sequential::ALPHA,
        )
        .expect("tested");
        test.queries.clone_from(&sequential.queries);
        sequential.sequential = Some(test);
        let bounded = bounded_evidence(&sequential);
        assert_eq!(bounded["sequential"]["outcome"], "fail", "{bounded}");
        assert_eq!(bounded["sequential"]["queries_omitted"], 1000, "{bounded}");
        for v in [small, many, long, bounded] {
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
        let input = analysis_input(deployment.as_str(), "http", &started, &verdict, 3, true);
        let valid = input.validate().expect("valid");
        assert_eq!(valid.verdict, CanaryVerdict::Fail);
        assert_eq!(valid.analyses, 3);
        assert!(valid.final_round);
        let running = analysis_input(deployment.as_str(), "http", &started, &verdict, 2, false);
        assert!(!running.validate().expect("valid").final_round);
        assert_eq!(valid.metrics[0].kind, CanaryMetricKind::Ratio);
        assert!(valid.metrics[0].critical);
        assert_eq!(valid.metrics[0].evidence["p_value"], 1e-9);
    }
}
