{{/*
Checks of the values that the schema cannot express. Rendered by templates/validate.yaml;
each problem stops the render with a sentence that says what to set.
*/}}

{{/*
Keys whose literal value would be a credential. Names of Secrets and of keys inside them
(existingSecret, passwordKey, secretKeyKey, ...) do not match.
*/}}
{{- define "imarc.credentialKeyPattern" -}}
(?i)^(.*password|passwd|secret|client_?secret|token|access_?token|refresh_?token|api_?key|access_?key(_?id)?|secret_?(access_?)?key|private_?key)$
{{- end -}}

{{/* Names of environment variables that carry a credential. */}}
{{- define "imarc.credentialEnvPattern" -}}
(?i)(password|passwd|secret|token|_key|credentials?)$
{{- end -}}

{{/* user:password@ in a URL (a $(VAR) reference instead of a literal user is allowed). */}}
{{- define "imarc.urlCredentialPattern" -}}
://[^/@\s$][^/@\s]*:[^/@\s]+@
{{- end -}}

{{/*
Walk the values and fail on anything that looks like a credential. The message names the
place, never the value. Call with (dict "path" "" "value" .Values).
*/}}
{{- define "imarc.secretGuard" -}}
{{- $path := .path -}}
{{- $value := .value -}}
{{- $hint := "credentials are read from an existing Secret only (existingSecret, valueFrom.secretKeyRef); see docs/operations.md \"Secrets\"" -}}
{{- if kindIs "map" $value -}}
  {{- if and (hasKey $value "name") (hasKey $value "value") (kindIs "string" $value.name) -}}
    {{- if and (regexMatch (include "imarc.credentialEnvPattern" .) $value.name) (ne (toString $value.value) "") -}}
      {{- fail (printf "values: %s sets the environment variable %s to a literal value; %s" $path $value.name $hint) -}}
    {{- end -}}
  {{- end -}}
  {{- range $k, $v := $value -}}
    {{- $p := ternary $k (printf "%s.%s" $path $k) (eq $path "") -}}
    {{- if and (regexMatch (include "imarc.credentialKeyPattern" $) $k) (not (kindIs "map" $v)) (not (kindIs "slice" $v)) (ne (toString $v) "") -}}
      {{- fail (printf "values: %s holds a credential in plain text; %s" $p $hint) -}}
    {{- end -}}
    {{- include "imarc.secretGuard" (dict "path" $p "value" $v) -}}
  {{- end -}}
{{- else if kindIs "slice" $value -}}
  {{- range $i, $v := $value -}}
    {{- include "imarc.secretGuard" (dict "path" (printf "%s[%d]" $path $i) "value" $v) -}}
  {{- end -}}
{{- else if kindIs "string" $value -}}
  {{- if regexMatch (include "imarc.urlCredentialPattern" .) $value -}}
    {{- fail (printf "values: %s is a URL with a user and password in it; %s" $path $hint) -}}
  {{- end -}}
{{- end -}}
{{- end -}}

{{- define "imarc.validate" -}}
{{- $v := .Values -}}
{{- include "imarc.secretGuard" (dict "path" "" "value" $v) -}}
{{- $services := include "imarc.serviceNames" . | fromJsonArray -}}
{{- $needs := dict "database" $v.migrations.enabled "bus" false "store" false "hashSecret" false -}}
{{- range $name := $services -}}
  {{- range $dep, $used := (index $v.services $name).uses -}}
    {{- if $used -}}{{- $_ := set $needs $dep true -}}{{- end -}}
  {{- end -}}
{{- end -}}
{{- range $dep := list "database" "bus" "store" -}}
  {{- if index $needs $dep -}}
    {{- $block := index $v $dep -}}
    {{- if not $block.existingSecret -}}
      {{- fail (printf "%s.existingSecret is required: the name of the Secret with the %s credentials (docs/operations.md \"Secrets\")" $dep $dep) -}}
    {{- end -}}
    {{- if and (not $block.urlKey) (not $block.host) -}}
      {{- fail (printf "%s.host is required (or %s.urlKey, when the Secret holds the whole URL)" $dep $dep) -}}
    {{- end -}}
  {{- end -}}
{{- end -}}
{{- if and (or $needs.hashSecret (has "auth" $services)) (not $v.appSecret.existingSecret) -}}
  {{- fail "appSecret.existingSecret is required: the Secret with the keyed-hash secret and the bootstrap administrator (docs/operations.md \"Secrets\")" -}}
{{- end -}}
{{- if not (has "gateway" $services) -}}
  {{- if or $v.httpRoute.enabled $v.ingress.enabled $v.tests.enabled -}}
    {{- fail "services.gateway.enabled is false but httpRoute, ingress or tests need it: disable them too" -}}
  {{- end -}}
{{- end -}}
{{- if $v.mirror.enabled -}}
  {{- fail "mirror.enabled: the mirror worker is not available in this chart version yet (it comes with the mirror-feed work); keep mirror.enabled=false" -}}
{{- end -}}
{{- $pg := $v.replication.postgres -}}
{{- if $pg.enabled -}}
  {{- $names := list -}}
  {{- range $pg.externalClusters }}{{ $names = append $names .name }}{{ end -}}
  {{- range $field := list "name" "primary" "source" -}}
    {{- if not (has (index $pg $field) $names) -}}
      {{- fail (printf "replication.postgres.%s (%s) must be one of replication.postgres.externalClusters[].name" $field (index $pg $field)) -}}
    {{- end -}}
  {{- end -}}
  {{- if eq $pg.name $pg.source -}}
    {{- fail "replication.postgres.source must name the other site's Cluster, not this one" -}}
  {{- end -}}
  {{- if and (eq $v.site.role "primary") (ne $pg.primary $pg.name) -}}
    {{- fail (printf "site.role is primary but replication.postgres.primary is %s, not this site's Cluster %s: change both together (docs/operations.md \"Planned switchover\")" $pg.primary $pg.name) -}}
  {{- end -}}
  {{- if and (eq $v.site.role "replica") (eq $pg.primary $pg.name) -}}
    {{- fail (printf "site.role is replica but replication.postgres.primary names this site's Cluster %s: change both together (docs/operations.md \"Planned switchover\")" $pg.name) -}}
  {{- end -}}
{{- end -}}
{{- $s3 := $v.replication.s3 -}}
{{- if and $s3.enabled (or (not $s3.peer.host) (not $s3.peer.existingSecret)) -}}
  {{- fail "replication.s3.enabled needs replication.s3.peer.host and replication.s3.peer.existingSecret (the peer site's S3 endpoint and keys)" -}}
{{- end -}}
{{- if and $s3.enabled (not $v.store.host) -}}
  {{- fail "replication.s3.enabled needs store.host (mc talks to this site's endpoint by host)" -}}
{{- end -}}
{{- end -}}
