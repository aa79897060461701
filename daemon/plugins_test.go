package daemon

import (
	"testing"
	"time"

	"postline/config"
)

func TestPluginSpecs(t *testing.T) {
	off := false
	cfg := &config.Config{Plugins: []config.Plugin{
		{Name: "return-path", Daemon: "mda", Hooks: []string{"deliver"}},
		{Name: "example", Path: "/opt/ex", Daemon: "mta", Order: 3, Timeout: config.Duration(time.Second),
			OnError: "continue", Config: map[string]any{"word": "x"}},
		{Name: "off", Daemon: "msa", Enabled: &off},
	}}
	specs := PluginSpecs(cfg, "/usr/lib/postline")
	if len(specs) != 2 {
		t.Fatalf("specs = %+v, want the disabled one left out", specs)
	}
	if s := specs[0]; s.Path != "/usr/lib/postline/postline-plugin-return-path" || s.Daemon != "mda" || s.Hooks[0] != "deliver" {
		t.Errorf("return-path spec = %+v", s)
	}
	if s := specs[1]; s.Path != "/opt/ex" || s.Order != 3 || s.Timeout != time.Second || s.OnError != "continue" || s.Config["word"] != "x" {
		t.Errorf("example spec = %+v", s)
	}
	for _, s := range specs {
		if err := s.Validate(); err != nil {
			t.Errorf("%s: %v", s.Name, err)
		}
	}
}
