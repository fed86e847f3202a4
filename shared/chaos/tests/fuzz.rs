//! Fuzz target for scenario files (`chaos-scenarios/*.yaml`, `deploygraph chaos run FILE`):
//! the scenario itself, its steady-state gate checks and its local fault.
//!
//! `cargo test` runs it as a bounded smoke run (its seed corpus, the shipped scenarios, under
//! `tests/__fuzz__/scenario_file/corpus`, then random inputs for a few seconds);
//! `cargo bolero test` runs it coverage-guided (docs/fuzzing.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_chaos::local::LocalFault;
use deploygraph_chaos::scenario::{Driver, parse};
use deploygraph_model::fuzzing::yaml_input;
use std::time::Duration;

/// How long the smoke run generates random inputs under `cargo test`.
const SMOKE_TIME: Duration = Duration::from_secs(3);
/// And at most this many.
const SMOKE_ITERATIONS: usize = 100_000;

const SCENARIO_WORDS: &[&str] = &[
    "name",
    "description",
    "target",
    "service",
    "environment",
    "namespace",
    "kind",
    "deployment",
    "statefulset",
    "labels",
    "app",
    "driver",
    "litmus",
    "local",
    "experiment",
    "pod-delete",
    "duration",
    "tunables",
    "CHAOS_INTERVAL",
    "TOTAL_CHAOS_DURATION",
    "probes",
    "type",
    "mode",
    "httpProbe",
    "runProperties",
    "steady_state",
    "dns",
    "tls",
    "abort",
    "alert_severity",
    "on_probe_failure",
    "deadline",
    "allowed_namespaces",
    "expected_verdict",
    "Pass",
    "Fail",
    "service_account",
    "fault",
    "process-kill",
    "network-partition",
    "network-latency",
    "packet-loss",
    "cpu-hog",
    "memory-hog",
    "pid",
    "netns",
    "device",
    "latency",
    "jitter",
    "loss",
    "cpus",
    "workers",
    "bytes",
    "signal",
    "peers",
];

fn yaml(value: &serde_json::Value) -> Option<String> {
    serde_norway::to_string(value).ok()
}

#[test]
fn scenario_file() {
    bolero::check!()
        .with_test_time(SMOKE_TIME)
        .with_iterations(SMOKE_ITERATIONS)
        .for_each(|input: &[u8]| {
            let text = yaml_input(input, SCENARIO_WORDS, yaml);
            let Ok(scenario) = parse("fuzz.yaml", &text) else {
                return;
            };
            assert!(!scenario.duration.is_zero());
            if let Some(deadline) = scenario.abort.deadline {
                assert!(deadline > scenario.duration);
            }
            // The steady-state checks are kept as gate-file text, which the run parses again.
            if let Some(steady) = &scenario.steady_state {
                assert!(
                    deploygraph_probe::config::parse(steady).is_ok(),
                    "steady_state does not re-parse: {steady}"
                );
            }
            match (&scenario.driver, &scenario.local) {
                (Driver::Local, Some(local)) => {
                    // The local driver reads its fault from the scenario; never a panic.
                    if let Ok(fault) = LocalFault::from_value(local.clone()) {
                        assert!(fault.validate().is_ok());
                    }
                }
                (Driver::Local, None) => panic!("a local scenario without its fault"),
                (Driver::Litmus, local) => {
                    assert!(local.is_none());
                    assert!(scenario.target.service.namespace.is_some());
                    assert!(!scenario.target.labels.is_empty());
                }
            }
        });
}
