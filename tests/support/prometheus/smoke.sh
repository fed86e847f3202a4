#!/usr/bin/env bash
# End-to-end check of the `prometheus` + `alertmanager` test services using only the exported env:
#   scripts/services up prometheus alertmanager && eval "$(scripts/services env)" &&
#     tests/support/prometheus/smoke.sh
# Writes an always-firing rule into $PROMETHEUS_TEST_RULES, reloads Prometheus, waits until
# Alertmanager lists the alert, then restores the previous rules file and reloads again.
set -euo pipefail
: "${PROMETHEUS_TEST_URL:?}" "${PROMETHEUS_TEST_RULES:?}" "${ALERTMANAGER_TEST_URL:?}"
alert="DeploygraphSmoke$$"

out="$(curl -fsS "$PROMETHEUS_TEST_URL/api/v1/query?query=up")"
echo "prometheus up: $out"
[[ $out == *'"status":"success"'* ]]
out="$(curl -fsS "$ALERTMANAGER_TEST_URL/api/v2/status")"
echo "alertmanager status: ${out:0:200}…"
[[ $out == *'"cluster":{'* ]]

saved="$(mktemp)"
cp "$PROMETHEUS_TEST_RULES" "$saved"
restore() {
  cp "$saved" "$PROMETHEUS_TEST_RULES"
  rm -f "$saved"
  curl -fsS -X POST "$PROMETHEUS_TEST_URL/-/reload" || echo "warning: reload after restore failed" >&2
}
trap restore EXIT
cat >"$PROMETHEUS_TEST_RULES" <<RULES
groups:
  - name: smoke
    rules:
      - alert: $alert
        expr: vector(1)
        labels:
          severity: critical
        annotations:
          summary: always firing (tests/support/prometheus/smoke.sh)
RULES
curl -fsS -X POST "$PROMETHEUS_TEST_URL/-/reload"
t0=$SECONDS
while :; do
  out="$(curl -fsS "$ALERTMANAGER_TEST_URL/api/v2/alerts?filter=alertname%3D%22$alert%22")"
  if [[ $out == *"\"alertname\":\"$alert\""* ]]; then
    echo "alertmanager lists $alert after $((SECONDS - t0))s: ${out:0:300}…"
    break
  fi
  ((SECONDS - t0 < 30)) || { echo "alert $alert not in Alertmanager after 30s: $out" >&2; exit 1; }
  sleep 0.5
done
echo "prometheus smoke OK"
