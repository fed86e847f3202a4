//! `deploygraph ask "QUESTION"`: English and Chinese questions answered through the store in
//! this process and through a server alike — how the question was understood, the answer as
//! the query's own command renders it, the equivalent Cypher — and a question that cannot be
//! mapped exits 2 with the forms understood and the closest services.

use crate::support::{
    Server, firing, rfc3339 as at, run, sqlite_uri, stderr, strings, succeeded, temp_path, unique,
};
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

const TOKEN: &str = "4sk-t0ken";

fn deploy(target: &[String], service: &str, started: DateTime<Utc>, seed: u32, status: &str) {
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
        status,
        "--started-at",
        &at(started),
        "--finished-at",
        &at(started + Duration::minutes(1)),
        "--change",
        &format!("values.redis.pool.size={}->10", 40 + seed),
    ]);
    args.extend(target.iter().cloned());
    succeeded(&args);
}

#[test]
fn questions_are_answered_through_the_store_and_a_server() {
    for remote in [false, true] {
        let store = sqlite_uri();
        let server = remote.then(|| Server::start(&store, &["--token", TOKEN]));
        let target = match &server {
            Some(server) => strings(&["--server", &server.url, "--token", TOKEN]),
            None => strings(&["--store", &store]),
        };
        let service = unique("payments");
        let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
        for (hours, seed, status) in [(9, 1, "failed"), (6, 2, "failed"), (3, 3, "failed")] {
            deploy(
                &target,
                &service,
                now - Duration::hours(hours),
                seed,
                status,
            );
        }
        deploy(
            &target,
            &service,
            now - Duration::minutes(40),
            4,
            "succeeded",
        );
        let fingerprint = format!("{:016x}", rand::random::<u64>() | 1);
        let file = temp_path("alert.json");
        std::fs::write(
            &file,
            firing(
                "PaymentErrors",
                &fingerprint,
                &service,
                now - Duration::minutes(30),
                None,
            )
            .to_string(),
        )
        .unwrap();
        let mut record_alert = strings(&["record", "alert", &file.display().to_string()]);
        record_alert.extend(target.iter().cloned());
        succeeded(&record_alert);
        let ask = |question: &str, extra: &[&str]| {
            let mut args = vec!["ask".to_owned(), question.to_owned()];
            args.extend(extra.iter().map(|a| (*a).to_owned()));
            args.extend(target.iter().cloned());
            args
        };

        // Which deploy caused the alert: the suspects, as `query suspects` shows them.
        let text = succeeded(&ask(
            &format!("which deploy caused the {service} alert?"),
            &[],
        ));
        assert!(
            text.contains("understood as: the suspects of the newest alert on")
                && text.contains(&fingerprint),
            "remote={remote}:\n{text}"
        );
        assert!(
            text.contains("cypher (read-only") && text.contains("TRIGGERS"),
            "{text}"
        );
        // The same in Chinese, as JSON.
        let out: Value = serde_json::from_str(&succeeded(&ask(
            &format!("{service} 最近三次部署失败的共性是什么?"),
            &["--output", "json"],
        )))
        .unwrap();
        assert_eq!(out["understood"]["intent"], "common_factors", "{out}");
        assert_eq!(out["understood"]["count"], 3, "{out}");
        assert!(
            out["answer"].to_string().contains("values.redis.pool.size"),
            "{out}"
        );
        // Deployments, filtered by status and time, as `query deployments` lists them.
        let text = succeeded(&ask(
            &format!("failed deployments of {service} in the last 12 hours"),
            &[],
        ));
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()) && l.contains(" failed "))
                .count(),
            3,
            "{text}"
        );
        // A misspelt service is read, and said so.
        let typo = format!("{service}x");
        let text = succeeded(&ask(&format!("timeline of {typo} today"), &[]));
        assert!(text.contains("read from"), "{text}");

        // Not a question it knows: exit 2, the forms and the closest service.
        let out = run(&ask("what is the meaning of life?", &[]));
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("no question form matches") && err.contains("questions understood:"),
            "{err}"
        );
        assert!(err.contains(&service), "the closest service: {err}");
        let out = run(&ask("  ", &[]));
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    }
}
