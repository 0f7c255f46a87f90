{{/* Names, labels and the pod pieces every fashion-search component shares. */}}

{{- define "fs.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fs.fullname" -}}
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

{{/* fs.component: "<fullname>-<component>", e.g. for Services and Deployments. Call with (list $ "encoder"). */}}
{{- define "fs.component" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "fs.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fs.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "fs.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "fs.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" }}
{{ include "fs.selectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: fashion-search
{{- end -}}

{{/* fs.image: (list $ .Values.encoder.image [suffix]) -> "<registry><repository>:<tag><suffix>" */}}
{{- define "fs.image" -}}
{{- $root := index . 0 -}}
{{- $image := index . 1 -}}
{{- $suffix := "" -}}
{{- if gt (len .) 2 }}{{ $suffix = index . 2 }}{{ end -}}
{{- $tag := $image.tag | default $root.Values.image.tag | default $root.Chart.AppVersion -}}
{{- printf "%s%s:%s%s" $root.Values.image.registry $image.repository $tag $suffix -}}
{{- end -}}

{{- define "fs.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "fs.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "fs.secretName" -}}
{{- .Values.secret.existingSecret | default (include "fs.component" (list . "secrets")) -}}
{{- end -}}

{{- define "fs.dataClaim" -}}
{{- .Values.data.existingClaim | default (include "fs.component" (list . "data")) -}}
{{- end -}}

{{- define "fs.qdrantUrl" -}}
{{- if .Values.qdrant.enabled -}}
{{- printf "http://%s:%d" (include "fs.component" (list . "qdrant")) (int .Values.qdrant.httpPort) -}}
{{- else -}}
{{- .Values.qdrant.externalUrl -}}
{{- end -}}
{{- end -}}

{{- define "fs.redisUrl" -}}
{{- if .Values.redis.enabled -}}
{{- printf "redis://%s:%d/%d" (include "fs.component" (list . "redis")) (int .Values.redis.port) (int .Values.redis.db) -}}
{{- else -}}
{{- .Values.redis.externalUrl -}}
{{- end -}}
{{- end -}}

{{/* Pod-level pieces shared by the project's own pods (not Redis/Qdrant). */}}
{{- define "fs.podCommon" -}}
serviceAccountName: {{ include "fs.serviceAccountName" . }}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/* Container-level pieces: pull policy, security context, settings from the ConfigMap and the Secret. */}}
{{- define "fs.containerCommon" -}}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.containerSecurityContext | nindent 2 }}
envFrom:
  - configMapRef:
      name: {{ include "fs.component" (list . "settings") }}
  - secretRef:
      name: {{ include "fs.secretName" . }}
{{- end -}}

{{/* fs.volumeMounts / fs.volumes: (list $ withData readOnlyData) -> writable /tmp and /cache, the shared data. */}}
{{- define "fs.volumeMounts" -}}
{{- $root := index . 0 -}}
- name: tmp
  mountPath: /tmp
- name: cache
  mountPath: /cache
{{- if index . 1 }}
- name: data
  mountPath: {{ $root.Values.data.mountPath }}
  readOnly: {{ index . 2 }}
{{- end }}
{{- end -}}

{{- define "fs.volumes" -}}
{{- $root := index . 0 -}}
- name: tmp
  emptyDir: {}
- name: cache
  emptyDir:
    sizeLimit: {{ $root.Values.model.cacheSizeLimit }}
{{- if index . 1 }}
- name: data
  persistentVolumeClaim:
    claimName: {{ include "fs.dataClaim" $root }}
    readOnly: {{ index . 2 }}
{{- end }}
{{- end -}}

{{/* Checks that the schema cannot express: combinations of values. */}}
{{- define "fs.validate" -}}
{{- if and (not .Values.qdrant.enabled) (not .Values.qdrant.externalUrl) -}}
{{- fail "qdrant: set qdrant.enabled=true (a Qdrant cluster in the release) or qdrant.externalUrl" -}}
{{- end -}}
{{- if and (not .Values.redis.enabled) (not .Values.redis.externalUrl) (not .Values.secret.existingSecret) -}}
{{- fail "redis: set redis.enabled=true, redis.externalUrl or secret.existingSecret (with FASHION_REDIS_URL)" -}}
{{- end -}}
{{- if and .Values.qdrant.enabled (gt (int .Values.qdrant.replicationFactor) (int .Values.qdrant.replicaCount)) -}}
{{- fail (printf "qdrant.replicationFactor (%d) cannot exceed qdrant.replicaCount (%d) peers" (int .Values.qdrant.replicationFactor) (int .Values.qdrant.replicaCount)) -}}
{{- end -}}
{{- if and .Values.query.autoscaling.enabled (gt (int .Values.query.autoscaling.minReplicas) (int .Values.query.autoscaling.maxReplicas)) -}}
{{- fail (printf "query.autoscaling.minReplicas (%d) > maxReplicas (%d)" (int .Values.query.autoscaling.minReplicas) (int .Values.query.autoscaling.maxReplicas)) -}}
{{- end -}}
{{- end -}}
