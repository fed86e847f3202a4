//! Distributions as the judge receives them (raw samples, weighted points, Prometheus
//! histograms), their common weighted form, and the rank statistics on it: Mann-Whitney U with
//! the tie correction, the Hodges-Lehmann shift and its confidence interval, quantiles.

use crate::stats::{normal_quantile, normal_sf};
use serde::{Deserialize, Serialize};

/// Observations of one side of a `distribution` metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    /// Raw observations (every point of a range query). Non-finite values are ignored.
    Samples(Vec<f64>),
    /// Observations with multiplicities: what [`Distribution::bounded`] keeps of many samples.
    Weighted(Vec<WeightedValue>),
    /// A Prometheus histogram over the window.
    Histogram(Histogram),
}

/// A value seen `count` times.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightedValue {
    /// The value.
    pub value: f64,
    /// How many observations it stands for.
    pub count: u64,
}

/// A Prometheus histogram: the finite `le` buckets with their *cumulative* counts, and the
/// total (`le="+Inf"`, equal to `_count`) kept apart so the JSON form has no infinity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Histogram {
    /// Finite buckets, upper bounds strictly increasing (at most [`MAX_BUCKETS`]).
    #[schema(max_items = 512)]
    pub buckets: Vec<Bucket>,
    /// Observations in all buckets including `+Inf`.
    pub count: u64,
}

/// One cumulative bucket: observations `≤ le`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    /// Upper bound.
    pub le: f64,
    /// Observations at or below it.
    pub count: u64,
}

/// Most points a bounded summary (and one side of the Hodges-Lehmann pairs) keeps.
pub const MAX_POINTS: usize = 512;

/// Most finite buckets a histogram may have in a kept summary ([`Distribution::check`]).
pub const MAX_BUCKETS: usize = 512;

impl Distribution {
    /// A form of bounded size to keep with a release for later comparisons: histograms as they
    /// are, samples as at most [`MAX_POINTS`] weighted points (equal-weight groups of the
    /// sorted observations, each at its mean).
    #[must_use]
    pub fn bounded(&self) -> Self {
        match self {
            Self::Histogram(h) => Self::Histogram(h.clone()),
            Self::Samples(_) | Self::Weighted(_) => match Prepared::new(self) {
                Ok(p) => Self::Weighted(
                    compress(&p.points, MAX_POINTS)
                        .into_iter()
                        .map(|(value, count)| WeightedValue { value, count })
                        .collect(),
                ),
                Err(_) => Self::Weighted(Vec::new()),
            },
        }
    }

    /// Whether the data can be judged at all: a histogram's bounds finite and strictly
    /// increasing, and at most [`MAX_BUCKETS`] of them. Samples and weighted points are always
    /// usable (non-finite values are ignored).
    ///
    /// # Errors
    /// A sentence saying what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if let Self::Histogram(h) = self {
            if h.buckets.len() > MAX_BUCKETS {
                return Err(format!(
                    "has {} buckets; at most {MAX_BUCKETS}",
                    h.buckets.len()
                ));
            }
            Prepared::new(self)?;
        }
        Ok(())
    }
}

/// Per-bucket boundaries of a histogram, to check that two sides are comparable and to
/// interpolate quantiles.
pub(crate) type Layout = Vec<f64>;

/// Sorted distinct values with their counts; for a histogram one point per bucket (the bucket's
/// representative value) and the layout.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Prepared {
    pub points: Vec<(f64, u64)>,
    pub total: u64,
    pub layout: Option<Layout>,
}

impl Prepared {
    /// # Errors
    /// A sentence when a histogram's bounds are not finite and strictly increasing.
    pub fn new(d: &Distribution) -> Result<Self, String> {
        match d {
            Distribution::Samples(values) => Ok(Self::from_points(
                values.iter().filter(|v| v.is_finite()).map(|&v| (v, 1)),
            )),
            Distribution::Weighted(points) => Ok(Self::from_points(
                points
                    .iter()
                    .filter(|p| p.value.is_finite())
                    .map(|p| (p.value, p.count)),
            )),
            Distribution::Histogram(h) => Self::from_histogram(h),
        }
    }

    fn from_points(points: impl Iterator<Item = (f64, u64)>) -> Self {
        let mut all: Vec<(f64, u64)> = points.filter(|&(_, c)| c > 0).collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut merged: Vec<(f64, u64)> = Vec::with_capacity(all.len());
        for (v, c) in all {
            match merged.last_mut() {
                // `==` also merges -0.0 with 0.0, as ranks should.
                Some(last) if last.0 == v => last.1 = last.1.saturating_add(c),
                _ => merged.push((v, c)),
            }
        }
        let total = merged.iter().fold(0_u64, |t, p| t.saturating_add(p.1));
        Self {
            points: merged,
            total,
            layout: None,
        }
    }

    fn from_histogram(h: &Histogram) -> Result<Self, String> {
        let mut bounds = Vec::with_capacity(h.buckets.len());
        for (i, b) in h.buckets.iter().enumerate() {
            if !b.le.is_finite() {
                return Err(format!(
                    "bucket {i} has bound {}; the +Inf bucket is the histogram's count",
                    b.le
                ));
            }
            if bounds.last().is_some_and(|&last| b.le <= last) {
                return Err(format!("bucket bounds are not increasing at le={}", b.le));
            }
            bounds.push(b.le);
        }
        // Cumulative counts made monotone the way histogram_quantile does (a rate over a
        // window can dip by rounding), the total at least the last bucket.
        let mut points = Vec::with_capacity(bounds.len() + 1);
        let mut below = 0_u64;
        for (i, b) in h.buckets.iter().enumerate() {
            let cumulative = b.count.max(below);
            points.push((representative(&bounds, i), cumulative - below));
            below = cumulative;
        }
        let total = h.count.max(below);
        points.push((representative(&bounds, bounds.len()), total - below));
        Ok(Self {
            points,
            total,
            layout: Some(bounds),
        })
    }

    /// The `q` quantile: for histograms interpolated inside the bucket as Prometheus'
    /// `histogram_quantile` does (the lowest bucket starts at 0 when its bound is positive; the
    /// `+Inf` bucket answers the highest finite bound); for values the smallest value whose
    /// cumulative count reaches `q·total`. `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * self.total as f64;
        let mut cumulative = 0.0;
        for (i, &(value, count)) in self.points.iter().enumerate() {
            let before = cumulative;
            cumulative += count as f64;
            if cumulative >= rank && count > 0 {
                let Some(bounds) = &self.layout else {
                    return Some(value);
                };
                if i >= bounds.len() {
                    return bounds.last().copied().or(Some(0.0));
                }
                let upper = bounds[i];
                let lower = if i == 0 {
                    upper.min(0.0)
                } else {
                    bounds[i - 1]
                };
                let within = ((rank - before) / count as f64).clamp(0.0, 1.0);
                return Some(lower + (upper - lower) * within);
            }
        }
        self.points.last().map(|p| p.0)
    }
}

/// The value a bucket stands for in rank statistics and pair differences: its midpoint (the
/// first bucket from 0 when its bound is positive, else its bound; the `+Inf` bucket its lower
/// bound, the most that is known). Strictly increasing with the bucket index.
fn representative(bounds: &[f64], i: usize) -> f64 {
    match (i.checked_sub(1).map(|j| bounds[j]), bounds.get(i)) {
        (None, Some(&upper)) => {
            if upper > 0.0 {
                upper / 2.0
            } else {
                upper
            }
        }
        (Some(lower), Some(&upper)) => lower + (upper - lower) / 2.0,
        (Some(lower), None) => lower,
        (None, None) => 0.0,
    }
}

/// Groups sorted points into at most `max` groups of about equal weight (a point goes to the
/// group its cumulative weight before it falls in), each at its weighted mean, keeping the
/// total weight.
fn compress(points: &[(f64, u64)], max: usize) -> Vec<(f64, u64)> {
    if points.len() <= max || max == 0 {
        return points.to_vec();
    }
    let total: f64 = points.iter().map(|p| p.1 as f64).sum();
    let mut out: Vec<(f64, u64)> = Vec::with_capacity(max);
    let (mut sum, mut weight, mut weight_f, mut group) = (0.0_f64, 0_u64, 0.0_f64, 0_usize);
    let mut before = 0.0_f64;
    for &(v, c) in points {
        let g = ((before / total * max as f64) as usize).min(max - 1);
        if g != group && weight > 0 {
            out.push((sum / weight_f, weight));
            (sum, weight, weight_f) = (0.0, 0, 0.0);
        }
        group = g;
        sum += v * c as f64;
        weight = weight.saturating_add(c);
        weight_f += c as f64;
        before += c as f64;
    }
    if weight > 0 {
        out.push((sum / weight_f, weight));
    }
    out
}

/// Mann-Whitney U of canary against baseline, with the tie-corrected normal approximation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RankTest {
    /// U of the canary: pairs where the canary's value is larger, ties counting one half.
    pub u: f64,
    /// Standardised U (with the continuity correction toward the mean), 0 when all tied.
    pub z: f64,
    /// P-value against "the canary is not stochastically larger".
    pub p_upper: f64,
    /// P-value against "the canary is not stochastically smaller".
    pub p_lower: f64,
    /// Standard deviation of U under the null (tie-corrected).
    pub sd: f64,
}

/// U from the two sorted point lists in one merge, O(points).
pub(crate) fn mann_whitney(canary: &Prepared, baseline: &Prepared) -> RankTest {
    let (n, m) = (canary.total as f64, baseline.total as f64);
    let (mut i, mut j) = (0, 0);
    let (mut u, mut baseline_below, mut ties) = (0.0_f64, 0.0_f64, 0.0_f64);
    while i < canary.points.len() || j < baseline.points.len() {
        let cv = canary.points.get(i).map(|p| p.0);
        let bv = baseline.points.get(j).map(|p| p.0);
        let (a, b) = match (cv, bv) {
            (Some(c), Some(b)) if c == b => {
                i += 1;
                j += 1;
                (
                    canary.points[i - 1].1 as f64,
                    baseline.points[j - 1].1 as f64,
                )
            }
            (Some(c), Some(b)) if c < b => {
                i += 1;
                (canary.points[i - 1].1 as f64, 0.0)
            }
            (Some(_), None) => {
                i += 1;
                (canary.points[i - 1].1 as f64, 0.0)
            }
            _ => {
                j += 1;
                (0.0, baseline.points[j - 1].1 as f64)
            }
        };
        u += a * (baseline_below + b / 2.0);
        baseline_below += b;
        let t = a + b;
        ties += t * t * t - t;
    }
    let big_n = n + m;
    let mean = n * m / 2.0;
    let var = if big_n > 1.0 {
        n * m / 12.0 * ((big_n + 1.0) - ties / (big_n * (big_n - 1.0)))
    } else {
        0.0
    };
    let sd = var.max(0.0).sqrt();
    if !(sd.is_finite() && sd > 0.0) {
        return RankTest {
            u,
            z: 0.0,
            p_upper: 1.0,
            p_lower: 1.0,
            sd: 0.0,
        };
    }
    let z = (u - mean) / sd;
    RankTest {
        u,
        z,
        p_upper: normal_sf((u - mean - 0.5) / sd),
        p_lower: normal_sf(-(u - mean + 0.5) / sd),
        sd,
    }
}

/// Hodges-Lehmann estimate of the shift (canary − baseline) with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Shift {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

/// The weighted median of all pairwise differences, and the interval between the differences
/// of rank `C` and `nm − C` with `C = nm/2 − z·sd(U)` (the usual inversion of the rank test).
/// Each side is first reduced to at most [`MAX_POINTS`] weighted points, so the work is at most
/// `MAX_POINTS²` pairs whatever the counts (histograms have one point per bucket already).
pub(crate) fn hodges_lehmann(
    canary: &Prepared,
    baseline: &Prepared,
    sd_u: f64,
    confidence: f64,
) -> Option<Shift> {
    let a = compress(&canary.points, MAX_POINTS);
    let b = compress(&baseline.points, MAX_POINTS);
    let mut pairs: Vec<(f64, f64)> = Vec::with_capacity(a.len() * b.len());
    for &(x, wx) in &a {
        for &(y, wy) in &b {
            pairs.push((x - y, wx as f64 * wy as f64));
        }
    }
    pairs.retain(|p| p.1 > 0.0 && p.0.is_finite());
    if pairs.is_empty() {
        return None;
    }
    pairs.sort_by(|p, q| p.0.total_cmp(&q.0));
    let total: f64 = pairs.iter().map(|p| p.1).sum();
    let at = |target: f64| -> f64 {
        let mut cumulative = 0.0;
        for &(d, w) in &pairs {
            cumulative += w;
            if cumulative >= target {
                return d;
            }
        }
        pairs[pairs.len() - 1].0
    };
    let z = normal_quantile(1.0 - (1.0 - confidence) / 2.0);
    let c = (total / 2.0 - z * sd_u).max(0.0);
    Some(Shift {
        estimate: at(total / 2.0),
        low: at(c.max(f64::MIN_POSITIVE)),
        high: at((total - c).min(total)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(v: &[f64]) -> Prepared {
        Prepared::new(&Distribution::Samples(v.to_vec())).expect("samples")
    }

    #[test]
    fn mann_whitney_matches_a_hand_computed_example() {
        // canary 1,2,3 vs baseline 2,4: pairs where canary > baseline: (3,2)=1, ties (2,2)=.5
        let t = mann_whitney(&samples(&[1.0, 2.0, 3.0]), &samples(&[2.0, 4.0]));
        assert!((t.u - 1.5).abs() < 1e-12, "{t:?}");
    }

    #[test]
    fn histogram_buckets_become_counts_per_bucket() {
        let h = Histogram {
            buckets: vec![
                Bucket { le: 0.1, count: 5 },
                Bucket { le: 0.2, count: 4 }, // a dip: treated as 5
                Bucket { le: 0.5, count: 9 },
            ],
            count: 10,
        };
        let p = Prepared::new(&Distribution::Histogram(h)).expect("valid");
        let counts: Vec<u64> = p.points.iter().map(|x| x.1).collect();
        assert_eq!(counts, vec![5, 0, 4, 1]);
        assert_eq!(p.total, 10);
        // median: rank 5 lands at the top of the first bucket
        assert!((p.quantile(0.5).expect("some") - 0.1).abs() < 1e-12);
        // p99 in the +Inf bucket answers the highest finite bound
        assert_eq!(p.quantile(0.99), Some(0.5));
        let bad = Histogram {
            buckets: vec![Bucket { le: 0.2, count: 1 }, Bucket { le: 0.1, count: 2 }],
            count: 2,
        };
        assert!(Prepared::new(&Distribution::Histogram(bad)).is_err());
    }

    #[test]
    fn hodges_lehmann_finds_a_pure_shift() {
        let base: Vec<f64> = (0..200).map(|i| f64::from(i) / 10.0).collect();
        let canary: Vec<f64> = base.iter().map(|v| v + 3.0).collect();
        let (c, b) = (samples(&canary), samples(&base));
        let t = mann_whitney(&c, &b);
        let s = hodges_lehmann(&c, &b, t.sd, 0.98).expect("pairs");
        assert!((s.estimate - 3.0).abs() < 0.11, "{s:?}");
        // Uniform(0, 20) has sd 5.77: the 98 % interval is about ±1.35 around the shift.
        assert!(
            s.low > 1.4 && s.low < 2.0 && s.high > 4.0 && s.high < 4.6,
            "{s:?}"
        );
    }

    #[test]
    fn bounded_summary_keeps_the_total_and_few_points() {
        let many: Vec<f64> = (0..100_000).map(|i| f64::from(i % 9_973)).collect();
        let Distribution::Weighted(points) = Distribution::Samples(many).bounded() else {
            panic!("samples summarise to weighted points");
        };
        assert!(points.len() <= MAX_POINTS && points.len() > MAX_POINTS / 2);
        assert_eq!(points.iter().map(|p| p.count).sum::<u64>(), 100_000);
    }
}
