//! What changed in a deployment, as CI knows it: `record deployment --change` and
//! `--changes-file`. The changes go into the deployment's `changes` (the API validates them and
//! redacts secret-looking values, as for every config value).
//!
//! `--change` forms (the first `=` ends the path, the first `->` splits the values):
//!
//! | form | kind | example |
//! |---|---|---|
//! | `PATH=BEFORE->AFTER` | `value` | `values.redis.pool.size=50->10` |
//! | `PATH=->AFTER` | `added` | `values.featureFlags.fastCheckout=->true` |
//! | `PATH=BEFORE->` | `removed` | `values.legacy.endpoint=http://old->` |
//!
//! `--changes-file` reads JSON or YAML — a list of `{path, kind, before, after}` (`kind`
//! defaults to `value`; numbers and booleans are taken as their text), or `{changes: [...]}` —
//! or the text `helm diff upgrade` prints (with or without colour): each resource block
//! (`NAMESPACE, NAME, KIND (GROUP) has changed:` / `has been added:` / `has been removed:`)
//! becomes `Kind/name:field.path` changes of kind `manifest`, or one `added`/`removed` change
//! of `Kind/name`.

use deploygraph_model::deployment::{ChangeInput, ChangeKind};
use serde::Deserialize;
use std::path::Path;

/// Parses one `--change` value.
///
/// # Errors
/// A message naming what is wrong (clap prefixes the flag).
pub fn change_arg(value: &str) -> Result<ChangeInput, String> {
    let (path, values) = value
        .split_once('=')
        .ok_or_else(|| format!("{value:?} is not PATH=BEFORE->AFTER"))?;
    let path = path.trim();
    if path.is_empty() {
        return Err(format!("{value:?} has no key path before `=`"));
    }
    let (before, after) = values
        .split_once("->")
        .ok_or_else(|| format!("{value:?} has no `->` between the value before and after"))?;
    let (kind, before, after) = match (before.is_empty(), after.is_empty()) {
        (true, true) => {
            return Err(format!(
                "{value:?} has neither a value before nor after `->`"
            ));
        }
        (true, false) => (ChangeKind::Added, None, Some(after)),
        (false, true) => (ChangeKind::Removed, Some(before), None),
        (false, false) => (ChangeKind::Value, Some(before), Some(after)),
    };
    Ok(ChangeInput {
        path: Some(path.to_owned()),
        kind: Some(kind.as_str().to_owned()),
        before: before.map(str::to_owned),
        after: after.map(str::to_owned),
    })
}

/// One entry of a JSON or YAML changes file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileChange {
    path: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    before: Option<serde_norway::Value>,
    #[serde(default)]
    after: Option<serde_norway::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileChanges {
    List(Vec<FileChange>),
    Wrapped { changes: Vec<FileChange> },
}

fn scalar(value: Option<serde_norway::Value>, field: &str) -> Result<Option<String>, String> {
    use serde_norway::Value;
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(format!("{field}: must be a string, number or boolean")),
    }
}

/// Reads a changes file (JSON, YAML or `helm diff` output); `-` is standard input, so that
/// `helm diff upgrade … | deploygraph record deployment … --changes-file -` works.
///
/// # Errors
/// A message naming the file and, for a list, the entry and field.
pub fn read_file(path: &Path) -> Result<Vec<ChangeInput>, String> {
    let fail = |e: &dyn std::fmt::Display| format!("--changes-file {}: {e}", path.display());
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| fail(&e))?
    } else {
        std::fs::read_to_string(path).map_err(|e| fail(&e))?
    };
    parse(&text).map_err(|e| fail(&e))
}

/// Parses the text of a changes file.
///
/// # Errors
/// What is wrong, naming the entry and field.
pub fn parse(text: &str) -> Result<Vec<ChangeInput>, String> {
    let plain = strip_ansi(text);
    if is_helm_diff(&plain) {
        return Ok(helm_diff(&plain));
    }
    let entries = match serde_norway::from_str::<FileChanges>(&plain).map_err(|e| {
        format!(
            "not a list of {{path, kind, before, after}} (JSON or YAML), nor helm diff output: {e}"
        )
    })? {
        FileChanges::List(list) | FileChanges::Wrapped { changes: list } => list,
    };
    entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let at = |field: &str| format!("changes[{i}].{field}");
            let kind = entry.kind.unwrap_or_else(|| "value".into());
            ChangeKind::parse(&kind).map_err(|e| format!("{}: {}", at("kind"), e.message))?;
            Ok(ChangeInput {
                path: Some(entry.path),
                kind: Some(kind),
                before: scalar(entry.before, &at("before"))?,
                after: scalar(entry.after, &at("after"))?,
            })
        })
        .collect()
}

/// Removes terminal colour sequences (`ESC [ … m`), which `helm diff` prints on a terminal.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What a `helm diff` resource header says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Happened {
    Changed,
    Added,
    Removed,
}

/// `default, web, Deployment (apps) has changed:` → (`Deployment/web`, Changed).
fn header(line: &str) -> Option<(String, Happened)> {
    let (resource, happened) = [
        (" has changed:", Happened::Changed),
        (" has been added:", Happened::Added),
        (" has been removed:", Happened::Removed),
    ]
    .into_iter()
    .find_map(|(suffix, h)| line.trim_end().strip_suffix(suffix).map(|r| (r, h)))?;
    let parts: Vec<&str> = resource.split(", ").collect();
    let [_, name, kind] = parts.as_slice() else {
        return None;
    };
    let kind = kind.split(" (").next().unwrap_or(kind).trim();
    Some((format!("{kind}/{}", name.trim()), happened))
}

fn is_helm_diff(text: &str) -> bool {
    text.lines().any(|l| header(l).is_some())
}

/// One `+`, `-` or unchanged line of a resource's manifest.
struct Line<'a> {
    sign: char,
    indent: usize,
    text: &'a str,
}

fn manifest_line(raw: &str) -> Option<Line<'_>> {
    let sign = match raw.chars().next()? {
        '+' => '+',
        '-' => '-',
        ' ' => ' ',
        _ => return None,
    };
    let body = &raw[1..];
    let trimmed = body.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') || trimmed == "---" {
        return None;
    }
    Some(Line {
        sign,
        indent: body.len() - trimmed.len(),
        text: trimmed,
    })
}

/// The key paths of a changed resource's `+`/`-` scalar lines, paired into before and after.
fn changed_fields(resource: &str, lines: &[Line<'_>]) -> Vec<ChangeInput> {
    // One key path per side: the unchanged lines belong to both.
    let mut changes: Vec<ChangeInput> = Vec::new();
    for side in ['-', '+'] {
        let mut stack: Vec<(usize, String)> = Vec::new();
        let mut items: Vec<(usize, usize)> = Vec::new();
        for line in lines.iter().filter(|l| l.sign == ' ' || l.sign == side) {
            let mut indent = line.indent;
            let mut text = line.text;
            while stack.last().is_some_and(|(i, _)| *i >= indent) {
                stack.pop();
            }
            let item = text.strip_prefix("- ").or((text == "-").then_some(""));
            // A list's item count ends where a line at or left of it is not one of its items.
            items.retain(|(i, _)| *i < indent || (item.is_some() && *i == indent));
            if let Some(rest) = item {
                let index = match items.last_mut() {
                    Some((i, n)) if *i == indent => {
                        *n += 1;
                        *n
                    }
                    _ => {
                        items.push((indent, 0));
                        0
                    }
                };
                stack.push((indent, format!("[{index}]")));
                indent += 2;
                text = rest;
                if text.is_empty() {
                    continue;
                }
            }
            let (key, value) = match text.split_once(':') {
                Some((k, v)) if !k.contains(' ') || k.starts_with('"') => (k, v.trim()),
                _ => ("", text),
            };
            let mut path: Vec<&str> = stack.iter().map(|(_, k)| k.as_str()).collect();
            if !key.is_empty() {
                path.push(key.trim_matches('"'));
            }
            let field = path.join(".").replace(".[", "[");
            if value.is_empty() || value == "|" || value == ">" {
                if !key.is_empty() {
                    stack.push((indent, key.trim_matches('"').to_owned()));
                }
                continue;
            }
            if line.sign != side {
                continue;
            }
            let value = value.trim_matches('"').to_owned();
            let path = format!("{resource}:{field}");
            match changes
                .iter_mut()
                .find(|c| c.path.as_deref() == Some(&path))
            {
                Some(c) if side == '+' => c.after = Some(value),
                Some(_) => {}
                None => changes.push(ChangeInput {
                    path: Some(path),
                    kind: Some(ChangeKind::Manifest.as_str().to_owned()),
                    before: (side == '-').then(|| value.clone()),
                    after: (side == '+').then_some(value),
                }),
            }
        }
    }
    changes
}

/// `helm diff upgrade` output as changes.
fn helm_diff(text: &str) -> Vec<ChangeInput> {
    let mut out = Vec::new();
    let mut current: Option<(String, Happened)> = None;
    let mut lines: Vec<Line<'_>> = Vec::new();
    let mut flush = |current: &Option<(String, Happened)>, lines: &mut Vec<Line<'_>>| {
        match current {
            Some((resource, Happened::Changed)) => out.extend(changed_fields(resource, lines)),
            Some((resource, happened)) => out.push(ChangeInput {
                path: Some(resource.clone()),
                kind: Some(
                    if *happened == Happened::Added {
                        ChangeKind::Added
                    } else {
                        ChangeKind::Removed
                    }
                    .as_str()
                    .to_owned(),
                ),
                before: None,
                after: None,
            }),
            None => {}
        }
        lines.clear();
    };
    for raw in text.lines() {
        if let Some(found) = header(raw) {
            flush(&current, &mut lines);
            current = Some(found);
        } else if let Some(line) = manifest_line(raw) {
            lines.push(line);
        }
    }
    flush(&current, &mut lines);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn change(path: &str, kind: &str, before: Option<&str>, after: Option<&str>) -> ChangeInput {
        ChangeInput {
            path: Some(path.into()),
            kind: Some(kind.into()),
            before: before.map(Into::into),
            after: after.map(Into::into),
        }
    }

    #[test]
    fn change_flags_give_value_added_and_removed_changes() {
        assert_eq!(
            change_arg("values.redis.pool.size=50->10").unwrap(),
            change("values.redis.pool.size", "value", Some("50"), Some("10"))
        );
        assert_eq!(
            change_arg("values.flags.fast=->true").unwrap(),
            change("values.flags.fast", "added", None, Some("true"))
        );
        assert_eq!(
            change_arg("values.legacy.url=http://a/b?c=d->").unwrap(),
            change("values.legacy.url", "removed", Some("http://a/b?c=d"), None)
        );
        for bad in ["values.x", "=1->2", "values.x=1", "values.x=->"] {
            assert!(change_arg(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn changes_files_are_read_as_json_or_yaml_lists() {
        let json = r#"[{"path": "values.redis.pool.size", "kind": "value", "before": "50", "after": "10"}]"#;
        assert_eq!(
            parse(json).unwrap(),
            vec![change(
                "values.redis.pool.size",
                "value",
                Some("50"),
                Some("10")
            )]
        );
        let yaml = "changes:\n  - path: values.replicas\n    before: 2\n    after: 3\n  - path: values.debug\n    kind: added\n    after: true\n";
        assert_eq!(
            parse(yaml).unwrap(),
            vec![
                change("values.replicas", "value", Some("2"), Some("3")),
                change("values.debug", "added", None, Some("true")),
            ]
        );
        let bad = parse("- path: a\n  kind: sideways\n").unwrap_err();
        assert!(bad.contains("changes[0].kind"), "{bad}");
        assert!(parse("- path: a\n  colour: red\n").is_err());
        assert!(parse("just some text").is_err());
    }

    #[test]
    fn helm_diff_output_becomes_manifest_changes() {
        let text = "\u{1b}[33mdefault, web, Deployment (apps) has changed:\u{1b}[0m
  # Source: web/templates/deployment.yaml
  apiVersion: apps/v1
  kind: Deployment
  metadata:
    name: web
  spec:
-   replicas: 2
+   replicas: 3
    template:
      spec:
        containers:
          - name: web
-           image: \"ghcr.io/acme/web:1.0\"
+           image: \"ghcr.io/acme/web:1.1\"
            env:
              - name: MODE
                value: fast
+             - name: POOL
+               value: \"10\"
default, flags, ConfigMap (v1) has been added:
+ # Source: web/templates/flags.yaml
+ apiVersion: v1
+ kind: ConfigMap
default, old, Service (v1) has been removed:
- apiVersion: v1
";
        let changes = parse(text).unwrap();
        assert_eq!(
            changes,
            vec![
                change(
                    "Deployment/web:spec.replicas",
                    "manifest",
                    Some("2"),
                    Some("3")
                ),
                change(
                    "Deployment/web:spec.template.spec.containers[0].image",
                    "manifest",
                    Some("ghcr.io/acme/web:1.0"),
                    Some("ghcr.io/acme/web:1.1")
                ),
                change(
                    "Deployment/web:spec.template.spec.containers[0].env[1].name",
                    "manifest",
                    None,
                    Some("POOL")
                ),
                change(
                    "Deployment/web:spec.template.spec.containers[0].env[1].value",
                    "manifest",
                    None,
                    Some("10")
                ),
                change("ConfigMap/flags", "added", None, None),
                change("Service/old", "removed", None, None),
            ]
        );
    }
}
