//! Service topology: which services each service depends on (`DEPENDS_ON`), from
//! `PUT /v1/services/{name}/dependencies` bodies and from a topology file (source `manual`),
//! from Backstage catalog files ([`crate::backstage`], source `backstage`) and from the call
//! graph a service mesh reports to Prometheus (source `mesh`).
//!
//! Each source keeps its own edges: a service's `DEPENDS_ON` edges from one source are replaced
//! or refreshed without touching another source's edges of the same pair.
//!
//! ```yaml
//! services:
//!   - name: payments
//!     namespace: prod            # optional
//!     environment: production
//!     owner: team-payments       # optional
//!     tier: tier-1               # optional SLA tier
//!     depends_on:
//!       - redis                  # same namespace and environment as payments
//!       - name: postgres
//!         namespace: data        # optional; environment defaults to payments'
//! ```

use crate::alert::ServiceRef;
use crate::error::{Error, Result};
use crate::newtypes::{Environment, ServiceName};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a `DEPENDS_ON` edge came from.
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
pub enum EdgeSource {
    /// `PUT /v1/services/{name}/dependencies`, `topology apply`, `serve --topology`.
    Manual,
    /// A Backstage catalog import (`spec.dependsOn`, `dependencyOf`, APIs consumed).
    Backstage,
    /// The call graph a service mesh or tracing pipeline reports to Prometheus.
    Mesh,
}

impl EdgeSource {
    /// Every source, in order.
    pub const ALL: [Self; 3] = [Self::Manual, Self::Backstage, Self::Mesh];

    /// The stored and wire name (`manual`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Backstage => "backstage",
            Self::Mesh => "mesh",
        }
    }

    /// Parses a stored or wire name.
    ///
    /// # Errors
    /// An error naming `source` for any other value.
    pub fn parse(value: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == value)
            .ok_or_else(|| {
                Error::new(
                    "source",
                    format!("{value:?} is not one of manual, backstage, mesh"),
                )
            })
    }
}

impl std::fmt::Display for EdgeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One source's sighting of an edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EdgeSighting {
    /// Where the edge came from.
    pub source: EdgeSource,
    /// When that source last asserted it (set it, imported it, saw calls along it).
    #[schema(value_type = String, format = DateTime)]
    pub last_seen_at: DateTime<Utc>,
}

/// A dependency as read back: the service depended on, and every source that has the edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyEdge {
    /// The service depended on.
    #[serde(flatten)]
    pub service: ServiceRef,
    /// Each source of the edge, in [`EdgeSource`] order.
    pub sources: Vec<EdgeSighting>,
    /// The latest of the sources' `last_seen_at`.
    pub last_seen_at: DateTime<Utc>,
}

impl DependencyEdge {
    /// Groups sightings `(dependency, source, last seen)` ordered by dependency into edges.
    pub fn group(
        rows: impl IntoIterator<Item = (ServiceRef, EdgeSource, DateTime<Utc>)>,
    ) -> Vec<Self> {
        let mut out: Vec<Self> = Vec::new();
        for (service, source, last_seen_at) in rows {
            match out.last_mut() {
                Some(edge) if edge.service == service => {
                    edge.last_seen_at = edge.last_seen_at.max(last_seen_at);
                    edge.sources.push(EdgeSighting {
                        source,
                        last_seen_at,
                    });
                }
                _ => out.push(Self {
                    service,
                    sources: vec![EdgeSighting {
                        source,
                        last_seen_at,
                    }],
                    last_seen_at,
                }),
            }
        }
        for edge in &mut out {
            edge.sources.sort_by_key(|s| s.source);
        }
        out
    }
}

/// A service's owner and SLA tier as stored, and its dependencies with their sources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceTopologyView {
    /// The service.
    pub service: ServiceRef,
    /// The team that owns it, when known.
    pub owner: Option<String>,
    /// Its SLA tier (`tier-1`), when known.
    pub tier: Option<String>,
    /// What it depends on, by name.
    pub depends_on: Vec<DependencyEdge>,
}

/// Most characters of an owner.
pub const MAX_OWNER_CHARS: usize = 253;
/// Most characters of a tier.
pub const MAX_TIER_CHARS: usize = 63;

/// Validates an owner or tier: absent or empty for none; else printable, at most `max` chars.
///
/// # Errors
/// An error naming `field`.
pub fn label_value(value: Option<String>, field: &str, max: usize) -> Result<Option<String>> {
    let Some(value) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.chars().count() > max {
        return Err(Error::new(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::new(field, "must not contain control characters"));
    }
    Ok(Some(value))
}

/// A dependency: a bare name, or a name with its own namespace and environment.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum DependencyInput {
    /// Same namespace and environment as the dependent service.
    #[schema(value_type = ServiceName)]
    Name(String),
    /// Explicit.
    Full(DependencyRefInput),
}

/// A dependency with its own namespace or environment. Unknown fields are rejected.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DependencyRefInput {
    /// Service name.
    #[schema(value_type = ServiceName, required = true)]
    pub name: Option<String>,
    /// Namespace (default: the dependent's).
    #[schema(value_type = Option<crate::schema::Namespace>)]
    pub namespace: Option<String>,
    /// Environment (default: the dependent's).
    #[schema(value_type = Option<Environment>)]
    pub environment: Option<String>,
    /// Cluster (default: the dependent's); a dependency may run in another cluster.
    #[schema(value_type = Option<crate::Cluster>)]
    pub cluster: Option<String>,
}

/// The body of `PUT /v1/services/{name}/dependencies`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DependenciesInput {
    /// The service's namespace.
    #[schema(value_type = Option<crate::schema::Namespace>)]
    pub namespace: Option<String>,
    /// The service's environment.
    #[schema(value_type = Environment, required = true)]
    pub environment: Option<String>,
    /// The service's cluster (absent: `default`).
    #[schema(value_type = Option<crate::Cluster>)]
    pub cluster: Option<String>,
    /// What it depends on (an empty list removes them all).
    #[schema(required = true, nullable = false)]
    pub depends_on: Option<Vec<DependencyInput>>,
    /// The team that owns the service (absent or blank: unchanged).
    #[schema(max_length = 253, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub owner: Option<String>,
    /// The service's SLA tier, e.g. `tier-1` (absent or blank: unchanged).
    #[schema(max_length = 63, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub tier: Option<String>,
}

/// One service of a topology file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceTopologyInput {
    /// Service name.
    pub name: Option<String>,
    /// Namespace.
    pub namespace: Option<String>,
    /// Environment.
    pub environment: Option<String>,
    /// Cluster (absent: `default`).
    pub cluster: Option<String>,
    /// What it depends on.
    pub depends_on: Option<Vec<DependencyInput>>,
    /// The team that owns it (absent: unchanged).
    pub owner: Option<String>,
    /// Its SLA tier (absent: unchanged).
    pub tier: Option<String>,
}

/// A topology file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologyInput {
    /// The services.
    pub services: Option<Vec<ServiceTopologyInput>>,
}

/// A service and what it depends on.
pub type Dependencies = (ServiceRef, Vec<ServiceRef>);

/// One service's entry of a topology write: its owner and tier (`None`: unchanged) and what it
/// depends on according to one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceTopology {
    /// The service.
    pub service: ServiceRef,
    /// The team that owns it (`None`: unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Its SLA tier (`None`: unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// What it depends on.
    pub depends_on: Vec<ServiceRef>,
}

impl DependenciesInput {
    /// Validates the body for the service `name`.
    ///
    /// # Errors
    /// An error naming the field (`depends_on[1].name`).
    pub fn validate(self, name: &str) -> Result<ServiceTopology> {
        ServiceTopologyInput {
            name: Some(name.to_owned()),
            namespace: self.namespace,
            environment: self.environment,
            cluster: self.cluster,
            depends_on: self.depends_on,
            owner: self.owner,
            tier: self.tier,
        }
        .validate()
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// A namespace: absent or empty for none, else a DNS-1123 label.
fn namespace(value: Option<String>, field: &str) -> Result<Option<String>> {
    match non_empty(value) {
        Some(ns) if !crate::newtypes::is_dns1123_label(&ns) => {
            Err(Error::new(field, format!("{ns:?} is not a DNS-1123 label")))
        }
        other => Ok(other),
    }
}

impl ServiceTopologyInput {
    /// Validates one service's entry.
    ///
    /// # Errors
    /// An error naming the field.
    pub fn validate(self) -> Result<ServiceTopology> {
        let owner = label_value(self.owner, "owner", MAX_OWNER_CHARS)?;
        let tier = label_value(self.tier, "tier", MAX_TIER_CHARS)?;
        let name = ServiceName::parse(
            non_empty(self.name)
                .as_deref()
                .ok_or_else(|| Error::new("name", "is required"))?,
        )
        .map_err(|e| Error::new("name", e.message))?;
        let environment = Environment::parse(
            non_empty(self.environment)
                .as_deref()
                .ok_or_else(|| Error::new("environment", "is required"))?,
        )
        .map_err(|e| Error::new("environment", e.message))?;
        let service = ServiceRef {
            name,
            namespace: namespace(self.namespace, "namespace")?,
            environment,
            cluster: crate::Cluster::parse_field(self.cluster.as_deref(), "cluster")?,
        };
        let deps = self
            .depends_on
            .ok_or_else(|| Error::new("depends_on", "is required (an empty list removes them)"))?;
        let mut out = Vec::with_capacity(deps.len());
        for (i, dep) in deps.into_iter().enumerate() {
            let at = |field: &str| format!("depends_on[{i}]{field}");
            let (name, namespace, environment, cluster) = match dep {
                DependencyInput::Name(n) => (Some(n), None, None, None),
                DependencyInput::Full(DependencyRefInput {
                    name,
                    namespace,
                    environment,
                    cluster,
                }) => (name, namespace, environment, cluster),
            };
            let name = ServiceName::parse(
                non_empty(name)
                    .as_deref()
                    .ok_or_else(|| Error::new(at(".name"), "is required"))?,
            )
            .map_err(|e| Error::new(at(".name"), e.message))?;
            let environment = match non_empty(environment) {
                Some(e) => {
                    Environment::parse(&e).map_err(|e| Error::new(at(".environment"), e.message))?
                }
                None => service.environment.clone(),
            };
            let cluster = match cluster {
                Some(c) => {
                    crate::Cluster::parse(&c).map_err(|e| Error::new(at(".cluster"), e.message))?
                }
                None => service.cluster.clone(),
            };
            let dependency = ServiceRef {
                name,
                namespace: self::namespace(namespace, &at(".namespace"))?
                    .or_else(|| service.namespace.clone()),
                environment,
                cluster,
            };
            if dependency == service {
                return Err(Error::new(at(""), "a service cannot depend on itself"));
            }
            out.push(dependency);
        }
        out.sort();
        out.dedup();
        Ok(ServiceTopology {
            service,
            owner,
            tier,
            depends_on: out,
        })
    }
}

impl TopologyInput {
    /// Validates a whole topology file.
    ///
    /// # Errors
    /// An error naming the field (`services[2].depends_on[0].name`).
    pub fn validate(self) -> Result<Vec<ServiceTopology>> {
        self.services
            .ok_or_else(|| Error::new("services", "is required"))?
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                s.validate()
                    .map_err(|e| e.within(&format!("services[{i}]")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dependencies_default_to_the_dependents_namespace_and_environment() {
        let input: DependenciesInput = serde_json::from_value(json!({
            "namespace": "prod", "environment": "production",
            "depends_on": ["redis", {"name": "postgres", "namespace": "data"}, "redis"]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let topology = input.validate("payments").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(topology.service.to_string(), "prod/payments (production)");
        assert_eq!((topology.owner, topology.tier), (None, None));
        let deps: Vec<String> = topology
            .depends_on
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            deps,
            vec!["data/postgres (production)", "prod/redis (production)"]
        );
    }

    #[test]
    fn owner_and_tier_are_trimmed_and_optional() {
        let input: DependenciesInput = serde_json::from_value(json!({
            "environment": "production", "depends_on": [],
            "owner": " team-payments ", "tier": ""
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let topology = input.validate("payments").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(topology.owner.as_deref(), Some("team-payments"));
        assert_eq!(topology.tier, None);
    }

    #[test]
    fn sightings_group_into_one_edge_per_dependency() {
        let t = crate::fixture::minute;
        let (a, b) = (ServiceRef::test("a"), ServiceRef::test("b"));
        let edges = DependencyEdge::group([
            (a.clone(), EdgeSource::Mesh, t(5)),
            (a.clone(), EdgeSource::Manual, t(1)),
            (b.clone(), EdgeSource::Backstage, t(2)),
        ]);
        assert_eq!(edges.len(), 2);
        assert_eq!(edges[0].service, a);
        assert_eq!(edges[0].last_seen_at, t(5));
        let sources: Vec<EdgeSource> = edges[0].sources.iter().map(|s| s.source).collect();
        assert_eq!(sources, vec![EdgeSource::Manual, EdgeSource::Mesh]);
        assert_eq!(edges[1].sources.len(), 1);
        let json = serde_json::to_value(&edges[0]).unwrap_or_default();
        assert_eq!(json["name"], "a");
        assert_eq!(json["sources"][1]["source"], "mesh");
        for s in EdgeSource::ALL {
            assert_eq!(EdgeSource::parse(s.as_str()), Ok(s));
        }
        assert!(EdgeSource::parse("k8s").is_err());
    }

    #[test]
    fn bad_entries_name_the_field() {
        let cases = [
            (json!({"environment": "production"}), "depends_on"),
            (json!({"depends_on": []}), "environment"),
            (
                json!({"environment": "production", "depends_on": ["Not Valid"]}),
                "depends_on[0].name",
            ),
            (
                json!({"environment": "production", "depends_on": [{"namespace": "x"}]}),
                "depends_on[0].name",
            ),
            (
                json!({"environment": "production", "depends_on": ["payments"]}),
                "depends_on[0]",
            ),
            (
                json!({"environment": "production", "depends_on": [], "tier": "x".repeat(64)}),
                "tier",
            ),
            (
                json!({"environment": "production", "depends_on": [], "owner": "a\nb"}),
                "owner",
            ),
        ];
        for (body, field) in cases {
            let input: DependenciesInput =
                serde_json::from_value(body).unwrap_or_else(|e| panic!("{e}"));
            match input.validate("payments") {
                Err(e) => assert_eq!(e.field, field),
                Ok(v) => panic!("accepted {v:?}"),
            }
        }
        let file = TopologyInput {
            services: Some(vec![ServiceTopologyInput {
                name: Some("api".into()),
                namespace: None,
                environment: Some("production".into()),
                cluster: None,
                depends_on: Some(vec![DependencyInput::Name("BAD".into())]),
                owner: None,
                tier: None,
            }]),
        };
        assert_eq!(
            file.validate().map_err(|e| e.field),
            Err("services[0].depends_on[0].name".into())
        );
    }
}
