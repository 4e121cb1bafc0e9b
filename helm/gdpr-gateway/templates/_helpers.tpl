{{/* Names, labels and the pieces the gateway's pods, the migration job and the test pod share. */}}

{{/* The chart name, truncated to 63 characters (DNS label limit). */}}
{{- define "gdpr-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* release-chart, or the release name alone when it already contains the chart name. */}}
{{- define "gdpr-gateway.fullname" -}}
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

{{/* A name derived from the full name with a suffix, still within 63 characters. */}}
{{- define "gdpr-gateway.suffixed" -}}
{{- $root := index . 0 }}
{{- $suffix := index . 1 }}
{{- printf "%s-%s" (include "gdpr-gateway.fullname" $root | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix }}
{{- end }}

{{- define "gdpr-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "gdpr-gateway.labels" -}}
helm.sh/chart: {{ include "gdpr-gateway.chart" . }}
app.kubernetes.io/name: {{ include "gdpr-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gdpr-gateway
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The gateway pods' selector: the component keeps the migration and test pods out of
the Service, the PodDisruptionBudget and the NetworkPolicy. */}}
{{- define "gdpr-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gdpr-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "gdpr-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gdpr-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "gdpr-gateway.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The Secret the pods read: the operator's, or the one this chart creates. */}}
{{- define "gdpr-gateway.secretName" -}}
{{- default (include "gdpr-gateway.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "gdpr-gateway.sqlite" -}}
{{- if eq .Values.audit.store "sqlite" }}true{{ end }}
{{- end }}

{{/* The store URL comes from the Secret (key audit-url) unless it is in the values. */}}
{{- define "gdpr-gateway.urlFromSecret" -}}
{{- if and (eq .Values.audit.store "postgresql") (not .Values.audit.postgresql.url) }}true{{ end }}
{{- end }}

{{- define "gdpr-gateway.configDir" -}}/etc/gdpr-gateway/config{{- end }}
{{- define "gdpr-gateway.policiesDir" -}}/etc/gdpr-gateway/policies{{- end }}
{{- define "gdpr-gateway.secretsDir" -}}/var/run/secrets/gdpr-gateway{{- end }}
{{- define "gdpr-gateway.dataDir" -}}/var/lib/gdpr-gateway{{- end }}

{{/* Secret files: Secret key -> the gateway's *_FILE variable (docs/configuration.md). */}}
{{- define "gdpr-gateway.secretFiles" -}}
audit-master-key: GDPR_GATEWAY_AUDIT_MASTER_KEY_FILE
audit-signing-key: GDPR_GATEWAY_AUDIT_SIGNING_KEY_FILE
masking-pseudonym-key: GDPR_GATEWAY_MASKING_PSEUDONYM_KEY_FILE
masking-hash-salt: GDPR_GATEWAY_MASKING_HASH_SALT_FILE
auth-tokens: GDPR_GATEWAY_AUTH_TOKENS_FILE
timelog-token: GDPR_GATEWAY_UPSTREAMS_TIMELOG_CREDENTIALS_TOKEN_FILE
billbee-api-key: GDPR_GATEWAY_UPSTREAMS_BILLBEE_CREDENTIALS_API_KEY_FILE
billbee-username: GDPR_GATEWAY_UPSTREAMS_BILLBEE_CREDENTIALS_USERNAME_FILE
billbee-password: GDPR_GATEWAY_UPSTREAMS_BILLBEE_CREDENTIALS_PASSWORD_FILE
sedona-username: GDPR_GATEWAY_UPSTREAMS_SEDONA_CREDENTIALS_USERNAME_FILE
sedona-password: GDPR_GATEWAY_UPSTREAMS_SEDONA_CREDENTIALS_PASSWORD_FILE
keycom-token: GDPR_GATEWAY_UPSTREAMS_KEYCOM_CREDENTIALS_TOKEN_FILE
{{- if include "gdpr-gateway.urlFromSecret" . }}
audit-url: GDPR_GATEWAY_AUDIT_URL_FILE
{{- end }}
{{- end }}

{{/* The gateway's config.yaml: .Values.config plus what the chart decides itself. */}}
{{- define "gdpr-gateway.config" -}}
{{- $config := deepCopy .Values.config }}
{{- $_ := set $config "host" "0.0.0.0" }}
{{- $_ := set $config "port" (int .Values.service.port) }}
{{- $_ := set $config "policies_dir" (include "gdpr-gateway.policiesDir" .) }}
{{- $audit := default dict (get $config "audit") }}
{{- if include "gdpr-gateway.sqlite" . }}
{{- $_ := set $audit "url" (printf "sqlite+aiosqlite:///%s/audit.db" (include "gdpr-gateway.dataDir" .)) }}
{{- else if .Values.audit.postgresql.url }}
{{- $_ := set $audit "url" .Values.audit.postgresql.url }}
{{- end }}
{{- $_ := set $config "audit" $audit }}
{{- $auth := default dict (get $config "auth") }}
{{- if not (get $auth "jwt") }}
{{- $_ := unset $auth "jwt" }}
{{- end }}
{{- if $auth }}
{{- $_ := set $config "auth" $auth }}
{{- else }}
{{- $_ := unset $config "auth" }}
{{- end }}
{{- range $system, $upstream := $config.upstreams }}
{{- $_ := required (printf "config.upstreams.%s.base_url is required" $system) $upstream.base_url }}
{{- end }}
{{- $_ := required "config.upstreams.timelog.options.account is required" $config.upstreams.timelog.options.account }}
{{- /* the gateway's own defaults are 5 and 20 seconds: written only when changed */}}
{{- if or (ne (int .Values.shutdown.drainSeconds) 5) (ne (int .Values.shutdown.graceSeconds) 20) }}
{{- $_ := set $config "shutdown" (dict "drain_seconds" (int .Values.shutdown.drainSeconds) "grace_seconds" (int .Values.shutdown.graceSeconds)) }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* The policy files: the catalog shipped with the chart, overridden file by file. */}}
{{- define "gdpr-gateway.policies" -}}
{{- $files := dict }}
{{- range $path, $_ := .Files.Glob "files/policies/*.yaml" }}
{{- $_ := set $files (base $path) ($.Files.Get $path) }}
{{- end }}
{{- range $name, $text := .Values.policies.files }}
{{- $_ := set $files $name $text }}
{{- end }}
{{- toYaml $files }}
{{- end }}

{{/* terminationGracePeriodSeconds: drain + grace + margin, unless given. */}}
{{- define "gdpr-gateway.terminationGrace" -}}
{{- if .Values.terminationGracePeriodSeconds }}
{{- .Values.terminationGracePeriodSeconds }}
{{- else }}
{{- add .Values.shutdown.drainSeconds .Values.shutdown.graceSeconds .Values.shutdown.marginSeconds }}
{{- end }}
{{- end }}

{{/* PGPASSWORD from a Secret key (asyncpg reads it when the URL carries no password). */}}
{{- define "gdpr-gateway.pgPasswordEnv" -}}
{{- with .Values.audit.postgresql.passwordSecret }}
{{- if and .name (eq $.Values.audit.store "postgresql") }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key }}
{{- end }}
{{- end }}
{{- end }}

{{/* The gateway container's environment: one *_FILE variable per mounted secret file. */}}
{{- define "gdpr-gateway.secretEnv" -}}
{{- $dir := include "gdpr-gateway.secretsDir" . }}
{{- range $key, $variable := include "gdpr-gateway.secretFiles" . | fromYaml }}
- name: {{ $variable }}
  value: {{ printf "%s/%s" $dir $key }}
{{- end }}
{{- include "gdpr-gateway.pgPasswordEnv" . }}
{{- end }}

{{- define "gdpr-gateway.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "gdpr-gateway.containerSecurityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}

{{/* The alert rules' series selector. */}}
{{- define "gdpr-gateway.ruleSelector" -}}
{{- tpl .Values.metrics.prometheusRule.selector . }}
{{- end }}

{{/* Render the monitoring.coreos.com objects? (CRD present, or forced) */}}
{{- define "gdpr-gateway.monitoringCRDs" -}}
{{- if or .Values.metrics.forceCRDs (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") }}true{{ end }}
{{- end }}
