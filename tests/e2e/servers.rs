//! Several servers, one store: two `deploygraph serve` processes on one SQLite file, and two on
//! one Neo4j, take the same service's deployments out of order (some sent to both at once) and
//! alerts while they write. The FOLLOWS chain, the uids and every alert's attribution end as
//! they do on one server that took the same events in order.

use crate::support::{
    NEO4J, Server, deployment, firing, get_json, neo4j_uri, post_json, sqlite_uri, unique,
};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One event to post: its path and body.
#[derive(Clone)]
struct Event {
    path: &'static str,
    body: Value,
}

/// The events of one run: `web` depends on `db`; 24 deployments of `web` and 8 of `db` over
/// four hours, and 6 alerts on `web` among them.
fn events(web: &str, db: &str) -> (Vec<Event>, Vec<String>) {
    let mut out = Vec::new();
    for i in 0..24u32 {
        out.push(Event {
            path: "/v1/deployments",
            body: deployment(web, i * 10, 1000 + i),
        });
    }
    for i in 0..8u32 {
        out.push(Event {
            path: "/v1/deployments",
            body: deployment(db, 5 + i * 30, 2000 + i),
        });
    }
    let mut fingerprints = Vec::new();
    for (i, minute) in [27i64, 66, 121, 150, 199, 236].into_iter().enumerate() {
        let fingerprint = format!("{}-{i}", unique("fp"));
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc)
            + chrono::Duration::minutes(minute);
        out.push(Event {
            path: "/v1/alerts/alertmanager",
            body: firing("HighErrors", &fingerprint, web, at, None),
        });
        fingerprints.push(fingerprint);
    }
    (out, fingerprints)
}

fn post(server: &Server, event: &Event) {
    let (status, _, body) = post_json(&format!("{}{}", server.url, event.path), &event.body, None);
    assert!(
        matches!(status, 200 | 201),
        "{} answered {status}: {body}",
        event.path
    );
}

fn depends(server: &Server, web: &str, db: &str) {
    let response = crate::support::http()
        .put(format!("{}/v1/services/{web}/dependencies", server.url))
        .json(&json!({"namespace": "prod", "environment": "production", "depends_on": [db]}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// `service`'s deployments as `(uid, follows)`, oldest first.
fn chain(server: &Server, service: &str) -> Vec<(String, Option<String>)> {
    let (status, page) = get_json(&format!(
        "{}/v1/deployments?service={service}&limit=100",
        server.url
    ));
    assert_eq!(status, 200, "{page}");
    let mut items: Vec<(String, String, Option<String>)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["started_at"].as_str().unwrap().to_owned(),
                d["uid"].as_str().unwrap().to_owned(),
                d["follows"].as_str().map(str::to_owned),
            )
        })
        .collect();
    items.sort();
    items.into_iter().map(|(_, uid, f)| (uid, f)).collect()
}

/// Waits until the store has no follow-up pending of any kind, as `server` reports it
/// (`deploygraph_follow_ups_pending`, counted every 2 s): five reads a second apart, all zero.
/// A deployment's follow-up still queued enqueues revisits when it runs, so an alert with no
/// follow-up of its own pending is not settled until every other one is done too.
fn quiet(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut zero = 0;
    while zero < 5 {
        assert!(
            Instant::now() < deadline,
            "follow-ups still pending after 180 s; log:\n{}",
            server.logs()
        );
        let text = crate::support::http()
            .get(format!("{}/metrics", server.url))
            .send()
            .and_then(reqwest::blocking::Response::text)
            .unwrap();
        let pending: f64 = text
            .lines()
            .filter(|l| l.starts_with("deploygraph_follow_ups_pending{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        let reported = text
            .lines()
            .any(|l| l.starts_with("deploygraph_follow_ups_pending{"));
        zero = if reported && pending == 0.0 {
            zero + 1
        } else {
            0
        };
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Each alert's suspects as `(uid, score)`, once every follow-up is done ([`quiet`]) and two
/// reads a second apart are alike.
fn attributions(server: &Server, fingerprints: &[String]) -> BTreeMap<String, Vec<(String, f64)>> {
    quiet(server);
    let read = || {
        let mut out = BTreeMap::new();
        let mut pending = false;
        for fingerprint in fingerprints {
            let (status, body) =
                get_json(&format!("{}/v1/alerts/{fingerprint}/suspects", server.url));
            assert_eq!(status, 200, "{body}");
            pending |= body["attribution_pending"] == Value::Bool(true);
            let suspects: Vec<(String, f64)> = body["suspects"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s["uid"].as_str().unwrap().to_owned(),
                        s["confidence_score"].as_f64().unwrap(),
                    )
                })
                .collect();
            out.insert(fingerprint.clone(), suspects);
        }
        (out, pending)
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = None;
    loop {
        let (now, pending) = read();
        if !pending && last.as_ref() == Some(&now) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "attributions did not settle within 120 s; log:\n{}",
            server.logs()
        );
        last = (!pending).then_some(now);
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Two servers on `store` take the events shuffled, from four threads, some sent to both at once.
fn two_servers_end_as_one(store: &str, seed: u64) {
    let (web, db) = (unique("web"), unique("db"));
    let (events, fingerprints) = events(&web, &db);

    // The reference: one server, the events in order.
    let reference = Server::start(&sqlite_uri(), &[]);
    depends(&reference, &web, &db);
    for event in &events {
        post(&reference, event);
    }

    let servers = [Server::start(store, &[]), Server::start(store, &[])];
    for server in &servers {
        server.wait_for("/readyz", Duration::from_secs(60));
    }
    depends(&servers[0], &web, &db);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut shuffled: Vec<(Event, u8)> = events
        .iter()
        .map(|e| (e.clone(), rng.random_range(0..3u8)))
        .collect();
    shuffled.shuffle(&mut rng);
    let queue = std::sync::Mutex::new(shuffled);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().unwrap().pop();
                    let Some((event, to)) = next else { break };
                    match to {
                        0 | 1 => post(&servers[usize::from(to)], &event),
                        _ => std::thread::scope(|both| {
                            for server in &servers {
                                let event = &event;
                                both.spawn(move || post(server, event));
                            }
                        }),
                    }
                }
            });
        }
    });

    for service in [&web, &db] {
        let expected = chain(&reference, service);
        assert_eq!(expected.len(), if *service == web { 24 } else { 8 });
        for server in &servers {
            assert_eq!(
                chain(server, service),
                expected,
                "{service}'s uids and FOLLOWS chain differ from one server's"
            );
        }
    }
    let expected = attributions(&reference, &fingerprints);
    assert!(
        expected.values().all(|s| !s.is_empty()),
        "every alert has suspects: {expected:?}"
    );
    for server in &servers {
        let got = attributions(server, &fingerprints);
        // Each differing alert's suspects with their reasons, on both, to tell why.
        let differing: Vec<String> = fingerprints
            .iter()
            .filter(|f| got[*f] != expected[*f])
            .map(|f| {
                let read = |s: &Server| get_json(&format!("{}/v1/alerts/{f}/suspects", s.url)).1;
                format!(
                    "{f}:\n  this: {}\n  one server: {}",
                    read(server),
                    read(&reference)
                )
            })
            .collect();
        assert!(
            differing.is_empty(),
            "attributions differ from one server's:\n{}\nlogs:\n{}",
            differing.join("\n"),
            server.logs()
        );
    }
}

#[test]
fn two_servers_on_one_sqlite_file_end_as_one_server() {
    let store = sqlite_uri();
    two_servers_end_as_one(&store, 7);
}

#[test]
fn two_servers_on_one_neo4j_end_as_one_server() {
    let _shared = NEO4J
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    two_servers_end_as_one(&neo4j_uri(), 11);
}
