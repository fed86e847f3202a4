//! Gate overrides in the embedded store: one `gate_overrides` row per override, its
//! `deployment_uid` the ADMITTED link (the payload keeps the rest of the facts).

use super::{backend_error, exec};
use crate::error::Result;
use crate::payload::{decode, encode};
use crate::types::GateOverrideFilter;
use chrono::{DateTime, Duration, Utc};
use deploygraph_model::{GateOverride, Uid};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};

pub(super) fn record_gate_override(conn: &mut Connection, o: &GateOverride) -> Result<bool> {
    let mut facts = o.clone();
    facts.deployment_uid = None;
    let payload = encode("sqlite", &facts, "encode a gate override")?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend_error("begin a transaction"))?;
    let stored: Option<i64> = tx
        .prepare_cached("SELECT 1 FROM gate_overrides WHERE uid = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([o.uid.as_str()], |row| row.get(0))
                .optional()
        })
        .map_err(backend_error("record a gate override"))?;
    if stored.is_some() {
        return Ok(false);
    }
    exec(
        &tx,
        "INSERT INTO gate_overrides (uid, at_us, kind, namespace, name, template_hash,
             deployment_uid, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7)",
        params![
            o.uid.as_str(),
            o.at.timestamp_micros(),
            o.kind,
            o.namespace,
            o.name,
            o.template_hash,
            payload
        ],
    )
    .map_err(backend_error("record a gate override"))?;
    tx.commit()
        .map_err(backend_error("commit a gate override"))?;
    Ok(true)
}

pub(super) fn link_gate_overrides(
    conn: &mut Connection,
    deployment: &Uid,
    (kind, namespace, name): (&str, &str, &str),
    template_hash: &str,
    started_at: DateTime<Utc>,
) -> Result<usize> {
    let from = (started_at - Duration::hours(1)).timestamp_micros();
    let to = (started_at + Duration::minutes(1)).timestamp_micros();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend_error("begin a transaction"))?;
    let linked = tx
        .prepare_cached(
            "UPDATE gate_overrides SET deployment_uid = ?1
             WHERE deployment_uid IS NULL AND kind = ?2 AND namespace = ?3 AND name = ?4
               AND at_us BETWEEN ?5 AND ?6
               AND (template_hash IS NULL OR template_hash = ?7)
               AND EXISTS (SELECT 1 FROM deployments WHERE uid = ?1)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                deployment.as_str(),
                kind,
                namespace,
                name,
                from,
                to,
                template_hash
            ])
        })
        .map_err(backend_error("link gate overrides"))?;
    tx.commit()
        .map_err(backend_error("commit gate override links"))?;
    Ok(linked)
}

pub(super) fn list_gate_overrides(
    conn: &Connection,
    filter: &GateOverrideFilter,
) -> Result<Vec<GateOverride>> {
    // Each clause is a fixed string of this function; every value is a parameter.
    let mut clauses: Vec<&str> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Some(namespace) = &filter.namespace {
        clauses.push("namespace = ?");
        values.push(Value::Text(namespace.clone()));
    }
    if let Some(name) = &filter.name {
        clauses.push("name = ?");
        values.push(Value::Text(name.clone()));
    }
    if let Some(deployment) = &filter.deployment {
        clauses.push("deployment_uid = ?");
        values.push(Value::Text(deployment.as_str().to_owned()));
    }
    if let Some(since) = filter.since {
        clauses.push("at_us >= ?");
        values.push(Value::Integer(since.timestamp_micros()));
    }
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    values.push(Value::Integer(
        i64::try_from(filter.limit).unwrap_or(i64::MAX),
    ));
    let sql = format!(
        "SELECT uid, payload, deployment_uid FROM gate_overrides {where_sql}
         ORDER BY at_us DESC, uid DESC LIMIT ?"
    );
    let rows: Vec<(String, String, Option<String>)> = conn
        .prepare(&sql)
        .and_then(|mut stmt| {
            stmt.query_map(params_from_iter(values), |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?
            .collect()
        })
        .map_err(backend_error("list gate overrides"))?;
    rows.into_iter()
        .map(|(uid, payload, deployment)| {
            let mut o: GateOverride = decode(&uid, &payload)?;
            o.deployment_uid = deployment.map(Uid::from_stored);
            Ok(o)
        })
        .collect()
}

/// A `certificate_secures` row: the certificate, the Service, the route and its sighting.
type SecuresRow = (
    (String, String, String, String, String, String, bool),
    (String, super::rca::ServiceRow),
    (String, String, i64),
);

pub(super) fn certificates_securing(
    conn: &Connection,
    services: &[Uid],
) -> Result<Vec<crate::types::SecuredCertificate>> {
    use deploygraph_model::CertificateRecord;
    let list = super::rca::uid_list(services)?;
    let rows: Vec<SecuresRow> = conn
        .prepare_cached(
            "SELECT c.sha256, c.subject, c.issuer, c.sans, c.not_before, c.not_after, c.is_ca,
                    s.uid, s.name, s.namespace, s.environment, s.cluster,
                    cs.via, cs.snapshot_uid, cs.seen_at_us
             FROM certificate_secures cs
             JOIN certificates c ON c.uid = cs.certificate_uid
             JOIN services s ON s.uid = cs.service_uid
             WHERE cs.service_uid IN (SELECT value FROM json_each(?1))",
        )
        .and_then(|mut stmt| {
            stmt.query_map([list], |row| {
                Ok((
                    (
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                        row.get(6)?,
                    ),
                    (
                        row.get(7)?,
                        (row.get(8)?, row.get(9)?, row.get(10)?, row.get(11)?),
                    ),
                    (row.get(12)?, row.get(13)?, row.get(14)?),
                ))
            })?
            .collect()
        })
        .map_err(backend_error("read certificates securing services"))?;
    let mut out = Vec::with_capacity(rows.len());
    for (certificate, service, (via, snapshot, seen)) in rows {
        let (sha256, subject, issuer, sans, not_before, not_after, is_ca) = certificate;
        let (uid, service) = service;
        let corrupt = |e: String| crate::error::Error::Corrupt {
            uid: uid.clone(),
            source: e.into(),
        };
        let time = |t: &str| deploygraph_model::parse_time(t).map_err(|e| corrupt(e.to_string()));
        out.push(crate::types::SecuredCertificate {
            certificate: CertificateRecord {
                sha256,
                subject,
                issuer,
                sans: serde_json::from_str(&sans).map_err(|e| corrupt(e.to_string()))?,
                not_before: time(&not_before)?,
                not_after: time(&not_after)?,
                is_ca,
            },
            service: super::rca::parse_ref(service).map_err(|e| corrupt(e.to_string()))?,
            via,
            snapshot_uid: Uid::from_stored(snapshot),
            seen_at: DateTime::from_timestamp_micros(seen).unwrap_or_default(),
        });
    }
    Ok(crate::types::SecuredCertificate::current(out))
}
