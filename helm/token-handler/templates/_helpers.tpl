{{/*
Named templates of the token-handler chart.

Every template here takes the chart's own root context (`.Values`, `.Release`, `.Chart`), so a
chart that depends on this one calls them with `(index .Subcharts "token-handler")` and gets
exactly the names, config and checksum this chart renders. The public ones, for such charts:

  token-handler.sidecar                        the container (a list item for `containers:`)
  token-handler.volumes                        its volumes (list items for `volumes:`), the
                                               client key's or ServiceAccount token's included
  token-handler.podAnnotations                 checksum/config (a map for pod annotations)
  token-handler.terminationGracePeriodSeconds  a number that covers preStop + drain
*/}}

{{/* Chart name, for labels. */}}
{{- define "token-handler.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name: <release>-<chart>, or the release name when it already contains the chart's. */}}
{{- define "token-handler.fullname" -}}
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

{{- define "token-handler.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select this release's pods. Never change them: Deployment selectors are immutable. */}}
{{- define "token-handler.selectorLabels" -}}
app.kubernetes.io/name: {{ include "token-handler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "token-handler.labels" -}}
helm.sh/chart: {{ include "token-handler.chart" . }}
{{ include "token-handler.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Names of the ConfigMap and the Secret the sidecar mounts. */}}
{{- define "token-handler.configMapName" -}}
{{- include "token-handler.fullname" . }}
{{- end }}

{{- define "token-handler.secretName" -}}
{{- default (include "token-handler.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* Whether the proxy gets a client secret file: "true" or "" (never with a client key or
workload identity, _client_auth.tpl). */}}
{{- define "token-handler.hasClientSecret" -}}
{{- if include "token-handler.clientAuthSource" . }}
{{- else if .Values.secrets.existingSecret }}
{{- if .Values.secrets.clientSecretKey }}true{{ end }}
{{- else if .Values.secrets.clientSecret }}true
{{- end }}
{{- end }}

{{/*
The Redis credentials read from the Secret, as a YAML list of {env, key, value}: the data nodes'
user and password and the Sentinels' own, each only when set (with existingSecret: when its key
is named; otherwise: when its value is given, under the named or the default key).
*/}}
{{- define "token-handler.redisCredentials" -}}
{{- $s := .Values.secrets }}
{{- $out := list }}
{{- if .Values.coordination.enabled }}
{{- range $name := list "Username" "Password" "SentinelUsername" "SentinelPassword" }}
{{- $key := index $s (printf "redis%sKey" $name) }}
{{- $env := printf "TOKEN_HANDLER_REDIS_%s_FILE" (snakecase $name | upper) }}
{{- if $s.existingSecret }}
{{- if $key }}
{{- $out = append $out (dict "env" $env "key" $key) }}
{{- end }}
{{- else if index $s (printf "redis%s" $name) }}
{{- $key = default (printf "redis-%s" (kebabcase $name)) $key }}
{{- $out = append $out (dict "env" $env "key" $key "value" (index $s (printf "redis%s" $name))) }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/* Whether the Redis is standalone (its URL from the Secret), not Sentinel or Cluster. */}}
{{- define "token-handler.redisStandalone" -}}
{{- $c := .Values.config.coordination | default dict }}
{{- if and .Values.coordination.enabled (not (or $c.sentinels $c.cluster_nodes)) }}true{{ end }}
{{- end }}

{{- define "token-handler.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Where the pieces are mounted inside the sidecar. */}}
{{- define "token-handler.configDir" -}}/etc/token-handler{{- end }}
{{- define "token-handler.secretDir" -}}/var/run/secrets/token-handler{{- end }}

{{/* A listen address for port `.port` on `.host` ("0.0.0.0", "::", ...). */}}
{{- define "token-handler.listenAddress" -}}
{{- if contains ":" .host }}
{{- printf "[%s]:%d" .host (int .port) }}
{{- else }}
{{- printf "%s:%d" .host (int .port) }}
{{- end }}
{{- end }}

{{/* "true" when the chart renders the Deployment (modes "deployment" and "forward-auth"), else "". */}}
{{- define "token-handler.ownDeployment" -}}
{{- if has .Values.mode (list "deployment" "forward-auth") }}true{{ end }}
{{- end }}

{{/*
The proxy's config as TOML: `.Values.config` plus the keys the chart owns (listen addresses from
`ports`, drain grace from `lifecycle`, the upstream default from `app.port`; in mode
"forward-auth" forward_auth.listen from `ports.verify` and forward_auth.gateway "ingress-nginx"
unless set, and no [upstream] unless its url is set:
the gateway forwards).
*/}}
{{- define "token-handler.config" -}}
{{- $forwardAuth := eq .Values.mode "forward-auth" }}
{{- if eq (int .Values.ports.http) (int .Values.ports.admin) }}
{{- fail "ports: http and admin must differ (two listeners)" }}
{{- end }}
{{- if and $forwardAuth (or (eq (int .Values.ports.verify) (int .Values.ports.http)) (eq (int .Values.ports.verify) (int .Values.ports.admin))) }}
{{- fail "ports: verify must differ from http and admin (mode forward-auth has three listeners; the verify port is the gateway's alone)" }}
{{- end }}
{{- $cfg := deepCopy (.Values.config | default dict) }}
{{- $server := get $cfg "server" | default dict }}
{{- $_ := set $server "listen" (include "token-handler.listenAddress" (dict "host" .Values.ports.bindAddress "port" .Values.ports.http)) }}
{{- $_ := set $server "admin_listen" (include "token-handler.listenAddress" (dict "host" .Values.ports.bindAddress "port" .Values.ports.admin)) }}
{{- $_ := set $server "shutdown_grace" (printf "%ds" (int .Values.lifecycle.shutdownGraceSeconds)) }}
{{- $_ := set $cfg "server" $server }}
{{- if $forwardAuth }}
{{- $fa := get $cfg "forward_auth" | default dict }}
{{- $_ := set $fa "listen" (include "token-handler.listenAddress" (dict "host" .Values.ports.bindAddress "port" .Values.ports.verify)) }}
{{- if not (get $fa "gateway") }}
{{- $_ := set $fa "gateway" "ingress-nginx" }}
{{- end }}
{{- $_ := set $cfg "forward_auth" $fa }}
{{- else if kindIs "map" (get $cfg "forward_auth") }}
{{- fail (printf "config.forward_auth: only in mode forward-auth (mode is %s); the chart writes [forward_auth] listen from ports.verify" .Values.mode) }}
{{- end }}
{{- include "token-handler.clientAuthCheck" . }}
{{- if eq (include "token-handler.clientAuthSource" .) "workload" }}
{{- $idp := get $cfg "idp" | default dict }}
{{- $_ := set $idp "client_assertion_file" .Values.idp.workloadIdentity.path }}
{{- $_ := set $cfg "idp" $idp }}
{{- end }}
{{- $upstream := get $cfg "upstream" | default dict }}
{{- if get $upstream "url" }}
{{- $_ := set $cfg "upstream" $upstream }}
{{- else if $forwardAuth }}
{{- $_ := unset $cfg "upstream" }}
{{- else }}
{{- $_ := set $upstream "url" (printf "http://127.0.0.1:%d" (int .Values.app.port)) }}
{{- $_ := set $cfg "upstream" $upstream }}
{{- end }}
{{- printf "# token-handler configuration, rendered by the %s chart from its `config` values.\n" .Chart.Name }}
{{- printf "# Every key is documented in the repository's config/token-handler.toml." }}
{{- include "token-handler.toml" $cfg }}
{{- end }}

{{/*
A small TOML writer for a map of sections: scalars at the top, then one [table] per map, in the
proxy's usual order, then one [[name]] per item of a list of maps (e.g. [[routes]]). Nested maps
become inline tables, lists arrays; null values are left out (the proxy's default applies).
Helm's own toToml writes YAML numbers as floats ("10000.0"), which the proxy's integer keys
refuse, hence this.
*/}}
{{- define "token-handler.toml" -}}
{{- $root := . }}
{{- range $k := keys $root | sortAlpha }}
{{- $v := get $root $k }}
{{- if not (or (kindIs "map" $v) (kindIs "invalid" $v) (include "token-handler.toml.isTableArray" $v)) }}
{{ include "token-handler.toml.key" $k }} = {{ include "token-handler.toml.value" $v }}
{{- end }}
{{- end }}
{{- $known := list "server" "upstream" "forward_auth" "idp" "session" "proxy" "csrf" "log" }}
{{- $sections := list }}
{{- range $known }}{{ if hasKey $root . }}{{ $sections = append $sections . }}{{ end }}{{ end }}
{{- range keys $root | sortAlpha }}{{ if not (has . $known) }}{{ $sections = append $sections . }}{{ end }}{{ end }}
{{- range $section := $sections }}
{{- $table := get $root $section }}
{{- if kindIs "map" $table }}

[{{ include "token-handler.toml.key" $section }}]
{{- include "token-handler.toml.pairs" $table }}
{{- end }}
{{- end }}
{{- range $name := keys $root | sortAlpha }}
{{- $items := get $root $name }}
{{- if include "token-handler.toml.isTableArray" $items }}
{{- range $item := $items }}

[[{{ include "token-handler.toml.key" $name }}]]
{{- include "token-handler.toml.pairs" $item }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The `key = value` lines of a table, one per line, each after a newline; nulls left out. */}}
{{- define "token-handler.toml.pairs" -}}
{{- $table := . }}
{{- range $k := keys $table | sortAlpha }}
{{- $v := get $table $k }}
{{- if not (kindIs "invalid" $v) }}
{{ include "token-handler.toml.key" $k }} = {{ include "token-handler.toml.value" $v }}
{{- end }}
{{- end }}
{{- end }}

{{/* "true" for a non-empty list of maps (written as an array of tables), else "". */}}
{{- define "token-handler.toml.isTableArray" -}}
{{- if and (kindIs "slice" .) (gt (len .) 0) }}
{{- $all := true }}
{{- range . }}{{ if not (kindIs "map" .) }}{{ $all = false }}{{ end }}{{ end }}
{{- if $all }}true{{ end }}
{{- end }}
{{- end }}

{{/* A TOML key: bare when it can be, else a quoted string. */}}
{{- define "token-handler.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{/*
A TOML value. Strings go through toJson: JSON's escapes (\" \\ \n \uXXXX ...) are all valid in
a TOML basic string, and DEL, which JSON leaves raw and TOML does not, is escaped too. Whole floats (every YAML/JSON number reaches templates as float64) are
written as integers.
*/}}
{{- define "token-handler.toml.value" -}}
{{- $v := . }}
{{- if kindIs "string" $v }}{{ toJson $v | replace "\x7f" "\\u007f" }}
{{- else if kindIs "bool" $v }}{{ ternary "true" "false" $v }}
{{- else if or (kindIs "float64" $v) (kindIs "float32" $v) }}
{{- if eq (float64 (int64 $v)) (float64 $v) }}{{ int64 $v }}{{ else }}{{ $v }}{{ end }}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) (kindIs "int32" $v) (kindIs "uint64" $v) }}{{ $v }}
{{- else if kindIs "slice" $v }}[{{ range $i, $e := $v }}{{ if $i }}, {{ end }}{{ include "token-handler.toml.value" $e }}{{ end }}]
{{- else if kindIs "map" $v }}{ {{- range $i, $k := keys $v | sortAlpha }}{{ if $i }},{{ end }} {{ include "token-handler.toml.key" $k }} = {{ include "token-handler.toml.value" (get $v $k) }}{{ end }} }
{{- else }}{{ fail (printf "config: a %s cannot be written as TOML" (typeOf $v)) }}
{{- end }}
{{- end }}

{{/* sha256 of the rendered config: the pods roll when it changes. */}}
{{- define "token-handler.configChecksum" -}}
{{- include "token-handler.config" . | sha256sum }}
{{- end }}

{{/* Pod annotations the sidecar needs (a YAML map). */}}
{{- define "token-handler.podAnnotations" -}}
checksum/config: {{ include "token-handler.configChecksum" . }}
{{- end }}

{{/* The API's preStop sleep: app.preStopSleepSeconds, or preStop + drain so it outlives the proxy. */}}
{{- define "token-handler.appPreStopSleepSeconds" -}}
{{- if kindIs "invalid" .Values.app.preStopSleepSeconds }}
{{- add (int .Values.lifecycle.preStopSleepSeconds) (int .Values.lifecycle.shutdownGraceSeconds) }}
{{- else }}
{{- int .Values.app.preStopSleepSeconds }}
{{- end }}
{{- end }}

{{/*
terminationGracePeriodSeconds: the kubelet kills the pod after it, preStop included, so it must
exceed preStop sleep + drain grace (and the API's preStop sleep in mode "deployment").
*/}}
{{- define "token-handler.terminationGracePeriodSeconds" -}}
{{- $need := add (int .Values.lifecycle.preStopSleepSeconds) (int .Values.lifecycle.shutdownGraceSeconds) }}
{{- if eq .Values.mode "deployment" }}
{{- $app := include "token-handler.appPreStopSleepSeconds" . | int }}
{{- if gt $app $need }}{{ $need = $app }}{{ end }}
{{- end }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $need (int .Values.lifecycle.terminationMarginSeconds) }}
{{- else if le (int .Values.terminationGracePeriodSeconds) $need }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed %d: lifecycle.preStopSleepSeconds + lifecycle.shutdownGraceSeconds (and app.preStopSleepSeconds), or the kubelet kills requests still draining. Raise it, or set it to null to compute it." (int .Values.terminationGracePeriodSeconds) $need) }}
{{- else }}
{{- int .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/*
The token-handler container, as a list item: `containers:` then
`{{ include "token-handler.sidecar" $ctx | nindent 8 }}`.
*/}}
{{- define "token-handler.sidecar" -}}
- name: {{ .Values.sidecar.name }}
  image: {{ include "token-handler.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["--config", "{{ include "token-handler.configDir" . }}/token-handler.toml"]
  ports:
    - name: proxy
      containerPort: {{ .Values.ports.http }}
      protocol: TCP
    - name: proxy-admin
      containerPort: {{ .Values.ports.admin }}
      protocol: TCP
    {{- if eq .Values.mode "forward-auth" }}
    # The gateway's /verify calls only: never routed from an ingress.
    - name: proxy-verify
      containerPort: {{ .Values.ports.verify }}
      protocol: TCP
    {{- end }}
  env:
    - name: TOKEN_HANDLER_COOKIE_KEYS_FILE
      value: {{ printf "%s/%s" (include "token-handler.secretDir" .) .Values.secrets.cookieKeysKey | quote }}
    {{- if include "token-handler.hasClientSecret" . }}
    - name: TOKEN_HANDLER_CLIENT_SECRET_FILE
      value: {{ printf "%s/%s" (include "token-handler.secretDir" .) .Values.secrets.clientSecretKey | quote }}
    {{- end }}
    {{- if include "token-handler.redisStandalone" . }}
    - name: TOKEN_HANDLER_REDIS_URL_FILE
      value: {{ printf "%s/%s" (include "token-handler.secretDir" .) .Values.secrets.redisUrlKey | quote }}
    {{- end }}
    {{- range include "token-handler.redisCredentials" . | fromYamlArray }}
    - name: {{ .env }}
      value: {{ printf "%s/%s" (include "token-handler.secretDir" $) .key | quote }}
    {{- end }}
    {{- include "token-handler.clientAuthEnv" . | nindent 4 }}
    {{- with .Values.sidecar.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: proxy-admin
    {{- toYaml .Values.sidecar.livenessProbe | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: proxy-admin
    {{- toYaml .Values.sidecar.readinessProbe | nindent 4 }}
  {{- if gt (int .Values.lifecycle.preStopSleepSeconds) 0 }}
  lifecycle:
    preStop:
      # The kubelet's own sleep (Kubernetes >= 1.30): the image has no shell. Meanwhile the pod
      # leaves the Service endpoints; SIGTERM follows, then the drain.
      sleep:
        seconds: {{ .Values.lifecycle.preStopSleepSeconds }}
  {{- end }}
  {{- with .Values.sidecar.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    runAsNonRoot: true
    {{- if not (kindIs "invalid" .Values.sidecar.runAsUser) }}
    runAsUser: {{ .Values.sidecar.runAsUser }}
    {{- end }}
    {{- if not (kindIs "invalid" .Values.sidecar.runAsGroup) }}
    runAsGroup: {{ .Values.sidecar.runAsGroup }}
    {{- end }}
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    privileged: false
    capabilities:
      drop: ["ALL"]
    seccompProfile:
      type: RuntimeDefault
  terminationMessagePolicy: FallbackToLogsOnError
  volumeMounts:
    - name: token-handler-config
      mountPath: {{ include "token-handler.configDir" . }}
      readOnly: true
    # The whole Secret, not subPath: Kubernetes swaps the files atomically on a change, and
    # subPath mounts never see updates.
    - name: token-handler-secrets
      mountPath: {{ include "token-handler.secretDir" . }}
      readOnly: true
    {{- include "token-handler.clientAuthVolumeMounts" . | nindent 4 }}
    {{- with .Values.sidecar.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* The sidecar's volumes, as list items for `volumes:`. */}}
{{- define "token-handler.volumes" -}}
- name: token-handler-config
  configMap:
    name: {{ include "token-handler.configMapName" . }}
- name: token-handler-secrets
  secret:
    secretName: {{ include "token-handler.secretName" . }}
    defaultMode: 292  # 0444 (decimal, so no YAML parser reads it as 444)
{{- include "token-handler.clientAuthVolumes" . }}
{{- end }}
