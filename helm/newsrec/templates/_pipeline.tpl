{{/* Pod template of the pipeline-submit Job/CronJob. Argument: dict root, component, variant. */}}
{{- define "newsrec.pipelineSubmitPod" -}}
{{- $P := .root.Values.pipelineSubmit -}}
{{- $V := .root.Values -}}
metadata:
  labels:
    {{- include "newsrec.commonLabels" .root | nindent 4 }}
    {{- include "newsrec.selectorLabels" . | nindent 4 }}
spec:
  restartPolicy: Never
  serviceAccountName: {{ include "newsrec.serviceAccountName" .root }}
  automountServiceAccountToken: false
  {{- with $V.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $V.podSecurityContext | nindent 4 }}
  containers:
    - name: submit
      image: {{ include "newsrec.image" .root | quote }}
      imagePullPolicy: {{ $V.image.pullPolicy }}
      args:
        - pipeline
        - submit
        - --host
        - {{ $P.host | quote }}
        {{- range $P.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      env:
        - {name: NEWSREC_LOG_LEVEL, value: {{ $V.logLevel | quote }}}
        - {name: NEWSREC_MODEL_NAME, value: {{ $V.model.name | quote }}}
        {{- if $V.embedding.existingSecret }}
        - name: OPENAI_API_KEY
          valueFrom:
            secretKeyRef: {name: {{ $V.embedding.existingSecret }}, key: {{ $V.embedding.secretKey }}}
        {{- end }}
      resources:
        {{- toYaml $P.resources | nindent 8 }}
      securityContext:
        {{- toYaml $V.securityContext | nindent 8 }}
      volumeMounts:
        - {name: tmp, mountPath: /tmp}
        {{- if $P.kfpServiceAccountToken }}
        - {name: kfp-token, mountPath: /var/run/secrets/kubeflow/pipelines, readOnly: true}
        {{- end }}
  volumes:
    - name: tmp
      emptyDir: {sizeLimit: {{ $V.tmpSizeLimit }}}
    {{- if $P.kfpServiceAccountToken }}
    # Multi-user Kubeflow Pipelines authenticates a projected ServiceAccount token with
    # this audience; the kfp client reads it from this path.
    - name: kfp-token
      projected:
        sources:
          - serviceAccountToken: {path: token, audience: pipelines.kubeflow.org, expirationSeconds: 7200}
    {{- end }}
{{- end }}
