//! The sequential test of a critical ratio metric over everything since the run started, beside
//! each window's judge: what lets `deploygraph canary analyze` (and `serve`'s analyses of
//! rollouts) roll back a small but lasting error increase without waiting for one window to
//! hold enough of it.
//!
//! Each analysis judges one window (one minute by default). A canary half a point worse than
//! its baseline on a few hundred requests a minute never shows it in one window, however long it
//! runs; on everything since the start it does after a few minutes. Judging the growing span
//! with the window's fixed-level test would look again and again at accumulating data, and the
//! chance of a false failure grows with every look. A **mixture sequential probability ratio
//! test** (Johari, Pekelis and Walsh, "Always valid inference", 2017; Robbins' normal mixture)
//! is built for exactly that: its likelihood ratio may be read after every analysis, and the
//! chance that it *ever* crosses `1/α` on a canary no worse than the tolerance stays at most α.
//!
//! **The test.** For the counts since the start, canary `x₁/n₁` and baseline `x₂/n₂`, the
//! change `d = x₁/n₁ − x₂/n₂` is compared with the metric's tolerance `δ` (`max_increase`) in
//! its bad direction: H0 is `d ≤ δ` (`increase`; `d ≥ −δ` for `decrease`). With the variance of
//! `d` from the pooled ratio, `V = p̄(1 − p̄)(1/n₁ + 1/n₂)` (`p̄` kept off zero by half an event,
//! so a zero-error baseline is evidence, not a division by zero), and a normal mixture of
//! standard deviation `τ` over the alternative, the ratio is
//! `Λ = √(V / (V + τ²)) · exp(τ² (d − δ)² / (2V(V + τ²)))` when `d` is beyond `δ` in the bad
//! direction, else 0. `τ` is twice the tolerance (effects of the tolerance's size weigh most;
//! 0.01 when the tolerance is zero). `either` takes the larger of the two one-sided ratios
//! against `2/α`.
//!
//! **When it fails the verdict.** Only for **critical ratio** metrics whose queries use
//! `{{window}}` (the span is chosen through it), against a **side-by-side** baseline: a
//! critical metric fails the verdict alone, and the guarantee needs both sides measured over
//! the same span (a history baseline's releases ran at other times). Each side
//! needs the metric's `min_samples` since the start. When `Λ ≥ 1/α` ([`ALPHA`] = 0.01, half the
//! judge's α: the run's windows can fail it too) the metric fails, whatever its window says,
//! and the failure is final at once ([`crate::stop::is_decisive`]). Otherwise the window's
//! judgement stands; the evidence is kept in [`MetricEvidence::sequential`] either way.
//!
//! Requests are not independent (errors cluster by pod and by second), so the guarantee is the
//! model's, not the service's: the canary benchmark (`docs/benchmarks.md`) measures the false
//! rollbacks it adds on simulated services with such clusters. A metric whose template names a
//! `unit_label` allows for pods that differ beyond chance as the window's judge does
//! ([`crate::units`]): the counts since the start are divided by the pods' design effect since
//! the start before `Λ` is computed (`min_samples` is checked on the counts as measured).

use crate::inputs::{Counts, MetricData, Units};
use crate::judge::{combine, ratio_side};
use crate::template::{Direction, Metric, MetricSpec, Window};
use crate::verdict::{MetricEvidence, Outcome, RenderedQuery, SideSummary, Verdict};
use serde::Serialize;

/// The sequential test's α: the most the chance of a false failure over a whole run may be.
pub const ALPHA: f64 = 0.01;

/// The mixture's standard deviation when a metric tolerates no change at all.
pub const DEFAULT_TAU: f64 = 0.01;

/// What the sequential test of one metric found at one analysis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SequentialEvidence {
    /// The span tested: from the run's start to this analysis.
    pub since: Window,
    /// `fail` when the ratio crossed the threshold, `pass` when it has not (yet), `inconclusive`
    /// below `min_samples` or on inconsistent counts, `no_data` without a series.
    pub outcome: Outcome,
    /// The canary's counts since the start.
    pub canary: SideSummary,
    /// The baseline's counts since the start.
    pub baseline: SideSummary,
    /// The tolerance `δ` (the metric's `max_increase`).
    pub allowed: f64,
    /// The mixture's standard deviation `τ`.
    pub tau: f64,
    /// The test's α.
    pub alpha: f64,
    /// `Λ` (capped at the largest finite number), when both sides had enough data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub likelihood_ratio: Option<f64>,
    /// What `Λ` must reach to fail: `1/α` (`2/α` for `either`).
    pub threshold: f64,
    /// Why, as a sentence.
    pub rule: String,
    /// The queries that produced the counts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<RenderedQuery>,
    /// For a metric with a `unit_label`: how much the pods differ since the start, and the
    /// design effect applied ([`crate::units`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dispersion: Option<crate::units::Dispersion>,
}

/// The span of an analysis `elapsed` after its run started, in whole seconds; `None` within the
/// first second (the run's first analysis: nothing to test yet).
#[must_use]
pub fn span(elapsed: std::time::Duration) -> Option<Window> {
    Window::new(std::time::Duration::from_secs(elapsed.as_secs())).ok()
}

/// Whether `metric` gets the sequential test: critical ratio metrics whose numerator and
/// denominator both use `{{window}}` (a query without it measures the same span whatever the
/// window, so it cannot measure the run since the start).
#[must_use]
pub fn applies(metric: &Metric) -> bool {
    match &metric.spec {
        MetricSpec::Ratio {
            numerator,
            denominator,
            ..
        } => metric.critical && numerator.uses_window() && denominator.uses_window(),
        MetricSpec::Distribution { .. } => false,
    }
}

/// The mixture's standard deviation for a tolerance.
#[must_use]
pub fn tau_of(allowed: f64) -> f64 {
    if allowed > 0.0 {
        2.0 * allowed
    } else {
        DEFAULT_TAU
    }
}

/// The natural log of the one-sided mixture likelihood ratio `Λ` (module docs) of an
/// **increase** beyond `allowed`; `None` when a side has no trials.
#[must_use]
pub fn log_mixture_ratio(canary: Counts, baseline: Counts, allowed: f64, tau: f64) -> Option<f64> {
    let (xc, nc) = (canary.numerator as f64, canary.denominator as f64);
    let (xb, nb) = (baseline.numerator as f64, baseline.denominator as f64);
    if nc <= 0.0 || nb <= 0.0 {
        return None;
    }
    let pooled = (xc + xb + 0.5) / (nc + nb + 1.0);
    let v = pooled * (1.0 - pooled) * (1.0 / nc + 1.0 / nb);
    let d = xc / nc - xb / nb - allowed;
    if d <= 0.0 || v <= 0.0 {
        return Some(f64::NEG_INFINITY);
    }
    let t2 = tau * tau;
    Some(0.5 * (v / (v + t2)).ln() + t2 * d * d / (2.0 * v * (v + t2)))
}

/// The log of `Λ` in `direction` and the threshold it must reach (natural log of `1/α`, or of
/// `2/α` for `either`).
fn directed(
    canary: Counts,
    baseline: Counts,
    allowed: f64,
    tau: f64,
    direction: Direction,
    alpha: f64,
) -> Option<(f64, f64)> {
    // A decrease of the canary's ratio is an increase of the complement's.
    let flip = |c: Counts| Counts {
        numerator: c.denominator - c.numerator,
        denominator: c.denominator,
    };
    let up = || log_mixture_ratio(canary, baseline, allowed, tau);
    let down = || log_mixture_ratio(flip(canary), flip(baseline), allowed, tau);
    match direction {
        Direction::Increase => Some((up()?, (1.0 / alpha).ln())),
        Direction::Decrease => Some((down()?, (1.0 / alpha).ln())),
        Direction::Either => Some((up()?.max(down()?), (2.0 / alpha).ln())),
    }
}

/// The sequential test of `metric` on the counts since the start (`since` long), with the
/// counts per unit (pod) when the metric names a `unit_label`; `None` when the metric does not
/// get it ([`applies`]).
#[must_use]
pub fn test(
    metric: &Metric,
    since: Window,
    canary: Option<&MetricData>,
    baseline: Option<&MetricData>,
    units: Option<&Units>,
    alpha: f64,
) -> Option<SequentialEvidence> {
    let MetricSpec::Ratio { max_increase, .. } = metric.spec else {
        return None;
    };
    if !applies(metric) {
        return None;
    }
    let alpha = if alpha.is_finite() && alpha > 0.0 && alpha < 1.0 {
        alpha
    } else {
        ALPHA
    };
    let tau = tau_of(max_increase);
    let threshold = if metric.direction == Direction::Either {
        2.0 / alpha
    } else {
        1.0 / alpha
    };
    let counts = |d: Option<&MetricData>| match d {
        Some(MetricData::Ratio(c)) => Some(*c),
        _ => None,
    };
    let mut ev = SequentialEvidence {
        since,
        outcome: Outcome::NoData,
        canary: SideSummary::default(),
        baseline: SideSummary::default(),
        allowed: max_increase,
        tau,
        alpha,
        likelihood_ratio: None,
        threshold,
        rule: String::new(),
        queries: Vec::new(),
        dispersion: None,
    };
    let (Some(c), Some(b)) = (counts(canary), counts(baseline)) else {
        ev.rule = format!("since the start ({since}): a side has no series");
        return Some(ev);
    };
    ev.canary = ratio_side(c);
    ev.baseline = ratio_side(b);
    let end = |mut ev: SequentialEvidence, outcome: Outcome, rule: String| {
        ev.outcome = outcome;
        ev.rule = rule;
        Some(ev)
    };
    if c.numerator > c.denominator || b.numerator > b.denominator {
        return end(
            ev,
            Outcome::Inconclusive,
            format!("since the start ({since}): more events than trials on a side"),
        );
    }
    if c.denominator < metric.min_samples || b.denominator < metric.min_samples {
        return end(
            ev,
            Outcome::Inconclusive,
            format!(
                "since the start ({since}): {} canary and {} baseline trials, {} needed on each side",
                c.denominator, b.denominator, metric.min_samples
            ),
        );
    }
    ev.dispersion = units.and_then(crate::units::ratio_dispersion);
    let (tested_c, tested_b) = match &ev.dispersion {
        Some(d) => (d.deflate_canary(c), d.deflate_baseline(b)),
        None => (c, b),
    };
    let Some((log_ratio, log_threshold)) = directed(
        tested_c,
        tested_b,
        max_increase,
        tau,
        metric.direction,
        alpha,
    ) else {
        return end(
            ev,
            Outcome::NoData,
            format!("since the start ({since}): a side has no trials"),
        );
    };
    let ratio = log_ratio.exp().min(f64::MAX);
    ev.likelihood_ratio = Some(ratio);
    let headline = format!(
        "since the start ({since}): canary {} of {} ({}) vs baseline {} of {} ({})",
        c.numerator,
        c.denominator,
        percent(c.numerator, c.denominator),
        b.numerator,
        b.denominator,
        percent(b.numerator, b.denominator),
    );
    let headline = match &ev.dispersion {
        Some(d) => format!("{headline}; {}", d.sentence()),
        None => headline,
    };
    let test = format!(
        "mixture sequential test against the allowed {:.2} points, likelihood ratio {} {} {:.0} (alpha {alpha})",
        max_increase * 100.0,
        ratio_text(ratio),
        if log_ratio >= log_threshold {
            "≥"
        } else {
            "<"
        },
        threshold
    );
    if log_ratio >= log_threshold {
        end(
            ev,
            Outcome::Fail,
            format!("{headline}: beyond the allowed change, {test}"),
        )
    } else {
        end(ev, Outcome::Pass, format!("{headline}: {test}"))
    }
}

fn percent(events: u64, trials: u64) -> String {
    if trials == 0 {
        return "none".into();
    }
    format!("{:.2} %", events as f64 / trials as f64 * 100.0)
}

fn ratio_text(r: f64) -> String {
    if r == 0.0 {
        "0".into()
    } else if (0.01..10_000.0).contains(&r) {
        format!("{r:.2}")
    } else {
        format!("{r:.2e}")
    }
}

/// Puts each metric's sequential evidence (by metric name) into the verdict. A metric whose
/// test failed fails, its rule saying why before the window's; the verdict's outcome and rule are
/// combined again from the metrics, as the judge combines them.
pub fn apply(verdict: &mut Verdict, tests: Vec<(String, SequentialEvidence)>) {
    let mut changed = false;
    for (name, evidence) in tests {
        let Some(m) = verdict.metrics.iter_mut().find(|m| m.metric == name) else {
            continue;
        };
        if evidence.outcome == Outcome::Fail && m.outcome != Outcome::Fail {
            m.outcome = Outcome::Fail;
            m.rule = format!("{}; in the last window: {}", evidence.rule, m.rule);
            changed = true;
        }
        m.sequential = Some(evidence);
    }
    if changed {
        let (outcome, rule) = combine(&verdict.metrics);
        verdict.outcome = outcome;
        verdict.rule = format!("{rule} (since the start)");
    }
}

/// Whether `m`'s sequential test failed.
#[must_use]
pub fn failed(m: &MetricEvidence) -> bool {
    m.sequential
        .as_ref()
        .is_some_and(|s| s.outcome == Outcome::Fail)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;
    use crate::template::{SHIPPED, Template};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::time::Duration;

    fn error_ratio() -> Metric {
        let (_, yaml) = SHIPPED
            .iter()
            .find(|(f, _)| *f == "http-error-ratio.yaml")
            .expect("shipped");
        Template::parse(yaml).expect("template").metrics.remove(0)
    }

    fn ratio(numerator: u64, denominator: u64) -> MetricData {
        MetricData::Ratio(Counts {
            numerator,
            denominator,
        })
    }

    fn since(secs: u64) -> Window {
        Window::new(Duration::from_secs(secs)).expect("window")
    }

    fn run(metric: &Metric, c: (u64, u64), b: (u64, u64)) -> SequentialEvidence {
        test(
            metric,
            since(300),
            Some(&ratio(c.0, c.1)),
            Some(&ratio(b.0, b.1)),
            None,
            ALPHA,
        )
        .expect("a critical ratio metric is tested")
    }

    #[test]
    fn the_outcome_follows_the_counts_since_the_start() {
        let m = error_ratio();
        // (canary, baseline, outcome): a shipped tolerance of half a point.
        let table = [
            // 300 errors against a baseline of none.
            ((300, 2_000), (0, 2_000), Outcome::Fail),
            // One point worse on 30,000 requests a side: beyond half a point, and shown.
            ((600, 30_000), (300, 30_000), Outcome::Fail),
            // The same ratios on 3,000 requests a side: not shown yet.
            ((60, 3_000), (30, 3_000), Outcome::Pass),
            // Equal ratios.
            ((10, 1_000), (10, 1_000), Outcome::Pass),
            // Worse, but within the tolerance.
            ((14, 4_000), (4, 4_000), Outcome::Pass),
            // Better.
            ((0, 4_000), (40, 4_000), Outcome::Pass),
            // Too few requests on the canary.
            ((100, 400), (0, 4_000), Outcome::Inconclusive),
            // Inconsistent counts.
            ((700, 600), (0, 4_000), Outcome::Inconclusive),
        ];
        for (c, b, outcome) in table {
            let ev = run(&m, c, b);
            assert_eq!(ev.outcome, outcome, "{c:?} vs {b:?}: {}", ev.rule);
            assert!(ev.rule.starts_with("since the start (5m)"), "{}", ev.rule);
        }
        let failed = run(&m, (300, 2_000), (0, 2_000));
        assert!(failed.likelihood_ratio.expect("ratio") >= 100.0);
        assert!(
            failed.rule.contains("beyond the allowed change"),
            "{}",
            failed.rule
        );
        assert_eq!((failed.tau, failed.threshold), (0.01, 100.0));
    }

    #[test]
    fn only_critical_ratio_metrics_are_tested_and_a_missing_side_is_no_data() {
        let mut m = error_ratio();
        let ev = test(&m, since(60), Some(&ratio(1, 10)), None, None, ALPHA).expect("tested");
        assert_eq!(ev.outcome, Outcome::NoData);
        m.critical = false;
        assert!(
            test(
                &m,
                since(60),
                Some(&ratio(1, 10)),
                Some(&ratio(1, 10)),
                None,
                ALPHA
            )
            .is_none()
        );
        // A query without `{{window}}` cannot measure the run since the start.
        let unwindowed = Template::parse(
            "name: t\nmetrics:\n  - name: m\n    kind: ratio\n    critical: true\n    \
             numerator: sum(errors_total{{{selector}}})\n    \
             denominator: sum(increase(requests_total{{{selector}}}[{{window}}]))\n    \
             direction: increase\n    max_increase: 0.01\n    min_samples: 10\n",
        )
        .expect("template");
        assert!(!applies(&unwindowed.metrics[0]));
        assert!(applies(&error_ratio()));
    }

    #[test]
    fn a_decrease_is_judged_on_the_complement_and_either_on_both_sides() {
        let mut m = error_ratio();
        m.direction = Direction::Decrease;
        // A success ratio that fell by 5 points.
        assert_eq!(
            run(&m, (1_900, 2_000), (2_000, 2_000)).outcome,
            Outcome::Fail
        );
        assert_eq!(
            run(&m, (2_000, 2_000), (1_900, 2_000)).outcome,
            Outcome::Pass
        );
        m.direction = Direction::Either;
        let ev = run(&m, (2_000, 2_000), (1_900, 2_000));
        assert_eq!(ev.outcome, Outcome::Fail);
        assert_eq!(ev.threshold, 200.0);
    }

    /// A binomial draw by geometric jumps between events (exact; costs the events, not the
    /// trials).
    fn binomial(rng: &mut StdRng, n: u64, p: f64) -> u64 {
        let (mut at, mut events) = (0_u64, 0_u64);
        loop {
            let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
            at += (u.ln() / (1.0 - p).ln()).floor() as u64 + 1;
            if at > n {
                return events;
            }
            events += 1;
        }
    }

    /// The guarantee the test is chosen for: on canaries exactly at the tolerance, read after
    /// every one of 30 analyses, at most about α of the runs ever fail.
    #[test]
    fn repeated_looks_keep_false_failures_near_alpha() {
        let m = error_ratio();
        let mut rng = StdRng::seed_from_u64(7);
        let runs = 2_000;
        let mut failed = 0;
        for _ in 0..runs {
            let (mut c, mut b) = ((0_u64, 0_u64), (0_u64, 0_u64));
            let base = rng.random_range(0.001..0.05);
            for look in 1..=30 {
                for (side, p, n) in [(&mut c, base + 0.005, 400), (&mut b, base, 1_200)] {
                    side.1 += n;
                    side.0 += binomial(&mut rng, n, p);
                }
                let ev = test(
                    &m,
                    since(30 * look),
                    Some(&ratio(c.0, c.1)),
                    Some(&ratio(b.0, b.1)),
                    None,
                    ALPHA,
                )
                .expect("tested");
                if ev.outcome == Outcome::Fail {
                    failed += 1;
                    break;
                }
            }
        }
        let rate = f64::from(failed) / f64::from(runs);
        assert!(rate <= 2.0 * ALPHA, "{failed} of {runs} runs failed");
    }

    #[test]
    fn applying_a_failed_test_fails_the_metric_and_the_verdict() {
        let m = error_ratio();
        let window = since(60);
        let inputs = crate::Inputs {
            window,
            canary: [(m.name.clone(), ratio(3, 300))].into(),
            baseline: crate::Baseline::SideBySide([(m.name.clone(), ratio(0, 900))].into()),
            units: std::collections::BTreeMap::new(),
        };
        let mut verdict = crate::judge(std::slice::from_ref(&m), &inputs);
        assert_ne!(verdict.outcome, Outcome::Fail, "{}", verdict.rule);
        let passing = run(&m, (10, 1_000), (10, 1_000));
        apply(&mut verdict, vec![(m.name.clone(), passing)]);
        assert_ne!(verdict.outcome, Outcome::Fail);
        assert!(verdict.metrics[0].sequential.is_some());
        let failing = run(&m, (300, 2_000), (0, 2_000));
        apply(&mut verdict, vec![(m.name.clone(), failing)]);
        assert_eq!(verdict.outcome, Outcome::Fail);
        assert!(failed(&verdict.metrics[0]));
        assert!(verdict.rule.contains("since the start"), "{}", verdict.rule);
        assert!(
            verdict.metrics[0].rule.contains("; in the last window: "),
            "{}",
            verdict.metrics[0].rule
        );
    }
}
