//! Edits of what workloads run with, besides their pod template: the ConfigMaps and Secrets a
//! pod template references, and the HorizontalPodAutoscaler that scales a workload. Pure: what
//! a pod template references ([`references`]), what of an object the watcher remembers
//! ([`Snapshot`]: per key a SHA-256 and, for short non-secret values, the value as stored),
//! and the [`Change`] an edit is ([`change_of`]: a key-level diff of two snapshots).
//!
//! Keys are named by where they sit in the object, like the API's examples: `data.LOG_LEVEL`,
//! `binaryData.logo.png`, `spec.maxReplicas`, `spec.metrics.Resource.cpu.target.averageUtilization`,
//! `spec.behavior.scaleDown.policies.Percent.value`. The object's name is in the change's
//! summary and idempotency key, not in its keys, so attribution classifies a key by its own
//! words (`data.DB_POOL_SIZE` is operational whatever the ConfigMap is called).
//!
//! Nothing secret is kept or stored: a Secret's snapshot holds hashes only and its keys are
//! recorded as changed with `<redacted>` values; a ConfigMap's `binaryData`, and values longer
//! than [`SHOWN_MAX`], are compared by hash and shown by size and hash prefix; the other
//! ConfigMap values are redacted as any change's are ([`KeyChange::new`]).

use crate::rollout::actor_of;
use chrono::{DateTime, Utc};
use deploygraph_model::change::change_uid;
use deploygraph_model::change::limits;
use deploygraph_model::redact::{REDACTED, redact_value};
use deploygraph_model::{Change, ChangeType, KeyChange, ServiceRef, Source, Uid};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, PodSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// ConfigMap values up to this many bytes are kept (redacted as stored) to show before → after;
/// longer ones are compared and shown by hash.
pub const SHOWN_MAX: usize = 4096;

/// The ConfigMaps and Secrets a pod template references, by name (in its own namespace).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// ConfigMap names.
    pub config_maps: BTreeSet<String>,
    /// Secret names.
    pub secrets: BTreeSet<String>,
}

impl References {
    /// Whether it references the object of `kind` named `name`.
    pub fn contains(&self, kind: ConfigKind, name: &str) -> bool {
        match kind {
            ConfigKind::ConfigMap => self.config_maps.contains(name),
            ConfigKind::Secret => self.secrets.contains(name),
            ConfigKind::Autoscaler => false,
        }
    }

    /// Every reference as `(kind, name)`.
    pub fn iter(&self) -> impl Iterator<Item = (ConfigKind, &str)> {
        self.config_maps
            .iter()
            .map(|n| (ConfigKind::ConfigMap, n.as_str()))
            .chain(
                self.secrets
                    .iter()
                    .map(|n| (ConfigKind::Secret, n.as_str())),
            )
    }
}

/// What a pod spec references: volumes (`configMap`, `secret`, projected sources),
/// `env[].valueFrom.configMapKeyRef`/`secretKeyRef` and `envFrom[].configMapRef`/`secretRef` of
/// every container, init container and ephemeral container.
pub fn references(spec: &PodSpec) -> References {
    // Read as JSON: the reference fields are spelled the same in every API version.
    let spec = serde_json::to_value(spec).unwrap_or_default();
    let name = |v: &Value, pointer: &str| {
        v.pointer(pointer)
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
    };
    let list = |v: &Value, field: &str| v.get(field).and_then(Value::as_array).cloned();
    let mut refs = References::default();
    for volume in list(&spec, "volumes").unwrap_or_default() {
        refs.config_maps.extend(name(&volume, "/configMap/name"));
        refs.secrets.extend(name(&volume, "/secret/secretName"));
        for source in volume
            .pointer("/projected/sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            refs.config_maps.extend(name(source, "/configMap/name"));
            refs.secrets.extend(name(source, "/secret/name"));
        }
    }
    for field in ["containers", "initContainers", "ephemeralContainers"] {
        for container in list(&spec, field).unwrap_or_default() {
            for var in list(&container, "env").unwrap_or_default() {
                refs.config_maps
                    .extend(name(&var, "/valueFrom/configMapKeyRef/name"));
                refs.secrets
                    .extend(name(&var, "/valueFrom/secretKeyRef/name"));
            }
            for from in list(&container, "envFrom").unwrap_or_default() {
                refs.config_maps.extend(name(&from, "/configMapRef/name"));
                refs.secrets.extend(name(&from, "/secretRef/name"));
            }
        }
    }
    refs
}

/// The kinds of object whose edits are changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConfigKind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
    /// A HorizontalPodAutoscaler (`autoscaling/v2`).
    Autoscaler,
}

impl ConfigKind {
    /// The Kubernetes kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConfigMap => "ConfigMap",
            Self::Secret => "Secret",
            Self::Autoscaler => "HorizontalPodAutoscaler",
        }
    }

    /// The change's kind.
    pub fn change_type(self) -> ChangeType {
        match self {
            Self::ConfigMap => ChangeType::ConfigMap,
            Self::Secret => ChangeType::Secret,
            Self::Autoscaler => ChangeType::Hpa,
        }
    }
}

/// One key of a snapshot: the hash of its value, its length and, when it may be shown, the value
/// as it would be stored (redacted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    digest: [u8; 32],
    len: usize,
    shown: Option<String>,
}

impl Entry {
    fn hidden(bytes: &[u8]) -> Self {
        Self {
            digest: Sha256::digest(bytes).into(),
            len: bytes.len(),
            shown: None,
        }
    }

    fn shown(key: &str, value: &str) -> Self {
        let mut entry = Self::hidden(value.as_bytes());
        if value.len() <= SHOWN_MAX {
            entry.shown = redact_value(key, Some(value.to_owned()));
        }
        entry
    }

    /// How the value appears in a diff of a kind that is not secret.
    fn display(&self) -> String {
        match &self.shown {
            Some(shown) => shown.clone(),
            None => format!(
                "<{} bytes, sha256:{}>",
                self.len,
                hex::encode(&self.digest[..6])
            ),
        }
    }
}

/// What the watcher remembers of a ConfigMap, Secret or HPA: identity, who wrote it last and
/// when, and per key the hash of its value (and the value when it may be shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Its kind.
    pub kind: ConfigKind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The object's uid.
    pub object_uid: String,
    /// `metadata.resourceVersion`.
    pub resource_version: String,
    /// The manager of its newest write (or `kubernetes.io/change-cause`).
    pub actor: Option<String>,
    /// When it was last written (the newest managed-fields entry outside subresources).
    pub changed_at: Option<DateTime<Utc>>,
    /// An HPA's `scaleTargetRef` as (kind, name).
    pub target: Option<(String, String)>,
    entries: BTreeMap<String, Entry>,
}

fn base(kind: ConfigKind, meta: &ObjectMeta) -> Snapshot {
    Snapshot {
        kind,
        namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
        name: meta.name.clone().unwrap_or_default(),
        object_uid: meta.uid.clone().unwrap_or_default(),
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        actor: actor_of(meta),
        changed_at: crate::observe::changed_at(meta),
        target: None,
        entries: BTreeMap::new(),
    }
}

/// A ConfigMap's `data` (values shown when short) and `binaryData` (by hash only).
pub fn snapshot_config_map(config_map: &ConfigMap) -> Snapshot {
    let mut s = base(ConfigKind::ConfigMap, &config_map.metadata);
    for (key, value) in config_map.data.iter().flatten() {
        let path = format!("data.{key}");
        s.entries.insert(path.clone(), Entry::shown(&path, value));
    }
    for (key, value) in config_map.binary_data.iter().flatten() {
        s.entries
            .insert(format!("binaryData.{key}"), Entry::hidden(&value.0));
    }
    s
}

/// A Secret's keys, each by the hash of its value: no value is kept.
pub fn snapshot_secret(secret: &Secret) -> Snapshot {
    let mut s = base(ConfigKind::Secret, &secret.metadata);
    for (key, value) in secret.data.iter().flatten() {
        s.entries
            .insert(format!("data.{key}"), Entry::hidden(&value.0));
    }
    // Only set on writes (the API server merges it into `data`), but count it if present.
    for (key, value) in secret.string_data.iter().flatten() {
        s.entries
            .insert(format!("data.{key}"), Entry::hidden(value.as_bytes()));
    }
    s
}

/// An HPA's `minReplicas`, `maxReplicas`, `metrics` (each keyed by its type and metric name)
/// and `behavior`, flattened into keys.
pub fn snapshot_hpa(hpa: &HorizontalPodAutoscaler) -> Snapshot {
    let mut s = base(ConfigKind::Autoscaler, &hpa.metadata);
    let Some(spec) = &hpa.spec else { return s };
    s.target = Some((
        spec.scale_target_ref.kind.clone(),
        spec.scale_target_ref.name.clone(),
    ));
    let mut leaves = BTreeMap::new();
    if let Some(min) = spec.min_replicas {
        leaves.insert("spec.minReplicas".to_owned(), min.to_string());
    }
    leaves.insert("spec.maxReplicas".to_owned(), spec.max_replicas.to_string());
    for metric in spec.metrics.iter().flatten() {
        let metric = serde_json::to_value(metric).unwrap_or_default();
        let (prefix, inner) = metric_key(&metric);
        flatten(&inner, &prefix, &mut leaves);
    }
    if let Some(behavior) = &spec.behavior {
        let behavior = serde_json::to_value(behavior).unwrap_or_default();
        flatten(&behavior, "spec.behavior", &mut leaves);
    }
    s.entries = leaves
        .into_iter()
        .map(|(key, value)| {
            let entry = Entry::shown(&key, &value);
            (key, entry)
        })
        .collect();
    s
}

/// A metric's key prefix (`spec.metrics.Resource.cpu`, `spec.metrics.Pods.packets_per_second`,
/// `spec.metrics.Object.Ingress/main.requests`) and the part of it below that.
fn metric_key(metric: &Value) -> (String, Value) {
    let kind = metric
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("Unknown");
    let field = {
        let mut chars = kind.chars();
        chars.next().map_or_else(String::new, |c| {
            c.to_ascii_lowercase().to_string() + chars.as_str()
        })
    };
    let mut inner = metric.get(&field).cloned().unwrap_or(Value::Null);
    let text = |v: &Value, pointer: &str| {
        v.pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let name = match kind {
        "Resource" => text(&inner, "/name"),
        "ContainerResource" => Some(format!(
            "{}.{}",
            text(&inner, "/container").unwrap_or_default(),
            text(&inner, "/name").unwrap_or_default()
        )),
        "Object" => Some(format!(
            "{}/{}.{}",
            text(&inner, "/describedObject/kind").unwrap_or_default(),
            text(&inner, "/describedObject/name").unwrap_or_default(),
            text(&inner, "/metric/name").unwrap_or_default()
        )),
        _ => text(&inner, "/metric/name"),
    }
    .unwrap_or_default();
    // What names the metric is in the prefix already.
    if let Value::Object(map) = &mut inner {
        map.remove("name");
        map.remove("container");
        map.remove("describedObject");
        if let Some(Value::Object(m)) = map.get_mut("metric") {
            m.remove("name");
        }
    }
    (format!("spec.metrics.{kind}.{name}"), inner)
}

/// `value`'s leaves under `prefix`: objects by field, lists of objects with a `type` by it
/// (`policies.Percent`), other lists by index.
fn flatten(value: &Value, prefix: &str, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (k, v) in map {
                flatten(v, &format!("{prefix}.{k}"), out);
            }
        }
        Value::Array(items) => {
            let mut seen = BTreeMap::<String, usize>::new();
            for (i, item) in items.iter().enumerate() {
                let segment = match item.get("type").and_then(Value::as_str) {
                    Some(t) => {
                        let n = seen.entry(t.to_owned()).or_default();
                        *n += 1;
                        if *n == 1 {
                            t.to_owned()
                        } else {
                            format!("{t}[{}]", *n - 1)
                        }
                    }
                    None => format!("[{i}]"),
                };
                let mut item = item.clone();
                if let Value::Object(m) = &mut item {
                    m.remove("type");
                }
                flatten(&item, &format!("{prefix}.{segment}"), out);
            }
        }
        Value::String(s) => {
            out.insert(prefix.to_owned(), s.clone());
        }
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

impl Snapshot {
    /// Whether `other` holds the same keys with the same values.
    pub fn same_content(&self, other: &Self) -> bool {
        self.entries.len() == other.entries.len()
            && self
                .entries
                .iter()
                .zip(&other.entries)
                .all(|((ka, a), (kb, b))| ka == kb && a.digest == b.digest)
    }

    /// Keys it holds.
    pub fn keys(&self) -> usize {
        self.entries.len()
    }

    /// The keys added, removed or changed from `self` to `after`, ordered by key. A Secret's
    /// values are `<redacted>` (present) or absent, never more.
    pub fn diff(&self, after: &Self) -> Vec<KeyChange> {
        let secret = self.kind == ConfigKind::Secret || after.kind == ConfigKind::Secret;
        let display = |e: &Entry| {
            if secret {
                REDACTED.to_owned()
            } else {
                e.display()
            }
        };
        let keys: BTreeSet<&String> = self.entries.keys().chain(after.entries.keys()).collect();
        keys.into_iter()
            .filter_map(|key| {
                let (before, now) = (self.entries.get(key), after.entries.get(key));
                match (before, now) {
                    (Some(b), Some(a)) if b.digest == a.digest => None,
                    _ => Some(KeyChange::new(
                        key.clone(),
                        before.map(display),
                        now.map(display),
                        secret,
                    )),
                }
            })
            .collect()
    }

    /// The idempotency key of the edit that made this version: the object (its uid too, so a
    /// re-created object is another one) and its resourceVersion, so a replayed event is the
    /// same change.
    pub fn change_id(&self) -> String {
        let id = format!(
            "k8s:{}/{}/{}:{}@{}",
            self.namespace,
            self.kind.as_str(),
            self.name,
            self.object_uid,
            self.resource_version
        );
        if id.len() <= limits::SHORT {
            id
        } else {
            format!("k8s:{}", hex::encode(Sha256::digest(id.as_bytes())))
        }
    }
}

/// The change that took `before` to `after`, on `services` (the services of the workloads
/// `users` names, `Deployment/web`), or `None` when no key changed. It took effect when the
/// object was last written, else (or when that time is later than `now`) at `now`.
pub fn change_of(
    before: &Snapshot,
    after: &Snapshot,
    services: &[ServiceRef],
    users: &[String],
    now: DateTime<Utc>,
) -> Option<Change> {
    let mut diff = before.diff(after);
    if diff.is_empty() || services.is_empty() {
        return None;
    }
    let changed = diff.len();
    diff.truncate(limits::KEYS);
    let services: Vec<ServiceRef> = services
        .iter()
        .map(|s| (s.uid(), s.clone()))
        .collect::<BTreeMap<Uid, ServiceRef>>()
        .into_values()
        .take(limits::SERVICES)
        .collect();
    let at = after.changed_at.filter(|t| *t <= now).unwrap_or(now);
    let actor = after.actor.clone().unwrap_or_else(|| "unknown".into());
    let kind = after.kind.change_type();
    let id = after.change_id();
    let uid = change_uid(Some(&id), kind, &services, &actor, &at, &diff);
    let keys = if changed == 1 { "key" } else { "keys" };
    let mut summary = format!(
        "{} {}/{}: {changed} {keys} changed",
        after.kind.as_str(),
        after.namespace,
        after.name
    );
    if changed > diff.len() {
        summary.push_str(&format!(" (the first {} listed)", diff.len()));
    }
    if !users.is_empty() {
        summary.push_str("; used by ");
        summary.push_str(&users.join(", "));
    }
    if summary.chars().count() > limits::LONG {
        summary = summary.chars().take(limits::LONG - 1).collect::<String>() + "…";
    }
    Some(Change {
        uid,
        id: Some(id),
        kind,
        services,
        actor,
        at,
        diff,
        link: None,
        summary: Some(summary),
        source: Source::K8s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use deploygraph_model::{Environment, ServiceName};
    use serde_json::json;

    fn pod_spec(value: Value) -> PodSpec {
        serde_json::from_value(value).expect("a pod spec")
    }

    fn config_map(rv: &str, data: Value) -> ConfigMap {
        serde_json::from_value(json!({
            "metadata": {"name": "web-config", "namespace": "shop", "uid": "u-1",
                         "resourceVersion": rv,
                         "managedFields": [{"manager": "kubectl-edit", "operation": "Update",
                                            "apiVersion": "v1", "time": "2026-11-20T10:05:00Z",
                                            "fieldsType": "FieldsV1", "fieldsV1": {}}]},
            "data": data
        }))
        .expect("a ConfigMap")
    }

    fn web() -> Vec<ServiceRef> {
        vec![ServiceRef {
            cluster: Default::default(),
            name: ServiceName::parse("web").expect("name"),
            namespace: Some("shop".into()),
            environment: Environment::parse("production").expect("environment"),
        }]
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-20T10:06:00Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn every_kind_of_reference_of_every_container_is_found() {
        let spec = pod_spec(json!({
            "volumes": [
                {"name": "a", "configMap": {"name": "cm-volume"}},
                {"name": "b", "secret": {"secretName": "s-volume"}},
                {"name": "c", "projected": {"sources": [
                    {"configMap": {"name": "cm-projected"}}, {"secret": {"name": "s-projected"}},
                    {"serviceAccountToken": {"path": "token"}}]}},
                {"name": "d", "emptyDir": {}}
            ],
            "initContainers": [{"name": "init", "envFrom": [{"configMapRef": {"name": "cm-init"}}]}],
            "containers": [{"name": "web",
                "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm-key", "key": "a"}}},
                        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s-key", "key": "b"}}},
                        {"name": "C", "value": "literal"},
                        {"name": "D", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "envFrom": [{"secretRef": {"name": "s-from"}}, {"configMapRef": {"name": "cm-from"}}]}]
        }));
        let refs = references(&spec);
        let names = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>();
        assert_eq!(
            names(&refs.config_maps),
            ["cm-from", "cm-init", "cm-key", "cm-projected", "cm-volume"]
        );
        assert_eq!(
            names(&refs.secrets),
            ["s-from", "s-key", "s-projected", "s-volume"]
        );
        assert!(refs.contains(ConfigKind::ConfigMap, "cm-key"));
        assert!(!refs.contains(ConfigKind::ConfigMap, "s-key"));
        assert_eq!(refs.iter().count(), 9);
    }

    #[test]
    fn a_template_without_references_references_nothing() {
        let refs = references(&pod_spec(
            json!({"containers": [{"name": "web", "image": "web:v1"}]}),
        ));
        assert_eq!(refs, References::default());
    }

    #[test]
    fn a_config_map_edit_is_a_key_level_diff_with_its_values() {
        let before = snapshot_config_map(&config_map(
            "10",
            json!({"LOG_LEVEL": "info", "POOL_SIZE": "50", "OLD": "x"}),
        ));
        let after = snapshot_config_map(&config_map(
            "11",
            json!({"LOG_LEVEL": "info", "POOL_SIZE": "10", "NEW": "y"}),
        ));
        assert!(!before.same_content(&after));
        let change = change_of(&before, &after, &web(), &["Deployment/web".into()], now())
            .expect("a change");
        let diff: Vec<(&str, Option<&str>, Option<&str>)> = change
            .diff
            .iter()
            .map(|k| (k.key.as_str(), k.before.as_deref(), k.after.as_deref()))
            .collect();
        assert_eq!(
            diff,
            [
                ("data.NEW", None, Some("y")),
                ("data.OLD", Some("x"), None),
                ("data.POOL_SIZE", Some("50"), Some("10")),
            ]
        );
        assert_eq!(change.kind, ChangeType::ConfigMap);
        assert_eq!(change.source, Source::K8s);
        assert_eq!(change.actor, "kubectl-edit");
        assert_eq!(
            change.at,
            after.changed_at.expect("managed fields time"),
            "the time of the write, not of the observation"
        );
        assert_eq!(
            change.summary.as_deref(),
            Some("ConfigMap shop/web-config: 3 keys changed; used by Deployment/web")
        );
        assert_eq!(
            change.id.as_deref(),
            Some("k8s:shop/ConfigMap/web-config:u-1@11")
        );
    }

    #[test]
    fn the_same_content_is_no_change_and_a_replayed_version_is_the_same_change() {
        let a = snapshot_config_map(&config_map("10", json!({"A": "1"})));
        let b = snapshot_config_map(&config_map("12", json!({"A": "1"})));
        assert!(a.same_content(&b));
        assert!(change_of(&a, &b, &web(), &[], now()).is_none());
        let c = snapshot_config_map(&config_map("13", json!({"A": "2"})));
        let first = change_of(&a, &c, &web(), &[], now()).expect("a change");
        let replay = change_of(&a, &c, &web(), &[], now()).expect("a change");
        assert_eq!(first, replay);
        // Another write of other content is another change, even back to earlier content.
        let d = snapshot_config_map(&config_map("14", json!({"A": "1"})));
        let back = change_of(&c, &d, &web(), &[], now()).expect("a change");
        assert_ne!(first.uid, back.uid);
    }

    #[test]
    fn secret_values_are_never_kept_nor_stored() {
        let secret = |rv: &str, data: Value| -> Secret {
            serde_json::from_value(json!({
                "metadata": {"name": "db", "namespace": "shop", "uid": "u-2", "resourceVersion": rv},
                "data": data
            }))
            .expect("a Secret")
        };
        // base64 of "hunter2", "hunter3" and "alice".
        let before = snapshot_secret(&secret(
            "1",
            json!({"password": "aHVudGVyMg==", "user": "YWxpY2U="}),
        ));
        let after = snapshot_secret(&secret(
            "2",
            json!({"password": "aHVudGVyMw==", "token": "YWxpY2U="}),
        ));
        assert!(!format!("{before:?}{after:?}").contains("hunter"));
        let change = change_of(&before, &after, &web(), &[], now()).expect("a change");
        assert_eq!(change.kind, ChangeType::Secret);
        let diff: Vec<(&str, Option<&str>, Option<&str>)> = change
            .diff
            .iter()
            .map(|k| (k.key.as_str(), k.before.as_deref(), k.after.as_deref()))
            .collect();
        assert_eq!(
            diff,
            [
                ("data.password", Some(REDACTED), Some(REDACTED)),
                ("data.token", None, Some(REDACTED)),
                ("data.user", Some(REDACTED), None),
            ]
        );
        let stored = serde_json::to_string(&change).expect("json");
        for secret in ["hunter", "alice", "aHVudGVy", "YWxpY2U"] {
            assert!(!stored.contains(secret), "{secret} in {stored}");
        }
        assert_eq!(change.actor, "unknown");
        assert_eq!(change.at, now(), "no managed fields: when it was observed");
    }

    #[test]
    fn binary_data_and_long_values_are_compared_by_hash_and_not_stored() {
        let cm = |rv: &str, logo: &str, long: &str| -> ConfigMap {
            let mut cm = config_map(rv, json!({"big": long}));
            cm.binary_data = Some(
                [(
                    "logo.png".to_owned(),
                    k8s_openapi::ByteString(logo.as_bytes().to_vec()),
                )]
                .into(),
            );
            cm
        };
        let long_a = "a".repeat(SHOWN_MAX + 1);
        let long_b = "b".repeat(SHOWN_MAX + 1);
        let before = snapshot_config_map(&cm("1", "PNG-one", &long_a));
        let same = snapshot_config_map(&cm("2", "PNG-one", &long_a));
        assert!(before.same_content(&same));
        let after = snapshot_config_map(&cm("3", "PNG-two", &long_b));
        let change = change_of(&before, &after, &web(), &[], now()).expect("a change");
        assert_eq!(change.diff.len(), 2);
        let stored = serde_json::to_string(&change).expect("json");
        assert!(
            !stored.contains("PNG-") && !stored.contains("aaaa"),
            "{stored}"
        );
        let logo = &change.diff[0];
        assert_eq!(logo.key, "binaryData.logo.png");
        assert!(
            logo.before
                .as_deref()
                .is_some_and(|b| b.starts_with("<7 bytes, sha256:")),
            "{logo:?}"
        );
        assert_ne!(logo.before, logo.after);
    }

    #[test]
    fn config_map_values_are_redacted_as_any_change_is() {
        let before = snapshot_config_map(&config_map(
            "1",
            json!({"DATABASE_URL": "postgres://app:hunter2@db/orders", "API_TOKEN": "abc"}),
        ));
        let after = snapshot_config_map(&config_map(
            "2",
            json!({"DATABASE_URL": "postgres://app:hunter3@db/orders", "API_TOKEN": "abd"}),
        ));
        assert!(!format!("{before:?}").contains("hunter2"));
        let change = change_of(&before, &after, &web(), &[], now()).expect("a change");
        assert_eq!(change.diff.len(), 2, "changed by hash though shown alike");
        let stored = serde_json::to_string(&change).expect("json");
        for secret in ["hunter", "abc", "abd"] {
            assert!(!stored.contains(secret), "{secret} in {stored}");
        }
    }

    #[test]
    fn an_hpa_is_flattened_into_keys_of_its_spec() {
        let hpa = |max: i32, cpu: i32, window: i32| -> HorizontalPodAutoscaler {
            serde_json::from_value(json!({
                "metadata": {"name": "web", "namespace": "shop", "uid": "u-3", "resourceVersion": "5"},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                         "minReplicas": 2, "maxReplicas": max,
                         "metrics": [
                            {"type": "Resource", "resource": {"name": "cpu",
                                "target": {"type": "Utilization", "averageUtilization": cpu}}},
                            {"type": "Pods", "pods": {"metric": {"name": "queue_depth"},
                                "target": {"type": "AverageValue", "averageValue": "30"}}}],
                         "behavior": {"scaleDown": {"stabilizationWindowSeconds": window,
                            "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}]}}},
                "status": {"currentReplicas": 3, "desiredReplicas": 3}
            }))
            .expect("an HPA")
        };
        let before = snapshot_hpa(&hpa(10, 70, 300));
        assert_eq!(
            before.target,
            Some(("Deployment".to_owned(), "web".to_owned()))
        );
        let keys: Vec<&str> = before.entries.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "spec.behavior.scaleDown.policies.Percent.periodSeconds",
                "spec.behavior.scaleDown.policies.Percent.value",
                "spec.behavior.scaleDown.stabilizationWindowSeconds",
                "spec.maxReplicas",
                "spec.metrics.Pods.queue_depth.target.averageValue",
                "spec.metrics.Pods.queue_depth.target.type",
                "spec.metrics.Resource.cpu.target.averageUtilization",
                "spec.metrics.Resource.cpu.target.type",
                "spec.minReplicas",
            ]
        );
        let after = snapshot_hpa(&hpa(4, 80, 300));
        let change = change_of(&before, &after, &web(), &[], now()).expect("a change");
        assert_eq!(change.kind, ChangeType::Hpa);
        let diff: Vec<(&str, Option<&str>, Option<&str>)> = change
            .diff
            .iter()
            .map(|k| (k.key.as_str(), k.before.as_deref(), k.after.as_deref()))
            .collect();
        assert_eq!(
            diff,
            [
                ("spec.maxReplicas", Some("10"), Some("4")),
                (
                    "spec.metrics.Resource.cpu.target.averageUtilization",
                    Some("70"),
                    Some("80")
                ),
            ]
        );
        // Status is not spec: a status-only update is no change.
        let mut scaled = hpa(10, 70, 300);
        scaled.status = None;
        assert!(before.same_content(&snapshot_hpa(&scaled)));
    }

    #[test]
    fn a_long_object_name_still_makes_a_short_idempotency_key() {
        let mut cm = config_map("1", json!({}));
        cm.metadata.name = Some("n".repeat(253));
        let id = snapshot_config_map(&cm).change_id();
        assert!(id.len() <= limits::SHORT && id.starts_with("k8s:"), "{id}");
    }
}
