-- Topology from where teams keep it: every DEPENDS_ON edge has a source (`manual` for the API
-- and topology files, `backstage` for catalog imports, `mesh` for the observed call graph) and
-- the time that source last asserted it. One row per edge and source: a source's write never
-- removes another source's edges. Existing edges become `manual`, last seen now.
-- Services gain an owner (their `sla_tier` column is the SLA tier).
CREATE TABLE service_dependencies_sources (
    service_uid     TEXT NOT NULL REFERENCES services (uid),
    depends_on_uid  TEXT NOT NULL REFERENCES services (uid),
    source          TEXT NOT NULL,
    last_seen_at_us INTEGER NOT NULL,
    PRIMARY KEY (service_uid, depends_on_uid, source)
) STRICT, WITHOUT ROWID;
INSERT INTO service_dependencies_sources (service_uid, depends_on_uid, source, last_seen_at_us)
    SELECT service_uid, depends_on_uid, 'manual', CAST(strftime('%s', 'now') AS INTEGER) * 1000000
    FROM service_dependencies;
DROP TABLE service_dependencies;
ALTER TABLE service_dependencies_sources RENAME TO service_dependencies;
-- `dependents` reads edges by their target.
CREATE INDEX service_dependencies_target ON service_dependencies (depends_on_uid, service_uid);
ALTER TABLE services ADD COLUMN owner TEXT;
