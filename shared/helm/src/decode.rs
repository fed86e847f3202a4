//! Decoding release Secrets: the Secret API's base64, Helm's base64, gzip when present, JSON.
//!
//! A release Secret is outside input: anyone who can write a Secret labelled `owner=helm` in a
//! watched namespace hands the watcher its payload. Every layer is therefore capped
//! ([`Limits`]): the base64 text before it is decoded, the gzip output while it is inflated
//! (so a gzip bomb stops at the cap instead of filling memory) and the JSON before it is
//! parsed. An input over a cap is [`Error::TooLarge`], naming the cap.

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
    /// A layer is larger than its cap in [`Limits`].
    #[error("the {what} is larger than the {limit_name} limit of {limit} bytes")]
    TooLarge {
        /// What was too large: `base64 text`, `gzip output`, `release JSON`, `Secret JSON`.
        what: &'static str,
        /// The cap's name in [`Limits`] (`max_encoded_bytes`, `max_release_bytes`).
        limit_name: &'static str,
        /// The cap, in bytes.
        limit: usize,
    },
}

impl Error {
    /// Whether the input was refused for its size rather than its content.
    pub fn is_too_large(&self) -> bool {
        matches!(self, Self::TooLarge { .. })
    }
}

/// Size caps of the decoder. Kubernetes keeps a Secret under 1 MiB, so real release payloads
/// stay far below the defaults; the caps exist for hostile or broken input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of base64 text decoded (Helm's layer, and the Secret API's for a Secret
    /// read from a file). Default 16 MiB.
    pub max_encoded_bytes: usize,
    /// Most bytes the release JSON may take: the gzip output is cut off past it, and a plain
    /// payload over it is refused before parsing. Default 32 MiB.
    pub max_release_bytes: usize,
}

/// [`Limits::max_encoded_bytes`] by default: 16 MiB.
pub const DEFAULT_MAX_ENCODED_BYTES: usize = 16 << 20;
/// [`Limits::max_release_bytes`] by default: 32 MiB.
pub const DEFAULT_MAX_RELEASE_BYTES: usize = 32 << 20;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_encoded_bytes: DEFAULT_MAX_ENCODED_BYTES,
            max_release_bytes: DEFAULT_MAX_RELEASE_BYTES,
        }
    }
}

impl Limits {
    fn encoded(&self, what: &'static str, len: usize) -> Result<()> {
        if len > self.max_encoded_bytes {
            return Err(Error::TooLarge {
                what,
                limit_name: "max_encoded_bytes",
                limit: self.max_encoded_bytes,
            });
        }
        Ok(())
    }

    fn release(&self, what: &'static str) -> Error {
        Error::TooLarge {
            what,
            limit_name: "max_release_bytes",
            limit: self.max_release_bytes,
        }
    }
}

/// Inflates `gzip` into at most `limit` bytes; `Ok(None)` when the output would be larger.
/// The buffer grows with the output (never past `limit`), so a small release costs little
/// and a bomb costs at most the cap.
fn gunzip_capped(gzip: &[u8], limit: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut decoder = GzDecoder::new(gzip);
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = decoder.read(&mut chunk)?;
        if n == 0 {
            return Ok(Some(out));
        }
        let needed = out.len() + n;
        if needed > limit {
            return Ok(None);
        }
        if out.capacity() < needed {
            // Doubling, but never beyond the cap: the last growth does not overshoot it.
            let target = (out.capacity() * 2).max(needed).min(limit);
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// Result with the decoder's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// Decodes the release from `data.release` as the Secret API hands it over *after* its own
/// base64 layer (what k8s-openapi's `Secret.data["release"]` holds): Helm's base64, then gzip
/// when the magic bytes are present, then JSON; with the default [`Limits`].
///
/// # Errors
/// As [`decode_release_field_with`].
pub fn decode_release_field(helm_encoded: &[u8]) -> Result<Release> {
    decode_release_field_with(helm_encoded, &Limits::default())
}

/// [`decode_release_field`] with the caps `limits`.
///
/// # Errors
/// [`Error::TooLarge`] when a layer passes its cap; [`Error::Base64`], [`Error::Gzip`] or
/// [`Error::Json`] when one is invalid.
pub fn decode_release_field_with(helm_encoded: &[u8], limits: &Limits) -> Result<Release> {
    limits.encoded("base64 text", helm_encoded.len())?;
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
        gunzip_capped(&bytes, limits.max_release_bytes)
            .map_err(Error::Gzip)?
            .ok_or_else(|| limits.release("gzip output"))?
    } else if bytes.len() > limits.max_release_bytes {
        return Err(limits.release("release JSON"));
    } else {
        bytes
    };
    serde_json::from_slice(&json).map_err(Error::Json)
}

/// Decodes a Secret object as `kubectl get secret … -o json` prints it, with the default
/// [`Limits`].
///
/// # Errors
/// As [`decode_secret_json_with`].
pub fn decode_secret_json(secret: &str) -> Result<Release> {
    decode_secret_json_with(secret, &Limits::default())
}

/// [`decode_secret_json`] with the caps `limits`: the Secret's JSON text counts against
/// `max_encoded_bytes` (it is mostly the base64 of `data.release`).
///
/// # Errors
/// [`Error::NotARelease`] for other objects; [`Error::TooLarge`] for a Secret over the cap;
/// as [`decode_release_field_with`].
pub fn decode_secret_json_with(secret: &str, limits: &Limits) -> Result<Release> {
    limits.encoded("Secret JSON", secret.len())?;
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
    decode_release_field_with(&helm_encoded, limits)
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

    fn small(max_encoded_bytes: usize, max_release_bytes: usize) -> Limits {
        Limits {
            max_encoded_bytes,
            max_release_bytes,
        }
    }

    fn limit_of(result: Result<Release>) -> (&'static str, &'static str, usize) {
        match result {
            Err(Error::TooLarge {
                what,
                limit_name,
                limit,
            }) => (what, limit_name, limit),
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_release_cap() {
        // 64 MiB of zeros gzip to about 64 KiB; the cap is 1 MiB.
        let bomb = {
            let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..64 {
                enc.write_all(&zeros).expect("gzip");
            }
            enc.finish().expect("gzip")
        };
        let helm = STANDARD.encode(&bomb);
        let err = decode_release_field_with(helm.as_bytes(), &small(usize::MAX, 1 << 20));
        assert_eq!(limit_of(err), ("gzip output", "max_release_bytes", 1 << 20));
        // The message names the limit.
        let message = decode_release_field_with(helm.as_bytes(), &small(usize::MAX, 1 << 20))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            message,
            "the gzip output is larger than the max_release_bytes limit of 1048576 bytes"
        );
        assert!(
            decode_release_field_with(helm.as_bytes(), &small(usize::MAX, 1 << 20))
                .err()
                .is_some_and(|e| e.is_too_large())
        );
    }

    #[test]
    fn a_release_exactly_at_the_cap_decodes_and_one_byte_more_does_not() {
        let json = release_json(2);
        let gz = STANDARD.encode(gzip(json.as_bytes()));
        let at = small(usize::MAX, json.len());
        assert_eq!(
            decode_release_field_with(gz.as_bytes(), &at)
                .expect("fits")
                .version,
            2
        );
        let under = small(usize::MAX, json.len() - 1);
        assert_eq!(
            limit_of(decode_release_field_with(gz.as_bytes(), &under)),
            ("gzip output", "max_release_bytes", json.len() - 1)
        );
        // A plain (not gzipped) payload is held to the same cap before it is parsed.
        let plain = STANDARD.encode(json.as_bytes());
        assert_eq!(
            decode_release_field_with(plain.as_bytes(), &at)
                .expect("fits")
                .version,
            2
        );
        assert_eq!(
            limit_of(decode_release_field_with(plain.as_bytes(), &under)),
            ("release JSON", "max_release_bytes", json.len() - 1)
        );
    }

    #[test]
    fn base64_text_over_its_cap_is_refused_before_decoding() {
        let helm = STANDARD.encode(gzip(release_json(3).as_bytes()));
        let limits = small(helm.len() - 1, usize::MAX);
        assert_eq!(
            limit_of(decode_release_field_with(helm.as_bytes(), &limits)),
            ("base64 text", "max_encoded_bytes", helm.len() - 1)
        );
        assert!(decode_release_field_with(helm.as_bytes(), &small(helm.len(), usize::MAX)).is_ok());
    }

    #[test]
    fn a_secret_file_over_its_cap_is_refused_before_parsing() {
        let text = secret(&STANDARD.encode(STANDARD.encode(release_json(5))));
        assert_eq!(
            limit_of(decode_secret_json_with(
                &text,
                &small(text.len() - 1, usize::MAX)
            )),
            ("Secret JSON", "max_encoded_bytes", text.len() - 1)
        );
        assert_eq!(
            decode_secret_json_with(&text, &small(text.len(), usize::MAX))
                .expect("fits")
                .version,
            5
        );
    }

    #[test]
    fn the_default_caps_are_32_mib_of_json_and_16_mib_of_base64() {
        assert_eq!(Limits::default(), small(16 * 1024 * 1024, 32 * 1024 * 1024));
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
