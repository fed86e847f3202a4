//! Diffs between two revisions: values as flattened key paths, manifests per resource.

use deploygraph_model::redact::{REDACTED, is_secret_path, redact_secrets};
use deploygraph_model::{ChangeKind, ConfigChange};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Flattens a JSON/YAML tree into `path → value` leaves: `redis.pool.size`, `hosts[0]`.
/// Strings are kept as they are, other scalars as JSON text; empty maps and lists are leaves.
pub fn flatten(value: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    flatten_into(value, String::new(), &mut out);
    out
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn flatten_into(value: &Value, path: String, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                flatten_into(child, join(&path, key), out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, child) in items.iter().enumerate() {
                flatten_into(child, format!("{path}[{i}]"), out);
            }
        }
        Value::String(s) => {
            out.insert(path, s.clone());
        }
        other => {
            out.insert(path, other.to_string());
        }
    }
}

/// Changed, added and removed leaves between two trees, as ConfigChanges under `prefix`
/// (`values`), secret-looking values redacted.
pub fn diff_values(old: &Value, new: &Value, prefix: &str) -> Vec<ConfigChange> {
    diff_leaves(
        &flatten(old),
        &flatten(new),
        |leaf| join(prefix, leaf),
        |_| ChangeKind::Value,
    )
}

/// Changed, added and removed leaves between two trees: paths built by `path` from the
/// flattened leaf path, modified leaves classified by `modified_kind`; secrets redacted.
pub fn diff_trees(
    old: &Value,
    new: &Value,
    path: impl Fn(&str) -> String,
    modified_kind: impl Fn(&str) -> ChangeKind,
) -> Vec<ConfigChange> {
    diff_leaves(&flatten(old), &flatten(new), path, modified_kind)
}

fn diff_leaves(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    path: impl Fn(&str) -> String,
    modified_kind: impl Fn(&str) -> ChangeKind,
) -> Vec<ConfigChange> {
    let mut changes = Vec::new();
    for (leaf, before) in old {
        match new.get(leaf) {
            Some(after) if after == before => {}
            Some(after) => changes.push(ConfigChange::new(
                path(leaf),
                modified_kind(leaf),
                Some(before.clone()),
                Some(after.clone()),
            )),
            None => changes.push(ConfigChange::new(
                path(leaf),
                ChangeKind::Removed,
                Some(before.clone()),
                None,
            )),
        }
    }
    for (leaf, after) in new {
        if !old.contains_key(leaf) {
            changes.push(ConfigChange::new(
                path(leaf),
                ChangeKind::Added,
                None,
                Some(after.clone()),
            ));
        }
    }
    changes
}

/// A copy of `values` with secret-looking leaves replaced by [`REDACTED`], and secrets
/// recognised by their shape (a password in a URL, a token) redacted in the others.
pub fn redact_values(values: Value) -> Value {
    redact_at(values, "")
}

fn redact_at(value: Value, path: &str) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let child = join(path, &k);
                    (k, redact_at(v, &child))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| redact_at(v, &format!("{path}[{i}]")))
                .collect(),
        ),
        Value::Null => Value::Null,
        _ if is_secret_path(path) => Value::String(REDACTED.to_owned()),
        Value::String(s) => Value::String(redact_secrets(&s).into_owned()),
        scalar => scalar,
    }
}

/// The documents of a rendered manifest (split on `---` lines), empty ones dropped.
pub fn split_manifest(manifest: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in manifest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            docs.push(&manifest[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    docs.push(&manifest[start..]);
    docs.into_iter()
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

/// How a resource changed between two revisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceChangeKind {
    /// Only in the new revision.
    Added,
    /// Only in the old revision.
    Removed,
    /// In both, with different fields.
    Modified,
}

/// One resource's change, keyed like helm-diff: `namespace, name, Kind (group)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceChange {
    /// `namespace, name, Kind (group or v1)`.
    pub key: String,
    /// Kind of resource (`Deployment`).
    pub resource_kind: String,
    /// Resource name.
    pub name: String,
    /// Added, removed or modified.
    pub change: ResourceChangeKind,
    /// Field changes, paths `Kind/name:field`, secrets redacted.
    pub fields: Vec<ConfigChange>,
}

impl ResourceChange {
    /// The changes to record: one per field for a modified resource, one for the whole resource
    /// when it was added or removed.
    pub fn config_changes(&self) -> Vec<ConfigChange> {
        match self.change {
            ResourceChangeKind::Modified => self.fields.clone(),
            ResourceChangeKind::Added => vec![ConfigChange::new(
                format!("{}/{}", self.resource_kind, self.name),
                ChangeKind::Added,
                None,
                Some(self.key.clone()),
            )],
            ResourceChangeKind::Removed => vec![ConfigChange::new(
                format!("{}/{}", self.resource_kind, self.name),
                ChangeKind::Removed,
                Some(self.key.clone()),
                None,
            )],
        }
    }
}

/// A parsed manifest document.
struct Resource {
    key: String,
    kind: String,
    name: String,
    body: Value,
}

/// Most bytes of rendered manifest parsed as YAML: the same 32 MiB a whole release may take
/// ([`crate::decode::DEFAULT_MAX_RELEASE_BYTES`]), since the manifest is part of it.
pub const MAX_MANIFEST_BYTES: usize = crate::decode::DEFAULT_MAX_RELEASE_BYTES;

fn parse_resources(
    manifest: &str,
    default_namespace: &str,
) -> Result<BTreeMap<String, Resource>, String> {
    if manifest.len() > MAX_MANIFEST_BYTES {
        return Err(format!(
            "the manifest is larger than the MAX_MANIFEST_BYTES limit of {MAX_MANIFEST_BYTES} bytes"
        ));
    }
    let mut resources = BTreeMap::new();
    for doc in split_manifest(manifest) {
        let body: Value =
            serde_norway::from_str(doc).map_err(|e| format!("invalid manifest document: {e}"))?;
        if body.is_null() {
            continue;
        }
        let kind = body
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("Unknown")
            .to_owned();
        let api_version = body
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("v1");
        let group = api_version.split_once('/').map_or(api_version, |(g, _)| g);
        let metadata = body.get("metadata");
        let name = metadata
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let namespace = metadata
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .unwrap_or(default_namespace);
        let key = format!("{namespace}, {name}, {kind} ({group})");
        resources.insert(
            key.clone(),
            Resource {
                key,
                kind,
                name,
                body,
            },
        );
    }
    Ok(resources)
}

/// What a changed manifest field is, for the graph: image, replicas, env, resources or other.
pub fn classify_field(field: &str) -> ChangeKind {
    if field.contains("containers[") && field.ends_with(".image") {
        ChangeKind::Image
    } else if field == "spec.replicas" {
        ChangeKind::Replicas
    } else if field.contains(".env[") || field.contains(".envFrom[") {
        ChangeKind::Env
    } else if field.contains(".resources.") {
        ChangeKind::Resources
    } else {
        ChangeKind::Manifest
    }
}

/// Per-resource diff of two rendered manifests, like helm-diff: present in both → modified
/// (when any field differs), old only → removed, new only → added.
///
/// # Errors
/// A document that is not YAML, or a manifest larger than [`MAX_MANIFEST_BYTES`].
pub fn diff_manifests(
    old: &str,
    new: &str,
    default_namespace: &str,
) -> Result<Vec<ResourceChange>, String> {
    let old = parse_resources(old, default_namespace)?;
    let new = parse_resources(new, default_namespace)?;
    let mut changes = Vec::new();
    for (key, before) in &old {
        match new.get(key) {
            Some(after) => {
                let prefix = format!("{}/{}:", before.kind, before.name);
                let fields = diff_leaves(
                    &flatten(&before.body),
                    &flatten(&after.body),
                    |leaf| format!("{prefix}{leaf}"),
                    classify_field,
                );
                if !fields.is_empty() {
                    changes.push(resource_change(after, ResourceChangeKind::Modified, fields));
                }
            }
            None => changes.push(resource_change(
                before,
                ResourceChangeKind::Removed,
                Vec::new(),
            )),
        }
    }
    for (key, after) in &new {
        if !old.contains_key(key) {
            changes.push(resource_change(
                after,
                ResourceChangeKind::Added,
                Vec::new(),
            ));
        }
    }
    Ok(changes)
}

fn resource_change(
    r: &Resource,
    change: ResourceChangeKind,
    fields: Vec<ConfigChange>,
) -> ResourceChange {
    ResourceChange {
        key: r.key.clone(),
        resource_kind: r.kind.clone(),
        name: r.name.clone(),
        change,
        fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_manifest_over_the_yaml_cap_is_an_error_naming_it() {
        let doc = "---\nkind: ConfigMap\nmetadata:\n  name: a\n";
        let huge = doc.repeat(MAX_MANIFEST_BYTES / doc.len() + 1);
        assert!(huge.len() > MAX_MANIFEST_BYTES);
        let err = diff_manifests(doc, &huge, "prod").err().unwrap_or_default();
        assert_eq!(
            err,
            "the manifest is larger than the MAX_MANIFEST_BYTES limit of 33554432 bytes"
        );
        assert!(diff_manifests(&huge, doc, "prod").is_err());
        assert!(diff_manifests(doc, doc, "prod").is_ok());
    }

    #[test]
    fn values_diff_reports_changed_added_and_removed_leaves() {
        let old = json!({"redis": {"pool": {"size": 50}, "host": "a"}, "hosts": ["x", "y"], "auth": {"password": "old"}});
        let new = json!({"redis": {"pool": {"size": 10}}, "hosts": ["x"], "feature": true, "auth": {"password": "new"}});
        let changes = diff_values(&old, &new, "values");
        let find = |p: &str| {
            changes
                .iter()
                .find(|c| c.path == p)
                .unwrap_or_else(|| panic!("{p} in {changes:?}"))
        };
        let pool = find("values.redis.pool.size");
        assert_eq!(
            (pool.kind, pool.before.as_deref(), pool.after.as_deref()),
            (ChangeKind::Value, Some("50"), Some("10"))
        );
        assert_eq!(find("values.redis.host").kind, ChangeKind::Removed);
        assert_eq!(find("values.hosts[1]").kind, ChangeKind::Removed);
        assert_eq!(find("values.feature").kind, ChangeKind::Added);
        assert_eq!(
            find("values.auth.password").after.as_deref(),
            Some(REDACTED)
        );
        assert_eq!(changes.len(), 5);
    }

    const OLD: &str = "---
# Source: web/templates/deploy.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: web
          image: ghcr.io/acme/web:1.0
          env:
            - name: LOG_LEVEL
              value: info
---
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: data
stringData:
  password: hunter2
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: gone
data:
  a: b
";

    const NEW: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  template:
    spec:
      containers:
        - name: web
          image: ghcr.io/acme/web:1.1
          env:
            - name: LOG_LEVEL
              value: debug
---
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: data
stringData:
  password: correct-horse
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
";

    #[test]
    fn manifests_diff_per_resource_like_helm_diff() {
        let changes = diff_manifests(OLD, NEW, "prod").expect("diff");
        let keys: Vec<(&str, ResourceChangeKind)> =
            changes.iter().map(|c| (c.key.as_str(), c.change)).collect();
        assert!(
            keys.contains(&("prod, web, Deployment (apps)", ResourceChangeKind::Modified)),
            "{keys:?}"
        );
        assert!(
            keys.contains(&("data, db, Secret (v1)", ResourceChangeKind::Modified)),
            "{keys:?}"
        );
        assert!(
            keys.contains(&("prod, gone, ConfigMap (v1)", ResourceChangeKind::Removed)),
            "{keys:?}"
        );
        assert!(
            keys.contains(&(
                "prod, web, Ingress (networking.k8s.io)",
                ResourceChangeKind::Added
            )),
            "{keys:?}"
        );

        let deployment = changes
            .iter()
            .find(|c| c.resource_kind == "Deployment")
            .expect("deployment");
        let kinds: BTreeMap<&str, ChangeKind> = deployment
            .fields
            .iter()
            .map(|f| (f.path.as_str(), f.kind))
            .collect();
        assert_eq!(
            kinds.get("Deployment/web:spec.replicas"),
            Some(&ChangeKind::Replicas)
        );
        assert_eq!(
            kinds.get("Deployment/web:spec.template.spec.containers[0].image"),
            Some(&ChangeKind::Image)
        );
        assert_eq!(
            kinds.get("Deployment/web:spec.template.spec.containers[0].env[0].value"),
            Some(&ChangeKind::Env)
        );

        let secret = changes
            .iter()
            .find(|c| c.resource_kind == "Secret")
            .expect("secret");
        for field in &secret.fields {
            assert_eq!(field.before.as_deref(), Some(REDACTED));
            assert_eq!(field.after.as_deref(), Some(REDACTED));
        }
        let added = changes
            .iter()
            .find(|c| c.change == ResourceChangeKind::Added)
            .expect("added");
        assert_eq!(added.config_changes()[0].path, "Ingress/web");
    }

    #[test]
    fn unchanged_manifests_have_no_diff_and_garbage_is_an_error() {
        assert!(diff_manifests(OLD, OLD, "prod").expect("diff").is_empty());
        assert!(diff_manifests("kind: [unclosed", "", "prod").is_err());
        assert_eq!(split_manifest("---\n# only a comment\n---\n").len(), 0);
    }

    #[test]
    fn summaries_redact_secret_values() {
        let redacted =
            redact_values(json!({"db": {"password": "x", "host": "h"}, "tokens": ["a"]}));
        assert_eq!(
            redacted,
            json!({"db": {"password": REDACTED, "host": "h"}, "tokens": [REDACTED]})
        );
    }

    #[test]
    fn a_values_diff_redacts_secrets_recognised_by_their_shape() {
        let old = json!({"database": {"url": "postgres://app:old-pass@db/orders"},
                         "webhook": "https://hooks.example.com/x?token=abc123",
                         "image": {"digest": "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
                         "github": "ghp_0123456789abcdefghijABCDEFGHIJ012345"});
        let new = json!({"database": {"url": "postgres://app:new-pass@db-2/orders"},
                         "webhook": "https://hooks.example.com/y?token=def456",
                         "image": {"digest": "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"},
                         "github": "ghp_9876543210abcdefghijABCDEFGHIJ012345"});
        let changes = diff_values(&old, &new, "values");
        let find = |p: &str| {
            let c = changes
                .iter()
                .find(|c| c.path == p)
                .unwrap_or_else(|| panic!("{p} in {changes:?}"));
            (c.before.as_deref(), c.after.as_deref())
        };
        assert_eq!(
            find("values.database.url"),
            (
                Some("postgres://app:<redacted>@db/orders"),
                Some("postgres://app:<redacted>@db-2/orders")
            )
        );
        assert_eq!(
            find("values.webhook"),
            (
                Some("https://hooks.example.com/x?token=<redacted>"),
                Some("https://hooks.example.com/y?token=<redacted>")
            )
        );
        assert_eq!(find("values.github"), (Some(REDACTED), Some(REDACTED)));
        // A digest is not a secret.
        assert_eq!(
            find("values.image.digest"),
            (
                Some("sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
                Some("sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae")
            )
        );
        let text = format!("{changes:?}");
        for secret in ["old-pass", "new-pass", "abc123", "def456", "ghp_"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    #[test]
    fn a_manifest_diff_redacts_a_password_in_an_env_value() {
        let manifest = |url: &str| {
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: web:1\n        env:\n        - name: DATABASE_URL\n          value: {url}\n"
            )
        };
        let changes = diff_manifests(
            &manifest("postgres://u:p1@host/db"),
            &manifest("postgres://u:p2@host/db2"),
            "prod",
        )
        .expect("diff");
        let fields: Vec<ConfigChange> = changes.iter().flat_map(|c| c.config_changes()).collect();
        let env = fields
            .iter()
            .find(|c| c.path.ends_with("env[0].value"))
            .unwrap_or_else(|| panic!("env value in {fields:?}"));
        assert_eq!(
            env.before.as_deref(),
            Some("postgres://u:<redacted>@host/db")
        );
        assert_eq!(
            env.after.as_deref(),
            Some("postgres://u:<redacted>@host/db2")
        );
    }

    #[test]
    fn summaries_redact_secrets_recognised_by_their_shape() {
        let redacted = redact_values(
            json!({"db": {"url": "redis://:pw@cache:6379", "port": 6379},
                                            "auth": "Bearer abc.def-123", "enabled": true}),
        );
        assert_eq!(
            redacted,
            json!({"db": {"url": "redis://:<redacted>@cache:6379", "port": 6379},
                   "auth": "Bearer <redacted>", "enabled": true})
        );
    }
}
