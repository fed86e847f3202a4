//! Every shipped scenario file parses; invalid ones are refused naming the field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_chaos::scenario::{Driver, load_dir, parse};
use deploygraph_model::ChaosVerdict;
use std::path::Path;

#[test]
fn every_shipped_scenario_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../chaos-scenarios");
    let scenarios = load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    let experiments: Vec<&str> = scenarios.iter().map(|s| s.experiment.as_str()).collect();
    for required in [
        "pod-delete",
        "pod-network-partition",
        "pod-memory-hog",
        "pod-dns-error",
        "node-cpu-hog",
    ] {
        assert!(
            experiments.contains(&required),
            "{required} ships: {experiments:?}"
        );
    }
    let local = scenarios
        .iter()
        .filter(|s| s.driver == Driver::Local)
        .count();
    assert!(local >= 2, "two local scenarios ship, found {local}");
    let memory = scenarios
        .iter()
        .find(|s| s.experiment == "pod-memory-hog")
        .unwrap();
    assert_eq!(
        memory.tunables["MEMORY_CONSUMPTION"], "2048",
        "2 GiB of pressure"
    );
    for s in &scenarios {
        if s.driver == Driver::Local {
            deploygraph_chaos::run::local_fault(s).unwrap_or_else(|e| panic!("{}: {e}", s.name));
        } else {
            let manifest = deploygraph_chaos::run::dry_run(s, chrono::Utc::now()).unwrap();
            assert_eq!(
                manifest["spec"]["experiments"][0]["name"],
                s.experiment.as_str()
            );
        }
        assert_eq!(s.expected_verdict, ChaosVerdict::Pass, "{}", s.name);
        assert!(!s.allowed_namespaces.is_empty());
    }
}

const VALID: &str = r#"
target: {service: payments, environment: production, namespace: prod, labels: {app: payments}}
driver: litmus
experiment: pod-delete
duration: 30s
allowed_namespaces: [prod]
"#;

#[test]
fn a_minimal_scenario_takes_the_defaults() {
    let s = parse("payments-pod-delete.yaml", VALID).unwrap();
    assert_eq!(s.name, "payments-pod-delete");
    assert_eq!(s.target.kind, "deployment");
    assert_eq!(s.expected_verdict, ChaosVerdict::Pass);
    assert_eq!(s.duration.as_secs(), 30);
}

#[test]
fn invalid_scenarios_name_the_field() {
    let cases: Vec<(String, &str)> = vec![
        (
            VALID.replace("namespace: prod,", "namespace: kube-system,"),
            "target.namespace",
        ),
        (
            VALID.replace("allowed_namespaces: [prod]", ""),
            "allowed_namespaces",
        ),
        (VALID.replace("duration: 30s", "duration: soon"), "duration"),
        (
            VALID.replace("service: payments", "service: Payments_API"),
            "target.service",
        ),
        (VALID.replace("driver: litmus", "driver: gremlin"), "driver"),
        (
            VALID.replace(", labels: {app: payments}", ""),
            "target.labels",
        ),
        (
            format!("{VALID}expected_verdict: Maybe\n"),
            "expected_verdict",
        ),
        (
            format!("{VALID}abort: {{deadline: 10s}}\n"),
            "abort.deadline",
        ),
        (
            format!("{VALID}tunables: {{TOTAL_CHAOS_DURATION: '5'}}\n"),
            "tunables.TOTAL_CHAOS_DURATION",
        ),
        (
            format!(
                "{VALID}probes: [{{name: p, type: magicProbe, mode: SOT, runProperties: {{}}}}]\n"
            ),
            "probes[0].type",
        ),
        (
            format!("{VALID}probes: [{{name: p, mode: SOT}}]\n"),
            "probes[0].type",
        ),
        (
            format!("{VALID}steady_state: {{dns: [{{name: x, expect: maybe}}]}}\n"),
            "steady_state.dns[0].expect",
        ),
        (format!("{VALID}surprise: 1\n"), ""),
        (VALID.replace("driver: litmus", "driver: local"), "local"),
    ];
    for (text, field) in cases {
        match parse("s.yaml", &text) {
            Err(e) => assert!(
                e.field == field || (field.is_empty() && e.message.contains("surprise")),
                "{field}: got {e}"
            ),
            Ok(s) => panic!("accepted for {field}: {s:?}"),
        }
    }
}
