{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "govcloud.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name, truncated to the 63 characters of a DNS label. */}}
{{- define "govcloud.fullname" -}}
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

{{/*
The full name plus "-SUFFIX", the full name shortened so the result fits in 63 characters.
Call with (list $ "SUFFIX").
*/}}
{{- define "govcloud.suffixedName" -}}
{{- $ctx := index . 0 }}
{{- $suffix := index . 1 }}
{{- $base := include "govcloud.fullname" $ctx | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base $suffix }}
{{- end }}

{{- define "govcloud.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "govcloud.labels" -}}
helm.sh/chart: {{ include "govcloud.chart" . }}
app.kubernetes.io/name: {{ include "govcloud.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: govcloud
{{- end }}

{{/* Selector labels of the control-plane pods. */}}
{{- define "govcloud.selectorLabels" -}}
app.kubernetes.io/name: {{ include "govcloud.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: api
{{- end }}

{{- define "govcloud.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "govcloud.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "govcloud.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret holding the admin token: the user's, or the one the chart generates. */}}
{{- define "govcloud.databaseSecretName" -}}
{{- include "govcloud.suffixedName" (list . "database") }}
{{- end }}

{{- define "govcloud.adminTokenSecretName" -}}
{{- if .Values.adminToken.existingSecret }}
{{- .Values.adminToken.existingSecret }}
{{- else }}
{{- include "govcloud.suffixedName" (list . "admin-token") }}
{{- end }}
{{- end }}

{{- define "govcloud.adminTokenSecretKey" -}}
{{- if .Values.adminToken.existingSecret }}
{{- .Values.adminToken.existingSecretKey }}
{{- else -}}
admin-token
{{- end }}
{{- end }}

{{/* Bundled PostgreSQL: object names (Service, StatefulSet, Secret) and selector labels. */}}
{{/*
Shortened so that the StatefulSet's name stays within 52 characters (its pods'
controller-revision-hash label must fit in 63).
*/}}
{{- define "govcloud.postgresql.fullname" -}}
{{- printf "%s-postgresql" (include "govcloud.fullname" . | trunc 41 | trimSuffix "-") }}
{{- end }}

{{- define "govcloud.postgresql.selectorLabels" -}}
app.kubernetes.io/name: {{ include "govcloud.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: postgresql
{{- end }}

{{/*
A generated secret value that survives upgrades: reuse the live Secret's value for `key`
(already base64) when the cluster has it, else a new random alphanumeric string (base64).
Call with (dict "ctx" $ "name" SECRET_NAME "key" KEY "length" N).
`lookup` returns nothing under `helm template` and --dry-run=client, so those show fresh values.
*/}}
{{- define "govcloud.stableRandomB64" -}}
{{- $live := lookup "v1" "Secret" .ctx.Release.Namespace .name }}
{{- $data := dig "data" (dict) $live }}
{{- if hasKey $data .key }}
{{- index $data .key }}
{{- else }}
{{- randAlphaNum (int .length) | b64enc }}
{{- end }}
{{- end }}

{{/*
Cross-field checks that JSON Schema cannot express clearly; fail with a message that says
what to change.
*/}}
{{- define "govcloud.validate" -}}
{{- $db := .Values.database }}
{{- $sources := list }}
{{- if $db.url }}{{ $sources = append $sources "database.url" }}{{ end }}
{{- if $db.existingSecret }}{{ $sources = append $sources "database.existingSecret" }}{{ end }}
{{- if .Values.postgresql.enabled }}{{ $sources = append $sources "postgresql.enabled" }}{{ end }}
{{- if eq (len $sources) 0 }}
{{- fail "govcloud: no database configured: set database.url, or database.existingSecret (and database.existingSecretKey), or postgresql.enabled=true" }}
{{- end }}
{{- if gt (len $sources) 1 }}
{{- fail (printf "govcloud: choose one database source, got %s (set postgresql.enabled=false to use an external database)" (join " and " $sources)) }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and $pdb.enabled (not (kindIs "invalid" $pdb.maxUnavailable)) (not (kindIs "invalid" $pdb.minAvailable)) }}
{{- fail "govcloud: set only one of podDisruptionBudget.maxUnavailable and podDisruptionBudget.minAvailable (set the other to null)" }}
{{- end }}
{{- if and $pdb.enabled (kindIs "invalid" $pdb.maxUnavailable) (kindIs "invalid" $pdb.minAvailable) }}
{{- fail "govcloud: podDisruptionBudget.enabled needs maxUnavailable or minAvailable" }}
{{- end }}
{{- end }}
