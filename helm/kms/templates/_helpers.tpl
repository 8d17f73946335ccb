{{/* Name prefix of every object: the release name, cut to fit. */}}
{{- define "kms.fullname" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "kms.selectorLabels" -}}
app.kubernetes.io/name: kms
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "kms.labels" -}}
{{ include "kms.selectorLabels" . }}
app.kubernetes.io/part-of: kms
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{- if not .root.Values.plainManifests }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end }}
{{- end -}}

{{- define "kms.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The environment that connects service `.service` to NATS as its own user. */}}
{{- define "kms.natsEnv" -}}
{{- $root := .root -}}
- name: KMS_NATS_URL
  value: {{ printf "%s://%s-nats:4222" (ternary "tls" "nats" $root.Values.nats.tls.enabled) (include "kms.fullname" $root) | quote }}
- name: KMS_NATS_INBOX_PREFIX
  value: {{ printf "_INBOX.kms-%s" .service | quote }}
{{- if eq $root.Values.nats.auth "nkey" }}
- name: KMS_NATS_NKEY_SEED_FILE
  value: /etc/kms/nats/seed
{{- else }}
- name: KMS_NATS_USER
  value: {{ printf "kms-%s" .service | quote }}
- name: KMS_NATS_PASSWORD_FILE
  value: /etc/kms/nats/password
{{- end }}
{{- if $root.Values.nats.tls.enabled }}
- name: KMS_NATS_TLS_CA_FILE
  value: /etc/kms/nats-tls/ca.crt
{{- if $root.Values.nats.tls.verifyClients }}
- name: KMS_NATS_TLS_CERT_FILE
  value: /etc/kms/nats-client-tls/tls.crt
- name: KMS_NATS_TLS_KEY_FILE
  value: /etc/kms/nats-client-tls/tls.key
{{- end }}
{{- end }}
- name: KMS_HEALTH_LISTEN
  value: {{ printf "0.0.0.0:%v" $root.Values.healthPort | quote }}
{{- if $root.Values.otlp.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $root.Values.otlp.endpoint | quote }}
{{- end }}
{{- end -}}

{{/* Volume mounts of the NATS credentials (and TLS files) of service `.service`. */}}
{{- define "kms.natsMounts" -}}
- name: nats-credentials
  mountPath: /etc/kms/nats
  readOnly: true
{{- if .root.Values.nats.tls.enabled }}
- name: nats-tls-ca
  mountPath: /etc/kms/nats-tls
  readOnly: true
{{- if .root.Values.nats.tls.verifyClients }}
- name: nats-client-tls
  mountPath: /etc/kms/nats-client-tls
  readOnly: true
{{- end }}
{{- end }}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{- define "kms.natsVolumes" -}}
- name: nats-credentials
  secret:
    secretName: {{ .root.Values.secrets.natsUsers.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .service }}
        path: {{ ternary "seed" "password" (eq .root.Values.nats.auth "nkey") }}
{{- if .root.Values.nats.tls.enabled }}
- name: nats-tls-ca
  secret:
    secretName: {{ .root.Values.nats.tls.secretName }}
    defaultMode: 0440
    items:
      - key: ca.crt
        path: ca.crt
{{- if .root.Values.nats.tls.verifyClients }}
- name: nats-client-tls
  secret:
    secretName: {{ .root.Values.nats.tls.clientSecretName }}
    defaultMode: 0440
{{- end }}
{{- end }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{/* Probes on the health server. */}}
{{- define "kms.probes" -}}
startupProbe:
  httpGet: {path: /healthz, port: health}
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet: {path: /healthz, port: health}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: health}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{- define "kms.podSettings" -}}
serviceAccountName: {{ include "kms.fullname" .root }}-{{ .component }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Port of the OTLP endpoint: the URL's own, or its scheme's (443 for https, 80). */}}
{{- define "kms.otlpPort" -}}
{{- $host := (urlParse .Values.otlp.endpoint).host -}}
{{- if regexMatch ":[0-9]+$" $host -}}
{{- regexFind "[0-9]+$" $host -}}
{{- else if hasPrefix "https://" .Values.otlp.endpoint -}}
443
{{- else -}}
80
{{- end -}}
{{- end -}}

{{/* Egress to the OTLP collector when traces are exported: on the endpoint's port, to
     the peers in otlp.egressTo, or to any destination when none are given (a
     collector's address is not known to the chart). */}}
{{- define "kms.otlpEgress" -}}
{{- if .Values.otlp.endpoint }}
- ports:
    - {protocol: TCP, port: {{ include "kms.otlpPort" . }}}
  {{- with .Values.otlp.egressTo }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end -}}
