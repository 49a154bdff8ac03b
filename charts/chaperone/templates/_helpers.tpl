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

{{- define "chaperone.operatorImage" -}}
{{- printf "%s:%s" .Values.operator.image.repository (default .Chart.AppVersion .Values.operator.image.tag) -}}
{{- end -}}

{{- define "chaperone.gatewayImage" -}}
{{- printf "%s:%s" .Values.gateway.image.repository (default .Chart.AppVersion .Values.gateway.image.tag) -}}
{{- end -}}
