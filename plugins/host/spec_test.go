package host

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// TestSpecFromTOML: the [[plugins]] shape the config file will have
// decodes into Spec as it is.
func TestSpecFromTOML(t *testing.T) {
	const src = `
[[plugins]]
name = "antispam"
path = "bin/antispam"
daemon = "mta"
hooks = ["connect", "data"]
order = 10
timeout = "5s"
on_error = "continue"
[plugins.config]
reject_score = 10
zones = ["zen.example"]
[plugins.config.rules]
viagra = 2.5

[[plugins]]
name = "return-path"
path = "bin/return-path"
daemon = "mda"
`
	var cfg struct {
		Plugins []Spec `toml:"plugins"`
	}
	md, err := toml.Decode(src, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	// toml v1.6.0 reports the keys of a table nested inside a map[string]any
	// as undecoded although it decodes them; a strict loader must let
	// plugins.config.* through.
	for _, k := range md.Undecoded() {
		if !strings.HasPrefix(k.String(), "plugins.config.") {
			t.Errorf("undecoded key %s", k)
		}
	}
	want := Spec{Name: "antispam", Path: "bin/antispam", Daemon: "mta", Hooks: []string{"connect", "data"},
		Order: 10, Timeout: 5 * time.Second, OnError: "continue",
		Config: map[string]any{"reject_score": int64(10), "zones": []any{"zen.example"},
			"rules": map[string]any{"viagra": 2.5}}}
	if len(cfg.Plugins) != 2 || !reflect.DeepEqual(cfg.Plugins[0], want) {
		t.Errorf("got %#v\nwant %#v", cfg.Plugins, want)
	}
	for _, s := range cfg.Plugins {
		if err := s.Validate(); err != nil {
			t.Error(err)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	ok := Spec{Name: "antispam", Path: "/bin/x", Daemon: "mta", Hooks: []string{"connect", "data"}}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid spec: %v", err)
	}
	bad := Spec{Name: "a b", Daemon: "mda", Hooks: []string{"data", "deliver", "deliver"}, Timeout: -1,
		OnError: "ignore", Config: map[string]any{"f": func() {}}}
	err := bad.Validate()
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a *FieldError", e)
		}
		fields = append(fields, fe.Field)
	}
	if got := strings.Join(fields, ","); got != "name,path,hooks,hooks,timeout,on_error,config" {
		t.Errorf("fields %s; errors:\n%v", got, err)
	}
	if !strings.Contains(err.Error(), `plugin "a b": hooks: "data" is not a hook the mda runs (deliver)`) {
		t.Errorf("message: %v", err)
	}
}
