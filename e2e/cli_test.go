package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// writeFile writes content to a new file in a test folder.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const validConfig = `hostname = "mail.example.test"
state_dir = "var"
domains = ["example.test"]
[mta]
listen = ["127.0.0.1:2525"]
`

func TestCheckAcceptsValidConfig(t *testing.T) {
	t.Parallel()
	for _, path := range []string{writeFile(t, "ok.toml", validConfig), "../etc/postline.toml"} {
		if out, err := runPostline(path, "", "check"); err != nil {
			t.Errorf("postline check %s: %v\n%s", path, err, out)
		}
	}
}

// Each mistake is reported with the file, the line and what to do.
func TestCheckReportsFileLineAndFix(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, config, want string }{
		{"unknown key", validConfig + "listn = [\"x\"]\n",
			`bad.toml:6: unknown key "listn": remove it or use one of the keys known in \[mta\]: delay_warning, dns_server, dnssec_resolver, hop_limit, listen, local_retry_max, `},
		{"unknown top-level key", "hostnme = \"x\"\n" + validConfig,
			`bad.toml:1: unknown key "hostnme": remove it or use one of the keys known at the top level: .*hostname`},
		{"wrong type", validConfig + "remote_port = \"25\"\n",
			`bad.toml:6: mta.remote_port: incompatible types: TOML value has type string; destination has type integer`},
		{"bad duration", "smtp_timeout = \"5 minutes\"\n" + validConfig,
			`bad.toml:1: smtp_timeout: invalid duration "5 minutes": write it like "30s", "4h" or "5d"`},
		{"syntax", validConfig + "remote_port = \n",
			`bad.toml:6: .*`},
		{"bad listen address", strings.Replace(validConfig, "127.0.0.1:2525", "2525", 1),
			`bad.toml:5: mta.listen: "2525" is not host:port`},
		{"no domains", strings.Replace(validConfig, `domains = ["example.test"]`, "", 1),
			`bad.toml: domains: list at least one local domain`},
	}
	for _, c := range cases {
		path := writeFile(t, "bad.toml", c.config)
		out, err := runPostline(path, "", "check")
		if err == nil {
			t.Errorf("%s: check passed", c.name)
			continue
		}
		if !regexp.MustCompile(c.want).MatchString(out) {
			t.Errorf("%s: got %q, want match for %q", c.name, out, c.want)
		}
		if !strings.Contains(out, path) {
			t.Errorf("%s: message does not name the file: %q", c.name, out)
		}
	}
}

func TestCheckAcceptsDaysInDurations(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "days.toml", "smtp_timeout = \"1d12h\"\n"+validConfig)
	if out, err := runPostline(path, "", "check"); err != nil {
		t.Errorf("%v\n%s", err, out)
	}
}

func TestUserCommands(t *testing.T) {
	t.Parallel()
	cfg := writeFile(t, "postline.toml", validConfig)
	usersFile := filepath.Join(filepath.Dir(cfg), "users")
	if out, err := runPostline(cfg, "s3cret\n", "user", "add", "Alice@Example.Test"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	runPostline(cfg, "pw\n", "user", "add", "bob@example.test")
	data, _ := os.ReadFile(usersFile)
	// Dovecot passwd-file: user:{BLF-CRYPT}bcrypt::::::
	if !regexp.MustCompile(`(?m)^alice@example\.test:\{BLF-CRYPT\}\$2a\$10\$[./A-Za-z0-9]{53}::::::$`).Match(data) {
		t.Errorf("users file:\n%s", data)
	}
	if strings.Contains(string(data), "s3cret") {
		t.Error("plain password stored")
	}
	if st, _ := os.Stat(usersFile); st.Mode().Perm() != 0o640 {
		t.Errorf("users file mode %v, want 0640", st.Mode().Perm())
	}
	if out, _ := runPostline(cfg, "", "user", "list"); out != "alice@example.test\nbob@example.test\n" {
		t.Errorf("list: %q", out)
	}
	if out, err := runPostline(cfg, "", "user", "del", "bob@example.test"); err != nil {
		t.Errorf("del: %v %s", err, out)
	}
	if out, _ := runPostline(cfg, "", "user", "list"); out != "alice@example.test\n" {
		t.Errorf("list after del: %q", out)
	}
	for _, bad := range []string{"x@elsewhere.test", "../x@example.test", "noat"} {
		if out, err := runPostline(cfg, "pw\n", "user", "add", bad); err == nil {
			t.Errorf("user add %s accepted: %s", bad, out)
		}
	}
	if out, err := runPostline(cfg, "", "user", "add", "carol@example.test"); err == nil {
		t.Errorf("empty password accepted: %s", out)
	}
}

// `postline alias` adds, replaces, lists and deletes aliases, catch-alls
// included, keeping the file's comments; wrong input is refused with
// what to give instead, and the file is left as it was.
func TestAliasCommands(t *testing.T) {
	t.Parallel()
	cfg := writeFile(t, "postline.toml", "aliases_file = \"aliases\"\n"+validConfig)
	file := filepath.Join(filepath.Dir(cfg), "aliases")
	os.WriteFile(file, []byte("# the team\nteam@example.test  alice@example.test\n"), 0o640)
	run := func(args ...string) string {
		t.Helper()
		out, err := runPostline(cfg, "", append([]string{"alias"}, args...)...)
		if err != nil {
			t.Fatalf("alias %v: %v\n%s", args, err, out)
		}
		return out
	}
	run("add", "info@example.test", "alice@example.test,", "bob@example.test")
	run("add", "team@example.test", "bob@example.test")
	run("add", "@example.test", "alice@example.test")
	want := "team@example.test              bob@example.test\n" +
		"info@example.test              alice@example.test, bob@example.test\n" +
		"@example.test                  alice@example.test\n"
	if out := run("list"); out != want {
		t.Errorf("list:\n%s\nwant:\n%s", out, want)
	}
	run("del", "team@example.test")
	data, _ := os.ReadFile(file)
	if !strings.HasPrefix(string(data), "# the team\n") || strings.Contains(string(data), "team@example.test ") {
		t.Errorf("after del:\n%s", data)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"add", "x@elsewhere.test", "alice@example.test"}, "elsewhere.test is not a local domain; add it to domains in"},
		{[]string{"add", "x@example.test", "not an address"}, `"not an address" is not an address like user@example.org`},
		{[]string{"add", "@", "alice@example.test"}, `"@" is not a catch-all like @example.org`},
		{[]string{"del", "nobody@example.test"}, "nobody@example.test: no such alias"},
		{[]string{"add", "x@example.test"}, "usage:"},
	} {
		out, err := runPostline(cfg, "", append([]string{"alias"}, c.args...)...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("alias %v: %v %q, want %q", c.args, err, out, c.want)
		}
	}
	if after, _ := os.ReadFile(file); string(after) != string(data) {
		t.Errorf("a refused command changed the file:\n%s", after)
	}
	out, err := runPostline(writeFile(t, "none.toml", validConfig), "", "alias", "list")
	if err == nil || !strings.Contains(out, "has no aliases_file; add aliases_file =") {
		t.Errorf("alias without aliases_file: %v %q", err, out)
	}
}

// check starts the plugins, so one that refuses its own [plugins.config]
// fails it, with the file and the plugin's words.
func TestCheckReportsPluginConfig(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "plugin.toml", validConfig+"[[plugins]]\nname = \"rspamd\"\nprogram = \"milter\"\ndaemon = \"mta\"\n"+
		"[plugins.config]\nmilters = [\"tcp:127.0.0.1:11332\"]\n")
	out, err := runPostline(path, "", "check")
	want := `milters: "tcp:127.0.0.1:11332": give "inet:host:port" or "unix:/path/to/socket"`
	if err == nil || !strings.Contains(out, path) || !strings.Contains(out, want) {
		t.Errorf("check: %v\n%s\nwant the file and %q", err, out, want)
	}
}

// The milter examples of the README and of docs/milters.md pass check.
func TestMilterExamplesPassCheck(t *testing.T) {
	t.Parallel()
	n := 0
	for _, doc := range []string{"../README.md", "../docs/milters.md", "../plugins/README.md"} {
		for _, block := range tomlBlocks(t, doc) {
			if !strings.Contains(block, `program = "milter"`) {
				continue
			}
			n++
			path := writeFile(t, "example.toml", validConfig+block)
			if out, err := runPostline(path, "", "check"); err != nil {
				t.Errorf("%s example:\n%s\ncheck: %v\n%s", doc, block, err, out)
			}
		}
	}
	if n < 3 {
		t.Errorf("%d milter examples found, want the README's and the guide's", n)
	}
}

// tomlBlocks returns the ```toml blocks of a Markdown file.
func tomlBlocks(t *testing.T, path string) []string {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, part := range strings.Split(string(text), "```toml\n")[1:] {
		block, _, _ := strings.Cut(part, "```")
		blocks = append(blocks, block)
	}
	return blocks
}
