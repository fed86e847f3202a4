-- Key history: the most recent changes of one config key anywhere in the graph, read from an
-- index. A config change repeats its deployment's start (`started_at_us`), backfilled here, so
-- "the N most recent deployments that changed this path" is one index range; the index replaces
-- the one on `path` alone.
ALTER TABLE config_changes ADD COLUMN started_at_us INTEGER;
UPDATE config_changes
   SET started_at_us = (SELECT d.started_at_us FROM deployments d
                        WHERE d.uid = config_changes.deployment_uid);
DROP INDEX config_changes_path;
CREATE INDEX config_changes_recent ON config_changes (path, started_at_us DESC, uid DESC);
