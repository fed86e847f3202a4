//! Helm release storage, read the way Helm writes it.
//!
//! Helm keeps each revision of a release in a Secret `sh.helm.release.v1.<release>.v<revision>`
//! (type `helm.sh/release.v1`, labels `owner=helm, name, status, version`) whose `data.release`
//! is base64(gzip(JSON)) — base64-encoded once more by the Secret API. [`decode`] undoes that
//! (gzip only when its magic bytes are there), [`Release`] reads Helm 3 and Helm 4 JSON, and
//! [`diff`] compares two revisions: values as flattened key paths, manifests per resource keyed
//! like helm-diff (`namespace, name, Kind (group)`), secrets redacted.

pub mod cluster;
pub mod decode;
pub mod diff;
pub mod release;

pub use decode::{
    Error, Limits, Result, decode_release_field, decode_release_field_with, decode_secret_json,
    decode_secret_json_with, revision_from_name, revision_order,
};
pub use diff::{
    ResourceChange, ResourceChangeKind, diff_manifests, diff_values, flatten, split_manifest,
};
pub use release::{Release, ReleaseSummary};
