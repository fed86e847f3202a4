//! Read-only user Cypher against Neo4j: runs a query someone typed, bounded in what it may do
//! (read), how long it may run and how many rows it may return, and renders the rows as JSON.
//!
//! The protection is the database's, not a filter on the query text:
//!
//! - **Read access.** The query runs as an auto-commit transaction whose Bolt `RUN` carries
//!   `mode: "r"` ([`neo4rs::Graph::execute_read`]); Neo4j refuses any write in it (`CREATE`,
//!   `MERGE`, `SET`, `DELETE`, schema changes, write procedures) with
//!   `Neo.ClientError.Statement.AccessMode`, reported as [`Error::QueryRefused`]. neo4rs 0.9's
//!   explicit transactions cannot carry the mode (`Graph::start_txn` always begins a write
//!   transaction), hence auto-commit.
//! - **Time limit.** The same `RUN` carries the Bolt `tx_timeout` (milliseconds), so Neo4j
//!   stops the query itself when it runs too long ([`Error::QueryTimedOut`]). A client-side
//!   timeout a little longer than the limit is only a backstop for a server that does not answer.
//! - **Row cap.** Rows are read as a stream, in batches of the connection's fetch size; after
//!   `row_cap` rows one more is asked for to tell whether the result was truncated, and the rest
//!   is never fetched. The stream is dropped; its transaction stays open on the idle connection
//!   until the pool resets the connection for its next use or the time limit ends it.
//!
//! Column order: neo4rs 0.9 keeps the `RUN` response's field list private and hands each record
//! over as a hash map, so the `RETURN` order cannot be recovered. Columns are the first row's
//! keys sorted by name, and a result without rows has no columns.

use crate::error::{Error, Result};
use base64::Engine as _;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat};
use neo4rs::{
    BoltBoolean, BoltFloat, BoltInteger, BoltList, BoltMap, BoltNode, BoltNull, BoltPath,
    BoltString, BoltType, BoltUnboundedRelation, Graph, Neo4jClientErrorKind, Neo4jErrorKind,
};
use serde::Deserialize as _;
use serde::Serialize;
use serde::de::IntoDeserializer as _;
use serde_json::{Map, Number, Value};
use std::collections::HashMap;
use std::time::Duration;

const BACKEND: &str = "neo4j";

/// How long the client waits past the request's limit before giving up on its own. Neo4j checks
/// transaction deadlines periodically (`db.transaction.monitor.check.interval`, 2 s by default),
/// so its own timeout error can arrive a little after the limit.
const CLIENT_GRACE: Duration = Duration::from_secs(5);

/// A read-only query to run.
#[derive(Debug, Clone)]
pub struct CypherRequest {
    /// The Cypher text.
    pub query: String,
    /// Values for its `$parameters`.
    pub params: Map<String, Value>,
    /// How long the database lets it run (at least 1 ms is sent).
    pub timeout: Duration,
    /// At most this many rows are returned.
    pub row_cap: usize,
}

/// What a query returned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CypherResult {
    /// Column names; each row has one value per column, in this order. Sorted by name (see the
    /// module documentation); empty when there are no rows.
    pub columns: Vec<String>,
    /// The rows, at most the request's `row_cap`.
    pub rows: Vec<Vec<Value>>,
    /// More rows existed than `row_cap`.
    pub truncated: bool,
}

/// Runs `request` in a read-only transaction with a server-side time limit and returns at most
/// `row_cap` rows as JSON.
///
/// Values map to JSON as: null, booleans, integers, strings, lists and maps as themselves;
/// floats as numbers (NaN and infinities as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`);
/// nodes as `{"id", "labels", "properties"}`; relationships as
/// `{"id", "type", "start", "end", "properties"}` (`start`/`end` are node ids); paths as the list
/// `[node, relationship, node, …]` in traversal order; datetimes with an offset or zone as
/// RFC 3339 strings (a zone id is resolved to its offset); local datetimes, dates and times as
/// ISO 8601 strings; durations as ISO 8601 durations (`P1Y2M3DT4H5M6.5S`); points as
/// `{"srid", "x", "y"[, "z"]}`; byte arrays as base64 strings.
///
/// # Errors
/// [`Error::QueryRefused`] when the database refuses the query (syntax or type error, a write,
/// a missing parameter) or a parameter cannot be sent (an integer beyond the 64-bit range);
/// [`Error::QueryTimedOut`] when it runs past `timeout`; [`Error::Unavailable`] when Neo4j
/// cannot be reached or fails transiently; [`Error::Backend`] otherwise.
#[tracing::instrument(
    skip_all,
    fields(cypher.row_cap = request.row_cap, cypher.timeout_ms = request.timeout.as_millis())
)]
pub async fn run_read_only(graph: &Graph, request: &CypherRequest) -> Result<CypherResult> {
    let mut params = BoltMap::with_capacity(request.params.len());
    for (name, value) in &request.params {
        params.put(BoltString::new(name), to_bolt(name, value)?);
    }
    let query = neo4rs::query(&request.query)
        .with_params(params)
        .extra("tx_timeout", tx_timeout_millis(request.timeout));
    let run = async {
        // execute_read adds `mode: "r"` to the RUN of an auto-commit transaction.
        let mut stream = graph
            .execute_read(query)
            .await
            .map_err(|e| classify(e, request.timeout))?;
        let mut columns: Option<Vec<String>> = None;
        let mut rows = Vec::new();
        let mut truncated = false;
        while let Some(row) = stream
            .next()
            .await
            .map_err(|e| classify(e, request.timeout))?
        {
            if rows.len() >= request.row_cap {
                truncated = true;
                break;
            }
            let columns = columns.get_or_insert_with(|| {
                let mut keys: Vec<String> =
                    row.keys().into_iter().map(|k| k.value.clone()).collect();
                keys.sort();
                keys
            });
            let values = columns
                .iter()
                .map(|column| row.get::<BoltType>(column).map(|value| to_json(&value)))
                .collect::<Result<Vec<Value>, _>>()
                .map_err(|e| Error::Backend {
                    backend: BACKEND,
                    operation: "decode a query result",
                    source: Box::new(e),
                })?;
            rows.push(values);
        }
        Ok(CypherResult {
            columns: columns.unwrap_or_default(),
            rows,
            truncated,
        })
    };
    match tokio::time::timeout(request.timeout.saturating_add(CLIENT_GRACE), run).await {
        Ok(result) => result,
        Err(_) => Err(Error::QueryTimedOut {
            limit: request.timeout,
            source: None,
        }),
    }
}

/// Bolt's `tx_timeout` in whole milliseconds, rounded up; 0 would mean "the server's default".
fn tx_timeout_millis(timeout: Duration) -> i64 {
    let millis = timeout.as_nanos().div_ceil(1_000_000).max(1);
    i64::try_from(millis).unwrap_or(i64::MAX)
}

/// Maps a neo4rs error: refusals of the query to [`Error::QueryRefused`], the time limit to
/// [`Error::QueryTimedOut`], outages to [`Error::Unavailable`].
fn classify(e: neo4rs::Error, limit: Duration) -> Error {
    use neo4rs::Error as E;
    let unavailable = match &e {
        E::IOError { .. }
        | E::ConnectionError
        | E::ConnectionTimedOut
        | E::IncompleteBoltExchange
        | E::ServerUnavailableError(_)
        | E::RoutingTableError(_)
        | E::RoutingTableRefreshFailed(_) => true,
        E::Neo4j(err) => {
            let code = err.code();
            // Neo4j 5 reports an exceeded `tx_timeout` as
            // Neo.ClientError.Transaction.TransactionTimedOutClientConfiguration; older servers
            // and the server-wide limit use TransactionTimedOut.
            if code.contains("TransactionTimedOut") {
                return Error::QueryTimedOut {
                    limit,
                    source: Some(Box::new(e)),
                };
            }
            if code == "Neo.ClientError.Statement.AccessMode" {
                return Error::QueryRefused {
                    reason: format!(
                        "the database refused a write in read-only mode: {} ({code})",
                        err.message()
                    ),
                    code: Some(code.to_owned()),
                };
            }
            match err.kind() {
                Neo4jErrorKind::Transient
                | Neo4jErrorKind::Client(Neo4jClientErrorKind::SessionExpired) => true,
                // Statement, Procedure, Schema, Transaction…: what the query asked for.
                Neo4jErrorKind::Client(Neo4jClientErrorKind::Other) => {
                    return Error::QueryRefused {
                        reason: format!("{} ({code})", err.message()),
                        code: Some(code.to_owned()),
                    };
                }
                // Authentication, protocol violations, unknown databases and database errors
                // are this service's problem, not the query's.
                _ => false,
            }
        }
        _ => false,
    };
    if unavailable {
        Error::Unavailable {
            backend: BACKEND,
            source: Box::new(e),
        }
    } else {
        Error::Backend {
            backend: BACKEND,
            operation: "run a read-only query",
            source: Box::new(e),
        }
    }
}

/// A JSON parameter as a Bolt value.
fn to_bolt(name: &str, value: &Value) -> Result<BoltType> {
    Ok(match value {
        Value::Null => BoltType::Null(BoltNull),
        Value::Bool(b) => BoltType::Boolean(BoltBoolean::new(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                BoltType::Integer(BoltInteger::new(i))
            } else if n.is_u64() {
                return Err(Error::QueryRefused {
                    code: None,
                    reason: format!(
                        "parameter {name:?}: {n} is beyond the largest integer Neo4j stores ({})",
                        i64::MAX
                    ),
                });
            } else {
                BoltType::Float(BoltFloat::new(n.as_f64().unwrap_or(f64::NAN)))
            }
        }
        Value::String(s) => BoltType::String(BoltString::new(s)),
        Value::Array(items) => BoltType::List(BoltList {
            value: items
                .iter()
                .map(|item| to_bolt(name, item))
                .collect::<Result<_>>()?,
        }),
        Value::Object(entries) => BoltType::Map(BoltMap {
            value: entries
                .iter()
                .map(|(k, v)| Ok((BoltString::new(k), to_bolt(name, v)?)))
                .collect::<Result<HashMap<_, _>>>()?,
        }),
    })
}

/// A Bolt value as JSON (see [`run_read_only`] for the mapping).
fn to_json(value: &BoltType) -> Value {
    match value {
        BoltType::Null(_) => Value::Null,
        BoltType::Boolean(b) => Value::Bool(b.value),
        BoltType::Integer(i) => Value::from(i.value),
        BoltType::Float(f) => float(f.value),
        BoltType::String(s) => Value::String(s.value.clone()),
        BoltType::Bytes(b) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(&b.value))
        }
        BoltType::List(list) => Value::Array(list.value.iter().map(to_json).collect()),
        BoltType::Map(map) => properties(map),
        BoltType::Node(node) => node_json(node),
        BoltType::Relation(rel) => relationship_json(
            rel.id.value,
            &rel.typ.value,
            rel.start_node_id.value,
            rel.end_node_id.value,
            &rel.properties,
        ),
        BoltType::UnboundedRelation(rel) => {
            let mut json = Map::new();
            json.insert("id".into(), Value::from(rel.id.value));
            json.insert("type".into(), Value::String(rel.typ.value.clone()));
            json.insert("properties".into(), properties(&rel.properties));
            Value::Object(json)
        }
        BoltType::Path(path) => path_json(path),
        BoltType::Point2D(p) => point(p.sr_id.value, &[("x", p.x.value), ("y", p.y.value)]),
        BoltType::Point3D(p) => point(
            p.sr_id.value,
            &[("x", p.x.value), ("y", p.y.value), ("z", p.z.value)],
        ),
        BoltType::Duration(_) => {
            // BoltDuration's fields are private; a 4-tuple deserializes them in Bolt order.
            match <(i64, i64, i64, i64)>::deserialize(value.into_deserializer()) {
                Ok((months, days, seconds, nanos)) => {
                    Value::String(iso_duration(months, days, seconds, nanos))
                }
                Err(_) => Value::Null,
            }
        }
        BoltType::Date(d) => NaiveDate::try_from(d).map_or(Value::Null, |d| {
            Value::String(d.format("%Y-%m-%d").to_string())
        }),
        BoltType::Time(t) => {
            let (time, offset): (NaiveTime, FixedOffset) = t.into();
            Value::String(format!("{}{offset}", local_time(time)))
        }
        BoltType::LocalTime(t) => Value::String(local_time(NaiveTime::from(t))),
        BoltType::DateTime(dt) => DateTime::<FixedOffset>::try_from(dt)
            .map_or(Value::Null, |dt| Value::String(rfc3339(dt))),
        BoltType::LocalDateTime(dt) => NaiveDateTime::try_from(dt).map_or(Value::Null, |dt| {
            Value::String(format!(
                "{}T{}",
                dt.date().format("%Y-%m-%d"),
                local_time(dt.time())
            ))
        }),
        BoltType::DateTimeZoneId(dt) => match DateTime::<FixedOffset>::try_from(dt) {
            Ok(resolved) => Value::String(rfc3339(resolved)),
            // A local time the zone skips or repeats (DST): keep the local time and the zone.
            Err(_) => NaiveDateTime::try_from(dt).map_or(Value::Null, |local| {
                Value::String(format!(
                    "{}T{}[{}]",
                    local.date().format("%Y-%m-%d"),
                    local_time(local.time()),
                    dt.tz_id()
                ))
            }),
        },
    }
}

fn float(f: f64) -> Value {
    match Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None if f.is_nan() => Value::String("NaN".into()),
        None if f > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

fn properties(map: &BoltMap) -> Value {
    Value::Object(
        map.value
            .iter()
            .map(|(k, v)| (k.value.clone(), to_json(v)))
            .collect(),
    )
}

fn node_json(node: &BoltNode) -> Value {
    let mut json = Map::new();
    json.insert("id".into(), Value::from(node.id.value));
    json.insert(
        "labels".into(),
        to_json(&BoltType::List(node.labels.clone())),
    );
    json.insert("properties".into(), properties(&node.properties));
    Value::Object(json)
}

fn relationship_json(id: i64, typ: &str, start: i64, end: i64, props: &BoltMap) -> Value {
    let mut json = Map::new();
    json.insert("id".into(), Value::from(id));
    json.insert("type".into(), Value::String(typ.to_owned()));
    json.insert("start".into(), Value::from(start));
    json.insert("end".into(), Value::from(end));
    json.insert("properties".into(), properties(props));
    Value::Object(json)
}

/// A path as `[node, relationship, node, …]`. Bolt sends its distinct nodes and relationships
/// once each, plus a sequence of (relationship index, node index) pairs: relationship indices
/// are 1-based, negative when the relationship is traversed against its direction.
fn path_json(path: &BoltPath) -> Value {
    let nodes: Vec<&BoltNode> = path
        .nodes
        .value
        .iter()
        .filter_map(|n| match n {
            BoltType::Node(n) => Some(n),
            _ => None,
        })
        .collect();
    let rels: Vec<&BoltUnboundedRelation> = path
        .rels
        .value
        .iter()
        .filter_map(|r| match r {
            BoltType::UnboundedRelation(r) => Some(r),
            _ => None,
        })
        .collect();
    let indices: Vec<i64> = path
        .indices
        .value
        .iter()
        .filter_map(|i| match i {
            BoltType::Integer(i) => Some(i.value),
            _ => None,
        })
        .collect();
    let Some(mut previous) = nodes.first().copied() else {
        return Value::Array(Vec::new());
    };
    let mut out = vec![node_json(previous)];
    for pair in indices.chunks_exact(2) {
        let (rel_index, node_index) = (pair[0], pair[1]);
        let rel = usize::try_from(rel_index.unsigned_abs())
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| rels.get(i));
        let node = usize::try_from(node_index)
            .ok()
            .and_then(|i| nodes.get(i).copied());
        let (Some(rel), Some(node)) = (rel, node) else {
            break;
        };
        let (start, end) = if rel_index > 0 {
            (previous.id.value, node.id.value)
        } else {
            (node.id.value, previous.id.value)
        };
        out.push(relationship_json(
            rel.id.value,
            &rel.typ.value,
            start,
            end,
            &rel.properties,
        ));
        out.push(node_json(node));
        previous = node;
    }
    Value::Array(out)
}

fn point(srid: i64, coordinates: &[(&str, f64)]) -> Value {
    let mut json = Map::new();
    json.insert("srid".into(), Value::from(srid));
    for (axis, value) in coordinates {
        json.insert((*axis).into(), float(*value));
    }
    Value::Object(json)
}

fn rfc3339(dt: DateTime<FixedOffset>) -> String {
    dt.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// `HH:MM:SS` with the fraction only when there is one.
fn local_time(time: NaiveTime) -> String {
    time.format("%H:%M:%S%.f").to_string()
}

/// An ISO 8601 duration the way Neo4j prints one: years and months from `months`, days, then
/// hours, minutes and seconds from `seconds` and `nanos`; `PT0S` when zero.
fn iso_duration(months: i64, days: i64, seconds: i64, nanos: i64) -> String {
    const NANOS_PER_SECOND: u128 = 1_000_000_000;
    let mut out = String::from("P");
    let (years, months) = (months / 12, months % 12);
    if years != 0 {
        out.push_str(&format!("{years}Y"));
    }
    if months != 0 {
        out.push_str(&format!("{months}M"));
    }
    if days != 0 {
        out.push_str(&format!("{days}D"));
    }
    let total = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    if total != 0 {
        out.push('T');
        let sign = if total < 0 { "-" } else { "" };
        let abs = total.unsigned_abs();
        let hours = abs / (3600 * NANOS_PER_SECOND);
        let minutes = abs / (60 * NANOS_PER_SECOND) % 60;
        let secs = abs / NANOS_PER_SECOND % 60;
        let fraction = abs % NANOS_PER_SECOND;
        if hours != 0 {
            out.push_str(&format!("{sign}{hours}H"));
        }
        if minutes != 0 {
            out.push_str(&format!("{sign}{minutes}M"));
        }
        if secs != 0 || fraction != 0 {
            out.push_str(&format!("{sign}{secs}"));
            if fraction != 0 {
                let digits = format!("{fraction:09}");
                out.push('.');
                out.push_str(digits.trim_end_matches('0'));
            }
            out.push('S');
        }
    }
    if out == "P" {
        out.push_str("T0S");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_neo4j() {
        assert_eq!(iso_duration(0, 0, 0, 0), "PT0S");
        assert_eq!(
            iso_duration(14, 3, 3600 + 5 * 60 + 6, 500_000_000),
            "P1Y2M3DT1H5M6.5S"
        );
        assert_eq!(iso_duration(0, 0, 90_000, 0), "PT25H");
        assert_eq!(iso_duration(0, 0, -2, 500_000_000), "PT-1.5S");
        assert_eq!(iso_duration(0, -1, 0, 1), "P-1DT0.000000001S");
    }

    #[test]
    fn a_sub_millisecond_timeout_is_sent_as_one_millisecond() {
        assert_eq!(tx_timeout_millis(Duration::ZERO), 1);
        assert_eq!(tx_timeout_millis(Duration::from_micros(1500)), 2);
        assert_eq!(tx_timeout_millis(Duration::from_secs(1)), 1000);
        assert_eq!(tx_timeout_millis(Duration::MAX), i64::MAX);
    }

    #[test]
    fn json_parameters_become_bolt_values() {
        let value = serde_json::json!({
            "n": null, "b": true, "i": -3, "f": 1.5, "s": "x", "l": [1, "a"], "m": {"k": [false]}
        });
        let Ok(BoltType::Map(map)) = to_bolt("p", &value) else {
            panic!("a JSON object is a Bolt map");
        };
        assert_eq!(map.value["n"], BoltType::Null(BoltNull));
        assert_eq!(map.value["b"], BoltType::Boolean(BoltBoolean::new(true)));
        assert_eq!(map.value["i"], BoltType::Integer(BoltInteger::new(-3)));
        assert_eq!(map.value["f"], BoltType::Float(BoltFloat::new(1.5)));
        assert_eq!(map.value["s"], BoltType::String(BoltString::new("x")));
        assert_eq!(
            map.value["l"],
            BoltType::List(BoltList {
                value: vec![
                    BoltType::Integer(BoltInteger::new(1)),
                    BoltType::String(BoltString::new("a"))
                ]
            })
        );
        // Bolt values round-trip to the same JSON.
        assert_eq!(to_json(&BoltType::Map(map)), value);
    }

    #[test]
    fn an_integer_beyond_i64_is_refused_not_rounded() {
        let Err(err) = to_bolt("big", &serde_json::json!(u64::MAX)) else {
            panic!("u64::MAX was accepted");
        };
        assert!(
            matches!(err, Error::QueryRefused { code: None, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("\"big\""), "{err}");
    }

    #[test]
    fn non_finite_floats_become_strings() {
        assert_eq!(float(f64::NAN), Value::String("NaN".into()));
        assert_eq!(float(f64::NEG_INFINITY), Value::String("-Infinity".into()));
        assert_eq!(float(2.5), serde_json::json!(2.5));
    }
}
