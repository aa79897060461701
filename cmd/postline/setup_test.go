package main

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"postline/config"
)

// Every flag of setup that takes a value refuses a wrong one, naming the
// flag and how to fix it.
func TestSetupRefusesBadFlags(t *testing.T) {
	good := []string{"--hostname", "mail.example.org", "--domain", "example.org"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--domain", "example.org"}, "--hostname: give this host's fully qualified name, e.g. --hostname mail.example.org"},
		{[]string{"--hostname", "mail", "--domain", "example.org"}, "--hostname: \"mail\" is not this host's fully qualified name like mail.example.org"},
		{[]string{"--hostname", "mail.example.org"}, "--domain: give the mail domain"},
		{[]string{"--hostname", "mail.example.org", "--domain", "exa mple"}, "--domain: \"exa mple\" is not the mail domain like example.org"},
		{append(good, "--admin", "you@example.net"), "--admin: \"you@example.net\" is not an address in example.org"},
		{append(good, "--dkim", "dsa"), "--dkim: \"dsa\": use rsa or ed25519"},
		{append(good, "--dir", "etc"), "--dir: \"etc\": give an absolute path"},
		{append(good, "--state", "var"), "--state: \"var\": give an absolute path"},
		{append(good, "--mail", "mail"), "--mail: \"mail\": give an absolute path"},
		{append(good, "--user", "Post Line"), "--user: \"Post Line\": give a system user name"},
		{append(good, "--mail-user", "postline"), "--mail-user: \"postline\" is also --user"},
		{append(good, "--listen-smtp", "25"), "--listen-smtp: \"25\": give host:port"},
		{append(good, "--listen-submission", "localhost"), "--listen-submission: \"localhost\": give host:port"},
		{append(good, "--listen-submissions", "x:"), "--listen-submissions: \"x:\": give host:port"},
		{append(good, "--ip", "mail.example.org"), "give an IPv4 or IPv6 address"},
		{append(good, "extra"), "unexpected argument \"extra\""},
	} {
		var stderr strings.Builder
		_, err := parseSetup(c.args, &stderr)
		if err == nil || !strings.Contains(err.Error()+stderr.String(), c.want) {
			t.Errorf("setup %v: %v %s, want %q", c.args, err, stderr.String(), c.want)
		}
	}
	if _, err := parseSetup(append(good, "--ip", "2001:db8::1", "--dkim", "ed25519"), io.Discard); err != nil {
		t.Errorf("good flags refused: %v", err)
	}
}

// keygen's wrong values are answered with what to give instead.
func TestKeygenRefusesBadArguments(t *testing.T) {
	cfg := &config.Config{File: "/etc/postline/postline.toml", Domains: []string{"example.org"}}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "give one DOMAIN, e.g. postline dkim keygen example.org"},
		{[]string{"example.org", "example.net"}, "give one DOMAIN"},
		{[]string{"example.net"}, `"example.net" is not one of the domains in /etc/postline/postline.toml; add it to domains there first`},
		{[]string{"example.org", "--selector", "a b"}, `--selector: "a b" is not a DNS label`},
		{[]string{"--selector", "../x", "example.org"}, `--selector: "../x" is not a DNS label`},
		{[]string{"example.org", "--size", "4096"}, "flag provided but not defined: -size"},
	} {
		var stderr strings.Builder
		_, _, _, err := parseKeygen(cfg, c.args, &stderr)
		if err == nil || !strings.Contains(err.Error()+stderr.String(), c.want) {
			t.Errorf("keygen %v: %v %s, want %q", c.args, err, stderr.String(), c.want)
		}
	}
	domain, selector, alg, err := parseKeygen(cfg, []string{"--ed25519", "Example.ORG", "--selector", "s2"}, io.Discard)
	if err != nil || domain != "example.org" || selector != "s2" || alg != "ed25519" {
		t.Errorf("keygen --ed25519 Example.ORG --selector s2: %q %q %q %v", domain, selector, alg, err)
	}
}

// dns check's flags refuse wrong values with the fix.
func TestDNSCheckRefusesBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "--ip", "mail"}, `invalid value "mail" for flag -ip: give an IPv4 or IPv6 address, e.g. --ip 192.0.2.10`},
		{[]string{"check", "192.0.2.1"}, `unexpected argument "192.0.2.1"; give addresses with --ip`},
		{[]string{"verify"}, "usage: postline dns check"},
		{nil, "usage: postline dns check"},
	} {
		var stderr strings.Builder
		_, err := parseDNSCheck(c.args, &stderr)
		if err == nil || !strings.Contains(err.Error()+stderr.String(), c.want) {
			t.Errorf("dns %v: %v %s, want %q", c.args, err, stderr.String(), c.want)
		}
	}
	if ips, err := parseDNSCheck([]string{"check", "--ip", "192.0.2.1", "--ip", "2001:db8::1"}, io.Discard); err != nil || len(ips) != 2 {
		t.Errorf("two --ip: %v %v", ips, err)
	}
}

// A daemon's problems keep its last few log lines, taken apart.
func TestProblemsKeepTheLastFew(t *testing.T) {
	var p problems
	for i := range 7 {
		p.add(fmt.Sprintf(`{"level":"warn","svc":"msa","ip":"192.0.2.%d","time":"2026-12-07T06:00:0%dZ","message":"authentication failed"}`, i, i))
	}
	p.add("not json")
	if len(p) != keptProblems {
		t.Fatalf("kept %d, want %d", len(p), keptProblems)
	}
	first := p[0]
	if first.Level != "warn" || first.Message != "authentication failed" || first.Detail != "ip=192.0.2.3" || first.Time.Second() != 3 {
		t.Errorf("first kept %+v", first)
	}
	if last := p[len(p)-1]; last.Message != "not json" {
		t.Errorf("last kept %+v", last)
	}
}
