//! Release revisions read from a cluster: the Secrets Helm stores them in.

use crate::decode::{Limits, decode_release_field_with, revision_from_name, revision_order};
use crate::release::Release;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::{Api, Client};

/// Why revisions could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The API server refused or could not be reached.
    #[error("failed to list the release Secrets of {release} in {namespace}")]
    List {
        /// Release.
        release: String,
        /// Namespace.
        namespace: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// A revision's Secret cannot be decoded.
    #[error("revision {revision} of {release} ({secret}) cannot be decoded")]
    Decode {
        /// Release.
        release: String,
        /// Revision.
        revision: u32,
        /// Secret name.
        secret: String,
        /// Why.
        #[source]
        source: crate::decode::Error,
    },
}

/// One stored revision.
#[derive(Debug)]
pub struct StoredRevision {
    /// Revision number.
    pub revision: u32,
    /// The Secret's name.
    pub secret: String,
    /// The decoded release, or why it could not be decoded.
    pub release: Result<Release, crate::decode::Error>,
}

fn revision_of(secret: &Secret) -> Option<u32> {
    secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("version"))
        .and_then(|v| v.parse().ok())
        .or_else(|| secret.metadata.name.as_deref().and_then(revision_from_name))
}

/// Every revision of `release` in `namespace`, in revision order (numeric, not by name),
/// decoded with the default [`Limits`].
///
/// # Errors
/// [`ClusterError::List`] when the Secrets cannot be listed.
pub async fn revisions(
    client: &Client,
    namespace: &str,
    release: &str,
) -> Result<Vec<StoredRevision>, ClusterError> {
    revisions_with(client, namespace, release, &Limits::default()).await
}

/// [`revisions`], decoded with the caps `limits`.
///
/// # Errors
/// [`ClusterError::List`] when the Secrets cannot be listed.
pub async fn revisions_with(
    client: &Client,
    namespace: &str,
    release: &str,
    limits: &Limits,
) -> Result<Vec<StoredRevision>, ClusterError> {
    Ok(release_secrets(client, namespace, release)
        .await?
        .into_iter()
        .map(|(revision, secret)| decode(revision, &secret, limits))
        .collect())
}

/// The newest revision of `release` before `revision` that decodes, with the caps `limits`;
/// `None` when there is none. Only the revisions it has to look at are decoded (newest
/// first), not the whole history.
///
/// # Errors
/// [`ClusterError::List`] when the Secrets cannot be listed.
pub async fn previous_release(
    client: &Client,
    namespace: &str,
    release: &str,
    revision: u32,
    limits: &Limits,
) -> Result<Option<Release>, ClusterError> {
    Ok(release_secrets(client, namespace, release)
        .await?
        .into_iter()
        .rev()
        .filter(|(r, _)| *r < revision)
        .find_map(|(r, secret)| decode(r, &secret, limits).release.ok()))
}

/// The release's Secrets with their revision numbers, in revision order.
async fn release_secrets(
    client: &Client,
    namespace: &str,
    release: &str,
) -> Result<Vec<(u32, Secret)>, ClusterError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let selector = format!("owner=helm,name={release}");
    let list = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| ClusterError::List {
            release: release.to_owned(),
            namespace: namespace.to_owned(),
            source,
        })?;
    let mut secrets: Vec<Secret> = list
        .items
        .into_iter()
        .filter(|s| s.type_.as_deref() == Some("helm.sh/release.v1"))
        .collect();
    revision_order(&mut secrets, revision_of);
    Ok(secrets
        .into_iter()
        .filter_map(|secret| Some((revision_of(&secret)?, secret)))
        .collect())
}

fn decode(revision: u32, secret: &Secret, limits: &Limits) -> StoredRevision {
    // The Secret API's base64 is already undone here; Helm's own layer remains.
    let payload = secret
        .data
        .as_ref()
        .and_then(|d| d.get("release"))
        .map(|b| b.0.as_slice())
        .unwrap_or_default();
    StoredRevision {
        revision,
        secret: secret.metadata.name.clone().unwrap_or_default(),
        release: decode_release_field_with(payload, limits),
    }
}

impl StoredRevision {
    /// The decoded release.
    ///
    /// # Errors
    /// [`ClusterError::Decode`] when the Secret is corrupt.
    pub fn decoded(self, release: &str) -> Result<Release, ClusterError> {
        let (revision, secret) = (self.revision, self.secret);
        self.release.map_err(|source| ClusterError::Decode {
            release: release.to_owned(),
            revision,
            secret,
            source,
        })
    }
}

/// The revisions to diff: `to` (default the newest) and `from` (default the one before `to`).
/// `None` when they do not exist.
pub fn choose(
    revisions: Vec<StoredRevision>,
    from: Option<u32>,
    to: Option<u32>,
) -> Option<(StoredRevision, StoredRevision)> {
    let to_number = to.or_else(|| revisions.last().map(|r| r.revision))?;
    let from_number = from.or_else(|| {
        revisions
            .iter()
            .map(|r| r.revision)
            .filter(|n| *n < to_number)
            .max()
    })?;
    let mut from_rev = None;
    let mut to_rev = None;
    for r in revisions {
        if r.revision == from_number {
            from_rev = Some(r);
        } else if r.revision == to_number {
            to_rev = Some(r);
        }
    }
    Some((from_rev?, to_rev?))
}
