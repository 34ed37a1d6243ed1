{{/*
Names and labels follow the `helm create` scaffold so they read like every other chart.
*/}}

{{/* Chart name, overridable; also the Prometheus job label (see servicemonitor.yaml). */}}
{{- define "convoai-worker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name, truncated to the 63 characters Kubernetes names allow. */}}
{{- define "convoai-worker.fullname" -}}
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

{{- define "convoai-worker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "convoai-worker.labels" -}}
helm.sh/chart: {{ include "convoai-worker.chart" . }}
{{ include "convoai-worker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "convoai-worker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "convoai-worker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "convoai-worker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "convoai-worker.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image reference: a digest, when given, pins the image regardless of the tag. */}}
{{- define "convoai-worker.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
Worker settings as rendered into the ConfigMap. Strimzi owns the topics when KafkaTopic resources
are enabled, so the worker must not create them itself; static members get a session timeout
that outlasts a pod's replacement.
*/}}
{{- define "convoai-worker.config" -}}
{{- $config := deepCopy .Values.config }}
{{- if .Values.kafkaTopics.enabled }}
{{- $_ := set $config "createTopics" false }}
{{- end }}
{{- if .Values.staticMembership.enabled }}
{{- $_ := set $config "kafkaSessionTimeoutSeconds" .Values.staticMembership.sessionTimeoutSeconds }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* The workload's kind as kubectl names it (NOTES.txt) and as KEDA's scaleTargetRef does. */}}
{{- define "convoai-worker.workloadKind" -}}
{{- ternary "StatefulSet" "Deployment" .Values.staticMembership.enabled }}
{{- end }}

{{/*
"true" when KEDA's scaler needs credentials to read the lag: SASL, or TLS with the worker's CA or
client certificate (TLS with the system CAs needs none).
*/}}
{{- define "convoai-worker.kedaNeedsAuthentication" -}}
{{- $protocol := .Values.config.kafkaSecurityProtocol | default "PLAINTEXT" }}
{{- $tls := .Values.kafkaTls }}
{{- if and .Values.keda.enabled (or (hasPrefix "SASL_" $protocol) (and (hasSuffix "SSL" $protocol) (or $tls.caSecret $tls.clientSecret))) -}}
true
{{- end }}
{{- end }}

{{/*
The secrets the worker reads from files (`CONVOAI_<NAME>_FILE`), never from environment values:
a projected volume mounts each at /etc/convoai/secrets/<path>. With a tenants file, each App ID's
NCS secret is in that file, and the worker refuses CONVOAI_WEBHOOK_SECRET next to it.
Renders {"files": [{variable, secret, key, path}, ...]}.
*/}}
{{- define "convoai-worker.secretFiles" -}}
{{- $files := list }}
{{- $credentials := .Values.credentials }}
{{- if $credentials.existingSecret }}
{{- $wanted := list (list "CONVOAI_CUSTOMER_ID_FILE" $credentials.customerIdKey "customer-id") (list "CONVOAI_CUSTOMER_SECRET_FILE" $credentials.customerSecretKey "customer-secret") (list "CONVOAI_AUTH_TOKEN_FILE" $credentials.authTokenKey "auth-token") }}
{{- if not .Values.tenants.existingSecret }}
{{- $wanted = append $wanted (list "CONVOAI_WEBHOOK_SECRET_FILE" $credentials.webhookSecretKey "webhook-secret") }}
{{- end }}
{{- range $wanted }}
{{- if index . 1 }}
{{- $files = append $files (dict "variable" (index . 0) "secret" $credentials.existingSecret "key" (index . 1) "path" (index . 2)) }}
{{- end }}
{{- end }}
{{- end }}
{{- with .Values.kafkaSasl.existingSecret }}
{{- $files = append $files (dict "variable" "CONVOAI_KAFKA_SASL_PASSWORD_FILE" "secret" . "key" $.Values.kafkaSasl.passwordKey "path" "kafka-sasl-password") }}
{{- end }}
{{- toYaml (dict "files" $files) }}
{{- end }}

{{/*
Cross-field rules that values.schema.json cannot express; rendering fails with the reason.
*/}}
{{- define "convoai-worker.validate" -}}
{{- $config := .Values.config }}
{{- if le (float64 .Values.terminationGracePeriodSeconds) (float64 $config.drainGraceSeconds) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be larger than config.drainGraceSeconds (%v): the worker needs the grace period to drain, publish and commit before SIGKILL" .Values.terminationGracePeriodSeconds $config.drainGraceSeconds) }}
{{- end }}
{{- if .Values.keda.enabled }}
{{- if gt (int .Values.keda.maxReplicaCount) (int $config.topicPartitions) }}
{{- fail (printf "keda.maxReplicaCount (%v) must not exceed config.topicPartitions (%v): replicas beyond the partition count of %s get no partition and stay idle" .Values.keda.maxReplicaCount $config.topicPartitions $config.topicCommands) }}
{{- end }}
{{- if hasPrefix "SASL_" ($config.kafkaSecurityProtocol | default "PLAINTEXT") }}
{{- if not (and .Values.kafkaSasl.existingSecret $config.kafkaSaslUsername) }}
{{- fail "keda.enabled with SASL needs kafkaSasl.existingSecret and config.kafkaSaslUsername: KEDA's scaler connects with the worker's credentials" }}
{{- end }}
{{- end }}
{{- if gt (int .Values.keda.minReplicaCount) (int .Values.keda.maxReplicaCount) }}
{{- fail (printf "keda.minReplicaCount (%v) must not exceed keda.maxReplicaCount (%v)" .Values.keda.minReplicaCount .Values.keda.maxReplicaCount) }}
{{- end }}
{{- end }}
{{- end }}
