// Alerts and root-cause analysis: look-ups of alerts by service and start, chaos runs by target.
CREATE INDEX alert_service IF NOT EXISTS FOR (n:Alert) ON (n.service, n.starts_at_us);
CREATE INDEX alert_newest IF NOT EXISTS FOR (n:Alert) ON (n.starts_at_us);
CREATE INDEX chaos_run_service IF NOT EXISTS FOR (n:ChaosRun) ON (n.service_uid, n.started_at_us);
CREATE INDEX chaos_run_newest IF NOT EXISTS FOR (n:ChaosRun) ON (n.started_at_us);
CREATE INDEX service_name IF NOT EXISTS FOR (n:Service) ON (n.name);
