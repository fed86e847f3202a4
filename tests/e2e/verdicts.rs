//! `query suspects --confirm UID | --reject UID`: a reviewer's verdict, given through the store
//! in this process or through a server, is stored, replaced, shown with the suspects and kept
//! when the attribution is recomputed; bad input is a usage error and writes nothing.

use crate::support::{Server, run, sqlite_uri, stderr, stdout, temp_path, unique};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

const TOKEN: &str = "v3rdicts";

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

fn succeeded(args: &[String]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "deploygraph {} exited {:?}\n{}",
        args.join(" "),
        out.status.code(),
        stderr(&out)
    );
    stdout(&out)
}

fn json_of(args: &[String]) -> Value {
    let mut args = args.to_vec();
    args.extend(strings(&["--output", "json"]));
    serde_json::from_str(&succeeded(&args)).unwrap()
}

fn notification(fingerprint: &str, service: &str, starts_at: DateTime<Utc>) -> Value {
    let labels = json!({"alertname": "LedgerErrors", "service": service, "namespace": "prod",
                        "environment": "production", "severity": "critical"});
    json!({
        "version": "4", "groupKey": "{}:{alertname=\"LedgerErrors\"}", "truncatedAlerts": 0,
        "status": "firing", "receiver": "deploygraph", "groupLabels": {"alertname": "LedgerErrors"},
        "commonLabels": labels, "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
        "alerts": [{"status": "firing", "labels": labels, "annotations": {},
                    "startsAt": at(starts_at), "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus:9090/graph", "fingerprint": fingerprint}]
    })
}

/// A deployment of `service` that started at `started`, recorded; its uid.
fn deploy(target: &[String], service: &str, started: DateTime<Utc>, seed: u32) -> String {
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
        &format!("{seed:040x}"),
        "--image",
        &format!("ghcr.io/acme/{service}:v{seed}@sha256:{seed:064x}"),
        "--status",
        "succeeded",
        "--started-at",
        &at(started),
        "--finished-at",
        &at(started + Duration::minutes(1)),
        "--change",
        &format!("values.pool.size={}->10", 40 + seed),
    ]);
    args.extend(target.iter().cloned());
    json_of(&args)["uid"].as_str().unwrap().to_owned()
}

/// Through the store in this process and through a server alike: a verdict is answered as
/// stored, replaced by a later one, shown with the suspects (a confirmed deployment outside the
/// window too) and kept when the attribution is recomputed.
#[test]
fn a_reviewer_confirms_and_rejects_suspects_whatever_carries_the_verdict() {
    for remote in [false, true] {
        let store = sqlite_uri();
        let server = remote.then(|| Server::start(&store, &["--token", TOKEN]));
        let target = match &server {
            Some(server) => strings(&["--server", &server.url, "--token", TOKEN]),
            None => strings(&["--store", &store]),
        };
        let service = unique("ledger");
        let alert_at =
            DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap() - Duration::minutes(30);
        let long_before = deploy(&target, &service, alert_at - Duration::hours(12), 1);
        let recent = deploy(&target, &service, alert_at - Duration::minutes(8), 2);
        let fingerprint = format!("{:016x}", rand::random::<u64>());
        let file = temp_path("alert.json");
        std::fs::write(
            &file,
            notification(&fingerprint, &service, alert_at).to_string(),
        )
        .unwrap();
        let mut record_alert = strings(&["record", "alert", &file.display().to_string()]);
        record_alert.extend(target.iter().cloned());
        succeeded(&record_alert);

        let suspects = |extra: &[&str]| {
            let mut args = strings(&["query", "suspects", "--alert", &fingerprint]);
            args.extend(strings(extra));
            args.extend(target.iter().cloned());
            args
        };
        let confirmed = json_of(&suspects(&[
            "--confirm",
            &recent,
            "--by",
            "alice",
            "--note",
            "pool size cut to 10",
        ]));
        assert_eq!(
            confirmed["verdict"], "confirmed",
            "remote={remote}: {confirmed}"
        );
        assert_eq!(confirmed["subject"], "deployment");
        assert_eq!(confirmed["subject_uid"], recent.as_str());
        assert_eq!(confirmed["by"], "alice");
        assert_eq!(confirmed["note"], "pool size cut to 10");
        // The same verdict again answers the stored one.
        let again = json_of(&suspects(&[
            "--confirm",
            &recent,
            "--by",
            "alice",
            "--note",
            "pool size cut to 10",
        ]));
        assert_eq!(again, confirmed);
        // Another reviewer rejects it: replaced.
        let text = succeeded(&suspects(&["--reject", &recent, "--by", "bob"]));
        assert!(
            text.starts_with(&format!("deployment {recent} of alert {fingerprint}")),
            "{text}"
        );
        assert!(text.contains("rejected as the cause by bob"), "{text}");
        // A deployment outside the window is confirmed, and listed added by review.
        succeeded(&suspects(&["--confirm", &long_before, "--by", "carol"]));

        let view = json_of(&suspects(&["--recompute"]));
        let listed = |uid: &str| {
            view["suspects"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["uid"] == uid)
                .cloned()
                .unwrap_or_else(|| panic!("remote={remote}: {uid} not listed: {view}"))
        };
        assert_eq!(listed(&recent)["verdict"]["verdict"], "rejected", "{view}");
        assert_eq!(listed(&recent)["verdict"]["by"], "bob", "{view}");
        let added = listed(&long_before);
        assert_eq!(added["verdict"]["verdict"], "confirmed", "{view}");
        assert_eq!(added["added_by_review"], true, "{view}");
        let text = succeeded(&suspects(&[]));
        assert!(text.contains("[rejected]"), "{text}");
        assert!(text.contains("! rejected as the cause by bob"), "{text}");
        assert!(
            text.contains("(added by review: not among the computed suspects)"),
            "{text}"
        );
    }
}

/// Bad flags are usage errors (exit 2) naming the flag; an unknown subject is refused (exit 1)
/// naming it; nothing is written either way.
#[test]
fn bad_verdicts_are_refused_and_write_nothing() {
    let store = sqlite_uri();
    let service = unique("ledger");
    let target = strings(&["--store", &store]);
    let alert_at =
        DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap() - Duration::minutes(30);
    let recent = deploy(&target, &service, alert_at - Duration::minutes(8), 2);
    let fingerprint = format!("{:016x}", rand::random::<u64>());
    let file = temp_path("alert.json");
    std::fs::write(
        &file,
        notification(&fingerprint, &service, alert_at).to_string(),
    )
    .unwrap();
    let mut record_alert = strings(&["record", "alert", &file.display().to_string()]);
    record_alert.extend(target.iter().cloned());
    succeeded(&record_alert);
    let suspects = |extra: &[&str]| {
        let mut args = strings(&["query", "suspects", "--alert", &fingerprint]);
        args.extend(strings(extra));
        args.extend(target.iter().cloned());
        args
    };
    for (extra, flag) in [
        (&["--confirm", recent.as_str()][..], "--by"),
        (
            &["--confirm", "not a uid", "--by", "alice"][..],
            "--confirm",
        ),
        (
            &[
                "--confirm",
                recent.as_str(),
                "--reject",
                recent.as_str(),
                "--by",
                "a",
            ][..],
            "--reject",
        ),
        (&["--note", "why", "--by", "alice"][..], "--note"),
        (
            &["--reject", recent.as_str(), "--by", "alice", "--recompute"][..],
            "--recompute",
        ),
    ] {
        let out = run(&suspects(extra));
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(flag), "{extra:?}: {}", stderr(&out));
    }
    let unknown = "deployment-00000000000000000000000000000000";
    let out = run(&suspects(&["--confirm", unknown, "--by", "alice"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no deployment or change"),
        "{}",
        stderr(&out)
    );
    let view = json_of(&suspects(&[]));
    for s in view["suspects"].as_array().unwrap() {
        assert!(s.get("verdict").is_none(), "{view}");
    }
}
