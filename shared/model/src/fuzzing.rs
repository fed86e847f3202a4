//! Inputs for the fuzz tests of every parser of outside input (`tests/fuzz.rs` in each crate).
//!
//! A fuzz input is raw bytes, handed to the parser as they are, unless its first byte is
//! neither printable ASCII nor whitespace (no text document starts so): then the rest of the
//! bytes are read as a *recipe* for a JSON document whose keys and strings come mostly from the
//! parser's own vocabulary ([`document`]). Random bytes almost never make
//! a JSON object with an `alerts` array of entries with a `startsAt`, so without recipes a
//! bounded random run would only test the JSON syntax errors; with them, it reaches the
//! validation behind; about three random inputs in five are recipes. Seed corpora of real
//! documents (text) are passed through unchanged. YAML parsers get the same documents (JSON is
//! YAML) or, for a recipe starting with an odd byte, the document printed as block YAML.

use serde_json::{Map, Number, Value};
use std::borrow::Cow;

/// How deep a recipe may nest arrays and objects.
const MAX_DEPTH: usize = 6;
/// How many elements an array or object of a recipe may have.
const MAX_ITEMS: usize = 6;

/// Strings every parser meets sooner or later: empty, blank, odd Unicode, times, digests, …
const COMMON: &[&str] = &[
    "",
    " ",
    "\u{0}",
    "\n",
    "é",
    "\u{202e}",
    "0",
    "-1",
    "1e999",
    "true",
    "null",
    "~",
    "2026-11-20T10:15:00Z",
    "2026-11-20T10:15:00.123456789+02:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "10000-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "sha256:0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db93427",
    "9fceb02d0ae598e9",
    "9fceb02d0ae598e95dc970b74767f19372d61af8",
    "payments",
    "production",
    "prod",
    "a/b/c",
    "../..",
    "127.0.0.1",
    "::1",
    "10s",
    "500ms",
    "1h 30m",
    "18446744073709551616s",
];

/// Reads a recipe byte by byte.
struct Recipe<'a> {
    bytes: &'a [u8],
    vocabulary: &'a [&'a str],
}

impl Recipe<'_> {
    fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((b, rest)) => {
                self.bytes = rest;
                *b
            }
            None => 0,
        }
    }

    fn word(&mut self) -> String {
        let pick = usize::from(self.byte());
        let words = self.vocabulary.len() + COMMON.len();
        match pick % (words + 1) {
            i if i < self.vocabulary.len() => self.vocabulary[i].to_owned(),
            i if i < words => COMMON[i - self.vocabulary.len()].to_owned(),
            _ => {
                // A raw string: the next byte says how long.
                let len = usize::from(self.byte() % 24).min(self.bytes.len());
                let (raw, rest) = self.bytes.split_at(len);
                self.bytes = rest;
                String::from_utf8_lossy(raw).into_owned()
            }
        }
    }

    fn value(&mut self, depth: usize) -> Value {
        let tag = self.byte();
        let nested = depth < MAX_DEPTH;
        match tag % 10 {
            0 => Value::Null,
            1 => Value::Bool(tag & 0x10 != 0),
            2 => {
                let n = i64::from_le_bytes([
                    self.byte(),
                    self.byte(),
                    self.byte(),
                    self.byte(),
                    0,
                    0,
                    0,
                    0,
                ]) - i64::from(i32::MAX);
                Value::Number(n.into())
            }
            3 => Number::from_f64(f64::from(self.byte()) / 7.0).map_or(Value::Null, Value::Number),
            4 if nested => {
                let n = usize::from(self.byte()) % MAX_ITEMS;
                Value::Array((0..n).map(|_| self.value(depth + 1)).collect())
            }
            5..=7 if nested => {
                let n = usize::from(self.byte()) % MAX_ITEMS;
                let mut map = Map::new();
                for _ in 0..n {
                    let key = self.word();
                    let value = self.value(depth + 1);
                    map.insert(key, value);
                }
                Value::Object(map)
            }
            _ => Value::String(self.word()),
        }
    }
}

/// The JSON document a recipe describes: keys and strings are picked from `vocabulary`, a list
/// of common awkward values, or taken raw from the recipe; nesting is bounded.
pub fn document(recipe: &[u8], vocabulary: &[&str]) -> Value {
    Recipe {
        bytes: recipe,
        vocabulary,
    }
    .value(0)
}

/// The recipe in `input`, when it is one (see the module documentation).
pub fn recipe(input: &[u8]) -> Option<&[u8]> {
    match input.split_first() {
        Some((first, rest)) if !(first.is_ascii_graphic() || first.is_ascii_whitespace()) => {
            Some(rest)
        }
        _ => None,
    }
}

/// The bytes a JSON parser is fuzzed with: the input itself, or the document its recipe
/// describes (see the module documentation).
pub fn json_input<'a>(input: &'a [u8], vocabulary: &[&str]) -> Cow<'a, [u8]> {
    match recipe(input) {
        Some(recipe) => {
            Cow::Owned(serde_json::to_vec(&document(recipe, vocabulary)).unwrap_or_default())
        }
        None => Cow::Borrowed(input),
    }
}

/// The text a YAML parser is fuzzed with: the input itself (lossily as UTF-8), or the document
/// its recipe describes, as JSON or (when the recipe starts with an odd byte) as block YAML
/// written by `render`.
pub fn yaml_input<'a>(
    input: &'a [u8],
    vocabulary: &[&str],
    render: impl Fn(&Value) -> Option<String>,
) -> Cow<'a, str> {
    match recipe(input) {
        Some(recipe) => {
            let value = document(recipe, vocabulary);
            let block = recipe.first().is_some_and(|b| b % 2 == 1);
            let text = if block { render(&value) } else { None };
            Cow::Owned(text.unwrap_or_else(|| value.to_string()))
        }
        None => String::from_utf8_lossy(input),
    }
}

/// The vocabulary of deployment bodies (`POST /v1/deployments`, `DeploymentInput`).
pub const DEPLOYMENT_WORDS: &[&str] = &[
    "id",
    "service",
    "namespace",
    "environment",
    "version",
    "commit",
    "sha",
    "repo",
    "author",
    "message",
    "committed_at",
    "images",
    "repository",
    "tag",
    "digest",
    "status",
    "succeeded",
    "failed",
    "in_progress",
    "rolled_back",
    "started_at",
    "finished_at",
    "actor",
    "changes",
    "path",
    "kind",
    "before",
    "after",
    "value",
    "manifest",
    "image",
    "replicas",
    "env",
    "resources",
    "added",
    "removed",
    "password",
    "validation",
    "coverage_pct",
    "sast_findings",
    "tests_passed",
    "tests_failed",
    "chaos_pass_rate",
    "ghcr.io/acme/payments",
    "v2.3.0",
    "ci-run-4711",
    "payments",
    "production",
];

/// The vocabulary of `POST /v1/changes` bodies (one change, or an array of them).
pub const CHANGE_WORDS: &[&str] = &[
    "id",
    "kind",
    "feature_flag",
    "terraform",
    "migration",
    "node_pool",
    "config_map",
    "secret",
    "hpa",
    "other",
    "services",
    "name",
    "namespace",
    "environment",
    "actor",
    "at",
    "diff",
    "key",
    "before",
    "after",
    "link",
    "summary",
    "https://flags.acme.io/audit/42",
    "env.DB_PASSWORD",
    "postgres://app:hunter2@db/orders",
    "alice@acme.io",
    "payments",
    "production",
];

/// The vocabulary of `POST /v1/alerts/{fingerprint}/suspects/{uid}/verdict` bodies.
pub const VERDICT_WORDS: &[&str] = &[
    "verdict",
    "confirmed",
    "rejected",
    "by",
    "note",
    "alice@acme.io",
    "pool size cut from 50 to 10",
    "postgres://app:hunter2@db/orders",
    "",
];

/// The vocabulary of Alertmanager webhook bodies (version 4).
pub const WEBHOOK_WORDS: &[&str] = &[
    "version",
    "4",
    "alerts",
    "status",
    "firing",
    "resolved",
    "labels",
    "annotations",
    "startsAt",
    "endsAt",
    "generatorURL",
    "fingerprint",
    "alertname",
    "service",
    "app",
    "app_kubernetes_io_name",
    "namespace",
    "environment",
    "severity",
    "type",
    "summary",
    "description",
    "groupKey",
    "receiver",
    "truncatedAlerts",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes_describe_documents_over_the_vocabulary() {
        // object of 2: "alerts" -> array of 1 null, then "version" -> string "4".
        let recipe = [5, 2, 0, 4, 1, 0, 1, 9, 2];
        let doc = document(&recipe, &["alerts", "version", "4"]);
        assert_eq!(doc, serde_json::json!({"alerts": [null], "version": "4"}));
    }

    #[test]
    fn plain_inputs_are_passed_through_and_recipes_always_end() {
        assert_eq!(json_input(b"{}", &[]).as_ref(), b"{}");
        assert_eq!(json_input(b" \n{}", &[]).as_ref(), b" \n{}");
        assert_eq!(json_input(&[0], &[]).as_ref(), b"null");
        assert_eq!(json_input(&[0x80, 9, 1], &[]).as_ref(), b"\" \"");
        // A recipe that keeps asking for nesting stops at the depth bound.
        let deep = vec![4u8; 10_000];
        let mut depth = 0;
        let mut value = &document(&deep, &[]);
        while let Value::Array(items) = value {
            depth += 1;
            match items.first() {
                Some(v) => value = v,
                None => break,
            }
        }
        assert!(depth <= MAX_DEPTH + 1, "{depth}");
    }
}
