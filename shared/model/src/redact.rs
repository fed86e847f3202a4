//! Redaction of secrets before they reach the graph or a log line.
//!
//! Two checks, both applied by [`redact_value`] (and so by every `ConfigChange`):
//!
//! - **By key**: a value under a secret-looking path (`env.DB_PASSWORD`, `values.apiKey`,
//!   anything in a `Secret`) is replaced whole by [`REDACTED`].
//! - **By value** ([`redact_secrets`]): secrets recognisable by their shape are replaced where
//!   they stand, the rest of the value kept so a change stays readable:
//!
//! | Shape | Example | Stored as |
//! |---|---|---|
//! | password in a URL's userinfo | `postgres://u:p@host/db` | `postgres://u:<redacted>@host/db` (scheme, user, host, path kept) |
//! | bearer token | `Authorization: Bearer abc.def` | `Authorization: Bearer <redacted>` |
//! | PEM private key | `-----BEGIN RSA PRIVATE KEY-----…-----END RSA PRIVATE KEY-----` | `<redacted>` (the whole block, PGP `PRIVATE KEY BLOCK`s too; an unterminated block up to the end) |
//! | secret parameter in a query or connection string | `?sslmode=require&password=p`, `Server=db;Password=p;` | `password=<redacted>` |
//! | AWS access key id | `AKIA…`, `ASIA…` (20 characters) | `<redacted>` |
//! | GitHub token | `ghp_…`, `gho_…`, `ghs_…`, `ghu_…`, `ghr_…`, `github_pat_…` | `<redacted>` |
//! | Slack token | `xoxb-…` (`xox[abprs]-`) | `<redacted>` |
//! | GitLab token | `glpat-…` | `<redacted>` |
//! | JWT | `eyJ….eyJ….…` | `<redacted>` |
//! | Google API key | `AIza…` (39 characters) | `<redacted>` |
//! | Stripe secret/restricted key | `sk_live_…`, `rk_live_…`, `sk_test_…`, `rk_test_…` | `<redacted>` |
//!
//! The marker is the same [`REDACTED`] as for key-based redaction, so a search for it finds
//! every redaction. A URL's user name is kept (it names the account, not the credential); a
//! URL without a password, a digest (`sha256:…`), a commit SHA, a UUID, an image reference
//! pinned by digest and plain numbers or booleans are never touched. Redaction is idempotent:
//! redacting a redacted value changes nothing.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};

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

/// The value to store for `path`: redacted whole when the path looks secret, else with the
/// secrets [`redact_secrets`] recognises in it replaced.
pub fn redact_value(path: &str, value: Option<String>) -> Option<String> {
    match value {
        Some(_) if is_secret_path(path) => Some(REDACTED.to_owned()),
        Some(value) => Some(match redact_secrets(&value) {
            Cow::Borrowed(_) => value,
            Cow::Owned(redacted) => redacted,
        }),
        None => None,
    }
}

/// A PEM private key block (`-----BEGIN RSA PRIVATE KEY-----`, `ENCRYPTED PRIVATE KEY`, …)
/// up to its end line, or to the end of the value when it was cut.
static PRIVATE_KEY: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"(?s)-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)",
    )
});

/// `scheme://user:password@`: group 1 is everything up to and including the `:` before the
/// password. Neither part may hold `/`, `?`, `#`, `@` or whitespace, as RFC 3986 requires of
/// userinfo, so `http://host:8080/a@b` is not a password.
static URL_PASSWORD: LazyLock<Regex> =
    LazyLock::new(|| compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://[^\s:/?#@]*:)[^\s/?#@]+@"));

/// `Bearer <token>`: group 1 is the scheme and its spacing, group 2 the token.
static BEARER: LazyLock<Regex> =
    LazyLock::new(|| compile(r"(?i)(\bbearer\s+)([A-Za-z0-9\-._~+/]+=*)"));

/// `name=value` in a query or connection string, for a secret-looking name; group 1 is the
/// name and `=`, group 2 the value (up to `&`, `;`, a quote, a comma or whitespace).
static SECRET_PARAMETER: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r#"(?i)(\b[a-z0-9_.\-]*?(?:password|passwd|pwd|passphrase|secret|token|api[_\-]?key|access[_\-]?key|private[_\-]?key|sig|signature|credentials?)=)([^&;\s"',]+)"#,
    )
});

/// Tokens recognisable by their shape alone, replaced whole.
static TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
        r"|\bgh[pousr]_[A-Za-z0-9]{36,}\b",
        r"|\bgithub_pat_[A-Za-z0-9_]{22,}\b",
        r"|\bxox[abprs]-[A-Za-z0-9\-]{10,}",
        r"|\bglpat-[A-Za-z0-9_\-]{20,}",
        r"|\beyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*",
        r"|\bAIza[0-9A-Za-z_\-]{35}",
        r"|\b[sr]k_(?:live|test)_[0-9A-Za-z]{16,}",
    ))
});

#[allow(clippy::expect_used)] // The patterns are constants, covered by the tests below.
fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("redaction patterns are valid")
}

/// `value` with every secret recognised by its shape replaced by [`REDACTED`] (see the module
/// documentation for the shapes); borrowed unchanged when there is none.
pub fn redact_secrets(value: &str) -> Cow<'_, str> {
    type Rewrite = fn(&Captures<'_>) -> String;
    let rules: [(&Regex, Rewrite); 5] = [
        (&PRIVATE_KEY, |_| REDACTED.to_owned()),
        (&URL_PASSWORD, |c| format!("{}{REDACTED}@", &c[1])),
        (&BEARER, |c| {
            // Prose ("Bearer authentication") is not a token: a token has a digit or a symbol.
            if c[2].chars().all(|ch| ch.is_ascii_alphabetic()) {
                c[0].to_owned()
            } else {
                format!("{}{REDACTED}", &c[1])
            }
        }),
        (&SECRET_PARAMETER, |c| format!("{}{REDACTED}", &c[1])),
        (&TOKEN, |_| REDACTED.to_owned()),
    ];
    let mut out = value.to_owned();
    for (re, rewrite) in rules {
        let replaced = match re.replace_all(&out, |c: &Captures<'_>| rewrite(c)) {
            Cow::Owned(replaced) => replaced,
            Cow::Borrowed(_) => continue,
        };
        out = replaced;
    }
    if out == value {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(out)
    }
}

/// Whether `value` holds a secret recognised by its shape.
pub fn contains_secret(value: &str) -> bool {
    matches!(redact_secrets(value), Cow::Owned(_))
}

/// The words of a key path: split on every character that is not a letter or digit and at
/// camel-case boundaries, lower-cased (`values.redis.maxPoolSize` → `values`, `redis`, `max`,
/// `pool`, `size`).
pub fn split_words(path: &str) -> Vec<String> {
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

    /// Values with a secret, and what is stored for each.
    const REDACTED_CASES: &[(&str, &str)] = &[
        // Credentials in URLs: the password goes, scheme, user, host and path stay.
        ("postgres://u:p@host/db", "postgres://u:<redacted>@host/db"),
        (
            "postgresql://app:s3cr%40t@db.internal:5432/orders?sslmode=require",
            "postgresql://app:<redacted>@db.internal:5432/orders?sslmode=require",
        ),
        (
            "redis://:hunter2@cache:6379/0",
            "redis://:<redacted>@cache:6379/0",
        ),
        (
            "amqp://guest:guest@rabbit:5672/%2F",
            "amqp://guest:<redacted>@rabbit:5672/%2F",
        ),
        (
            "https://deploy:tok3n@git.example.com/acme/app.git",
            "https://deploy:<redacted>@git.example.com/acme/app.git",
        ),
        (
            "DATABASE_URL=mysql+pymysql://root:rootpw@mysql/app",
            "DATABASE_URL=mysql+pymysql://root:<redacted>@mysql/app",
        ),
        (
            "primary mongodb://a:b@m1,m2/db and replica mongodb://c:d@m3/db",
            "primary mongodb://a:<redacted>@m1,m2/db and replica mongodb://c:<redacted>@m3/db",
        ),
        // Bearer tokens.
        (
            "Authorization: Bearer abc123.def-456_ghi",
            "Authorization: Bearer <redacted>",
        ),
        ("bearer dG9rZW4=", "bearer <redacted>"),
        // Private keys, the whole block, and a block cut short.
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n",
            "<redacted>\n",
        ),
        (
            "key: -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n-----END OPENSSH PRIVATE KEY----- end",
            "key: <redacted> end",
        ),
        (
            "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
            "<redacted>",
        ),
        (
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----",
            "<redacted>",
        ),
        (
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIF\n-----END ENCRYPTED PRIVATE KEY-----",
            "<redacted>",
        ),
        // Secret parameters in query and connection strings.
        (
            "https://api.example.com/v1?user=a&password=p4ss&x=1",
            "https://api.example.com/v1?user=a&password=<redacted>&x=1",
        ),
        (
            "Server=db;Database=app;User Id=sa;Password=Pa55w0rd;",
            "Server=db;Database=app;User Id=sa;Password=<redacted>;",
        ),
        (
            "https://acct.blob.core.windows.net/c?sv=2022-11-02&sig=abc%2Bdef",
            "https://acct.blob.core.windows.net/c?sv=2022-11-02&sig=<redacted>",
        ),
        (
            "wss://hub/socket?access_token=xyz",
            "wss://hub/socket?access_token=<redacted>",
        ),
        (
            "--db-password=hunter2 --verbose",
            "--db-password=<redacted> --verbose",
        ),
        (
            "client_secret=abc&grant_type=x",
            "client_secret=<redacted>&grant_type=x",
        ),
        (
            "api_key=k1;apiKey=k2",
            "api_key=<redacted>;apiKey=<redacted>",
        ),
        // Token shapes.
        ("AKIAIOSFODNN7EXAMPLE", "<redacted>"),
        ("aws ASIAY34FZKBOKMUTVV7A here", "aws <redacted> here"),
        ("ghp_0123456789abcdefghijABCDEFGHIJ012345", "<redacted>"),
        ("gho_0123456789abcdefghijABCDEFGHIJ012345", "<redacted>"),
        (
            "token ghs_0123456789abcdefghijABCDEFGHIJ012345",
            "token <redacted>",
        ),
        (
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789",
            "<redacted>",
        ),
        ("xoxb-1234567890-abcdefghijkl", "<redacted>"),
        ("xoxp-1234567890-1234567890-abc", "<redacted>"),
        ("glpat-abcdefghij0123456789", "<redacted>"),
        (
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "<redacted>",
        ),
        ("AIzaSyA-1234567890abcdefghijklmnopqrstu", "<redacted>"),
        ("sk_live_0123456789abcdefABCDEF", "<redacted>"),
        ("rk_live_0123456789abcdefABCDEF", "<redacted>"),
        ("STRIPE=sk_test_0123456789abcdefABCDEF", "STRIPE=<redacted>"),
    ];

    /// Near misses: values that look a little like a secret and are stored as they are.
    const KEPT_CASES: &[&str] = &[
        "https://example.com/path?page=2&sort=asc",
        "https://user@example.com/repo.git",
        "postgres://db.internal:5432/orders",
        "http://host:8080/a@b",
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "9fceb02d0ae598e95dc970b74767f19372d61af8",
        "123e4567-e89b-12d3-a456-426614174000",
        "registry.example.com/acme/app@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "docker://registry.example.com:5000/app@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "ghcr.io/acme/app:1.4.2",
        "3",
        "0.25",
        "true",
        "false",
        "",
        "info",
        "Bearer authentication is required",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\nmQEN\n-----END PGP PUBLIC KEY BLOCK-----",
        "AKIA",
        "AKIAshort",
        "ghp_short",
        "max_tokens=5",
        "keyspace=orders",
        "sk_live_",
        "eyJhbGciOiJIUzI1NiJ9",
        "2026-12-02T17:25:00Z",
        "10.0.0.1:5432",
        "redis-master.cache.svc.cluster.local:6379",
    ];

    #[test]
    fn secrets_recognised_by_their_shape_are_redacted_where_they_stand() {
        for (value, stored) in REDACTED_CASES {
            assert_eq!(redact_secrets(value), *stored, "{value}");
            assert!(contains_secret(value), "{value}");
            assert_eq!(
                redact_value("values.ordinary", Some((*value).to_owned())).as_deref(),
                Some(*stored),
                "{value}"
            );
        }
    }

    #[test]
    fn near_misses_are_kept_as_they_are() {
        for value in KEPT_CASES {
            assert!(
                matches!(redact_secrets(value), Cow::Borrowed(v) if v == *value),
                "{value} -> {}",
                redact_secrets(value)
            );
            assert!(!contains_secret(value), "{value}");
        }
    }

    #[test]
    fn redacting_a_redacted_value_changes_nothing() {
        for (_, stored) in REDACTED_CASES {
            assert_eq!(redact_secrets(stored), *stored, "{stored}");
        }
    }

    #[test]
    fn a_secret_path_still_redacts_the_whole_value() {
        assert_eq!(
            redact_value("env.DB_PASSWORD", Some("postgres://u:p@host/db".into())),
            Some(REDACTED.to_owned())
        );
    }
}
