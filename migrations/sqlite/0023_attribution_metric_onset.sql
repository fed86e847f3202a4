-- The attribution model reads each alert's metric onset (features `onset_near`, `onset_lead`
-- and `after_onset`) and its weights were refitted: every alert with stored suspects is queued
-- for re-attribution (a revisit), so that scores of the earlier weights are replaced by the
-- follow-up pipeline; until then the alert's suspects say the attribution is pending. The
-- revisit reads the alert's onset first when `serve --prometheus` is set.
INSERT INTO follow_ups (kind, subject, enqueued_at_us, claimable_at_us, attempts)
SELECT 'revisit', alert_uid, CAST(strftime('%s', 'now') AS INTEGER) * 1000000, 0, 0
FROM (SELECT alert_uid FROM triggers UNION SELECT alert_uid FROM change_triggers) WHERE true
ON CONFLICT (kind, subject) DO NOTHING;
