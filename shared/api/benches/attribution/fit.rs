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
        }
    }
    (out, skipped)
}

/// Fits on `train`, calibrates on `calibration`, prints the figures and the source.
pub fn report(train: &[Sample], calibration: &[Sample], skipped: &Skipped) {
    let l2 = 1.0;
    let fitted = model::fit(train, l2);
    let t = model::calibrate(&fitted, calibration);
    let shipped = fitted.tempered(t);
    println!(
        "fit on {} alerts ({} caused by chaos, {} whose cause is not a candidate left out), calibrated on {}",
        train.len(),
        skipped.chaos,
        skipped.cause_not_a_candidate,
        calibration.len()
    );
    println!(
        "log loss: current weights {:.4} (train) {:.4} (calibration); fitted {:.4} / {:.4}; temperature {t:.3} → {:.4} (calibration)",
        model::log_loss(&model::WEIGHTS, train),
        model::log_loss(&model::WEIGHTS, calibration),
        model::log_loss(&fitted, train),
        model::log_loss(&fitted, calibration),
        model::log_loss(&shipped, calibration),
    );
    let candidates: usize = train.iter().map(|s| s.rows.len()).sum();
    println!(
        "candidates per alert: {:.1}",
        candidates as f64 / train.len().max(1) as f64
    );
    println!();
    println!("{}", model::to_source(&shipped));
}
