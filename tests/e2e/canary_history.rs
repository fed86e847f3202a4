//! History baselines against a real Prometheus (`PROMETHEUS_TEST_URL`) and a real `serve`:
//! `deploygraph canary summarize` records what three settled releases of a service measured
//! (the scrape target's `track="stable"` series), then `canary analyze --baseline history`
//! judges a canary that has no old version beside it against those summaries. A healthy canary
//! passes; an error spike and a latency shift fail; the verdict, the recorded analysis and the
//! evidence say the baseline was the history and name the releases used.

use crate::alerts::{env_url, require_ready};
use crate::canary::{
    SLOW, Target, Track, analyze, combined_template, context, lines, wait_for_series,
};
use crate::support::{
    Server, deployment, get_json, post_json, run, sqlite_uri, stderr, stdout, unique,
};
use serde_json::Value;
use std::process::Output;

const TOKEN: &str = "h1story-t0ken";

/// Records a deployment of `service` at `minute` through the server; its uid.
fn record(server: &Server, service: &str, minute: u32, seed: u32) -> String {
    let (status, _, body) = post_json(
        &format!("{}/v1/deployments", server.url),
        &deployment(service, minute, seed),
        Some(TOKEN),
    );
    assert!(status == 201 || status == 200, "{body}");
    body["uid"].as_str().unwrap().to_owned()
}

fn summarize(
    server: &Server,
    prometheus: &str,
    deployment: &str,
    template: &str,
    extra: &[&str],
) -> Output {
    let mut args = vec![
        "canary",
        "summarize",
        "--deployment",
        deployment,
        "--template",
        template,
        "--window",
        "5s",
        "--prometheus",
        prometheus,
        "--server",
        &server.url,
        "--token",
        TOKEN,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn canaries_are_judged_against_the_services_own_history() {
    let prometheus = env_url("PROMETHEUS_TEST_URL");
    require_ready("Prometheus", &prometheus);
    let id = unique("h");
    let name = |s: &str| format!("{id}-{s}");
    let healthy = Track::healthy();
    let services = vec![
        (name("healthy"), healthy, healthy),
        (
            name("spike"),
            healthy,
            Track {
                ok: 180.0,
                errors: 20.0,
                ..healthy
            },
        ),
        (
            name("slow"),
            healthy,
            Track {
                latency: Some(SLOW),
                ..healthy
            },
        ),
    ];
    let _target = Target::start(&prometheus, services);
    for s in ["healthy", "spike", "slow"] {
        wait_for_series(&prometheus, &name(s));
    }
    let server = Server::start(&sqlite_uri(), &["--token", TOKEN]);
    let template = combined_template();

    // Three settled releases of each service, each summarized over its stable pods; then the
    // canary's deployment, the newest.
    let mut canaries = Vec::new();
    for (i, s) in ["healthy", "spike", "slow"].into_iter().enumerate() {
        let service = name(s);
        let seed = u32::try_from(i).unwrap() * 10;
        let mut releases = Vec::new();
        for r in 0..3_u32 {
            let uid = record(&server, &service, 10 + r * 10, seed + r + 1);
            let out = summarize(&server, &prometheus, &uid, &template, &["--format", "json"]);
            assert_eq!(out.status.code(), Some(0), "{}", context(&out));
            let line: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
            assert_eq!(line["status"], "created", "{line}");
            assert_eq!(line["deployment"], uid.as_str(), "{line}");
            assert_eq!(line["window"], "5s", "{line}");
            let errors = &line["metrics"]["error-ratio"]["data"];
            assert!(errors["denominator"].as_u64().unwrap() >= 200, "{line}");
            assert!(
                line["metrics"]["latency-p99"]["data"]["histogram"]["count"]
                    .as_u64()
                    .unwrap()
                    >= 200,
                "{line}"
            );
            releases.push(uid);
        }
        // Summarizing again replaces the summary.
        let again = summarize(&server, &prometheus, &releases[2], &template, &[]);
        assert_eq!(again.status.code(), Some(0), "{}", context(&again));
        assert!(
            stdout(&again).starts_with("updated release summary"),
            "{}",
            context(&again)
        );
        let canary = record(&server, &service, 60, seed + 9);
        canaries.push((s, service, canary, releases));
    }

    let runs: Vec<(&str, Vec<String>, String, Output)> = std::thread::scope(|scope| {
        let handles: Vec<_> = canaries
            .iter()
            .map(|(s, service, canary, releases)| {
                let prometheus = prometheus.clone();
                let server = server.url.clone();
                let template = template.clone();
                let gone = format!("service=\"{service}\",track=\"gone\"");
                scope.spawn(move || {
                    // `slow` asks for `auto`: its baseline selector finds nothing, so the history
                    // is the baseline.
                    let mut args = vec![
                        "--service",
                        service.as_str(),
                        "--template",
                        template.as_str(),
                        "--prometheus",
                        prometheus.as_str(),
                        "--window",
                        "5s",
                        "--interval",
                        "1s",
                        "--max-duration",
                        "20s",
                        "--format",
                        "json",
                        "--deployment",
                        canary.as_str(),
                        "--server",
                        server.as_str(),
                        "--token",
                        TOKEN,
                    ];
                    if *s == "slow" {
                        args.extend(["--baseline", "auto", "--baseline-selector", gone.as_str()]);
                    } else {
                        args.extend(["--baseline", "history"]);
                    }
                    let out = analyze(&args);
                    (*s, releases.clone(), canary.clone(), out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    for (scenario, releases, canary, out) in &runs {
        let context = format!("scenario {scenario}: {}", context(out));
        assert!(
            stderr(out).contains("history baseline: 3 earlier release(s)"),
            "{context}"
        );
        let last = lines(out).pop().unwrap();
        let verdict = &last["verdict"];
        assert_eq!(verdict["baseline_kind"], "history", "{context}");
        let expected = if *scenario == "healthy" {
            "pass"
        } else {
            "fail"
        };
        assert_eq!(last["decision"], expected, "{context}");
        assert_eq!(
            out.status.code(),
            Some(if expected == "pass" { 0 } else { 1 }),
            "{context}"
        );
        // Each metric names the releases it was judged against, the most recent first.
        let failing = match *scenario {
            "healthy" => None,
            "spike" => Some("error-ratio"),
            _ => Some("latency-p99"),
        };
        for metric in verdict["metrics"].as_array().unwrap() {
            let named: Vec<&str> = metric["releases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            assert_eq!(named.len(), 3, "{context}");
            for (name, uid) in named.iter().zip(releases.iter().rev()) {
                assert!(name.starts_with(uid.as_str()), "{name} {uid}: {context}");
            }
            assert!(
                !named.iter().any(|n| n.starts_with(canary.as_str())),
                "{context}"
            );
            let outcome = if failing == metric["metric"].as_str() {
                "fail"
            } else {
                "pass"
            };
            if failing.is_none() || outcome == "fail" {
                assert_eq!(metric["outcome"], outcome, "{context}");
            }
        }
        // The recorded analysis says so too.
        let (status, body) = get_json(&format!("{}/v1/deployments/{canary}/canary", server.url));
        assert_eq!(status, 200, "{body}");
        let stored = &body["analyses"][0];
        assert_eq!(stored["baseline_kind"], "history", "{body}");
        assert_eq!(stored["verdict"], expected, "{body}");
        assert_eq!(
            stored["metrics"][0]["evidence"]["releases"]
                .as_array()
                .map(Vec::len),
            Some(3),
            "{body}"
        );
    }
}

#[test]
fn summarize_and_history_refuse_what_they_cannot_do() {
    let prometheus = env_url("PROMETHEUS_TEST_URL");
    require_ready("Prometheus", &prometheus);
    let server = Server::start(&sqlite_uri(), &["--token", TOKEN]);
    let service = unique("nothing");
    let uid = record(&server, &service, 5, 77);

    // No series for the release: exit 4, nothing recorded.
    let out = summarize(&server, &prometheus, &uid, "http-error-ratio", &[]);
    assert_eq!(out.status.code(), Some(4), "{}", context(&out));
    assert!(
        stderr(&out).contains("nothing recorded"),
        "{}",
        context(&out)
    );
    let (status, read) = get_json(&format!(
        "{}/v1/services/{service}/summaries?environment=production&template=http-error-ratio",
        server.url
    ));
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["items"], serde_json::json!([]), "{read}");

    // An unknown deployment, a malformed one, no server: usage errors.
    let ghost = format!("deployment-{:032x}", 9);
    for (deployment, extra, says) in [
        (ghost.as_str(), vec![], "no such deployment is recorded"),
        ("payments-v2", vec![], "--deployment"),
    ] {
        let out = summarize(&server, &prometheus, deployment, "http-error-ratio", &extra);
        assert_eq!(out.status.code(), Some(2), "{}", context(&out));
        assert!(stderr(&out).contains(says), "{says}: {}", context(&out));
    }
    let out = run(&[
        "canary",
        "summarize",
        "--deployment",
        uid.as_str(),
        "--template",
        "http-error-ratio",
        "--prometheus",
        prometheus.as_str(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", context(&out));
    assert!(
        stderr(&out).contains("--server URL or --store URI"),
        "{}",
        context(&out)
    );
    // A history baseline needs the deployment under analysis.
    let out = analyze(&[
        "--service",
        service.as_str(),
        "--template",
        "http-error-ratio",
        "--prometheus",
        prometheus.as_str(),
        "--baseline",
        "history",
        "--max-duration",
        "1s",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", context(&out));
    assert!(
        stderr(&out).contains("--baseline history"),
        "{}",
        context(&out)
    );
}
