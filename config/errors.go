package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"
)

// decodeError turns a TOML decoding error into "file:line: message".
func decodeError(path string, err error) error {
	var perr toml.ParseError
	if errors.As(err, &perr) {
		msg := perr.Message
		if perr.LastKey != "" {
			msg = fmt.Sprintf("%s: %s", perr.LastKey, msg)
		}
		return fmt.Errorf("%s:%d: %s", path, perr.Position.Line, msg)
	}
	// Type mismatches are plain errors of the form
	// "toml: line 4 (last key "smtp.port"): incompatible types: ...".
	m := regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`).FindStringSubmatch(err.Error())
	if m != nil {
		return fmt.Errorf("%s:%s: %s: %s", path, m[1], m[2], m[3])
	}
	return fmt.Errorf("%s: %w", path, err)
}

// unknownKeyError names an undecoded key, where it is and what was meant.
func unknownKeyError(path, src string, k toml.Key) error {
	table, name := "", k[len(k)-1]
	if len(k) > 1 {
		table = strings.Join(k[:len(k)-1], ".")
	}
	known := knownKeys(reflect.TypeOf(Config{}), k[:len(k)-1])
	hint := "remove it"
	if len(known) > 0 {
		where := "at the top level"
		if table != "" {
			where = "in [" + table + "]"
		}
		hint = fmt.Sprintf("remove it or use one of the keys known %s: %s", where, strings.Join(known, ", "))
	}
	return fmt.Errorf("%s:%d: unknown key %q: %s", path, lineOfKey(src, k.String()), name, hint)
}

// knownKeys lists the TOML keys of the struct reached through table.
func knownKeys(t reflect.Type, table toml.Key) []string {
	for _, part := range table {
		f, ok := fieldByTag(t, part)
		if ok && f.Type.Kind() == reflect.Slice { // an array of tables, [[plugins]]
			f.Type = f.Type.Elem()
		}
		if !ok || f.Type.Kind() != reflect.Struct {
			return nil
		}
		t = f.Type
	}
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		if tag := t.Field(i).Tag.Get("toml"); tag != "" && tag != "-" {
			keys = append(keys, tag)
		}
	}
	sort.Strings(keys)
	return keys
}

func fieldByTag(t reflect.Type, tag string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Tag.Get("toml") == tag {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

// lineOfKey finds the line that sets a dotted key such as "mta.listen",
// following [table] headers. The TOML library does not expose positions
// of keys it did not decode, so we look for them ourselves. It returns 0
// when the key is not written in the file (a default was used).
func lineOfKey(src, dotted string) int {
	parts := strings.Split(dotted, ".")
	wantTable, name := strings.Join(parts[:len(parts)-1], "."), parts[len(parts)-1]
	table := ""
	for i, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			table = strings.Trim(line, "[] \t")
			if j := strings.IndexByte(table, '#'); j >= 0 {
				table = strings.Trim(table[:j], "[] \t")
			}
			if table == dotted { // an unknown [table] itself
				return i + 1
			}
			continue
		}
		key, _, ok := strings.Cut(line, "=")
		if ok && table == wantTable && strings.Trim(strings.TrimSpace(key), `"'`) == name {
			return i + 1
		}
	}
	return 0
}

// ZerologLevel parses log_level.
func (c *Config) ZerologLevel() (zerolog.Level, error) {
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
		return zerolog.ParseLevel(c.LogLevel)
	}
	return zerolog.NoLevel, fmt.Errorf("unknown log level %q", c.LogLevel)
}
