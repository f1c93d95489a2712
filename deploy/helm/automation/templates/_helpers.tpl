{{/* Names and labels. */}}
{{- define "automation.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "automation.fullname" -}}
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

{{- define "automation.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "automation.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component (api, worker, migrate). */}}
{{- define "automation.selectorLabels" -}}
app.kubernetes.io/name: {{ include "automation.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "automation.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "automation.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "automation.secretName" -}}
{{- default (printf "%s-secrets" (include "automation.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{- define "automation.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/* The environment every process gets: plain settings inline, credentials from the Secret. */}}
{{- define "automation.env" -}}
- name: ENV
  value: production
- name: DATA_DIR
  value: /tmp/data
- name: TEMPORAL_ADDRESS
  value: {{ required "temporal.address is required: host:port of the Temporal frontend" .Values.temporal.address | quote }}
- name: TEMPORAL_NAMESPACE
  value: {{ .Values.temporal.namespace | quote }}
- name: TEMPORAL_WAIT_TIMEOUT
  value: {{ .Values.temporal.waitTimeout | quote }}
{{- with .Values.temporal.uiUrl }}
- name: TEMPORAL_UI_URL
  value: {{ . | quote }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: "k8s.namespace.name={{ .Release.Namespace }},service.namespace={{ .Release.Name }}"
{{- range $name, $value := .Values.config }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- range $key := list "INTERNAL_API_KEY" "JWT_SECRET_KEY" "WEBHOOK_SECRET_KEY" "DATABASE_URL" }}
- name: {{ $key }}
  valueFrom:
    secretKeyRef:
      name: {{ include "automation.secretName" $ }}
      key: {{ $key }}
{{- end }}
{{- range $key := list "REDIS_URL" "REDIS_PASSWORD" "SMTP_USERNAME" "SMTP_PASSWORD" "TWILIO_ACCOUNT_SID" "TWILIO_AUTH_TOKEN" }}
- name: {{ $key }}
  valueFrom:
    secretKeyRef:
      name: {{ include "automation.secretName" $ }}
      key: {{ $key }}
      optional: true
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by the API, the worker and the migration Job. */}}
{{- define "automation.podSpecCommon" -}}
serviceAccountName: {{ include "automation.serviceAccountName" . }}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
volumes:
  - name: tmp
    emptyDir: {}
{{- end }}

{{/* Checksum of the created Secret, so that changed credentials roll the pods. */}}
{{- define "automation.secretChecksum" -}}
{{- if not .Values.secrets.existingSecret }}
checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
{{- end }}
