#!/usr/bin/env bash
# tests/support/kube/smoke.sh [RELEASE] — end-to-end check of the `kube` test service, using only
# what `scripts/services env` exports (KUBECONFIG_TEST, KUBE_TEST_SERVER, HELM_TEST_BIN):
#   /version and /readyz?verbose with the kubeconfig's CA and token, a Namespace and a Deployment
#   created with plain JSON POSTs, then `helm install` + `helm upgrade` + `helm history` of a
#   one-ConfigMap chart made in a temp dir, and the release Secrets (owner=helm) it must leave.
# Leaves the release and objects in place (no controller-manager: namespaces never finish deleting).
#
#   scripts/services up kube && eval "$(scripts/services env)" && tests/support/kube/smoke.sh demo
set -euo pipefail

release=${1:-smoke-$(date +%s)}
: "${KUBECONFIG_TEST:?run: eval \"\$(scripts/services env)\" with kube up}"
: "${KUBE_TEST_SERVER:?}" "${HELM_TEST_BIN:?}"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
step() { printf '\n== %s\n' "$*" >&2; }
fail() { printf 'smoke: FAILED: %s\n' "$*" >&2; exit 1; }

# CA and token straight from the kubeconfig, as a client library would read them.
sed -n 's/^[[:space:]]*certificate-authority-data:[[:space:]]*//p' "$KUBECONFIG_TEST" | base64 -d >"$tmp/ca.crt"
printf 'Authorization: Bearer %s\n' "$(sed -n 's/^[[:space:]]*token:[[:space:]]*//p' "$KUBECONFIG_TEST")" >"$tmp/auth"
api() { # METHOD PATH [JSON]
  local args=(-sS --fail-with-body --max-time 20 --cacert "$tmp/ca.crt" -H @"$tmp/auth" -X "$1")
  if (($# > 2)); then args+=(-H 'Content-Type: application/json' --data-binary "$3"); fi
  curl "${args[@]}" "$KUBE_TEST_SERVER$2"
}

step "GET /version"
api GET /version | tee "$tmp/version"
grep -q '"gitVersion"' "$tmp/version" || fail "/version"

step "GET /readyz?verbose"
api GET '/readyz?verbose' | tail -n 3

ns="smoke-$(date +%s)-$RANDOM"
step "POST namespace $ns and a Deployment in it"
api POST /api/v1/namespaces "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"$ns\"}}" >/dev/null
api POST "/apis/apps/v1/namespaces/$ns/deployments" '{
  "apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "web", "labels": {"app": "web"}},
  "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
           "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}' >/dev/null
api GET "/apis/apps/v1/namespaces/$ns/deployments/web" | grep -q '"name": *"web"' || fail "deployment not readable"
echo "namespace $ns, deployment web: created"

step "helm install/upgrade/history of release $release"
mkdir -p "$tmp/chart/templates"
cat >"$tmp/chart/Chart.yaml" <<'YAML'
apiVersion: v2
name: smoke
version: 0.1.0
appVersion: "1.0"
YAML
printf 'greeting: hello\n' >"$tmp/chart/values.yaml"
cat >"$tmp/chart/templates/configmap.yaml" <<'YAML'
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
data:
  greeting: {{ .Values.greeting | quote }}
YAML
helm=("$HELM_TEST_BIN" --kubeconfig "$KUBECONFIG_TEST" -n default)
"${helm[@]}" install "$release" "$tmp/chart"
"${helm[@]}" upgrade "$release" "$tmp/chart" --set greeting=bonjour
"${helm[@]}" history "$release"
api GET "/api/v1/namespaces/default/configmaps/$release-config" | grep -q '"greeting": *"bonjour"' ||
  fail "configmap not upgraded"

step "release Secrets (owner=helm)"
api GET "/api/v1/namespaces/default/secrets?labelSelector=owner%3Dhelm,name%3D$release" >"$tmp/secrets"
grep -o '"name": *"sh\.helm\.release\.v1\.[^"]*"' "$tmp/secrets" | sort
for v in 1 2; do
  grep -q "\"name\": *\"sh.helm.release.v1.$release.v$v\"" "$tmp/secrets" || fail "secret sh.helm.release.v1.$release.v$v missing"
done
printf '\nsmoke: OK (namespace %s, release %s)\n' "$ns" "$release"
