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
that outlasts a pod's replacement. CONVOAI_PROCESSES only when above 1: a release of one process
per pod renders as it did before the setting existed (no new ConfigMap checksum, no rollout).
*/}}
{{- define "convoai-worker.config" -}}
{{- $config := deepCopy .Values.config }}
{{- if gt (int .Values.processes) 1 }}
{{- $_ := set $config "processes" (int .Values.processes) }}
{{- end }}
{{- if .Values.kafkaTopics.enabled }}
{{- $_ := set $config "createTopics" false }}
{{- end }}
{{- if .Values.staticMembership.enabled }}
{{- $_ := set $config "kafkaSessionTimeoutSeconds" .Values.staticMembership.sessionTimeoutSeconds }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/*
The container's resources. The values are one worker process's: with processes N above 1 the
cpu and memory of requests and limits are multiplied by N (cpu in millicores, whole cores when
it comes out even; memory in the unit it was given); other resources are kept as they are.
*/}}
{{- define "convoai-worker.resources" -}}
{{- $n := int .Values.processes }}
{{- $resources := deepCopy .Values.resources }}
{{- if gt $n 1 }}
{{- range $kind := list "requests" "limits" }}
{{- $amounts := get $resources $kind }}
{{- if $amounts }}
{{- with get $amounts "cpu" }}
{{- $_ := set $amounts "cpu" (include "convoai-worker.scaledCpu" (list . $n)) }}
{{- end }}
{{- with get $amounts "memory" }}
{{- $_ := set $amounts "memory" (include "convoai-worker.scaledMemory" (list . $n)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $resources }}
{{- end }}

{{/* A cpu quantity ("200m", "1", 1.5) times an integer: "400m", "2", "3". */}}
{{- define "convoai-worker.scaledCpu" -}}
{{- $text := toString (index . 0) }}
{{- $milli := 0.0 }}
{{- if hasSuffix "m" $text }}
{{- $milli = float64 (trimSuffix "m" $text) }}
{{- else }}
{{- $milli = mulf (float64 $text) 1000 }}
{{- end }}
{{- $scaled := int (round (mulf $milli (index . 1)) 0) }}
{{- if eq (mod $scaled 1000) 0 }}{{ div $scaled 1000 }}{{ else }}{{ $scaled }}m{{ end }}
{{- end }}

{{/* A memory quantity ("256Mi", "1.5Gi", 536870912) times an integer: "512Mi", "3Gi". */}}
{{- define "convoai-worker.scaledMemory" -}}
{{- $value := index . 0 }}
{{- $n := index . 1 }}
{{- if not (kindIs "string" $value) }}
{{- int64 (mulf $value $n) }}
{{- else }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $value }}
{{- if not $number }}
{{- fail (printf "resources memory %q is not a quantity the chart can multiply by processes: write it as a number with a unit, such as 512Mi" $value) }}
{{- end }}
{{- $scaled := mulf (float64 $number) $n }}
{{- if eq $scaled (floor $scaled) }}{{ int64 $scaled }}{{ else }}{{ $scaled }}{{ end }}{{ trimPrefix $number $value }}
{{- end }}
{{- end }}

{{/* The workload's kind as kubectl names it (NOTES.txt) and as KEDA's scaleTargetRef does. */}}
{{- define "convoai-worker.workloadKind" -}}
{{- ternary "StatefulSet" "Deployment" .Values.staticMembership.enabled }}
{{- end }}

{{/* The SASL mechanism the worker uses, or nothing when its security protocol has no SASL. */}}
{{- define "convoai-worker.saslMechanism" -}}
{{- if hasPrefix "SASL_" (.Values.config.kafkaSecurityProtocol | default "PLAINTEXT") }}
{{- .Values.config.kafkaSaslMechanism | default "PLAIN" }}
{{- end }}
{{- end }}

{{/*
"true" when the chart mounts the OAUTHBEARER token (kafkaOAuth) as the worker's token file.
*/}}
{{- define "convoai-worker.oauthTokenMounted" -}}
{{- $oauth := .Values.kafkaOAuth }}
{{- if and (eq (include "convoai-worker.saslMechanism" .) "OAUTHBEARER") (or $oauth.serviceAccountTokenAudience $oauth.existingSecret) -}}
true
{{- end }}
{{- end }}

{{/*
"true" when the chart renders KEDA's TriggerAuthentication: KEDA needs credentials to read the lag
(SASL, AWS identity for MSK IAM, or TLS with the worker's CA or client certificate; TLS with the
system CAs needs none) and keda.authenticationRef names none of the user's own.
*/}}
{{- define "convoai-worker.kedaNeedsAuthentication" -}}
{{- $protocol := .Values.config.kafkaSecurityProtocol | default "PLAINTEXT" }}
{{- $tls := .Values.kafkaTls }}
{{- if and .Values.keda.enabled (not .Values.keda.authenticationRef.name) (or (hasPrefix "SASL_" $protocol) (and (hasSuffix "SSL" $protocol) (or $tls.caSecret $tls.clientSecret))) -}}
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
The worker's release and shutdown deadlines (worker/deadlines.py, the same arithmetic): the
revoke grace is what the rebalance timeout leaves after one heartbeat, the interrupt wait
(a sixth of it, at least 1 s), the kill wait (0.5 s) and the commit (a tenth, at least 1 s);
the termination grace is the drain grace, those three phases, each Kafka client's stop (2 x
5 s), 5 s for the rest of closing and the watchdog's 2 s, rounded up.
*/}}
{{- define "convoai-worker.deadlines" -}}
{{- $config := .Values.config }}
{{- $rebalance := float64 ($config.kafkaRebalanceTimeoutSeconds | default 30) }}
{{- $heartbeat := float64 ($config.kafkaHeartbeatIntervalSeconds | default 3) }}
{{- $drain := float64 ($config.drainGraceSeconds | default 25) }}
{{- $interrupt := maxf 1.0 (divf $rebalance 6) }}
{{- $commit := maxf 1.0 (divf $rebalance 10) }}
{{- $afterGrace := addf $interrupt 0.5 $commit }}
{{- $revokeGrace := subf (subf $rebalance $heartbeat) $afterGrace }}
{{- $shutdown := addf $drain $afterGrace 10.0 5.0 }}
rebalance: {{ $rebalance }}
heartbeat: {{ $heartbeat }}
revokeGrace: {{ $revokeGrace }}
terminationGrace: {{ ceil (addf $shutdown 2.0) | int }}
{{- end }}

{{/*
Cross-field rules that values.schema.json cannot express; rendering fails with the reason.
*/}}
{{- define "convoai-worker.validate" -}}
{{- $config := .Values.config }}
{{- $mechanism := include "convoai-worker.saslMechanism" . }}
{{- if eq $mechanism "OAUTHBEARER" }}
{{- $oauth := .Values.kafkaOAuth }}
{{- $sources := compact (list $oauth.serviceAccountTokenAudience $oauth.existingSecret $config.kafkaSaslOauthTokenFile $config.kafkaSaslOauthTokenCommand) }}
{{- if ne (len $sources) 1 }}
{{- fail (printf "config.kafkaSaslMechanism OAUTHBEARER needs exactly one token source (%d given): kafkaOAuth.serviceAccountTokenAudience, kafkaOAuth.existingSecret, config.kafkaSaslOauthTokenFile or config.kafkaSaslOauthTokenCommand" (len $sources)) }}
{{- end }}
{{- end }}
{{- if eq $mechanism "AWS_MSK_IAM" }}
{{- if not (and $config.kafkaAwsRegion (eq $config.kafkaSecurityProtocol "SASL_SSL")) }}
{{- fail "config.kafkaSaslMechanism AWS_MSK_IAM needs config.kafkaAwsRegion (the MSK cluster's region) and config.kafkaSecurityProtocol SASL_SSL (MSK serves IAM on TLS only)" }}
{{- end }}
{{- end }}
{{- $deadlines := include "convoai-worker.deadlines" . | fromYaml }}
{{- if lt (float64 $deadlines.revokeGrace) 1.0 }}
{{- fail (printf "config.kafkaRebalanceTimeoutSeconds (%v) leaves %.2f s of revoke grace after one heartbeat (config.kafkaHeartbeatIntervalSeconds %v), the interrupt wait, the kill wait and the commit; it must leave at least 1 s (the worker refuses these settings too)" $deadlines.rebalance $deadlines.revokeGrace $deadlines.heartbeat) }}
{{- end }}
{{- with .Values.terminationGracePeriodSeconds }}
{{- if lt (int .) (int $deadlines.terminationGrace) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) is shorter than the worker's shutdown bound (%v s: config.drainGraceSeconds, the interrupt wait, the kill wait, the commit and each Kafka client's stop): the kubelet would SIGKILL a draining worker; leave it empty to derive it" . $deadlines.terminationGrace) }}
{{- end }}
{{- end }}
{{- if .Values.keda.enabled }}
{{- $members := mul .Values.keda.maxReplicaCount .Values.processes }}
{{- if gt (int $members) (int $config.topicPartitions) }}
{{- if gt (int .Values.processes) 1 }}
{{- fail (printf "keda.maxReplicaCount (%v) times processes (%v) must not exceed config.topicPartitions (%v): group members beyond the partition count of %s get no partition and stay idle" .Values.keda.maxReplicaCount .Values.processes $config.topicPartitions $config.topicCommands) }}
{{- end }}
{{- fail (printf "keda.maxReplicaCount (%v) must not exceed config.topicPartitions (%v): replicas beyond the partition count of %s get no partition and stay idle" .Values.keda.maxReplicaCount $config.topicPartitions $config.topicCommands) }}
{{- end }}
{{- if not .Values.keda.authenticationRef.name }}
{{- if eq $mechanism "OAUTHBEARER" }}
{{- fail "keda.enabled with OAUTHBEARER needs keda.authenticationRef.name: KEDA cannot read the worker's token file, it fetches tokens itself; give it a TriggerAuthentication with an OAuth client (the chart README shows one)" }}
{{- end }}
{{- if and (has $mechanism (list "PLAIN" "SCRAM-SHA-256" "SCRAM-SHA-512")) (not (and .Values.kafkaSasl.existingSecret $config.kafkaSaslUsername)) }}
{{- fail "keda.enabled with SASL needs kafkaSasl.existingSecret and config.kafkaSaslUsername: KEDA's scaler connects with the worker's credentials" }}
{{- end }}
{{- end }}
{{- if gt (int .Values.keda.minReplicaCount) (int .Values.keda.maxReplicaCount) }}
{{- fail (printf "keda.minReplicaCount (%v) must not exceed keda.maxReplicaCount (%v)" .Values.keda.minReplicaCount .Values.keda.maxReplicaCount) }}
{{- end }}
{{- end }}
{{- end }}
