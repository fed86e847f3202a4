//! The CLI as a CI pipeline uses it: every command through the HTTP API (`--server`, or the
//! same router in-process over `--store`), what changed recorded with `--change` and
//! `--changes-file`, one exit-code table, quiet on a closed pipe, plain logs when stderr is not
//! a terminal, and the server's migration count.

use crate::support::{
    Server, bin, digest, post_json, run, sqlite_uri, stderr, stdout, temp_path, unique,
};
use serde_json::{Value, json};
use std::io::Read as _;
use std::process::{Command, Stdio};

const TOKEN: &str = "ci-t0ken";

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

/// Runs the CLI; it must exit with `code`.
fn exits(args: &[String], code: i32) -> std::process::Output {
    let out = run(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "deploygraph {}\nstderr:\n{}\nstdout:\n{}",
        args.join(" "),
        stderr(&out),
        stdout(&out)
    );
    out
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

/// `record deployment` of `service` started at `started_at`, with `extra` flags.
fn record(target: &[String], service: &str, seed: u32, started_at: &str, extra: &[&str]) -> Value {
    let image = format!("ghcr.io/acme/{service}:v1@{}", digest(seed));
    let mut args = strings(&[
        "record",
        "deployment",
        "--service",
        service,
        "--namespace",
        "prod",
        "--environment",
        "production",
        "--commit",
        "9fceb02d0ae598e95dc970b74767f19372d61af8",
        "--image",
        &image,
        "--status",
        "succeeded",
        "--started-at",
        started_at,
        "--output",
        "json",
    ]);
    args.extend(strings(extra));
    args.extend(target.iter().cloned());
    json_of(&exits(&args, 0))
}

/// An Alertmanager notification for `service`, firing since `starts_at`, saved to a file.
fn alert_file(fingerprint: &str, service: &str, starts_at: &str) -> String {
    let labels = json!({"alertname": "HighErrorRate", "service": service, "namespace": "prod",
                        "environment": "production", "severity": "critical"});
    let body = json!({
        "version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "truncatedAlerts": 0,
        "status": "firing", "receiver": "deploygraph", "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": labels, "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
        "alerts": [{"status": "firing", "labels": labels, "annotations": {},
                    "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus:9090/graph", "fingerprint": fingerprint}]
    });
    let path = temp_path("alert.json");
    std::fs::write(&path, body.to_string()).unwrap();
    path.display().to_string()
}

fn targets(store: &str, server: &Server) -> [Vec<String>; 2] {
    [
        strings(&["--store", store]),
        strings(&["--server", &server.url, "--token", TOKEN]),
    ]
}

#[test]
fn recorded_changes_reach_the_suspects_and_the_report_on_both_paths() {
    let store = sqlite_uri();
    let server = Server::start(&store, &["--token", TOKEN]);
    let changes = temp_path("changes.yaml");
    std::fs::write(
        &changes,
        "- path: values.replicas\n  before: 2\n  after: 3\n- path: values.debug\n  kind: added\n  after: true\n",
    )
    .unwrap();
    let helm_diff = temp_path("helm-diff.txt");
    std::fs::write(
        &helm_diff,
        "prod, web, Deployment (apps) has changed:\n  spec:\n-   replicas: 2\n+   replicas: 4\n\
         prod, flags, ConfigMap (v1) has been added:\n+ kind: ConfigMap\n",
    )
    .unwrap();
    let (changes, helm_diff) = (
        changes.display().to_string(),
        helm_diff.display().to_string(),
    );
    for (i, target) in targets(&store, &server).iter().enumerate() {
        let service = unique("changes");
        let minute = 10 + i;
        let recorded = record(
            target,
            &service,
            40 + u32::try_from(i).unwrap(),
            &format!("2026-11-20T10:{minute:02}:00Z"),
            &[
                "--change",
                "values.redis.pool.size=50->10",
                "--change",
                "values.redis.password=old-secret->new-secret",
                "--change",
                "values.flags.fast=->true",
                "--change",
                "values.legacy.url=http://old->",
                "--changes-file",
                &changes,
            ],
        );
        let kinds: Vec<(String, String)> = recorded["changes"]
            .as_array()
            .unwrap_or_else(|| panic!("no changes: {recorded}"))
            .iter()
            .map(|c| {
                (
                    c["path"].as_str().unwrap().to_owned(),
                    c["kind"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("values.redis.pool.size", "value"),
                ("values.redis.password", "value"),
                ("values.flags.fast", "added"),
                ("values.legacy.url", "removed"),
                ("values.replicas", "value"),
                ("values.debug", "added"),
            ]
            .map(|(p, k)| (p.to_owned(), k.to_owned()))
            .to_vec(),
            "{recorded}"
        );
        assert_eq!(
            recorded["changes"][1]["after"], "<redacted>",
            "secret-looking values are redacted: {recorded}"
        );
        assert_eq!(recorded["changes"][4]["before"], "2");

        let fingerprint = format!("{:016x}", rand::random::<u64>());
        let file = alert_file(
            &fingerprint,
            &service,
            &format!("2026-11-20T10:{:02}:00Z", minute + 15),
        );
        let mut post = strings(&["record", "alert", &file]);
        post.extend(target.iter().cloned());
        let posted = exits(&post, 0);
        assert!(
            stdout(&posted).contains(&format!("created alert {fingerprint}")),
            "{}",
            stdout(&posted)
        );

        let mut suspects = strings(&["query", "suspects", "--alert", &fingerprint]);
        suspects.extend(target.iter().cloned());
        let text = stdout(&exits(&suspects, 0));
        assert!(
            text.contains("~ values.redis.pool.size [value] 50 -> 10"),
            "{text}"
        );
        assert!(
            text.contains("~ values.flags.fast [added] ∅ -> true"),
            "{text}"
        );
        let mut report = strings(&["report", "incident", "--alert", &fingerprint]);
        report.extend(target.iter().cloned());
        let markdown = stdout(&exits(&report, 0));
        assert!(
            markdown.contains("# values.redis.pool.size [value]\n- 50\n+ 10"),
            "{markdown}"
        );
        assert!(!markdown.contains("new-secret"), "{markdown}");

        // A helm diff is read as manifest changes.
        let other = unique("helmdiff");
        let recorded = record(
            target,
            &other,
            50 + u32::try_from(i).unwrap(),
            "2026-11-20T11:00:00Z",
            &["--changes-file", &helm_diff],
        );
        assert_eq!(
            recorded["changes"],
            json!([
                {"path": "Deployment/web:spec.replicas", "kind": "manifest", "before": "2", "after": "4"},
                {"path": "ConfigMap/flags", "kind": "added"}
            ]),
            "{recorded}"
        );

        // Piped in, as from `helm diff upgrade … |`.
        let image = format!(
            "ghcr.io/acme/piped:v1@{}",
            digest(55 + u32::try_from(i).unwrap())
        );
        let mut piped = strings(&[
            "record",
            "deployment",
            "--service",
            &unique("piped"),
            "--environment",
            "production",
            "--commit",
            "9fceb02",
            "--image",
            &image,
            "--status",
            "succeeded",
            "--changes-file",
            "-",
            "--output",
            "json",
        ]);
        piped.extend(target.iter().cloned());
        let mut child = Command::new(bin())
            .args(&piped)
            .env_remove("DEPLOYGRAPH_STORE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(
            &mut child.stdin.take().unwrap(),
            &std::fs::read(&helm_diff).unwrap(),
        )
        .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            json_of(&out)["changes"][0]["path"],
            "Deployment/web:spec.replicas"
        );
    }
}

#[test]
fn bad_changes_are_usage_errors_that_name_the_flag_and_write_nothing() {
    let store = sqlite_uri();
    let bad_file = temp_path("bad-changes.yaml");
    std::fs::write(&bad_file, "- path: values.a\n  kind: sideways\n").unwrap();
    let bad_file = bad_file.display().to_string();
    for (extra, named) in [
        (vec!["--change", "values.a"], "--change"),
        (vec!["--change", "values.a=1"], "--change"),
        (vec!["--change", "=1->2"], "--change"),
        (
            vec!["--changes-file", "/nonexistent/changes.json"],
            "--changes-file",
        ),
        (vec!["--changes-file", &bad_file], "changes[0].kind"),
        (
            vec!["--change", "values.a=1->2", "--change", "values.a=3->4"],
            "--change",
        ),
    ] {
        let mut args = strings(&[
            "record",
            "deployment",
            "--store",
            &store,
            "--service",
            "payments",
            "--environment",
            "production",
            "--commit",
            "9fceb02",
            "--image",
            &format!("ghcr.io/acme/payments@{}", digest(7)),
            "--status",
            "succeeded",
        ]);
        args.extend(strings(&extra));
        let out = exits(&args, 2);
        assert!(stderr(&out).contains(named), "{extra:?}: {}", stderr(&out));
    }
    let listed = exits(
        &strings(&[
            "query",
            "deployments",
            "--store",
            &store,
            "--output",
            "json",
        ]),
        0,
    );
    assert_eq!(json_of(&listed)["items"], json!([]));
}

#[test]
fn query_resilience_and_chaos_list_answer_the_same_from_a_server_and_a_store() {
    let store = sqlite_uri();
    let server = Server::start(&store, &["--token", TOKEN]);
    let service = unique("resilience");
    record(
        &strings(&["--store", &store]),
        &service,
        60,
        "2026-11-20T09:00:00Z",
        &[],
    );
    // A chaos run uid is `chaos-run-` and 32 lower-case hex digits.
    let run_uid = format!("chaos-run-{:032x}", rand::random::<u128>());
    let (status, _, body) = post_json(
        &format!("{}/v1/chaos/runs", server.url),
        &json!({
            "uid": run_uid, "scenario": "pod-delete", "experiment": "pod-delete",
            "target": {"name": service, "namespace": "prod", "environment": "production"},
            "verdict": "Pass", "phase": "Completed",
            "started_at": "2026-11-20T09:30:00Z", "ended_at": "2026-11-20T09:35:00Z"
        }),
        Some(TOKEN),
    );
    assert!(status == 201, "{status}: {body}");
    let mut answers = Vec::new();
    for target in targets(&store, &server) {
        for output in ["json", "text"] {
            let mut args = strings(&[
                "query",
                "resilience",
                "--service",
                &service,
                "--output",
                output,
            ]);
            args.extend(target.iter().cloned());
            answers.push(stdout(&exits(&args, 0)));
            let mut args = strings(&["chaos", "list", "--service", &service, "--output", output]);
            args.extend(target.iter().cloned());
            answers.push(stdout(&exits(&args, 0)));
        }
    }
    let trend: Value = serde_json::from_str(&answers[0]).unwrap();
    assert_eq!(trend["runs"][0]["scenario"], "pod-delete", "{trend}");
    assert_eq!(trend["runs"][0]["run"], run_uid.as_str(), "{trend}");
    assert!(answers[3].contains(&run_uid), "{}", answers[3]);
    assert_eq!(
        answers[..4],
        answers[4..],
        "--store and --server print the same"
    );
}

/// A loopback port nothing listens on.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[test]
fn every_command_follows_one_exit_code_table() {
    let store = sqlite_uri();
    let server = Server::start(&store, &["--token", TOKEN]);
    let service = unique("exits");
    record(
        &strings(&["--server", &server.url, "--token", TOKEN]),
        &service,
        70,
        "2026-11-20T10:00:00Z",
        &[],
    );
    let fingerprint = format!("{:016x}", rand::random::<u64>());
    let file = alert_file(&fingerprint, &service, "2026-11-20T10:10:00Z");
    exits(
        &strings(&[
            "record",
            "alert",
            &file,
            "--server",
            &server.url,
            "--token",
            TOKEN,
        ]),
        0,
    );
    let topology = temp_path("topology.yaml");
    std::fs::write(
        &topology,
        format!(
            "services:\n  - name: {service}\n    environment: production\n    depends_on: [redis]\n"
        ),
    )
    .unwrap();
    let topology = topology.display().to_string();
    let image = format!("ghcr.io/acme/payments@{}", digest(71));
    let record_args = |more: &[&str]| {
        let mut args = strings(&[
            "record",
            "deployment",
            "--service",
            &service,
            "--environment",
            "production",
            "--commit",
            "9fceb02",
            "--image",
            &image,
            "--status",
            "succeeded",
        ]);
        args.extend(strings(more));
        args
    };
    let unreachable = closed_port();
    let run_id = unique("ci-run");
    exits(
        &record_args(&[
            "--id",
            &run_id,
            "--store",
            &store,
            "--release-version",
            "v1",
        ]),
        0,
    );
    // 1: the server said no (a missing or wrong token, an unknown alert, a reused id).
    for (args, says) in [
        (
            record_args(&["--server", &server.url, "--token", "wrong"]),
            "401",
        ),
        (
            strings(&[
                "query",
                "suspects",
                "--alert",
                &fingerprint,
                "--recompute",
                "--server",
                &server.url,
            ]),
            "401",
        ),
        (
            strings(&["topology", "apply", &topology, "--server", &server.url]),
            "401",
        ),
        (
            strings(&["record", "alert", &file, "--server", &server.url]),
            "401",
        ),
        (
            strings(&[
                "query",
                "suspects",
                "--alert",
                "0000000000000000",
                "--server",
                &server.url,
            ]),
            "no alert with fingerprint",
        ),
        (
            strings(&[
                "report",
                "incident",
                "--alert",
                "0000000000000000",
                "--store",
                &store,
            ]),
            "no alert with fingerprint",
        ),
        (
            record_args(&[
                "--id",
                &run_id,
                "--store",
                &store,
                "--release-version",
                "v9",
            ]),
            "409",
        ),
    ] {
        let out = exits(&args, 1);
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    // 2: usage — a bad flag or value, a bad input file, a request the API calls invalid.
    let not_json = temp_path("not.json");
    std::fs::write(&not_json, "{").unwrap();
    let not_json = not_json.display().to_string();
    for (args, says) in [
        (
            record_args(&["--status", "done", "--server", &server.url]),
            "--status",
        ),
        (
            strings(&[
                "query",
                "resilience",
                "--service",
                "Bad_Name",
                "--server",
                &server.url,
            ]),
            "--service",
        ),
        (
            strings(&["record", "alert", &not_json, "--store", &store]),
            &not_json,
        ),
        (
            strings(&[
                "record",
                "alert",
                "/nonexistent/alert.json",
                "--store",
                &store,
            ]),
            "/nonexistent/alert.json",
        ),
        (
            strings(&[
                "query",
                "deployments",
                "--status",
                "done",
                "--server",
                &server.url,
            ]),
            "--status",
        ),
        (
            // User Cypher needs the write token; with it, SQLite has no Cypher.
            strings(&[
                "query",
                "cypher",
                "RETURN 1",
                "--server",
                &server.url,
                "--token",
                TOKEN,
            ]),
            "does not support Cypher",
        ),
        (
            // The server calls the request invalid (422), naming the field.
            strings(&[
                "query",
                "deployments",
                "--cursor",
                "not-a-cursor",
                "--server",
                &server.url,
            ]),
            "cursor",
        ),
        (
            strings(&[
                "query",
                "alerts",
                "--attempts",
                "0",
                "--server",
                &server.url,
            ]),
            "--attempts",
        ),
    ] {
        let out = exits(&args, 2);
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    // 3: unreachable — a server nobody answers on, a store that cannot be reached.
    for args in [
        record_args(&["--server", &unreachable, "--attempts", "2"]),
        strings(&[
            "query",
            "alerts",
            "--server",
            &unreachable,
            "--attempts",
            "1",
        ]),
        strings(&[
            "query",
            "resilience",
            "--service",
            "payments",
            "--server",
            &unreachable,
            "--attempts",
            "1",
        ]),
        strings(&[
            "report",
            "incident",
            "--alert",
            &fingerprint,
            "--server",
            &unreachable,
            "--attempts",
            "1",
        ]),
        strings(&[
            "topology",
            "apply",
            &topology,
            "--server",
            &unreachable,
            "--attempts",
            "1",
        ]),
        strings(&[
            "query",
            "deployments",
            "--store",
            &unreachable.replace("http", "bolt"),
        ]),
        // An embedded file that cannot be opened is, in the store's words, unavailable.
        strings(&[
            "query",
            "alerts",
            "--store",
            "sqlite:///nonexistent/directory/store.db",
        ]),
    ] {
        let out = exits(&args, 3);
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    // The table is in every command's help.
    for command in [
        &["--help"][..],
        &["record", "deployment", "--help"],
        &["query", "suspects", "--help"],
        &["gate", "--help"],
    ] {
        let help = stdout(&exits(&strings(command), 0));
        assert!(
            help.contains("Exit codes (every command):") && help.contains("3  unreachable"),
            "{command:?}: {help}"
        );
    }
}

#[test]
fn a_reader_that_stops_early_ends_the_command_quietly() {
    let store = sqlite_uri();
    let service = unique("pipe");
    let target = strings(&["--store", &store]);
    record(
        &target,
        &service,
        80,
        "2026-11-20T10:00:00Z",
        &["--change", "values.a=1->2"],
    );
    let fingerprint = format!("{:016x}", rand::random::<u64>());
    let file = alert_file(&fingerprint, &service, "2026-11-20T10:10:00Z");
    exits(&strings(&["record", "alert", &file, "--store", &store]), 0);
    for args in [
        strings(&[
            "report",
            "incident",
            "--alert",
            &fingerprint,
            "--store",
            &store,
        ]),
        strings(&["query", "deployments", "--store", &store]),
        strings(&[
            "query",
            "timeline",
            "--service",
            &service,
            "--since",
            "2026-11-20T00:00:00Z",
            "--until",
            "2026-11-21T00:00:00Z",
            "--store",
            &store,
        ]),
    ] {
        let mut child = Command::new(bin())
            .args(&args)
            .env_remove("DEPLOYGRAPH_STORE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the command writes anything.
        drop(child.stdout.take());
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn logs_are_plain_text_when_stderr_is_not_a_terminal() {
    let store = sqlite_uri();
    let server = Server::start(&store, &["--token", TOKEN]);
    let topology = temp_path("topology.yaml");
    std::fs::write(
        &topology,
        "services:\n  - name: checkout\n    environment: production\n    depends_on: [payments]\n",
    )
    .unwrap();
    let out = exits(
        &strings(&[
            "topology",
            "apply",
            &topology.display().to_string(),
            "--server",
            &server.url,
            "--token",
            TOKEN,
        ]),
        0,
    );
    let log = stderr(&out);
    assert!(log.contains("dependencies recorded"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log that is not a terminal: {log:?}"
    );
}

#[test]
fn the_server_logs_how_many_migrations_it_applied() {
    let migrations = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/sqlite"),
    )
    .unwrap()
    .count();
    let store = sqlite_uri();
    let mut server = Server::start(&store, &[]);
    server.wait_for("/readyz", std::time::Duration::from_secs(30));
    let migrated: Vec<Value> = server
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "store migrated")
        .collect();
    assert_eq!(migrated.len(), 1, "{}", server.logs());
    assert_eq!(
        migrated[0]["applied"],
        json!(migrations),
        "{}",
        server.logs()
    );
    assert!(server.stop().success());

    // On a migrated store, a second start applies none.
    let again = Server::start(&store, &[]);
    again.wait_for("/readyz", std::time::Duration::from_secs(30));
    assert!(again.logs().contains(r#""applied":0"#), "{}", again.logs());
}
