//! The stop rule of `canary analyze` on verdicts of the judge: a decisive failure of a critical
//! ratio metric is final at once, any other failure waits one window for confirmation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_canary::sequential;
use deploygraph_canary::stop::{
    DECISIVE_P, Decision, decide_confirmed, decide_confirmed_or_decisive, is_decisive,
};
use deploygraph_canary::template::SHIPPED;
use deploygraph_canary::{
    Baseline, Counts, Distribution, Inputs, Metric, MetricData, Outcome, Template, Verdict, Window,
    judge,
};
use std::collections::BTreeMap;
use std::time::Duration;

fn shipped(file: &str) -> Vec<Metric> {
    let (_, yaml) = SHIPPED.iter().find(|(f, _)| *f == file).unwrap();
    Template::parse(yaml).unwrap().metrics
}

fn minute() -> Window {
    Window::new(Duration::from_secs(60)).unwrap()
}

fn errors(canary: (u64, u64), baseline: (u64, u64)) -> Verdict {
    let data = |(numerator, denominator): (u64, u64)| {
        BTreeMap::from([(
            "http-error-ratio".to_owned(),
            MetricData::Ratio(Counts {
                numerator,
                denominator,
            }),
        )])
    };
    judge(
        &shipped("http-error-ratio.yaml"),
        &Inputs {
            window: minute(),
            canary: data(canary),
            baseline: Baseline::SideBySide(data(baseline)),
            units: BTreeMap::new(),
        },
    )
}

const S60: Duration = Duration::from_secs(60);

#[test]
fn an_overwhelming_error_increase_is_final_at_the_first_failing_window() {
    // 10 % errors on 2,000 canary requests against 0.5 % on 10,000: the interval of the
    // increase lies far above the half-point tolerance.
    let v = errors((200, 2_000), (50, 10_000));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.rule);
    assert!(is_decisive(&v, DECISIVE_P));
    assert_eq!(
        decide_confirmed_or_decisive(&[], &v, S60, minute(), false),
        Decision::Fail
    );
    // The rule without the decisive case waits a window for the same verdict.
    assert_eq!(
        decide_confirmed(&[], &v, S60, minute(), false),
        Decision::Continue
    );
}

#[test]
fn a_marginal_failure_still_waits_for_confirmation() {
    // +1.1 points on 1,000 requests: significant (p < α) and above the tolerance, but its
    // interval reaches below the tolerance: not decisive.
    let v = errors((16, 1_000), (50, 10_000));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.rule);
    assert!(!is_decisive(&v, DECISIVE_P), "{:#?}", v.metrics[0]);
    assert_eq!(
        decide_confirmed_or_decisive(&[], &v, S60, minute(), false),
        Decision::Continue
    );
    // Confirmed by the analysis one window earlier: final.
    let earlier = [
        (Duration::ZERO, Outcome::Fail),
        (Duration::from_secs(30), Outcome::Pass),
    ];
    assert_eq!(
        decide_confirmed_or_decisive(&earlier, &v, S60, minute(), false),
        Decision::Fail
    );
    // Unconfirmed at the deadline: inconclusive.
    assert_eq!(
        decide_confirmed_or_decisive(&[], &v, S60, minute(), true),
        Decision::Inconclusive
    );
    // A significant increase far beyond the tolerance but with p above the decisive limit.
    let v = errors((6, 500), (0, 2_000));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.rule);
    assert!(!is_decisive(&v, DECISIVE_P), "{:#?}", v.metrics[0]);
}

#[test]
fn a_latency_failure_is_never_decisive() {
    // Every canary request in the slowest bucket: p ≈ 0, yet a burst of one window can do this.
    let buckets = |slow: bool| {
        let mut cumulative = 0;
        let per_bucket: [u64; 4] = if slow {
            [0, 0, 0, 5_000]
        } else {
            [5_000, 0, 0, 0]
        };
        deploygraph_canary::Histogram {
            buckets: [0.1, 0.25, 0.5, 1.0]
                .iter()
                .zip(per_bucket)
                .map(|(&le, c)| {
                    cumulative += c;
                    deploygraph_canary::Bucket {
                        le,
                        count: cumulative,
                    }
                })
                .collect(),
            count: 5_000,
        }
    };
    let data = |slow| {
        BTreeMap::from([(
            "http-latency-p99".to_owned(),
            MetricData::Distribution(Distribution::Histogram(buckets(slow))),
        )])
    };
    let mut metrics = shipped("http-latency-p99.yaml");
    metrics[0].critical = true;
    let v = judge(
        &metrics,
        &Inputs {
            window: minute(),
            canary: data(true),
            baseline: Baseline::SideBySide(data(false)),
            units: BTreeMap::new(),
        },
    );
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.rule);
    assert!(!is_decisive(&v, DECISIVE_P));
    assert_eq!(
        decide_confirmed_or_decisive(&[], &v, S60, minute(), false),
        Decision::Continue
    );
}

#[test]
fn a_failed_sequential_test_since_the_start_is_final_at_once() {
    // Each window of a low-traffic canary is below the template's 500 requests: inconclusive.
    let mut v = errors((30, 300), (1, 300));
    assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.rule);
    let metric = &shipped("http-error-ratio.yaml")[0];
    let ten_minutes = Window::new(Duration::from_secs(600)).unwrap();
    let counts = |numerator, denominator| {
        MetricData::Ratio(Counts {
            numerator,
            denominator,
        })
    };
    // Ten minutes of it: 10 % against 0.3 % on 6,000 requests a side.
    let test = sequential::test(
        metric,
        ten_minutes,
        Some(&counts(600, 6_000)),
        Some(&counts(20, 6_000)),
        None,
        sequential::ALPHA,
    )
    .unwrap();
    assert_eq!(test.outcome, Outcome::Fail, "{}", test.rule);
    sequential::apply(&mut v, vec![(metric.name.clone(), test)]);
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.rule);
    assert!(is_decisive(&v, DECISIVE_P));
    assert_eq!(
        decide_confirmed_or_decisive(&[], &v, Duration::from_secs(600), minute(), false),
        Decision::Fail
    );
    // A test that has not crossed leaves the window's verdict to the rule.
    let mut quiet = errors((30, 300), (1, 300));
    let passing = sequential::test(
        metric,
        ten_minutes,
        Some(&counts(40, 6_000)),
        Some(&counts(20, 6_000)),
        None,
        sequential::ALPHA,
    )
    .unwrap();
    sequential::apply(&mut quiet, vec![(metric.name.clone(), passing)]);
    assert_eq!(quiet.outcome, Outcome::Inconclusive);
    assert_eq!(
        decide_confirmed_or_decisive(&[], &quiet, Duration::from_secs(600), minute(), false),
        Decision::Continue
    );
}
