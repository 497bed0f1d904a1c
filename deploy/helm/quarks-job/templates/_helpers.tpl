{{/* The chart name (upstream's helper). */}}
{{- define "quarks-job.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name: fullnameOverride, else the release name if it contains the chart name, else
<release>-<name>. (Upstream tested the release *namespace* instead of the release name.)
*/}}
{{- define "quarks-job.fullname" -}}
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

{{- define "quarks-job.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "quarks-job.selectorLabels" -}}
app.kubernetes.io/name: {{ include "quarks-job.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "quarks-job.labels" -}}
helm.sh/chart: {{ include "quarks-job.chart" . }}
{{ include "quarks-job.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The operator's ServiceAccount (upstream's helper, with the full name as default). */}}
{{- define "quarks-job.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "quarks-job.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The monitored id: global.monitoredID, else upstream's default, which namespaces of existing
installations are labelled with: upstream's full name, i.e. fullnameOverride, else the release
*namespace* if it contains the chart name, else <release>-<name>.
*/}}
{{- define "quarks-job.monitoredID" -}}
{{- if .Values.global.monitoredID }}
{{- .Values.global.monitoredID }}
{{- else if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Namespace }}
{{- .Release.Namespace | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "quarks-job.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "quarks-job.image" -}}
{{- printf "%s/%s:%s" .Values.image.org .Values.image.repository (include "quarks-job.imageTag" .) }}
{{- end }}

{{- define "quarks-job.webhookServiceName" -}}
{{- default (printf "%s-webhook" (include "quarks-job.fullname" . | trunc 55 | trimSuffix "-")) .Values.webhook.serviceName }}
{{- end }}

{{- define "quarks-job.webhookCertSecret" -}}
{{- default (printf "%s-webhook-cert" (include "quarks-job.fullname" .)) .Values.webhook.certSecret }}
{{- end }}

{{- define "quarks-job.pullSecretName" -}}
{{- printf "%s-pull-secret" (include "quarks-job.serviceAccountName" .) }}
{{- end }}

{{/*
The name of both webhook configurations the operator registers: quarks-job-<monitored id>, as
the binary's names::sanitize_subdomain makes it (a monitored id is a label value, so lower-case
and '_' → '-' is all that changes).
*/}}
{{- define "quarks-job.webhookConfigurationName" -}}
{{- printf "quarks-job-%s" (include "quarks-job.monitoredID" .) | lower | replace "_" "-" }}
{{- end }}

{{/* The ClusterRole bound in each monitored namespace (Jobs and pods there). */}}
{{- define "quarks-job.monitoredRole" -}}
{{- printf "%s-monitored" (include "quarks-job.fullname" .) }}
{{- end }}
