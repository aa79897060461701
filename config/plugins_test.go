package config

import (
	"strings"
	"testing"
	"time"
)

func TestPluginsDefaultReturnPath(t *testing.T) {
	c, err := Load(writeConfig(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Plugins) != 3 {
		t.Fatalf("plugins = %+v, want the default return-path and received only", c.Plugins)
	}
	p := c.Plugins[0]
	if p.Name != "return-path" || p.Daemon != "mda" || p.Path != "" || !p.On() ||
		len(p.Hooks) != 1 || p.Hooks[0] != "deliver" {
		t.Errorf("default plugin = %+v", p)
	}
	for i, daemon := range []string{"msa", "mta"} {
		p := c.Plugins[1+i]
		if p.Name != "received" || p.Daemon != daemon || p.Path != "" || !p.On() ||
			len(p.Hooks) != 1 || p.Hooks[0] != "data" {
			t.Errorf("default plugin = %+v, want received in the %s", p, daemon)
		}
	}
}

// A received table without a daemon overrides both default received
// plugins; with a daemon, only that one.
func TestPluginsOverrideReceived(t *testing.T) {
	c, err := Load(writeConfig(t, minimal+"[[plugins]]\nname = \"received\"\ntimeout = \"2s\"\n"+
		"[[plugins]]\nname = \"return-path\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Plugins) != 3 || c.Plugins[1].Timeout.D() != 2*time.Second || c.Plugins[2].Timeout.D() != 2*time.Second ||
		c.Plugins[1].Daemon != "msa" || c.Plugins[2].Daemon != "mta" || c.Plugins[2].Hooks[0] != "data" {
		t.Errorf("plugins = %+v", c.Plugins)
	}
	c, err = Load(writeConfig(t, minimal+"[[plugins]]\nname = \"received\"\ndaemon = \"mta\"\nenabled = false\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Plugins) != 3 || !c.Plugins[1].On() || c.Plugins[2].On() || c.Plugins[2].Daemon != "mta" {
		t.Errorf("plugins = %+v", c.Plugins)
	}
	_, err = Load(writeConfig(t, minimal+"[[plugins]]\nname = \"received\"\norder = 1\n"+
		"[[plugins]]\nname = \"received\"\ndaemon = \"mta\"\norder = 2\n"))
	if err == nil || !strings.Contains(err.Error(), `plugins "received": name: two [[plugins]] tables have this name`) {
		t.Errorf("err = %v", err)
	}
}

func TestPluginsListOverrideAndConfig(t *testing.T) {
	c, err := Load(writeConfig(t, minimal+`
[[plugins]]
name = "example"
path = "bin/postline-plugin-example"
daemon = "mta"
hooks = ["data"]
order = 10
timeout = "5s"
on_error = "continue"
[plugins.config]
word = "lottery"
[plugins.config.nested]
deep = 1

[[plugins]]
name = "return-path"
order = 5
path = "/opt/rp"
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Plugins) != 4 {
		t.Fatalf("plugins = %+v", c.Plugins)
	}
	rp, ex := c.Plugins[0], c.Plugins[3]
	if rp.Name != "return-path" || rp.Path != "/opt/rp" || rp.Order != 5 || rp.Daemon != "mda" || rp.Hooks[0] != "deliver" {
		t.Errorf("return-path override = %+v", rp)
	}
	if ex.Name != "example" || !strings.HasSuffix(ex.Path, "/bin/postline-plugin-example") || ex.Path[0] != '/' ||
		ex.Daemon != "mta" || ex.Order != 10 || ex.Timeout.D() != 5*time.Second || ex.OnError != "continue" {
		t.Errorf("example = %+v", ex)
	}
	nested, _ := ex.Config["nested"].(map[string]any)
	if ex.Config["word"] != "lottery" || nested["deep"] != int64(1) {
		t.Errorf("example config = %#v", ex.Config)
	}
}

func TestPluginsDisableReturnPath(t *testing.T) {
	c, err := Load(writeConfig(t, minimal+"[[plugins]]\nname = \"return-path\"\nenabled = false\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Plugins) != 3 || c.Plugins[0].On() || c.Plugins[0].Daemon != "mda" || !c.Plugins[1].On() {
		t.Errorf("plugins = %+v", c.Plugins)
	}
}

func TestPluginsErrors(t *testing.T) {
	path := writeConfig(t, minimal+`
[[plugins]]
name = "a"
daemon = "smtpd"

[[plugins]]
name = "b"
daemon = "mda"
hooks = ["data"]
on_error = "ignore"

[[plugins]]
name = "a"
daemon = "smtpd"

[[plugins]]
name = "no spaces"
daemon = "mta"

[[plugins]]
name = "c"
program = "../../bin/sh"
daemon = "mta"
`)
	_, err := Load(path)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		path + `:5: plugins "a": daemon: "smtpd" is not one of msa, mta, mda`,
		path + `:9: plugins "b": hooks: "data" is not a hook the mda runs (deliver)`,
		path + `:9: plugins "b": on_error: "ignore" is not "tempfail" or "continue"`,
		`plugins "a": name: two [[plugins]] tables have this name`,
		path + `:19: plugins "no spaces": name: must be 1-64 letters`,
		path + `:23: plugins "c": program: must be a bundled plugin's name such as "milter"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestPluginsUnknownKey(t *testing.T) {
	path := writeConfig(t, minimal+"[[plugins]]\nname = \"x\"\ndaemon = \"mta\"\ntimout = \"5s\"\n")
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), `unknown key "timout"`) || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("err = %v", err)
	}
}

// Two tables overriding the default return-path would silently merge:
// refused, naming the second table's line.
func TestDuplicatePluginNames(t *testing.T) {
	src := minimal + `
[[plugins]]
name = "return-path"
order = 1

[[plugins]]
name = "return-path"
order = 2
`
	_, err := Load(writeConfig(t, src))
	if err == nil || !strings.Contains(err.Error(), `plugins "return-path": name: two [[plugins]] tables have this name`) {
		t.Fatalf("err = %v", err)
	}
}
