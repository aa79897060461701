package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseNextHop(t *testing.T) {
	for in, want := range map[string]NextHop{
		"[smtp.provider.example]:587": {Host: "smtp.provider.example", Port: 587, NoMX: true},
		"relay.example:465":           {Host: "relay.example", Port: 465, Implicit: true},
		"relay.example":               {Host: "relay.example", Port: 25},
		"[10.0.0.5]:25":               {Host: "10.0.0.5", Port: 25, NoMX: true},
		"[2001:db8::5]:2525":          {Host: "2001:db8::5", Port: 2525, NoMX: true},
	} {
		if got, err := ParseNextHop(in); err != nil || got != want {
			t.Errorf("ParseNextHop(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "[relay", "relay:0", "relay:smtp", "re lay:25"} {
		if _, err := ParseNextHop(in); err == nil {
			t.Errorf("ParseNextHop(%q) accepted", in)
		}
	}
}

// Routes come before the relayhost; local domains use neither.
func TestNextHop(t *testing.T) {
	dir := t.TempDir()
	auth := filepath.Join(dir, "auth")
	os.WriteFile(auth, []byte("# the provider's account\nme@provider.example s3cret pass\n"), 0o600)
	c, err := Load(writeConfig(t, minimal+"[mta]\nrelayhost = \"[smtp.provider.example]:587\"\nrelayhost_auth = \""+auth+"\"\n"+
		"[[mta.route]]\ndomains = [\"Inside.Example\"]\nnext_hop = \"[10.0.0.5]\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := c.NextHop("inside.example."); !ok || h.Host != "10.0.0.5" || h.Auth != nil {
		t.Errorf("route: %+v %v", h, ok)
	}
	h, ok := c.NextHop("gmail.example")
	if !ok || h.Host != "smtp.provider.example" || h.Port != 587 || h.Implicit || h.Auth == nil ||
		h.Auth.User != "me@provider.example" || h.Auth.Password != "s3cret pass" {
		t.Errorf("relayhost: %+v %+v %v", h, h.Auth, ok)
	}
	if _, ok := c.NextHop("example.net"); ok {
		t.Error("a local domain goes to the relayhost")
	}
}

// Each smarthost key's wrong values are named with the file, the line
// and the fix.
func TestRelayValuesRefused(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	os.WriteFile(open, []byte("me pw\n"), 0o644)
	twoLines := filepath.Join(dir, "two")
	os.WriteFile(twoLines, []byte("me pw\nyou pw\n"), 0o600)
	for _, c := range []struct{ src, want string }{
		{"[mta]\nrelayhost = \"[relay\"\n", `:4: mta.relayhost: "[relay" is not [host]:port`},
		{"[mta]\nrelayhost = \"relay:99999\"\n", `:4: mta.relayhost: "relay:99999": the port is not a number`},
		{"[mta]\nrelayhost = \"relay\"\nrelayhost_tls = \"ssl\"\n", `:5: mta.relayhost_tls: "ssl": give "starttls" or "implicit"`},
		{"[mta]\nrelayhost_auth = \"" + twoLines + "\"\n", `:4: mta.relayhost_auth: set mta.relayhost too`},
		{"[mta]\nrelayhost = \"relay\"\nrelayhost_auth = \"" + open + "\"\n", `:5: mta.relayhost_auth: ` + open + ` has mode 0644; make it 0600`},
		{"[mta]\nrelayhost = \"relay\"\nrelayhost_auth = \"" + twoLines + "\"\n", `give one line "user password"`},
		{"[mta]\nrelayhost = \"relay\"\nrelayhost_auth = \"/nonexistent\"\n", `:5: mta.relayhost_auth: stat /nonexistent`},
		{"[mta]\ntls_roots = \"" + open + "\"\n", `:4: mta.tls_roots: ` + open + `: no PEM certificate in it`},
		{"[[mta.route]]\ndomains = [\"x.example\"]\nnext_hop = \"[bad\"\n", `:5: mta.route.next_hop: route 1: "[bad" is not`},
		{"[[mta.route]]\ndomains = [\"example.net\"]\nnext_hop = \"relay\"\n", `:4: mta.route.domains: route 1: "example.net" is not a domain of another host`},
		{"[[mta.route]]\nnext_hop = \"relay\"\n", `mta.route.domains: route 1: list the domains`},
	} {
		path, msg := loadErr(t, minimal+c.src)
		if !strings.Contains(msg, c.want) || !strings.Contains(msg, path) {
			t.Errorf("%q: error %q lacks %q", c.src, msg, c.want)
		}
	}
}

// [acme]'s wrong values are named with the file, the line and the fix.
func TestACMEValuesRefused(t *testing.T) {
	on := "[acme]\nemail = \"admin@example.test\"\n"
	for _, c := range []struct{ src, want string }{
		{on + "directory = \"http://ca.example/dir\"\n", `:5: acme.directory: "http://ca.example/dir" is not an https URL`},
		{on + "challenge = \"dns-01\"\n", `:5: acme.challenge: "dns-01": give "http-01" or "tls-alpn-01"`},
		{on + "http_listen = \"80\"\n", `:5: acme.http_listen: "80" is not host:port`},
		{on + "tls_listen = \"443\"\n", `:5: acme.tls_listen: "443" is not host:port`},
		{on + "renew_before = \"10s\"\n", `:5: acme.renew_before: 10s is too short`},
		{on + "ca_roots = \"/nonexistent.pem\"\n", `:5: acme.ca_roots: /nonexistent.pem: open`},
		{"[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n" + on, `:7: acme.email: tls.cert is set too`},
		{"[acme]\nemail = \"postmaster\"\n", `:4: acme.email: "postmaster" is not an address`},
	} {
		path, msg := loadErr(t, minimal+c.src)
		if !strings.Contains(msg, path+c.want) {
			t.Errorf("%q: error %q lacks %q", c.src, msg, path+c.want)
		}
	}
	c, err := Load(writeConfig(t, minimal+"state_dir = \"/var/lib/postline\"\n"+on))
	if err != nil {
		t.Fatal(err)
	}
	if cert, _, generated := c.CertFiles(); cert != "/var/lib/postline/acme/cert.pem" || !generated || c.ACME.Directory != LetsEncrypt {
		t.Errorf("acme on: cert %s (generated %v), directory %s", cert, generated, c.ACME.Directory)
	}
}

// [mta_sts]'s wrong values are named with the file, the line and the fix.
func TestMTASTSValuesRefused(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"[mta_sts]\nmode = \"on\"\n", `:4: mta_sts.mode: "on": give "enforce" or "testing"`},
		{"[mta_sts]\nmode = \"testing\"\nmax_age = \"1h\"\n", `:5: mta_sts.max_age: 1h0m0s: give a duration from "1d" to "365d"`},
		{"[mta_sts]\nmode = \"testing\"\nlisten = \"443\"\n", `:5: mta_sts.listen: "443" is not host:port`},
	} {
		path, msg := loadErr(t, minimal+c.src)
		if !strings.Contains(msg, path+c.want) {
			t.Errorf("%q: error %q lacks %q", c.src, msg, path+c.want)
		}
	}
	c, err := Load(writeConfig(t, minimal+"[mta_sts]\nmode = \"testing\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := "version: STSv1\r\nmode: testing\r\nmx: mail.example.test\r\nmax_age: 604800\r\n"
	if got := c.MTASTSPolicy(); got != want {
		t.Errorf("policy %q, want %q", got, want)
	}
	if got := strings.Join(c.CertNames(), " "); got != "mail.example.test mta-sts.example.test mta-sts.example.net" {
		t.Errorf("certificate names %q", got)
	}
}
