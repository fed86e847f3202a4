//! The attribution model: a conditional logit over an alert's candidates and the answer "no
//! recorded change caused it", its fitted weights, and the fitting itself.
//!
//! For an alert with candidates `1..n` described by feature vectors `x_i`
//! ([`crate::attribution::Features`]), candidate `i` scores `s_i = w · x_i`, the null answer
//! scores `b`, and
//!
//! ```text
//! P(i caused the alert) = exp(s_i) / (exp(b) + Σ_j exp(s_j))
//! P(no recorded change)  = exp(b)   / (exp(b) + Σ_j exp(s_j))
//! ```
//!
//! so the answers of one alert sum to 1. [`fit`] finds `w` and `b` by maximum likelihood with a
//! small L2 penalty (Newton's method: the log-likelihood is concave), and [`calibrate`] then
//! finds the temperature `T` that minimises the log loss on a separate split; the shipped
//! [`WEIGHTS`] are `(w, b) / T`.

use crate::attribution::FEATURES;

/// The features' names, in [`crate::attribution::Features::to_array`] order.
pub const FEATURE_NAMES: [&str; FEATURES] = [
    "recency",
    "recency_squared",
    "hops",
    "dependency",
    "unchanged",
    "image",
    "operational_keys",
    "cosmetic_keys",
    "other_keys",
    "resources",
    "replicas",
    "secret",
    "failed",
    "rolled_back",
    "in_progress",
    "removed",
    "rolling_at_alert",
    "history",
    "key_history",
    "superseded",
    "co_alerts",
    "canary_failed",
    "canary_passed",
    "onset_near",
    "onset_lead",
    "after_onset",
    "onset_in_rollout",
    "onset_found",
    "service_moved_near",
    "service_moved_before",
    "service_steady",
    "moved_below_first",
];

/// A model's weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    /// Per feature.
    pub w: [f64; FEATURES],
    /// The null answer's score.
    pub null: f64,
}

/// The shipped weights: fitted by `BENCH_FIT=1 BENCH_INCIDENTS=1040 cargo bench -p
/// deploygraph-api --bench attribution` on 2,132 alerts of the development seeds 0..80 of both
/// of the benchmark's generators (A: 1,142 over its 13 kinds, B: 990 over its 12; L2 1.0; the
/// per-hop weight held at or below zero, where it binds), their canary analyses, their
/// alerts' metric series and their services' health series included (the benchmark's models of
/// what each alert's rule and each service's health metric measured, read by the same detector
/// as Prometheus' answers), temperature calibrated (T = 1.003) on 2,147 alerts of seeds
/// 500,000..500,080; calibrated log loss 0.581 on that split (0.650 with the previous weights,
/// which did not read the services' health). Features that never varied there (`removed`) stay
/// at 0.
#[allow(clippy::approx_constant)] // Fitted; one may fall near a constant of mathematics.
pub const WEIGHTS: Weights = Weights {
    w: [
        1.3721,  // recency
        -0.2759, // recency_squared
        0.0000,  // hops
        0.4921,  // dependency
        -5.0533, // unchanged
        -1.0268, // image
        0.8758,  // operational_keys
        -1.6824, // cosmetic_keys
        0.0504,  // other_keys
        -0.4227, // resources
        -1.3828, // replicas
        0.3200,  // secret
        1.1239,  // failed
        0.4736,  // rolled_back
        1.8187,  // in_progress
        0.0000,  // removed
        -0.7864, // rolling_at_alert
        0.3858,  // history
        0.1449,  // key_history
        0.1488,  // superseded
        4.0370,  // co_alerts
        2.4494,  // canary_failed
        -1.1122, // canary_passed
        2.0872,  // onset_near
        -0.2903, // onset_lead
        -0.9595, // after_onset
        -0.0380, // onset_in_rollout
        -0.5791, // onset_found
        2.2456,  // service_moved_near
        -0.4914, // service_moved_before
        -0.3970, // service_steady
        -1.0376, // moved_below_first
    ],
    null: -1.1681,
};

impl Weights {
    /// Every weight and the null's divided by `t`.
    pub fn tempered(&self, t: f64) -> Self {
        let mut w = self.w;
        for x in &mut w {
            *x /= t;
        }
        Self {
            w,
            null: self.null / t,
        }
    }

    /// Candidate `row`'s score.
    pub fn score(&self, row: &[f64; FEATURES]) -> f64 {
        self.w.iter().zip(row).map(|(w, x)| w * x).sum()
    }

    /// The probability of each candidate and of the null answer.
    pub fn probabilities(&self, rows: &[[f64; FEATURES]]) -> (Vec<f64>, f64) {
        let scores: Vec<f64> = rows.iter().map(|r| self.score(r)).collect();
        let max = scores.iter().copied().fold(self.null, f64::max);
        let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let null = (self.null - max).exp();
        let total = null + exps.iter().sum::<f64>();
        (exps.iter().map(|e| e / total).collect(), null / total)
    }
}

/// One labelled alert: its candidates' features and which of them caused it (`None`: no
/// recorded change did).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Per candidate.
    pub rows: Vec<[f64; FEATURES]>,
    /// The cause's index in `rows`.
    pub cause: Option<usize>,
}

const PARAMS: usize = FEATURES + 1;

fn from_params(p: &[f64; PARAMS]) -> Weights {
    let mut w = [0.0; FEATURES];
    w.copy_from_slice(&p[..FEATURES]);
    Weights {
        w,
        null: p[FEATURES],
    }
}

/// The extended feature vector of answer `j` of a sample (`rows.len()` is the null answer).
fn extended(sample: &Sample, j: usize) -> [f64; PARAMS] {
    let mut x = [0.0; PARAMS];
    if j < sample.rows.len() {
        x[..FEATURES].copy_from_slice(&sample.rows[j]);
    } else {
        x[FEATURES] = 1.0;
    }
    x
}

/// Mean log loss of `weights` on `samples` (lower is better).
pub fn log_loss(weights: &Weights, samples: &[Sample]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let total: f64 = samples
        .iter()
        .map(|s| {
            let (p, null) = weights.probabilities(&s.rows);
            let q = s.cause.map_or(null, |i| p[i]);
            -q.max(1e-12).ln()
        })
        .sum();
    total / samples.len() as f64
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting; `None` when singular.
fn solve(mut a: [[f64; PARAMS]; PARAMS], mut b: [f64; PARAMS]) -> Option<[f64; PARAMS]> {
    for col in 0..PARAMS {
        let pivot = (col..PARAMS).max_by(|i, j| a[*i][col].abs().total_cmp(&a[*j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..PARAMS {
            let f = a[row][col] / a[col][col];
            if f == 0.0 {
                continue;
            }
            let pivot_row = a[col];
            for (k, p) in pivot_row.iter().enumerate().skip(col) {
                a[row][k] -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; PARAMS];
    for row in (0..PARAMS).rev() {
        let tail: f64 = (row + 1..PARAMS).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - tail) / a[row][row];
    }
    Some(x)
}

/// Fits the weights by maximum likelihood with an L2 penalty `l2` (on every weight but the
/// null's), by Newton's method from zero.
pub fn fit(samples: &[Sample], l2: f64) -> Weights {
    fit_frozen(samples, l2, &[false; FEATURES])
}

/// [`fit`] with the weights of `non_positive` features kept at or below zero: a weight that
/// the unconstrained fit makes positive is held at zero and the others refitted (the
/// log-likelihood is concave, so this active-set pass finds the constrained optimum when at
/// most a few constraints bind). Used for the per-hop decay: a further hop never makes a
/// change more likely to be the cause.
pub fn fit_non_positive(samples: &[Sample], l2: f64, non_positive: &[usize]) -> Weights {
    let mut frozen = [false; FEATURES];
    loop {
        let fitted = fit_frozen(samples, l2, &frozen);
        let violated: Vec<usize> = non_positive
            .iter()
            .copied()
            .filter(|k| !frozen[*k] && fitted.w[*k] > 0.0)
            .collect();
        if violated.is_empty() {
            return fitted;
        }
        for k in violated {
            frozen[k] = true;
        }
    }
}

/// [`fit`] with the `frozen` features' weights held at zero.
fn fit_frozen(samples: &[Sample], l2: f64, frozen: &[bool; FEATURES]) -> Weights {
    let mut theta = [0.0; PARAMS];
    let objective = |theta: &[f64; PARAMS]| {
        let w = from_params(theta);
        let penalty: f64 = theta[..FEATURES].iter().map(|t| t * t).sum::<f64>() * l2 / 2.0;
        log_loss(&w, samples) * samples.len() as f64 + penalty
    };
    let mut current = objective(&theta);
    for _ in 0..100 {
        let w = from_params(&theta);
        let mut grad = [0.0; PARAMS];
        let mut hess = [[0.0; PARAMS]; PARAMS];
        for s in samples {
            let (p, null) = w.probabilities(&s.rows);
            let answers = s.rows.len() + 1;
            let prob = |j: usize| if j < s.rows.len() { p[j] } else { null };
            let mut mean = [0.0; PARAMS];
            for j in 0..answers {
                let x = extended(s, j);
                for k in 0..PARAMS {
                    mean[k] += prob(j) * x[k];
                }
            }
            let truth = extended(s, s.cause.unwrap_or(s.rows.len()));
            for k in 0..PARAMS {
                // Gradient of the negative log-likelihood.
                grad[k] += mean[k] - truth[k];
            }
            for j in 0..answers {
                let x = extended(s, j);
                let pj = prob(j);
                for a in 0..PARAMS {
                    for b in 0..PARAMS {
                        hess[a][b] += pj * (x[a] - mean[a]) * (x[b] - mean[b]);
                    }
                }
            }
        }
        for k in 0..FEATURES {
            grad[k] += l2 * theta[k];
            hess[k][k] += l2;
        }
        // A tiny ridge keeps features that never vary from making the system singular.
        for (k, row) in hess.iter_mut().enumerate() {
            row[k] += 1e-9;
        }
        // A frozen weight neither moves nor moves the others.
        for k in (0..FEATURES).filter(|k| frozen[*k]) {
            grad[k] = 0.0;
            for row in &mut hess {
                row[k] = 0.0;
            }
            hess[k] = [0.0; PARAMS];
            hess[k][k] = 1.0;
        }
        let Some(step) = solve(hess, grad) else {
            break;
        };
        // Backtracking: Newton's step, halved until the objective does not increase.
        let mut scale = 1.0;
        let mut improved = false;
        for _ in 0..30 {
            let mut next = theta;
            for k in 0..PARAMS {
                next[k] -= scale * step[k];
            }
            let value = objective(&next);
            if value <= current {
                let gain = current - value;
                theta = next;
                current = value;
                improved = gain > 1e-9;
                break;
            }
            scale /= 2.0;
        }
        if !improved {
            break;
        }
    }
    from_params(&theta)
}

/// The temperature in `[0.25, 4]` that minimises the log loss of `weights` on `samples`
/// (a golden-section search on `ln T`).
pub fn calibrate(weights: &Weights, samples: &[Sample]) -> f64 {
    let loss = |ln_t: f64| log_loss(&weights.tempered(ln_t.exp()), samples);
    let (mut lo, mut hi) = (0.25f64.ln(), 4.0f64.ln());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..60 {
        let a = hi - g * (hi - lo);
        let b = lo + g * (hi - lo);
        if loss(a) < loss(b) {
            hi = b;
        } else {
            lo = a;
        }
    }
    ((lo + hi) / 2.0).exp()
}

/// Rust source for `weights`, to paste over [`WEIGHTS`].
pub fn to_source(weights: &Weights) -> String {
    let mut out = String::from(
        "#[allow(clippy::approx_constant)] // Fitted; one may fall near a constant of mathematics.\npub const WEIGHTS: Weights = Weights {\n    w: [\n",
    );
    for (name, w) in FEATURE_NAMES.iter().zip(weights.w) {
        out.push_str(&format!("        {w:.4}, // {name}\n"));
    }
    out.push_str(&format!("    ],\n    null: {:.4},\n}};\n", weights.null));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A feature's index by name.
    fn at(name: &str) -> usize {
        FEATURE_NAMES
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("no feature {name}"))
    }

    /// A deterministic generator of uniform numbers in `[0, 1)` (SplitMix64).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Samples drawn from the model with `truth`: candidates with random features, the cause
    /// drawn from the model's own probabilities.
    fn draw(truth: &Weights, n: usize, seed: u64) -> Vec<Sample> {
        let mut rng = Rng(seed);
        (0..n)
            .map(|_| {
                let count = 1 + (rng.next() * 6.0) as usize;
                let rows: Vec<[f64; FEATURES]> = (0..count)
                    .map(|_| {
                        let mut r = [0.0; FEATURES];
                        r[at("recency")] = rng.next() * 5.0;
                        r[at("hops")] = (rng.next() * 4.0).floor();
                        r[at("unchanged")] = f64::from(u8::from(rng.next() < 0.3));
                        r[at("image")] = f64::from(u8::from(rng.next() < 0.5));
                        r[at("failed")] = f64::from(u8::from(rng.next() < 0.2));
                        r
                    })
                    .collect();
                let (p, _) = truth.probabilities(&rows);
                let mut u = rng.next();
                let mut cause = None;
                for (i, pi) in p.iter().enumerate() {
                    if u < *pi {
                        cause = Some(i);
                        break;
                    }
                    u -= pi;
                }
                Sample { rows, cause }
            })
            .collect()
    }

    fn truth() -> Weights {
        let mut w = [0.0; FEATURES];
        w[at("recency")] = -0.8;
        w[at("hops")] = -0.7;
        w[at("unchanged")] = -2.5;
        w[at("image")] = 1.0;
        w[at("failed")] = 1.5;
        Weights { w, null: -0.5 }
    }

    #[test]
    fn probabilities_sum_to_one_with_the_null() {
        let (p, null) = truth().probabilities(&[[0.0; FEATURES], [1.0; FEATURES]]);
        assert!((p.iter().sum::<f64>() + null - 1.0).abs() < 1e-12);
        let (none, null) = truth().probabilities(&[]);
        assert!(none.is_empty());
        assert!((null - 1.0).abs() < 1e-12);
    }

    #[test]
    fn fitting_recovers_the_weights_that_generated_the_data() {
        let truth = truth();
        let samples = draw(&truth, 6000, 7);
        let fitted = fit(&samples, 1e-3);
        for k in ["recency", "hops", "unchanged", "image", "failed"].map(at) {
            assert!(
                (fitted.w[k] - truth.w[k]).abs() < 0.25,
                "{}: {} vs {}",
                FEATURE_NAMES[k],
                fitted.w[k],
                truth.w[k]
            );
        }
        assert!((fitted.null - truth.null).abs() < 0.25, "{}", fitted.null);
        assert!(log_loss(&fitted, &samples) <= log_loss(&truth, &samples) + 1e-6);
    }

    #[test]
    fn a_non_positive_constraint_binds_only_when_the_data_disagree() {
        // The truth's hop weight is negative: the constraint does not bind.
        let samples = draw(&truth(), 3000, 5);
        let free = fit(&samples, 1e-3);
        let constrained = fit_non_positive(&samples, 1e-3, &[at("hops")]);
        assert_eq!(free, constrained);
        // A truth where further hops are more likely: held at zero, the rest refitted.
        let mut rising = truth();
        rising.w[at("hops")] = 0.6;
        let samples = draw(&rising, 3000, 6);
        let constrained = fit_non_positive(&samples, 1e-3, &[at("hops")]);
        assert_eq!(constrained.w[at("hops")], 0.0);
        assert!(log_loss(&constrained, &samples) > log_loss(&fit(&samples, 1e-3), &samples));
        assert!(
            (constrained.w[at("unchanged")] - rising.w[at("unchanged")]).abs() < 0.5,
            "{}",
            constrained.w[at("unchanged")]
        );
    }

    #[test]
    fn calibration_undoes_a_temperature() {
        let truth = truth();
        let samples = draw(&truth, 4000, 11);
        let overconfident = truth.tempered(0.5);
        let t = calibrate(&overconfident, &samples);
        assert!((t - 2.0).abs() < 0.3, "{t}");
        let calibrated = overconfident.tempered(t);
        assert!(log_loss(&calibrated, &samples) < log_loss(&overconfident, &samples));
    }

    #[test]
    fn the_source_names_every_feature() {
        let source = to_source(&WEIGHTS);
        for name in FEATURE_NAMES {
            assert!(source.contains(name), "{name}");
        }
    }
}
