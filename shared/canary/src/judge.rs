//! The judge: each metric of a template, canary against baseline, then one verdict.

use crate::distribution::{Distribution, Prepared, hodges_lehmann, mann_whitney};
use crate::inputs::{Baseline, BaselineKind, Counts, Inputs, MetricData, Units};
use crate::stats::{self, OneSided};
use crate::template::{Direction, Metric, MetricSpec};
use crate::units::{self as pods, Dispersion};
use crate::verdict::{Effect, Interval, MetricEvidence, Outcome, SideSummary, TestKind, Verdict};

/// Default significance level: 0.02, Kayenta's 98 % confidence.
pub const DEFAULT_ALPHA: f64 = 0.02;
/// Default number of earlier releases a history baseline needs per metric.
pub const DEFAULT_MIN_RELEASES: usize = 3;

/// Judge settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judge {
    /// Significance level for every test (after Holm for non-critical metrics); a value
    /// outside (0, 1) is replaced by [`DEFAULT_ALPHA`], and the verdict says which was used.
    pub alpha: f64,
    /// Usable earlier releases a history baseline needs per metric.
    pub min_releases: usize,
    /// Whether metrics judged on a quantile also get the tail test (see the crate docs); on by
    /// default, off only to compare with the rank test alone.
    pub quantile_tail: bool,
    /// Whether a metric judged on quantile `q` needs, beside its `min_samples`, about
    /// [`QUANTILE_TAIL_OBSERVATIONS`] observations above the quantile on each side
    /// ([`quantile_min_observations`]: 1,000 for p99); on by default, off only to compare.
    pub quantile_observations: bool,
}

/// Observations a side needs above the quantile a metric is judged on: with fewer, the
/// quantile is a handful of requests, and one slow burst moves it by tens of per cent.
pub const QUANTILE_TAIL_OBSERVATIONS: u64 = 10;

/// Observations per side a metric judged on quantile `q` needs: `10 / (1 − q)`, rounded up
/// (1,000 for p99, 10,000 for p99.9, 20 for the median), so that about
/// [`QUANTILE_TAIL_OBSERVATIONS`] lie above the quantile.
#[must_use]
pub fn quantile_min_observations(q: f64) -> u64 {
    let above = 1.0 - q.clamp(0.0, 1.0);
    // Rounded to a millionth first: 1 − 0.99 is not exactly 0.01 in binary.
    let need = ((QUANTILE_TAIL_OBSERVATIONS as f64 / above * 1e6).round() / 1e6).ceil();
    if need.is_finite() && need < u64::MAX as f64 {
        need as u64
    } else {
        u64::MAX
    }
}

impl Default for Judge {
    fn default() -> Self {
        Self {
            alpha: DEFAULT_ALPHA,
            min_releases: DEFAULT_MIN_RELEASES,
            quantile_tail: true,
            quantile_observations: true,
        }
    }
}

/// [`Judge::judge`] with the defaults (α = 0.02, three releases).
#[must_use]
pub fn judge(metrics: &[Metric], inputs: &Inputs) -> Verdict {
    Judge::default().judge(metrics, inputs)
}

/// A metric either tested (then adjusted and decided) or ended before any test.
enum Measurement {
    Tested(Measured),
    Ended(MetricEvidence),
}

/// A metric measured and tested, before the multiple-comparison adjustment.
struct Measured {
    evidence: MetricEvidence,
    /// The change is beyond the tolerance in the bad direction (point estimate) and, for
    /// history, beyond every release's own value.
    beyond: bool,
    /// The first half of the rule sentence: "canary X vs baseline Y: change".
    headline: String,
    /// For history: the sentence that explains a change within the releases' own range.
    within_history: Option<String>,
}

impl Judge {
    /// Judges every metric, adjusts the non-critical metrics' p-values (Holm-Bonferroni), and
    /// combines the outcomes into a verdict (rules in the crate docs).
    #[must_use]
    pub fn judge(&self, metrics: &[Metric], inputs: &Inputs) -> Verdict {
        let alpha = if self.alpha.is_finite() && self.alpha > 0.0 && self.alpha < 1.0 {
            self.alpha
        } else {
            DEFAULT_ALPHA
        };
        let baseline_kind = match inputs.baseline {
            Baseline::SideBySide(_) => BaselineKind::SideBySide,
            Baseline::History(_) => BaselineKind::History,
        };
        let mut measured: Vec<Measurement> = metrics
            .iter()
            .map(|m| self.measure(m, inputs, baseline_kind, alpha))
            .collect();

        // Holm across the non-critical metrics that were tested.
        let tested: Vec<usize> = measured
            .iter()
            .enumerate()
            .filter_map(|(i, m)| match m {
                Measurement::Tested(m) if !m.evidence.critical && m.evidence.p_value.is_some() => {
                    Some(i)
                }
                _ => None,
            })
            .collect();
        let raw: Vec<f64> = tested
            .iter()
            .filter_map(|&i| match &measured[i] {
                Measurement::Tested(m) => m.evidence.p_value,
                Measurement::Ended(_) => None,
            })
            .collect();
        let adjusted = stats::holm(&raw);
        for (&i, p) in tested.iter().zip(adjusted) {
            if let Measurement::Tested(m) = &mut measured[i] {
                m.evidence.p_adjusted = Some(p);
            }
        }

        let evidence: Vec<MetricEvidence> = measured
            .into_iter()
            .map(|m| match m {
                Measurement::Tested(m) => decide(m, alpha, tested.len()),
                Measurement::Ended(e) => e,
            })
            .collect();
        let (outcome, rule) = combine(&evidence);
        Verdict {
            outcome,
            baseline_kind,
            alpha,
            window: inputs.window,
            metrics: evidence,
            rule,
        }
    }

    /// Measures one metric; it ends before any test when there is no or too little data.
    fn measure(
        &self,
        metric: &Metric,
        inputs: &Inputs,
        baseline_kind: BaselineKind,
        alpha: f64,
    ) -> Measurement {
        let mut ev = MetricEvidence {
            metric: metric.name.clone(),
            kind: metric.kind(),
            direction: metric.direction,
            critical: metric.critical,
            baseline_kind,
            releases: Vec::new(),
            queries: Vec::new(),
            sequential: None,
            dispersion: None,
            window: inputs.window,
            outcome: Outcome::NoData,
            canary: SideSummary::default(),
            baseline: SideSummary::default(),
            test: None,
            statistic: None,
            p_value: None,
            p_adjusted: None,
            interval: None,
            shift: None,
            effect: None,
            rule: String::new(),
        };
        let end = |mut ev: MetricEvidence, outcome: Outcome, rule: String| {
            ev.outcome = outcome;
            ev.rule = rule;
            Measurement::Ended(ev)
        };
        let Some(canary) = inputs.canary.get(&metric.name) else {
            return end(ev, Outcome::NoData, "no canary series".into());
        };
        match (&metric.spec, canary) {
            (MetricSpec::Ratio { max_increase, .. }, MetricData::Ratio(c)) => {
                let c = *c;
                ev.canary = ratio_side(c);
                if c.denominator == 0 {
                    return end(
                        ev,
                        Outcome::NoData,
                        "no canary traffic (denominator 0)".into(),
                    );
                }
                if c.numerator > c.denominator {
                    return end(
                        ev,
                        Outcome::Inconclusive,
                        format!(
                            "canary numerator {} exceeds its denominator {}: inconsistent series",
                            c.numerator, c.denominator
                        ),
                    );
                }
                let (b, worst) = match &inputs.baseline {
                    Baseline::SideBySide(data) => match data.get(&metric.name) {
                        Some(MetricData::Ratio(b)) => (*b, None),
                        Some(MetricData::Distribution(_)) => {
                            return end(ev, Outcome::Inconclusive, kind_mismatch("baseline"));
                        }
                        None => return end(ev, Outcome::NoData, "no baseline series".into()),
                    },
                    Baseline::History(releases) => {
                        let usable: Vec<(&str, Counts)> = releases
                            .iter()
                            .filter_map(|r| match r.metrics.get(&metric.name) {
                                Some(MetricData::Ratio(b))
                                    if b.denominator >= metric.min_samples
                                        && b.numerator <= b.denominator =>
                                {
                                    Some((r.release.as_str(), *b))
                                }
                                _ => None,
                            })
                            .collect();
                        ev.releases = usable.iter().map(|(r, _)| (*r).to_owned()).collect();
                        if usable.len() < self.min_releases {
                            return end(
                                ev,
                                Outcome::Inconclusive,
                                too_few_releases(usable.len(), releases.len(), self.min_releases),
                            );
                        }
                        let pooled = usable.iter().fold(
                            Counts {
                                numerator: 0,
                                denominator: 0,
                            },
                            |acc, (_, b)| Counts {
                                numerator: acc.numerator.saturating_add(b.numerator),
                                denominator: acc.denominator.saturating_add(b.denominator),
                            },
                        );
                        let ratios = usable
                            .iter()
                            .map(|(_, b)| b.numerator as f64 / b.denominator as f64);
                        (pooled, Some(range_of(ratios)))
                    }
                };
                ev.baseline = ratio_side(b);
                if b.denominator == 0 {
                    return end(
                        ev,
                        Outcome::NoData,
                        "no baseline traffic (denominator 0)".into(),
                    );
                }
                if b.numerator > b.denominator {
                    return end(
                        ev,
                        Outcome::Inconclusive,
                        "baseline numerator exceeds its denominator: inconsistent series".into(),
                    );
                }
                if c.denominator < metric.min_samples || b.denominator < metric.min_samples {
                    return end(
                        ev,
                        Outcome::Inconclusive,
                        format!(
                            "too little traffic: canary {} and baseline {} requests, need {} on each side",
                            c.denominator, b.denominator, metric.min_samples
                        ),
                    );
                }
                let dispersion =
                    side_by_side_units(inputs, metric, worst).and_then(pods::ratio_dispersion);
                ev.dispersion = dispersion;
                let (c, b) = match &dispersion {
                    Some(d) => (d.deflate_canary(c), d.deflate_baseline(b)),
                    None => (c, b),
                };
                Measurement::Tested(measure_ratio(
                    ev,
                    metric.direction,
                    *max_increase,
                    c,
                    b,
                    worst,
                    alpha,
                ))
            }
            (
                MetricSpec::Distribution {
                    allowed_change,
                    quantile,
                    ..
                },
                MetricData::Distribution(c),
            ) => {
                let c = match Prepared::new(c) {
                    Ok(c) => c,
                    Err(why) => {
                        return end(ev, Outcome::Inconclusive, format!("canary data: {why}"));
                    }
                };
                ev.canary = distribution_side(&c, *quantile);
                if c.total == 0 {
                    return end(ev, Outcome::NoData, "no canary observations".into());
                }
                let (b, worst) = match &inputs.baseline {
                    Baseline::SideBySide(data) => match data.get(&metric.name) {
                        Some(MetricData::Distribution(b)) => match Prepared::new(b) {
                            Ok(b) => (b, None),
                            Err(why) => {
                                return end(
                                    ev,
                                    Outcome::Inconclusive,
                                    format!("baseline data: {why}"),
                                );
                            }
                        },
                        Some(MetricData::Ratio(_)) => {
                            return end(ev, Outcome::Inconclusive, kind_mismatch("baseline"));
                        }
                        None => return end(ev, Outcome::NoData, "no baseline series".into()),
                    },
                    Baseline::History(releases) => {
                        let usable: Vec<(&str, Prepared)> = releases
                            .iter()
                            .filter_map(|r| match r.metrics.get(&metric.name) {
                                Some(MetricData::Distribution(d)) => Prepared::new(d)
                                    .ok()
                                    .filter(|p| {
                                        p.total >= metric.min_samples && p.layout == c.layout
                                    })
                                    .map(|p| (r.release.as_str(), p)),
                                _ => None,
                            })
                            .collect();
                        ev.releases = usable.iter().map(|(r, _)| (*r).to_owned()).collect();
                        if usable.len() < self.min_releases {
                            return end(
                                ev,
                                Outcome::Inconclusive,
                                too_few_releases(usable.len(), releases.len(), self.min_releases),
                            );
                        }
                        let q = quantile.unwrap_or(0.5);
                        let worst = range_of(usable.iter().filter_map(|(_, p)| p.quantile(q)));
                        (pool(usable.into_iter().map(|(_, p)| p)), Some(worst))
                    }
                };
                ev.baseline = distribution_side(&b, *quantile);
                if b.total == 0 {
                    return end(ev, Outcome::NoData, "no baseline observations".into());
                }
                if c.layout != b.layout {
                    return end(
                        ev,
                        Outcome::Inconclusive,
                        "canary and baseline histograms have different buckets".into(),
                    );
                }
                let need = match quantile {
                    Some(q) if self.quantile_observations => {
                        metric.min_samples.max(quantile_min_observations(*q))
                    }
                    _ => metric.min_samples,
                };
                if c.total < need || b.total < need {
                    let why = if need > metric.min_samples {
                        format!(
                            " (a {} needs about {QUANTILE_TAIL_OBSERVATIONS} observations above it: 10/(1 − q))",
                            quantile.map(quantile_name).unwrap_or_default()
                        )
                    } else {
                        String::new()
                    };
                    return end(
                        ev,
                        Outcome::Inconclusive,
                        format!(
                            "too few observations: canary {} and baseline {}, need {need} on each side{why}",
                            c.total, b.total
                        ),
                    );
                }
                // Units: the share at or above the baseline's judged quantile (the median
                // without one), per pod.
                let dispersion = side_by_side_units(inputs, metric, worst)
                    .and_then(|u| tail_dispersion(u, &b, quantile.unwrap_or(0.5)));
                ev.dispersion = dispersion;
                let (c, b) = match &dispersion {
                    Some(d) if d.applied() => (
                        deflate_points(&c, d.canary_factor),
                        deflate_points(&b, d.baseline_factor),
                    ),
                    _ => (c, b),
                };
                Measurement::Tested(measure_distribution(
                    ev,
                    metric.direction,
                    *allowed_change,
                    *quantile,
                    self.quantile_tail,
                    &c,
                    &b,
                    worst,
                    alpha,
                ))
            }
            _ => end(ev, Outcome::Inconclusive, kind_mismatch("canary")),
        }
    }
}

/// The metric's units, when it is judged against the old version's pods (`worst` is `None`:
/// a history baseline's releases have no units).
fn side_by_side_units<'a>(
    inputs: &'a Inputs,
    metric: &Metric,
    worst: Option<(f64, f64)>,
) -> Option<&'a Units> {
    worst
        .is_none()
        .then(|| inputs.units.get(&metric.name))
        .flatten()
}

/// The histogram units' dispersion of the share at or above the bucket that holds the
/// baseline's `q` (the tail test's bar); units of other buckets or kinds are left out.
fn tail_dispersion(units: &Units, baseline: &Prepared, q: f64) -> Option<Dispersion> {
    let threshold = tail_threshold(baseline, q)?;
    let counts = |side: &[MetricData]| -> Vec<Counts> {
        side.iter()
            .filter_map(|d| match d {
                MetricData::Distribution(d) => Prepared::new(d).ok(),
                MetricData::Ratio(_) => None,
            })
            .filter(|p| p.layout.is_some() && p.layout == baseline.layout)
            .map(|p| Counts {
                numerator: at_or_above(&p, threshold),
                denominator: p.total,
            })
            .collect()
    };
    pods::dispersion(&counts(&units.canary), &counts(&units.baseline))
}

/// `p` with every point's count divided by `factor` (rounded).
fn deflate_points(p: &Prepared, factor: f64) -> Prepared {
    let points: Vec<(f64, u64)> = p
        .points
        .iter()
        .map(|&(v, n)| (v, (n as f64 / factor).round() as u64))
        .collect();
    Prepared {
        total: points.iter().map(|(_, n)| n).sum(),
        points,
        layout: p.layout.clone(),
    }
}

fn kind_mismatch(side: &str) -> String {
    format!("the {side} data is not of the metric's kind")
}

fn too_few_releases(usable: usize, offered: usize, needed: usize) -> String {
    format!(
        "history baseline: {usable} usable of {offered} earlier releases, need {needed} \
         (with enough samples and the same buckets)"
    )
}

/// The range (lowest, highest) of the releases' own values: the worst of them in the bad
/// direction is the bar a canary must pass to fail against history.
fn range_of(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

fn pool(sides: impl Iterator<Item = Prepared>) -> Prepared {
    let mut pooled: Option<Prepared> = None;
    for p in sides {
        pooled = Some(match pooled {
            None => p,
            Some(mut acc) if acc.layout.is_some() => {
                // Same layout (checked by the caller): add bucket by bucket.
                for (a, b) in acc.points.iter_mut().zip(&p.points) {
                    a.1 = a.1.saturating_add(b.1);
                }
                acc.total = acc.total.saturating_add(p.total);
                acc
            }
            Some(acc) => {
                let points = acc
                    .points
                    .into_iter()
                    .chain(p.points)
                    .map(|(value, count)| crate::WeightedValue { value, count })
                    .collect();
                Prepared::new(&Distribution::Weighted(points)).unwrap_or(Prepared {
                    points: Vec::new(),
                    total: 0,
                    layout: None,
                })
            }
        });
    }
    pooled.unwrap_or(Prepared {
        points: Vec::new(),
        total: 0,
        layout: None,
    })
}

pub(crate) fn ratio_side(c: Counts) -> SideSummary {
    SideSummary {
        samples: c.denominator,
        events: Some(c.numerator),
        ratio: (c.denominator > 0).then(|| c.numerator as f64 / c.denominator as f64),
        ..SideSummary::default()
    }
}

fn distribution_side(p: &Prepared, quantile: Option<f64>) -> SideSummary {
    SideSummary {
        samples: p.total,
        median: p.quantile(0.5),
        p99: p.quantile(0.99),
        quantile: quantile.and_then(|q| p.quantile(q)),
        ..SideSummary::default()
    }
}

/// Picks the p-value in the bad direction: one-sided for `increase`/`decrease`, twice the
/// smaller one-sided value for `either`; and whether `change` (signed) is beyond `allowed` in a
/// bad direction consistent with that test.
fn bad_side(direction: Direction, p: OneSided, change: Option<f64>, allowed: f64) -> (f64, bool) {
    // `None` change: relative to a zero baseline, any change counts as beyond the tolerance.
    match direction {
        Direction::Increase => (p.upper, change.is_none_or(|d| d > allowed)),
        Direction::Decrease => (p.lower, change.is_none_or(|d| d < -allowed)),
        Direction::Either => {
            let up = p.upper <= p.lower;
            let beyond = change.is_none_or(|d| if up { d > allowed } else { d < -allowed });
            ((2.0 * p.upper.min(p.lower)).min(1.0), beyond)
        }
    }
}

/// Whether `value` is beyond every release's own value in the bad direction.
fn beyond_history(direction: Direction, value: f64, (lo, hi): (f64, f64), up: bool) -> bool {
    match direction {
        Direction::Increase => value > hi,
        Direction::Decrease => value < lo,
        Direction::Either => {
            if up {
                value > hi
            } else {
                value < lo
            }
        }
    }
}

fn measure_ratio(
    mut ev: MetricEvidence,
    direction: Direction,
    allowed: f64,
    c: Counts,
    b: Counts,
    worst: Option<(f64, f64)>,
    alpha: f64,
) -> Measured {
    let (x1, n1, x2, n2) = (c.numerator, c.denominator, b.numerator, b.denominator);
    // Exact where the support is small (few events or few non-events: where the normal
    // approximation is poor), the z-test where counts are large enough for it to be accurate.
    let (test, statistic, p) = match stats::fisher_exact(x1, n1, x2, n2) {
        Some(p) => (TestKind::FisherExact, None, p),
        None => {
            let (z, p) = stats::z_test(x1, n1, x2, n2);
            (TestKind::TwoProportionZ, Some(z), p)
        }
    };
    let (pc, pb) = (x1 as f64 / n1 as f64, x2 as f64 / n2 as f64);
    let diff = pc - pb;
    let (p_bad, beyond_tolerance) = bad_side(direction, p, Some(diff), allowed);
    let (low, high) = stats::newcombe(x1, n1, x2, n2, 1.0 - alpha);
    ev.test = Some(test);
    ev.statistic = statistic;
    ev.p_value = Some(p_bad);
    ev.interval = Some(Interval {
        low,
        high,
        confidence: 1.0 - alpha,
    });
    ev.effect = Some(Effect {
        value: Some(diff),
        allowed,
        common_language: None,
    });
    let headline = format!(
        "canary ratio {} vs baseline {} ({:+.2} points)",
        percent(pc),
        percent(pb),
        diff * 100.0
    );
    let (beyond, within_history) = match worst {
        Some(range) if beyond_tolerance => {
            let up = p.upper <= p.lower;
            let outside = beyond_history(direction, pc, range, up);
            let note = (!outside).then(|| {
                format!(
                    "within the range of the {} earlier releases ({} to {})",
                    ev.releases.len(),
                    percent(range.0),
                    percent(range.1)
                )
            });
            (outside, note)
        }
        _ => (beyond_tolerance, None),
    };
    ev.rule = format!("{:.2} points", allowed * 100.0);
    Measured {
        evidence: ev,
        beyond,
        headline,
        within_history,
    }
}

#[allow(clippy::too_many_arguments)] // one call site; the parts are the metric's own fields
fn measure_distribution(
    mut ev: MetricEvidence,
    direction: Direction,
    allowed: f64,
    quantile: Option<f64>,
    quantile_tail: bool,
    c: &Prepared,
    b: &Prepared,
    worst: Option<(f64, f64)>,
    alpha: f64,
) -> Measured {
    let rank = mann_whitney(c, b);
    let shift = hodges_lehmann(c, b, rank.sd, 1.0 - alpha);
    let relative = |canary: Option<f64>, baseline: Option<f64>| match (canary, baseline) {
        (Some(c), Some(b)) if b != 0.0 => Some((c - b) / b.abs()),
        (Some(c), Some(b)) if c == b => Some(0.0),
        _ => None,
    };
    let (what, canary_value, baseline_value, change) = match quantile {
        Some(q) => {
            let (cq, bq) = (c.quantile(q), b.quantile(q));
            (quantile_name(q), cq, bq, relative(cq, bq))
        }
        None => {
            let bm = b.quantile(0.5);
            let change = match (shift, bm) {
                (Some(s), Some(m)) if m != 0.0 => Some(s.estimate / m.abs()),
                (Some(s), Some(_)) if s.estimate == 0.0 => Some(0.0),
                _ => None,
            };
            ("median".to_owned(), c.quantile(0.5), bm, change)
        }
    };
    let ranks = OneSided {
        upper: rank.p_upper,
        lower: rank.p_lower,
    };
    // A quantile is about the tail: a release that slows a few per cent of requests moves p99
    // and hardly the ranks (the median stays), so the tail test runs beside the rank test and
    // the smaller p-value counts, doubled (Bonferroni over the two).
    let tail = quantile
        .filter(|_| quantile_tail)
        .and_then(|q| tail_test(c, b, q));
    let (p, tail_decides) = match &tail {
        Some((t, _)) => {
            let both = OneSided {
                upper: (2.0 * ranks.upper.min(t.upper)).min(1.0),
                lower: (2.0 * ranks.lower.min(t.lower)).min(1.0),
            };
            let (rank_bad, _) = bad_side(direction, ranks, change, allowed);
            let (tail_bad, _) = bad_side(direction, *t, change, allowed);
            (both, tail_bad < rank_bad)
        }
        None => (ranks, false),
    };
    let (p_bad, beyond_tolerance) = bad_side(direction, p, change, allowed);
    let nm = c.total as f64 * b.total as f64;
    ev.test = Some(if tail_decides {
        TestKind::QuantileTail
    } else {
        TestKind::MannWhitneyU
    });
    ev.statistic = Some(rank.u);
    ev.p_value = Some(p_bad);
    ev.shift = shift.map(|s| s.estimate);
    ev.interval = shift.map(|s| Interval {
        low: s.low,
        high: s.high,
        confidence: 1.0 - alpha,
    });
    ev.effect = Some(Effect {
        value: change,
        allowed,
        common_language: (nm > 0.0).then(|| rank.u / nm),
    });
    let tail_note = match &tail {
        Some((_, counts)) if tail_decides => format!(
            "; at or above the baseline's {what}: canary {} of {}, baseline {} of {}",
            counts.numerator, c.total, counts.denominator, b.total
        ),
        _ => String::new(),
    };
    let headline = format!(
        "canary {what} {} vs baseline {} ({}{tail_note})",
        number(canary_value),
        number(baseline_value),
        change.map_or_else(
            || "change from zero".to_owned(),
            |r| format!("{:+.1} %", r * 100.0)
        )
    );
    let (beyond, within_history) = match (worst, canary_value) {
        (Some(range), Some(v)) if beyond_tolerance => {
            let up = p.upper <= p.lower;
            let outside = beyond_history(direction, v, range, up);
            let note = (!outside).then(|| {
                format!(
                    "within the range of the {} earlier releases ({} to {})",
                    ev.releases.len(),
                    number(Some(range.0)),
                    number(Some(range.1))
                )
            });
            (outside, note)
        }
        _ => (beyond_tolerance, None),
    };
    ev.rule = format!("{:.1} %", allowed * 100.0);
    Measured {
        evidence: ev,
        beyond,
        headline,
        within_history,
    }
}

/// The tail test of a metric judged on quantile `q`: the observations of each side at or above
/// the baseline's `q` point (for a histogram, the bucket that holds the baseline's quantile and
/// those above it), compared as two proportions (Fisher's exact test, or the z-test on large
/// counts). `Some((p, counts))` with `counts` = (canary at or above, baseline at or above) in
/// a [`Counts`] (numerator: canary, denominator: baseline); `None` without baseline data.
fn tail_test(c: &Prepared, b: &Prepared, q: f64) -> Option<(OneSided, Counts)> {
    if b.total == 0 || c.total == 0 {
        return None;
    }
    let threshold = tail_threshold(b, q)?;
    let (x1, x2) = (at_or_above(c, threshold), at_or_above(b, threshold));
    let p = stats::fisher_exact(x1, c.total, x2, b.total)
        .unwrap_or_else(|| stats::z_test(x1, c.total, x2, b.total).1);
    Some((
        p,
        Counts {
            numerator: x1,
            denominator: x2,
        },
    ))
}

/// The observations of `p` at or above `threshold`.
fn at_or_above(p: &Prepared, threshold: f64) -> u64 {
    p.points
        .iter()
        .filter(|(v, _)| *v >= threshold)
        .fold(0_u64, |n, (_, k)| n.saturating_add(*k))
}

/// The baseline's point (for a histogram, its bucket) that holds its `q`; `None` without
/// observations.
fn tail_threshold(b: &Prepared, q: f64) -> Option<f64> {
    let rank = q.clamp(0.0, 1.0) * b.total as f64;
    let mut cumulative = 0.0;
    b.points
        .iter()
        .find(|&&(_, count)| {
            cumulative += count as f64;
            cumulative >= rank && count > 0
        })
        .map(|p| p.0)
}

/// Sets a tested metric's outcome and rule from its adjusted p-value.
fn decide(m: Measured, alpha: f64, family: usize) -> MetricEvidence {
    let mut ev = m.evidence;
    let allowed = std::mem::take(&mut ev.rule);
    let raw = ev.p_value.unwrap_or(1.0);
    let p = if ev.critical {
        ev.p_adjusted = Some(raw);
        raw
    } else {
        ev.p_adjusted.unwrap_or(raw)
    };
    let significant = p < alpha;
    let p_text = if ev.critical || family <= 1 {
        format!("p {}", p_value(p))
    } else {
        format!(
            "p {} (Holm over {family} metrics; raw p {})",
            p_value(p),
            p_value(raw)
        )
    };
    let (outcome, reason) = match (significant, m.beyond, m.within_history) {
        (true, true, _) => (
            Outcome::Fail,
            format!("beyond the allowed {allowed}, {p_text}"),
        ),
        (_, false, Some(note)) => (Outcome::Pass, format!("{note}, {p_text}")),
        (false, true, _) => (
            Outcome::Pass,
            format!("beyond the allowed {allowed} but not significant, {p_text}, alpha {alpha}"),
        ),
        (_, false, None) if improved(&ev) => {
            (Outcome::Pass, format!("a change for the better, {p_text}"))
        }
        (_, false, None) => (
            Outcome::Pass,
            format!("within the allowed {allowed}, {p_text}"),
        ),
    };
    ev.outcome = outcome;
    // What the pods' dispersion did is part of the measurement's description.
    ev.rule = match &ev.dispersion {
        Some(d) => format!("{}; {}: {reason}", m.headline, d.sentence()),
        None => format!("{}: {reason}", m.headline),
    };
    ev
}

/// Whether the metric moved in its good direction (`either` has none).
fn improved(ev: &MetricEvidence) -> bool {
    let change = ev.effect.and_then(|e| e.value).unwrap_or(0.0);
    match ev.direction {
        Direction::Increase => change < 0.0,
        Direction::Decrease => change > 0.0,
        Direction::Either => false,
    }
}

/// The verdict from the metrics' outcomes.
pub(crate) fn combine(metrics: &[MetricEvidence]) -> (Outcome, String) {
    let names = |pred: &dyn Fn(&MetricEvidence) -> bool| -> Vec<&str> {
        metrics
            .iter()
            .filter(|m| pred(m))
            .map(|m| m.metric.as_str())
            .collect()
    };
    let critical_failed = names(&|m| m.critical && m.outcome == Outcome::Fail);
    if !critical_failed.is_empty() {
        return (
            Outcome::Fail,
            format!("critical metric failed: {}", critical_failed.join(", ")),
        );
    }
    let failed = names(&|m| m.outcome == Outcome::Fail);
    if !failed.is_empty() {
        return (
            Outcome::Fail,
            format!("metric failed: {}", failed.join(", ")),
        );
    }
    if metrics.iter().all(|m| m.outcome == Outcome::NoData) {
        return (Outcome::NoData, "no metric has data".into());
    }
    let critical_open = names(&|m| m.critical && m.outcome != Outcome::Pass);
    if !critical_open.is_empty() {
        return (
            Outcome::Inconclusive,
            format!(
                "critical metric could not be judged: {}",
                critical_open.join(", ")
            ),
        );
    }
    let passed = metrics
        .iter()
        .filter(|m| m.outcome == Outcome::Pass)
        .count();
    if passed * 2 >= metrics.len() {
        (
            Outcome::Pass,
            format!("{passed} of {} metrics passed, none failed", metrics.len()),
        )
    } else {
        (
            Outcome::Inconclusive,
            format!(
                "only {passed} of {} metrics could be judged; at least half must pass",
                metrics.len()
            ),
        )
    }
}

fn percent(r: f64) -> String {
    format!("{:.2} %", r * 100.0)
}

fn number(v: Option<f64>) -> String {
    v.map_or_else(|| "none".to_owned(), |v| format!("{v:.4}"))
}

fn p_value(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".to_owned()
    } else {
        format!("= {p:.3}")
    }
}

fn quantile_name(q: f64) -> String {
    let pct = q * 100.0;
    if (pct - pct.round()).abs() < 1e-9 {
        format!("p{}", pct.round())
    } else {
        format!("p{pct}")
    }
}
