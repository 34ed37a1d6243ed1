{{/*
The worker's pod template, shared by the Deployment and, with staticMembership.enabled, the
StatefulSet (whose stable pod names become the consumer group's instance ids).
*/}}
{{- define "convoai-worker.podTemplate" -}}
{{- $tls := .Values.kafkaTls }}
{{- $tlsDir := "/etc/convoai/kafka-tls" }}
{{- $tenants := .Values.tenants }}
{{- $tenantsDir := "/etc/convoai/tenants" }}
{{- $secretFiles := (include "convoai-worker.secretFiles" . | fromYaml).files }}
{{- $secretsDir := "/etc/convoai/secrets" }}
{{- $static := .Values.staticMembership.enabled -}}
{{- $oauth := .Values.kafkaOAuth }}
{{- $oauthDir := "/etc/convoai/kafka-oauth" }}
{{- $oauthMounted := include "convoai-worker.oauthTokenMounted" . -}}
metadata:
  annotations:
    {{- /* Roll the pods when the settings change; env vars are read once at start. */}}
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  labels:
    {{- include "convoai-worker.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  serviceAccountName: {{ include "convoai-worker.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
  {{- /* Service links would inject e.g. CONVOAI_HTTP_PORT=tcp://... for a Service named convoai-http. */}}
  enableServiceLinks: false
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- /* Derived from the worker's deadlines unless given (it may only be longer). */}}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds | default (include "convoai-worker.deadlines" . | fromYaml).terminationGrace }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: worker
      image: {{ include "convoai-worker.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["run"]
      ports:
        - name: http
          containerPort: {{ .Values.config.httpPort }}
          protocol: TCP
      envFrom:
        - configMapRef:
            name: {{ include "convoai-worker.fullname" . }}
      {{- if or $static $secretFiles $tls.caSecret $tls.clientSecret $tenants.existingSecret $oauthMounted .Values.extraEnv }}
      env:
        {{- if $static }}
        {{- /* Stable in a StatefulSet: the group recognises the member when it comes back. */}}
        - name: CONVOAI_GROUP_INSTANCE_ID
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- end }}
        {{- /* Secrets as files: values in the environment would show in `kubectl describe`,
        in crash dumps and to every process of the container. */}}
        {{- range $secretFiles }}
        - name: {{ .variable }}
          value: {{ printf "%s/%s" $secretsDir .path | quote }}
        {{- end }}
        {{- if $tenants.existingSecret }}
        - name: CONVOAI_API_CREDENTIALS_FILE
          value: {{ printf "%s/credentials.json" $tenantsDir | quote }}
        {{- end }}
        {{- if $tls.caSecret }}
        - name: CONVOAI_KAFKA_SSL_CAFILE
          value: {{ printf "%s/ca.crt" $tlsDir | quote }}
        {{- end }}
        {{- if $tls.clientSecret }}
        - name: CONVOAI_KAFKA_SSL_CERTFILE
          value: {{ printf "%s/client.crt" $tlsDir | quote }}
        - name: CONVOAI_KAFKA_SSL_KEYFILE
          value: {{ printf "%s/client.key" $tlsDir | quote }}
        {{- end }}
        {{- if $oauthMounted }}
        {{- /* Read at every new connection: the renewed token is used without a restart. */}}
        - name: CONVOAI_KAFKA_SASL_OAUTH_TOKEN_FILE
          value: {{ printf "%s/token" $oauthDir | quote }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      {{- with .Values.startupProbe }}
      startupProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.livenessProbe }}
      livenessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.readinessProbe }}
      readinessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      resources:
        {{- include "convoai-worker.resources" . | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- if or $tls.caSecret $tls.clientSecret }}
        - name: kafka-tls
          mountPath: {{ $tlsDir }}
          readOnly: true
        {{- end }}
        {{- if $tenants.existingSecret }}
        - name: tenants
          mountPath: {{ $tenantsDir }}
          readOnly: true
        {{- end }}
        {{- if $secretFiles }}
        - name: secrets
          mountPath: {{ $secretsDir }}
          readOnly: true
        {{- end }}
        {{- if $oauthMounted }}
        - name: kafka-oauth
          mountPath: {{ $oauthDir }}
          readOnly: true
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    {{- with .Values.extraContainers }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: {{ .Values.tmpSizeLimit }}
    {{- if or $tls.caSecret $tls.clientSecret }}
    - name: kafka-tls
      projected:
        defaultMode: 0440
        sources:
          {{- with $tls.caSecret }}
          - secret:
              name: {{ . }}
              items:
                - key: {{ $tls.caKey }}
                  path: ca.crt
          {{- end }}
          {{- with $tls.clientSecret }}
          - secret:
              name: {{ . }}
              items:
                - key: {{ $tls.certKey }}
                  path: client.crt
                - key: {{ $tls.keyKey }}
                  path: client.key
          {{- end }}
    {{- end }}
    {{- if $secretFiles }}
    - name: secrets
      projected:
        defaultMode: 0440
        sources:
          {{- range $secretFiles }}
          - secret:
              name: {{ .secret }}
              items:
                - key: {{ .key }}
                  path: {{ .path }}
          {{- end }}
    {{- end }}
    {{- if $oauthMounted }}
    - name: kafka-oauth
      projected:
        defaultMode: 0440
        sources:
          {{- if $oauth.serviceAccountTokenAudience }}
          - serviceAccountToken:
              audience: {{ $oauth.serviceAccountTokenAudience | quote }}
              expirationSeconds: {{ $oauth.serviceAccountTokenExpirationSeconds }}
              path: token
          {{- else }}
          - secret:
              name: {{ $oauth.existingSecret }}
              items:
                - key: {{ $oauth.tokenKey }}
                  path: token
          {{- end }}
    {{- end }}
    {{- with $tenants.existingSecret }}
    - name: tenants
      secret:
        secretName: {{ . }}
        defaultMode: 0440
        items:
          - key: {{ $tenants.key }}
            path: credentials.json
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
