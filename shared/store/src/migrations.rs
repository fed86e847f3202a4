//! Schema migrations: files `migrations/<backend>/NNNN_name.<ext>`, applied in order and
//! recorded with a SHA-256 checksum. An applied migration whose file changed is refused.
//!
//! The files are compiled into the binary ([`MigrationSource::Embedded`]); `--migrations-dir`
//! loads them from a directory instead ([`MigrationSource::Directory`]).

use crate::error::{Error, Result};
use deploygraph_model::uid::sha256_hex;
use std::path::{Path, PathBuf};

/// One migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The number the file name starts with.
    pub version: u32,
    /// The file name.
    pub name: String,
    /// Its statements.
    pub body: String,
}

impl Migration {
    /// SHA-256 of the body.
    pub fn checksum(&self) -> String {
        sha256_hex(self.body.as_bytes())
    }

    /// The body split into statements on `;` at the end of a line; `//` and `--` comment
    /// lines are dropped.
    pub fn statements(&self) -> Vec<String> {
        let mut statements = Vec::new();
        let mut current = String::new();
        for line in self.body.lines() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with("//") || trimmed.starts_with("--") {
                continue;
            }
            current.push_str(line);
            current.push('\n');
            if trimmed.ends_with(';') {
                let statement = current.trim().trim_end_matches(';').trim().to_owned();
                if !statement.is_empty() {
                    statements.push(statement);
                }
                current.clear();
            }
        }
        let rest = current.trim();
        if !rest.is_empty() {
            statements.push(rest.to_owned());
        }
        statements
    }
}

/// A migration as recorded in the store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AppliedMigration {
    /// Version.
    pub version: u32,
    /// File name.
    pub name: String,
    /// Checksum when applied.
    pub checksum: String,
}

/// Where migration files come from.
#[derive(Debug, Clone, Default)]
pub enum MigrationSource {
    /// The files compiled into this build.
    #[default]
    Embedded,
    /// `<dir>/neo4j/*.cypher` and `<dir>/sqlite/*.sql`.
    Directory(PathBuf),
}

macro_rules! embedded {
    ($dir:literal, $($file:literal),* $(,)?) => {
        &[$(($file, include_str!(concat!("../../../migrations/", $dir, "/", $file)))),*]
    };
}

/// Migration files compiled in, per backend. A test checks this list against the directory.
pub const EMBEDDED_SQLITE: &[(&str, &str)] = embedded!(
    "sqlite",
    "0001_init.sql",
    "0002_infra_snapshots.sql",
    "0003_alerts_topology_chaos.sql",
    "0004_optional_commit_and_digest.sql",
    "0005_helm_revisions.sql",
    "0006_removed_status.sql",
    "0007_follow_ups.sql",
    "0008_attribution_probabilities.sql",
    "0009_topology_sources.sql",
    "0010_changes.sql",
    "0011_verdicts.sql",
    "0012_key_history.sql",
    "0013_change_keys.sql",
    "0014_revisits.sql",
    "0015_canary_analyses.sql",
    "0017_attribution_canary_evidence.sql",
    "0018_release_summaries.sql",
    "0019_rollbacks.sql",
    "0020_gate_overrides.sql",
    "0021_certificate_secures.sql",
    "0022_clusters.sql",
    "0023_attribution_metric_onset.sql",
    "0024_attribution_onset_in_rollout.sql",
    "0025_attribution_service_metrics.sql"
);
/// Neo4j migration files compiled in.
pub const EMBEDDED_NEO4J: &[(&str, &str)] = embedded!(
    "neo4j",
    "0001_constraints.cypher",
    "0002_infra_snapshots.cypher",
    "0003_alerts_topology_chaos.cypher",
    "0004_helm_revisions.cypher",
    "0005_follow_ups.cypher",
    "0006_attribution_probabilities.cypher",
    "0007_topology_sources.cypher",
    "0008_changes.cypher",
    "0010_key_history.cypher",
    "0011_change_keys.cypher",
    "0012_canary_analyses.cypher",
    "0014_attribution_canary_evidence.cypher",
    "0015_release_summaries.cypher",
    "0016_rollbacks.cypher",
    "0017_gate_overrides.cypher",
    "0018_certificate_secures.cypher",
    "0019_clusters.cypher",
    "0020_attribution_metric_onset.cypher",
    "0021_attribution_onset_in_rollout.cypher",
    "0022_attribution_service_metrics.cypher"
);

impl MigrationSource {
    /// Loads the migrations of `backend` (`sqlite` or `neo4j`), ordered by version.
    ///
    /// # Errors
    /// [`Error::MigrationFiles`] for unreadable files, bad names or duplicate versions.
    pub fn load(&self, backend: &str) -> Result<Vec<Migration>> {
        let files: Vec<(String, String)> = match self {
            Self::Embedded => {
                let list = if backend == "neo4j" {
                    EMBEDDED_NEO4J
                } else {
                    EMBEDDED_SQLITE
                };
                list.iter()
                    .map(|(n, b)| ((*n).to_owned(), (*b).to_owned()))
                    .collect()
            }
            Self::Directory(dir) => read_dir(&dir.join(backend), extension(backend))?,
        };
        parse_files(files)
    }
}

fn extension(backend: &str) -> &'static str {
    if backend == "neo4j" { "cypher" } else { "sql" }
}

fn read_dir(dir: &Path, ext: &str) -> Result<Vec<(String, String)>> {
    let failed = |reason: String| Error::MigrationFiles {
        path: dir.display().to_string(),
        reason,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| failed(e.to_string()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| failed(e.to_string()))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some(ext) {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| failed(format!("{} has a name that is not UTF-8", path.display())))?
            .to_owned();
        let body = std::fs::read_to_string(&path).map_err(|e| failed(format!("{name}: {e}")))?;
        files.push((name, body));
    }
    Ok(files)
}

fn parse_files(files: Vec<(String, String)>) -> Result<Vec<Migration>> {
    let mut migrations = files
        .into_iter()
        .map(|(name, body)| {
            let version = name
                .split_once('_')
                .and_then(|(n, _)| n.parse::<u32>().ok())
                .ok_or_else(|| Error::MigrationFiles {
                    path: name.clone(),
                    reason: "a migration file name starts with its number: NNNN_name".into(),
                })?;
            Ok(Migration {
                version,
                name,
                body,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    migrations.sort_by_key(|m| m.version);
    if let Some(pair) = migrations.windows(2).find(|w| w[0].version == w[1].version) {
        return Err(Error::MigrationFiles {
            path: pair[1].name.clone(),
            reason: format!("version {} is used twice", pair[1].version),
        });
    }
    Ok(migrations)
}

/// The migrations still to apply, given the ones recorded as applied.
///
/// # Errors
/// [`Error::MigrationChanged`] when an applied file changed, [`Error::UnknownMigration`] when the
/// store has one this build does not know.
pub fn pending<'a>(
    known: &'a [Migration],
    applied: &[AppliedMigration],
) -> Result<Vec<&'a Migration>> {
    for record in applied {
        let Some(file) = known.iter().find(|m| m.version == record.version) else {
            return Err(Error::UnknownMigration {
                version: record.version,
                name: record.name.clone(),
            });
        };
        let current = file.checksum();
        if current != record.checksum {
            return Err(Error::MigrationChanged {
                name: file.name.clone(),
                applied: record.checksum.clone(),
                current,
            });
        }
    }
    Ok(known
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migration(version: u32, body: &str) -> Migration {
        Migration {
            version,
            name: format!("{version:04}_m.sql"),
            body: body.into(),
        }
    }

    fn applied(m: &Migration) -> AppliedMigration {
        AppliedMigration {
            version: m.version,
            name: m.name.clone(),
            checksum: m.checksum(),
        }
    }

    #[test]
    fn pending_lists_what_is_not_applied_in_order() {
        let known = vec![migration(1, "a"), migration(2, "b")];
        let todo = pending(&known, &[applied(&known[0])]).expect("pending");
        assert_eq!(todo.iter().map(|m| m.version).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn an_edited_applied_migration_is_refused_by_name() {
        let original = migration(1, "CREATE TABLE a (x);");
        let edited = migration(1, "CREATE TABLE a (x, y);");
        let err =
            pending(std::slice::from_ref(&edited), &[applied(&original)]).expect_err("changed");
        assert!(err.to_string().contains("0001_m.sql"), "{err}");
    }

    #[test]
    fn a_migration_from_a_newer_build_is_refused() {
        let newer = migration(9, "x");
        assert!(matches!(
            pending(&[migration(1, "a")], &[applied(&newer)]),
            Err(Error::UnknownMigration { version: 9, .. })
        ));
    }

    #[test]
    fn statements_split_on_line_ending_semicolons() {
        let m = migration(1, "-- comment\nCREATE A;\n// other\nCREATE B\n  ON X;\n");
        assert_eq!(
            m.statements(),
            vec!["CREATE A".to_owned(), "CREATE B\n  ON X".to_owned()]
        );
    }

    #[test]
    fn embedded_lists_match_the_migration_directories() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
        for backend in ["sqlite", "neo4j"] {
            let on_disk = MigrationSource::Directory(root.clone())
                .load(backend)
                .expect("load dir");
            let embedded = MigrationSource::Embedded
                .load(backend)
                .expect("load embedded");
            assert_eq!(
                on_disk, embedded,
                "migrations/{backend} and the embedded list differ"
            );
            assert!(!embedded.is_empty());
            for m in &embedded {
                assert!(!m.statements().is_empty(), "{} has no statements", m.name);
            }
        }
    }
}
