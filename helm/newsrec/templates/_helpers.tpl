{{/*
Names, labels, the image reference and the checks JSON schema cannot express.
*/}}

{{- define "newsrec.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Resource-name prefix: <release>, or <release>-<chart> when the release name lacks the
chart name. At most 36 characters, so that <prefix>-<variant (<= 12)>-user-encoder
stays a valid 63-character DNS label and a CronJob name stays within 52.
*/}}
{{- define "newsrec.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 36 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 36 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 36 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "newsrec.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries, minus the selector ones. */}}
{{- define "newsrec.commonLabels" -}}
helm.sh/chart: {{ include "newsrec.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: newsrec
{{- end -}}

{{/* Labels of an object that belongs to no single workload. */}}
{{- define "newsrec.labels" -}}
{{ include "newsrec.commonLabels" . }}
{{ include "newsrec.releaseSelector" . }}
{{- end -}}

{{/* Selector of every pod of the release (NetworkPolicy peers). */}}
{{- define "newsrec.releaseSelector" -}}
app.kubernetes.io/name: {{ include "newsrec.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Selector labels of one workload. Argument: dict root, component, variant ("" for none).
*/}}
{{- define "newsrec.selectorLabels" -}}
{{ include "newsrec.releaseSelector" .root }}
app.kubernetes.io/component: {{ .component }}
newsrec.io/component: {{ .component }}
{{- if .variant }}
newsrec.io/variant: {{ .variant }}
{{- end }}
{{- end -}}

{{/* Name of one workload: <fullname>[-<variant>]-<component>. Argument as above. */}}
{{- define "newsrec.workloadName" -}}
{{- $full := include "newsrec.fullname" .root -}}
{{- if .variant -}}
{{- printf "%s-%s-%s" $full .variant .component | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" $full .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Secret holding the in-chart Redis password: redis.auth.existingSecret or the generated one. */}}
{{- define "newsrec.redisAuthSecret" -}}
{{- .Values.redis.auth.existingSecret | default (printf "%s-redis-auth" (include "newsrec.fullname" .)) -}}
{{- end -}}

{{- define "newsrec.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "newsrec.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "newsrec.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/* gRPC port of a component (gateway, user-encoder, retrieval, ranker). */}}
{{- define "newsrec.port" -}}
{{- $ports := .root.Values.ports -}}
{{- $key := .component | replace "user-encoder" "userEncoder" -}}
{{- index $ports $key -}}
{{- end -}}

{{/* dns:/// target of a variant's component, for client-side round robin over the headless Service. */}}
{{- define "newsrec.target" -}}
{{- printf "dns:///%s:%s" (include "newsrec.workloadName" .) (include "newsrec.port" .) -}}
{{- end -}}

{{/*
Checks across values that JSON schema cannot express. Each failure says which key
to fix. Included once from every template so `helm template` fails early.
*/}}
{{- define "newsrec.validate" -}}
{{- $total := 0 -}}
{{- $seen := dict -}}
{{- range $i, $v := .Values.variants -}}
{{- if hasKey $seen $v.name -}}
{{- fail (printf "variants[%d]: duplicate variant name %q (names must be unique)" $i $v.name) -}}
{{- end -}}
{{- $_ := set $seen $v.name true -}}
{{- $total = add $total $v.weight -}}
{{- end -}}
{{- if ne (int $total) 100 -}}
{{- fail (printf "variants: weights must sum to 100, got %d (%s)" (int $total) (include "newsrec.weightList" .)) -}}
{{- end -}}
{{- if and (not .Values.redis.enabled) (not .Values.redis.url) (not .Values.redis.existingSecret) -}}
{{- fail "redis: set redis.enabled=true (in-chart Redis), redis.url, or redis.existingSecret (external Redis)" -}}
{{- end -}}
{{- if and .Values.tls.enabled (or (not .Values.tls.secretName) (not .Values.tls.serverName)) -}}
{{- fail "tls.enabled needs tls.secretName (tls.crt, tls.key, ca.crt) and tls.serverName (the name in the certificate)" -}}
{{- end -}}
{{- if and (eq .Values.embedding.provider "openai") (not .Values.embedding.existingSecret) -}}
{{- fail "embedding.provider=openai needs embedding.existingSecret: the API key comes from a Secret, never from values" -}}
{{- end -}}
{{- end -}}

{{- define "newsrec.weightList" -}}
{{- $parts := list -}}
{{- range .Values.variants -}}
{{- $parts = append $parts (printf "%s=%v" .name .weight) -}}
{{- end -}}
{{- join ", " $parts -}}
{{- end -}}
