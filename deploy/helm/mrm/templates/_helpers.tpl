{{/* Names, labels and the image reference shared by the templates. */}}

{{- define "mrm.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mrm.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Pod selector of one service; call with (dict "root" $ "svc" "planning"). */}}
{{- define "mrm.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .svc }}
{{- end -}}

{{- define "mrm.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "mrm.secretName" -}}
{{- if .Values.secrets.create -}}
{{ include "mrm.fullname" . }}-secrets
{{- else -}}
{{ required "secrets.existingSecret is required when secrets.create is false" .Values.secrets.existingSecret }}
{{- end -}}
{{- end -}}

{{/* The Secret key holding a service's store URL (none for a service without one). */}}
{{- define "mrm.storeKey" -}}
{{- if eq . "measurement" -}}
MRM_CLICKHOUSE_URL
{{- else -}}
MRM_{{ upper . }}_DATABASE_URL
{{- end -}}
{{- end -}}
