//! Scoring answers against the ground truth: top-1, top-3, mean reciprocal rank, expected
//! calibration error, Brier score and a reliability table.
//!
//! Rules:
//! - **A deployment (or a change that is not a rollout) caused it**: top-1 when it is the first
//!   suspect (and no chaos run is blamed),
//!   top-3 when it is among the first three, reciprocal rank 1/position (0 when absent).
//! - **A chaos run caused it**: right when the answer names that run (`chaos.run_uid`) and no
//!   deployment; then top-1 = top-3 = reciprocal rank = 1, else 0.
//! - **No recorded change caused it**: right when there is no suspect, or the top suspect's
//!   confidence is below 0.5 (and no chaos run is blamed); top-1 = top-3 = reciprocal rank.
//! - **Calibration** (ECE, Brier, reliability) pairs, per alert, the top answer's confidence
//!   with whether the top answer is right. The top answer is the most probable of the suspects
//!   and, for a system that reports it, "no recorded change" (`unexplained`): it is right when
//!   nothing recorded caused the alert. A chaos run is blamed outright (confidence 1); a system
//!   with neither a suspect nor `unexplained` answers with confidence 0.

/// A system's answer for one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The chaos run blamed, if any.
    pub chaos: Option<String>,
    /// Suspect deployments with their confidence, most likely first.
    pub suspects: Vec<(String, f64)>,
    /// The probability that no recorded change caused the alert, for systems that say.
    pub unexplained: Option<f64>,
}

/// What caused the alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Truth {
    /// This deployment (uid).
    Deployment(String),
    /// This change that is not a rollout (uid): a suspect like a deployment.
    Change(String),
    /// This chaos run (uid).
    Chaos(String),
    /// No recorded change.
    None,
}

/// One alert judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// The top answer is right (see the module's rules).
    pub top1: bool,
    /// Right within the first three.
    pub top3: bool,
    /// Reciprocal rank.
    pub rr: f64,
    /// The top answer's confidence.
    pub confidence: f64,
    /// The top answer is the cause.
    pub top_is_cause: bool,
    /// With no recorded cause: whether something was blamed at 0.5 or more.
    pub confident_without_cause: Option<bool>,
}

/// The threshold at which a suspect counts as blamed (DORA's change failure rate uses it too).
pub const BLAME: f64 = 0.5;

/// Judges `prediction` against `truth`.
pub fn judge(truth: &Truth, prediction: &Prediction) -> Outcome {
    let top = prediction.suspects.first();
    let suspect_confidence = top.map_or(0.0, |s| s.1);
    // The null answer is the top answer when it is more probable than every suspect.
    let null_on_top = prediction.chaos.is_none()
        && prediction
            .unexplained
            .is_some_and(|u| u > suspect_confidence);
    let confidence = if prediction.chaos.is_some() {
        1.0
    } else if null_on_top {
        prediction.unexplained.unwrap_or(0.0)
    } else {
        suspect_confidence
    };
    match truth {
        Truth::Deployment(uid) | Truth::Change(uid) => {
            let rank = prediction
                .suspects
                .iter()
                .position(|s| &s.0 == uid)
                .filter(|_| prediction.chaos.is_none())
                .map(|p| p + 1);
            Outcome {
                top1: rank == Some(1),
                top3: rank.is_some_and(|r| r <= 3),
                rr: rank.map_or(0.0, |r| 1.0 / r as f64),
                confidence,
                top_is_cause: rank == Some(1) && !null_on_top,
                confident_without_cause: None,
            }
        }
        Truth::Chaos(run) => {
            let right =
                prediction.chaos.as_deref() == Some(run.as_str()) && prediction.suspects.is_empty();
            Outcome {
                top1: right,
                top3: right,
                rr: f64::from(u8::from(right)),
                confidence,
                top_is_cause: right,
                confident_without_cause: None,
            }
        }
        Truth::None => {
            let blamed = prediction.chaos.is_some() || top.is_some_and(|s| s.1 >= BLAME);
            Outcome {
                top1: !blamed,
                top3: !blamed,
                rr: f64::from(u8::from(!blamed)),
                confidence,
                top_is_cause: null_on_top,
                confident_without_cause: Some(blamed),
            }
        }
    }
}

/// One reliability bin.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Bin {
    /// Alerts whose top confidence falls in the bin.
    pub count: usize,
    /// Their mean confidence.
    pub confidence: f64,
    /// How often their top answer was the cause.
    pub accuracy: f64,
}

/// Figures over a set of alerts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    /// Alerts.
    pub n: usize,
    /// Top-1 rate.
    pub top1: f64,
    /// Top-3 rate.
    pub top3: f64,
    /// Mean reciprocal rank.
    pub mrr: f64,
    /// Expected calibration error over ten equal-width bins.
    pub ece: f64,
    /// Brier score.
    pub brier: f64,
    /// Mean top confidence when the top answer is the cause (`None`: never).
    pub confidence_when_right: Option<f64>,
    /// Alerts with no recorded cause, and how many of them had a suspect at 0.5 or more.
    pub without_cause: (usize, usize),
    /// Ten bins: `[0, 0.1)`, …, `[0.9, 1]`.
    pub bins: [Bin; 10],
}

/// The bin of a confidence.
pub fn bin_of(p: f64) -> usize {
    ((p * 10.0).floor().max(0.0) as usize).min(9)
}

/// Summarises outcomes.
pub fn summarize(outcomes: &[Outcome]) -> Summary {
    let n = outcomes.len();
    if n == 0 {
        return Summary::default();
    }
    let rate = |f: &dyn Fn(&Outcome) -> f64| outcomes.iter().map(f).sum::<f64>() / n as f64;
    let mut sums = [(0usize, 0.0f64, 0.0f64); 10];
    for o in outcomes {
        let b = &mut sums[bin_of(o.confidence)];
        b.0 += 1;
        b.1 += o.confidence;
        b.2 += f64::from(u8::from(o.top_is_cause));
    }
    let mut bins = [Bin::default(); 10];
    let mut ece = 0.0;
    for (bin, (count, conf, right)) in bins.iter_mut().zip(sums) {
        if count > 0 {
            *bin = Bin {
                count,
                confidence: conf / count as f64,
                accuracy: right / count as f64,
            };
            ece += count as f64 / n as f64 * (bin.accuracy - bin.confidence).abs();
        }
    }
    let right: Vec<f64> = outcomes
        .iter()
        .filter(|o| o.top_is_cause)
        .map(|o| o.confidence)
        .collect();
    let without: Vec<bool> = outcomes
        .iter()
        .filter_map(|o| o.confident_without_cause)
        .collect();
    Summary {
        n,
        top1: rate(&|o| f64::from(u8::from(o.top1))),
        top3: rate(&|o| f64::from(u8::from(o.top3))),
        mrr: rate(&|o| o.rr),
        ece,
        brier: rate(&|o| (o.confidence - f64::from(u8::from(o.top_is_cause))).powi(2)),
        confidence_when_right: (!right.is_empty())
            .then(|| right.iter().sum::<f64>() / right.len() as f64),
        without_cause: (without.len(), without.iter().filter(|b| **b).count()),
        bins,
    }
}
