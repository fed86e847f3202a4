//! When a run of repeated analyses is final: the stop rule of `deploygraph canary analyze`,
//! kept here (pure, no clock) so the CLI and the canary benchmark apply the same rule.
//!
//! Analyses run at the start and then every `interval` on a fixed schedule.
//! - A `Fail` verdict is final at once.
//! - A pass is final when **every** metric of the template passed in an analysis that started at
//!   least one `window` after the run did — so the window it judges lies wholly within the
//!   run, and the earliest (possibly pre-rollout) data cannot pass a canary.
//! - The last analysis is the one after which the next would start past `max_duration`
//!   ([`is_last`]); there the last verdict decides: `Pass` passes (a pass with some metric
//!   inconclusive counts), `Inconclusive` or `NoData` end inconclusive.
//!
//! [`decide_confirmed`] is the same rule with failures confirmed one window later;
//! [`decide_confirmed_or_decisive`] (what `canary analyze` applies) confirms a failure one
//! window later unless its evidence is decisive ([`is_decisive`]: overwhelming in one window,
//! or the sequential test since the start failed), which is final at once;
//! [`decide`] is the rule with every failure final at once.

use crate::template::{MetricKind, Window};
use crate::verdict::{MetricEvidence, Outcome, Verdict};
use std::time::Duration;

/// What an analysis means for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not final: analyse again after the interval.
    Continue,
    /// Final: the canary passed.
    Pass,
    /// Final: the canary failed.
    Fail,
    /// Final at the deadline: inconclusive, no data, or (with [`decide_confirmed`]) a failure
    /// not yet confirmed.
    Inconclusive,
}

impl Decision {
    /// `continue`, `pass`, `fail` or `inconclusive`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Continue => "continue",
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Inconclusive => "inconclusive",
        }
    }

    /// Whether the run ends here.
    #[must_use]
    pub fn is_final(self) -> bool {
        self != Self::Continue
    }
}

/// Whether analysis number `analysis` (1-based) is the last: the next one would start past
/// `max_duration` on the schedule of one analysis every `interval`.
#[must_use]
pub fn is_last(analysis: u32, interval: Duration, max_duration: Duration) -> bool {
    interval.saturating_mul(analysis) > max_duration
}

/// The rule of the [module docs](self): `started` is how long after the run's start the
/// analysis started, `last` whether it is the last one before the deadline ([`is_last`]).
#[must_use]
pub fn decide(verdict: &Verdict, started: Duration, window: Window, last: bool) -> Decision {
    match verdict.outcome {
        Outcome::Fail => Decision::Fail,
        _ if verdict.all_passed() && started >= window.duration() => Decision::Pass,
        _ if !last => Decision::Continue,
        Outcome::Pass => Decision::Pass,
        Outcome::Inconclusive | Outcome::NoData => Decision::Inconclusive,
    }
}

/// [`decide`] with failures confirmed: a `Fail` verdict is final only when the analysis that
/// started one `window` or more earlier (the latest such, whose window does not overlap this
/// one's) failed as well, so one transient burst on the canary's pods — a GC pause, a noisy
/// neighbour, a cold cache, which sits in the windows of two overlapping analyses at most —
/// cannot roll a release back, while a regression, which persists, fails one window later.
/// An unconfirmed failure at the last analysis is inconclusive. `earlier` holds the start
/// times and outcomes of the run's earlier analyses, oldest first.
#[must_use]
pub fn decide_confirmed(
    earlier: &[(Duration, Outcome)],
    verdict: &Verdict,
    started: Duration,
    window: Window,
    last: bool,
) -> Decision {
    if verdict.outcome != Outcome::Fail {
        return decide(verdict, started, window, last);
    }
    let before = started.checked_sub(window.duration()).and_then(|limit| {
        earlier
            .iter()
            .rev()
            .find(|(at, _)| *at <= limit)
            .map(|(_, o)| *o)
    });
    match before {
        Some(Outcome::Fail) => Decision::Fail,
        _ if last => Decision::Inconclusive,
        _ => Decision::Continue,
    }
}

/// One-sided p-value below which a failing critical ratio metric is decisive ([`is_decisive`]):
/// z ≈ 6. Far below α because the tests count requests as independent, and errors are not:
/// they cluster by pod and by second, so a healthy canary's pods can give a p-value of 10⁻⁷ in
/// one window and nothing in the next (in the canary benchmark, `docs/benchmarks.md`, a limit
/// of 10⁻³ or 10⁻⁶ added false rollbacks on the development seeds, 10⁻⁹ none).
pub const DECISIVE_P: f64 = 1e-9;

/// Whether a failing verdict is decisive at once: a **critical ratio** metric failed with its
/// one-sided p-value below `p_limit` **and** its interval for the change (at the judge's
/// 1 − α) lies wholly beyond the metric's tolerance in the bad direction — the increase is
/// not merely above zero but significantly above what the template allows.
///
/// A critical ratio metric whose sequential test since the run's start failed
/// ([`crate::sequential`]) is decisive as well: that test is built to be read after every
/// analysis, so a second look would add nothing to its guarantee.
///
/// Only critical ratio metrics can be decisive: a critical metric is one the template says
/// fails the verdict alone, and a ratio's interval is on the scale of its tolerance.
/// Distribution metrics (latency) are never decisive: one slow burst (a GC pause, a cold
/// cache, a noisy neighbour) gives a quantile a tiny p-value in one window and is gone in the
/// next, so only confirmation tells it from a regression.
#[must_use]
pub fn is_decisive(verdict: &Verdict, p_limit: f64) -> bool {
    verdict.outcome == Outcome::Fail && verdict.metrics.iter().any(|m| decisive_metric(m, p_limit))
}

fn decisive_metric(m: &MetricEvidence, p_limit: f64) -> bool {
    if !(m.critical && m.kind == MetricKind::Ratio && m.outcome == Outcome::Fail) {
        return false;
    }
    if crate::sequential::failed(m) {
        return true;
    }
    let (Some(p), Some(interval), Some(effect)) = (m.p_value, m.interval, m.effect) else {
        return false;
    };
    let allowed = effect.allowed;
    let beyond = match m.direction {
        crate::template::Direction::Increase => interval.low > allowed,
        crate::template::Direction::Decrease => interval.high < -allowed,
        crate::template::Direction::Either => interval.low > allowed || interval.high < -allowed,
    };
    p < p_limit && beyond
}

/// [`decide_confirmed`], except that a decisive failure ([`is_decisive`] at [`DECISIVE_P`]) is
/// final at once: what `deploygraph canary analyze` applies. A release that sends a clearly
/// larger share of requests to errors is rolled back at the first window that shows it; a
/// failure with less evidence, or on a latency metric, waits one window for confirmation.
#[must_use]
pub fn decide_confirmed_or_decisive(
    earlier: &[(Duration, Outcome)],
    verdict: &Verdict,
    started: Duration,
    window: Window,
    last: bool,
) -> Decision {
    if is_decisive(verdict, DECISIVE_P) {
        return Decision::Fail;
    }
    decide_confirmed(earlier, verdict, started, window, last)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;
    use crate::inputs::BaselineKind;
    use crate::template::{Direction, MetricKind};
    use crate::verdict::{MetricEvidence, SideSummary};

    fn verdict(outcome: Outcome, metrics: &[Outcome]) -> Verdict {
        let window: Window = "5m".parse().expect("window");
        Verdict {
            outcome,
            baseline_kind: BaselineKind::SideBySide,
            alpha: 0.02,
            window,
            metrics: metrics
                .iter()
                .enumerate()
                .map(|(i, &o)| MetricEvidence {
                    metric: format!("m{i}"),
                    kind: MetricKind::Ratio,
                    direction: Direction::Increase,
                    critical: false,
                    baseline_kind: BaselineKind::SideBySide,
                    releases: Vec::new(),
                    window,
                    outcome: o,
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
                    queries: Vec::new(),
                    sequential: None,
                    dispersion: None,
                })
                .collect(),
            rule: String::new(),
        }
    }

    const MIN: Duration = Duration::from_secs(60);

    fn five_minutes() -> Window {
        "5m".parse().expect("window")
    }

    #[test]
    fn a_fail_is_final_at_once() {
        let v = verdict(Outcome::Fail, &[Outcome::Fail, Outcome::Pass]);
        assert_eq!(
            decide(&v, Duration::ZERO, five_minutes(), false),
            Decision::Fail
        );
    }

    #[test]
    fn a_pass_is_final_only_after_a_full_window_with_every_metric_passed() {
        let w = five_minutes();
        let all = verdict(Outcome::Pass, &[Outcome::Pass, Outcome::Pass]);
        assert_eq!(decide(&all, 4 * MIN, w, false), Decision::Continue);
        assert_eq!(decide(&all, 5 * MIN, w, false), Decision::Pass);
        let some = verdict(Outcome::Pass, &[Outcome::Pass, Outcome::Inconclusive]);
        assert_eq!(decide(&some, 10 * MIN, w, false), Decision::Continue);
    }

    #[test]
    fn at_the_deadline_the_last_verdict_decides() {
        let w = five_minutes();
        let some = verdict(Outcome::Pass, &[Outcome::Pass, Outcome::Inconclusive]);
        assert_eq!(decide(&some, 2 * MIN, w, true), Decision::Pass);
        for outcome in [Outcome::Inconclusive, Outcome::NoData] {
            let v = verdict(outcome, &[outcome]);
            assert_eq!(decide(&v, 15 * MIN, w, true), Decision::Inconclusive);
        }
    }

    #[test]
    fn a_confirmed_fail_needs_a_failing_analysis_one_window_earlier() {
        let w: Window = "1m".parse().expect("window");
        let s = Duration::from_secs;
        let fail = verdict(Outcome::Fail, &[Outcome::Fail]);
        // The first failure waits; so does one whose predecessor overlaps it (30 s earlier).
        assert_eq!(
            decide_confirmed(&[], &fail, s(60), w, false),
            Decision::Continue
        );
        let overlapping = [(s(30), Outcome::Pass), (s(60), Outcome::Fail)];
        assert_eq!(
            decide_confirmed(&overlapping, &fail, s(90), w, false),
            Decision::Continue
        );
        // The analysis one window earlier failed too: final.
        let confirmed = [(s(30), Outcome::Fail), (s(60), Outcome::Pass)];
        assert_eq!(
            decide_confirmed(&confirmed, &fail, s(90), w, false),
            Decision::Fail
        );
        // Unconfirmed at the deadline: inconclusive, never a rollback.
        assert_eq!(
            decide_confirmed(&overlapping, &fail, s(90), w, true),
            Decision::Inconclusive
        );
        // Anything but a failure follows `decide`.
        let pass = verdict(Outcome::Pass, &[Outcome::Pass]);
        assert_eq!(
            decide_confirmed(&confirmed, &pass, s(90), w, false),
            Decision::Pass
        );
    }

    #[test]
    fn the_last_analysis_is_the_one_whose_successor_would_start_past_the_deadline() {
        let interval = Duration::from_secs(30);
        let max = 15 * MIN;
        // Analyses start at 0 s, 30 s, …, 900 s: the 31st (at 900 s) is the last.
        assert!(!is_last(30, interval, max));
        assert!(is_last(31, interval, max));
        // A deadline between two starts: the analysis before it is the last.
        assert!(is_last(2, interval, Duration::from_secs(45)));
        assert!(!is_last(1, interval, Duration::from_secs(45)));
    }
}
