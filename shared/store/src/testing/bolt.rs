//! What a Bolt client sends, read off the wire: a TCP proxy in front of a Neo4j server that
//! forwards every byte both ways and decodes the client's messages (PackStream, Bolt 4.4 and
//! 5.x framing) into the transactions it ran — each statement's text and parameters, in commit
//! order. The ingest benchmark replays them with the official Neo4j Python driver, so the two
//! drivers are compared on the very statements deploygraph sends.

use serde_json::json;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A PackStream value as a client sent it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Bytes(Vec<u8>),
    String(String),
    List(Vec<Value>),
    /// Entries in the order they were sent.
    Map(Vec<(String, Value)>),
    /// A structure: its tag byte (e.g. `0x46`, a legacy DateTime) and fields.
    Struct {
        tag: u8,
        fields: Vec<Value>,
    },
}

/// Why bytes are not a PackStream value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the value ends early")]
    Truncated,
    #[error("unknown marker 0x{0:02X}")]
    Marker(u8),
    #[error("a string is not UTF-8")]
    Utf8,
    #[error("a map key is not a string")]
    Key,
    #[error("{0} bytes after the value")]
    Trailing(usize),
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).ok_or(DecodeError::Truncated)?;
        let slice = self.bytes.get(self.at..end).ok_or(DecodeError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn size(&mut self, width: usize) -> Result<usize, DecodeError> {
        let n = match width {
            1 => u64::from(self.byte()?),
            2 => u64::from(u16::from_be_bytes(self.be()?)),
            _ => u64::from(u32::from_be_bytes(self.be()?)),
        };
        usize::try_from(n).map_err(|_| DecodeError::Truncated)
    }

    fn string(&mut self, len: usize) -> Result<String, DecodeError> {
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| DecodeError::Utf8)
    }

    fn list(&mut self, len: usize) -> Result<Vec<Value>, DecodeError> {
        // Each item is at least one byte: a length past the input is truncation, not a
        // reason to allocate.
        let mut items = Vec::with_capacity(len.min(self.bytes.len() - self.at));
        for _ in 0..len {
            items.push(self.value()?);
        }
        Ok(items)
    }

    fn map(&mut self, len: usize) -> Result<Vec<(String, Value)>, DecodeError> {
        let mut entries = Vec::with_capacity(len.min(self.bytes.len() - self.at));
        for _ in 0..len {
            let Value::String(key) = self.value()? else {
                return Err(DecodeError::Key);
            };
            entries.push((key, self.value()?));
        }
        Ok(entries)
    }

    fn value(&mut self) -> Result<Value, DecodeError> {
        let marker = self.byte()?;
        let low = usize::from(marker & 0x0F);
        Ok(match marker {
            0x00..=0x7F => Value::Int(i64::from(marker)),
            0xF0..=0xFF => Value::Int(i64::from(marker as i8)),
            0x80..=0x8F => Value::String(self.string(low)?),
            0x90..=0x9F => Value::List(self.list(low)?),
            0xA0..=0xAF => Value::Map(self.map(low)?),
            0xB0..=0xBF => {
                let tag = self.byte()?;
                Value::Struct {
                    tag,
                    fields: self.list(low)?,
                }
            }
            0xC0 => Value::Null,
            0xC1 => Value::Float(f64::from_be_bytes(self.be()?)),
            0xC2 => Value::Bool(false),
            0xC3 => Value::Bool(true),
            0xC8 => Value::Int(i64::from(i8::from_be_bytes(self.be()?))),
            0xC9 => Value::Int(i64::from(i16::from_be_bytes(self.be()?))),
            0xCA => Value::Int(i64::from(i32::from_be_bytes(self.be()?))),
            0xCB => Value::Int(i64::from_be_bytes(self.be()?)),
            0xCC..=0xCE => {
                let len = self.size(1 << (marker - 0xCC))?;
                Value::Bytes(self.take(len)?.to_vec())
            }
            0xD0..=0xD2 => {
                let len = self.size(1 << (marker - 0xD0))?;
                Value::String(self.string(len)?)
            }
            0xD4..=0xD6 => {
                let len = self.size(1 << (marker - 0xD4))?;
                Value::List(self.list(len)?)
            }
            0xD8..=0xDA => {
                let len = self.size(1 << (marker - 0xD8))?;
                Value::Map(self.map(len)?)
            }
            other => return Err(DecodeError::Marker(other)),
        })
    }
}

/// The one PackStream value `bytes` hold.
///
/// # Errors
/// When `bytes` are not exactly one value.
pub fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut reader = Reader { bytes, at: 0 };
    let value = reader.value()?;
    match bytes.len() - reader.at {
        0 => Ok(value),
        n => Err(DecodeError::Trailing(n)),
    }
}

impl Value {
    /// As JSON for the replay script (`shared/store/benches/neo4j_driver_replay.py`): JSON's own
    /// types as themselves; a non-finite float `{"$float": "NaN"}`, bytes `{"$bytes": base64}`,
    /// a structure `{"$struct": tag, "fields": [...]}`, a map with a key starting with `$`
    /// `{"$map": {...}}`.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        use base64::Engine as _;
        match self {
            Self::Null => serde_json::Value::Null,
            Self::Bool(b) => json!(b),
            Self::Int(i) => json!(i),
            Self::Float(f) if f.is_finite() => json!(f),
            Self::Float(f) => json!({ "$float": f.to_string() }),
            Self::Bytes(b) => {
                json!({ "$bytes": base64::engine::general_purpose::STANDARD.encode(b) })
            }
            Self::String(s) => json!(s),
            Self::List(items) => items.iter().map(Self::to_json).collect(),
            Self::Map(entries) => {
                let object: serde_json::Map<String, serde_json::Value> = entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect();
                if entries.iter().any(|(k, _)| k.starts_with('$')) {
                    json!({ "$map": object })
                } else {
                    serde_json::Value::Object(object)
                }
            }
            Self::Struct { tag, fields } => {
                json!({ "$struct": tag, "fields": fields.iter().map(Self::to_json).collect::<Vec<_>>() })
            }
        }
    }

    /// As a neo4rs parameter, to send again: the temporal structures deploygraph sends
    /// (DateTime, legacy `F` and UTC `I`) are rebuilt; other structures are not parameters.
    ///
    /// # Errors
    /// A structure other than those, or a DateTime out of range.
    pub fn to_bolt(&self) -> Result<neo4rs::BoltType, String> {
        use neo4rs::BoltType;
        Ok(match self {
            Self::Null => BoltType::Null(neo4rs::BoltNull),
            Self::Bool(b) => BoltType::from(*b),
            Self::Int(i) => BoltType::from(*i),
            Self::Float(f) => BoltType::from(*f),
            Self::Bytes(b) => BoltType::from(b.clone()),
            Self::String(s) => BoltType::from(s.as_str()),
            Self::List(items) => BoltType::from(
                items
                    .iter()
                    .map(Self::to_bolt)
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Self::Map(entries) => {
                let mut map = neo4rs::BoltMap::with_capacity(entries.len());
                for (k, v) in entries {
                    map.put(k.as_str().into(), v.to_bolt()?);
                }
                BoltType::Map(map)
            }
            Self::Struct { tag, fields } => {
                let [Self::Int(seconds), Self::Int(nanos), Self::Int(offset)] = fields.as_slice()
                else {
                    return Err(format!("structure 0x{tag:02X} is not a parameter"));
                };
                let utc = match tag {
                    0x46 => seconds - offset,
                    0x49 => *seconds,
                    _ => return Err(format!("structure 0x{tag:02X} is not a parameter")),
                };
                let zone = i32::try_from(*offset)
                    .ok()
                    .and_then(chrono::FixedOffset::east_opt)
                    .ok_or("offset out of range")?;
                let at = chrono::DateTime::from_timestamp(
                    utc,
                    u32::try_from(*nanos).map_err(|_| "nanoseconds out of range")?,
                )
                .ok_or("date out of range")?;
                BoltType::from(at.with_timezone(&zone))
            }
        })
    }
}

/// One statement as sent: its text and parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub text: String,
    /// A map, as sent (empty when none were).
    pub params: Value,
}

impl Statement {
    /// The statement as a neo4rs query, to send again.
    ///
    /// # Errors
    /// A parameter [`Value::to_bolt`] cannot rebuild.
    pub fn to_query(&self) -> Result<neo4rs::Query, String> {
        let mut q = neo4rs::query(&self.text);
        if let Value::Map(entries) = &self.params {
            for (k, v) in entries {
                q = q.param(k, v.to_bolt()?);
            }
        }
        Ok(q)
    }
}

/// How a unit of work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Commit,
    Rollback,
    /// One statement outside an explicit transaction.
    Autocommit,
}

/// An explicit transaction (BEGIN … COMMIT or ROLLBACK) or one autocommit statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    /// The database named in BEGIN or RUN, if one was.
    pub db: Option<String>,
    /// Whether the client asked for a read (`mode: "r"`).
    pub read: bool,
    pub statements: Vec<Statement>,
    pub end: End,
}

impl Unit {
    /// As one JSON line for the replay script.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "db": self.db,
            "read": self.read,
            "end": match self.end {
                End::Commit => "commit",
                End::Rollback => "rollback",
                End::Autocommit => "autocommit",
            },
            "statements": self.statements.iter().map(|s| json!({
                "text": s.text,
                "params": s.params.to_json(),
            })).collect::<Vec<_>>(),
        })
    }
}

/// What the proxy saw: the finished units in the order they ended, transactions the client
/// abandoned with RESET (a failure), and anything it could not decode.
#[derive(Debug, Default)]
pub struct Log {
    pub units: Vec<Unit>,
    pub reset: usize,
    pub errors: Vec<String>,
    /// Every message clients sent, by its signature (`0x66` ROUTE, `0x11` BEGIN, …).
    pub messages: std::collections::BTreeMap<u8, usize>,
}

/// One client connection's decoder: the handshake, then chunks making messages.
#[derive(Default)]
struct Connection {
    pending: Vec<u8>,
    handshake_done: bool,
    message: Vec<u8>,
    open: Option<Unit>,
}

// Bolt request signatures.
const RESET: u8 = 0x0F;
const RUN: u8 = 0x10;
const BEGIN: u8 = 0x11;
const COMMIT: u8 = 0x12;
const ROLLBACK: u8 = 0x13;

fn entry<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    match map {
        Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
        _ => None,
    }
}

fn db_and_mode(extra: Option<&Value>) -> (Option<String>, bool) {
    let extra = extra.unwrap_or(&Value::Null);
    let db = match entry(extra, "db") {
        Some(Value::String(db)) => Some(db.clone()),
        _ => None,
    };
    let read = matches!(entry(extra, "mode"), Some(Value::String(m)) if m == "r");
    (db, read)
}

impl Connection {
    /// Takes bytes the client sent; finished units go to `log`.
    fn feed(&mut self, bytes: &[u8], log: &Mutex<Log>) -> Result<(), String> {
        self.pending.extend_from_slice(bytes);
        let mut at = 0;
        if !self.handshake_done {
            // Magic and four proposed versions; later versions' manifests are negotiated
            // by the server's answer, and the client's next bytes are messages.
            if self.pending.len() < 20 {
                return Ok(());
            }
            if self.pending[..4] != [0x60, 0x60, 0xB0, 0x17] {
                return Err("not a Bolt handshake".into());
            }
            self.handshake_done = true;
            at = 20;
        }
        while let Some(header) = self.pending.get(at..at + 2) {
            let size = usize::from(u16::from_be_bytes([header[0], header[1]]));
            if size == 0 {
                at += 2;
                if !self.message.is_empty() {
                    let message = std::mem::take(&mut self.message);
                    self.message(&message, log)?;
                }
                continue;
            }
            let Some(chunk) = self.pending.get(at + 2..at + 2 + size) else {
                break;
            };
            self.message.extend_from_slice(chunk);
            at += 2 + size;
        }
        self.pending.drain(..at);
        Ok(())
    }

    fn message(&mut self, bytes: &[u8], log: &Mutex<Log>) -> Result<(), String> {
        let Value::Struct { tag, fields } = decode(bytes).map_err(|e| e.to_string())? else {
            return Err("a message is not a structure".into());
        };
        let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
        *log.messages.entry(tag).or_default() += 1;
        match tag {
            BEGIN => {
                let (db, read) = db_and_mode(fields.first());
                self.open = Some(Unit {
                    db,
                    read,
                    statements: Vec::new(),
                    end: End::Commit,
                });
            }
            RUN => {
                let mut fields = fields.into_iter();
                let Some(Value::String(text)) = fields.next() else {
                    return Err("RUN without a statement".into());
                };
                let params = fields.next().unwrap_or(Value::Map(Vec::new()));
                let statement = Statement { text, params };
                match &mut self.open {
                    Some(unit) => unit.statements.push(statement),
                    None => {
                        let (db, read) = db_and_mode(fields.next().as_ref());
                        log.units.push(Unit {
                            db,
                            read,
                            statements: vec![statement],
                            end: End::Autocommit,
                        });
                    }
                }
            }
            COMMIT | ROLLBACK => {
                let Some(mut unit) = self.open.take() else {
                    return Err("COMMIT or ROLLBACK outside a transaction".into());
                };
                unit.end = if tag == COMMIT {
                    End::Commit
                } else {
                    End::Rollback
                };
                log.units.push(unit);
            }
            RESET => log.reset += usize::from(self.open.take().is_some()),
            // HELLO, LOGON, PULL, DISCARD, ROUTE, GOODBYE, TELEMETRY: nothing to replay.
            _ => {}
        }
        Ok(())
    }
}

/// The proxy: listens on loopback, forwards to the server, logs what clients send.
pub struct Capture {
    address: SocketAddr,
    log: Arc<Mutex<Log>>,
}

impl Capture {
    /// A proxy to the Bolt server at `upstream` (`host:port`).
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start(upstream: String) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let log = Arc::new(Mutex::new(Log::default()));
        let shared = Arc::clone(&log);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = match TcpStream::connect(&upstream).await {
                    Ok(server) => server,
                    Err(e) => {
                        record_error(&shared, format!("connect to {upstream}: {e}"));
                        continue;
                    }
                };
                tokio::spawn(forward(client, server, Arc::clone(&shared)));
            }
        });
        Ok(Self { address, log })
    }

    /// `host:port` to connect to instead of the server.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// What was logged since the last take.
    #[must_use]
    pub fn take(&self) -> Log {
        std::mem::take(&mut *self.log.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn record_error(log: &Mutex<Log>, error: String) {
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .errors
        .push(error);
}

async fn forward(client: TcpStream, server: TcpStream, log: Arc<Mutex<Log>>) {
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = async {
        let mut connection = Connection::default();
        let mut decoding = true;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = client_read.read(&mut buf).await?;
            if n == 0 {
                return std::io::Result::Ok(());
            }
            if decoding && let Err(e) = connection.feed(&buf[..n], &log) {
                record_error(&log, e);
                decoding = false;
            }
            server_write.write_all(&buf[..n]).await?;
        }
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = server_read.read(&mut buf).await?;
            if n == 0 {
                return std::io::Result::Ok(());
            }
            client_write.write_all(&buf[..n]).await?;
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_marker_width() {
        assert_eq!(decode(&[0x7F]), Ok(Value::Int(127)));
        assert_eq!(decode(&[0xF0]), Ok(Value::Int(-16)));
        assert_eq!(decode(&[0xC8, 0x80]), Ok(Value::Int(-128)));
        assert_eq!(decode(&[0xC9, 0x01, 0x00]), Ok(Value::Int(256)));
        assert_eq!(decode(&[0xCA, 0xFF, 0xFF, 0xFF, 0xFE]), Ok(Value::Int(-2)));
        let mut big = vec![0xCB];
        big.extend_from_slice(&i64::MIN.to_be_bytes());
        assert_eq!(decode(&big), Ok(Value::Int(i64::MIN)));
        let mut float = vec![0xC1];
        float.extend_from_slice(&1.5f64.to_be_bytes());
        assert_eq!(decode(&float), Ok(Value::Float(1.5)));
        assert_eq!(decode(&[0x81, b'a']), Ok(Value::String("a".into())));
        let mut long = vec![0xD1, 0x01, 0x00];
        long.extend(std::iter::repeat_n(b'x', 256));
        assert_eq!(decode(&long), Ok(Value::String("x".repeat(256))));
        assert_eq!(
            decode(&[0xA1, 0x81, b'k', 0x92, 0xC0, 0xC3]),
            Ok(Value::Map(vec![(
                "k".into(),
                Value::List(vec![Value::Null, Value::Bool(true)])
            )]))
        );
        assert_eq!(
            decode(&[0xCC, 0x02, 0xAB, 0xCD]),
            Ok(Value::Bytes(vec![0xAB, 0xCD]))
        );
        assert_eq!(
            decode(&[0xB3, 0x46, 0x01, 0x02, 0x03]),
            Ok(Value::Struct {
                tag: 0x46,
                fields: vec![Value::Int(1), Value::Int(2), Value::Int(3)]
            })
        );
    }

    #[test]
    fn refuses_what_is_not_one_value() {
        assert_eq!(decode(&[0xD0, 0x05, b'a']), Err(DecodeError::Truncated));
        assert_eq!(decode(&[0xC0, 0xC0]), Err(DecodeError::Trailing(1)));
        assert_eq!(decode(&[0xA1, 0x01, 0x01]), Err(DecodeError::Key));
        assert_eq!(decode(&[0xE0]), Err(DecodeError::Marker(0xE0)));
        // A huge declared length is truncation, not an allocation.
        assert_eq!(
            decode(&[0xD6, 0xFF, 0xFF, 0xFF, 0xFF]),
            Err(DecodeError::Truncated)
        );
    }

    /// A message as a client frames it, split into chunks of at most `chunk` bytes.
    fn framed(message: &[u8], chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for part in message.chunks(chunk) {
            out.extend_from_slice(&u16::try_from(part.len()).unwrap().to_be_bytes());
            out.extend_from_slice(part);
        }
        out.extend_from_slice(&[0, 0]);
        out
    }

    #[test]
    fn follows_transactions_across_reads_and_chunks() {
        let mut wire = vec![0x60, 0x60, 0xB0, 0x17];
        wire.extend_from_slice(&[0; 16]);
        // BEGIN {db: "neo4j"}
        wire.extend(framed(
            &[
                0xB1, BEGIN, 0xA1, 0x82, b'd', b'b', 0x85, b'n', b'e', b'o', b'4', b'j',
            ],
            3,
        ));
        // RUN "RETURN $x" {x: 1} {}
        let mut run = vec![0xB3, RUN, 0x89];
        run.extend_from_slice(b"RETURN $x");
        run.extend_from_slice(&[0xA1, 0x81, b'x', 0x01, 0xA0]);
        wire.extend(framed(&run, 4));
        wire.extend(framed(&[0xB1, 0x3F, 0xA0], 64)); // PULL {}
        wire.extend(framed(&[0xB1, COMMIT, 0xA0], 64));
        wire.extend(framed(&run, 64)); // autocommit
        let log = Mutex::new(Log::default());
        let mut connection = Connection::default();
        // Fed one byte at a time: every boundary falls inside a read somewhere.
        for byte in &wire {
            connection.feed(std::slice::from_ref(byte), &log).unwrap();
        }
        let log = log.into_inner().unwrap();
        assert!(log.errors.is_empty());
        assert_eq!(log.units.len(), 2);
        assert_eq!(log.units[0].db.as_deref(), Some("neo4j"));
        assert_eq!(log.units[0].end, End::Commit);
        assert_eq!(log.units[0].statements[0].text, "RETURN $x");
        assert_eq!(
            log.units[0].statements[0].params,
            Value::Map(vec![("x".into(), Value::Int(1))])
        );
        assert_eq!(log.units[1].end, End::Autocommit);
    }

    #[test]
    fn json_keeps_what_json_cannot_say() {
        let v = Value::Map(vec![
            ("$odd".into(), Value::Float(f64::NAN)),
            ("b".into(), Value::Bytes(vec![1, 2])),
        ]);
        assert_eq!(
            v.to_json(),
            json!({"$map": {"$odd": {"$float": "NaN"}, "b": {"$bytes": "AQI="}}})
        );
    }
}
