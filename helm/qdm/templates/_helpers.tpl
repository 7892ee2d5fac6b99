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
{{- if (include "qdm.tls" . | fromYaml).enabled }}{{ .Values.tls.healthPort }}{{ else }}{{ .Values.scheduler.grpcPort }}{{ end -}}
{{- end -}}
{{- /* Where the certificates come from, checked once for every template that needs them. TLS is on
       with tls.existingSecret or tls.certManager.enabled. cert-manager issues both certificates
       (Secrets <fullname>-scheduler-tls and <fullname>-worker-tls) when enabled and its
       cert-manager.io/v1 Certificate API exists; otherwise the named Secrets tls.existingSecret
       (scheduler) and tls.workerSecret (workers) are used. Returns YAML: enabled, certManager,
       schedulerSecret, workerSecret, workerServerName. */ -}}
{{- define "qdm.tls" -}}
{{- $t := .Values.tls -}}
{{- $cm := $t.certManager | default dict -}}
{{- $full := include "qdm.fullname" . -}}
{{- if not (or $t.existingSecret $cm.enabled) -}}
enabled: false
{{- else -}}
{{- if not .Values.auth.existingSecret -}}
{{- fail "TLS (tls.existingSecret or tls.certManager.enabled) needs auth.existingSecret as well: a scheduler with TLS refuses to start without a worker token (the Secret's worker-token key), which closes the worker protocol" -}}
{{- end -}}
{{- $useCm := false -}}
{{- if and $cm.enabled (.Capabilities.APIVersions.Has "cert-manager.io/v1/Certificate") }}{{ $useCm = true }}{{ end -}}
{{- if $useCm -}}
{{- if not ($cm.issuerRef | default dict).name -}}
{{- fail "tls.certManager.enabled needs tls.certManager.issuerRef.name: the cert-manager Issuer (or ClusterIssuer, with tls.certManager.issuerRef.kind) that signs the scheduler's and the workers' certificates; a CA issuer, so that their Secrets carry ca.crt" -}}
{{- end -}}
{{- else if not $t.existingSecret -}}
{{- fail "tls.certManager.enabled, but this cluster has no cert-manager (no cert-manager.io/v1 Certificate API): install cert-manager, or set tls.existingSecret (the scheduler's kubernetes.io/tls Secret) and tls.workerSecret (the workers')" -}}
{{- else if not $t.workerSecret -}}
{{- fail "TLS needs the workers' certificate: set tls.workerSecret to a kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt) whose certificate names tls.workerServerName, or tls.certManager.enabled with tls.certManager.issuerRef.name where cert-manager is installed; the workers serve their Sampling port over TLS and the scheduler refuses workers that do not" -}}
{{- end }}
enabled: true
certManager: {{ $useCm }}
schedulerSecret: {{ ternary (printf "%s-scheduler-tls" $full) $t.existingSecret $useCm | quote }}
workerSecret: {{ ternary (printf "%s-worker-tls" $full) $t.workerSecret $useCm | quote }}
workerServerName: {{ $t.workerServerName | default (printf "%s-worker" $full) | quote }}
{{- end -}}
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
