#!/usr/bin/env bash
# End-to-end check of the `coredns` test service using only the exported env:
#   scripts/services up coredns && eval "$(scripts/services env)" && tests/support/coredns/smoke.sh
set -euo pipefail
: "${COREDNS_TEST_ADDR:?}" "${COREDNS_TEST_METRICS:?}"
q() { python3 "$(dirname "$0")/dnsquery.py" "$@"; }
check() { # check DESCRIPTION EXPECTED-SUBSTRING ARGS…
  local what=$1 want=$2 out
  shift 2
  out="$(q "$@")"
  printf '%s:\n%s\n' "$what" "$out"
  [[ $out == *"$want"* ]] || { echo "expected '$want'" >&2; exit 1; }
}
check "api A (udp)" "rcode=NOERROR answers=2" "$COREDNS_TEST_ADDR" api.example.test A
check "api A (tcp)" "rcode=NOERROR answers=2" --tcp "$COREDNS_TEST_ADDR" api.example.test A
check "missing" "rcode=NXDOMAIN" "$COREDNS_TEST_ADDR" missing.example.test A
check "www A" "CNAME api.example.test." "$COREDNS_TEST_ADDR" www.example.test A
check "v6 AAAA" "AAAA ::10" "$COREDNS_TEST_ADDR" v6.example.test AAAA
check "short A" "A 127.0.0.12" "$COREDNS_TEST_ADDR" short.example.test A
metrics="$(curl -fsS "$COREDNS_TEST_METRICS")"
grep '^coredns_cache_entries' <<<"$metrics"
echo "coredns smoke OK"
