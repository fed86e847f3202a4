//! Pods as units (`unit_label`): a canary of one odd pod among pods that differ beyond chance is
//! not a regression; a version worse on every pod still is; history baselines have no units.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_canary::template::SHIPPED;
use deploygraph_canary::{
    Baseline, Bucket, Counts, Distribution, Histogram, Inputs, MetricData, Outcome, ReleaseSummary,
    Template, Units, Window, judge, sequential,
};
use std::collections::BTreeMap;
use std::time::Duration;

fn shipped(file: &str) -> deploygraph_canary::Metric {
    let (_, yaml) = SHIPPED.iter().find(|(f, _)| *f == file).unwrap();
    Template::parse(yaml).unwrap().metrics.remove(0)
}

fn counts(numerator: u64, denominator: u64) -> MetricData {
    MetricData::Ratio(Counts {
        numerator,
        denominator,
    })
}

fn sum(units: &[MetricData]) -> MetricData {
    let (mut x, mut n) = (0, 0);
    for u in units {
        if let MetricData::Ratio(c) = u {
            x += c.numerator;
            n += c.denominator;
        }
    }
    counts(x, n)
}

fn window() -> Window {
    Window::new(Duration::from_secs(60)).unwrap()
}

/// Side-by-side inputs of one metric from its units (the whole is their sum), with or without
/// the units.
fn inputs(name: &str, canary: &[MetricData], baseline: &[MetricData], with_units: bool) -> Inputs {
    let whole = |units: &[MetricData]| match units.first() {
        Some(MetricData::Distribution(_)) => merged(units),
        _ => sum(units),
    };
    Inputs {
        window: window(),
        canary: [(name.to_owned(), whole(canary))].into(),
        baseline: Baseline::SideBySide([(name.to_owned(), whole(baseline))].into()),
        units: if with_units {
            [(
                name.to_owned(),
                Units {
                    canary: canary.to_vec(),
                    baseline: baseline.to_vec(),
                },
            )]
            .into()
        } else {
            BTreeMap::new()
        },
    }
}

/// Six baseline pods of 20,000 requests at 0.3 to 1.5 % errors (0.83 % in all): far more spread
/// than binomial noise.
fn spread_baseline() -> Vec<MetricData> {
    spread_baseline_times(1)
}

/// [`spread_baseline`] with every count `k` times larger.
fn spread_baseline_times(k: u64) -> Vec<MetricData> {
    [60, 120, 240, 100, 300, 180]
        .into_iter()
        .map(|x| counts(k * x, k * 20_000))
        .collect()
}

#[test]
fn one_odd_canary_pod_among_pods_that_differ_is_not_a_regression() {
    let metric = shipped("http-error-ratio.yaml");
    // One canary pod at 1.6 %: 0.77 points above the baseline, beyond the half-point tolerance
    // and, request by request, far beyond chance, yet inside the baseline pods' own range.
    let canary = [counts(320, 20_000)];
    let without = judge(
        std::slice::from_ref(&metric),
        &inputs(&metric.name, &canary, &spread_baseline(), false),
    );
    assert_eq!(without.outcome, Outcome::Fail, "{}", without.rule);
    assert!(without.metrics[0].dispersion.is_none());

    let with = judge(
        std::slice::from_ref(&metric),
        &inputs(&metric.name, &canary, &spread_baseline(), true),
    );
    let m = &with.metrics[0];
    assert_eq!(m.outcome, Outcome::Pass, "{}", m.rule);
    let d = m.dispersion.expect("measured");
    assert!(d.applied(), "{d:?}");
    assert_eq!((d.canary_units, d.baseline_units), (1, 6));
    assert_eq!(d.df, 5.0);
    assert!(d.factor > 20.0, "{d:?}");
    assert!(m.rule.contains("differ beyond chance"), "{}", m.rule);
    assert!(m.rule.contains("not significant"), "{}", m.rule);
    // The summaries are the counts as measured; the sample minimum was met on them.
    assert_eq!(m.canary.samples, 20_000);
    assert_eq!(m.baseline.samples, 120_000);
    // The evidence says what was applied.
    let json = serde_json::to_value(m).unwrap();
    assert!(
        json["dispersion"]["canary_factor"].as_f64().unwrap() > 1.0,
        "{json}"
    );
}

#[test]
fn a_version_worse_on_every_pod_still_fails() {
    let metric = shipped("http-error-ratio.yaml");
    let canary = [counts(300, 10_000), counts(300, 10_000)];
    let baseline: Vec<MetricData> = (0..4).map(|_| counts(100, 10_000)).collect();
    let v = judge(
        std::slice::from_ref(&metric),
        &inputs(&metric.name, &canary, &baseline, true),
    );
    let m = &v.metrics[0];
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.rule);
    let d = m.dispersion.expect("measured");
    assert!(!d.applied(), "{d:?}");
    assert!(m.rule.contains("agree within chance"), "{}", m.rule);
}

#[test]
fn a_single_series_per_side_is_judged_as_before() {
    // Series without the unit label: one unit per side, nothing to measure.
    let metric = shipped("http-error-ratio.yaml");
    let (c, b) = ([counts(320, 20_000)], [counts(1_000, 120_000)]);
    let with = judge(
        std::slice::from_ref(&metric),
        &inputs(&metric.name, &c, &b, true),
    );
    let without = judge(
        std::slice::from_ref(&metric),
        &inputs(&metric.name, &c, &b, false),
    );
    assert!(with.metrics[0].dispersion.is_none());
    assert_eq!(with.outcome, without.outcome);
    assert_eq!(with.metrics[0].rule, without.metrics[0].rule);
}

#[test]
fn a_history_baseline_has_no_units() {
    let metric = shipped("http-error-ratio.yaml");
    let releases = (0..3)
        .map(|i| ReleaseSummary {
            release: format!("r{i}"),
            metrics: [(metric.name.clone(), counts(50, 10_000))].into(),
        })
        .collect();
    let inputs = Inputs {
        window: window(),
        canary: [(metric.name.clone(), counts(320, 20_000))].into(),
        baseline: Baseline::History(releases),
        units: [(
            metric.name.clone(),
            Units {
                canary: vec![counts(320, 20_000)],
                baseline: spread_baseline(),
            },
        )]
        .into(),
    };
    let v = judge(std::slice::from_ref(&metric), &inputs);
    assert!(v.metrics[0].dispersion.is_none(), "{:?}", v.metrics[0]);
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.rule);
}

#[test]
fn the_sequential_test_allows_for_pods_that_differ_too() {
    let metric = shipped("http-error-ratio.yaml");
    // Ten minutes of the first test's traffic.
    let since = Window::new(Duration::from_secs(600)).unwrap();
    let canary = [counts(3_200, 200_000)];
    let baseline = spread_baseline_times(10);
    let test = |units: Option<&Units>| {
        sequential::test(
            &metric,
            since,
            Some(&sum(&canary)),
            Some(&sum(&baseline)),
            units,
            sequential::ALPHA,
        )
        .unwrap()
    };
    let alone = test(None);
    assert_eq!(alone.outcome, Outcome::Fail, "{}", alone.rule);
    let units = Units {
        canary: canary.to_vec(),
        baseline: baseline.clone(),
    };
    let by_pod = test(Some(&units));
    assert_eq!(by_pod.outcome, Outcome::Pass, "{}", by_pod.rule);
    assert!(by_pod.dispersion.is_some_and(|d| d.applied()));
    assert!(
        by_pod.rule.contains("differ beyond chance"),
        "{}",
        by_pod.rule
    );
}

// --- histograms ---------------------------------------------------------------------------------

const BOUNDS: [f64; 6] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// A pod's histogram: `n` requests, `slow` of them above 0.5 s, the rest at 0.05–0.1 s.
fn pod(n: u64, slow: u64) -> MetricData {
    let fast = n - slow;
    let cumulative = [0, fast, fast, fast, n, n];
    MetricData::Distribution(Distribution::Histogram(Histogram {
        buckets: BOUNDS
            .iter()
            .zip(cumulative)
            .map(|(&le, count)| Bucket { le, count })
            .collect(),
        count: n,
    }))
}

fn merged(units: &[MetricData]) -> MetricData {
    let mut buckets = vec![0_u64; BOUNDS.len()];
    let mut count = 0;
    for u in units {
        if let MetricData::Distribution(Distribution::Histogram(h)) = u {
            for (b, x) in buckets.iter_mut().zip(&h.buckets) {
                *b += x.count;
            }
            count += h.count;
        }
    }
    MetricData::Distribution(Distribution::Histogram(Histogram {
        buckets: BOUNDS
            .iter()
            .zip(buckets)
            .map(|(&le, count)| Bucket { le, count })
            .collect(),
        count,
    }))
}

#[test]
fn a_slow_canary_pod_among_baseline_pods_whose_tails_differ() {
    let metric = shipped("http-latency-p99.yaml");
    // Baseline pods with 0.2 % to 2 % slow requests (1.05 % in all); one canary pod at 1.8 %.
    let baseline: Vec<MetricData> = [10, 100, 40, 80, 20, 65]
        .into_iter()
        .map(|slow| pod(5_000, slow))
        .collect();
    let canary = [pod(5_000, 90)];
    let without = judge(
        std::slice::from_ref(&metric),
        &inputs(&metric.name, &canary, &baseline, false),
    );
    assert_eq!(without.outcome, Outcome::Fail, "{}", without.rule);
    let with = judge(
        std::slice::from_ref(&metric),
        &inputs(&metric.name, &canary, &baseline, true),
    );
    let m = &with.metrics[0];
    assert_ne!(m.outcome, Outcome::Fail, "{}", m.rule);
    assert!(m.dispersion.is_some_and(|d| d.applied()), "{}", m.rule);
    // A canary slow on every pod, against pods that agree, still fails.
    let even: Vec<MetricData> = (0..6).map(|_| pod(5_000, 60)).collect();
    let slow = [pod(5_000, 400), pod(5_000, 400)];
    let v = judge(
        std::slice::from_ref(&metric),
        &inputs(&metric.name, &slow, &even, true),
    );
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.rule);
    assert!(v.metrics[0].dispersion.is_some_and(|d| !d.applied()));
}
