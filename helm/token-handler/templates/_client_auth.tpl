{{/*
Client authentication without a secret in the pod (the proxy's `private_key_jwt`, README
"Client authentication without a secret"), from the top-level `idp` values:

  idp.clientKey         a Secret you manage holding the client's private key, mounted read-only
                        as a file that TOKEN_HANDLER_CLIENT_KEY_FILE names
  idp.workloadIdentity  a projected ServiceAccount token whose audience is the IdP, minted and
                        rotated by the kubelet, mounted read-only at `path`, which the rendered
                        config's idp.client_assertion_file names

Either way no client secret is mounted or referenced. The checks here fail the render for what
the proxy would refuse at start-up anyway, with the chart's names for it.
*/}}

{{/* Where the client key's Secret is mounted. */}}
{{- define "token-handler.clientKeyDir" -}}/var/run/secrets/token-handler-client-key{{- end }}

{{/* "key" (idp.clientKey), "workload" (idp.workloadIdentity) or "" (neither). */}}
{{- define "token-handler.clientAuthSource" -}}
{{- $idp := .Values.idp | default dict }}
{{- $key := ($idp.clientKey | default dict).existingSecret }}
{{- $wi := ($idp.workloadIdentity | default dict).enabled }}
{{- if and $key $wi }}
{{- fail "idp: clientKey.existingSecret and workloadIdentity.enabled are two ways to authenticate the client: choose one" }}
{{- else if $key }}key
{{- else if $wi }}workload
{{- end }}
{{- end }}

{{/*
Fails the render when the client authentication cannot work: private_key_jwt without a key or
assertion, a key or assertion with another client_auth, a client secret given alongside, or a
client_assertion_file the chart owns. Renders nothing.
*/}}
{{- define "token-handler.clientAuthCheck" -}}
{{- $source := include "token-handler.clientAuthSource" . }}
{{- $idpCfg := (.Values.config | default dict).idp | default dict }}
{{- $auth := $idpCfg.client_auth | default "" }}
{{- if $source }}
{{- if eq ($idpCfg.dialect | default "") "tokenidp" }}
{{- fail "config.idp.dialect: TokenIDP accepts no client assertion (private_key_jwt): idp.clientKey and idp.workloadIdentity need the oauth2 dialect and a provider that supports it" }}
{{- end }}
{{- if and $auth (ne $auth "private_key_jwt") }}
{{- fail (printf "config.idp.client_auth: %s, but idp.%s gives the client a private_key_jwt credential: set client_auth to private_key_jwt (or leave it out)" $auth (ternary "clientKey" "workloadIdentity" (eq $source "key"))) }}
{{- end }}
{{- if .Values.secrets.clientSecret }}
{{- fail "secrets.clientSecret: not used with idp.clientKey or idp.workloadIdentity (private_key_jwt): leave it empty, no secret belongs in the pod" }}
{{- end }}
{{- if and (eq $source "workload") $idpCfg.client_assertion_file }}
{{- fail "config.idp.client_assertion_file: set by the chart from idp.workloadIdentity.path; leave it out" }}
{{- end }}
{{- else if and (eq $auth "private_key_jwt") (not $idpCfg.client_assertion_file) }}
{{- fail "config.idp.client_auth: private_key_jwt needs a credential: idp.clientKey.existingSecret (a Secret with the signing key) or idp.workloadIdentity.enabled (a projected ServiceAccount token); or config.idp.client_assertion_file with a volume of your own" }}
{{- end }}
{{- if eq $source "workload" }}
{{- $dir := dir .Values.idp.workloadIdentity.path }}
{{- range list (include "token-handler.configDir" .) (include "token-handler.secretDir" .) (include "token-handler.clientKeyDir" .) }}
{{- if or (eq $dir .) (hasPrefix (printf "%s/" .) $dir) }}
{{- fail (printf "idp.workloadIdentity.path: %s is inside %s, which the chart mounts already; pick another directory" $.Values.idp.workloadIdentity.path .) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The client key's variable, as `env:` list items (nothing without idp.clientKey). */}}
{{- define "token-handler.clientAuthEnv" -}}
{{- if eq (include "token-handler.clientAuthSource" .) "key" }}
- name: TOKEN_HANDLER_CLIENT_KEY_FILE
  value: {{ printf "%s/%s" (include "token-handler.clientKeyDir" .) .Values.idp.clientKey.key | quote }}
{{- end }}
{{- end }}

{{/* The sidecar's mounts of the key or the token, as `volumeMounts:` list items. */}}
{{- define "token-handler.clientAuthVolumeMounts" -}}
{{- $source := include "token-handler.clientAuthSource" . }}
{{- if eq $source "key" }}
# The key's Secret as a directory (not subPath): a rotated key reaches the running proxy.
- name: token-handler-client-key
  mountPath: {{ include "token-handler.clientKeyDir" . }}
  readOnly: true
{{- else if eq $source "workload" }}
# The kubelet rewrites the token before 80% of its life has passed; the proxy reads it per call.
- name: token-handler-idp-token
  mountPath: {{ dir .Values.idp.workloadIdentity.path }}
  readOnly: true
{{- end }}
{{- end }}

{{/* Their volumes, as `volumes:` list items. */}}
{{- define "token-handler.clientAuthVolumes" -}}
{{- $source := include "token-handler.clientAuthSource" . }}
{{- if eq $source "key" }}
- name: token-handler-client-key
  secret:
    secretName: {{ .Values.idp.clientKey.existingSecret }}
    items:
      - key: {{ .Values.idp.clientKey.key }}
        path: {{ .Values.idp.clientKey.key }}
    defaultMode: 292  # 0444
{{- else if eq $source "workload" }}
{{- $wi := .Values.idp.workloadIdentity }}
- name: token-handler-idp-token
  projected:
    sources:
      - serviceAccountToken:
          audience: {{ $wi.audience | quote }}
          expirationSeconds: {{ int64 $wi.expirationSeconds }}
          path: {{ base $wi.path }}
{{- end }}
{{- end }}
