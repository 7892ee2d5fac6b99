{{- define "qdm.name" -}}{{ .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- define "qdm.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}
{{- define "qdm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ include "qdm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "qdm.selector" -}}
app.kubernetes.io/name: {{ include "qdm.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}
{{- define "qdm.schedulerProbePort" -}}
{{- if .Values.tls.existingSecret }}{{ .Values.tls.healthPort }}{{ else }}{{ .Values.scheduler.grpcPort }}{{ end -}}
{{- end -}}
{{- define "qdm.image" -}}
{{- $reg := .root.Values.image.registry -}}
{{- if $reg }}{{ printf "%s/%s:%s" $reg .image.repository .image.tag }}{{ else }}{{ printf "%s:%s" .image.repository .image.tag }}{{ end -}}
{{- end -}}
{{- /* The Secret and key holding the scheduler's PostgreSQL URL; empty for SQLite. */ -}}
{{- define "qdm.storeSecret" -}}
{{- if and .Values.store.existingSecret .Values.postgresql.enabled -}}
{{- fail "store.existingSecret and postgresql.enabled are exclusive: the job store is either an existing PostgreSQL or the bundled one" -}}
{{- else if .Values.store.existingSecret -}}{{ .Values.store.existingSecret }}
{{- else if .Values.postgresql.enabled -}}{{ include "qdm.fullname" . }}-postgresql
{{- end -}}
{{- end -}}
{{- define "qdm.storeSecretKey" -}}
{{- if .Values.store.existingSecret }}{{ .Values.store.secretKey }}{{ else }}url{{ end -}}
{{- end -}}
