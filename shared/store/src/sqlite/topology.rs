//! Service topology in the embedded store: `service_dependencies` holds one row per
//! `DEPENDS_ON` edge and source, with the time that source last asserted it; `services` holds
//! each service's owner and SLA tier.

use super::rca::{ensure_service, service_ref, to_refs};
use super::{backend_error, exec};
use crate::error::{Error, Result};
use crate::types::{TopologyMode, TopologyUpdate};
use chrono::DateTime;
use deploygraph_model::ServiceRef;
use deploygraph_model::topology::{DependencyEdge, EdgeSource, ServiceTopologyView};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// A dependency row: the service depended on, the source, `last_seen_at` in microseconds.
type SightingRow = (super::rca::ServiceRow, String, i64);

pub(super) fn apply_topology(conn: &mut Connection, update: &TopologyUpdate) -> Result<()> {
    let failed = || backend_error("write the topology");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend_error("begin a transaction"))?;
    let source = update.source.as_str();
    let seen_at = update.seen_at.timestamp_micros();
    for entry in update.normalized() {
        let uid = entry.service.uid();
        ensure_service(&tx, &entry.service).map_err(failed())?;
        exec(
            &tx,
            "UPDATE services SET owner = coalesce(?2, owner), sla_tier = coalesce(?3, sla_tier)
             WHERE uid = ?1",
            params![uid.as_str(), entry.owner, entry.tier],
        )
        .map_err(failed())?;
        if update.mode == TopologyMode::Replace {
            let keep: Vec<String> = entry
                .depends_on
                .iter()
                .map(|d| d.uid().as_str().to_owned())
                .collect();
            exec(
                &tx,
                "DELETE FROM service_dependencies
                 WHERE service_uid = ?1 AND source = ?2
                   AND depends_on_uid NOT IN (SELECT value FROM json_each(?3))",
                params![
                    uid.as_str(),
                    source,
                    serde_json::to_string(&keep).unwrap_or_else(|_| "[]".into())
                ],
            )
            .map_err(failed())?;
        }
        for dependency in &entry.depends_on {
            ensure_service(&tx, dependency).map_err(failed())?;
            exec(
                &tx,
                "INSERT INTO service_dependencies (service_uid, depends_on_uid, source, last_seen_at_us)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (service_uid, depends_on_uid, source)
                 DO UPDATE SET last_seen_at_us = max(last_seen_at_us, excluded.last_seen_at_us)",
                params![uid.as_str(), dependency.uid().as_str(), source, seen_at],
            )
            .map_err(failed())?;
        }
    }
    tx.commit().map_err(backend_error("write the topology"))
}

pub(super) fn service_topology(
    conn: &Connection,
    service: &ServiceRef,
) -> Result<ServiceTopologyView> {
    let failed = || backend_error("read a service's topology");
    let uid = service.uid();
    let info: Option<(Option<String>, Option<String>)> = conn
        .prepare_cached("SELECT owner, sla_tier FROM services WHERE uid = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([uid.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(failed())?;
    let (owner, tier) = info.unwrap_or_default();
    let rows: Vec<SightingRow> = conn
        .prepare_cached(
            "SELECT s.name, s.namespace, s.environment, s.cluster, d.source, d.last_seen_at_us
             FROM service_dependencies d JOIN services s ON s.uid = d.depends_on_uid
             WHERE d.service_uid = ?1
             ORDER BY s.name, s.environment, s.namespace, d.source",
        )
        .and_then(|mut stmt| {
            stmt.query_map([uid.as_str()], |row| {
                Ok((service_ref(row)?, row.get(4)?, row.get(5)?))
            })?
            .collect()
        })
        .map_err(failed())?;
    let mut sightings = Vec::with_capacity(rows.len());
    for (reference, source, last_seen_us) in rows {
        let Some(dependency) = to_refs(vec![reference]).pop() else {
            continue;
        };
        let corrupt = |reason: String| Error::Corrupt {
            uid: uid.as_str().to_owned(),
            source: reason.into(),
        };
        let source = EdgeSource::parse(&source).map_err(|e| corrupt(e.to_string()))?;
        let seen = DateTime::from_timestamp_micros(last_seen_us)
            .ok_or_else(|| corrupt(format!("last_seen_at_us {last_seen_us} is out of range")))?;
        sightings.push((dependency, source, seen));
    }
    Ok(ServiceTopologyView {
        service: service.clone(),
        owner,
        tier,
        depends_on: DependencyEdge::group(sightings),
    })
}

pub(super) fn dependencies(conn: &Connection, service: &ServiceRef) -> Result<Vec<ServiceRef>> {
    let rows = conn
        .prepare_cached(
            "SELECT DISTINCT s.name, s.namespace, s.environment, s.cluster FROM service_dependencies d
             JOIN services s ON s.uid = d.depends_on_uid WHERE d.service_uid = ?1
             ORDER BY s.name, s.environment, s.namespace",
        )
        .and_then(|mut stmt| {
            stmt.query_map([service.uid().as_str()], service_ref)?
                .collect()
        })
        .map_err(backend_error("read dependencies"))?;
    Ok(to_refs(rows))
}

pub(super) fn dependents(conn: &Connection, service: &ServiceRef) -> Result<Vec<ServiceRef>> {
    let rows = conn
        .prepare_cached(
            "SELECT DISTINCT s.name, s.namespace, s.environment, s.cluster FROM service_dependencies d
             JOIN services s ON s.uid = d.service_uid WHERE d.depends_on_uid = ?1
             ORDER BY s.name, s.environment, s.namespace",
        )
        .and_then(|mut stmt| {
            stmt.query_map([service.uid().as_str()], service_ref)?
                .collect()
        })
        .map_err(backend_error("read dependents"))?;
    Ok(to_refs(rows))
}
