//! Backstage catalog descriptor files (`catalog-info.yaml`): the services, owners, SLA tiers and
//! dependencies teams already keep there, as `backstage` topology.
//!
//! A file holds one or more YAML documents, each an entity (`apiVersion: backstage.io/…`,
//! `kind`, `metadata`, `spec`). Documents of another `apiVersion` (a Kubernetes manifest kept
//! beside the entities) are skipped with a warning.
//!
//! ## How entities become services
//!
//! - `Component` and `Resource` entities are services. Their name is the
//!   `backstage.io/kubernetes-id` annotation when set (the id the Backstage Kubernetes plugin
//!   matches workloads by), else `metadata.name`, lower-cased; it must then be a DNS-1123 label.
//! - Their namespace is the `backstage.io/kubernetes-namespace` annotation when set, else the
//!   import's namespace option (none by default). Backstage's own `metadata.namespace` is a
//!   catalog namespace, not a Kubernetes one: it only scopes entity references.
//! - Their environment is the import's environment option.
//! - `spec.owner` is the owner, as written (`team-payments`, `group:default/payments`).
//! - The SLA tier is the `deploygraph.io/tier` annotation, else the first annotation (by key)
//!   named `…/service-tier` (`example.com/service-tier`, a convention of public catalogs).
//!
//! ## How relations become `DEPENDS_ON`
//!
//! - `spec.dependsOn: [component:api, resource:default/redis]`: this entity depends on each
//!   (the kind is required, as in Backstage: `component` or `resource`).
//! - `spec.dependencyOf`: each of those depends on this entity.
//! - `spec.consumesApis`: this entity depends on every imported component whose
//!   `spec.providesApis` lists the same API.
//!
//! A reference to an entity that is not in the imported files is still an edge, to the service
//! of that name (lower-cased) in the import's namespace, and is reported in the warnings.
//! Other kinds (`System`, `Domain`, `Group`, `User`, `API`, `Location`, `Template`) are read for
//! their relations only or skipped.

use crate::alert::ServiceRef;
use crate::error::{Error, Result};
use crate::newtypes::{Environment, ServiceName, is_dns1123_label};
use crate::topology::{MAX_OWNER_CHARS, MAX_TIER_CHARS, ServiceTopology, label_value};
use serde::{Deserialize, Serialize};
use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Largest catalog file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Most files in one import.
pub const MAX_FILES: usize = 1_000;
/// Most entities in one import.
pub const MAX_ENTITIES: usize = 10_000;
/// Most entries of one relation list (`spec.dependsOn`, …) of one entity.
pub const MAX_RELATIONS: usize = 1_000;
/// The annotation deploygraph reads the SLA tier from.
pub const TIER_ANNOTATION: &str = "deploygraph.io/tier";
/// Any annotation with this name part (after its prefix) also gives the tier.
pub const SERVICE_TIER_NAME: &str = "service-tier";
/// The Backstage Kubernetes plugin's workload id: the service name when set.
pub const KUBERNETES_ID: &str = "backstage.io/kubernetes-id";
/// The Backstage Kubernetes plugin's namespace: the service namespace when set.
pub const KUBERNETES_NAMESPACE: &str = "backstage.io/kubernetes-namespace";

/// One catalog file: its name (for messages) and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogFile {
    /// The file's name or path, as errors and warnings name it.
    #[schema(min_length = 1, max_length = 4096)]
    pub path: String,
    /// Its YAML text: one or more entity documents.
    #[schema(max_length = 1048576)]
    pub content: String,
}

/// How entities map to services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// The environment of every service.
    pub environment: Environment,
    /// The namespace of entities without a `backstage.io/kubernetes-namespace` annotation.
    pub namespace: Option<String>,
    /// The cluster of every service.
    pub cluster: crate::Cluster,
}

/// What a catalog says: each service entity with its owner, tier and dependencies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogImport {
    /// One entry per service (entities mapping to the same service are merged), by service.
    pub services: Vec<ServiceTopology>,
    /// Entities read, of every kind.
    pub entities: usize,
    /// What was skipped or guessed: documents of another apiVersion, kinds without a mapping,
    /// references to entities that are not in the files.
    pub warnings: Vec<String>,
}

/// An entity's identity in the catalog: kind, namespace and name, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct EntityRef {
    kind: String,
    namespace: String,
    name: String,
}

impl std::fmt::Display for EntityRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}/{}", self.kind, self.namespace, self.name)
    }
}

/// Parses a string entity reference, `[kind:][namespace/]name`.
fn parse_ref(
    value: &str,
    default_kind: Option<&str>,
    default_namespace: &str,
) -> Result<EntityRef> {
    let value = value.trim();
    let (kind, rest) = match value.split_once(':') {
        Some((kind, rest)) => (Some(kind), rest),
        None => (None, value),
    };
    let (namespace, name) = match rest.split_once('/') {
        Some((namespace, name)) => (namespace, name),
        None => (default_namespace, rest),
    };
    let kind = match (kind, default_kind) {
        (Some(kind), _) => kind,
        (None, Some(kind)) => kind,
        (None, None) => {
            return Err(Error::new(
                "",
                format!("{value:?} has no kind: write component:{value} or resource:{value}"),
            ));
        }
    };
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 253
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if !ok(kind) || !ok(namespace) || !ok(name) {
        return Err(Error::new(
            "",
            format!("{value:?} is not an entity reference ([kind:][namespace/]name)"),
        ));
    }
    Ok(EntityRef {
        kind: kind.to_ascii_lowercase(),
        namespace: namespace.to_ascii_lowercase(),
        name: name.to_ascii_lowercase(),
    })
}

/// The parts of an entity deploygraph reads; everything else is ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntity {
    kind: Option<String>,
    #[serde(default)]
    metadata: RawMetadata,
    #[serde(default)]
    spec: RawSpec,
}

#[derive(Debug, Default, Deserialize)]
struct RawMetadata {
    name: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    owner: Option<String>,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    dependency_of: Vec<String>,
    #[serde(default)]
    consumes_apis: Vec<String>,
    #[serde(default)]
    provides_apis: Vec<String>,
}

/// A service entity as read, before its references are resolved.
struct ServiceEntity {
    file: usize,
    label: String,
    service: ServiceRef,
    owner: Option<String>,
    tier: Option<String>,
    depends_on: Vec<EntityRef>,
    dependency_of: Vec<EntityRef>,
    consumes: Vec<EntityRef>,
    provides: Vec<EntityRef>,
}

/// A scalar annotation value as text (`tier: 1` is YAML for a number).
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn tier_of(annotations: &BTreeMap<String, Value>) -> Option<(String, String)> {
    if let Some(v) = annotations.get(TIER_ANNOTATION).and_then(scalar) {
        return Some((TIER_ANNOTATION.to_owned(), v));
    }
    annotations.iter().find_map(|(key, value)| {
        let name = key.rsplit_once('/').map_or(key.as_str(), |(_, n)| n);
        (name == SERVICE_TIER_NAME)
            .then(|| scalar(value).map(|v| (key.clone(), v)))
            .flatten()
    })
}

/// The service a reference to an entity that is not in the files stands for.
fn service_by_name(reference: &EntityRef, options: &ImportOptions) -> Result<ServiceRef> {
    let name = ServiceName::parse(&reference.name).map_err(|e| {
        Error::new(
            "",
            format!(
                "{reference} is not in the imported files and its name {}",
                e.message
            ),
        )
    })?;
    Ok(ServiceRef {
        name,
        namespace: options.namespace.clone(),
        environment: options.environment.clone(),
        cluster: options.cluster.clone(),
    })
}

fn relation_list(
    values: &[String],
    field: &str,
    default_kind: Option<&str>,
    namespace: &str,
    allowed: &[&str],
) -> Result<Vec<EntityRef>> {
    if values.len() > MAX_RELATIONS {
        return Err(Error::new(
            field,
            format!("has more than {MAX_RELATIONS} entries"),
        ));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let at = format!("{field}[{i}]");
            let r =
                parse_ref(v, default_kind, namespace).map_err(|e| Error::new(&at, e.message))?;
            if !allowed.contains(&r.kind.as_str()) {
                return Err(Error::new(
                    &at,
                    format!(
                        "{v:?} is a {} reference; only {} entities belong here",
                        r.kind,
                        allowed.join(" or ")
                    ),
                ));
            }
            Ok(r)
        })
        .collect()
}

/// Reads one entity document: its identity, and the service it is (`None` for kinds that are
/// not services).
fn read_entity(
    raw: RawEntity,
    file: usize,
    options: &ImportOptions,
) -> Result<(EntityRef, Option<ServiceEntity>)> {
    let kind = raw
        .kind
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| Error::new("kind", "is required"))?;
    let name = raw
        .metadata
        .name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| Error::new("metadata.name", "is required"))?;
    let namespace = raw
        .metadata
        .namespace
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "default".to_owned());
    let me = parse_ref(&format!("{kind}:{namespace}/{name}"), None, "default")
        .map_err(|e| Error::new("metadata.name", e.message))?;
    let is_service = matches!(me.kind.as_str(), "component" | "resource");
    if !is_service {
        return Ok((me, None));
    }
    let annotations = &raw.metadata.annotations;
    let service_name = annotations
        .get(KUBERNETES_ID)
        .and_then(scalar)
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| name.clone())
        .trim()
        .to_ascii_lowercase();
    let service_name = ServiceName::parse(&service_name).map_err(|e| {
        Error::new(
            "metadata.name",
            format!(
                "the service name {}; set the {KUBERNETES_ID} annotation to the service's name",
                e.message
            ),
        )
    })?;
    let k8s_namespace = match annotations.get(KUBERNETES_NAMESPACE) {
        Some(value) => {
            let ns = scalar(value).unwrap_or_default().trim().to_owned();
            if !is_dns1123_label(&ns) {
                return Err(Error::new(
                    format!("metadata.annotations[{KUBERNETES_NAMESPACE:?}]"),
                    format!("{ns:?} is not a DNS-1123 label"),
                ));
            }
            Some(ns)
        }
        None => options.namespace.clone(),
    };
    let owner = label_value(raw.spec.owner, "spec.owner", MAX_OWNER_CHARS)?;
    let tier = match tier_of(annotations) {
        Some((key, value)) => label_value(
            Some(value),
            &format!("metadata.annotations[{key:?}]"),
            MAX_TIER_CHARS,
        )?,
        None => None,
    };
    let ns = me.namespace.clone();
    let dependable = ["component", "resource"];
    let entity = ServiceEntity {
        file,
        label: format!("{kind} {name}"),
        service: ServiceRef {
            name: service_name,
            namespace: k8s_namespace,
            environment: options.environment.clone(),
            cluster: options.cluster.clone(),
        },
        owner,
        tier,
        depends_on: relation_list(
            &raw.spec.depends_on,
            "spec.dependsOn",
            None,
            &ns,
            &dependable,
        )?,
        dependency_of: relation_list(
            &raw.spec.dependency_of,
            "spec.dependencyOf",
            None,
            &ns,
            &dependable,
        )?,
        consumes: relation_list(
            &raw.spec.consumes_apis,
            "spec.consumesApis",
            Some("api"),
            &ns,
            &["api"],
        )?,
        provides: relation_list(
            &raw.spec.provides_apis,
            "spec.providesApis",
            Some("api"),
            &ns,
            &["api"],
        )?,
    };
    Ok((me, Some(entity)))
}

/// Reads catalog files into services, owners, tiers and dependencies.
///
/// # Errors
/// An error whose field is `files[i]` and whose message names the file, the document or
/// entity and the field: a file over [`MAX_FILE_BYTES`], text that is not YAML, an entity
/// without kind or name, a service name that is not a DNS-1123 label, a reference without a
/// kind or of a kind that cannot be depended on, two entities with one identity, more than
/// [`MAX_FILES`] files or [`MAX_ENTITIES`] entities.
pub fn parse(files: &[CatalogFile], options: &ImportOptions) -> Result<CatalogImport> {
    if files.len() > MAX_FILES {
        return Err(Error::new(
            "files",
            format!("has more than {MAX_FILES} files"),
        ));
    }
    let mut warnings = Vec::new();
    let mut identities: BTreeMap<EntityRef, usize> = BTreeMap::new();
    let mut entities = Vec::new();
    let mut count = 0usize;
    for (i, file) in files.iter().enumerate() {
        let field = format!("files[{i}]");
        let fail = |what: String| Error::new(&field, format!("{}: {what}", file.path));
        if file.content.len() > MAX_FILE_BYTES {
            return Err(fail(format!(
                "is larger than {MAX_FILE_BYTES} bytes ({} bytes)",
                file.content.len()
            )));
        }
        for (d, document) in serde_norway::Deserializer::from_str(&file.content).enumerate() {
            let value = Value::deserialize(document)
                .map_err(|e| fail(format!("document {}: not YAML: {e}", d + 1)))?;
            if value.is_null() {
                continue;
            }
            if !value.is_mapping() {
                return Err(fail(format!(
                    "document {} is not an entity (a YAML mapping)",
                    d + 1
                )));
            }
            let label = entity_label(&value, d);
            let api_version = value
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !api_version.starts_with("backstage.io/") {
                warnings.push(format!(
                    "{}: {label}: skipped: apiVersion {api_version:?} is not a Backstage one",
                    file.path
                ));
                continue;
            }
            count += 1;
            if count > MAX_ENTITIES {
                return Err(Error::new(
                    "files",
                    format!("hold more than {MAX_ENTITIES} entities"),
                ));
            }
            let raw: RawEntity = serde_path_to_error::deserialize(value)
                .map_err(|e| fail(format!("{label}: {}: {}", e.path(), e.inner())))?;
            let (identity, entity) =
                read_entity(raw, i, options).map_err(|e| fail(format!("{label}: {e}")))?;
            if let Some(first) = identities.insert(identity.clone(), i) {
                return Err(fail(format!(
                    "{label}: {identity} is also defined in {}",
                    files[first].path
                )));
            }
            match entity {
                Some(entity) => entities.push((identity, entity)),
                None if !matches!(
                    identity.kind.as_str(),
                    "api" | "system" | "domain" | "group" | "user" | "location" | "template"
                ) =>
                {
                    warnings.push(format!(
                        "{}: {label}: skipped: kind {:?} is not mapped to services",
                        file.path, identity.kind
                    ));
                }
                None => {}
            }
        }
    }
    resolve(entities, count, warnings, options, files)
}

fn entity_label(value: &Value, index: usize) -> String {
    let kind = value.get("kind").and_then(Value::as_str);
    let name = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str);
    match (kind, name) {
        (Some(kind), Some(name)) => format!("{kind} {name}"),
        (Some(kind), None) => format!("document {} ({kind})", index + 1),
        _ => format!("document {}", index + 1),
    }
}

fn resolve(
    entities: Vec<(EntityRef, ServiceEntity)>,
    count: usize,
    mut warnings: Vec<String>,
    options: &ImportOptions,
    files: &[CatalogFile],
) -> Result<CatalogImport> {
    let by_ref: BTreeMap<&EntityRef, &ServiceEntity> =
        entities.iter().map(|(r, e)| (r, e)).collect();
    let mut providers: BTreeMap<&EntityRef, Vec<&ServiceRef>> = BTreeMap::new();
    for (_, e) in &entities {
        for api in &e.provides {
            providers.entry(api).or_default().push(&e.service);
        }
    }
    let mut out: BTreeMap<ServiceRef, ServiceTopology> = BTreeMap::new();
    let mut unresolved: BTreeSet<String> = BTreeSet::new();
    let mut target = |r: &EntityRef, e: &ServiceEntity, field: &str| -> Result<ServiceRef> {
        match by_ref.get(r) {
            Some(found) => Ok(found.service.clone()),
            None => {
                unresolved.insert(format!(
                    "{}: {}: {r} is not in the imported files; mapped to the service {:?}",
                    files[e.file].path, e.label, r.name
                ));
                service_by_name(r, options).map_err(|err| {
                    Error::new(
                        format!("files[{}]", e.file),
                        format!(
                            "{}: {}: {field}: {}",
                            files[e.file].path, e.label, err.message
                        ),
                    )
                })
            }
        }
    };
    let mut edges: Vec<(ServiceRef, ServiceRef)> = Vec::new();
    for (_, e) in &entities {
        let entry = out
            .entry(e.service.clone())
            .or_insert_with(|| ServiceTopology {
                service: e.service.clone(),
                owner: None,
                tier: None,
                depends_on: Vec::new(),
            });
        entry.owner = entry.owner.take().or_else(|| e.owner.clone());
        entry.tier = entry.tier.take().or_else(|| e.tier.clone());
        for r in &e.depends_on {
            edges.push((e.service.clone(), target(r, e, "spec.dependsOn")?));
        }
        for r in &e.dependency_of {
            edges.push((target(r, e, "spec.dependencyOf")?, e.service.clone()));
        }
        for api in &e.consumes {
            match providers.get(api) {
                Some(list) => edges.extend(list.iter().map(|p| (e.service.clone(), (*p).clone()))),
                None => warnings.push(format!(
                    "{}: {}: no imported component provides {api}",
                    files[e.file].path, e.label
                )),
            }
        }
    }
    for (from, to) in edges {
        if from == to {
            continue;
        }
        out.entry(from.clone())
            .or_insert_with(|| ServiceTopology {
                service: from,
                owner: None,
                tier: None,
                depends_on: Vec::new(),
            })
            .depends_on
            .push(to);
    }
    let services = out
        .into_values()
        .map(|mut s| {
            s.depends_on.sort();
            s.depends_on.dedup();
            s
        })
        .collect();
    warnings.extend(unresolved);
    Ok(CatalogImport {
        services,
        entities: count,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ImportOptions {
        ImportOptions {
            environment: Environment::parse("production").unwrap_or_else(|e| panic!("{e}")),
            namespace: None,
            cluster: crate::Cluster::default(),
        }
    }

    fn file(path: &str, content: &str) -> CatalogFile {
        CatalogFile {
            path: path.to_owned(),
            content: content.to_owned(),
        }
    }

    fn deps(import: &CatalogImport, name: &str) -> Vec<String> {
        import
            .services
            .iter()
            .find(|s| s.service.name.as_str() == name)
            .unwrap_or_else(|| panic!("no service {name} in {import:?}"))
            .depends_on
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const CATALOG: &str = r"
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: checkout
  annotations:
    backstage.io/kubernetes-namespace: shop
    deploygraph.io/tier: tier-1
spec:
  type: service
  lifecycle: production
  owner: team-checkout
  dependsOn:
    - component:payments
    - resource:default/orders-db
  consumesApis:
    - pricing-api
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: Payments
  annotations:
    backstage.io/kubernetes-id: payments-api
    backstage.io/kubernetes-namespace: shop
    example.com/service-tier: 1
spec:
  type: service
  lifecycle: production
  owner: group:default/payments
---
apiVersion: backstage.io/v1alpha1
kind: Resource
metadata:
  name: orders-db
  annotations:
    backstage.io/kubernetes-namespace: data
spec:
  type: database
  owner: team-data
  dependencyOf:
    - component:reporting
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: pricing
spec:
  type: service
  lifecycle: experimental
  owner: team-pricing
  providesApis: [pricing-api]
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata:
  name: pricing-api
spec:
  type: openapi
  lifecycle: production
  owner: team-pricing
  definition: 'openapi: 3.0.0'
---
apiVersion: backstage.io/v1alpha1
kind: System
metadata:
  name: shop
spec:
  owner: team-checkout
";

    #[test]
    fn a_catalog_maps_to_services_owners_tiers_and_dependencies() {
        let import = parse(&[file("catalog-info.yaml", CATALOG)], &options())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(import.entities, 6);
        assert_eq!(
            deps(&import, "checkout"),
            vec![
                "data/orders-db (production)",
                "shop/payments-api (production)",
                "pricing (production)",
            ]
        );
        // `dependencyOf` on the database: reporting (not in the files) depends on it.
        assert_eq!(
            deps(&import, "reporting"),
            vec!["data/orders-db (production)"]
        );
        let checkout = &import
            .services
            .iter()
            .find(|s| s.service.name.as_str() == "checkout");
        let checkout = checkout.unwrap_or_else(|| panic!("checkout"));
        assert_eq!(checkout.owner.as_deref(), Some("team-checkout"));
        assert_eq!(checkout.tier.as_deref(), Some("tier-1"));
        let payments = import
            .services
            .iter()
            .find(|s| s.service.name.as_str() == "payments-api")
            .unwrap_or_else(|| panic!("payments"));
        assert_eq!(payments.service.namespace.as_deref(), Some("shop"));
        assert_eq!(payments.owner.as_deref(), Some("group:default/payments"));
        assert_eq!(
            payments.tier.as_deref(),
            Some("1"),
            "a number is read as text"
        );
        assert!(payments.depends_on.is_empty());
        assert!(
            import
                .warnings
                .iter()
                .any(|w| w.contains("component:default/reporting")),
            "{:?}",
            import.warnings
        );
    }

    #[test]
    fn the_namespace_option_applies_to_entities_without_the_annotation() {
        let opts = ImportOptions {
            namespace: Some("prod".into()),
            ..options()
        };
        let import = parse(&[file("c.yaml", CATALOG)], &opts).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            deps(&import, "checkout"),
            vec![
                "data/orders-db (production)",
                "shop/payments-api (production)",
                "prod/pricing (production)",
            ]
        );
    }

    #[test]
    fn other_documents_are_skipped_with_a_warning() {
        let text = "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n---\n\
                    apiVersion: backstage.io/v1alpha1\nkind: Widget\nmetadata:\n  name: w\n---\n";
        let import =
            parse(&[file("mixed.yaml", text)], &options()).unwrap_or_else(|e| panic!("{e}"));
        assert!(import.services.is_empty());
        assert_eq!(import.warnings.len(), 2, "{:?}", import.warnings);
        assert!(import.warnings[0].contains("mixed.yaml: Deployment web"));
        assert!(import.warnings[1].contains("\"widget\""));
    }

    #[test]
    fn bad_input_names_the_file_and_the_entity() {
        let entity = |spec: &str| {
            format!(
                "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: web\n\
                 spec:\n  type: service\n{spec}"
            )
        };
        let cases: Vec<(String, &str)> = vec![
            ("key: [unclosed".into(), "document 1: not YAML"),
            ("- a\n- b\n".into(), "document 1 is not an entity"),
            (
                "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {}\n".into(),
                "document 1 (Component): metadata.name: is required",
            ),
            (
                "apiVersion: backstage.io/v1alpha1\nmetadata:\n  name: x\n".into(),
                "document 1: kind: is required",
            ),
            (
                entity("  dependsOn: [payments]\n"),
                "Component web: spec.dependsOn[0]: \"payments\" has no kind",
            ),
            (
                entity("  dependsOn: [system:shop]\n"),
                "Component web: spec.dependsOn[0]: \"system:shop\" is a system reference",
            ),
            (
                entity("  dependsOn: ['component:a/b/c:d']\n"),
                "spec.dependsOn[0]: \"component:a/b/c:d\" is not an entity reference",
            ),
            (
                entity("  dependsOn: [component:Bad_Name]\n"),
                "Component web: spec.dependsOn: component:default/bad_name is not in the imported files",
            ),
            (
                entity("  dependsOn: component:x\n"),
                "Component web: spec.dependsOn: invalid type",
            ),
            (
                entity("  owner: [a, b]\n"),
                "Component web: spec.owner: invalid type",
            ),
            (
                "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: Web_App\n"
                    .into(),
                "Component Web_App: metadata.name: the service name \"web_app\" is not a DNS-1123 label",
            ),
            (
                "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: web\n  \
                 annotations:\n    backstage.io/kubernetes-namespace: Not_A_Namespace\n"
                    .into(),
                "Component web: metadata.annotations[\"backstage.io/kubernetes-namespace\"]",
            ),
            (
                format!("{}---\n{}", entity(""), entity("")),
                "Component web: component:default/web is also defined in bad.yaml",
            ),
        ];
        for (text, expected) in cases {
            match parse(&[file("bad.yaml", &text)], &options()) {
                Err(e) => {
                    assert_eq!(e.field, "files[0]", "{text}");
                    assert!(
                        e.message.starts_with("bad.yaml: ") && e.message.contains(expected),
                        "{text}\nexpected {expected:?} in {:?}",
                        e.message
                    );
                }
                Ok(import) => panic!("accepted {text}: {import:?}"),
            }
        }
    }

    #[test]
    fn sizes_are_capped() {
        let big = "#".repeat(MAX_FILE_BYTES + 1);
        let e = parse(&[file("a.yaml", ""), file("big.yaml", &big)], &options())
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(e.field, "files[1]");
        assert!(e.message.starts_with("big.yaml: is larger than"), "{e}");
        // Aliases that expand without bound are refused, not expanded.
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            bomb.push_str(&format!(
                "{}: &{} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n",
                (b'a' + i) as char,
                (b'a' + i) as char,
                p = (b'a' + i - 1) as char
            ));
        }
        let e = parse(&[file("bomb.yaml", &bomb)], &options())
            .err()
            .unwrap_or_else(|| panic!("accepted the bomb"));
        assert!(e.message.contains("bomb.yaml: document 1: not YAML"), "{e}");
        let many: Vec<CatalogFile> = (0..=MAX_FILES).map(|i| file(&i.to_string(), "")).collect();
        assert_eq!(
            parse(&many, &options()).map_err(|e| e.field),
            Err("files".to_owned())
        );
    }

    #[test]
    fn references_parse_with_defaults() {
        let r = parse_ref("Component:Shop/Web", None, "default").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.to_string(), "component:shop/web");
        let r = parse_ref("pricing-api", Some("api"), "shop").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.to_string(), "api:shop/pricing-api");
        assert!(parse_ref("web", None, "default").is_err());
        assert!(parse_ref("component:", None, "default").is_err());
        assert!(parse_ref("component:a b", None, "default").is_err());
    }
}
