//! The attribution benchmark's generator, driver and scoring (`benches/attribution/`), tested
//! here because a `harness = false` bench's own tests never run: every kind gives well-formed
//! worlds with the ground truth where the kind says, the same seed gives the same world, the
//! worlds are not trivially easy (innocent deployments land between the culprit and the alert
//! often), every recordable world goes through the API into SQLite with its ground truth
//! stored, and the scoring rules match hand computations.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "../benches/attribution/driver.rs"]
mod driver;
#[allow(dead_code)]
#[path = "../benches/attribution/generator/mod.rs"]
mod generator;
#[allow(dead_code)]
#[path = "../benches/attribution/score.rs"]
mod score;

use deploygraph_api::{ApiConfig, AppState, router_with_inline_follow_ups};
use generator::{Cause, Kind, Role, Status, World, generate};
use std::sync::Arc;

#[test]
fn every_kind_gives_well_formed_worlds_with_their_ground_truth_in_place() {
    for kind in Kind::ALL {
        for seed in (0..40).chain(1_000_000..1_000_040) {
            let world = generate(kind, seed);
            world
                .check()
                .unwrap_or_else(|e| panic!("{} seed {seed}: {e}", kind.name()));
        }
    }
}

#[test]
fn the_check_refuses_a_cause_after_the_alert_at_the_wrong_depth_or_missing() {
    let w = generate(Kind::TwoHops, 5);
    let Cause::Deployment(c) = w.cause else {
        panic!("a deployment caused it")
    };
    let alert = w.alerts[w.scored_alerts()[0]].starts_at;
    let mut late = w.clone();
    late.deployments[c].started_at = alert + chrono::Duration::minutes(1);
    late.deployments[c].finished_at = Some(alert + chrono::Duration::minutes(3));
    late.deployments[c].recorded_at = alert + chrono::Duration::minutes(3);
    assert!(late.check().is_err(), "a cause after the alert");
    let mut shallow = w.clone();
    shallow.kind = Kind::ThreeHops;
    assert!(shallow.check().is_err(), "two hops labelled three");
    let mut innocent = w.clone();
    innocent.deployments[c].role = Role::Background;
    assert!(innocent.check().is_err(), "a cause that is not the culprit");
    let mut none = w;
    none.cause = Cause::None;
    assert!(none.check().is_err(), "no cause for a kind that has one");
}

#[test]
fn a_seed_gives_the_same_world_and_another_seed_another() {
    for kind in Kind::ALL {
        assert_eq!(generate(kind, 7), generate(kind, 7), "{}", kind.name());
        assert_ne!(generate(kind, 7), generate(kind, 8), "{}", kind.name());
    }
    // Kinds of one seed do not share services.
    let a = generate(Kind::OwnChange, 3);
    let b = generate(Kind::TwoHops, 3);
    assert!(a.services.iter().all(|s| !b.services.contains(s)));
}

#[test]
fn worlds_vary_and_innocents_often_land_closer_to_the_alert_than_the_culprit() {
    let worlds: Vec<World> = (0..300).map(|s| generate(Kind::OwnChange, s)).collect();
    let closer = worlds.iter().filter(|w| w.innocent_in_between()).count();
    assert!(
        (60..=240).contains(&closer),
        "{closer} of 300 own-change worlds have an innocent deployment closer to the alert"
    );
    let shapes: std::collections::BTreeSet<String> =
        worlds.iter().map(|w| format!("{:?}", w.shape)).collect();
    assert_eq!(shapes.len(), 5, "{shapes:?}");
    let sizes: std::collections::BTreeSet<usize> =
        worlds.iter().map(|w| w.services.len()).collect();
    assert!(sizes.contains(&3) && sizes.contains(&12), "{sizes:?}");
    let lags: Vec<i64> = worlds
        .iter()
        .filter_map(|w| match w.cause {
            Cause::Deployment(c) => {
                Some((w.alerts[0].starts_at - w.deployments[c].landed()).num_minutes())
            }
            _ => None,
        })
        .collect();
    let distinct: std::collections::BTreeSet<i64> = lags.iter().copied().collect();
    assert!(distinct.len() > 60, "timings vary: {distinct:?}");
    // Innocent config changes and failed rollouts exist, not only culprit ones.
    let innocent = |w: &World, f: &dyn Fn(&generator::Deploy) -> bool| {
        w.deployments
            .iter()
            .any(|d| d.role != Role::Culprit && f(d))
    };
    assert!(
        worlds
            .iter()
            .filter(|w| innocent(w, &|d| !d.changes.is_empty()))
            .count()
            > 250
    );
    assert!(
        worlds
            .iter()
            .filter(|w| innocent(w, &|d| d.status == Status::Failed))
            .count()
            > 30
    );
}

#[test]
fn a_dependency_config_change_is_followed_by_an_unchanged_redeploy_of_the_alerting_service() {
    for seed in 0..50 {
        let w = generate(Kind::DependencyConfigThenNoopRedeploy, seed);
        let Cause::Deployment(c) = w.cause else {
            panic!("a deployment caused it")
        };
        let culprit = &w.deployments[c];
        assert!(
            !culprit.changes.is_empty() && !w.new_image(c),
            "config only"
        );
        let alert = &w.alerts[w.scored_alerts()[0]];
        let noop = w
            .deployments
            .iter()
            .enumerate()
            .find(|(_, d)| d.role == Role::NoopRedeploy)
            .expect("a no-op redeploy");
        assert_eq!(noop.1.service, alert.service);
        assert!(
            noop.1.changes.is_empty() && !w.new_image(noop.0),
            "unchanged"
        );
        assert!(noop.1.landed() > culprit.landed() && noop.1.landed() < alert.starts_at);
    }
}

#[test]
fn every_kind_can_be_recorded_and_changes_cause_their_own() {
    assert!(Kind::ALL.into_iter().all(|k| k.missing().is_none()));
    for kind in [Kind::ConfigMapEdit, Kind::FlagFlip] {
        let w = generate(kind, 1);
        assert!(matches!(w.cause, Cause::Change(_)), "{}", kind.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_recordable_world_goes_through_the_api_with_its_ground_truth_stored() {
    let (_dir, store) = deploygraph_store::testing::sqlite().await;
    let app = router_with_inline_follow_ups(
        AppState::new(Arc::clone(&store), ApiConfig::default()),
        std::time::Duration::from_secs(30),
    );
    for kind in Kind::ALL {
        let world = generate(kind, 11);
        let recorded = driver::record(&app, &world)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", kind.name()));
        assert_eq!(recorded.answers.len(), world.scored_alerts().len());
        assert!(recorded.deployments.iter().all(|u| !u.is_empty()));
        assert!(recorded.changes.iter().all(|u| !u.is_empty()));
        match world.cause {
            Cause::Deployment(i) => {
                let uid = &recorded.deployments[i];
                let d = store
                    .get_deployment(&deploygraph_model::Uid::from_stored(uid))
                    .await
                    .unwrap()
                    .unwrap_or_else(|| panic!("{}: the culprit {uid} is stored", kind.name()));
                assert_eq!(
                    d.deployment.service.as_str(),
                    world.services[world.deployments[i].service]
                );
            }
            Cause::Chaos(i) => {
                let uid = &recorded.chaos[i];
                let run = store
                    .get_chaos_run(&deploygraph_model::Uid::from_stored(uid))
                    .await
                    .unwrap()
                    .expect("the chaos run is stored");
                assert_eq!(run.ended_at.is_some(), world.chaos[i].ended_at.is_some());
                for (_, answer) in &recorded.answers {
                    assert_eq!(
                        answer.chaos.as_deref(),
                        Some(uid.as_str()),
                        "{}",
                        kind.name()
                    );
                }
            }
            Cause::Change(i) => {
                let uid = &recorded.changes[i];
                let change = store
                    .get_change(&deploygraph_model::Uid::from_stored(uid))
                    .await
                    .unwrap()
                    .unwrap_or_else(|| panic!("{}: the culprit {uid} is stored", kind.name()));
                assert_eq!(
                    change.services[0].name.as_str(),
                    world.services[world.changes[i].service]
                );
                assert_eq!(change.at, world.changes[i].at);
            }
            Cause::None => {}
        }
        // The rule's answer is a stored deployment of the alerting service before the alert.
        for a in world.scored_alerts() {
            if let Some(i) = world.last_deployment_before(a) {
                assert_eq!(world.deployments[i].service, world.alerts[a].service);
                assert!(world.deployments[i].started_at <= world.alerts[a].starts_at);
            }
        }
    }
}

#[test]
fn the_deployment_bodies_are_what_the_api_accepts_for_an_unchanged_redeploy() {
    let w = generate(Kind::DependencyConfigThenNoopRedeploy, 2);
    let noop = w
        .deployments
        .iter()
        .position(|d| d.role == Role::NoopRedeploy)
        .unwrap();
    let previous = w.deployments[..noop]
        .iter()
        .rposition(|d| d.service == w.deployments[noop].service)
        .expect("the alerting service ran a release before");
    let (a, b) = (
        driver::deployment_body(&w, previous),
        driver::deployment_body(&w, noop),
    );
    assert_eq!(a["images"], b["images"], "same image");
    assert_eq!(a["commit"]["sha"], b["commit"]["sha"], "same commit");
    assert_eq!(b["changes"], serde_json::json!([]));
}

mod scoring {
    use super::score::*;

    fn predicted(suspects: &[(&str, f64)]) -> Prediction {
        Prediction {
            chaos: None,
            suspects: suspects
                .iter()
                .map(|(u, p)| ((*u).to_owned(), *p))
                .collect(),
        }
    }

    #[test]
    fn the_rank_of_the_culprit_gives_top1_top3_and_reciprocal_rank() {
        let truth = Truth::Deployment("c".into());
        let first = judge(&truth, &predicted(&[("c", 0.4), ("x", 0.2)]));
        assert!(first.top1 && first.top3 && first.top_is_cause);
        assert_eq!((first.rr, first.confidence), (1.0, 0.4));
        let third = judge(&truth, &predicted(&[("x", 0.6), ("y", 0.3), ("c", 0.1)]));
        assert!(!third.top1 && third.top3 && !third.top_is_cause);
        assert!((third.rr - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(third.confidence, 0.6);
        let absent = judge(&truth, &predicted(&[]));
        assert_eq!(
            (absent.top3, absent.rr, absent.confidence),
            (false, 0.0, 0.0)
        );
    }

    #[test]
    fn no_recorded_cause_is_right_without_a_suspect_at_one_half_or_more() {
        let none = Truth::None;
        assert!(judge(&none, &predicted(&[])).top1);
        assert!(judge(&none, &predicted(&[("x", 0.49)])).top1);
        let blamed = judge(&none, &predicted(&[("x", 0.5)]));
        assert!(!blamed.top1 && !blamed.top_is_cause);
        assert_eq!(blamed.confident_without_cause, Some(true));
        let chaos = Prediction {
            chaos: Some("run".into()),
            suspects: Vec::new(),
        };
        assert!(!judge(&none, &chaos).top1, "blaming a chaos run is blaming");
    }

    #[test]
    fn a_chaos_cause_needs_the_run_and_no_deployment() {
        let truth = Truth::Chaos("run".into());
        let right = Prediction {
            chaos: Some("run".into()),
            suspects: Vec::new(),
        };
        let o = judge(&truth, &right);
        assert!(o.top1 && o.top_is_cause);
        assert_eq!(o.confidence, 1.0);
        assert!(!judge(&truth, &predicted(&[("x", 0.9)])).top3);
        let other = Prediction {
            chaos: Some("another".into()),
            suspects: Vec::new(),
        };
        assert!(!judge(&truth, &other).top1);
    }

    #[test]
    fn calibration_figures_match_a_hand_computation() {
        let o = |confidence: f64, right: bool| Outcome {
            top1: right,
            top3: right,
            rr: f64::from(u8::from(right)),
            confidence,
            top_is_cause: right,
            confident_without_cause: None,
        };
        // Bin 9: 0.9 and 1.0, one right → conf 0.95, acc 0.5. Bin 1: 0.1 and 0.1, neither
        // right → conf 0.1, acc 0.
        let s = summarize(&[o(0.9, true), o(1.0, false), o(0.1, false), o(0.1, false)]);
        assert_eq!(s.n, 4);
        assert_eq!(s.bins[9].count, 2);
        assert!((s.bins[9].confidence - 0.95).abs() < 1e-12);
        assert!((s.bins[9].accuracy - 0.5).abs() < 1e-12);
        assert_eq!(s.bins[1].count, 2);
        // ECE = 0.5 × 0.45 + 0.5 × 0.1.
        assert!((s.ece - 0.275).abs() < 1e-12, "{}", s.ece);
        // Brier = (0.01 + 1 + 0.01 + 0.01) / 4.
        assert!((s.brier - 0.2575).abs() < 1e-12, "{}", s.brier);
        assert_eq!(s.top1, 0.25);
        assert_eq!(s.confidence_when_right, Some(0.9));
        assert_eq!(bin_of(0.0), 0);
        assert_eq!(bin_of(0.1), 1);
        assert_eq!(bin_of(1.0), 9);
    }
}
