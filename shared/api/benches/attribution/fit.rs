//! `BENCH_FIT=1`: fits the attribution model's weights on labelled incidents of the development
//! seeds and calibrates their temperature on a second development range, then prints the
//! weights as Rust source for `deploygraph_analysis::model::WEIGHTS`.
//!
//! The features are the engine's own ([`engine::candidates`] and [`attribution::features`]),
//! read from the stores the worlds were written to through the API; the ground truth is the
//! generator's. Held-out seeds are never read here.

use crate::driver::Recorded;
use crate::generator::{Cause, World};
use deploygraph_analysis::attribution::{self, Settings};
use deploygraph_analysis::engine;
use deploygraph_analysis::model::{self, Sample};
use deploygraph_model::Uid;
use deploygraph_store::GraphStore;
use std::sync::Arc;

/// Why an alert is not a sample.
#[derive(Debug, Default)]
pub struct Skipped {
    /// A chaos run caused it (no model involved).
    pub chaos: usize,
    /// The cause is not among the candidates (outside the window or the depth).
    pub cause_not_a_candidate: usize,
    /// Each sample's kind, in order.
    pub kinds: Vec<&'static str>,
}

/// The samples of the worlds' scored alerts; `stores[w]` holds world `w`.
pub async fn samples(
    worlds: &[World],
    recorded: &[Recorded],
    stores: &[Arc<dyn GraphStore>],
    settings: &Settings,
) -> (Vec<Sample>, Skipped) {
    let mut out = Vec::new();
    let mut skipped = Skipped::default();
    for (w, world) in worlds.iter().enumerate() {
        let cause = match world.cause {
            Cause::Chaos(_) => {
                skipped.chaos += world.scored_alerts().len();
                continue;
            }
            Cause::Deployment(i) => Some(recorded[w].deployments[i].clone()),
            Cause::Change(i) => Some(recorded[w].changes[i].clone()),
            Cause::None => None,
        };
        let store = stores[w].as_ref();
        for (_, answer) in &recorded[w].answers {
            let alert = store
                .get_alert(&Uid::from_stored(answer.alert_uid.clone()))
                .await
                .expect("the store answers")
                .expect("the alert is stored");
            let (candidates, _) = engine::candidates(store, &alert, settings)
                .await
                .expect("the store answers");
            let mut rows = Vec::new();
            let mut index = None;
            for c in &candidates {
                let Some(delta) = attribution::lead_time(alert.starts_at, c, settings) else {
                    continue;
                };
                if cause.as_deref() == Some(c.deployment.as_str()) {
                    index = Some(rows.len());
                }
                rows.push(attribution::features(alert.starts_at, c, &candidates, delta).to_array());
            }
            if cause.is_some() && index.is_none() {
                skipped.cause_not_a_candidate += 1;
                continue;
            }
            out.push(Sample { rows, cause: index });
            skipped.kinds.push(world.kind.name());
        }
    }
    (out, skipped)
}

/// The samples of one generator, with why some alerts are not samples.
pub type Group = (&'static str, (Vec<Sample>, Skipped));

/// The share of `samples` whose most probable answer (a candidate, or none) is the truth.
fn accuracy(weights: &model::Weights, samples: &[Sample]) -> f64 {
    let right = samples
        .iter()
        .filter(|s| {
            let (p, null) = weights.probabilities(&s.rows);
            let best = p
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .filter(|(_, q)| **q > null)
                .map(|(i, _)| i);
            best == s.cause
        })
        .count();
    right as f64 / samples.len().max(1) as f64
}

/// The features whose weights may not be positive: a further hop never makes a change more
/// likely to be the cause (the per-hop decay).
const NON_POSITIVE: [&str; 1] = ["hops"];

/// Fits on the `train` groups together, calibrates on the `calibration` groups together,
/// prints the figures per group and the source.
pub fn report(train: &[Group], calibration: &[Group]) {
    let l2 = 1.0;
    let all = |groups: &[Group]| -> Vec<Sample> {
        groups
            .iter()
            .flat_map(|(_, (s, _))| s.iter().cloned())
            .collect()
    };
    let (train_all, calibration_all) = (all(train), all(calibration));
    let non_positive: Vec<usize> = NON_POSITIVE
        .iter()
        .filter_map(|n| model::FEATURE_NAMES.iter().position(|f| f == n))
        .collect();
    let fitted = model::fit_non_positive(&train_all, l2, &non_positive);
    let t = model::calibrate(&fitted, &calibration_all);
    let shipped = fitted.tempered(t);
    for ((name, (samples, skipped)), (_, (held, _))) in train.iter().zip(calibration) {
        println!(
            "{name}: fit on {} alerts ({} caused by chaos, {} whose cause is not a candidate left out), calibrated on {}",
            samples.len(),
            skipped.chaos,
            skipped.cause_not_a_candidate,
            held.len()
        );
        println!(
            "  log loss (fit / calibration split): current weights {:.4} / {:.4}; fitted {:.4} / {:.4}; calibrated {:.4} / {:.4}",
            model::log_loss(&model::WEIGHTS, samples),
            model::log_loss(&model::WEIGHTS, held),
            model::log_loss(&fitted, samples),
            model::log_loss(&fitted, held),
            model::log_loss(&shipped, samples),
            model::log_loss(&shipped, held),
        );
        println!(
            "  most probable answer right (fit / calibration split): current weights {:.1} % / {:.1} %; shipped {:.1} % / {:.1} %",
            100.0 * accuracy(&model::WEIGHTS, samples),
            100.0 * accuracy(&model::WEIGHTS, held),
            100.0 * accuracy(&shipped, samples),
            100.0 * accuracy(&shipped, held),
        );
        let candidates: usize = samples.iter().map(|s| s.rows.len()).sum();
        println!(
            "  candidates per alert: {:.1}",
            candidates as f64 / samples.len().max(1) as f64
        );
    }
    println!(
        "all: {} alerts fitted (L2 {l2}), {} calibrating; temperature {t:.3}; calibrated log loss {:.4}",
        train_all.len(),
        calibration_all.len(),
        model::log_loss(&shipped, &calibration_all)
    );
    println!();
    println!("{}", model::to_source(&shipped));
}

/// `BENCH_SAMPLES_OUT=DIR`: writes the samples as JSON lines (`train.jsonl`,
/// `calibration.jsonl`: generator, kind, feature rows in [`model::FEATURE_NAMES`] order, the
/// cause's row or null) for working on the model outside the benchmark.
pub fn dump(dir: &std::path::Path, train: &[Group], calibration: &[Group]) {
    use std::io::Write as _;
    std::fs::create_dir_all(dir).expect("the samples' directory");
    for (name, groups) in [("train", train), ("calibration", calibration)] {
        let path = dir.join(format!("{name}.jsonl"));
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(&path).expect("a samples file"));
        for (generator, (samples, skipped)) in groups {
            for (sample, kind) in samples.iter().zip(&skipped.kinds) {
                let line = serde_json::json!({
                    "generator": generator,
                    "kind": kind,
                    "features": model::FEATURE_NAMES,
                    "rows": sample.rows,
                    "cause": sample.cause,
                });
                writeln!(out, "{line}").expect("a samples file");
            }
        }
        out.flush().expect("a samples file");
        println!("samples written to {}", path.display());
    }
}
