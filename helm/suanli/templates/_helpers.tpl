{{/* Names, labels and the image reference shared by every template. */}}

{{- define "suanli.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* release-chart, or just the release name when it already contains the chart name. */}}
{{- define "suanli.fullname" -}}
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

{{/* Suffixed names: trimmed so the suffix always fits in 63 characters. */}}
{{- define "suanli.operatorName" -}}
{{- printf "%s-operator" (include "suanli.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}
{{- define "suanli.agentName" -}}
{{- printf "%s-agent" (include "suanli.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}

{{- define "suanli.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "suanli.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: suanli
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels must never change across upgrades: name, instance and component only. */}}
{{- define "suanli.selectorLabels" -}}
app.kubernetes.io/name: {{ include "suanli.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "suanli.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The restricted container securityContext (Pod Security Standard "restricted"). */}}
{{- define "suanli.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Pod-level: a numeric non-root user, matching the image's USER, so runAsNonRoot can verify it. */}}
{{- define "suanli.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* SUANLI_VENDOR_LIB_PATH: every libDir of every vendor library mount, in values order. */}}
{{- define "suanli.vendorLibPath" -}}
{{- $dirs := list }}
{{- range .Values.agent.vendorLibraries }}
{{- $root := printf "/host%s" (.hostPath | trimSuffix "/") }}
{{- range .libDirs }}
{{- $dirs = append $dirs (ternary $root (printf "%s/%s" $root .) (eq . ".")) }}
{{- end }}
{{- end }}
{{- join ":" $dirs }}
{{- end }}
