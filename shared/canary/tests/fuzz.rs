//! Fuzz targets for canary analysis: the judge over arbitrary counts, histograms and samples
//! (u64 extremes, NaN and infinite values, unordered buckets), and template/selector parsing.
//!
//! `cargo test` runs each target as a bounded smoke run (random inputs for a few seconds);
//! `cargo bolero test` runs them coverage-guided (docs/fuzzing.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_canary::{
    Baseline, Bucket, Counts, Direction, Distribution, DistributionInput, Histogram, Inputs,
    Metric, MetricData, MetricSpec, Outcome, Query, ReleaseSummary, Selector, Template, Window,
    judge,
};
use std::time::Duration;

/// How long the smoke run of one target generates random inputs under `cargo test`.
const SMOKE_TIME: Duration = Duration::from_secs(3);
/// And at most this many.
const SMOKE_ITERATIONS: usize = 20_000;

/// Reads numbers off the fuzzer's bytes, zeros when they run out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    fn u64(&mut self) -> u64 {
        // Mostly small counts, sometimes anything up to u64::MAX.
        match self.byte() % 4 {
            0 => u64::from(self.byte()),
            1 => u64::from(u16::from_le_bytes([self.byte(), self.byte()])),
            2 => u64::MAX - u64::from(self.byte()),
            _ => u64::from_le_bytes(std::array::from_fn(|_| self.byte())),
        }
    }

    fn f64(&mut self) -> f64 {
        match self.byte() % 4 {
            0 => f64::from(self.byte()) / 16.0,
            1 => [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0][usize::from(self.byte() % 4)],
            _ => f64::from_le_bytes(std::array::from_fn(|_| self.byte())),
        }
    }

    fn data(&mut self, ratio: bool) -> Option<MetricData> {
        match self.byte() % 5 {
            0 => None,
            _ if ratio => Some(MetricData::Ratio(Counts {
                numerator: self.u64(),
                denominator: self.u64(),
            })),
            1 => Some(MetricData::Distribution(Distribution::Samples(
                (0..self.byte() % 40).map(|_| self.f64()).collect(),
            ))),
            _ => {
                let mut le = 0.0;
                let buckets = (0..self.byte() % 12)
                    .map(|_| {
                        // Mostly increasing bounds, sometimes not.
                        le = if self.byte().is_multiple_of(8) {
                            self.f64()
                        } else {
                            le + f64::from(self.byte()) / 10.0
                        };
                        Bucket {
                            le,
                            count: self.u64(),
                        }
                    })
                    .collect();
                Some(MetricData::Distribution(Distribution::Histogram(
                    Histogram {
                        buckets,
                        count: self.u64(),
                    },
                )))
            }
        }
    }
}

fn metrics() -> Vec<Metric> {
    let q = |text: &str| Query::parse("q", text).unwrap();
    vec![
        Metric {
            name: "errors".into(),
            direction: Direction::Increase,
            critical: true,
            min_samples: 10,
            unit_label: None,
            spec: MetricSpec::Ratio {
                numerator: q("e{{{selector}}}"),
                denominator: q("r{{{selector}}}"),
                max_increase: 0.01,
            },
        },
        Metric {
            name: "success".into(),
            direction: Direction::Either,
            critical: false,
            min_samples: 1,
            unit_label: None,
            spec: MetricSpec::Ratio {
                numerator: q("s{{{selector}}}"),
                denominator: q("r{{{selector}}}"),
                max_increase: 0.0,
            },
        },
        Metric {
            name: "latency".into(),
            direction: Direction::Decrease,
            critical: false,
            min_samples: 3,
            unit_label: None,
            spec: MetricSpec::Distribution {
                query: q("l{{{selector}}}"),
                input: DistributionInput::Histogram,
                allowed_change: 0.1,
                quantile: Some(0.99),
            },
        },
        Metric {
            name: "latency-median".into(),
            direction: Direction::Either,
            critical: false,
            min_samples: 1,
            unit_label: None,
            spec: MetricSpec::Distribution {
                query: q("l{{{selector}}}"),
                input: DistributionInput::Samples,
                allowed_change: 0.0,
                quantile: None,
            },
        },
    ]
}

#[test]
fn judge_never_panics() {
    let metrics = metrics();
    bolero::check!()
        .with_test_time(SMOKE_TIME)
        .with_iterations(SMOKE_ITERATIONS)
        .for_each(|input: &[u8]| {
            let mut bytes = Bytes(input);
            let side = |bytes: &mut Bytes<'_>| {
                metrics
                    .iter()
                    .filter_map(|m| {
                        let ratio = matches!(m.spec, MetricSpec::Ratio { .. });
                        bytes.data(ratio).map(|d| (m.name.clone(), d))
                    })
                    .collect()
            };
            let canary = side(&mut bytes);
            let baseline = if bytes.byte().is_multiple_of(2) {
                Baseline::SideBySide(side(&mut bytes))
            } else {
                Baseline::History(
                    (0..bytes.byte() % 6)
                        .map(|i| ReleaseSummary {
                            release: format!("r{i}"),
                            metrics: side(&mut bytes),
                        })
                        .collect(),
                )
            };
            // Per-pod data of any shape (pods of the other kind, without traffic, inconsistent).
            let units = metrics
                .iter()
                .map(|m| {
                    let ratio = matches!(m.spec, MetricSpec::Ratio { .. });
                    let pods = |bytes: &mut Bytes<'_>| -> Vec<_> {
                        (0..bytes.byte() % 5)
                            .filter_map(|_| {
                                let other = bytes.byte() == 0;
                                bytes.data(ratio ^ other)
                            })
                            .collect()
                    };
                    let canary = pods(&mut bytes);
                    let baseline = pods(&mut bytes);
                    (
                        m.name.clone(),
                        deploygraph_canary::Units { canary, baseline },
                    )
                })
                .collect();
            let inputs = Inputs {
                window: Window::new(Duration::from_secs(60)).unwrap(),
                canary,
                baseline,
                units,
            };
            let verdict = judge(&metrics, &inputs);
            assert_eq!(verdict.metrics.len(), metrics.len());
            for (m, e) in metrics.iter().zip(&verdict.metrics) {
                for p in [e.p_value, e.p_adjusted].into_iter().flatten() {
                    assert!((0.0..=1.0).contains(&p), "{e:?}");
                }
                if e.outcome == Outcome::Fail {
                    // Never a failure without enough data on both sides and a significant test.
                    assert!(e.canary.samples >= m.min_samples, "{e:?}");
                    assert!(e.baseline.samples >= m.min_samples, "{e:?}");
                    assert!(e.p_adjusted.is_some_and(|p| p < verdict.alpha), "{e:?}");
                }
            }
            if verdict.metrics.iter().all(|e| e.outcome != Outcome::Fail) {
                assert_ne!(verdict.outcome, Outcome::Fail);
            }
            serde_json::to_string(&verdict).unwrap();
        });
}

#[test]
fn templates_and_selectors_never_panic() {
    bolero::check!()
        .with_test_time(SMOKE_TIME)
        .with_iterations(SMOKE_ITERATIONS)
        .for_each(|input: &[u8]| {
            let text = String::from_utf8_lossy(input);
            if let Ok(selector) = Selector::parse(&text) {
                // The canonical form reads back as itself and cannot leave the braces.
                let rendered = selector.to_string();
                assert_eq!(Selector::parse(&rendered).unwrap(), selector);
                let outside_quotes: String = rendered.split('"').step_by(2).collect();
                assert!(
                    !outside_quotes.contains(['{', '}', '(', ')', '[', ']', '\\']),
                    "{rendered}"
                );
            }
            let _ = text.parse::<Window>();
            if let Ok(template) = Template::parse(&text) {
                let selector = Selector::parse(r#"app="x""#).unwrap();
                let window = Window::new(Duration::from_secs(30)).unwrap();
                for (_, _, query) in template.render(&selector, window) {
                    assert!(query.contains(r#"app="x""#));
                }
            }
        });
}
