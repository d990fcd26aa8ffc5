{{/*
The one shape every newsrec service takes: ConfigMap + Deployment (+ HPA, + PDB).
Gateway, user-encoder, retrieval and ranker of every variant are all rendered by
"newsrec.workload"; only the arguments differ.

Arguments (dict):
  root          the top-level context ($)
  component     gateway | user-encoder | retrieval | ranker
  variant       variant name, or "" for the shared gateway
  modelVersion  model version served ("" for the gateway)
  spec          merged component settings: replicas, resources, hpa, pdb
  config        dict written to the ConfigMap as config.yaml (NEWSREC_CONFIG)
  env           extra env entries (list of EnvVar dicts) for this component
*/}}
{{- define "newsrec.workload" -}}
{{- $root := .root -}}
{{- $V := $root.Values -}}
{{- $name := include "newsrec.workloadName" . -}}
{{- $port := include "newsrec.port" . | int -}}
{{- $configYaml := toYaml .config -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $name }}-config
  labels:
    {{- include "newsrec.commonLabels" $root | nindent 4 }}
    {{- include "newsrec.selectorLabels" . | nindent 4 }}
data:
  config.yaml: |
    {{- $configYaml | nindent 4 }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "newsrec.commonLabels" $root | nindent 4 }}
    {{- include "newsrec.selectorLabels" . | nindent 4 }}
    {{- if .modelVersion }}
    newsrec.io/model-version: {{ .modelVersion | quote }}
    {{- end }}
spec:
  {{- if not .spec.hpa.enabled }}
  replicas: {{ .spec.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  selector:
    matchLabels:
      {{- include "newsrec.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "newsrec.commonLabels" $root | nindent 8 }}
        {{- include "newsrec.selectorLabels" . | nindent 8 }}
        {{- if .modelVersion }}
        newsrec.io/model-version: {{ .modelVersion | quote }}
        {{- end }}
      annotations:
        # A changed config file rolls the pods (the file is read once at start).
        checksum/config: {{ $configYaml | sha256sum }}
        {{- with $V.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "newsrec.serviceAccountName" $root }}
      # The services never call the Kubernetes API.
      automountServiceAccountToken: false
      {{- with $V.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $V.podSecurityContext | nindent 8 }}
      # preStop sleep + drain + grace, and 5 s for the process to exit (values `shutdown`).
      terminationGracePeriodSeconds: {{ add $V.shutdown.preStopSeconds $V.shutdown.drainSeconds $V.shutdown.graceSeconds 5 }}
      containers:
        - name: {{ .component }}
          image: {{ include "newsrec.image" $root | quote }}
          imagePullPolicy: {{ $V.image.pullPolicy }}
          args: ["serve", "--service", {{ .component | quote }}]
          {{- if gt (int $V.shutdown.preStopSeconds) 0 }}
          lifecycle:
            # Still SERVING while kube-proxy, ingresses and DNS drop this pod; then SIGTERM.
            preStop:
              exec: {command: ["sleep", {{ $V.shutdown.preStopSeconds | quote }}]}
          {{- end }}
          ports:
            - {name: grpc, containerPort: {{ $port }}, protocol: TCP}
            - {name: metrics, containerPort: {{ $V.ports.metrics }}, protocol: TCP}
          env:
            - {name: NEWSREC_CONFIG, value: /etc/newsrec/config.yaml}
            - {name: NEWSREC_SERVICE, value: {{ .component | quote }}}
            - {name: NEWSREC_GRPC_PORT, value: {{ $port | quote }}}
            - {name: NEWSREC_METRICS_PORT, value: {{ $V.ports.metrics | quote }}}
            - {name: NEWSREC_LOG_LEVEL, value: {{ $V.logLevel | quote }}}
            - {name: NEWSREC_DRAIN_SECONDS, value: {{ $V.shutdown.drainSeconds | quote }}}
            - {name: NEWSREC_GRACE_SECONDS, value: {{ $V.shutdown.graceSeconds | quote }}}
            {{- if $V.tls.enabled }}
            - {name: NEWSREC_TLS_CERT_FILE, value: /etc/newsrec/tls/tls.crt}
            - {name: NEWSREC_TLS_KEY_FILE, value: /etc/newsrec/tls/tls.key}
            - {name: NEWSREC_TLS_CA_FILE, value: /etc/newsrec/tls/ca.crt}
            - {name: NEWSREC_TLS_SERVER_NAME, value: {{ $V.tls.serverName | quote }}}
            {{- if $V.tls.mutual }}
            - {name: NEWSREC_TLS_CLIENT_CA_FILE, value: /etc/newsrec/tls/ca.crt}
            {{- end }}
            {{- end }}
            {{- if $V.auth.existingSecret }}
            - name: NEWSREC_AUTH_TOKEN
              valueFrom: {secretKeyRef: {name: {{ $V.auth.existingSecret | quote }}, key: {{ $V.auth.secretKey | quote }}}}
            {{- end }}
            # One BLAS/OpenMP thread per pod: requests are small and concurrent, and a
            # thread pool per request made a 1 ms scan take 20 ms on a busy node.
            - {name: OMP_NUM_THREADS, value: "1"}
            - {name: MKL_NUM_THREADS, value: "1"}
            - {name: NEWSREC_REGISTRY, value: {{ $V.registry.mountPath | quote }}}
            - {name: NEWSREC_MODEL_NAME, value: {{ $V.model.name | quote }}}
            {{- if .modelVersion }}
            - {name: NEWSREC_MODEL_VERSION, value: {{ .modelVersion | quote }}}
            {{- end }}
            {{- if .variant }}
            - {name: NEWSREC_VARIANT, value: {{ .variant | quote }}}
            {{- end }}
            {{- with .env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- with $V.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          # Native gRPC probes (Kubernetes >= 1.24) call grpc.health.v1 on the service port;
          # they cannot speak TLS, so with TLS the image's health check runs instead.
          {{- $probe := printf "grpc: {port: %d}" $port }}
          {{- if $V.tls.enabled }}
          {{- $probe = "exec: {command: [python, -m, services.healthcheck]}" }}
          {{- end }}
          startupProbe:
            {{ $probe }}
            {{- toYaml $V.probes.startup | nindent 12 }}
          livenessProbe:
            {{ $probe }}
            {{- toYaml $V.probes.liveness | nindent 12 }}
          readinessProbe:
            {{ $probe }}
            {{- toYaml $V.probes.readiness | nindent 12 }}
          resources:
            {{- toYaml .spec.resources | nindent 12 }}
          securityContext:
            {{- toYaml $V.securityContext | nindent 12 }}
          volumeMounts:
            - {name: config, mountPath: /etc/newsrec, readOnly: true}
            - {name: tmp, mountPath: /tmp}
            {{- if $V.tls.enabled }}
            - {name: tls, mountPath: /etc/newsrec/tls, readOnly: true}
            {{- end }}
            {{- if $V.registry.existingClaim }}
            - {name: registry, mountPath: {{ $V.registry.mountPath | quote }}, readOnly: true}
            {{- end }}
            {{- with $V.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: config
          configMap: {name: {{ $name }}-config}
        - name: tmp
          emptyDir: {sizeLimit: {{ $V.tmpSizeLimit }}}
        {{- if $V.tls.enabled }}
        - name: tls
          secret: {secretName: {{ $V.tls.secretName | quote }}, defaultMode: 0440}
        {{- end }}
        {{- if $V.registry.existingClaim }}
        - name: registry
          persistentVolumeClaim: {claimName: {{ $V.registry.existingClaim }}, readOnly: true}
        {{- end }}
        {{- with $V.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if $V.spreadAcrossNodes }}
      # Replicas of one workload prefer different nodes (soft: never blocks scheduling).
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "newsrec.selectorLabels" . | nindent 14 }}
      {{- end }}
      {{- with $V.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $V.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $V.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- if .spec.hpa.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  labels:
    {{- include "newsrec.commonLabels" $root | nindent 4 }}
    {{- include "newsrec.selectorLabels" . | nindent 4 }}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: {{ $name }}}
  minReplicas: {{ .spec.hpa.minReplicas }}
  maxReplicas: {{ .spec.hpa.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target: {type: Utilization, averageUtilization: {{ .spec.hpa.targetCPUUtilizationPercentage }}}
{{- end }}
{{- if .spec.pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  labels:
    {{- include "newsrec.commonLabels" $root | nindent 4 }}
    {{- include "newsrec.selectorLabels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .spec.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "newsrec.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}

{{/*
A Service in front of workload pods. Arguments: root, component, variant (may be ""),
headless (bool), selectVariant (bool: include the variant in the selector).
Internal services are headless so gRPC clients resolve every pod (dns:///) and
round-robin per request; a ClusterIP would pin each HTTP/2 connection to one pod.
*/}}
{{- define "newsrec.service" -}}
{{- $root := .root -}}
{{- $port := include "newsrec.port" . | int -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "newsrec.workloadName" . }}
  labels:
    {{- include "newsrec.commonLabels" $root | nindent 4 }}
    {{- include "newsrec.selectorLabels" . | nindent 4 }}
  {{- with .annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- if .headless }}
  clusterIP: None
  # Pods join DNS only when ready, so clients never dial a model that is still loading.
  publishNotReadyAddresses: false
  {{- else }}
  type: {{ .type | default "ClusterIP" }}
  {{- end }}
  selector:
    {{- include "newsrec.selectorLabels" . | nindent 4 }}
  ports:
    # appProtocol tells meshes and ingresses that this port speaks gRPC (HTTP/2).
    - {name: grpc, port: {{ $port }}, targetPort: grpc, protocol: TCP, appProtocol: grpc}
    - {name: metrics, port: {{ $root.Values.ports.metrics }}, targetPort: metrics, protocol: TCP, appProtocol: http}
{{- end -}}
