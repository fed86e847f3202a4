//! `deploygraph canary analyze`: repeated analyses of a canary against its baseline on
//! Prometheus metrics, until the verdict is final.
//!
//! **When the verdict is final** ([`deploygraph_canary::stop::decide_confirmed_or_decisive`],
//! shared with the canary benchmark): analyses run at the start and then every `--interval` (on
//! a fixed schedule; an analysis that overruns is followed at once by the next).
//! - A `Fail` verdict is final at once when it is decisive
//!   ([`deploygraph_canary::stop::is_decisive`]): a critical ratio metric failed with p below
//!   10⁻⁹ and its interval for the increase wholly above the template's tolerance, or its
//!   sequential test on everything since the command started failed
//!   ([`deploygraph_canary::sequential`]: a mixture sequential probability ratio test, read
//!   after every analysis with the chance of a false failure over the whole run kept at 1 %;
//!   side-by-side baselines only): exit 1.
//! - Any other `Fail` verdict is final when the analysis that started one `--window` or more
//!   earlier (the latest such: their windows do not overlap) failed too: exit 1. One transient
//!   burst on the canary's pods cannot roll a release back; a regression that persists fails
//!   one window later (with the default `--window 1m`, 60 s after the first failing window).
//! - A pass is final when **every** metric of the template passed in an analysis that started at
//!   least one `--window` after the command did — so the window it judges lies wholly within the
//!   analysis, and the earliest (possibly pre-rollout) data cannot pass a canary: exit 0.
//! - The last analysis is the one after which the next would start past `--max-duration`; there
//!   the last verdict decides: `Pass` exits 0 (a pass with some metric inconclusive counts),
//!   `Inconclusive`, `NoData` or an unconfirmed `Fail` exit 4.
//!
//! With `--baseline history` (or `auto`), the canary is judged against the service's earlier
//! releases in the graph ([`crate::canary_history`]).
//!
//! With `--deployment` (or `--environment`), each analysis is recorded in the graph through
//! `--server` or `--store` ([`crate::canary_record`]); a failed recording never changes the
//! exit code.
//!
//! With `--rollback TARGET`, a final `Fail` is rolled back at once, before the round is
//! recorded ([`crate::canary_rollback`]); a rollback that fails exits 5.
//!
//! A Prometheus that cannot be reached ends the command with exit 3; a query Prometheus refuses
//! as invalid (`bad_data`: the template's PromQL) with exit 2; any other failed query with exit 1.

use crate::canary_record::{Recorded, Recorder};
use crate::canary_rollback::RollbackPlan;
use crate::cli::{CanaryAnalyzeArgs, Output};
use crate::commands::Failure;
use deploygraph_canary::prometheus::{Prometheus, PrometheusConfig};
use deploygraph_canary::stop::{Decision, decide_confirmed_or_decisive, is_last};
use deploygraph_canary::template::SHIPPED;
use deploygraph_canary::{
    Direction, Error, MetricEvidence, Outcome, Selector, Template, Verdict, Window,
};
use serde_json::json;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

type CommandOutcome = Result<(), Failure>;

/// Largest template file read.
const MAX_TEMPLATE_BYTES: u64 = 1024 * 1024;

/// A `--canary-selector`/`--baseline-selector` value.
pub fn selector_arg(value: &str) -> Result<Selector, String> {
    Selector::parse(value).map_err(|e| e.to_string())
}

/// A `--window` value: a PromQL duration.
pub fn window_arg(value: &str) -> Result<Window, String> {
    value.parse::<Window>().map_err(|e| e.to_string())
}

/// The names of the shipped templates (their file names without `.yaml`).
fn shipped_names() -> impl Iterator<Item = &'static str> {
    SHIPPED
        .iter()
        .map(|(file, _)| file.strip_suffix(".yaml").unwrap_or(file))
}

/// Reads `--template`: a file when the value has a `/` or a `.`, else a shipped template.
pub(crate) fn load_template(value: &str) -> Result<Template, Failure> {
    let invalid =
        |e: Error| Failure::usage(format!("--template {value}: {:#}", anyhow::Error::new(e)));
    if !value.contains('/') && !value.contains('.') {
        let yaml = SHIPPED
            .iter()
            .zip(shipped_names())
            .find(|(_, name)| *name == value)
            .map(|((_, yaml), _)| *yaml)
            .ok_or_else(|| {
                Failure::usage(format!(
                    "--template {value}: not a shipped template ({}); a file needs a path with a \
                     `/` or a `.` in it, such as ./{value}.yaml",
                    shipped_names().collect::<Vec<_>>().join(", ")
                ))
            })?;
        return Template::parse(yaml).map_err(invalid);
    }
    let unreadable = |e: std::io::Error| Failure::usage(format!("--template {value}: {e}"));
    let size = std::fs::metadata(value).map_err(unreadable)?.len();
    if size > MAX_TEMPLATE_BYTES {
        return Err(Failure::usage(format!(
            "--template {value}: larger than {MAX_TEMPLATE_BYTES} bytes ({size} bytes)"
        )));
    }
    let text = std::fs::read_to_string(value).map_err(unreadable)?;
    Template::parse(&text).map_err(invalid)
}

/// The default selector of a side: `service="NAME",track="TRACK"`.
pub(crate) fn default_selector(service: &str, track: &str) -> Result<Selector, Failure> {
    Selector::parse(&format!("service=\"{service}\",track=\"{track}\""))
        .map_err(|e| Failure::usage(format!("--service {service}: {e}")))
}

/// The wire name of a judge's outcome (`no_data`, …).
pub(crate) fn outcome_str(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "fail",
        Outcome::Inconclusive => "inconclusive",
        Outcome::NoData => "no_data",
    }
}

/// `canary analyze`.
pub async fn analyze(args: CanaryAnalyzeArgs) -> CommandOutcome {
    let template = load_template(&args.template)?;
    let service = args.service.to_string();
    let canary = match args.canary_selector.clone() {
        Some(s) => s,
        None => default_selector(&service, "canary")?,
    };
    let baseline = match args.baseline_selector.clone() {
        Some(s) => s,
        None => default_selector(&service, "stable")?,
    };
    if canary == baseline {
        return Err(Failure::usage(format!(
            "--canary-selector and --baseline-selector: both select {canary}; the canary must be told from its baseline"
        )));
    }
    let config = PrometheusConfig::new(&args.prometheus)
        .map_err(|e| Failure::usage(format!("--prometheus: {e}")))?;
    let prometheus = Prometheus::new(config).map_err(|e| Failure::from(anyhow::Error::new(e)))?;
    // Before the first analysis: a deployment that cannot be recorded ends the command now.
    let recorder = Recorder::connect(&args, &template.name).await?;
    if let Some(r) = &recorder {
        eprintln!("recording the analysis of deployment {}", r.deployment());
    }
    let history = crate::canary_history::load(&args, recorder.as_ref(), &template).await?;
    let rollback = RollbackPlan::connect(&args).await?;
    if let Some(plan) = &rollback {
        eprintln!(
            "on a final fail: {} {}",
            if args.rollback.dry_run {
                "plan (dry run) the rollback of"
            } else {
                "roll back"
            },
            plan.target()
        );
    }

    let start = Instant::now();
    let window = args.window;
    let mut earlier = Vec::new();
    for n in 1_u32.. {
        let scheduled = start + args.interval.saturating_mul(n - 1);
        tokio::time::sleep_until(scheduled.max(Instant::now()).into()).await;
        let began = Instant::now();
        let started = began - start;
        let verdict = crate::canary_history::judge_round(
            &prometheus,
            history.as_ref(),
            &template,
            &canary,
            &baseline,
            window,
            started,
        )
        .await
        .map_err(query_failure)?;
        let last = is_last(n, args.interval, args.max_duration);
        let decision = decide_confirmed_or_decisive(&earlier, &verdict, started, window, last);
        earlier.push((started, verdict.outcome));
        // A final fail is rolled back before anything else, recording included.
        let rolled_back = match (&rollback, decision) {
            (Some(plan), Decision::Fail) => Some(plan.run().await),
            _ => None,
        };
        let recorded = match &recorder {
            Some(r) => Some(r.record(&verdict, n, decision != Decision::Continue).await),
            None => None,
        };
        report(
            &args.format,
            &service,
            n,
            started,
            &verdict,
            decision,
            recorded.as_ref(),
        )?;
        match decision {
            Decision::Continue => {}
            Decision::Pass => return Ok(()),
            Decision::Fail => {
                if let (Some(plan), Some(done)) = (&rollback, &rolled_back) {
                    let reason = format!("canary of {service} failed: {}", verdict.rule);
                    plan.report(done, &reason, recorder.as_ref(), &args.format)
                        .await?;
                }
                return Err(Failure::rejected(format!(
                    "canary of {service} failed: {}",
                    verdict.rule
                )));
            }
            Decision::Inconclusive => {
                return Err(Failure::inconclusive(format!(
                    "canary of {service}: {} at --max-duration {}: {}",
                    if verdict.outcome == Outcome::Fail {
                        "failing, not yet confirmed,".to_owned()
                    } else {
                        outcome_str(verdict.outcome).replace('_', " ")
                    },
                    humanize(args.max_duration),
                    verdict.rule
                )));
            }
        }
    }
    Ok(())
}

/// The exit code of a failed analysis: 3 unreachable, 2 a query Prometheus calls invalid, else 1.
pub(crate) fn query_failure(e: Error) -> Failure {
    let (unreachable, bad_query) = match &e {
        Error::Query { source, .. } => (source.is_unreachable(), source.is_bad_query()),
        _ => (false, false),
    };
    let text = format!("{:#}", anyhow::Error::new(e));
    if unreachable {
        Failure::unreachable(text)
    } else if bad_query {
        Failure::usage(format!("{text} (the template's query is not valid PromQL)"))
    } else {
        Failure::rejected(text)
    }
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Prints one analysis: a line (text) or a JSON object per line; the final one with the whole
/// evidence.
fn report(
    format: &Output,
    service: &str,
    n: u32,
    started: Duration,
    verdict: &Verdict,
    decision: Decision,
    recorded: Option<&Recorded>,
) -> CommandOutcome {
    let last = decision.is_final();
    match format {
        Output::Json => {
            let mut line = json!({
                "service": service,
                "analysis": n,
                "elapsed_seconds": started.as_secs_f64(),
                "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "outcome": verdict.outcome,
                "decision": decision.as_str(),
                "final": last,
                "metrics": verdict
                    .metrics
                    .iter()
                    .map(|m| json!({"metric": m.metric, "outcome": m.outcome}))
                    .collect::<Vec<_>>(),
                "rule": verdict.rule,
            });
            if last {
                line["verdict"] = serde_json::to_value(verdict)
                    .map_err(|e| Failure::from(anyhow::Error::new(e)))?;
            }
            if let (Some(recorded), Some(object)) = (recorded, line.as_object_mut())
                && let Some(fields) = recorded.json().as_object()
            {
                object.extend(fields.clone());
            }
            crate::insight::print_json(&line)
        }
        Output::Text => {
            let metrics = verdict
                .metrics
                .iter()
                .map(|m| format!("{} {}", m.metric, outcome_str(m.outcome)))
                .collect::<Vec<_>>()
                .join(", ");
            crate::outln!(
                "analysis {n} (+{}): {} [{metrics}] -> {}",
                humanize(started),
                outcome_str(verdict.outcome),
                decision.as_str()
            )?;
            if last {
                crate::out!("{}", evidence_text(service, verdict))?;
                if let Some(Recorded::Stored { uid, .. }) = recorded {
                    crate::outln!("recorded canary analysis {uid}")?;
                }
            }
            Ok(())
        }
    }
}

/// The full evidence of a verdict, for people.
fn evidence_text(service: &str, verdict: &Verdict) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "canary of {service}: {} (window {}, baseline {}, alpha {})",
        outcome_str(verdict.outcome).to_uppercase(),
        verdict.window,
        serde_json::to_value(verdict.baseline_kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        verdict.alpha
    );
    let _ = writeln!(s, "  {}", verdict.rule);
    for m in &verdict.metrics {
        metric_text(&mut s, m);
    }
    s
}

fn metric_text(s: &mut String, m: &MetricEvidence) {
    let kind = serde_json::to_value(m.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let direction = match m.direction {
        Direction::Increase => "increases",
        Direction::Decrease => "decreases",
        Direction::Either => "changes",
    };
    let _ = writeln!(
        s,
        "  {}: {} ({kind}, bad when it {}{})",
        m.metric,
        outcome_str(m.outcome),
        direction,
        if m.critical { ", critical" } else { "" }
    );
    for (side, summary) in [("canary", &m.canary), ("baseline", &m.baseline)] {
        let mut parts = vec![format!("{} samples", summary.samples)];
        if let Some(e) = summary.events {
            parts.push(format!("{e} events"));
        }
        if let Some(r) = summary.ratio {
            parts.push(format!("ratio {r:.5}"));
        }
        if let Some(v) = summary.median {
            parts.push(format!("median {v:.5}"));
        }
        if let Some(v) = summary.p99 {
            parts.push(format!("p99 {v:.5}"));
        }
        if let Some(v) = summary.quantile {
            parts.push(format!("quantile {v:.5}"));
        }
        let _ = writeln!(s, "    {side}: {}", parts.join(", "));
    }
    let mut stats = Vec::new();
    if let Some(t) = m.test {
        let t = serde_json::to_value(t)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        stats.push(format!("test {t}"));
    }
    if let Some(v) = m.statistic {
        stats.push(format!("statistic {v:.4}"));
    }
    if let Some(p) = m.p_value {
        stats.push(format!("p {p:.3e}"));
    }
    if let Some(p) = m.p_adjusted {
        stats.push(format!("adjusted p {p:.3e}"));
    }
    if let Some(i) = m.interval {
        stats.push(format!(
            "interval [{:.5}, {:.5}] at {:.0}%",
            i.low,
            i.high,
            i.confidence * 100.0
        ));
    }
    if let Some(v) = m.shift {
        stats.push(format!("shift {v:.5}"));
    }
    if let Some(e) = m.effect {
        let value = e.value.map_or("n/a".to_owned(), |v| format!("{v:.5}"));
        stats.push(format!("effect {value} (allowed {})", e.allowed));
    }
    if !stats.is_empty() {
        let _ = writeln!(s, "    {}", stats.join(", "));
    }
    if !m.releases.is_empty() {
        let _ = writeln!(s, "    releases: {}", m.releases.join(", "));
    }
    let _ = writeln!(s, "    rule: {}", m.rule);
    for q in &m.queries {
        let _ = writeln!(s, "    {} {}: {}", q.side, q.role, q.promql);
    }
    if let Some(seq) = &m.sequential {
        let _ = writeln!(
            s,
            "    sequential: {} ({})",
            outcome_str(seq.outcome),
            seq.rule
        );
        for q in &seq.queries {
            let _ = writeln!(s, "      {} {}: {}", q.side, q.role, q.promql);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_is_a_file_or_a_shipped_name() {
        assert_eq!(
            load_template("http-error-ratio").expect("shipped").name,
            "http-error-ratio"
        );
        let e = load_template("no-such-template").expect_err("unknown");
        assert!(format!("{e:?}").contains("http-latency-p99"), "{e:?}");
        let e = load_template("./missing.yaml").expect_err("missing file");
        assert!(format!("{e:?}").contains("missing.yaml"), "{e:?}");
    }
}
