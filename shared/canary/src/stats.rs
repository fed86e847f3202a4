//! The statistics the judge uses: the normal distribution, tests for two proportions (Fisher's
//! exact, the pooled z-test), the Newcombe interval for a difference of proportions, and the
//! Holm-Bonferroni adjustment.
//!
//! Every function is total: empty, zero or non-finite inputs give a p-value of 1 (no evidence)
//! or an empty interval, never a panic or a NaN.

use statrs::distribution::{ContinuousCDF, Normal};
use statrs::function::erf::erfc;
use std::f64::consts::SQRT_2;

/// Upper tail of the standard normal, `P(Z ≥ z)`, accurate far into the tail (erfc-based).
#[must_use]
pub fn normal_sf(z: f64) -> f64 {
    if z.is_nan() {
        return 1.0;
    }
    (0.5 * erfc(z / SQRT_2)).clamp(0.0, 1.0)
}

/// `z` with `P(Z ≤ z) = p`, for `0 < p < 1`.
#[must_use]
pub fn normal_quantile(p: f64) -> f64 {
    Normal::standard().inverse_cdf(p.clamp(f64::MIN_POSITIVE, 1.0 - f64::EPSILON))
}

/// One-sided p-values of a comparison of two proportions, canary `x1/n1` against baseline
/// `x2/n2`: `upper` for "the canary's proportion is higher", `lower` for "lower".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OneSided {
    /// P-value against "canary ≤ baseline".
    pub upper: f64,
    /// P-value against "canary ≥ baseline".
    pub lower: f64,
}

impl OneSided {
    const NONE: Self = Self {
        upper: 1.0,
        lower: 1.0,
    };
}

/// Largest support of the conditional (hypergeometric) distribution for which Fisher's exact
/// test is computed term by term; above it the counts are large enough for the z-test.
pub const EXACT_SUPPORT_LIMIT: u64 = 20_000;

/// Fisher's exact test on the 2×2 table (`x1` of `n1`, `x2` of `n2`), one-sided both ways.
///
/// Conditional on the margins, the canary's count is hypergeometric. The probabilities are
/// built from the ratio of consecutive terms, `P(k+1)/P(k) = (K−k)(n1−k) / ((k+1)(N−K−n1+k+1))`,
/// starting at the mode and normalised over the support, instead of from log-gamma: with `N`
/// in the billions `ln Γ(N)` is ~10¹⁰ and the cancellation between such terms loses every
/// digit, while the ratios stay exact to rounding. `None` when the support has more than
/// [`EXACT_SUPPORT_LIMIT`] points (then use [`z_test`]), or the counts are inconsistent.
#[must_use]
pub fn fisher_exact(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<OneSided> {
    if x1 > n1 || x2 > n2 {
        return None;
    }
    let n = n1.checked_add(n2)?;
    let k_total = x1 + x2; // ≤ n, cannot overflow
    let lo = k_total.saturating_sub(n2);
    let hi = k_total.min(n1);
    if hi - lo >= EXACT_SUPPORT_LIMIT {
        return None;
    }
    if hi == lo {
        return Some(OneSided::NONE);
    }
    let (nf, kf, n1f) = (n as f64, k_total as f64, n1 as f64);
    // ln P(k+1) − ln P(k)
    let step = |k: f64| -> f64 {
        (kf - k).ln() + (n1f - k).ln() - (k + 1.0).ln() - (nf - kf - n1f + k + 1.0).ln()
    };
    // Mode of the hypergeometric, clamped into the support.
    let mode = (((n1f + 1.0) * (kf + 1.0) / (nf + 2.0)).floor() as u64).clamp(lo, hi);
    let len = usize::try_from(hi - lo + 1).ok()?;
    let mut log_p = vec![0.0_f64; len];
    let at = |k: u64| (k - lo) as usize;
    for k in mode..hi {
        log_p[at(k + 1)] = log_p[at(k)] + step(k as f64);
    }
    for k in (lo..mode).rev() {
        log_p[at(k)] = log_p[at(k + 1)] - step(k as f64);
    }
    // The mode has the largest term (0), so the exponentials neither overflow nor all vanish.
    let weights: Vec<f64> = log_p.iter().map(|l| l.exp()).collect();
    let total: f64 = weights.iter().sum();
    if !(total.is_finite() && total > 0.0) {
        return None;
    }
    let upper: f64 = weights[at(x1)..].iter().sum::<f64>() / total;
    let lower: f64 = weights[..=at(x1)].iter().sum::<f64>() / total;
    Some(OneSided {
        upper: upper.clamp(0.0, 1.0),
        lower: lower.clamp(0.0, 1.0),
    })
}

/// The pooled two-proportion z-test, one-sided both ways, with its statistic.
#[must_use]
pub fn z_test(x1: u64, n1: u64, x2: u64, n2: u64) -> (f64, OneSided) {
    if n1 == 0 || n2 == 0 {
        return (0.0, OneSided::NONE);
    }
    let (x1f, n1f, x2f, n2f) = (x1 as f64, n1 as f64, x2 as f64, n2 as f64);
    let pooled = (x1f + x2f) / (n1f + n2f);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1f + 1.0 / n2f)).sqrt();
    if !(se.is_finite() && se > 0.0) {
        // Both sides all-events or all-non-events: identical, no evidence either way.
        return (0.0, OneSided::NONE);
    }
    let z = (x1f / n1f - x2f / n2f) / se;
    (
        z,
        OneSided {
            upper: normal_sf(z),
            lower: normal_sf(-z),
        },
    )
}

/// Wilson score interval for `x/n` at normal quantile `z`.
#[must_use]
pub fn wilson(x: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (nf, p) = (n as f64, x as f64 / n as f64);
    let z2 = z * z;
    let denom = 1.0 + z2 / nf;
    let center = (p + z2 / (2.0 * nf)) / denom;
    let half = z / denom * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt();
    ((center - half).max(0.0), (center + half).min(1.0))
}

/// Newcombe's hybrid score interval (his method 10) for `x1/n1 − x2/n2` at two-sided
/// confidence `confidence`: built from the two Wilson intervals, so it stays inside [−1, 1] and
/// is sensible with zero counts, where the Wald interval collapses to a point.
#[must_use]
pub fn newcombe(x1: u64, n1: u64, x2: u64, n2: u64, confidence: f64) -> (f64, f64) {
    if n1 == 0 || n2 == 0 {
        return (-1.0, 1.0);
    }
    let z = normal_quantile(1.0 - (1.0 - confidence) / 2.0);
    let (p1, p2) = (x1 as f64 / n1 as f64, x2 as f64 / n2 as f64);
    let (l1, u1) = wilson(x1, n1, z);
    let (l2, u2) = wilson(x2, n2, z);
    let d = p1 - p2;
    let low = d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt();
    let high = d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt();
    (low.max(-1.0), high.min(1.0))
}

/// Holm-Bonferroni adjusted p-values, in the order given: the `i`-th smallest of `m` p-values
/// is multiplied by `m − i + 1`, made non-decreasing and capped at 1. Rejecting where the
/// adjusted value is below α controls the family-wise error rate at α.
#[must_use]
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    let clean = |p: f64| if p.is_nan() { 1.0 } else { p.clamp(0.0, 1.0) };
    order.sort_by(|&a, &b| clean(p_values[a]).total_cmp(&clean(p_values[b])));
    let mut adjusted = vec![1.0; m];
    let mut running = 0.0_f64;
    for (rank, &i) in order.iter().enumerate() {
        let factor = (m - rank) as f64;
        running = running.max((clean(p_values[i]) * factor).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn normal_tail_matches_tables() {
        assert!(close(normal_sf(0.0), 0.5, 1e-12));
        assert!(close(normal_sf(1.959_963_984_540_054), 0.025, 1e-9));
        assert!(close(normal_sf(-1.644_853_626_951_472), 0.95, 1e-9));
        // Far tail keeps relative precision (R: pnorm(-10) = 7.619853e-24).
        assert!(close(
            normal_sf(10.0) / 7.619_853_024_160_527e-24,
            1.0,
            1e-6
        ));
        assert_eq!(normal_sf(f64::NAN), 1.0);
        assert_eq!(normal_sf(f64::INFINITY), 0.0);
        assert!(close(normal_quantile(0.99), 2.326_347_874_040_841, 1e-6));
    }

    #[test]
    fn fisher_matches_known_tables() {
        // The tea-tasting table (3 1 / 1 3): one-sided p = 17/70 ≈ 0.2429.
        let p = fisher_exact(3, 4, 1, 4).expect("small table");
        assert!(close(p.upper, 17.0 / 70.0, 1e-12), "{p:?}");
        assert!(close(p.lower, 69.0 / 70.0, 1e-12), "{p:?}");
        // All 10 events on the canary's side: C(1000,10)/C(2000,10) = 0.000954732582670…
        let p = fisher_exact(10, 1000, 0, 1000).expect("small support");
        assert!(close(p.upper, 0.000_954_732_582_670_8, 1e-15), "{p:?}");
        assert_eq!(fisher_exact(0, 0, 0, 0), Some(OneSided::NONE));
        assert_eq!(fisher_exact(5, 4, 0, 4), None);
    }

    #[test]
    fn fisher_stays_exact_with_billions_of_trials() {
        // Ten events split 10/0 between two equal halves is 2^-10 however many trials there are.
        let p = fisher_exact(10, 5_000_000_000, 0, 5_000_000_000).expect("small support");
        assert!(close(p.upper, 1.0 / 1024.0, 1e-6), "{p:?}");
    }

    #[test]
    fn z_test_handles_degenerate_tables() {
        assert_eq!(z_test(0, 100, 0, 100).1, OneSided::NONE);
        assert_eq!(z_test(100, 100, 100, 100).1, OneSided::NONE);
        assert_eq!(z_test(1, 0, 0, 100).1, OneSided::NONE);
        let (z, p) = z_test(u64::MAX / 2, u64::MAX, u64::MAX / 2, u64::MAX);
        assert!(z.is_finite() && p.upper.is_finite());
    }

    #[test]
    fn newcombe_matches_the_published_example() {
        // Newcombe (1998), table II example (56/70 vs 48/80), method 10: 0.0524 to 0.3339.
        let (low, high) = newcombe(56, 70, 48, 80, 0.95);
        assert!(
            close(low, 0.0524, 5e-4) && close(high, 0.3339, 5e-4),
            "{low} {high}"
        );
        // Zero baseline: the interval is not a point.
        let (low, high) = newcombe(300, 10_000, 0, 10_000, 0.98);
        assert!(low > 0.02 && high < 0.04 && low < high, "{low} {high}");
    }

    #[test]
    fn holm_adjusts_in_place() {
        let adj = holm(&[0.01, 0.04, 0.03, 0.005]);
        // sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04→0.06
        let want = [0.03, 0.06, 0.06, 0.02];
        for (a, w) in adj.iter().zip(want) {
            assert!(close(*a, w, 1e-12), "{adj:?}");
        }
        assert!(holm(&[]).is_empty());
        assert_eq!(holm(&[f64::NAN]), vec![1.0]);
    }
}
