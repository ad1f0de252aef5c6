{{/*
A TOML writer for the services' config files. Helm's own toToml writes every number as a float
(values pass through JSON), which the services' strict parser refuses for integer settings; this
one writes whole numbers as integers. Maps become [tables], lists inline arrays, maps inside
lists inline tables; null values are left out (the service default applies).
*/}}

{{- define "meshwatch.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . -}}{{ . }}{{- else -}}{{ toJson . }}{{- end -}}
{{- end -}}

{{- define "meshwatch.toml.value" -}}
{{- $k := kindOf . -}}
{{- if eq $k "string" -}}
{{- toJson . -}}
{{- else if eq $k "bool" -}}
{{- . -}}
{{- else if has $k (list "float64" "float32") -}}
{{- if eq (float64 .) (floor .) -}}{{- int64 . -}}{{- else -}}{{- . -}}{{- end -}}
{{- else if has $k (list "int" "int64" "int32" "uint64") -}}
{{- . -}}
{{- else if eq $k "slice" -}}
[{{- range $i, $e := . -}}{{- if $i -}}, {{ end -}}{{- include "meshwatch.toml.value" $e -}}{{- end -}}]
{{- else if eq $k "map" -}}
{{- $m := . -}}{
{{- $i := 0 -}}
{{- range $key := keys $m | sortAlpha -}}{{- $e := index $m $key -}}{{- if not (kindIs "invalid" $e) -}}{{- if $i -}}, {{ else }} {{ end -}}{{- include "meshwatch.toml.key" $key -}} = {{ include "meshwatch.toml.value" $e -}}{{- $i = add1 $i -}}{{- end -}}{{- end }} }
{{- else -}}
{{- fail (printf "cannot write a %s as TOML" $k) -}}
{{- end -}}
{{- end -}}

{{/* (dict "path" "graph" "map" $m): one table, its scalar keys, then its sub-tables. */}}
{{- define "meshwatch.toml.table" -}}
{{- $path := .path -}}
{{- $m := .map -}}
{{- if $path }}
[{{ $path }}]
{{- end }}
{{- range $key := keys $m | sortAlpha }}
{{- $v := index $m $key }}
{{- if and (not (kindIs "invalid" $v)) (not (kindIs "map" $v)) }}
{{ include "meshwatch.toml.key" $key }} = {{ include "meshwatch.toml.value" $v }}
{{- end }}
{{- end }}
{{- range $key := keys $m | sortAlpha }}
{{- $v := index $m $key }}
{{- if kindIs "map" $v }}
{{- $sub := ternary (include "meshwatch.toml.key" $key) (printf "%s.%s" $path (include "meshwatch.toml.key" $key)) (eq $path "") }}
{{ include "meshwatch.toml.table" (dict "path" $sub "map" $v) }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "meshwatch.toml" -}}
{{- include "meshwatch.toml.table" (dict "path" "" "map" .) | trim -}}
{{- end -}}
