{{/*
Names, labels, images and the static facts of each Meshwatch service.
*/}}

{{- define "meshwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "meshwatch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "meshwatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "meshwatch.labels" -}}
helm.sh/chart: {{ include "meshwatch.chart" . }}
app.kubernetes.io/name: {{ include "meshwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: meshwatch
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "ingest"). */}}
{{- define "meshwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "meshwatch.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "meshwatch.componentLabels" -}}
{{ include "meshwatch.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Name of one component's objects: <fullname>-<component>. */}}
{{- define "meshwatch.componentName" -}}
{{- printf "%s-%s" (include "meshwatch.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "meshwatch.serviceAccountName" -}}
{{- if .root.Values.serviceAccount.create -}}
{{- include "meshwatch.componentName" . -}}
{{- else -}}
default
{{- end -}}
{{- end -}}

{{/*
The static facts of each service: binary, admin port, service ports, whether it talks to NATS.
Ports are the binaries' defaults and are written into their config files.
*/}}
{{- define "meshwatch.components" -}}
ingest:
  binary: meshwatch-ingest
  adminPort: 9464
  nats: true
  ports:
    - {name: otlp-grpc, port: 4317, appProtocol: grpc}
    - {name: otlp-http, port: 4318, appProtocol: http}
detector:
  binary: meshwatch-detector
  adminPort: 9465
  nats: true
  ports:
    - {name: grpc, port: 50051, appProtocol: grpc}
forecaster:
  binary: meshwatch-forecaster
  adminPort: 9466
  nats: true
  ports:
    - {name: grpc, port: 50052, appProtocol: grpc}
aggregator:
  binary: meshwatch-aggregator
  adminPort: 9467
  nats: true
  ports: []
simulator:
  binary: meshwatch-simulator
  adminPort: 9464
  nats: false
  ports: []
{{- end -}}

{{/* The order services are rendered in. */}}
{{- define "meshwatch.componentOrder" -}}
ingest detector forecaster aggregator simulator
{{- end -}}

{{/* Whether a component runs on a GPU: (dict "root" $ "component" "detector"). */}}
{{- define "meshwatch.gpuEnabled" -}}
{{- $v := index .root.Values .component -}}
{{- if and (hasKey $v "gpu") $v.gpu.enabled -}}true{{- end -}}
{{- end -}}

{{/* Image of a component: the CUDA variant for GPU pods. */}}
{{- define "meshwatch.image" -}}
{{- $img := .root.Values.image -}}
{{- if include "meshwatch.gpuEnabled" . -}}
{{- if $img.cudaDigest -}}
{{- printf "%s@%s" $img.repository $img.cudaDigest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default (printf "%s-cuda" .root.Chart.AppVersion) $img.cudaTag) -}}
{{- end -}}
{{- else if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .root.Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/* Image of the migrations Job and other tools: always the CPU image. */}}
{{- define "meshwatch.toolImage" -}}
{{- include "meshwatch.image" (dict "root" .root "component" "migrations") -}}
{{- end -}}

{{/* NATS URL: the quick-start server or nats.url. */}}
{{- define "meshwatch.natsUrl" -}}
{{- if .Values.quickstart.enabled -}}
{{- printf "nats://%s-nats:4222" (include "meshwatch.fullname" .) -}}
{{- else -}}
{{- .Values.nats.url -}}
{{- end -}}
{{- end -}}

{{/* ClickHouse URL: the quick-start server or clickhouse.url. */}}
{{- define "meshwatch.clickhouseUrl" -}}
{{- if .Values.quickstart.enabled -}}
{{- printf "http://%s-clickhouse:8123" (include "meshwatch.fullname" .) -}}
{{- else -}}
{{- .Values.clickhouse.url -}}
{{- end -}}
{{- end -}}

{{/* Secret and keys holding the ClickHouse user and password (empty secret: none). */}}
{{- define "meshwatch.clickhouseSecret" -}}
{{- if .Values.quickstart.enabled -}}
{{- printf "%s-quickstart-clickhouse" (include "meshwatch.fullname" .) -}}
{{- else -}}
{{- .Values.clickhouse.auth.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* Environment variables with the ClickHouse credentials: (dict "root" $ "user" "ENV" "password" "ENV"). */}}
{{- define "meshwatch.clickhouseEnv" -}}
{{- $secret := include "meshwatch.clickhouseSecret" .root -}}
{{- if $secret }}
- name: {{ .user }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ ternary "user" .root.Values.clickhouse.auth.userKey .root.Values.quickstart.enabled }}
- name: {{ .password }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ ternary "password" .root.Values.clickhouse.auth.passwordKey .root.Values.quickstart.enabled }}
{{- end }}
{{- end -}}

{{/* Environment variables with the NATS credentials (the config file never holds secrets). */}}
{{- define "meshwatch.natsEnv" -}}
{{- $auth := .Values.nats.auth -}}
{{- if and $auth.existingSecret (not .Values.quickstart.enabled) }}
{{- if $auth.userKey }}
- name: MESHWATCH_NATS__USER
  valueFrom:
    secretKeyRef: {name: {{ $auth.existingSecret }}, key: {{ $auth.userKey }}}
{{- end }}
{{- if $auth.passwordKey }}
- name: MESHWATCH_NATS__PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $auth.existingSecret }}, key: {{ $auth.passwordKey }}}
{{- end }}
{{- if $auth.tokenKey }}
- name: MESHWATCH_NATS__TOKEN
  valueFrom:
    secretKeyRef: {name: {{ $auth.existingSecret }}, key: {{ $auth.tokenKey }}}
{{- end }}
{{- end }}
{{- end -}}

{{/* Whether the NATS credentials file is mounted. */}}
{{- define "meshwatch.natsCreds" -}}
{{- if and .Values.nats.auth.existingSecret .Values.nats.auth.credentialsKey (not .Values.quickstart.enabled) -}}true{{- end -}}
{{- end -}}

{{/* Whether NATS TLS is on (never with the quick-start server). */}}
{{- define "meshwatch.natsTls" -}}
{{- if and .Values.nats.tls.enabled (not .Values.quickstart.enabled) -}}true{{- end -}}
{{- end -}}

{{/* Checks across values that the schema cannot express; fails the render with a message. */}}
{{- define "meshwatch.validate" -}}
{{- $grace := int .Values.shutdown.graceSeconds -}}
{{- $pre := int .Values.shutdown.preStopSleepSeconds -}}
{{- range $c := splitList " " (include "meshwatch.componentOrder" .) -}}
{{- $v := index $.Values $c -}}
{{- if and $v.enabled (le (int $v.terminationGracePeriodSeconds) (add $grace $pre)) -}}
{{- fail (printf "%s.terminationGracePeriodSeconds (%d) must exceed shutdown.preStopSleepSeconds + shutdown.graceSeconds (%d): the pod would be killed before it drains" $c (int $v.terminationGracePeriodSeconds) (add $grace $pre)) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.nats.tls.enabled (not .Values.nats.tls.existingSecret) (not .Values.quickstart.enabled) -}}
{{- fail "nats.tls.enabled needs nats.tls.existingSecret (the CA and optional client certificate)" -}}
{{- end -}}
{{- if and .Values.nats.tls.certKey (not .Values.nats.tls.keyKey) -}}
{{- fail "nats.tls.certKey needs nats.tls.keyKey" -}}
{{- end -}}
{{- if and .Values.simulator.enabled (not .Values.ingest.enabled) -}}
{{- fail "simulator.enabled needs ingest.enabled (it sends to this release's ingest)" -}}
{{- end -}}
{{- end -}}
