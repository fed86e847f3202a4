//! The generator's randomness: one seeded `StdRng` per world and the few distributions it
//! draws from (uniform, log-uniform, log-logistic, Weibull, Poisson, weighted choice), written
//! out here so the locked `rand` is the only dependency.

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// A seeded source of draws.
pub struct Dice(StdRng);

/// SplitMix64's finaliser: spreads a seed's bits before it seeds the RNG, and names
/// fingerprints.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Dice {
    /// The dice of one world.
    pub fn new(seed: u64) -> Self {
        Self(StdRng::seed_from_u64(mix(seed)))
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in `[lo, hi)`.
    pub fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in `lo..=hi`.
    pub fn int(&mut self, lo: usize, hi: usize) -> usize {
        if hi <= lo {
            lo
        } else {
            self.0.random_range(lo..=hi)
        }
    }

    /// Uniform index below `n` (`n` > 0).
    pub fn index(&mut self, n: usize) -> usize {
        self.0.random_range(0..n.max(1))
    }

    /// Log-uniform in `[lo, hi)`: as likely to be in `[1, 2)` as in `[10, 20)`.
    pub fn log_between(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + (hi.ln() - lo.ln()) * self.unit()).exp()
    }

    /// Log-logistic with this median and shape: a body around the median and a long right
    /// tail (the lower the shape, the longer), as delays between cause and symptom have.
    pub fn log_logistic(&mut self, median: f64, shape: f64) -> f64 {
        let u = self.unit().clamp(1e-9, 1.0 - 1e-9);
        median * (u / (1.0 - u)).powf(1.0 / shape)
    }

    /// Weibull with this scale and shape (shape > 1: wear-out, as leaks fill a limit).
    pub fn weibull(&mut self, scale: f64, shape: f64) -> f64 {
        let u = self.unit().clamp(1e-12, 1.0 - 1e-12);
        scale * (-(1.0 - u).ln()).powf(1.0 / shape)
    }

    /// Poisson with mean `lambda` (Knuth's product of uniforms; the means here are small).
    pub fn poisson(&mut self, lambda: f64) -> usize {
        if lambda <= 0.0 {
            return 0;
        }
        let limit = (-lambda.min(60.0)).exp();
        let mut k = 0;
        let mut p = self.unit();
        while p > limit {
            k += 1;
            p *= self.unit();
        }
        k
    }

    /// One of `items`, each with its weight (a zero-weight item is never chosen unless all are).
    pub fn weighted<T: Copy>(&mut self, items: &[(T, f64)]) -> T {
        let total: f64 = items.iter().map(|(_, w)| w.max(0.0)).sum();
        if total <= 0.0 {
            return items[self.index(items.len())].0;
        }
        let mut x = self.unit() * total;
        for (item, w) in items {
            let w = w.max(0.0);
            if x < w {
                return *item;
            }
            x -= w;
        }
        items[items.len() - 1].0
    }

    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.index(items.len())]
    }

    /// Shuffles in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        items.shuffle(&mut self.0);
    }

    /// A fresh 64-bit value (commits, tokens).
    pub fn word(&mut self) -> u64 {
        self.0.random::<u64>()
    }

    /// A duration of `minutes` (fractional), to the second.
    pub fn minutes(minutes: f64) -> Duration {
        Duration::seconds((minutes * 60.0).round() as i64)
    }

    /// Uniform duration in `[lo, hi)` minutes, to the second.
    pub fn span(&mut self, lo: f64, hi: f64) -> Duration {
        Self::minutes(self.between(lo, hi))
    }

    /// Uniform instant in `[from, to)`, to the second (`from` when the range is empty).
    pub fn instant(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) -> DateTime<Utc> {
        let secs = (to - from).num_seconds();
        if secs <= 1 {
            from
        } else {
            from + Duration::seconds(self.0.random_range(0..secs))
        }
    }
}
