//! Decoding release Secrets: the Secret API's base64, Helm's base64, gzip when present, JSON.

use crate::release::Release;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use flate2::read::GzDecoder;
use std::io::Read;

/// Why a release could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not a Secret object, or no `data.release`.
    #[error("not a Helm release Secret: {0}")]
    NotARelease(String),
    /// A base64 layer is invalid.
    #[error("invalid base64 in the {layer} layer")]
    Base64 {
        /// `secret` (the API's encoding) or `helm` (Helm's own).
        layer: &'static str,
        /// Why.
        #[source]
        source: base64::DecodeError,
    },
    /// The gzip stream is corrupt.
    #[error("invalid gzip stream")]
    Gzip(#[source] std::io::Error),
    /// The release JSON is invalid or lacks required fields.
    #[error("invalid release JSON")]
    Json(#[source] serde_json::Error),
}

/// Result with the decoder's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// Decodes the release from `data.release` as the Secret API hands it over *after* its own
/// base64 layer (what k8s-openapi's `Secret.data["release"]` holds): Helm's base64, then gzip
/// when the magic bytes are present, then JSON.
///
/// # Errors
/// [`Error::Base64`], [`Error::Gzip`] or [`Error::Json`].
pub fn decode_release_field(helm_encoded: &[u8]) -> Result<Release> {
    let trimmed: Vec<u8> = helm_encoded
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let bytes = STANDARD.decode(trimmed).map_err(|source| Error::Base64 {
        layer: "helm",
        source,
    })?;
    let json = if bytes.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut out)
            .map_err(Error::Gzip)?;
        out
    } else {
        bytes
    };
    serde_json::from_slice(&json).map_err(Error::Json)
}

/// Decodes a Secret object as `kubectl get secret … -o json` prints it.
///
/// # Errors
/// [`Error::NotARelease`] for other objects; as [`decode_release_field`].
pub fn decode_secret_json(secret: &str) -> Result<Release> {
    let value: serde_json::Value =
        serde_json::from_str(secret).map_err(|e| Error::NotARelease(format!("not JSON: {e}")))?;
    if value.get("kind").and_then(|k| k.as_str()) != Some("Secret") {
        return Err(Error::NotARelease("the object is not a Secret".into()));
    }
    let encoded = value
        .pointer("/data/release")
        .and_then(|r| r.as_str())
        .ok_or_else(|| Error::NotARelease("the Secret has no data.release".into()))?;
    let helm_encoded = STANDARD.decode(encoded).map_err(|source| Error::Base64 {
        layer: "secret",
        source,
    })?;
    decode_release_field(&helm_encoded)
}

/// Release Secrets in revision order. The API lists them sorted by *name* (`.v1, .v10, .v11,
/// .v2`); this sorts by the revision number, from the `version` label or, failing that, the
/// name's `.v<N>` suffix. Items whose revision cannot be read sort last.
pub fn revision_order<T>(items: &mut [T], revision: impl Fn(&T) -> Option<u32>) {
    items.sort_by_key(|item| revision(item).unwrap_or(u32::MAX));
}

/// The revision in a release Secret's name: `sh.helm.release.v1.web.v12` → 12.
pub fn revision_from_name(name: &str) -> Option<u32> {
    name.rsplit_once(".v").and_then(|(_, n)| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn release_json(version: u32) -> String {
        serde_json::json!({
            "name": "web", "namespace": "prod", "version": version,
            "info": {"status": "deployed", "last_deployed": "2026-11-20T10:00:00Z"},
            "chart": {"metadata": {"name": "web", "version": "1.2.3", "appVersion": "2.0"}, "values": {"replicas": 1}},
            "config": {"replicas": 3}, "manifest": "---\nkind: ConfigMap\nmetadata:\n  name: a\n"
        })
        .to_string()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(bytes).expect("gzip");
        enc.finish().expect("gzip")
    }

    fn secret(data_release: &str) -> String {
        serde_json::json!({"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
                           "metadata": {"name": "sh.helm.release.v1.web.v1"}, "data": {"release": data_release}})
        .to_string()
    }

    #[test]
    fn gzip_and_plain_payloads_decode() {
        for payload in [
            gzip(release_json(4).as_bytes()),
            release_json(4).into_bytes(),
        ] {
            let helm = STANDARD.encode(&payload);
            let release = decode_release_field(helm.as_bytes()).expect("decodes");
            assert_eq!(release.version, 4);
            let api = STANDARD.encode(helm);
            assert_eq!(
                decode_secret_json(&secret(&api))
                    .expect("secret decodes")
                    .version,
                4
            );
        }
    }

    #[test]
    fn corrupt_payloads_are_errors_not_panics() {
        assert!(matches!(
            decode_release_field(b"%%%"),
            Err(Error::Base64 { layer: "helm", .. })
        ));
        let bad_gzip = STANDARD.encode([0x1f, 0x8b, 0x08, 0, 1, 2, 3]);
        assert!(matches!(
            decode_release_field(bad_gzip.as_bytes()),
            Err(Error::Gzip(_))
        ));
        let bad_json = STANDARD.encode(gzip(b"{not json"));
        assert!(matches!(
            decode_release_field(bad_json.as_bytes()),
            Err(Error::Json(_))
        ));
        let missing = STANDARD.encode(br#"{"name": "web"}"#);
        assert!(matches!(
            decode_release_field(missing.as_bytes()),
            Err(Error::Json(_))
        ));
        assert!(matches!(
            decode_secret_json(&secret("!!")),
            Err(Error::Base64 {
                layer: "secret",
                ..
            })
        ));
        assert!(matches!(
            decode_secret_json(r#"{"kind":"ConfigMap"}"#),
            Err(Error::NotARelease(_))
        ));
    }

    #[test]
    fn revisions_sort_numerically_not_by_name() {
        let mut names = vec![
            "sh.helm.release.v1.web.v1",
            "sh.helm.release.v1.web.v10",
            "sh.helm.release.v1.web.v11",
            "sh.helm.release.v1.web.v2",
        ];
        revision_order(&mut names, |n| revision_from_name(n));
        assert_eq!(
            names
                .iter()
                .map(|n| revision_from_name(n).unwrap_or(0))
                .collect::<Vec<_>>(),
            vec![1, 2, 10, 11]
        );
    }
}
