// Helm release revisions by release, in revision order.
CREATE INDEX helm_revision_release IF NOT EXISTS FOR (n:HelmRevision) ON (n.namespace, n.release, n.revision);
