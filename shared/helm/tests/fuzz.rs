//! Fuzz targets for Helm release storage: `data.release` as the Kubernetes watcher reads it
//! (Helm's base64, gzip when present, JSON), Secret objects as `deploygraph helm decode` reads
//! them, and what is computed from a decoded release (summary, values, manifest diff).
//!
//! `cargo test` runs each target as a bounded smoke run (its seed corpus under
//! `tests/__fuzz__/<target>/corpus`, then random inputs for a few seconds); `cargo bolero test`
//! runs them coverage-guided (docs/fuzzing.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use deploygraph_helm::diff::diff_values;
use deploygraph_helm::{Release, decode_release_field, decode_secret_json, diff_manifests};
use deploygraph_model::fuzzing::json_input;
use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::Write as _;
use std::time::Duration;

/// How long the smoke run of one target generates random inputs under `cargo test`.
const SMOKE_TIME: Duration = Duration::from_secs(3);
/// And at most this many.
const SMOKE_ITERATIONS: usize = 100_000;

const RELEASE_WORDS: &[&str] = &[
    "name",
    "namespace",
    "version",
    "info",
    "status",
    "deployed",
    "superseded",
    "failed",
    "first_deployed",
    "last_deployed",
    "description",
    "chart",
    "metadata",
    "appVersion",
    "values",
    "config",
    "manifest",
    "replicas",
    "image",
    "tag",
    "password",
    "---\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n",
    "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n",
    "---\n# only a comment\n---\n",
    "kind: [\n",
    "1.2.3",
];

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Everything the watcher and the CLI compute from a decoded release must hold up too.
fn use_release(release: &Release) {
    let summary = release.summary();
    assert_eq!(summary.revision, release.version);
    let values = release.effective_values();
    assert!(diff_values(&values, &values, "values").is_empty());
    let namespace = if release.namespace.is_empty() {
        "default"
    } else {
        &release.namespace
    };
    if let Ok(changes) = diff_manifests(&release.manifest, &release.manifest, namespace) {
        assert!(
            changes.is_empty(),
            "a manifest differs from itself: {changes:?}"
        );
    }
    let _ = diff_manifests("", &release.manifest, namespace);
}

#[test]
fn helm_release_field() {
    bolero::check!()
        .with_test_time(SMOKE_TIME)
        .with_iterations(SMOKE_ITERATIONS)
        .for_each(|input: &[u8]| {
            // The bytes as they come out of the Secret API.
            if let Ok(release) = decode_release_field(input) {
                use_release(&release);
            }
            // The same document encoded the way Helm writes it decodes to what it says, with
            // or without gzip.
            let json = json_input(input, RELEASE_WORDS);
            let direct = serde_json::from_slice::<Release>(&json).ok();
            // (gzip is slow in unoptimised test builds: one input in four takes that path)
            let payload = if input.len().is_multiple_of(4) {
                gzip(&json)
            } else {
                json.to_vec()
            };
            {
                let encoded = STANDARD.encode(&payload);
                let decoded = decode_release_field(encoded.as_bytes()).ok();
                assert_eq!(decoded, direct);
            }
            if let Some(release) = direct {
                use_release(&release);
            }
        });
}

#[test]
fn helm_secret_json() {
    bolero::check!()
        .with_test_time(SMOKE_TIME)
        .with_iterations(SMOKE_ITERATIONS)
        .for_each(|input: &[u8]| {
            let text = String::from_utf8_lossy(input);
            if let Ok(release) = decode_secret_json(&text) {
                use_release(&release);
            }
        });
}
