{{/* Names, labels and control-plane defaults shared by the templates. */}}

{{- define "ambit.ztunnel.name" -}}
{{- printf "%s-ztunnel" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ambit.serviceAccountName" -}}
{{- default (include "ambit.ztunnel.name" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "ambit.labels" -}}
app.kubernetes.io/name: ztunnel
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: ambit
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "ambit.selectorLabels" -}}
app: ztunnel
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The xDS address: explicit, else the default of the control-plane kind. */}}
{{- define "ambit.xdsAddress" -}}
{{- if .Values.controlPlane.address -}}
{{- .Values.controlPlane.address -}}
{{- else if eq .Values.controlPlane.kind "ambit-cp" -}}
ambit-cp.ambit-system.svc:15012
{{- else if eq .Values.controlPlane.kind "istiod" -}}
istiod.istio-system.svc:15012
{{- else -}}
{{- required "controlPlane.kind must be istiod or ambit-cp" "" -}}
{{- end -}}
{{- end -}}

{{- define "ambit.caAddress" -}}
{{- default (include "ambit.xdsAddress" .) .Values.controlPlane.caAddress -}}
{{- end -}}
