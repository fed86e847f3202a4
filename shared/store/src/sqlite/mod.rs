//! The embedded store: typed SQLite tables (migrations/sqlite) in WAL mode with
//! `synchronous=FULL`, so a write is durable when the call returns.
//!
//! One connection writes (serialized by a mutex, each batch in one `BEGIN IMMEDIATE`
//! transaction); another reads, so listings do not wait for writes. rusqlite is blocking, so
//! every call runs on tokio's blocking pool.

use crate::GraphStore;
use crate::chain::{self, ChainNode};
use crate::error::{Error, Result};
use crate::migrations::{self, AppliedMigration, Migration, MigrationSource};
use crate::plan;
use crate::types::{
    AlertFilter, CanaryFilter, CanaryOutcome, ChangeFilter, ChangeOutcome, ChaosFilter,
    DeploymentFilter, KeyHistory, Page, RecordKind, RecordOutcome, ServiceHistory, ServiceSummary,
    StoredAttribution, StoredDeployment, VerdictOutcome,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deploygraph_model::newtypes::format_time;
use deploygraph_model::{
    Alert, AlertOutcome, CanaryAnalysis, Change, ChaosRun, Cluster, Commit, Deployment,
    Environment, ImageDigest, InfraSnapshot, NewCanaryAnalysis, ServiceName, ServiceRef,
    SuspectVerdict, Trigger, Uid, ValidationResult,
};
use rusqlite::types::Value;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, TransactionBehavior, params, params_from_iter,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const BACKEND: &str = "sqlite";

mod canary;
mod change;
mod follow_up;
mod gate;
mod key_history;
mod rca;
mod rollback;
mod summary;
mod topology;
mod verdict;

/// The embedded SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
    migrations: Vec<Migration>,
}

fn backend_error(operation: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
    move |e| classify(operation, e)
}

/// Busy, locked, I/O, full-disk and cannot-open errors are outages (503); the rest are bugs or
/// corruption.
fn classify(operation: &'static str, e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode::*;
    let transient = matches!(
        e.sqlite_error_code(),
        Some(DatabaseBusy | DatabaseLocked | SystemIoFailure | DiskFull | CannotOpen | ReadOnly)
    );
    if transient {
        Error::Unavailable {
            backend: BACKEND,
            source: Box::new(e),
        }
    } else {
        Error::Backend {
            backend: BACKEND,
            operation,
            source: Box::new(e),
        }
    }
}

/// Whether the database was busy or locked: another connection (another process) held the
/// lock past `busy_timeout`. The transaction was not applied and may run again.
fn is_busy(e: &Error) -> bool {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
    matches!(e, Error::Unavailable { source, .. }
        if source
            .downcast_ref::<rusqlite::Error>()
            .and_then(rusqlite::Error::sqlite_error_code)
            .is_some_and(|code| matches!(code, DatabaseBusy | DatabaseLocked)))
}

/// How long a connection waits for another one's lock before `SQLITE_BUSY` (then the whole
/// transaction is retried, see [`crate::retry`]).
const BUSY_TIMEOUT_MS: u32 = 5_000;

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Error::Unavailable {
        backend: BACKEND,
        source: format!("cannot open {}: {e}", path.display()).into(),
    })?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;",
    )
    .map_err(backend_error("configure the connection"))?;
    conn.busy_timeout(std::time::Duration::from_millis(u64::from(BUSY_TIMEOUT_MS)))
        .map_err(backend_error("configure the connection"))?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating when missing) the database file at `path`.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the file cannot be opened; [`Error::MigrationFiles`].
    pub async fn open(path: &Path, source: MigrationSource) -> Result<Self> {
        let migrations = source.load(BACKEND)?;
        let path = path.to_owned();
        let p = path.clone();
        let (writer, reader) =
            blocking(move || Ok((open_connection(&p)?, open_connection(&p)?))).await?;
        Ok(Self {
            path,
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
            migrations,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the writing connection. A transaction that found the database locked by
    /// another process past `busy_timeout` (`SQLITE_BUSY`) runs again from its start, within
    /// [`crate::retry`]'s bounds, so `f` must be repeatable.
    async fn with_writer<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Connection) -> Result<T> + Send + Sync + 'static,
    ) -> Result<T> {
        let f = Arc::new(f);
        crate::retry::run(BACKEND, "write", is_busy, || {
            let conn = Arc::clone(&self.writer);
            let f = Arc::clone(&f);
            blocking(move || {
                let mut guard = conn.lock().map_err(|_| poisoned())?;
                f(&mut guard)
            })
        })
        .await
    }

    async fn with_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = Arc::clone(&self.reader);
        blocking(move || {
            let guard = conn.lock().map_err(|_| poisoned())?;
            f(&guard)
        })
        .await
    }
}

fn poisoned() -> Error {
    Error::Backend {
        backend: BACKEND,
        operation: "lock the connection",
        source: "a previous operation panicked".into(),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Backend {
            backend: BACKEND,
            operation: "run a blocking task",
            source: Box::new(e),
        })?
}

const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    applied_at TEXT NOT NULL
) STRICT";

fn applied_migrations(conn: &Connection) -> Result<Vec<AppliedMigration>> {
    conn.execute(MIGRATIONS_TABLE, [])
        .map_err(backend_error("create the migrations table"))?;
    let mut stmt = conn
        .prepare("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        .map_err(backend_error("read applied migrations"))?;
    let rows = stmt
        .query_map([], |row| {
            Ok(AppliedMigration {
                version: row.get(0)?,
                name: row.get(1)?,
                checksum: row.get(2)?,
            })
        })
        .map_err(backend_error("read applied migrations"))?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(backend_error("read applied migrations"))
}

/// A line in a SQLite migration that makes it run with foreign keys off.
const FOREIGN_KEYS_OFF: &str = "-- deploygraph: foreign-keys-off";

/// Applies one migration in a transaction and records it; with `check_keys`, every foreign key
/// must still hold before it commits.
fn apply_migration(
    conn: &mut Connection,
    m: &Migration,
    check_keys: bool,
) -> Result<AppliedMigration> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend_error("begin a migration"))?;
    tx.execute_batch(&m.body).map_err(|e| Error::Backend {
        backend: BACKEND,
        operation: "apply a migration",
        source: format!("{}: {e}", m.name).into(),
    })?;
    if check_keys {
        let violations: i64 = tx
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |row| {
                row.get(0)
            })
            .map_err(backend_error("check foreign keys after a migration"))?;
        if violations > 0 {
            return Err(Error::Backend {
                backend: BACKEND,
                operation: "apply a migration",
                source: format!("{}: {violations} foreign key violation(s)", m.name).into(),
            });
        }
    }
    let record = AppliedMigration {
        version: m.version,
        name: m.name.clone(),
        checksum: m.checksum(),
    };
    tx.execute(
        "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
        params![record.version, record.name, record.checksum, format_time(&Utc::now())],
    )
    .map_err(backend_error("record a migration"))?;
    tx.commit().map_err(backend_error("commit a migration"))?;
    Ok(record)
}

/// Runs one statement through the connection's statement cache: batches repeat the same few
/// statements thousands of times.
fn exec(
    tx: &rusqlite::Transaction<'_>,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(params)
}

fn stored_deployment(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<(String, String, Option<String>)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

fn decode_rows(rows: Vec<(String, String, Option<String>)>) -> Result<Vec<StoredDeployment>> {
    rows.into_iter()
        .map(|(uid, payload, follows)| {
            Ok(StoredDeployment {
                deployment: crate::payload::decode::<Deployment>(&uid, &payload)?,
                follows: follows.map(Uid::from_stored),
            })
        })
        .collect()
}

fn time_text(t: &Option<DateTime<Utc>>) -> Option<String> {
    t.as_ref().map(format_time)
}

fn write_deployment(
    tx: &rusqlite::Transaction<'_>,
    d: &Deployment,
    kind: RecordKind,
) -> Result<()> {
    let failed = backend_error("write a deployment");
    let payload = serde_json::to_string(d).map_err(|e| Error::Backend {
        backend: BACKEND,
        operation: "encode a deployment",
        source: Box::new(e),
    })?;
    if kind == RecordKind::Updated {
        exec(
            tx,
            "UPDATE deployments SET status = ?2, finished_at = ?3, payload = ?4 WHERE uid = ?1",
            params![
                d.uid.as_str(),
                d.status.as_str(),
                time_text(&d.finished_at),
                payload
            ],
        )
        .map_err(failed)?;
        // Digests learned since the rollout was first seen relink its images.
        exec(
            tx,
            "DELETE FROM deployment_images WHERE deployment_uid = ?1",
            [d.uid.as_str()],
        )
        .map_err(backend_error("relink images"))?;
        write_images(tx, d)?;
        write_helm(tx, d)?;
        return write_validation(tx, d);
    }
    let service_uid = d.service_uid();
    rca::ensure_service(tx, &d.service_ref()).map_err(backend_error("write a service"))?;
    let commit_uid = d.commit.as_ref().map(Commit::uid);
    if let (Some(commit), Some(commit_uid)) = (&d.commit, &commit_uid) {
        exec(
            tx,
            "INSERT INTO commits (uid, sha, repo, author, message, committed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (uid) DO UPDATE SET
               author = coalesce(author, excluded.author), message = coalesce(message, excluded.message),
               committed_at = coalesce(committed_at, excluded.committed_at)",
            params![
                commit_uid.as_str(),
                commit.sha.as_str(),
                commit.repo,
                commit.author,
                commit.message,
                time_text(&commit.committed_at)
            ],
        )
        .map_err(backend_error("write a commit"))?;
    }
    exec(
            tx,
        "INSERT INTO deployments (uid, client_id, service_uid, service, namespace, environment, version,
            commit_uid, commit_sha, status, source, actor, started_at, started_at_us, finished_at,
            content_fingerprint, payload, cluster)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        params![
            d.uid.as_str(),
            d.id,
            service_uid.as_str(),
            d.service.as_str(),
            d.namespace,
            d.environment.as_str(),
            d.version,
            commit_uid.as_ref().map(Uid::as_str),
            d.commit.as_ref().map(|c| c.sha.as_str()),
            d.status.as_str(),
            d.source.as_str(),
            d.actor,
            format_time(&d.started_at),
            d.started_at.timestamp_micros(),
            time_text(&d.finished_at),
            d.content_fingerprint(),
            payload,
            d.cluster.as_str()
        ],
    )
    .map_err(backend_error("write a deployment"))?;
    write_images(tx, d)?;
    for change in &d.changes {
        exec(
            tx,
            "INSERT INTO config_changes (uid, deployment_uid, path, kind, before, after, started_at_us)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (uid) DO NOTHING",
            params![
                change.uid(&d.uid).as_str(),
                d.uid.as_str(),
                change.path,
                change.kind.as_str(),
                change.before,
                change.after,
                d.started_at.timestamp_micros()
            ],
        )
        .map_err(backend_error("write a config change"))?;
    }
    write_helm(tx, d)?;
    write_validation(tx, d)
}

/// Records the deployment's images and links them (`RUNS`).
fn write_images(tx: &rusqlite::Transaction<'_>, d: &Deployment) -> Result<()> {
    for image in &d.images {
        exec(
            tx,
            "INSERT INTO images (uid, digest, repository, tag) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (uid) DO UPDATE SET
               repository = coalesce(repository, excluded.repository), tag = coalesce(tag, excluded.tag)",
            params![
                image.uid().as_str(),
                image.digest.as_ref().map(ImageDigest::as_str),
                image.repository,
                image.tag
            ],
        )
        .map_err(backend_error("write an image"))?;
        exec(
            tx,
            "INSERT INTO deployment_images (deployment_uid, image_uid) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            params![d.uid.as_str(), image.uid().as_str()],
        )
        .map_err(backend_error("link an image"))?;
    }
    Ok(())
}

/// Records the Helm revision (`RELEASED_AS`); its status follows the release.
fn write_helm(tx: &rusqlite::Transaction<'_>, d: &Deployment) -> Result<()> {
    let Some(h) = &d.helm else {
        return Ok(());
    };
    exec(
        tx,
        "INSERT INTO helm_revisions (uid, deployment_uid, release, namespace, revision, chart,
             chart_version, app_version, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (uid) DO UPDATE SET status = excluded.status",
        params![
            h.uid(&d.cluster).as_str(),
            d.uid.as_str(),
            h.release,
            h.namespace,
            h.revision,
            h.chart,
            h.chart_version,
            h.app_version,
            h.status
        ],
    )
    .map_err(backend_error("write a Helm revision"))?;
    Ok(())
}

fn write_validation(tx: &rusqlite::Transaction<'_>, d: &Deployment) -> Result<()> {
    let Some(v) = &d.validation else {
        return Ok(());
    };
    let ValidationResult {
        coverage_pct,
        sast_findings,
        tests_passed,
        tests_failed,
        chaos_pass_rate,
    } = v;
    exec(
            tx,
        "INSERT INTO validation_results (uid, deployment_uid, coverage_pct, sast_findings, tests_passed, tests_failed, chaos_pass_rate)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (uid) DO UPDATE SET coverage_pct = excluded.coverage_pct, sast_findings = excluded.sast_findings,
           tests_passed = excluded.tests_passed, tests_failed = excluded.tests_failed, chaos_pass_rate = excluded.chaos_pass_rate",
        params![
            ValidationResult::uid(&d.uid).as_str(),
            d.uid.as_str(),
            coverage_pct,
            sast_findings,
            tests_passed,
            tests_failed,
            chaos_pass_rate
        ],
    )
    .map_err(backend_error("write a validation result"))?;
    Ok(())
}

/// Recomputes FOLLOWS links from the predecessor of the earliest new deployment of each chain.
fn relink_chains(tx: &rusqlite::Transaction<'_>, created: &[Deployment]) -> Result<()> {
    let failed = || backend_error("link deployments");
    for (service_uid, us) in chain::earliest_by_chain(created) {
        // From the instant of the deployment before the earliest new one (deployments of that
        // same instant are included too, which only re-confirms their links).
        let pred: Option<i64> = tx
            .prepare_cached(
                "SELECT max(started_at_us) FROM deployments WHERE service_uid = ?1 AND started_at_us < ?2",
            )
            .and_then(|mut stmt| stmt.query_row(params![service_uid, us], |row| row.get(0)))
            .map_err(failed())?;
        let from_us = pred.unwrap_or(us);
        let mut stmt = tx
            .prepare_cached(
                "SELECT started_at_us, uid, follows_uid FROM deployments
                 WHERE service_uid = ?1 AND started_at_us >= ?2",
            )
            .map_err(failed())?;
        let nodes = stmt
            .query_map(params![service_uid, from_us], |row| {
                Ok(ChainNode {
                    started_at_us: row.get(0)?,
                    uid: row.get(1)?,
                    follows: row.get(2)?,
                })
            })
            .map_err(failed())?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(failed())?;
        for (newer, older) in chain::relink(nodes) {
            exec(
                tx,
                "UPDATE deployments SET follows_uid = ?2 WHERE uid = ?1",
                params![newer, older],
            )
            .map_err(failed())?;
        }
    }
    Ok(())
}

fn record_batch(conn: &mut Connection, batch: Vec<Deployment>) -> Result<Vec<RecordOutcome>> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend_error("begin a transaction"))?;
    let mut stored = HashMap::new();
    for d in &batch {
        let uid = d.uid.as_str();
        if stored.contains_key(uid) {
            continue;
        }
        let payload: Option<String> = tx
            .query_row(
                "SELECT payload FROM deployments WHERE uid = ?1",
                [uid],
                |row| row.get(0),
            )
            .optional()
            .map_err(backend_error("read a deployment"))?;
        if let Some(payload) = payload {
            stored.insert(
                uid.to_owned(),
                crate::payload::decode::<Deployment>(uid, &payload)?,
            );
        }
    }
    let plan = plan::plan(stored, batch);
    for d in &plan.inserts {
        write_deployment(&tx, d, RecordKind::Created)?;
    }
    for d in &plan.updates {
        write_deployment(&tx, d, RecordKind::Updated)?;
    }
    relink_chains(&tx, &plan.inserts)?;
    let now = Utc::now();
    for d in plan.inserts.iter().chain(&plan.updates) {
        follow_up::enqueue(&tx, crate::FollowUpKind::Deployment, &d.uid, now)?;
    }
    tx.commit().map_err(backend_error("commit"))?;
    Ok(plan.outcomes)
}

#[async_trait]
impl GraphStore for SqliteStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn migrate(&self) -> Result<Vec<AppliedMigration>> {
        let known = self.migrations.clone();
        self.with_writer(move |conn| {
            let applied = applied_migrations(conn)?;
            let mut done = Vec::new();
            for m in migrations::pending(&known, &applied)? {
                // A migration that rebuilds a table runs with foreign keys off (they cannot be
                // switched inside a transaction), and is checked before it commits.
                let rebuild = m.body.lines().any(|l| l.trim() == FOREIGN_KEYS_OFF);
                if rebuild {
                    conn.execute_batch("PRAGMA foreign_keys = OFF")
                        .map_err(backend_error("prepare a migration"))?;
                }
                let applied = apply_migration(conn, m, rebuild);
                if rebuild {
                    conn.execute_batch("PRAGMA foreign_keys = ON")
                        .map_err(backend_error("finish a migration"))?;
                }
                let record = applied?;
                tracing::info!(migration = %record.name, "applied migration");
                done.push(record);
            }
            Ok(done)
        })
        .await
    }

    async fn ready(&self) -> Result<()> {
        let known = self.migrations.clone();
        self.with_reader(move |conn| {
            let applied = applied_migrations(conn)?;
            let pending = migrations::pending(&known, &applied)?.len();
            if pending > 0 {
                return Err(Error::NotMigrated { pending });
            }
            Ok(())
        })
        .await
    }

    async fn record_deployments(&self, batch: Vec<Deployment>) -> Result<Vec<RecordOutcome>> {
        self.with_writer(move |conn| record_batch(conn, batch.clone()))
            .await
    }

    async fn get_deployment(&self, uid: &Uid) -> Result<Option<StoredDeployment>> {
        let uid = uid.as_str().to_owned();
        self.with_reader(move |conn| {
            let row = conn
                .query_row(
                    "SELECT uid, payload, follows_uid FROM deployments WHERE uid = ?1",
                    [&uid],
                    stored_deployment,
                )
                .optional()
                .map_err(backend_error("read a deployment"))?;
            Ok(decode_rows(row.into_iter().collect())?.pop())
        })
        .await
    }

    async fn list_deployments(&self, filter: &DeploymentFilter) -> Result<Page<StoredDeployment>> {
        let filter = filter.clone();
        self.with_reader(move |conn| {
            let (sql, values) = list_query(&filter);
            let mut stmt = conn
                .prepare_cached(&sql)
                .map_err(backend_error("list deployments"))?;
            let rows = stmt
                .query_map(params_from_iter(values), stored_deployment)
                .map_err(backend_error("list deployments"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend_error("list deployments"))?;
            Ok(Page::from_rows(decode_rows(rows)?, filter.limit))
        })
        .await
    }

    async fn record_snapshot(&self, snapshot: &InfraSnapshot) -> Result<()> {
        let snapshot = snapshot.clone();
        self.with_writer(move |conn| write_snapshot(conn, &snapshot))
            .await
    }

    async fn get_snapshot(&self, uid: &Uid) -> Result<Option<InfraSnapshot>> {
        let uid = uid.as_str().to_owned();
        self.with_reader(move |conn| {
            read_snapshot(
                conn,
                "SELECT uid, payload FROM infra_snapshots WHERE uid = ?1",
                [&uid],
            )
        })
        .await
    }

    async fn snapshot_for_deployment(&self, uid: &Uid) -> Result<Option<InfraSnapshot>> {
        let uid = uid.as_str().to_owned();
        self.with_reader(move |conn| {
            read_snapshot(
                conn,
                "SELECT uid, payload FROM infra_snapshots WHERE deployment_uid = ?1
                 ORDER BY taken_at_us DESC LIMIT 1",
                [&uid],
            )
        })
        .await
    }

    async fn latest_snapshot(&self, cluster: Option<&str>) -> Result<Option<InfraSnapshot>> {
        let cluster = cluster.map(str::to_owned);
        self.with_reader(move |conn| match cluster {
            None => read_snapshot(
                conn,
                "SELECT uid, payload FROM infra_snapshots ORDER BY taken_at_us DESC LIMIT 1",
                [],
            ),
            Some(cluster) => read_snapshot(
                conn,
                "SELECT uid, payload FROM infra_snapshots WHERE cluster = ?1
                 ORDER BY taken_at_us DESC LIMIT 1",
                [cluster],
            ),
        })
        .await
    }

    async fn list_services(&self) -> Result<Vec<ServiceSummary>> {
        self.with_reader(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT s.uid, s.name, s.namespace, s.environment, count(d.uid), max(d.started_at_us),
                            s.owner, s.sla_tier, s.cluster
                     FROM services s LEFT JOIN deployments d ON d.service_uid = s.uid
                     GROUP BY s.uid ORDER BY s.name, s.environment, s.namespace, s.cluster",
                )
                .map_err(backend_error("list services"))?;
            let rows = stmt
                .query_map([], |row| {
                    let last: Option<i64> = row.get(5)?;
                    Ok(ServiceSummary {
                        uid: Uid::from_stored(row.get::<_, String>(0)?),
                        name: row.get(1)?,
                        namespace: row.get(2)?,
                        environment: row.get(3)?,
                        deployments: row.get::<_, i64>(4)?.try_into().unwrap_or_default(),
                        last_deployed_at: last.and_then(DateTime::from_timestamp_micros),
                        owner: row.get(6)?,
                        tier: row.get(7)?,
                        cluster: row.get(8)?,
                    })
                })
                .map_err(backend_error("list services"))?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend_error("list services"))
        })
        .await
    }

    async fn list_snapshots(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<InfraSnapshot>> {
        self.with_reader(move |conn| rca::list_snapshots(conn, since, until, limit))
            .await
    }

    async fn find_services(
        &self,
        name: &ServiceName,
        namespace: Option<&str>,
        environment: Option<&Environment>,
        cluster: Option<&Cluster>,
    ) -> Result<Vec<ServiceRef>> {
        let (name, namespace, environment, cluster) = (
            name.clone(),
            namespace.map(str::to_owned),
            environment.cloned(),
            cluster.cloned(),
        );
        self.with_reader(move |conn| {
            rca::find_services(
                conn,
                &name,
                namespace.as_deref(),
                environment.as_ref(),
                cluster.as_ref(),
            )
        })
        .await
    }

    async fn record_alerts(&self, alerts: Vec<Alert>) -> Result<Vec<(Alert, AlertOutcome)>> {
        self.with_writer(move |conn| rca::record_alerts(conn, alerts.clone()))
            .await
    }

    async fn get_alert(&self, uid: &Uid) -> Result<Option<Alert>> {
        let uid = uid.clone();
        self.with_reader(move |conn| rca::get_alert(conn, &uid))
            .await
    }

    async fn get_alerts(&self, uids: &[Uid]) -> Result<Vec<Alert>> {
        let uids = uids.to_vec();
        self.with_reader(move |conn| rca::get_alerts(conn, &uids))
            .await
    }

    async fn set_alert_onset(
        &self,
        uid: &Uid,
        onset: &deploygraph_model::MetricOnset,
    ) -> Result<bool> {
        let (uid, onset) = (uid.clone(), onset.clone());
        self.with_writer(move |conn| rca::set_alert_onset(conn, &uid, &onset))
            .await
    }

    async fn set_alert_service_metrics(
        &self,
        uid: &Uid,
        metrics: &std::collections::BTreeMap<String, deploygraph_model::ServiceMetric>,
    ) -> Result<bool> {
        let (uid, metrics) = (uid.clone(), metrics.clone());
        self.with_writer(move |conn| rca::set_alert_service_metrics(conn, &uid, &metrics))
            .await
    }

    async fn list_alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>> {
        let filter = filter.clone();
        self.with_reader(move |conn| rca::list_alerts(conn, &filter))
            .await
    }

    async fn alert_services(&self, alert: &Uid) -> Result<Vec<ServiceRef>> {
        let alert = alert.clone();
        self.with_reader(move |conn| rca::alert_services(conn, &alert))
            .await
    }

    async fn apply_topology(&self, update: &crate::TopologyUpdate) -> Result<()> {
        let update = update.clone();
        self.with_writer(move |conn| topology::apply_topology(conn, &update))
            .await
    }

    async fn service_topology(
        &self,
        service: &ServiceRef,
    ) -> Result<deploygraph_model::topology::ServiceTopologyView> {
        let service = service.clone();
        self.with_reader(move |conn| topology::service_topology(conn, &service))
            .await
    }

    async fn dependencies(&self, service: &ServiceRef) -> Result<Vec<ServiceRef>> {
        let service = service.clone();
        self.with_reader(move |conn| topology::dependencies(conn, &service))
            .await
    }

    async fn dependents(&self, service: &ServiceRef) -> Result<Vec<ServiceRef>> {
        let service = service.clone();
        self.with_reader(move |conn| topology::dependents(conn, &service))
            .await
    }

    async fn claim_follow_ups(&self, claim: crate::Claim<'_>) -> Result<Vec<crate::FollowUp>> {
        let subjects = claim.subjects.map(<[Uid]>::to_vec);
        let (limit, now, lease) = (claim.limit, claim.now, claim.lease);
        self.with_writer(move |conn| {
            follow_up::claim(
                conn,
                &crate::Claim {
                    subjects: subjects.as_deref(),
                    limit,
                    now,
                    lease,
                },
            )
        })
        .await
    }

    async fn finish_follow_up(
        &self,
        kind: crate::FollowUpKind,
        subject: &Uid,
        enqueued_at: DateTime<Utc>,
    ) -> Result<()> {
        let subject = subject.clone();
        self.with_writer(move |conn| follow_up::finish(conn, kind, &subject, enqueued_at))
            .await
    }

    async fn follow_up_stats(&self, subjects: Option<&[Uid]>) -> Result<crate::FollowUpStats> {
        let subjects = subjects.map(<[Uid]>::to_vec);
        self.with_reader(move |conn| follow_up::stats(conn, subjects.as_deref()))
            .await
    }

    async fn defer_revisit(
        &self,
        alert: &Uid,
        claimed: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let alert = alert.clone();
        self.with_writer(move |conn| follow_up::defer_revisit(conn, &alert, claimed, until, now))
            .await
    }

    async fn enqueue_revisits(&self, alerts: &[Uid], now: DateTime<Utc>) -> Result<Vec<Uid>> {
        if alerts.is_empty() {
            return Ok(Vec::new());
        }
        let alerts = alerts.to_vec();
        self.with_writer(move |conn| follow_up::enqueue_revisits(conn, &alerts, now))
            .await
    }

    async fn deployments_between(
        &self,
        services: &[Uid],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StoredDeployment>> {
        let services = services.to_vec();
        self.with_reader(move |conn| rca::deployments_between(conn, &services, from, to))
            .await
    }

    async fn service_history(
        &self,
        service: &Uid,
        before: DateTime<Utc>,
    ) -> Result<ServiceHistory> {
        let service = service.clone();
        self.with_reader(move |conn| rca::service_history(conn, &service, before))
            .await
    }

    async fn service_histories(
        &self,
        queries: &[(Uid, DateTime<Utc>)],
    ) -> Result<Vec<ServiceHistory>> {
        let queries = queries.to_vec();
        self.with_reader(move |conn| {
            queries
                .iter()
                .map(|(service, before)| rca::service_history(conn, service, *before))
                .collect()
        })
        .await
    }

    async fn key_history(
        &self,
        paths: &[String],
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<KeyHistory>> {
        let paths = paths.to_vec();
        self.with_reader(move |conn| key_history::key_history(conn, &paths, before, limit))
            .await
    }

    async fn record_changes(&self, batch: Vec<Change>) -> Result<Vec<ChangeOutcome>> {
        self.with_writer(move |conn| change::record_changes(conn, batch.clone()))
            .await
    }

    async fn get_change(&self, uid: &Uid) -> Result<Option<Change>> {
        let uid = uid.clone();
        self.with_reader(move |conn| change::get_change(conn, &uid))
            .await
    }

    async fn get_changes(&self, uids: &[Uid]) -> Result<Vec<Change>> {
        let uids = uids.to_vec();
        self.with_reader(move |conn| change::get_changes(conn, &uids))
            .await
    }

    async fn changes_between(
        &self,
        services: &[Uid],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Change>> {
        let services = services.to_vec();
        self.with_reader(move |conn| change::changes_between(conn, &services, from, to))
            .await
    }

    async fn list_changes(&self, filter: &ChangeFilter) -> Result<Vec<Change>> {
        let filter = filter.clone();
        self.with_reader(move |conn| change::list_changes(conn, &filter))
            .await
    }

    async fn record_verdict(&self, verdict: &SuspectVerdict) -> Result<Option<VerdictOutcome>> {
        let verdict = verdict.clone();
        self.with_writer(move |conn| verdict::record_verdict(conn, &verdict))
            .await
    }

    async fn verdicts(&self, alerts: &[Uid]) -> Result<Vec<SuspectVerdict>> {
        let alerts = alerts.to_vec();
        self.with_reader(move |conn| verdict::verdicts(conn, &alerts))
            .await
    }

    async fn replace_attribution(
        &self,
        alert: &Uid,
        triggers: &[Trigger],
        chaos: Option<(&Uid, &str)>,
    ) -> Result<()> {
        let (alert, triggers) = (alert.clone(), triggers.to_vec());
        let chaos = chaos.map(|(run, reason)| (run.clone(), reason.to_owned()));
        self.with_writer(move |conn| {
            rca::replace_attribution(
                conn,
                &alert,
                &triggers,
                chaos.as_ref().map(|(run, reason)| (run, reason.as_str())),
            )
        })
        .await
    }

    async fn attribution(&self, alert: &Uid) -> Result<StoredAttribution> {
        let alert = alert.clone();
        self.with_reader(move |conn| rca::attribution(conn, &alert))
            .await
    }

    async fn top_triggers(&self, alerts: &[Uid]) -> Result<Vec<Trigger>> {
        let alerts = alerts.to_vec();
        self.with_reader(move |conn| rca::top_triggers(conn, &alerts))
            .await
    }

    async fn triggered_by(&self, subjects: &[Uid]) -> Result<Vec<crate::SubjectTrigger>> {
        let subjects = subjects.to_vec();
        self.with_reader(move |conn| rca::triggered_by(conn, &subjects))
            .await
    }

    async fn get_deployments(&self, uids: &[Uid]) -> Result<Vec<StoredDeployment>> {
        let uids = uids.to_vec();
        self.with_reader(move |conn| rca::get_deployments(conn, &uids))
            .await
    }

    async fn record_chaos_run(&self, run: &ChaosRun) -> Result<()> {
        let run = run.clone();
        self.with_writer(move |conn| rca::record_chaos_run(conn, &run))
            .await
    }

    async fn get_chaos_run(&self, uid: &Uid) -> Result<Option<ChaosRun>> {
        let uid = uid.clone();
        self.with_reader(move |conn| rca::get_chaos_run(conn, &uid))
            .await
    }

    async fn list_chaos_runs(&self, filter: &ChaosFilter) -> Result<Vec<ChaosRun>> {
        let filter = filter.clone();
        self.with_reader(move |conn| rca::list_chaos_runs(conn, &filter))
            .await
    }

    async fn record_canary_analysis(&self, analysis: &NewCanaryAnalysis) -> Result<CanaryOutcome> {
        let analysis = analysis.clone();
        self.with_writer(move |conn| canary::record_canary_analysis(conn, &analysis))
            .await
    }

    async fn canary_analyses(&self, deployments: &[Uid]) -> Result<Vec<CanaryAnalysis>> {
        let deployments = deployments.to_vec();
        self.with_reader(move |conn| canary::canary_analyses(conn, &deployments))
            .await
    }

    async fn list_canary_analyses(&self, filter: &CanaryFilter) -> Result<Vec<CanaryAnalysis>> {
        let filter = filter.clone();
        self.with_reader(move |conn| canary::list_canary_analyses(conn, &filter))
            .await
    }

    async fn record_release_summary(
        &self,
        summary: &deploygraph_model::NewReleaseSummary,
    ) -> Result<crate::types::SummaryOutcome> {
        let summary = summary.clone();
        self.with_writer(move |conn| summary::record_release_summary(conn, &summary))
            .await
    }

    async fn release_summaries(
        &self,
        filter: &crate::types::SummaryFilter,
    ) -> Result<Vec<deploygraph_model::ReleaseSummary>> {
        let filter = filter.clone();
        self.with_reader(move |conn| summary::release_summaries(conn, &filter))
            .await
    }

    async fn record_rollback(
        &self,
        new: &deploygraph_model::NewRollback,
    ) -> Result<crate::types::RollbackOutcome> {
        let new = new.clone();
        self.with_writer(move |conn| rollback::record_rollback(conn, &new))
            .await
    }

    async fn rollbacks(&self, deployments: &[Uid]) -> Result<Vec<deploygraph_model::Rollback>> {
        let deployments = deployments.to_vec();
        self.with_reader(move |conn| rollback::rollbacks(conn, &deployments))
            .await
    }

    async fn list_rollbacks(
        &self,
        filter: &crate::types::RollbackFilter,
    ) -> Result<Vec<deploygraph_model::Rollback>> {
        let filter = filter.clone();
        self.with_reader(move |conn| rollback::list_rollbacks(conn, &filter))
            .await
    }

    async fn certificates_securing(
        &self,
        services: &[Uid],
    ) -> Result<Vec<crate::types::SecuredCertificate>> {
        let services = services.to_vec();
        self.with_reader(move |conn| gate::certificates_securing(conn, &services))
            .await
    }

    async fn record_gate_override(
        &self,
        gate_override: &deploygraph_model::GateOverride,
    ) -> Result<bool> {
        let o = gate_override.clone();
        self.with_writer(move |conn| gate::record_gate_override(conn, &o))
            .await
    }

    async fn link_gate_overrides(
        &self,
        deployment: &Uid,
        (kind, namespace, name): (&str, &str, &str),
        template_hash: &str,
        started_at: DateTime<Utc>,
    ) -> Result<usize> {
        let deployment = deployment.clone();
        let (kind, namespace, name) = (kind.to_owned(), namespace.to_owned(), name.to_owned());
        let template_hash = template_hash.to_owned();
        self.with_writer(move |conn| {
            gate::link_gate_overrides(
                conn,
                &deployment,
                (&kind, &namespace, &name),
                &template_hash,
                started_at,
            )
        })
        .await
    }

    async fn list_gate_overrides(
        &self,
        filter: &crate::types::GateOverrideFilter,
    ) -> Result<Vec<deploygraph_model::GateOverride>> {
        let filter = filter.clone();
        self.with_reader(move |conn| gate::list_gate_overrides(conn, &filter))
            .await
    }
}

fn write_snapshot(conn: &mut Connection, snapshot: &InfraSnapshot) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend_error("begin a transaction"))?;
    let exists: Option<i64> = tx
        .prepare_cached("SELECT 1 FROM infra_snapshots WHERE uid = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([snapshot.uid.as_str()], |row| row.get(0))
                .optional()
        })
        .map_err(backend_error("read a snapshot"))?;
    if exists.is_some() {
        return Ok(());
    }
    let payload = serde_json::to_string(snapshot).map_err(|e| Error::Backend {
        backend: BACKEND,
        operation: "encode a snapshot",
        source: Box::new(e),
    })?;
    exec(
        &tx,
        "INSERT INTO infra_snapshots (uid, taken_at, taken_at_us, verdict, cluster, deployment_uid, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            snapshot.uid.as_str(),
            format_time(&snapshot.taken_at),
            snapshot.taken_at.timestamp_micros(),
            snapshot.verdict.as_str(),
            snapshot.cluster,
            snapshot.deployment_uid.as_ref().map(Uid::as_str),
            payload
        ],
    )
    .map_err(backend_error("write a snapshot"))?;
    for check in &snapshot.checks {
        let check_uid = check.uid(&snapshot.uid);
        exec(
            &tx,
            "INSERT INTO checks (uid, snapshot_uid, kind, target, status, detail, latency_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (uid) DO NOTHING",
            params![
                check_uid.as_str(),
                snapshot.uid.as_str(),
                check.kind,
                check.target,
                check.status.as_str(),
                check.detail,
                i64::try_from(check.latency_ms).unwrap_or(i64::MAX)
            ],
        )
        .map_err(backend_error("write a check"))?;
        for (position, cert) in check.certificates.iter().enumerate() {
            let sans = serde_json::to_string(&cert.sans).unwrap_or_default();
            exec(
                &tx,
                "INSERT INTO certificates (uid, sha256, subject, issuer, sans, not_before, not_after, is_ca)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (uid) DO NOTHING",
                params![
                    cert.uid().as_str(),
                    cert.sha256,
                    cert.subject,
                    cert.issuer,
                    sans,
                    format_time(&cert.not_before),
                    format_time(&cert.not_after),
                    cert.is_ca
                ],
            )
            .map_err(backend_error("write a certificate"))?;
            exec(
                &tx,
                "INSERT INTO check_certificates (check_uid, certificate_uid, position) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
                params![check_uid.as_str(), cert.uid().as_str(), i64::try_from(position).unwrap_or(0)],
            )
            .map_err(backend_error("link a certificate"))?;
        }
    }
    // SECURES, to the Services known under that name and namespace (any environment).
    for (certificate, namespace, service, via) in snapshot.secures() {
        exec(
            &tx,
            "INSERT INTO certificate_secures (certificate_uid, service_uid, via, snapshot_uid, seen_at_us)
             SELECT ?1, uid, ?4, ?5, ?6 FROM services WHERE name = ?2 AND namespace = ?3
             ON CONFLICT (certificate_uid, service_uid, via) DO UPDATE SET
               snapshot_uid = excluded.snapshot_uid, seen_at_us = excluded.seen_at_us
             WHERE excluded.seen_at_us >= certificate_secures.seen_at_us",
            params![
                certificate.as_str(),
                service,
                namespace,
                via,
                snapshot.uid.as_str(),
                snapshot.taken_at.timestamp_micros()
            ],
        )
        .map_err(backend_error("link a certificate to its services"))?;
    }
    tx.commit().map_err(backend_error("commit"))
}

fn read_snapshot(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<InfraSnapshot>> {
    let row: Option<(String, String)> = conn
        .prepare_cached(sql)
        .and_then(|mut stmt| {
            stmt.query_row(params, |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(backend_error("read a snapshot"))?;
    row.map(|(uid, payload)| {
        serde_json::from_str(&payload).map_err(|e| Error::Corrupt {
            uid,
            source: Box::new(e),
        })
    })
    .transpose()
}

/// The listing query: fixed clauses chosen by which filters are set, values bound as parameters.
fn list_query(filter: &DeploymentFilter) -> (String, Vec<Value>) {
    let mut clauses: Vec<&str> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Some(service) = &filter.service {
        clauses.push("service = ?");
        values.push(Value::Text(service.as_str().to_owned()));
    }
    if let Some(environment) = &filter.environment {
        clauses.push("environment = ?");
        values.push(Value::Text(environment.as_str().to_owned()));
    }
    if let Some(cluster) = &filter.cluster {
        clauses.push("cluster = ?");
        values.push(Value::Text(cluster.as_str().to_owned()));
    }
    if let Some(status) = filter.status {
        clauses.push("status = ?");
        values.push(Value::Text(status.as_str().to_owned()));
    }
    if let Some(since) = filter.since {
        clauses.push("started_at_us >= ?");
        values.push(Value::Integer(since.timestamp_micros()));
    }
    if let Some(until) = filter.until {
        clauses.push("started_at_us <= ?");
        values.push(Value::Integer(until.timestamp_micros()));
    }
    if let Some(cursor) = &filter.cursor {
        clauses.push("(started_at_us < ? OR (started_at_us = ? AND uid < ?))");
        values.push(Value::Integer(cursor.started_at_us));
        values.push(Value::Integer(cursor.started_at_us));
        values.push(Value::Text(cursor.uid.clone()));
    }
    let filter_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    values.push(Value::Integer(
        i64::try_from(filter.limit)
            .unwrap_or(i64::MAX)
            .saturating_add(1),
    ));
    (
        format!(
            "SELECT uid, payload, follows_uid FROM deployments {filter_sql}
             ORDER BY started_at_us DESC, uid DESC LIMIT ?"
        ),
        values,
    )
}
