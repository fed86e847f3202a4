// Topology from where teams keep it: every DEPENDS_ON relationship has a `source` (`manual` for
// the API and topology files, `backstage` for catalog imports, `mesh` for the observed call
// graph) and `last_seen_at`, one relationship per pair and source. Existing ones become `manual`,
// last seen now. Services gain `owner` (and `sla_tier`, the SLA tier) when a source gives them.
MATCH (:Service)-[r:DEPENDS_ON]->(:Service)
WHERE r.source IS NULL
SET r.source = 'manual', r.last_seen_at = datetime();
CREATE INDEX depends_on_source IF NOT EXISTS FOR ()-[r:DEPENDS_ON]-() ON (r.source);
