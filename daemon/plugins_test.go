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
		{Name: "received", Daemon: "mta", Path: "/opt/received"},
		{Name: "antispam", Daemon: "mta"},
		{Name: "rspamd", Program: "milter", Daemon: "mta"},
	}}
	specs := PluginSpecs(cfg, "/usr/lib/postline")
	if len(specs) != 5 {
		t.Fatalf("specs = %+v, want the disabled one left out", specs)
	}
	// A bundled trace-field filter without a path runs in the daemon.
	if s := specs[0]; s.InProcess == nil || s.Path != "" || s.Daemon != "mda" || s.Hooks[0] != "deliver" {
		t.Errorf("return-path spec = %+v", s)
	}
	if s := specs[2]; s.InProcess != nil || s.Path != "/opt/received" {
		t.Errorf("received with a path = %+v, want a process", s)
	}
	if s := specs[3]; s.InProcess != nil || s.Path != "/usr/lib/postline/postline-plugin-antispam" {
		t.Errorf("antispam spec = %+v, want the plugin beside the daemons", s)
	}
	if s := specs[4]; s.Name != "rspamd" || s.Path != "/usr/lib/postline/postline-plugin-milter" {
		t.Errorf("rspamd spec = %+v, want the bundled milter program", s)
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
