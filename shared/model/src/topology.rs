//! Service topology: which services each service depends on (`DEPENDS_ON`), from
//! `PUT /v1/services/{name}/dependencies` bodies and from a topology file.
//!
//! ```yaml
//! services:
//!   - name: payments
//!     namespace: prod            # optional
//!     environment: production
//!     depends_on:
//!       - redis                  # same namespace and environment as payments
//!       - name: postgres
//!         namespace: data        # optional; environment defaults to payments'
//! ```

use crate::alert::ServiceRef;
use crate::error::{Error, Result};
use crate::newtypes::{Environment, ServiceName};
use serde::Deserialize;

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
    /// What it depends on (an empty list removes them all).
    #[schema(required = true, nullable = false)]
    pub depends_on: Option<Vec<DependencyInput>>,
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
    /// What it depends on.
    pub depends_on: Option<Vec<DependencyInput>>,
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

impl DependenciesInput {
    /// Validates the body for the service `name`.
    ///
    /// # Errors
    /// An error naming the field (`depends_on[1].name`).
    pub fn validate(self, name: &str) -> Result<Dependencies> {
        ServiceTopologyInput {
            name: Some(name.to_owned()),
            namespace: self.namespace,
            environment: self.environment,
            depends_on: self.depends_on,
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
    pub fn validate(self) -> Result<Dependencies> {
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
        };
        let deps = self
            .depends_on
            .ok_or_else(|| Error::new("depends_on", "is required (an empty list removes them)"))?;
        let mut out = Vec::with_capacity(deps.len());
        for (i, dep) in deps.into_iter().enumerate() {
            let at = |field: &str| format!("depends_on[{i}]{field}");
            let (name, namespace, environment) = match dep {
                DependencyInput::Name(n) => (Some(n), None, None),
                DependencyInput::Full(DependencyRefInput {
                    name,
                    namespace,
                    environment,
                }) => (name, namespace, environment),
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
            let dependency = ServiceRef {
                name,
                namespace: self::namespace(namespace, &at(".namespace"))?
                    .or_else(|| service.namespace.clone()),
                environment,
            };
            if dependency == service {
                return Err(Error::new(at(""), "a service cannot depend on itself"));
            }
            out.push(dependency);
        }
        out.sort();
        out.dedup();
        Ok((service, out))
    }
}

impl TopologyInput {
    /// Validates a whole topology file.
    ///
    /// # Errors
    /// An error naming the field (`services[2].depends_on[0].name`).
    pub fn validate(self) -> Result<Vec<Dependencies>> {
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
        let (service, deps) = input.validate("payments").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(service.to_string(), "prod/payments (production)");
        let deps: Vec<String> = deps.iter().map(ToString::to_string).collect();
        assert_eq!(
            deps,
            vec!["data/postgres (production)", "prod/redis (production)"]
        );
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
                depends_on: Some(vec![DependencyInput::Name("BAD".into())]),
            }]),
        };
        assert_eq!(
            file.validate().map_err(|e| e.field),
            Err("services[0].depends_on[0].name".into())
        );
    }
}
