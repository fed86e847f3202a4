//! A gzip bomb in a Helm release Secret against the real API server: the Helm watcher skips it
//! at the decoder's cap, with its memory bounded by the cap rather than by what the bomb
//! inflates to. Its own test binary (one process, one test), so the peak resident memory it
//! reads from /proc/self/status is this test's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use deploygraph_k8s::helm_watch::HelmWatcher;
use deploygraph_k8s::progress::SkipReason;
use deploygraph_model::{Environment, ServiceName};
use deploygraph_store::DeploymentFilter;
use flate2::{Compress, Compression, Crc, FlushCompress};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, PostParams};
use serde_json::json;
use std::io::Read as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const MIB: usize = 1 << 20;

/// A gzip stream of `mib` MiB of zeros, built without compressing them all: after the first
/// MiB the deflate window holds only zeros, so every further MiB (sync-flushed) compresses to
/// the same bytes, which are repeated. The trailer carries the real CRC and size.
fn gzip_bomb(mib: usize) -> Vec<u8> {
    let zeros = vec![0u8; MIB];
    let mut deflate = Compress::new(Compression::best(), false);
    let mut block = |flush: FlushCompress, input: &[u8]| -> Vec<u8> {
        let mut out = Vec::with_capacity(64 * 1024);
        let before = deflate.total_in();
        deflate.compress_vec(input, &mut out, flush).unwrap();
        assert_eq!(
            deflate.total_in() - before,
            input.len() as u64,
            "all input taken"
        );
        out
    };
    let first = block(FlushCompress::Sync, &zeros);
    let repeated = block(FlushCompress::Sync, &zeros);
    assert_eq!(
        block(FlushCompress::Sync, &zeros),
        repeated,
        "blocks repeat"
    );
    let finish = block(FlushCompress::Finish, &[]);
    let mut one = Crc::new();
    one.update(&zeros);
    let mut crc = Crc::new();
    for _ in 0..mib {
        crc.combine(&one);
    }
    let mut out = vec![0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend_from_slice(&first);
    for _ in 1..mib {
        out.extend_from_slice(&repeated);
    }
    out.extend_from_slice(&finish);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&((mib * MIB) as u32).to_le_bytes());
    out
}

/// A `VmHWM`/`VmRSS`-style line of /proc/self/status, in bytes.
fn status_bytes(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"));
    let kib: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

fn secret(release: &str, revision: u32, data: Vec<u8>) -> Secret {
    let mut s: Secret = serde_json::from_value(json!({
        "metadata": {"name": format!("sh.helm.release.v1.{release}.v{revision}"),
                     "labels": {"owner": "helm", "name": release, "version": revision.to_string()}},
        "type": "helm.sh/release.v1"
    }))
    .unwrap();
    s.data = Some([("release".to_owned(), ByteString(data))].into());
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_bomb_in_a_release_secret_is_skipped_with_bounded_memory() {
    // Kubernetes keeps a Secret's data under 1 MiB: ~760 KiB of gzip after Helm's base64.
    let bomb = gzip_bomb(740);
    let helm_layer = STANDARD.encode(&bomb).into_bytes();
    assert!(helm_layer.len() < MIB, "{} bytes", helm_layer.len());
    let inflated = 740 * MIB;
    // The bomb is a valid gzip stream of zeros (its start, at least; all of it would take
    // what this test is about).
    let mut head = vec![0u8; 4 * MIB];
    flate2::read::GzDecoder::new(bomb.as_slice())
        .read_exact(&mut head)
        .unwrap();
    assert!(head.iter().all(|b| *b == 0));

    let client = deploygraph_k8s::testing::client().await;
    let ns = format!("bomb-{:08x}", rand::random::<u32>());
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .unwrap();
    let (_dir, store) = deploygraph_store::testing::sqlite().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let release = format!("web-{:08x}", rand::random::<u32>());
    // Revision 1 is the bomb; revision 2 is a real release whose previous revision is the bomb.
    secrets
        .create(&PostParams::default(), &secret(&release, 1, helm_layer))
        .await
        .unwrap();
    let record = json!({"name": release, "namespace": ns, "version": 2,
        "info": {"status": "deployed", "last_deployed": "2026-11-20T10:00:00Z"},
        "chart": {"metadata": {"name": "web", "version": "1.0.0"}},
        "config": {"replicas": 2},
        "manifest": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"});
    secrets
        .create(
            &PostParams::default(),
            &secret(
                &release,
                2,
                STANDARD.encode(record.to_string()).into_bytes(),
            ),
        )
        .await
        .unwrap();

    // Peak resident memory from here on ("5" resets VmHWM to the current RSS).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let baseline = status_bytes("VmRSS:");
    let skips: Arc<Mutex<Vec<(String, SkipReason)>>> = Arc::default();
    let seen = Arc::clone(&skips);
    let watcher = HelmWatcher::new(
        client.clone(),
        Arc::clone(&store),
        vec![ns.clone()],
        Environment::parse("production").unwrap(),
    )
    .on_skipped(move |secret, reason| seen.lock().unwrap().push((secret.to_owned(), reason)));
    let stop = CancellationToken::new();
    let task = tokio::spawn(watcher.run(stop.clone()));
    // Revision 2 follows the bomb on the same stream: once it is recorded, the bomb was seen.
    let started = Instant::now();
    let recorded = loop {
        let found = store
            .list_deployments(&DeploymentFilter {
                service: Some(ServiceName::parse(&release).unwrap()),
                limit: 10,
                ..DeploymentFilter::default()
            })
            .await
            .unwrap()
            .items;
        if !found.is_empty() {
            break found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for revision 2"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let peak = status_bytes("VmHWM:");
    stop.cancel();
    task.await.unwrap();

    assert_eq!(
        skips.lock().unwrap().clone(),
        vec![(
            format!("{ns}/sh.helm.release.v1.{release}.v1"),
            SkipReason::HelmReleaseTooLarge
        )]
    );
    assert_eq!(recorded.len(), 1);
    let revision = &recorded[0].deployment;
    assert_eq!(revision.helm.as_ref().map(|h| h.revision), Some(2));
    assert!(
        revision.changes.is_empty(),
        "the bomb is no previous revision to diff against"
    );
    let grew = peak.saturating_sub(baseline);
    eprintln!(
        "gzip bomb: {} KiB of gzip inflating to {} MiB; peak RSS grew by {:.1} MiB (baseline {:.1} MiB, peak {:.1} MiB)",
        bomb.len() / 1024,
        inflated / MIB,
        grew as f64 / MIB as f64,
        baseline as f64 / MIB as f64,
        peak as f64 / MIB as f64
    );
    // The bomb is decoded twice (its own event, and as revision 2's previous revision), each
    // time stopped at the 32 MiB cap.
    assert!(
        grew < 128 * MIB,
        "peak RSS grew by {grew} bytes, for a bomb of {inflated} bytes"
    );
}
