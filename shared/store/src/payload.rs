//! The JSON read model both backends keep next to the typed facts (`payload`).

use crate::error::{Error, Result};

/// Encodes a record as its payload.
pub(crate) fn encode<T: serde::Serialize>(
    backend: &'static str,
    value: &T,
    operation: &'static str,
) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Backend {
        backend,
        operation,
        source: Box::new(e),
    })
}

/// `(uid, payload)` rows, each decoded as [`decode`] does.
pub(crate) fn decode_all<T: serde::de::DeserializeOwned>(
    rows: &[(String, String)],
) -> Result<Vec<T>> {
    rows.iter()
        .map(|(uid, payload)| decode(uid, payload))
        .collect()
}

/// Decodes the payload stored under `uid`; one that does not decode is corrupt.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(uid: &str, payload: &str) -> Result<T> {
    serde_json::from_str(payload).map_err(|e| Error::Corrupt {
        uid: uid.to_owned(),
        source: Box::new(e),
    })
}
