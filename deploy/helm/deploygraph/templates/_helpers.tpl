{{/* Name of the chart, or nameOverride. */}}
{{- define "deploygraph.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart unless the release name already holds the chart's. */}}
{{- define "deploygraph.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "deploygraph.selectorLabels" -}}
app.kubernetes.io/name: {{ include "deploygraph.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "deploygraph.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "deploygraph.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: deploygraph
{{- end }}

{{- define "deploygraph.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "deploygraph.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "deploygraph.authSecretName" -}}
{{- default (printf "%s-auth" (include "deploygraph.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{- define "deploygraph.neo4jSecretName" -}}
{{- default (printf "%s-neo4j" (include "deploygraph.fullname" .)) .Values.store.neo4j.existingSecret }}
{{- end }}

{{- define "deploygraph.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The rules of one kind (ClusterRole or Role) in deploy/rbac.yaml, which the chart carries as
files/rbac.yaml (a link to it): the chart grants exactly what the watcher's RBAC test proves
sufficient, from one file.
*/}}
{{- define "deploygraph.rbacRules" -}}
{{- $kind := .kind }}
{{- $rules := list }}
{{- range $doc := splitList "\n---\n" (.root.Files.Get "files/rbac.yaml") }}
{{- $object := fromYaml $doc }}
{{- if eq (get $object "kind") $kind }}
{{- $rules = concat $rules (get $object "rules") }}
{{- end }}
{{- end }}
{{- if not $rules }}
{{- fail (printf "files/rbac.yaml (deploy/rbac.yaml) holds no %s rules" $kind) }}
{{- end }}
{{- toYaml $rules }}
{{- end }}
