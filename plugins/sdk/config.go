package sdk

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// ConfigTable reads one table of a plugin's [plugins.config], recording
// every problem instead of stopping at the first, each as "KEY: what is
// wrong and the fix": a getter with a problem records it and returns its
// default. Plugins build their own getters on Fail and Describe.
type ConfigTable struct {
	Prefix string         // before every problem, e.g. "webhook: "; "" for none
	Where  string         // the table inside an array of tables, e.g. "rules[2]"; "" at the top
	M      map[string]any // the table
	Errs   *[]error       // where problems go; shared by the tables of one config
}

// Fail records a problem of key.
func (t ConfigTable) Fail(key, format string, args ...any) {
	name := key
	if t.Where != "" && key != t.Where {
		name = t.Where + "." + key
	}
	*t.Errs = append(*t.Errs, fmt.Errorf("%s%s: "+format, append([]any{t.Prefix, name}, args...)...))
}

// Unknown records each key outside known: most likely a typo.
func (t ConfigTable) Unknown(known []string) {
	var keys []string
	for k := range t.M {
		if !slices.Contains(known, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		t.Fail(k, "unknown key; remove it or use one of %s", strings.Join(known, ", "))
	}
}

// String reads a string.
func (t ConfigTable) String(key, def string) string {
	v, ok := t.M[key]
	if !ok {
		return def
	}
	s, ok := v.(string)
	if !ok {
		t.Fail(key, "got %s, want a string in double quotes", Describe(v))
		return def
	}
	return s
}

// Duration reads a Go duration string such as "10s" or "500ms".
func (t ConfigTable) Duration(key string, def time.Duration) time.Duration {
	v, ok := t.M[key]
	if !ok {
		return def
	}
	s, _ := v.(string)
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fail(key, "got %s, want a positive duration such as %s = %q", Describe(v), key, def.String())
		return def
	}
	return d
}

// Describe names a config value the way the TOML file shows it.
func Describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("string %q", v)
	case int64, float64:
		return fmt.Sprintf("number %v", v)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case nil:
		return "nothing"
	default:
		return fmt.Sprintf("%T", v)
	}
}
