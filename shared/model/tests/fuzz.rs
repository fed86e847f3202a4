//! Fuzz targets for the model's parsers of outside input: Alertmanager webhook bodies,
//! deployment bodies (`POST /v1/deployments`), dependency bodies and topology files.
//!
//! `cargo test` runs each target as a bounded smoke run: every file of its seed corpus
//! (`tests/__fuzz__/fuzz__<target>/corpus`) and crash regressions, then random inputs for a
//! few seconds. `cargo bolero test` runs them coverage-guided (docs/fuzzing.md). Inputs are
//! raw bytes, or recipes for documents over each parser's vocabulary
//! (`deploygraph_model::fuzzing`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_model::alertmanager::{AlertMapping, parse_notification, parse_webhook};
use deploygraph_model::deployment::DeploymentInput;
use deploygraph_model::fuzzing::{self, json_input, yaml_input};
use deploygraph_model::topology::{DependenciesInput, TopologyInput};
use deploygraph_model::{Alert, AlertStatus, Deployment, Environment, Source};
use std::time::Duration;

/// How long the smoke run of one target generates random inputs under `cargo test`.
const SMOKE_TIME: Duration = Duration::from_secs(3);
/// And at most this many.
const SMOKE_ITERATIONS: usize = 200_000;

#[test]
fn alertmanager_webhook() {
    let mapping = AlertMapping {
        default_environment: Environment::parse("staging").ok(),
        ..AlertMapping::default()
    };
    bolero::check!()
        .with_test_time(SMOKE_TIME)
        .with_iterations(SMOKE_ITERATIONS)
        .for_each(|input: &[u8]| {
            let body = json_input(input, fuzzing::WEBHOOK_WORDS);
            let parsed = parse_webhook(&body, &mapping);
            match &parsed {
                Ok(alerts) => {
                    for alert in alerts {
                        assert!(!alert.fingerprint.trim().is_empty());
                        assert!(alert.fingerprint.len() <= 128);
                        assert!(!alert.name.is_empty());
                        assert_eq!(
                            alert.uid,
                            Alert::uid_for(&alert.fingerprint, &alert.starts_at)
                        );
                        if alert.status == AlertStatus::Firing {
                            assert_eq!(alert.ends_at, None);
                        }
                        // What the API stores and returns reads back as the same alert.
                        let json = serde_json::to_vec(alert).unwrap();
                        assert_eq!(&serde_json::from_slice::<Alert>(&json).unwrap(), alert);
                    }
                }
                Err(e) => assert!(!e.message.is_empty()),
            }
            // The API parses the body once as JSON and hands the value over: same verdict.
            if let Ok(value) = serde_json::from_slice(&body) {
                assert_eq!(parse_notification(value, &mapping), parsed);
            }
        });
}

#[test]
fn deployment_input() {
    bolero::check!()
        .with_test_time(SMOKE_TIME)
        .with_iterations(SMOKE_ITERATIONS)
        .for_each(|input: &[u8]| {
            let body = json_input(input, fuzzing::DEPLOYMENT_WORDS);
            let Ok(input) = serde_json::from_slice::<DeploymentInput>(&body) else {
                return;
            };
            // The input reads back as itself (the CLI and the client send it this way).
            let json = serde_json::to_vec(&input).unwrap();
            assert_eq!(
                serde_json::from_slice::<DeploymentInput>(&json).unwrap(),
                input
            );
            let validated = input.validate(Source::Api);
            // Validation is a function of the input: same answer, same uid.
            assert_eq!(input.validate(Source::Api), validated);
            match validated {
                Ok(deployment) => {
                    assert!(!deployment.images.is_empty());
                    if let Some(finished) = deployment.finished_at {
                        assert!(finished >= deployment.started_at);
                    }
                    // What the store and the API hand back reads back as the same deployment.
                    let json = serde_json::to_vec(&deployment).unwrap();
                    assert_eq!(
                        serde_json::from_slice::<Deployment>(&json).unwrap(),
                        deployment
                    );
                }
                Err(e) => assert!(!e.message.is_empty()),
            }
        });
}

const TOPOLOGY_WORDS: &[&str] = &[
    "services",
    "name",
    "namespace",
    "environment",
    "depends_on",
    "payments",
    "redis",
    "postgres",
    "data",
];

fn yaml(value: &serde_json::Value) -> Option<String> {
    serde_norway::to_string(value).ok()
}

#[test]
fn topology_file() {
    bolero::check!()
        .with_test_time(SMOKE_TIME)
        .with_iterations(SMOKE_ITERATIONS)
        .for_each(|input: &[u8]| {
            let text = yaml_input(input, TOPOLOGY_WORDS, yaml);
            // As `deploygraph topology load FILE` reads it.
            let Ok(file) = serde_norway::from_str::<TopologyInput>(&text) else {
                return;
            };
            if let Ok(services) = file.validate() {
                for s in services {
                    let (service, deps) = (s.service, s.depends_on);
                    assert!(!deps.contains(&service), "{service} depends on itself");
                    assert!(
                        deps.windows(2).all(|w| w[0] < w[1]),
                        "sorted, no duplicates"
                    );
                }
            }
        });
}

#[test]
fn dependencies_body() {
    bolero::check!()
        .with_test_time(SMOKE_TIME)
        .with_iterations(SMOKE_ITERATIONS)
        .for_each(|input: &[u8]| {
            let body = json_input(input, TOPOLOGY_WORDS);
            let Ok(input) = serde_json::from_slice::<DependenciesInput>(&body) else {
                return;
            };
            match input.validate("payments") {
                Ok(topology) => {
                    assert_eq!(topology.service.name.as_str(), "payments");
                    assert!(!topology.depends_on.contains(&topology.service));
                }
                Err(e) => assert!(!e.field.is_empty() || !e.message.is_empty()),
            }
        });
}

const BACKSTAGE_WORDS: &[&str] = &[
    "apiVersion",
    "backstage.io/v1alpha1",
    "kind",
    "Component",
    "Resource",
    "API",
    "metadata",
    "name",
    "namespace",
    "annotations",
    "backstage.io/kubernetes-id",
    "backstage.io/kubernetes-namespace",
    "deploygraph.io/tier",
    "spec",
    "owner",
    "dependsOn",
    "dependencyOf",
    "consumesApis",
    "providesApis",
    "component:payments",
    "resource:default/redis",
    "payments",
    "redis",
];

#[test]
fn backstage_catalog() {
    use deploygraph_model::backstage::{CatalogFile, ImportOptions, parse};
    let options = ImportOptions {
        environment: deploygraph_model::Environment::parse("production").unwrap(),
        namespace: None,
        cluster: deploygraph_model::Cluster::default(),
    };
    bolero::check!()
        .with_test_time(SMOKE_TIME)
        .with_iterations(SMOKE_ITERATIONS)
        .for_each(|input: &[u8]| {
            let text = yaml_input(input, BACKSTAGE_WORDS, yaml);
            let file = CatalogFile {
                path: "catalog-info.yaml".into(),
                content: text.into_owned(),
            };
            match parse(&[file], &options) {
                Ok(import) => {
                    for s in import.services {
                        assert!(
                            !s.depends_on.contains(&s.service),
                            "{} depends on itself",
                            s.service
                        );
                        assert!(s.depends_on.windows(2).all(|w| w[0] < w[1]));
                    }
                }
                Err(e) => {
                    assert_eq!(e.field, "files[0]");
                    assert!(e.message.starts_with("catalog-info.yaml: "), "{e}");
                }
            }
        });
}
