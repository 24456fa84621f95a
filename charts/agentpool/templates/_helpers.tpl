{{/* The release's full name, at most 63 characters (DNS label). */}}
{{- define "agentpool.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "agentpool.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
app.kubernetes.io/part-of: agentpool
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
{{- end -}}

{{- define "agentpool.selectorLabels" -}}
app.kubernetes.io/name: agentpool-operator
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}

{{- define "agentpool.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "agentpool.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "agentpool.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "agentpool.agentImage" -}}
{{- printf "%s:%s" .Values.agentImage.repository (default .Chart.AppVersion .Values.agentImage.tag) -}}
{{- end -}}

{{- define "agentpool.redisName" -}}
{{- printf "%s-redis" (include "agentpool.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The restricted Pod Security Standard, for a container. */}}
{{- define "agentpool.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
What the operator does in a namespace it watches, and nothing more. Shared by the
ClusterRole (all namespaces) and the per-namespace Roles (watchNamespaces).
*/}}
{{- define "agentpool.namespacedRules" -}}
# Its own resources: read them, write their status, add its finalizer.
- apiGroups: ["agentpool.dev"]
  resources: ["agentpools", "agenttools"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["agentpool.dev"]
  resources: ["agentpools/status", "agenttools/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["agentpool.dev"]
  resources: ["agentpools/scale"]
  verbs: ["get"]
# The children it renders for each pool (server-side apply = patch).
- apiGroups: [""]
  resources: ["configmaps", "services"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# The autoscaler scales the agent Deployments through their scale subresource.
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# Load sampling: find the agent pods and read their /metrics.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list"]
# Scaling decisions and errors are reported as Events.
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
