//! Redaction of secret-looking values before they reach the graph or a log line.

/// What a redacted value is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Words in a key path that mark its value as a secret. Matched against the path's segments,
/// split on `.`, `/`, `:`, `_`, `-` and camel-case boundaries, case-insensitively.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "credential",
    "credentials",
    "privatekey",
    "key",
];

/// Whether the value under `path` (`values.redis.auth.password`, `Secret/db:data.url`,
/// `env.DB_PASSWORD`) should be treated as a secret.
pub fn is_secret_path(path: &str) -> bool {
    if path.starts_with("Secret/") || path.contains(" Secret (") {
        return true;
    }
    let words = split_words(path);
    let secret = |word: &str| {
        SECRET_WORDS.contains(&word)
            || word
                .strip_suffix('s')
                .is_some_and(|w| SECRET_WORDS.contains(&w))
    };
    words.iter().enumerate().any(|(i, w)| {
        secret(w)
            || words
                .get(i + 1)
                .is_some_and(|next| secret(&format!("{w}{next}")))
    })
}

/// The value to store for `path`: redacted when the path looks secret.
pub fn redact_value(path: &str, value: Option<String>) -> Option<String> {
    match value {
        Some(_) if is_secret_path(path) => Some(REDACTED.to_owned()),
        other => other,
    }
}

fn split_words(path: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut prev_lower = false;
    for c in path.chars() {
        if !c.is_ascii_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        current.push(c.to_ascii_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_paths_are_recognised() {
        for path in [
            "values.redis.auth.password",
            "env.DB_PASSWORD",
            "values.apiKey",
            "values.api_key",
            "values.tls.privateKey",
            "Secret/db-creds:data.url",
            "values.github.token",
            "values.tokens[0]",
            "values.apiKeys.primary",
        ] {
            assert!(is_secret_path(path), "{path}");
        }
    }

    #[test]
    fn ordinary_paths_are_kept() {
        for path in [
            "values.redis.pool.size",
            "spec.replicas",
            "values.image.tag",
            "env.LOG_LEVEL",
        ] {
            assert!(!is_secret_path(path), "{path}");
        }
    }

    #[test]
    fn secret_values_are_replaced() {
        assert_eq!(
            redact_value("env.DB_PASSWORD", Some("hunter2".into())),
            Some(REDACTED.to_owned())
        );
        assert_eq!(redact_value("env.DB_PASSWORD", None), None);
        assert_eq!(
            redact_value("spec.replicas", Some("3".into())),
            Some("3".to_owned())
        );
    }
}
