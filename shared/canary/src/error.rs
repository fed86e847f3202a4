//! The crate's one error type.

/// Why a template, selector, window or Prometheus query was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The YAML did not deserialize into a template (syntax, wrong type, unknown field).
    #[error("failed to read analysis template at `{path}`")]
    Parse {
        /// Field path of the problem (`metrics[1].kind`), `.` for the document itself.
        path: String,
        #[source]
        source: serde_norway::Error,
    },
    /// The template deserialized but a field's value is not acceptable.
    #[error("invalid analysis template: `{field}`: {reason}")]
    Invalid {
        /// Field path (`metrics[0].numerator`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A selector that is not a plain PromQL label-matcher list.
    #[error("invalid selector: {reason}")]
    Selector {
        /// What is wrong with it.
        reason: String,
    },
    /// A window that cannot be written as a PromQL duration.
    #[error("invalid window: {reason}")]
    Window {
        /// What is wrong with it.
        reason: String,
    },
    /// A Prometheus URL that is not an http(s) URL.
    #[error("invalid Prometheus URL {url:?}: {reason}")]
    PrometheusUrl {
        /// As given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client of the Prometheus queries could not be built.
    #[error("failed to build the HTTP client for Prometheus")]
    HttpClient(#[source] reqwest::Error),
    /// A query of an analysis failed.
    #[error("failed to run the {role} query of metric `{metric}` for the {side} ({query})")]
    Query {
        /// The metric's name.
        metric: String,
        /// `numerator`, `denominator` or `query`.
        role: String,
        /// Canary or baseline.
        side: crate::verdict::Side,
        /// The PromQL as sent.
        query: String,
        /// Why (boxed: it is rare, and keeps every `Result` of this crate small).
        #[source]
        source: Box<crate::prometheus::QueryFailure>,
    },
}

impl Error {
    /// The field path this error names, when it names one.
    #[must_use]
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Parse { path, .. } => Some(path),
            Self::Invalid { field, .. } => Some(field),
            Self::Selector { .. }
            | Self::Window { .. }
            | Self::PrometheusUrl { .. }
            | Self::HttpClient(_)
            | Self::Query { .. } => None,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}
