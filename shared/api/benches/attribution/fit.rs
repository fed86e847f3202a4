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
            let (rows, index) = rows_of(store, &answer.alert_uid, settings, cause.as_deref()).await;
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

/// The feature rows of the alert `alert_uid`'s candidates as the engine sees them, and the row
/// of `cause` (a deployment's or a change's uid) among them.
pub async fn rows_of(
    store: &dyn GraphStore,
    alert_uid: &str,
    settings: &Settings,
    cause: Option<&str>,
) -> (Vec<[f64; attribution::FEATURES]>, Option<usize>) {
    let alert = store
        .get_alert(&Uid::from_stored(alert_uid.to_owned()))
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
        if cause == Some(c.deployment.as_str()) {
            index = Some(rows.len());
        }
        rows.push(
            attribution::features(attribution::AlertTime::of(&alert), c, &candidates, delta)
                .to_array(),
        );
    }
    (rows, index)
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
    if std::env::var("BENCH_HEADROOM").is_ok_and(|v| v == "1") {
        println!();
        println!(
            "Head-room (BENCH_HEADROOM=1): top-1 over alerts with a recorded cause on the calibration split, the shipped form against a conditional logit on every feature and every pairwise product of two (fitted on the fit split)"
        );
        println!();
        println!("| generator | shipped | every pairwise product |");
        println!("|---|---:|---:|");
        for (name, shipped, richer) in headroom(&train_all, calibration, &shipped) {
            println!(
                "| {name} | {:.1} % | {:.1} % |",
                100.0 * shipped,
                100.0 * richer
            );
        }
    }
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

/// How much a far richer model of the same evidence would gain: a conditional logit on every
/// feature and every pairwise product of two (standardised on the fit split, L2 3), fitted on
/// `train`. Returns, per group of `calibration`, the top-1 over alerts with a recorded cause of
/// the shipped weights and of that model.
pub fn headroom(
    train: &[Sample],
    calibration: &[Group],
    shipped: &model::Weights,
) -> Vec<(&'static str, f64, f64)> {
    let expand = |row: &[f64; attribution::FEATURES]| -> Vec<f64> {
        let mut x = row.to_vec();
        for i in 0..row.len() {
            for j in i..row.len() {
                x.push(row[i] * row[j]);
            }
        }
        x
    };
    let dims = expand(&[0.0; attribution::FEATURES]).len();
    let mut mean = vec![0.0; dims];
    let mut square = vec![0.0; dims];
    let mut count: f64 = 0.0;
    for s in train {
        for r in &s.rows {
            for (k, v) in expand(r).into_iter().enumerate() {
                mean[k] += v;
                square[k] += v * v;
            }
            count += 1.0;
        }
    }
    let scale: Vec<(f64, f64)> = (0..dims)
        .map(|k| {
            let m = mean[k] / count.max(1.0);
            let sd = (square[k] / count.max(1.0) - m * m).max(0.0).sqrt();
            (m, if sd < 1e-9 { 1.0 } else { sd })
        })
        .collect();
    // Each answer's row: the standardised expansion and the null's indicator last.
    let prepare = |s: &Sample| -> (Vec<Vec<f64>>, usize) {
        let mut rows: Vec<Vec<f64>> = s
            .rows
            .iter()
            .map(|r| {
                let mut x: Vec<f64> = expand(r)
                    .into_iter()
                    .zip(&scale)
                    .map(|(v, (m, sd))| (v - m) / sd)
                    .collect();
                x.push(0.0);
                x
            })
            .collect();
        let mut null = vec![0.0; dims + 1];
        null[dims] = 1.0;
        rows.push(null);
        let truth = s.cause.unwrap_or(s.rows.len());
        (rows, truth)
    };
    let data: Vec<(Vec<Vec<f64>>, usize)> = train.iter().map(prepare).collect();
    let w = fit_dense(&data, dims + 1, 3.0);
    let top1 = |samples: &[Sample], score: &dyn Fn(&Sample) -> Vec<f64>| {
        let caused: Vec<&Sample> = samples.iter().filter(|s| s.cause.is_some()).collect();
        let right = caused
            .iter()
            .filter(|s| {
                let scores = score(s);
                let best = scores
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(i, _)| i);
                best == s.cause
            })
            .count();
        right as f64 / caused.len().max(1) as f64
    };
    calibration
        .iter()
        .map(|(name, (samples, _))| {
            let shipped = top1(samples, &|s: &Sample| {
                s.rows.iter().map(|r| shipped.score(r)).collect()
            });
            let richer = top1(samples, &|s: &Sample| {
                let (rows, _) = prepare(s);
                rows[..rows.len() - 1]
                    .iter()
                    .map(|x| x.iter().zip(&w).map(|(a, b)| a * b).sum())
                    .collect()
            });
            (*name, shipped, richer)
        })
        .collect()
}

/// Maximum likelihood of a conditional logit over dense rows (each sample: its answers' rows
/// and the true answer's index), L2 `l2` on every weight but the last (the null's), by
/// Newton's method with backtracking.
fn fit_dense(data: &[(Vec<Vec<f64>>, usize)], dims: usize, l2: f64) -> Vec<f64> {
    let objective = |w: &[f64]| -> f64 {
        let mut total = 0.0;
        for (rows, truth) in data {
            let scores: Vec<f64> = rows
                .iter()
                .map(|x| x.iter().zip(w).map(|(a, b)| a * b).sum())
                .collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let log_sum = scores.iter().map(|s| (s - max).exp()).sum::<f64>().ln() + max;
            total += log_sum - scores[*truth];
        }
        total + l2 / 2.0 * w[..dims - 1].iter().map(|v| v * v).sum::<f64>()
    };
    let mut w = vec![0.0; dims];
    let mut current = objective(&w);
    for _ in 0..40 {
        let mut grad = vec![0.0; dims];
        let mut hess = vec![0.0; dims * dims];
        for (rows, truth) in data {
            let scores: Vec<f64> = rows
                .iter()
                .map(|x| x.iter().zip(&w).map(|(a, b)| a * b).sum())
                .collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let total: f64 = exps.iter().sum();
            let mut mean = vec![0.0; dims];
            for (x, e) in rows.iter().zip(&exps) {
                let p = e / total;
                for (m, v) in mean.iter_mut().zip(x) {
                    *m += p * v;
                }
            }
            for (k, m) in mean.iter().enumerate() {
                grad[k] += m - rows[*truth][k];
            }
            for (x, e) in rows.iter().zip(&exps) {
                let p = e / total;
                let centred: Vec<f64> = x.iter().zip(&mean).map(|(v, m)| v - m).collect();
                for a in 0..dims {
                    let pa = p * centred[a];
                    if pa == 0.0 {
                        continue;
                    }
                    let row = &mut hess[a * dims..(a + 1) * dims];
                    for (h, c) in row[a..].iter_mut().zip(&centred[a..]) {
                        *h += pa * c;
                    }
                }
            }
        }
        for a in 0..dims {
            for b in 0..a {
                hess[a * dims + b] = hess[b * dims + a];
            }
            hess[a * dims + a] += 1e-9;
        }
        for k in 0..dims - 1 {
            grad[k] += l2 * w[k];
            hess[k * dims + k] += l2;
        }
        let Some(step) = solve_dense(hess, grad, dims) else {
            break;
        };
        let mut scale = 1.0;
        let mut improved = false;
        for _ in 0..30 {
            let next: Vec<f64> = w.iter().zip(&step).map(|(v, s)| v - scale * s).collect();
            let value = objective(&next);
            if value <= current {
                improved = current - value > 1e-7;
                w = next;
                current = value;
                break;
            }
            scale /= 2.0;
        }
        if !improved {
            break;
        }
    }
    w
}

/// Solves `a x = b` (`a` row-major, `n` × `n`) by Gaussian elimination with partial pivoting.
fn solve_dense(mut a: Vec<f64>, mut b: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    for col in 0..n {
        let pivot =
            (col..n).max_by(|i, j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))?;
        if a[pivot * n + col].abs() < 1e-12 {
            return None;
        }
        if pivot != col {
            for k in 0..n {
                a.swap(col * n + k, pivot * n + k);
            }
            b.swap(col, pivot);
        }
        for row in col + 1..n {
            let f = a[row * n + col] / a[col * n + col];
            if f == 0.0 {
                continue;
            }
            for k in col..n {
                a[row * n + k] -= f * a[col * n + k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let tail: f64 = (row + 1..n).map(|k| a[row * n + k] * x[k]).sum();
        x[row] = (b[row] - tail) / a[row * n + row];
    }
    Some(x)
}

/// `BENCH_SAMPLES_IN=DIR`: the samples [`dump`] wrote, as the fit's groups (fit, calibration),
/// so that the model can be refitted without writing the worlds again.
pub fn load(dir: &std::path::Path) -> (Vec<Group>, Vec<Group>) {
    let read = |name: &str| -> Vec<Group> {
        let path = dir.join(format!("{name}.jsonl"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut groups: Vec<Group> = Vec::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let names: Vec<&str> = v["features"]
                .as_array()
                .expect("features")
                .iter()
                .map(|f| f.as_str().expect("a feature name"))
                .collect();
            assert_eq!(
                names,
                model::FEATURE_NAMES,
                "samples of another feature set"
            );
            let rows: Vec<[f64; attribution::FEATURES]> =
                serde_json::from_value(v["rows"].clone()).expect("rows");
            let cause: Option<usize> = serde_json::from_value(v["cause"].clone()).expect("cause");
            let generator = v["generator"].as_str().expect("generator");
            let kind = v["kind"].as_str().expect("kind");
            let kind: &'static str = crate::generator::Kind::ALL
                .iter()
                .map(|k| k.name())
                .find(|n| *n == kind)
                .expect("a known kind");
            let at = match groups.iter().position(|(g, _)| *g == generator) {
                Some(at) => at,
                None => {
                    let title: &'static str = crate::Source::ALL
                        .iter()
                        .map(|s| s.title())
                        .find(|t| *t == generator)
                        .expect("a known generator");
                    groups.push((title, (Vec::new(), Skipped::default())));
                    groups.len() - 1
                }
            };
            let (samples, skipped) = &mut groups[at].1;
            samples.push(Sample { rows, cause });
            skipped.kinds.push(kind);
        }
        groups
    };
    (read("train"), read("calibration"))
}
