//! The model's one error type: a value that failed validation, naming the field.

/// A validation failure. `field` is the path of the offending input field (`images[0].digest`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Error {
    /// Path of the invalid field in the input document.
    pub field: String,
    /// What is wrong with it, for humans.
    pub message: String,
}

impl Error {
    /// A validation error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error, its field path prefixed with `prefix` (`images[0]` + `digest`).
    #[must_use]
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_owned()
        } else if self.field.starts_with('[') {
            format!("{prefix}{}", self.field)
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

/// Result with the model's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
