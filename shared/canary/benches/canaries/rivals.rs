//! The two rules deploygraph's judge is compared with, run on the same slices:
//!
//! - **Flagger's static thresholds** (fluxcd/flagger, `pkg/controller/scheduler_metrics.go`
//!   and its docs' `analysis` block): every `interval` one check of the canary alone over the
//!   metric interval — the builtin `request-success-rate` must be ≥ `thresholdRange.min` (99 %)
//!   and `request-duration` (the p99 from the histogram, in ms) ≤ `thresholdRange.max`
//!   (500 ms); a query with no values ("no values found … probably not receiving traffic")
//!   halts advancement like a failed threshold. Each failed check adds one to `failedChecks`
//!   (never reset during the analysis); at `threshold` (5) the canary is rolled back. Each
//!   passed check advances the weight by `stepWeight`; the canary is promoted after
//!   `maxWeight / stepWeight` passed checks (10 with 5 % steps up to 50 %).
//! - **A Kayenta-style rank test** (NetflixACAJudge with the MannWhitneyClassifier): each
//!   metric as one value per 10-second step from the canary's start to the analysis (steps
//!   without requests are NaN and removed, Kayenta's default `nanStrategy`); Mann-Whitney with
//!   a Hodges-Lehmann shift and its 98 % interval; `High` when the interval's lower bound
//!   exceeds 0.25·|shift| (the classifier's tolerance) and the mean ratio canary/baseline is at
//!   least `allowedIncrease` (1.0, its default); `Low` likewise downwards, which for metrics
//!   whose bad direction is `increase` counts as a pass; `Nodata` when a side has no values.
//!   Score = Pass ÷ (Pass + High + Low) × 100, 0 when the critical metric (error ratio) is High
//!   or when half the metrics or more have no data. As a Spinnaker canary stage runs it: an
//!   analysis scoring below the marginal threshold (75) fails the canary at once; at the end the
//!   last score must reach the pass threshold (95), else it fails. Analyses start after one
//!   window of warm-up, as the deploygraph rule's first pass can.

use crate::generator::{BUCKETS, SLICE_SECONDS, SideSlice, Slice};
use deploygraph_canary::stats::normal_quantile;

/// What a rule decided, and when (seconds after the canary started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    Pass(u64),
    Fail(u64),
    Inconclusive(u64),
}

impl Final {
    pub fn at(self) -> u64 {
        match self {
            Self::Pass(t) | Self::Fail(t) | Self::Inconclusive(t) => t,
        }
    }
}

/// When analyses run: every `interval` seconds from 0, the window they look back over, the
/// deadline.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub interval: u64,
    pub window: u64,
    pub max_duration: u64,
}

impl Schedule {
    /// Start times of the analyses, with whether each is the last (the next would start past
    /// the deadline).
    pub fn analyses(self) -> impl Iterator<Item = (u32, u64)> {
        (1_u32..)
            .map(move |n| (n, u64::from(n - 1) * self.interval))
            .take_while(move |&(_, t)| t <= self.max_duration)
    }

    /// The slices a window ending at `t` covers, added up per side.
    pub fn window_at(self, slices: &[Slice], t: u64) -> Slice {
        let from = t.saturating_sub(self.window) / SLICE_SECONDS;
        let to = (t / SLICE_SECONDS).min(slices.len() as u64);
        let mut sum = Slice::default();
        for s in &slices[from as usize..to as usize] {
            sum.canary.add(&s.canary);
            sum.baseline.add(&s.baseline);
            for (units, pods) in [
                (&mut sum.canary_pods, &s.canary_pods),
                (&mut sum.baseline_pods, &s.baseline_pods),
            ] {
                units.resize(pods.len(), SideSlice::default());
                for (u, p) in units.iter_mut().zip(pods) {
                    u.add(p);
                }
            }
        }
        sum
    }
}

/// `histogram_quantile` as Prometheus computes it over per-bucket counts (`+Inf` last): linear
/// inside the bucket, from 0 in the first, the highest finite bound in `+Inf`.
pub fn histogram_quantile(q: f64, buckets: &[u64]) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0.0;
    for (i, &c) in buckets.iter().enumerate() {
        let upto = below + c as f64;
        if upto >= rank && c > 0 {
            if i >= BUCKETS.len() {
                return Some(BUCKETS[BUCKETS.len() - 1]);
            }
            let lower = if i == 0 { 0.0 } else { BUCKETS[i - 1] };
            return Some(lower + (BUCKETS[i] - lower) * (rank - below) / c as f64);
        }
        below = upto;
    }
    Some(BUCKETS[BUCKETS.len() - 1])
}

/// Flagger's settings.
pub struct Flagger {
    pub min_success_percent: f64,
    pub max_p99_ms: f64,
    pub threshold: u32,
    pub promote_after: u32,
}

impl Default for Flagger {
    fn default() -> Self {
        Self {
            min_success_percent: 99.0,
            max_p99_ms: 500.0,
            threshold: 5,
            promote_after: 10,
        }
    }
}

impl Flagger {
    /// One check of the canary's side over a metric interval.
    fn check(&self, canary: &SideSlice) -> bool {
        if canary.requests == 0 {
            return false; // "no values found": halts advancement, counted as a failed check
        }
        let success = 100.0 * (1.0 - canary.errors as f64 / canary.requests as f64);
        let p99_ms = histogram_quantile(0.99, &canary.buckets).unwrap_or(0.0) * 1000.0;
        success >= self.min_success_percent && p99_ms <= self.max_p99_ms
    }

    /// The checks from one interval after the start (Flagger shifts traffic, then checks on
    /// its next tick), over the same windows as the other rules.
    pub fn run(&self, schedule: Schedule, slices: &[Slice]) -> Final {
        let (mut failed, mut passed) = (0, 0);
        let mut last_t = 0;
        for (_, t) in schedule.analyses().filter(|&(_, t)| t > 0) {
            last_t = t;
            if self.check(&schedule.window_at(slices, t).canary) {
                passed += 1;
                if passed >= self.promote_after {
                    return Final::Pass(t);
                }
            } else {
                failed += 1;
                if failed >= self.threshold {
                    return Final::Fail(t);
                }
            }
        }
        Final::Inconclusive(last_t)
    }
}

/// Kayenta-style settings.
pub struct Kayenta {
    pub confidence: f64,
    pub tolerance: f64,
    pub allowed_increase: f64,
    pub pass: f64,
    pub marginal: f64,
}

impl Default for Kayenta {
    fn default() -> Self {
        Self {
            confidence: 0.98,
            tolerance: 0.25,
            allowed_increase: 1.0,
            pass: 95.0,
            marginal: 75.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Pass,
    High,
    Low,
    Nodata,
}

impl Kayenta {
    /// The score of one analysis over the steps `[0, t)`.
    fn score(&self, slices: &[Slice], t: u64) -> f64 {
        let to = ((t / SLICE_SECONDS) as usize).min(slices.len());
        let steps = &slices[..to];
        let values = |f: &dyn Fn(&SideSlice) -> Option<f64>, canary: bool| -> Vec<f64> {
            steps
                .iter()
                .filter_map(|s| f(if canary { &s.canary } else { &s.baseline }))
                .collect()
        };
        let error_ratio = |s: &SideSlice| -> Option<f64> {
            (s.requests > 0).then(|| s.errors as f64 / s.requests as f64)
        };
        let p99 = |s: &SideSlice| histogram_quantile(0.99, &s.buckets);
        let errors = self.classify(&values(&error_ratio, true), &values(&error_ratio, false));
        let latency = self.classify(&values(&p99, true), &values(&p99, false));
        let classes = [errors, latency];
        let nodata = classes.iter().filter(|&&c| c == Class::Nodata).count();
        if errors == Class::High || nodata * 2 >= classes.len() {
            return 0.0;
        }
        // Direction `increase`: Low is not a failure.
        let judged = classes.iter().filter(|&&c| c != Class::Nodata).count();
        let passed = classes
            .iter()
            .filter(|&&c| matches!(c, Class::Pass | Class::Low))
            .count();
        100.0 * passed as f64 / judged as f64
    }

    fn classify(&self, canary: &[f64], baseline: &[f64]) -> Class {
        if canary.is_empty() || baseline.is_empty() {
            return Class::Nodata;
        }
        let (estimate, low, high) = hodges_lehmann(canary, baseline, self.confidence);
        let bound = self.tolerance * estimate.abs();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let ratio = if mean(baseline) > 0.0 {
            mean(canary) / mean(baseline)
        } else if mean(canary) > 0.0 {
            f64::INFINITY
        } else {
            1.0
        };
        if low > bound && ratio >= self.allowed_increase {
            Class::High
        } else if high < -bound {
            Class::Low
        } else {
            Class::Pass
        }
    }

    pub fn run(&self, schedule: Schedule, slices: &[Slice]) -> Final {
        let mut last = (0, 0.0);
        for (_, t) in schedule.analyses().filter(|&(_, t)| t >= schedule.window) {
            let score = self.score(slices, t);
            if score < self.marginal {
                return Final::Fail(t);
            }
            last = (t, score);
        }
        if last.1 >= self.pass {
            Final::Pass(last.0)
        } else {
            Final::Fail(last.0)
        }
    }
}

/// Hodges-Lehmann shift (canary − baseline) with its interval from the normal approximation of
/// the rank-sum distribution, as R's `wilcox.test(conf.int = TRUE)` gives for large samples.
fn hodges_lehmann(canary: &[f64], baseline: &[f64], confidence: f64) -> (f64, f64, f64) {
    let mut diffs: Vec<f64> = canary
        .iter()
        .flat_map(|c| baseline.iter().map(move |b| c - b))
        .collect();
    diffs.sort_by(f64::total_cmp);
    let (n, m) = (canary.len() as f64, baseline.len() as f64);
    let k = diffs.len();
    let estimate = if k % 2 == 1 {
        diffs[k / 2]
    } else {
        (diffs[k / 2 - 1] + diffs[k / 2]) / 2.0
    };
    let z = normal_quantile(1.0 - (1.0 - confidence) / 2.0);
    let c = (n * m / 2.0 - z * (n * m * (n + m + 1.0) / 12.0).sqrt()).floor();
    let c = if c < 0.0 { 0 } else { c as usize };
    if c >= k {
        return (estimate, f64::NEG_INFINITY, f64::INFINITY);
    }
    (estimate, diffs[c], diffs[k - 1 - c])
}
