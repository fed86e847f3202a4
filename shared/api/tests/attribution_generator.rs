//! The attribution benchmark's generators, driver and scoring (`benches/attribution/`), tested
//! here because a `harness = false` bench's own tests never run: every kind gives well-formed
//! worlds with the ground truth where the kind says, the same seed gives the same world, the
//! worlds are not trivially easy (innocent deployments land between the culprit and the alert
//! often), every recordable world goes through the API into SQLite with its ground truth
//! stored, and the scoring rules match hand computations. Generator B (`generator_b/`) gets
//! the same checks, and is checked to be another generator than A, not a copy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "../benches/attribution/driver.rs"]
mod driver;
#[allow(dead_code)]
#[path = "../benches/attribution/generator/mod.rs"]
mod generator;
#[allow(dead_code)]
#[path = "../benches/attribution/generator_b/mod.rs"]
mod generator_b;
#[allow(dead_code)]
#[path = "../benches/attribution/metrics.rs"]
mod metrics;
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
    // Reviewed earlier incidents confirm deployments that changed the culprit's key.
    for seed in 0..20 {
        let w = generate(Kind::ReviewedKey, seed);
        let Cause::Deployment(culprit) = w.cause else {
            panic!("seed {seed}: the reviewed-key culprit is a deployment");
        };
        let key = &w.deployments[culprit].changes[0].path;
        assert!(!w.reviews.is_empty());
        for r in &w.reviews {
            let Cause::Deployment(i) = r.cause else {
                panic!("seed {seed}: a review confirms a deployment");
            };
            assert!(w.deployments[i].changes.iter().any(|c| &c.path == key));
            assert!(!w.alerts[r.alert].scored);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_recordable_world_goes_through_the_api_with_its_ground_truth_stored() {
    through_the_api(generate, 11, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_recordable_world_of_generator_b_goes_through_the_api_with_its_ground_truth_stored() {
    for seed in [11, 1_000_003] {
        through_the_api(generator_b::generate, seed, true).await;
    }
}

/// Writes the world of every kind for `seed` through the API into one SQLite store and checks
/// the ground truth is stored where the world says.
async fn through_the_api(generate: fn(Kind, u64) -> World, seed: u64, b: bool) {
    let (_dir, store) = deploygraph_store::testing::sqlite().await;
    let app = router_with_inline_follow_ups(
        AppState::new(Arc::clone(&store), ApiConfig::default()),
        std::time::Duration::from_secs(30),
    );
    for kind in Kind::ALL.into_iter().filter(|k| !b || k.in_generator_b()) {
        let world = generate(kind, seed);
        let recorded = driver::record(&app, &world, true).await;
        if kind.missing().is_some() {
            assert!(recorded.is_err(), "{}", kind.name());
            continue;
        }
        let recorded = recorded.unwrap_or_else(|e| panic!("{}: {e}", kind.name()));
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

mod generator_b_worlds {
    use super::generator::{Cause, ChangeSource, Kind, Role, Status, World};
    use super::generator_b::generate;
    use std::collections::BTreeSet;

    fn seeds() -> impl Iterator<Item = u64> {
        (0..40).chain(1_000_000..1_000_040)
    }

    #[test]
    fn every_kind_gives_well_formed_worlds_with_their_ground_truth_in_place() {
        for kind in Kind::ALL.into_iter().filter(|k| k.in_generator_b()) {
            for seed in seeds() {
                let world = generate(kind, seed);
                world
                    .check()
                    .unwrap_or_else(|e| panic!("{} seed {seed}: {e}", kind.name()));
            }
        }
    }

    #[test]
    fn a_seed_gives_the_same_world_and_another_seed_another() {
        for kind in Kind::ALL.into_iter().filter(|k| k.in_generator_b()) {
            for seed in [0, 7, 1_000_001] {
                assert_eq!(
                    generate(kind, seed),
                    generate(kind, seed),
                    "{}",
                    kind.name()
                );
                assert_ne!(
                    generate(kind, seed),
                    generate(kind, seed + 1),
                    "{}",
                    kind.name()
                );
            }
        }
        // Kinds of one seed do not share services, and neither do seeds of one kind.
        let a = generate(Kind::OwnChange, 3);
        let b = generate(Kind::TwoHops, 3);
        let c = generate(Kind::OwnChange, 4);
        assert!(a.services.iter().all(|s| !b.services.contains(s)));
        assert!(a.services.iter().all(|s| !c.services.contains(s)));
    }

    #[test]
    fn it_is_another_generator_than_a_not_a_copy() {
        let mut paths_a = BTreeSet::new();
        let mut paths_b = BTreeSet::new();
        let mut names_a = BTreeSet::new();
        let mut names_b = BTreeSet::new();
        for kind in Kind::ALL {
            for seed in 0..30 {
                let a = super::generate(kind, seed);
                let b = generate(kind, seed);
                assert_ne!(a, b, "{} seed {seed}", kind.name());
                assert!(
                    b.services.iter().all(|s| !a.services.contains(s)),
                    "{} seed {seed}: service names shared with generator A",
                    kind.name()
                );
                for (w, paths, names) in [
                    (&a, &mut paths_a, &mut names_a),
                    (&b, &mut paths_b, &mut names_b),
                ] {
                    for d in &w.deployments {
                        paths.extend(d.changes.iter().map(|c| c.path.clone()));
                    }
                    names.extend(w.alerts.iter().map(|x| x.name));
                }
            }
        }
        // Its own keys and alert names: none of them taken from A.
        assert!(paths_b.len() > 100, "{} key paths", paths_b.len());
        let shared: Vec<&String> = paths_b.intersection(&paths_a).collect();
        assert!(
            shared.is_empty(),
            "key paths shared with generator A: {shared:?}"
        );
        let shared: Vec<&&str> = names_b.intersection(&names_a).collect();
        assert!(
            shared.is_empty(),
            "alert names shared with generator A: {shared:?}"
        );
    }

    /// Minutes from the cause to the first scored alert.
    fn onset(w: &World) -> Option<i64> {
        let (_, at) = w.cause_at()?;
        Some((w.alerts[*w.scored_alerts().first()?].starts_at - at).num_minutes())
    }

    #[test]
    fn worlds_vary_and_innocents_often_land_closer_to_the_alert_than_the_culprit() {
        let worlds: Vec<World> = (0..300).map(|s| generate(Kind::OwnChange, s)).collect();
        let closer = worlds.iter().filter(|w| w.innocent_in_between()).count();
        assert!(
            (60..=240).contains(&closer),
            "{closer} of 300 own-change worlds have an innocent deployment closer to the alert"
        );
        let shapes: BTreeSet<String> = worlds.iter().map(|w| format!("{:?}", w.shape)).collect();
        assert_eq!(shapes.len(), 5, "{shapes:?}");
        let sizes: BTreeSet<usize> = worlds.iter().map(|w| w.services.len()).collect();
        assert!(sizes.contains(&3) && sizes.contains(&12), "{sizes:?}");
        // Some services record no dependency at all (cron jobs, consoles, datastores).
        assert!(
            worlds
                .iter()
                .all(|w| w.depends_on.iter().any(Vec::is_empty))
        );
        let lags: Vec<i64> = worlds.iter().filter_map(onset).collect();
        let distinct: BTreeSet<i64> = lags.iter().copied().collect();
        assert!(distinct.len() > 60, "timings vary: {distinct:?}");
        // Crash loops within minutes, and slow leaks or peaks that take hours.
        assert!(lags.iter().filter(|m| **m < 10).count() > 15, "{lags:?}");
        assert!(lags.iter().filter(|m| **m > 180).count() > 15, "{lags:?}");
        let innocent = |w: &World, f: &dyn Fn(&super::generator::Deploy) -> bool| {
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
        // Unchanged redeploys in the history, and rollbacks after the alert.
        assert!(
            worlds
                .iter()
                .filter(|w| (0..w.deployments.len())
                    .any(|i| w.deployments[i].changes.is_empty() && !w.new_image(i)))
                .count()
                > 100
        );
        assert!(
            worlds
                .iter()
                .filter(|w| w.deployments.iter().any(|d| d.role == Role::AfterAlert))
                .count()
                > 150
        );
    }

    #[test]
    fn a_rollback_of_the_culprit_restores_what_it_replaced() {
        let mut seen = 0;
        for seed in 0..200 {
            let w = generate(Kind::OwnChange, seed);
            let Cause::Deployment(c) = w.cause else {
                panic!("a deployment caused it")
            };
            let culprit = &w.deployments[c];
            let previous = w.deployments[..c]
                .iter()
                .rposition(|d| d.service == culprit.service);
            let Some(previous) = previous else { continue };
            let next = w.deployments[c + 1..]
                .iter()
                .position(|d| d.service == culprit.service)
                .map(|i| c + 1 + i);
            // A rollback right after the culprit takes the previous image and commit back and
            // reverses every key the culprit changed.
            let Some(next) = next else { continue };
            let back = &w.deployments[next];
            let before = &w.deployments[previous];
            if back.role != Role::AfterAlert || back.commit != before.commit {
                continue;
            }
            seen += 1;
            assert_eq!(back.version, before.version);
            for change in &culprit.changes {
                assert!(
                    back.changes.iter().any(|b| b.path == change.path
                        && b.before == change.after
                        && b.after == change.before),
                    "seed {seed}: {change:?} not undone by {:?}",
                    back.changes
                );
            }
        }
        assert!(seen > 40, "{seen} rollbacks right after the culprit");
    }

    #[test]
    fn each_kind_lays_its_cause_out_as_it_says() {
        for seed in 0..60 {
            let w = generate(Kind::DependencyConfigThenNoopRedeploy, seed);
            let Cause::Deployment(c) = w.cause else {
                panic!("a deployment caused it")
            };
            assert!(
                !w.deployments[c].changes.is_empty() && !w.new_image(c),
                "config only"
            );
            let alert = &w.alerts[w.scored_alerts()[0]];
            let (i, noop) = w
                .deployments
                .iter()
                .enumerate()
                .find(|(_, d)| d.role == Role::NoopRedeploy)
                .expect("a no-op redeploy");
            assert_eq!(noop.service, alert.service);
            assert!(noop.changes.is_empty() && !w.new_image(i), "unchanged");
            assert!(noop.landed() > w.deployments[c].landed() && noop.landed() < alert.starts_at);

            let w = generate(Kind::DependencyFailedRollout, seed);
            let Cause::Deployment(c) = w.cause else {
                panic!("a deployment caused it")
            };
            assert!(matches!(
                w.deployments[c].status,
                Status::Failed | Status::RolledBack
            ));

            let w = generate(Kind::Burst, seed);
            let Cause::Deployment(c) = w.cause else {
                panic!("a deployment caused it")
            };
            let alert = w.alerts[w.scored_alerts()[0]].starts_at;
            let train = w
                .deployments
                .iter()
                .filter(|d| d.role == Role::Burst || d.role == Role::Culprit)
                .count();
            assert!(train >= 6, "seed {seed}: a train of {train}");
            assert!(alert - w.deployments[c].started_at <= chrono::Duration::minutes(150));

            let w = generate(Kind::LateCulprit, seed);
            let Cause::Deployment(c) = w.cause else {
                panic!("a deployment caused it")
            };
            assert!(w.deployments[c].recorded_at > w.alerts[w.scored_alerts()[0]].starts_at);

            let w = generate(Kind::AlertStorm, seed);
            let paged: BTreeSet<usize> = w
                .scored_alerts()
                .iter()
                .map(|a| w.alerts[*a].service)
                .collect();
            assert!(paged.len() >= 2, "a storm pages several services");

            let w = generate(Kind::NoRecordedCause, seed);
            assert_eq!(w.cause, Cause::None);

            let w = generate(Kind::Chaos, seed);
            assert!(matches!(w.cause, Cause::Chaos(_)));

            for (kind, source) in [
                (Kind::ConfigMapEdit, ChangeSource::ConfigMap),
                (Kind::FlagFlip, ChangeSource::FeatureFlag),
            ] {
                let w = generate(kind, seed);
                let Cause::Change(c) = w.cause else {
                    panic!("{}: a change caused it", kind.name())
                };
                assert_eq!(w.changes[c].source, source);
                assert_ne!(w.changes[c].key.before, w.changes[c].key.after);
                assert!(w.changes.len() >= 2, "innocent changes beside the cause");
            }
        }
    }

    #[test]
    fn deployments_cluster_in_working_hours_and_trains_ship_together() {
        use chrono::{Datelike, Weekday};
        let mut weekend = 0usize;
        let mut all = 0usize;
        let mut trains = 0usize;
        for seed in 0..100 {
            let w = generate(Kind::NoRecordedCause, seed);
            all += w.deployments.len();
            weekend += w
                .deployments
                .iter()
                .filter(|d| matches!(d.started_at.weekday(), Weekday::Sat | Weekday::Sun))
                .count();
            // Five or more services starting within 40 minutes of each other.
            let starts: Vec<_> = w
                .deployments
                .iter()
                .map(|d| (d.started_at, d.service))
                .collect();
            if starts.iter().any(|(t, _)| {
                starts
                    .iter()
                    .filter(|(u, _)| *u >= *t && *u - *t <= chrono::Duration::minutes(40))
                    .map(|(_, s)| *s)
                    .collect::<BTreeSet<_>>()
                    .len()
                    >= 5
            }) {
                trains += 1;
            }
        }
        // Weekends are 2/7 of the time; freezes keep them far below that (UTC days, so time
        // zones blur the edges).
        assert!(
            weekend * 10 < all,
            "{weekend} of {all} deployments at weekends"
        );
        assert!(trains > 15, "{trains} of 100 worlds with a release train");
    }
}

mod scoring {
    use super::score::*;

    fn predicted(suspects: &[(&str, f64)]) -> Prediction {
        Prediction {
            chaos: None,
            unexplained: None,
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
            unexplained: None,
        };
        assert!(!judge(&none, &chaos).top1, "blaming a chaos run is blaming");
    }

    #[test]
    fn the_null_answer_is_the_top_answer_when_it_is_the_most_probable() {
        let with_null = |suspects: &[(&str, f64)], unexplained: f64| Prediction {
            unexplained: Some(unexplained),
            ..predicted(suspects)
        };
        let none = judge(&Truth::None, &with_null(&[("x", 0.2)], 0.8));
        assert!(none.top1 && none.top_is_cause);
        assert_eq!(none.confidence, 0.8);
        let empty = judge(&Truth::None, &with_null(&[], 1.0));
        assert!(empty.top_is_cause);
        assert_eq!(empty.confidence, 1.0);
        // The culprit ranks first among the suspects, but "nothing recorded" is more probable:
        // top-1 counts the suspects' ranking, calibration the top answer.
        let culprit = judge(
            &Truth::Deployment("c".into()),
            &with_null(&[("c", 0.3)], 0.7),
        );
        assert!(culprit.top1 && !culprit.top_is_cause);
        assert_eq!(culprit.confidence, 0.7);
    }

    #[test]
    fn a_chaos_cause_needs_the_run_and_no_deployment() {
        let truth = Truth::Chaos("run".into());
        let right = Prediction {
            chaos: Some("run".into()),
            suspects: Vec::new(),
            unexplained: None,
        };
        let o = judge(&truth, &right);
        assert!(o.top1 && o.top_is_cause);
        assert_eq!(o.confidence, 1.0);
        assert!(!judge(&truth, &predicted(&[("x", 0.9)])).top3);
        let other = Prediction {
            chaos: Some("another".into()),
            suspects: Vec::new(),
            unexplained: None,
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

#[test]
fn services_health_series_rise_where_the_harm_travels_and_nowhere_else() {
    let (mut harmed, mut shown) = (0, 0);
    for seed in 0..40 {
        let draw = || {
            let mut w = generate(Kind::TwoHops, seed);
            metrics::attach(&mut w, "a");
            w
        };
        let w = draw();
        assert_eq!(w.service_metrics, draw().service_metrics, "seed {seed}");
        assert_eq!(w.service_metrics.len(), w.services.len());
        let (cause, at) = w.cause_at().unwrap();
        let distances = w.distances();
        for (s, series) in w.service_metrics.iter().enumerate() {
            let Some(series) = series else { continue };
            let above_cause = distances[s][cause].is_some();
            if above_cause {
                harmed += 1;
            }
            if let Some(h) = series.harm_start {
                assert!(
                    above_cause,
                    "seed {seed}: {} is not above the cause",
                    w.services[s]
                );
                assert!(h >= at, "seed {seed}: harm before the cause took effect");
                shown += 1;
                // The level after the harm is above the level before it.
                let t = h.timestamp() as f64;
                let mean = |xs: Vec<f64>| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
                let before = mean(
                    series
                        .points
                        .iter()
                        .filter(|p| p.0 < t - 600.0)
                        .map(|p| p.1)
                        .collect(),
                );
                let last = mean(series.points.iter().rev().take(20).map(|p| p.1).collect());
                assert!(last > before, "seed {seed}: {before} → {last}");
            }
        }
    }
    // The harm shows on most of the services it reaches, not all.
    assert!(
        harmed > 40 && shown * 10 > harmed * 4 && shown < harmed,
        "{shown} of {harmed}"
    );
}
