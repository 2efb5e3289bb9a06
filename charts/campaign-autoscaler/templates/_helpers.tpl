{{/* Chart name, overridable. */}}
{{- define "campaign-autoscaler.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name prefix of every object: the release name, plus the chart name unless already in it. */}}
{{- define "campaign-autoscaler.fullname" -}}
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

{{- define "campaign-autoscaler.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "campaign-autoscaler.selectorLabels" -}}
app.kubernetes.io/name: {{ include "campaign-autoscaler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "campaign-autoscaler.labels" -}}
helm.sh/chart: {{ include "campaign-autoscaler.chart" . }}
{{ include "campaign-autoscaler.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: campaign-autoscaler
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "campaign-autoscaler.serviceAccountName" -}}
{{- .Values.serviceAccount.name }}
{{- end }}

{{- define "campaign-autoscaler.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Watching every namespace (ClusterRole) or only .Values.watchNamespaces (Roles). */}}
{{- define "campaign-autoscaler.clusterwide" -}}
{{- if not .Values.watchNamespaces }}true{{ end }}
{{- end }}

{{- define "campaign-autoscaler.peeringName" -}}
{{- default (include "campaign-autoscaler.fullname" .) .Values.peering.name }}
{{- end }}

{{/* Where a mounted Prometheus token / CA lands in the container. */}}
{{- define "campaign-autoscaler.prometheusTokenDir" -}}/etc/campaign-autoscaler/prometheus-token{{- end }}
{{- define "campaign-autoscaler.prometheusCaDir" -}}/etc/campaign-autoscaler/prometheus-ca{{- end }}

{{- define "campaign-autoscaler.prometheusTokenFile" -}}
{{- if .Values.prometheus.bearerTokenSecret.name }}
{{- printf "%s/%s" (include "campaign-autoscaler.prometheusTokenDir" .) .Values.prometheus.bearerTokenSecret.key }}
{{- else }}
{{- .Values.prometheus.bearerTokenFile }}
{{- end }}
{{- end }}

{{- define "campaign-autoscaler.prometheusCaFile" -}}
{{- if .Values.prometheus.caConfigMap.name }}
{{- printf "%s/%s" (include "campaign-autoscaler.prometheusCaDir" .) .Values.prometheus.caConfigMap.key }}
{{- else }}
{{- .Values.prometheus.caFile }}
{{- end }}
{{- end }}

{{/* Combinations the schema cannot express; rendering stops with a message that names the values. */}}
{{- define "campaign-autoscaler.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.peering.enabled) }}
{{- fail "replicaCount > 1 needs peering.enabled: standalone operators would scale the same targets at once" }}
{{- end }}
{{- if and .Values.prometheus.bearerTokenFile .Values.prometheus.bearerTokenSecret.name }}
{{- fail "set either prometheus.bearerTokenFile or prometheus.bearerTokenSecret.name, not both" }}
{{- end }}
{{- if and .Values.prometheus.caFile .Values.prometheus.caConfigMap.name }}
{{- fail "set either prometheus.caFile or prometheus.caConfigMap.name, not both" }}
{{- end }}
{{- if and .Values.metrics.enabled (eq (int .Values.metrics.port) (int .Values.livenessPort)) }}
{{- fail "metrics.port and livenessPort must differ" }}
{{- end }}
{{- range $needed := list "deployments.apps" "horizontalpodautoscalers.autoscaling" }}
{{- if not (has $needed $.Values.targetKinds) }}
{{- fail (printf "targetKinds must include %s: the operator watches them from the start" $needed) }}
{{- end }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "serviceMonitor.enabled needs metrics.enabled" }}
{{- end }}
{{- end }}

{{/*
Rules on the namespaced resources the operator reads and patches. The same list serves the ClusterRole
(all namespaces) and the Roles (watchNamespaces).
*/}}
{{- define "campaign-autoscaler.workloadRules" -}}
# CampaignEvents: Kopf watches them and patches its finalizer and annotations onto them.
- apiGroups: ["autoscaling.campaigns.dev"]
  resources: ["campaignevents"]
  verbs: ["get", "list", "watch", "patch"]
# The operator reports phase, window, targets and conditions in status.
- apiGroups: ["autoscaling.campaigns.dev"]
  resources: ["campaignevents/status"]
  verbs: ["get", "patch"]
{{- range $entry := .Values.targetKinds }}
{{- $parts := splitn "." 2 $entry }}
{{- $resource := $parts._0 }}
{{- $group := $parts._1 | default "" }}
{{- if eq $entry "deployments.apps" "statefulsets.apps" }}
# {{ $entry }}: annotations (baseline, claims, claim-uids) and spec.replicas in one JSON Patch whose `test`
# operations guard what the decision was made on.
{{- else if eq $entry "horizontalpodautoscalers.autoscaling" }}
# HPA-backed targets: minReplicas / maxReplicas are raised instead of the workload's replicas.
{{- else if eq $entry "scaledobjects.keda.sh" }}
# KEDA-scaled targets: the ScaledObject's minReplicaCount / maxReplicaCount, never the HPA KEDA owns.
{{- else }}
# {{ $entry }}: read and watched, annotations patched on the object, replicas through its /scale.
{{- end }}
- apiGroups: [{{ $group | quote }}]
  resources: [{{ $resource | quote }}]
  verbs: ["get", "list", "watch", "patch"]
{{- if not (has $entry (list "deployments.apps" "statefulsets.apps" "horizontalpodautoscalers.autoscaling" "scaledobjects.keda.sh")) }}
- apiGroups: [{{ $group | quote }}]
  resources: [{{ printf "%s/scale" $resource | quote }}]
  verbs: ["patch"]
{{- end }}
{{- end }}
# Events on CampaignEvents and targets (core v1; never events.k8s.io): created, and patched to count a
# repeat on the Event it repeats (count, message, lastTimestamp), as Kubernetes' event recorder does.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
# Pods: those of claimed targets are listed and watched (one watch per namespace with a claim) to say why
# capacity is missing (Unschedulable, ImagePullBackOff, CrashLoopBackOff), never read by GET nor written; node
# headroom's placeholder pods (labelled autoscaling.campaigns.dev/headroom=true) are created before a pre-scale
# and deleted after it. No other pod is created or deleted.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["create", "delete", "list", "watch"]
{{- end }}

{{/*
Kopf peering (kopf/_core/engines/peering.py): it lists and watches the peering objects of its scope and
patches its keep-alive into the status of the one named by --peering; get/patch are limited to that name.
Cluster-wide operators use ClusterKopfPeering, namespaced ones a KopfPeering in every served namespace.
The operator creates its peering object at start-up (adapters/peering.py), so that one `kubectl apply` of
the peering CRDs and the operator installs everything; Kubernetes cannot limit a `create` to a name.
*/}}
{{- define "campaign-autoscaler.peeringRules" -}}
{{- $resource := ternary "clusterkopfpeerings" "kopfpeerings" (eq (include "campaign-autoscaler.clusterwide" .) "true") -}}
# Kopf peering: read every peering object of its scope, create its own at start-up, write its keep-alive
# only into its own.
- apiGroups: ["kopf.dev"]
  resources: [{{ $resource | quote }}]
  verbs: ["list", "watch", "create"]
- apiGroups: ["kopf.dev"]
  resources: [{{ $resource | quote }}]
  resourceNames: [{{ include "campaign-autoscaler.peeringName" . | quote }}]
  verbs: ["get", "patch"]
{{- end }}

{{/*
Cluster-scoped reads of Kopf's observers (kopf/_core/reactor/observation.py). resource_observer lists and
watches CRDs to notice served resources appearing or changing (our CRD, the peering CRDs) after start.
namespace_observer lists and watches namespaces only when not cluster-wide, to match --namespace against
the namespaces that exist. Without them Kopf falls back to a degraded mode and warns at every start.
*/}}
{{- define "campaign-autoscaler.observerRules" -}}
# Kopf's observers: CRDs appearing or changing after start; namespaces when not cluster-wide (Kopf's own
# discovery) or with watch.namespaceSelector (which namespaces are selected).
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if or (ne (include "campaign-autoscaler.clusterwide" .) "true") .Values.watch.namespaceSelector }}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
{{- if and .Values.webhook.enabled (not .Values.webhook.certManager.enabled) }}
# The webhook's configuration, written by the operator with its self-signed CA (create cannot be limited to a
# name; the rest is limited to the one the chart names).
- apiGroups: ["admissionregistration.k8s.io"]
  resources: ["validatingwebhookconfigurations"]
  verbs: ["create"]
- apiGroups: ["admissionregistration.k8s.io"]
  resources: ["validatingwebhookconfigurations"]
  resourceNames: [{{ include "campaign-autoscaler.webhookName" . | quote }}]
  verbs: ["get", "update", "patch"]
{{- end }}
{{- end }}

{{- define "campaign-autoscaler.webhookName" -}}
{{ include "campaign-autoscaler.fullname" . }}-webhook
{{- end }}
