// chart_render renders a Helm chart's templates with Go's text/template and the handful of
// Helm functions the Ambit chart uses, so the chart can be tested where Helm is not packaged.
// It reads values and chart metadata as JSON (the test converts the YAML), which keeps this
// program on the standard library only.
//
//	chart_render -chart CHART_DIR -values VALUES.json -meta CHART.json \
//	    [-release NAME] [-namespace NS]
//
// Output: every non-empty rendered manifest, each preceded by "---" and a "# Source:" line,
// like `helm template`. A failing `required` or a template error exits 1 with the message.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"
)

// helmFuncs are the Helm/Sprig functions the chart may use. Keep the chart to these.
func helmFuncs(t **template.Template) template.FuncMap {
	return template.FuncMap{
		"include": func(name string, data interface{}) (string, error) {
			var buf bytes.Buffer
			if err := (*t).ExecuteTemplate(&buf, name, data); err != nil {
				return "", err
			}
			return buf.String(), nil
		},
		"toYaml": func(v interface{}) string {
			if v == nil {
				return ""
			}
			return strings.Join(blockYAML(v), "\n")
		},
		"toJson": func(v interface{}) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
		"indent": func(n int, s string) string {
			pad := strings.Repeat(" ", n)
			return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
		},
		"nindent": func(n int, s string) string {
			pad := strings.Repeat(" ", n)
			return "\n" + pad + strings.ReplaceAll(s, "\n", "\n"+pad)
		},
		"quote": func(v interface{}) string {
			if v == nil {
				return `""`
			}
			return fmt.Sprintf("%q", fmt.Sprint(v))
		},
		"default": func(def interface{}, given ...interface{}) interface{} {
			if len(given) == 0 || empty(given[0]) {
				return def
			}
			return given[0]
		},
		"required": func(msg string, v interface{}) (interface{}, error) {
			if empty(v) {
				return nil, errors.New(msg)
			}
			return v, nil
		},
		"empty": empty,
		"trunc": func(n int, s string) string {
			if len(s) > n {
				return s[:n]
			}
			return s
		},
		"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
		"printf":     fmt.Sprintf,
	}
}

// blockYAML renders a value decoded from JSON as block-style YAML lines, as Helm's toYaml
// does, so rendered maps can be merged with keys written in the template. Strings are
// emitted JSON-quoted (a valid YAML double-quoted scalar), keys plain when safe.
func blockYAML(v interface{}) []string {
	switch x := v.(type) {
	case map[string]interface{}:
		if len(x) == 0 {
			return []string{"{}"}
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var out []string
		for _, k := range keys {
			key := yamlKey(k)
			child := x[k]
			if isCollection(child) {
				out = append(out, key+":")
				pad := "  "
				if _, isList := child.([]interface{}); isList {
					pad = ""
				}
				for _, l := range blockYAML(child) {
					out = append(out, pad+l)
				}
			} else {
				out = append(out, key+": "+scalarYAML(child))
			}
		}
		return out
	case []interface{}:
		if len(x) == 0 {
			return []string{"[]"}
		}
		var out []string
		for _, item := range x {
			lines := blockYAML(item)
			out = append(out, "- "+lines[0])
			for _, l := range lines[1:] {
				out = append(out, "  "+l)
			}
		}
		return out
	}
	return []string{scalarYAML(v)}
}

func isCollection(v interface{}) bool {
	switch x := v.(type) {
	case map[string]interface{}:
		return len(x) > 0
	case []interface{}:
		return len(x) > 0
	}
	return false
}

func scalarYAML(v interface{}) string {
	switch v.(type) {
	case map[string]interface{}:
		return "{}"
	case []interface{}:
		return "[]"
	case nil:
		return "null"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func yamlKey(k string) string {
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '_' || r == '-' || r == '.' || r == '/') {
			b, _ := json.Marshal(k)
			return string(b)
		}
	}
	if k == "" {
		return `""`
	}
	return k
}

// empty follows Sprig: nil, false, 0, "" and empty collections are empty.
func empty(v interface{}) bool {
	switch x := v.(type) {
	case nil:
		return true
	case bool:
		return !x
	case string:
		return x == ""
	case float64:
		return x == 0
	case int:
		return x == 0
	case []interface{}:
		return len(x) == 0
	case map[string]interface{}:
		return len(x) == 0
	}
	return false
}

func readJSON(path string) (map[string]interface{}, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out map[string]interface{}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return out, nil
}

func run() error {
	chartDir := flag.String("chart", "", "chart directory")
	valuesPath := flag.String("values", "", "values as JSON")
	metaPath := flag.String("meta", "", "Chart.yaml as JSON")
	release := flag.String("release", "ambit", "release name")
	namespace := flag.String("namespace", "istio-system", "release namespace")
	flag.Parse()

	values, err := readJSON(*valuesPath)
	if err != nil {
		return err
	}
	meta, err := readJSON(*metaPath)
	if err != nil {
		return err
	}
	chartName := fmt.Sprint(meta["name"])
	files, err := filepath.Glob(filepath.Join(*chartDir, "templates", "*"))
	if err != nil {
		return err
	}
	sort.Strings(files)

	var tmpl *template.Template
	tmpl = template.New(chartName).Option("missingkey=zero").Funcs(helmFuncs(&tmpl))
	var manifests []string
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		name := chartName + "/templates/" + filepath.Base(f)
		if _, err := tmpl.New(name).Parse(string(body)); err != nil {
			return err
		}
		if !strings.HasPrefix(filepath.Base(f), "_") {
			manifests = append(manifests, name)
		}
	}

	for _, name := range manifests {
		data := map[string]interface{}{
			"Values": values,
			"Chart": map[string]interface{}{
				"Name": meta["name"], "Version": meta["version"], "AppVersion": meta["appVersion"],
			},
			"Release":  map[string]interface{}{"Name": *release, "Namespace": *namespace, "Service": "Helm"},
			"Template": map[string]interface{}{"Name": name},
		}
		var buf bytes.Buffer
		if err := tmpl.ExecuteTemplate(&buf, name, data); err != nil {
			return err
		}
		out := strings.ReplaceAll(buf.String(), "<no value>", "")
		if strings.TrimSpace(out) == "" {
			continue
		}
		fmt.Printf("---\n# Source: %s\n%s\n", name, strings.TrimSpace(out))
	}
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "chart_render:", err)
		os.Exit(1)
	}
}
