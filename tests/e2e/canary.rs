//! `deploygraph canary analyze` against a real Prometheus (`PROMETHEUS_TEST_URL`,
//! `scripts/services up prometheus alertmanager`): the test serves baseline and canary series
//! as a scrape target (the scrape job is added to the Prometheus config and removed on drop),
//! and each scenario is one run of the binary with its own service name, so every scenario
//! reads only its own series. Prometheus scrapes every second; windows of 5 s and intervals of
//! 1 s keep each run within seconds.
//!
//! The series grow with the time since the target started (not with the number of scrapes), so
//! both sides of a scenario are exact multiples of their rates and a healthy canary is the same
//! as its baseline: no scenario depends on chance.

use crate::alerts::{ALERTING, Restore, Stub, env_path, env_url, prometheus_config, require_ready};
use crate::support::{
    Server, bin, deployment, get_json, post_json, run, sqlite_uri, stderr, stdout, temp_path,
    unique,
};
use serde_json::Value;
use std::fmt::Write as _;
use std::process::{Command, Output};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

/// Upper bounds of the latency histogram's finite buckets.
const BOUNDS: [&str; 5] = ["0.05", "0.1", "0.25", "0.5", "1"];

/// What one track (canary or stable) of a service serves, per second.
#[derive(Clone, Copy)]
pub(crate) struct Track {
    /// Responses with code 200.
    pub ok: f64,
    /// Responses with code 500; none means no 5xx series at all, as a real exporter.
    pub errors: f64,
    /// Observations per second at or below each of [`BOUNDS`] (cumulative), then the total.
    pub latency: Option<[f64; 6]>,
    /// A gauge `request_latency_seconds` per pod (20 pods): this value plus a millisecond per
    /// pod number.
    pub gauge: Option<f64>,
}

/// 1,000 observations a second, so that a 5 s window holds the 1,000 per side a p99 needs
/// (`deploygraph_canary::judge::quantile_min_observations`).
const FAST: [f64; 6] = [600.0, 900.0, 990.0, 1000.0, 1000.0, 1000.0];
pub(crate) const SLOW: [f64; 6] = [100.0, 300.0, 700.0, 1000.0, 1000.0, 1000.0];

impl Track {
    pub(crate) fn healthy() -> Self {
        Self {
            ok: 199.0,
            errors: 1.0,
            latency: Some(FAST),
            gauge: None,
        }
    }
}

/// The exposition of every service's tracks at `t` seconds after the start.
fn exposition(services: &[(String, Track, Track)], t: f64) -> String {
    let mut body = String::new();
    for (service, stable, canary) in services {
        for (name, track) in [("stable", stable), ("canary", canary)] {
            let labels = format!("service=\"{service}\",track=\"{name}\"");
            track_exposition(&mut body, &labels, track, t);
        }
    }
    body
}

/// One track's series, with `labels`, at `t` seconds after the start.
pub(crate) fn track_exposition(body: &mut String, labels: &str, track: &Track, t: f64) {
    let _ = writeln!(
        body,
        "http_requests_total{{{labels},code=\"200\"}} {:.3}",
        track.ok * t
    );
    if track.errors > 0.0 {
        let _ = writeln!(
            body,
            "http_requests_total{{{labels},code=\"500\"}} {:.3}",
            track.errors * t
        );
    }
    if let Some(base) = track.gauge {
        for pod in 0..20_u32 {
            let _ = writeln!(
                body,
                "request_latency_seconds{{{labels},pod=\"p{pod}\"}} {:.3}",
                base + f64::from(pod) * 0.001
            );
        }
    }
    if let Some(latency) = track.latency {
        for (le, per_second) in BOUNDS.iter().chain(&["+Inf"]).zip(latency) {
            let _ = writeln!(
                body,
                "http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {:.3}",
                per_second * t
            );
        }
    }
}

/// The scrape target with its job in the Prometheus config (restored on drop).
pub(crate) struct Target {
    _config: Restore,
    _target: Stub,
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl Target {
    pub(crate) fn start(prometheus: &str, services: Vec<(String, Track, Track)>) -> Self {
        Self::serve(prometheus, move |t| exposition(&services, t))
    }

    /// A target serving `exposition(t)`, `t` the seconds since it started.
    pub(crate) fn serve(
        prometheus: &str,
        exposition: impl Fn(f64) -> String + Send + Sync + 'static,
    ) -> Self {
        let lock = ALERTING.lock().unwrap_or_else(PoisonError::into_inner);
        let started = Instant::now();
        let target = Stub::start(move |r| {
            if r.method == "GET" && r.path.starts_with("/metrics") {
                let t = started.elapsed().as_secs_f64();
                (200, "text/plain; version=0.0.4", exposition(t).into_bytes())
            } else {
                (404, "text/plain", b"not found\n".to_vec())
            }
        });
        let rules = temp_path("rules.yml");
        std::fs::write(&rules, "groups: []\n").unwrap();
        let file = env_path("PROMETHEUS_TEST_CONFIG");
        let original = std::fs::read_to_string(&file).unwrap();
        let job = unique("deploygraph-canary");
        let config = prometheus_config(&original, &job, &target.addr.to_string(), &rules);
        let restore = Restore::rewrite("Prometheus", &file, prometheus, &config);
        Self {
            _config: restore,
            _target: target,
            _lock: lock,
        }
    }
}

/// Waits until Prometheus can compute `increase` of `service`'s requests over 5 s.
pub(crate) fn wait_for_series(prometheus: &str, service: &str) {
    wait_for_selector(prometheus, &format!("service=\"{service}\""));
}

/// Waits until Prometheus can compute `increase` of the requests `selector` matches over 5 s.
pub(crate) fn wait_for_selector(prometheus: &str, selector: &str) {
    let query = format!("sum(increase(http_requests_total{{{selector}}}[5s]))");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer: Value = crate::support::http()
            .get(format!("{prometheus}/api/v1/query"))
            .query(&[("query", query.as_str())])
            .send()
            .and_then(reqwest::blocking::Response::json)
            .unwrap_or(Value::Null);
        if answer["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus has no series of the test target after 30 s: {answer}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub(crate) fn analyze(args: &[&str]) -> Output {
    Command::new(bin())
        .args(["canary", "analyze"])
        .args(args)
        .env_remove("DEPLOYGRAPH_PROMETHEUS_URL")
        .env_remove("DEPLOYGRAPH_SERVER")
        .env_remove("DEPLOYGRAPH_STORE")
        .env_remove("DEPLOYGRAPH_TOKEN")
        .output()
        .unwrap()
}

/// A run's exit code and output, for assertion messages.
pub(crate) fn context(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    )
}

/// The JSON lines of a `--format json` run.
pub(crate) fn lines(out: &Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// `(metric, outcome)` of the final evidence.
fn outcomes(last: &Value) -> Vec<(String, String)> {
    last["verdict"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["metric"].as_str().unwrap().to_owned(),
                m["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A template of the error ratio (critical) and p99 latency, written as a file.
pub(crate) fn combined_template() -> String {
    let path = temp_path("errors-and-latency.yaml");
    std::fs::write(&path, COMBINED_TEMPLATE).unwrap();
    path.display().to_string()
}

/// The error ratio (critical) and p99 latency.
pub(crate) const COMBINED_TEMPLATE: &str = r#"name: errors-and-latency
metrics:
  - name: error-ratio
    kind: ratio
    numerator: sum(increase(http_requests_total{code=~"5..",{{selector}}}[{{window}}]))
    denominator: sum(increase(http_requests_total{{{selector}}}[{{window}}]))
    direction: increase
    max_increase: 0.01
    critical: true
    min_samples: 200
  - name: latency-p99
    kind: distribution
    query: sum by (le) (increase(http_request_duration_seconds_bucket{{{selector}}}[{{window}}]))
    direction: increase
    allowed_change: 0.1
    quantile: 0.99
    min_samples: 200
"#;

/// A template judging raw samples of a gauge (a range query over the window).
fn samples_template() -> String {
    let path = temp_path("gauge-samples.yaml");
    std::fs::write(
        &path,
        "name: gauge-samples\nmetrics:\n  - name: gauge\n    kind: distribution\n    \
         input: samples\n    query: request_latency_seconds{{{selector}}}\n    \
         direction: increase\n    allowed_change: 0.1\n    min_samples: 50\n",
    )
    .unwrap();
    path.display().to_string()
}

struct Scenario {
    name: &'static str,
    service: String,
    template: String,
    max_duration: &'static str,
    format: &'static str,
}

#[test]
fn canary_verdicts_against_a_real_prometheus() {
    let prometheus = env_url("PROMETHEUS_TEST_URL");
    require_ready("Prometheus", &prometheus);
    let id = unique("c");
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
            name("zero"),
            Track {
                ok: 200.0,
                errors: 0.0,
                ..healthy
            },
            Track {
                ok: 190.0,
                errors: 10.0,
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
        (
            name("quiet"),
            Track {
                ok: 10.0,
                errors: 0.0,
                latency: None,
                gauge: None,
            },
            Track {
                ok: 9.0,
                errors: 1.0,
                latency: None,
                gauge: None,
            },
        ),
        // 60 requests a second: a 5 s window holds 300, below the template's 500, so no
        // window can be judged; the run since the start can, from its ninth second.
        (
            name("sparse"),
            Track {
                ok: 59.7,
                errors: 0.3,
                latency: None,
                gauge: None,
            },
            Track {
                ok: 54.0,
                errors: 6.0,
                latency: None,
                gauge: None,
            },
        ),
        (
            name("gauges"),
            Track {
                gauge: Some(0.1),
                ..healthy
            },
            Track {
                gauge: Some(0.2),
                ..healthy
            },
        ),
    ];
    let _target = Target::start(&prometheus, services);
    wait_for_series(&prometheus, &name("healthy"));

    let file = combined_template();
    let samples = samples_template();
    let scenarios = [
        ("healthy", file.as_str(), "20s", "json"),
        ("spike", "http-error-ratio", "20s", "json"),
        ("zero", "http-error-ratio", "20s", "json"),
        ("slow", "http-latency-p99", "20s", "json"),
        ("quiet", "http-error-ratio", "6s", "text"),
        ("sparse", "http-error-ratio", "30s", "json"),
        ("missing", file.as_str(), "3s", "json"),
        ("gauges", samples.as_str(), "20s", "json"),
    ]
    .map(|(n, template, max_duration, format)| Scenario {
        name: n,
        service: name(n),
        template: template.to_owned(),
        max_duration,
        format,
    });
    // All at once: each reads only its own service's series.
    let runs: Vec<(&Scenario, Output)> = std::thread::scope(|scope| {
        let handles: Vec<_> = scenarios
            .iter()
            .map(|s| {
                let prometheus = prometheus.clone();
                scope.spawn(move || {
                    let out = analyze(&[
                        "--service",
                        &s.service,
                        "--template",
                        &s.template,
                        "--prometheus",
                        &prometheus,
                        "--window",
                        "5s",
                        "--interval",
                        "1s",
                        "--max-duration",
                        s.max_duration,
                        "--format",
                        s.format,
                    ]);
                    (s, out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    for (s, out) in &runs {
        let context = format!(
            "scenario {}: exit {:?}\nstdout:\n{}\nstderr:\n{}",
            s.name,
            out.status.code(),
            stdout(out),
            stderr(out)
        );
        match s.name {
            "healthy" => {
                assert_eq!(out.status.code(), Some(0), "{context}");
                let all = lines(out);
                let last = all.last().unwrap();
                assert_eq!(
                    (last["decision"].as_str(), last["final"].as_bool()),
                    (Some("pass"), Some(true)),
                    "{context}"
                );
                // A pass is final only once a whole window lies within the analysis.
                assert!(
                    last["elapsed_seconds"].as_f64().unwrap() >= 5.0,
                    "{context}"
                );
                assert!(all.len() >= 6, "{context}");
                assert!(
                    all[..all.len() - 1]
                        .iter()
                        .all(|l| l["decision"] == "continue" && l.get("verdict").is_none()),
                    "{context}"
                );
                assert_eq!(
                    outcomes(last),
                    [
                        ("error-ratio".to_owned(), "pass".to_owned()),
                        ("latency-p99".to_owned(), "pass".to_owned())
                    ],
                    "{context}"
                );
                let queries = &last["verdict"]["metrics"][0]["queries"];
                assert_eq!(queries.as_array().unwrap().len(), 4, "{context}");
                assert_eq!(
                    queries[1]["promql"].as_str().unwrap(),
                    format!(
                        "sum(increase(http_requests_total{{service=\"{}\",track=\"canary\"}}[5s]))",
                        s.service
                    ),
                    "{context}"
                );
                assert_eq!(queries[3]["side"], "baseline", "{context}");
                assert_eq!(last["verdict"]["window"], "5s", "{context}");
                // The critical error ratio's sequential test since the start ran and passed.
                let sequential = &last["verdict"]["metrics"][0]["sequential"];
                assert_eq!(sequential["outcome"], "pass", "{context}");
                let since = sequential["since"].as_str().unwrap();
                assert!(
                    sequential["queries"][1]["promql"]
                        .as_str()
                        .unwrap()
                        .ends_with(&format!("[{since}]))")),
                    "{context}"
                );
            }
            "sparse" => {
                assert_eq!(out.status.code(), Some(1), "{context}");
                let all = lines(out);
                let last = all.last().unwrap();
                assert_eq!(last["decision"], "fail", "{context}");
                // No window ever had the 500 requests a side the template needs.
                assert!(
                    all.iter().all(|l| l["metrics"][0]["outcome"] != "pass"),
                    "{context}"
                );
                let metric = &last["verdict"]["metrics"][0];
                assert_eq!(metric["outcome"], "fail", "{context}");
                let sequential = &metric["sequential"];
                assert_eq!(sequential["outcome"], "fail", "{context}");
                assert!(
                    sequential["likelihood_ratio"].as_f64().unwrap() >= 100.0,
                    "{context}"
                );
                assert!(
                    sequential["canary"]["samples"].as_u64().unwrap() >= 500
                        && sequential["baseline"]["samples"].as_u64().unwrap() >= 500,
                    "{context}"
                );
                // Its queries span the run so far, not the 5 s window.
                let since = sequential["since"].as_str().unwrap();
                let promql = sequential["queries"][1]["promql"].as_str().unwrap();
                assert!(
                    promql.ends_with(&format!("[{since}]))")) && since != "5s",
                    "{context}"
                );
                assert!(
                    metric["rule"]
                        .as_str()
                        .unwrap()
                        .contains("; in the last window: "),
                    "{context}"
                );
                assert!(
                    last["verdict"]["rule"]
                        .as_str()
                        .unwrap()
                        .ends_with("(since the start)"),
                    "{context}"
                );
                assert!(stderr(out).contains("since the start"), "{context}");
            }
            "spike" | "zero" | "slow" | "gauges" => {
                assert_eq!(out.status.code(), Some(1), "{context}");
                let last = lines(out).pop().unwrap();
                assert_eq!(last["decision"], "fail", "{context}");
                let metric = &last["verdict"]["metrics"][0];
                assert_eq!(metric["outcome"], "fail", "{context}");
                assert!(
                    stderr(out).contains("failed"),
                    "the reason is on stderr: {context}"
                );
                if s.name == "zero" {
                    // No 5xx series on the baseline is zero errors, not missing data.
                    assert_eq!(metric["baseline"]["events"], 0, "{context}");
                    assert_eq!(metric["test"], "fisher_exact", "{context}");
                }
                if s.name == "gauges" {
                    // Every point of the range (20 pods, a point a second) is one observation.
                    let n = metric["canary"]["samples"].as_u64().unwrap();
                    assert!(n >= 50 && n.is_multiple_of(20), "{context}");
                    assert_eq!(metric["queries"][0]["role"], "query", "{context}");
                    assert_eq!(metric["test"], "mann_whitney_u", "{context}");
                }
                if s.name == "slow" {
                    assert_eq!(metric["kind"], "distribution", "{context}");
                    assert_eq!(metric["test"], "mann_whitney_u", "{context}");
                }
            }
            "quiet" => {
                assert_eq!(out.status.code(), Some(4), "{context}");
                let text = stdout(out);
                assert!(text.starts_with("analysis 1 (+"), "{context}");
                assert!(
                    text.contains("http-error-ratio: inconclusive (ratio"),
                    "the final evidence: {context}"
                );
                assert!(
                    stderr(out).contains("inconclusive at --max-duration 6s"),
                    "{context}"
                );
            }
            "missing" => {
                assert_eq!(out.status.code(), Some(4), "{context}");
                let last = lines(out).pop().unwrap();
                assert_eq!(
                    (last["outcome"].as_str(), last["decision"].as_str()),
                    (Some("no_data"), Some("inconclusive")),
                    "{context}"
                );
                assert!(stderr(out).contains("no data"), "{context}");
            }
            other => unreachable!("{other}"),
        }
    }
}

/// The error ratio and p99 latency per pod (`unit_label: pod`), or summed over the pods.
fn pod_template(by_pod: bool) -> String {
    let (by, by_le, unit) = if by_pod {
        (
            "sum by (pod) ",
            "sum by (le, pod) ",
            "\n    unit_label: pod",
        )
    } else {
        ("sum", "sum by (le) ", "")
    };
    let path = temp_path("by-pod.yaml");
    std::fs::write(
        &path,
        format!(
            "name: by-pod\nmetrics:\n  - name: error-ratio\n    kind: ratio\n    \
             numerator: {by}(increase(http_requests_total{{code=~\"5..\",{{{{selector}}}}}}[{{{{window}}}}]))\n    \
             denominator: {by}(increase(http_requests_total{{{{{{selector}}}}}}[{{{{window}}}}]))\n    \
             direction: increase\n    max_increase: 0.005\n    critical: true\n    min_samples: 500{unit}\n  \
             - name: latency-p99\n    kind: distribution\n    \
             query: {by_le}(increase(http_request_duration_seconds_bucket{{{{{{selector}}}}}}[{{{{window}}}}]))\n    \
             direction: increase\n    allowed_change: 0.1\n    quantile: 0.99\n    critical: true\n    \
             min_samples: 200{unit}\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn pods_that_differ_beyond_chance_keep_one_odd_canary_pod_from_failing() {
    let prometheus = env_url("PROMETHEUS_TEST_URL");
    require_ready("Prometheus", &prometheus);
    let service = unique("pods");
    // Six stable pods of 400 requests a second at 0.3 to 1.5 % errors (0.83 % in all) and 1 to
    // 5 % of requests slower than half a second (2.75 %); one canary pod at 1.6 % errors and
    // 6 % slow: above the stable pods' ratio by more than the half-point tolerance, p99 more
    // than 10 % above theirs, and, request by request, significant; inside the stable pods' own
    // spread.
    let stable = [
        (0.3, 1.0),
        (0.6, 2.0),
        (1.2, 4.0),
        (0.5, 1.5),
        (1.5, 5.0),
        (0.9, 3.0),
    ];
    let exposition = {
        let service = service.clone();
        move |t: f64| {
            let mut body = String::new();
            let pods = stable
                .iter()
                .enumerate()
                .map(|(i, &(errors, slow))| ("stable", format!("web-s{i}"), errors, slow))
                .chain([("canary", "web-c0".to_owned(), 1.6, 6.0)]);
            for (track, pod, errors, slow) in pods {
                let labels = format!("service=\"{service}\",track=\"{track}\",pod=\"{pod}\"");
                let (errors, slow) = (4.0 * errors, 4.0 * slow);
                let _ = writeln!(
                    body,
                    "http_requests_total{{{labels},code=\"200\"}} {:.3}",
                    (400.0 - errors) * t
                );
                let _ = writeln!(
                    body,
                    "http_requests_total{{{labels},code=\"500\"}} {:.3}",
                    errors * t
                );
                // Fast requests: half at or below 50 ms, the rest at or below 100 ms; the slow
                // ones between 0.5 and 1 s.
                let fast = 400.0 - slow;
                let cumulative = [fast / 2.0, fast, fast, fast, 400.0, 400.0];
                for (le, per_second) in BOUNDS.iter().chain(&["+Inf"]).zip(cumulative) {
                    let _ = writeln!(
                        body,
                        "http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {:.3}",
                        per_second * t
                    );
                }
            }
            body
        }
    };
    let _target = Target::serve(&prometheus, exposition);
    wait_for_series(&prometheus, &service);
    let run = |template: &str| {
        analyze(&[
            "--service",
            &service,
            "--template",
            template,
            "--prometheus",
            &prometheus,
            "--window",
            "5s",
            "--interval",
            "1s",
            "--max-duration",
            "12s",
            "--format",
            "json",
        ])
    };
    let (summed, by_pod) = std::thread::scope(|scope| {
        let summed = scope.spawn(|| run(&pod_template(false)));
        let by_pod = scope.spawn(|| run(&pod_template(true)));
        (summed.join().unwrap(), by_pod.join().unwrap())
    });
    // Summed over the pods, every request counts as independent: both metrics fail.
    assert_eq!(summed.status.code(), Some(1), "{}", context(&summed));
    let last = lines(&summed).pop().unwrap();
    for metric in last["verdict"]["metrics"].as_array().unwrap() {
        assert_eq!(metric["outcome"], "fail", "{last}");
        assert!(metric.get("dispersion").is_none(), "{last}");
    }
    // Per pod, the stable pods differ beyond chance and the canary's pod is within that.
    assert_eq!(by_pod.status.code(), Some(0), "{}", context(&by_pod));
    let last = lines(&by_pod).pop().unwrap();
    for (metric, query) in last["verdict"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["sum by (pod) (", "sum by (le, pod) ("])
    {
        assert_eq!(metric["outcome"], "pass", "{last}");
        let dispersion = &metric["dispersion"];
        assert_eq!(
            (
                dispersion["canary_units"].as_u64(),
                dispersion["baseline_units"].as_u64()
            ),
            (Some(1), Some(6)),
            "{last}"
        );
        assert!(
            dispersion["canary_factor"].as_f64().unwrap() > 1.0,
            "{last}"
        );
        assert!(
            metric["rule"]
                .as_str()
                .unwrap()
                .contains("differ beyond chance"),
            "{last}"
        );
        // The queries ran per pod.
        assert!(
            metric["queries"][0]["promql"]
                .as_str()
                .unwrap()
                .starts_with(query),
            "{last}"
        );
    }
}

#[test]
fn an_unreachable_prometheus_and_bad_input_are_clear_errors() {
    // A port nothing listens on: exit 3, naming the query and Prometheus.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let out = analyze(&[
        "--service",
        "payments",
        "--template",
        "http-error-ratio",
        "--prometheus",
        &closed,
        "--interval",
        "1s",
        "--max-duration",
        "5s",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains("metric `http-error-ratio`")
            && message.contains(&format!(
                "Prometheus at {closed}/api/v1/query did not answer"
            )),
        "{message}"
    );

    // Bad templates: exit 2, naming the field.
    for (yaml, field) in [
        (
            "name: t\nmetrics:\n  - name: m\n    kind: ratio\n    direction: sideways\n",
            "metrics[0].direction",
        ),
        (
            "name: t\nmetrics:\n  - name: m\n    kind: ratio\n    numerator: sum(x)\n    \
             denominator: sum(y{{{selector}}})\n    direction: increase\n    \
             max_increase: 0.01\n    min_samples: 10\n",
            "metrics[0].numerator",
        ),
    ] {
        let file = temp_path("bad-template.yaml");
        std::fs::write(&file, yaml).unwrap();
        let out = analyze(&[
            "--service",
            "payments",
            "--template",
            &file.display().to_string(),
            "--prometheus",
            &closed,
        ]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(field) && stderr(&out).contains("bad-template.yaml"),
            "{field}: {}",
            stderr(&out)
        );
    }
    // An unreadable file, an unknown shipped name, a selector that would inject PromQL, a
    // window that is not a duration: exit 2.
    for (args, says) in [
        (
            &["--template", "/nonexistent/t.yaml"][..],
            "/nonexistent/t.yaml",
        ),
        (&["--template", "http-errors"][..], "not a shipped template"),
        (
            &[
                "--template",
                "http-error-ratio",
                "--canary-selector",
                "a=\"b\"} or vector(1",
            ][..],
            "--canary-selector",
        ),
        (
            &["--template", "http-error-ratio", "--window", "five"][..],
            "--window",
        ),
    ] {
        let mut argv = vec!["--service", "payments", "--prometheus", &closed];
        argv.extend_from_slice(args);
        let out = analyze(&argv);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn a_query_prometheus_refuses_is_a_usage_error() {
    let prometheus = env_url("PROMETHEUS_TEST_URL");
    require_ready("Prometheus", &prometheus);
    let file = temp_path("unbalanced.yaml");
    std::fs::write(
        &file,
        "name: t\nmetrics:\n  - name: m\n    kind: ratio\n    \
         numerator: sum(rate(x{{{selector}}}[{{window}}])\n    \
         denominator: sum(x{{{selector}}})\n    direction: increase\n    \
         max_increase: 0.01\n    min_samples: 10\n",
    )
    .unwrap();
    let out = analyze(&[
        "--service",
        "payments",
        "--template",
        &file.display().to_string(),
        "--prometheus",
        &prometheus,
        "--max-duration",
        "1s",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains("numerator query of metric `m`") && message.contains("bad_data"),
        "{message}"
    );
}

const TOKEN: &str = "c4nary-t0ken";

/// The analysis of a deployment is recorded on every decision: through a real `serve`
/// (`--deployment`, `--server`), and over a store in the process (`--environment`, `--store`);
/// a recording the server refuses is reported and leaves the verdict's exit code alone.
#[test]
fn canary_analyses_are_recorded_in_the_graph() {
    let prometheus = env_url("PROMETHEUS_TEST_URL");
    require_ready("Prometheus", &prometheus);
    let id = unique("r");
    let spike = format!("{id}-spike");
    let healthy = format!("{id}-healthy");
    let normal = Track::healthy();
    let _target = Target::start(
        &prometheus,
        vec![
            (
                spike.clone(),
                normal,
                Track {
                    ok: 180.0,
                    errors: 20.0,
                    ..normal
                },
            ),
            (healthy.clone(), normal, normal),
        ],
    );
    wait_for_series(&prometheus, &spike);
    wait_for_series(&prometheus, &healthy);

    let server = Server::start(&sqlite_uri(), &["--token", TOKEN]);
    let (status, _, recorded) = post_json(
        &format!("{}/v1/deployments", server.url),
        &deployment(&spike, 10, 41),
        Some(TOKEN),
    );
    assert!(status == 201 || status == 200, "{recorded}");
    let spike_uid = recorded["uid"].as_str().unwrap().to_owned();

    // The in-process store: a deployment of the healthy service, found by --environment.
    let store = sqlite_uri();
    let out = run(&[
        "record",
        "deployment",
        "--store",
        &store,
        "--service",
        &healthy,
        "--environment",
        "production",
        "--commit",
        "abcdef1",
        "--image",
        &format!("ghcr.io/acme/payments@{}", crate::support::digest(42)),
        "--status",
        "in_progress",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let common = [
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
    ];
    let (to_server, refused, to_store) = std::thread::scope(|scope| {
        fn with<'a>(mut argv: Vec<&'a str>, common: &[&'a str]) -> Vec<&'a str> {
            argv.extend_from_slice(common);
            argv
        }
        let a = with(
            vec![
                "--service",
                &spike,
                "--template",
                "http-error-ratio",
                "--deployment",
                &spike_uid,
                "--server",
                &server.url,
                "--token",
                TOKEN,
            ],
            &common,
        );
        let b = with(
            vec![
                "--service",
                &spike,
                "--template",
                "http-error-ratio",
                "--deployment",
                &spike_uid,
                "--server",
                &server.url,
                "--token",
                "not-the-token",
                "--attempts",
                "1",
            ],
            &common,
        );
        let c = with(
            vec![
                "--service",
                &healthy,
                "--template",
                "http-error-ratio",
                "--environment",
                "production",
                "--store",
                &store,
            ],
            &common,
        );
        let a = scope.spawn(move || analyze(&a));
        let b = scope.spawn(move || analyze(&b));
        let c = scope.spawn(move || analyze(&c));
        (a.join().unwrap(), b.join().unwrap(), c.join().unwrap())
    });

    // Through the server: every decision recorded under one uid, the last one the verdict.
    assert_eq!(to_server.status.code(), Some(1), "{}", context(&to_server));
    let all = lines(&to_server);
    let first = &all[0]["recorded"];
    assert_eq!(first["status"], "created", "{}", context(&to_server));
    let uid = first["uid"].as_str().unwrap();
    assert!(uid.starts_with("canary-analysis-"), "{uid}");
    assert!(
        all[1..]
            .iter()
            .all(|l| l["recorded"]["uid"] == uid && l["recorded"]["status"] == "updated"),
        "{}",
        context(&to_server)
    );
    let (status, body) = get_json(&format!("{}/v1/deployments/{spike_uid}/canary", server.url));
    assert_eq!(status, 200, "{body}");
    let analyses = body["analyses"].as_array().unwrap();
    assert_eq!(analyses.len(), 1, "{body}");
    let stored = &analyses[0];
    assert_eq!(stored["uid"], uid, "{body}");
    assert_eq!(stored["verdict"], "fail", "{body}");
    assert_eq!(stored["baseline_kind"], "side_by_side", "{body}");
    assert_eq!(stored["template"], "http-error-ratio", "{body}");
    assert_eq!(stored["service"]["name"], spike.as_str(), "{body}");
    assert_eq!(
        stored["analyses"].as_u64(),
        Some(all.len() as u64),
        "{body}"
    );
    let metric = &stored["metrics"][0];
    assert_eq!(metric["name"], "http-error-ratio", "{body}");
    assert_eq!(metric["outcome"], "fail", "{body}");
    assert_eq!(
        metric["evidence"]["queries"].as_array().map(Vec::len),
        Some(4),
        "{body}"
    );
    assert_eq!(
        metric["rule"],
        all.last().unwrap()["verdict"]["metrics"][0]["rule"],
        "{body}"
    );

    // A refused recording: reported, the verdict's exit code stands.
    assert_eq!(refused.status.code(), Some(1), "{}", context(&refused));
    let refused_lines = lines(&refused);
    assert!(
        refused_lines.iter().all(|l| l["record_error"]
            .as_str()
            .is_some_and(|e| e.contains("401"))),
        "{}",
        context(&refused)
    );
    let err = stderr(&refused);
    assert!(
        err.contains("error: failed to record the canary analysis: refused (401)")
            && err.contains("the exit code is the verdict's"),
        "{}",
        context(&refused)
    );

    // Over the store, the newest deployment in the environment: a pass, in the graph.
    assert_eq!(to_store.status.code(), Some(0), "{}", context(&to_store));
    assert!(
        stderr(&to_store).contains("recording the analysis of deployment deployment-"),
        "{}",
        context(&to_store)
    );
    let rounds = lines(&to_store);
    // A pass needs a whole window: several decisions, each replacing the one before.
    assert!(rounds.len() >= 6, "{}", context(&to_store));
    assert_eq!(rounds[0]["recorded"]["status"], "created");
    assert!(
        rounds[1..]
            .iter()
            .all(|l| l["recorded"]["status"] == "updated"
                && l["recorded"]["uid"] == rounds[0]["recorded"]["uid"]),
        "{}",
        context(&to_store)
    );
    let last = rounds.last().unwrap();
    let reader = Server::start(&store, &[]);
    let (status, page) = get_json(&format!("{}/v1/deployments?service={healthy}", reader.url));
    assert_eq!(status, 200, "{page}");
    let healthy_uid = page["items"][0]["uid"].as_str().unwrap();
    let (status, body) = get_json(&format!(
        "{}/v1/deployments/{healthy_uid}/canary",
        reader.url
    ));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["analyses"][0]["verdict"], "pass", "{body}");
    assert_eq!(
        body["analyses"][0]["uid"], last["recorded"]["uid"],
        "{body}"
    );
}

#[test]
fn a_deployment_that_cannot_be_recorded_stops_the_command_before_the_analysis() {
    let server = Server::start(&sqlite_uri(), &["--token", TOKEN]);
    let ghost = format!("deployment-{:032x}", 7);
    for (extra, says) in [
        (
            vec![
                "--deployment",
                ghost.as_str(),
                "--server",
                server.url.as_str(),
            ],
            "no such deployment is recorded",
        ),
        (
            vec!["--deployment", ghost.as_str()],
            "--server URL or --store URI",
        ),
        (
            vec![
                "--deployment",
                "payments-v2",
                "--server",
                server.url.as_str(),
            ],
            "--deployment",
        ),
        (
            vec![
                "--environment",
                "production",
                "--server",
                server.url.as_str(),
            ],
            "no deployment of payments is recorded there",
        ),
    ] {
        let mut argv = vec![
            "--service",
            "payments",
            "--template",
            "http-error-ratio",
            "--prometheus",
            "http://127.0.0.1:9",
        ];
        argv.extend_from_slice(&extra);
        let out = analyze(&argv);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{extra:?}: {}", stderr(&out));
        assert!(
            stdout(&out).is_empty(),
            "no analysis ran: {extra:?}: {}",
            stdout(&out)
        );
    }
}

/// Runs `f` on a runtime of its own (the kube fixtures are async, the e2e tests are not).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The image a Deployment of the test API server runs.
fn image_of(namespace: &str, name: &str) -> String {
    block_on(async {
        let client = deploygraph_k8s::testing::client().await;
        let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
            kube::Api::namespaced(client, namespace);
        let d = api.get(name).await.unwrap();
        d.spec.unwrap().template.spec.unwrap().containers[0]
            .image
            .clone()
            .unwrap()
    })
}

/// `canary analyze --rollback` with a real Prometheus, the real API server and a real serve:
/// a failing canary's Deployment is undone to its previous ReplicaSet's template and the
/// Rollback recorded (the deployment `rolled_back`, the previous one restored, the final round
/// marked); `--dry-run` changes nothing in the cluster and records a dry run; a paused
/// Deployment is refused with exit 5; a healthy canary is not rolled back.
#[test]
fn a_failing_canary_is_rolled_back_and_the_rollback_recorded() {
    let prometheus = env_url("PROMETHEUS_TEST_URL");
    require_ready("Prometheus", &prometheus);
    let kubeconfig = std::env::var("KUBECONFIG_TEST").expect("KUBECONFIG_TEST");
    let id = unique("rb");
    let spike = format!("{id}-spike");
    let healthy = format!("{id}-healthy");
    let normal = Track::healthy();
    let _target = Target::start(
        &prometheus,
        vec![
            (
                spike.clone(),
                normal,
                Track {
                    ok: 180.0,
                    errors: 20.0,
                    ..normal
                },
            ),
            (healthy.clone(), normal, normal),
        ],
    );
    let namespace = block_on(async {
        use deploygraph_k8s::testing::rollback as fixtures;
        let client = deploygraph_k8s::testing::client().await;
        let ns = fixtures::namespace(&client, "canary-rollback").await;
        for (name, paused) in [
            ("web", false),
            ("dry", false),
            ("paused", true),
            ("calm", false),
        ] {
            fixtures::deployment_with_revisions(&client, &ns, name, &["web:1", "web:2"], paused)
                .await;
        }
        ns
    });
    wait_for_series(&prometheus, &spike);
    wait_for_series(&prometheus, &healthy);

    let server = Server::start(&sqlite_uri(), &["--token", TOKEN]);
    let record = |service: &str, minute: u32, seed: u32| {
        let (status, _, recorded) = post_json(
            &format!("{}/v1/deployments", server.url),
            &deployment(service, minute, seed),
            Some(TOKEN),
        );
        assert!(status == 201 || status == 200, "{recorded}");
        recorded["uid"].as_str().unwrap().to_owned()
    };
    let previous = record(&spike, 10, 51);
    let current = record(&spike, 20, 52);
    let dry_uid = record(&spike, 30, 53);
    let paused_uid = record(&spike, 40, 54);

    let common = [
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
        "--namespace",
        namespace.as_str(),
        "--kubeconfig",
        kubeconfig.as_str(),
        "--server",
        server.url.as_str(),
        "--token",
        TOKEN,
    ];
    let run_with = |service: &str, deployment: &str, target: &str, dry_run: bool| {
        let mut argv = vec![
            "--service",
            service,
            "--template",
            "http-error-ratio",
            "--deployment",
            deployment,
            "--rollback",
            target,
        ];
        if dry_run {
            argv.push("--dry-run");
        }
        argv.extend_from_slice(&common);
        analyze(&argv)
    };
    let healthy_uid = record(&healthy, 10, 55);
    let (undone, dry, paused, calm) = std::thread::scope(|scope| {
        let a = scope.spawn(|| run_with(&spike, &current, "deployment/web", false));
        let b = scope.spawn(|| run_with(&spike, &dry_uid, "deployment/dry", true));
        let c = scope.spawn(|| run_with(&spike, &paused_uid, "deployment/paused", false));
        let d = scope.spawn(|| run_with(&healthy, &healthy_uid, "deployment/calm", false));
        (
            a.join().unwrap(),
            b.join().unwrap(),
            c.join().unwrap(),
            d.join().unwrap(),
        )
    });

    // The failing canary: exit 1 (the verdict), the Deployment back on revision 1.
    assert_eq!(undone.status.code(), Some(1), "{}", context(&undone));
    let all = lines(&undone);
    let rollback = &all.last().unwrap()["rollback"];
    assert_eq!(
        rollback["done"]["action"],
        "deployment_undo",
        "{}",
        context(&undone)
    );
    assert_eq!(rollback["done"]["to_revision"], 1, "{}", context(&undone));
    assert_eq!(
        rollback["recorded"]["status"],
        "created",
        "{}",
        context(&undone)
    );
    assert!(rollback["requested_ms"].as_f64().unwrap() < 60_000.0);
    assert_eq!(image_of(&namespace, "web"), "web:1");
    let (status, body) = get_json(&format!("{}/v1/deployments/{current}/canary", server.url));
    assert_eq!(status, 200, "{body}");
    let stored = &body["rollbacks"][0];
    assert_eq!(stored["target"], "deployment/web", "{body}");
    assert_eq!(stored["namespace"], namespace.as_str(), "{body}");
    assert_eq!(stored["restored"], previous.as_str(), "{body}");
    assert_eq!(stored["by"], "deploygraph canary analyze", "{body}");
    assert_eq!(stored["dry_run"], false, "{body}");
    assert_eq!(body["analyses"][0]["final"], true, "{body}");
    assert_eq!(body["analyses"][0]["verdict"], "fail", "{body}");
    let (_, d) = get_json(&format!("{}/v1/deployments/{current}", server.url));
    assert_eq!(d["status"], "rolled_back", "{d}");

    // The dry run: planned, printed, recorded as such; nothing changed.
    assert_eq!(dry.status.code(), Some(1), "{}", context(&dry));
    let dry_lines = lines(&dry);
    let rollback = &dry_lines.last().unwrap()["rollback"];
    assert_eq!(rollback["dry_run"], true, "{}", context(&dry));
    assert_eq!(rollback["done"]["to_revision"], 1, "{}", context(&dry));
    assert_eq!(image_of(&namespace, "dry"), "web:2");
    let (_, body) = get_json(&format!("{}/v1/deployments/{dry_uid}/canary", server.url));
    assert_eq!(body["rollbacks"][0]["dry_run"], true, "{body}");
    let (_, d) = get_json(&format!("{}/v1/deployments/{dry_uid}", server.url));
    assert_eq!(d["status"], "succeeded", "{d}");

    // The paused Deployment: refused, exit 5, unchanged, nothing recorded as rolled back.
    assert_eq!(paused.status.code(), Some(5), "{}", context(&paused));
    assert!(
        stderr(&paused).contains("is paused"),
        "{}",
        context(&paused)
    );
    assert_eq!(image_of(&namespace, "paused"), "web:2");
    let (_, body) = get_json(&format!(
        "{}/v1/deployments/{paused_uid}/canary",
        server.url
    ));
    assert_eq!(body["rollbacks"], serde_json::json!([]), "{body}");

    // A healthy canary passes and is not rolled back.
    assert_eq!(calm.status.code(), Some(0), "{}", context(&calm));
    assert_eq!(image_of(&namespace, "calm"), "web:2");
    let (_, body) = get_json(&format!(
        "{}/v1/deployments/{healthy_uid}/canary",
        server.url
    ));
    assert_eq!(body["rollbacks"], serde_json::json!([]), "{body}");
    assert_eq!(body["analyses"][0]["final"], true, "{body}");
}
