//! Units (pods): when a metric's queries return one series per pod (`unit_label: pod` in the
//! template, `sum by (pod) (…)` in its queries), the judge can tell a version that is worse from
//! a canary that landed on one odd pod.
//!
//! Requests are not independent draws: the pods of one version differ from one another more
//! than binomial noise explains — a noisy neighbour, a node's placement, a pod's own cache or
//! connection pool — and a canary of one to three pods carries its pods' luck. The tests of the
//! judge treat every request as independent, so with much traffic such a pod difference becomes
//! "significant" and rolls back a healthy release; the canary benchmark's remaining false
//! rollbacks were of that kind (`docs/benchmarks.md`).
//!
//! What is done about it is the quasi-binomial correction of Rao and Scott, with pods as the
//! clusters. Within each side, each pod's events (errors; for a quantile metric, observations at
//! or above the baseline's quantile) are compared with what the side's own ratio predicts for the
//! pod's traffic, in Pearson's statistic `X² = Σ (xᵢ − nᵢ·p)² / (nᵢ·p·(1 − p))`, pooled over both
//! sides with `df = Σ (pods of the side − 1)`. A side's ratio is its own, so a version that is
//! worse on every pod does not raise `X²`; pods that differ from their siblings do. When `X²` is
//! beyond the 95th percentile of its χ² (`df` ≥ 1; Wilson-Hilferty), the pods differ beyond
//! chance, and each side's counts are divided by its **design effect** before the test (and
//! before the sequential test since the start), which widens the test's variance by that factor.
//! With a between-pod variance `σ²` of the ratio, `X²/df` is about `1 + m·σ²/(p(1 − p))` for
//! pods of `m` requests: the excess over 1 grows with a pod's traffic. So the excess is measured
//! per request, `e = (X²/df − 1) / m̄` with `m̄ = Σnᵢ²/Σnᵢ` over the pods it was measured on,
//! and a side whose pods carry `m = Σnᵢ²/n` requests each (weighted) gets `1 + e·m`: a canary of
//! one busy pod gets a larger factor than a baseline of many small ones, and the variance of a
//! side's ratio becomes about `p(1 − p)/n + σ²·Σnᵢ²/n²` (`σ²/k` for `k` equal pods). Otherwise
//! nothing changes: a test for overdispersion at 5 % keeps the power of services whose pods
//! agree. The minimum samples are checked on the counts as measured.
//!
//! Only side-by-side baselines use units (earlier releases keep one summary each), and only
//! ratio metrics and histogram distributions (a samples query has no per-pod counts).

use crate::inputs::{Counts, MetricData, Units};
use crate::stats::normal_quantile;
use serde::Serialize;

/// The level of the test for pods that differ beyond chance.
pub const OVERDISPERSION_LEVEL: f64 = 0.05;

/// How much the units (pods) of the two sides differ beyond chance, as the judge applied it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Dispersion {
    /// Units with traffic on the canary's side.
    pub canary_units: usize,
    /// Units with traffic on the baseline's side.
    pub baseline_units: usize,
    /// Pearson's `X²` of the units around their side's ratio.
    pub chi_square: f64,
    /// Its degrees of freedom.
    pub df: f64,
    /// The 95th percentile of `χ²(df)`: `X²` above it means the units differ beyond chance.
    pub bar: f64,
    /// `X²/df` when above the bar, else 1: the design effect of the pods it was measured on.
    pub factor: f64,
    /// The design effect that divided the canary's counts (1 when the units agree).
    pub canary_factor: f64,
    /// The design effect that divided the baseline's counts (1 when the units agree).
    pub baseline_factor: f64,
}

impl Dispersion {
    /// Whether the counts were divided (the units differ beyond chance).
    #[must_use]
    pub fn applied(&self) -> bool {
        self.factor > 1.0
    }

    /// The canary's `counts` divided by its design effect ([`Self::deflate_by`]).
    #[must_use]
    pub fn deflate_canary(&self, counts: Counts) -> Counts {
        Self::deflate_by(counts, self.canary_factor)
    }

    /// The baseline's `counts` divided by its design effect ([`Self::deflate_by`]).
    #[must_use]
    pub fn deflate_baseline(&self, counts: Counts) -> Counts {
        Self::deflate_by(counts, self.baseline_factor)
    }

    /// `counts` divided by `factor` (rounded; a side with traffic keeps at least one trial).
    #[must_use]
    pub fn deflate_by(counts: Counts, factor: f64) -> Counts {
        if factor <= 1.0 || !factor.is_finite() {
            return counts;
        }
        let scale = |v: u64| (v as f64 / factor).round() as u64;
        let denominator = scale(counts.denominator).max(u64::from(counts.denominator > 0));
        Counts {
            numerator: scale(counts.numerator).min(denominator),
            denominator,
        }
    }

    /// A clause for the metric's rule.
    #[must_use]
    pub fn sentence(&self) -> String {
        let units = format!(
            "{} canary and {} baseline pods",
            self.canary_units, self.baseline_units
        );
        if self.applied() {
            format!(
                "the {units} differ beyond chance (X² {:.1} on {} df > {:.1}): counts divided by the design effects {:.2} (canary) and {:.2} (baseline)",
                self.chi_square, self.df, self.bar, self.canary_factor, self.baseline_factor
            )
        } else {
            format!(
                "the {units} agree within chance (X² {:.1} on {} df ≤ {:.1})",
                self.chi_square, self.df, self.bar
            )
        }
    }
}

/// The upper `level` point of `χ²(df)` by Wilson and Hilferty's cube-root approximation
/// (within a few per cent of the exact point from one degree of freedom up).
#[must_use]
pub fn chi_square_upper(df: f64, level: f64) -> f64 {
    let z = normal_quantile(1.0 - level);
    let a = 2.0 / (9.0 * df);
    df * (1.0 - a + z * a.sqrt()).powi(3).max(0.0)
}

/// The dispersion of a ratio metric's units (its counts per pod on each side; data of the
/// other kind is left out).
#[must_use]
pub fn ratio_dispersion(units: &Units) -> Option<Dispersion> {
    let counts = |side: &[MetricData]| -> Vec<Counts> {
        side.iter()
            .filter_map(|d| match d {
                MetricData::Ratio(c) => Some(*c),
                MetricData::Distribution(_) => None,
            })
            .collect()
    };
    dispersion(&counts(&units.canary), &counts(&units.baseline))
}

/// The dispersion of the units of both sides (each unit's events over its trials); `None` when
/// there is nothing to measure it on (no side with two units that have traffic and events
/// and non-events between them).
#[must_use]
pub fn dispersion(canary: &[Counts], baseline: &[Counts]) -> Option<Dispersion> {
    let (mut chi_square, mut df) = (0.0, 0.0_f64);
    let mut with_traffic = [0_usize; 2];
    // Per side, Σnᵢ²/n (its pods' weighted traffic); over the measured pods, Σnᵢ² and Σnᵢ.
    let mut pod_size = [0.0_f64; 2];
    let (mut measured_sq, mut measured) = (0.0, 0.0);
    for (i, side) in [canary, baseline].into_iter().enumerate() {
        let units: Vec<Counts> = side
            .iter()
            .copied()
            .filter(|u| u.denominator > 0 && u.numerator <= u.denominator)
            .collect();
        with_traffic[i] = units.len();
        let (x, n) = units.iter().fold((0.0, 0.0), |(x, n), u| {
            (x + u.numerator as f64, n + u.denominator as f64)
        });
        let sq: f64 = units.iter().map(|u| (u.denominator as f64).powi(2)).sum();
        if n > 0.0 {
            pod_size[i] = sq / n;
        }
        if units.len() < 2 || x <= 0.0 || x >= n {
            continue;
        }
        measured_sq += sq;
        measured += n;
        let p = x / n;
        chi_square += units
            .iter()
            .map(|u| {
                let expected = u.denominator as f64 * p;
                (u.numerator as f64 - expected).powi(2) / (expected * (1.0 - p))
            })
            .sum::<f64>();
        df += units.len() as f64 - 1.0;
    }
    if df < 1.0 {
        return None;
    }
    let bar = chi_square_upper(df, OVERDISPERSION_LEVEL);
    let factor = if chi_square > bar {
        chi_square / df
    } else {
        1.0
    };
    // The excess per request of pod traffic, then each side's own factor.
    let per_request = (factor - 1.0) / (measured_sq / measured);
    let side_factor = |size: f64| {
        if size > 0.0 {
            1.0 + per_request * size
        } else {
            factor
        }
    };
    Some(Dispersion {
        canary_units: with_traffic[0],
        baseline_units: with_traffic[1],
        chi_square,
        df,
        bar,
        factor,
        canary_factor: side_factor(pod_size[0]),
        baseline_factor: side_factor(pod_size[1]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(numerator: u64, denominator: u64) -> Counts {
        Counts {
            numerator,
            denominator,
        }
    }

    #[test]
    fn the_chi_square_point_is_close_to_the_table() {
        // χ²(1) 95 % 3.841, χ²(5) 11.070, χ²(20) 31.410.
        for (df, table) in [(1.0, 3.841), (5.0, 11.070), (20.0, 31.410)] {
            let got = chi_square_upper(df, 0.05);
            assert!(
                (got - table).abs() / table < 0.03,
                "df {df}: {got} vs {table}"
            );
        }
    }

    #[test]
    fn pods_that_agree_change_nothing() {
        // Every pod exactly at its side's ratio: X² 0.
        let d = dispersion(
            &[c(10, 1000), c(20, 2000)],
            &[c(5, 1000), c(5, 1000), c(5, 1000)],
        )
        .expect("measured");
        assert_eq!(d.chi_square, 0.0);
        assert_eq!(d.df, 3.0);
        assert!(!d.applied());
        assert_eq!((d.canary_factor, d.baseline_factor), (1.0, 1.0));
        assert_eq!(d.deflate_canary(c(30, 3000)), c(30, 3000));
        assert!(
            d.sentence().contains("agree within chance"),
            "{}",
            d.sentence()
        );
    }

    #[test]
    fn pods_that_differ_divide_the_counts() {
        // Baseline pods at 0.2 %, 1 % and 2 % of 10,000 requests each: far beyond binomial.
        let d = dispersion(
            &[c(150, 10_000)],
            &[c(20, 10_000), c(100, 10_000), c(200, 10_000)],
        )
        .expect("measured");
        assert_eq!((d.canary_units, d.baseline_units), (1, 3));
        assert_eq!(d.df, 2.0);
        assert!(d.applied(), "{d:?}");
        assert!(d.factor > 50.0, "{d:?}");
        // Pods of the same size on both sides: the same factor.
        assert!((d.canary_factor - d.factor).abs() < 1e-9, "{d:?}");
        assert!((d.baseline_factor - d.factor).abs() < 1e-9, "{d:?}");
        let deflated = d.deflate_canary(c(150, 10_000));
        assert!(deflated.denominator < 200, "{deflated:?}");
        // The ratio is kept.
        let ratio = deflated.numerator as f64 / deflated.denominator as f64;
        assert!((ratio - 0.015).abs() < 0.002, "{ratio}");
        assert!(
            d.sentence().contains("differ beyond chance"),
            "{}",
            d.sentence()
        );
    }

    #[test]
    fn a_side_of_busier_pods_gets_a_larger_factor() {
        // Baseline pods of 1,000 requests that differ; one canary pod of 9,000.
        let d = dispersion(
            &[c(90, 9_000)],
            &[c(2, 1_000), c(10, 1_000), c(20, 1_000), c(4, 1_000)],
        )
        .expect("measured");
        assert!(d.applied(), "{d:?}");
        assert!((d.baseline_factor - d.factor).abs() < 1e-9, "{d:?}");
        let excess = |f: f64| f - 1.0;
        let ratio = excess(d.canary_factor) / excess(d.baseline_factor);
        assert!((ratio - 9.0).abs() < 1e-9, "{d:?}");
    }

    #[test]
    fn a_worse_version_on_every_pod_is_not_dispersion() {
        // The canary's pods all at 3 %, the baseline's all at 1 %: each side's own ratio
        // explains its pods.
        let d = dispersion(
            &[c(300, 10_000), c(300, 10_000)],
            &[c(100, 10_000), c(100, 10_000), c(100, 10_000)],
        )
        .expect("measured");
        assert!(!d.applied(), "{d:?}");
    }

    #[test]
    fn too_few_units_or_no_events_measure_nothing() {
        assert_eq!(dispersion(&[c(1, 100)], &[c(3, 100)]), None);
        // Two units each side but no events anywhere: no information.
        assert_eq!(
            dispersion(&[c(0, 100), c(0, 100)], &[c(0, 100), c(0, 90)]),
            None
        );
        // Units without traffic or with inconsistent counts are not units.
        assert_eq!(dispersion(&[], &[c(3, 100), c(0, 0), c(5, 4)]), None);
    }

    #[test]
    fn deflating_keeps_a_side_with_traffic() {
        assert_eq!(Dispersion::deflate_by(c(1, 30), 100.0), c(0, 1));
        assert_eq!(Dispersion::deflate_by(c(0, 0), 100.0), c(0, 0));
        assert_eq!(Dispersion::deflate_by(c(7, 30), 1.0), c(7, 30));
        assert_eq!(Dispersion::deflate_by(c(7, 30), f64::NAN), c(7, 30));
    }
}
