{{/* The release's base name: the release name, or <release>-chaperone when it lacks "chaperone". */}}
{{- define "chaperone.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Name of the operator's Deployment, ServiceAccount, Service and RBAC objects. */}}
{{- define "chaperone.operatorName" -}}
{{- printf "%s-operator" (include "chaperone.fullname" .) -}}
{{- end -}}

{{/* Labels every object of the chart carries. */}}
{{- define "chaperone.labels" -}}
app.kubernetes.io/name: chaperone-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: chaperone
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The labels that select the operator's pods. */}}
{{- define "chaperone.selectorLabels" -}}
app.kubernetes.io/name: chaperone-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* <repository>:<tag>, or <repository>:<tag>@<digest> when a digest is set (nodes then pull by digest). */}}
{{- define "chaperone.image" -}}
{{- $reference := printf "%s:%s" .image.repository (default .appVersion .image.tag) -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $reference .image.digest -}}
{{- else -}}
{{- $reference -}}
{{- end -}}
{{- end -}}

{{- define "chaperone.operatorImage" -}}
{{- include "chaperone.image" (dict "image" .Values.operator.image "appVersion" .Chart.AppVersion) -}}
{{- end -}}

{{- define "chaperone.gatewayImage" -}}
{{- include "chaperone.image" (dict "image" .Values.gateway.image "appVersion" .Chart.AppVersion) -}}
{{- end -}}

{{/* The gateway pods' resources and scheduling as one JSON object (the operator's CHAPERONE_GATEWAY_POD). */}}
{{- define "chaperone.gatewayPod" -}}
{{- $g := .Values.gateway -}}
{{- dict "resources" $g.resources "nodeSelector" $g.nodeSelector "tolerations" $g.tolerations "affinity" $g.affinity "topologySpreadConstraints" $g.topologySpreadConstraints "priorityClassName" $g.priorityClassName | toJson -}}
{{- end -}}
