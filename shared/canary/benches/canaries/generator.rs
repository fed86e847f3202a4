//! The simulated canaries: per service a traffic level, an error level with pod-to-pod and
//! slice-to-slice variation beyond binomial noise, a log-normal latency with occasional tail
//! bursts, a traffic split, and a known outcome (healthy or a regression of a given size).
//!
//! Everything here is the generator's own: its distributions and ranges are chosen to look like
//! services, not taken from the judge (the judge's α, tolerances and minimum samples appear
//! nowhere in this file). Traffic is simulated in 10-second slices per pod and side; an
//! analysis adds up the slices its window covers, as `increase(…[window])` would.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Length of one simulated slice, in seconds.
pub const SLICE_SECONDS: u64 = 10;
/// Upper bounds of the latency histogram's finite buckets, in seconds: the Prometheus client
/// libraries' default buckets, which is what most services expose.
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A seeded source of draws (the distributions written out, so `rand` is the only dependency).
pub struct Dice(StdRng);

/// SplitMix64's finaliser: spreads a seed's bits before it seeds the RNG.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Dice {
    pub fn new(seed: u64) -> Self {
        Self(StdRng::seed_from_u64(mix(seed)))
    }

    /// Uniform in `(0, 1)`.
    pub fn unit(&mut self) -> f64 {
        loop {
            let u = self.0.random::<f64>();
            if u > 0.0 {
                return u;
            }
        }
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Log-uniform in `[lo, hi)`.
    pub fn log_between(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + (hi.ln() - lo.ln()) * self.unit()).exp()
    }

    pub fn int(&mut self, lo: u32, hi: u32) -> u32 {
        self.0.random_range(lo..=hi)
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Gamma(shape, 1) by Marsaglia and Tsang (boosted below shape 1).
    pub fn gamma(&mut self, shape: f64) -> f64 {
        if shape < 1.0 {
            let u = self.unit();
            return self.gamma(shape + 1.0) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.unit();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    /// Beta(a, b) from two gammas.
    pub fn beta(&mut self, a: f64, b: f64) -> f64 {
        let x = self.gamma(a);
        let y = self.gamma(b);
        if x + y > 0.0 { x / (x + y) } else { 0.0 }
    }

    /// Poisson(λ): Knuth's product below 30, a rounded normal above (accurate enough there
    /// for traffic counts).
    pub fn poisson(&mut self, lambda: f64) -> u64 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda < 30.0 {
            let limit = (-lambda).exp();
            let (mut k, mut p) = (0_u64, self.unit());
            while p > limit {
                k += 1;
                p *= self.unit();
            }
            return k;
        }
        let x = lambda + lambda.sqrt() * self.normal();
        x.round().max(0.0) as u64
    }

    /// Binomial(n, p): Bernoulli trials for small n, a Poisson for rare events, a rounded normal
    /// otherwise.
    pub fn binomial(&mut self, n: u64, p: f64) -> u64 {
        if n == 0 || p <= 0.0 {
            return 0;
        }
        if p >= 1.0 {
            return n;
        }
        if n <= 64 {
            return (0..n).filter(|_| self.chance(p)).count() as u64;
        }
        let mean = n as f64 * p;
        if mean < 20.0 {
            return self.poisson(mean).min(n);
        }
        let x = mean + (mean * (1.0 - p)).sqrt() * self.normal();
        (x.round().max(0.0) as u64).min(n)
    }
}

/// What the canary really is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Healthy,
    /// The canary's error ratio is this many percentage points above the baseline's.
    Errors(f64),
    /// The canary's p99 latency is this fraction above the baseline's (0.25 = +25 %).
    Latency(f64),
}

impl Kind {
    /// The mix of 10: three healthy, then one of each regression.
    pub const MIX: [Self; 10] = [
        Self::Healthy,
        Self::Healthy,
        Self::Healthy,
        Self::Errors(0.5),
        Self::Errors(1.0),
        Self::Errors(2.0),
        Self::Errors(5.0),
        Self::Latency(0.10),
        Self::Latency(0.25),
        Self::Latency(0.50),
    ];

    pub fn label(self) -> String {
        match self {
            Self::Healthy => "healthy".into(),
            Self::Errors(p) => format!("error ratio +{p} points"),
            Self::Latency(f) => format!("p99 latency +{:.0} %", f * 100.0),
        }
    }
}

/// One service and its canary's traffic.
#[derive(Debug, Clone)]
pub struct Service {
    /// Requests per second over both tracks.
    pub rate: f64,
    /// The canary's share of the traffic.
    pub share: f64,
    /// The mean error ratio of the service (0 for some).
    pub base_error: f64,
    /// Beta concentration of one pod's error ratio per slice: lower is burstier.
    pub concentration: f64,
    /// Gamma shape of the persistent pod-to-pod error multiplier: lower is more spread.
    pub pod_shape: f64,
    /// Whether the service was drawn from the noisy population.
    pub noisy: bool,
    pub canary_pods: u32,
    pub baseline_pods: u32,
    /// Median latency (seconds) and the log-normal σ.
    pub median: f64,
    pub sigma: f64,
    /// Chance that a side's slice has a tail burst.
    pub tail_chance: f64,
}

impl Service {
    fn draw(d: &mut Dice) -> Self {
        let noisy = d.chance(0.35);
        let base_error = if d.chance(0.2) {
            0.0
        } else {
            d.log_between(0.0003, 0.02)
        };
        Self {
            rate: d.log_between(0.2, 500.0),
            share: d.between(0.05, 0.5),
            base_error,
            concentration: if noisy {
                d.log_between(15.0, 150.0)
            } else {
                d.log_between(2_000.0, 50_000.0)
            },
            pod_shape: if noisy {
                d.between(3.0, 12.0)
            } else {
                d.between(40.0, 400.0)
            },
            noisy,
            canary_pods: d.int(1, 3),
            baseline_pods: d.int(2, 12),
            median: d.log_between(0.004, 0.2),
            sigma: d.between(0.25, 0.8),
            tail_chance: d.between(0.0, 0.12),
        }
    }

    /// Requests per analysis window of `seconds` the canary gets on average.
    pub fn canary_requests(&self, seconds: f64) -> f64 {
        self.rate * self.share * seconds
    }
}

/// One side's traffic in one slice: requests, errors and per-bucket latency counts (the last
/// entry is the `+Inf` bucket).
#[derive(Debug, Clone, Default)]
pub struct SideSlice {
    pub requests: u64,
    pub errors: u64,
    pub buckets: [u64; BUCKETS.len() + 1],
}

impl SideSlice {
    pub fn add(&mut self, other: &Self) {
        self.requests += other.requests;
        self.errors += other.errors;
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
    }
}

/// Both sides over one slice, in all and per pod (each side's pods in a fixed order).
#[derive(Debug, Clone, Default)]
pub struct Slice {
    pub canary: SideSlice,
    pub baseline: SideSlice,
    pub canary_pods: Vec<SideSlice>,
    pub baseline_pods: Vec<SideSlice>,
}

/// A canary with its known outcome and its simulated traffic.
pub struct Canary {
    pub kind: Kind,
    pub service: Service,
    /// For latency regressions: whether only the tail moved (median kept) or everything.
    pub tail_only: bool,
    pub slices: Vec<Slice>,
}

/// A pod: its persistent error multiplier and latency multiplier.
struct Pod {
    error_factor: f64,
    latency_factor: f64,
}

struct SideModel {
    pods: Vec<Pod>,
    /// Requests per second on this side.
    rate: f64,
    /// Added to each pod's error ratio (the regression).
    extra_error: f64,
    median: f64,
    sigma: f64,
}

/// z of the 99th percentile of the standard normal, to move a log-normal's p99 by a factor.
const Z99: f64 = 2.326_347_874;

impl Canary {
    /// The canary of `seed` with outcome `kind`, simulated for `seconds`.
    pub fn simulate(seed: u64, kind: Kind, seconds: u64) -> Self {
        let mut d = Dice::new(seed);
        let service = Service::draw(&mut d);
        let tail_only = d.chance(0.5);
        let pods = |d: &mut Dice, n: u32| -> Vec<Pod> {
            (0..n)
                .map(|_| Pod {
                    error_factor: d.gamma(service.pod_shape) / service.pod_shape,
                    latency_factor: (0.06 * d.normal()).exp(),
                })
                .collect()
        };
        let baseline = SideModel {
            pods: pods(&mut d, service.baseline_pods),
            rate: service.rate * (1.0 - service.share),
            extra_error: 0.0,
            median: service.median,
            sigma: service.sigma,
        };
        let (mut extra_error, mut median, mut sigma) = (0.0, service.median, service.sigma);
        match kind {
            Kind::Healthy => {}
            Kind::Errors(points) => extra_error = points / 100.0,
            Kind::Latency(f) if tail_only => sigma += (1.0 + f).ln() / Z99,
            Kind::Latency(f) => median *= 1.0 + f,
        }
        let canary = SideModel {
            pods: pods(&mut d, service.canary_pods),
            rate: service.rate * service.share,
            extra_error,
            median,
            sigma,
        };
        // Common-mode load and latency: a slow random walk both tracks share.
        let (mut load, mut slowness) = (0.0_f64, 0.0_f64);
        let slices = (0..seconds / SLICE_SECONDS)
            .map(|_| {
                load = (load + 0.05 * d.normal()).clamp(-0.5, 0.5);
                slowness = (slowness + 0.02 * d.normal()).clamp(-0.2, 0.2);
                let (canary, canary_pods) = side_slice(&mut d, &service, &canary, load, slowness);
                let (baseline, baseline_pods) =
                    side_slice(&mut d, &service, &baseline, load, slowness);
                Slice {
                    canary,
                    baseline,
                    canary_pods,
                    baseline_pods,
                }
            })
            .collect();
        Self {
            kind,
            service,
            tail_only,
            slices,
        }
    }
}

/// One side's slice, in all and per pod.
fn side_slice(
    d: &mut Dice,
    s: &Service,
    side: &SideModel,
    load: f64,
    slowness: f64,
) -> (SideSlice, Vec<SideSlice>) {
    let mut out = SideSlice::default();
    let mut pods = vec![SideSlice::default(); side.pods.len()];
    let per_pod = side.rate * load.exp() * SLICE_SECONDS as f64 / side.pods.len() as f64;
    let burst = d.chance(s.tail_chance).then(|| d.between(0.01, 0.05));
    for (pod, own) in side.pods.iter().zip(&mut pods) {
        let requests = d.poisson(per_pod);
        if requests == 0 {
            continue;
        }
        let mean = (s.base_error * pod.error_factor + side.extra_error).min(0.9);
        let ratio = if mean <= 0.0 {
            0.0
        } else {
            d.beta(mean * s.concentration, (1.0 - mean) * s.concentration)
        };
        let errors = d.binomial(requests, ratio);
        own.requests = requests;
        own.errors = errors;
        out.requests += requests;
        out.errors += errors;
        let log_median = (side.median * pod.latency_factor).ln() + slowness;
        for _ in 0..requests {
            let mut latency = (log_median + side.sigma * d.normal()).exp();
            if let Some(share) = burst
                && d.chance(share)
            {
                latency *= d.between(3.0, 10.0);
            }
            let bucket = BUCKETS
                .iter()
                .position(|&le| latency <= le)
                .unwrap_or(BUCKETS.len());
            out.buckets[bucket] += 1;
            own.buckets[bucket] += 1;
        }
    }
    (out, pods)
}
