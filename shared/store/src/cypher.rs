//! Read-only user Cypher against Neo4j: runs a query someone typed, bounded in what it may do
//! (read), how long it may run and how much it may return, and renders the rows as JSON.
//!
//! The protection is what Neo4j will execute, not a filter on the query text:
//!
//! - **The plan is checked first.** The query is sent as `EXPLAIN <query>` with the same
//!   parameters (read mode), its execution plan is read from the result summary ([`plan`]), and
//!   the query is refused ([`Error::QueryRefused`]) unless every operator, procedure and function
//!   in it is on the allow-lists of [`policy`]: no `LOAD CSV`, no `SHOW …` or other
//!   administration commands, no `dbms.*` or APOC, no `CALL { … } IN TRANSACTIONS`, no writes.
//! - **Read access.** The query then runs as an auto-commit transaction whose Bolt `RUN` carries
//!   `mode: "r"` ([`neo4rs::Graph::execute_read`]); Neo4j refuses any write in it as well
//!   (`Neo.ClientError.Statement.AccessMode`), a second line behind the plan check.
//! - **Time limit.** Both `RUN`s carry the Bolt `tx_timeout` (milliseconds), so Neo4j stops the
//!   query itself when it runs too long ([`Error::QueryTimedOut`]) and the transaction is gone.
//!   The connections that carry user queries wait for an answer longer than any query may run
//!   ([`USER_QUERY_READ_TIMEOUT`] > [`MAX_QUERY_TIMEOUT`]), so a slow query is never mistaken
//!   for an unreachable database; a client-side timeout a little longer than the limit is only
//!   a backstop for a server that does not answer.
//! - **Row and byte caps.** Rows are read as a stream; the result stops at `row_cap` rows or
//!   when the next row would take the rows' JSON past `byte_cap` bytes, and says which
//!   ([`CypherResult::truncated_by`]). The rest is never fetched: the stream is dropped and the
//!   pool resets its connection, which ends the transaction.
//!
//! Column order: neo4rs 0.9 hands each record over as a hash map and keeps the `RUN` response's
//! field list private, so the order is taken from the plan's `ProduceResults` operator, which
//! lists the `RETURN` columns in order. Should that list not match the rows' keys, the columns
//! are the keys sorted by name.

mod plan;
pub mod policy;

pub use plan::Operator;

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

/// The longest time limit a user query may have; longer ones are cut to this.
pub const MAX_QUERY_TIMEOUT: Duration = Duration::from_secs(3600);

/// How long a connection carrying user queries waits for the server's next message (neo4rs
/// applies its `connection_timeout` to every read): longer than any query may run, so only the
/// database's own time limit, or the client-side backstop, ends a slow query.
pub const USER_QUERY_READ_TIMEOUT: Duration =
    MAX_QUERY_TIMEOUT.saturating_add(CLIENT_GRACE.saturating_mul(2));

/// The default byte cap of a result's rows (4 MiB).
pub const DEFAULT_BYTE_CAP: usize = 4 * 1024 * 1024;

/// A read-only query to run.
#[derive(Debug, Clone)]
pub struct CypherRequest {
    /// The Cypher text.
    pub query: String,
    /// Values for its `$parameters`.
    pub params: Map<String, Value>,
    /// How long the database lets it run (at least 1 ms is sent, at most [`MAX_QUERY_TIMEOUT`]).
    pub timeout: Duration,
    /// At most this many rows are returned.
    pub row_cap: usize,
    /// The rows' JSON takes at most this many bytes.
    pub byte_cap: usize,
}

/// Which cap cut a result short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TruncatedBy {
    /// More rows existed than the row cap.
    Rows,
    /// The next row would have taken the rows past the byte cap.
    Bytes,
}

/// What a query returned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CypherResult {
    /// Column names in `RETURN` order (see the module documentation); each row has one value
    /// per column, in this order.
    pub columns: Vec<String>,
    /// The rows, at most the request's `row_cap`, at most `byte_cap` bytes of JSON.
    pub rows: Vec<Vec<Value>>,
    /// The result was cut short: more rows existed than are returned.
    pub truncated: bool,
    /// Which cap cut it, when `truncated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated_by: Option<TruncatedBy>,
}

/// Checks the plan of `request` and runs it in a read-only transaction with a server-side time
/// limit; returns at most `row_cap` rows and `byte_cap` bytes of them as JSON.
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
/// [`Error::QueryRefused`] when its plan does something [`policy`] does not allow, the database
/// refuses it (syntax or type error, a write, a missing parameter) or a parameter cannot be
/// sent (an integer beyond the 64-bit range); [`Error::QueryTimedOut`] when it runs past
/// `timeout`; [`Error::Unavailable`] when Neo4j cannot be reached or fails transiently;
/// [`Error::Backend`] otherwise.
#[tracing::instrument(
    skip_all,
    fields(cypher.row_cap = request.row_cap, cypher.byte_cap = request.byte_cap, cypher.timeout_ms = request.timeout.as_millis())
)]
pub async fn run_read_only(graph: &Graph, request: &CypherRequest) -> Result<CypherResult> {
    let mut params = BoltMap::with_capacity(request.params.len());
    for (name, value) in &request.params {
        params.put(BoltString::new(name), to_bolt(name, value)?);
    }
    let limit = request.timeout.min(MAX_QUERY_TIMEOUT);
    let run = async {
        let plan = checked_plan(graph, &request.query, &params, limit).await?;
        let query = neo4rs::query(&request.query)
            .with_params(params.clone())
            .extra("tx_timeout", tx_timeout_millis(limit));
        // execute_read adds `mode: "r"` to the RUN of an auto-commit transaction.
        let mut stream = graph
            .execute_read(query)
            .await
            .map_err(|e| classify(e, limit))?;
        let produced = plan::produced_columns(&plan);
        let mut columns: Option<Vec<String>> = None;
        let mut rows = Vec::new();
        let mut truncated_by = None;
        let mut bytes = 0usize;
        while let Some(row) = stream.next().await.map_err(|e| classify(e, limit))? {
            if rows.len() >= request.row_cap {
                truncated_by = Some(TruncatedBy::Rows);
                break;
            }
            let columns = columns.get_or_insert_with(|| {
                column_order(
                    produced.as_deref(),
                    row.keys().into_iter().map(|k| k.value.clone()).collect(),
                )
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
            // The row's JSON and the comma before it.
            let size = json_size(&values).saturating_add(1);
            if bytes.saturating_add(size) > request.byte_cap {
                truncated_by = Some(TruncatedBy::Bytes);
                break;
            }
            bytes += size;
            rows.push(values);
        }
        Ok(CypherResult {
            columns: columns.or(produced).unwrap_or_default(),
            rows,
            truncated: truncated_by.is_some(),
            truncated_by,
        })
    };
    match tokio::time::timeout(limit.saturating_add(CLIENT_GRACE), run).await {
        Ok(result) => result,
        Err(_) => Err(Error::QueryTimedOut {
            limit,
            source: None,
        }),
    }
}

/// Runs `EXPLAIN <query>` (read mode, same parameters and time limit) and returns its plan when
/// [`policy`] allows it.
async fn checked_plan(
    graph: &Graph,
    query: &str,
    params: &BoltMap,
    limit: Duration,
) -> Result<Operator> {
    let user = neo4rs::query(&format!("EXPLAIN {query}"))
        .with_params(params.clone())
        .extra("tx_timeout", tx_timeout_millis(limit));
    let summary = explain(graph, user, limit).await?;
    // `USE other_db …` is planned on, and reported from, the other database.
    let home = explain(graph, neo4rs::query("EXPLAIN RETURN 1"), limit).await?;
    if summary.db() != home.db() {
        return Err(Error::QueryRefused {
            code: None,
            reason: format!(
                "the query runs on the database {:?}; user queries may only read {:?}",
                summary.db().unwrap_or_default(),
                home.db().unwrap_or_default()
            ),
        });
    }
    let plan = plan::from_summary(&summary).map_err(|reason| Error::QueryRefused {
        code: None,
        reason: format!("the query's plan could not be checked, so it is not run: {reason}"),
    })?;
    if let Some(reason) = policy::refusal(&plan) {
        tracing::info!(reason = %reason, "user query refused by its plan");
        return Err(Error::QueryRefused { code: None, reason });
    }
    Ok(plan)
}

/// Sends an `EXPLAIN` in read mode and returns its summary, which holds the plan.
async fn explain(
    graph: &Graph,
    query: neo4rs::Query,
    limit: Duration,
) -> Result<neo4rs::summary::ResultSummary> {
    let stream = graph
        .execute_read(query)
        .await
        .map_err(|e| classify(e, limit))?;
    stream.finish().await.map_err(|e| classify(e, limit))
}

/// The plan's column order when it names exactly the row's keys, else the keys sorted by name.
fn column_order(produced: Option<&[String]>, mut keys: Vec<String>) -> Vec<String> {
    keys.sort();
    match produced {
        Some(order) => {
            let mut sorted = order.to_vec();
            sorted.sort();
            if sorted == keys { order.to_vec() } else { keys }
        }
        None => keys,
    }
}

/// The length of `value`'s JSON without building it.
fn json_size(value: &impl Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Serializing a JSON value into a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
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
    if let E::ParseError(cause) = &e {
        // neo4rs decodes node and relationship ids as unsigned: the virtual ones Neo4j makes up
        // (negative ids, e.g. in `db.schema.visualization()`) cannot be read.
        return Error::QueryRefused {
            code: None,
            reason: format!(
                "the result holds a value this server cannot decode ({cause}); virtual nodes and \
                 relationships (as db.schema.visualization() returns) cannot be sent: return \
                 their labels, types or properties instead"
            ),
        };
    }
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
