//! The container image's definition: hadolint passes on the Dockerfile (and fails a bad one, so
//! the lint can fail), the image and the compose file probe readiness with the same
//! `deploygraph healthcheck`, and that subcommand tells a ready server (0) from one that
//! answers not ready (1) and from nothing listening (3).

use crate::support::{Server, bin, free_port, sqlite_uri, stderr, stdout, temp_path};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn hadolint(dockerfile: &std::path::Path) -> Output {
    let hadolint = std::env::var("DEPLOYGRAPH_HADOLINT").expect(
        "DEPLOYGRAPH_HADOLINT is not set: run through scripts/test, which installs hadolint",
    );
    Command::new(hadolint)
        .arg("--no-color")
        .arg(dockerfile)
        .current_dir(repo())
        .output()
        .expect("hadolint runs")
}

#[test]
fn the_dockerfile_passes_hadolint_and_a_bad_one_does_not() {
    let out = hadolint(&repo().join("Dockerfile"));
    assert!(
        out.status.success() && stdout(&out).trim().is_empty(),
        "hadolint: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let bad = temp_path("Dockerfile");
    std::fs::write(
        &bad,
        "FROM debian:latest\nRUN cd /tmp && curl -k https://example.com | sh\n",
    )
    .unwrap();
    let out = hadolint(&bad);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("DL3007"), "{}", stdout(&out));
}

#[test]
fn the_image_and_compose_probe_readiness_with_the_binary() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let healthcheck = dockerfile
        .split("\nHEALTHCHECK ")
        .nth(1)
        .expect("the Dockerfile has a HEALTHCHECK");
    assert!(
        healthcheck.contains(r#"CMD ["deploygraph", "healthcheck", "--timeout", "4s"]"#),
        "{healthcheck}"
    );
    let instructions: Vec<&str> = dockerfile
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    assert!(
        !instructions
            .iter()
            .any(|l| l.contains("curl") || l.contains("wget")),
        "no curl or wget in the image"
    );
    for from in dockerfile.lines().filter(|l| l.starts_with("FROM ")) {
        let image = from.split_whitespace().nth(1).unwrap();
        let tag = image.split_once(':').map(|(_, t)| t).unwrap_or_default();
        assert!(
            tag.chars().any(|c| c.is_ascii_digit()) && !tag.contains("latest"),
            "base images are pinned to a version: {from}"
        );
    }
    let compose: serde_json::Value = serde_norway::from_str(
        &std::fs::read_to_string(repo().join("docker-compose.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        compose["services"]["deploygraph"]["healthcheck"]["test"],
        serde_json::json!(["CMD", "deploygraph", "healthcheck", "--timeout", "4s"])
    );
}

/// A peer that answers every request with 503 and a JSON body, as a server whose store is down.
fn not_ready_peer() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0_u8; 4096];
            let _ = stream.read(&mut buf);
            let body = r#"{"status":"unavailable","store":"connection refused"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn healthcheck(args: &[&str], listen: Option<&str>) -> Output {
    let mut command = Command::new(bin());
    command.arg("healthcheck").args(args);
    match listen {
        Some(listen) => command.env("DEPLOYGRAPH_LISTEN", listen),
        None => command.env_remove("DEPLOYGRAPH_LISTEN"),
    };
    command.output().unwrap()
}

#[test]
fn healthcheck_tells_ready_from_not_ready_from_unreachable() {
    let server = Server::start(&sqlite_uri(), &[]);
    let ready = healthcheck(&["--url", &format!("{}/readyz", server.url)], None);
    assert_eq!(ready.status.code(), Some(0), "{}", stderr(&ready));
    assert!(stdout(&ready).starts_with("ready: "), "{}", stdout(&ready));
    // Without --url: the port of DEPLOYGRAPH_LISTEN, on loopback, as inside the container.
    let port = server.url.rsplit(':').next().unwrap();
    let by_env = healthcheck(&[], Some(&format!("0.0.0.0:{port}")));
    assert_eq!(by_env.status.code(), Some(0), "{}", stderr(&by_env));

    let peer = not_ready_peer();
    let not_ready = healthcheck(&["--url", &format!("http://127.0.0.1:{peer}/readyz")], None);
    assert_eq!(not_ready.status.code(), Some(1), "{}", stderr(&not_ready));
    assert!(
        stderr(&not_ready).contains("503") && stderr(&not_ready).contains("connection refused"),
        "{}",
        stderr(&not_ready)
    );

    let closed = free_port();
    let unreachable = healthcheck(
        &["--url", &format!("http://127.0.0.1:{closed}/readyz")],
        None,
    );
    assert_eq!(
        unreachable.status.code(),
        Some(3),
        "{}",
        stderr(&unreachable)
    );

    let bad = healthcheck(&[], Some("not-an-address"));
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}
