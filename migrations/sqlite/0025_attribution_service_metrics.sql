-- The attribution model reads what the health metric of each service around an alert did
-- before it (features `service_moved_near`, `service_moved_before`, `service_steady`,
-- `moved_below_first`) and its weights were refitted: every alert with stored suspects is
-- queued for re-attribution (a revisit), so that scores of the earlier weights are replaced by
-- the follow-up pipeline; until then the alert's suspects say the attribution is pending.
INSERT INTO follow_ups (kind, subject, enqueued_at_us, claimable_at_us, attempts)
SELECT 'revisit', alert_uid, CAST(strftime('%s', 'now') AS INTEGER) * 1000000, 0, 0
FROM (SELECT alert_uid FROM triggers UNION SELECT alert_uid FROM change_triggers) WHERE true
ON CONFLICT (kind, subject) DO NOTHING;
