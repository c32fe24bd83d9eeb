{{/*
Names and labels.
*/}}

{{- define "recognize.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The resource name prefix. 40 characters at most, not Helm's usual 63: KubeRay derives longer
names from the RayService's (a 5-character cluster suffix, then "-head-svc", "-serve-svc",
"-<group>-worker-<id>") and they must stay valid DNS labels.
*/}}
{{- define "recognize.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "recognize.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "recognize.selectorLabels" -}}
app.kubernetes.io/name: {{ include "recognize.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "recognize.labels" -}}
helm.sh/chart: {{ include "recognize.chart" . }}
{{ include "recognize.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: recognize
{{- end }}

{{/* Selector of the GPU worker pods (PodDisruptionBudget). */}}
{{- define "recognize.workerSelectorLabels" -}}
{{ include "recognize.selectorLabels" . }}
app.kubernetes.io/component: gpu-worker
{{- end }}

{{- define "recognize.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* Name of the Secret holding the API keys; empty when there is none. */}}
{{- define "recognize.apiKeysSecretName" -}}
{{- if .Values.apiKeys.existingSecret }}
{{- .Values.apiKeys.existingSecret }}
{{- else if .Values.apiKeys.create }}
{{- printf "%s-api-keys" (include "recognize.fullname" .) }}
{{- end }}
{{- end }}

{{/*
The model file's path in the classifier's pods. Every model source puts the file under /models:
the PVC and the download emptyDir are mounted there, and the Dockerfile bakes it there.
*/}}
{{- define "recognize.modelPath" -}}
{{- printf "/models/%s" .Values.model.file }}
{{- end }}

{{/* The vehicle gate's file, beside the classifier's under /models (from the same source). */}}
{{- define "recognize.gatePath" -}}
{{- printf "/models/%s" .Values.gate.file }}
{{- end }}

{{/* "true" when the classifier replicas run the vehicle gate (gate.enabled null: the
service's default, on). */}}
{{- define "recognize.gateEnabled" -}}
{{- if kindIs "invalid" .Values.gate.enabled }}true{{ else }}{{ .Values.gate.enabled }}{{ end }}
{{- end }}

{{/*
The service settings (service/settings.py field names) these values set, as JSON: what the
RECOGNIZE_* environment would hold for the same service. A null value is left out, so the
service's own default applies. The bind host is always 0.0.0.0 in the cluster.
*/}}
{{- define "recognize.settings" -}}
{{- $v := .Values }}
{{- $settings := dict "host" "0.0.0.0" "port" $v.serve.port "model_path" (include "recognize.modelPath" .) "gate_model_path" (include "recognize.gatePath" .) }}
{{- $fromValues := list
  (list $v.classifier "replicas" "classifier_replicas")
  (list $v.classifier "numGpus" "classifier_num_gpus")
  (list $v.classifier "numCpus" "classifier_num_cpus")
  (list $v.classifier "providers" "providers")
  (list $v.classifier "intraOpThreads" "intra_op_threads")
  (list $v.classifier "maxBatchSize" "max_batch_size")
  (list $v.classifier "batchWaitTimeoutS" "batch_wait_timeout_s")
  (list $v.classifier "concurrentBatches" "concurrent_batches")
  (list $v.classifier "warmupBatchSizes" "warmup_batch_sizes")
  (list $v.classifier "batchBuckets" "batch_buckets")
  (list $v.gate "enabled" "gate_enabled")
  (list $v.ingress "replicas" "ingress_replicas")
  (list $v.ingress "numCpus" "ingress_num_cpus")
  (list $v.decision "matchThreshold" "match_threshold")
  (list $v.decision "mismatchThreshold" "mismatch_threshold")
  (list $v.decision "vehicleThreshold" "vehicle_threshold")
  (list $v.limits "maxUploadBytes" "max_upload_bytes")
  (list $v.limits "maxImagePixels" "max_image_pixels")
  (list $v.limits "minImageSide" "min_image_side")
  (list $v.limits "defaultTopK" "default_top_k")
  (list $v.limits "maxPendingRequests" "max_pending_requests")
  (list $v.limits "requestTimeoutS" "request_timeout_s")
  (list $v.logs "encoding" "log_encoding")
  (list $v.auth "disabled" "auth_disabled")
  (list $v.auth "docsRequireAuth" "docs_require_auth")
}}
{{- range $fromValues }}
{{- $value := index (index . 0) (index . 1) }}
{{- if not (kindIs "invalid" $value) }}
{{- $_ := set $settings (index . 2) $value }}
{{- end }}
{{- end }}
{{- toJson $settings }}
{{- end }}

{{/*
serveConfigV2: files/serve_config.yaml (`recognize config` for the service's defaults, kept equal
to the code by tests/deploy/test_helm_chart.py) with the settings above merged in the way
service.app.serve_config places them, plus Serve autoscaling, which the settings do not cover.
*/}}
{{- define "recognize.serveConfig" -}}
{{- $settings := include "recognize.settings" . | fromJson }}
{{- $doc := .Files.Get "files/serve_config.yaml" | fromYaml }}
{{- if not $doc.applications }}
{{- fail "files/serve_config.yaml is missing or empty: regenerate it with `recognize config`" }}
{{- end }}
{{- $app := first $doc.applications }}
{{- $deployments := dict }}
{{- range $app.deployments }}
{{- $_ := set $deployments .name . }}
{{- end }}
{{- $classifier := required "files/serve_config.yaml has no Classifier deployment" $deployments.Classifier }}
{{- $ingress := required "files/serve_config.yaml has no Ingress deployment" $deployments.Ingress }}
{{- $userConfig := $classifier.user_config }}
{{- /* Where serve_config puts each setting besides `args` (one or more places); the value there
  is its default. */}}
{{- $placed := dict
  "model_path" (list (list $userConfig "model_path"))
  "providers" (list (list $userConfig "providers"))
  "intra_op_threads" (list (list $userConfig "intra_op_threads"))
  "max_batch_size" (list (list $userConfig "max_batch_size"))
  "batch_wait_timeout_s" (list (list $userConfig "batch_wait_timeout_s"))
  "concurrent_batches" (list (list $userConfig "concurrent_batches"))
  "warmup_batch_sizes" (list (list $userConfig "warmup_batch_sizes"))
  "batch_buckets" (list (list $userConfig "batch_buckets"))
  "gate_enabled" (list (list $userConfig "gate_enabled"))
  "gate_model_path" (list (list $userConfig "gate_model_path"))
  "classifier_replicas" (list (list $classifier "num_replicas"))
  "classifier_num_cpus" (list (list $classifier.ray_actor_options "num_cpus"))
  "classifier_num_gpus" (list (list $classifier.ray_actor_options "num_gpus"))
  "ingress_replicas" (list (list $ingress "num_replicas"))
  "ingress_num_cpus" (list (list $ingress.ray_actor_options "num_cpus"))
  "log_encoding" (list (list $classifier.logging_config "encoding") (list $ingress.logging_config "encoding"))
}}
{{- /* The service's defaults (service/settings.py) of the settings that only `args` carries: a
  value equal to its default stays out of `args`, as serve_config leaves it out. The test case
  "service-defaults" in tests/deploy/test_helm_chart.py sets every value to the service's
  default, so a default restated wrongly here fails it. The thresholds have none here: unset
  (null) they are the model file's calibration, so any value set overrides it and goes to args. */}}
{{- $argDefaults := dict
  "vehicle_threshold" 0.15
  "max_upload_bytes" 20971520
  "max_image_pixels" 50000000
  "min_image_side" 32
  "default_top_k" 3
  "max_pending_requests" 64
  "request_timeout_s" 30.0
  "auth_disabled" false
  "docs_require_auth" false
}}
{{- /* `args` holds the settings that differ from the defaults (host and port go to http_options),
  except the Classifier's user_config: Serve restarts every replica when `args` change, and
  applies a user_config change in place (service.app.serve_config says why). */}}
{{- $userConfigOnly := keys $userConfig }}
{{- $args := deepCopy ($app.args | default dict) }}
{{- range $name, $value := $settings }}
{{- if not (has $name (concat (list "host" "port") $userConfigOnly)) }}
{{- $where := get $placed $name }}
{{- $default := "" }}
{{- $known := true }}
{{- if $where }}
{{- $first := first $where }}
{{- $default = index (index $first 0) (index $first 1) }}
{{- else if hasKey $argDefaults $name }}
{{- $default = get $argDefaults $name }}
{{- else }}
{{- $known = false }}
{{- end }}
{{- if or (not $known) (ne (toJson $value) (toJson $default)) }}
{{- $_ := set $args $name $value }}
{{- end }}
{{- end }}
{{- end }}
{{- range $name, $places := $placed }}
{{- if hasKey $settings $name }}
{{- range $places }}
{{- $_ := set (index . 0) (index . 1) (get $settings $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- /* Concurrency limits, derived from the settings as service.app.deployment_options does. */}}
{{- $pending := get $argDefaults "max_pending_requests" }}
{{- if hasKey $settings "max_pending_requests" }}
{{- $pending = get $settings "max_pending_requests" }}
{{- end }}
{{- $classifierOngoing := max (mul (add1 $userConfig.concurrent_batches) $userConfig.max_batch_size) $pending }}
{{- $_ := set $classifier "max_ongoing_requests" $classifierOngoing }}
{{- $_ := set $classifier "max_queued_requests" (mul 4 $classifierOngoing) }}
{{- $_ := set $ingress "max_ongoing_requests" (add $pending 16) }}
{{- $autoscaling := .Values.classifier.autoscaling }}
{{- if $autoscaling.enabled }}
{{- $config := dict "min_replicas" $autoscaling.minReplicas "max_replicas" $autoscaling.maxReplicas "target_ongoing_requests" $autoscaling.targetOngoingRequests }}
{{- range $key, $name := dict "initialReplicas" "initial_replicas" "upscaleDelayS" "upscale_delay_s" "downscaleDelayS" "downscale_delay_s" }}
{{- $value := index $autoscaling $key }}
{{- if not (kindIs "invalid" $value) }}
{{- $_ := set $config $name $value }}
{{- end }}
{{- end }}
{{- $_ := unset $classifier "num_replicas" }}
{{- $_ := set $classifier "autoscaling_config" $config }}
{{- end }}
{{- $_ := set $doc.http_options "host" $settings.host }}
{{- $_ := set $doc.http_options "port" $settings.port }}
{{- $_ := set $app "args" $args }}
{{- toYaml $doc }}
{{- end }}

{{/*
Refuse values that render valid objects which cannot work: bounds the wrong way round, and
classifier replicas that cannot all get their GPUs even at the worker group's largest size
(Serve would wait forever for replicas that never fit).
*/}}
{{- define "recognize.checkValues" -}}
{{- $autoscaling := .Values.classifier.autoscaling }}
{{- if and $autoscaling.enabled (gt (int $autoscaling.minReplicas) (int $autoscaling.maxReplicas)) }}
{{- fail "classifier.autoscaling.minReplicas is above classifier.autoscaling.maxReplicas" }}
{{- end }}
{{- $workers := .Values.gpuWorkers }}
{{- if not (and (le (int $workers.minReplicas) (int $workers.replicas)) (le (int $workers.replicas) (int $workers.maxReplicas))) }}
{{- fail "gpuWorkers needs minReplicas <= replicas <= maxReplicas" }}
{{- end }}
{{- $model := .Values.model }}
{{- if and (eq $model.source "url") (not (or $model.url.location $model.url.existingSecret)) }}
{{- fail "model.source=url needs model.url.location or model.url.existingSecret" }}
{{- end }}
{{- $gate := .Values.gate }}
{{- if and (eq $model.source "url") (eq (include "recognize.gateEnabled" .) "true") }}
{{- if not (or $gate.url.location $gate.url.existingSecret) }}
{{- fail "model.source=url with the vehicle gate on needs gate.url.location or gate.url.existingSecret (or gate.enabled=false)" }}
{{- end }}
{{- if not $gate.url.sha256 }}
{{- fail "model.source=url with the vehicle gate on needs gate.url.sha256" }}
{{- end }}
{{- end }}
{{- $doc := include "recognize.serveConfig" . | fromYaml }}
{{- range (first $doc.applications).deployments }}
{{- if eq .name "Classifier" }}
{{- $replicas := .num_replicas | default 0 }}
{{- with .autoscaling_config }}
{{- $replicas = .max_replicas }}
{{- end }}
{{- $need := mulf $replicas .ray_actor_options.num_gpus }}
{{- $have := mul $.Values.gpuWorkers.maxReplicas $.Values.gpuWorkers.gpus }}
{{- if gt $need (float64 $have) }}
{{- fail (printf "%v classifier replicas x %v GPUs need %v GPUs, but the GPU worker group has at most %v (gpuWorkers.maxReplicas x gpuWorkers.gpus)" $replicas .ray_actor_options.num_gpus $need $have) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Environment of every Ray container. Service settings go through serveConfigV2, not here:
a serveConfigV2 change updates the Serve application in place, an env change makes a new cluster. */}}
{{- define "recognize.env" -}}
# Ray, dashboard and Python write nothing under $HOME, but anything that tries lands in the
# writable /tmp emptyDir instead of the read-only image.
- name: HOME
  value: /tmp
- name: RAY_USAGE_STATS_ENABLED
  value: "0"
# Ray Serve's throughput profile, as `recognize serve` runs it (service/rayenv.py): gRPC
# between deployments and from the proxies, instead of Ray's object store for every
# request's image. Every Ray process reads it at start, so it is set on every pod.
- name: RAY_SERVE_THROUGHPUT_OPTIMIZED
  value: "1"
- name: RAY_SERVE_LOG_TO_STDERR
  value: "1"
- name: RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE
  value: "1"
# ...but clients keep coming through the proxies (the Service in front of every node's proxy),
# not straight to the replicas, which the profile would otherwise switch on.
- name: RAY_SERVE_ENABLE_DIRECT_INGRESS
  value: "0"
# The proxy itself: HAProxy (Ray Serve's HAProxy mode) or Serve's Python proxy
# (service/rayenv.py proxy_environment; ray.httpProxy).
- name: RAY_SERVE_ENABLE_HA_PROXY
  value: {{ ternary "1" "0" (eq .Values.ray.httpProxy "haproxy") | quote }}
{{- if eq .Values.ray.authMode "disabled" }}
- name: RAY_AUTH_MODE
  value: disabled
{{- end }}
{{- with (include "recognize.apiKeysSecretName" .) }}
- name: RECOGNIZE_API_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.apiKeys.secretKey }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Writable scratch space of every Ray pod: /tmp (Ray's session directory, logs, spilled
objects) and an in-memory /dev/shm for the object store. Called with (list $ shmSize). */}}
{{- define "recognize.scratchVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ (index . 0).Values.tmpSizeLimit }}
- name: dshm
  emptyDir:
    medium: Memory
    sizeLimit: {{ index . 1 }}
{{- end }}

{{- define "recognize.scratchVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: dshm
  mountPath: /dev/shm
{{- end }}
