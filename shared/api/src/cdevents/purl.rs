//! Package URLs (`pkg:TYPE/NAMESPACE/NAME@VERSION?QUALIFIERS#SUBPATH`), as CDEvents name
//! artifacts, and what they say about the image and the commit a service runs.

use std::collections::BTreeMap;

/// A parsed package URL, its components percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Purl {
    /// The package type, lower-case (`oci`, `docker`, `maven`).
    pub ty: String,
    /// The namespace (`library`, `org.acme`), when there is one.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
    /// The version (for `oci`, the image digest).
    pub version: Option<String>,
    /// The qualifiers (`repository_url`, `tag`, `vcs_url` …).
    pub qualifiers: BTreeMap<String, String>,
}

fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Purl {
    /// Parses a package URL; `None` when `value` is not one.
    pub(crate) fn parse(value: &str) -> Option<Self> {
        let rest = value.strip_prefix("pkg:")?.trim_start_matches('/');
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (path, version) = match rest.rsplit_once('@') {
            Some((path, version)) => (path, Some(percent_decode(version)?)),
            None => (rest, None),
        };
        let (ty, path) = path.split_once('/')?;
        let ty = ty.to_ascii_lowercase();
        let valid_type = !ty.is_empty()
            && ty
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'));
        if !valid_type {
            return None;
        }
        let segments = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect::<Option<Vec<_>>>()?;
        let (name, namespace) = segments.split_last()?;
        if name.is_empty() {
            return None;
        }
        let mut qualifiers = BTreeMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=')?;
            qualifiers.insert(key.to_ascii_lowercase(), percent_decode(value)?);
        }
        Some(Self {
            ty,
            namespace: (!namespace.is_empty()).then(|| namespace.join("/")),
            name: name.clone(),
            version: version.filter(|v| !v.is_empty()),
            qualifiers,
        })
    }

    fn qualifier(&self, key: &str) -> Option<&str> {
        self.qualifiers
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The container image the package URL names: `oci` (version = digest,
    /// `repository_url` and `tag` qualifiers) and `docker` (version = tag or digest). Other
    /// package types are not images.
    pub(crate) fn image(&self) -> Option<PurlImage> {
        let path = match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        };
        match self.ty.as_str() {
            "oci" => Some(PurlImage {
                repository: self
                    .qualifier("repository_url")
                    .map_or_else(|| self.name.clone(), str::to_owned),
                tag: self.qualifier("tag").map(str::to_owned),
                digest: self.version.clone(),
            }),
            "docker" => {
                let repository = match self.qualifier("repository_url") {
                    Some(registry) => format!("{}/{path}", registry.trim_end_matches('/')),
                    None => path,
                };
                let (tag, digest) = match &self.version {
                    Some(v) if v.contains(':') => (None, Some(v.clone())),
                    Some(v) => (Some(v.clone()), None),
                    None => (None, None),
                };
                Some(PurlImage {
                    repository,
                    tag,
                    digest,
                })
            }
            _ => None,
        }
    }

    /// The commit the `vcs_url` qualifier pins (`git+https://github.com/acme/app@9fceb02`):
    /// `(repository, sha)`, when its revision looks like a commit SHA.
    pub(crate) fn vcs_commit(&self) -> Option<(String, String)> {
        let vcs = self.qualifier("vcs_url")?;
        let (url, revision) = vcs.rsplit_once('@')?;
        let is_sha =
            (7..=40).contains(&revision.len()) && revision.bytes().all(|b| b.is_ascii_hexdigit());
        if !is_sha {
            return None;
        }
        let url = url.strip_prefix("git+").unwrap_or(url);
        let url = url.split_once("://").map_or(url, |(_, rest)| rest);
        let url = url.split_once('@').map_or(url, |(_, host)| host);
        let repo = url.trim_end_matches('/').trim_end_matches(".git");
        Some((repo.to_owned(), revision.to_owned()))
    }
}

/// An image named by a package URL; the digest is as written, validated by the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PurlImage {
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const DIGEST: &str = "sha256:0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db93427";

    #[test]
    fn an_oci_purl_names_an_image_by_digest() {
        let purl = Purl::parse(
            "pkg:oci/myapp@sha256%3A0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db93427",
        )
        .unwrap();
        assert_eq!(
            purl.image(),
            Some(PurlImage {
                repository: "myapp".into(),
                tag: None,
                digest: Some(DIGEST.into())
            })
        );
        let purl = Purl::parse(&format!(
            "pkg:oci/payments@{}?repository_url=ghcr.io%2Facme%2Fpayments&tag=v2.3.0",
            DIGEST.replace(':', "%3A")
        ))
        .unwrap();
        let image = purl.image().unwrap();
        assert_eq!(image.repository, "ghcr.io/acme/payments");
        assert_eq!(image.tag.as_deref(), Some("v2.3.0"));
    }

    #[test]
    fn a_docker_purl_names_an_image_by_tag() {
        let purl = Purl::parse("pkg:docker/acme/api@1.4.2?repository_url=gcr.io").unwrap();
        assert_eq!(
            purl.image(),
            Some(PurlImage {
                repository: "gcr.io/acme/api".into(),
                tag: Some("1.4.2".into()),
                digest: None
            })
        );
    }

    #[test]
    fn other_package_types_are_not_images() {
        let purl = Purl::parse("pkg:maven/org.acme/billing@3.1.0").unwrap();
        assert_eq!(purl.namespace.as_deref(), Some("org.acme"));
        assert_eq!(purl.version.as_deref(), Some("3.1.0"));
        assert_eq!(purl.image(), None);
    }

    #[test]
    fn the_vcs_url_qualifier_pins_a_commit() {
        let purl = Purl::parse(
            "pkg:oci/app@sha256%3Aab?vcs_url=git%2Bhttps%3A%2F%2Fgithub.com%2Facme%2Fapp.git%409fceb02d0ae5",
        )
        .unwrap();
        assert_eq!(
            purl.vcs_commit(),
            Some(("github.com/acme/app".into(), "9fceb02d0ae5".into()))
        );
        let branch =
            Purl::parse("pkg:oci/app?vcs_url=git%2Bhttps%3A%2F%2Fgithub.com%2Facme%2Fapp%40main")
                .unwrap();
        assert_eq!(branch.vcs_commit(), None);
    }

    #[test]
    fn what_is_not_a_purl_is_refused() {
        for bad in [
            "",
            "myapp:1.0",
            "pkg:",
            "pkg:oci",
            "pkg:oci/",
            "pkg:o ci/x",
            "pkg:oci/x@%zz",
        ] {
            assert_eq!(Purl::parse(bad), None, "{bad}");
        }
    }
}
