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

{{/* The ClusterRole (create tokenreviews) and its one ClusterRoleBinding, whose subjects
the operator keeps equal to the ServiceAccounts of the pools that review tokens. */}}
{{- define "agentpool.tokenReviewerName" -}}
{{- printf "%s-token-reviewer" (include "agentpool.fullname" .) -}}
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
ClusterRole (all namespaces) and the per-namespace Roles (watchNamespaces). Server-side
apply is a `patch` (and a `create` the first time); nothing here needs `update`.
*/}}
{{- define "agentpool.namespacedRules" -}}
# Its own resources: read and watch them, patch their status (no finalizers: children go
# with their pool through owner references).
- apiGroups: ["agentpool.dev"]
  resources: ["agentpools", "agenttools"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["agentpool.dev"]
  resources: ["agentpools/status", "agenttools/status"]
  verbs: ["patch"]
# The scale subresource, which the HPA and `kubectl scale` write through.
- apiGroups: ["agentpool.dev"]
  resources: ["agentpools/scale"]
  verbs: ["get", "patch", "update"]
# The children it renders for each pool; deleting one that is no longer wanted (an HPA
# after leaving HPA mode, a PDB below two replicas, a NetworkPolicy no longer asked for).
- apiGroups: [""]
  resources: ["configmaps", "services", "serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Secrets are read only for their resourceVersion: a rotated API key rolls the pods
# through a hash of the referenced Secrets' versions. Never written.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
# The autoscaler marks the replicas it removes (controller.kubernetes.io/pod-deletion-cost)
# after reading each one to check it is the pool's. No list, watch, create or delete.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "patch"]
# What users should see (created, rolled, degraded, recovered) as Events.
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.activator.enabled }}
# The activator: it watches the pools' Services' EndpointSlices (ready pods), and keeps
# one slice of its own per pool at zero (server-side apply: create + patch), deleted
# when the pool is ready again.
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end }}
{{- end -}}
