package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeConfig writes src as postline.toml in a new folder and returns its path.
func writeConfig(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "postline.toml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const minimal = `hostname = "Mail.Example.TEST"
domains = ["Example.TEST.", "example.net"]
`

func TestLoadShippedConfigs(t *testing.T) {
	demo, err := Load("../etc/postline.toml")
	if err != nil {
		t.Fatalf("etc/postline.toml: %v", err)
	}
	etc, _ := filepath.Abs("../etc")
	root := filepath.Dir(etc)
	if demo.File != filepath.Join(etc, "postline.toml") || demo.StateDir != filepath.Join(root, "var") ||
		demo.UsersFile != filepath.Join(etc, "users") || demo.MDA.MailRoot != filepath.Join(root, "var", "mail") {
		t.Errorf("demo paths: file %s, state %s, users %s, mail %s", demo.File, demo.StateDir, demo.UsersFile, demo.MDA.MailRoot)
	}
	if demo.MTA.LocalRetryMax.D() != time.Minute || demo.SMTPTimeout.D() != 5*time.Minute {
		t.Errorf("demo durations: %v, %v", demo.MTA.LocalRetryMax, demo.SMTPTimeout)
	}

	// No certificate named: a self-signed one in state_dir, so that the
	// example passes `postline check` where it is installed.
	prod, err := Load("../etc/production.toml")
	if err != nil {
		t.Fatalf("etc/production.toml: %v", err)
	}
	if cert, _, generated := prod.CertFiles(); !generated || cert != "/var/lib/postline/tls/cert.pem" {
		t.Errorf("production cert file: %s, generated %v", cert, generated)
	}
	if prod.StateDir != "/var/lib/postline" || !prod.IsLocalDomain("EXAMPLE.net.") {
		t.Errorf("production: state %s, domains %q", prod.StateDir, prod.Domains)
	}
}

func TestLoadResolvesRelativePaths(t *testing.T) {
	path := writeConfig(t, minimal+`state_dir = "state"
users_file = "../users"
[mda]
mail_root = "/abs/mail"
[tls]
cert = "tls/cert.pem"
key = "tls/key.pem"
`)
	dir := filepath.Dir(path)
	// Load from another working folder, by a relative path: paths are
	// relative to the file, not to the process.
	t.Chdir(filepath.Dir(dir))
	c, err := Load(filepath.Join(filepath.Base(dir), "postline.toml"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{
		"file":      {c.File, path},
		"state_dir": {c.StateDir, filepath.Join(dir, "state")},
		"users":     {c.UsersFile, filepath.Join(filepath.Dir(dir), "users")},
		"mail_root": {c.MDA.MailRoot, "/abs/mail"},
		"tls.cert":  {c.TLS.Cert, filepath.Join(dir, "tls", "cert.pem")},
		"tls.key":   {c.TLS.Key, filepath.Join(dir, "tls", "key.pem")},
		"run dir":   {c.RunDir(), filepath.Join(dir, "state", "run")},
		"queue dir": {c.QueueDir(), filepath.Join(dir, "state", "queue")},
	}
	for name, v := range want {
		if v[0] != v[1] {
			t.Errorf("%s = %s, want %s", name, v[0], v[1])
		}
	}
}

func TestLoadDefaults(t *testing.T) {
	path := writeConfig(t, minimal)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Hostname != "mail.example.test" || strings.Join(c.Domains, ",") != "example.test,example.net" {
		t.Errorf("not normalized: hostname %q, domains %q", c.Hostname, c.Domains)
	}
	d := defaults()
	if c.StateDir != d.StateDir || c.MaxMessageSize != d.MaxMessageSize || c.SMTPTimeout.D() != 5*time.Minute ||
		c.LogLevel != "info" || c.MTA.RemotePort != 25 || c.MTA.LocalRetryMax.D() != time.Minute ||
		c.MDA.MailRoot != "/var/mail/postline" {
		t.Errorf("defaults not applied: %+v", c)
	}
	// The default users file is relative, so it sits next to the config.
	if c.UsersFile != filepath.Join(filepath.Dir(path), "users") {
		t.Errorf("users_file = %s", c.UsersFile)
	}
	cert, _, generated := c.CertFiles()
	if !generated || cert != "/var/lib/postline/tls/cert.pem" {
		t.Errorf("CertFiles = %s, generated %v", cert, generated)
	}
}

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{
		"30s":    30 * time.Second,
		"4h":     4 * time.Hour,
		"1m30s":  90 * time.Second,
		"5d":     5 * 24 * time.Hour,
		"1d12h":  36 * time.Hour,
		"0d":     0,
		"2d30m":  48*time.Hour + 30*time.Minute,
		"1500ms": 1500 * time.Millisecond,
	}
	for s, want := range good {
		if got, err := ParseDuration(s); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "5", "d", "xd", "-1d", "1.5d", "5d3", "5 d", "1h2d", "abc", "5dd"} {
		if got, err := ParseDuration(s); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", s, got)
		} else if !strings.Contains(err.Error(), `"5d"`) {
			t.Errorf("ParseDuration(%q) error %q does not show the syntax", s, err)
		}
	}
}

func TestSRSDomain(t *testing.T) {
	for _, tc := range []struct {
		hostname, set string
		domains       []string
		want          string
	}{
		{"mail.example.org", "", []string{"example.org"}, "example.org"},
		{"example.org", "", []string{"other.example", "example.org"}, "example.org"},
		{"mx1.mail.example.org", "", []string{"example.org"}, "example.org"},
		{"mail.elsewhere.example", "", []string{"example.org", "example.net"}, "example.org"},
		{"mail.example.org", "example.net", []string{"example.org", "example.net"}, "example.net"},
	} {
		c := &Config{Hostname: tc.hostname, Domains: tc.domains, MTA: MTA{SRSDomain: tc.set}}
		if got := c.SRSDomain(); got != tc.want {
			t.Errorf("hostname %s, domains %v, srs_domain %q: %s, want %s", tc.hostname, tc.domains, tc.set, got, tc.want)
		}
	}
}
