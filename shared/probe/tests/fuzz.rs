//! Fuzz targets for the probe's parsers of outside input: certificate files and bundles (PEM or
//! DER, as `--cert-file`, `--ca-file`, kubeconfigs and TLS Secrets hold them), the gate's YAML
//! configuration, and what servers answer the checks (`/readyz?verbose`, CoreDNS metrics).
//!
//! `cargo test` runs each target as a bounded smoke run (its seed corpus under
//! `tests/__fuzz__/<target>/corpus`, then random inputs for a few seconds); `cargo bolero test`
//! runs them coverage-guided (docs/fuzzing.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_model::fuzzing::yaml_input;
use deploygraph_probe::cert::{parse_bundle, parse_der};
use deploygraph_probe::config::{GateConfig, parse};
use deploygraph_probe::dns::DnsTarget;
use deploygraph_probe::file::judge_bundle;
use deploygraph_probe::tls::{TlsTarget, roots_from_bundle};
use deploygraph_probe::{CheckKind, Status, apiserver, coredns};
use hickory_resolver::proto::rr::Name;
use std::str::FromStr as _;
use std::time::Duration;

/// How long the smoke run of one target generates random inputs under `cargo test`.
const SMOKE_TIME: Duration = Duration::from_secs(3);
/// And at most this many.
const SMOKE_ITERATIONS: usize = 100_000;

fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[test]
fn certificate_bundle() {
    bolero::check!()
        .with_test_time(SMOKE_TIME)
        .with_iterations(SMOKE_ITERATIONS)
        .for_each(|input: &[u8]| {
            let judged = judge_bundle(
                CheckKind::FileCert,
                input,
                "fuzz".into(),
                chrono::Duration::days(1),
            );
            let _ = roots_from_bundle(input);
            let Ok(ders) = parse_bundle(input) else {
                assert_eq!(judged.status, Status::Fail);
                return;
            };
            assert!(!ders.is_empty());
            for der in &ders {
                // A certificate reads the same from its PEM form.
                assert_eq!(
                    parse_bundle(pem(der).as_bytes()).as_ref(),
                    Ok(&vec![der.clone()])
                );
                if let Ok(info) = parse_der(der) {
                    assert_eq!(info.sha256.len(), 64);
                    assert_eq!(parse_der(der), Ok(info));
                }
            }
        });
}

const GATE_WORDS: &[&str] = &[
    "checkend",
    "deadline",
    "timeout",
    "concurrency",
    "allow_untrusted",
    "allow_unknown",
    "ca_file",
    "tls",
    "target",
    "server_name",
    "cert_files",
    "dns",
    "name",
    "server",
    "type",
    "A",
    "AAAA",
    "CNAME",
    "expect",
    "nxdomain",
    "resolves",
    "addresses",
    "max_latency",
    "apiserver",
    "url",
    "kubernetes",
    "kubeconfig",
    "tls_secret_namespaces",
    "client_certificates",
    "apiserver_certificate",
    "coredns",
    "min_hit_ratio",
    "max_success_entries",
    "max_denial_entries",
    "api.example.com",
    "api.example.com:443",
    "10.0.0.1:6443@kubernetes.default",
    "[::1]:443",
    "api.example.com@10.0.0.10:53",
    "10.96.0.10:53",
    "https://10.0.0.1:6443",
    "http://10.96.0.10:9153/metrics",
];

fn yaml(value: &serde_json::Value) -> Option<String> {
    serde_norway::to_string(value).ok()
}

#[test]
fn gate_config() {
    bolero::check!()
        .with_test_time(SMOKE_TIME)
        .with_iterations(SMOKE_ITERATIONS)
        .for_each(|input: &[u8]| {
            let text = yaml_input(input, GATE_WORDS, yaml);
            let Ok(config) = parse(&text) else {
                return;
            };
            // Flags merge into a file's settings; nothing merged in, nothing changed.
            assert_eq!(config.clone().merge(GateConfig::default()), config);
            assert_eq!(GateConfig::default().merge(config.clone()), config);
            // Targets print as they are written in reports and re-read as themselves.
            for check in &config.dns {
                let printed = check.target.to_string();
                assert_eq!(printed.parse::<DnsTarget>().as_ref(), Ok(&check.target));
            }
            for target in &config.tls {
                let printed = target.to_string();
                assert_eq!(printed.parse::<TlsTarget>().as_ref(), Ok(target));
            }
        });
}

#[test]
fn gate_targets() {
    bolero::check!()
        .with_test_time(SMOKE_TIME)
        .with_iterations(SMOKE_ITERATIONS)
        .for_each(|input: &[u8]| {
            let text = String::from_utf8_lossy(input);
            if let Ok(target) = text.parse::<DnsTarget>() {
                // An accepted name is one a DNS query can carry: the gate must not accept at
                // parse time what it can only report as `unknown` at run time.
                assert!(
                    Name::from_str(&target.name).is_ok(),
                    "{:?} accepted, but it is not a DNS name",
                    target.name
                );
                assert_eq!(target.to_string().parse::<DnsTarget>(), Ok(target));
            }
            if let Ok(target) = text.parse::<TlsTarget>() {
                assert_eq!(target.to_string().parse::<TlsTarget>(), Ok(target));
            }
        });
}

#[test]
fn server_answers() {
    bolero::check!()
        .with_test_time(SMOKE_TIME)
        .with_iterations(SMOKE_ITERATIONS)
        .for_each(|input: &[u8]| {
            let body = String::from_utf8_lossy(input);
            let parts = apiserver::parse_verbose(&body);
            assert!(parts.len() <= body.lines().count());
            let samples = coredns::parse_text(&body);
            assert!(samples.len() <= body.lines().count());
            if let Some(state) = coredns::CacheState::from_samples(&samples) {
                let _ = coredns::judge(&state, &coredns::Thresholds::default());
            }
        });
}
