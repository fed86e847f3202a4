//! The web console `serve` serves at `/`, driven by headless Chromium (Debian's `chromium`,
//! installed by `scripts/test`) against a running server with data recorded through the API:
//! each page renders the recorded facts, the timeline filters, the ask box answers, a
//! `<script>` in an alert annotation is shown as text, and the pages work with a read token
//! configured (and say so without it); driven with the keyboard and the mouse, the ask box
//! answers, a suspect is confirmed (refused without the token), and a deployment shows the
//! alerts attributed to it, the chaos runs against it and its neighbourhood. Screenshots of each page go to
//! `DEPLOYGRAPH_SCREENSHOTS` when it is set (the README's are made that way).

use crate::browser::{Browser, chromium};
use crate::support::{
    Server, firing, rfc3339 as at, run, sqlite_uri, succeeded, temp_path, unique,
};
use chrono::{DateTime, Duration, Utc};
use std::path::Path;
use std::process::Command;

const TOKEN: &str = "c0ns0le-write";
const READ_TOKEN: &str = "c0ns0le-read";
const HOSTILE: &str = "<script>window.pwned=1</script><img src=x onerror=alert(1)>";

fn browser(extra: &[&str], url: &str) -> std::process::Output {
    let profile = temp_path("chromium-profile");
    let mut args = vec![
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--no-first-run".to_owned(),
        format!("--user-data-dir={}", profile.display()),
        "--virtual-time-budget=15000".to_owned(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args.push(url.to_owned());
    Command::new(chromium())
        .args(&args)
        .output()
        .expect("chromium runs")
}

/// The page at `url` as the browser has it once its scripts ran: the `<main>` element.
fn page(url: &str) -> String {
    let out = browser(&["--dump-dom"], url);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        dom.contains("<main"),
        "no page from {url}: {}\n{}",
        dom,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dom.contains("data-ready=\"1\""),
        "the page at {url} did not finish: {dom}"
    );
    let start = dom.find("<main").unwrap();
    let end = dom.rfind("</main>").map_or(dom.len(), |e| e + 7);
    dom[start..end].to_owned()
}

fn screenshot(url: &str, name: &str) {
    let Ok(dir) = std::env::var("DEPLOYGRAPH_SCREENSHOTS") else {
        return;
    };
    let file = Path::new(&dir).join(format!("{name}.png"));
    let out = browser(
        &[
            "--window-size=1280,900",
            "--hide-scrollbars",
            &format!("--screenshot={}", file.display()),
        ],
        url,
    );
    assert!(
        file.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `record deployment` of a succeeded rollout of `service` in production/prod through the
/// server at `base`: `(commit, image, version, started)`, then any `extra` flags.
fn record_deployment(
    base: &str,
    service: &str,
    (commit, image, version, started): (&str, &str, &str, &str),
    extra: &[&str],
) {
    let mut args = vec![
        "record",
        "deployment",
        "--server",
        base,
        "--token",
        TOKEN,
        "--service",
        service,
        "--namespace",
        "prod",
        "--environment",
        "production",
        "--commit",
        commit,
        "--image",
        image,
        "--release-version",
        version,
        "--status",
        "succeeded",
        "--started-at",
        started,
    ];
    args.extend_from_slice(extra);
    succeeded(&args);
}

/// A service with a deployment an hour ago (a pool size cut) and an alert after it whose
/// summary is hostile markup; the service and the alert's fingerprint.
fn world(server: &Server) -> (String, String) {
    let service = unique("shop");
    let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    for (minutes, version, change) in [
        (180, "v1.0.0", "values.pool.size=80->60"),
        (60, "v1.1.0", "values.pool.size=60->10"),
    ] {
        let image = format!("ghcr.io/acme/{service}:{version}@sha256:{}", "b".repeat(64));
        let started = at(now - Duration::minutes(minutes));
        record_deployment(
            &server.url,
            &service,
            ("abcdef1", &image, version, &started),
            &["--change", change],
        );
    }
    let fingerprint = format!("{:016x}", rand::random::<u64>() | 1);
    let notification = firing(
        "ShopErrors",
        &fingerprint,
        &service,
        now - Duration::minutes(50),
        Some(HOSTILE),
    );
    let file = temp_path("alert.json");
    std::fs::write(&file, notification.to_string()).unwrap();
    let file = file.display().to_string();
    succeeded(&[
        "record",
        "alert",
        &file,
        "--server",
        &server.url,
        "--token",
        TOKEN,
    ]);
    (service, fingerprint)
}

/// The uid of the alert's top suspect, as `query suspects` says.
fn top_suspect(base: &str, fingerprint: &str) -> String {
    let suspects: serde_json::Value = serde_json::from_str(
        &String::from_utf8(
            run(&[
                "query",
                "suspects",
                "--alert",
                fingerprint,
                "--server",
                base,
                "--output",
                "json",
            ])
            .stdout,
        )
        .unwrap(),
    )
    .unwrap();
    suspects["suspects"][0]["uid"].as_str().unwrap().to_owned()
}

/// `curl` with the write token: the status code.
fn send(method: &str, url: &str, body: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            method,
            "-H",
            &format!("Authorization: Bearer {TOKEN}"),
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
            url,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_console_shows_the_graph_in_a_real_browser() {
    let server = Server::start(&sqlite_uri(), &["--token", TOKEN]);
    let (service, fingerprint) = world(&server);
    let base = &server.url;

    // Services, with the firing alert counted.
    let url = format!("{base}/#/");
    let services = page(&url);
    assert!(services.contains(&format!(">{service}</a>")), "{services}");
    assert!(services.contains("class=\"firing\">1<"), "{services}");
    screenshot(&url, "services");

    // The timeline: both deployments and the alert, then only alerts, then only the last hour.
    let url = format!("{base}/#/service/{service}?environment=production&namespace=prod");
    let timeline = page(&url);
    assert!(
        timeline.contains("v1.0.0")
            && timeline.contains("v1.1.0")
            && timeline.contains("ShopErrors fired"),
        "{timeline}"
    );
    assert!(
        timeline.contains(&format!("href=\"#/alert/{fingerprint}\"")),
        "the alert's events link to its page: {timeline}"
    );
    screenshot(&url, "timeline");
    let alerts_only = page(&format!("{url}&kinds=alert_firing"));
    assert!(alerts_only.contains("ShopErrors fired"), "{alerts_only}");
    assert!(
        !alerts_only.contains("v1.0.0"),
        "the filter keeps deployments out: {alerts_only}"
    );
    let last_hour = page(&format!("{url}&range=1h"));
    assert!(last_hour.contains("ShopErrors fired"), "{last_hour}");
    assert!(
        !last_hour.contains("v1.0.0"),
        "three hours ago is out of the last hour: {last_hour}"
    );

    // The same service in a second cluster: its own row, its own timeline.
    let west = unique("west");
    let image = format!("ghcr.io/acme/{service}:v7.0.0@sha256:{}", "d".repeat(64));
    let started = at(Utc::now() - Duration::minutes(30));
    record_deployment(
        base,
        &service,
        ("abcdef3", &image, "v7.0.0", &started),
        &["--cluster", &west],
    );
    let services = page(&format!("{base}/#/"));
    assert_eq!(
        services.matches(&format!(">{service}</a>")).count(),
        2,
        "one row per cluster: {services}"
    );
    assert!(
        services.contains(&format!("<td>{west}</td>")) && services.contains("<td>default</td>"),
        "{services}"
    );
    assert!(
        services.contains(&format!("cluster={west}")),
        "the row links to its cluster's timeline: {services}"
    );
    let in_west = page(&format!("{url}&cluster={west}"));
    assert!(
        in_west.contains("v7.0.0") && !in_west.contains("v1.0.0"),
        "{in_west}"
    );
    let in_default = page(&format!("{url}&cluster=default"));
    assert!(
        in_default.contains("v1.0.0") && !in_default.contains("v7.0.0"),
        "{in_default}"
    );

    // A dependency's deployment, toggled in.
    let db = unique("shopdb");
    let put = send(
        "PUT",
        &format!("{base}/v1/services/{service}/dependencies"),
        &format!(r#"{{"namespace": "prod", "environment": "production", "depends_on": ["{db}"]}}"#),
    );
    assert_eq!(put, "200");
    let image = format!("ghcr.io/acme/{db}:v9@sha256:{}", "c".repeat(64));
    let started = at(Utc::now() - Duration::minutes(20));
    record_deployment(base, &db, ("abcdef2", &image, "v9.0.0", &started), &[]);
    let without = page(&url);
    assert!(!without.contains("v9.0.0"), "{without}");
    let with = page(&format!("{url}&deps=1"));
    assert!(
        with.contains("v9.0.0") && with.contains(&format!("<td>{db}</td>")),
        "the dependency's deployment is toggled in: {with}"
    );

    // The alert: the suspects with their evidence and diff; the hostile summary as text.
    let url = format!("{base}/#/alert/{fingerprint}");
    let alert = page(&url);
    assert!(
        alert.contains("Suspects") && alert.contains("v1.1.0"),
        "{alert}"
    );
    assert!(
        alert.contains("values.pool.size") && alert.contains(">10<"),
        "the diff: {alert}"
    );
    assert!(
        alert.contains("&lt;script&gt;window.pwned=1&lt;/script&gt;"),
        "the summary is shown as text: {alert}"
    );
    assert!(
        !alert.contains("<script>window.pwned") && !alert.contains("<img src=\"x\""),
        "{alert}"
    );
    screenshot(&url, "alert");

    // The incident review: the report's graph drawn as a diagram, its suspects and timeline.
    let url = format!("{base}/#/incident/{fingerprint}");
    let incident = page(&url);
    assert!(
        incident.contains("<svg") && incident.contains("class=\"diagram\""),
        "{incident}"
    );
    assert!(
        incident.contains("TRIGGERS 0.")
            && incident.contains("FIRED_ON")
            && incident.contains("DEPLOYS"),
        "the graph's edges: {incident}"
    );
    assert!(
        incident.contains("Download Markdown") && incident.contains("v1.1.0"),
        "{incident}"
    );
    assert!(!incident.contains("<script>window.pwned"), "{incident}");
    screenshot(&url, "incident");

    // The deployment: its diff, image and what it follows.
    let uid = top_suspect(base, &fingerprint);
    let url = format!("{base}/#/deployment/{uid}");
    let deployment = page(&url);
    assert!(
        deployment.contains("values.pool.size")
            && deployment.contains(&format!("ghcr.io/acme/{service}:v1.1.0")),
        "{deployment}"
    );
    assert!(
        deployment.contains("Follows") && deployment.contains("#/deployment/deployment-"),
        "{deployment}"
    );

    // The ask box: how the question was understood, the answer, the Cypher.
    let url = format!("{base}/#/ask?q=which%20deploy%20caused%20the%20{service}%20alert%3F");
    let answer = page(&url);
    assert!(
        answer.contains("Understood as") && answer.contains("the suspects of the newest"),
        "{answer}"
    );
    assert!(
        answer.contains("v1.1.0") && answer.contains("TRIGGERS"),
        "{answer}"
    );
    screenshot(&url, "ask");
    let refused = page(&format!(
        "{base}/#/ask?q=what%20is%20the%20meaning%20of%20life"
    ));
    assert!(
        refused.contains("id=\"not-understood\"") && refused.contains("Questions understood"),
        "{refused}"
    );
}

#[test]
fn the_console_reads_with_the_token_it_is_given() {
    let server = Server::start(
        &sqlite_uri(),
        &["--token", TOKEN, "--read-token", READ_TOKEN],
    );
    let (service, _) = world(&server);
    let without = page(&format!("{}/#/", server.url));
    assert!(without.contains("id=\"needs-token\""), "{without}");
    assert!(!without.contains(&service), "{without}");
    // The token handed over in the fragment, which the page keeps for the tab.
    let with = page(&format!("{}/#/?token={READ_TOKEN}", server.url));
    assert!(with.contains(&format!(">{service}</a>")), "{with}");
    // The page itself holds no data and is served without a token, with a strict policy.
    let out = Command::new("curl")
        .args([
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            &format!("{}/", server.url),
        ])
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(headers.starts_with("http/1.1 200"), "{headers}");
    assert!(
        headers.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{headers}"
    );
}

#[test]
fn the_console_is_used_with_the_keyboard_and_the_mouse() {
    let server = Server::start(&sqlite_uri(), &["--token", TOKEN]);
    let (service, fingerprint) = world(&server);
    let base = &server.url;
    let release = top_suspect(base, &fingerprint);
    let chaos = format!(
        r#"{{"scenario": "pod-delete", "experiment": "pod-delete", "verdict": "Pass", "phase": "Completed",
            "target": {{"name": "{service}", "namespace": "prod", "environment": "production"}},
            "started_at": "{}", "ended_at": "{}", "probe_success_pct": 100, "against": "{release}"}}"#,
        at(Utc::now() - Duration::minutes(55)),
        at(Utc::now() - Duration::minutes(54)),
    );
    assert_eq!(
        send("POST", &format!("{base}/v1/chaos/runs"), &chaos),
        "201"
    );

    let mut browser = Browser::open(&format!("{base}/#/"));
    let services = browser.ready();
    assert!(services.contains(&format!(">{service}</a>")), "{services}");

    // A question typed into the ask box and sent with Enter.
    browser.click("#ask-q");
    browser.leave();
    browser.type_text(&format!("which deploy caused the {service} alert?"));
    browser.enter();
    let answer = browser.ready();
    assert!(
        browser.location().contains("#/ask?q=which+deploy+caused"),
        "{}",
        browser.location()
    );
    assert!(
        answer.contains("Understood as") && answer.contains("v1.1.0"),
        "{answer}"
    );

    // The answer's alert, followed with the mouse: its neighbourhood in the graph.
    browser.leave();
    browser.click("#answer a");
    let alert = browser.ready();
    assert!(alert.contains("ShopErrors"), "{alert}");
    let graph = section(&alert, "id=\"graph\"", "</svg>");
    assert!(
        graph.contains("FIRED_ON") && graph.contains("TRIGGERS 0.") && graph.contains(&service),
        "{graph}"
    );
    assert!(
        graph.contains(&format!("href=\"#/deployment/{release}\"")),
        "{graph}"
    );

    // Confirming the top suspect needs the token: refused without it, recorded with it.
    browser.prompt_answer = Some("oncall-sre".to_owned());
    browser.leave();
    browser.click("#main table button");
    let refused = browser.ready();
    assert_eq!(browser.dialogs.len(), 2, "{:?}", browser.dialogs);
    assert!(
        browser.dialogs[1].contains("The verdict was not recorded"),
        "{:?}",
        browser.dialogs
    );
    assert!(!refused.contains("confirmed by"), "{refused}");
    browser.prompt_answer = Some(TOKEN.to_owned());
    browser.leave();
    browser.click("#token-button");
    browser.ready();
    browser.prompt_answer = Some("oncall-sre".to_owned());
    browser.leave();
    browser.click("#main table button");
    let reviewed = browser.ready();
    assert!(reviewed.contains("confirmed by oncall-sre"), "{reviewed}");
    if let Ok(dir) = std::env::var("DEPLOYGRAPH_SCREENSHOTS") {
        browser.screenshot(&Path::new(&dir).join("alert-reviewed.png"));
    }
    assert!(
        section(&reviewed, "id=\"graph\"", "</svg>").contains("CAUSED · TRIGGERS"),
        "{reviewed}"
    );

    // The suspect's page: the alerts attributed to it, the chaos run against it, its graph.
    browser.leave();
    browser.click("a[href^='#/deployment/']");
    let deployment = browser.ready();
    let attributed = section(&deployment, "id=\"attributed\"", "</table>");
    assert!(
        attributed.contains("ShopErrors")
            && attributed.contains("#1 of ")
            && attributed.contains("confirmed by oncall-sre"),
        "{deployment}"
    );
    assert!(
        deployment.contains("Chaos runs against it") && deployment.contains("pod-delete"),
        "{deployment}"
    );
    let images = section(&deployment, "id=\"image-changes\"", "</table>");
    assert!(
        images.contains(&format!("{service}:v1.0.0@"))
            && images.contains(&format!("{service}:v1.1.0@"))
            && images.contains(">removed<")
            && images.contains(">added<"),
        "the image diff against the deployment it follows: {images}"
    );
    if let Ok(dir) = std::env::var("DEPLOYGRAPH_SCREENSHOTS") {
        browser.screenshot(&Path::new(&dir).join("deployment.png"));
    }
    let graph = section(&deployment, "id=\"graph\"", "</svg>");
    for edge in [
        "DEPLOYS",
        "FOLLOWS",
        "BUILT_FROM",
        "RUNS",
        "CHANGED",
        "TRIGGERS 0.",
        "AGAINST",
    ] {
        assert!(graph.contains(edge), "{edge}: {graph}");
    }

    // From the graph to the service's timeline, and a kind unticked with the mouse.
    browser.leave();
    browser.click("#graph a[href^='#/service/']");
    let timeline = browser.ready();
    assert!(
        timeline.contains("v1.0.0") && timeline.contains("ShopErrors fired"),
        "{timeline}"
    );
    browser.leave();
    browser.click("input[data-kind='deployment']");
    let alerts_only = browser.ready();
    assert!(
        !alerts_only.contains("v1.0.0") && alerts_only.contains("ShopErrors fired"),
        "{alerts_only}"
    );
}

/// The part of `html` from the attribute `marker` to the first `end` after it.
fn section<'a>(html: &'a str, marker: &str, end: &str) -> &'a str {
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in {html}"));
    let rest = &html[start..];
    rest.find(end).map_or(rest, |e| &rest[..e + end.len()])
}
