//! The API server check against a real kube-apiserver + etcd (`scripts/services up kube`):
//! healthy, unreachable, untrusted, and not ready while etcd is frozen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_probe::Status;
use deploygraph_probe::apiserver::check;
use std::process::Command;
use std::time::{Duration, Instant};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: these tests need the real API server; run scripts/test (or `scripts/services up kube && eval \"$(scripts/services env)\"`)")
    })
}

fn signal(pid: &str, sig: &str) {
    assert!(
        Command::new("kill")
            .args([sig, pid])
            .status()
            .unwrap()
            .success()
    );
}

/// Thaws etcd even when an assertion fails while it is frozen.
struct Thaw(String);

impl Drop for Thaw {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.0]).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_is_healthy_then_not_ready_while_etcd_is_frozen() {
    let server = env("KUBE_TEST_SERVER");
    let ca = std::fs::read(env("KUBE_TEST_CA")).unwrap();
    let timeout = Duration::from_secs(10);

    let healthy = check(&server, Some(&ca), timeout).await;
    assert_eq!(healthy.status, Status::Pass, "{}", healthy.detail);
    assert!(healthy.detail.starts_with("v1."), "{}", healthy.detail);
    assert!(
        healthy.parts.iter().any(|p| p.name == "etcd" && p.ok),
        "{:?}",
        healthy.parts
    );

    let etcd = std::fs::read_to_string(env("ETCD_TEST_PID_FILE"))
        .unwrap()
        .trim()
        .to_owned();
    signal(&etcd, "-STOP");
    let thaw = Thaw(etcd);
    let deadline = Instant::now() + Duration::from_secs(60);
    let unready = loop {
        let result = check(&server, Some(&ca), timeout).await;
        if result.status == Status::Fail || Instant::now() > deadline {
            break result;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(unready.status, Status::Fail, "{}", unready.detail);
    assert!(
        unready.detail.contains("not ready:") && unready.detail.contains("etcd"),
        "{}",
        unready.detail
    );
    assert!(
        unready
            .parts
            .iter()
            .any(|p| p.name.starts_with("etcd") && !p.ok),
        "{:?}",
        unready.parts
    );
    drop(thaw);

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let result = check(&server, Some(&ca), timeout).await;
        if result.status == Status::Pass {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the API server did not recover: {}",
            result.detail
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn an_unreachable_or_untrusted_api_server_is_unknown() {
    let server = env("KUBE_TEST_SERVER");
    let stranger = deploygraph_probe::testing::Ca::new("not the cluster CA").pem();
    let untrusted = check(&server, Some(stranger.as_bytes()), Duration::from_secs(5)).await;
    assert_eq!(untrusted.status, Status::Unknown, "{}", untrusted.detail);
    let port = deploygraph_probe::testing::closed_port();
    let closed = check(
        &format!("https://127.0.0.1:{port}"),
        None,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(closed.status, Status::Unknown, "{}", closed.detail);
}
