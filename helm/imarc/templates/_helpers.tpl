{{/*
Names, labels and the pieces every workload shares.
*/}}

{{- define "imarc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full name: the release name when it already contains the chart name (`helm install imarc`
gives imarc-gateway, imarc-auth, ...), otherwise <release>-<chart>.
*/}}
{{- define "imarc.fullname" -}}
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

{{- define "imarc.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Name of one component's objects: <fullname>-<component>. Call with (list $ "intake"). */}}
{{- define "imarc.componentName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "imarc.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels (immutable once installed): name, instance and, for a component, component. */}}
{{- define "imarc.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "imarc.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
{{- with index . 1 }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{/* Common labels. Call with (list $ "component") or (list $ "") for release-wide objects. */}}
{{- define "imarc.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ include "imarc.chart" $root }}
{{ include "imarc.selectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: imarc
imarc.io/site: {{ $root.Values.site.name }}
{{- end -}}

{{- define "imarc.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "imarc.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* An image reference from {registry, repository, tag, digest}; tag defaults to appVersion. */}}
{{- define "imarc.imageRef" -}}
{{- $root := index . 0 -}}
{{- $img := index . 1 -}}
{{- $repo := $img.repository -}}
{{- if $img.registry }}{{ $repo = printf "%s/%s" $img.registry $img.repository }}{{ end -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $repo $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default $root.Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{- define "imarc.image" -}}
{{- include "imarc.imageRef" (list . .Values.image) -}}
{{- end -}}

{{- define "imarc.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ if kindIs "map" . }}{{ .name }}{{ else }}{{ . }}{{ end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The port every imarc process listens on inside its container (IMARC_PORT). */}}
{{- define "imarc.port" -}}8080{{- end -}}

{{/* Port of every imarc process's Prometheus metrics: never the public one. */}}
{{- define "imarc.metricsPort" -}}9090{{- end -}}

{{/* Internal URL of one service: http://<fullname>-<service>:8080 */}}
{{- define "imarc.serviceUrl" -}}
{{- printf "http://%s:%s" (include "imarc.componentName" .) (include "imarc.port" (index . 0)) -}}
{{- end -}}

{{/* Effective minimum replica count of a service (HPA minimum when autoscaling). */}}
{{- define "imarc.minReplicas" -}}
{{- if .autoscaling.enabled -}}{{ .autoscaling.minReplicas }}{{- else -}}{{ .replicas }}{{- end -}}
{{- end -}}

{{/* Enabled services, in a fixed order: the six services, then the gateway. */}}
{{- define "imarc.serviceNames" -}}
{{- $out := list -}}
{{- range $name := list "intake" "deid" "qc" "catalog" "download" "auth" "gateway" -}}
{{- if (index $.Values.services $name).enabled -}}{{- $out = append $out $name -}}{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Pod-level security context. */}}
{{- define "imarc.podSecurityContext" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/* Container-level security context. */}}
{{- define "imarc.containerSecurityContext" -}}
securityContext:
  {{- toYaml .Values.containerSecurityContext | nindent 2 }}
{{- end -}}

{{/* The writable /tmp every container gets (the root filesystem is read-only). */}}
{{- define "imarc.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end -}}

{{- define "imarc.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/*
Environment of an imarc container. Call with (dict "root" $ "service" "intake" "uses" {...}).
Credentials come only from secretKeyRef; URLs are assembled by Kubernetes from $(VAR)
references to the secret-sourced variables defined just before them (or, with urlKey, the
Secret holds the whole URL).
*/}}
{{- define "imarc.env" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $uses := .uses -}}
- name: IMARC_PORT
  value: {{ include "imarc.port" $root | quote }}
- name: IMARC_HOST
  value: "0.0.0.0"
- name: IMARC_METRICS_PORT
  value: {{ include "imarc.metricsPort" $root | quote }}
- name: IMARC_DATA_DIR
  value: /tmp/imarc
- name: IMARC_SITE_NAME
  value: {{ $v.site.name | quote }}
- name: IMARC_SITE_ROLE
  value: {{ $v.site.role | quote }}
- name: IMARC_UID_ROOT
  value: {{ $v.config.uidRoot | quote }}
- name: IMARC_LOG_LEVEL
  value: {{ $v.config.logLevel | quote }}
- name: IMARC_LOG_JSON
  value: {{ $v.config.logJson | quote }}
- name: IMARC_TRUSTED_PROXIES
  value: {{ join "," $v.config.trustedProxies | quote }}
{{- with $v.config.publicUrl }}
- name: IMARC_PUBLIC_URL
  value: {{ . | quote }}
{{- end }}
- name: IMARC_AUTH_URL
  value: {{ include "imarc.serviceUrl" (list $root "auth") | quote }}
{{- if $uses.database }}
{{- $db := $v.database }}
{{- if $db.urlKey }}
- name: IMARC_DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ $db.existingSecret | quote }}, key: {{ $db.urlKey | quote }}}
{{- else }}
- name: DATABASE_USERNAME
  valueFrom:
    secretKeyRef: {name: {{ $db.existingSecret | quote }}, key: {{ $db.usernameKey | quote }}}
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $db.existingSecret | quote }}, key: {{ $db.passwordKey | quote }}}
- name: IMARC_DATABASE_URL
  value: {{ printf "postgresql+asyncpg://$(DATABASE_USERNAME):$(DATABASE_PASSWORD)@%s:%d/%s%s" $db.host (int $db.port) $db.name (ternary (printf "?%s" $db.params) "" (ne $db.params "")) | quote }}
{{- end }}
{{- end }}
{{- if $uses.bus }}
{{- $bus := $v.bus }}
{{- if $bus.urlKey }}
- name: IMARC_BUS_URL
  valueFrom:
    secretKeyRef: {name: {{ $bus.existingSecret | quote }}, key: {{ $bus.urlKey | quote }}}
{{- else }}
- name: BUS_USERNAME
  valueFrom:
    secretKeyRef: {name: {{ $bus.existingSecret | quote }}, key: {{ $bus.usernameKey | quote }}}
- name: BUS_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $bus.existingSecret | quote }}, key: {{ $bus.passwordKey | quote }}}
- name: IMARC_BUS_URL
  value: {{ printf "%s://$(BUS_USERNAME):$(BUS_PASSWORD)@%s:%d/%s" $bus.scheme $bus.host (int $bus.port) $bus.vhost | quote }}
{{- end }}
{{- end }}
{{- if $uses.store }}
{{- $s := $v.store }}
{{- if $s.urlKey }}
- name: IMARC_STORE_URL
  valueFrom:
    secretKeyRef: {name: {{ $s.existingSecret | quote }}, key: {{ $s.urlKey | quote }}}
{{- else }}
- name: STORE_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ $s.existingSecret | quote }}, key: {{ $s.accessKeyKey | quote }}}
- name: STORE_SECRET_KEY
  valueFrom:
    secretKeyRef: {name: {{ $s.existingSecret | quote }}, key: {{ $s.secretKeyKey | quote }}}
- name: IMARC_STORE_URL
  value: {{ printf "s3://$(STORE_ACCESS_KEY):$(STORE_SECRET_KEY)@%s:%d?secure=%t&prefix=%s%s" $s.host (int $s.port) $s.secure $s.prefix (ternary (printf "&region=%s" $s.region) "" (ne $s.region "")) | quote }}
{{- end }}
{{- end }}
{{- if $uses.hashSecret }}
- name: IMARC_SECRET
  valueFrom:
    secretKeyRef: {name: {{ $v.appSecret.existingSecret | quote }}, key: {{ $v.appSecret.hashSecretKey | quote }}}
{{- end }}
{{- if eq .service "auth" }}
- name: IMARC_ADMIN_USERNAME
  valueFrom:
    secretKeyRef: {name: {{ $v.appSecret.existingSecret | quote }}, key: {{ $v.appSecret.adminUsernameKey | quote }}}
- name: IMARC_ADMIN_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $v.appSecret.existingSecret | quote }}, key: {{ $v.appSecret.adminPasswordKey | quote }}}
{{- end }}
{{- if eq .service "gateway" }}
{{- range $upstream := list "intake" "deid" "qc" "catalog" "download" }}
- name: IMARC_{{ upper $upstream }}_URL
  value: {{ include "imarc.serviceUrl" (list $root $upstream) | quote }}
{{- end }}
{{- end }}
{{- with $v.config.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with .env }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
On a replica, submission paths go to a Service that selects no pod (<fullname>-submissions-closed):
the Gateway or Ingress controller answers 503 itself and the request never reaches imarc.
*/}}
{{- define "imarc.closesSubmissions" -}}
{{- if eq .Values.site.role "replica" }}true{{ end -}}
{{- end -}}

{{- define "imarc.closedServiceName" -}}
{{- include "imarc.componentName" (list . "submissions-closed") -}}
{{- end -}}

{{/* Egress rules to the database, broker and S3 a component uses: (dict "root" $ "uses" {...}). */}}
{{- define "imarc.dependencyEgress" -}}
{{- $v := .root.Values -}}
{{- range $dep := list "database" "bus" "store" }}
{{- if index $.uses $dep }}
- ports: [{port: {{ (index $v $dep).port }}, protocol: TCP}]
  {{- with index $v.networkPolicy (printf "%sTo" $dep) }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* True when the Prometheus operator's API is served (testable with --api-versions). */}}
{{- define "imarc.hasPrometheusOperator" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}true{{ end -}}
{{- end -}}

{{/*
Migrations run at the primary only: a replica's database is a read-only copy that receives
the primary's schema through replication.
*/}}
{{- define "imarc.runsMigrations" -}}
{{- if and .Values.migrations.enabled (eq .Values.site.role "primary") }}true{{ end -}}
{{- end -}}
