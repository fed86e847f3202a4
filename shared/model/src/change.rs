//! Changes that are not rollouts: feature-flag flips, Terraform applies, database migrations,
//! node pool upgrades, ConfigMap, Secret and HPA edits — `(Change)-[:AFFECTS]->(Service)`.
//!
//! A change is a suspect of an alert like a deployment is. It is recorded once and never
//! updated: recording the same change again (same uid, same facts) is a no-op, and other facts
//! under its uid are a conflict ([`reconcile_change`]). [`ChangeEventInput`] is the wire format
//! of `POST /v1/changes`; [`ChangeEventInput::validate`] turns it into a [`Change`] or an error
//! naming the offending field. Values are redacted on construction ([`KeyChange::new`]), so a
//! secret never reaches the store.

use crate::alert::ServiceRef;
use crate::chaos::ServiceRefInput;
use crate::deployment::Source;
use crate::error::{Error, Result};
use crate::newtypes::{format_time, is_dns1123_label};
use crate::redact::{REDACTED, redact_secrets, redact_value};
use crate::schema::parse_input_time;
use crate::uid::{CHANGE_PREFIX, Uid, sha256_hex};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// What kind of change it is. The Kubernetes watcher records `config_map`, `secret` and `hpa`
/// edits; clients post the others.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ChangeType {
    /// A feature flag flipped or its rollout changed.
    FeatureFlag,
    /// A Terraform (or other infrastructure-as-code) apply.
    Terraform,
    /// A database schema or data migration.
    Migration,
    /// A node pool upgraded or resized (node image, kubelet, machine type).
    NodePool,
    /// A ConfigMap edited in place.
    ConfigMap,
    /// A Secret edited in place: its values are never stored.
    Secret,
    /// A HorizontalPodAutoscaler edited.
    Hpa,
    /// Anything else a team changes.
    Other,
}

impl ChangeType {
    /// Every kind, in wire order.
    pub const ALL: [Self; 8] = [
        Self::FeatureFlag,
        Self::Terraform,
        Self::Migration,
        Self::NodePool,
        Self::ConfigMap,
        Self::Secret,
        Self::Hpa,
        Self::Other,
    ];

    /// The wire name (`feature_flag`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FeatureFlag => "feature_flag",
            Self::Terraform => "terraform",
            Self::Migration => "migration",
            Self::NodePool => "node_pool",
            Self::ConfigMap => "config_map",
            Self::Secret => "secret",
            Self::Hpa => "hpa",
            Self::Other => "other",
        }
    }

    /// Parses a wire name.
    ///
    /// # Errors
    /// When `value` is not one of the kinds (the message lists them).
    pub fn parse(value: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == value)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
                Error::new("", format!("{value:?} is not one of {}", names.join(", ")))
            })
    }
}

/// One key a change changed, with its value before and after. Secret-looking values are
/// redacted on construction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyChange {
    /// The key (`checkout.new_flow`, `data.LOG_LEVEL`, `spec.maxReplicas`).
    pub key: String,
    /// The value before, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The value after, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

impl KeyChange {
    /// A key change with its values redacted: whole when `secret` (a key of a Kubernetes
    /// Secret) or when the key looks secret, else the secrets recognised in them
    /// ([`crate::redact`]).
    pub fn new(key: String, before: Option<String>, after: Option<String>, secret: bool) -> Self {
        let redact = |value: Option<String>| {
            if secret {
                value.map(|_| REDACTED.to_owned())
            } else {
                redact_value(&key, value)
            }
        };
        let (before, after) = (redact(before), redact(after));
        Self { key, before, after }
    }
}

/// A recorded change that is not a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Deterministic identity: from the client's `id` when given, else from the change's facts
    /// ([`change_uid`]).
    pub uid: Uid,
    /// The client's idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What kind of change.
    pub kind: ChangeType,
    /// The services it changed (at least one), by uid.
    pub services: Vec<ServiceRef>,
    /// Who or what made it.
    pub actor: String,
    /// When it took effect.
    pub at: DateTime<Utc>,
    /// The keys it changed, by key.
    #[serde(default)]
    pub diff: Vec<KeyChange>,
    /// A link to the change (the flag's audit log, the Terraform run, the pull request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// One line for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Where it came from (`api`; `k8s` for the watcher's).
    pub source: Source,
}

impl Change {
    /// The uids of the Service nodes it changed.
    pub fn service_uids(&self) -> Vec<Uid> {
        self.services.iter().map(ServiceRef::uid).collect()
    }

    /// A fingerprint of every fact: a change is never updated, so any difference under one
    /// uid is a conflict.
    pub fn content_fingerprint(&self) -> String {
        #[derive(Serialize)]
        struct Fixed<'a> {
            kind: ChangeType,
            services: &'a [ServiceRef],
            actor: &'a str,
            at: String,
            diff: &'a [KeyChange],
            link: &'a Option<String>,
            summary: &'a Option<String>,
            source: &'static str,
        }
        let fixed = Fixed {
            kind: self.kind,
            services: &self.services,
            actor: &self.actor,
            at: format_time(&self.at),
            diff: &self.diff,
            link: &self.link,
            summary: &self.summary,
            source: self.source.as_str(),
        };
        // Serializing plain structs of strings cannot fail.
        sha256_hex(serde_json::to_string(&fixed).unwrap_or_default().as_bytes())
    }

    /// Ordering key of listings: `at`, then uid.
    pub fn order_key(&self) -> (i64, &str) {
        (self.at.timestamp_micros(), self.uid.as_str())
    }

    /// The service names, comma-separated (`payments, checkout`).
    pub fn service_names(&self) -> String {
        let mut names: Vec<&str> = self.services.iter().map(|s| s.name.as_str()).collect();
        names.dedup();
        names.join(", ")
    }
}

/// The uid of a change: from the idempotency key when given, else from its kind, services,
/// actor, time and (redacted) diff, so a retried post finds it again.
pub fn change_uid(
    id: Option<&str>,
    kind: ChangeType,
    services: &[ServiceRef],
    actor: &str,
    at: &DateTime<Utc>,
    diff: &[KeyChange],
) -> Uid {
    match id {
        Some(id) => Uid::derive(CHANGE_PREFIX, &["id", id]),
        None => {
            let mut services: Vec<String> = services
                .iter()
                .map(|s| s.uid().as_str().to_owned())
                .collect();
            services.sort_unstable();
            services.dedup();
            let mut diff = diff.to_vec();
            diff.sort_by(|a, b| a.key.cmp(&b.key));
            Uid::derive(
                CHANGE_PREFIX,
                &[
                    "event",
                    kind.as_str(),
                    &services.join(","),
                    actor,
                    &format_time(at),
                    &serde_json::to_string(&diff).unwrap_or_default(),
                ],
            )
        }
    }
}

/// What recording a change means, given what is stored under its uid.
#[derive(Debug, Clone, PartialEq)]
pub enum ReconcileChange {
    /// Nothing stored: create it.
    Create(Change),
    /// The same change is stored: a no-op.
    Unchanged(Change),
    /// Another change is stored under this uid (a reused idempotency key).
    Conflict {
        /// What is stored.
        stored: Change,
        /// Why the incoming change conflicts.
        reason: String,
    },
}

/// Decides what recording `incoming` means when `stored` is what the store holds under its uid.
pub fn reconcile_change(stored: Option<&Change>, incoming: Change) -> ReconcileChange {
    let Some(stored) = stored else {
        return ReconcileChange::Create(incoming);
    };
    if stored.content_fingerprint() == incoming.content_fingerprint() {
        return ReconcileChange::Unchanged(stored.clone());
    }
    let reason = match &incoming.id {
        Some(id) => format!(
            "id {id:?} was already used for a different change ({})",
            stored.uid
        ),
        None => format!(
            "change {} is already recorded with different content",
            stored.uid
        ),
    };
    ReconcileChange::Conflict {
        stored: stored.clone(),
        reason,
    }
}

// ---------------------------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------------------------

/// Upper bounds of a change's fields, as the schema declares them.
pub mod limits {
    /// `id`, `actor`.
    pub const SHORT: usize = 256;
    /// `summary`, a key.
    pub const LONG: usize = 4096;
    /// A value before or after.
    pub const VALUE: usize = 64 * 1024;
    /// `link`.
    pub const LINK: usize = 2048;
    /// Services of one change.
    pub const SERVICES: usize = 100;
    /// Keys of one change.
    pub const KEYS: usize = 2000;
    /// Changes in one `POST /v1/changes` batch.
    pub const BATCH: usize = 1000;
}

/// A link as the schema declares it: `http(s)://` and printable ASCII without spaces.
pub const LINK_PATTERN: &str = "^https?://[!-~]+$";

/// Whether `value` matches [`LINK_PATTERN`] (length apart).
pub fn is_link(value: &str) -> bool {
    value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| (b'!'..=b'~').contains(&b)))
}

/// A link to a change, as a request gives it.
pub struct Link;

impl utoipa::PartialSchema for Link {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(
                    "An http(s) URL, printable ASCII without spaces (percent-encode the rest).",
                ))
                .pattern(Some(LINK_PATTERN))
                .max_length(Some(limits::LINK))
                .build(),
        ))
    }
}

impl utoipa::ToSchema for Link {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Link")
    }
}

/// The JSON body of `POST /v1/changes` (or one item of a batch). Unknown fields are rejected.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEventInput {
    /// Optional client idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 256)]
    pub id: Option<String>,
    /// What kind of change (required).
    #[serde(default)]
    #[schema(value_type = ChangeType, required = true)]
    pub kind: Option<String>,
    /// The services it changed (required, at least one).
    #[serde(default)]
    #[schema(value_type = Vec<ServiceRefInput>, required = true, min_items = 1, max_items = 100)]
    pub services: Option<Vec<ServiceRefInput>>,
    /// Who or what made it (required).
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 256)]
    pub actor: Option<String>,
    /// When it took effect, RFC 3339 (required).
    #[serde(default)]
    #[schema(value_type = crate::schema::InputTime, required = true)]
    pub at: Option<String>,
    /// The keys it changed, each at most once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 2000)]
    pub diff: Option<Vec<KeyChangeInput>>,
    /// A link to the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Link>)]
    pub link: Option<String>,
    /// One line for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 4096)]
    pub summary: Option<String>,
}

/// An entry of `diff` in [`ChangeEventInput`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyChangeInput {
    /// The key (required).
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 4096)]
    pub key: Option<String>,
    /// The value before (absent: the key was added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 65536)]
    pub before: Option<String>,
    /// The value after (absent: the key was removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 65536)]
    pub after: Option<String>,
}

fn at(field: &str) -> impl Fn(Error) -> Error + '_ {
    move |e| e.within(field)
}

fn longer_than(field: &str, value: &str, max: usize) -> Result<()> {
    if value.chars().count() > max {
        Err(Error::new(
            field,
            format!("is longer than {max} characters"),
        ))
    } else {
        Ok(())
    }
}

impl ChangeEventInput {
    /// Validates the input into a [`Change`] from `source`: services deduplicated and ordered
    /// by uid, keys ordered, values redacted.
    ///
    /// # Errors
    /// The first invalid field, by its path in the input.
    pub fn validate(&self, source: Source) -> Result<Change> {
        let id = match self.id.as_deref() {
            Some(id) => {
                longer_than("id", id, limits::SHORT)?;
                Some(id.to_owned()).filter(|id| !id.is_empty())
            }
            None => None,
        };
        let kind = match self.kind.as_deref() {
            Some(kind) if !kind.is_empty() => ChangeType::parse(kind).map_err(at("kind"))?,
            _ => return Err(Error::new("kind", "is required")),
        };
        let services = self.validate_services()?;
        let actor = match self.actor.as_deref() {
            Some(actor) if !actor.is_empty() => {
                longer_than("actor", actor, limits::SHORT)?;
                actor.to_owned()
            }
            _ => return Err(Error::new("actor", "is required")),
        };
        let at = match self.at.as_deref() {
            Some(t) if !t.is_empty() => parse_input_time("at", t)?,
            _ => return Err(Error::new("at", "is required")),
        };
        let diff = self.validate_diff(kind)?;
        let link = match self.link.as_deref() {
            Some(link) => {
                longer_than("link", link, limits::LINK)?;
                if !is_link(link) {
                    return Err(Error::new(
                        "link",
                        format!("{link:?} is not an http(s) URL of printable ASCII without spaces"),
                    ));
                }
                Some(redact_secrets(link).into_owned())
            }
            None => None,
        };
        let summary = match self.summary.as_deref() {
            Some(summary) => {
                longer_than("summary", summary, limits::LONG)?;
                Some(redact_secrets(summary).into_owned()).filter(|s| !s.is_empty())
            }
            None => None,
        };
        let uid = change_uid(id.as_deref(), kind, &services, &actor, &at, &diff);
        Ok(Change {
            uid,
            id,
            kind,
            services,
            actor,
            at,
            diff,
            link,
            summary,
            source,
        })
    }

    fn validate_services(&self) -> Result<Vec<ServiceRef>> {
        let inputs = match self.services.as_deref() {
            Some(inputs) if !inputs.is_empty() => inputs,
            _ => return Err(Error::new("services", "at least one service is required")),
        };
        if inputs.len() > limits::SERVICES {
            return Err(Error::new(
                "services",
                format!("more than {} services", limits::SERVICES),
            ));
        }
        let mut by_uid = BTreeMap::new();
        for (i, input) in inputs.iter().enumerate() {
            let namespace = match input.namespace.as_deref().filter(|n| !n.is_empty()) {
                Some(ns) if is_dns1123_label(ns) => Some(ns.to_owned()),
                Some(ns) => {
                    return Err(Error::new(
                        format!("services[{i}].namespace"),
                        format!("{ns:?} is not a DNS-1123 label"),
                    ));
                }
                None => None,
            };
            let service = ServiceRef {
                name: input.name.clone(),
                namespace,
                environment: input.environment.clone(),
                cluster: crate::Cluster::parse_field(
                    input.cluster.as_deref(),
                    &format!("services[{i}].cluster"),
                )?,
            };
            by_uid.entry(service.uid()).or_insert(service);
        }
        Ok(by_uid.into_values().collect())
    }

    fn validate_diff(&self, kind: ChangeType) -> Result<Vec<KeyChange>> {
        let inputs = self.diff.as_deref().unwrap_or_default();
        if inputs.len() > limits::KEYS {
            return Err(Error::new(
                "diff",
                format!("more than {} keys", limits::KEYS),
            ));
        }
        let mut seen = HashSet::new();
        let mut diff = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            let field = |name: &str| format!("diff[{i}].{name}");
            let key = match input.key.as_deref() {
                Some(key) if !key.is_empty() => key,
                _ => return Err(Error::new(field("key"), "is required")),
            };
            longer_than(&field("key"), key, limits::LONG)?;
            for (name, value) in [("before", &input.before), ("after", &input.after)] {
                if let Some(value) = value {
                    longer_than(&field(name), value, limits::VALUE)?;
                }
            }
            if !seen.insert(key) {
                return Err(Error::new(field("key"), format!("{key:?} is listed twice")));
            }
            diff.push(KeyChange::new(
                key.to_owned(),
                input.before.clone(),
                input.after.clone(),
                kind == ChangeType::Secret,
            ));
        }
        diff.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(diff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ChangeEventInput {
        serde_json::from_value(serde_json::json!({
            "kind": "feature_flag",
            "services": [{"name": "payments", "namespace": "prod", "environment": "production"}],
            "actor": "alice@acme.io",
            "at": "2026-11-20T10:05:00Z",
            "diff": [{"key": "checkout.new_flow", "before": "false", "after": "true"}],
            "link": "https://flags.acme.io/audit/42",
            "summary": "new checkout flow for 10%"
        }))
        .expect("sample parses")
    }

    #[test]
    fn a_valid_input_becomes_a_change_with_a_deterministic_uid() {
        let a = sample().validate(Source::Api).expect("valid");
        let b = sample().validate(Source::Api).expect("valid");
        assert_eq!(a.uid, b.uid);
        assert!(a.uid.as_str().starts_with("change-event-"), "{}", a.uid);
        assert_eq!(a.kind, ChangeType::FeatureFlag);
        assert_eq!(a.services.len(), 1);
        assert_eq!(a.diff[0].after.as_deref(), Some("true"));
        assert_eq!(reconcile_change(Some(&a), b), ReconcileChange::Unchanged(a));
    }

    #[test]
    fn the_order_of_services_and_keys_does_not_change_the_uid() {
        let mut one = sample();
        one.services
            .as_mut()
            .expect("services")
            .push(ServiceRefInput {
                name: crate::ServiceName::parse("checkout").expect("name"),
                namespace: None,
                environment: crate::Environment::parse("production").expect("environment"),
                cluster: None,
            });
        one.diff.as_mut().expect("diff").push(KeyChangeInput {
            key: Some("a.first".into()),
            before: None,
            after: Some("1".into()),
        });
        let mut other = one.clone();
        other.services.as_mut().expect("services").reverse();
        other.diff.as_mut().expect("diff").reverse();
        let (a, b) = (
            one.validate(Source::Api).expect("valid"),
            other.validate(Source::Api).expect("valid"),
        );
        assert_eq!(a.uid, b.uid);
        assert_eq!(a, b);
        assert_eq!(a.diff[0].key, "a.first");
    }

    #[test]
    fn the_idempotency_key_decides_the_uid_and_other_facts_under_it_conflict() {
        let mut input = sample();
        input.id = Some("flag-audit-42".into());
        let first = input.validate(Source::Api).expect("valid");
        input.summary = Some("another summary".into());
        let second = input.validate(Source::Api).expect("valid");
        assert_eq!(first.uid, second.uid);
        assert!(matches!(
            reconcile_change(Some(&first), second),
            ReconcileChange::Conflict { .. }
        ));
        assert_ne!(
            first.uid,
            sample().validate(Source::Api).expect("valid").uid
        );
    }

    #[test]
    fn errors_name_the_field() {
        type Mutation = Box<dyn Fn(&mut ChangeEventInput)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|i| i.kind = None), "kind"),
            (Box::new(|i| i.kind = Some("flag".into())), "kind"),
            (Box::new(|i| i.services = None), "services"),
            (Box::new(|i| i.services = Some(vec![])), "services"),
            (
                Box::new(|i| {
                    i.services.as_mut().expect("services")[0].namespace = Some("Prod".into());
                }),
                "services[0].namespace",
            ),
            (Box::new(|i| i.actor = None), "actor"),
            (Box::new(|i| i.actor = Some(String::new())), "actor"),
            (Box::new(|i| i.actor = Some("a".repeat(257))), "actor"),
            (Box::new(|i| i.at = None), "at"),
            (Box::new(|i| i.at = Some("yesterday".into())), "at"),
            (
                Box::new(|i| i.at = Some("2999-01-01T00:00:00Z".into())),
                "at",
            ),
            (
                Box::new(|i| i.diff.as_mut().expect("diff")[0].key = None),
                "diff[0].key",
            ),
            (
                Box::new(|i| {
                    let d = i.diff.as_mut().expect("diff");
                    d.push(d[0].clone());
                }),
                "diff[1].key",
            ),
            (
                Box::new(|i| i.diff.as_mut().expect("diff")[0].after = Some("x".repeat(70_000))),
                "diff[0].after",
            ),
            (Box::new(|i| i.link = Some("ftp://x".into())), "link"),
            (Box::new(|i| i.link = Some(String::new())), "link"),
            (Box::new(|i| i.link = Some("https://a b".into())), "link"),
            (Box::new(|i| i.summary = Some("s".repeat(5000))), "summary"),
            (Box::new(|i| i.id = Some("i".repeat(300))), "id"),
        ];
        for (mutate, field) in cases {
            let mut input = sample();
            mutate(&mut input);
            let err = input.validate(Source::Api).expect_err(field);
            assert_eq!(err.field, field, "{err}");
        }
    }

    #[test]
    fn unknown_fields_and_bad_names_are_refused_when_read() {
        let unknown = serde_json::from_value::<ChangeEventInput>(serde_json::json!({
            "kind": "other", "services": [], "actor": "a", "at": "2026-11-20T10:05:00Z", "key": "x"
        }));
        assert!(unknown.is_err());
        let bad_name = serde_json::from_value::<ChangeEventInput>(serde_json::json!({
            "services": [{"name": "Payments", "environment": "production"}]
        }));
        assert!(bad_name.is_err());
    }

    #[test]
    fn secrets_are_never_stored() {
        let mut input = sample();
        input.diff = Some(vec![
            KeyChangeInput {
                key: Some("env.DB_PASSWORD".into()),
                before: Some("old".into()),
                after: Some("new".into()),
            },
            KeyChangeInput {
                key: Some("data.url".into()),
                before: None,
                after: Some("postgres://app:hunter2@db/orders".into()),
            },
        ]);
        input.link = Some("https://ci.acme.io/run?access_token=abc123".into());
        input.summary = Some("rotated with token ghp_0123456789abcdefghijABCDEFGHIJ012345".into());
        let change = input.validate(Source::Api).expect("valid");
        let stored = serde_json::to_string(&change).expect("json");
        for secret in ["old", "new", "hunter2", "abc123", "ghp_0123"] {
            assert!(!stored.contains(secret), "{secret} in {stored}");
        }
        assert_eq!(change.diff[1].after.as_deref(), Some(REDACTED));
        // A Secret's values are redacted whatever their keys.
        let mut secret = sample();
        secret.kind = Some("secret".into());
        secret.diff = Some(vec![KeyChangeInput {
            key: Some("data.LOG_LEVEL".into()),
            before: Some("info".into()),
            after: None,
        }]);
        let change = secret.validate(Source::Api).expect("valid");
        assert_eq!(change.diff[0].before.as_deref(), Some(REDACTED));
        assert_eq!(change.diff[0].after, None);
    }

    #[test]
    fn links_are_http_urls_of_printable_ascii() {
        for ok in ["https://a", "http://flags.acme.io/audit?id=42#x"] {
            assert!(is_link(ok), "{ok}");
        }
        for bad in [
            "",
            "https://",
            "ftp://x",
            "https://a b",
            "https://é",
            "HTTPS://a",
        ] {
            assert!(!is_link(bad), "{bad}");
        }
    }

    #[test]
    fn kinds_round_trip_through_their_wire_names() {
        for kind in ChangeType::ALL {
            assert_eq!(ChangeType::parse(kind.as_str()), Ok(kind));
            assert_eq!(
                serde_json::to_value(kind).ok(),
                Some(serde_json::Value::String(kind.as_str().into()))
            );
        }
        assert!(ChangeType::parse("flag").is_err());
    }
}
