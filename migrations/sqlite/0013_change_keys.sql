-- Key history of changes that are not rollouts: a change's key repeats the change's `at_us`,
-- backfilled here, so "the N most recent changes of this key" is one index range, as for config
-- changes; the index replaces the one on `key` alone.
ALTER TABLE change_keys ADD COLUMN at_us INTEGER;
UPDATE change_keys
   SET at_us = (SELECT c.at_us FROM changes c WHERE c.uid = change_keys.change_uid);
DROP INDEX change_keys_key;
CREATE INDEX change_keys_recent ON change_keys (key, at_us DESC, change_uid DESC);
