//! The judge on the scenarios a canary analysis meets: healthy canaries, error spikes, the
//! zero-error baseline, too little traffic, missing series, latency shifts (samples and
//! histograms, both directions), critical metrics, many metrics, history baselines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_canary::{
    Baseline, BaselineKind, Bucket, Counts, Direction, Distribution, Histogram, Inputs, Judge,
    Metric, MetricData, MetricSpec, Outcome, Query, ReleaseSummary, TestKind, Verdict, Window,
    judge,
};
use std::collections::BTreeMap;
use std::time::Duration;

// --- fixtures ---------------------------------------------------------------------------------

fn ratio(name: &str, direction: Direction, max_increase: f64, min_samples: u64) -> Metric {
    Metric {
        name: name.into(),
        direction,
        critical: false,
        min_samples,
        unit_label: None,
        spec: MetricSpec::Ratio {
            numerator: Query::parse("numerator", "errors_total{{{selector}}}").unwrap(),
            denominator: Query::parse("denominator", "requests_total{{{selector}}}").unwrap(),
            max_increase,
        },
    }
}

fn errors() -> Metric {
    ratio("errors", Direction::Increase, 0.01, 500)
}

fn latency(direction: Direction, allowed_change: f64, quantile: Option<f64>) -> Metric {
    Metric {
        name: "latency".into(),
        direction,
        critical: false,
        min_samples: 100,
        unit_label: None,
        spec: MetricSpec::Distribution {
            query: Query::parse("query", "latency_bucket{{{selector}}}").unwrap(),
            input: deploygraph_canary::DistributionInput::Histogram,
            allowed_change,
            quantile,
        },
    }
}

fn critical(mut m: Metric) -> Metric {
    m.critical = true;
    m
}

fn counts(numerator: u64, denominator: u64) -> MetricData {
    MetricData::Ratio(Counts {
        numerator,
        denominator,
    })
}

fn window() -> Window {
    Window::new(Duration::from_secs(60)).unwrap()
}

fn side_by_side(canary: Vec<(&str, MetricData)>, baseline: Vec<(&str, MetricData)>) -> Inputs {
    Inputs {
        window: window(),
        canary: canary.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        baseline: Baseline::SideBySide(
            baseline
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        ),
        units: BTreeMap::new(),
    }
}

/// `n` deterministic latencies, uniform-ish between 100 and 200 ms with a tail, scaled.
fn latencies(n: usize, scale: f64, seed: u64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u = (state >> 11) as f64 / (1_u64 << 53) as f64;
            let tail = if u > 0.97 { (u - 0.97) * 2.0 } else { 0.0 };
            (0.1 + 0.1 * u + tail) * scale
        })
        .collect()
}

const BOUNDS: [f64; 10] = [0.05, 0.1, 0.125, 0.15, 0.175, 0.2, 0.25, 0.3, 0.5, 1.0];

fn histogram(samples: &[f64]) -> Distribution {
    Distribution::Histogram(Histogram {
        buckets: BOUNDS
            .iter()
            .map(|&le| Bucket {
                le,
                count: samples.iter().filter(|&&v| v <= le).count() as u64,
            })
            .collect(),
        count: samples.len() as u64,
    })
}

fn samples(v: Vec<f64>) -> MetricData {
    MetricData::Distribution(Distribution::Samples(v))
}

fn only(v: &Verdict) -> &deploygraph_canary::MetricEvidence {
    assert_eq!(v.metrics.len(), 1, "{v:#?}");
    &v.metrics[0]
}

/// (case, canary errors/requests, baseline errors/requests, metric outcome)
type RatioCase = (&'static str, (u64, u64), (u64, u64), Outcome);
/// (case, canary scale, direction, allowed_change, quantile, outcome)
type LatencyCase = (&'static str, f64, Direction, f64, Option<f64>, Outcome);

// --- ratio metrics ----------------------------------------------------------------------------

#[test]
fn ratio_scenarios() {
    // (case, canary errors/requests, baseline errors/requests, metric outcome)
    let cases: &[RatioCase] = &[
        (
            "healthy, same rates",
            (50, 10_000),
            (50, 10_000),
            Outcome::Pass,
        ),
        ("error spike", (400, 10_000), (50, 10_000), Outcome::Fail),
        (
            "300 errors against a zero baseline (kayenta#426)",
            (300, 10_000),
            (0, 10_000),
            Outcome::Fail,
        ),
        (
            "5 against 4 in 10,000",
            (5, 10_000),
            (4, 10_000),
            Outcome::Pass,
        ),
        ("both error-free", (0, 10_000), (0, 10_000), Outcome::Pass),
        (
            "fewer errors than baseline",
            (0, 10_000),
            (300, 10_000),
            Outcome::Pass,
        ),
        (
            "low traffic with errors",
            (3, 40),
            (0, 50),
            Outcome::Inconclusive,
        ),
        (
            "low traffic, all errors",
            (40, 40),
            (0, 600),
            Outcome::Inconclusive,
        ),
        ("no canary traffic", (0, 0), (10, 1_000), Outcome::NoData),
        (
            "inconsistent series",
            (20, 10),
            (0, 1_000),
            Outcome::Inconclusive,
        ),
        // Large counts take the z-test.
        (
            "big and healthy",
            (1_000_000, 100_000_000),
            (1_000_000, 100_000_000),
            Outcome::Pass,
        ),
        (
            "big spike",
            (3_000_000, 100_000_000),
            (1_000_000, 100_000_000),
            Outcome::Fail,
        ),
        // A significant increase within the tolerance passes.
        (
            "small real increase",
            (150_000, 10_000_000),
            (100_000, 10_000_000),
            Outcome::Pass,
        ),
        (
            "huge counts",
            (u64::MAX / 2, u64::MAX),
            (u64::MAX / 4, u64::MAX),
            Outcome::Fail,
        ),
    ];
    for (case, c, b, want) in cases {
        let inputs = side_by_side(
            vec![("errors", counts(c.0, c.1))],
            vec![("errors", counts(b.0, b.1))],
        );
        let v = judge(&[errors()], &inputs);
        let e = only(&v);
        assert_eq!(e.outcome, *want, "{case}: {e:#?}");
        assert_eq!(v.outcome, *want, "{case}: one metric decides the verdict");
        assert!(!e.rule.is_empty(), "{case}");
        if *want == Outcome::Fail || *want == Outcome::Pass {
            let p = e.p_value.expect("tested");
            assert!((0.0..=1.0).contains(&p), "{case}: p {p}");
        }
    }
}

#[test]
fn three_hundred_errors_against_zero_fail_with_the_evidence() {
    let inputs = side_by_side(
        vec![("errors", counts(300, 10_000))],
        vec![("errors", counts(0, 10_000))],
    );
    let v = judge(&[critical(errors())], &inputs);
    let e = only(&v);
    assert_eq!(v.outcome, Outcome::Fail);
    assert_eq!(e.test, Some(TestKind::FisherExact));
    assert!(e.p_value.unwrap() < 1e-50, "{e:#?}");
    assert_eq!(e.canary.samples, 10_000);
    assert_eq!(e.baseline.events, Some(0));
    let interval = e.interval.unwrap();
    assert!(interval.low > 0.02 && interval.high < 0.04, "{interval:?}");
    assert_eq!(
        e.rule,
        "canary ratio 3.00 % vs baseline 0.00 % (+3.00 points): beyond the allowed 1.00 points, p < 0.001"
    );
    assert!(
        v.rule.contains("critical metric failed: errors"),
        "{}",
        v.rule
    );
    assert_eq!(v.baseline_kind, BaselineKind::SideBySide);
}

#[test]
fn direction_decides_which_change_is_bad() {
    // A success ratio: a drop is bad.
    let success = ratio("success", Direction::Decrease, 0.01, 500);
    let dropped = side_by_side(
        vec![("success", counts(9_500, 10_000))],
        vec![("success", counts(9_990, 10_000))],
    );
    assert_eq!(
        judge(std::slice::from_ref(&success), &dropped).outcome,
        Outcome::Fail
    );
    let rose = side_by_side(
        vec![("success", counts(9_990, 10_000))],
        vec![("success", counts(9_500, 10_000))],
    );
    assert_eq!(judge(&[success], &rose).outcome, Outcome::Pass);
    // Either: both changes are bad.
    let either = ratio("share", Direction::Either, 0.01, 500);
    assert_eq!(
        judge(
            std::slice::from_ref(&either),
            &dropped_as("share", &dropped)
        )
        .outcome,
        Outcome::Fail
    );
    assert_eq!(
        judge(&[either], &dropped_as("share", &rose)).outcome,
        Outcome::Fail
    );
}

fn dropped_as(name: &str, inputs: &Inputs) -> Inputs {
    let rename = |m: &BTreeMap<String, MetricData>| {
        m.values().map(|v| (name.to_owned(), v.clone())).collect()
    };
    let Baseline::SideBySide(b) = &inputs.baseline else {
        unreachable!()
    };
    Inputs {
        window: inputs.window,
        canary: rename(&inputs.canary),
        baseline: Baseline::SideBySide(rename(b)),
        units: BTreeMap::new(),
    }
}

#[test]
fn missing_series_are_no_data_never_fail() {
    let no_canary = side_by_side(vec![], vec![("errors", counts(0, 10_000))]);
    let v = judge(&[critical(errors())], &no_canary);
    assert_eq!(v.outcome, Outcome::NoData, "{v:#?}");
    assert_eq!(only(&v).rule, "no canary series");
    let no_baseline = side_by_side(vec![("errors", counts(300, 10_000))], vec![]);
    let v = judge(&[critical(errors())], &no_baseline);
    assert_eq!(v.outcome, Outcome::NoData, "{v:#?}");
    // One metric without data beside one that passes: half the metrics passed.
    let mixed = side_by_side(
        vec![("errors", counts(5, 10_000))],
        vec![("errors", counts(5, 10_000))],
    );
    let v = judge(&[errors(), latency(Direction::Increase, 0.1, None)], &mixed);
    assert_eq!(v.outcome, Outcome::Pass, "{v:#?}");
    assert_eq!(v.metrics[1].outcome, Outcome::NoData);
    // A critical metric without data leaves the verdict open.
    let v = judge(
        &[errors(), critical(latency(Direction::Increase, 0.1, None))],
        &mixed,
    );
    assert_eq!(v.outcome, Outcome::Inconclusive, "{v:#?}");
}

#[test]
fn low_traffic_is_inconclusive_whatever_the_errors() {
    for errors_seen in [0, 1, 5, 30, 49] {
        let inputs = side_by_side(
            vec![("errors", counts(errors_seen, 49))],
            vec![("errors", counts(0, 49))],
        );
        let v = judge(&[critical(errors())], &inputs);
        assert_eq!(v.outcome, Outcome::Inconclusive, "{errors_seen}: {v:#?}");
        assert!(only(&v).rule.contains("too little traffic"), "{v:#?}");
    }
}

// --- distribution metrics ---------------------------------------------------------------------

#[test]
fn latency_scenarios_on_samples_and_histograms() {
    let base = latencies(5_000, 1.0, 1);
    // (case, canary scale, direction, allowed_change, quantile, outcome)
    let cases: &[LatencyCase] = &[
        (
            "healthy",
            1.0,
            Direction::Increase,
            0.1,
            None,
            Outcome::Pass,
        ),
        (
            "30 % slower, 10 % allowed",
            1.3,
            Direction::Increase,
            0.1,
            None,
            Outcome::Fail,
        ),
        (
            "5 % slower, 10 % allowed",
            1.05,
            Direction::Increase,
            0.1,
            None,
            Outcome::Pass,
        ),
        (
            "30 % faster (the good direction)",
            0.7,
            Direction::Increase,
            0.1,
            None,
            Outcome::Pass,
        ),
        (
            "30 % faster, either",
            0.7,
            Direction::Either,
            0.1,
            None,
            Outcome::Fail,
        ),
        (
            "30 % slower, either",
            1.3,
            Direction::Either,
            0.1,
            None,
            Outcome::Fail,
        ),
        (
            "30 % slower, decrease is bad",
            1.3,
            Direction::Decrease,
            0.1,
            None,
            Outcome::Pass,
        ),
        (
            "p99 30 % up",
            1.3,
            Direction::Increase,
            0.1,
            Some(0.99),
            Outcome::Fail,
        ),
        (
            "p99 5 % up",
            1.05,
            Direction::Increase,
            0.1,
            Some(0.99),
            Outcome::Pass,
        ),
    ];
    for (case, scale, direction, allowed, quantile, want) in cases {
        let canary = latencies(5_000, *scale, 2);
        let metric = latency(*direction, *allowed, *quantile);
        for (form, c, b) in [
            ("samples", samples(canary.clone()), samples(base.clone())),
            (
                "histogram",
                MetricData::Distribution(histogram(&canary)),
                MetricData::Distribution(histogram(&base)),
            ),
        ] {
            let v = judge(
                std::slice::from_ref(&metric),
                &side_by_side(vec![("latency", c)], vec![("latency", b)]),
            );
            let e = only(&v);
            assert_eq!(
                e.outcome, *want,
                "{case} ({form}): {} {:?} {:?}",
                e.rule, e.canary, e.baseline
            );
            // A quantile metric names whichever of the rank and tail tests gave its p-value.
            if quantile.is_some() {
                assert!(
                    matches!(
                        e.test,
                        Some(TestKind::MannWhitneyU | TestKind::QuantileTail)
                    ),
                    "{case} ({form})"
                );
            } else {
                assert_eq!(e.test, Some(TestKind::MannWhitneyU), "{case} ({form})");
            }
            assert!(e.interval.is_some() && e.shift.is_some(), "{case} ({form})");
            assert_eq!(e.canary.samples, 5_000, "{case} ({form})");
        }
    }
}

/// The same latencies with `share` of them (every `1/share`-th) made `factor` times slower:
/// the median stays, the tail grows.
fn slower_tail(mut v: Vec<f64>, share: f64, factor: f64) -> Vec<f64> {
    let every = (1.0 / share).round() as usize;
    for (i, x) in v.iter_mut().enumerate() {
        if i % every == 0 {
            *x *= factor;
        }
    }
    v
}

#[test]
fn a_slower_tail_with_the_same_median_fails_a_quantile_metric_by_the_tail_test() {
    let base = latencies(5_000, 1.0, 5);
    let canary = slower_tail(latencies(5_000, 1.0, 6), 0.03, 3.0);
    let metric = latency(Direction::Increase, 0.1, Some(0.99));
    for (form, c, b) in [
        ("samples", samples(canary.clone()), samples(base.clone())),
        (
            "histogram",
            MetricData::Distribution(histogram(&canary)),
            MetricData::Distribution(histogram(&base)),
        ),
    ] {
        let v = judge(
            std::slice::from_ref(&metric),
            &side_by_side(vec![("latency", c)], vec![("latency", b)]),
        );
        let e = only(&v);
        assert_eq!(e.outcome, Outcome::Fail, "{form}: {}", e.rule);
        assert_eq!(e.test, Some(TestKind::QuantileTail), "{form}: {}", e.rule);
        assert!(
            e.rule.contains("at or above the baseline's p99"),
            "{}",
            e.rule
        );
    }
    // Judged on the median shift (no quantile), the same tail is no failure: the ranks hardly move.
    let median = latency(Direction::Increase, 0.1, None);
    let v = judge(
        std::slice::from_ref(&median),
        &side_by_side(
            vec![("latency", samples(canary))],
            vec![("latency", samples(base))],
        ),
    );
    assert_eq!(only(&v).outcome, Outcome::Pass, "{}", only(&v).rule);
}

#[test]
fn equal_histograms_pass_and_shifted_histograms_fail() {
    let base = histogram(&latencies(5_000, 1.0, 3));
    let metric = latency(Direction::Increase, 0.1, Some(0.99));
    let same = side_by_side(
        vec![("latency", MetricData::Distribution(base.clone()))],
        vec![("latency", MetricData::Distribution(base.clone()))],
    );
    let v = judge(std::slice::from_ref(&metric), &same);
    assert_eq!(v.outcome, Outcome::Pass, "{v:#?}");
    assert!(only(&v).p_value.unwrap() > 0.4);
    let shifted = side_by_side(
        vec![(
            "latency",
            MetricData::Distribution(histogram(&latencies(5_000, 1.5, 4))),
        )],
        vec![("latency", MetricData::Distribution(base))],
    );
    let v = judge(std::slice::from_ref(&metric), &shifted);
    let e = only(&v);
    assert_eq!(v.outcome, Outcome::Fail, "{v:#?}");
    assert!(e.rule.starts_with("canary p99 "), "{}", e.rule);
    assert!(e.canary.p99.unwrap() > e.baseline.p99.unwrap());
}

#[test]
fn huge_histogram_counts_are_cheap_and_do_not_overflow() {
    let big = |shift: u32| {
        Distribution::Histogram(Histogram {
            buckets: (0_u32..200)
                .map(|i| Bucket {
                    le: f64::from(i + 1) / 100.0,
                    count: u64::from((i + 1).saturating_sub(shift)) * (u64::MAX / 400),
                })
                .collect(),
            count: u64::MAX / 2,
        })
    };
    let inputs = side_by_side(
        vec![("latency", MetricData::Distribution(big(20)))],
        vec![("latency", MetricData::Distribution(big(0)))],
    );
    let v = judge(&[latency(Direction::Either, 0.1, None)], &inputs);
    let e = only(&v);
    assert!(matches!(e.outcome, Outcome::Pass | Outcome::Fail), "{e:#?}");
    assert!(e.p_value.unwrap().is_finite());
}

#[test]
fn different_bucket_layouts_are_inconclusive() {
    let a = histogram(&latencies(500, 1.0, 5));
    let Distribution::Histogram(mut b) = a.clone() else {
        unreachable!()
    };
    b.buckets.pop();
    let inputs = side_by_side(
        vec![("latency", MetricData::Distribution(a))],
        vec![(
            "latency",
            MetricData::Distribution(Distribution::Histogram(b)),
        )],
    );
    let v = judge(&[latency(Direction::Increase, 0.1, None)], &inputs);
    assert_eq!(v.outcome, Outcome::Inconclusive, "{v:#?}");
}

// --- several metrics --------------------------------------------------------------------------

#[test]
fn a_failing_critical_metric_fails_the_verdict_alone() {
    let metrics = [
        critical(errors()),
        ratio("a", Direction::Increase, 0.01, 500),
        ratio("b", Direction::Increase, 0.01, 500),
        latency(Direction::Increase, 0.1, None),
    ];
    let base = latencies(1_000, 1.0, 6);
    let inputs = side_by_side(
        vec![
            ("errors", counts(300, 10_000)),
            ("a", counts(10, 10_000)),
            ("b", counts(10, 10_000)),
            ("latency", samples(latencies(1_000, 1.0, 7))),
        ],
        vec![
            ("errors", counts(0, 10_000)),
            ("a", counts(10, 10_000)),
            ("b", counts(10, 10_000)),
            ("latency", samples(base)),
        ],
    );
    let v = judge(&metrics, &inputs);
    assert_eq!(v.outcome, Outcome::Fail, "{v:#?}");
    let outcomes: Vec<Outcome> = v.metrics.iter().map(|m| m.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Fail, Outcome::Pass, Outcome::Pass, Outcome::Pass]
    );
    assert_eq!(v.rule, "critical metric failed: errors");
    // Critical metrics stay out of the Holm family.
    assert_eq!(v.metrics[0].p_adjusted, v.metrics[0].p_value);
}

#[test]
fn holm_turns_one_marginal_p_among_five_metrics_into_a_pass() {
    let marginal = ("m0", counts(30, 10_000), counts(14, 10_000)); // one-sided p ≈ 0.0112
    let alone = judge(
        &[ratio("m0", Direction::Increase, 0.001, 500)],
        &side_by_side(
            vec![("m0", marginal.1.clone())],
            vec![("m0", marginal.2.clone())],
        ),
    );
    assert_eq!(alone.outcome, Outcome::Fail, "alone it fails: {alone:#?}");
    let p = only(&alone).p_value.unwrap();
    assert!((p - 0.011_24).abs() < 1e-4, "{p}");

    let names = ["m0", "m1", "m2", "m3", "m4"];
    let metrics: Vec<Metric> = names
        .iter()
        .map(|n| ratio(n, Direction::Increase, 0.001, 500))
        .collect();
    let mut canary = vec![marginal.clone().into_pair()];
    let mut baseline = vec![("m0", marginal.2.clone())];
    for n in &names[1..] {
        canary.push((n, counts(20, 10_000)));
        baseline.push((n, counts(20, 10_000)));
    }
    let v = judge(&metrics, &side_by_side(canary, baseline));
    assert_eq!(v.outcome, Outcome::Pass, "{v:#?}");
    let m0 = &v.metrics[0];
    assert!((m0.p_adjusted.unwrap() - 5.0 * p).abs() < 1e-9, "{m0:#?}");
    assert!(m0.rule.contains("Holm over 5 metrics"), "{}", m0.rule);
}

trait IntoPair {
    fn into_pair(self) -> (&'static str, MetricData);
}

impl IntoPair for (&'static str, MetricData, MetricData) {
    fn into_pair(self) -> (&'static str, MetricData) {
        (self.0, self.1)
    }
}

// --- history baselines ------------------------------------------------------------------------

fn releases(ratios: &[(u64, u64)]) -> Vec<ReleaseSummary> {
    ratios
        .iter()
        .enumerate()
        .map(|(i, &(x, n))| ReleaseSummary {
            release: format!("v{}", 10 - i),
            metrics: [("errors".to_owned(), counts(x, n))].into(),
        })
        .collect()
}

fn history(canary: MetricData, name: &str, releases: Vec<ReleaseSummary>) -> Inputs {
    Inputs {
        window: window(),
        canary: [(name.to_owned(), canary)].into(),
        baseline: Baseline::History(releases),
        units: BTreeMap::new(),
    }
}

#[test]
fn history_baseline_with_five_releases() {
    let past = releases(&[
        (50, 10_000),
        (55, 10_000),
        (45, 10_000),
        (60, 10_000),
        (48, 10_000),
    ]);
    let v = judge(
        &[errors()],
        &history(counts(58, 10_000), "errors", past.clone()),
    );
    assert_eq!(v.outcome, Outcome::Pass, "{v:#?}");
    assert_eq!(v.baseline_kind, BaselineKind::History);
    let e = only(&v);
    assert_eq!(e.releases, ["v10", "v9", "v8", "v7", "v6"]);
    assert_eq!(e.baseline.samples, 50_000);
    assert_eq!(e.baseline.events, Some(258));

    let v = judge(&[errors()], &history(counts(300, 10_000), "errors", past));
    assert_eq!(v.outcome, Outcome::Fail, "{v:#?}");
}

#[test]
fn history_baseline_with_one_release_is_inconclusive() {
    let v = judge(
        &[critical(errors())],
        &history(counts(300, 10_000), "errors", releases(&[(0, 10_000)])),
    );
    assert_eq!(v.outcome, Outcome::Inconclusive, "{v:#?}");
    assert!(only(&v).rule.contains("1 usable of 1"), "{}", only(&v).rule);
    // Releases with too little traffic do not count.
    let v = judge(
        &[errors()],
        &history(
            counts(300, 10_000),
            "errors",
            releases(&[(0, 10_000), (0, 10_000), (0, 100), (0, 10)]),
        ),
    );
    assert_eq!(v.outcome, Outcome::Inconclusive, "{v:#?}");
}

#[test]
fn a_canary_within_its_releases_own_range_does_not_fail() {
    // One earlier release ran at 2 %: 1.5 % is well above the pool but not unusual for it.
    let past = releases(&[(50, 10_000), (200, 10_000), (60, 10_000)]);
    let strict = ratio("errors", Direction::Increase, 0.001, 500);
    let v = judge(
        std::slice::from_ref(&strict),
        &history(counts(150, 10_000), "errors", past.clone()),
    );
    assert_eq!(v.outcome, Outcome::Pass, "{v:#?}");
    assert!(
        only(&v)
            .rule
            .contains("within the range of the 3 earlier releases"),
        "{v:#?}"
    );
    let v = judge(&[strict], &history(counts(400, 10_000), "errors", past));
    assert_eq!(v.outcome, Outcome::Fail, "{v:#?}");
}

#[test]
fn latency_history_from_bounded_summaries() {
    let summary = |seed| ReleaseSummary {
        release: format!("r{seed}"),
        metrics: [(
            "latency".to_owned(),
            samples(latencies(3_000, 1.0, seed)).summary(),
        )]
        .into(),
    };
    let past: Vec<ReleaseSummary> = (10..15).map(summary).collect();
    // What the graph keeps is bounded and serialisable.
    let json = serde_json::to_string(&past).unwrap();
    let back: Vec<ReleaseSummary> = serde_json::from_str(&json).unwrap();
    for (a, b) in back.iter().zip(&past) {
        let (
            Some(MetricData::Distribution(Distribution::Weighted(a))),
            Some(MetricData::Distribution(Distribution::Weighted(b))),
        ) = (a.metrics.get("latency"), b.metrics.get("latency"))
        else {
            panic!("samples are kept as weighted points");
        };
        assert!(b.len() <= 512 && a.len() == b.len());
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x.count, y.count);
            assert!((x.value - y.value).abs() <= 1e-12 * y.value.abs());
        }
    }
    let metric = latency(Direction::Increase, 0.1, None);
    let healthy = history(samples(latencies(2_000, 1.0, 20)), "latency", past.clone());
    assert_eq!(
        judge(std::slice::from_ref(&metric), &healthy).outcome,
        Outcome::Pass
    );
    let slow = history(samples(latencies(2_000, 1.4, 21)), "latency", past);
    assert_eq!(
        judge(std::slice::from_ref(&metric), &slow).outcome,
        Outcome::Fail
    );
}

// --- the verdict as JSON ----------------------------------------------------------------------

#[test]
fn the_verdict_serialises_with_its_evidence() {
    let inputs = side_by_side(
        vec![("errors", counts(300, 10_000))],
        vec![("errors", counts(0, 10_000))],
    );
    let v = Judge {
        alpha: 0.05,
        ..Judge::default()
    }
    .judge(
        &[errors(), latency(Direction::Increase, 0.1, None)],
        &inputs,
    );
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["outcome"], "fail");
    assert_eq!(json["alpha"], 0.05);
    assert_eq!(json["window"], "1m");
    assert_eq!(json["baseline_kind"], "side_by_side");
    assert_eq!(json["metrics"][0]["test"], "fisher_exact");
    assert_eq!(json["metrics"][0]["canary"]["events"], 300);
    assert_eq!(json["metrics"][1]["outcome"], "no_data");
}

#[test]
fn large_sample_sets_cost_bounded_work() {
    // 200,000 observations a side: U in one merge, Hodges-Lehmann on ≤ 512 points a side.
    let started = std::time::Instant::now();
    let inputs = side_by_side(
        vec![("latency", samples(latencies(200_000, 1.3, 8)))],
        vec![("latency", samples(latencies(200_000, 1.0, 9)))],
    );
    let v = judge(&[latency(Direction::Increase, 0.1, None)], &inputs);
    let e = only(&v);
    assert_eq!(e.outcome, Outcome::Fail, "{}", e.rule);
    let shift = e.shift.unwrap() / e.baseline.median.unwrap();
    assert!((shift - 0.3).abs() < 0.02, "{shift}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_quantile_needs_about_ten_observations_above_it_on_each_side() {
    use deploygraph_canary::judge::quantile_min_observations;
    assert_eq!(quantile_min_observations(0.99), 1_000);
    assert_eq!(quantile_min_observations(0.999), 10_000);
    assert_eq!(quantile_min_observations(0.95), 200);
    assert_eq!(quantile_min_observations(0.5), 20);
    assert_eq!(quantile_min_observations(1.0), u64::MAX);

    // One slow burst on the canary's pods (a tenth of its requests three times slower) in a window
    // of 300 observations a side: p99 is three requests, and the burst moves it far beyond the
    // 10 % allowed. Above the metric's own min_samples (100), yet too few for a p99.
    let base = latencies(300, 1.0, 7);
    let canary = slower_tail(latencies(300, 1.0, 8), 0.1, 3.0);
    let metric = latency(Direction::Increase, 0.1, Some(0.99));
    for (form, c, b) in [
        ("samples", samples(canary.clone()), samples(base.clone())),
        (
            "histogram",
            MetricData::Distribution(histogram(&canary)),
            MetricData::Distribution(histogram(&base)),
        ),
    ] {
        let inputs = side_by_side(vec![("latency", c)], vec![("latency", b)]);
        let v = judge(std::slice::from_ref(&metric), &inputs);
        let e = only(&v);
        assert_eq!(e.outcome, Outcome::Inconclusive, "{form}: {}", e.rule);
        assert!(
            e.rule.contains("need 1000 on each side") && e.rule.contains("p99"),
            "{form}: {}",
            e.rule
        );
        // Without the requirement the same window fails: the rule is what keeps it from it.
        let unguarded = Judge {
            quantile_observations: false,
            ..Judge::default()
        }
        .judge(std::slice::from_ref(&metric), &inputs);
        assert_eq!(
            only(&unguarded).outcome,
            Outcome::Fail,
            "{form}: {}",
            only(&unguarded).rule
        );
    }

    // A metric judged on the median (no quantile) keeps its own min_samples.
    let median = latency(Direction::Increase, 0.1, None);
    let v = judge(
        std::slice::from_ref(&median),
        &side_by_side(
            vec![("latency", samples(latencies(300, 1.0, 8)))],
            vec![("latency", samples(latencies(300, 1.0, 7)))],
        ),
    );
    assert_eq!(only(&v).outcome, Outcome::Pass, "{}", only(&v).rule);

    // With 1,000 observations a side the same kind of burst is judged, and fails.
    let v = judge(
        std::slice::from_ref(&metric),
        &side_by_side(
            vec![(
                "latency",
                samples(slower_tail(latencies(1_000, 1.0, 8), 0.1, 3.0)),
            )],
            vec![("latency", samples(latencies(1_000, 1.0, 7)))],
        ),
    );
    assert_eq!(only(&v).outcome, Outcome::Fail, "{}", only(&v).rule);
}

/// The shipped `http-error-ratio` template's metric.
fn shipped_error_ratio() -> Metric {
    let (_, yaml) = deploygraph_canary::template::SHIPPED
        .iter()
        .find(|(f, _)| *f == "http-error-ratio.yaml")
        .unwrap();
    deploygraph_canary::Template::parse(yaml)
        .unwrap()
        .metrics
        .remove(0)
}

#[test]
fn the_shipped_error_ratio_template_fails_a_one_point_increase() {
    let metric = shipped_error_ratio();
    assert!(metric.critical);
    // (case, canary errors/requests, baseline errors/requests, outcome)
    let cases: &[RatioCase] = &[
        // A canary one point worse, estimated a little under one point in this window: a
        // tolerance of exactly one point (the template's earlier value) passes it.
        ("+0.9 points", (22, 2_000), (20, 10_000), Outcome::Fail),
        (
            "+0.9 points on a zero baseline",
            (18, 2_000),
            (0, 10_000),
            Outcome::Fail,
        ),
        // Small increases stay below the tolerance: no rollback, however significant.
        ("+0.3 points", (10, 2_000), (20, 10_000), Outcome::Pass),
        (
            "+0.4 points, busy",
            (480, 100_000),
            (800, 1_000_000),
            Outcome::Pass,
        ),
        // Too little traffic to judge one point: inconclusive, never a failure.
        (
            "+2 points on 300 requests",
            (6, 300),
            (0, 3_000),
            Outcome::Inconclusive,
        ),
    ];
    for (case, (x1, n1), (x2, n2), want) in cases {
        let v = judge(
            std::slice::from_ref(&metric),
            &side_by_side(
                vec![("http-error-ratio", counts(*x1, *n1))],
                vec![("http-error-ratio", counts(*x2, *n2))],
            ),
        );
        assert_eq!(only(&v).outcome, *want, "{case}: {}", only(&v).rule);
    }
    // The same +0.9 points with the earlier one-point tolerance: a pass.
    let mut one_point = metric.clone();
    if let MetricSpec::Ratio { max_increase, .. } = &mut one_point.spec {
        assert!((*max_increase - 0.005).abs() < 1e-12);
        *max_increase = 0.01;
    }
    let v = judge(
        std::slice::from_ref(&one_point),
        &side_by_side(
            vec![("http-error-ratio", counts(22, 2_000))],
            vec![("http-error-ratio", counts(20, 10_000))],
        ),
    );
    assert_eq!(only(&v).outcome, Outcome::Pass, "{}", only(&v).rule);
}
