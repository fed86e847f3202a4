//! Gate benchmark: 200 TLS endpoints on loopback checked by the gate's runner, against a
//! sequential loop of `openssl s_client -connect … | openssl x509 -noout -checkend 86400` over
//! the same endpoints, in the same run.
//!
//! `cargo bench -p deploygraph-probe --bench gate` (BENCH_ENDPOINTS, BENCH_CONCURRENCY to vary).

use chrono::Duration;
use deploygraph_probe::Status;
use deploygraph_probe::runner::{Check, RunOptions, run};
use deploygraph_probe::testing::{Ca, leaf, serve};
use deploygraph_probe::tls::{CheckOptions, roots_from_bundle};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One `openssl s_client | openssl x509 -checkend` pipeline, as a shell script would run it.
fn openssl_checkend(port: u16) -> bool {
    let script = format!(
        "openssl s_client -connect 127.0.0.1:{port} -servername localhost </dev/null 2>/dev/null \
         | openssl x509 -noout -checkend 86400 >/dev/null"
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = env_usize("BENCH_ENDPOINTS", 200);
    let concurrency = env_usize("BENCH_CONCURRENCY", 64);
    let ca = Ca::new("bench CA");
    let mut ports = Vec::with_capacity(n);
    for _ in 0..n {
        ports.push(serve(leaf(Some(&ca), &["localhost"], -1, 24 * 90)).await);
    }
    let checks: Vec<Check> = ports
        .iter()
        .map(|p| Check::Tls(format!("127.0.0.1:{p}@localhost").parse().expect("target")))
        .collect();
    let options = RunOptions {
        checks: CheckOptions {
            checkend: Duration::seconds(86_400),
            roots: Arc::new(roots_from_bundle(ca.pem().as_bytes()).expect("roots")),
            untrusted_fails: true,
            timeout: std::time::Duration::from_secs(10),
        },
        concurrency,
        deadline: std::time::Duration::from_secs(60),
    };
    // Warm-up (the first handshakes load the crypto tables).
    run(&checks[..checks.len().min(10)], &options).await;

    let started = Instant::now();
    let results = run(&checks, &options).await;
    let gate_seconds = started.elapsed().as_secs_f64();
    assert!(
        results.iter().all(|r| r.status == Status::Pass),
        "every endpoint passes"
    );

    let ports_for_loop = ports.clone();
    let (loop_seconds, loop_ok) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let ok = ports_for_loop
            .iter()
            .filter(|p| openssl_checkend(**p))
            .count();
        (started.elapsed().as_secs_f64(), ok)
    })
    .await
    .expect("openssl loop");
    assert_eq!(loop_ok, n, "every openssl pipeline passes");

    println!(
        "Endpoints: {n} TLS listeners on 127.0.0.1 (rcgen CA-signed leaves, in the benchmark process)"
    );
    println!("| path | seconds | endpoints/s |");
    println!("|---|---:|---:|");
    println!(
        "| deploygraph gate runner, concurrency {concurrency} | {gate_seconds:.3} | {:.0} |",
        n as f64 / gate_seconds
    );
    println!(
        "| sequential `openssl s_client \\| openssl x509 -checkend 86400` | {loop_seconds:.3} | {:.0} |",
        n as f64 / loop_seconds
    );
    println!("\nSpeed-up: {:.1}x", loop_seconds / gate_seconds);
}
